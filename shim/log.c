/* The container log in the CRI format (kubernetes' cri-api "logs" design,
 * as containerd's CRI plugin writes it):
 *   <RFC3339Nano UTC> <stdout|stderr> <F|P> <text>\n
 * One record per line of output; a line longer than 16 KiB is cut into
 * "P" (partial) records followed by a final "F".  Rotation is by size:
 * path -> path.1 -> ... -> path.N, the oldest dropped, as the kubelet's
 * container log manager does. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

int64_t
now_realtime_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Go's time.RFC3339Nano in UTC: the fraction loses its trailing zeros (and
 * the dot when it is zero), which is what containerd writes. */
size_t
format_rfc3339nano (char *buf, size_t len, int64_t ts_ns)
{
  time_t sec = (time_t) (ts_ns / 1000000000);
  long nsec = (long) (ts_ns % 1000000000);
  if (nsec < 0)
    {
      nsec += 1000000000;
      sec--;
    }
  struct tm tm;
  gmtime_r (&sec, &tm);
  size_t n = strftime (buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
  if (n == 0)
    return 0;
  if (nsec)
    {
      char frac[16];
      snprintf (frac, sizeof frac, ".%09ld", nsec);
      size_t fl = strlen (frac);
      while (frac[fl - 1] == '0')
        frac[--fl] = '\0';
      if (n + fl + 2 > len)
        return 0;
      memcpy (buf + n, frac, fl + 1);
      n += fl;
    }
  if (n + 2 > len)
    return 0;
  buf[n++] = 'Z';
  buf[n] = '\0';
  return n;
}

static int
mkdir_parents (const char *path)
{
  char tmp[PATH_MAX];
  if (snprintf (tmp, sizeof tmp, "%s", path) >= (int) sizeof tmp)
    return -ENAMETOOLONG;
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (tmp, 0755) < 0 && errno != EEXIST)
          return -errno;
        *p = '/';
      }
  return 0;
}

int
cri_log_open (struct cri_log *l)
{
  int r = mkdir_parents (l->path);
  if (r < 0)
    return r;
  l->fd = open (l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
  if (l->fd < 0)
    return -errno;
  struct stat st;
  l->size = fstat (l->fd, &st) == 0 ? (uint64_t) st.st_size : 0;
  return 0;
}

void
cri_log_close (struct cri_log *l)
{
  if (l->fd >= 0)
    close (l->fd);
  l->fd = -1;
}

static void
cri_log_rotate (struct cri_log *l)
{
  char from[PATH_MAX], to[PATH_MAX];
  cri_log_close (l);
  if (l->max_files == 0)
    unlink (l->path);
  else
    {
      for (unsigned i = l->max_files; i > 1; i--)
        {
          snprintf (from, sizeof from, "%s.%u", l->path, i - 1);
          snprintf (to, sizeof to, "%s.%u", l->path, i);
          rename (from, to);
        }
      snprintf (to, sizeof to, "%s.1", l->path);
      rename (l->path, to);
    }
  l->fd = open (l->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
  l->size = 0;
}

int
cri_log_write (struct cri_log *l, int64_t ts_ns, const char *stream, bool partial, const char *text, size_t len)
{
  if (l->fd < 0)
    return -EBADF;
  char head[96];
  size_t n = format_rfc3339nano (head, sizeof head, ts_ns);
  n += (size_t) snprintf (head + n, sizeof head - n, " %s %c ", stream, partial ? 'P' : 'F');
  uint64_t rec = n + len + 1;
  if (l->max_size > 0 && l->size > 0 && l->size + rec > l->max_size)
    {
      cri_log_rotate (l);
      if (l->fd < 0)
        return -errno;
    }
  struct iovec iov[3] = { { head, n }, { (void *) text, len }, { (void *) "\n", 1 } };
  ssize_t w = writev (l->fd, iov, 3);
  if (w < 0)
    return -errno;
  l->size += (uint64_t) w;
  return 0;
}

void
cri_log_feed (struct cri_log *l, const char *stream, char *line, size_t *len, const char *data, size_t n, bool eof)
{
  int64_t ts = now_realtime_ns ();
  while (n > 0)
    {
      const char *nl = memchr (data, '\n', n);
      size_t take = nl ? (size_t) (nl - data) : n;
      if (*len == 0 && nl && take <= SHIM_CRI_LINE_MAX)
        {
          /* The common case: a whole line in the buffer, no copy. */
          cri_log_write (l, ts, stream, false, data, take);
          data += take + 1;
          n -= take + 1;
          continue;
        }
      size_t room = SHIM_CRI_LINE_MAX - *len;
      size_t c = take < room ? take : room;
      memcpy (line + *len, data, c);
      *len += c;
      data += c;
      n -= c;
      if (*len == SHIM_CRI_LINE_MAX && !(nl && c == take))
        {
          cri_log_write (l, ts, stream, true, line, *len);
          *len = 0;
        }
      else if (nl && c == take)
        {
          cri_log_write (l, ts, stream, false, line, *len);
          *len = 0;
          data++;
          n--;
        }
    }
  if (eof && *len > 0)
    {
      cri_log_write (l, ts, stream, false, line, *len);
      *len = 0;
    }
}
