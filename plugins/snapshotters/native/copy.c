/* Copy a snapshot tree for the native snapshotter (containerd's
 * continuity fs.CopyDir, as snapshots/native uses it).
 *
 * Everything is done relative to directory fds (no chdir: worker threads);
 * symlinks are never followed.  Metadata is applied in the order the kernel
 * needs: chown first (it clears setuid/setgid and security.capability),
 * then chmod, then xattrs, then times; a directory's times last of all,
 * after its entries were created.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "native.h"

/* Inodes with several links already copied: (dev, ino) -> path under dst. */
struct link_entry
{
  dev_t dev;
  ino_t ino;
  char *rel;
};

struct copier
{
  struct native *s;
  berth_ctx *ctx;
  berth_error *err;
  const char *src; /* roots, for messages and l*xattr paths */
  const char *dst;
  int dst_root;
  struct link_entry *links;
  size_t nlinks, caplinks;
  bool try_reflink;
  bool try_cfr;
};

static size_t
link_hash (dev_t dev, ino_t ino)
{
  uint64_t h = (uint64_t) ino * UINT64_C (0x9e3779b97f4a7c15) ^ (uint64_t) dev;
  return (size_t) (h ^ (h >> 31));
}

static const char *
link_find (struct copier *c, dev_t dev, ino_t ino)
{
  if (c->caplinks == 0)
    return NULL;
  for (size_t j = link_hash (dev, ino) & (c->caplinks - 1); c->links[j].rel; j = (j + 1) & (c->caplinks - 1))
    if (c->links[j].ino == ino && c->links[j].dev == dev)
      return c->links[j].rel;
  return NULL;
}

static int
link_add (struct copier *c, dev_t dev, ino_t ino, const char *rel)
{
  if ((c->nlinks + 1) * 2 > c->caplinks)
    {
      size_t ncap = c->caplinks ? c->caplinks * 2 : 64;
      struct link_entry *nl = calloc (ncap, sizeof *nl);
      if (nl == NULL)
        return c->s->host->error_set (c->err, BERTH_E_NOMEM, 0, "out of memory");
      for (size_t i = 0; i < c->caplinks; i++)
        if (c->links[i].rel)
          {
            size_t j = link_hash (c->links[i].dev, c->links[i].ino) & (ncap - 1);
            while (nl[j].rel)
              j = (j + 1) & (ncap - 1);
            nl[j] = c->links[i];
          }
      free (c->links);
      c->links = nl;
      c->caplinks = ncap;
    }
  char *dup = strdup (rel);
  if (dup == NULL)
    return c->s->host->error_set (c->err, BERTH_E_NOMEM, 0, "out of memory");
  size_t j = link_hash (dev, ino) & (c->caplinks - 1);
  while (c->links[j].rel)
    j = (j + 1) & (c->caplinks - 1);
  c->links[j] = (struct link_entry){ dev, ino, dup };
  c->nlinks++;
  return 0;
}

static bool
xattr_unsupported (int e)
{
  return e == ENOTSUP || e == EOPNOTSUPP;
}

/* Copy every xattr: through fds when both are >= 0, else through paths
 * (symlinks and devices, which must not be opened). */
static int
copy_xattrs (struct copier *c, int sfd, int dfd, const char *spath, const char *dpath, const char *rel)
{
  bool byfd = sfd >= 0 && dfd >= 0;
  ssize_t n = byfd ? flistxattr (sfd, NULL, 0) : llistxattr (spath, NULL, 0);
  if (n < 0)
    return xattr_unsupported (errno) ? 0 : native_sys_error (c->s, c->err, errno, "listing xattrs of %s", rel);
  if (n == 0)
    return 0;
  char *names = malloc ((size_t) n);
  if (names == NULL)
    return c->s->host->error_set (c->err, BERTH_E_NOMEM, 0, "out of memory");
  n = byfd ? flistxattr (sfd, names, (size_t) n) : llistxattr (spath, names, (size_t) n);
  int r = 0;
  if (n < 0)
    r = native_sys_error (c->s, c->err, errno, "listing xattrs of %s", rel);
  char *val = NULL;
  for (ssize_t off = 0; r == 0 && off < n; off += (ssize_t) strlen (names + off) + 1)
    {
      const char *name = names + off;
      ssize_t vn = byfd ? fgetxattr (sfd, name, NULL, 0) : lgetxattr (spath, name, NULL, 0);
      if (vn < 0)
        {
          if (errno == ENODATA)
            continue;
          r = native_sys_error (c->s, c->err, errno, "reading xattr %s of %s", name, rel);
          break;
        }
      char *nv = realloc (val, (size_t) vn + 1);
      if (nv == NULL)
        {
          r = c->s->host->error_set (c->err, BERTH_E_NOMEM, 0, "out of memory");
          break;
        }
      val = nv;
      vn = byfd ? fgetxattr (sfd, name, val, (size_t) vn) : lgetxattr (spath, name, val, (size_t) vn);
      if (vn < 0)
        {
          r = native_sys_error (c->s, c->err, errno, "reading xattr %s of %s", name, rel);
          break;
        }
      int rc = byfd ? fsetxattr (dfd, name, val, (size_t) vn, 0) : lsetxattr (dpath, name, val, (size_t) vn, 0);
      if (rc < 0 && !xattr_unsupported (errno))
        r = native_sys_error (c->s, c->err, errno, "setting xattr %s on %s", name, rel);
    }
  free (val);
  free (names);
  return r;
}

static char *
path_join (const char *a, const char *b)
{
  char *p = NULL;
  if (asprintf (&p, "%s/%s", a, b) < 0)
    return NULL;
  return p;
}

/* Ownership, mode, xattrs and times of an entry that cannot be opened
 * (symlink, device, fifo, socket), by name under dfd. */
static int
apply_meta_by_name (struct copier *c, int dfd, const char *name, const struct stat *st, const char *rel)
{
  if (fchownat (dfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
    return native_sys_error (c->s, c->err, errno, "chown %s", rel);
  if (!S_ISLNK (st->st_mode) && fchmodat (dfd, name, st->st_mode & 07777, 0) < 0)
    return native_sys_error (c->s, c->err, errno, "chmod %s", rel);
  char *spath = path_join (c->src, rel), *dpath = path_join (c->dst, rel);
  int r = spath && dpath ? copy_xattrs (c, -1, -1, spath, dpath, rel)
                         : c->s->host->error_set (c->err, BERTH_E_NOMEM, 0, "out of memory");
  free (spath);
  free (dpath);
  if (r < 0)
    return r;
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (utimensat (dfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return native_sys_error (c->s, c->err, errno, "setting times of %s", rel);
  return 0;
}

/* The same through open fds (regular files and directories). */
static int
apply_meta_fd (struct copier *c, int sfd, int dfd, const struct stat *st, const char *rel)
{
  if (fchown (dfd, st->st_uid, st->st_gid) < 0)
    return native_sys_error (c->s, c->err, errno, "chown %s", rel);
  if (fchmod (dfd, st->st_mode & 07777) < 0)
    return native_sys_error (c->s, c->err, errno, "chmod %s", rel);
  int r = copy_xattrs (c, sfd, dfd, NULL, NULL, rel);
  if (r < 0)
    return r;
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (futimens (dfd, ts) < 0)
    return native_sys_error (c->s, c->err, errno, "setting times of %s", rel);
  return 0;
}

/* Copy [off, end) of sfd into dfd at the same offsets. */
static int
copy_range (struct copier *c, int sfd, int dfd, off_t off, off_t end, const char *rel)
{
  while (off < end)
    {
      size_t want = (size_t) (end - off > (1 << 30) ? (1 << 30) : end - off);
      if (c->try_cfr)
        {
          off_t in = off, out = off;
          ssize_t n = copy_file_range (sfd, &in, dfd, &out, want, 0);
          if (n > 0)
            {
              off += n;
              continue;
            }
          if (n == 0)
            return 0; /* the source shrank */
          if (errno == EINTR)
            continue;
          if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL && errno != EBADF)
            return native_sys_error (c->s, c->err, errno, "copying %s", rel);
          c->try_cfr = false;
        }
      char buf[128 * 1024];
      ssize_t n = pread (sfd, buf, want < sizeof buf ? want : sizeof buf, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return native_sys_error (c->s, c->err, errno, "reading %s", rel);
      if (n == 0)
        return 0;
      for (ssize_t w = 0; w < n;)
        {
          ssize_t m = pwrite (dfd, buf + w, (size_t) (n - w), off + w);
          if (m < 0 && errno == EINTR)
            continue;
          if (m < 0)
            return native_sys_error (c->s, c->err, errno, "writing %s", rel);
          w += m;
        }
      off += n;
    }
  return 0;
}

/* File data: reflink, else the data segments (holes stay holes). */
static int
copy_data (struct copier *c, int sfd, int dfd, const struct stat *st, const char *rel)
{
  if (st->st_size == 0)
    return 0;
  if (c->try_reflink)
    {
      if (ioctl (dfd, FICLONE, sfd) == 0)
        return 0;
      if (errno != EOPNOTSUPP && errno != EXDEV && errno != EINVAL && errno != ENOTTY && errno != ENOSYS
          && errno != EBADF && errno != EPERM)
        return native_sys_error (c->s, c->err, errno, "cloning %s", rel);
      c->try_reflink = false;
    }
  off_t pos = 0;
  while (pos < st->st_size)
    {
      off_t data = lseek (sfd, pos, SEEK_DATA);
      if (data < 0 && errno == ENXIO)
        break; /* only a hole remains */
      if (data < 0)
        {
          /* No SEEK_DATA here: everything is data. */
          int r = copy_range (c, sfd, dfd, pos, st->st_size, rel);
          if (r < 0)
            return r;
          break;
        }
      off_t hole = lseek (sfd, data, SEEK_HOLE);
      if (hole < 0 || hole > st->st_size)
        hole = st->st_size;
      int r = copy_range (c, sfd, dfd, data, hole, rel);
      if (r < 0)
        return r;
      pos = hole;
    }
  if (ftruncate (dfd, st->st_size) < 0)
    return native_sys_error (c->s, c->err, errno, "sizing %s", rel);
  return 0;
}

static int
copy_file (struct copier *c, int sdir, int ddir, const char *name, const struct stat *st, const char *rel)
{
  int sfd = openat (sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (sfd < 0)
    return native_sys_error (c->s, c->err, errno, "opening %s", rel);
  int dfd = openat (ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (dfd < 0)
    {
      int e = errno;
      close (sfd);
      return native_sys_error (c->s, c->err, e, "creating %s", rel);
    }
  int r = copy_data (c, sfd, dfd, st, rel);
  if (r == 0)
    r = apply_meta_fd (c, sfd, dfd, st, rel);
  close (sfd);
  if (close (dfd) < 0 && r == 0)
    r = native_sys_error (c->s, c->err, errno, "writing %s", rel);
  return r;
}

static int copy_dir (struct copier *c, int sdir, int ddir, const char *rel);

static int
copy_entry (struct copier *c, int sdir, int ddir, const char *name, const char *rel)
{
  struct stat st;
  if (fstatat (sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return native_sys_error (c->s, c->err, errno, "stat %s", rel);
  if (!S_ISDIR (st.st_mode) && st.st_nlink > 1)
    {
      const char *first = link_find (c, st.st_dev, st.st_ino);
      if (first)
        {
          if (linkat (c->dst_root, first, ddir, name, 0) < 0)
            return native_sys_error (c->s, c->err, errno, "linking %s to %s", rel, first);
          return 0;
        }
    }
  int r = 0;
  switch (st.st_mode & S_IFMT)
    {
    case S_IFDIR:
      {
        if (mkdirat (ddir, name, 0700) < 0)
          return native_sys_error (c->s, c->err, errno, "creating %s", rel);
        int sfd = openat (sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sfd < 0)
          return native_sys_error (c->s, c->err, errno, "opening %s", rel);
        int dfd = openat (ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
          {
            int e = errno;
            close (sfd);
            return native_sys_error (c->s, c->err, e, "opening %s", rel);
          }
        r = copy_dir (c, sfd, dfd, rel);
        if (r == 0)
          r = apply_meta_fd (c, sfd, dfd, &st, rel);
        close (sfd);
        close (dfd);
        return r;
      }
    case S_IFREG:
      r = copy_file (c, sdir, ddir, name, &st, rel);
      break;
    case S_IFLNK:
      {
        char *target = malloc ((size_t) st.st_size + 1);
        if (target == NULL)
          return c->s->host->error_set (c->err, BERTH_E_NOMEM, 0, "out of memory");
        ssize_t n = readlinkat (sdir, name, target, (size_t) st.st_size + 1);
        if (n < 0 || n > st.st_size)
          {
            int e = n < 0 ? errno : EOVERFLOW;
            free (target);
            return native_sys_error (c->s, c->err, e, "reading symlink %s", rel);
          }
        target[n] = '\0';
        r = symlinkat (target, ddir, name) < 0 ? native_sys_error (c->s, c->err, errno, "creating symlink %s", rel)
                                                : 0;
        free (target);
        if (r == 0)
          r = apply_meta_by_name (c, ddir, name, &st, rel);
        break;
      }
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      if (mknodat (ddir, name, (st.st_mode & S_IFMT) | 0600, st.st_rdev) < 0)
        return native_sys_error (c->s, c->err, errno, "creating %s (device %u:%u)", rel, major (st.st_rdev),
                                 minor (st.st_rdev));
      r = apply_meta_by_name (c, ddir, name, &st, rel);
      break;
    default:
      return c->s->host->error_set (c->err, BERTH_E_INVALID, 0, "%s has an unknown file type %o", rel,
                                    st.st_mode & S_IFMT);
    }
  if (r == 0 && st.st_nlink > 1)
    r = link_add (c, st.st_dev, st.st_ino, rel);
  return r;
}

/* Copy the entries of sdir into ddir (both stay open and owned by the caller). */
static int
copy_dir (struct copier *c, int sdir, int ddir, const char *rel)
{
  int fd = dup (sdir);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  if (d == NULL)
    {
      int e = errno;
      if (fd >= 0)
        close (fd);
      return native_sys_error (c->s, c->err, e, "listing %s", rel);
    }
  rewinddir (d);
  int r = 0;
  struct dirent *e;
  while (r == 0 && (errno = 0, e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      if (c->ctx && c->s->host->ctx_cancelled (c->ctx))
        {
          r = c->s->host->error_set (c->err, BERTH_E_CANCELLED, 0, "copy of %s cancelled", c->src);
          break;
        }
      char *sub = *rel ? path_join (rel, e->d_name) : strdup (e->d_name);
      if (sub == NULL)
        {
          r = c->s->host->error_set (c->err, BERTH_E_NOMEM, 0, "out of memory");
          break;
        }
      r = copy_entry (c, sdir, ddir, e->d_name, sub);
      free (sub);
    }
  if (r == 0 && e == NULL && errno != 0)
    r = native_sys_error (c->s, c->err, errno, "listing %s", rel);
  closedir (d);
  return r;
}

int
native_copy_tree (struct native *s, berth_ctx *ctx, const char *src, const char *dst, berth_error *err)
{
  struct copier c = {
    .s = s, .ctx = ctx, .err = err, .src = src, .dst = dst, .dst_root = -1, .try_reflink = true, .try_cfr = true,
  };
  int sfd = open (src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0)
    return native_sys_error (s, err, errno, "opening %s", src);
  c.dst_root = open (dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c.dst_root < 0)
    {
      int e = errno;
      close (sfd);
      return native_sys_error (s, err, e, "opening %s", dst);
    }
  struct stat st;
  int r = fstat (sfd, &st) < 0 ? native_sys_error (s, err, errno, "stat %s", src) : 0;
  if (r == 0)
    r = copy_dir (&c, sfd, c.dst_root, "");
  if (r == 0)
    r = apply_meta_fd (&c, sfd, c.dst_root, &st, ".");
  close (sfd);
  close (c.dst_root);
  for (size_t i = 0; i < c.caplinks; i++)
    free (c.links[i].rel);
  free (c.links);
  return r;
}
