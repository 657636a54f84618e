/* berth-runtime: berth's own runc-compatible OCI runtime.
 *
 * One short-lived process per command, as runc: `create` clones the
 * container's init, which sets the container up and blocks on
 * <root>/<id>/exec.fifo until `start` opens it; every later command finds
 * the container through <root>/<id>/state.json.  No globals beyond the
 * command line (struct nsrt_opts) and the log sink.
 *
 * Files: nsrt-main.c (CLI, verbs), nsrt-state.c (state file, status, hooks),
 * nsrt-init.c (clone, namespaces, the init and exec processes),
 * nsrt-mount.c (rootfs, mounts, devices, pivot_root).  The security and
 * resource half (cgroups, seccomp, caps, rlimits) is nsrt-sec.h. */
#ifndef BERTH_NSRT_H
#define BERTH_NSRT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>

#include "nsrt-sec.h"

#define NSRT_DEFAULT_ROOT "/run/berth-runtime"
#define NSRT_OCI_VERSION "1.0.2"

/* Exit codes of create/run/exec when the process cannot be executed
 * (the shell's and Docker's convention). */
#define NSRT_EXIT_NOTFOUND 127
#define NSRT_EXIT_NOEXEC 126

struct nsrt_opts
{
  const char *root;
  const char *log_path;
  bool log_json;
  bool debug;
  bool systemd_cgroup;
};

/* What a command knows about one container: the state file, parsed. */
struct nsrt_state
{
  char *id;
  char *dir;              /* <root>/<id> */
  char *bundle;
  pid_t pid;
  unsigned long long start_time; /* /proc/<pid>/stat field 22, for pid reuse */
  bool paused;
  char *created;          /* RFC 3339 */
  json_object *config;    /* the config.json the container was created from */
  struct nsrt_cgroup *cg; /* NULL when the cgroup could not be loaded */
};

/* ---- nsrt-state.c ---- */
void nsrt_log (const struct nsrt_opts *o, const char *level, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
int nsrt_validate_id (const char *id, struct nsrt_err *err);
char *nsrt_state_dir (const struct nsrt_opts *o, const char *id);
int nsrt_state_load (const struct nsrt_opts *o, const char *id, struct nsrt_state **ret, struct nsrt_err *err);
int nsrt_state_save (const struct nsrt_state *st, struct nsrt_err *err);
void nsrt_state_free (struct nsrt_state *st);
/* "creating" is never stored: created|running|stopped|paused from the
 * process, the exec FIFO and the pause flag. */
const char *nsrt_state_status (const struct nsrt_state *st);
json_object *nsrt_state_json (const struct nsrt_state *st, const char *status);
bool nsrt_pid_alive (pid_t pid, unsigned long long start_time);
unsigned long long nsrt_pid_start_time (pid_t pid);
int nsrt_write_file_atomic (const char *path, const char *data, size_t len, struct nsrt_err *err);
int nsrt_write_pid_file (const char *path, pid_t pid, struct nsrt_err *err);
/* Run hooks[name] from config.hooks with the state JSON on stdin. */
int nsrt_hooks_run (json_object *config, const char *name, const char *state_json, struct nsrt_err *err);
int nsrt_rm_rf (const char *path);
/* Parse a JSON document, errors with the offset ("what: invalid JSON at offset N: ..."). */
json_object *nsrt_json_read_fd (int fd, const char *what, struct nsrt_err *err);
json_object *nsrt_json_read_file (const char *path, struct nsrt_err *err);

/* ---- nsrt-init.c ---- */
struct nsrt_create_args
{
  const char *id;
  const char *bundle;
  const char *pid_file;
  const char *console_socket;
  bool no_pivot;
  bool detach;        /* run only */
  bool keep;          /* run only: no delete after exit */
  bool start;         /* run: start right after create */
};
/* Every check of config.json that create makes before it touches the
 * system (process, root.path, namespaces, id mappings, terminal, mounts):
 * pure, opens nothing; 0 or -1 with "what: why" in *err.  create runs it
 * first; tests/fuzz/fuzz-nsrt-spec drives it with hostile input. */
int nsrt_spec_check (json_object *config, struct nsrt_err *err);
/* create (and start for run).  Returns the exit code for main. */
int nsrt_create (const struct nsrt_opts *o, const struct nsrt_create_args *a);

struct nsrt_exec_args
{
  const char *id;
  json_object *process;   /* the full process object (owned by the caller) */
  const char *pid_file;
  const char *console_socket;
  bool detach;
};
int nsrt_exec (const struct nsrt_opts *o, const struct nsrt_exec_args *a);
/* the start verb, also used by run: open the FIFO, release the init. */
int nsrt_start (const struct nsrt_opts *o, struct nsrt_state *st, struct nsrt_err *err);
/* kill the init and wait until it is gone (delete --force, run). */
void nsrt_kill_wait (struct nsrt_state *st, int sig, int timeout_ms);
int nsrt_destroy (const struct nsrt_opts *o, struct nsrt_state *st, struct nsrt_err *err);

/* ---- nsrt-mount.c (in the init, in its new mount namespace) ---- */
struct nsrt_mount_ctx
{
  json_object *config;
  const char *rootfs;     /* absolute host path */
  bool userns;            /* devices are bind-mounted, sysfs may fall back to a bind */
  bool no_pivot;
  bool new_mntns;
  bool cgroupns;          /* a new cgroup namespace: cgroup mounts show its root */
  const char *cgroup_lines; /* /proc/self/cgroup text before the cgroup namespace */
};
/* The mount list and linux.rootfsPropagation, checked without a system call. */
int nsrt_mounts_check (json_object *config, struct nsrt_err *err);
/* Everything up to and including pivot_root: propagation, mounts,
 * devices, /dev symlinks.  After it the cwd is the new "/". */
int nsrt_rootfs_prepare (const struct nsrt_mount_ctx *m, struct nsrt_err *err);
/* After pivot_root: masked and readonly paths, sysctl, root.readonly. */
int nsrt_rootfs_finish (const struct nsrt_mount_ctx *m, struct nsrt_err *err);

#endif
