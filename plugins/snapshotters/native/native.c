/* io.berth.snapshotter.v1.native: see native.h for the layout and the
 * crash-safety argument. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <berth/config.h>

#include "native.h"

int
native_errno_code (int errnum)
{
  switch (errnum)
    {
    case ENOSPC:
    case EDQUOT:
      return BERTH_E_EXHAUSTED;
    case EPERM:
    case EACCES:
      return BERTH_E_PERMISSION;
    case ENOENT:
      return BERTH_E_NOTFOUND;
    case ENOMEM:
      return BERTH_E_NOMEM;
    default:
      return BERTH_E_INTERNAL;
    }
}

static char *
native_path (const char *fmt, ...)
{
  char *p = NULL;
  va_list ap;
  va_start (ap, fmt);
  int n = vasprintf (&p, fmt, ap);
  va_end (ap);
  return n < 0 ? NULL : p;
}

static void
txp_rollback (berth_snaptx **tx)
{
  berth_snapstore_rollback (*tx);
}
#define _cleanup_tx_ __attribute__ ((cleanup (txp_rollback)))

static void
snapp_free (struct berth_snapstore_snapshot **snap)
{
  berth_snapstore_snapshot_free (*snap);
}
#define _cleanup_snap_ __attribute__ ((cleanup (snapp_free)))

static void
freep (void *p)
{
  free (*(void **) p);
}
#define _cleanup_free_ __attribute__ ((cleanup (freep)))

static int
nomem (struct native *s, berth_error *err)
{
  return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
}

/* Commit tx (consumed), leaving *tx NULL for the cleanup attribute. */
static int
tx_commit (berth_snaptx **tx, berth_error *err)
{
  berth_snaptx *t = *tx;
  *tx = NULL;
  return berth_snapstore_commit (t, err);
}

/* ---- mounts ------------------------------------------------------------ */

/* containerd's native mounts: one bind mount, "ro" for views. */
static int
add_mounts (struct native *s, const char *id, uint32_t kind, berth_mounts *ret_mounts, berth_error *err)
{
  if (ret_mounts == NULL)
    return 0;
  _cleanup_free_ char *dir = native_path ("%s/%s", s->snapshots, id);
  if (dir == NULL)
    return nomem (s, err);
  const char *opts[] = { kind == BERTH_SNAPSHOT_VIEW ? "ro" : "rw", "rbind", NULL };
  int r = s->host->mounts_add (ret_mounts, "bind", dir, NULL, opts);
  return r < 0 ? s->host->error_set (err, r, 0, "adding the mount of %s", dir) : 0;
}

static int
native_mounts (void *self, berth_ctx *ctx, const char *key, berth_mounts *ret_mounts, berth_error *err)
{
  struct native *s = self;
  (void) ctx;
  _cleanup_tx_ berth_snaptx *tx = NULL;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r == 0)
    r = berth_snapstore_get (tx, key, &snap, err);
  if (r < 0)
    return r;
  return add_mounts (s, snap->id, snap->kind, ret_mounts, err);
}

/* ---- prepare / view ------------------------------------------------------ */

/* The id of the committed parent, and a fast EXISTS for key, before copying. */
static int
precheck (struct native *s, const char *key, const char *parent, char ret_parent_id[BERTH_SNAPSTORE_ID_MAX],
          berth_error *err)
{
  _cleanup_tx_ berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r < 0)
    return r;
  _cleanup_snap_ struct berth_snapstore_snapshot *existing = NULL;
  if (key && *key && berth_snapstore_get (tx, key, &existing, NULL) == 0)
    return s->host->error_set (err, BERTH_E_EXISTS, 0, "snapshot `%s` already exists", key);
  ret_parent_id[0] = '\0';
  if (parent == NULL || *parent == '\0')
    return 0;
  _cleanup_snap_ struct berth_snapstore_snapshot *p = NULL;
  r = berth_snapstore_get (tx, parent, &p, err);
  if (r == BERTH_E_NOTFOUND)
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "parent snapshot `%s` of `%s` does not exist", parent, key);
  if (r < 0)
    return r;
  if (p->kind != BERTH_SNAPSHOT_COMMITTED)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "parent `%s` of `%s` is not a committed snapshot", parent,
                               key);
  snprintf (ret_parent_id, BERTH_SNAPSTORE_ID_MAX, "%s", p->id);
  return 0;
}

/* containerd's createSnapshot: copy the parent into a fresh directory
 * outside any transaction, then record the snapshot and move the directory
 * into place in one write transaction. */
static int
create_snapshot (struct native *s, berth_ctx *ctx, uint32_t kind, const char *key, const char *parent,
                 const berth_labels *labels, berth_mounts *ret_mounts, berth_error *err)
{
  char parent_id[BERTH_SNAPSTORE_ID_MAX];
  int r = precheck (s, key, parent, parent_id, err);
  if (r < 0)
    return r;

  _cleanup_free_ char *td = native_path ("%s/new-XXXXXX", s->tmp);
  if (td == NULL)
    return nomem (s, err);
  if (mkdtemp (td) == NULL)
    return native_sys_error (s, err, errno, "creating a directory for `%s` in %s", key, s->tmp);
  if (*parent_id)
    {
      _cleanup_free_ char *pdir = native_path ("%s/%s", s->snapshots, parent_id);
      r = pdir ? native_copy_tree (s, ctx, pdir, td, err) : nomem (s, err);
      if (r < 0)
        s->host->error_wrap (err, "copying parent `%s` for `%s`", parent, key);
    }
  else if (chmod (td, 0755) < 0)
    r = native_sys_error (s, err, errno, "chmod %s", td);

  _cleanup_tx_ berth_snaptx *tx = NULL;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  _cleanup_free_ char *dir = NULL;
  if (r == 0)
    r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r == 0)
    r = berth_snapstore_create (tx, kind, key, parent, labels, &snap, err);
  /* The parent may have been removed and committed again while we copied. */
  if (r == 0 && strcmp (snap->n_parents ? snap->parent_ids[0] : "", parent_id) != 0)
    r = s->host->error_set (err, BERTH_E_CONFLICT, 0, "parent `%s` of `%s` changed during prepare", parent, key);
  if (r == 0 && (dir = native_path ("%s/%s", s->snapshots, snap->id)) == NULL)
    r = nomem (s, err);
  if (r == 0 && rename (td, dir) < 0)
    {
      int e = errno;
      /* A leftover of a creation that died before its commit (the id this
       * transaction allocated came back): nothing owns it. */
      if (e == ENOTEMPTY || e == EEXIST)
        {
          s->host->log (s->plugin, BERTH_LOG_WARNING, "removing %s, left by a snapshot creation that did not commit",
                        dir);
          r = berth_snapstore_remove_tree (s->store, AT_FDCWD, dir, err);
          e = r == 0 && rename (td, dir) < 0 ? errno : 0;
        }
      if (r == 0 && e != 0)
        r = native_sys_error (s, err, e, "moving %s to %s", td, dir);
    }
  if (r == 0)
    {
      r = tx_commit (&tx, err);
      if (r < 0 && rename (dir, td) < 0)
        s->host->log (s->plugin, BERTH_LOG_WARNING, "could not move %s back after a failed commit: %s", dir,
                      strerror (errno));
    }
  if (r == 0)
    r = add_mounts (s, snap->id, kind, ret_mounts, err);
  if (r < 0)
    {
      if (berth_snapstore_remove_tree (s->store, AT_FDCWD, td, NULL) < 0)
        s->host->log (s->plugin, BERTH_LOG_WARNING, "could not remove %s", td);
      return r;
    }
  return 0;
}

static int
native_prepare (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
                berth_mounts *ret_mounts, berth_error *err)
{
  return create_snapshot (self, ctx, BERTH_SNAPSHOT_ACTIVE, key, parent, labels, ret_mounts, err);
}

static int
native_view (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
             berth_mounts *ret_mounts, berth_error *err)
{
  return create_snapshot (self, ctx, BERTH_SNAPSHOT_VIEW, key, parent, labels, ret_mounts, err);
}

/* ---- stat / update / usage / walk ---------------------------------------- */

static int
native_stat (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info, berth_error *err)
{
  struct native *s = self;
  (void) ctx;
  _cleanup_tx_ berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 0, &tx, err);
  if (r == 0)
    r = berth_snapstore_get_info (tx, key, ret_info, NULL, err);
  return r;
}

static int
native_update (void *self, berth_ctx *ctx, const struct berth_snapshot_info *info, const char *const *fieldpaths,
               struct berth_snapshot_info *ret_info, berth_error *err)
{
  struct native *s = self;
  (void) ctx;
  _cleanup_tx_ berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r == 0)
    r = berth_snapstore_update_info (tx, info, fieldpaths, ret_info, err);
  if (r == 0)
    r = tx_commit (&tx, err);
  return r;
}

/* Committed snapshots answer the usage recorded at commit; active ones are
 * measured now (as containerd does; views answer 0). */
static int
native_usage (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_usage *ret_usage, berth_error *err)
{
  struct native *s = self;
  (void) ctx;
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  {
    _cleanup_tx_ berth_snaptx *tx = NULL;
    int r = berth_snapstore_begin (s->store, 0, &tx, err);
    if (r == 0)
      r = berth_snapstore_get (tx, key, &snap, err);
    if (r < 0)
      return r;
  }
  if (snap->kind == BERTH_SNAPSHOT_ACTIVE)
    {
      _cleanup_free_ char *dir = native_path ("%s/%s", s->snapshots, snap->id);
      if (dir == NULL)
        return nomem (s, err);
      int r = berth_snapstore_disk_usage (s->store, dir, ret_usage, err);
      return r < 0 ? s->host->error_wrap (err, "usage of `%s`", key) : 0;
    }
  if (BERTH_HAS (struct berth_snapshot_usage, ret_usage, inodes))
    ret_usage->inodes = snap->inodes;
  if (BERTH_HAS (struct berth_snapshot_usage, ret_usage, bytes))
    ret_usage->bytes = snap->bytes;
  return 0;
}

static int
native_walk (void *self, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn, void *data,
             berth_error *err)
{
  struct native *s = self;
  return berth_snapstore_walk (s->store, ctx, filters, fn, data, err);
}

/* ---- commit / remove ------------------------------------------------------ */

static int
native_commit (void *self, berth_ctx *ctx, const char *name, const char *key, const berth_labels *labels,
               berth_error *err)
{
  struct native *s = self;
  (void) ctx;
  /* Measure outside the write transaction; the id cannot change under an
   * active key except by remove + prepare, which the id check catches. */
  _cleanup_snap_ struct berth_snapstore_snapshot *snap = NULL;
  {
    _cleanup_tx_ berth_snaptx *tx = NULL;
    int r = berth_snapstore_begin (s->store, 0, &tx, err);
    if (r == 0)
      r = berth_snapstore_get (tx, key, &snap, err);
    if (r < 0)
      return r;
  }
  struct berth_snapshot_usage usage = { .size = sizeof usage };
  if (snap->kind == BERTH_SNAPSHOT_ACTIVE)
    {
      _cleanup_free_ char *dir = native_path ("%s/%s", s->snapshots, snap->id);
      if (dir == NULL)
        return nomem (s, err);
      int r = berth_snapstore_disk_usage (s->store, dir, &usage, err);
      if (r < 0)
        return s->host->error_wrap (err, "commit of `%s`", key);
    }
  _cleanup_tx_ berth_snaptx *tx = NULL;
  char id[BERTH_SNAPSTORE_ID_MAX];
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r == 0)
    r = berth_snapstore_commit_active (tx, key, name, labels, &usage, id, err);
  if (r == 0 && strcmp (id, snap->id) != 0)
    r = s->host->error_set (err, BERTH_E_CONFLICT, 0, "snapshot `%s` changed during commit", key);
  if (r == 0)
    r = tx_commit (&tx, err);
  return r;
}

static int
native_remove (void *self, berth_ctx *ctx, const char *key, berth_error *err)
{
  struct native *s = self;
  (void) ctx;
  _cleanup_tx_ berth_snaptx *tx = NULL;
  char id[BERTH_SNAPSTORE_ID_MAX];
  int r = berth_snapstore_begin (s->store, 1, &tx, err);
  if (r == 0)
    r = berth_snapstore_remove (tx, key, id, NULL, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *dir = native_path ("%s/%s", s->snapshots, id);
  _cleanup_free_ char *gone = native_path ("%s/%s", s->removed, id);
  if (dir == NULL || gone == NULL)
    return nomem (s, err);
  bool moved = true;
  if (rename (dir, gone) < 0)
    {
      if (errno != ENOENT)
        return native_sys_error (s, err, errno, "removing `%s`: moving %s", key, dir);
      s->host->log (s->plugin, BERTH_LOG_WARNING, "snapshot `%s` had no directory %s", key, dir);
      moved = false;
    }
  r = tx_commit (&tx, err);
  if (r < 0)
    {
      if (moved && rename (gone, dir) < 0)
        s->host->log (s->plugin, BERTH_LOG_WARNING, "could not move %s back after a failed commit: %s", gone,
                      strerror (errno));
      return r;
    }
  /* The record is gone; a failure here leaves garbage for cleanup, not an error. */
  if (moved && berth_snapstore_remove_tree (s->store, AT_FDCWD, gone, NULL) < 0)
    s->host->log (s->plugin, BERTH_LOG_WARNING, "could not delete %s; cleanup will retry", gone);
  return 0;
}

/* ---- cleanup ------------------------------------------------------------ */

static bool
strv_contains (char **v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp (*v, s) == 0)
      return true;
  return false;
}

/* Empty a directory of garbage (tmp/ or removed/). */
static int
empty_dir (struct native *s, const char *path, berth_error *err)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return native_sys_error (s, err, errno, "opening %s", path);
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int e = errno;
      close (fd);
      return native_sys_error (s, err, e, "listing %s", path);
    }
  int r = 0;
  struct dirent *e;
  while (r == 0 && (e = readdir (d)) != NULL)
    if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
      r = berth_snapstore_remove_tree (s->store, dirfd (d), e->d_name, err);
  closedir (d);
  return r;
}

/* Move every directory of snapshots/ that no record names to removed/
 * (under a write transaction, so no prepare is between its rename and its
 * record), then delete removed/. */
static int
native_cleanup (void *self, berth_ctx *ctx, berth_error *err)
{
  struct native *s = self;
  (void) ctx;
  {
    _cleanup_tx_ berth_snaptx *tx = NULL;
    char **ids = NULL;
    int r = berth_snapstore_begin (s->store, 1, &tx, err);
    if (r == 0)
      r = berth_snapstore_ids (tx, &ids, err);
    if (r < 0)
      return r;
    DIR *d = opendir (s->snapshots);
    if (d == NULL)
      {
        berth_snapstore_strv_free (ids);
        return native_sys_error (s, err, errno, "listing %s", s->snapshots);
      }
    struct dirent *e;
    while (r == 0 && (e = readdir (d)) != NULL)
      {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0 || strv_contains (ids, e->d_name))
          continue;
        _cleanup_free_ char *from = native_path ("%s/%s", s->snapshots, e->d_name);
        _cleanup_free_ char *to = native_path ("%s/orphan-%s", s->removed, e->d_name);
        if (from == NULL || to == NULL)
          r = nomem (s, err);
        else if (rename (from, to) < 0 && errno != ENOENT)
          r = native_sys_error (s, err, errno, "cleanup: moving %s", from);
        else
          s->host->log (s->plugin, BERTH_LOG_INFO, "cleanup: %s belongs to no snapshot, removing it", from);
      }
    closedir (d);
    berth_snapstore_strv_free (ids);
    if (r < 0)
      return r;
  }
  return empty_dir (s, s->removed, err);
}

/* ---- init / fini --------------------------------------------------------- */

static void
native_fini (void *self)
{
  struct native *s = self;
  if (s == NULL)
    return;
  berth_snapstore_close (s->store);
  free (s->root);
  free (s->snapshots);
  free (s->tmp);
  free (s->removed);
  free (s);
}

static int
make_dir (struct native *s, const char *path, berth_error *err)
{
  if (mkdir (path, 0700) < 0 && errno != EEXIST)
    return native_sys_error (s, err, errno, "creating %s", path);
  return 0;
}

static int
native_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self, berth_error *err)
{
  struct native *s = calloc (1, sizeof *s);
  if (s == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  *ret_self = s;
  s->host = host;
  s->plugin = ictx->plugin;
  struct berth_cfg_value v = { .size = sizeof v };
  const char *root = ictx->root;
  if (host->cfg_get (ictx->plugin, "root_path", &v) == 0 && v.type == BERTH_CFG_STRING && v.s && *v.s)
    root = v.s;
  if (root[0] != '/')
    return host->error_set (err, BERTH_E_INVALID, 0, "root_path `%s` is not an absolute path", root);
  s->root = strdup (root);
  s->snapshots = native_path ("%s/snapshots", root);
  s->tmp = native_path ("%s/tmp", root);
  s->removed = native_path ("%s/removed", root);
  _cleanup_free_ char *db = native_path ("%s/metadata.db", root);
  if (s->root == NULL || s->snapshots == NULL || s->tmp == NULL || s->removed == NULL || db == NULL)
    return nomem (s, err);
  int r = make_dir (s, s->root, err);
  if (r == 0)
    r = make_dir (s, s->snapshots, err);
  if (r == 0)
    r = make_dir (s, s->tmp, err);
  if (r == 0)
    r = make_dir (s, s->removed, err);
  if (r == 0)
    r = berth_snapstore_open (host, db, &s->store, err);
  if (r < 0)
    return r;
  /* Nothing runs yet: tmp/ holds only prepares a crash interrupted. */
  if (empty_dir (s, s->tmp, NULL) < 0 || empty_dir (s, s->removed, NULL) < 0)
    host->log (s->plugin, BERTH_LOG_WARNING, "could not empty %s or %s", s->tmp, s->removed);
  host->set_export (ictx->plugin, "root", s->root);
  return 0;
}

static const struct berth_snapshotter_ops native_ops = {
  .size = sizeof (struct berth_snapshotter_ops),
  .stat = native_stat,
  .update = native_update,
  .usage = native_usage,
  .mounts = native_mounts,
  .prepare = native_prepare,
  .view = native_view,
  .commit = native_commit,
  .remove = native_remove,
  .walk = native_walk,
  .cleanup = native_cleanup,
};

static const struct berth_config_key k_root_path
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "root_path", "\"\"",
                     "where snapshots live (absolute); empty: <root>/io.berth.snapshotter.v1.native");
static const struct berth_config_key *const native_keys[] = { &k_root_path, NULL };

static const struct berth_plugin_desc native_desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_SNAPSHOTTER,
  .type = "io.berth.snapshotter.v1",
  .id = "native",
  .version = "0.1.0",
  .requires = NULL,
  .config_keys = native_keys,
  .init = native_init,
  .fini = native_fini,
  .ops = &native_ops,
  .description = "snapshots as full directory copies (reflink where possible); works on any filesystem",
};

static const struct berth_plugin_desc *const native_plugins[] = { &native_desc, NULL };

/* Built into berthd (core/builtins.c), like plugins/stores/local. */
const struct berth_plugin_desc *const *
berth_snapshotter_native_entry (void)
{
  return native_plugins;
}
