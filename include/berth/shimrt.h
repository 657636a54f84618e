/* berth plugin SDK: a runtime built on berth-shim (libberth-shimrt).
 *
 * Both of berth's runtime plugins (namespaces and oci) are this library
 * configured with a different runc-compatible binary: berth-runtime for
 * io.berth.runtime.v1.namespaces, runc or crun for io.berth.runtime.v1.oci.
 * A third-party runtime plugin that drives some other runc-compatible
 * binary links it too (pkg-config berth-shimrt).
 *
 * The library implements every method of struct berth_runtime_ops by
 * starting one berth-shim per task and talking to it over the shim's unix
 * socket (docs/design-notes.md, "berth-shim protocol").  It owns a monitor
 * thread that holds one event connection per shim and publishes
 * /tasks/exit (and /tasks/oom when the shim reports one) through
 * host->publish; a shim that disappears is reported as an exit with
 * status 255 and cleaned up (runtime delete --force, state removed).
 */
#ifndef BERTH_SHIMRT_H
#define BERTH_SHIMRT_H

#include <berth/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

struct berth_shimrt_config
{
  uint32_t size;
  berth_plugin *plugin;         /* the plugin's handle (init ctx), for host->log and host->publish */
  const char *plugin_name;      /* for logs and errors, e.g. "io.berth.runtime.v1.oci" */
  const char *runtime_binary;   /* absolute path of a runc-compatible binary */
  const char *const *runtime_args; /* global args placed before the verb (NULL-terminated), or NULL */
  const char *shim_binary;      /* absolute path of berth-shim */
  const char *state_dir;        /* per-task state: <state_dir>/<ns>/<id>/ (the plugin's host state dir) */
  uint64_t log_max_size;        /* bytes before the container log rotates; 0 = no rotation */
  uint32_t log_max_files;       /* rotated files kept (container.log.1 ... .N) */
  uint32_t call_timeout_ms;     /* deadline of one shim call (not wait); 0 = 10000 */
};

/* Creates the runtime instance (starts the monitor thread, reconnects to
 * every shim found under state_dir).  The host pointer is kept. */
BERTH_PUBLIC void *berth_shimrt_new (const struct berth_shimrt_config *cfg, const struct berth_host *host, berth_error *err);
BERTH_PUBLIC void berth_shimrt_free (void *self);

/* The ops table; self is what berth_shimrt_new returned. */
BERTH_PUBLIC extern const struct berth_runtime_ops berth_shimrt_ops;

/* Flags of struct berth_shimrt_runtime. */
enum
{
  /* Run the shim (and so the runtime binary) in a private mount namespace
   * where /sys/fs/cgroup/unified is unmounted, so that the runtime sees a
   * cgroup v1 host: crun 1.8 refuses hybrid hosts whose cgroup v2 hierarchy
   * has controllers ("cgroups in hybrid mode not supported"). */
  BERTH_SHIMRT_HIDE_CGROUP2 = 1u << 0,
};

/* The runc-compatible binary of one task, when a plugin offers several
 * (io.berth.runtime.v1.oci's named runtimes). */
struct berth_shimrt_runtime
{
  uint32_t size;
  const char *binary;              /* absolute path; NULL: cfg->runtime_binary */
  const char *const *args;         /* global args (NULL-terminated), replacing cfg->runtime_args, or NULL */
  uint32_t flags;                  /* BERTH_SHIMRT_* */
};

/* berth_shimrt_ops.create with another binary for this task.  The choice is
 * recorded in the task's state (meta), so every later call, the cleanup of a
 * vanished shim and the reconnect after a restart use it too. */
BERTH_PUBLIC int berth_shimrt_create_with (void *self, berth_ctx *ctx, const struct berth_task_create *req,
                              const struct berth_shimrt_runtime *rt, struct berth_process_state *ret_state,
                              berth_error *err);

#ifdef __cplusplus
}
#endif
#endif
