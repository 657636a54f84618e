/* Fixture: a well-formed plugin that inits fine.  Also the file the
 * registry test copies, chmods g+w / o+w or chowns, to check that the loader
 * refuses unsafe files before dlopen. */
#include "fixture.h"

FIXTURE_TRACED (ok, "fixture-ok")

static const struct berth_plugin_desc desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "fixture-ok",
  .version = "1.0.0",
  .init = ok_init,
  .fini = ok_fini,
  .ops = &fixture_content_ops,
  .description = "fixture: loads and inits",
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
