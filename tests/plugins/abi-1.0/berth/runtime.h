/* FROZEN COPY at ABI 1.0 (see plugin.h in this directory): never edit. */
/* berth plugin SDK: runtime plugins (kind BERTH_KIND_RUNTIME,
 * type "io.berth.runtime.v1").
 *
 * Mirrors containerd's runtime v2 task manager.  Tasks are named by
 * (namespace from ctx, container id); processes inside a task by exec_id
 * ("" or NULL for the init process).  Every method may block on the shim and
 * is called from a worker thread with a deadline; `wait` blocks until exit.
 * Exits are also published as events: host->publish (p, ns, "/tasks/exit",
 * {"container_id", id, "id", exec_id, "pid", "...", "exit_status", "...",
 * "exited_at", "<ns since epoch>", NULL}).
 */
#ifndef BERTH_RUNTIME_H
#define BERTH_RUNTIME_H

#include <berth/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same numbers as containerd's task.Status. */
enum berth_task_status
{
  BERTH_TASK_UNKNOWN = 0,
  BERTH_TASK_CREATED = 1,
  BERTH_TASK_RUNNING = 2,
  BERTH_TASK_STOPPED = 3,
  BERTH_TASK_PAUSED = 4,
  BERTH_TASK_PAUSING = 5,
};

struct berth_task_io
{
  uint32_t size;
  const char *stdin_path;  /* FIFO paths as ctr passes them, or NULL */
  const char *stdout_path;
  const char *stderr_path;
  int terminal;
};

struct berth_task_create
{
  uint32_t size;
  const char *id;
  const char *bundle;      /* directory holding config.json (OCI runtime spec) */
  const char *spec_json;   /* the same spec, already read, or NULL */
  const berth_mounts *rootfs; /* mounts to set up as <bundle>/rootfs, or NULL */
  struct berth_task_io io;
  const char *options_json; /* runtime-specific options, or NULL */
  const char *checkpoint;   /* reserved */
};

struct berth_process_state
{
  uint32_t size;
  uint32_t status; /* enum berth_task_status */
  int32_t pid;
  uint32_t exit_status;
  int64_t exited_at; /* ns since the epoch, 0 while running */
  int terminal;
  char stdin_path[BERTH_NAME_MAX];
  char stdout_path[BERTH_NAME_MAX];
  char stderr_path[BERTH_NAME_MAX];
};

struct berth_task_exit
{
  uint32_t size;
  int32_t pid;
  uint32_t exit_status;
  int64_t exited_at;
};

typedef int (*berth_pid_fn) (int32_t pid, const char *exec_id, void *data);
/* For recovery after a daemon restart: one call per task the runtime still knows. */
typedef int (*berth_task_fn) (const char *ns, const char *id, const struct berth_process_state *st, void *data);

struct berth_runtime_ops
{
  uint32_t size;

  int (*create) (void *self, berth_ctx *ctx, const struct berth_task_create *req,
                 struct berth_process_state *ret_state, berth_error *err);
  int (*start) (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int32_t *ret_pid,
                berth_error *err);
  int (*state) (void *self, berth_ctx *ctx, const char *id, const char *exec_id,
                struct berth_process_state *ret_state, berth_error *err);
  int (*kill) (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int signal, int all,
               berth_error *err);
  int (*pids) (void *self, berth_ctx *ctx, const char *id, berth_pid_fn fn, void *data, berth_error *err);
  /* spec_json is an OCI runtime-spec Process. */
  int (*exec) (void *self, berth_ctx *ctx, const char *id, const char *exec_id, const char *spec_json,
               const struct berth_task_io *io, berth_error *err);
  int (*pause) (void *self, berth_ctx *ctx, const char *id, berth_error *err);
  int (*resume) (void *self, berth_ctx *ctx, const char *id, berth_error *err);
  int (*wait) (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
               berth_error *err);
  int (*resize_pty) (void *self, berth_ctx *ctx, const char *id, const char *exec_id, uint32_t width,
                     uint32_t height, berth_error *err);
  int (*close_io) (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int close_stdin,
                   berth_error *err);
  /* resources_json is an OCI runtime-spec LinuxResources. */
  int (*update) (void *self, berth_ctx *ctx, const char *id, const char *resources_json, berth_error *err);
  /* Writes a JSON object (cgroup statistics) into ret_json. */
  int (*stats) (void *self, berth_ctx *ctx, const char *id, berth_buf *ret_json, berth_error *err);
  int (*delete) (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
                 berth_error *err);
  int (*list) (void *self, berth_ctx *ctx, berth_task_fn fn, void *data, berth_error *err);
};

#ifdef __cplusplus
}
#endif
#endif
