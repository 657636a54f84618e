/* Process helpers of libberth-shimrt: running the runtime binary for
 * cleanups, the private mount namespace that hides cgroup v2 from crun, and
 * removing a task directory.  Everything between fork and exec is
 * async-signal-safe: berthd is multi-threaded. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shimrt-private.h"

extern char **environ;

int
shimrt_hide_cgroup2 (void)
{
  if (unshare (CLONE_NEWNS) < 0)
    return -errno;
  /* Slave, not private: mounts the host makes later still reach us. */
  if (mount (NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
    return -errno;
  if (umount2 ("/sys/fs/cgroup/unified", MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    return -errno;
  return 0;
}

int
shimrt_run (char *const *argv, uint32_t flags, uint32_t timeout_ms, char *ret_stderr, size_t len)
{
  int pfd[2];
  if (pipe2 (pfd, O_CLOEXEC) < 0)
    return -errno;
  int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0)
    {
      int e = errno;
      close (pfd[0]);
      close (pfd[1]);
      return -e;
    }
  pid_t pid = fork ();
  if (pid < 0)
    {
      int e = errno;
      close (pfd[0]);
      close (pfd[1]);
      close (devnull);
      return -e;
    }
  if (pid == 0)
    {
      if (dup2 (devnull, 0) < 0 || dup2 (devnull, 1) < 0 || dup2 (pfd[1], 2) < 0)
        _exit (126);
      if ((flags & BERTH_SHIMRT_HIDE_CGROUP2) && shimrt_hide_cgroup2 () < 0)
        _exit (126);
      execve (argv[0], argv, environ);
      _exit (127);
    }
  close (pfd[1]);
  close (devnull);
  size_t off = 0;
  int64_t deadline = shimrt_monotonic_ms () + (timeout_ms ? timeout_ms : 10000);
  for (;;)
    {
      int64_t left = deadline - shimrt_monotonic_ms ();
      if (left <= 0)
        {
          kill (pid, SIGKILL);
          break;
        }
      struct pollfd p = { .fd = pfd[0], .events = POLLIN };
      int r = poll (&p, 1, (int)left);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        continue;
      char chunk[512];
      ssize_t n = read (pfd[0], chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      if (ret_stderr && len > 1 && off < len - 1)
        {
          size_t take = (size_t)n < len - 1 - off ? (size_t)n : len - 1 - off;
          memcpy (ret_stderr + off, chunk, take);
          off += take;
        }
    }
  close (pfd[0]);
  if (ret_stderr && len > 0)
    ret_stderr[off] = '\0';
  int status;
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return -errno;
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return 128 + WTERMSIG (status);
}

static int
remove_one (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  if (type == FTW_DP)
    rmdir (path);
  else
    unlink (path);
  return 0;
}

int
shimrt_remove_tree (const char *path)
{
  if (nftw (path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
    return -errno;
  struct stat st;
  return lstat (path, &st) == 0 ? -ENOTEMPTY : 0;
}
