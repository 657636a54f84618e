/* Running the runc-compatible binary, as containerd's shim does through
 * go-runc:
 *   <bin> [global args] --root <taskdir>/runtime --log <taskdir>/runtime.log
 *         --log-format json <verb> ...
 * Synchronous, from the single event loop, bounded by a deadline (the
 * binary is killed when it passes it).  While it runs, the console socket
 * (for --console-socket) is served so that the pty master can arrive. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define RT_OUT_MAX (1u << 20)

static int64_t
monotonic_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Receive one fd sent with SCM_RIGHTS (runc's console socket protocol:
 * one message whose payload is the pty name and whose rights carry the master). */
static int
recv_fd (int sock)
{
  char name[256];
  struct iovec iov = { name, sizeof name };
  union
  {
    struct cmsghdr h;
    char buf[CMSG_SPACE (sizeof (int) * 4)];
  } u;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  ssize_t n = recvmsg (sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0)
    return -errno;
  int got = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR (&mh); c; c = CMSG_NXTHDR (&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      {
        size_t nfds = (c->cmsg_len - CMSG_LEN (0)) / sizeof (int);
        int *fds = (int *) CMSG_DATA (c);
        for (size_t i = 0; i < nfds; i++)
          {
            if (got < 0)
              got = fds[i];
            else
              close (fds[i]); /* hostile sender: keep one */
          }
      }
  return got >= 0 ? got : -EBADMSG;
}

static void
read_some (int *fd, char **buf, size_t *len, size_t *cap, size_t max)
{
  for (;;)
    {
      if (*len + 4096 + 1 > *cap)
        {
          if (*cap >= max + 1)
            {
              /* Over the limit: drain and drop. */
              char sink[4096];
              ssize_t n = read (*fd, sink, sizeof sink);
              if (n > 0)
                continue;
              if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
              close (*fd);
              *fd = -1;
              return;
            }
          size_t ncap = *cap ? *cap * 2 : 8192;
          if (ncap > max + 1)
            ncap = max + 1;
          char *nb = realloc (*buf, ncap);
          if (nb == NULL)
            {
              close (*fd);
              *fd = -1;
              return;
            }
          *buf = nb;
          *cap = ncap;
        }
      ssize_t n = read (*fd, *buf + *len, *cap - *len - 1);
      if (n > 0)
        {
          *len += (size_t) n;
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return;
      close (*fd);
      *fd = -1;
      return;
    }
}

static void
runtime_log_reason (const char *path, off_t from, char *ret, size_t retlen)
{
  static char buf[65536];
  *ret = '\0';
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return;
  struct stat st;
  if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode) && st.st_size > from)
    {
      off_t start = st.st_size - from > (off_t) sizeof buf - 1 ? st.st_size - (off_t) sizeof buf + 1 : from;
      ssize_t n = pread (fd, buf, sizeof buf - 1, start);
      if (n > 0)
        runtime_msg_from_json_log (buf, (size_t) n, ret, retlen);
    }
  close (fd);
}

int
rt_run (struct shim *s, const char *const *verb, const struct rt_opts *o, struct rt_result *res)
{
  memset (res, 0, sizeof *res);
  res->status = -1;
  if (o->ret_console)
    *o->ret_console = -1;

  size_t nverb = 0;
  while (verb[nverb])
    nverb++;
  size_t n = 1 + s->n_rt_args + 6 + nverb + 1;
  const char **argv = calloc (n, sizeof *argv);
  if (argv == NULL)
    {
      snprintf (res->msg, sizeof res->msg, "out of memory");
      return -ENOMEM;
    }
  size_t k = 0;
  argv[k++] = s->runtime;
  for (size_t i = 0; i < s->n_rt_args; i++)
    argv[k++] = s->rt_args[i];
  argv[k++] = "--root";
  argv[k++] = s->rt_root;
  argv[k++] = "--log";
  argv[k++] = s->rt_log;
  argv[k++] = "--log-format";
  argv[k++] = "json";
  for (size_t i = 0; i < nverb; i++)
    argv[k++] = verb[i];
  argv[k] = NULL;

  struct stat lst;
  off_t log_from = stat (s->rt_log, &lst) == 0 ? lst.st_size : 0;

  int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, execp[2] = { -1, -1 };
  int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0 || pipe2 (execp, O_CLOEXEC) < 0 || (o->fd_out < 0 && pipe2 (outp, O_CLOEXEC) < 0)
      || (o->fd_err < 0 && pipe2 (errp, O_CLOEXEC) < 0))
    {
      int e = errno;
      snprintf (res->msg, sizeof res->msg, "cannot set up the runtime's stdio: %s", strerror (e));
      for (int *p = &outp[0]; p <= &outp[1]; p++)
        if (*p >= 0)
          close (*p);
      for (int *p = &errp[0]; p <= &errp[1]; p++)
        if (*p >= 0)
          close (*p);
      if (execp[0] >= 0)
        close (execp[0]), close (execp[1]);
      if (devnull >= 0)
        close (devnull);
      free (argv);
      return -e;
    }
  int cin = o->fd_in >= 0 ? o->fd_in : devnull;
  int cout = o->fd_out >= 0 ? o->fd_out : outp[1];
  int cerr = o->fd_err >= 0 ? o->fd_err : errp[1];

  pid_t pid = fork ();
  if (pid == 0)
    {
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      signal (SIGPIPE, SIG_DFL);
      if (dup2 (cin, 0) < 0 || dup2 (cout, 1) < 0 || dup2 (cerr, 2) < 0)
        {
          int e = errno;
          (void) !write (execp[1], &e, sizeof e);
          _exit (127);
        }
      execv (argv[0], (char *const *) argv);
      int e = errno;
      (void) !write (execp[1], &e, sizeof e);
      _exit (127);
    }
  int fork_errno = errno;
  free (argv);
  close (devnull);
  close (execp[1]);
  if (outp[1] >= 0)
    close (outp[1]);
  if (errp[1] >= 0)
    close (errp[1]);
  if (pid < 0)
    {
      close (execp[0]);
      if (outp[0] >= 0)
        close (outp[0]);
      if (errp[0] >= 0)
        close (errp[0]);
      snprintf (res->msg, sizeof res->msg, "cannot fork: %s", strerror (fork_errno));
      return -fork_errno;
    }

  int exec_errno = 0;
  ssize_t en;
  do
    en = read (execp[0], &exec_errno, sizeof exec_errno);
  while (en < 0 && errno == EINTR);
  close (execp[0]);
  if (en == (ssize_t) sizeof exec_errno)
    {
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
      if (outp[0] >= 0)
        close (outp[0]);
      if (errp[0] >= 0)
        close (errp[0]);
      snprintf (res->msg, sizeof res->msg, "cannot execute the runtime %s: %s", s->runtime, strerror (exec_errno));
      return -exec_errno;
    }

  if (outp[0] >= 0)
    fcntl (outp[0], F_SETFL, O_NONBLOCK);
  if (errp[0] >= 0)
    fcntl (errp[0], F_SETFL, O_NONBLOCK);
  int pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  int console_conn = -1;
  size_t out_cap = 0, err_len = 0, err_cap = 0;
  char *errbuf = NULL;
  int64_t deadline = monotonic_ms () + (o->timeout_ms > 0 ? o->timeout_ms : 30000);
  int64_t linger = -1; /* after the binary exited: a short wait for pipe EOF */
  bool exited = false, killed = false;
  int wstatus = 0;

  for (;;)
    {
      if (!exited)
        {
          pid_t w = waitpid (pid, &wstatus, WNOHANG);
          if (w == pid)
            {
              exited = true;
              linger = monotonic_ms () + 200;
            }
        }
      bool want_console = o->console_listen >= 0 && o->ret_console && *o->ret_console < 0;
      if (exited && outp[0] < 0 && errp[0] < 0)
        break;
      int64_t now = monotonic_ms ();
      if (exited && now >= linger)
        break;
      if (!exited && now >= deadline && !killed)
        {
          kill (pid, SIGKILL);
          killed = true;
          deadline = now + 5000;
        }
      struct pollfd p[5];
      int np = 0;
      int i_out = -1, i_err = -1, i_lis = -1, i_con = -1;
      if (outp[0] >= 0)
        i_out = np, p[np++] = (struct pollfd){ outp[0], POLLIN, 0 };
      if (errp[0] >= 0)
        i_err = np, p[np++] = (struct pollfd){ errp[0], POLLIN, 0 };
      if (!exited && pidfd >= 0)
        p[np++] = (struct pollfd){ pidfd, POLLIN, 0 };
      if (want_console && console_conn < 0)
        i_lis = np, p[np++] = (struct pollfd){ o->console_listen, POLLIN, 0 };
      if (want_console && console_conn >= 0)
        i_con = np, p[np++] = (struct pollfd){ console_conn, POLLIN, 0 };
      int64_t until = exited ? linger : deadline;
      int wait_ms = (int) (until - now);
      if (pidfd < 0 && !exited && wait_ms > 20)
        wait_ms = 20; /* no pidfd: poll for the exit */
      if (wait_ms < 0)
        wait_ms = 0;
      int r = poll (p, (nfds_t) np, wait_ms);
      if (r < 0 && errno != EINTR)
        break;
      if (r <= 0)
        continue;
      if (i_out >= 0 && p[i_out].revents)
        read_some (&outp[0], &res->out, &res->out_len, &out_cap, RT_OUT_MAX);
      if (i_err >= 0 && p[i_err].revents)
        read_some (&errp[0], &errbuf, &err_len, &err_cap, 65536);
      if (i_lis >= 0 && p[i_lis].revents)
        console_conn = accept4 (o->console_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (i_con >= 0 && p[i_con].revents)
        {
          int fd = recv_fd (console_conn);
          if (fd >= 0)
            *o->ret_console = fd;
          close (console_conn);
          console_conn = -1;
        }
    }
  if (!exited)
    {
      kill (pid, SIGKILL);
      while (waitpid (pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    }
  if (o->ret_console && *o->ret_console < 0 && o->console_listen >= 0)
    {
      /* The fd may have arrived just before the binary exited. */
      if (console_conn < 0)
        console_conn = accept4 (o->console_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (console_conn >= 0)
        {
          int fd = recv_fd (console_conn);
          if (fd >= 0)
            *o->ret_console = fd;
        }
    }
  if (console_conn >= 0)
    close (console_conn);
  if (pidfd >= 0)
    close (pidfd);
  if (outp[0] >= 0)
    close (outp[0]);
  if (errp[0] >= 0)
    close (errp[0]);
  if (res->out)
    res->out[res->out_len] = '\0';

  res->status = WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : 128 + WTERMSIG (wstatus);
  if (res->status != 0)
    {
      runtime_log_reason (s->rt_log, log_from, res->msg, sizeof res->msg);
      if (res->msg[0] == '\0' && errbuf)
        runtime_msg_from_stderr (errbuf, err_len, res->msg, sizeof res->msg);
      if (res->msg[0] == '\0')
        snprintf (res->msg, sizeof res->msg, "%s %s exited with status %d%s", s->runtime, verb[0], res->status,
                  killed ? " (killed: it did not finish in time)" : "");
    }
  free (errbuf);
  return 0;
}

void
rt_result_clear (struct rt_result *res)
{
  free (res->out);
  res->out = NULL;
  res->out_len = 0;
}
