/* io.berth.snapshotter.v1.overlayfs: descriptor, init/fini and the
 * snapshotter methods.  Layout, long chains and threading: overlay.h.
 *
 * Semantics are containerd's snapshots/overlay (v1.7): records through
 * libberth-snapstore (containerd's snapshots/storage), a bind mount for a
 * snapshot without parents, overlay otherwise; the new fs/ of a snapshot on
 * a parent takes the owner of the parent's fs/; usage of an active snapshot
 * is measured on its upper dir, a committed one answers what was recorded
 * at commit.  Removal is synchronous (containerd's sync_remove = true):
 * the record goes in a transaction, the directory is renamed to rm-<id> in
 * it and deleted afterwards; cleanup deletes whatever no record owns.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <berth/config.h>
#include <berth/plugin.h>
#include <berth/snapshotter.h>
#include <berth/snapstore.h>

#include "overlay.h"

#define DEFAULT_SHORT_LINK_DIR "/run"

static int
sys_error (struct ovl *s, berth_error *err, int errnum, const char *what, const char *path)
{
  int code = errnum == ENOSPC || errnum == EDQUOT ? BERTH_E_EXHAUSTED
             : errnum == ENOMEM                  ? BERTH_E_NOMEM
             : errnum == EACCES || errnum == EPERM ? BERTH_E_PERMISSION
                                                 : BERTH_E_INTERNAL;
  return s->host->error_set (err, code, errnum, "%s %s", what, path);
}

static void
snap_freep (struct berth_snapstore_snapshot **p)
{
  berth_snapstore_snapshot_free (*p);
}

static void
tx_rollbackp (berth_snaptx **tx)
{
  berth_snapstore_rollback (*tx);
}

static void
mount_clearp (struct ovl_mount *m)
{
  ovl_mount_clear (m);
}

static void
str_freep (char **p)
{
  free (*p);
}

#define _cleanup_snap_ __attribute__ ((cleanup (snap_freep)))
#define _cleanup_tx_ __attribute__ ((cleanup (tx_rollbackp)))
#define _cleanup_mount_ __attribute__ ((cleanup (mount_clearp)))
#define _cleanup_str_ __attribute__ ((cleanup (str_freep)))

/* Hand a string on and clear the variable. */
#define TAKE_STR(p)                                                                                \
  ({                                                                                               \
    char *take_ = (p);                                                                             \
    (p) = NULL;                                                                                    \
    take_;                                                                                         \
  })

static char *
upper_path (struct ovl *s, const char *id)
{
  return ovl_path ("%s/%s/fs", s->snapshots, id);
}

static int
nomem (struct ovl *s, berth_error *err)
{
  return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
}

/* upperdir_label: containerd adds the upper path to the answered labels. */
static int
add_upperdir_label (struct ovl *s, struct berth_snapshot_info *info, const char *id, berth_error *err)
{
  if (!s->upperdir_label || !BERTH_HAS (struct berth_snapshot_info, info, labels) || info->labels == NULL)
    return 0;
  _cleanup_str_ char *upper = upper_path (s, id);
  if (upper == NULL)
    return nomem (s, err);
  int r = s->host->labels_set (info->labels, OVL_UPPERDIR_LABEL, upper);
  return r < 0 ? s->host->error_set (err, r, 0, "setting label %s", OVL_UPPERDIR_LABEL) : 0;
}

/* ---- stat, update, usage, mounts, walk ------------------------------------------- */

static int
ovl_stat (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info, berth_error *err)
{
  struct ovl *s = self;
  (void) ctx;
  _cleanup_tx_ berth_snaptx *tx = NULL;
  char id[BERTH_SNAPSTORE_ID_MAX];
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r == 0)
    r = berth_snapstore_get_info (tx, key, ret_info, id, err);
  if (r == 0)
    r = add_upperdir_label (s, ret_info, id, err);
  return r;
}

static int
ovl_update (void *self, berth_ctx *ctx, const struct berth_snapshot_info *info, const char *const *fieldpaths,
            struct berth_snapshot_info *ret_info, berth_error *err)
{
  struct ovl *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  r = berth_snapstore_update_info (tx, info, fieldpaths, ret_info, err);
  if (r == 0 && s->upperdir_label)
    r = berth_snapstore_get (tx, info->name, &snap, err);
  if (r < 0)
    {
      berth_snapstore_rollback (tx);
      return r;
    }
  if ((r = berth_snapstore_commit (tx, err)) < 0)
    return r;
  return snap ? add_upperdir_label (s, ret_info, snap->id, err) : 0;
}

static int
ovl_usage (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_usage *ret_usage, berth_error *err)
{
  struct ovl *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r < 0)
    return r;
  r = berth_snapstore_get (tx, key, &snap, err);
  berth_snapstore_rollback (tx);
  if (r < 0)
    return r;
  struct berth_snapshot_usage u = { .size = sizeof u, .inodes = snap->inodes, .bytes = snap->bytes };
  if (snap->kind == BERTH_SNAPSHOT_ACTIVE)
    {
      /* Measured outside the transaction: it walks the whole upper dir. */
      _cleanup_str_ char *upper = upper_path (s, snap->id);
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
ovl_mounts (void *self, berth_ctx *ctx, const char *key, berth_mounts *ret_mounts, berth_error *err)
{
  struct ovl *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  _cleanup_mount_ struct ovl_mount m = { 0 };
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r < 0)
    return r;
  r = berth_snapstore_get (tx, key, &snap, err);
  berth_snapstore_rollback (tx);
  if (r < 0)
    return r;
  /* containerd's storage.GetSnapshot answers only active snapshots and views. */
  if (snap->kind != BERTH_SNAPSHOT_ACTIVE && snap->kind != BERTH_SNAPSHOT_VIEW)
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "snapshot `%s` is %s, not active or a view", key,
                               berth_snapstore_kind_name (snap->kind));
  if ((r = ovl_mount_build (s, snap, &m, err)) < 0)
    return r;
  return ovl_mount_emit (s, &m, ret_mounts, err);
}

static int
ovl_walk (void *self, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn, void *data,
          berth_error *err)
{
  struct ovl *s = self;
  return berth_snapstore_walk (s->store, ctx, filters, fn, data, err);
}

/* ---- prepare, view, commit ------------------------------------------------------------ */

/* Make snapshots/new-XXXXXX with fs/ (and work/ for an active snapshot). */
static int
make_temp_dir (struct ovl *s, uint32_t kind, char **ret, berth_error *err)
{
  _cleanup_str_ char *td = ovl_path ("%s/new-XXXXXX", s->snapshots);
  if (td == NULL)
    return nomem (s, err);
  if (mkdtemp (td) == NULL)
    return sys_error (s, err, errno, "creating", td);
  _cleanup_str_ char *fs = ovl_path ("%s/fs", td);
  _cleanup_str_ char *work = ovl_path ("%s/work", td);
  int r = fs && work ? 0 : -ENOMEM;
  if (r == 0 && mkdir (fs, 0755) < 0)
    r = -errno;
  if (r == 0 && kind == BERTH_SNAPSHOT_ACTIVE && mkdir (work, 0711) < 0)
    r = -errno;
  if (r < 0)
    {
      berth_snapstore_remove_tree (s->store, AT_FDCWD, td, NULL);
      return r == -ENOMEM ? nomem (s, err) : sys_error (s, err, -r, "creating the layout of", td);
    }
  *ret = td;
  td = NULL;
  return 0;
}

/* The part of create_snapshot that runs inside its write transaction:
 * the temporary directory (made here so that a concurrent cleanup, which
 * lists under the same lock, never takes it for an orphan), the record,
 * the owner of fs/, the mounts (checked before the record is kept) and the
 * rename to snapshots/<id>.  On failure *td names what is left to delete. */
static int
create_in_tx (struct ovl *s, berth_snaptx *tx, uint32_t kind, const char *key, const char *parent,
              const berth_labels *labels, char **td, struct berth_snapstore_snapshot **snap, struct ovl_mount *m,
              berth_error *err)
{
  int r = make_temp_dir (s, kind, td, err);
  if (r < 0 || (r = berth_snapstore_create (tx, kind, key, parent, labels, snap, err)) < 0)
    return r;
  if ((*snap)->n_parents > 0)
    {
      /* The new layer's root takes the owner of the parent's root, so that
       * the merged / keeps the image's owner. */
      _cleanup_str_ char *pfs = upper_path (s, (*snap)->parent_ids[0]);
      _cleanup_str_ char *fs = ovl_path ("%s/fs", *td);
      struct stat st;
      if (pfs == NULL || fs == NULL)
        return nomem (s, err);
      if (stat (pfs, &st) < 0)
        return sys_error (s, err, errno, "stat of parent layer", pfs);
      if (lchown (fs, st.st_uid, st.st_gid) < 0)
        return sys_error (s, err, errno, "chown of", fs);
    }
  if ((r = ovl_mount_build (s, *snap, m, err)) < 0)
    return r;
  _cleanup_str_ char *path = ovl_path ("%s/%s", s->snapshots, (*snap)->id);
  if (path == NULL)
    return nomem (s, err);
  int rc = rename (*td, path);
  if (rc < 0 && (errno == ENOTEMPTY || errno == EEXIST))
    {
      /* The id was allocated by this very transaction: a directory under it
       * is the leftover of a creation that moved its tree and died before
       * its commit (so the id came back).  Nothing owns it. */
      s->host->log (s->plugin, BERTH_LOG_WARNING, "removing %s, left by a snapshot creation that did not commit",
                    path);
      if ((r = berth_snapstore_remove_tree (s->store, AT_FDCWD, path, err)) < 0)
        return r;
      rc = rename (*td, path);
    }
  if (rc < 0)
    return sys_error (s, err, errno, "renaming the new snapshot to", path);
  free (*td);
  *td = TAKE_STR (path);
  return 0;
}

static int
create_snapshot (struct ovl *s, uint32_t kind, const char *key, const char *parent, const berth_labels *labels,
                 berth_mounts *ret_mounts, berth_error *err)
{
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  _cleanup_mount_ struct ovl_mount m = { 0 };
  _cleanup_str_ char *dir = NULL; /* the temporary, then the final directory */
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  r = create_in_tx (s, tx, kind, key, parent, labels, &dir, &snap, &m, err);
  if (r < 0)
    berth_snapstore_rollback (tx);
  else
    r = berth_snapstore_commit (tx, err);
  if (r < 0)
    {
      if (dir)
        berth_snapstore_remove_tree (s->store, AT_FDCWD, dir, NULL);
      return r;
    }
  r = ovl_link_create (s, snap->id);
  if (r < 0) /* mounts() makes it again when a long chain needs it */
    s->host->log (s->plugin, BERTH_LOG_WARNING, "cannot create link %s/%s: %s", s->links, snap->id, strerror (-r));
  return ovl_mount_emit (s, &m, ret_mounts, err);
}

static int
ovl_prepare (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
             berth_mounts *ret_mounts, berth_error *err)
{
  (void) ctx;
  return create_snapshot (self, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, ret_mounts, err);
}

static int
ovl_view (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
          berth_mounts *ret_mounts, berth_error *err)
{
  (void) ctx;
  return create_snapshot (self, BERTH_SNAPSHOT_VIEW, key, parent, labels, ret_mounts, err);
}

static int
ovl_commit (void *self, berth_ctx *ctx, const char *name, const char *key, const berth_labels *labels,
            berth_error *err)
{
  struct ovl *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r < 0)
    return r;
  r = berth_snapstore_get (tx, key, &snap, err);
  berth_snapstore_rollback (tx);
  if (r < 0)
    return r;
  if (snap->kind != BERTH_SNAPSHOT_ACTIVE)
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "snapshot `%s` is %s, not active", key,
                               berth_snapstore_kind_name (snap->kind));

  /* Measured before the write transaction, which would otherwise hold
   * every other call for the length of the walk.  The layer is not
   * written to while it is being committed. */
  _cleanup_str_ char *upper = upper_path (s, snap->id);
  struct berth_snapshot_usage u = { .size = sizeof u };
  if (upper == NULL)
    return nomem (s, err);
  if ((r = berth_snapstore_disk_usage (s->store, upper, &u, err)) < 0)
    return s->host->error_wrap (err, "usage of snapshot `%s`", key);

  char id[BERTH_SNAPSTORE_ID_MAX];
  if ((r = berth_snapstore_begin (s->store, 1, &tx, err)) < 0)
    return r;
  if ((r = berth_snapstore_commit_active (tx, key, name, labels, &u, id, err)) < 0)
    {
      berth_snapstore_rollback (tx);
      return r;
    }
  if (strcmp (id, snap->id) != 0)
    {
      /* Removed and re-prepared under the same key meanwhile: the usage is
       * of another tree. */
      berth_snapstore_rollback (tx);
      return s->host->error_set (err, BERTH_E_CONFLICT, 0, "snapshot `%s` changed while being committed", key);
    }
  if ((r = berth_snapstore_commit (tx, err)) < 0)
    return r;
  /* A committed layer needs no work dir; containerd keeps it, and so do
   * we (it is empty and an active snapshot's mount may still be up). */
  return 0;
}

/* ---- remove, cleanup ------------------------------------------------------------------ */

static void
remove_link (struct ovl *s, const char *id)
{
  _cleanup_str_ char *link = ovl_path ("%s/%s", s->links, id);
  if (link && unlink (link) < 0 && errno != ENOENT)
    s->host->log (s->plugin, BERTH_LOG_WARNING, "cannot remove link %s: %s", link, strerror (errno));
}

static int
ovl_remove (void *self, berth_ctx *ctx, const char *key, berth_error *err)
{
  struct ovl *s = self;
  (void) ctx;
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
  _cleanup_str_ char *path = ovl_path ("%s/%s", s->snapshots, id);
  _cleanup_str_ char *gone = ovl_path ("%s/rm-%s", s->snapshots, id);
  if (path == NULL || gone == NULL)
    {
      berth_snapstore_rollback (tx);
      return nomem (s, err);
    }
  /* Out of the way first, inside the transaction: the id's directory
   * disappears with its record, and a deletion cut short leaves rm-<id>,
   * which cleanup finishes. */
  bool renamed = rename (path, gone) == 0;
  if (!renamed && errno != ENOENT)
    {
      r = sys_error (s, err, errno, "moving aside", path);
      berth_snapstore_rollback (tx);
      return r;
    }
  if ((r = berth_snapstore_commit (tx, err)) < 0)
    {
      if (renamed && rename (gone, path) < 0)
        s->host->log (s->plugin, BERTH_LOG_ERROR, "cannot move %s back to %s: %s", gone, path, strerror (errno));
      return r;
    }
  remove_link (s, id);
  if (renamed)
    {
      /* The record is gone: a failure here is cleanup's to finish. */
      if (berth_snapstore_remove_tree (s->store, AT_FDCWD, gone, NULL) < 0)
        s->host->log (s->plugin, BERTH_LOG_WARNING, "snapshot `%s` removed, but deleting %s failed; cleanup will retry",
                      key, gone);
    }
  return 0;
}

static bool
strv_contains (char **v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp (*v, s) == 0)
      return true;
  return false;
}

/* Names in dir not in ids (and not "." or ".."), NULL-terminated. */
static int
list_orphans (const char *dir, char **ids, char ***ret)
{
  DIR *d = opendir (dir);
  if (d == NULL)
    return errno == ENOENT ? 0 : -errno;
  char **v = NULL;
  size_t n = 0;
  int r = 0;
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0 || strv_contains (ids, e->d_name))
        continue;
      char **nv = realloc (v, (n + 2) * sizeof *nv);
      char *name = strdup (e->d_name);
      if (nv == NULL || name == NULL)
        {
          free (name);
          if (nv)
            v = nv;
          r = -ENOMEM;
          break;
        }
      v = nv;
      v[n++] = name;
      v[n] = NULL;
    }
  closedir (d);
  if (r < 0)
    {
      for (size_t i = 0; i < n; i++)
        free (v[i]);
      free (v);
      return r;
    }
  *ret = v;
  return 0;
}

static void
strv_free (char **v)
{
  for (char **i = v; i && *i; i++)
    free (*i);
  free (v);
}

static int
ovl_cleanup (void *self, berth_ctx *ctx, berth_error *err)
{
  struct ovl *s = self;
  char **ids = NULL, **dirs = NULL, **links = NULL;
  berth_snaptx *tx = NULL;
  /* A write transaction, as containerd: no snapshot is being created or
   * removed while the directories are listed. */
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r < 0)
    return r;
  r = berth_snapstore_ids (tx, &ids, err);
  if (r == 0 && (r = list_orphans (s->snapshots, ids, &dirs)) < 0)
    r = sys_error (s, err, -r, "listing", s->snapshots);
  if (r == 0 && (r = list_orphans (s->links, ids, &links)) < 0)
    r = sys_error (s, err, -r, "listing", s->links);
  berth_snapstore_rollback (tx);
  berth_snapstore_strv_free (ids);

  for (char **d = dirs; r == 0 && d && *d; d++)
    {
      if (ctx && s->host->ctx_cancelled (ctx))
        {
          r = s->host->error_set (err, BERTH_E_CANCELLED, 0, "cleanup cancelled");
          break;
        }
      _cleanup_str_ char *path = ovl_path ("%s/%s", s->snapshots, *d);
      if (path == NULL)
        r = nomem (s, err);
      else if (berth_snapstore_remove_tree (s->store, AT_FDCWD, path, NULL) < 0)
        s->host->log (s->plugin, BERTH_LOG_WARNING, "cleanup: cannot remove %s", path);
      else
        s->host->log (s->plugin, BERTH_LOG_INFO, "cleanup: removed %s", path);
    }
  for (char **l = links; r == 0 && l && *l; l++)
    remove_link (s, *l);
  strv_free (dirs);
  strv_free (links);
  return r;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void
ovl_fini (void *self)
{
  struct ovl *s = self;
  if (s == NULL)
    return;
  berth_snapstore_close (s->store);
  ovl_anchor_remove (s);
  for (size_t i = 0; i < s->noptions; i++)
    free (s->options[i]);
  free (s->options);
  free (s->anchor);
  free (s->root);
  free (s->snapshots);
  free (s->links);
  free (s);
}

static bool
has_option (char **options, size_t n, const char *key, bool with_value)
{
  size_t klen = strlen (key);
  for (size_t i = 0; i < n; i++)
    if (with_value ? strncmp (options[i], key, klen) == 0 && options[i][klen] == '='
                   : strcmp (options[i], key) == 0)
      return true;
  return false;
}

static int
add_option (struct ovl *s, const char *opt)
{
  char **n = realloc (s->options, (s->noptions + 2) * sizeof *n);
  if (n == NULL)
    return -ENOMEM;
  s->options = n;
  if ((s->options[s->noptions] = strdup (opt)) == NULL)
    return -ENOMEM;
  s->options[++s->noptions] = NULL;
  return 0;
}

/* The options as the mount data gets them, for messages. */
static char *
join_options (struct ovl *s)
{
  char *out = malloc (ovl_options_length (s->options, s->noptions) + 1);
  if (out == NULL)
    return NULL;
  char *p = out;
  *p = '\0';
  for (size_t i = 0; i < s->noptions; i++)
    p = stpcpy (stpcpy (p, i ? "," : ""), s->options[i]);
  return out;
}

static int
read_config (struct ovl *s, const struct berth_init_ctx *ictx, char **ret_link_dir, berth_error *err)
{
  const struct berth_host *host = s->host;
  struct berth_cfg_value v = { .size = sizeof v };
  if (host->cfg_get (ictx->plugin, "mount_options", &v) == 0 && v.type == BERTH_CFG_STRING_ARRAY)
    for (size_t i = 0; i < v.n; i++)
      {
        if (v.v[i] == NULL || *v.v[i] == '\0' || strchr (v.v[i], ','))
          return host->error_set (err, BERTH_E_INVALID, 0,
                                  "mount_options: `%s` is not one option (empty or with a comma)",
                                  v.v[i] ? v.v[i] : "");
        if (strncmp (v.v[i], "lowerdir=", 9) == 0 || strncmp (v.v[i], "upperdir=", 9) == 0
            || strncmp (v.v[i], "workdir=", 8) == 0)
          return host->error_set (err, BERTH_E_INVALID, 0, "mount_options: `%s` is set per snapshot", v.v[i]);
        if (add_option (s, v.v[i]) < 0)
          return nomem (s, err);
      }
  struct berth_cfg_value b = { .size = sizeof b };
  if (host->cfg_get (ictx->plugin, "upperdir_label", &b) == 0 && b.type == BERTH_CFG_BOOL)
    s->upperdir_label = b.b != 0;
  struct berth_cfg_value d = { .size = sizeof d };
  const char *dir = DEFAULT_SHORT_LINK_DIR;
  if (host->cfg_get (ictx->plugin, "short_link_dir", &d) == 0 && d.type == BERTH_CFG_STRING && d.s)
    dir = d.s;
  if ((*ret_link_dir = strdup (dir)) == NULL)
    return nomem (s, err);
  return 0;
}

static int
ovl_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self, berth_error *err)
{
  struct ovl *s = calloc (1, sizeof *s);
  if (s == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  *ret_self = s;
  s->host = host;
  s->plugin = ictx->plugin;
  if (ictx->root == NULL || *ictx->root == '\0')
    return host->error_set (err, BERTH_E_SKIP, 0, "no root directory");
  long page = sysconf (_SC_PAGESIZE);
  s->max_data = (size_t) (page > 0 ? page : 4096) - 1;
  s->root = strdup (ictx->root);
  s->snapshots = ovl_path ("%s/snapshots", ictx->root);
  s->links = ovl_path ("%s/l", ictx->root);
  if (!s->root || !s->snapshots || !s->links)
    return nomem (s, err);

  _cleanup_str_ char *link_dir = NULL;
  int r = read_config (s, ictx, &link_dir, err);
  if (r < 0)
    return r;
  /* containerd adds these two unless the configuration names them. */
  if (!has_option (s->options, s->noptions, "userxattr", false) && ovl_needs_userxattr (s->root)
      && add_option (s, "userxattr") < 0)
    return nomem (s, err);
  if (!has_option (s->options, s->noptions, "index", true) && ovl_supports_index ()
      && add_option (s, "index=off") < 0)
    return nomem (s, err);

  struct ovl_facts facts;
  if (ovl_detect (s, &facts) < 0)
    return nomem (s, err);
  _cleanup_str_ char *reason = ovl_detect_reason (&facts);
  if (reason)
    return host->error_set (err, BERTH_E_SKIP, 0, "%s", reason);
  if (facts.options_errno)
    {
      _cleanup_str_ char *joined = join_options (s);
      return host->error_set (err, BERTH_E_INVALID, facts.options_errno, "overlayfs refuses the mount options %s",
                              joined ? joined : "");
    }

  if ((mkdir (s->snapshots, 0700) < 0 && errno != EEXIST) || (mkdir (s->links, 0700) < 0 && errno != EEXIST))
    return sys_error (s, err, errno, "creating the layout under", s->root);

  _cleanup_str_ char *db = ovl_path ("%s/metadata.db", s->root);
  if (db == NULL)
    return nomem (s, err);
  if ((r = berth_snapstore_open (host, db, &s->store, err)) < 0)
    return host->error_wrap (err, "opening %s", db);

  if ((r = ovl_anchor_setup (s, link_dir)) < 0)
    host->log (s->plugin, BERTH_LOG_WARNING,
               "no short link anchor in %s (%s): lowerdir chains are limited to what fits in a page", link_dir,
               strerror (-r));

  host->set_export (ictx->plugin, "root", s->root);
  return 0;
}

static const struct berth_snapshotter_ops ovl_ops = {
  .size = sizeof (struct berth_snapshotter_ops),
  .stat = ovl_stat,
  .update = ovl_update,
  .usage = ovl_usage,
  .mounts = ovl_mounts,
  .prepare = ovl_prepare,
  .view = ovl_view,
  .commit = ovl_commit,
  .remove = ovl_remove,
  .walk = ovl_walk,
  .cleanup = ovl_cleanup,
};

static const struct berth_config_key k_mount_options
    = BERTH_CFG_KEY (BERTH_CFG_STRING_ARRAY, "mount_options", "[]",
                     "extra overlay mount options (not used on bind mounts); \"index=off\" and \"userxattr\" are "
                     "added as containerd does unless an index or userxattr option is given");
static const struct berth_config_key k_upperdir_label
    = BERTH_CFG_KEY (BERTH_CFG_BOOL, "upperdir_label", "false",
                     "answer the upper directory of each snapshot in the label " OVL_UPPERDIR_LABEL);
static const struct berth_config_key k_short_link_dir
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "short_link_dir", "\"" DEFAULT_SHORT_LINK_DIR "\"",
                     "directory on a short path holding a symlink to <root>/l, so that lowerdir chains too long "
                     "for one page of mount options still fit (\"\" turns it off)");
static const struct berth_config_key *const ovl_keys[] = { &k_mount_options, &k_upperdir_label, &k_short_link_dir,
                                                           NULL };

static const struct berth_plugin_desc ovl_desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_SNAPSHOTTER,
  .type = "io.berth.snapshotter.v1",
  .id = "overlayfs",
  .version = "0.1.0",
  .requires = NULL,
  .config_keys = ovl_keys,
  .init = ovl_init,
  .fini = ovl_fini,
  .ops = &ovl_ops,
  .description = "snapshots as overlayfs layers (containerd's overlayfs snapshotter)",
};

static const struct berth_plugin_desc *const ovl_plugins[] = { &ovl_desc, NULL };

/* Built into berthd only (core/builtins.c), like the local content store. */
const struct berth_plugin_desc *const *
berth_snapshotter_overlay_entry (void)
{
  return ovl_plugins;
}
