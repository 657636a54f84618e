/* Namespaced snapshots over the snapshotter plugins (see snapshots.h).
 *
 * Order of work, as containerd's metadata snapshotter: validate against the
 * metadata, call the plugin, then record the result; if recording fails the
 * plugin's new snapshot is removed again.  No SQLite transaction is held
 * across a plugin call (native's prepare copies a whole tree). */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <berth/failpoint.h>

#include "cleanup.h"
#include "host-objects.h"
#include "plugin-calls.h"
#include "snapshots.h"

#define INHERITED_PREFIX "containerd.io/snapshot/"
/* containerd's remote-snapshotter protocol (snapshots.go, metadata/snapshot.go):
 * a prepare that carries the name its layer will have once committed. */
#define LABEL_SNAPSHOT_REF "containerd.io/snapshot.ref"
#define LABEL_LAYER_DIGEST "containerd.io/snapshot/cri.layer-digest"
#define LABEL_GC_LAYER "containerd.io/gc.ref.content.layer"

static pthread_rwlock_t gc_lock = PTHREAD_RWLOCK_INITIALIZER;

void
snaps_lock_exclusive (void)
{
  pthread_rwlock_wrlock (&gc_lock);
}

void
snaps_unlock_exclusive (void)
{
  pthread_rwlock_unlock (&gc_lock);
}

static void
shared_unlockp (pthread_rwlock_t **l)
{
  if (*l)
    pthread_rwlock_unlock (*l);
}

#define SHARED_LOCK()                                                                                              \
  pthread_rwlock_rdlock (&gc_lock);                                                                                \
  __attribute__ ((cleanup (shared_unlockp), unused)) pthread_rwlock_t *_held = &gc_lock

int
snaps_plugin (registry *reg, const char *id, plugin **ret, berth_error **err)
{
  if (id == NULL || *id == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "snapshotter argument missing");
  plugin *p = reg ? registry_find (reg, "io.berth.snapshotter.v1", id) : NULL;
  if (p == NULL)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "snapshotter not loaded: %s", id);
  if (p->status != PLUGIN_OK)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "snapshotter not loaded: %s (%s is %s%s%s)", id, p->full_name,
                            plugin_status_name (p->status), p->error ? ": " : "", p->error ? p->error : "");
  *ret = p;
  return 0;
}

static int
inherited (const berth_labels *in, berth_labels *out)
{
  size_t it = 0;
  const char *k, *v;
  while (in && labels_next (in, &it, &k, &v))
    if (strncmp (k, INHERITED_PREFIX, strlen (INHERITED_PREFIX)) == 0)
      {
        int r = labels_set (out, k, v);
        if (r < 0)
          return r;
      }
  return 0;
}

static void
labels_clearp (berth_labels *l)
{
  labels_clear (l);
}

/* The plugin answered EXISTS to a prepare naming `target`: if it did commit
 * the layer as btarget, record that in this namespace (with the caller's
 * labels, and a GC reference to the layer blob it is served from, which
 * must stay) and answer EXISTS, as containerd does; otherwise the EXISTS
 * stands as the plugin's error. */
static int
record_remote (const struct snaps *s, berth_ctx *ctx, const char *target, const char *btarget, const char *parent,
               const berth_labels *labels, berth_error **err)
{
  struct berth_snapshot_info info = { .size = sizeof info };
  _cleanup_error_ berth_error *se = NULL;
  if (snapshotter_stat (s->p, ctx, btarget, &info, &se) < 0 || info.kind != BERTH_SNAPSHOT_COMMITTED)
    return BERTH_E_EXISTS; /* err already says why */
  berth_error_free (*err);
  *err = NULL;
  __attribute__ ((cleanup (labels_clearp))) berth_labels keep = { 0 };
  size_t it = 0;
  const char *k, *v;
  int r = 0;
  while (r == 0 && labels_next (labels, &it, &k, &v))
    r = labels_set (&keep, k, v);
  const char *digest = labels_get (labels, LABEL_LAYER_DIGEST);
  if (r == 0 && digest && *digest)
    r = labels_set (&keep, LABEL_GC_LAYER, digest);
  if (r < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  struct meta_snapshot rec = {
    .snapshotter = (char *) s->snapshotter,
    .key = (char *) target,
    .backend = (char *) btarget,
    .parent = (char *) (parent ? parent : ""),
    .kind = BERTH_SNAPSHOT_COMMITTED,
    .labels = keep,
  };
  r = meta_snapshot_add (s->m, s->ns, &rec, s->lease, err);
  if (r < 0)
    {
      _cleanup_error_ berth_error *e2 = NULL;
      snapshotter_remove (s->p, ctx, btarget, &e2);
      return r;
    }
  return berth_error_set (err, BERTH_E_EXISTS, 0, "target snapshot %s: already exists (committed by snapshotter %s)",
                          target, s->snapshotter);
}

int
snaps_create (const struct snaps *s, const char *key, const char *parent, const berth_labels *labels, bool view,
              berth_mounts *ret_mounts, berth_error **err)
{
  if (key == NULL || *key == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "snapshot key must not be empty");
  if (labels)
    {
      int r = meta_validate_labels (labels, err);
      if (r < 0)
        return r;
    }
  SHARED_LOCK ();
  struct meta_snapshot cur = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int r = meta_snapshot_get (s->m, s->ns, s->snapshotter, key, &cur, &e);
  meta_snapshot_clear (&cur);
  if (r == 0)
    return berth_error_set (err, BERTH_E_EXISTS, 0, "snapshot %s: already exists", key);
  if (r != BERTH_E_NOTFOUND)
    return berth_error_take (err, TAKE_PTR (e));

  _cleanup_free_ char *bparent = NULL;
  if (parent && *parent)
    {
      struct meta_snapshot p = { 0 };
      _cleanup_error_ berth_error *pe = NULL;
      r = meta_snapshot_get (s->m, s->ns, s->snapshotter, parent, &p, &pe);
      if (r == BERTH_E_NOTFOUND)
        return berth_error_set (err, BERTH_E_NOTFOUND, 0, "parent snapshot %s does not exist", parent);
      if (r < 0)
        return berth_error_take (err, TAKE_PTR (pe));
      if (p.kind != BERTH_SNAPSHOT_COMMITTED)
        {
          meta_snapshot_clear (&p);
          return berth_error_set (err, BERTH_E_INVALID, 0, "parent snapshot %s is not committed", parent);
        }
      bparent = TAKE_PTR (p.backend);
      meta_snapshot_clear (&p);
    }

  _cleanup_free_ char *bkey = NULL;
  r = meta_snapshot_backend_key (s->m, s->ns, key, &bkey, err);
  if (r < 0)
    return r;
  __attribute__ ((cleanup (labels_clearp))) berth_labels inh = { 0 };
  if (inherited (labels, &inh) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");

  /* A remote snapshotter commits the layer itself, under the backend name
   * of the target, and answers EXISTS (containerd's protocol). */
  const char *target = labels && !view ? labels_get (labels, LABEL_SNAPSHOT_REF) : NULL;
  _cleanup_free_ char *btarget = NULL;
  if (target && *target)
    {
      struct meta_snapshot t = { 0 };
      _cleanup_error_ berth_error *te = NULL;
      r = meta_snapshot_get (s->m, s->ns, s->snapshotter, target, &t, &te);
      meta_snapshot_clear (&t);
      if (r == 0)
        return berth_error_set (err, BERTH_E_EXISTS, 0, "target snapshot %s: already exists", target);
      if (r != BERTH_E_NOTFOUND)
        return berth_error_take (err, TAKE_PTR (te));
      if ((r = meta_snapshot_backend_key (s->m, s->ns, target, &btarget, err)) < 0)
        return r;
      if (labels_set (&inh, LABEL_SNAPSHOT_REF, btarget) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
    }

  berth_ctx ctx;
  ctx_init (&ctx, s->ns, s->lease);
  berth_mounts scratch = { 0 };
  berth_mounts *mounts = ret_mounts ? ret_mounts : &scratch;
  if (view)
    r = snapshotter_view (s->p, &ctx, bkey, bparent, &inh, mounts, err);
  else
    r = snapshotter_prepare (s->p, &ctx, bkey, bparent, &inh, mounts, err);
  mounts_clear (&scratch);
  if (r == BERTH_E_EXISTS && btarget)
    return record_remote (s, &ctx, target, btarget, parent, labels, err);
  if (r < 0)
    return r;
  BERTH_FAILPOINT ("snapshot-prepare-before-record");

  struct meta_snapshot rec = {
    .snapshotter = (char *) s->snapshotter,
    .key = (char *) key,
    .backend = bkey,
    .parent = (char *) (parent ? parent : ""),
    .kind = view ? BERTH_SNAPSHOT_VIEW : BERTH_SNAPSHOT_ACTIVE,
  };
  if (labels)
    rec.labels = *labels;
  r = meta_snapshot_add (s->m, s->ns, &rec, s->lease, err);
  if (r < 0)
    {
      _cleanup_error_ berth_error *e2 = NULL;
      snapshotter_remove (s->p, &ctx, bkey, &e2);
      if (ret_mounts)
        mounts_clear (ret_mounts);
    }
  return r;
}

int
snaps_commit (const struct snaps *s, const char *name, const char *key, const berth_labels *labels,
              berth_error **err)
{
  if (name == NULL || *name == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "snapshot name must not be empty");
  if (labels)
    {
      int r = meta_validate_labels (labels, err);
      if (r < 0)
        return r;
    }
  SHARED_LOCK ();
  struct meta_snapshot cur = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int r = meta_snapshot_get (s->m, s->ns, s->snapshotter, name, &cur, &e);
  meta_snapshot_clear (&cur);
  if (r == 0)
    return berth_error_set (err, BERTH_E_EXISTS, 0, "snapshot %s: already exists", name);
  if (r != BERTH_E_NOTFOUND)
    return berth_error_take (err, TAKE_PTR (e));
  r = meta_snapshot_get (s->m, s->ns, s->snapshotter, key, &cur, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *bkey = TAKE_PTR (cur.backend);
  int kind = cur.kind;
  meta_snapshot_clear (&cur);
  if (kind != BERTH_SNAPSHOT_ACTIVE)
    return berth_error_set (err, BERTH_E_PRECONDITION, 0, "snapshot %s is not active", key);

  _cleanup_free_ char *bname = NULL;
  r = meta_snapshot_backend_key (s->m, s->ns, name, &bname, err);
  if (r < 0)
    return r;
  __attribute__ ((cleanup (labels_clearp))) berth_labels inh = { 0 };
  if (inherited (labels, &inh) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  berth_ctx ctx;
  ctx_init (&ctx, s->ns, s->lease);
  r = snapshotter_commit (s->p, &ctx, bname, bkey, &inh, err);
  if (r < 0)
    return r;
  BERTH_FAILPOINT ("snapshot-commit-before-record");
  r = meta_snapshot_commit (s->m, s->ns, s->snapshotter, name, key, bname, labels, s->lease, err);
  if (r < 0)
    {
      /* The plugin committed but the record could not follow: drop the
       * committed data rather than leave an unreachable snapshot. */
      _cleanup_error_ berth_error *e2 = NULL;
      snapshotter_remove (s->p, &ctx, bname, &e2);
    }
  return r;
}

int
snaps_remove (const struct snaps *s, const char *key, berth_error **err)
{
  SHARED_LOCK ();
  _cleanup_free_ char *bkey = NULL;
  int r = meta_snapshot_remove (s->m, s->ns, s->snapshotter, key, &bkey, err);
  if (r < 0)
    return r;
  BERTH_FAILPOINT ("snapshot-remove-before-plugin");
  /* The record is gone, which is what the client asked; if the plugin
   * cannot drop the data now, GC's backend sweep retries. */
  berth_ctx ctx;
  ctx_init (&ctx, s->ns, s->lease);
  _cleanup_error_ berth_error *e = NULL;
  snapshotter_remove (s->p, &ctx, bkey, &e);
  return 0;
}

static int
backend_of (const struct snaps *s, const char *key, char **ret, berth_error **err)
{
  struct meta_snapshot cur = { 0 };
  int r = meta_snapshot_get (s->m, s->ns, s->snapshotter, key, &cur, err);
  if (r < 0)
    return r;
  *ret = TAKE_PTR (cur.backend);
  meta_snapshot_clear (&cur);
  return 0;
}

int
snaps_mounts (const struct snaps *s, const char *key, berth_mounts *ret_mounts, berth_error **err)
{
  _cleanup_free_ char *bkey = NULL;
  int r = backend_of (s, key, &bkey, err);
  if (r < 0)
    return r;
  berth_ctx ctx;
  ctx_init (&ctx, s->ns, s->lease);
  return snapshotter_mounts (s->p, &ctx, bkey, ret_mounts, err);
}

int
snaps_usage (const struct snaps *s, const char *key, struct berth_snapshot_usage *ret_usage, berth_error **err)
{
  _cleanup_free_ char *bkey = NULL;
  int r = backend_of (s, key, &bkey, err);
  if (r < 0)
    return r;
  berth_ctx ctx;
  ctx_init (&ctx, s->ns, s->lease);
  return snapshotter_usage (s->p, &ctx, bkey, ret_usage, err);
}

/* ---- GC: the plugin's side ------------------------------------------- */

struct backend_snap
{
  char *name;
  char *parent;
  bool orphan;
  bool gone;
};

struct backend_list
{
  struct backend_snap *v;
  size_t n;
};

static int
collect_backend (const struct berth_snapshot_info *info, void *data)
{
  struct backend_list *bl = data;
  struct backend_snap *v = realloc (bl->v, (bl->n + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  bl->v = v;
  v[bl->n] = (struct backend_snap){ .name = strdup (info->name), .parent = strdup (info->parent) };
  bl->n++;
  if (v[bl->n - 1].name == NULL || v[bl->n - 1].parent == NULL)
    return BERTH_E_NOMEM;
  return 0;
}

static bool
has_live_child (const struct backend_list *bl, const char *name)
{
  for (size_t i = 0; i < bl->n; i++)
    if (!bl->v[i].gone && strcmp (bl->v[i].parent, name) == 0)
      return true;
  return false;
}

int
snaps_sweep_backend (meta *m, plugin *p, bool dry_run, size_t *ret_removed, berth_error **err)
{
  struct backend_list bl = { 0 };
  berth_ctx ctx;
  ctx_init (&ctx, NULL, NULL);
  size_t removed = 0;
  int r = snapshotter_walk (p, &ctx, NULL, collect_backend, &bl, err);
  for (size_t i = 0; r == 0 && i < bl.n; i++)
    {
      bool known = true;
      r = meta_snapshot_backend_known (m, p->desc.id, bl.v[i].name, &known, err);
      bl.v[i].orphan = !known;
    }
  /* Children before parents: repeat while a pass removes something. */
  for (bool progress = true; r == 0 && progress;)
    {
      progress = false;
      for (size_t i = 0; i < bl.n; i++)
        {
          if (!bl.v[i].orphan || bl.v[i].gone || has_live_child (&bl, bl.v[i].name))
            continue;
          if (!dry_run)
            {
              BERTH_FAILPOINT ("gc-sweep-backend");
              _cleanup_error_ berth_error *e = NULL;
              int rr = snapshotter_remove (p, &ctx, bl.v[i].name, &e);
              if (rr < 0 && rr != BERTH_E_NOTFOUND)
                continue;
            }
          bl.v[i].gone = true;
          removed++;
          progress = true;
        }
    }
  /* Cleanup every time, not only after a removal here: a directory the
   * plugin was removing or creating when the daemon died (overlayfs's
   * rm-<id>, new-XXXXXX) has no snapshot to remove, and only cleanup
   * reclaims it (found by tests/faults/powerloss.sh). */
  if (r == 0 && !dry_run)
    {
      _cleanup_error_ berth_error *e = NULL;
      int rc = snapshotter_cleanup (p, &ctx, &e);
      if (rc < 0 && rc != BERTH_E_NOTSUP)
        r = berth_error_take (err, TAKE_PTR (e));
    }
  for (size_t i = 0; i < bl.n; i++)
    {
      free (bl.v[i].name);
      free (bl.v[i].parent);
    }
  free (bl.v);
  if (ret_removed)
    *ret_removed = removed;
  if (r < 0)
    return berth_error_wrap (err, "sweeping %s", p->full_name);
  return 0;
}
