/* libberth-snapstore: snapshot records in SQLite (see include/berth/snapstore.h).
 *
 * Schema: one row per snapshot, keyed by an AUTOINCREMENT id so that ids are
 * never reused (a directory being deleted under an old id can never be
 * confused with a new snapshot).  Parents are referenced by id, so commit
 * only renames the row's key and children stay attached.  Labels live in
 * their own table.
 *
 * One connection per store, guarded by a mutex that a transaction holds
 * from begin to commit/rollback: snapshot operations are short and SQLite
 * serialises writers anyway.  WAL with synchronous=FULL, because a record
 * lost after its directory was deleted would name a snapshot that is gone.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "snapstore-private.h"

#define SCHEMA_VERSION 1
/* containerd's labels.Validate: key and value together. */
#define LABEL_MAX 4096

struct berth_snapstore
{
  const struct berth_host *host;
  sqlite3 *db;
  pthread_mutex_t lock;
  atomic_int owner; /* tid holding the lock, 0 when free */
};

struct berth_snaptx
{
  berth_snapstore *s;
  bool writable;
};

static const char schema_sql[] =
  "CREATE TABLE IF NOT EXISTS snapshots ("
  "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
  "  key TEXT NOT NULL UNIQUE,"
  "  kind INTEGER NOT NULL,"
  "  parent_id INTEGER REFERENCES snapshots (id),"
  "  created_at INTEGER NOT NULL,"
  "  updated_at INTEGER NOT NULL,"
  "  inodes INTEGER NOT NULL DEFAULT 0,"
  "  bytes INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots (parent_id);"
  "CREATE TABLE IF NOT EXISTS labels ("
  "  snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,"
  "  key TEXT NOT NULL,"
  "  value TEXT NOT NULL,"
  "  PRIMARY KEY (snapshot_id, key)) WITHOUT ROWID;";

/* ---- errors ------------------------------------------------------------- */

static int BERTH_PRINTF (4, 5)
store_error (const berth_snapstore *s, berth_error *err, int code, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return s->host->error_set (err, code, 0, "%s", msg);
}

static int
sql_code (int rc)
{
  switch (rc & 0xff)
    {
    case SQLITE_FULL:
      return BERTH_E_EXHAUSTED;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return BERTH_E_UNAVAILABLE;
    case SQLITE_NOMEM:
      return BERTH_E_NOMEM;
    case SQLITE_CONSTRAINT:
      return BERTH_E_CONFLICT;
    default:
      return BERTH_E_INTERNAL;
    }
}

static int
sql_error (const berth_snapstore *s, berth_error *err, int rc, const char *what)
{
  return store_error (s, err, sql_code (rc), "snapshot metadata: %s: %s", what,
                      s->db ? sqlite3_errmsg (s->db) : sqlite3_errstr (rc));
}

const struct berth_host *
snapstore_host (const berth_snapstore *s)
{
  return s->host;
}

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
exec_sql (berth_snapstore *s, const char *sql, berth_error *err)
{
  int rc = sqlite3_exec (s->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : sql_error (s, err, rc, sql);
}

/* Prepare `sql`; a failure is an internal error naming the statement. */
static int
prepare (berth_snapstore *s, const char *sql, sqlite3_stmt **ret, berth_error *err)
{
  int rc = sqlite3_prepare_v2 (s->db, sql, -1, ret, NULL);
  return rc == SQLITE_OK ? 0 : sql_error (s, err, rc, "preparing a statement");
}

static void
stmt_finalizep (sqlite3_stmt **st)
{
  sqlite3_finalize (*st);
}
#define _cleanup_stmt_ __attribute__ ((cleanup (stmt_finalizep)))

/* ---- open / close -------------------------------------------------------- */

BERTH_PUBLIC int
berth_snapstore_open (const struct berth_host *host, const char *path, berth_snapstore **ret_store, berth_error *err)
{
  *ret_store = NULL;
  berth_snapstore *s = calloc (1, sizeof *s);
  if (s == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  s->host = host;
  pthread_mutex_init (&s->lock, NULL);
  int rc = sqlite3_open_v2 (path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK)
    {
      int r = store_error (s, err, BERTH_E_INTERNAL, "opening snapshot metadata %s: %s", path,
                           s->db ? sqlite3_errmsg (s->db) : sqlite3_errstr (rc));
      berth_snapstore_close (s);
      return r;
    }
  sqlite3_busy_timeout (s->db, 10000);
  int r = exec_sql (s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", err);
  int version = 0;
  if (r == 0)
    {
      _cleanup_stmt_ sqlite3_stmt *st = NULL;
      r = prepare (s, "PRAGMA user_version", &st, err);
      if (r == 0 && sqlite3_step (st) == SQLITE_ROW)
        version = sqlite3_column_int (st, 0);
    }
  if (r == 0 && version > SCHEMA_VERSION)
    r = store_error (s, err, BERTH_E_INTERNAL,
                     "snapshot metadata %s has schema version %d; this libberth-snapstore knows up to %d", path,
                     version, SCHEMA_VERSION);
  if (r == 0 && version < SCHEMA_VERSION)
    r = exec_sql (s, "BEGIN IMMEDIATE", err);
  if (r == 0 && version < SCHEMA_VERSION)
    {
      char sql[sizeof schema_sql + 64];
      snprintf (sql, sizeof sql, "%s PRAGMA user_version = %d; COMMIT;", schema_sql, SCHEMA_VERSION);
      r = exec_sql (s, sql, err);
      if (r < 0)
        sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
    }
  if (r < 0)
    {
      host->error_wrap (err, "snapshot metadata %s", path);
      berth_snapstore_close (s);
      return r;
    }
  *ret_store = s;
  return 0;
}

BERTH_PUBLIC void
berth_snapstore_close (berth_snapstore *s)
{
  if (s == NULL)
    return;
  if (s->db)
    sqlite3_close_v2 (s->db);
  pthread_mutex_destroy (&s->lock);
  free (s);
}

/* ---- transactions -------------------------------------------------------- */

static int
lock_store (berth_snapstore *s, berth_error *err)
{
  int self = (int) gettid ();
  if (atomic_load (&s->owner) == self)
    return store_error (s, err, BERTH_E_INTERNAL,
                        "snapshot metadata: a transaction is already open in this thread");
  pthread_mutex_lock (&s->lock);
  atomic_store (&s->owner, self);
  return 0;
}

static void
unlock_store (berth_snapstore *s)
{
  atomic_store (&s->owner, 0);
  pthread_mutex_unlock (&s->lock);
}

BERTH_PUBLIC int
berth_snapstore_begin (berth_snapstore *s, int writable, berth_snaptx **ret_tx, berth_error *err)
{
  *ret_tx = NULL;
  berth_snaptx *tx = calloc (1, sizeof *tx);
  if (tx == NULL)
    return store_error (s, err, BERTH_E_NOMEM, "out of memory");
  int r = lock_store (s, err);
  if (r < 0)
    {
      free (tx);
      return r;
    }
  r = exec_sql (s, writable ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED", err);
  if (r < 0)
    {
      unlock_store (s);
      free (tx);
      return r;
    }
  tx->s = s;
  tx->writable = writable != 0;
  *ret_tx = tx;
  return 0;
}

BERTH_PUBLIC int
berth_snapstore_commit (berth_snaptx *tx, berth_error *err)
{
  berth_snapstore *s = tx->s;
  int rc = sqlite3_exec (s->db, "COMMIT", NULL, NULL, NULL);
  int r = 0;
  if (rc != SQLITE_OK)
    {
      r = sql_error (s, err, rc, "committing");
      sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
    }
  unlock_store (s);
  free (tx);
  return r;
}

BERTH_PUBLIC void
berth_snapstore_rollback (berth_snaptx *tx)
{
  if (tx == NULL)
    return;
  sqlite3_exec (tx->s->db, "ROLLBACK", NULL, NULL, NULL);
  unlock_store (tx->s);
  free (tx);
}

static int
need_writable (berth_snaptx *tx, const char *what, berth_error *err)
{
  if (!tx->writable)
    return store_error (tx->s, err, BERTH_E_INTERNAL, "snapshot metadata: %s needs a writable transaction", what);
  return 0;
}

/* ---- rows ---------------------------------------------------------------- */

struct row
{
  int64_t id;
  uint32_t kind;
  int64_t parent_id; /* 0: none */
  char *parent_key;
  int64_t created_at, updated_at;
  int64_t inodes, bytes;
};

static void
row_clear (struct row *r)
{
  free (r->parent_key);
  r->parent_key = NULL;
}

#define ROW_COLUMNS                                                                                \
  "s.id, s.kind, s.parent_id, p.key, s.created_at, s.updated_at, s.inodes, s.bytes "              \
  "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id "

static int
row_read (berth_snapstore *s, sqlite3_stmt *st, int first, struct row *ret, berth_error *err)
{
  memset (ret, 0, sizeof *ret);
  ret->id = sqlite3_column_int64 (st, first);
  ret->kind = (uint32_t) sqlite3_column_int (st, first + 1);
  ret->parent_id = sqlite3_column_int64 (st, first + 2);
  const unsigned char *pk = sqlite3_column_text (st, first + 3);
  if (pk && (ret->parent_key = strdup ((const char *) pk)) == NULL)
    return store_error (s, err, BERTH_E_NOMEM, "out of memory");
  ret->created_at = sqlite3_column_int64 (st, first + 4);
  ret->updated_at = sqlite3_column_int64 (st, first + 5);
  ret->inodes = sqlite3_column_int64 (st, first + 6);
  ret->bytes = sqlite3_column_int64 (st, first + 7);
  return 0;
}

/* The row of key; NOTFOUND names it. */
static int
row_get (berth_snapstore *s, const char *key, struct row *ret, berth_error *err)
{
  if (key == NULL || *key == '\0')
    return store_error (s, err, BERTH_E_INVALID, "snapshot key must not be empty");
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s, "SELECT " ROW_COLUMNS "WHERE s.key = ?1", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_DONE)
    return store_error (s, err, BERTH_E_NOTFOUND, "snapshot `%s` does not exist", key);
  if (rc != SQLITE_ROW)
    return sql_error (s, err, rc, "reading a snapshot");
  return row_read (s, st, 0, ret, err);
}

static int
key_exists (berth_snapstore *s, const char *key, bool *ret, berth_error *err)
{
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s, "SELECT 1 FROM snapshots WHERE key = ?1", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return sql_error (s, err, rc, "looking up a snapshot");
  *ret = rc == SQLITE_ROW;
  return 0;
}

static int
labels_validate (berth_snapstore *s, const berth_labels *labels, berth_error *err)
{
  size_t it = 0;
  const char *k, *v;
  while (labels && s->host->labels_next (labels, &it, &k, &v) == 1)
    {
      size_t n = strlen (k) + (v ? strlen (v) : 0);
      if (n > LABEL_MAX)
        return store_error (s, err, BERTH_E_INVALID,
                            "label key and value greater than maximum size (%d bytes), key: %.200s", LABEL_MAX, k);
    }
  return 0;
}

static int
label_put (berth_snapstore *s, int64_t id, const char *key, const char *value, berth_error *err)
{
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s,
                   value ? "INSERT OR REPLACE INTO labels (snapshot_id, key, value) VALUES (?1, ?2, ?3)"
                         : "DELETE FROM labels WHERE snapshot_id = ?1 AND key = ?2",
                   &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64 (st, 1, id);
  sqlite3_bind_text (st, 2, key, -1, SQLITE_STATIC);
  if (value)
    sqlite3_bind_text (st, 3, value, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  return rc == SQLITE_DONE ? 0 : sql_error (s, err, rc, "writing a label");
}

static int
labels_clear_id (berth_snapstore *s, int64_t id, berth_error *err)
{
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s, "DELETE FROM labels WHERE snapshot_id = ?1", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64 (st, 1, id);
  int rc = sqlite3_step (st);
  return rc == SQLITE_DONE ? 0 : sql_error (s, err, rc, "clearing labels");
}

/* Replace the labels of id by `labels` (NULL: none). */
static int
labels_replace (berth_snapstore *s, int64_t id, const berth_labels *labels, berth_error *err)
{
  int r = labels_clear_id (s, id, err);
  size_t it = 0;
  const char *k, *v;
  while (r == 0 && labels && s->host->labels_next (labels, &it, &k, &v) == 1)
    r = label_put (s, id, k, v ? v : "", err);
  return r;
}

/* Copy the labels of id into a host map. */
static int
labels_load (berth_snapstore *s, int64_t id, berth_labels *out, berth_error *err)
{
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s, "SELECT key, value FROM labels WHERE snapshot_id = ?1 ORDER BY key", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64 (st, 1, id);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    if (s->host->labels_set (out, (const char *) sqlite3_column_text (st, 0),
                             (const char *) sqlite3_column_text (st, 1))
        < 0)
      return store_error (s, err, BERTH_E_NOMEM, "out of memory copying labels");
  return rc == SQLITE_DONE ? 0 : sql_error (s, err, rc, "reading labels");
}

static void
fill_info (berth_snapstore *s, const char *key, const struct row *row, struct berth_snapshot_info *info)
{
  (void) s;
  if (BERTH_HAS (struct berth_snapshot_info, info, kind))
    info->kind = row->kind;
  if (BERTH_HAS (struct berth_snapshot_info, info, name))
    snprintf (info->name, sizeof info->name, "%s", key);
  if (BERTH_HAS (struct berth_snapshot_info, info, parent))
    snprintf (info->parent, sizeof info->parent, "%s", row->parent_key ? row->parent_key : "");
  if (BERTH_HAS (struct berth_snapshot_info, info, created_at))
    info->created_at = row->created_at;
  if (BERTH_HAS (struct berth_snapshot_info, info, updated_at))
    info->updated_at = row->updated_at;
}

static int
info_of (berth_snapstore *s, const char *key, const struct row *row, struct berth_snapshot_info *info,
         berth_error *err)
{
  if (info == NULL)
    return 0;
  fill_info (s, key, row, info);
  if (BERTH_HAS (struct berth_snapshot_info, info, labels) && info->labels)
    return labels_load (s, row->id, info->labels, err);
  return 0;
}

/* Ids of the chain above parent_id, nearest first. */
static int
parent_chain (berth_snapstore *s, int64_t parent_id, struct berth_snapstore_snapshot *snap, berth_error *err)
{
  size_t cap = 4;
  snap->parent_ids = calloc (cap + 1, sizeof *snap->parent_ids);
  if (snap->parent_ids == NULL)
    return store_error (s, err, BERTH_E_NOMEM, "out of memory");
  if (parent_id == 0)
    return 0;
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s,
                   "WITH RECURSIVE chain (id, parent_id, depth) AS ("
                   "  SELECT id, parent_id, 0 FROM snapshots WHERE id = ?1"
                   "  UNION ALL SELECT s.id, s.parent_id, c.depth + 1"
                   "  FROM snapshots s JOIN chain c ON s.id = c.parent_id)"
                   " SELECT id FROM chain ORDER BY depth",
                   &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64 (st, 1, parent_id);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      if (snap->n_parents == cap)
        {
          char **n = realloc (snap->parent_ids, (cap * 2 + 1) * sizeof *n);
          if (n == NULL)
            return store_error (s, err, BERTH_E_NOMEM, "out of memory");
          snap->parent_ids = n;
          cap *= 2;
        }
      char id[BERTH_SNAPSTORE_ID_MAX];
      snprintf (id, sizeof id, "%" PRId64, (int64_t) sqlite3_column_int64 (st, 0));
      if ((snap->parent_ids[snap->n_parents] = strdup (id)) == NULL)
        return store_error (s, err, BERTH_E_NOMEM, "out of memory");
      snap->parent_ids[++snap->n_parents] = NULL;
    }
  return rc == SQLITE_DONE ? 0 : sql_error (s, err, rc, "reading the parent chain");
}

static int
snapshot_of (berth_snapstore *s, const struct row *row, struct berth_snapstore_snapshot **ret, berth_error *err)
{
  struct berth_snapstore_snapshot *snap = calloc (1, sizeof *snap);
  if (snap == NULL)
    return store_error (s, err, BERTH_E_NOMEM, "out of memory");
  snprintf (snap->id, sizeof snap->id, "%" PRId64, row->id);
  snap->kind = row->kind;
  snap->inodes = row->inodes;
  snap->bytes = row->bytes;
  int r = parent_chain (s, row->parent_id, snap, err);
  if (r < 0)
    {
      berth_snapstore_snapshot_free (snap);
      return r;
    }
  *ret = snap;
  return 0;
}

/* ---- records ------------------------------------------------------------- */

BERTH_PUBLIC int
berth_snapstore_create (berth_snaptx *tx, uint32_t kind, const char *key, const char *parent,
                        const berth_labels *labels, struct berth_snapstore_snapshot **ret_snap, berth_error *err)
{
  berth_snapstore *s = tx->s;
  if (ret_snap)
    *ret_snap = NULL;
  int r = need_writable (tx, "create", err);
  if (r < 0)
    return r;
  if (kind != BERTH_SNAPSHOT_ACTIVE && kind != BERTH_SNAPSHOT_VIEW)
    return store_error (s, err, BERTH_E_INVALID, "snapshot `%s`: kind %s cannot be created", key ? key : "",
                        berth_snapstore_kind_name (kind));
  if (key == NULL || *key == '\0')
    return store_error (s, err, BERTH_E_INVALID, "snapshot key must not be empty");
  if ((r = labels_validate (s, labels, err)) < 0)
    return r;
  bool exists = false;
  if ((r = key_exists (s, key, &exists, err)) < 0)
    return r;
  if (exists)
    return store_error (s, err, BERTH_E_EXISTS, "snapshot `%s` already exists", key);

  struct row prow = { 0 };
  if (parent && *parent)
    {
      r = row_get (s, parent, &prow, err);
      if (r == BERTH_E_NOTFOUND)
        return store_error (s, err, BERTH_E_NOTFOUND, "parent snapshot `%s` of `%s` does not exist", parent, key);
      if (r < 0)
        return r;
      row_clear (&prow);
      if (prow.kind != BERTH_SNAPSHOT_COMMITTED)
        return store_error (s, err, BERTH_E_INVALID, "parent `%s` of `%s` is not a committed snapshot", parent, key);
    }

  int64_t now = now_ns ();
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  if ((r = prepare (s,
                    "INSERT INTO snapshots (key, kind, parent_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                    &st, err))
      < 0)
    return r;
  sqlite3_bind_text (st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int (st, 2, (int) kind);
  if (prow.id)
    sqlite3_bind_int64 (st, 3, prow.id);
  else
    sqlite3_bind_null (st, 3);
  sqlite3_bind_int64 (st, 4, now);
  int rc = sqlite3_step (st);
  if (rc != SQLITE_DONE)
    return sql_error (s, err, rc, "inserting a snapshot");
  struct row row = { .id = sqlite3_last_insert_rowid (s->db), .kind = kind, .parent_id = prow.id };
  if ((r = labels_replace (s, row.id, labels, err)) < 0)
    return r;
  if (ret_snap)
    return snapshot_of (s, &row, ret_snap, err);
  return 0;
}

BERTH_PUBLIC int
berth_snapstore_get (berth_snaptx *tx, const char *key, struct berth_snapstore_snapshot **ret_snap, berth_error *err)
{
  *ret_snap = NULL;
  struct row row;
  int r = row_get (tx->s, key, &row, err);
  if (r < 0)
    return r;
  r = snapshot_of (tx->s, &row, ret_snap, err);
  row_clear (&row);
  return r;
}

BERTH_PUBLIC int
berth_snapstore_get_info (berth_snaptx *tx, const char *key, struct berth_snapshot_info *ret_info,
                          char ret_id[BERTH_SNAPSTORE_ID_MAX], berth_error *err)
{
  struct row row;
  int r = row_get (tx->s, key, &row, err);
  if (r < 0)
    return r;
  if (ret_id)
    snprintf (ret_id, BERTH_SNAPSTORE_ID_MAX, "%" PRId64, row.id);
  r = info_of (tx->s, key, &row, ret_info, err);
  row_clear (&row);
  return r;
}

BERTH_PUBLIC int
berth_snapstore_update_info (berth_snaptx *tx, const struct berth_snapshot_info *info, const char *const *fieldpaths,
                             struct berth_snapshot_info *ret_info, berth_error *err)
{
  berth_snapstore *s = tx->s;
  int r = need_writable (tx, "update", err);
  if (r < 0)
    return r;
  if (info == NULL || !BERTH_HAS (struct berth_snapshot_info, info, name))
    return store_error (s, err, BERTH_E_INVALID, "snapshot update without a name");
  const char *key = info->name;
  const berth_labels *in = BERTH_HAS (struct berth_snapshot_info, info, labels) ? info->labels : NULL;
  bool replace_all = fieldpaths == NULL || fieldpaths[0] == NULL;
  for (const char *const *f = fieldpaths; f && *f; f++)
    {
      if (strcmp (*f, "labels") == 0)
        replace_all = true;
      else if (strncmp (*f, "labels.", 7) != 0 || (*f)[7] == '\0')
        return store_error (s, err, BERTH_E_INVALID, "cannot update `%s` field on snapshot `%s`", *f, key);
    }
  if ((r = labels_validate (s, in, err)) < 0)
    return r;
  struct row row;
  if ((r = row_get (s, key, &row, err)) < 0)
    return r;
  if (replace_all)
    r = labels_replace (s, row.id, in, err);
  for (const char *const *f = fieldpaths; r == 0 && !replace_all && f && *f; f++)
    {
      const char *lk = *f + 7;
      const char *v = in ? s->host->labels_get (in, lk) : NULL;
      r = label_put (s, row.id, lk, v, err);
    }
  if (r == 0)
    {
      _cleanup_stmt_ sqlite3_stmt *st = NULL;
      row.updated_at = now_ns ();
      r = prepare (s, "UPDATE snapshots SET updated_at = ?2 WHERE id = ?1", &st, err);
      if (r == 0)
        {
          sqlite3_bind_int64 (st, 1, row.id);
          sqlite3_bind_int64 (st, 2, row.updated_at);
          int rc = sqlite3_step (st);
          if (rc != SQLITE_DONE)
            r = sql_error (s, err, rc, "updating a snapshot");
        }
    }
  if (r == 0)
    r = info_of (s, key, &row, ret_info, err);
  row_clear (&row);
  return r;
}

BERTH_PUBLIC int
berth_snapstore_commit_active (berth_snaptx *tx, const char *key, const char *name, const berth_labels *labels,
                               const struct berth_snapshot_usage *usage, char ret_id[BERTH_SNAPSTORE_ID_MAX],
                               berth_error *err)
{
  berth_snapstore *s = tx->s;
  int r = need_writable (tx, "commit", err);
  if (r < 0)
    return r;
  if (name == NULL || *name == '\0')
    return store_error (s, err, BERTH_E_INVALID, "commit of `%s`: the name must not be empty", key ? key : "");
  if ((r = labels_validate (s, labels, err)) < 0)
    return r;
  struct row row;
  if ((r = row_get (s, key, &row, err)) < 0)
    return r;
  row_clear (&row);
  if (row.kind != BERTH_SNAPSHOT_ACTIVE)
    return store_error (s, err, BERTH_E_PRECONDITION, "snapshot `%s` is a %s snapshot, not active", key,
                        berth_snapstore_kind_name (row.kind));
  bool exists = false;
  if ((r = key_exists (s, name, &exists, err)) < 0)
    return r;
  if (exists)
    return store_error (s, err, BERTH_E_EXISTS, "snapshot `%s` already exists", name);

  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  if ((r = prepare (s,
                    "UPDATE snapshots SET key = ?2, kind = ?3, created_at = ?4, updated_at = ?4, inodes = ?5, bytes = ?6"
                    " WHERE id = ?1",
                    &st, err))
      < 0)
    return r;
  sqlite3_bind_int64 (st, 1, row.id);
  sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
  sqlite3_bind_int (st, 3, BERTH_SNAPSHOT_COMMITTED);
  sqlite3_bind_int64 (st, 4, now_ns ());
  sqlite3_bind_int64 (st, 5, usage ? usage->inodes : 0);
  sqlite3_bind_int64 (st, 6, usage ? usage->bytes : 0);
  int rc = sqlite3_step (st);
  if (rc != SQLITE_DONE)
    return sql_error (s, err, rc, "committing a snapshot");
  if ((r = labels_replace (s, row.id, labels, err)) < 0)
    return r;
  if (ret_id)
    snprintf (ret_id, BERTH_SNAPSTORE_ID_MAX, "%" PRId64, row.id);
  return 0;
}

BERTH_PUBLIC int
berth_snapstore_remove (berth_snaptx *tx, const char *key, char ret_id[BERTH_SNAPSTORE_ID_MAX], uint32_t *ret_kind,
                        berth_error *err)
{
  berth_snapstore *s = tx->s;
  int r = need_writable (tx, "remove", err);
  if (r < 0)
    return r;
  struct row row;
  if ((r = row_get (s, key, &row, err)) < 0)
    return r;
  row_clear (&row);
  {
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if ((r = prepare (s, "SELECT key FROM snapshots WHERE parent_id = ?1 LIMIT 1", &st, err)) < 0)
      return r;
    sqlite3_bind_int64 (st, 1, row.id);
    int rc = sqlite3_step (st);
    if (rc == SQLITE_ROW)
      return store_error (s, err, BERTH_E_PRECONDITION, "cannot remove snapshot with child: `%s` is the parent of `%s`",
                          key, (const char *) sqlite3_column_text (st, 0));
    if (rc != SQLITE_DONE)
      return sql_error (s, err, rc, "looking for children");
  }
  if ((r = labels_clear_id (s, row.id, err)) < 0)
    return r;
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  if ((r = prepare (s, "DELETE FROM snapshots WHERE id = ?1", &st, err)) < 0)
    return r;
  sqlite3_bind_int64 (st, 1, row.id);
  int rc = sqlite3_step (st);
  if (rc != SQLITE_DONE)
    return sql_error (s, err, rc, "removing a snapshot");
  if (ret_id)
    snprintf (ret_id, BERTH_SNAPSTORE_ID_MAX, "%" PRId64, row.id);
  if (ret_kind)
    *ret_kind = row.kind;
  return 0;
}

BERTH_PUBLIC int
berth_snapstore_ids (berth_snaptx *tx, char ***ret_ids, berth_error *err)
{
  berth_snapstore *s = tx->s;
  *ret_ids = NULL;
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s, "SELECT id FROM snapshots ORDER BY id", &st, err);
  if (r < 0)
    return r;
  size_t n = 0, cap = 16;
  char **ids = calloc (cap + 1, sizeof *ids);
  if (ids == NULL)
    return store_error (s, err, BERTH_E_NOMEM, "out of memory");
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      if (n == cap)
        {
          char **nids = realloc (ids, (cap * 2 + 1) * sizeof *nids);
          if (nids == NULL)
            {
              berth_snapstore_strv_free (ids);
              return store_error (s, err, BERTH_E_NOMEM, "out of memory");
            }
          ids = nids;
          cap *= 2;
        }
      char id[BERTH_SNAPSTORE_ID_MAX];
      snprintf (id, sizeof id, "%" PRId64, (int64_t) sqlite3_column_int64 (st, 0));
      if ((ids[n] = strdup (id)) == NULL)
        {
          berth_snapstore_strv_free (ids);
          return store_error (s, err, BERTH_E_NOMEM, "out of memory");
        }
      ids[++n] = NULL;
    }
  if (rc != SQLITE_DONE)
    {
      berth_snapstore_strv_free (ids);
      return sql_error (s, err, rc, "listing snapshot ids");
    }
  *ret_ids = ids;
  return 0;
}

/* ---- walk ---------------------------------------------------------------- */

struct walk_label
{
  char *key, *value;
};

struct walk_item
{
  char *key;
  struct row row;
  struct walk_label *labels;
  size_t nlabels;
};

static void
walk_item_clear (struct walk_item *it)
{
  free (it->key);
  row_clear (&it->row);
  for (size_t i = 0; i < it->nlabels; i++)
    {
      free (it->labels[i].key);
      free (it->labels[i].value);
    }
  free (it->labels);
}

static const char *
walk_field (void *obj, const char *const *path, size_t npath)
{
  struct walk_item *it = obj;
  if (npath == 1 && strcmp (path[0], "kind") == 0)
    return berth_snapstore_kind_name (it->row.kind);
  if (npath == 1 && strcmp (path[0], "name") == 0)
    return it->key;
  if (npath == 1 && strcmp (path[0], "parent") == 0)
    return it->row.parent_key ? it->row.parent_key : "";
  if (npath >= 2 && strcmp (path[0], "labels") == 0)
    {
      /* labels.a.b is the label "a.b", as containerd joins the rest. */
      char key[LABEL_MAX + 1];
      size_t n = 0;
      for (size_t i = 1; i < npath; i++)
        n += (size_t) snprintf (key + (n < sizeof key ? n : sizeof key - 1), n < sizeof key ? sizeof key - n : 1,
                                "%s%s", i > 1 ? "." : "", path[i]);
      if (n >= sizeof key)
        return NULL;
      for (size_t i = 0; i < it->nlabels; i++)
        if (strcmp (it->labels[i].key, key) == 0)
          return it->labels[i].value;
    }
  return NULL;
}

static int
walk_load_labels (berth_snapstore *s, struct walk_item *it, berth_error *err)
{
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  int r = prepare (s, "SELECT key, value FROM labels WHERE snapshot_id = ?1", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_int64 (st, 1, it->row.id);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      struct walk_label *nl = realloc (it->labels, (it->nlabels + 1) * sizeof *nl);
      if (nl == NULL)
        return store_error (s, err, BERTH_E_NOMEM, "out of memory");
      it->labels = nl;
      struct walk_label *l = &it->labels[it->nlabels];
      l->key = strdup ((const char *) sqlite3_column_text (st, 0));
      l->value = strdup ((const char *) sqlite3_column_text (st, 1));
      it->nlabels++;
      if (l->key == NULL || l->value == NULL)
        return store_error (s, err, BERTH_E_NOMEM, "out of memory");
    }
  return rc == SQLITE_DONE ? 0 : sql_error (s, err, rc, "reading labels");
}

/* Read every matching record under a read transaction into items. */
static int
walk_collect (berth_snapstore *s, const snapstore_filter *f, struct walk_item **ret_items, size_t *ret_n,
              berth_error *err)
{
  berth_snaptx *tx = NULL;
  int r = berth_snapstore_begin (s, 0, &tx, err);
  if (r < 0)
    return r;
  bool want_labels = snapstore_filter_uses (f, "labels");
  struct walk_item *items = NULL;
  size_t n = 0;
  _cleanup_stmt_ sqlite3_stmt *st = NULL;
  r = prepare (s, "SELECT s.key, " ROW_COLUMNS "ORDER BY s.key", &st, err);
  int rc = SQLITE_DONE;
  while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      struct walk_item it = { 0 };
      if ((it.key = strdup ((const char *) sqlite3_column_text (st, 0))) == NULL)
        r = store_error (s, err, BERTH_E_NOMEM, "out of memory");
      if (r == 0)
        r = row_read (s, st, 1, &it.row, err);
      if (r == 0 && want_labels)
        r = walk_load_labels (s, &it, err);
      if (r == 0 && snapstore_filter_match (f, walk_field, &it))
        {
          struct walk_item *ni = realloc (items, (n + 1) * sizeof *ni);
          if (ni == NULL)
            r = store_error (s, err, BERTH_E_NOMEM, "out of memory");
          else
            {
              items = ni;
              items[n++] = it;
              continue;
            }
        }
      walk_item_clear (&it);
    }
  if (r == 0 && rc != SQLITE_DONE)
    r = sql_error (s, err, rc, "listing snapshots");
  sqlite3_finalize (st);
  st = NULL;
  berth_snapstore_rollback (tx);
  if (r < 0)
    {
      for (size_t i = 0; i < n; i++)
        walk_item_clear (&items[i]);
      free (items);
      return r;
    }
  *ret_items = items;
  *ret_n = n;
  return 0;
}

BERTH_PUBLIC int
berth_snapstore_walk (berth_snapstore *s, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn,
                      void *data, berth_error *err)
{
  snapstore_filter *f = NULL;
  int r = snapstore_filter_parse (s->host, filters, &f, err);
  if (r < 0)
    return r;
  struct walk_item *items = NULL;
  size_t n = 0;
  r = walk_collect (s, f, &items, &n, err);
  snapstore_filter_free (f);
  if (r < 0)
    return r;
  size_t i = 0;
  for (; i < n; i++)
    {
      if (ctx && s->host->ctx_cancelled (ctx))
        {
          r = store_error (s, err, BERTH_E_CANCELLED, "walk cancelled");
          break;
        }
      struct berth_snapshot_info info = { .size = sizeof info };
      fill_info (s, items[i].key, &items[i].row, &info);
      int rc = fn (&info, data);
      if (rc != 0)
        {
          r = rc < 0 ? rc : 0;
          break;
        }
    }
  for (i = 0; i < n; i++)
    walk_item_clear (&items[i]);
  free (items);
  return r;
}

/* ---- small things -------------------------------------------------------- */

BERTH_PUBLIC void
berth_snapstore_snapshot_free (struct berth_snapstore_snapshot *snap)
{
  if (snap == NULL)
    return;
  berth_snapstore_strv_free (snap->parent_ids);
  free (snap);
}

BERTH_PUBLIC void
berth_snapstore_strv_free (char **strv)
{
  for (char **p = strv; p && *p; p++)
    free (*p);
  free (strv);
}

BERTH_PUBLIC const char *
berth_snapstore_kind_name (uint32_t kind)
{
  switch (kind)
    {
    case BERTH_SNAPSHOT_ACTIVE:
      return "active";
    case BERTH_SNAPSHOT_VIEW:
      return "view";
    case BERTH_SNAPSHOT_COMMITTED:
      return "committed";
    default:
      return "unknown";
    }
}
