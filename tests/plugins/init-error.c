/* Fixture: init fails with an error and a message set through the host
 * table (status "error"; a required_plugins entry → the daemon stops). */
#include <errno.h>

#include "fixture.h"

static int
init_error_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self,
                 berth_error *err)
{
  return host->error_set (err, BERTH_E_UNAVAILABLE, ENODEV, "cannot open %s", "/dev/berth-fixture");
}

static void
init_error_fini (void *self)
{
  /* self is NULL here: init never set it.  fini must accept that. */
}

static const struct berth_plugin_desc desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "init-error",
  .version = "1.0.0",
  .init = init_error_init,
  .fini = init_error_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
