/* Small helpers of the local content store: digests, paths, small files.
 * The plugin reaches the host only through struct berth_host, so these are
 * its own (no lib/). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "local.h"

int
local_digest_parse (struct local *s, const char *digest, struct local_digest *d, berth_error *err)
{
  if (digest == NULL || *digest == '\0')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "empty digest");
  const char *colon = strchr (digest, ':');
  if (colon == NULL)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "invalid digest %.200s: no algorithm", digest);
  size_t alen = (size_t) (colon - digest);
  size_t want;
  if (alen == 6 && memcmp (digest, "sha256", 6) == 0)
    want = 64;
  else if (alen == 6 && memcmp (digest, "sha512", 6) == 0)
    want = 128;
  else
    return s->host->error_set (err, BERTH_E_INVALID, 0, "unsupported digest algorithm %.*s in %.200s",
                               (int) (alen > 32 ? 32 : alen), digest, digest);
  const char *hex = colon + 1;
  size_t n = strlen (hex);
  if (n != want)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "invalid digest %.200s: %zu hex digits, want %zu", digest, n,
                               want);
  for (size_t i = 0; i < n; i++)
    if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
      return s->host->error_set (err, BERTH_E_INVALID, 0, "invalid digest %.200s: not lowercase hex", digest);
  memcpy (d->alg, digest, alen);
  d->alg[alen] = '\0';
  memcpy (d->hex, hex, n + 1);
  return 0;
}

const void *
local_digest_md (const char *alg)
{
  if (strcmp (alg, "sha256") == 0)
    return EVP_sha256 ();
  if (strcmp (alg, "sha512") == 0)
    return EVP_sha512 ();
  return NULL;
}

int
local_errno_code (int errnum)
{
  switch (errnum)
    {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return BERTH_E_EXHAUSTED;
    case ENOENT:
      return BERTH_E_NOTFOUND;
    case EEXIST:
      return BERTH_E_EXISTS;
    case EACCES:
    case EPERM:
    case EROFS:
      return BERTH_E_PERMISSION;
    case ENOMEM:
      return BERTH_E_NOMEM;
    default:
      return BERTH_E_INTERNAL;
    }
}

char *
local_path (const char *fmt, ...)
{
  va_list ap;
  char *p = NULL;
  va_start (ap, fmt);
  if (vasprintf (&p, fmt, ap) < 0)
    p = NULL;
  va_end (ap);
  return p;
}

int64_t
local_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
local_stat_mtime_ns (const void *p)
{
  const struct stat *st = p;
  return (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int
write_all (int fd, const void *buf, size_t len)
{
  const char *b = buf;
  while (len > 0)
    {
      ssize_t n = write (fd, b, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return -errno;
        }
      b += n;
      len -= (size_t) n;
    }
  return 0;
}

/* Written to a temporary name and renamed, so a reader never sees half a file. */
int
local_write_file (const char *path, const char *content, bool sync)
{
  char *tmp = local_path ("%s.tmp", path);
  if (tmp == NULL)
    return -ENOMEM;
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int r = fd < 0 ? -errno : write_all (fd, content, strlen (content));
  if (r == 0 && sync && fsync (fd) < 0)
    r = -errno;
  if (fd >= 0 && close (fd) < 0 && r == 0)
    r = -errno;
  if (r == 0 && rename (tmp, path) < 0)
    r = -errno;
  if (r < 0)
    unlink (tmp);
  free (tmp);
  return r;
}

int
local_read_file (const char *path, char **ret, size_t max)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  char *buf = malloc (max + 1);
  if (buf == NULL)
    {
      close (fd);
      return -ENOMEM;
    }
  size_t len = 0;
  while (len < max)
    {
      ssize_t n = read (fd, buf + len, max - len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          free (buf);
          close (fd);
          return -e;
        }
      if (n == 0)
        break;
      len += (size_t) n;
    }
  close (fd);
  buf[len] = '\0';
  *ret = buf;
  return 0;
}

int
local_read_int (const char *path, int64_t *ret)
{
  char *s = NULL;
  int r = local_read_file (path, &s, 32);
  if (r < 0)
    return r;
  char *end = NULL;
  errno = 0;
  long long v = strtoll (s, &end, 10);
  r = (errno != 0 || end == s || (*end != '\0' && *end != '\n')) ? -EINVAL : 0;
  free (s);
  if (r == 0)
    *ret = v;
  return r;
}

int
local_write_int (const char *path, int64_t v)
{
  char buf[32];
  snprintf (buf, sizeof buf, "%" PRId64 "\n", v);
  return local_write_file (path, buf, false);
}

int
local_fsync_dir (const char *path)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int r = fsync (fd) < 0 ? -errno : 0;
  close (fd);
  return r;
}

int
local_rename_noreplace (const char *from, const char *to)
{
  if (renameat2 (AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS)
    return -errno;
  /* No RENAME_NOREPLACE on this filesystem: link() refuses to replace too. */
  if (link (from, to) < 0)
    return -errno;
  unlink (from);
  return 0;
}

int
local_copy_fd (int in, int out, int64_t size)
{
  enum { CHUNK = 1 << 20 };
  int64_t off = 0;
  unsigned char *buf = NULL;
  int r = 0;
  /* copy_file_range lets the kernel copy (or reflink) without a round trip
   * through user space; it refuses some pairs of filesystems (EXDEV before
   * Linux 5.3 and again between different types since 5.19). */
  while (r == 0 && off < size && buf == NULL)
    {
      loff_t ioff = off;
      ssize_t n = copy_file_range (in, &ioff, out, NULL, (size_t) (size - off), 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP || errno == EBADF))
        {
          buf = malloc (CHUNK);
          if (buf == NULL)
            r = -ENOMEM;
          break;
        }
      if (n < 0)
        r = -errno;
      else if (n == 0)
        r = -EIO; /* the file is shorter than size */
      else
        off += n;
    }
  while (r == 0 && off < size)
    {
      size_t want = (size_t) (size - off < CHUNK ? size - off : CHUNK);
      ssize_t n = pread (in, buf, want, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        r = -errno;
      else if (n == 0)
        r = -EIO;
      else if ((r = write_all (out, buf, (size_t) n)) == 0)
        off += n;
    }
  free (buf);
  return r;
}

int
local_mkdir_p (const char *path, int mode)
{
  char *p = strdup (path);
  if (p == NULL)
    return -ENOMEM;
  int r = 0;
  for (char *c = p + 1; r == 0; c++)
    {
      if (*c != '/' && *c != '\0')
        continue;
      char save = *c;
      *c = '\0';
      if (mkdir (p, (mode_t) mode) < 0 && errno != EEXIST)
        r = -errno;
      *c = save;
      if (save == '\0')
        break;
    }
  free (p);
  return r;
}

/* An ingest directory holds plain files only (we created it); anything else
 * in it makes rmdir fail and is reported. */
int
local_rm_ingest_dir (const char *path)
{
  DIR *d = opendir (path);
  if (d == NULL)
    return -errno;
  int dfd = dirfd (d);
  struct dirent *e;
  int r = 0;
  while ((e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      if (unlinkat (dfd, e->d_name, 0) < 0 && errno != ENOENT && r == 0)
        r = -errno;
    }
  closedir (d);
  if (rmdir (path) < 0 && errno != ENOENT && r == 0)
    r = -errno;
  return r;
}

static void
to_hex (const unsigned char *md, unsigned n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++)
    {
      out[2 * i] = digits[md[i] >> 4];
      out[2 * i + 1] = digits[md[i] & 15];
    }
  out[2 * n] = '\0';
}

char *
local_ingest_dir (struct local *s, const char *ref)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!EVP_Digest (ref, strlen (ref), md, &n, EVP_sha256 (), NULL))
    return NULL;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  to_hex (md, n, hex);
  return local_path ("%s/%s", s->ingest, hex);
}

/* Feed the first len bytes of fd into mdctx (already initialised). */
int
local_hash_file (int fd, int64_t len, const void *md, void *mdctx)
{
  (void) md;
  enum { CHUNK = 1 << 20 };
  unsigned char *buf = malloc (CHUNK);
  if (buf == NULL)
    return -ENOMEM;
  int64_t off = 0;
  int r = 0;
  while (off < len)
    {
      size_t want = (size_t) (len - off < CHUNK ? len - off : CHUNK);
      ssize_t n = pread (fd, buf, want, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          r = -errno;
          break;
        }
      if (n == 0)
        {
          r = -EIO; /* the file shrank under us */
          break;
        }
      if (!EVP_DigestUpdate (mdctx, buf, (size_t) n))
        {
          r = -EIO;
          break;
        }
      off += n;
    }
  free (buf);
  return r;
}

int
local_digest_hex (void *mdctx, char *out)
{
  EVP_MD_CTX *copy = EVP_MD_CTX_new ();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  int ok = copy && EVP_MD_CTX_copy_ex (copy, mdctx) && EVP_DigestFinal_ex (copy, md, &n);
  EVP_MD_CTX_free (copy);
  if (!ok)
    return -ENOMEM;
  to_hex (md, n, out);
  return 0;
}
