/* libberth-shimrt internals (sdk/shim/): the task table, the shim protocol
 * client and the process helpers.  Not installed.
 *
 * Threads: the ops run on berthd's worker threads, several at once; the
 * monitor thread (monitor.c) holds one `subscribe` connection per shim.
 * The task list and every task's mutable fields are guarded by
 * shimrt->lock; a task is reference-counted so that a call in flight keeps
 * it alive while another thread deletes it.  Shim calls never hold the lock.
 */
#ifndef BERTH_SHIMRT_PRIVATE_H
#define BERTH_SHIMRT_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <berth/shimrt.h>

static inline void
shimrt_freep (void *p)
{
  free (*(void **)p);
}
static inline void
shimrt_closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
#define _cleanup_free_ __attribute__ ((cleanup (shimrt_freep)))
#define _cleanup_close_ __attribute__ ((cleanup (shimrt_closep)))

struct shimrt_task
{
  struct shimrt_task *next;
  struct shimrt *owner;
  int refs;
  uint64_t serial; /* epoll key of the subscription */
  char *ns, *id;
  char *dir;      /* <state_dir>/<ns>/<id> */
  char *binary;   /* the runtime binary of this task */
  char **args;    /* its global args, NULL-terminated */
  uint32_t flags; /* BERTH_SHIMRT_* */
  int sub_fd;     /* subscribe connection, -1 when none */
  int32_t pid;    /* init pid */
  bool deleting;  /* a delete of init is in flight: a hang-up is expected */
  bool gone;      /* the shim is gone; exit recorded, state removed */
  bool init_exited;
  uint32_t exit_status;
  int64_t exited_at;
};

struct shimrt
{
  const struct berth_host *host;
  berth_plugin *plugin;
  char *name;
  char *binary;
  char **args;
  char *shim;
  char *state_dir;
  uint64_t log_max_size;
  uint32_t log_max_files;
  uint32_t timeout_ms;

  pthread_mutex_t lock;
  pthread_cond_t cond; /* broadcast when a task's init exits or its shim goes */
  struct shimrt_task *tasks;
  uint64_t next_serial;

  int epfd;
  int wakefd; /* eventfd: stop the monitor */
  bool monitor_started;
  pthread_t monitor;
};

/* A reply (or event) of the shim: NUL-separated fields. */
struct shim_msg
{
  char *buf;
  size_t n;
  const char *f[16];
};

/* ---- shimrt.c ---------------------------------------------------------- */
void shimrt_task_unref (struct shimrt *s, struct shimrt_task *t);
/* Mark t's shim as gone: record the exit (from <dir>/exit, else 255),
 * publish it unless init's exit was already seen, clean up the runtime's
 * state and t->dir.  Called without the lock. */
void shimrt_task_vanished (struct shimrt *s, struct shimrt_task *t);
int64_t shimrt_now_ns (void);

/* ---- protocol.c -------------------------------------------------------- */
/* Connect to <dir>/shim.sock (through /proc/self/fd when the path is too
 * long for sun_path).  The socket is non-blocking: -EAGAIN when the shim's
 * listen backlog is full (it does not accept), and shim_send gives -EAGAIN
 * when its receive queue is.  -errno on failure. */
int shim_connect (const char *dir);
/* Send fields[0..n) as one message. -errno on failure. */
int shim_send (int fd, const char *const *fields, size_t n);
/* Receive one message within deadline (CLOCK_MONOTONIC ms, 0: none; the
 * ctx is polled for cancellation when not NULL).  0, or -ETIMEDOUT,
 * -ECANCELED, -ECONNRESET (hang-up), -errno. */
int shim_recv (struct shimrt *s, berth_ctx *ctx, int fd, int64_t deadline, struct shim_msg *ret);
void shim_msg_clear (struct shim_msg *m);
/* A shim error name ("NOTFOUND", "not found", "BERTH_E_NOTFOUND", ...) as a code. */
int shim_errcode (const char *name);
int64_t shimrt_monotonic_ms (void);

/* ---- proc.c ------------------------------------------------------------ */
/* Run argv with stdin/stdout /dev/null and stderr captured (at most 4 KiB
 * into ret_stderr when not NULL), within timeout_ms (then SIGKILL).  Returns
 * the exit status, or -errno. */
int shimrt_run (char *const *argv, uint32_t flags, uint32_t timeout_ms, char *ret_stderr, size_t len);
/* Enter a private mount namespace without /sys/fs/cgroup/unified (in a
 * child after fork: async-signal-safe).  0 or -errno. */
int shimrt_hide_cgroup2 (void);
/* rm -rf, not crossing mount points. */
int shimrt_remove_tree (const char *path);

/* ---- monitor.c --------------------------------------------------------- */
int shimrt_monitor_start (struct shimrt *s, berth_error *err);
void shimrt_monitor_stop (struct shimrt *s);
/* Subscribe to t's events and watch the connection.  -errno when the shim
 * cannot be reached. */
int shimrt_monitor_watch (struct shimrt *s, struct shimrt_task *t);
/* Stop watching t (before its delete or removal). */
void shimrt_monitor_unwatch (struct shimrt *s, struct shimrt_task *t);

#endif
