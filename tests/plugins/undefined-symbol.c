/* Fixture: calls a function that no library defines.  It is linked without
 * -Wl,-z,defs so that it builds; dlopen with RTLD_NOW must then fail with
 * "undefined symbol: berth_fixture_does_not_exist", and the registry must
 * report it without crashing. */
#include "fixture.h"

extern int berth_fixture_does_not_exist (void);

static int
undefined_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self,
                berth_error *err)
{
  return berth_fixture_does_not_exist ();
}

static const struct berth_plugin_desc desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "undefined-symbol",
  .version = "1.0.0",
  .init = undefined_init,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
