/* berth-fuse: serve one image layer read-only over FUSE, straight from its
 * blob in the content store (issue 7, part 1).
 *
 *   berth-fuse index --blob BLOB (--media-type TYPE | --estargz) [--diff-id sha256:HEX]
 *              [--checkpoint-span BYTES] --out INDEX
 *   berth-fuse mount --blob BLOB (--index INDEX | --media-type TYPE | --estargz)
 *              [--xattr-prefix trusted|user] [--threads N] [--readahead-kb N]
 *              [--log FILE] [--foreground] MOUNTPOINT
 *   berth-fuse check --blob BLOB --index INDEX
 *
 * Exit status: 0; 1 on an error (said on stderr); 2 for bad usage; 3 when
 * `index` meets content it cannot serve (a sparse file: the snapshotter
 * unpacks such a layer instead).
 *
 * BLOB may be /dev/fd/N or /proc/self/fd/N: the fuse snapshotter hands the
 * blob over as an inherited descriptor, which is then used as it is.
 *
 * `mount` mounts, then detaches into its own session; the parent exits 0
 * only once the server has answered the kernel's INIT (1, and the mount
 * taken down, if the server dies before), so the process outlives whoever
 * started it (berthd) and keeps containers' root filesystems alive across a
 * daemon restart.  It exits when the mount goes away (umount, fusermount3
 * -u) or on SIGTERM/SIGINT/SIGHUP (then it unmounts).
 *
 * Reads of compressed layers go through per-file blocks that are decoded by
 * a pool of threads (one per CPU): a block is one piece of the layer that
 * decodes from one checkpoint (berth_layerindex_span), so a sequential
 * reader gets the next blocks inflated on all CPUs at once (whichever
 * decoder frees first takes the next block, and a decoder that finishes
 * one starts the next itself) while the kernel copies the current one.
 * Uncompressed layers are spliced from the blob.
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
 * file keeps its decoded blocks and a cursor (the decoder's state) per
 * decoder, so that sequential reads inflate every byte once.
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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <berth/errors.h>
#include <berth/layerindex.h>
#include <berth/plugin.h>

#include "remote.h"

#define BLOCK_MAX (UINT64_C (4) << 20) /* a span up to this size is one block */
#define SUB_BLOCK (UINT64_C (1) << 20) /* a longer span goes in blocks of this size, in order */
#define BLOCKS 16                       /* blocks kept per open file */
#define AHEAD 4                         /* blocks decoded ahead of a sequential reader */
#define MAX_LANES 8                     /* decoders per open file */
#define LANE_ANY UINT_MAX
#define PREFETCH_BUDGET (UINT64_C (256) << 20) /* bytes of blocks in all files before read-ahead stops */
#define READY_TIMEOUT_MS 60000          /* mount: how long the parent waits for INIT */
#define FOREVER 86400.0                 /* kernel cache timeout: the layer never changes */
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

/* ---- a host table of our own ------------------------------------------- */

#include "standalone-host.h"

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

/* N for "/dev/fd/N" and "/proc/self/fd/N", else -1. */
static int
inherited_fd (const char *path)
{
  const char *n = NULL;
  if (strncmp (path, "/dev/fd/", 8) == 0)
    n = path + 8;
  else if (strncmp (path, "/proc/self/fd/", 14) == 0)
    n = path + 14;
  if (n == NULL || *n < '0' || *n > '9')
    return -1;
  char *end;
  long v = strtol (n, &end, 10);
  return *end == '\0' && v >= 0 && v < INT_MAX ? (int) v : -1;
}

/* An inherited descriptor that can be read with pread is used as it is
 * (close-on-exec from now on): reopening /dev/fd/N would work for most files
 * but not for every descriptor a store may hand out (O_PATH, or a file
 * whose path is not reachable here).  Anything else is opened by path. */
static int
blob_open (const char *path, struct blob *b)
{
  struct stat st;
  int fd = inherited_fd (path), fl = fd >= 0 ? fcntl (fd, F_GETFL) : -1;
  if (fl >= 0 && (fl & O_PATH) == 0 && (fl & O_ACCMODE) != O_WRONLY)
    {
      b->fd = fd;
      fcntl (fd, F_SETFD, FD_CLOEXEC);
    }
  else
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

static uint64_t checkpoint_span; /* --checkpoint-span; 0: the library's */
static const char *toc_digest;    /* --toc-digest: the eStargz TOC must hash to it; NULL: not checked */

#define EXIT_NOTSUP 3
static int index_error; /* the last index_get failure's code */

/* Build (tar / eStargz) or load the index of blob b, read through read_at. */
static berth_layerindex *
index_get_at (struct blob *b, berth_layerindex_read_at_fn read_at, void *data, const char *blob_path,
              const char *index_path, const char *media_type, bool estargz, const char *diff_id)
{
  berth_error err = { 0 };
  berth_layerindex *idx = NULL;
  struct berth_layerindex_opts opts = {
    .size = sizeof opts, .diff_id = diff_id, .checkpoint_span = checkpoint_span, .toc_digest = toc_digest,
  };
  int r;
  if (index_path != NULL && (media_type == NULL && !estargz))
    r = berth_layerindex_load (&host, index_path, read_at, data, b->size, NULL, &idx, &err);
  else if (estargz)
    r = berth_layerindex_open_estargz (&host, read_at, data, b->size, &opts, &idx, &err);
  else
    r = berth_layerindex_build (&host, read_at, data, b->size, media_type, 0, &opts, &idx, &err);
  if (r < 0)
    {
      fprintf (stderr, "berth-fuse: %s: %s\n", index_path != NULL && media_type == NULL && !estargz ? index_path
                                                                                                      : blob_path,
               err.msg);
      index_error = r;
      return NULL;
    }
  return idx;
}

static berth_layerindex *
index_get (struct blob *b, const char *blob_path, const char *index_path, const char *media_type, bool estargz,
           const char *diff_id)
{
  return index_get_at (b, blob_read_at, b, blob_path, index_path, media_type, estargz, diff_id);
}

/* The exit status for a failed index_get: EXIT_NOTSUP for content the
 * library cannot serve (a sparse file), which the plugin answers by
 * unpacking the layer instead; 1 otherwise. */
static int
index_exit (void)
{
  return index_error == BERTH_E_NOTSUP ? EXIT_NOTSUP : 1;
}

/* ---- the file system ---------------------------------------------------- */

struct fs
{
  berth_layerindex *idx;
  struct blob blob;             /* lazy mode: fd -1, size from --blob-size */
  struct remote_blob *remote;   /* lazy mode (--remote-url): the blob comes from a registry */
  bool direct;           /* an uncompressed tar: data is spliced from the blob */
  char opaque_xattr[64]; /* "<prefix>.overlay.opaque" */
  uint32_t *nlink;       /* per ino: links of regular files, 2 + subdirectories of directories */
  size_t n;
  int ready_fd;          /* mount: written to once INIT is answered, then closed; -1 */
  unsigned lanes;        /* decoders per open file: the pool's size */
};

/* ---- lazy mode: the blob from a registry (remote.c) --------------------- */

/* read_at of lazy mode: remote_blob_read_at, with every failure logged
 * (issue 7: "returns EIO after retries and is logged") and answered as
 * UNAVAILABLE, which op_read turns into EIO: a registry's 404 or 401 must
 * not reach the reader as ENOENT or EACCES for a file that exists. */
static int
remote_read_at (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  int r = remote_blob_read_at (data, off, buf, len, ret_n, err);
  if (r < 0)
    {
      fprintf (stderr, "berth-fuse: fetching blob bytes %" PRIu64 "+%zu: %s\n", off, len,
               err != NULL ? err->msg : "");
      if (err != NULL)
        err->code = BERTH_E_UNAVAILABLE;
      return BERTH_E_UNAVAILABLE;
    }
  return 0;
}

/* Lazy mode: forget the blob ranges of the chunks of e that hold file bytes
 * [start, end), so that the next read fetches them again (a chunk that
 * failed its digest came from a bad proxy or a torn cache write).  false
 * when nothing was forgotten: the blob is complete and verified, so the TOC
 * itself is wrong and fetching again would not help. */
static bool
remote_forget (struct fs *fs, const struct berth_layerindex_entry *e, uint64_t start, uint64_t end)
{
  bool complete = false;
  if (fs->remote == NULL)
    return false;
  remote_blob_stats (fs->remote, NULL, &complete);
  if (complete)
    return false;
  for (size_t i = 0; i < e->n_chunks; i++)
    {
      const struct berth_layerindex_chunk *c = &e->chunks[i];
      if (c->chunk_offset < end && c->chunk_offset + c->chunk_size > start)
        remote_blob_invalidate (fs->remote, c->offset, c->compressed_end - c->offset, NULL);
    }
  return true;
}

/* Lazy mode: queue the blob ranges of the files before `.prefetch.landmark`
 * (adjacent ones merged) and start the background thread, which fetches
 * them first, then the rest of the blob, and verifies it.  Called from
 * op_init: the mount serves, and this is the process that stays (threads
 * do not survive the fork in daemonize). */
static void
remote_start (struct fs *fs)
{
  const struct berth_layerindex_entry *const *ents;
  size_t n = berth_layerindex_prefetch (fs->idx, &ents), nr = 0;
  struct remote_range *rg = NULL;
  berth_error err = { 0 };
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < ents[i]->n_chunks; k++)
      {
        const struct berth_layerindex_chunk *c = &ents[i]->chunks[k];
        if (nr > 0 && rg[nr - 1].off + rg[nr - 1].len == c->offset)
          {
            rg[nr - 1].len += c->compressed_end - c->offset;
            continue;
          }
        struct remote_range *m = reallocarray (rg, nr + 1, sizeof *rg);
        if (m == NULL)
          break;
        rg = m;
        rg[nr++] = (struct remote_range) { c->offset, c->compressed_end - c->offset };
      }
  if (nr > 0 && remote_blob_prefetch (fs->remote, rg, nr, &err) < 0)
    fprintf (stderr, "berth-fuse: prefetch: %s\n", err.msg);
  free (rg);
  if (remote_blob_start_background (fs->remote, &err) < 0)
    fprintf (stderr, "berth-fuse: %s (the blob is fetched on demand only)\n", err.msg);
}

/* A piece of a file, decoded (or being decoded) into buf. */
enum block_state
{
  BLOCK_FREE = 0,
  BLOCK_WAITING, /* no lane for it yet: the first lane that frees takes it (its
                  * own lane, for a block that continues the one before) */
  BLOCK_QUEUED,  /* in the pool's queue or being decoded */
  BLOCK_READY,
  BLOCK_FAILED,
};

struct block
{
  enum block_state state;
  uint64_t start, end; /* file offsets */
  unsigned lane;       /* LANE_ANY while BLOCK_WAITING for whichever lane frees first */
  bool continues;      /* a later part of a long span: decoded by the lane of the part before */
  unsigned pins;       /* readers waiting for it or sending straight from buf: not to be reused */
  uint64_t used;       /* of->tick when last read */
  bool consumed;       /* a reader took bytes from it */
  char *buf;
  size_t cap;
  int code;            /* BLOCK_FAILED: the library's code */
  char msg[256];
};

/* An open regular file of a compressed layer.  lock guards everything in
 * it; a block's buf is written by a pool worker without the lock while the
 * block is BLOCK_QUEUED (nobody else touches it then).  A lane is a cursor
 * that one worker at a time uses: blocks that continue the same span go to
 * the same lane, in order, so that its cursor goes on instead of restarting
 * from the checkpoint. */
struct open_file
{
  const struct berth_layerindex_entry *e;
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a block changed state, or jobs went to 0 */
  struct block blocks[BLOCKS];
  berth_layerindex_cursor *cursor[MAX_LANES];
  bool lane_busy[MAX_LANES];
  unsigned jobs;       /* lanes busy: release waits for 0 */
  unsigned readers;    /* in op_read: release waits for 0 (a reply lets the
                        * kernel close the file while its reader still
                        * unpins its blocks) */
  uint64_t next_seq;   /* where a sequential reader reads next */
  unsigned seq;        /* sequential reads in a row */
  bool closing;        /* release is waiting: no more read-ahead */
  uint64_t tick;
};

/* The decoding pool: jobs are (file, block) with the block's lane held. */
struct job
{
  struct open_file *of;
  struct block *b;
  struct job *next;
};

static struct
{
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct job *head, *tail;
  uint64_t bytes; /* block buffers allocated, all files */
  bool stop;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, false };

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
  struct fs *fs = fs_of (req);
  const struct berth_layerindex_entry *e = entry_of (fs, ino);
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
  pthread_cond_init (&of->cond, NULL);
  fi->fh = (uint64_t) (uintptr_t) of;
  fi->keep_cache = 1;
  if (fuse_reply_open (req, fi) != 0)
    {
      pthread_cond_destroy (&of->cond);
      pthread_mutex_destroy (&of->lock);
      free (of);
    }
}

static void
open_file_free (struct open_file *of)
{
  pthread_mutex_lock (&of->lock);
  of->closing = true;
  while (of->jobs > 0 || of->readers > 0)
    pthread_cond_wait (&of->cond, &of->lock);
  pthread_mutex_unlock (&of->lock);
  uint64_t freed = 0;
  for (size_t i = 0; i < BLOCKS; i++)
    {
      freed += of->blocks[i].cap;
      free (of->blocks[i].buf);
    }
  for (size_t i = 0; i < MAX_LANES; i++)
    berth_layerindex_cursor_free (of->cursor[i]);
  pthread_mutex_lock (&pool.lock);
  pool.bytes -= freed;
  pthread_mutex_unlock (&pool.lock);
  pthread_cond_destroy (&of->cond);
  pthread_mutex_destroy (&of->lock);
  free (of);
}

static void
op_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void) ino;
  struct open_file *of = (struct open_file *) (uintptr_t) fi->fh;
  if (of != NULL)
    open_file_free (of);
  fuse_reply_err (req, 0);
}

/* ---- decoding blocks ---------------------------------------------------- */

static void
pool_push (struct open_file *of, struct block *b)
{
  struct job *j = malloc (sizeof *j);
  if (j == NULL)
    {
      b->state = BLOCK_FAILED;
      b->code = BERTH_E_NOMEM;
      snprintf (b->msg, sizeof b->msg, "out of memory");
      return;
    }
  *j = (struct job) { of, b, NULL };
  b->state = BLOCK_QUEUED;
  pthread_mutex_lock (&pool.lock);
  if (pool.tail)
    pool.tail->next = j;
  else
    pool.head = j;
  pool.tail = j;
  pthread_cond_signal (&pool.cond);
  pthread_mutex_unlock (&pool.lock);
}

/* Called with of->lock held, lane l just freed: hand it the next block
 * waiting for it or for any lane (lowest offset first: that is the one a
 * reader waits for) or mark it free.  Blocks that start a span are not tied
 * to a lane before one is free, so that both CPUs decode a sequential
 * reader's blocks (they used to queue up behind lane 0 while lane 1 idled,
 * which halved the throughput on 2 CPUs). */
static void
lane_next (struct open_file *of, unsigned l)
{
  struct block *next = NULL;
  for (size_t i = 0; i < BLOCKS; i++)
    if (of->blocks[i].state == BLOCK_WAITING && (of->blocks[i].lane == l || of->blocks[i].lane == LANE_ANY)
        && (next == NULL || of->blocks[i].start < next->start))
      next = &of->blocks[i];
  if (next != NULL)
    {
      /* The later parts of its span that wait too go to the same lane, in
       * order: another lane would decode the span again from its start. */
      for (struct block *b = next, *c; b != NULL; b = c)
        {
          b->lane = l;
          c = NULL;
          for (size_t i = 0; i < BLOCKS; i++)
            if (of->blocks[i].state == BLOCK_WAITING && of->blocks[i].lane == LANE_ANY && of->blocks[i].continues
                && of->blocks[i].start == b->end)
              c = &of->blocks[i];
        }
      pool_push (of, next);
    }
  else
    {
      of->lane_busy[l] = false;
      of->jobs--;
    }
  pthread_cond_broadcast (&of->cond);
}

static void read_ahead (struct fs *fs, struct open_file *of, uint64_t next, uint64_t keep);

/* Decode one block with its lane's cursor, outside of->lock.  A lane that
 * finishes a block of a sequential reader starts the next ones itself: the
 * FUSE thread that would (read_blocks) may not run for milliseconds on a
 * busy machine, and the lanes would idle meanwhile. */
static void
block_decode (struct fs *fs, struct open_file *of, struct block *b)
{
  berth_error err = { 0 };
  size_t n = 0;
  int r = 0;
  if (of->cursor[b->lane] == NULL)
    r = berth_layerindex_cursor_new (fs->idx, &of->cursor[b->lane], &err);
  if (r == 0)
    r = berth_layerindex_cursor_read (of->cursor[b->lane], of->e, b->start, b->buf, (size_t) (b->end - b->start),
                                      &n, &err);
  /* Lazy mode: a chunk that failed its digest (or gzip's CRC) is fetched
   * once more before the reader gets EIO. */
  if (r == BERTH_E_INVALID && remote_forget (fs, of->e, b->start, b->end))
    {
      fprintf (stderr, "berth-fuse: `%s': %s; fetching it again\n", of->e->path, err.msg);
      err = (berth_error) { 0 };
      r = berth_layerindex_cursor_read (of->cursor[b->lane], of->e, b->start, b->buf, (size_t) (b->end - b->start),
                                        &n, &err);
    }
  if (r == 0 && n != b->end - b->start)
    r = host_error_set (&err, BERTH_E_INVALID, 0, "`%s`: short read at %" PRIu64, of->e->path, b->start);
  pthread_mutex_lock (&of->lock);
  if (r < 0)
    {
      b->state = BLOCK_FAILED;
      b->code = r;
      snprintf (b->msg, sizeof b->msg, "%.250s", err.msg);
    }
  else
    b->state = BLOCK_READY;
  lane_next (of, b->lane);
  if (r == 0 && of->seq > 0 && !of->closing)
    read_ahead (fs, of, of->next_seq, of->next_seq);
  pthread_mutex_unlock (&of->lock);
}

static void *
pool_worker (void *data)
{
  struct fs *fs = data;
  for (;;)
    {
      pthread_mutex_lock (&pool.lock);
      while (pool.head == NULL && !pool.stop)
        pthread_cond_wait (&pool.cond, &pool.lock);
      struct job *j = pool.head;
      if (j == NULL)
        {
          pthread_mutex_unlock (&pool.lock);
          return NULL;
        }
      pool.head = j->next;
      if (pool.head == NULL)
        pool.tail = NULL;
      pthread_mutex_unlock (&pool.lock);
      block_decode (fs, j->of, j->b);
      free (j);
    }
}

/* The block holding file offset `off` (queued, waiting or ready), or NULL. */
static struct block *
block_find (struct open_file *of, uint64_t off)
{
  for (size_t i = 0; i < BLOCKS; i++)
    {
      struct block *b = &of->blocks[i];
      if (b->state != BLOCK_FREE && off >= b->start && off < b->end)
        return b;
    }
  return NULL;
}

/* A slot for a new block: one the reader is done with (read from, ready or
 * failed, nobody sending from it, behind `keep`, the offset being read, and
 * not read by the last two reads), else a free one, else the least recently
 * read of those behind `keep`, else, unless this is for read-ahead (which
 * must not push out what it decoded before the reader got there), the
 * least recently read of all.  Done ones come before free ones so that a
 * sequential reader cycles through a few buffers that are mapped and in the
 * CPU's cache already: taking all free slots first faulted in 16 fresh
 * buffers per open file (64 MiB for eStargz's 4 MiB chunks, 7 % of the
 * server's CPU time for a 128 MiB read). */
static struct block *
block_slot (struct open_file *of, uint64_t keep, bool ahead)
{
  struct block *free_slot = NULL, *done = NULL, *behind = NULL, *any = NULL;
  for (size_t i = 0; i < BLOCKS; i++)
    {
      struct block *b = &of->blocks[i];
      if (b->state == BLOCK_FREE)
        {
          if (free_slot == NULL)
            free_slot = b;
          continue;
        }
      if ((b->state != BLOCK_READY && b->state != BLOCK_FAILED) || b->pins > 0 || (keep >= b->start && keep < b->end))
        continue;
      if (b->end <= keep && (behind == NULL || b->used < behind->used))
        behind = b;
      if (b->consumed && b->end <= keep && b->used + 2 <= of->tick && (done == NULL || b->used < done->used))
        done = b;
      if (any == NULL || b->used < any->used)
        any = b;
    }
  return done != NULL ? done : free_slot != NULL ? free_slot : behind != NULL ? behind : ahead ? NULL : any;
}

/* Start decoding the block that holds `off` into a slot; NULL when no slot
 * is free (the caller waits) or, for read-ahead, when the budget is spent. */
static struct block *
block_start (struct fs *fs, struct open_file *of, uint64_t off, uint64_t keep, bool ahead)
{
  uint64_t span_start, span_end;
  berth_error err = { 0 };
  if (berth_layerindex_span (fs->idx, of->e, off, &span_start, &span_end, &err) < 0)
    {
      span_start = off - off % SUB_BLOCK;
      span_end = span_start + SUB_BLOCK < of->e->size ? span_start + SUB_BLOCK : of->e->size;
    }
  uint64_t start = span_start, end = span_end;
  bool continues = false; /* a later part of a long span: its cursor must go on from the part before */
  if (end - start > BLOCK_MAX)
    {
      /* Small blocks: they are decoded one after the other by one lane, so
       * the first reply waits for no more than one of them. */
      start = span_start + (off - span_start) / SUB_BLOCK * SUB_BLOCK;
      end = start + SUB_BLOCK < span_end ? start + SUB_BLOCK : span_end;
      continues = start > span_start;
    }
  struct block *b = block_slot (of, keep, ahead);
  if (b == NULL)
    return NULL;
  size_t len = (size_t) (end - start);
  if (b->cap < len)
    {
      pthread_mutex_lock (&pool.lock);
      bool over = ahead && pool.bytes + len > PREFETCH_BUDGET;
      if (!over)
        pool.bytes += len - b->cap;
      pthread_mutex_unlock (&pool.lock);
      char *nb = over ? NULL : realloc (b->buf, len);
      if (nb == NULL)
        {
          if (!over)
            {
              pthread_mutex_lock (&pool.lock);
              pool.bytes -= len - b->cap;
              pthread_mutex_unlock (&pool.lock);
            }
          return NULL;
        }
      b->buf = nb;
      b->cap = len;
    }
  b->start = start;
  b->end = end;
  b->used = of->tick;
  b->consumed = false;
  b->code = 0;
  /* Which lane: the one that decoded the part before (it goes on from
   * there), else a free one, else the first to free (LANE_ANY). */
  unsigned lane = LANE_ANY;
  bool before = false;
  for (size_t i = 0; continues && i < BLOCKS; i++)
    if (&of->blocks[i] != b && of->blocks[i].state != BLOCK_FREE && of->blocks[i].end == start)
      {
        lane = of->blocks[i].lane; /* LANE_ANY: tied to the lane that takes the part before */
        before = true;
      }
  for (unsigned l = 0; !before && lane == LANE_ANY && l < fs->lanes; l++)
    if (!of->lane_busy[l])
      lane = l;
  b->lane = lane;
  b->continues = continues;
  if (lane == LANE_ANY || of->lane_busy[lane])
    b->state = BLOCK_WAITING;
  else
    {
      of->lane_busy[lane] = true;
      of->jobs++;
      pool_push (of, b);
    }
  return b;
}

/* Called with of->lock held: have the AHEAD blocks from the one holding
 * `next` on decoded (or decoding), as slots and the budget allow, without
 * pushing out the block holding `keep`. */
static void
read_ahead (struct fs *fs, struct open_file *of, uint64_t next, uint64_t keep)
{
  for (int k = 0; k < AHEAD && next < of->e->size; k++)
    {
      struct block *nb = block_find (of, next);
      if (nb == NULL && (nb = block_start (fs, of, next, keep, true)) == NULL)
        break;
      next = nb->end;
    }
}

static bool
blocks_pinned (struct open_file *of)
{
  for (size_t i = 0; i < BLOCKS; i++)
    if (of->blocks[i].pins > 0)
      return true;
  return false;
}

#define MAX_SEGS 4 /* blocks one reply is sent from without a copy */

/* Copy what the reply has in pinned blocks so far into *copy (size bytes)
 * and unpin them: from now on the reply is put together in *copy. */
static int
segs_to_copy (struct open_file *of, struct iovec *iov, struct block **held, size_t *nseg, size_t size, char **copy,
              berth_error *err)
{
  if (*copy == NULL && (*copy = malloc (size)) == NULL)
    return host_error_set (err, BERTH_E_NOMEM, ENOMEM, "read buffer");
  for (size_t i = 0, at = 0; i < *nseg; at += iov[i].iov_len, i++)
    {
      memcpy (*copy + at, iov[i].iov_base, iov[i].iov_len);
      held[i]->pins--;
    }
  *nseg = 0;
  pthread_cond_broadcast (&of->cond);
  return 0;
}

/* Reply to a read of [off, off + size) of a compressed file, called and
 * returning with of->lock held.  The reply is sent straight from the blocks
 * (pinned meanwhile; a read crosses a block boundary about every time, as
 * blocks end at checkpoints); a read over more than MAX_SEGS blocks (small
 * eStargz chunks) is copied together instead, so that one reader never
 * pins more than that. */
static int
read_blocks (fuse_req_t req, struct fs *fs, struct open_file *of, uint64_t off, size_t size, berth_error *err)
{
  if (size > of->e->size - off)
    size = (size_t) (of->e->size - off);
  /* Sequential, also when the kernel's read-ahead requests arrive out of
   * order on different threads: near where the last reads ended. */
  bool sequential = off + 2 * BLOCK_MAX >= of->next_seq && off <= of->next_seq + BLOCK_MAX;
  of->seq = sequential ? of->seq + 1 : 0;
  if (!sequential || off + size > of->next_seq)
    of->next_seq = off + size;
  of->tick++;
  struct iovec iov[MAX_SEGS];
  struct block *held[MAX_SEGS];
  size_t nseg = 0;
  char *copy = NULL;
  size_t done = 0;
  int r = 0;
  while (done < size)
    {
      uint64_t want = off + done;
      struct block *b = block_find (of, want);
      if (b == NULL && (b = block_start (fs, of, want, want, false)) == NULL)
        {
          /* Every slot is busy.  Never wait holding pins: readers that each
           * hold some blocks and want one more would wait for each other. */
          if (nseg > 0)
            {
              if ((r = segs_to_copy (of, iov, held, &nseg, size, &copy, err)) < 0)
                break;
              continue;
            }
          if (of->jobs == 0 && !blocks_pinned (of))
            {
              r = host_error_set (err, BERTH_E_NOMEM, ENOMEM, "read buffer");
              break;
            }
          pthread_cond_wait (&of->cond, &of->lock);
          continue;
        }
      if (of->seq > 0)
        read_ahead (fs, of, b->end, want); /* the blocks after this one, on the other lanes */
      if (b->state == BLOCK_WAITING || b->state == BLOCK_QUEUED)
        {
          b->pins++;
          while (b->state == BLOCK_WAITING || b->state == BLOCK_QUEUED)
            pthread_cond_wait (&of->cond, &of->lock);
          b->pins--;
          continue; /* find it again: a failed block may have been freed and reused */
        }
      b->used = of->tick;
      b->consumed = true;
      if (b->state == BLOCK_FAILED)
        {
          r = host_error_set (err, b->code, 0, "%s", b->msg);
          if (b->pins == 0)
            b->state = BLOCK_FREE; /* try again next time */
          break;
        }
      size_t in_block = (size_t) (want - b->start), take = (size_t) (b->end - want);
      if (take > size - done)
        take = size - done;
      if (copy == NULL && nseg == MAX_SEGS && (r = segs_to_copy (of, iov, held, &nseg, size, &copy, err)) < 0)
        break;
      if (copy != NULL)
        memcpy (copy + done, b->buf + in_block, take);
      else
        {
          b->pins++;
          held[nseg] = b;
          iov[nseg++] = (struct iovec) { b->buf + in_block, take };
        }
      done += take;
    }
  if (r == 0)
    {
      pthread_mutex_unlock (&of->lock);
      if (copy != NULL)
        fuse_reply_buf (req, copy, done);
      else
        fuse_reply_iov (req, iov, (int) nseg);
      pthread_mutex_lock (&of->lock);
    }
  for (size_t i = 0; i < nseg; i++)
    held[i]->pins--;
  if (nseg > 0)
    pthread_cond_broadcast (&of->cond);
  free (copy);
  return r;
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
  if ((uint64_t) off >= of->e->size || size == 0)
    {
      fuse_reply_buf (req, NULL, 0);
      return;
    }
  if (fs->direct)
    {
      /* Uncompressed: the bytes are in the blob as they are; splice them
       * (libfuse falls back to read + write when it cannot). */
      if (size > of->e->size - (uint64_t) off)
        size = (size_t) (of->e->size - (uint64_t) off);
      struct fuse_bufvec bv = FUSE_BUFVEC_INIT (size);
      bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
      bv.buf[0].fd = fs->blob.fd;
      bv.buf[0].pos = (off_t) (of->e->offset + (uint64_t) off);
      fuse_reply_data (req, &bv, FUSE_BUF_SPLICE_MOVE);
      return;
    }
  pthread_mutex_lock (&of->lock);
  of->readers++;
  int r = read_blocks (req, fs, of, (uint64_t) off, size, &err);
  if (--of->readers == 0)
    pthread_cond_broadcast (&of->cond);
  pthread_mutex_unlock (&of->lock);
  /* Past this point `of` may be gone once a reply was sent; on an error
   * none was, so the kernel still holds the file open. */
  if (r < 0)
    {
      fprintf (stderr, "berth-fuse: read of `%s' at %lld: %s\n", of->e->path, (long long) off, err.msg);
      fuse_reply_err (req, errno_of (r));
    }
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
  struct fs *fs = userdata;
  /* Immutable data: let the kernel cache and read ahead freely. */
  if (conn->capable & FUSE_CAP_ASYNC_READ)
    conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
    conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (conn->capable & FUSE_CAP_READDIRPLUS)
    conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
    conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  /* Uncompressed layers: blob pages go to the kernel without a copy. */
  if (fs->direct && (conn->capable & FUSE_CAP_SPLICE_WRITE))
    conn->want |= FUSE_CAP_SPLICE_WRITE | (conn->capable & FUSE_CAP_SPLICE_MOVE);
  conn->want &= ~(unsigned) FUSE_CAP_AUTO_INVAL_DATA;
  /* Reads of up to 1 MiB: libfuse derives max_pages from max_write.  The
   * read-ahead window is the bdi's, which cmd_mount raises.  Spliced
   * replies (uncompressed layers) go through a pipe that must hold the
   * whole reply, and pipes grow to /proc/sys/fs/pipe-max-size (1 MiB by
   * default) at most: a 1 MiB read did not fit with its header, so libfuse
   * fell back to reading into a fresh buffer for every request (a copy
   * more and page faults: 0.2 s of CPU per 128 MiB).  Requests of 1 MiB
   * less 64 KiB fit. */
  conn->max_write = fs->direct ? (1 << 20) - (64 << 10) : 1 << 20;
  if (fs->ready_fd >= 0)
    {
      char ok = 0;
      ssize_t n;
      do
        n = write (fs->ready_fd, &ok, 1);
      while (n < 0 && errno == EINTR);
      close (fs->ready_fd);
      fs->ready_fd = -1;
    }
  if (fs->remote != NULL)
    remote_start (fs);
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
  fputs ("usage: berth-fuse index --blob BLOB (--media-type TYPE | --estargz) [--diff-id sha256:HEX]\n"
         "                  [--checkpoint-span BYTES] --out INDEX\n"
         "       berth-fuse mount --blob BLOB (--index INDEX | --media-type TYPE | --estargz)\n"
         "                  [--xattr-prefix trusted|user] [--threads N] [--readahead-kb N] [--log FILE]\n"
         "                  [--foreground] MOUNTPOINT\n"
         "       berth-fuse check --blob BLOB --index INDEX\n"
         "BLOB may be /dev/fd/N (an inherited descriptor).\n"
         "Lazy eStargz mount (instead of --blob): --estargz --remote-url https://HOST/v2/REPO/blobs/DIGEST\n"
         "  --blob-size N --blob-digest sha256:HEX --remote-cache FILE [--remote-headers-file FILE]\n"
         "  [--remote-ca FILE] [--remote-plain-http] [--remote-timeout S] [--remote-retries N]\n"
         "  [--toc-digest sha256:HEX] (the manifest's TOC digest annotation: a TOC that does not hash to it\n"
         "  is refused before any file is served)\n",
         f);
}

struct opts
{
  const char *blob, *index, *media_type, *out, *log, *xattr_prefix, *diff_id;
  bool estargz, foreground;
  unsigned threads;
  long readahead_kb; /* the bdi read-ahead to set; 0: the kernel's */
  /* lazy mode */
  const char *remote_url, *remote_cache, *remote_headers_file, *remote_ca, *blob_digest;
  bool remote_plain_http;
  uint64_t blob_size;
  long remote_timeout; /* connect, and seconds below 1 KiB/s that make a stall */
  int remote_retries;
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
  if (o->estargz && o->diff_id != NULL)
    {
      /* The TOC does not say what the whole tar hashes to: read it all once
       * as a gzip layer to check, then index through the TOC. */
      berth_layerindex *tar = index_get (&b, o->blob, NULL, "application/vnd.oci.image.layer.v1.tar+gzip", false,
                                         o->diff_id);
      if (tar == NULL)
        return index_exit ();
      berth_layerindex_free (tar);
    }
  berth_layerindex *idx = index_get (&b, o->blob, NULL, o->media_type, o->estargz, o->estargz ? NULL : o->diff_id);
  if (idx == NULL)
    return index_exit ();
  berth_error err = { 0 };
  int r = berth_layerindex_save (idx, o->out, &err);
  if (r < 0)
    fprintf (stderr, "berth-fuse: saving the index to `%s': %s\n", o->out, err.msg);
  else
    {
      const char *d = berth_layerindex_diff_id (idx);
      printf ("%zu entries, %zu checkpoints%s%s\n", berth_layerindex_count (idx), berth_layerindex_checkpoints (idx),
              d != NULL ? ", diffID " : "", d != NULL ? d : "");
    }
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
  berth_layerindex *idx = index_get (&b, o->blob, o->index, NULL, false, NULL);
  if (idx == NULL)
    return 1;
  printf ("%zu entries\n", berth_layerindex_count (idx));
  berth_layerindex_free (idx);
  close (b.fd);
  return 0;
}

/* The kernel's read-ahead window for the mount at `mountpoint` (its bdi is
 * named after the device number): FUSE starts with 128 KiB, which keeps one
 * small request in flight; a larger window lets the kernel ask for the next
 * MiBs while the current ones are decoded.  kb 0 leaves the kernel's.  Best
 * effort (root only); not in --foreground, where nobody could stat the
 * mountpoint before the loop serves. */
static void
set_readahead (const char *mountpoint, long kb)
{
  struct stat st;
  char path[64], val[32];
  if (kb <= 0 || stat (mountpoint, &st) < 0)
    return;
  snprintf (path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", major (st.st_dev), minor (st.st_dev));
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  int n = snprintf (val, sizeof val, "%ld", kb);
  if (write (fd, val, (size_t) n) < 0)
    {
      /* not fatal: reads work, only with the kernel's smaller window */
    }
  close (fd);
}

/* Fork: the parent waits until the child has answered INIT (op_init writes
 * a byte to the pipe) and exits 0, or 1 after taking the mount down if the
 * child died first or did not answer in time.  The child becomes a session
 * leader with stdin/stdout on /dev/null and stderr on the log (or
 * /dev/null), and returns 0.  The parent ends with _exit: what it holds is
 * the child's now, and a leak check (ASan builds) there would only
 * duplicate the child's. */
static int
daemonize (struct fuse_session *se, struct fs *fs, const char *mountpoint, const char *log, long readahead_kb)
{
  int p[2];
  if (pipe2 (p, O_CLOEXEC) < 0)
    {
      fprintf (stderr, "berth-fuse: pipe: %s\n", strerror (errno));
      return -1;
    }
  fflush (NULL);
  pid_t pid = fork ();
  if (pid < 0)
    {
      fprintf (stderr, "berth-fuse: fork: %s\n", strerror (errno));
      close (p[0]);
      close (p[1]);
      return -1;
    }
  if (pid > 0)
    {
      close (p[1]);
      struct pollfd pfd = { .fd = p[0], .events = POLLIN };
      char ok;
      int pr;
      do
        pr = poll (&pfd, 1, READY_TIMEOUT_MS);
      while (pr < 0 && errno == EINTR);
      if (pr == 1 && read (p[0], &ok, 1) == 1)
        {
          set_readahead (mountpoint, readahead_kb);
          _exit (0);
        }
      int status = 0;
      if (pr == 0)
        {
          kill (pid, SIGKILL);
          fprintf (stderr, "berth-fuse: the server did not answer the kernel in %d s%s%s\n", READY_TIMEOUT_MS / 1000,
                   log != NULL ? "; see " : "", log != NULL ? log : "");
        }
      waitpid (pid, &status, 0);
      if (pr != 0)
        fprintf (stderr, "berth-fuse: the server exited before serving (%s %d)%s%s\n",
                 WIFSIGNALED (status) ? "signal" : "status",
                 WIFSIGNALED (status) ? WTERMSIG (status) : WEXITSTATUS (status), log != NULL ? "; see " : "",
                 log != NULL ? log : "");
      fuse_session_unmount (se);
      _exit (1);
    }
  close (p[0]);
  fs->ready_fd = p[1];
  if (setsid () < 0 || chdir ("/") < 0)
    return -1;
  int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
  int logfd = log != NULL ? open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
  if (null < 0)
    return -1;
  dup2 (null, STDIN_FILENO);
  dup2 (null, STDOUT_FILENO);
  dup2 (logfd >= 0 ? logfd : null, STDERR_FILENO);
  close (null);
  if (logfd >= 0)
    close (logfd);
  return 0;
}

static int
cmd_mount (struct opts *o, const char *mountpoint)
{
  static struct fs fs = { .ready_fd = -1 };
  bool lazy = o->remote_url != NULL;
  if ((o->blob == NULL) == !lazy || mountpoint == NULL || (o->index == NULL && o->media_type == NULL && !o->estargz))
    {
      usage (stderr);
      return 2;
    }
  if (lazy && (!o->estargz || o->remote_cache == NULL || o->blob_digest == NULL || o->blob_size == 0))
    {
      fprintf (stderr, "berth-fuse: --remote-url wants --estargz, --remote-cache, --blob-size and --blob-digest\n");
      return 2;
    }
  const char *prefix = o->xattr_prefix != NULL ? o->xattr_prefix : "trusted";
  if (strcmp (prefix, "trusted") != 0 && strcmp (prefix, "user") != 0)
    {
      fprintf (stderr, "berth-fuse: --xattr-prefix must be trusted or user, not `%s'\n", prefix);
      return 2;
    }
  snprintf (fs.opaque_xattr, sizeof fs.opaque_xattr, "%s.overlay.opaque", prefix);
  if (lazy)
    {
      struct remote_opts ro = {
        .host = &host,
        .url = o->remote_url,
        .headers_file = o->remote_headers_file,
        .ca_file = o->remote_ca,
        .allow_http = o->remote_plain_http,
        .blob_size = o->blob_size,
        .digest = o->blob_digest,
        .cache_path = o->remote_cache,
        .connect_timeout = o->remote_timeout,
        .low_speed_time = o->remote_timeout,
        .retries = o->remote_retries,
      };
      berth_error err = { 0 };
      if (remote_blob_open (&ro, &fs.remote, &err) < 0)
        {
          fprintf (stderr, "berth-fuse: %s: %s\n", o->remote_url, err.msg);
          return 1;
        }
      fs.blob = (struct blob) { .fd = -1, .size = o->blob_size };
    }
  else if (blob_open (o->blob, &fs.blob) < 0)
    return 1;
  /* Lazy: only the footer and the TOC are fetched here. */
  fs.idx = lazy ? index_get_at (&fs.blob, remote_read_at, fs.remote, o->remote_url, o->index, NULL, true, NULL)
                : index_get (&fs.blob, o->blob, o->index, o->media_type, o->estargz, NULL);
  if (fs.idx == NULL)
    {
      remote_blob_close (fs.remote);
      return 1;
    }
  fs.direct = !lazy && berth_layerindex_stream_size (fs.idx) > 0 && berth_layerindex_checkpoints (fs.idx) == 0
              && berth_layerindex_toc_digest (fs.idx) == NULL;
  long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
  fs.lanes = ncpu < 2 ? 2 : ncpu > MAX_LANES ? MAX_LANES : (unsigned) ncpu;
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
  fuse_opt_free_args (&args); /* the session copied what it needs */
  if (se == NULL)
    {
      fprintf (stderr, "berth-fuse: cannot create the FUSE session\n");
      return 1;
    }
  if (fuse_set_signal_handlers (se) != 0 || fuse_session_mount (se, mountpoint) != 0)
    {
      fprintf (stderr, "berth-fuse: cannot mount on `%s' (is /dev/fuse there, and the mountpoint a directory?)\n",
               mountpoint);
      fuse_remove_signal_handlers (se);
      fuse_session_destroy (se);
      return 1;
    }
  if (o->foreground)
    {
      if (chdir ("/") < 0)
        {
          /* harmless: only keeps the old cwd busy */
        }
    }
  else if (daemonize (se, &fs, mountpoint, o->log, o->readahead_kb) < 0)
    {
      fuse_session_unmount (se);
      fuse_remove_signal_handlers (se);
      fuse_session_destroy (se);
      return 1;
    }
  /* The decoding pool: threads do not survive fork, so only now.  They
   * block every signal: SIGTERM must reach a thread of libfuse's loop, whose
   * handler ends it; one of ours would take it and go on waiting. */
  pthread_t workers[MAX_LANES];
  unsigned nworkers = 0;
  sigset_t all, old;
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  for (; !fs.direct && nworkers < fs.lanes; nworkers++)
    if (pthread_create (&workers[nworkers], NULL, pool_worker, &fs) != 0)
      break;
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  int r = -1;
  if (fs.direct || nworkers > 0)
    {
      struct fuse_loop_config *cfg = fuse_loop_cfg_create ();
      if (cfg != NULL)
        fuse_loop_cfg_set_max_threads (cfg, o->threads > 0 ? o->threads : 4);
      r = cfg != NULL ? fuse_session_loop_mt (se, cfg) : fuse_session_loop (se);
      fuse_loop_cfg_destroy (cfg);
    }
  else
    fprintf (stderr, "berth-fuse: cannot start the decoding threads\n");
  pthread_mutex_lock (&pool.lock);
  pool.stop = true;
  pthread_cond_broadcast (&pool.cond);
  pthread_mutex_unlock (&pool.lock);
  for (unsigned i = 0; i < nworkers; i++)
    pthread_join (workers[i], NULL);
  fuse_session_unmount (se);
  fuse_remove_signal_handlers (se);
  fuse_session_destroy (se);
  berth_layerindex_free (fs.idx);
  remote_blob_close (fs.remote); /* stops the background fetch, saves the bitmap */
  free (fs.nlink);
  if (fs.blob.fd >= 0)
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
    { "diff-id", required_argument, NULL, 'd' },
    { "readahead-kb", required_argument, NULL, 'r' },
    { "checkpoint-span", required_argument, NULL, 'c' },
    { "remote-url", required_argument, NULL, 'U' },
    { "remote-cache", required_argument, NULL, 'C' },
    { "remote-headers-file", required_argument, NULL, 'H' },
    { "remote-ca", required_argument, NULL, 'A' },
    { "remote-plain-http", no_argument, NULL, 'P' },
    { "remote-timeout", required_argument, NULL, 'T' },
    { "remote-retries", required_argument, NULL, 'R' },
    { "blob-size", required_argument, NULL, 'S' },
    { "blob-digest", required_argument, NULL, 'D' },
    { "toc-digest", required_argument, NULL, 'G' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  struct opts o = { .readahead_kb = 4096 };
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
      case 'd': o.diff_id = optarg; break;
      case 'c':
        {
          char *end;
          unsigned long long n = strtoull (optarg, &end, 10);
          if (*end != '\0' || n < 65536 || n > (UINT64_C (1) << 30))
            {
              fprintf (stderr, "berth-fuse: --checkpoint-span wants 65536..1073741824 bytes, not `%s'\n", optarg);
              return 2;
            }
          checkpoint_span = n;
          break;
        }
      case 'r':
        {
          char *end;
          long n = strtol (optarg, &end, 10);
          if (*end != '\0' || n < 0 || n > 1048576)
            {
              fprintf (stderr, "berth-fuse: --readahead-kb wants 0..1048576 (0: the kernel's), not `%s'\n", optarg);
              return 2;
            }
          o.readahead_kb = n;
          break;
        }
      case 'U': o.remote_url = optarg; break;
      case 'C': o.remote_cache = optarg; break;
      case 'H': o.remote_headers_file = optarg; break;
      case 'A': o.remote_ca = optarg; break;
      case 'P': o.remote_plain_http = true; break;
      case 'D': o.blob_digest = optarg; break;
      case 'G': toc_digest = optarg; break;
      case 'S':
      case 'T':
      case 'R':
        {
          char *end;
          errno = 0;
          unsigned long long n = strtoull (optarg, &end, 10);
          if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' || (c != 'S' && n > 3600))
            {
              fprintf (stderr, "berth-fuse: bad number `%s'\n", optarg);
              return 2;
            }
          if (c == 'S')
            o.blob_size = n;
          else if (c == 'T')
            o.remote_timeout = (long) n;
          else
            o.remote_retries = n == 0 ? -1 : (int) n;
          break;
        }
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
