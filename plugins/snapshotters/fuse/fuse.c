/* io.berth.snapshotter.v1.fuse: descriptor, init/fini and the snapshotter
 * methods.  What the plugin does and its layout: fuse.h.
 *
 * Records through libberth-snapstore, containerd's overlay semantics for
 * everything that is not a served layer: a bind mount for a snapshot with
 * no parent, an overlay otherwise (lowerdir chain nearest first, upperdir
 * and workdir for an active snapshot), a read-only bind of the parent for
 * a view on one parent.  Removal is synchronous, as overlayfs's.
 *
 * Lazy layers (fuse.h): prepare_lazy mounts them, the watcher thread
 * (lazy_watch) publishes their completion and turns them into ordinary
 * served layers once the content store holds their blob; ensure_served
 * mounts a dead one again, lazily while the store has not got its blob.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <berth/config.h>
#include <berth/plugin.h>
#include <berth/snapshotter.h>
#include <berth/snapstore.h>

#include "fuse.h"

#ifndef BERTH_FUSE_BINARY
#define BERTH_FUSE_BINARY "/usr/libexec/berth/berth-fuse"
#endif

char *
fz_path (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *p = NULL;
  int n = vasprintf (&p, fmt, ap);
  va_end (ap);
  return n < 0 ? NULL : p;
}

static void
str_freep (char **p)
{
  free (*p);
}

static void
snap_freep (struct berth_snapstore_snapshot **p)
{
  berth_snapstore_snapshot_free (*p);
}

static void
closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}

#define _cleanup_str_ __attribute__ ((cleanup (str_freep)))
#define _cleanup_snap_ __attribute__ ((cleanup (snap_freep)))
#define _cleanup_fd_ __attribute__ ((cleanup (closep)))
#define _cleanup_remote_ __attribute__ ((cleanup (fz_remote_clear)))

static int
nomem (struct fz *s, berth_error *err)
{
  return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
}

static int
sys_error (struct fz *s, berth_error *err, int errnum, const char *what, const char *path)
{
  int code = errnum == ENOSPC || errnum == EDQUOT     ? BERTH_E_EXHAUSTED
             : errnum == ENOMEM                      ? BERTH_E_NOMEM
             : errnum == EACCES || errnum == EPERM   ? BERTH_E_PERMISSION
                                                     : BERTH_E_INTERNAL;
  return s->host->error_set (err, code, errnum, "%s %s", what, path);
}

/* ---- mounts ----------------------------------------------------------------------- */

/* Options joined with commas into the page the kernel copies. */
static int
add_opt (struct fz *s, char *buf, size_t *len, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (buf + *len, s->max_data + 1 - *len, fmt, ap);
  va_end (ap);
  if (n < 0 || *len + (size_t) n > s->max_data)
    return -1;
  *len += (size_t) n;
  return 0;
}

static int
emit (struct fz *s, berth_mounts *ret, const char *type, const char *source, const char *const *options,
      berth_error *err)
{
  if (ret == NULL)
    return 0;
  int r = s->host->mounts_add (ret, type, source, NULL, options);
  return r < 0 ? s->host->error_set (err, r, 0, "adding a mount") : 0;
}

static int
build_mounts (struct fz *s, const struct berth_snapstore_snapshot *snap, berth_mounts *ret, berth_error *err)
{
  bool active = snap->kind == BERTH_SNAPSHOT_ACTIVE;
  if (snap->n_parents == 0 || (!active && snap->n_parents == 1))
    {
      const char *id = snap->n_parents == 0 ? snap->id : snap->parent_ids[0];
      _cleanup_str_ char *fs = fz_path ("%s/%s/fs", s->snapshots, id);
      const char *opts[] = { active ? "rw" : "ro", "rbind", NULL };
      return fs ? emit (s, ret, "bind", fs, opts, err) : nomem (s, err);
    }
  _cleanup_str_ char *data = malloc (s->max_data + 1);
  if (data == NULL)
    return nomem (s, err);
  size_t len = 0;
  int r = 0;
  _cleanup_str_ char *upper = fz_path ("upperdir=%s/%s/fs", s->snapshots, snap->id);
  _cleanup_str_ char *work = fz_path ("workdir=%s/%s/work", s->snapshots, snap->id);
  if (upper == NULL || work == NULL)
    return nomem (s, err);
  r = add_opt (s, data, &len, "lowerdir=");
  for (size_t i = 0; r == 0 && i < snap->n_parents; i++)
    r = add_opt (s, data, &len, "%s%s/%s/fs", i ? ":" : "", s->snapshots, snap->parent_ids[i]);
  /* What the page must also hold besides the chain. */
  size_t rest = (s->index_off ? strlen (",index=off") : 0) + (active ? 2 + strlen (upper) + strlen (work) : 0);
  if (r < 0 || len + rest > s->max_data)
    return s->host->error_set (err, BERTH_E_INVALID, 0,
                               "snapshot with %zu parents: the overlay mount options do not fit in one page "
                               "(%zu bytes)", snap->n_parents, s->max_data);
  const char *opts[5];
  size_t n = 0;
  if (s->index_off)
    opts[n++] = "index=off";
  if (active)
    {
      opts[n++] = work;
      opts[n++] = upper;
    }
  opts[n++] = data;
  opts[n] = NULL;
  return emit (s, ret, "overlay", "overlay", opts, err);
}

static int ensure_parents_served (struct fz *s, const struct berth_snapstore_snapshot *snap, berth_error *err);

/* ---- stat, update, usage, mounts, walk --------------------------------------------- */

static int
fz_stat (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info, berth_error *err)
{
  struct fz *s = self;
  (void) ctx;
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r == 0)
    r = berth_snapstore_get_info (tx, key, ret_info, NULL, err);
  berth_snapstore_rollback (tx);
  return r;
}

static int
fz_update (void *self, berth_ctx *ctx, const struct berth_snapshot_info *info, const char *const *fieldpaths,
           struct berth_snapshot_info *ret_info, berth_error *err)
{
  struct fz *s = self;
  (void) ctx;
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  if ((r = berth_snapstore_update_info (tx, info, fieldpaths, ret_info, err)) < 0)
    {
      berth_snapstore_rollback (tx);
      return r;
    }
  return berth_snapstore_commit (tx, err);
}

static int
get_snap (struct fz *s, const char *key, struct berth_snapstore_snapshot **ret, berth_error *err)
{
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r < 0)
    return r;
  r = berth_snapstore_get (tx, key, ret, err);
  berth_snapstore_rollback (tx);
  return r;
}

static int
fz_usage (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_usage *ret_usage, berth_error *err)
{
  struct fz *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  int r = get_snap (s, key, &snap, err);
  if (r < 0)
    return r;
  struct berth_snapshot_usage u = { .size = sizeof u, .inodes = snap->inodes, .bytes = snap->bytes };
  if (snap->kind == BERTH_SNAPSHOT_ACTIVE)
    {
      _cleanup_str_ char *upper = fz_path ("%s/%s/fs", s->snapshots, snap->id);
      if (upper == NULL)
        return nomem (s, err);
      if ((r = berth_snapstore_disk_usage (s->store, upper, &u, err)) < 0)
        return s->host->error_wrap (err, "usage of snapshot `%s`", key);
    }
  if (BERTH_HAS (struct berth_snapshot_usage, ret_usage, inodes))
    ret_usage->inodes = u.inodes;
  if (BERTH_HAS (struct berth_snapshot_usage, ret_usage, bytes))
    ret_usage->bytes = u.bytes;
  return 0;
}

static int
fz_mounts (void *self, berth_ctx *ctx, const char *key, berth_mounts *ret_mounts, berth_error *err)
{
  struct fz *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  int r = get_snap (s, key, &snap, err);
  if (r < 0)
    return r;
  if (snap->kind != BERTH_SNAPSHOT_ACTIVE && snap->kind != BERTH_SNAPSHOT_VIEW)
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "snapshot `%s` is %s, not active or a view", key,
                               berth_snapstore_kind_name (snap->kind));
  if ((r = ensure_parents_served (s, snap, err)) < 0)
    return r;
  return build_mounts (s, snap, ret_mounts, err);
}

static int
fz_walk (void *self, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn, void *data,
         berth_error *err)
{
  struct fz *s = self;
  return berth_snapstore_walk (s->store, ctx, filters, fn, data, err);
}

/* ---- prepare, view, commit ------------------------------------------------------------ */

/* snapshots/new-XXXXXX with fs/ (and work/ for an active snapshot). */
static int
make_temp_dir (struct fz *s, uint32_t kind, char **ret, berth_error *err)
{
  _cleanup_str_ char *td = fz_path ("%s/new-XXXXXX", s->snapshots);
  if (td == NULL)
    return nomem (s, err);
  if (mkdtemp (td) == NULL)
    return sys_error (s, err, errno, "creating", td);
  _cleanup_str_ char *fs = fz_path ("%s/fs", td);
  _cleanup_str_ char *work = fz_path ("%s/work", td);
  int e = fs && work ? 0 : ENOMEM;
  if (e == 0 && mkdir (fs, 0755) < 0)
    e = errno;
  if (e == 0 && kind == BERTH_SNAPSHOT_ACTIVE && mkdir (work, 0711) < 0)
    e = errno;
  if (e)
    {
      berth_snapstore_remove_tree (s->store, AT_FDCWD, td, NULL);
      return e == ENOMEM ? nomem (s, err) : sys_error (s, err, e, "creating the layout of", td);
    }
  *ret = td;
  td = NULL;
  return 0;
}

/* The record and the directory, in one write transaction (so cleanup never
 * takes the directory for an orphan).  *ret_dir gets snapshots/<id>. */
static int
create_record (struct fz *s, uint32_t kind, const char *key, const char *parent, const berth_labels *labels,
               struct berth_snapstore_snapshot **ret_snap, char **ret_dir, berth_error *err)
{
  berth_snaptx *tx = NULL;
  _cleanup_str_ char *td = NULL;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  if ((r = make_temp_dir (s, kind, &td, err)) == 0)
    r = berth_snapstore_create (tx, kind, key, parent, labels, &snap, err);
  _cleanup_str_ char *path = snap ? fz_path ("%s/%s", s->snapshots, snap->id) : NULL;
  if (r == 0 && path == NULL)
    r = nomem (s, err);
  if (r == 0 && snap->n_parents > 0)
    {
      /* The new layer's root takes the owner of the parent's root. */
      _cleanup_str_ char *pfs = fz_path ("%s/%s/fs", s->snapshots, snap->parent_ids[0]);
      _cleanup_str_ char *fs = fz_path ("%s/fs", td);
      struct stat st;
      if (pfs == NULL || fs == NULL)
        r = nomem (s, err);
      else if (stat (pfs, &st) < 0)
        r = sys_error (s, err, errno, "stat of parent layer", pfs);
      else if (lchown (fs, st.st_uid, st.st_gid) < 0)
        r = sys_error (s, err, errno, "chown of", fs);
    }
  if (r == 0)
    {
      /* A directory under a fresh id is the leftover of a creation that
       * died before its commit (the id came back): nothing owns it. */
      fz_unmount (path);
      berth_snapstore_remove_tree (s->store, AT_FDCWD, path, NULL);
      if (rename (td, path) < 0)
        r = sys_error (s, err, errno, "renaming the new snapshot to", path);
    }
  if (r < 0)
    {
      berth_snapstore_rollback (tx);
      if (td)
        berth_snapstore_remove_tree (s->store, AT_FDCWD, td, NULL);
      return r;
    }
  if ((r = berth_snapstore_commit (tx, err)) < 0)
    {
      berth_snapstore_remove_tree (s->store, AT_FDCWD, path, NULL);
      return r;
    }
  *ret_snap = snap;
  snap = NULL;
  *ret_dir = path;
  path = NULL;
  return 0;
}

static int
remove_record (struct fz *s, const char *key, berth_error *err);

static int
create_snapshot (struct fz *s, uint32_t kind, const char *key, const char *parent, const berth_labels *labels,
                 berth_mounts *ret_mounts, berth_error *err)
{
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  _cleanup_str_ char *dir = NULL;
  int r = create_record (s, kind, key, parent, labels, &snap, &dir, err);
  if (r < 0)
    return r;
  if ((r = ensure_parents_served (s, snap, err)) < 0 || (r = build_mounts (s, snap, ret_mounts, err)) < 0)
    remove_record (s, key, NULL);
  return r;
}

/* Serve the layer blob `digest` from snapshot `key` (just created, active)
 * and commit it as `target`. */
/* Commit the active snapshot `key` of a layer the plugin serves as
 * `target`, with usage u, in a transaction of its own. */
static int
commit_served (struct fz *s, const char *key, const char *target, const berth_labels *labels,
               const struct berth_snapshot_usage *u, berth_error *err)
{
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  if ((r = berth_snapstore_commit_active (tx, key, target, labels, u, NULL, err)) < 0)
    {
      berth_snapstore_rollback (tx);
      return r;
    }
  return berth_snapstore_commit (tx, err);
}

static int
serve_layer (struct fz *s, berth_ctx *ctx, const char *key, const char *target, const char *digest,
             const char *media_type, const char *diff_id, const char *dir, const berth_labels *labels,
             berth_error *err)
{
  _cleanup_fd_ int fd = -1;
  int r = fz_blob_fd (s, ctx, digest, &fd, err);
  if (r < 0)
    return s->host->error_wrap (err, "layer %s", digest);
  if ((r = fz_index (s, fd, dir, "index", media_type, diff_id, NULL, 0, err)) < 0)
    return s->host->error_wrap (err, "indexing layer %s", digest);
  if ((r = fz_layer_write (dir, digest, media_type)) < 0)
    return sys_error (s, err, -r, "writing the layer record in", dir);
  if ((r = fz_mount (s, fd, dir, NULL, 0, err)) < 0)
    return s->host->error_wrap (err, "mounting layer %s", digest);

  /* Usage: what the layer costs beside its blob, the index. */
  _cleanup_str_ char *index = fz_path ("%s/index", dir);
  struct stat st;
  struct berth_snapshot_usage u = { .size = sizeof u, .inodes = 1 };
  if (index && stat (index, &st) == 0)
    u.bytes = (int64_t) st.st_blocks * 512;
  return commit_served (s, key, target, labels, &u, err);
}

/* ---- lazy layers: prepare ------------------------------------------------------------ */

static void lazy_track (struct fz *s, const char *id);

static bool
is_gzip_layer (const char *media_type)
{
  size_t n = strlen (media_type);
  return n > 5 && (strcmp (media_type + n - 5, "+gzip") == 0 || strcmp (media_type + n - 5, ".gzip") == 0);
}

static bool
one_line (const char *v)
{
  return v != NULL && *v != '\0' && strchr (v, '\n') == NULL;
}

static int
dup_label (char **dst, const char *v)
{
  if (v == NULL)
    return 0;
  *dst = strdup (v);
  return *dst ? 0 : -1;
}

/* The FZ_LABEL_REMOTE_* labels of a layer as an fz_remote (the namespace
 * from the call): 0, or -1 with the reason in why. */
static int
remote_from_labels (struct fz *s, berth_ctx *ctx, const berth_labels *labels, const char *media_type,
                    struct fz_remote *rm, char *why, size_t whylen)
{
  const struct berth_host *h = s->host;
  const char *url = h->labels_get (labels, FZ_LABEL_REMOTE_URL);
  const char *size = h->labels_get (labels, FZ_LABEL_REMOTE_SIZE);
  const char *toc = h->labels_get (labels, FZ_LABEL_REMOTE_TOC_DIGEST);
  const char *plain = h->labels_get (labels, FZ_LABEL_REMOTE_PLAIN_HTTP);
  const char *headers = h->labels_get (labels, FZ_LABEL_REMOTE_HEADERS_FILE);
  const char *ca = h->labels_get (labels, FZ_LABEL_REMOTE_CA_FILE);
  const char *diff_id = h->labels_get (labels, FZ_LABEL_DIFF_ID);
  const char *ns = ctx ? h->ctx_get (ctx, "namespace") : NULL;
  char *end = NULL;
  unsigned long long n = one_line (size) && *size != '-' ? strtoull (size, &end, 10) : 0;
  const char *bad = NULL;
  if (!is_gzip_layer (media_type))
    bad = "its media type is not a gzip layer (eStargz is gzip)";
  else if (!one_line (ns))
    bad = "the call names no namespace";
  else if (!one_line (url) || (strncmp (url, "https://", 8) != 0 && strncmp (url, "http://", 7) != 0))
    bad = "label " FZ_LABEL_REMOTE_URL " is not an http(s) URL";
  else if (end == NULL || *end != '\0' || n == 0)
    bad = "label " FZ_LABEL_REMOTE_SIZE " is not a size in bytes";
  else if (strncmp (url, "http://", 7) == 0 && (plain == NULL || strcmp (plain, "true") != 0))
    bad = "the URL is plain http but label " FZ_LABEL_REMOTE_PLAIN_HTTP " is not \"true\"";
  else if ((headers && (!one_line (headers) || *headers != '/')) || (ca && (!one_line (ca) || *ca != '/')))
    bad = "a headers or CA file label is not an absolute path";
  else if ((toc && !one_line (toc)) || (diff_id && !one_line (diff_id)))
    bad = "a digest label holds a newline";
  if (bad)
    {
      snprintf (why, whylen, "%s", bad);
      return -1;
    }
  rm->size = n;
  rm->plain_http = plain != NULL && strcmp (plain, "true") == 0;
  if (dup_label (&rm->ns, ns) < 0 || dup_label (&rm->url, url) < 0 || dup_label (&rm->toc_digest, toc) < 0
      || dup_label (&rm->diff_id, diff_id) < 0 || dup_label (&rm->headers_file, headers) < 0
      || dup_label (&rm->ca_file, ca) < 0)
    {
      snprintf (why, whylen, "out of memory");
      return -1;
    }
  return 0;
}

/* Serve the eStargz layer `digest` of snapshot `key` (just created,
 * active) lazily from its registry and commit it as `target`.  0; 1 when
 * berth-fuse could not (the reason in why: not eStargz, the registry does
 * not answer...); an error for anything else. */
static int
serve_lazy (struct fz *s, const char *key, const char *target, const char *digest, const char *media_type,
            const struct fz_remote *rm, const char *dir, const berth_labels *labels, char *why, size_t whylen,
            berth_error *err)
{
  int r;
  if ((r = fz_layer_write (dir, digest, media_type)) < 0)
    return sys_error (s, err, -r, "writing the layer record in", dir);
  if ((r = fz_remote_write (dir, rm)) < 0)
    return sys_error (s, err, -r, "writing the remote record in", dir);
  if (fz_mount_lazy (s, dir, digest, rm, why, whylen, NULL) < 0)
    return 1;
  /* Usage: the cache grows to the blob, which the content store then
   * holds (the same inode); the layer itself costs nothing more. */
  struct berth_snapshot_usage u = { .size = sizeof u, .inodes = 1 };
  return commit_served (s, key, target, labels, &u, err);
}

/* The blob is not in the content store but the labels say where it is in a
 * registry (the core's lazy pull): serve the layer lazily, commit target
 * and answer EXISTS.  When berth-fuse cannot (not eStargz, registry
 * unreachable), an ordinary snapshot as when there is no blob, logged; the
 * core then downloads the layer. */
static int
prepare_lazy (struct fz *s, berth_ctx *ctx, const char *key, const char *parent, const char *target,
              const char *digest, const char *media_type, const berth_labels *labels, berth_mounts *ret_mounts,
              berth_error *err)
{
  const struct berth_host *h = s->host;
  const char *url = h->labels_get (labels, FZ_LABEL_REMOTE_URL);
  char why[768] = "";
  _cleanup_remote_ struct fz_remote rm = { 0 };
  if (remote_from_labels (s, ctx, labels, media_type, &rm, why, sizeof why) < 0)
    {
      h->log (s->plugin, BERTH_LOG_WARNING, "layer %s: not served lazily: %s; it is downloaded and unpacked "
              "instead", digest, why);
      return create_snapshot (s, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, ret_mounts, err);
    }
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  _cleanup_str_ char *dir = NULL;
  int r = create_record (s, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, &snap, &dir, err);
  if (r < 0)
    return r;
  r = serve_lazy (s, key, target, digest, media_type, &rm, dir, labels, why, sizeof why, err);
  if (r != 0)
    {
      fz_unmount (dir);
      remove_record (s, key, NULL);
      if (r < 0)
        return r;
      h->log (s->plugin, BERTH_LOG_WARNING, "layer %s: cannot serve it lazily from %s (%s); it is downloaded and "
              "unpacked instead", digest, url, why);
      return create_snapshot (s, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, ret_mounts, err);
    }
  lazy_track (s, snap->id);
  h->log (s->plugin, BERTH_LOG_DEBUG, "layer %s served lazily from %s as %s", digest, url, target);
  return h->error_set (err, BERTH_E_EXISTS, 0, "target snapshot `%s` already exists (layer %s served lazily "
                       "from its registry)", target, digest);
}

static int
fz_prepare (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
            berth_mounts *ret_mounts, berth_error *err)
{
  struct fz *s = self;
  const struct berth_host *h = s->host;
  const char *target = labels ? h->labels_get (labels, FZ_LABEL_REF) : NULL;
  const char *digest = labels ? h->labels_get (labels, FZ_LABEL_DIGEST) : NULL;
  const char *mt = labels ? h->labels_get (labels, FZ_LABEL_MEDIA_TYPE) : NULL;
  const char *diff_id = labels ? h->labels_get (labels, FZ_LABEL_DIFF_ID) : NULL;
  if (!target || !*target || !digest || !*digest || !mt || !*mt)
    return create_snapshot (s, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, ret_mounts, err);

  _cleanup_snap_ struct berth_snapstore_snapshot *have = NULL;
  if (get_snap (s, target, &have, NULL) == 0)
    return h->error_set (err, BERTH_E_EXISTS, 0, "target snapshot `%s` already exists", target);

  _cleanup_fd_ int fd = -1;
  if (fz_blob_fd (s, ctx, digest, &fd, NULL) < 0)
    {
      const char *url = h->labels_get (labels, FZ_LABEL_REMOTE_URL);
      if (s->lazy && url != NULL && *url != '\0')
        return prepare_lazy (s, ctx, key, parent, target, digest, mt, labels, ret_mounts, err);
      /* No file to serve from: an ordinary layer, applied by the caller. */
      h->log (s->plugin, BERTH_LOG_WARNING, "layer %s: its blob is not available as a file from content store %s; "
              "unpacking it instead of serving it", digest, s->content_id);
      return create_snapshot (s, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, ret_mounts, err);
    }
  close (fd);
  fd = -1;

  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  _cleanup_str_ char *dir = NULL;
  /* The labels the committed layer keeps: the inherited ones. */
  int r = create_record (s, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, &snap, &dir, err);
  if (r < 0)
    return r;
  r = serve_layer (s, ctx, key, target, digest, mt, diff_id, dir, labels, err);
  if (r < 0)
    {
      fz_unmount (dir);
      remove_record (s, key, NULL);
      if (r != BERTH_E_NOTSUP)
        return r;
      /* Content berth-fuse cannot serve (a sparse file): an ordinary
       * layer, applied by the caller. */
      h->log (s->plugin, BERTH_LOG_WARNING, "layer %s holds what berth-fuse cannot serve (a sparse file); "
              "unpacking it instead", digest);
      return create_snapshot (s, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, ret_mounts, err);
    }
  h->log (s->plugin, BERTH_LOG_DEBUG, "layer %s served from its blob as %s", digest, target);
  return h->error_set (err, BERTH_E_EXISTS, 0, "target snapshot `%s` already exists (layer %s served from its blob)",
                       target, digest);
}

static int
fz_view (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
         berth_mounts *ret_mounts, berth_error *err)
{
  (void) ctx;
  return create_snapshot (self, BERTH_SNAPSHOT_VIEW, key, parent, labels, ret_mounts, err);
}

static int
fz_commit (void *self, berth_ctx *ctx, const char *name, const char *key, const berth_labels *labels,
           berth_error *err)
{
  struct fz *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  int r = get_snap (s, key, &snap, err);
  if (r < 0)
    return r;
  if (snap->kind != BERTH_SNAPSHOT_ACTIVE)
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "snapshot `%s` is %s, not active", key,
                               berth_snapstore_kind_name (snap->kind));
  _cleanup_str_ char *upper = fz_path ("%s/%s/fs", s->snapshots, snap->id);
  struct berth_snapshot_usage u = { .size = sizeof u };
  if (upper == NULL)
    return nomem (s, err);
  if ((r = berth_snapstore_disk_usage (s->store, upper, &u, err)) < 0)
    return s->host->error_wrap (err, "usage of snapshot `%s`", key);
  char id[BERTH_SNAPSTORE_ID_MAX];
  berth_snaptx *tx = NULL;
  if ((r = berth_snapstore_begin (s->store, 1, &tx, err)) < 0)
    return r;
  if ((r = berth_snapstore_commit_active (tx, key, name, labels, &u, id, err)) < 0)
    {
      berth_snapstore_rollback (tx);
      return r;
    }
  if (strcmp (id, snap->id) != 0)
    {
      berth_snapstore_rollback (tx);
      return s->host->error_set (err, BERTH_E_CONFLICT, 0, "snapshot `%s` changed while being committed", key);
    }
  return berth_snapstore_commit (tx, err);
}

/* ---- remove, cleanup ------------------------------------------------------------------ */

/* The record goes in a transaction, the FUSE mount (if any) comes down and
 * the directory is renamed to rm-<id> in it, then deleted. */
static int
remove_record (struct fz *s, const char *key, berth_error *err)
{
  char id[BERTH_SNAPSTORE_ID_MAX];
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  if ((r = berth_snapstore_remove (tx, key, id, NULL, err)) < 0)
    {
      berth_snapstore_rollback (tx);
      return r;
    }
  _cleanup_str_ char *path = fz_path ("%s/%s", s->snapshots, id);
  _cleanup_str_ char *gone = fz_path ("%s/rm-%s", s->snapshots, id);
  if (path == NULL || gone == NULL)
    {
      berth_snapstore_rollback (tx);
      return nomem (s, err);
    }
  if ((r = fz_unmount (path)) < 0)
    {
      berth_snapstore_rollback (tx);
      return sys_error (s, err, -r, "unmounting the layer served on", path);
    }
  bool renamed = rename (path, gone) == 0;
  if (!renamed && errno != ENOENT)
    {
      r = sys_error (s, err, errno, "moving aside", path);
      berth_snapstore_rollback (tx);
      return r;
    }
  if ((r = berth_snapstore_commit (tx, err)) < 0)
    {
      /* The layer stays recorded; init mounts it again if it was served. */
      if (renamed && rename (gone, path) < 0)
        s->host->log (s->plugin, BERTH_LOG_ERROR, "cannot move %s back to %s: %s", gone, path, strerror (errno));
      return r;
    }
  if (renamed && berth_snapstore_remove_tree (s->store, AT_FDCWD, gone, NULL) < 0)
    s->host->log (s->plugin, BERTH_LOG_WARNING, "snapshot `%s` removed, but deleting %s failed; cleanup will retry",
                  key, gone);
  return 0;
}

static int
fz_remove (void *self, berth_ctx *ctx, const char *key, berth_error *err)
{
  (void) ctx;
  return remove_record (self, key, err);
}

static bool
strv_contains (char **v, const char *str)
{
  for (; v && *v; v++)
    if (strcmp (*v, str) == 0)
      return true;
  return false;
}

static int
fz_cleanup (void *self, berth_ctx *ctx, berth_error *err)
{
  struct fz *s = self;
  char **ids = NULL;
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  r = berth_snapstore_ids (tx, &ids, err);
  DIR *d = r == 0 ? opendir (s->snapshots) : NULL;
  if (r == 0 && d == NULL)
    r = sys_error (s, err, errno, "listing", s->snapshots);
  /* Under the write transaction: no snapshot is being created meanwhile. */
  struct dirent *e;
  while (r == 0 && (e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0 || strv_contains (ids, e->d_name))
        continue;
      if (ctx && s->host->ctx_cancelled (ctx))
        {
          r = s->host->error_set (err, BERTH_E_CANCELLED, 0, "cleanup cancelled");
          break;
        }
      _cleanup_str_ char *path = fz_path ("%s/%s", s->snapshots, e->d_name);
      if (path == NULL)
        r = nomem (s, err);
      else if (fz_unmount (path) < 0 || berth_snapstore_remove_tree (s->store, AT_FDCWD, path, NULL) < 0)
        s->host->log (s->plugin, BERTH_LOG_WARNING, "cleanup: cannot remove %s", path);
      else
        s->host->log (s->plugin, BERTH_LOG_INFO, "cleanup: removed %s", path);
    }
  if (d)
    closedir (d);
  berth_snapstore_rollback (tx);
  berth_snapstore_strv_free (ids);
  return r;
}

/* ---- lazy layers: completion ---------------------------------------------------------- */

#define LAZY_POLL_S 1        /* the watcher's tick while lazy layers are pending */
#define LAZY_REPUBLISH_S 30  /* publish a complete blob again while the core has not taken it */
#define LAZY_RETRY_S 60      /* after a failed adoption (indexing), doubled up to 64x */
#define LAZY_CHECK_S 5       /* look at a pending layer's server this often ... */
#define LAZY_RESERVE_S 30    /* ... and after it could not be served again, this often */

static int ensure_served (struct fz *s, const char *id);

static time_t
monotonic_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

/* A lazy layer whose blob the content store has now (the core adopted the
 * cache, or the layer came another way): index it from there as any
 * served layer (its diffID checked; the watcher may have built
 * <dir>/index.watch from the complete cache before publishing it:
 * have_index), then drop `remote` (from here on the layer is store-backed)
 * and the cache's names; a running server keeps its open cache.  fd is the
 * store's blob.  Takes serve_lock unless `locked`.  0, or a negative code
 * with the reason logged (the layer then stays lazy). */
static int
lazy_adopt (struct fz *s, const char *dir, const char *digest, const char *media_type, const struct fz_remote *rm,
            int fd, bool locked, bool have_index)
{
  char why[768] = "";
  /* The watcher and ensure_served may both get here for one layer: each
   * builds its own index, the first to commit wins. */
  const char *name = locked ? "index.serve" : "index.watch";
  _cleanup_str_ char *tmp = fz_path ("%s/%s", dir, name);
  _cleanup_str_ char *index = fz_path ("%s/index", dir);
  _cleanup_str_ char *remote = fz_path ("%s/remote", dir);
  _cleanup_str_ char *cache = fz_path ("%s/blob", dir);
  _cleanup_str_ char *state = fz_path ("%s/blob.state", dir);
  if (!tmp || !index || !remote || !cache || !state)
    return BERTH_E_NOMEM;
  int r = have_index && access (tmp, F_OK) == 0 ? 0
                                                 : fz_index (s, fd, dir, name, media_type, rm->diff_id, why, sizeof why,
                                                             NULL);
  if (r < 0)
    {
      unlink (tmp);
      /* Not when the snapshot was removed meanwhile. */
      if (r != BERTH_E_CANCELLED && access (remote, F_OK) == 0)
        s->host->log (s->plugin, BERTH_LOG_ERROR, "lazily pulled layer %s is in the content store now, but "
                      "indexing it failed (%s); it stays served from its cache in %s", digest, why, dir);
      return r;
    }
  if (!locked)
    pthread_mutex_lock (&s->serve_lock);
  r = 0;
  bool done = false;
  if (access (remote, F_OK) < 0)
    unlink (tmp); /* adopted by the other one, or removed */
  else if (rename (tmp, index) < 0)
    {
      r = BERTH_E_INTERNAL;
      s->host->log (s->plugin, BERTH_LOG_ERROR, "lazily pulled layer %s: renaming %s to %s: %s", digest, tmp, index,
                    strerror (errno));
      unlink (tmp);
    }
  else if (unlink (remote) < 0)
    {
      r = BERTH_E_INTERNAL;
      s->host->log (s->plugin, BERTH_LOG_ERROR, "lazily pulled layer %s: removing %s: %s", digest, remote,
                    strerror (errno));
    }
  else
    {
      unlink (cache);
      unlink (state);
      done = true;
    }
  if (!locked)
    pthread_mutex_unlock (&s->serve_lock);
  if (done)
    s->host->log (s->plugin, BERTH_LOG_INFO, "lazily pulled layer %s is in the content store: served from there "
                  "from now on", digest);
  return r;
}

/* Put snapshot `id` on the watcher's list and wake it. */
static void
lazy_track (struct fz *s, const char *id)
{
  struct fz_lazy *e = calloc (1, sizeof *e);
  if (e == NULL || (e->id = strdup (id)) == NULL)
    {
      free (e);
      s->host->log (s->plugin, BERTH_LOG_ERROR, "out of memory: the lazy layer of snapshot id %s is not watched; "
                    "restart berthd to complete it", id);
      return;
    }
  pthread_mutex_lock (&s->lazy_lock);
  e->next = s->lazy_head;
  s->lazy_head = e;
  pthread_cond_signal (&s->lazy_cond);
  pthread_mutex_unlock (&s->lazy_lock);
}

/* At init: watch snapshot `id` if it is a lazy layer; a store-backed layer
 * loses cache names left by a crash in the middle of lazy_adopt. */
static void
lazy_restore (struct fz *s, const char *id)
{
  _cleanup_str_ char *dir = fz_path ("%s/%s", s->snapshots, id);
  char digest[BERTH_DIGEST_MAX], mt[256];
  if (dir == NULL || fz_layer_read (dir, digest, sizeof digest, mt, sizeof mt) < 0)
    return;
  _cleanup_remote_ struct fz_remote rm = { 0 };
  if (fz_remote_read (dir, &rm) == 0)
    {
      lazy_track (s, id);
      return;
    }
  _cleanup_str_ char *cache = fz_path ("%s/blob", dir);
  _cleanup_str_ char *state = fz_path ("%s/blob.state", dir);
  if (cache && state)
    {
      unlink (cache);
      unlink (state);
    }
}

/* One look at a lazy layer: true when the watcher is done with it (adopted,
 * removed, or never to complete). */
static bool
lazy_poll (struct fz *s, struct fz_lazy *e, time_t now)
{
  const struct berth_host *h = s->host;
  _cleanup_str_ char *dir = fz_path ("%s/%s", s->snapshots, e->id);
  char digest[BERTH_DIGEST_MAX], mt[256];
  _cleanup_remote_ struct fz_remote rm = { 0 };
  if (dir == NULL)
    return false;
  /* No record: the snapshot was removed, or ensure_served adopted it. */
  if (fz_layer_read (dir, digest, sizeof digest, mt, sizeof mt) < 0 || fz_remote_read (dir, &rm) < 0)
    return true;
  if (now >= e->check_at)
    {
      /* A server that died while no mount needed its layer: serve it again,
       * or its blob would never complete (logged either way). */
      int sr = ensure_served (s, e->id);
      e->check_at = now + (sr < 0 ? LAZY_RESERVE_S : LAZY_CHECK_S);
    }
  if (now < e->retry_at)
    return false;
  _cleanup_fd_ int fd = -1;
  if (fz_blob_fd (s, NULL, digest, &fd, NULL) == 0)
    {
      int r = lazy_adopt (s, dir, digest, mt, &rm, fd, false, e->indexed);
      if (r < 0)
        {
          /* Logged; indexing reads the whole blob: not every tick. */
          int shift = e->failures < 6 ? (int) e->failures++ : 6;
          e->retry_at = now + ((time_t) LAZY_RETRY_S << shift);
        }
      return r == 0;
    }
  int state = fz_remote_state (dir, digest, rm.size);
  if (state == 2)
    {
      h->log (s->plugin, BERTH_LOG_ERROR, "lazily pulled layer %s: the blob fetched from %s twice did not match "
              "its digest; it stays served lazily (every chunk checked against the TOC) and is never stored",
              digest, rm.url);
      return true;
    }
  if (state != 1 || (e->published != 0 && now - e->published < LAZY_REPUBLISH_S))
    return false;
  _cleanup_str_ char *path = fz_path ("%s/blob", dir);
  if (!e->indexed)
    {
      /* Before the core takes the blob: its content must be what the
       * image's config says (the diffID), as a pull checks it; the index
       * serves the layer once the blob is in the store. */
      char why[768] = "";
      _cleanup_fd_ int cfd = path ? open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
      int r = cfd < 0 ? BERTH_E_INTERNAL
                      : fz_index (s, cfd, dir, "index.watch", mt, rm.diff_id, why, sizeof why, NULL);
      if (r == BERTH_E_CANCELLED)
        return false;
      if (r < 0)
        {
          if (cfd < 0)
            snprintf (why, sizeof why, "opening %s: %s", path ? path : "the cache", strerror (errno));
          h->log (s->plugin, BERTH_LOG_ERROR, "lazily pulled layer %s is complete, but indexing it failed (%s); "
                  "it is not stored and stays served from its cache in %s", digest, why, dir);
          return true;
        }
      e->indexed = true;
    }
  char size[32];
  snprintf (size, sizeof size, "%" PRIu64, rm.size);
  const char *fields[] = { "digest", digest, "path", path, "size", size, rm.diff_id ? "diff_id" : NULL,
                           rm.diff_id, NULL };
  if (path == NULL || !BERTH_HAS (struct berth_host, h, publish) || h->publish == NULL)
    return false;
  bool again = e->published != 0;
  e->published = now;
  int r = h->publish (s->plugin, rm.ns, FZ_TOPIC_BLOB_COMPLETE, fields);
  h->log (s->plugin, r < 0 ? BERTH_LOG_WARNING : again ? BERTH_LOG_DEBUG : BERTH_LOG_INFO, "lazily pulled layer %s "
          "is complete in %s: published %s in namespace %s%s", digest, path, FZ_TOPIC_BLOB_COMPLETE, rm.ns,
          r < 0 ? " (refused; publishing again later)" : again ? " again (the store has not taken it yet)" : "");
  return false;
}

/* The watcher: while lazy layers are pending, looks at each every
 * LAZY_POLL_S; otherwise it sleeps until lazy_track wakes it. */
static void *
lazy_watch (void *data)
{
  struct fz *s = data;
  pthread_mutex_lock (&s->lazy_lock);
  while (!s->stopping)
    {
      if (s->lazy_head == NULL)
        {
          pthread_cond_wait (&s->lazy_cond, &s->lazy_lock);
          continue;
        }
      struct timespec until;
      clock_gettime (CLOCK_MONOTONIC, &until);
      until.tv_sec += LAZY_POLL_S;
      while (!s->stopping && pthread_cond_timedwait (&s->lazy_cond, &s->lazy_lock, &until) == 0)
        ;
      if (s->stopping)
        break;
      /* Entries are pushed at the head only and removed only here: the
       * walk needs the lock just to unlink. */
      struct fz_lazy *e = s->lazy_head;
      pthread_mutex_unlock (&s->lazy_lock);
      time_t now = monotonic_s ();
      while (e != NULL && !s->stopping)
        {
          struct fz_lazy *next = e->next;
          if (lazy_poll (s, e, now))
            {
              pthread_mutex_lock (&s->lazy_lock);
              struct fz_lazy **pp = &s->lazy_head;
              while (*pp != e)
                pp = &(*pp)->next;
              *pp = e->next;
              pthread_mutex_unlock (&s->lazy_lock);
              free (e->id);
              free (e);
            }
          e = next;
        }
      pthread_mutex_lock (&s->lazy_lock);
    }
  pthread_mutex_unlock (&s->lazy_lock);
  return NULL;
}

static void
lazy_stop (struct fz *s)
{
  if (s->watcher_started)
    {
      pthread_mutex_lock (&s->lazy_lock);
      s->stopping = true;
      pthread_cond_broadcast (&s->lazy_cond);
      pthread_mutex_unlock (&s->lazy_lock);
      pthread_join (s->watcher, NULL);
      s->watcher_started = false;
    }
  while (s->lazy_head)
    {
      struct fz_lazy *e = s->lazy_head;
      s->lazy_head = e->next;
      free (e->id);
      free (e);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------ */

/* Make sure the layer of snapshot `id`, if it is a served one, is mounted
 * and its server alive: mount it again when the mount is gone (a reboot)
 * or dead (its server crashed: ENOTCONN), from its blob and kept index, or
 * for a lazy layer whose blob is not in the store yet, lazily from its
 * registry and kept cache (berth-fuse resumes from the cache's bitmap).
 * 0 for a layer that is not served; 1 when it was live, 2 when mounted
 * again, a negative code when it cannot be served (logged). */
static int
ensure_served (struct fz *s, const char *id)
{
  _cleanup_str_ char *dir = fz_path ("%s/%s", s->snapshots, id);
  char digest[BERTH_DIGEST_MAX], mt[256];
  if (dir == NULL || fz_layer_read (dir, digest, sizeof digest, mt, sizeof mt) < 0)
    return 0;
  pthread_mutex_lock (&s->serve_lock);
  int state = fz_mount_state (dir);
  int r = 1;
  if (state != 1)
    {
      if (state < 0)
        fz_unmount (dir);
      char why[768] = "";
      _cleanup_remote_ struct fz_remote rm = { 0 };
      bool lazy = fz_remote_read (dir, &rm) == 0;
      _cleanup_fd_ int fd = -1;
      r = fz_blob_fd (s, NULL, digest, &fd, NULL);
      if (lazy && r == 0 && lazy_adopt (s, dir, digest, mt, &rm, fd, true, false) == 0)
        lazy = false;
      if (lazy)
        r = fz_mount_lazy (s, dir, digest, &rm, why, sizeof why, NULL);
      else if (r == 0)
        r = fz_mount (s, fd, dir, why, sizeof why, NULL);
      else
        snprintf (why, sizeof why, "its blob is gone");
      if (r == 0)
        {
          r = 2;
          s->host->log (s->plugin, BERTH_LOG_WARNING, "layer %s on %s/fs was %s; served again%s", digest, dir,
                        state < 0 ? "dead (its server had gone)" : "not mounted",
                        lazy ? " (lazily, from its registry)" : "");
        }
      else
        s->host->log (s->plugin, BERTH_LOG_ERROR, "cannot serve layer %s on %s/fs again: %s; see %s/server.log",
                      digest, dir, why, dir);
    }
  pthread_mutex_unlock (&s->serve_lock);
  return r;
}

/* Every parent layer of a snapshot about to be mounted is served. */
static int
ensure_parents_served (struct fz *s, const struct berth_snapstore_snapshot *snap, berth_error *err)
{
  for (size_t i = 0; i < snap->n_parents; i++)
    if (ensure_served (s, snap->parent_ids[i]) < 0)
      return s->host->error_set (err, BERTH_E_UNAVAILABLE, 0, "the layer of snapshot id %s cannot be served; see "
                                 "berthd's log", snap->parent_ids[i]);
  return 0;
}

/* Mount again every served layer whose server is gone (berthd survives its
 * servers only after a crash of theirs or a reboot).  A layer that cannot
 * be served is logged; containers on it fail to start, the operator
 * removes the image and pulls again. */
static void
restore_mounts (struct fz *s)
{
  char **ids = NULL;
  berth_snaptx *tx = NULL;
  if (berth_snapstore_begin (s->store, 0, &tx, NULL) < 0)
    return;
  int r = berth_snapstore_ids (tx, &ids, NULL);
  berth_snapstore_rollback (tx);
  size_t live = 0, restored = 0, failed = 0;
  for (char **id = ids; r == 0 && id && *id; id++)
    {
      int st = ensure_served (s, *id);
      live += st == 1;
      restored += st == 2;
      failed += st < 0;
      lazy_restore (s, *id);
    }
  berth_snapstore_strv_free (ids);
  if (restored || failed)
    s->host->log (s->plugin, BERTH_LOG_INFO, "served layers: %zu still mounted, %zu mounted again, %zu failed", live,
                  restored, failed);
}

static void
fz_fini (void *self)
{
  struct fz *s = self;
  if (s == NULL)
    return;
  /* The servers stay: running containers keep their root filesystems. */
  lazy_stop (s);
  berth_snapstore_close (s->store);
  pthread_mutex_destroy (&s->serve_lock);
  pthread_mutex_destroy (&s->lazy_lock);
  pthread_cond_destroy (&s->lazy_cond);
  free (s->root);
  free (s->snapshots);
  free (s->binary);
  free (s->content_id);
  free (s);
}

/* Why this host cannot serve layers, or NULL. */
static const char *
host_problem (struct fz *s, char *buf, size_t len)
{
  if (access ("/dev/fuse", R_OK | W_OK) < 0)
    {
      snprintf (buf, len, "/dev/fuse is not usable (%s): no FUSE on this host (modprobe fuse, or give the "
                "container /dev/fuse)", strerror (errno));
      return buf;
    }
  if (access (s->binary, X_OK) < 0)
    {
      snprintf (buf, len, "the layer server %s cannot be run (%s); set binary in "
                "[plugins.\"io.berth.snapshotter.v1.fuse\"]", s->binary, strerror (errno));
      return buf;
    }
  FILE *f = fopen ("/proc/filesystems", "re");
  bool overlay = false, fuse = false;
  char line[256];
  while (f && fgets (line, sizeof line, f))
    {
      overlay = overlay || strstr (line, "\toverlay\n") != NULL;
      fuse = fuse || strstr (line, "\tfuse\n") != NULL;
    }
  if (f)
    fclose (f);
  if (!fuse)
    return snprintf (buf, len, "the kernel lists no fuse file system (modprobe fuse)"), buf;
  if (!overlay)
    return snprintf (buf, len, "the kernel lists no overlay file system (modprobe overlay); containers on FUSE "
                     "layers need it: use the native snapshotter"), buf;
  return NULL;
}

static int
fz_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self, berth_error *err)
{
  struct fz *s = calloc (1, sizeof *s);
  if (s == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  *ret_self = s;
  s->host = host;
  s->plugin = ictx->plugin;
  pthread_mutex_init (&s->serve_lock, NULL);
  pthread_mutex_init (&s->lazy_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&s->lazy_cond, &ca);
  pthread_condattr_destroy (&ca);
  if (ictx->root == NULL || *ictx->root == '\0')
    return host->error_set (err, BERTH_E_SKIP, 0, "no root directory");
  long page = sysconf (_SC_PAGESIZE);
  s->max_data = (size_t) (page > 0 ? page : 4096) - 1;
  struct berth_cfg_value v = { .size = sizeof v };
  const char *binary = BERTH_FUSE_BINARY;
  if (host->cfg_get (ictx->plugin, "binary", &v) == 0 && v.type == BERTH_CFG_STRING && v.s && *v.s)
    binary = v.s;
  struct berth_cfg_value c = { .size = sizeof c };
  const char *content = "local";
  if (host->cfg_get (ictx->plugin, "content_store", &c) == 0 && c.type == BERTH_CFG_STRING && c.s && *c.s)
    content = c.s;
  struct berth_cfg_value t = { .size = sizeof t };
  s->timeout_s = host->cfg_get (ictx->plugin, "server_timeout", &t) == 0 && t.type == BERTH_CFG_INT ? (int) t.i : 600;
  struct berth_cfg_value l = { .size = sizeof l };
  s->lazy = !(host->cfg_get (ictx->plugin, "lazy", &l) == 0 && l.type == BERTH_CFG_BOOL && !l.b);
  struct berth_cfg_value rt = { .size = sizeof rt }, rr = { .size = sizeof rr };
  s->remote_timeout_s
      = host->cfg_get (ictx->plugin, "remote_timeout", &rt) == 0 && rt.type == BERTH_CFG_INT ? (int) rt.i : 0;
  s->remote_retries
      = host->cfg_get (ictx->plugin, "remote_retries", &rr) == 0 && rr.type == BERTH_CFG_INT ? (int) rr.i : 3;
  s->root = strdup (ictx->root);
  s->snapshots = fz_path ("%s/snapshots", ictx->root);
  s->binary = strdup (binary);
  s->content_id = strdup (content);
  if (!s->root || !s->snapshots || !s->binary || !s->content_id)
    return nomem (s, err);
  char why[512];
  if (host_problem (s, why, sizeof why))
    return host->error_set (err, BERTH_E_SKIP, 0, "%s", why);
  s->index_off = access ("/sys/module/overlay/parameters/index", F_OK) == 0;
  if (mkdir (s->snapshots, 0700) < 0 && errno != EEXIST)
    return sys_error (s, err, errno, "creating", s->snapshots);
  _cleanup_str_ char *db = fz_path ("%s/metadata.db", s->root);
  if (db == NULL)
    return nomem (s, err);
  int r = berth_snapstore_open (host, db, &s->store, err);
  if (r < 0)
    return host->error_wrap (err, "opening %s", db);
  /* Before restore_mounts: it hands the watcher the lazy layers.  Layers
   * pulled lazily before are completed even when `lazy` is off now. */
  if ((r = pthread_create (&s->watcher, NULL, lazy_watch, s)) != 0)
    return host->error_set (err, BERTH_E_INTERNAL, r, "starting the thread that completes lazily pulled layers");
  s->watcher_started = true;
  restore_mounts (s);
  host->set_export (ictx->plugin, "root", s->root);
  /* The core pulls eStargz layers lazily through snapshotters that say so
   * (core/pull/lazy.h); berth-fuse is there (host_problem). */
  if (s->lazy && BERTH_HAS (struct berth_host, host, add_capability) && host->add_capability
      && (r = host->add_capability (ictx->plugin, FZ_CAPABILITY_REMOTE)) < 0)
    return host->error_set (err, r, 0, "announcing the capability " FZ_CAPABILITY_REMOTE);
  return 0;
}

static const struct berth_snapshotter_ops fz_ops = {
  .size = sizeof (struct berth_snapshotter_ops),
  .stat = fz_stat,
  .update = fz_update,
  .usage = fz_usage,
  .mounts = fz_mounts,
  .prepare = fz_prepare,
  .view = fz_view,
  .commit = fz_commit,
  .remove = fz_remove,
  .walk = fz_walk,
  .cleanup = fz_cleanup,
};

static const struct berth_config_key k_binary
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "binary", "\"" BERTH_FUSE_BINARY "\"",
                     "the layer server (berth-fuse) that mounts each layer blob over FUSE");
static const struct berth_config_key k_content_store
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "content_store", "\"local\"",
                     "id of the content store whose blobs are served (it must support blob_fd, ABI 1.2)");
static const struct berth_config_key k_server_timeout
    = BERTH_CFG_KEY_RANGE ("server_timeout", "600",
                           "seconds one berth-fuse run (indexing a layer, mounting it) may take before it is killed",
                           1, 86400);
static const struct berth_config_key k_lazy
    = BERTH_CFG_KEY (BERTH_CFG_BOOL, "lazy", "true",
                     "serve eStargz layers lazily: a pull leaves them in the registry, berth-fuse fetches what is "
                     "read and completes the blob in the background (capability remote-snapshot)");
static const struct berth_config_key k_remote_timeout
    = BERTH_CFG_KEY_RANGE ("remote_timeout", "0",
                           "lazy layers: seconds to connect to the registry, and seconds below 1 KiB/s that make a "
                           "stalled transfer (0: berth-fuse's defaults, 10 and 15)",
                           0, 3600);
static const struct berth_config_key k_remote_retries
    = BERTH_CFG_KEY_RANGE ("remote_retries", "3",
                           "lazy layers: how many times a failed range request is tried again before the read "
                           "fails with EIO",
                           0, 100);
static const struct berth_config_key *const fz_keys[]
    = { &k_binary, &k_content_store, &k_server_timeout, &k_lazy, &k_remote_timeout, &k_remote_retries, NULL };
static const char *const fz_requires[] = { "io.berth.content.v1", NULL };

static const struct berth_plugin_desc fz_desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_SNAPSHOTTER,
  .type = "io.berth.snapshotter.v1",
  .id = "fuse",
  .version = "0.1.0",
  .requires = fz_requires,
  .config_keys = fz_keys,
  .init = fz_init,
  .fini = fz_fini,
  .ops = &fz_ops,
  .description = "layers served read-only over FUSE from their blobs, containers on overlayfs above them",
};

static const struct berth_plugin_desc *const fz_plugins[] = { &fz_desc, NULL };

const struct berth_plugin_desc *const *
berth_snapshotter_fuse_entry (void)
{
  return fz_plugins;
}
