/* berth-shim: one per container (issue 6, docs/design-notes.md "berth-shim
 * protocol").  Single-threaded: one epoll loop owns every fd; the runtime
 * binary is run synchronously (bounded by a deadline) from that loop.
 *
 * Ownership: struct shim owns the procs and the connections; a proc owns
 * its pipes, its pty master, its FIFOs and its line buffers.  Nothing here
 * is thread-safe (there are no threads). */
#ifndef BERTH_SHIM_H
#define BERTH_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* CRI splits a line longer than this into partial ("P") records. */
#define SHIM_CRI_LINE_MAX 16384
/* Largest request the shim reads; anything bigger is refused. */
#define SHIM_REQ_MAX 65536
#define SHIM_MAX_FIELDS 16
#define SHIM_MAX_CONNS 64
#define SHIM_EXEC_ID_MAX 76

enum proc_status
{
  PROC_CREATED,
  PROC_RUNNING,
  PROC_PAUSED,
  PROC_STOPPED,
};

/* What an epoll event points at. */
enum watch_kind
{
  W_LISTEN,
  W_SIGNAL,
  W_CONN,
  W_STDIN_FIFO,
  W_STDIN_SINK,
  W_OUTPUT,
  W_OOM,
};

struct watch
{
  enum watch_kind kind;
  void *obj;
};

/* The container log: CRI lines, rotated by size into path.1 ... path.N. */
struct cri_log
{
  int fd;
  const char *path;
  uint64_t size;
  uint64_t max_size;  /* 0: never rotate */
  unsigned max_files; /* rotated files kept */
};

/* One output stream of a process (stdout, stderr, or the pty master). */
struct output
{
  struct watch w;
  struct proc *proc;
  const char *name;  /* "stdout" | "stderr", the CRI stream name */
  int fd;            /* read side, -1 once at EOF */
  int fifo;          /* client FIFO opened read-write, or -1 */
  char *line;        /* CRI line being assembled (only when logging) */
  size_t len;
};

struct proc
{
  char id[SHIM_EXEC_ID_MAX + 1]; /* "" for the init process */
  pid_t pid;
  enum proc_status status;
  int exit_status;
  int64_t exited_at;
  bool exit_delivered; /* sent to at least one subscriber */
  bool terminal;
  bool logged;         /* output also goes to the container log */
  char *stdin_path, *stdout_path, *stderr_path;
  char *process_json;  /* exec processes only */

  struct watch in_fifo_w, in_sink_w;
  int in_fifo;   /* client stdin FIFO (read-write), or -1 */
  int in_sink;   /* container stdin: pipe write end or a dup of the pty master */
  bool in_closing;
  char *in_buf;
  size_t in_len;

  struct output out, err;
  int pty;       /* pty master (terminal), or -1; out.fd reads it */
};

struct conn
{
  struct watch w;
  int fd;
  bool subscriber;
  struct proc *waiting; /* a delayed `wait` reply */
};

/* OOM kills of the container's memory cgroup (oom.c). */
struct oom_watch
{
  struct watch w;
  int fd;             /* eventfd (v1) or inotify (v2), -1 when not watching */
  bool v2;
  long long kills;    /* oom_kill counter last seen */
  long long last_ms;  /* last report (v1), CLOCK_MONOTONIC */
  char counter[4200]; /* the file holding the counter */
};

/* The result of one run of the runtime binary. */
struct rt_result
{
  int status;      /* exit status; 128+sig when killed; -1 when it could not run */
  char *out;       /* captured stdout (malloc'd, NUL-terminated), or NULL */
  size_t out_len;
  char msg[2048];  /* the runtime's reason when status != 0 */
};

/* Options of one run of the runtime binary.  fd_* < 0: /dev/null for
 * stdin, a capture pipe for stdout and stderr. */
struct rt_opts
{
  int fd_in, fd_out, fd_err;
  int console_listen;  /* listening console socket, or -1 */
  int *ret_console;    /* receives the pty master (or -1) */
  int timeout_ms;      /* 0: 30 s */
};

struct shim
{
  const char *ns, *id, *bundle, *dir, *runtime;
  const char **rt_args;
  size_t n_rt_args;
  char rt_root[4096], rt_log[4096];
  const char *stdin_path, *stdout_path, *stderr_path;
  bool terminal;
  struct cri_log log;
  bool has_log;
  int ready_fd;

  int epfd;
  struct watch listen_w, signal_w;
  int lfd, sfd;
  char sock_path[4096];
  char console_dir[64]; /* short directory for console.sock when the task dir is too long, or "" */
  char console_path[4096];

  struct oom_watch oom;
  struct proc **procs;
  size_t nprocs;
  struct conn *conns[SHIM_MAX_CONNS];
};

/* oom.c: watch the cgroup of pid; fired: 1 an OOM kill, 0 nothing, -1 the cgroup is gone. */
int oom_watch_open (struct oom_watch *w, pid_t pid);
int oom_watch_fired (struct oom_watch *w);
/* 1 when the OOM killer killed in the cgroup since the last report (and
 * counts it as reported), without waiting for the notification. */
int oom_watch_killed (struct oom_watch *w);

/* runtime.c */
int rt_run (struct shim *s, const char *const *verb, const struct rt_opts *o, struct rt_result *res);
void rt_result_clear (struct rt_result *res);

/* log.c */
int cri_log_open (struct cri_log *l);
void cri_log_close (struct cri_log *l);
/* Write one record; rotates first when the record would pass max_size. */
int cri_log_write (struct cri_log *l, int64_t ts_ns, const char *stream, bool partial, const char *text, size_t len);
/* Feed output bytes of a stream: whole lines become "F" records, lines of
 * SHIM_CRI_LINE_MAX bytes without a newline "P" records; the rest waits in
 * line/len (a buffer of SHIM_CRI_LINE_MAX bytes).  eof flushes it. */
void cri_log_feed (struct cri_log *l, const char *stream, char *line, size_t *len, const char *data, size_t n,
                   bool eof);
size_t format_rfc3339nano (char *buf, size_t len, int64_t ts_ns);

/* runtime-msg.c: the runtime's reason out of its --log (JSON lines) or stderr. */
bool runtime_msg_from_json_log (const char *log, size_t len, char *ret, size_t retlen);
bool runtime_msg_from_stderr (const char *text, size_t len, char *ret, size_t retlen);

int64_t now_realtime_ns (void);

#endif
