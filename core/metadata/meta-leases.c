/* Leases (containerd's metadata/leases.go model): a named hold on
 * resources ("content", "ingests", "snapshots/<snapshotter>") that keeps
 * them from GC until the lease is deleted or its containerd.io/gc.expire
 * time passes. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "metadata/meta-private.h"

#define KIND "lease"

void
meta_lease_clear (struct meta_lease *l)
{
  if (l == NULL)
    return;
  free (l->id);
  labels_clear (&l->labels);
  memset (l, 0, sizeof *l);
}

void
meta_leases_free (struct meta_lease *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    meta_lease_clear (&v[i]);
  free (v);
}

void
meta_lease_resources_free (struct meta_lease_resource *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    {
      free (v[i].id);
      free (v[i].type);
    }
  free (v);
}

/* RFC 3339 ("2006-01-02T15:04:05.999999999Z07:00"), as Go's time.RFC3339
 * formats containerd.io/gc.expire. */
static int64_t
parse_rfc3339 (const char *s)
{
  struct tm tm = { 0 };
  int n = 0;
  if (sscanf (s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
              &tm.tm_sec, &n)
          != 6
      || n == 0)
    return 0;
  const char *p = s + n;
  int64_t frac = 0;
  if (*p == '.')
    {
      int64_t scale = 100000000;
      for (p++; isdigit ((unsigned char) *p); p++, scale /= 10)
        frac += (*p - '0') * scale;
    }
  int off = 0;
  if (*p == 'Z' || *p == 'z')
    p++;
  else if (*p == '+' || *p == '-')
    {
      int hh, mm;
      if (sscanf (p + 1, "%2d:%2d", &hh, &mm) != 2)
        return 0;
      off = (hh * 60 + mm) * 60 * (*p == '-' ? -1 : 1);
      p += 6;
    }
  else
    return 0;
  if (*p != '\0')
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm (&tm);
  if (t == (time_t) -1)
    return 0;
  return ((int64_t) t - off) * 1000000000 + frac;
}

int64_t
meta_lease_expiry (const struct meta_lease *l)
{
  const char *v = labels_get (&l->labels, "containerd.io/gc.expire");
  return v ? parse_rfc3339 (v) : 0;
}

/* containerd does not validate lease ids beyond "must be provided". */
static int
validate_id (const char *id, berth_error **err)
{
  if (id == NULL || *id == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "lease id must be provided");
  if (strlen (id) > 255)
    return berth_error_set (err, BERTH_E_INVALID, 0, "lease id `%.32s...`: longer than 255 bytes", id);
  return 0;
}

static int
row_to_lease (meta *m, const char *ns, sqlite3_stmt *st, struct meta_lease *ret, berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  int r = meta_strdup ((const char *) sqlite3_column_text (st, 0), &ret->id, err);
  ret->created_at = sqlite3_column_int64 (st, 1);
  if (r == 0)
    r = meta_labels_load (m, ns, KIND, ret->id, &ret->labels, err);
  return r;
}

int
meta_lease_get (meta *m, const char *ns, const char *id, struct meta_lease *ret, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  int r = meta_prepare (m, "SELECT id, created_at FROM leases WHERE namespace = ? AND id = ?", &st, err);
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, id, -1, SQLITE_STATIC);
      int rc = sqlite3_step (st);
      if (rc == SQLITE_ROW)
        {
          r = row_to_lease (m, ns, st, ret, err);
          if (r < 0)
            meta_lease_clear (ret);
        }
      else if (rc == SQLITE_DONE)
        r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "lease `%s`: not found", id);
      else
        r = meta_sql_error (m, rc, err, "reading leases");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  return r;
}

static const char *
lease_field (void *obj, const char *const *path, size_t n)
{
  struct meta_lease *l = obj;
  if (n == 1 && strcmp (path[0], "id") == 0)
    return l->id;
  if (n == 2 && strcmp (path[0], "labels") == 0)
    return labels_get (&l->labels, path[1]);
  return NULL;
}

int
meta_lease_list (meta *m, const char *ns, const char *const *filters, size_t nfilters, struct meta_lease **ret,
                 size_t *ret_n, berth_error **err)
{
  filter_set *fs = NULL;
  int r = meta_filters (filters, nfilters, &fs, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  r = meta_prepare (m, "SELECT id, created_at FROM leases WHERE namespace = ? ORDER BY id", &st, err);
  struct meta_lease *v = NULL;
  size_t n = 0;
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      int rc;
      while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          struct meta_lease *nv = realloc (v, (n + 1) * sizeof *v);
          if (nv == NULL)
            {
              r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listing leases");
              break;
            }
          v = nv;
          r = row_to_lease (m, ns, st, &v[n], err);
          n++;
          if (r == 0 && fs && !filters_match (fs, lease_field, &v[n - 1]))
            meta_lease_clear (&v[--n]);
        }
      if (r == 0 && rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "listing leases");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  filters_free (fs);
  if (r < 0)
    {
      meta_leases_free (v, n);
      return r;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}

int
meta_lease_create (meta *m, const char *ns, const char *id, const berth_labels *labels, struct meta_lease *ret,
                   berth_error **err)
{
  int r = meta_validate_namespace (ns, err);
  if (r == 0)
    r = validate_id (id, err);
  if (r == 0 && labels)
    r = meta_validate_labels (labels, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_ns_touch (m, ns, err);
  if (r == 0)
    {
      sqlite3_stmt *st = NULL;
      r = meta_prepare (m, "INSERT INTO leases (namespace, id, created_at) VALUES (?, ?, ?)", &st, err);
      if (r == 0)
        {
          sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
          sqlite3_bind_text (st, 2, id, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (st, 3, meta_now_ns ());
          int rc = sqlite3_step (st);
          if (rc == SQLITE_CONSTRAINT)
            r = berth_error_set (err, BERTH_E_EXISTS, 0, "lease `%s`: already exists", id);
          else if (rc != SQLITE_DONE)
            r = meta_sql_error (m, rc, err, "creating lease");
        }
      sqlite3_finalize (st);
    }
  if (r == 0)
    r = meta_labels_put (m, ns, KIND, id, labels, err);
  r = meta_tx_end (m, r, err);
  if (r == 0 && ret)
    r = meta_lease_get (m, ns, id, ret, err);
  return r;
}

int
meta_lease_delete (meta *m, const char *ns, const char *id, berth_error **err)
{
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_run (m, "DELETE FROM leases WHERE namespace = ? AND id = ?", err, ns, id, NULL);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "lease `%s`: not found", id);
  if (r > 0)
    r = meta_labels_delete_all (m, ns, KIND, id, err);
  return meta_tx_end (m, r, err);
}

static int
validate_resource (const char *type, const char *id, berth_error **err)
{
  if (id == NULL || *id == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "resource id must not be empty");
  if (type == NULL)
    type = "";
  if (strcmp (type, "content") == 0)
    {
      if (strncmp (id, "sha256:", 7) != 0 || strlen (id) != 7 + 64 || strspn (id + 7, "0123456789abcdef") != 64)
        return berth_error_set (err, BERTH_E_INVALID, 0, "content resource `%s`: not a sha256 digest", id);
      return 0;
    }
  if (strcmp (type, "ingests") == 0)
    return 0;
  if (strncmp (type, "snapshots/", 10) == 0 && type[10] != '\0')
    return 0;
  return berth_error_set (err, BERTH_E_INVALID, 0,
                          "unsupported resource type `%s`: use content, ingests or snapshots/<snapshotter>", type);
}

static int
lease_exists (meta *m, const char *ns, const char *lease, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m, "SELECT 1 FROM leases WHERE namespace = ? AND id = ?", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, lease, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc == SQLITE_DONE)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "lease `%s`: not found", lease);
  if (rc != SQLITE_ROW)
    return meta_sql_error (m, rc, err, "reading leases");
  return 0;
}

int
meta_lease_add_resource (meta *m, const char *ns, const char *lease, const char *type, const char *id,
                         berth_error **err)
{
  int r = validate_resource (type, id, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = lease_exists (m, ns, lease, err);
  if (r == 0)
    r = meta_run (m, "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)", err,
                  ns, lease, type, id, NULL);
  return meta_tx_end (m, r, err);
}

int
meta_lease_delete_resource (meta *m, const char *ns, const char *lease, const char *type, const char *id,
                            berth_error **err)
{
  int r = validate_resource (type, id, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = lease_exists (m, ns, lease, err);
  if (r == 0)
    r = meta_run (m, "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?", err,
                  ns, lease, type, id, NULL);
  return meta_tx_end (m, r, err);
}

int
meta_lease_list_resources (meta *m, const char *ns, const char *lease, struct meta_lease_resource **ret,
                           size_t *ret_n, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  int r = lease_exists (m, ns, lease, err);
  if (r == 0)
    r = meta_prepare (m, "SELECT type, id FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id",
                      &st, err);
  struct meta_lease_resource *v = NULL;
  size_t n = 0;
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, lease, -1, SQLITE_STATIC);
      int rc;
      while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          struct meta_lease_resource *nv = realloc (v, (n + 1) * sizeof *v);
          if (nv == NULL)
            {
              r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listing lease resources");
              break;
            }
          v = nv;
          memset (&v[n], 0, sizeof v[n]);
          n++;
          r = meta_strdup ((const char *) sqlite3_column_text (st, 0), &v[n - 1].type, err);
          if (r == 0)
            r = meta_strdup ((const char *) sqlite3_column_text (st, 1), &v[n - 1].id, err);
        }
      if (r == 0 && rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "listing lease resources");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  if (r < 0)
    {
      meta_lease_resources_free (v, n);
      return r;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}
