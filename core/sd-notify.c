#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "sd-notify.h"

int
sd_notify_send (const char *fmt, ...)
{
  const char *path = getenv ("NOTIFY_SOCKET");
  if (path == NULL || *path == '\0')
    return 0;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  size_t len = strlen (path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
    return -EINVAL;
  memcpy (sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = '\0'; /* abstract namespace */
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (n < 0 || (size_t) n >= sizeof msg)
    return -EMSGSIZE;
  _cleanup_close_ int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  socklen_t salen = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + len);
  if (sendto (fd, msg, (size_t) n, MSG_NOSIGNAL, (struct sockaddr *) &sa, salen) < 0)
    return -errno;
  return 1;
}

int
sd_listen_fd_count (void)
{
  const char *pid = getenv ("LISTEN_PID");
  const char *fds = getenv ("LISTEN_FDS");
  int n = 0;
  if (pid && fds && strtol (pid, NULL, 10) == (long) getpid ())
    {
      char *end;
      long v = strtol (fds, &end, 10);
      if (*end == '\0' && v > 0 && v < 1024)
        n = (int) v;
    }
  unsetenv ("LISTEN_PID");
  unsetenv ("LISTEN_FDS");
  unsetenv ("LISTEN_FDNAMES");
  for (int fd = SD_LISTEN_FDS_FIRST; fd < SD_LISTEN_FDS_FIRST + n; fd++)
    {
      int flags = fcntl (fd, F_GETFD);
      if (flags < 0)
        return -errno;
      fcntl (fd, F_SETFD, flags | FD_CLOEXEC);
    }
  return n;
}

int
sd_fd_is_unix_listener (int fd)
{
  int type = 0, listening = 0;
  socklen_t l = sizeof type;
  if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_STREAM)
    return 0;
  l = sizeof listening;
  if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l) < 0 || !listening)
    return 0;
  struct sockaddr_storage ss;
  l = sizeof ss;
  if (getsockname (fd, (struct sockaddr *) &ss, &l) < 0 || ss.ss_family != AF_UNIX)
    return 0;
  return 1;
}
