/* OOM kills in the container's memory cgroup, found from /proc/<init>/cgroup
 * (as containerd's shim does, pkg/oom/v1 and v2):
 *  - cgroup v1: an eventfd registered on memory.oom_control through
 *    cgroup.event_control; the kernel also signals it when the cgroup goes
 *    away, so a signal counts only while memory.oom_control is readable;
 *  - cgroup v2: inotify on memory.events, the oom_kill counter again.
 * This machine's hybrid layout has the memory controller on v1. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

/* "oom_kill N" out of memory.oom_control (v1) or memory.events (v2). */
static long long
read_oom_kills (const char *path)
{
  char buf[1024];
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  for (char *p = buf; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL)
    if (strncmp (p, "oom_kill ", 9) == 0)
      return strtoll (p + 9, NULL, 10);
  return 0;
}

/* The cgroup path of a hierarchy in /proc/<pid>/cgroup: v1 the line whose
 * controller list has "memory", v2 the "0::" line. */
static bool
cgroup_of (pid_t pid, bool v2, char *ret, size_t len)
{
  char path[64], buf[4096];
  snprintf (path, sizeof path, "/proc/%d/cgroup", (int) pid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  for (char *line = buf; line && *line;)
    {
      char *nl = strchr (line, '\n');
      if (nl)
        *nl = '\0';
      char *c1 = strchr (line, ':');
      char *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
      if (c2)
        {
          *c2 = '\0';
          bool match = false;
          if (v2)
            match = strcmp (line, "0") == 0 && c1[1] == '\0';
          else
            for (char *tok = c1 + 1, *save = NULL; (tok = strtok_r (tok, ",", &save)); tok = NULL)
              match |= strcmp (tok, "memory") == 0;
          if (match && (size_t) snprintf (ret, len, "%s", c2 + 1) < len)
            return true;
        }
      line = nl ? nl + 1 : NULL;
    }
  return false;
}

int
oom_watch_open (struct oom_watch *w, pid_t pid)
{
  char cg[PATH_MAX], ctl[PATH_MAX + 64], ev[PATH_MAX + 64];
  w->fd = -1;
  if (cgroup_of (pid, false, cg, sizeof cg))
    {
      snprintf (w->counter, sizeof w->counter, "/sys/fs/cgroup/memory%s/memory.oom_control", cg);
      snprintf (ctl, sizeof ctl, "/sys/fs/cgroup/memory%s/cgroup.event_control", cg);
      int efd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
      int ofd = open (w->counter, O_RDONLY | O_CLOEXEC);
      int cfd = open (ctl, O_WRONLY | O_CLOEXEC);
      bool ok = efd >= 0 && ofd >= 0 && cfd >= 0 && dprintf (cfd, "%d %d", efd, ofd) > 0;
      int e = errno;
      if (ofd >= 0)
        close (ofd);
      if (cfd >= 0)
        close (cfd);
      if (!ok)
        {
          if (efd >= 0)
            close (efd);
          return -e;
        }
      w->fd = efd;
      w->v2 = false;
    }
  else if (cgroup_of (pid, true, cg, sizeof cg))
    {
      snprintf (w->counter, sizeof w->counter, "/sys/fs/cgroup%s/memory.events", cg);
      if (access (w->counter, R_OK) < 0)
        {
          /* Hybrid: v2 lives under /sys/fs/cgroup/unified. */
          snprintf (ev, sizeof ev, "/sys/fs/cgroup/unified%s/memory.events", cg);
          if (access (ev, R_OK) < 0)
            return -ENOENT;
          snprintf (w->counter, sizeof w->counter, "%s", ev);
        }
      int fd = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
      if (fd < 0)
        return -errno;
      if (inotify_add_watch (fd, w->counter, IN_MODIFY) < 0)
        {
          int e = errno;
          close (fd);
          return -e;
        }
      w->fd = fd;
      w->v2 = true;
    }
  else
    return -ENOENT;
  w->kills = read_oom_kills (w->counter);
  if (w->kills < 0)
    w->kills = 0;
  return 0;
}

int
oom_watch_fired (struct oom_watch *w)
{
  char buf[4096];
  while (read (w->fd, buf, sizeof buf) > 0)
    ;
  long long k = read_oom_kills (w->counter);
  if (k < 0)
    return -1; /* the cgroup is gone: stop watching */
  /* v1 signals when the cgroup enters OOM, before the kill counts it (and
   * when the cgroup is removed, which the failed read above catches). */
  if (!w->v2)
    {
      /* One OOM episode signals many times: report it once a second at most. */
      struct timespec ts;
      clock_gettime (CLOCK_MONOTONIC, &ts);
      long long now = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
      bool quiet = k == w->kills && w->last_ms && now - w->last_ms < 1000;
      w->kills = k;
      if (quiet)
        return 0;
      w->last_ms = now;
      return 1;
    }
  if (k > w->kills)
    {
      w->kills = k;
      return 1;
    }
  return 0;
}

int
oom_watch_killed (struct oom_watch *w)
{
  if (w->fd < 0)
    return 0;
  long long k = read_oom_kills (w->counter);
  if (k <= w->kills)
    return 0;
  w->kills = k;
  /* The notification still queued for this kill stays quiet (v1). */
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  w->last_ms = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  return 1;
}
