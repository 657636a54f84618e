/* Fixture: init answers BERTH_E_SKIP with a reason, as fuse does without
 * /dev/fuse: status "skip", not an error. */
#include "fixture.h"

static int
init_skip_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self,
                berth_error *err)
{
  return host->error_set (err, BERTH_E_SKIP, 0, "no %s on this host", "/dev/berth-fixture");
}

static const struct berth_plugin_desc desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_SNAPSHOTTER,
  .type = FIXTURE_SNAPSHOTTER,
  .id = "init-skip",
  .version = "1.0.0",
  .init = init_skip_init,
  .ops = &fixture_snapshotter_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
