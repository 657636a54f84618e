/* The client side of the berth-shim protocol: one SOCK_SEQPACKET message
 * per request and per reply, fields separated by NUL bytes (the contract in
 * docs/design-notes.md, "berth-shim protocol").  Replies are treated as
 * hostile: at most 16 fields are looked at, a field is never read past the
 * message, and a message is at most 4 MiB (a `pids` or `stats` answer). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "shimrt-private.h"

#define SHIM_MSG_MAX (4u << 20)

int64_t
shimrt_monotonic_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
shim_connect (const char *dir)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  _cleanup_close_ int dfd = -1;
  if ((size_t)snprintf (sa.sun_path, sizeof sa.sun_path, "%s/shim.sock", dir) >= sizeof sa.sun_path)
    {
      /* containerd hashes long socket paths; we go through the directory's fd. */
      dfd = open (dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0)
        return -errno;
      snprintf (sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/shim.sock", dfd);
    }
  /* Non-blocking: a stopped shim does not accept, and once its listen
   * backlog is full a blocking connect() would wait for it forever (and a
   * blocking send, once its receive queue is full).  On a unix socket a
   * non-blocking connect either completes or fails with EAGAIN. */
  int fd = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  if (connect (fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    {
      int e = errno;
      close (fd);
      return -e;
    }
  return fd;
}

int
shim_send (int fd, const char *const *fields, size_t n)
{
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += strlen (fields[i] ? fields[i] : "") + 1;
  _cleanup_free_ char *buf = malloc (len ? len : 1);
  if (buf == NULL)
    return -ENOMEM;
  size_t off = 0;
  for (size_t i = 0; i < n; i++)
    {
      const char *f = fields[i] ? fields[i] : "";
      size_t l = strlen (f) + 1;
      memcpy (buf + off, f, l);
      off += l;
    }
  /* Drop the last NUL: "a\0b" is two fields either way, and the shim may
   * count a trailing empty field. */
  ssize_t w = send (fd, buf, len ? len - 1 : 0, MSG_NOSIGNAL);
  if (w < 0)
    return -errno;
  return (size_t)w == (len ? len - 1 : 0) ? 0 : -EMSGSIZE;
}

void
shim_msg_clear (struct shim_msg *m)
{
  free (m->buf);
  memset (m, 0, sizeof *m);
}

static void
msg_split (struct shim_msg *m, size_t len)
{
  m->buf[len] = '\0';
  size_t k = 0;
  for (size_t off = 0; k < sizeof m->f / sizeof m->f[0];)
    {
      m->f[k++] = m->buf + off;
      size_t l = strnlen (m->buf + off, len - off);
      if (off + l >= len)
        break;
      off += l + 1;
    }
  m->n = k;
  for (size_t i = k; i < sizeof m->f / sizeof m->f[0]; i++)
    m->f[i] = "";
}

int
shim_recv (struct shimrt *s, berth_ctx *ctx, int fd, int64_t deadline, struct shim_msg *ret)
{
  memset (ret, 0, sizeof *ret);
  for (;;)
    {
      int wait_ms = -1;
      int64_t now = shimrt_monotonic_ms ();
      if (deadline > 0)
        {
          if (now >= deadline)
            return -ETIMEDOUT;
          wait_ms = (int)(deadline - now);
        }
      if (ctx != NULL && (wait_ms < 0 || wait_ms > 200))
        wait_ms = 200;
      struct pollfd p = { .fd = fd, .events = POLLIN };
      int r = poll (&p, 1, wait_ms);
      if (r < 0 && errno != EINTR)
        return -errno;
      if (ctx != NULL && s->host->ctx_cancelled (ctx))
        return -ECANCELED;
      if (r <= 0)
        continue;
      if (p.revents & POLLIN)
        break;
      if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return -ECONNRESET;
    }
  ssize_t len = recv (fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  if (len < 0)
    return errno == ECONNRESET ? -ECONNRESET : -errno;
  if (len == 0)
    {
      /* An empty message and a hang-up look alike on SEQPACKET; both end the talk. */
      char c;
      (void)recv (fd, &c, 1, MSG_DONTWAIT);
      return -ECONNRESET;
    }
  if ((size_t)len > SHIM_MSG_MAX)
    return -EMSGSIZE;
  ret->buf = malloc ((size_t)len + 1);
  if (ret->buf == NULL)
    return -ENOMEM;
  ssize_t got = recv (fd, ret->buf, (size_t)len, MSG_DONTWAIT);
  if (got < 0)
    {
      int e = errno;
      shim_msg_clear (ret);
      return -e;
    }
  msg_split (ret, (size_t)got);
  return 0;
}

int
shim_errcode (const char *name)
{
  static const struct
  {
    const char *name;
    int code;
  } names[] = {
    { "notfound", BERTH_E_NOTFOUND },
    { "exists", BERTH_E_EXISTS },
    { "alreadyexists", BERTH_E_EXISTS },
    { "precondition", BERTH_E_PRECONDITION },
    { "failedprecondition", BERTH_E_PRECONDITION },
    { "invalid", BERTH_E_INVALID },
    { "invalidargument", BERTH_E_INVALID },
    { "unavailable", BERTH_E_UNAVAILABLE },
    { "notsup", BERTH_E_NOTSUP },
    { "unimplemented", BERTH_E_NOTSUP },
    { "notsupported", BERTH_E_NOTSUP },
    { "cancelled", BERTH_E_CANCELLED },
    { "canceled", BERTH_E_CANCELLED },
    { "nomem", BERTH_E_NOMEM },
    { "internal", BERTH_E_INTERNAL },
    { "unknown", BERTH_E_INTERNAL },
    { "deadline", BERTH_E_DEADLINE },
    { "deadlineexceeded", BERTH_E_DEADLINE },
    { "permission", BERTH_E_PERMISSION },
    { "permissiondenied", BERTH_E_PERMISSION },
    { "unauthenticated", BERTH_E_UNAUTHENTICATED },
    { "exhausted", BERTH_E_EXHAUSTED },
    { "resourceexhausted", BERTH_E_EXHAUSTED },
    { "conflict", BERTH_E_CONFLICT },
    { "aborted", BERTH_E_CONFLICT },
  };
  if (name == NULL)
    return BERTH_E_INTERNAL;
  char *end;
  long n = strtol (name, &end, 10);
  if (*name && *end == '\0' && n < 0 && n >= BERTH_E_MIN)
    return (int)n;
  if (strncasecmp (name, "BERTH_", 6) == 0)
    name += 6;
  if (strncasecmp (name, "E_", 2) == 0)
    name += 2;
  char norm[32];
  size_t k = 0;
  for (; *name && k + 1 < sizeof norm; name++)
    if (*name != '_' && *name != ' ' && *name != '-')
      norm[k++] = (char)(*name | 0x20);
  norm[k] = '\0';
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp (names[i].name, norm) == 0)
      return names[i].code;
  return BERTH_E_INTERNAL;
}
