/* Fixture: cycle-a requires cycle-b, which requires cycle-a.  Both must end
 * in "error" naming the cycle, and neither is inited.  cycle-c requires
 * cycle-a only: it is not part of the cycle but cannot init without it. */
#include "fixture.h"

FIXTURE_TRACED (cycle_a, "cycle-a")
FIXTURE_TRACED (cycle_b, "cycle-b")
FIXTURE_TRACED (cycle_c, "cycle-c")

static const char *const needs_b[] = { FIXTURE_CONTENT ".cycle-b", NULL };
static const char *const needs_a[] = { FIXTURE_CONTENT ".cycle-a", NULL };

static const struct berth_plugin_desc a = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "cycle-a",
  .version = "1.0.0",
  .requires = needs_b,
  .init = cycle_a_init,
  .fini = cycle_a_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc b = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "cycle-b",
  .version = "1.0.0",
  .requires = needs_a,
  .init = cycle_b_init,
  .fini = cycle_b_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc c = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_SNAPSHOTTER,
  .type = FIXTURE_SNAPSHOTTER,
  .id = "cycle-c",
  .version = "1.0.0",
  .requires = needs_a,
  .init = cycle_c_init,
  .fini = cycle_c_fini,
  .ops = &fixture_snapshotter_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &a, &b, &c, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
