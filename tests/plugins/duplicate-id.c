/* Fixture: one shared object whose entry returns two descriptors with the
 * same type and id.  The first is accepted; the second is refused as a
 * duplicate and never inited. */
#include "fixture.h"

FIXTURE_TRACED (dup_first, "dup")
FIXTURE_TRACED (dup_second, "dup (second)")

static const struct berth_plugin_desc first = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "dup",
  .version = "1.0.0",
  .init = dup_first_init,
  .fini = dup_first_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc second = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "dup",
  .version = "2.0.0",
  .init = dup_second_init,
  .fini = dup_second_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &first, &second, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
