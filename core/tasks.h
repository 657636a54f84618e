/* The task manager behind containerd.services.tasks.v1.Tasks: which runtime
 * plugin runs each task, the bundle the core prepares for it
 * (<state>/bundles/<ns>/<id>/ with config.json and the rootfs mounted at
 * rootfs/), and recovery of running tasks after a restart.
 *
 * Every call below blocks (plugin calls, mounts, SQLite): worker threads
 * only.  The table of tasks is under one mutex; a task being created or
 * deleted is reserved so that two calls never race on the same id.
 *
 * Runtime selection (container.runtime.name):
 *   io.berth.runtime.v1.<id>                  that plugin
 *   io.containerd.runc.v2, io.containerd.runc.v1, io.containerd.runtime.v1.linux
 *                                             [runtime] default, else io.berth.runtime.v1.oci
 * The oci plugin's named runtime ("runc", "crun", ...) comes from the
 * container label io.berth.runtime.oci; runc's Options (containerd.runc.v1.Options,
 * from the container's runtime options or the task options) give binary_name
 * and systemd_cgroup.
 */
#ifndef BERTH_CORE_TASKS_H
#define BERTH_CORE_TASKS_H

#include <berth/runtime.h>

#include "daemon.h"

typedef struct tasks tasks;

#define TASKS_LABEL_LOG_PATH "io.berth.log.path"
#define TASKS_LABEL_OCI_RUNTIME "io.berth.runtime.oci"

int tasks_new (struct daemon *d, tasks **ret, berth_error **err);
void tasks_free (tasks *t);

/* At start, before serving: reconnect to the tasks every runtime plugin
 * still knows; delete those whose container record is gone, and remove
 * bundles that belong to no task.  Problems are logged, not fatal.  Then
 * starts the refresher: a thread that probes every task's shim (in
 * parallel, each with the state deadline) every 10 s, and on a listing
 * when the last round ended 2 s ago or more. */
void tasks_recover (tasks *t);

/* host->publish of a plugin: /tasks/exit, /tasks/oom, ... (any thread). */
void tasks_plugin_event (tasks *t, const char *ns, const char *topic, const char *const *fields);

struct task_create
{
  const char *ns;
  const char *container_id;
  const berth_mounts *rootfs; /* may be empty: the container's snapshot is used */
  struct berth_task_io io;
  const char *options_type; /* the request's options Any, may be NULL */
  const uint8_t *options;
  size_t options_len;
};

int tasks_create (tasks *t, const struct task_create *req, char **ret_bundle, struct berth_process_state *ret_state,
                  berth_error **err);
int tasks_start (tasks *t, const char *ns, const char *id, const char *exec_id, int32_t *ret_pid, berth_error **err);
/* exec_id NULL or "": the task (rootfs unmounted, bundle removed). */
int tasks_delete (tasks *t, const char *ns, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
                  berth_error **err);
/* The init process (exec_id NULL or "") is answered from the core's cache
 * without calling the shim; a task whose shim missed its last deadline is
 * UNKNOWN (tasks_health says since when).  An exec process is asked of the
 * runtime, within the state deadline. */
int tasks_state (tasks *t, const char *ns, const char *id, const char *exec_id, struct berth_process_state *ret,
                 berth_error **err);
typedef int (*tasks_list_fn) (const char *id, const struct berth_process_state *st, void *data);
/* From the cache, like tasks_state: never waits for a shim. */
int tasks_list (tasks *t, const char *ns, tasks_list_fn fn, void *data, berth_error **err);
/* The same ids without asking the runtimes (the state given is UNKNOWN). */
int tasks_list_ids (tasks *t, const char *ns, tasks_list_fn fn, void *data, berth_error **err);

/* Whether a task's shim answers. */
struct task_health
{
  bool answering;         /* false: it missed its last deadline */
  int64_t last_answer_ns; /* CLOCK_REALTIME of its last answer (call, probe or event) */
  int64_t silent_ms;      /* when not answering: for how long */
  char why[256];          /* when not answering: the runtime's error */
};
/* BERTH_E_NOTFOUND when (ns, id) has no task.  Never blocks on a shim. */
int tasks_health (tasks *t, const char *ns, const char *id, struct task_health *ret, berth_error **err);

/* Stop the background refresh (before the runtime plugins go away). */
void tasks_shutdown (tasks *t);

/* The calls below reach the task's shim and wait at most the runtime's call
 * deadline.  While the shim is known not to answer, only one call at a time
 * may wait for it; the others fail at once (BERTH_E_UNAVAILABLE). */
int tasks_kill (tasks *t, const char *ns, const char *id, const char *exec_id, int sig, bool all, berth_error **err);
int tasks_exec (tasks *t, const char *ns, const char *id, const char *exec_id, const char *process_json,
                const struct berth_task_io *io, berth_error **err);
int tasks_resize (tasks *t, const char *ns, const char *id, const char *exec_id, uint32_t w, uint32_t h,
                  berth_error **err);
int tasks_close_io (tasks *t, const char *ns, const char *id, const char *exec_id, berth_error **err);
int tasks_pause (tasks *t, const char *ns, const char *id, bool pause, berth_error **err);
int tasks_pids (tasks *t, const char *ns, const char *id, berth_pid_fn fn, void *data, berth_error **err);
int tasks_update (tasks *t, const char *ns, const char *id, const char *resources_json, berth_error **err);
/* The runtime's `events --stats` JSON; refused at once (UNAVAILABLE) while
 * the task's shim is known not to answer. */
int tasks_stats (tasks *t, const char *ns, const char *id, berth_buf *ret_json, berth_error **err);
/* Blocks until the process exits (or ctx is cancelled). */
int tasks_wait (tasks *t, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
                berth_error **err);
/* Whether (ns, id) has a task: Containers.Delete refuses while it does. */
bool tasks_exists (tasks *t, const char *ns, const char *id);

#endif
