/* berth-fuse: serve one image layer read-only over FUSE, straight from its
 * blob in the content store (issue 7, part 1).
 *
 *   berth-fuse index --blob BLOB (--media-type TYPE | --estargz) --out INDEX
 *   berth-fuse mount --blob BLOB (--index INDEX | --media-type TYPE | --estargz)
 *              [--xattr-prefix trusted|user] [--threads N] [--log FILE]
 *              [--foreground] MOUNTPOINT
 *   berth-fuse check --blob BLOB --index INDEX
 *
 * `mount` mounts, then detaches into its own session (the parent exits 0
 * only once the mount serves), so the process outlives whoever started it
 * (berthd) and keeps containers' root filesystems alive across a daemon
 * restart.  It exits when the mount goes away (umount, fusermount3 -u) or
 * on SIGTERM/SIGINT/SIGHUP (then it unmounts).
 *
 * The tree is presented in the form overlayfs expects of a lower layer, so
 * that a writable container is a kernel overlay mount with FUSE lowerdirs:
 * an OCI whiteout ".wh.NAME" appears as NAME, a character device 0:0; an
 * opaque marker ".wh..wh..opq" is not listed and gives its directory the
 * xattr "<prefix>.overlay.opaque" = "y" (prefix "trusted", or "user" for
 * overlay's userxattr mode).
 *
 * The layer never changes, so entries, attributes, symlinks and file data
 * are cached by the kernel without expiry (keep_cache, long timeouts).
 * Compressed layers are read through the index's checkpoints; each open
 * file keeps a cursor (the decoder's state) and its last decompressed block,
 * so that sequential reads inflate every byte once.
 *
 * The index library (libberth-layerindex) reports errors through a plugin
 * host table; this program is not a plugin, so it brings a small one of its
 * own below.
 */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <berth/errors.h>
#include <berth/layerindex.h>
#include <berth/plugin.h>

#define BLOCK_SIZE (UINT64_C (1) << 20) /* decompressed block kept per open file */
#define FOREVER 86400.0                 /* kernel cache timeout: the layer never changes */
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

/* ---- a host table of our own ------------------------------------------- */

struct berth_error
{
  int code;
  char msg[1024];
};

static void
host_log (berth_plugin *p, int level, const char *fmt, ...)
{
  (void) p;
  (void) level;
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "berth-fuse: ");
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
}

static int
host_error_set (berth_error *err, int code, int errnum, const char *fmt, ...)
{
  if (err == NULL)
    return code;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (err->msg, sizeof err->msg, fmt, ap);
  va_end (ap);
  if (errnum != 0)
    {
      size_t n = strlen (err->msg);
      snprintf (err->msg + n, sizeof err->msg - n, ": %s", strerror (errnum));
    }
  err->code = code;
  return code;
}

static int
host_error_wrap (berth_error *err, const char *fmt, ...)
{
  if (err == NULL)
    return BERTH_E_INTERNAL;
  char prefix[512], old[sizeof err->msg];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (prefix, sizeof prefix, fmt, ap);
  va_end (ap);
  memcpy (old, err->msg, sizeof old);
  /* Truncation is fine: the start of the message says what failed. */
  size_t n = strlen (prefix);
  if (n > sizeof err->msg - 3)
    n = sizeof err->msg - 3;
  memcpy (err->msg, prefix, n);
  memcpy (err->msg + n, ": ", 2);
  size_t room = sizeof err->msg - n - 3, m = strnlen (old, room);
  memcpy (err->msg + n + 2, old, m);
  err->msg[n + 2 + m] = '\0';
  return err->code != 0 ? err->code : BERTH_E_INTERNAL;
}

static const struct berth_host host = {
  .size = sizeof (struct berth_host),
  .abi_major = BERTH_ABI_MAJOR,
  .abi_minor = BERTH_ABI_MINOR,
  .log = host_log,
  .error_set = host_error_set,
  .error_wrap = host_error_wrap,
};

/* errno for a library code, for FUSE replies. */
static int
errno_of (int code)
{
  switch (code)
    {
    case BERTH_E_NOTFOUND: return ENOENT;
    case BERTH_E_NOMEM: return ENOMEM;
    case BERTH_E_NOTSUP: return EOPNOTSUPP;
    case BERTH_E_PERMISSION: return EACCES;
    default: return EIO; /* a read we cannot vouch for is never answered with bytes */
    }
}

/* ---- the blob ---------------------------------------------------------- */

struct blob
{
  int fd;
  uint64_t size;
};

static int
blob_read_at (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  struct blob *b = data;
  size_t done = 0;
  while (done < len)
    {
      ssize_t n = pread (b->fd, (char *) buf + done, len - done, (off_t) (off + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return host_error_set (err, BERTH_E_INTERNAL, errno, "reading the blob at %" PRIu64, off + done);
      if (n == 0)
        break;
      done += (size_t) n;
    }
  *ret_n = done;
  return 0;
}

static int
blob_open (const char *path, struct blob *b)
{
  struct stat st;
  b->fd = open (path, O_RDONLY | O_CLOEXEC);
  if (b->fd < 0 || fstat (b->fd, &st) < 0)
    {
      fprintf (stderr, "berth-fuse: cannot open blob `%s': %s\n", path, strerror (errno));
      return -1;
    }
  if (!S_ISREG (st.st_mode))
    {
      fprintf (stderr, "berth-fuse: blob `%s' is not a regular file\n", path);
      return -1;
    }
  b->size = (uint64_t) st.st_size;
  return 0;
}

/* Build (tar / eStargz) or load the index of blob b. */
static berth_layerindex *
index_get (struct blob *b, const char *blob_path, const char *index_path, const char *media_type, bool estargz)
{
  berth_error err = { 0 };
  berth_layerindex *idx = NULL;
  int r;
  if (index_path != NULL && (media_type == NULL && !estargz))
    r = berth_layerindex_load (&host, index_path, blob_read_at, b, b->size, NULL, &idx, &err);
  else if (estargz)
    r = berth_layerindex_open_estargz (&host, blob_read_at, b, b->size, NULL, &idx, &err);
  else
    r = berth_layerindex_build (&host, blob_read_at, b, b->size, media_type, 0, NULL, &idx, &err);
  if (r < 0)
    {
      fprintf (stderr, "berth-fuse: %s: %s\n", index_path != NULL && media_type == NULL && !estargz ? index_path
                                                                                                      : blob_path,
               err.msg);
      return NULL;
    }
  return idx;
}

/* ---- the file system ---------------------------------------------------- */

struct fs
{
  berth_layerindex *idx;
  struct blob blob;
  char opaque_xattr[64]; /* "<prefix>.overlay.opaque" */
  uint32_t *nlink;       /* per ino: links of regular files, 2 + subdirectories of directories */
  size_t n;
};

struct open_file
{
  const struct berth_layerindex_entry *e;
  pthread_mutex_t lock;
  uint64_t block_off; /* file offset of block[0] */
  size_t block_len;   /* 0: empty */
  char *block;
  berth_layerindex_cursor *cursor; /* keeps the decoder between blocks */
};

static struct fs *
fs_of (fuse_req_t req)
{
  return fuse_req_userdata (req);
}

/* The entry that carries ino's data and attributes (a hard link's target). */
static const struct berth_layerindex_entry *
entry_of (struct fs *fs, fuse_ino_t ino)
{
  const struct berth_layerindex_entry *e = berth_layerindex_get (fs->idx, ino);
  if (e != NULL && e->data_ino != e->ino)
    e = berth_layerindex_get (fs->idx, e->data_ino);
  return e;
}

static bool
is_hidden (const struct berth_layerindex_entry *e)
{
  return e->type == BERTH_LAYERINDEX_OPAQUE;
}

/* A directory with an opaque marker among its children. */
static bool
is_opaque_dir (struct fs *fs, const struct berth_layerindex_entry *dir)
{
  const struct berth_layerindex_entry *const *kids;
  size_t n = berth_layerindex_readdir (fs->idx, dir, &kids);
  for (size_t i = 0; i < n; i++)
    if (kids[i]->type == BERTH_LAYERINDEX_OPAQUE)
      return true;
  return false;
}

static void
fill_stat (struct fs *fs, const struct berth_layerindex_entry *e, struct stat *st)
{
  memset (st, 0, sizeof *st);
  st->st_ino = e->ino;
  st->st_uid = e->uid;
  st->st_gid = e->gid;
  st->st_nlink = e->ino < fs->n && fs->nlink[e->ino] > 0 ? fs->nlink[e->ino] : 1;
  mode_t perm = e->mode & 07777;
  switch (e->type)
    {
    case BERTH_LAYERINDEX_REG: st->st_mode = S_IFREG | perm; st->st_size = (off_t) e->size; break;
    case BERTH_LAYERINDEX_DIR: st->st_mode = S_IFDIR | perm; st->st_size = 4096; break;
    case BERTH_LAYERINDEX_SYMLINK:
      st->st_mode = S_IFLNK | 0777;
      st->st_size = e->symlink != NULL ? (off_t) strlen (e->symlink) : 0;
      break;
    case BERTH_LAYERINDEX_CHAR: st->st_mode = S_IFCHR | perm; st->st_rdev = makedev (e->dev_major, e->dev_minor); break;
    case BERTH_LAYERINDEX_BLOCK: st->st_mode = S_IFBLK | perm; st->st_rdev = makedev (e->dev_major, e->dev_minor); break;
    case BERTH_LAYERINDEX_FIFO: st->st_mode = S_IFIFO | perm; break;
    case BERTH_LAYERINDEX_WHITEOUT: /* overlayfs' whiteout: a 0:0 character device */
      st->st_mode = S_IFCHR;
      st->st_rdev = makedev (0, 0);
      st->st_nlink = 1;
      break;
    default: st->st_mode = S_IFREG; break;
    }
  st->st_blksize = 4096;
  st->st_blocks = (blkcnt_t) ((st->st_size + 511) / 512);
  st->st_mtim.tv_sec = (time_t) (e->mtime_ns / 1000000000);
  st->st_mtim.tv_nsec = (long) (e->mtime_ns % 1000000000);
  if (st->st_mtim.tv_nsec < 0)
    {
      st->st_mtim.tv_sec -= 1;
      st->st_mtim.tv_nsec += 1000000000;
    }
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

static void
reply_entry (fuse_req_t req, struct fs *fs, const struct berth_layerindex_entry *e)
{
  struct fuse_entry_param p;
  memset (&p, 0, sizeof p);
  if (e->data_ino != e->ino)
    e = berth_layerindex_get (fs->idx, e->data_ino);
  if (e == NULL)
    {
      fuse_reply_err (req, EIO);
      return;
    }
  p.ino = e->ino;
  p.generation = 1;
  fill_stat (fs, e, &p.attr);
  p.attr_timeout = FOREVER;
  p.entry_timeout = FOREVER;
  fuse_reply_entry (req, &p);
}

/* The path of child `name` of directory `dir`: "" is the root. */
static int
child_path (const struct berth_layerindex_entry *dir, const char *prefix, const char *name, char *buf, size_t len)
{
  int n = dir->path[0] == '\0' ? snprintf (buf, len, "%s%s", prefix, name)
                               : snprintf (buf, len, "%s/%s%s", dir->path, prefix, name);
  return n < 0 || (size_t) n >= len ? -1 : 0;
}

static void
op_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct fs *fs = fs_of (req);
  const struct berth_layerindex_entry *dir = berth_layerindex_get (fs->idx, parent);
  char path[PATH_MAX + 16];
  if (dir == NULL || dir->type != BERTH_LAYERINDEX_DIR)
    {
      fuse_reply_err (req, dir == NULL ? ENOENT : ENOTDIR);
      return;
    }
  /* Whiteout markers are shown under the names they delete. */
  if (strncmp (name, WH_PREFIX, strlen (WH_PREFIX)) == 0)
    {
      fuse_reply_err (req, ENOENT);
      return;
    }
  if (child_path (dir, "", name, path, sizeof path) < 0)
    {
      fuse_reply_err (req, ENAMETOOLONG);
      return;
    }
  const struct berth_layerindex_entry *e = berth_layerindex_lookup (fs->idx, path);
  if (e == NULL && child_path (dir, WH_PREFIX, name, path, sizeof path) == 0)
    {
      e = berth_layerindex_lookup (fs->idx, path);
      if (e != NULL && e->type != BERTH_LAYERINDEX_WHITEOUT)
        e = NULL;
    }
  if (e == NULL || is_hidden (e))
    {
      fuse_reply_err (req, ENOENT);
      return;
    }
  reply_entry (req, fs, e);
}

static void
op_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) fi;
  struct fs *fs = fs_of (req);
  const struct berth_layerindex_entry *e = entry_of (fs, ino);
  struct stat st;
  if (e == NULL)
    {
      fuse_reply_err (req, ENOENT);
      return;
    }
  fill_stat (fs, e, &st);
  fuse_reply_attr (req, &st, FOREVER);
}

static void
op_readlink (fuse_req_t req, fuse_ino_t ino)
{
  const struct berth_layerindex_entry *e = entry_of (fs_of (req), ino);
  if (e == NULL || e->type != BERTH_LAYERINDEX_SYMLINK || e->symlink == NULL)
    fuse_reply_err (req, e == NULL ? ENOENT : EINVAL);
  else
    fuse_reply_readlink (req, e->symlink);
}

static void
op_opendir (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  const struct berth_layerindex_entry *e = entry_of (fs_of (req), ino);
  if (e == NULL || e->type != BERTH_LAYERINDEX_DIR)
    {
      fuse_reply_err (req, e == NULL ? ENOENT : ENOTDIR);
      return;
    }
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open (req, fi);
}

/* Offsets: 1 ".", 2 "..", 3 + i the i-th child. */
static void
readdir_common (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
  struct fs *fs = fs_of (req);
  const struct berth_layerindex_entry *dir = entry_of (fs, ino);
  if (dir == NULL || dir->type != BERTH_LAYERINDEX_DIR)
    {
      fuse_reply_err (req, dir == NULL ? ENOENT : ENOTDIR);
      return;
    }
  const struct berth_layerindex_entry *const *kids;
  size_t nkids = berth_layerindex_readdir (fs->idx, dir, &kids);
  char *buf = malloc (size);
  if (buf == NULL)
    {
      fuse_reply_err (req, ENOMEM);
      return;
    }
  size_t used = 0;
  for (off_t pos = off; (size_t) pos < nkids + 2; pos++)
    {
      const struct berth_layerindex_entry *e;
      const char *name;
      if (pos == 0)
        e = dir, name = ".";
      else if (pos == 1)
        {
          e = berth_layerindex_get (fs->idx, dir->parent_ino);
          name = "..";
        }
      else
        {
          e = kids[pos - 2];
          if (is_hidden (e))
            continue;
          name = e->name;
          if (e->type == BERTH_LAYERINDEX_WHITEOUT)
            name += strlen (WH_PREFIX);
          if (e->data_ino != e->ino)
            e = berth_layerindex_get (fs->idx, e->data_ino);
        }
      if (e == NULL)
        continue;
      size_t n;
      if (plus && pos >= 2)
        {
          struct fuse_entry_param p;
          memset (&p, 0, sizeof p);
          p.ino = e->ino;
          p.generation = 1;
          fill_stat (fs, e, &p.attr);
          p.attr_timeout = FOREVER;
          p.entry_timeout = FOREVER;
          n = fuse_add_direntry_plus (req, buf + used, size - used, name, &p, pos + 1);
        }
      else
        {
          struct stat st;
          fill_stat (fs, e, &st);
          n = plus ? fuse_add_direntry_plus (req, buf + used, size - used, name,
                                             &(struct fuse_entry_param) { .attr = st }, pos + 1)
                   : fuse_add_direntry (req, buf + used, size - used, name, &st, pos + 1);
        }
      if (n > size - used)
        break;
      used += n;
    }
  fuse_reply_buf (req, buf, used);
  free (buf);
}

static void
op_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  (void) fi;
  readdir_common (req, ino, size, off, false);
}

static void
op_readdirplus (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  (void) fi;
  readdir_common (req, ino, size, off, true);
}

static void
op_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  const struct berth_layerindex_entry *e = entry_of (fs_of (req), ino);
  if (e == NULL || e->type != BERTH_LAYERINDEX_REG)
    {
      fuse_reply_err (req, e == NULL ? ENOENT : EISDIR);
      return;
    }
  if ((fi->flags & O_ACCMODE) != O_RDONLY)
    {
      fuse_reply_err (req, EROFS);
      return;
    }
  struct open_file *of = calloc (1, sizeof *of);
  if (of == NULL)
    {
      fuse_reply_err (req, ENOMEM);
      return;
    }
  of->e = e;
  pthread_mutex_init (&of->lock, NULL);
  fi->fh = (uint64_t) (uintptr_t) of;
  fi->keep_cache = 1;
  if (fuse_reply_open (req, fi) != 0)
    {
      pthread_mutex_destroy (&of->lock);
      free (of);
    }
}

static void
op_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) ino;
  struct open_file *of = (struct open_file *) (uintptr_t) fi->fh;
  if (of != NULL)
    {
      pthread_mutex_destroy (&of->lock);
      berth_layerindex_cursor_free (of->cursor);
      free (of->block);
      free (of);
    }
  fuse_reply_err (req, 0);
}

/* Copy [off, off+size) of the file into out, through the file's block. */
static int
read_blocks (struct fs *fs, struct open_file *of, uint64_t off, size_t size, char *out, size_t *ret_n,
             berth_error *err)
{
  size_t done = 0;
  while (done < size && off + done < of->e->size)
    {
      uint64_t want = off + done;
      if (of->block_len == 0 || want < of->block_off || want >= of->block_off + of->block_len)
        {
          if (of->block == NULL && (of->block = malloc (BLOCK_SIZE)) == NULL)
            return host_error_set (err, BERTH_E_NOMEM, ENOMEM, "read buffer");
          if (of->cursor == NULL)
            {
              int r = berth_layerindex_cursor_new (fs->idx, &of->cursor, err);
              if (r < 0)
                return r;
            }
          uint64_t start = want - want % BLOCK_SIZE;
          size_t n = 0;
          of->block_len = 0;
          int r = berth_layerindex_cursor_read (of->cursor, of->e, start, of->block, BLOCK_SIZE, &n, err);
          if (r < 0)
            return r;
          if (n == 0)
            break;
          of->block_off = start;
          of->block_len = n;
        }
      size_t in_block = (size_t) (want - of->block_off);
      size_t take = of->block_len - in_block;
      if (take > size - done)
        take = size - done;
      memcpy (out + done, of->block + in_block, take);
      done += take;
    }
  *ret_n = done;
  return 0;
}

static void
op_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  (void) ino;
  struct fs *fs = fs_of (req);
  struct open_file *of = (struct open_file *) (uintptr_t) fi->fh;
  berth_error err = { 0 };
  if (of == NULL || off < 0)
    {
      fuse_reply_err (req, EBADF);
      return;
    }
  if ((uint64_t) off >= of->e->size)
    {
      fuse_reply_buf (req, NULL, 0);
      return;
    }
  char *buf = malloc (size > 0 ? size : 1);
  if (buf == NULL)
    {
      fuse_reply_err (req, ENOMEM);
      return;
    }
  size_t n = 0;
  int r;
  if (berth_layerindex_stream_size (fs->idx) > 0 && berth_layerindex_checkpoints (fs->idx) == 0
      && berth_layerindex_toc_digest (fs->idx) == NULL)
    r = berth_layerindex_read (fs->idx, of->e, (uint64_t) off, buf, size, &n, &err); /* uncompressed: direct */
  else
    {
      pthread_mutex_lock (&of->lock);
      r = read_blocks (fs, of, (uint64_t) off, size, buf, &n, &err);
      pthread_mutex_unlock (&of->lock);
    }
  if (r < 0)
    {
      fprintf (stderr, "berth-fuse: read of `%s' at %lld: %s\n", of->e->path, (long long) off, err.msg);
      fuse_reply_err (req, errno_of (r));
    }
  else
    fuse_reply_buf (req, buf, n);
  free (buf);
}

static void
op_statfs (fuse_req_t req, fuse_ino_t ino)
{
  (void) ino;
  struct fs *fs = fs_of (req);
  struct statvfs sv;
  memset (&sv, 0, sizeof sv);
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  sv.f_blocks = (fs->blob.size + 4095) / 4096;
  sv.f_files = berth_layerindex_count (fs->idx);
  sv.f_namemax = 255;
  sv.f_flag = ST_RDONLY;
  fuse_reply_statfs (req, &sv);
}

/* Answer an xattr value or the size the caller must provide. */
static void
reply_xattr_value (fuse_req_t req, const void *value, size_t len, size_t size)
{
  if (size == 0)
    fuse_reply_xattr (req, len);
  else if (size < len)
    fuse_reply_err (req, ERANGE);
  else
    fuse_reply_buf (req, value, len);
}

static void
op_getxattr (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
  struct fs *fs = fs_of (req);
  const struct berth_layerindex_entry *e = entry_of (fs, ino);
  if (e == NULL)
    {
      fuse_reply_err (req, ENOENT);
      return;
    }
  if (e->type == BERTH_LAYERINDEX_DIR && strcmp (name, fs->opaque_xattr) == 0 && is_opaque_dir (fs, e))
    {
      reply_xattr_value (req, "y", 1, size);
      return;
    }
  for (size_t i = 0; i < e->n_xattrs; i++)
    if (strcmp (e->xattrs[i].name, name) == 0)
      {
        reply_xattr_value (req, e->xattrs[i].value, e->xattrs[i].len, size);
        return;
      }
  fuse_reply_err (req, ENODATA);
}

static void
op_listxattr (fuse_req_t req, fuse_ino_t ino, size_t size)
{
  struct fs *fs = fs_of (req);
  const struct berth_layerindex_entry *e = entry_of (fs, ino);
  if (e == NULL)
    {
      fuse_reply_err (req, ENOENT);
      return;
    }
  size_t len = 0;
  bool opaque = e->type == BERTH_LAYERINDEX_DIR && is_opaque_dir (fs, e);
  for (size_t i = 0; i < e->n_xattrs; i++)
    len += strlen (e->xattrs[i].name) + 1;
  if (opaque)
    len += strlen (fs->opaque_xattr) + 1;
  if (size == 0)
    {
      fuse_reply_xattr (req, len);
      return;
    }
  if (size < len)
    {
      fuse_reply_err (req, ERANGE);
      return;
    }
  char *buf = malloc (len > 0 ? len : 1), *p = buf;
  if (buf == NULL)
    {
      fuse_reply_err (req, ENOMEM);
      return;
    }
  for (size_t i = 0; i < e->n_xattrs; i++)
    p = stpcpy (p, e->xattrs[i].name) + 1;
  if (opaque)
    p = stpcpy (p, fs->opaque_xattr) + 1;
  fuse_reply_buf (req, buf, len);
  free (buf);
}

static void
op_init (void *userdata, struct fuse_conn_info *conn)
{
  (void) userdata;
  /* Immutable data: let the kernel cache and read ahead freely. */
  if (conn->capable & FUSE_CAP_ASYNC_READ)
    conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
    conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_READDIRPLUS)
    conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
    conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  conn->want &= ~(unsigned) FUSE_CAP_AUTO_INVAL_DATA;
}

static const struct fuse_lowlevel_ops fs_ops = {
  .init = op_init,
  .lookup = op_lookup,
  .getattr = op_getattr,
  .readlink = op_readlink,
  .opendir = op_opendir,
  .readdir = op_readdir,
  .readdirplus = op_readdirplus,
  .open = op_open,
  .read = op_read,
  .release = op_release,
  .statfs = op_statfs,
  .getxattr = op_getxattr,
  .listxattr = op_listxattr,
};

/* Link counts, as a file system would report them. */
static int
count_links (struct fs *fs)
{
  fs->n = berth_layerindex_count (fs->idx) + 1;
  fs->nlink = calloc (fs->n, sizeof *fs->nlink);
  if (fs->nlink == NULL)
    return -1;
  for (uint64_t ino = 1; ino < fs->n; ino++)
    {
      const struct berth_layerindex_entry *e = berth_layerindex_get (fs->idx, ino);
      if (e == NULL)
        continue;
      if (e->type == BERTH_LAYERINDEX_DIR)
        fs->nlink[ino] += 2;
      if (e->type == BERTH_LAYERINDEX_DIR && ino != 1 && e->parent_ino < fs->n)
        fs->nlink[e->parent_ino]++;
      else if (e->type != BERTH_LAYERINDEX_DIR && e->data_ino < fs->n)
        fs->nlink[e->data_ino]++;
    }
  return 0;
}

/* ---- commands ----------------------------------------------------------- */

static void
usage (FILE *f)
{
  fputs ("usage: berth-fuse index --blob BLOB (--media-type TYPE | --estargz) --out INDEX\n"
         "       berth-fuse mount --blob BLOB (--index INDEX | --media-type TYPE | --estargz)\n"
         "                  [--xattr-prefix trusted|user] [--threads N] [--log FILE] [--foreground] MOUNTPOINT\n"
         "       berth-fuse check --blob BLOB --index INDEX\n",
         f);
}

struct opts
{
  const char *blob, *index, *media_type, *out, *log, *xattr_prefix;
  bool estargz, foreground;
  unsigned threads;
};

static int
cmd_index (struct opts *o)
{
  struct blob b;
  if (o->blob == NULL || o->out == NULL || (o->media_type == NULL && !o->estargz))
    {
      usage (stderr);
      return 2;
    }
  if (blob_open (o->blob, &b) < 0)
    return 1;
  berth_layerindex *idx = index_get (&b, o->blob, NULL, o->media_type, o->estargz);
  if (idx == NULL)
    return 1;
  berth_error err = { 0 };
  int r = berth_layerindex_save (idx, o->out, &err);
  if (r < 0)
    fprintf (stderr, "berth-fuse: saving the index to `%s': %s\n", o->out, err.msg);
  else
    printf ("%zu entries, %zu checkpoints\n", berth_layerindex_count (idx), berth_layerindex_checkpoints (idx));
  berth_layerindex_free (idx);
  close (b.fd);
  return r < 0 ? 1 : 0;
}

static int
cmd_check (struct opts *o)
{
  struct blob b;
  if (o->blob == NULL || o->index == NULL)
    {
      usage (stderr);
      return 2;
    }
  if (blob_open (o->blob, &b) < 0)
    return 1;
  berth_layerindex *idx = index_get (&b, o->blob, o->index, NULL, false);
  if (idx == NULL)
    return 1;
  printf ("%zu entries\n", berth_layerindex_count (idx));
  berth_layerindex_free (idx);
  close (b.fd);
  return 0;
}

static int
cmd_mount (struct opts *o, const char *mountpoint)
{
  static struct fs fs;
  if (o->blob == NULL || mountpoint == NULL || (o->index == NULL && o->media_type == NULL && !o->estargz))
    {
      usage (stderr);
      return 2;
    }
  const char *prefix = o->xattr_prefix != NULL ? o->xattr_prefix : "trusted";
  if (strcmp (prefix, "trusted") != 0 && strcmp (prefix, "user") != 0)
    {
      fprintf (stderr, "berth-fuse: --xattr-prefix must be trusted or user, not `%s'\n", prefix);
      return 2;
    }
  snprintf (fs.opaque_xattr, sizeof fs.opaque_xattr, "%s.overlay.opaque", prefix);
  if (blob_open (o->blob, &fs.blob) < 0)
    return 1;
  fs.idx = index_get (&fs.blob, o->blob, o->index, o->media_type, o->estargz);
  if (fs.idx == NULL)
    return 1;
  if (count_links (&fs) < 0)
    {
      fprintf (stderr, "berth-fuse: out of memory\n");
      return 1;
    }

  char fsname[128];
  snprintf (fsname, sizeof fsname, "-ofsname=berth-fuse,subtype=berth,ro,default_permissions%s",
            geteuid () == 0 ? ",allow_other" : "");
  char *argv[] = { (char *) "berth-fuse", fsname, NULL };
  struct fuse_args args = FUSE_ARGS_INIT (2, argv);
  struct fuse_session *se = fuse_session_new (&args, &fs_ops, sizeof fs_ops, &fs);
  if (se == NULL)
    {
      fprintf (stderr, "berth-fuse: cannot create the FUSE session\n");
      return 1;
    }
  if (fuse_set_signal_handlers (se) != 0 || fuse_session_mount (se, mountpoint) != 0)
    {
      fprintf (stderr, "berth-fuse: cannot mount on `%s' (is /dev/fuse there, and the mountpoint a directory?)\n",
               mountpoint);
      fuse_session_destroy (se);
      return 1;
    }
  /* Detach: the caller's wait ends with 0 once the mount serves. */
  if (fuse_daemonize (o->foreground) != 0)
    {
      fuse_session_unmount (se);
      fuse_session_destroy (se);
      return 1;
    }
  if (!o->foreground && o->log != NULL)
    {
      int fd = open (o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0)
        {
          dup2 (fd, STDERR_FILENO);
          close (fd);
        }
    }
  struct fuse_loop_config *cfg = fuse_loop_cfg_create ();
  if (cfg != NULL)
    fuse_loop_cfg_set_max_threads (cfg, o->threads > 0 ? o->threads : 4);
  int r = cfg != NULL ? fuse_session_loop_mt (se, cfg) : fuse_session_loop (se);
  fuse_loop_cfg_destroy (cfg);
  fuse_session_unmount (se);
  fuse_remove_signal_handlers (se);
  fuse_session_destroy (se);
  berth_layerindex_free (fs.idx);
  free (fs.nlink);
  close (fs.blob.fd);
  return r < 0 ? 1 : 0;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "blob", required_argument, NULL, 'b' },
    { "index", required_argument, NULL, 'i' },
    { "media-type", required_argument, NULL, 'm' },
    { "estargz", no_argument, NULL, 'e' },
    { "out", required_argument, NULL, 'o' },
    { "log", required_argument, NULL, 'l' },
    { "xattr-prefix", required_argument, NULL, 'x' },
    { "threads", required_argument, NULL, 't' },
    { "foreground", no_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct opts o = { 0 };
  if (argc < 2)
    {
      usage (stderr);
      return 2;
    }
  const char *cmd = argv[1];
  optind = 2;
  int c;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'b': o.blob = optarg; break;
      case 'i': o.index = optarg; break;
      case 'm': o.media_type = optarg; break;
      case 'e': o.estargz = true; break;
      case 'o': o.out = optarg; break;
      case 'l': o.log = optarg; break;
      case 'x': o.xattr_prefix = optarg; break;
      case 't':
        {
          char *end;
          unsigned long n = strtoul (optarg, &end, 10);
          if (*end != '\0' || n == 0 || n > 64)
            {
              fprintf (stderr, "berth-fuse: --threads wants 1..64, not `%s'\n", optarg);
              return 2;
            }
          o.threads = (unsigned) n;
          break;
        }
      case 'f': o.foreground = true; break;
      case 'h': usage (stdout); return 0;
      default: usage (stderr); return 2;
      }
  if (strcmp (cmd, "index") == 0 && optind == argc)
    return cmd_index (&o);
  if (strcmp (cmd, "check") == 0 && optind == argc)
    return cmd_check (&o);
  if (strcmp (cmd, "mount") == 0 && optind == argc - 1)
    return cmd_mount (&o, argv[optind]);
  usage (stderr);
  return 2;
}
