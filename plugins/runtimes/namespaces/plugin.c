/* io.berth.runtime.v1.namespaces: berth's own runtime.  libberth-shimrt
 * (include/berth/shimrt.h) configured with berth-runtime, the
 * runc-compatible binary built from this folder (nsrt-*.c), so no runc is
 * needed.  Everything but the choice of binary lives in the library. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <berth/config.h>
#include <berth/shimrt.h>

#ifndef BERTH_RUNTIME_BINARY
#define BERTH_RUNTIME_BINARY "/usr/local/sbin/berth-runtime"
#endif
#ifndef BERTH_SHIM_BINARY
#define BERTH_SHIM_BINARY "/usr/local/libexec/berth/berth-shim"
#endif

#define NSRT_PLUGIN_NAME "io.berth.runtime.v1.namespaces"

static const char *
cfg_string (const struct berth_host *host, berth_plugin *p, const char *key, const char *fallback)
{
  struct berth_cfg_value v = { .size = sizeof v };
  if (host->cfg_get (p, key, &v) == 0 && v.type == BERTH_CFG_STRING && v.s && *v.s)
    return v.s;
  return fallback;
}

static int64_t
cfg_int (const struct berth_host *host, berth_plugin *p, const char *key, int64_t fallback)
{
  struct berth_cfg_value v = { .size = sizeof v };
  if (host->cfg_get (p, key, &v) == 0 && v.type == BERTH_CFG_INT)
    return v.i;
  return fallback;
}

static int
nsrt_plugin_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self, berth_error *err)
{
  const char *binary = cfg_string (host, ictx->plugin, "binary", BERTH_RUNTIME_BINARY);
  const char *shim = cfg_string (host, ictx->plugin, "shim_binary", BERTH_SHIM_BINARY);
  if (binary[0] != '/')
    return host->error_set (err, BERTH_E_INVALID, 0, "binary `%s` is not an absolute path", binary);
  if (shim[0] != '/')
    return host->error_set (err, BERTH_E_INVALID, 0, "shim_binary `%s` is not an absolute path", shim);
  if (access (binary, X_OK) < 0)
    return host->error_set (err, BERTH_E_SKIP, errno, "berth-runtime is not installed at %s (set `binary`)", binary);
  if (access (shim, X_OK) < 0)
    return host->error_set (err, BERTH_E_SKIP, errno, "berth-shim is not installed at %s (set `shim_binary`)", shim);
  int64_t max_size = cfg_int (host, ictx->plugin, "log_max_size", 10 << 20);
  int64_t max_files = cfg_int (host, ictx->plugin, "log_max_files", 3);
  int64_t timeout = cfg_int (host, ictx->plugin, "call_timeout_ms", 10000);
  struct berth_shimrt_config c = {
    .size = sizeof c,
    .plugin = ictx->plugin,
    .plugin_name = NSRT_PLUGIN_NAME,
    .runtime_binary = binary,
    .runtime_args = NULL,
    .shim_binary = shim,
    .state_dir = ictx->state,
    .log_max_size = max_size > 0 ? (uint64_t)max_size : 0,
    .log_max_files = max_files > 0 ? (uint32_t)max_files : 0,
    .call_timeout_ms = timeout > 0 ? (uint32_t)timeout : 0,
  };
  void *rt = berth_shimrt_new (&c, host, err);
  if (rt == NULL)
    return BERTH_E_INTERNAL;
  *ret_self = rt;
  host->set_export (ictx->plugin, "binary", binary);
  return 0;
}

static const struct berth_config_key k_binary
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "binary", "\"" BERTH_RUNTIME_BINARY "\"",
                     "berth-runtime, the runc-compatible binary this runtime drives");
static const struct berth_config_key k_shim
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "shim_binary", "\"" BERTH_SHIM_BINARY "\"", "berth-shim, started once per task");
static const struct berth_config_key k_log_size = BERTH_CFG_KEY_RANGE (
    "log_max_size", "10485760", "bytes of container.log before it rotates (0: never)", 0, INT64_MAX);
static const struct berth_config_key k_log_files
    = BERTH_CFG_KEY_RANGE ("log_max_files", "3", "rotated container logs kept (container.log.1 ... .N)", 0, 1000);
static const struct berth_config_key k_timeout = BERTH_CFG_KEY_RANGE (
    "call_timeout_ms", "10000",
    "deadline of one call to a shim (not Wait); a stuck shim answers UNKNOWN / deadline exceeded", 100, 3600000);
static const struct berth_config_key *const nsrt_keys[]
    = { &k_binary, &k_shim, &k_log_size, &k_log_files, &k_timeout, NULL };

static const struct berth_plugin_desc nsrt_desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_RUNTIME,
  .type = "io.berth.runtime.v1",
  .id = "namespaces",
  .version = "0.1.0",
  .requires = NULL,
  .config_keys = nsrt_keys,
  .init = nsrt_plugin_init,
  .fini = berth_shimrt_free,
  .ops = &berth_shimrt_ops,
  .description = "berth's own OCI runtime (berth-runtime: namespaces, cgroups v1/v2/hybrid, seccomp) under berth-shim",
};

static const struct berth_plugin_desc *const nsrt_plugins[] = { &nsrt_desc, NULL };

/* Built into berthd (core/builtins.c), like plugins/snapshotters/native. */
const struct berth_plugin_desc *const *
berth_runtime_namespaces_entry (void)
{
  return nsrt_plugins;
}
