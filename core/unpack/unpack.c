/* Diff apply: see unpack.h.
 *
 * The semantics follow containerd's archive.Apply (archive/tar.go in
 * containerd 1.6/1.7, Debian's golang-github-containerd-containerd-dev), so
 * that the trees are the same:
 *  - names are cleaned lexically; an entry naming the root is ignored;
 *    unlike containerd, a name whose `..` climbs above the root is refused
 *    (containerd clamps it at the root);
 *  - the parent is resolved inside the root (symlinks followed, but never
 *    out of the root) and created 0755 when missing (mkparent; in overlay
 *    mode its attributes are copied from the first lower layer that has it);
 *  - an existing entry is removed unless both it and the new one are
 *    directories, which merge;
 *  - then: create, lchown, xattrs (SCHILY.xattr.*, `trusted.*` skipped,
 *    ENOTSUP ignored), chmod (after chown, which clears setuid), times
 *    (atime = max(atime, mtime), out-of-range times become the epoch);
 *    directories' times are set again at the end, after their contents;
 *  - whiteouts as OverlayConvertWhiteout (overlay) or the naive converter
 *    (native: remove, and for an opaque directory remove what this layer
 *    did not write, tracked as containerd's unpackedPaths).
 * Regular files are written with holes where the tar says sparse (Go's tar
 * writes the zeros; the bytes read back are the same).
 *
 * Unlike containerd: tar bomb limits (unpack.h, checked at each header
 * before anything of the entry is written; max_uncompressed in the
 * stream), a device policy, device nodes refused without euid 0 instead of
 * tried, and a hard link to a target missing from the tree is
 * BERTH_E_INVALID (bad input), not NotFound.
 */
#include <config.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <berth/failpoint.h>

#include "cleanup.h"
#include "core/unpack/stream.h"
#include "core/unpack/tree.h"
#include "core/unpack/unpack.h"
#include "core/util/lazy-archive.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

/* ------------------------------------------------------------ path set */

/* The entries this layer wrote, keyed by (parent directory, name), for
 * opaque directories in native mode: containerd's unpackedPaths, keyed by
 * the resolved parent so that symlinked parents match too. */
struct path_rec
{
  uint64_t dev, ino;
  uint32_t hash, name_off, name_len;
};

struct path_set
{
  struct path_rec *recs;
  size_t n, cap;
  uint32_t *slots; /* index + 1 into recs; 0 = empty */
  size_t n_slots;
  char *names;
  size_t names_len, names_cap;
};

static void
path_set_free (struct path_set *s)
{
  free (s->recs);
  free (s->slots);
  free (s->names);
}

static uint32_t
path_hash (uint64_t dev, uint64_t ino, const char *name, size_t len)
{
  uint64_t h = 1469598103934665603ULL;
  for (int i = 0; i < 8; i++)
    h = (h ^ ((dev >> (8 * i)) & 0xff)) * 1099511628211ULL;
  for (int i = 0; i < 8; i++)
    h = (h ^ ((ino >> (8 * i)) & 0xff)) * 1099511628211ULL;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char) name[i]) * 1099511628211ULL;
  return (uint32_t) (h ^ (h >> 32));
}

static bool
path_set_has (const struct path_set *s, uint64_t dev, uint64_t ino, const char *name)
{
  if (s->n_slots == 0)
    return false;
  size_t len = strlen (name);
  uint32_t h = path_hash (dev, ino, name, len);
  for (size_t i = h & (s->n_slots - 1);; i = (i + 1) & (s->n_slots - 1))
    {
      uint32_t k = s->slots[i];
      if (k == 0)
        return false;
      const struct path_rec *r = &s->recs[k - 1];
      if (r->hash == h && r->dev == dev && r->ino == ino && r->name_len == len
          && memcmp (s->names + r->name_off, name, len) == 0)
        return true;
    }
}

static int
path_set_grow_slots (struct path_set *s)
{
  size_t n = s->n_slots ? s->n_slots * 2 : 1024;
  uint32_t *slots = calloc (n, sizeof *slots);
  if (slots == NULL)
    return -ENOMEM;
  for (size_t k = 0; k < s->n; k++)
    {
      size_t i = s->recs[k].hash & (n - 1);
      while (slots[i])
        i = (i + 1) & (n - 1);
      slots[i] = (uint32_t) k + 1;
    }
  free (s->slots);
  s->slots = slots;
  s->n_slots = n;
  return 0;
}

static int
path_set_add (struct path_set *s, uint64_t dev, uint64_t ino, const char *name)
{
  if (path_set_has (s, dev, ino, name))
    return 0;
  size_t len = strlen (name);
  if ((s->n + 1) * 2 > s->n_slots && path_set_grow_slots (s) < 0)
    return -ENOMEM;
  if (s->n == s->cap)
    {
      size_t cap = s->cap ? s->cap * 2 : 512;
      struct path_rec *r = realloc (s->recs, cap * sizeof *r);
      if (r == NULL)
        return -ENOMEM;
      s->recs = r;
      s->cap = cap;
    }
  if (s->names_len + len > s->names_cap)
    {
      size_t cap = s->names_cap ? s->names_cap * 2 : 16384;
      while (cap < s->names_len + len)
        cap *= 2;
      char *nm = realloc (s->names, cap);
      if (nm == NULL)
        return -ENOMEM;
      s->names = nm;
      s->names_cap = cap;
    }
  uint32_t h = path_hash (dev, ino, name, len);
  memcpy (s->names + s->names_len, name, len);
  s->recs[s->n] = (struct path_rec){ dev, ino, h, (uint32_t) s->names_len, (uint32_t) len };
  s->names_len += len;
  size_t i = h & (s->n_slots - 1);
  while (s->slots[i])
    i = (i + 1) & (s->n_slots - 1);
  s->slots[i] = (uint32_t) ++s->n;
  return 0;
}

/* ------------------------------------------------------------ apply state */

struct dir_time
{
  size_t name_off;
  struct timespec ts[2];
};

struct apply
{
  const struct unpack_options *o;
  struct archive *a;
  struct unpack_stream *stream;
  berth_error *stream_err; /* what the read callback hit, reported instead of libarchive's echo */
  int rootfd;
  struct stat root_st;
  bool is_root; /* euid 0: devices, ownership */

  /* The parent of the last entry, resolved: entries of a directory come
   * together, so most entries need no lookup at all. */
  char parent[PATH_MAX + 1];
  size_t parent_len;
  int parent_fd;
  struct stat parent_st;
  bool parent_stale; /* something was removed: reopen before the next use */

  char rel[PATH_MAX + 1];
  char link[PATH_MAX + 1];
  char scratch[PATH_MAX + 64];

  /* The entry being applied (or the last one, while the next header is
   * read), for errors that come out of the stream: truncation, limits. */
  char current[PATH_MAX + 1];
  bool in_entry;

  /* Tar bomb limits (resolved: <= 0 is none) and what counts against them. */
  int64_t max_entries, max_apparent, max_uncompressed;
  int64_t entries, apparent;

  struct dir_time *dirs;
  size_t n_dirs, cap_dirs;
  char *dir_names;
  size_t dir_names_len, dir_names_cap;

  struct path_set written;
};

static void
apply_free (struct apply *u)
{
  if (u->a)
    archive_read_free (u->a);
  unpack_stream_free (u->stream);
  berth_error_free (u->stream_err);
  if (u->rootfd >= 0)
    close (u->rootfd);
  if (u->parent_fd >= 0)
    close (u->parent_fd);
  free (u->dirs);
  free (u->dir_names);
  path_set_free (&u->written);
  free (u);
}

static void
apply_freep (struct apply **u)
{
  if (*u)
    apply_free (*u);
}

static int
entry_error (int code, int errnum, const char *name, const char *what, berth_error **err)
{
  return berth_error_set (err, code, errnum, "layer entry `%s`: %s", name, what);
}

/* The stream's error (truncation, corruption, max_uncompressed), with the
 * entry it hit: "layer entry `x`: gzip stream is truncated" inside an
 * entry's data, "layer, after entry `x`: ..." while reading a header. */
static int
stream_fail (struct apply *u, berth_error **err)
{
  berth_error *e = TAKE_PTR (u->stream_err);
  if (e && e->msg && u->current[0])
    {
      const char *rest = strncmp (e->msg, "layer: ", 7) == 0 ? e->msg + 7 : e->msg;
      char *msg = NULL;
      if (asprintf (&msg, u->in_entry ? "layer entry `%s`: %s" : "layer, after entry `%s`: %s", u->current, rest) >= 0)
        {
          free (e->msg);
          e->msg = msg;
        }
    }
  return berth_error_take (err, e);
}

static int
entry_errno (int errnum, const char *name, const char *what, berth_error **err)
{
  int code = berth_errcode_from_errno (errnum);
  if (errnum == ENOTDIR || errnum == ELOOP || errnum == ENAMETOOLONG || errnum == EEXIST)
    code = BERTH_E_INVALID;
  return entry_error (code, errnum, name, what, err);
}

/* Lexically clean `name` into `out` relative to the root: leading '/',
 * empty and `.` components dropped, `..` applied.  Returns the length
 * (0 = the root itself), -1 when `..` climbs above the root, -2 when too
 * long. */
static int
clean_path (const char *name, char *out, size_t size)
{
  size_t len = 0;
  const char *p = name;
  while (*p)
    {
      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      const char *end = strchrnul (p, '/');
      size_t n = (size_t) (end - p);
      if (n == 1 && p[0] == '.')
        ;
      else if (n == 2 && p[0] == '.' && p[1] == '.')
        {
          if (len == 0)
            return -1;
          while (len > 0 && out[len - 1] != '/')
            len--;
          if (len > 0)
            len--;
        }
      else
        {
          if (len + (len ? 1 : 0) + n >= size)
            return -2;
          if (len)
            out[len++] = '/';
          memcpy (out + len, p, n);
          len += n;
        }
      p = end;
    }
  out[len] = '\0';
  return (int) len;
}

/* Copy a missing parent's attributes from the first lower layer that has
 * that directory (containerd's mkparent with ApplyOptions.Parents). */
static int
copy_up_dir (void *data, int fd, const char *path)
{
  struct apply *u = data;
  if (u->o->parents == NULL)
    return 0;
  for (const char *const *p = u->o->parents; *p; p++)
    {
      _cleanup_close_ int lroot = open (*p, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (lroot < 0)
        return -errno;
      _cleanup_close_ int lfd = -1;
      int r = tree_open_dir (lroot, path, O_RDONLY, false, NULL, NULL, &lfd);
      if (r == -ENOENT)
        continue;
      if (r == -ENOTDIR)
        return 0; /* replaced by a non-directory there: keep the defaults */
      if (r < 0)
        return r;
      struct stat st;
      if (fstat (lfd, &st) < 0)
        return -errno;
      _cleanup_close_ int dfd = openat (fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0)
        return -errno;
      if (fchown (dfd, st.st_uid, st.st_gid) < 0 && !(errno == EPERM && !u->is_root))
        return -errno;
      if (fchmod (dfd, st.st_mode & 07777) < 0)
        return -errno;
      struct timespec ts[2] = { st.st_atim, st.st_mtim };
      if (futimens (dfd, ts) < 0)
        return -errno;
      char names[65536];
      ssize_t n = flistxattr (lfd, names, sizeof names);
      if (n < 0)
        return errno == ENOTSUP ? 0 : -errno;
      for (char *k = names; k < names + n; k += strlen (k) + 1)
        {
          if (strncmp (k, "trusted.", 8) == 0)
            continue;
          char value[65536];
          ssize_t vn = fgetxattr (lfd, k, value, sizeof value);
          if (vn < 0)
            {
              if (errno == ENOTSUP || errno == ENODATA)
                continue;
              return -errno;
            }
          if (fsetxattr (dfd, k, value, (size_t) vn, XATTR_CREATE) < 0 && errno != ENOTSUP && errno != ENODATA
              && errno != EEXIST)
            return -errno;
        }
      return 0;
    }
  return 0;
}

/* The directory `rel[0..len)`, resolved in root (created when missing if
 * `create`).  The fd is borrowed: valid until the next call. */
static int
get_parent (struct apply *u, const char *rel, size_t len, bool create, int *ret_fd, const struct stat **ret_st)
{
  if (len == 0)
    {
      *ret_fd = u->rootfd;
      *ret_st = &u->root_st;
      return 0;
    }
  if (!u->parent_stale && u->parent_fd >= 0 && len == u->parent_len && memcmp (u->parent, rel, len) == 0)
    {
      *ret_fd = u->parent_fd;
      *ret_st = &u->parent_st;
      return 0;
    }
  if (u->parent_fd >= 0)
    close (u->parent_fd);
  u->parent_fd = -1;
  u->parent_stale = false;
  memcpy (u->parent, rel, len);
  u->parent[len] = '\0';
  u->parent_len = len;
  int fd;
  int r = tree_open_dir (u->rootfd, u->parent, O_PATH, create,
                         u->o->mode == UNPACK_OVERLAY ? copy_up_dir : NULL, u, &fd);
  if (r < 0)
    return r;
  if (fstat (fd, &u->parent_st) < 0)
    {
      r = -errno;
      close (fd);
      return r;
    }
  u->parent_fd = fd;
  *ret_fd = fd;
  *ret_st = &u->parent_st;
  return 0;
}

/* A path under a parent fd that the *xattr syscalls without an fd form
 * can take: through /proc/self/fd, whose magic link is the resolved
 * directory; the last component is not followed (l*xattr). */
static const char *
proc_path (struct apply *u, int pfd, const char *base)
{
  snprintf (u->scratch, sizeof u->scratch, "/proc/self/fd/%d/%s", pfd, base);
  return u->scratch;
}

static void
entry_times (struct archive_entry *e, struct timespec ts[2])
{
  /* containerd: chtimes(boundTime(latestTime(atime, mtime)), boundTime(mtime)),
   * boundTime mapping anything before the epoch or past 2262 to the epoch. */
  const int64_t max_sec = INT64_MAX / 1000000000;
  struct timespec mt = { 0, 0 }, at;
  if (archive_entry_mtime_is_set (e))
    mt = (struct timespec){ archive_entry_mtime (e), archive_entry_mtime_nsec (e) };
  at = mt;
  if (archive_entry_atime_is_set (e))
    {
      struct timespec a = { archive_entry_atime (e), archive_entry_atime_nsec (e) };
      if (a.tv_sec > mt.tv_sec || (a.tv_sec == mt.tv_sec && a.tv_nsec > mt.tv_nsec))
        at = a;
    }
  struct timespec *t[2] = { &at, &mt };
  for (int i = 0; i < 2; i++)
    if (t[i]->tv_sec < 0 || t[i]->tv_sec > max_sec)
      *t[i] = (struct timespec){ 0, 0 };
  ts[0] = at;
  ts[1] = mt;
}

/* After the entry exists: owner, xattrs, mode, times.  `fd` is an open fd
 * of the entry (regular file, directory) or -1. */
static int
set_metadata (struct apply *u, struct archive_entry *e, const char *name, int pfd, const char *base, int fd,
              mode_t type, bool chmod_it, berth_error **err)
{
  if (u->o->same_owner)
    {
      uid_t uid = (uid_t) archive_entry_uid (e);
      gid_t gid = (gid_t) archive_entry_gid (e);
      int r = fd >= 0 ? fchown (fd, uid, gid) : fchownat (pfd, base, uid, gid, AT_SYMLINK_NOFOLLOW);
      if (r < 0)
        {
          snprintf (u->scratch, sizeof u->scratch, "cannot set owner %u:%u", (unsigned) uid, (unsigned) gid);
          return entry_errno (errno, name, u->scratch, err);
        }
    }

  const char *key;
  const void *value;
  size_t size;
  if (archive_entry_xattr_reset (e) > 0)
    while (archive_entry_xattr_next (e, &key, &value, &size) == ARCHIVE_OK)
      {
        if (strncmp (key, "trusted.", 8) == 0)
          continue; /* containerd: "admin attributes from archive not supported" */
        int r;
        if (fd >= 0)
          r = fsetxattr (fd, key, value, size, 0);
        else
          {
            char key_copy[XATTR_NAME_MAX + 1];
            snprintf (key_copy, sizeof key_copy, "%s", key);
            r = lsetxattr (proc_path (u, pfd, base), key_copy, value, size, 0);
          }
        if (r < 0)
          {
            if (errno == ENOTSUP)
              continue;
            if (errno == EPERM && strncmp (key, "user.", 5) == 0 && type != AE_IFREG && type != AE_IFDIR)
              continue; /* user.* exists only on files and directories */
            snprintf (u->scratch, sizeof u->scratch, "cannot set xattr %s", key);
            return entry_errno (errno, name, u->scratch, err);
          }
      }

  if (chmod_it)
    {
      mode_t mode = archive_entry_perm (e) & 07777;
      int r = fd >= 0 ? fchmod (fd, mode) : fchmodat (pfd, base, mode, 0);
      if (r < 0)
        return entry_errno (errno, name, "cannot set the mode", err);
    }

  struct timespec ts[2];
  entry_times (e, ts);
  int r = fd >= 0 ? futimens (fd, ts) : utimensat (pfd, base, ts, AT_SYMLINK_NOFOLLOW);
  if (r < 0)
    return entry_errno (errno, name, "cannot set the times", err);
  return 0;
}

/* Something stands where an entry goes: remove it (everything under it
 * for a directory), as containerd does unless both are directories. */
static int
remove_existing (struct apply *u, const char *name, int pfd, const char *base, berth_error **err)
{
  int r = tree_remove_all (pfd, base);
  u->parent_stale = true;
  if (r < 0)
    return entry_errno (-r, name, "cannot remove what the entry replaces", err);
  return 0;
}

static int
write_data (struct apply *u, struct archive_entry *e, const char *name, int fd, berth_error **err)
{
  int64_t end = 0;
  for (;;)
    {
      const void *buf;
      size_t size;
      la_int64_t off;
      int r = archive_read_data_block (u->a, &buf, &size, &off);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          if (u->stream_err)
            return stream_fail (u, err);
          return entry_error (BERTH_E_INVALID, 0, name, archive_error_string (u->a), err);
        }
      const char *p = buf;
      while (size > 0)
        {
          ssize_t n = pwrite (fd, p, size, off);
          if (n < 0)
            {
              if (errno == EINTR)
                continue;
              return entry_errno (errno, name, "cannot write", err);
            }
          p += n;
          off += n;
          size -= (size_t) n;
        }
      if (off > end)
        end = off;
    }
  /* Holes at the end of a sparse file, or nothing written at all. */
  int64_t size = archive_entry_size (e);
  if (end != size && ftruncate (fd, size) < 0)
    return entry_errno (errno, name, "cannot set the size", err);
  return 0;
}

static int
record_written (struct apply *u, const struct stat *pst, const char *base)
{
  if (u->o->mode != UNPACK_NATIVE)
    return 0;
  return path_set_add (&u->written, pst->st_dev, pst->st_ino, base);
}

static int
add_dir_time (struct apply *u, struct archive_entry *e, const char *rel)
{
  size_t len = strlen (rel) + 1;
  if (u->n_dirs == u->cap_dirs)
    {
      size_t cap = u->cap_dirs ? u->cap_dirs * 2 : 256;
      struct dir_time *d = realloc (u->dirs, cap * sizeof *d);
      if (d == NULL)
        return -ENOMEM;
      u->dirs = d;
      u->cap_dirs = cap;
    }
  if (u->dir_names_len + len > u->dir_names_cap)
    {
      size_t cap = u->dir_names_cap ? u->dir_names_cap * 2 : 16384;
      while (cap < u->dir_names_len + len)
        cap *= 2;
      char *n = realloc (u->dir_names, cap);
      if (n == NULL)
        return -ENOMEM;
      u->dir_names = n;
      u->dir_names_cap = cap;
    }
  memcpy (u->dir_names + u->dir_names_len, rel, len);
  u->dirs[u->n_dirs].name_off = u->dir_names_len;
  entry_times (e, u->dirs[u->n_dirs].ts);
  u->n_dirs++;
  u->dir_names_len += len;
  return 0;
}

/* Native opaque directory: remove what lower layers left in `dfd`, but not
 * what this layer wrote (and look inside what it wrote). */
static int
empty_opaque (struct apply *u, int dfd, const struct stat *dst)
{
  _cleanup_close_ int fd = openat (dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    return -errno;
  fd = -1;
  /* Collect first: removing while reading is allowed but subtle. */
  _cleanup_free_ char *names = NULL;
  size_t len = 0, cap = 0;
  struct dirent *de;
  int r = 0;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      size_t n = strlen (de->d_name) + 1;
      if (len + n > cap)
        {
          cap = cap ? cap * 2 : 4096;
          while (cap < len + n)
            cap *= 2;
          char *p = realloc (names, cap);
          if (p == NULL)
            {
              r = -ENOMEM;
              break;
            }
          names = p;
        }
      memcpy (names + len, de->d_name, n);
      len += n;
    }
  int dirfd_ = dirfd (d);
  for (size_t off = 0; r == 0 && off < len; off += strlen (names + off) + 1)
    {
      const char *nm = names + off;
      if (!path_set_has (&u->written, dst->st_dev, dst->st_ino, nm))
        {
          r = tree_remove_all (dirfd_, nm);
          continue;
        }
      struct stat st;
      if (fstatat (dirfd_, nm, &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          r = errno == ENOENT ? 0 : -errno;
          continue;
        }
      if (!S_ISDIR (st.st_mode))
        continue;
      _cleanup_close_ int sub = openat (dirfd_, nm, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0)
        r = -errno;
      else
        r = empty_opaque (u, sub, &st);
    }
  closedir (d);
  return r;
}

static int
apply_whiteout (struct apply *u, struct archive_entry *e, const char *name, int pfd, const struct stat *pst,
                const char *base, berth_error **err)
{
  if (strcmp (base, WH_OPAQUE) == 0)
    {
      if (u->o->mode == UNPACK_OVERLAY)
        {
          _cleanup_close_ int fd = openat (pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
          if (fd < 0 || fsetxattr (fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
            return entry_errno (errno, name, "cannot mark the directory opaque (trusted.overlay.opaque)", err);
          return 0;
        }
      u->parent_stale = true;
      int r = empty_opaque (u, pfd, pst);
      if (r < 0)
        return entry_errno (-r, name, "cannot empty the opaque directory", err);
      return 0;
    }

  const char *orig = base + strlen (WH_PREFIX);
  if (*orig == '\0' || strcmp (orig, ".") == 0 || strcmp (orig, "..") == 0)
    return entry_error (BERTH_E_INVALID, 0, name, "invalid whiteout name", err);
  if (u->o->mode == UNPACK_OVERLAY)
    {
      if (mknodat (pfd, orig, S_IFCHR, makedev (0, 0)) < 0)
        return entry_errno (errno, name, "cannot create the whiteout device", err);
      if (u->o->same_owner
          && fchownat (pfd, orig, (uid_t) archive_entry_uid (e), (gid_t) archive_entry_gid (e), AT_SYMLINK_NOFOLLOW)
                 < 0)
        return entry_errno (errno, name, "cannot set the whiteout's owner", err);
      return 0;
    }
  u->parent_stale = true;
  int r = tree_remove_all (pfd, orig);
  if (r < 0)
    return entry_errno (-r, name, "cannot remove the whited-out entry", err);
  return 0;
}

static int
apply_entry (struct apply *u, struct archive_entry *e, berth_error **err)
{
  const char *name = archive_entry_pathname (e);
  if (name == NULL)
    return berth_error_set (err, BERTH_E_INVALID, 0, "layer entry without a usable name");
  int n = clean_path (name, u->rel, sizeof u->rel);
  if (n == -1)
    return entry_error (BERTH_E_INVALID, 0, name, "path escapes the root", err);
  if (n == -2)
    return entry_error (BERTH_E_INVALID, ENAMETOOLONG, name, "path too long", err);
  if (n == 0)
    return 0; /* the root itself: containerd ignores it */

  char *slash = strrchr (u->rel, '/');
  const char *base = slash ? slash + 1 : u->rel;
  size_t plen = slash ? (size_t) (slash - u->rel) : 0;
  int pfd;
  const struct stat *pst;
  int r = get_parent (u, u->rel, plen, true, &pfd, &pst);
  if (r < 0)
    return entry_errno (-r, name, "cannot resolve the parent directory", err);

  if (strncmp (base, WH_PREFIX, strlen (WH_PREFIX)) == 0)
    return apply_whiteout (u, e, name, pfd, pst, base, err);

  const char *hardlink = archive_entry_hardlink (e);
  mode_t type = archive_entry_filetype (e);
  if (hardlink)
    {
      int m = clean_path (hardlink, u->link, sizeof u->link);
      if (m == -1)
        {
          snprintf (u->scratch, sizeof u->scratch, "hard link target `%s` escapes the root", hardlink);
          return entry_error (BERTH_E_INVALID, 0, name, u->scratch, err);
        }
      if (m <= 0)
        return entry_error (BERTH_E_INVALID, 0, name, "bad hard link target", err);
      char *ls = strrchr (u->link, '/');
      const char *lbase = ls ? ls + 1 : u->link;
      if (ls)
        *ls = '\0';
      _cleanup_close_ int tfd = -1;
      r = tree_open_dir (u->rootfd, ls ? u->link : "", O_PATH, false, NULL, NULL, &tfd);
      if (r == -ENOENT)
        {
          snprintf (u->scratch, sizeof u->scratch, "hard link target `%s` is not in the layer or below it", hardlink);
          return entry_error (BERTH_E_INVALID, 0, name, u->scratch, err);
        }
      if (r < 0)
        {
          snprintf (u->scratch, sizeof u->scratch, "hard link target `%s`", hardlink);
          return entry_errno (-r, name, u->scratch, err);
        }
      while (linkat (tfd, lbase, pfd, base, 0) < 0)
        {
          if (errno == EEXIST)
            {
              r = remove_existing (u, name, pfd, base, err);
              if (r < 0)
                return r;
              continue;
            }
          if (errno == ENOENT)
            {
              snprintf (u->scratch, sizeof u->scratch, "hard link target `%s` is not in the layer or below it",
                        hardlink);
              return entry_error (BERTH_E_INVALID, 0, name, u->scratch, err);
            }
          snprintf (u->scratch, sizeof u->scratch, "cannot hard-link to `%s`", hardlink);
          return entry_errno (errno, name, u->scratch, err);
        }
      struct stat st;
      if (fstatat (pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_errno (errno, name, "hard link vanished", err);
      r = set_metadata (u, e, name, pfd, base, -1, AE_IFREG, !S_ISLNK (st.st_mode), err);
      if (r < 0)
        return r;
      return record_written (u, pst, base);
    }

  mode_t perm = archive_entry_perm (e) & 07777;
  switch (type)
    {
    case AE_IFREG:
      {
        _cleanup_close_ int fd = -1;
        while ((fd = openat (pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
          {
            if (errno != EEXIST)
              return entry_errno (errno, name, "cannot create the file", err);
            r = remove_existing (u, name, pfd, base, err);
            if (r < 0)
              return r;
          }
        r = write_data (u, e, name, fd, err);
        if (r < 0)
          return r;
        r = set_metadata (u, e, name, pfd, base, fd, type, true, err);
        if (r < 0)
          return r;
        if (close (TAKE_FD (fd)) < 0)
          return entry_errno (errno, name, "cannot write", err);
        break;
      }
    case AE_IFDIR:
      {
        while (mkdirat (pfd, base, perm) < 0)
          {
            if (errno != EEXIST)
              return entry_errno (errno, name, "cannot create the directory", err);
            struct stat st;
            if (fstatat (pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR (st.st_mode))
              break; /* both directories: merge */
            r = remove_existing (u, name, pfd, base, err);
            if (r < 0)
              return r;
          }
        _cleanup_close_ int fd = openat (pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
          return entry_errno (errno, name, "cannot open the directory", err);
        r = set_metadata (u, e, name, pfd, base, fd, type, true, err);
        if (r < 0)
          return r;
        if (add_dir_time (u, e, u->rel) < 0)
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "layer entry `%s`", name);
        break;
      }
    case AE_IFLNK:
      {
        const char *target = archive_entry_symlink (e);
        if (target == NULL)
          return entry_error (BERTH_E_INVALID, 0, name, "symlink without a target", err);
        while (symlinkat (target, pfd, base) < 0)
          {
            if (errno != EEXIST)
              return entry_errno (errno, name, "cannot create the symlink", err);
            r = remove_existing (u, name, pfd, base, err);
            if (r < 0)
              return r;
          }
        r = set_metadata (u, e, name, pfd, base, -1, type, false, err);
        if (r < 0)
          return r;
        break;
      }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
      {
        if (type != AE_IFIFO && u->o->devices == UNPACK_DEVICES_REFUSE)
          return entry_error (BERTH_E_PERMISSION, 0, name,
                              "device nodes are not allowed here (unpack devices policy: refuse)", err);
        if (type != AE_IFIFO && !u->is_root)
          return entry_error (BERTH_E_PERMISSION, EPERM, name,
                              "cannot create a device node (needs CAP_MKNOD, outside a user namespace)", err);
        dev_t dev = makedev (archive_entry_rdevmajor (e), archive_entry_rdevminor (e));
        while (mknodat (pfd, base, type | perm, type == AE_IFIFO ? 0 : dev) < 0)
          {
            if (errno == EEXIST)
              {
                r = remove_existing (u, name, pfd, base, err);
                if (r < 0)
                  return r;
                continue;
              }
            if (errno == EPERM)
              return entry_error (BERTH_E_PERMISSION, EPERM, name,
                                  type == AE_IFIFO ? "cannot create the FIFO"
                                                   : "cannot create a device node (needs CAP_MKNOD, outside a user namespace)",
                                  err);
            return entry_errno (errno, name, "cannot create the node", err);
          }
        r = set_metadata (u, e, name, pfd, base, -1, type, true, err);
        if (r < 0)
          return r;
        break;
      }
    default:
      snprintf (u->scratch, sizeof u->scratch, "unsupported entry type 0%o", (unsigned) type);
      return entry_error (BERTH_E_INVALID, 0, name, u->scratch, err);
    }
  if (record_written (u, pst, base) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "layer entry `%s`", name);
  return 0;
}

/* The tar bomb limits that the header alone decides: nothing of the entry
 * is written yet.  max_uncompressed is the stream's (unpack_stream_set_limit):
 * a dense file's bytes are in the stream, so a file too big for it fails
 * at the chunk that crosses the limit. */
static int
check_limits (struct apply *u, struct archive_entry *e, const char *name, berth_error **err)
{
  char a[64], b[64], c[64];
  u->entries++;
  if (u->max_entries > 0 && u->entries > u->max_entries)
    {
      snprintf (u->scratch, sizeof u->scratch,
                "the layer has more than %lld entries, the limit (unpack max_entries)", (long long) u->max_entries);
      return entry_error (BERTH_E_EXHAUSTED, 0, name, u->scratch, err);
    }
  if (archive_entry_filetype (e) != AE_IFREG || archive_entry_hardlink (e) != NULL)
    return 0;
  int64_t size = archive_entry_size (e);
  if (size < 0)
    return entry_error (BERTH_E_INVALID, 0, name, "negative size", err);
  if (u->max_apparent > 0 && size > u->max_apparent - u->apparent)
    {
      if (u->apparent == 0)
        snprintf (u->scratch, sizeof u->scratch, "apparent size %s exceeds the limit of %s (unpack max_apparent_size)",
                  unpack_format_size (size, a), unpack_format_size (u->max_apparent, b));
      else
        snprintf (u->scratch, sizeof u->scratch,
                  "apparent size %s, after %s in the entries before it, exceeds the limit of %s "
                  "(unpack max_apparent_size)",
                  unpack_format_size (size, a), unpack_format_size (u->apparent, c),
                  unpack_format_size (u->max_apparent, b));
      return entry_error (BERTH_E_EXHAUSTED, 0, name, u->scratch, err);
    }
  u->apparent += size;
  return 0;
}

static int64_t
limit_or_default (int64_t v, int64_t def)
{
  return v == 0 ? def : v;
}

/* Directories' times last, since writing into them changed their mtime. */
static int
apply_dir_times (struct apply *u, berth_error **err)
{
  for (size_t i = 0; i < u->n_dirs; i++)
    {
      const char *rel = u->dir_names + u->dirs[i].name_off;
      const char *slash = strrchr (rel, '/');
      const char *base = slash ? slash + 1 : rel;
      int pfd;
      const struct stat *pst;
      int r = get_parent (u, rel, slash ? (size_t) (slash - rel) : 0, false, &pfd, &pst);
      if (r == -ENOENT || r == -ENOTDIR)
        continue; /* removed again later in the layer */
      if (r < 0)
        return entry_errno (-r, rel, "cannot resolve the directory", err);
      if (utimensat (pfd, base, u->dirs[i].ts, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
        return entry_errno (errno, rel, "cannot set the directory's times", err);
    }
  return 0;
}

static la_ssize_t
read_cb (struct archive *a, void *data, const void **buf)
{
  struct apply *u = data;
  ssize_t n = unpack_stream_next (u->stream, buf, &u->stream_err);
  if (n < 0)
    {
      archive_set_error (a, EIO, "%s", berth_error_message (u->stream_err));
      return -1;
    }
  return n;
}

static int
archive_fail (struct apply *u, const char *what, berth_error **err)
{
  u->in_entry = false;
  if (u->stream_err)
    return stream_fail (u, err);
  const char *msg = archive_error_string (u->a);
  if (u->current[0])
    return berth_error_set (err, BERTH_E_INVALID, 0, "layer, after entry `%s`: %s: %s", u->current, what,
                            msg ? msg : "bad tar stream");
  return berth_error_set (err, BERTH_E_INVALID, 0, "layer: %s: %s", what, msg ? msg : "bad tar stream");
}

int
unpack_apply (const char *root, unpack_read_fn read, void *data, const struct unpack_options *o,
              struct unpack_result *ret, berth_error **err)
{
  if (lazy_archive_load (err) < 0)
    return berth_error_wrap (err, "unpack");
  _cleanup_(apply_freep) struct apply *u = calloc (1, sizeof *u);
  if (u == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "unpack");
  u->o = o;
  u->rootfd = u->parent_fd = -1;
  u->is_root = geteuid () == 0;
  u->rootfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (u->rootfd < 0 || fstat (u->rootfd, &u->root_st) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "unpack root `%s`", root);

  u->max_entries = limit_or_default (o->max_entries, UNPACK_DEFAULT_MAX_ENTRIES);
  u->max_apparent = limit_or_default (o->max_apparent_size, UNPACK_DEFAULT_MAX_APPARENT_SIZE);
  u->max_uncompressed = limit_or_default (o->max_uncompressed, UNPACK_DEFAULT_MAX_UNCOMPRESSED);

  int r = unpack_stream_new (read, data, o->compression, o->media_type, o->cancelled, &u->stream, err);
  if (r < 0)
    return r;
  unpack_stream_set_limit (u->stream, u->max_uncompressed);

  u->a = archive_read_new ();
  if (u->a == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "libarchive");
  /* Formats only: the stream is already uncompressed.  `empty` accepts a
   * zero-byte layer, as Go's tar reader does. */
  archive_read_support_format_tar (u->a);
  archive_read_support_format_empty (u->a);
  if (archive_read_open (u->a, u, NULL, read_cb, NULL) != ARCHIVE_OK)
    return archive_fail (u, "not a tar stream", err);

  for (;;)
    {
      if (o->cancelled && *o->cancelled)
        return berth_error_set (err, BERTH_E_CANCELLED, 0, "unpack cancelled");
      struct archive_entry *e;
      r = archive_read_next_header (u->a, &e);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        return archive_fail (u, "bad tar header", err);
      const char *name = archive_entry_pathname (e);
      snprintf (u->current, sizeof u->current, "%s", name ? name : "");
      r = check_limits (u, e, u->current, err);
      if (r < 0)
        return r;
      u->in_entry = true;
      BERTH_FAILPOINT ("unpack-entry");
      r = apply_entry (u, e, err);
      if (r < 0)
        return r;
      u->in_entry = false;
    }
  r = apply_dir_times (u, err);
  if (r < 0)
    return r;

  /* The diffID covers the whole stream, padding after the tar's end too. */
  struct unpack_result res = { .entries = u->entries };
  r = unpack_stream_finish (u->stream, res.diff_id, &res.uncompressed, &u->stream_err);
  if (r < 0)
    return stream_fail (u, err);
  if (o->expected_diff_id && strcmp (o->expected_diff_id, res.diff_id) != 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "layer: diffID mismatch: the stream hashes to %s, expected %s",
                            res.diff_id, o->expected_diff_id);
  if (ret)
    *ret = res;
  return 0;
}

struct fd_reader
{
  int fd;
  int errnum;
};

static ssize_t
fd_read (void *data, void *buf, size_t len)
{
  struct fd_reader *f = data;
  for (;;)
    {
      ssize_t n = read (f->fd, buf, len);
      if (n >= 0)
        return n;
      if (errno == EINTR)
        continue;
      f->errnum = errno;
      return berth_errcode_from_errno (errno);
    }
}

int
unpack_apply_fd (const char *root, int fd, const struct unpack_options *o, struct unpack_result *ret,
                 berth_error **err)
{
  struct fd_reader f = { fd, 0 };
  int r = unpack_apply (root, fd_read, &f, o, ret, err);
  if (r < 0 && f.errnum)
    return berth_error_wrap (err, "read: %s", strerror (f.errnum));
  return r;
}
