/* Fixture: a snapshotter built against the ABI 1.0 headers frozen in
 * tests/plugins/abi-1.0/ (its descriptor has no `description`).  It must
 * keep loading and initialising on every future 1.x host (ABI rule 4).
 *
 * It exercises the host table from init (log, cfg_get of a declared key and
 * of an undeclared one, set_export, add_capability, error_set from a method)
 * and places a trap right after its 1.0-sized descriptor: a host that read
 * past `size` would see "TRAP" as the 1.1 description. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <berth/config.h>
#include <berth/plugin.h>
#include <berth/snapshotter.h>

#if BERTH_ABI_MAJOR != 1 || BERTH_ABI_MINOR != 0
#error "frozen-1.0 must be built against tests/plugins/abi-1.0 only"
#endif

struct frozen
{
  const struct berth_host *host;
  berth_plugin *plugin;
  char greeting[64];
};

/* "hello" exists, committed, named after the configured greeting; every
 * other key is NOTFOUND with a message set through the host. */
static int
frozen_stat (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info,
             berth_error *err)
{
  struct frozen *f = self;
  if (strcmp (key, "hello") != 0)
    return f->host->error_set (err, BERTH_E_NOTFOUND, 0, "snapshot %s does not exist", key);
  if (BERTH_HAS (struct berth_snapshot_info, ret_info, kind))
    ret_info->kind = BERTH_SNAPSHOT_COMMITTED;
  if (BERTH_HAS (struct berth_snapshot_info, ret_info, name))
    snprintf (ret_info->name, sizeof ret_info->name, "%s", f->greeting);
  return 0;
}

/* Only stat: every other method is NULL and must answer NOTSUP. */
static const struct berth_snapshotter_ops frozen_ops = {
  .size = sizeof (struct berth_snapshotter_ops),
  .stat = frozen_stat,
};

static const struct berth_config_key k_greeting
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "greeting", "\"hello\"", "what the frozen plugin says");
static const struct berth_config_key *const frozen_keys[] = { &k_greeting, NULL };

static int
frozen_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self,
             berth_error *err)
{
  struct berth_cfg_value v = { .size = sizeof v };
  struct frozen *f;
  int r;

  if (!BERTH_HAS (struct berth_host, host, add_capability))
    return BERTH_E_NOTSUP;
  host->log (ictx->plugin, BERTH_LOG_INFO, "init frozen-1.0 (built for ABI %d.%d, host %u.%u)",
             BERTH_ABI_MAJOR, BERTH_ABI_MINOR, host->abi_major, host->abi_minor);

  r = host->cfg_get (ictx->plugin, "greeting", &v);
  if (r < 0)
    return host->error_set (err, r, 0, "cfg_get greeting");
  if (v.type != BERTH_CFG_STRING || v.s == NULL)
    return host->error_set (err, BERTH_E_INVALID, 0, "greeting has type %u", v.type);

  f = calloc (1, sizeof *f);
  if (f == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  f->host = host;
  f->plugin = ictx->plugin;
  snprintf (f->greeting, sizeof f->greeting, "%s", v.s);
  *ret_self = f; /* set before anything else can fail: fini frees it */

  r = host->set_export (ictx->plugin, "greeting", f->greeting);
  if (r < 0)
    return host->error_set (err, r, 0, "set_export");
  r = host->set_export (ictx->plugin, "greeting.default", v.is_default ? "yes" : "no");
  if (r < 0)
    return host->error_set (err, r, 0, "set_export");

  /* An undeclared key with no default: NOTFOUND, not a crash. */
  struct berth_cfg_value u = { .size = sizeof u };
  r = host->cfg_get (ictx->plugin, "not-declared", &u);
  r = host->set_export (ictx->plugin, "undeclared", r == BERTH_E_NOTFOUND ? "notfound" : "found");
  if (r < 0)
    return host->error_set (err, r, 0, "set_export");

  r = host->add_capability (ictx->plugin, "frozen-abi-1.0");
  if (r < 0)
    return host->error_set (err, r, 0, "add_capability");
  return 0;
}

static void
frozen_fini (void *self)
{
  struct frozen *f = self;
  if (f == NULL)
    return;
  f->host->log (f->plugin, BERTH_LOG_INFO, "fini frozen-1.0");
  free (f);
}

/* The 1.0 descriptor followed by what a 1.1 host would read as
 * `description` if it ignored `size`. */
static const struct
{
  struct berth_plugin_desc desc;
  const char *trap;
} frozen = {
  .desc = {
    BERTH_PLUGIN_DESC_HEADER,
    .kind = BERTH_KIND_SNAPSHOTTER,
    .type = "io.berth.snapshotter.v1",
    .id = "frozen-1.0",
    .version = "1.0.0",
    .config_keys = frozen_keys,
    .init = frozen_init,
    .fini = frozen_fini,
    .ops = &frozen_ops,
  },
  .trap = "TRAP",
};

static const struct berth_plugin_desc *const plugins[] = { &frozen.desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
