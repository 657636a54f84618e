/* Fixture: requires a plugin that no file provides.  Status "error", the
 * reason names the missing plugin, and init is never called. */
#include "fixture.h"

FIXTURE_TRACED (missing_dep, "missing-dep")

static const char *const requires[] = { FIXTURE_CONTENT ".does-not-exist", NULL };

static const struct berth_plugin_desc desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_RUNTIME,
  .type = FIXTURE_RUNTIME,
  .id = "missing-dep",
  .version = "1.0.0",
  .requires = requires,
  .init = missing_dep_init,
  .fini = missing_dep_fini,
  .ops = &fixture_runtime_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
