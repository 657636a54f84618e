/* berth-shim: the per-container process between berthd and the container.
 *
 *   berth-shim --namespace NS --id ID --bundle B --task-dir D --runtime BIN
 *              [--runtime-arg X]... [--stdin P] [--stdout P] [--stderr P]
 *              [--terminal] [--log PATH --log-max-size N --log-max-files N]
 *              [--ready-fd N]
 *
 * Start-up (the contract in docs/design-notes.md, "berth-shim protocol"):
 * validate the flags, double-fork away from the caller (setsid, cwd /,
 * stdio to /dev/null, our own log on stderr = D/shim.log), become the
 * child subreaper, write D/shim.pid, bind D/shim.sock (0600), run
 * `BIN create`, and write "ok <pid>\n" or "err <reason>\n" on the ready fd.
 * Then serve the socket until `delete` of the init process.
 *
 * Like containerd's runc shim it keeps every output FIFO open read-write,
 * so that a client which goes away never causes EPIPE in the shim, and it
 * drops what a full FIFO cannot take rather than block the container. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define STDIN_BUF 32768
#define MAX_EXECS 1024

static struct shim S = { .lfd = -1, .sfd = -1, .epfd = -1, .ready_fd = -1, .log = { .fd = -1 }, .oom = { .fd = -1 } };
static char iobuf[65536];
static char reqbuf[SHIM_REQ_MAX + 1];
static char replybuf[SHIM_REQ_MAX];
/* Objects closed during one epoll batch, freed after it (later events of
 * the batch may still point at them). */
static struct conn *dead_conns[SHIM_MAX_CONNS];
static size_t n_dead_conns;
static struct proc *dead_procs[32]; /* at most one delete per event of a batch */
static size_t n_dead_procs;

static void shim_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
shim_log (const char *fmt, ...)
{
  char ts[64];
  format_rfc3339nano (ts, sizeof ts, now_realtime_ns ());
  char msg[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  dprintf (2, "%s berth-shim[%d] %s/%s: %s\n", ts, (int) getpid (), S.ns ? S.ns : "", S.id ? S.id : "", msg);
}

/* ---- small helpers ------------------------------------------------------ */

static bool
parse_u64 (const char *v, uint64_t max, uint64_t *ret)
{
  if (v == NULL || *v < '0' || *v > '9')
    return false;
  uint64_t n = 0;
  for (const char *p = v; *p; p++)
    {
      if (*p < '0' || *p > '9')
        return false;
      unsigned d = (unsigned) (*p - '0');
      if (n > (max - d) / 10)
        return false;
      n = n * 10 + d;
    }
  *ret = n;
  return true;
}

/* containerd's identifier rule (pkg/identifiers): alphanumerics separated
 * by '.', '_' or '-', at most 76 characters. */
static bool
valid_id (const char *id)
{
  size_t n = strlen (id);
  if (n == 0 || n > SHIM_EXEC_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    {
      char c = id[i];
      bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (!alnum && !((c == '.' || c == '_' || c == '-') && i > 0 && i + 1 < n))
        return false;
    }
  return true;
}

static void
ep_add (int fd, uint32_t events, struct watch *w)
{
  struct epoll_event ev = { .events = events, .data.ptr = w };
  if (epoll_ctl (S.epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    shim_log ("epoll_ctl add fd %d: %s", fd, strerror (errno));
}

static void
ep_mod (int fd, uint32_t events, struct watch *w)
{
  struct epoll_event ev = { .events = events, .data.ptr = w };
  epoll_ctl (S.epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void
ep_close (int *fd)
{
  if (*fd < 0)
    return;
  epoll_ctl (S.epfd, EPOLL_CTL_DEL, *fd, NULL);
  close (*fd);
  *fd = -1;
}

static int
write_file_atomic (const char *name, const char *text)
{
  char path[PATH_MAX], tmp[PATH_MAX];
  snprintf (path, sizeof path, "%s/%s", S.dir, name);
  snprintf (tmp, sizeof tmp, "%s/.%s.tmp", S.dir, name);
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return -errno;
  size_t len = strlen (text);
  bool ok = write (fd, text, len) == (ssize_t) len && fsync (fd) == 0;
  int e = errno;
  close (fd);
  if (!ok || rename (tmp, path) < 0)
    {
      e = ok ? errno : e;
      unlink (tmp);
      return -e;
    }
  return 0;
}

static bool
read_pid_file (const char *path, pid_t *ret)
{
  char buf[32];
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return false;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    buf[--n] = '\0';
  uint64_t v;
  if (!parse_u64 (buf, INT32_MAX, &v) || v == 0)
    return false;
  *ret = (pid_t) v;
  return true;
}

/* A client FIFO: created when missing, opened read-write and non-blocking
 * (never EPIPE, never blocks), and refused when it is not a FIFO. */
static int
open_fifo (const char *path, char *msg, size_t msglen)
{
  if (path[0] != '/')
    {
      snprintf (msg, msglen, "stdio path `%s` is not absolute", path);
      return -EINVAL;
    }
  if (mkfifo (path, 0600) < 0 && errno != EEXIST)
    {
      int e = errno;
      snprintf (msg, msglen, "cannot create FIFO %s: %s", path, strerror (e));
      return -e;
    }
  /* Look before opening for real: opening a device may have effects. */
  int pfd = open (path, O_PATH | O_CLOEXEC);
  struct stat st;
  if (pfd < 0 || fstat (pfd, &st) < 0)
    {
      int e = errno;
      if (pfd >= 0)
        close (pfd);
      snprintf (msg, msglen, "cannot open FIFO %s: %s", path, strerror (e));
      return -e;
    }
  if (!S_ISFIFO (st.st_mode))
    {
      close (pfd);
      snprintf (msg, msglen, "stdio path %s is not a FIFO", path);
      return -EINVAL;
    }
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", pfd);
  int fd = open (proc, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  int e = errno;
  close (pfd);
  if (fd < 0)
    {
      snprintf (msg, msglen, "cannot open FIFO %s: %s", path, strerror (e));
      return -e;
    }
  return fd;
}

static const char *
status_name (enum proc_status st)
{
  switch (st)
    {
    case PROC_CREATED: return "created";
    case PROC_RUNNING: return "running";
    case PROC_PAUSED: return "paused";
    case PROC_STOPPED: return "stopped";
    }
  return "unknown";
}

static struct proc *
proc_find (const char *id)
{
  for (size_t i = 0; i < S.nprocs; i++)
    if (strcmp (S.procs[i]->id, id) == 0)
      return S.procs[i];
  return NULL;
}

static struct proc *
proc_by_pid (pid_t pid)
{
  for (size_t i = 0; i < S.nprocs; i++)
    if (S.procs[i]->pid == pid && S.procs[i]->status != PROC_STOPPED)
      return S.procs[i];
  return NULL;
}

static struct proc *
proc_new (const char *id, bool terminal, const char *in, const char *out, const char *err)
{
  struct proc *p = calloc (1, sizeof *p);
  if (p == NULL)
    return NULL;
  snprintf (p->id, sizeof p->id, "%s", id);
  p->terminal = terminal;
  p->stdin_path = strdup (in ? in : "");
  p->stdout_path = strdup (out ? out : "");
  p->stderr_path = strdup (err ? err : "");
  p->in_fifo = p->in_sink = p->pty = -1;
  p->in_fifo_w = (struct watch){ W_STDIN_FIFO, p };
  p->in_sink_w = (struct watch){ W_STDIN_SINK, p };
  p->out = (struct output){ { W_OUTPUT, &p->out }, p, "stdout", -1, -1, NULL, 0 };
  p->err = (struct output){ { W_OUTPUT, &p->err }, p, "stderr", -1, -1, NULL, 0 };
  if (!p->stdin_path || !p->stdout_path || !p->stderr_path)
    {
      free (p->stdin_path);
      free (p->stdout_path);
      free (p->stderr_path);
      free (p);
      return NULL;
    }
  struct proc **v = realloc (S.procs, (S.nprocs + 1) * sizeof *v);
  if (v == NULL)
    {
      free (p->stdin_path);
      free (p->stdout_path);
      free (p->stderr_path);
      free (p);
      return NULL;
    }
  S.procs = v;
  S.procs[S.nprocs++] = p;
  return p;
}

/* ---- output ------------------------------------------------------------- */

static void
output_eof (struct output *o)
{
  if (o->proc->logged && o->line && S.has_log)
    cri_log_feed (&S.log, o->name, o->line, &o->len, NULL, 0, true);
  if (o->fd == o->proc->pty)
    o->proc->pty = -1;
  ep_close (&o->fd);
  /* The reader of the FIFO sees EOF once we close our end. */
  if (o->fifo >= 0)
    {
      close (o->fifo);
      o->fifo = -1;
    }
  free (o->line);
  o->line = NULL;
  o->len = 0;
}

/* Read what is there (at most max bytes); EOF closes the stream. */
static void
output_pump (struct output *o, size_t max)
{
  size_t done = 0;
  while (o->fd >= 0 && done < max)
    {
      ssize_t n = read (o->fd, iobuf, sizeof iobuf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      if (n <= 0)
        {
          /* 0 on a pipe, EIO on a pty master once the last slave is closed. */
          output_eof (o);
          return;
        }
      done += (size_t) n;
      if (o->fifo >= 0)
        (void) !write (o->fifo, iobuf, (size_t) n); /* a full FIFO drops, never blocks */
      if (o->proc->logged && S.has_log)
        {
          if (o->line == NULL && (o->line = malloc (SHIM_CRI_LINE_MAX)) == NULL)
            continue;
          cri_log_feed (&S.log, o->name, o->line, &o->len, iobuf, (size_t) n, false);
        }
    }
}

/* ---- stdin -------------------------------------------------------------- */

static void
stdin_close (struct proc *p)
{
  ep_close (&p->in_fifo);
  ep_close (&p->in_sink);
  free (p->in_buf);
  p->in_buf = NULL;
  p->in_len = 0;
  p->in_closing = false;
}

/* Move the buffer into the container; switch the watches between "read
 * the FIFO" and "wait until the container can take more". */
static void
stdin_flush (struct proc *p)
{
  while (p->in_len > 0 && p->in_sink >= 0)
    {
      ssize_t n = write (p->in_sink, p->in_buf, p->in_len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n < 0)
        {
          /* The container closed its stdin: nothing more can go in. */
          stdin_close (p);
          return;
        }
      memmove (p->in_buf, p->in_buf + n, p->in_len - (size_t) n);
      p->in_len -= (size_t) n;
    }
  if (p->in_closing && p->in_len == 0)
    {
      stdin_close (p);
      return;
    }
  if (p->in_sink >= 0)
    ep_mod (p->in_sink, p->in_len ? EPOLLOUT : 0, &p->in_sink_w);
  if (p->in_fifo >= 0)
    ep_mod (p->in_fifo, p->in_len < STDIN_BUF ? EPOLLIN : 0, &p->in_fifo_w);
}

static void
stdin_fill (struct proc *p)
{
  if (p->in_buf == NULL && (p->in_buf = malloc (STDIN_BUF)) == NULL)
    return;
  while (p->in_fifo >= 0 && p->in_len < STDIN_BUF)
    {
      ssize_t n = read (p->in_fifo, p->in_buf + p->in_len, STDIN_BUF - p->in_len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n <= 0)
        {
          ep_close (&p->in_fifo);
          p->in_closing = true;
          break;
        }
      p->in_len += (size_t) n;
    }
  stdin_flush (p);
}

/* closeio: what the client already wrote still goes in, then EOF. */
static void
stdin_closeio (struct proc *p)
{
  if (p->in_fifo >= 0)
    stdin_fill (p);
  ep_close (&p->in_fifo);
  p->in_closing = true;
  stdin_flush (p);
}

/* ---- process io set-up -------------------------------------------------- */

struct child_io
{
  int in, out, err;
};

static void
child_io_close (struct child_io *c)
{
  if (c->in >= 0)
    close (c->in);
  if (c->out >= 0)
    close (c->out);
  if (c->err >= 0)
    close (c->err);
  c->in = c->out = c->err = -1;
}

static void
proc_io_close (struct proc *p)
{
  stdin_close (p);
  output_eof (&p->out);
  output_eof (&p->err);
  if (p->pty >= 0)
    close (p->pty);
  p->pty = -1;
}

/* Pipes (or FIFOs only, for a terminal) before the runtime runs; the child
 * ends go to the runtime as its stdio, which its init inherits. */
static int
proc_io_prepare (struct proc *p, struct child_io *c, char *msg, size_t msglen)
{
  c->in = c->out = c->err = -1;
  int r;
  if (*p->stdin_path)
    {
      if ((r = open_fifo (p->stdin_path, msg, msglen)) < 0)
        return r;
      p->in_fifo = r;
    }
  if (*p->stdout_path)
    {
      if ((r = open_fifo (p->stdout_path, msg, msglen)) < 0)
        return r;
      p->out.fifo = r;
    }
  if (*p->stderr_path && !p->terminal)
    {
      if ((r = open_fifo (p->stderr_path, msg, msglen)) < 0)
        return r;
      p->err.fifo = r;
    }
  if (p->terminal)
    return 0;
  int fds[2];
  if (*p->stdin_path)
    {
      if (pipe2 (fds, O_CLOEXEC) < 0)
        goto pipe_failed;
      c->in = fds[0];
      p->in_sink = fds[1];
      fcntl (p->in_sink, F_SETFL, O_NONBLOCK);
    }
  if (pipe2 (fds, O_CLOEXEC) < 0)
    goto pipe_failed;
  p->out.fd = fds[0];
  c->out = fds[1];
  if (pipe2 (fds, O_CLOEXEC) < 0)
    goto pipe_failed;
  p->err.fd = fds[0];
  c->err = fds[1];
  fcntl (p->out.fd, F_SETFL, O_NONBLOCK);
  fcntl (p->err.fd, F_SETFL, O_NONBLOCK);
  return 0;
pipe_failed:
  r = -errno;
  snprintf (msg, msglen, "cannot create the stdio pipes: %s", strerror (errno));
  child_io_close (c);
  return r;
}

/* After the runtime ran: watch what the shim keeps. */
static void
proc_io_start (struct proc *p, int console)
{
  if (p->terminal && console >= 0)
    {
      fcntl (console, F_SETFL, O_NONBLOCK);
      p->pty = console;
      p->out.fd = console;
      if (p->in_fifo >= 0)
        p->in_sink = fcntl (console, F_DUPFD_CLOEXEC, 3);
    }
  if (p->out.fd >= 0)
    ep_add (p->out.fd, EPOLLIN, &p->out.w);
  if (p->err.fd >= 0)
    ep_add (p->err.fd, EPOLLIN, &p->err.w);
  if (p->in_sink >= 0 && p->in_fifo >= 0)
    {
      ep_add (p->in_sink, 0, &p->in_sink_w);
      ep_add (p->in_fifo, EPOLLIN, &p->in_fifo_w);
    }
  else
    stdin_close (p);
}

/* The console socket exists only while the runtime runs.  runc connects
 * to its path itself, so the path must fit in sun_path: a long task dir
 * gets a short private directory under /tmp instead. */
static void
console_done (int lfd)
{
  if (lfd >= 0)
    close (lfd);
  unlink (S.console_path);
  if (S.console_dir[0])
    rmdir (S.console_dir);
  S.console_dir[0] = '\0';
}

static int
console_listen (char *msg, size_t msglen)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (S.console_path, sizeof S.console_path, "%s/console.sock", S.dir);
  if (strlen (S.console_path) >= sizeof sa.sun_path)
    {
      snprintf (S.console_dir, sizeof S.console_dir, "/tmp/berth-shim-XXXXXX");
      if (mkdtemp (S.console_dir) == NULL)
        {
          int e = errno;
          S.console_dir[0] = '\0';
          snprintf (msg, msglen, "cannot create a directory for the console socket: %s", strerror (e));
          return -e;
        }
      snprintf (S.console_path, sizeof S.console_path, "%s/console.sock", S.console_dir);
    }
  if (strlen (S.console_path) >= sizeof sa.sun_path)
    {
      snprintf (msg, msglen, "console socket path %s is too long", S.console_path);
      return -ENAMETOOLONG;
    }
  strcpy (sa.sun_path, S.console_path);
  unlink (S.console_path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (fd, 4) < 0)
    {
      int e = errno;
      snprintf (msg, msglen, "console socket %s: %s", S.console_path, strerror (e));
      console_done (fd);
      return -e;
    }
  chmod (S.console_path, 0600);
  return fd;
}

/* ---- exits and events ---------------------------------------------------- */

static int
send_fields (int fd, const char *const *f, size_t n, char *buf, size_t cap)
{
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    {
      size_t l = strlen (f[i]);
      if (off + l + 1 > cap)
        return -EMSGSIZE;
      memcpy (buf + off, f[i], l);
      off += l;
      if (i + 1 < n)
        buf[off++] = '\0';
    }
  ssize_t w = send (fd, buf, off, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w < 0)
    return -errno;
  return 0;
}

static void conn_close (struct conn *c);

static bool
send_exit_event (struct conn *c, struct proc *p)
{
  char pid[16], st[16], at[32];
  snprintf (pid, sizeof pid, "%d", (int) p->pid);
  snprintf (st, sizeof st, "%d", p->exit_status);
  snprintf (at, sizeof at, "%lld", (long long) p->exited_at);
  const char *f[] = { "exit", p->id, pid, st, at };
  char buf[256];
  if (send_fields (c->fd, f, 5, buf, sizeof buf) < 0)
    {
      conn_close (c);
      return false;
    }
  return true;
}

static void
reply_wait (struct conn *c, struct proc *p)
{
  char st[16], at[32];
  snprintf (st, sizeof st, "%d", p->exit_status);
  snprintf (at, sizeof at, "%lld", (long long) p->exited_at);
  const char *f[] = { "ok", st, at };
  c->waiting = NULL;
  if (send_fields (c->fd, f, 3, replybuf, sizeof replybuf) < 0)
    conn_close (c);
}

static void oom_send (void);

static void
proc_exited (struct proc *p, int status)
{
  p->status = PROC_STOPPED;
  p->exit_status = status;
  p->exited_at = now_realtime_ns ();
  /* A SIGKILLed init may be the OOM killer's work, and the cgroup's
   * notification can still be queued behind our SIGCHLD: report it before
   * the exit, as containerd's /tasks/oom comes before /tasks/exit. */
  if (*p->id == '\0' && status == 128 + SIGKILL && oom_watch_killed (&S.oom) == 1)
    oom_send ();
  /* What the process wrote before it exited is delivered before its exit
   * (ctr prints the output, then returns the status). */
  output_pump (&p->out, 4u << 20);
  output_pump (&p->err, 4u << 20);
  shim_log ("process %s pid %d exited with status %d", *p->id ? p->id : "init", (int) p->pid, status);
  if (*p->id == '\0')
    {
      char line[64];
      snprintf (line, sizeof line, "%d %lld\n", status, (long long) p->exited_at);
      int r = write_file_atomic ("exit", line);
      if (r < 0)
        shim_log ("cannot write %s/exit: %s", S.dir, strerror (-r));
    }
  for (size_t i = 0; i < SHIM_MAX_CONNS; i++)
    {
      struct conn *c = S.conns[i];
      if (c == NULL)
        continue;
      if (c->subscriber && send_exit_event (c, p))
        p->exit_delivered = true;
      else if (c->waiting == p)
        reply_wait (c, p);
    }
}

static void
reap (void)
{
  for (;;)
    {
      int st;
      pid_t pid = waitpid (-1, &st, WNOHANG);
      if (pid <= 0)
        return;
      struct proc *p = proc_by_pid (pid);
      if (p == NULL)
        continue; /* a re-parented grandchild, or the runtime's helper */
      proc_exited (p, WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st));
    }
}

/* An OOM kill: every subscriber hears it (no re-delivery: the exit that
 * follows is what must not be lost). */
static void
oom_event (void)
{
  if (S.oom.fd < 0)
    return;
  int r = oom_watch_fired (&S.oom);
  if (r < 0)
    {
      ep_close (&S.oom.fd);
      return;
    }
  if (r == 0)
    return;
  oom_send ();
}

static void
oom_send (void)
{
  shim_log ("OOM kill in the container's memory cgroup");
  const char *f[] = { "oom", S.id };
  char buf[128];
  for (size_t i = 0; i < SHIM_MAX_CONNS; i++)
    if (S.conns[i] && S.conns[i]->subscriber && send_fields (S.conns[i]->fd, f, 2, buf, sizeof buf) < 0)
      conn_close (S.conns[i]);
}

static void
drain_signals (void)
{
  struct signalfd_siginfo si[8];
  while (read (S.sfd, si, sizeof si) > 0)
    ;
  reap ();
}

/* ---- connections ---------------------------------------------------------- */

static void
conn_close (struct conn *c)
{
  for (size_t i = 0; i < SHIM_MAX_CONNS; i++)
    if (S.conns[i] == c)
      S.conns[i] = NULL;
  ep_close (&c->fd);
  if (n_dead_conns < SHIM_MAX_CONNS)
    dead_conns[n_dead_conns++] = c;
}

static void
reply (struct conn *c, const char *const *f, size_t n)
{
  int r = send_fields (c->fd, f, n, replybuf, sizeof replybuf);
  if (r < 0)
    {
      shim_log ("cannot send the reply `%s`: %s", f[0], strerror (-r));
      conn_close (c);
    }
}

static void reply_err (struct conn *c, const char *code, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
reply_err (struct conn *c, const char *code, const char *fmt, ...)
{
  char msg[3072];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  const char *f[] = { "err", code, msg };
  reply (c, f, 3);
}

static void
reply_ok (struct conn *c)
{
  const char *f[] = { "ok" };
  reply (c, f, 1);
}

/* A reply that may be large (ps, stats): the socket buffer grows to fit. */
static void
reply_big (struct conn *c, const char *text, size_t len)
{
  size_t total = 3 + len;
  char *buf = malloc (total);
  if (buf == NULL)
    {
      reply_err (c, "nomem", "out of memory");
      return;
    }
  memcpy (buf, "ok", 3);
  memcpy (buf + 3, text, len);
  int sz = (int) (total + 4096);
  if (setsockopt (c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz) < 0)
    setsockopt (c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  ssize_t w = send (c->fd, buf, total, MSG_DONTWAIT | MSG_NOSIGNAL);
  int e = errno;
  free (buf);
  if (w < 0 && e == EMSGSIZE)
    reply_err (c, "exhausted", "the answer (%zu bytes) is too large for one message", len);
  else if (w < 0)
    conn_close (c);
}

static const char *
rt_err_code (const char *msg)
{
  if (strstr (msg, "not running") || strstr (msg, "does not exist") || strstr (msg, "not exist"))
    return "notfound";
  if (strstr (msg, "cannot execute the runtime"))
    return "unavailable";
  return "internal";
}

/* Run a verb whose only output is success or the runtime's reason. */
static int
rt_simple (const char *const *verb, char *msg, size_t msglen)
{
  struct rt_result res;
  struct rt_opts o = { -1, -1, -1, -1, NULL, 0 };
  rt_run (&S, verb, &o, &res);
  rt_result_clear (&res);
  if (res.status != 0)
    {
      snprintf (msg, msglen, "%s", res.msg);
      return -1;
    }
  return 0;
}

static void
do_state (struct conn *c, struct proc *p)
{
  char pid[16], st[16], at[32];
  snprintf (pid, sizeof pid, "%d", (int) p->pid);
  snprintf (st, sizeof st, "%d", p->exit_status);
  snprintf (at, sizeof at, "%lld", (long long) p->exited_at);
  const char *f[] = { "ok", status_name (p->status), pid, st, at, p->terminal ? "1" : "0",
                      p->stdin_path, p->stdout_path, p->stderr_path };
  reply (c, f, 9);
}

static void
do_start_init (struct conn *c, struct proc *p)
{
  if (p->status != PROC_CREATED)
    {
      reply_err (c, "precondition", "container %s is %s, not created", S.id, status_name (p->status));
      return;
    }
  char msg[2048];
  const char *verb[] = { "start", S.id, NULL };
  if (rt_simple (verb, msg, sizeof msg) < 0)
    {
      reply_err (c, rt_err_code (msg), "%s", msg);
      return;
    }
  if (p->status == PROC_CREATED)
    p->status = PROC_RUNNING;
  char pid[16];
  snprintf (pid, sizeof pid, "%d", (int) p->pid);
  const char *f[] = { "ok", pid };
  reply (c, f, 2);
}

static void
do_start_exec (struct conn *c, struct proc *p)
{
  struct proc *init = proc_find ("");
  if (p->status != PROC_CREATED)
    {
      reply_err (c, "precondition", "process %s is %s, not created", p->id, status_name (p->status));
      return;
    }
  if (init == NULL || (init->status != PROC_RUNNING && init->status != PROC_PAUSED))
    {
      reply_err (c, "precondition", "container %s is not running", S.id);
      return;
    }
  char msg[2048];
  struct child_io ci;
  if (proc_io_prepare (p, &ci, msg, sizeof msg) < 0)
    {
      proc_io_close (p);
      reply_err (c, "invalid", "exec %s: %s", p->id, msg);
      return;
    }
  int lfd = -1, console = -1;
  if (p->terminal && (lfd = console_listen (msg, sizeof msg)) < 0)
    {
      child_io_close (&ci);
      proc_io_close (p);
      reply_err (c, "internal", "exec %s: %s", p->id, msg);
      return;
    }
  char pidfile[PATH_MAX];
  snprintf (pidfile, sizeof pidfile, "%s/exec-%s.pid", S.dir, p->id);
  unlink (pidfile);
  const char *verb[16];
  size_t k = 0;
  verb[k++] = "exec";
  verb[k++] = "--process";
  verb[k++] = p->process_json;
  verb[k++] = "--detach";
  verb[k++] = "--pid-file";
  verb[k++] = pidfile;
  if (p->terminal)
    {
      verb[k++] = "--console-socket";
      verb[k++] = S.console_path;
    }
  verb[k++] = S.id;
  verb[k] = NULL;
  struct rt_result res;
  /* With a terminal ci holds no fds: the runtime's own stdio is /dev/null
   * and captured, the process gets the pty. */
  struct rt_opts o = { ci.in, ci.out, ci.err, lfd, &console, 0 };
  rt_run (&S, verb, &o, &res);
  rt_result_clear (&res);
  child_io_close (&ci);
  if (lfd >= 0)
    console_done (lfd);
  pid_t pid;
  if (res.status != 0 || !read_pid_file (pidfile, &pid))
    {
      if (console >= 0)
        close (console);
      proc_io_close (p);
      if (res.status == 0)
        snprintf (res.msg, sizeof res.msg, "the runtime wrote no pid to %.1500s", pidfile);
      reply_err (c, rt_err_code (res.msg), "%s", res.msg);
      return;
    }
  p->pid = pid;
  p->status = PROC_RUNNING;
  proc_io_start (p, console);
  char spid[16];
  snprintf (spid, sizeof spid, "%d", (int) pid);
  const char *f[] = { "ok", spid };
  reply (c, f, 2);
  /* It may have exited already: its SIGCHLD waits in the signalfd. */
}

static void
do_kill (struct conn *c, struct proc *p, const char *sig, const char *all)
{
  uint64_t signo;
  if (!parse_u64 (sig, 64, &signo) || signo == 0)
    {
      reply_err (c, "invalid", "signal `%.32s` is not a number from 1 to 64", sig);
      return;
    }
  if (*all && strcmp (all, "0") != 0 && strcmp (all, "1") != 0)
    {
      reply_err (c, "invalid", "kill: `all` must be 0 or 1, not `%.16s`", all);
      return;
    }
  if (p->status == PROC_STOPPED)
    {
      reply_err (c, "notfound", "process already finished");
      return;
    }
  if (*p->id)
    {
      if (p->status == PROC_CREATED)
        {
          reply_err (c, "precondition", "process %s is not started", p->id);
          return;
        }
      if (kill (p->pid, (int) signo) < 0)
        reply_err (c, errno == ESRCH ? "notfound" : "internal", "kill %d: %s", (int) p->pid, strerror (errno));
      else
        reply_ok (c);
      return;
    }
  char msg[2048], num[8];
  snprintf (num, sizeof num, "%u", (unsigned) signo);
  const char *verb[] = { "kill", S.id, num, NULL, NULL };
  if (strcmp (all, "1") == 0)
    {
      verb[1] = "--all";
      verb[2] = S.id;
      verb[3] = num;
    }
  if (rt_simple (verb, msg, sizeof msg) < 0)
    {
      reap ();
      if (p->status == PROC_STOPPED)
        reply_err (c, "notfound", "process already finished");
      else
        reply_err (c, rt_err_code (msg), "%s", msg);
      return;
    }
  reply_ok (c);
}

static void
do_exec (struct conn *c, const char *const *a)
{
  const char *id = a[1], *json = a[2], *term = a[3];
  if (!valid_id (id))
    {
      reply_err (c, "invalid", "exec id `%.80s` is not valid (letters, digits, '.', '_', '-'; at most 76)", id);
      return;
    }
  if (proc_find (id))
    {
      reply_err (c, "exists", "exec process %s already exists", id);
      return;
    }
  if (json[0] != '/')
    {
      reply_err (c, "invalid", "exec %s: the process spec path `%.200s` is not absolute", id, json);
      return;
    }
  if (strcmp (term, "0") != 0 && strcmp (term, "1") != 0)
    {
      reply_err (c, "invalid", "exec %s: terminal must be 0 or 1, not `%.16s`", id, term);
      return;
    }
  struct proc *init = proc_find ("");
  if (init == NULL || init->status == PROC_STOPPED)
    {
      reply_err (c, "precondition", "container %s is not running", S.id);
      return;
    }
  if (S.nprocs > MAX_EXECS)
    {
      reply_err (c, "exhausted", "too many exec processes (%d)", MAX_EXECS);
      return;
    }
  struct proc *p = proc_new (id, term[0] == '1', a[4], a[5], a[6]);
  if (p == NULL || (p->process_json = strdup (json)) == NULL)
    {
      reply_err (c, "nomem", "out of memory");
      return;
    }
  reply_ok (c);
}

static void
proc_free (struct proc *p)
{
  proc_io_close (p);
  free (p->stdin_path);
  free (p->stdout_path);
  free (p->stderr_path);
  free (p->process_json);
  free (p);
}

static void
do_delete_exec (struct conn *c, struct proc *p)
{
  if (p->status == PROC_RUNNING || p->status == PROC_PAUSED)
    {
      reply_err (c, "precondition", "cannot delete running process %s", p->id);
      return;
    }
  char st[16], at[32];
  snprintf (st, sizeof st, "%d", p->exit_status);
  snprintf (at, sizeof at, "%lld", (long long) p->exited_at);
  const char *f[] = { "ok", st, at };
  reply (c, f, 3);
  char pidfile[PATH_MAX];
  snprintf (pidfile, sizeof pidfile, "%s/exec-%s.pid", S.dir, p->id);
  unlink (pidfile);
  for (size_t i = 0; i < S.nprocs; i++)
    if (S.procs[i] == p)
      {
        S.procs[i] = S.procs[--S.nprocs];
        break;
      }
  for (size_t i = 0; i < SHIM_MAX_CONNS; i++)
    if (S.conns[i] && S.conns[i]->waiting == p)
      S.conns[i]->waiting = NULL;
  proc_io_close (p);
  if (n_dead_procs < sizeof dead_procs / sizeof dead_procs[0])
    dead_procs[n_dead_procs++] = p;
  else
    proc_free (p); /* no event of this batch can point at it: its fds are closed */
}

static void shim_exit (int code) __attribute__ ((noreturn));

/* Before the last word (the delete reply, the ready line), so that whoever
 * reads it finds no socket of a shim about to exit. */
static void
shim_remove_files (void)
{
  if (S.sock_path[0])
    unlink (S.sock_path);
  if (S.console_dir[0])
    console_done (-1);
  char path[PATH_MAX];
  snprintf (path, sizeof path, "%s/shim.pid", S.dir);
  unlink (path);
}

static void
shim_exit (int code)
{
  for (size_t i = 0; i < S.nprocs; i++)
    proc_io_close (S.procs[i]);
  cri_log_close (&S.log);
  shim_remove_files ();
  shim_log ("exiting");
  _exit (code);
}

/* Wait (bounded) until the init process is reaped. */
static void
wait_init_reaped (struct proc *p, int ms)
{
  for (int i = 0; i < ms / 10 && p->status != PROC_STOPPED; i++)
    {
      reap ();
      if (p->status == PROC_STOPPED)
        break;
      struct timespec ts = { 0, 10 * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
}

static void
do_delete_init (struct conn *c, struct proc *p)
{
  if (p->status == PROC_RUNNING || p->status == PROC_PAUSED)
    {
      reply_err (c, "precondition", "cannot delete running task %s: kill it first", S.id);
      return;
    }
  char msg[2048];
  const char *force[] = { "delete", "--force", S.id, NULL };
  const char *plain[] = { "delete", S.id, NULL };
  /* A created container's init is alive, blocked before exec: --force
   * kills it.  A stopped one normally needs no force; a failure (e.g.
   * processes left in a shared pid namespace) is retried with it. */
  int r = rt_simple (p->status == PROC_CREATED ? force : plain, msg, sizeof msg);
  if (r < 0 && p->status != PROC_CREATED)
    r = rt_simple (force, msg, sizeof msg);
  if (r < 0)
    {
      /* Nothing left to delete is success (e.g. the runtime state is gone). */
      if (!strstr (msg, "does not exist") && !strstr (msg, "not exist"))
        {
          reply_err (c, "internal", "%s", msg);
          return;
        }
    }
  if (p->pid > 0)
    wait_init_reaped (p, 2000);
  if (p->status != PROC_STOPPED)
    {
      /* Not reaped in time (or never started): report it as killed. */
      p->status = PROC_STOPPED;
      p->exit_status = 128 + SIGKILL;
      p->exited_at = now_realtime_ns ();
    }
  char st[16], at[32];
  snprintf (st, sizeof st, "%d", p->exit_status);
  snprintf (at, sizeof at, "%lld", (long long) p->exited_at);
  const char *f[] = { "ok", st, at };
  shim_remove_files ();
  reply (c, f, 3);
  shim_exit (0);
}

static void
do_runtime_text (struct conn *c, const char *const *verb)
{
  struct rt_result res;
  struct rt_opts o = { -1, -1, -1, -1, NULL, 0 };
  rt_run (&S, verb, &o, &res);
  if (res.status != 0)
    reply_err (c, rt_err_code (res.msg), "%s", res.msg);
  else
    {
      size_t len = res.out_len;
      while (len > 0 && (res.out[len - 1] == '\n' || res.out[len - 1] == ' '))
        len--;
      /* events --stats may print more than one object: keep the first line. */
      const char *nl = res.out ? memchr (res.out, '\n', len) : NULL;
      if (nl && strcmp (verb[0], "events") == 0)
        len = (size_t) (nl - res.out);
      reply_big (c, res.out ? res.out : "", len);
    }
  rt_result_clear (&res);
}

static void
do_pause_resume (struct conn *c, struct proc *p, bool pause)
{
  if (p->status != (pause ? PROC_RUNNING : PROC_PAUSED))
    {
      reply_err (c, "precondition", "container %s is %s", S.id, status_name (p->status));
      return;
    }
  char msg[2048];
  const char *verb[] = { pause ? "pause" : "resume", S.id, NULL };
  if (rt_simple (verb, msg, sizeof msg) < 0)
    {
      reply_err (c, rt_err_code (msg), "%s", msg);
      return;
    }
  if (p->status != PROC_STOPPED)
    p->status = pause ? PROC_PAUSED : PROC_RUNNING;
  reply_ok (c);
}

static void
handle_request (struct conn *c, size_t len)
{
  const char *a[SHIM_MAX_FIELDS];
  size_t n = 0;
  reqbuf[len] = '\0';
  for (size_t off = 0;;)
    {
      if (n == SHIM_MAX_FIELDS)
        {
          reply_err (c, "invalid", "request has more than %d fields", SHIM_MAX_FIELDS);
          return;
        }
      a[n++] = reqbuf + off;
      size_t l = strnlen (reqbuf + off, len - off);
      if (off + l >= len)
        break;
      off += l + 1;
    }
  for (size_t i = n; i < SHIM_MAX_FIELDS; i++)
    a[i] = "";
  const char *verb = a[0];

  if (strcmp (verb, "subscribe") == 0)
    {
      c->subscriber = true;
      reply_ok (c);
      for (size_t i = 0; i < S.nprocs && c->fd >= 0; i++)
        if (S.procs[i]->status == PROC_STOPPED && !S.procs[i]->exit_delivered && S.procs[i]->pid > 0
            && send_exit_event (c, S.procs[i]))
          S.procs[i]->exit_delivered = true;
      return;
    }
  struct proc *init = proc_find ("");
  if (strcmp (verb, "pids") == 0)
    {
      const char *v[] = { "ps", "--format", "json", S.id, NULL };
      do_runtime_text (c, v);
      return;
    }
  if (strcmp (verb, "stats") == 0)
    {
      const char *v[] = { "events", "--stats", S.id, NULL };
      do_runtime_text (c, v);
      return;
    }
  if (strcmp (verb, "pause") == 0 || strcmp (verb, "resume") == 0)
    {
      do_pause_resume (c, init, verb[0] == 'p');
      return;
    }
  if (strcmp (verb, "update") == 0)
    {
      if (a[1][0] != '/')
        {
          reply_err (c, "invalid", "update: the resources path `%.200s` is not absolute", a[1]);
          return;
        }
      char msg[2048];
      const char *v[] = { "update", "--resources", a[1], S.id, NULL };
      if (rt_simple (v, msg, sizeof msg) < 0)
        reply_err (c, rt_err_code (msg), "%s", msg);
      else
        reply_ok (c);
      return;
    }
  if (strcmp (verb, "exec") == 0)
    {
      do_exec (c, a);
      return;
    }

  static const char *const per_proc[] = { "state", "start", "kill", "resize", "closeio", "wait", "delete" };
  bool known = false;
  for (size_t i = 0; i < sizeof per_proc / sizeof per_proc[0]; i++)
    known |= strcmp (verb, per_proc[i]) == 0;
  if (!known)
    {
      reply_err (c, "notsup", "unknown request `%.32s`", verb);
      return;
    }
  struct proc *p = proc_find (a[1]);
  if (p == NULL)
    {
      reply_err (c, "notfound", "process `%.80s` not found in task %s", a[1], S.id);
      return;
    }
  if (strcmp (verb, "state") == 0)
    do_state (c, p);
  else if (strcmp (verb, "start") == 0)
    *p->id ? do_start_exec (c, p) : do_start_init (c, p);
  else if (strcmp (verb, "kill") == 0)
    do_kill (c, p, a[2], a[3]);
  else if (strcmp (verb, "resize") == 0)
    {
      uint64_t w, h;
      if (!parse_u64 (a[2], 65535, &w) || !parse_u64 (a[3], 65535, &h))
        reply_err (c, "invalid", "resize: width and height must be numbers up to 65535");
      else if (p->pty < 0)
        reply_err (c, "precondition", "process `%s` has no terminal", *p->id ? p->id : "init");
      else
        {
          struct winsize ws = { .ws_col = (unsigned short) w, .ws_row = (unsigned short) h };
          if (ioctl (p->pty, TIOCSWINSZ, &ws) < 0)
            reply_err (c, "internal", "resize: %s", strerror (errno));
          else
            reply_ok (c);
        }
    }
  else if (strcmp (verb, "closeio") == 0)
    {
      stdin_closeio (p);
      reply_ok (c);
    }
  else if (strcmp (verb, "wait") == 0)
    {
      if (p->status == PROC_STOPPED)
        reply_wait (c, p);
      else if (c->waiting)
        reply_err (c, "precondition", "this connection already waits");
      else
        c->waiting = p;
    }
  else if (strcmp (verb, "delete") == 0)
    *p->id ? do_delete_exec (c, p) : do_delete_init (c, p);
}

static void
conn_event (struct conn *c, uint32_t events)
{
  if (events & EPOLLIN)
    {
      ssize_t n = recv (c->fd, reqbuf, SHIM_REQ_MAX + 1, MSG_TRUNC | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
      if (n <= 0)
        {
          conn_close (c);
          return;
        }
      if (n > SHIM_REQ_MAX)
        {
          reply_err (c, "invalid", "request of %zd bytes is larger than %d", n, SHIM_REQ_MAX);
          return;
        }
      if (c->subscriber)
        return; /* an event stream carries no requests */
      handle_request (c, (size_t) n);
      return;
    }
  if (events & (EPOLLHUP | EPOLLERR))
    conn_close (c);
}

static void
accept_conns (void)
{
  for (;;)
    {
      int fd = accept4 (S.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0)
        return;
      size_t i;
      for (i = 0; i < SHIM_MAX_CONNS && S.conns[i]; i++)
        ;
      struct conn *c = i < SHIM_MAX_CONNS ? calloc (1, sizeof *c) : NULL;
      if (c == NULL)
        {
          shim_log ("refusing a connection: %s", i < SHIM_MAX_CONNS ? "out of memory" : "too many connections");
          close (fd);
          continue;
        }
      c->fd = fd;
      c->w = (struct watch){ W_CONN, c };
      S.conns[i] = c;
      ep_add (fd, EPOLLIN, &c->w);
    }
}

static void
loop (void)
{
  struct epoll_event ev[32];
  for (;;)
    {
      int n = epoll_wait (S.epfd, ev, 32, -1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          shim_log ("epoll_wait: %s", strerror (errno));
          shim_exit (1);
        }
      for (int i = 0; i < n; i++)
        {
          struct watch *w = ev[i].data.ptr;
          switch (w->kind)
            {
            case W_LISTEN: accept_conns (); break;
            case W_SIGNAL: drain_signals (); break;
            case W_CONN:
              if (((struct conn *) w->obj)->fd >= 0)
                conn_event (w->obj, ev[i].events);
              break;
            case W_OUTPUT: output_pump (w->obj, 1u << 20); break;
            case W_OOM: oom_event (); break;
            case W_STDIN_FIFO:
              {
                struct proc *p = w->obj;
                if (p->in_fifo >= 0)
                  stdin_fill (p);
                break;
              }
            case W_STDIN_SINK:
              {
                struct proc *p = w->obj;
                if (p->in_sink < 0)
                  break;
                if (ev[i].events & (EPOLLERR | EPOLLHUP))
                  stdin_close (p);
                else
                  stdin_flush (p);
                break;
              }
            }
        }
      for (size_t i = 0; i < n_dead_conns; i++)
        free (dead_conns[i]);
      n_dead_conns = 0;
      for (size_t i = 0; i < n_dead_procs; i++)
        proc_free (dead_procs[i]);
      n_dead_procs = 0;
    }
}

/* ---- start-up ------------------------------------------------------------ */

static void ready (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* The one line for whoever started us; the first call wins. */
static void
ready (const char *fmt, ...)
{
  if (S.ready_fd < 0)
    return;
  if (strncmp (fmt, "err", 3) == 0 && S.lfd >= 0)
    shim_remove_files ();
  char line[4096];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (line, sizeof line - 1, fmt, ap);
  va_end (ap);
  if (n < 0)
    n = 0;
  if ((size_t) n > sizeof line - 2)
    n = (int) sizeof line - 2;
  /* One line: newlines inside the runtime's reason become "; ". */
  for (int i = 0; i < n; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ';';
  line[n++] = '\n';
  (void) !write (S.ready_fd, line, (size_t) n);
  close (S.ready_fd);
  S.ready_fd = -1;
}

static void usage_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2), noreturn));

static void
usage_error (const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  fprintf (stderr, "berth-shim: %s\n", msg);
  ready ("err berth-shim: %s", msg);
  exit (2);
}

static void
parse_flags (int argc, char **argv)
{
  bool have_size = false, have_files = false;
  S.rt_args = calloc ((size_t) argc, sizeof *S.rt_args);
  if (S.rt_args == NULL)
    usage_error ("out of memory");
  /* The ready fd first, so that every later error reaches it. */
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp (argv[i], "--ready-fd") == 0)
      {
        uint64_t fd;
        if (!parse_u64 (argv[i + 1], INT_MAX, &fd) || fcntl ((int) fd, F_GETFD) < 0)
          usage_error ("--ready-fd `%s` is not an open file descriptor", argv[i + 1]);
        S.ready_fd = (int) fd;
      }
  for (int i = 1; i < argc; i++)
    {
      const char *f = argv[i];
      static const char *const boolean[] = { "--terminal" };
      if (strcmp (f, boolean[0]) == 0)
        {
          S.terminal = true;
          continue;
        }
      if (strncmp (f, "--", 2) != 0)
        usage_error ("unexpected argument `%s`", f);
      if (i + 1 >= argc)
        usage_error ("flag %s needs a value", f);
      const char *v = argv[++i];
      uint64_t num;
      if (strcmp (f, "--namespace") == 0)
        S.ns = v;
      else if (strcmp (f, "--id") == 0)
        S.id = v;
      else if (strcmp (f, "--bundle") == 0)
        S.bundle = v;
      else if (strcmp (f, "--task-dir") == 0)
        S.dir = v;
      else if (strcmp (f, "--runtime") == 0)
        S.runtime = v;
      else if (strcmp (f, "--runtime-arg") == 0)
        S.rt_args[S.n_rt_args++] = v;
      else if (strcmp (f, "--stdin") == 0)
        S.stdin_path = v;
      else if (strcmp (f, "--stdout") == 0)
        S.stdout_path = v;
      else if (strcmp (f, "--stderr") == 0)
        S.stderr_path = v;
      else if (strcmp (f, "--log") == 0)
        {
          S.log.path = v;
          S.has_log = true;
        }
      else if (strcmp (f, "--log-max-size") == 0)
        {
          if (!parse_u64 (v, UINT64_MAX, &num))
            usage_error ("--log-max-size `%s` is not a number of bytes", v);
          S.log.max_size = num;
          have_size = true;
        }
      else if (strcmp (f, "--log-max-files") == 0)
        {
          if (!parse_u64 (v, 1000, &num))
            usage_error ("--log-max-files `%s` is not a number from 0 to 1000", v);
          S.log.max_files = (unsigned) num;
          have_files = true;
        }
      else if (strcmp (f, "--ready-fd") == 0)
        ;
      else
        usage_error ("unknown flag %s", f);
    }
  if (!S.ns || !*S.ns)
    usage_error ("--namespace is required");
  if (!valid_id (S.ns))
    usage_error ("--namespace `%s` is not a valid namespace name", S.ns);
  if (!S.id || !*S.id)
    usage_error ("--id is required");
  if (!valid_id (S.id))
    usage_error ("--id `%s` is not a valid container id (letters, digits, '.', '_', '-'; at most 76)",
                 S.id);
  const char *abs[][2] = { { "--bundle", S.bundle }, { "--task-dir", S.dir }, { "--runtime", S.runtime } };
  for (size_t i = 0; i < 3; i++)
    if (abs[i][1] == NULL || abs[i][1][0] != '/')
      usage_error ("%s must be an absolute path%s%s", abs[i][0], abs[i][1] ? ", not " : " (missing)",
                   abs[i][1] ? abs[i][1] : "");
  if (S.has_log && S.log.path[0] != '/')
    usage_error ("--log must be an absolute path, not %s", S.log.path);
  if ((have_size || have_files) && !S.has_log)
    usage_error ("--log-max-size and --log-max-files need --log");
  struct stat st;
  if (stat (S.dir, &st) < 0 || !S_ISDIR (st.st_mode))
    usage_error ("--task-dir %s is not a directory", S.dir);
  if (strlen (S.dir) > PATH_MAX - 64)
    usage_error ("--task-dir is too long");
  char cfg[PATH_MAX];
  snprintf (cfg, sizeof cfg, "%s/config.json", S.bundle);
  if (access (cfg, R_OK) < 0)
    usage_error ("--bundle %s has no readable config.json: %s", S.bundle, strerror (errno));
}

static int
bind_socket (void)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf (S.sock_path, sizeof S.sock_path, "%s/shim.sock", S.dir);
  int dfd = -1;
  if (strlen (S.sock_path) < sizeof sa.sun_path)
    strcpy (sa.sun_path, S.sock_path);
  else
    {
      /* Too long for sun_path: go through the directory's fd, as the SDK's
       * client does. */
      dfd = open (S.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0)
        return -errno;
      snprintf (sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/shim.sock", dfd);
    }
  int fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  /* A live shim already answers there: refuse rather than steal it. */
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) == 0)
    {
      close (fd);
      if (dfd >= 0)
        close (dfd);
      return -EADDRINUSE;
    }
  close (fd);
  unlink (S.sock_path);
  fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  mode_t old = umask (0177);
  int r = fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen (fd, 16) < 0 ? -errno : 0;
  umask (old);
  if (dfd >= 0)
    close (dfd);
  if (r < 0)
    {
      if (fd >= 0)
        close (fd);
      return r;
    }
  return fd;
}

/* Detach from whoever started us: the container must outlive berthd. */
static void
daemonize (void)
{
  char path[PATH_MAX];
  snprintf (path, sizeof path, "%s/shim.log", S.dir);
  int logfd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
  if (logfd < 0)
    usage_error ("cannot open %s: %s", path, strerror (errno));
  int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0)
    usage_error ("cannot open /dev/null: %s", strerror (errno));
  pid_t pid = fork ();
  if (pid < 0)
    usage_error ("fork: %s", strerror (errno));
  if (pid > 0)
    {
      /* Reap the middle process ourselves: no zombie waits for pid 1. */
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
      _exit (0);
    }
  setsid ();
  pid = fork ();
  if (pid < 0)
    {
      ready ("err berth-shim: fork: %s", strerror (errno));
      _exit (1);
    }
  if (pid > 0)
    _exit (0);
  dup2 (devnull, 0);
  dup2 (devnull, 1);
  dup2 (logfd, 2);
  close (devnull);
  close (logfd);
  if (chdir ("/") < 0)
    _exit (1);
}

int
main (int argc, char **argv)
{
  signal (SIGPIPE, SIG_IGN);
  parse_flags (argc, argv);
  if (S.ready_fd >= 0 && S.ready_fd < 3)
    {
      int fd = fcntl (S.ready_fd, F_DUPFD_CLOEXEC, 3);
      if (fd < 0)
        usage_error ("cannot move the ready fd: %s", strerror (errno));
      S.ready_fd = fd;
    }
  if (S.ready_fd >= 0)
    fcntl (S.ready_fd, F_SETFD, FD_CLOEXEC);
  /* Whatever else we inherited is not ours to keep open (runc's init would
   * inherit it too). */
  if (S.ready_fd < 0)
    close_range (3, ~0U, 0);
  else
    {
      if (S.ready_fd > 3)
        close_range (3, (unsigned) S.ready_fd - 1, 0);
      close_range ((unsigned) S.ready_fd + 1, ~0U, 0);
    }

  daemonize ();
  if (prctl (PR_SET_CHILD_SUBREAPER, 1) < 0)
    shim_log ("PR_SET_CHILD_SUBREAPER: %s", strerror (errno));

  char line[64];
  snprintf (line, sizeof line, "%d\n", (int) getpid ());
  int r = write_file_atomic ("shim.pid", line);
  if (r < 0)
    {
      ready ("err berth-shim: cannot write %s/shim.pid: %s", S.dir, strerror (-r));
      _exit (1);
    }
  snprintf (S.rt_root, sizeof S.rt_root, "%s/runtime", S.dir);
  snprintf (S.rt_log, sizeof S.rt_log, "%s/runtime.log", S.dir);
  if (mkdir (S.rt_root, 0711) < 0 && errno != EEXIST)
    {
      ready ("err berth-shim: cannot create %s: %s", S.rt_root, strerror (errno));
      shim_exit (1);
    }

  sigset_t mask;
  sigemptyset (&mask);
  sigaddset (&mask, SIGCHLD);
  sigprocmask (SIG_BLOCK, &mask, NULL);
  S.sfd = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  S.epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (S.sfd < 0 || S.epfd < 0)
    {
      ready ("err berth-shim: signalfd/epoll: %s", strerror (errno));
      shim_exit (1);
    }
  S.lfd = bind_socket ();
  if (S.lfd < 0)
    {
      ready ("err berth-shim: cannot listen on %s: %s", S.sock_path,
             S.lfd == -EADDRINUSE ? "another shim is serving it" : strerror (-S.lfd));
      if (S.lfd == -EADDRINUSE)
        _exit (1); /* leave the other shim's files alone */
      shim_exit (1);
    }
  S.listen_w = (struct watch){ W_LISTEN, NULL };
  S.signal_w = (struct watch){ W_SIGNAL, NULL };
  ep_add (S.lfd, EPOLLIN, &S.listen_w);
  ep_add (S.sfd, EPOLLIN, &S.signal_w);

  if (S.has_log && (r = cri_log_open (&S.log)) < 0)
    {
      ready ("err berth-shim: cannot open the container log %s: %s", S.log.path, strerror (-r));
      shim_exit (1);
    }

  struct proc *init = proc_new ("", S.terminal, S.stdin_path, S.stdout_path, S.stderr_path);
  if (init == NULL)
    {
      ready ("err berth-shim: out of memory");
      shim_exit (1);
    }
  init->logged = S.has_log;
  char msg[2048];
  struct child_io ci;
  if (proc_io_prepare (init, &ci, msg, sizeof msg) < 0)
    {
      ready ("err %s", msg);
      shim_exit (1);
    }
  int lfd = -1, console = -1;
  if (S.terminal && (lfd = console_listen (msg, sizeof msg)) < 0)
    {
      ready ("err %s", msg);
      shim_exit (1);
    }
  char pidfile[PATH_MAX];
  snprintf (pidfile, sizeof pidfile, "%s/init.pid", S.dir);
  unlink (pidfile);
  const char *verb[12];
  size_t k = 0;
  verb[k++] = "create";
  verb[k++] = "--bundle";
  verb[k++] = S.bundle;
  verb[k++] = "--pid-file";
  verb[k++] = pidfile;
  if (S.terminal)
    {
      verb[k++] = "--console-socket";
      verb[k++] = S.console_path;
    }
  verb[k++] = S.id;
  verb[k] = NULL;
  struct rt_result res;
  struct rt_opts o = { ci.in, ci.out, ci.err, lfd, &console, 60000 };
  rt_run (&S, verb, &o, &res);
  rt_result_clear (&res);
  child_io_close (&ci);
  if (lfd >= 0)
    console_done (lfd);
  pid_t pid = 0;
  if (res.status == 0 && !read_pid_file (pidfile, &pid))
    snprintf (res.msg, sizeof res.msg, "%.200s create wrote no pid to %.1500s", S.runtime, pidfile);
  else if (res.status == 0 && S.terminal && console < 0)
    snprintf (res.msg, sizeof res.msg, "%.200s create sent no terminal on the console socket", S.runtime);
  if (res.status != 0 || pid == 0 || (S.terminal && console < 0))
    {
      shim_log ("create failed: %s", res.msg);
      /* Leave no half-created container behind, and write nothing into
       * the task directory once the starter has our answer: it removes
       * the directory as soon as it reads "err". */
      const char *del[] = { "delete", "--force", S.id, NULL };
      char ignored[256];
      if (res.status >= 0)
        rt_simple (del, ignored, sizeof ignored);
      if (console >= 0)
        close (console);
      output_pump (&init->err, 1u << 20);
      for (size_t i = 0; i < S.nprocs; i++)
        proc_io_close (S.procs[i]);
      cri_log_close (&S.log);
      shim_log ("exiting");
      shim_remove_files ();
      ready ("err %s", res.msg);
      _exit (1);
    }
  init->pid = pid;
  proc_io_start (init, console);
  S.oom.w = (struct watch){ W_OOM, NULL };
  if ((r = oom_watch_open (&S.oom, pid)) < 0)
    shim_log ("no OOM notifications for this container: %s", strerror (-r));
  else
    ep_add (S.oom.fd, EPOLLIN, &S.oom.w);
  shim_log ("created, init pid %d", (int) pid);
  ready ("ok %d", (int) pid);
  loop ();
}
