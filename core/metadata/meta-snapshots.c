/* Snapshot records (schema 3): the namespaced view of the snapshotter
 * plugins, containerd's metadata/snapshot.go model.  A record maps
 * (namespace, snapshotter, key) to the plugin's key; parents are keys of the
 * same namespace and snapshotter.  Only metadata here: core/snapshots.c
 * pairs these calls with the plugin calls. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <berth/snapshotter.h>

#include "cleanup.h"
#include "metadata/meta-private.h"

#define COLUMNS "snapshotter, key, backend, parent, kind, created_at, updated_at"

void
meta_snapshot_clear (struct meta_snapshot *s)
{
  if (s == NULL)
    return;
  free (s->snapshotter);
  free (s->key);
  free (s->backend);
  free (s->parent);
  labels_clear (&s->labels);
  memset (s, 0, sizeof *s);
}

void
meta_snapshots_free (struct meta_snapshot *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    meta_snapshot_clear (&v[i]);
  free (v);
}

/* object_labels kind of a snapshotter's snapshots. */
static char *
label_kind (const char *snapshotter)
{
  char *s = NULL;
  if (asprintf (&s, "snapshot/%s", snapshotter) < 0)
    return NULL;
  return s;
}

static char *
lease_type (const char *snapshotter)
{
  char *s = NULL;
  if (asprintf (&s, "snapshots/%s", snapshotter) < 0)
    return NULL;
  return s;
}

static int
validate_key (const char *what, const char *key, berth_error **err)
{
  if (key == NULL || *key == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s must not be empty", what);
  if (strlen (key) > 255)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s `%.32s...`: longer than 255 bytes", what, key);
  return 0;
}

int
meta_snapshot_backend_key (meta *m, const char *ns, const char *key, char **ret, berth_error **err)
{
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_run (m, "INSERT INTO sequences (name, value) VALUES ('snapshots', 1) "
                   "ON CONFLICT (name) DO UPDATE SET value = value + 1",
                err, NULL);
  int64_t seq = 0;
  if (r >= 0)
    {
      sqlite3_stmt *st = NULL;
      r = meta_prepare (m, "SELECT value FROM sequences WHERE name = 'snapshots'", &st, err);
      if (r == 0)
        {
          int rc = sqlite3_step (st);
          if (rc == SQLITE_ROW)
            seq = sqlite3_column_int64 (st, 0);
          else
            r = meta_sql_error (m, rc, err, "reading the snapshot sequence");
        }
      sqlite3_finalize (st);
    }
  r = meta_tx_end (m, r < 0 ? r : 0, err);
  if (r < 0)
    return r;
  if (asprintf (ret, "%s/%" PRId64 "/%s", ns, seq, key) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  return 0;
}

static int
row_to_snapshot (meta *m, const char *ns, sqlite3_stmt *st, struct meta_snapshot *ret, berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  int r = meta_strdup ((const char *) sqlite3_column_text (st, 0), &ret->snapshotter, err);
  if (r == 0)
    r = meta_strdup ((const char *) sqlite3_column_text (st, 1), &ret->key, err);
  if (r == 0)
    r = meta_strdup ((const char *) sqlite3_column_text (st, 2), &ret->backend, err);
  if (r == 0)
    r = meta_strdup ((const char *) sqlite3_column_text (st, 3), &ret->parent, err);
  ret->kind = sqlite3_column_int (st, 4);
  ret->created_at = sqlite3_column_int64 (st, 5);
  ret->updated_at = sqlite3_column_int64 (st, 6);
  if (r == 0)
    {
      _cleanup_free_ char *kind = label_kind (ret->snapshotter);
      if (kind == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      r = meta_labels_load (m, ns, kind, ret->key, &ret->labels, err);
    }
  return r;
}

/* Read one record; called with or without the lock held (it is recursive). */
static int
get_locked (meta *m, const char *ns, const char *snapshotter, const char *key, struct meta_snapshot *ret,
            berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m, "SELECT " COLUMNS " FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
                        &st, err);
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, snapshotter, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 3, key, -1, SQLITE_STATIC);
      int rc = sqlite3_step (st);
      if (rc == SQLITE_ROW)
        {
          r = row_to_snapshot (m, ns, st, ret, err);
          if (r < 0)
            meta_snapshot_clear (ret);
        }
      else if (rc == SQLITE_DONE)
        r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "snapshot %s does not exist", key);
      else
        r = meta_sql_error (m, rc, err, "reading snapshots");
    }
  sqlite3_finalize (st);
  return r;
}

int
meta_snapshot_get (meta *m, const char *ns, const char *snapshotter, const char *key, struct meta_snapshot *ret,
                   berth_error **err)
{
  meta_lock (m);
  int r = get_locked (m, ns, snapshotter, key, ret, err);
  meta_unlock (m);
  return r;
}

static const char *
kind_name (int kind)
{
  switch (kind)
    {
    case BERTH_SNAPSHOT_VIEW: return "view";
    case BERTH_SNAPSHOT_ACTIVE: return "active";
    case BERTH_SNAPSHOT_COMMITTED: return "committed";
    }
  return "unknown";
}

static const char *
snapshot_field (void *obj, const char *const *path, size_t n)
{
  struct meta_snapshot *s = obj;
  if (n == 1 && strcmp (path[0], "name") == 0)
    return s->key;
  if (n == 1 && strcmp (path[0], "parent") == 0)
    return s->parent;
  if (n == 1 && strcmp (path[0], "kind") == 0)
    return kind_name (s->kind);
  if (n == 1 && strcmp (path[0], "snapshotter") == 0)
    return s->snapshotter;
  if (n == 2 && strcmp (path[0], "labels") == 0)
    return labels_get (&s->labels, path[1]);
  return NULL;
}

int
meta_snapshot_list (meta *m, const char *ns, const char *snapshotter, const char *const *filters, size_t nfilters,
                    struct meta_snapshot **ret, size_t *ret_n, berth_error **err)
{
  filter_set *fs = NULL;
  int r = meta_filters (filters, nfilters, &fs, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  r = meta_prepare (m,
                    "SELECT " COLUMNS ", namespace FROM snapshots WHERE (?1 IS NULL OR namespace = ?1) "
                    "AND (?2 IS NULL OR snapshotter = ?2) ORDER BY namespace, snapshotter, key",
                    &st, err);
  struct meta_snapshot *v = NULL;
  size_t n = 0;
  if (r == 0)
    {
      if (ns)
        sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      if (snapshotter)
        sqlite3_bind_text (st, 2, snapshotter, -1, SQLITE_STATIC);
      int rc;
      while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          struct meta_snapshot *nv = realloc (v, (n + 1) * sizeof *v);
          if (nv == NULL)
            {
              r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listing snapshots");
              break;
            }
          v = nv;
          r = row_to_snapshot (m, (const char *) sqlite3_column_text (st, 7), st, &v[n], err);
          n++;
          if (r == 0 && fs && !filters_match (fs, snapshot_field, &v[n - 1]))
            meta_snapshot_clear (&v[--n]);
        }
      if (r == 0 && rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "listing snapshots");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  filters_free (fs);
  if (r < 0)
    {
      meta_snapshots_free (v, n);
      return r;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}

/* Inside a transaction: the parent must exist and be committed. */
static int
check_parent (meta *m, const char *ns, const char *snapshotter, const char *parent, berth_error **err)
{
  if (parent == NULL || *parent == '\0')
    return 0;
  struct meta_snapshot p = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int r = get_locked (m, ns, snapshotter, parent, &p, &e);
  if (r == BERTH_E_NOTFOUND)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "parent snapshot %s does not exist", parent);
  if (r < 0)
    return berth_error_take (err, TAKE_PTR (e));
  if (p.kind != BERTH_SNAPSHOT_COMMITTED)
    r = berth_error_set (err, BERTH_E_INVALID, 0, "parent snapshot %s is not committed", parent);
  meta_snapshot_clear (&p);
  return r;
}

static int
insert_row (meta *m, const char *ns, const char *snapshotter, const char *key, const char *backend,
            const char *parent, int kind, const berth_labels *labels, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m,
                        "INSERT INTO snapshots (namespace, " COLUMNS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &st,
                        err);
  if (r < 0)
    return r;
  int64_t t = meta_now_ns ();
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, snapshotter, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, key, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 4, backend, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 5, parent ? parent : "", -1, SQLITE_STATIC);
  sqlite3_bind_int (st, 6, kind);
  sqlite3_bind_int64 (st, 7, t);
  sqlite3_bind_int64 (st, 8, t);
  int rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc == SQLITE_CONSTRAINT)
    return berth_error_set (err, BERTH_E_EXISTS, 0, "snapshot %s: already exists", key);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "creating snapshot");
  _cleanup_free_ char *lk = label_kind (snapshotter);
  if (lk == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  r = meta_labels_delete_all (m, ns, lk, key, err);
  if (r == 0)
    r = meta_labels_put (m, ns, lk, key, labels, err);
  return r;
}

static int
lease_add (meta *m, const char *ns, const char *lease, const char *snapshotter, const char *key, berth_error **err)
{
  if (lease == NULL || *lease == '\0')
    return 0;
  _cleanup_free_ char *type = lease_type (snapshotter);
  if (type == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  /* Inside the caller's transaction, so not meta_lease_add_resource(). */
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m, "SELECT 1 FROM leases WHERE namespace = ? AND id = ?", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, lease, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc == SQLITE_DONE)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "lease %s: not found", lease);
  if (rc != SQLITE_ROW)
    return meta_sql_error (m, rc, err, "reading leases");
  r = meta_run (m, "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)", err, ns,
                lease, type, key, NULL);
  return r < 0 ? r : 0;
}

int
meta_snapshot_add (meta *m, const char *ns, const struct meta_snapshot *s, const char *lease, berth_error **err)
{
  int r = meta_validate_namespace (ns, err);
  if (r == 0)
    r = validate_key ("snapshot key", s->key, err);
  if (r == 0 && (s->snapshotter == NULL || *s->snapshotter == '\0' || s->backend == NULL || *s->backend == '\0'))
    r = berth_error_set (err, BERTH_E_INVALID, 0, "snapshot %s: snapshotter and backend key are required", s->key);
  if (r == 0)
    r = meta_validate_labels (&s->labels, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_ns_touch (m, ns, err);
  if (r == 0)
    r = check_parent (m, ns, s->snapshotter, s->parent, err);
  if (r == 0)
    r = insert_row (m, ns, s->snapshotter, s->key, s->backend, s->parent, s->kind, &s->labels, err);
  if (r == 0)
    r = lease_add (m, ns, lease, s->snapshotter, s->key, err);
  return meta_tx_end (m, r, err);
}

int
meta_snapshot_commit (meta *m, const char *ns, const char *snapshotter, const char *name, const char *key,
                      const char *backend_name, const berth_labels *labels, const char *lease, berth_error **err)
{
  int r = validate_key ("snapshot name", name, err);
  if (r == 0 && labels)
    r = meta_validate_labels (labels, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *lk = label_kind (snapshotter);
  _cleanup_free_ char *type = lease_type (snapshotter);
  if (lk == NULL || type == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  struct meta_snapshot old = { 0 };
  r = get_locked (m, ns, snapshotter, key, &old, err);
  if (r == 0)
    r = insert_row (m, ns, snapshotter, name, backend_name, old.parent, BERTH_SNAPSHOT_COMMITTED, labels, err);
  if (r == 0)
    r = meta_run (m, "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?", err, ns,
                  snapshotter, key, NULL);
  if (r >= 0)
    r = meta_labels_delete_all (m, ns, lk, key, err);
  if (r == 0)
    r = meta_run (m,
                  "UPDATE OR REPLACE lease_resources SET id = ? WHERE namespace = ? AND type = ? AND id = ?", err,
                  name, ns, type, key, NULL);
  if (r >= 0)
    r = lease_add (m, ns, lease, snapshotter, name, err);
  meta_snapshot_clear (&old);
  return meta_tx_end (m, r < 0 ? r : 0, err);
}

int
meta_snapshot_remove (meta *m, const char *ns, const char *snapshotter, const char *key, char **ret_backend,
                      berth_error **err)
{
  _cleanup_free_ char *lk = label_kind (snapshotter);
  _cleanup_free_ char *type = lease_type (snapshotter);
  if (lk == NULL || type == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  struct meta_snapshot s = { 0 };
  r = get_locked (m, ns, snapshotter, key, &s, err);
  if (r == 0)
    {
      sqlite3_stmt *st = NULL;
      r = meta_prepare (m, "SELECT key FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ? LIMIT 1",
                        &st, err);
      if (r == 0)
        {
          sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
          sqlite3_bind_text (st, 2, snapshotter, -1, SQLITE_STATIC);
          sqlite3_bind_text (st, 3, key, -1, SQLITE_STATIC);
          int rc = sqlite3_step (st);
          if (rc == SQLITE_ROW)
            r = berth_error_set (err, BERTH_E_PRECONDITION, 0, "cannot remove snapshot %s with child %s", key,
                                 (const char *) sqlite3_column_text (st, 0));
          else if (rc != SQLITE_DONE)
            r = meta_sql_error (m, rc, err, "reading snapshots");
        }
      sqlite3_finalize (st);
    }
  if (r == 0)
    r = meta_run (m, "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?", err, ns,
                  snapshotter, key, NULL);
  if (r >= 0)
    r = meta_labels_delete_all (m, ns, lk, key, err);
  if (r == 0)
    r = meta_run (m, "DELETE FROM lease_resources WHERE namespace = ? AND type = ? AND id = ?", err, ns, type, key,
                  NULL);
  r = meta_tx_end (m, r < 0 ? r : 0, err);
  if (r == 0 && ret_backend)
    *ret_backend = TAKE_PTR (s.backend);
  meta_snapshot_clear (&s);
  return r;
}

int
meta_snapshot_update (meta *m, const char *ns, const char *snapshotter, const char *key, const berth_labels *labels,
                      const char *const *paths, size_t npaths, struct meta_snapshot *ret, berth_error **err)
{
  int r = labels ? meta_validate_labels (labels, err) : 0;
  if (r < 0)
    return r;
  for (size_t i = 0; i < npaths; i++)
    if (strcmp (paths[i], "labels") != 0 && strncmp (paths[i], "labels.", 7) != 0)
      return berth_error_set (err, BERTH_E_INVALID, 0, "cannot update %s field on snapshot %s", paths[i], key);
  _cleanup_free_ char *lk = label_kind (snapshotter);
  if (lk == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  struct meta_snapshot s = { 0 };
  r = get_locked (m, ns, snapshotter, key, &s, err);
  meta_snapshot_clear (&s);
  if (r == 0 && npaths == 0)
    r = meta_labels_apply_path (m, ns, lk, key, "labels", "labels", labels, err);
  for (size_t i = 0; r >= 0 && i < npaths; i++)
    r = meta_labels_apply_path (m, ns, lk, key, "labels", paths[i], labels, err);
  if (r >= 0)
    {
      char t[32];
      snprintf (t, sizeof t, "%" PRId64, meta_now_ns ());
      r = meta_run (m, "UPDATE snapshots SET updated_at = CAST(? AS INTEGER) WHERE namespace = ? AND snapshotter = ? "
                       "AND key = ?",
                    err, t, ns, snapshotter, key, NULL);
    }
  r = meta_tx_end (m, r < 0 ? r : 0, err);
  if (r == 0 && ret)
    r = meta_snapshot_get (m, ns, snapshotter, key, ret, err);
  return r;
}

int
meta_snapshot_backend_known (meta *m, const char *snapshotter, const char *backend, bool *ret, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  int r = meta_prepare (m, "SELECT 1 FROM snapshots WHERE snapshotter = ? AND backend = ?", &st, err);
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, snapshotter, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, backend, -1, SQLITE_STATIC);
      int rc = sqlite3_step (st);
      if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *ret = rc == SQLITE_ROW;
      else
        r = meta_sql_error (m, rc, err, "reading snapshots");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  return r;
}
