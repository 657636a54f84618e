/* Fixture: three plugins declared in the reverse of their dependency order
 * (order-c requires order-b requires order-a), so the registry must sort
 * them: init a, b, c; fini c, b, a.  order-c also checks host->lookup on the
 * plugin it requires. */
#include <errno.h>

#include "fixture.h"

FIXTURE_TRACED (order_a, "order-a")
FIXTURE_TRACED (order_b, "order-b")

static int
order_c_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self,
              berth_error *err)
{
  struct berth_plugin_ref ref = { .size = sizeof ref };
  int r = host->lookup (ictx->plugin, FIXTURE_SNAPSHOTTER, "order-b", &ref);
  if (r < 0)
    return host->error_set (err, r, 0, "lookup of order-b failed");
  if (ref.kind != BERTH_KIND_SNAPSHOTTER || ref.ops == NULL)
    return host->error_set (err, BERTH_E_INTERNAL, 0, "lookup of order-b answered kind %u", ref.kind);
  if (((const struct berth_snapshotter_ops *) ref.ops)->size < sizeof (uint32_t))
    return host->error_set (err, BERTH_E_INTERNAL, 0, "lookup of order-b answered ops without size");
  return fixture_traced_init (host, ictx, "order-c", ret_self);
}

static void
order_c_fini (void *self)
{
  fixture_traced_fini (self);
}

static const char *const needs_a[] = { FIXTURE_CONTENT ".order-a", NULL };
static const char *const needs_b[] = { FIXTURE_SNAPSHOTTER ".order-b", NULL };

static const struct berth_plugin_desc c = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_RUNTIME,
  .type = FIXTURE_RUNTIME,
  .id = "order-c",
  .version = "1.0.0",
  .requires = needs_b,
  .init = order_c_init,
  .fini = order_c_fini,
  .ops = &fixture_runtime_ops,
};

static const struct berth_plugin_desc b = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_SNAPSHOTTER,
  .type = FIXTURE_SNAPSHOTTER,
  .id = "order-b",
  .version = "1.0.0",
  .requires = needs_a,
  .init = order_b_init,
  .fini = order_b_fini,
  .ops = &fixture_snapshotter_ops,
};

static const struct berth_plugin_desc a = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "order-a",
  .version = "1.0.0",
  .init = order_a_init,
  .fini = order_a_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &c, &b, &a, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
