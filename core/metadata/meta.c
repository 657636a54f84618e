#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "metadata/meta-private.h"

/* Migrations: index i brings the schema from version i to i + 1.
 * Append only; never edit a migration that has shipped. */
static const char *const migrations[] = {
  /* 0 → 1: namespaces (foundation). */
  "CREATE TABLE namespaces ("
  "  name TEXT PRIMARY KEY NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL);"
  "CREATE TABLE namespace_labels ("
  "  namespace TEXT NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,"
  "  key TEXT NOT NULL,"
  "  value TEXT NOT NULL,"
  "  PRIMARY KEY (namespace, key));",
  /* 1 → 2: content records, images, leases (issue 4).  Labels of every
   * object kind share one table; `kind` is "content", "image",
   * "image.annotation" (the target descriptor's annotations) or "lease".
   * Objects keep a plain (no action) reference to their namespace so that a
   * namespace cannot disappear under them. */
  "CREATE TABLE content ("
  "  namespace TEXT NOT NULL REFERENCES namespaces (name),"
  "  digest TEXT NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL,"
  "  PRIMARY KEY (namespace, digest));"
  "CREATE INDEX content_by_digest ON content (digest);"
  "CREATE TABLE images ("
  "  namespace TEXT NOT NULL REFERENCES namespaces (name),"
  "  name TEXT NOT NULL,"
  "  media_type TEXT NOT NULL,"
  "  digest TEXT NOT NULL,"
  "  size INTEGER NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL,"
  "  PRIMARY KEY (namespace, name));"
  "CREATE TABLE leases ("
  "  namespace TEXT NOT NULL REFERENCES namespaces (name),"
  "  id TEXT NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  PRIMARY KEY (namespace, id));"
  "CREATE TABLE lease_resources ("
  "  namespace TEXT NOT NULL,"
  "  lease TEXT NOT NULL,"
  "  type TEXT NOT NULL,"
  "  id TEXT NOT NULL,"
  "  PRIMARY KEY (namespace, lease, type, id),"
  "  FOREIGN KEY (namespace, lease) REFERENCES leases (namespace, id) ON DELETE CASCADE);"
  "CREATE TABLE object_labels ("
  "  namespace TEXT NOT NULL REFERENCES namespaces (name),"
  "  kind TEXT NOT NULL,"
  "  object TEXT NOT NULL,"
  "  key TEXT NOT NULL,"
  "  value TEXT NOT NULL,"
  "  PRIMARY KEY (namespace, kind, object, key));",
  /* 2 → 3: snapshots (issue 5), containerd's metadata/snapshot.go model:
   * (namespace, snapshotter, key) names a snapshot in a namespace; backend
   * is the plugin's key "<namespace>/<seq>/<key>" (seq from `sequences`,
   * never reused, so a removed snapshot's backend key is never handed out
   * again while the plugin may still hold it).  parent is a key of the same
   * namespace and snapshotter ("" for none).  Labels live in object_labels
   * with kind "snapshot/<snapshotter>". */
  "CREATE TABLE snapshots ("
  "  namespace TEXT NOT NULL REFERENCES namespaces (name),"
  "  snapshotter TEXT NOT NULL,"
  "  key TEXT NOT NULL,"
  "  backend TEXT NOT NULL,"
  "  parent TEXT NOT NULL,"
  "  kind INTEGER NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL,"
  "  PRIMARY KEY (namespace, snapshotter, key));"
  "CREATE INDEX snapshots_by_parent ON snapshots (namespace, snapshotter, parent);"
  "CREATE UNIQUE INDEX snapshots_by_backend ON snapshots (snapshotter, backend);"
  "CREATE TABLE sequences ("
  "  name TEXT PRIMARY KEY NOT NULL,"
  "  value INTEGER NOT NULL);",
  /* 3 → 4: containers (issue 6), containerd's metadata/containers.go
   * model.  runtime_options, spec and the extensions are protobuf Any
   * values kept as (type_url, bytes); labels live in object_labels with
   * kind "container". */
  "CREATE TABLE containers ("
  "  namespace TEXT NOT NULL REFERENCES namespaces (name),"
  "  id TEXT NOT NULL,"
  "  image TEXT NOT NULL,"
  "  runtime_name TEXT NOT NULL,"
  "  runtime_options_type TEXT NOT NULL,"
  "  runtime_options BLOB,"
  "  spec_type TEXT NOT NULL,"
  "  spec BLOB,"
  "  snapshotter TEXT NOT NULL,"
  "  snapshot_key TEXT NOT NULL,"
  "  sandbox_id TEXT NOT NULL,"
  "  created_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL,"
  "  PRIMARY KEY (namespace, id));"
  "CREATE TABLE container_extensions ("
  "  namespace TEXT NOT NULL,"
  "  container TEXT NOT NULL,"
  "  name TEXT NOT NULL,"
  "  type_url TEXT NOT NULL,"
  "  value BLOB,"
  "  PRIMARY KEY (namespace, container, name),"
  "  FOREIGN KEY (namespace, container) REFERENCES containers (namespace, id) ON DELETE CASCADE);",
};

int
meta_schema_version (void)
{
  return (int) ARRAY_SIZE (migrations);
}

int64_t
meta_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
meta_sql_error (meta *m, int rc, berth_error **err, const char *what)
{
  int code = BERTH_E_INTERNAL;
  if (rc == SQLITE_FULL)
    code = BERTH_E_EXHAUSTED;
  else if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
    code = BERTH_E_UNAVAILABLE;
  else if (rc == SQLITE_CONSTRAINT)
    code = BERTH_E_EXISTS;
  return berth_error_set (err, code, 0, "%s: %s: %s", m->path, what, sqlite3_errmsg (m->db));
}

int
meta_exec (meta *m, const char *sql, berth_error **err)
{
  char *msg = NULL;
  int rc = sqlite3_exec (m->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK)
    {
      int r = berth_error_set (err, rc == SQLITE_FULL ? BERTH_E_EXHAUSTED : BERTH_E_INTERNAL, 0, "%s: %s", m->path,
                               msg ? msg : sqlite3_errstr (rc));
      sqlite3_free (msg);
      return r;
    }
  return 0;
}

int
meta_version (meta *m)
{
  sqlite3_stmt *st = NULL;
  int v = -1;
  if (sqlite3_prepare_v2 (m->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW)
    v = sqlite3_column_int (st, 0);
  sqlite3_finalize (st);
  return v;
}

static int
meta_migrate (meta *m, berth_error **err)
{
  int v = meta_version (m);
  if (v < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "%s: cannot read the schema version: %s", m->path,
                            sqlite3_errmsg (m->db));
  if (v > meta_schema_version ())
    return berth_error_set (err, BERTH_E_PRECONDITION, 0,
                            "%s: schema version %d was written by a newer berthd (this one knows up to %d); "
                            "refusing to touch it",
                            m->path, v, meta_schema_version ());
  for (; v < meta_schema_version (); v++)
    {
      char set[64];
      snprintf (set, sizeof set, "PRAGMA user_version = %d;", v + 1);
      int r = meta_exec (m, "BEGIN IMMEDIATE", err);
      if (r == 0)
        r = meta_exec (m, migrations[v], err);
      if (r == 0)
        r = meta_exec (m, set, err);
      if (r == 0)
        r = meta_exec (m, "COMMIT", err);
      if (r < 0)
        {
          sqlite3_exec (m->db, "ROLLBACK", NULL, NULL, NULL);
          return berth_error_wrap (err, "migrating the schema from version %d to %d", v, v + 1);
        }
    }
  return 0;
}

void
meta_close (meta *m)
{
  if (m == NULL)
    return;
  sqlite3_close_v2 (m->db);
  pthread_mutex_destroy (&m->lock);
  free (m->path);
  free (m);
}

int
meta_open (const char *path, meta **ret, berth_error **err)
{
  meta *m = calloc (1, sizeof *m);
  if (m == NULL || (m->path = strdup (path)) == NULL)
    {
      free (m);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "%s", path);
    }
  pthread_mutexattr_t ma;
  pthread_mutexattr_init (&ma);
  pthread_mutexattr_settype (&ma, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init (&m->lock, &ma);
  pthread_mutexattr_destroy (&ma);
  int rc = sqlite3_open_v2 (path, &m->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
  int r = 0;
  if (rc != SQLITE_OK)
    r = berth_error_set (err, BERTH_E_INTERNAL, 0, "cannot open %s: %s", path,
                         m->db ? sqlite3_errmsg (m->db) : sqlite3_errstr (rc));
  if (r == 0)
    {
      sqlite3_busy_timeout (m->db, 5000);
      r = meta_exec (m, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", err);
    }
  if (r == 0)
    r = meta_migrate (m, err);
  if (r < 0)
    {
      meta_close (m);
      return r;
    }
  *ret = m;
  return 0;
}

void
meta_namespace_clear (struct meta_namespace *ns)
{
  if (ns == NULL)
    return;
  free (ns->name);
  labels_clear (&ns->labels);
  memset (ns, 0, sizeof *ns);
}

void
meta_namespaces_free (struct meta_namespace *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    meta_namespace_clear (&v[i]);
  free (v);
}

int
meta_validate_namespace (const char *name, berth_error **err)
{
  size_t len = name ? strlen (name) : 0;
  if (len == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "namespace name must not be empty");
  if (len > 76)
    return berth_error_set (err, BERTH_E_INVALID, 0, "namespace `%.76s...`: longer than 76 characters", name);
  bool need_alnum = true;
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) name[i];
      if (isascii (c) && isalnum (c))
        need_alnum = false;
      else if (!need_alnum && (c == '.' || c == '_' || c == '-'))
        need_alnum = true;
      else
        return berth_error_set (err, BERTH_E_INVALID, 0,
                                "namespace `%s`: invalid at character %zu: must match [A-Za-z0-9]+([._-][A-Za-z0-9]+)*",
                                name, i + 1);
    }
  if (need_alnum)
    return berth_error_set (err, BERTH_E_INVALID, 0, "namespace `%s`: must end with a letter or digit", name);
  return 0;
}

int
meta_validate_labels (const berth_labels *labels, berth_error **err)
{
  size_t it = 0;
  const char *k, *v;
  while (labels_next (labels, &it, &k, &v))
    {
      if (*k == '\0')
        return berth_error_set (err, BERTH_E_INVALID, 0, "label key must not be empty");
      if (strlen (k) + strlen (v) > 4096)
        return berth_error_set (err, BERTH_E_INVALID, 0, "label `%.64s`: key and value longer than 4096 bytes", k);
    }
  return 0;
}

static int
load_labels (meta *m, const char *name, berth_labels *out, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, "SELECT key, value FROM namespace_labels WHERE namespace = ? ORDER BY key", -1,
                               &st, NULL);
  if (rc != SQLITE_OK)
    return meta_sql_error (m, rc, err, "reading labels");
  sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
  int r = 0;
  while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
    r = labels_set (out, (const char *) sqlite3_column_text (st, 0), (const char *) sqlite3_column_text (st, 1));
  sqlite3_finalize (st);
  if (r < 0)
    return berth_error_set (err, r, 0, "reading labels of namespace `%s`", name);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "reading labels");
  return 0;
}

static int
row_to_namespace (meta *m, sqlite3_stmt *st, struct meta_namespace *ret, berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  ret->name = strdup ((const char *) sqlite3_column_text (st, 0));
  ret->created_at = sqlite3_column_int64 (st, 1);
  ret->updated_at = sqlite3_column_int64 (st, 2);
  if (ret->name == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "namespace");
  return load_labels (m, ret->name, &ret->labels, err);
}

int
meta_namespace_get (meta *m, const char *name, struct meta_namespace *ret, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, "SELECT name, created_at, updated_at FROM namespaces WHERE name = ?", -1, &st,
                               NULL);
  if (rc != SQLITE_OK)
    return meta_sql_error (m, rc, err, "reading namespaces");
  sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  int r;
  if (rc == SQLITE_ROW)
    r = row_to_namespace (m, st, ret, err);
  else if (rc == SQLITE_DONE)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "namespace `%s`: not found", name);
  else
    r = meta_sql_error (m, rc, err, "reading namespaces");
  sqlite3_finalize (st);
  if (r < 0 && rc == SQLITE_ROW)
    meta_namespace_clear (ret);
  return r;
}

int
meta_namespace_list (meta *m, struct meta_namespace **ret, size_t *ret_n, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, "SELECT name, created_at, updated_at FROM namespaces ORDER BY name", -1, &st,
                               NULL);
  if (rc != SQLITE_OK)
    return meta_sql_error (m, rc, err, "listing namespaces");
  struct meta_namespace *v = NULL;
  size_t n = 0;
  int r = 0;
  while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      struct meta_namespace *nv = realloc (v, (n + 1) * sizeof *v);
      if (nv == NULL)
        {
          r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listing namespaces");
          break;
        }
      v = nv;
      r = row_to_namespace (m, st, &v[n], err);
      n++;
    }
  if (r == 0 && rc != SQLITE_DONE)
    r = meta_sql_error (m, rc, err, "listing namespaces");
  sqlite3_finalize (st);
  if (r < 0)
    {
      meta_namespaces_free (v, n);
      return r;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}

static int
insert_labels (meta *m, const char *name, const berth_labels *labels, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, "INSERT OR REPLACE INTO namespace_labels (namespace, key, value) VALUES (?, ?, ?)",
                               -1, &st, NULL);
  if (rc != SQLITE_OK)
    return meta_sql_error (m, rc, err, "writing labels");
  size_t it = 0;
  const char *k, *v;
  int r = 0;
  while (r == 0 && labels_next (labels, &it, &k, &v))
    {
      if (*v == '\0')
        continue; /* an empty value means "no such label", as in containerd */
      sqlite3_reset (st);
      sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, k, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 3, v, -1, SQLITE_STATIC);
      rc = sqlite3_step (st);
      if (rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "writing labels");
    }
  sqlite3_finalize (st);
  return r;
}

/* Run one statement binding up to two text parameters; returns the number of changed rows. */
static int
run1 (meta *m, const char *sql, const char *a, const char *b, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return meta_sql_error (m, rc, err, "writing");
  int i = 1;
  if (a)
    sqlite3_bind_text (st, i++, a, -1, SQLITE_STATIC);
  if (b)
    sqlite3_bind_text (st, i++, b, -1, SQLITE_STATIC);
  rc = sqlite3_step (st);
  int changes = sqlite3_changes (m->db);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "writing");
  return changes;
}

void
meta_lock (meta *m)
{
  pthread_mutex_lock (&m->lock);
}

void
meta_unlock (meta *m)
{
  pthread_mutex_unlock (&m->lock);
}

int
meta_begin (meta *m, berth_error **err)
{
  meta_lock (m);
  int r = meta_exec (m, "BEGIN IMMEDIATE", err);
  if (r < 0)
    meta_unlock (m);
  return r;
}

int
meta_tx_end (meta *m, int r, berth_error **err)
{
  if (r < 0)
    sqlite3_exec (m->db, "ROLLBACK", NULL, NULL, NULL);
  else
    {
      r = meta_exec (m, "COMMIT", err);
      if (r < 0)
        sqlite3_exec (m->db, "ROLLBACK", NULL, NULL, NULL);
    }
  meta_unlock (m);
  return r < 0 ? r : 0;
}

int
meta_namespace_create (meta *m, const char *name, const berth_labels *labels, berth_error **err)
{
  int r = meta_validate_namespace (name, err);
  if (r == 0)
    r = meta_validate_labels (labels, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  int64_t t = meta_now_ns ();
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, "INSERT INTO namespaces (name, created_at, updated_at) VALUES (?, ?, ?)", -1,
                               &st, NULL);
  if (rc == SQLITE_OK)
    {
      sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (st, 2, t);
      sqlite3_bind_int64 (st, 3, t);
      rc = sqlite3_step (st);
    }
  sqlite3_finalize (st);
  if (rc == SQLITE_CONSTRAINT)
    r = berth_error_set (err, BERTH_E_EXISTS, 0, "namespace `%s`: already exists", name);
  else if (rc != SQLITE_DONE && rc != SQLITE_OK)
    r = meta_sql_error (m, rc, err, "creating namespace");
  if (r == 0)
    r = insert_labels (m, name, labels, err);
  return meta_tx_end (m, r, err);
}

int
meta_namespace_ensure (meta *m, const char *name, berth_error **err)
{
  int r = meta_validate_namespace (name, err);
  if (r < 0)
    return r;
  meta_lock (m);
  r = meta_ns_touch (m, name, err);
  meta_unlock (m);
  return r;
}

int
meta_ns_touch (meta *m, const char *name, berth_error **err)
{
  int64_t t = meta_now_ns ();
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, "INSERT OR IGNORE INTO namespaces (name, created_at, updated_at) VALUES (?, ?, ?)",
                               -1, &st, NULL);
  if (rc == SQLITE_OK)
    {
      sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (st, 2, t);
      sqlite3_bind_int64 (st, 3, t);
      rc = sqlite3_step (st);
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "creating namespace");
  return 0;
}

int
meta_namespace_update (meta *m, const char *name, const berth_labels *labels, const char *const *paths,
                       size_t npaths, struct meta_namespace *ret, berth_error **err)
{
  int r = meta_validate_labels (labels, err);
  if (r < 0)
    return r;
  for (size_t i = 0; i < npaths; i++)
    if (strcmp (paths[i], "labels") != 0 && strncmp (paths[i], "labels.", 7) != 0)
      return berth_error_set (err, BERTH_E_INVALID, 0, "cannot update `%s` field on namespace `%s`", paths[i], name);
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2 (m->db, "UPDATE namespaces SET updated_at = ? WHERE name = ?", -1, &st, NULL);
  r = 0;
  if (rc == SQLITE_OK)
    {
      sqlite3_bind_int64 (st, 1, meta_now_ns ());
      sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
      rc = sqlite3_step (st);
    }
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    r = meta_sql_error (m, rc, err, "updating namespace");
  else if (sqlite3_changes (m->db) == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "namespace `%s`: not found", name);

  bool replace_all = npaths == 0;
  for (size_t i = 0; r == 0 && i < npaths; i++)
    replace_all = strcmp (paths[i], "labels") == 0;
  if (r == 0 && replace_all)
    {
      r = run1 (m, "DELETE FROM namespace_labels WHERE namespace = ?", name, NULL, err);
      if (r >= 0)
        r = insert_labels (m, name, labels, err);
    }
  else
    for (size_t i = 0; r == 0 && i < npaths; i++)
      {
        const char *key = paths[i] + 7;
        const char *value = labels_get (labels, key);
        if (value && *value)
          {
            berth_labels one = { 0 };
            r = labels_set (&one, key, value);
            if (r == 0)
              r = insert_labels (m, name, &one, err);
            labels_clear (&one);
          }
        else
          r = run1 (m, "DELETE FROM namespace_labels WHERE namespace = ? AND key = ?", name, key, err);
        if (r > 0)
          r = 0;
      }
  if (r > 0)
    r = 0;
  r = meta_tx_end (m, r, err);
  if (r == 0 && ret)
    r = meta_namespace_get (m, name, ret, err);
  return r;
}

int
meta_namespace_delete (meta *m, const char *name, berth_error **err)
{
  /* A namespace that still holds something is refused, as containerd
   * does; later schema versions (containers, snapshots) add their tables
   * to this list. */
  static const struct
  {
    const char *table, *what;
  } holders[] = { { "images", "images" }, { "content", "content" }, { "leases", "leases" }, { "snapshots", "snapshots" },
                { "containers", "containers" } };
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  for (size_t i = 0; r == 0 && i < ARRAY_SIZE (holders); i++)
    {
      char sql[96];
      snprintf (sql, sizeof sql, "SELECT count(*) FROM %s WHERE namespace = ?", holders[i].table);
      sqlite3_stmt *st = NULL;
      int rc = sqlite3_prepare_v2 (m->db, sql, -1, &st, NULL);
      if (rc == SQLITE_OK)
        {
          sqlite3_bind_text (st, 1, name, -1, SQLITE_STATIC);
          rc = sqlite3_step (st);
        }
      if (rc != SQLITE_ROW)
        r = meta_sql_error (m, rc, err, "deleting namespace");
      else if (sqlite3_column_int64 (st, 0) > 0)
        r = berth_error_set (err, BERTH_E_PRECONDITION, 0,
                             "namespace `%s` must be empty, but it still has %s (%lld)", name, holders[i].what,
                             (long long) sqlite3_column_int64 (st, 0));
      sqlite3_finalize (st);
    }
  if (r == 0)
    r = run1 (m, "DELETE FROM namespaces WHERE name = ?", name, NULL, err);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "namespace `%s`: not found", name);
  if (r > 0)
    r = 0;
  return meta_tx_end (m, r, err);
}

/* ---- helpers shared with meta-content.c, meta-images.c, meta-leases.c ---- */

int
meta_strdup (const char *s, char **ret, berth_error **err)
{
  *ret = strdup (s ? s : "");
  if (*ret == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  return 0;
}

int
meta_prepare (meta *m, const char *sql, sqlite3_stmt **ret, berth_error **err)
{
  int rc = sqlite3_prepare_v2 (m->db, sql, -1, ret, NULL);
  if (rc != SQLITE_OK)
    return meta_sql_error (m, rc, err, "preparing a statement");
  return 0;
}

int
meta_run (meta *m, const char *sql, berth_error **err, ...)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m, sql, &st, err);
  if (r < 0)
    return r;
  va_list ap;
  va_start (ap, err);
  const char *a;
  for (int i = 1; (a = va_arg (ap, const char *)) != NULL; i++)
    sqlite3_bind_text (st, i, a, -1, SQLITE_TRANSIENT);
  va_end (ap);
  int rc = sqlite3_step (st);
  int changes = sqlite3_changes (m->db);
  sqlite3_finalize (st);
  if (rc == SQLITE_CONSTRAINT)
    return berth_error_set (err, BERTH_E_PRECONDITION, 0, "%s: %s", m->path, sqlite3_errstr (rc));
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "writing");
  return changes;
}

int
meta_labels_load (meta *m, const char *ns, const char *kind, const char *object, berth_labels *out, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m,
                        "SELECT key, value FROM object_labels WHERE namespace = ? AND kind = ? AND object = ? "
                        "ORDER BY key",
                        &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, kind, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, object, -1, SQLITE_STATIC);
  int rc;
  while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
    r = labels_set (out, (const char *) sqlite3_column_text (st, 0), (const char *) sqlite3_column_text (st, 1));
  sqlite3_finalize (st);
  if (r < 0)
    return berth_error_set (err, r, 0, "reading labels of %s `%s`", kind, object);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "reading labels");
  return 0;
}

int
meta_labels_put (meta *m, const char *ns, const char *kind, const char *object, const berth_labels *labels,
                 berth_error **err)
{
  if (labels == NULL || labels->n == 0)
    return 0;
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m,
                        "INSERT OR REPLACE INTO object_labels (namespace, kind, object, key, value) "
                        "VALUES (?, ?, ?, ?, ?)",
                        &st, err);
  if (r < 0)
    return r;
  size_t it = 0;
  const char *k, *v;
  while (r == 0 && labels_next (labels, &it, &k, &v))
    {
      if (*v == '\0')
        continue; /* an empty value means "no such label", as in containerd */
      sqlite3_reset (st);
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, kind, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 3, object, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 4, k, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 5, v, -1, SQLITE_STATIC);
      int rc = sqlite3_step (st);
      if (rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "writing labels");
    }
  sqlite3_finalize (st);
  return r;
}

int
meta_labels_delete_all (meta *m, const char *ns, const char *kind, const char *object, berth_error **err)
{
  int r = meta_run (m, "DELETE FROM object_labels WHERE namespace = ? AND kind = ? AND object = ?", err, ns, kind,
                    object, NULL);
  return r < 0 ? r : 0;
}

int
meta_labels_apply_path (meta *m, const char *ns, const char *kind, const char *object, const char *field,
                        const char *path, const berth_labels *labels, berth_error **err)
{
  size_t fl = strlen (field);
  if (strncmp (path, field, fl) != 0 || (path[fl] != '\0' && path[fl] != '.'))
    return 0;
  int r;
  if (path[fl] == '\0')
    {
      r = meta_labels_delete_all (m, ns, kind, object, err);
      if (r == 0)
        r = meta_labels_put (m, ns, kind, object, labels, err);
      return r < 0 ? r : 1;
    }
  const char *key = path + fl + 1;
  if (*key == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "field path `%s`: empty key", path);
  const char *value = labels ? labels_get (labels, key) : NULL;
  if (value && *value)
    {
      berth_labels one = { 0 };
      r = labels_set (&one, key, value);
      if (r < 0)
        r = berth_error_set (err, r, 0, "out of memory");
      else
        r = meta_labels_put (m, ns, kind, object, &one, err);
      labels_clear (&one);
    }
  else
    r = meta_run (m, "DELETE FROM object_labels WHERE namespace = ? AND kind = ? AND object = ? AND key = ?", err, ns,
                  kind, object, key, NULL);
  return r < 0 ? r : 1;
}

int
meta_filters (const char *const *filters, size_t n, filter_set **ret, berth_error **err)
{
  *ret = NULL;
  size_t k = 0;
  for (size_t i = 0; filters && i < n; i++)
    k += filters[i] && *filters[i];
  if (k == 0)
    return 0;
  return filters_parse (filters, n, ret, err);
}
