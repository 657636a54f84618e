/* Content records: which blobs of the content store a namespace can see,
 * with that namespace's labels (containerd's metadata/content.go model:
 * blobs are shared by digest, records and labels are per namespace). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "metadata/meta-private.h"

#define KIND "content"

void
meta_content_clear (struct meta_content *c)
{
  if (c == NULL)
    return;
  free (c->digest);
  labels_clear (&c->labels);
  memset (c, 0, sizeof *c);
}

void
meta_contents_free (struct meta_content *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    meta_content_clear (&v[i]);
  free (v);
}

static int
row_to_content (meta *m, const char *ns, sqlite3_stmt *st, struct meta_content *ret, berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  int r = meta_strdup ((const char *) sqlite3_column_text (st, 0), &ret->digest, err);
  if (r < 0)
    return r;
  ret->size = sqlite3_column_int64 (st, 1);
  ret->created_at = sqlite3_column_int64 (st, 2);
  ret->updated_at = sqlite3_column_int64 (st, 3);
  return meta_labels_load (m, ns, KIND, ret->digest, &ret->labels, err);
}

static int
content_get_locked (meta *m, const char *ns, const char *digest, struct meta_content *ret, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m,
                        "SELECT digest, size, created_at, updated_at FROM content WHERE namespace = ? AND digest = ?",
                        &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, digest, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      r = row_to_content (m, ns, st, ret, err);
      if (r < 0)
        meta_content_clear (ret);
    }
  else if (rc == SQLITE_DONE)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "content %s: not found", digest);
  else
    r = meta_sql_error (m, rc, err, "reading content");
  sqlite3_finalize (st);
  return r;
}

int
meta_content_get (meta *m, const char *ns, const char *digest, struct meta_content *ret, berth_error **err)
{
  meta_lock (m);
  int r = content_get_locked (m, ns, digest, ret, err);
  meta_unlock (m);
  return r;
}

static const char *
content_field (void *obj, const char *const *path, size_t n)
{
  struct meta_content *c = obj;
  static __thread char size[24];
  if (n == 1 && strcmp (path[0], "digest") == 0)
    return c->digest;
  if (n == 1 && strcmp (path[0], "size") == 0)
    {
      snprintf (size, sizeof size, "%lld", (long long) c->size);
      return size;
    }
  if (n == 2 && strcmp (path[0], "labels") == 0)
    return labels_get (&c->labels, path[1]);
  return NULL;
}

int
meta_content_list (meta *m, const char *ns, const char *const *filters, size_t nfilters, struct meta_content **ret,
                   size_t *ret_n, berth_error **err)
{
  filter_set *fs = NULL;
  int r = meta_filters (filters, nfilters, &fs, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  r = meta_prepare (m,
                    "SELECT digest, size, created_at, updated_at FROM content WHERE namespace = ? ORDER BY digest",
                    &st, err);
  struct meta_content *v = NULL;
  size_t n = 0;
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      int rc;
      while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          struct meta_content *nv = realloc (v, (n + 1) * sizeof *v);
          if (nv == NULL)
            {
              r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listing content");
              break;
            }
          v = nv;
          r = row_to_content (m, ns, st, &v[n], err);
          n++;
          if (r == 0 && fs && !filters_match (fs, content_field, &v[n - 1]))
            meta_content_clear (&v[--n]);
        }
      if (r == 0 && rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "listing content");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  filters_free (fs);
  if (r < 0)
    {
      meta_contents_free (v, n);
      return r;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}

int
meta_content_add (meta *m, const char *ns, const char *digest, int64_t size, const berth_labels *labels,
                  berth_error **err)
{
  int r = meta_validate_namespace (ns, err);
  if (r == 0 && labels)
    r = meta_validate_labels (labels, err);
  if (r == 0 && (digest == NULL || strchr (digest, ':') == NULL))
    r = berth_error_set (err, BERTH_E_INVALID, 0, "content digest `%s`: not a digest", digest ? digest : "");
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_ns_touch (m, ns, err);
  if (r == 0)
    {
      sqlite3_stmt *st = NULL;
      r = meta_prepare (m,
                        "INSERT OR IGNORE INTO content (namespace, digest, size, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        &st, err);
      if (r == 0)
        {
          int64_t t = meta_now_ns ();
          sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
          sqlite3_bind_text (st, 2, digest, -1, SQLITE_STATIC);
          sqlite3_bind_int64 (st, 3, size);
          sqlite3_bind_int64 (st, 4, t);
          sqlite3_bind_int64 (st, 5, t);
          int rc = sqlite3_step (st);
          if (rc != SQLITE_DONE)
            r = meta_sql_error (m, rc, err, "adding content");
        }
      sqlite3_finalize (st);
    }
  if (r == 0 && labels && labels->n > 0)
    {
      r = meta_labels_put (m, ns, KIND, digest, labels, err);
      if (r == 0)
        {
          char t[24];
          snprintf (t, sizeof t, "%lld", (long long) meta_now_ns ());
          r = meta_run (m, "UPDATE content SET updated_at = ? WHERE namespace = ? AND digest = ?", err, t, ns, digest,
                        NULL);
        }
    }
  r = meta_tx_end (m, r < 0 ? r : 0, err);
  if (r < 0)
    return berth_error_wrap (err, "content %s", digest);
  return 0;
}

int
meta_content_update (meta *m, const char *ns, const char *digest, const berth_labels *labels,
                     const char *const *paths, size_t npaths, struct meta_content *ret, berth_error **err)
{
  int r = labels ? meta_validate_labels (labels, err) : 0;
  for (size_t i = 0; r == 0 && i < npaths; i++)
    if (strcmp (paths[i], "labels") != 0 && strncmp (paths[i], "labels.", 7) != 0)
      r = berth_error_set (err, BERTH_E_INVALID, 0, "cannot update `%s` field on content %s", paths[i], digest);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  char t[24];
  snprintf (t, sizeof t, "%lld", (long long) meta_now_ns ());
  r = meta_run (m, "UPDATE content SET updated_at = ? WHERE namespace = ? AND digest = ?", err, t, ns, digest, NULL);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "content %s: not found", digest);
  if (r > 0)
    r = 0;
  if (r == 0 && npaths == 0)
    r = meta_labels_apply_path (m, ns, KIND, digest, "labels", "labels", labels, err);
  for (size_t i = 0; r >= 0 && i < npaths; i++)
    r = meta_labels_apply_path (m, ns, KIND, digest, "labels", paths[i], labels, err);
  r = meta_tx_end (m, r < 0 ? r : 0, err);
  if (r == 0 && ret)
    r = meta_content_get (m, ns, digest, ret, err);
  return r;
}

int
meta_content_delete (meta *m, const char *ns, const char *digest, berth_error **err)
{
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_run (m, "DELETE FROM content WHERE namespace = ? AND digest = ?", err, ns, digest, NULL);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "content %s: not found", digest);
  if (r > 0)
    r = meta_labels_delete_all (m, ns, KIND, digest, err);
  return meta_tx_end (m, r, err);
}

int
meta_content_referenced (meta *m, const char *digest, bool *ret, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  int r = meta_prepare (m, "SELECT 1 FROM content WHERE digest = ? LIMIT 1", &st, err);
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, digest, -1, SQLITE_STATIC);
      int rc = sqlite3_step (st);
      if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        *ret = rc == SQLITE_ROW;
      else
        r = meta_sql_error (m, rc, err, "reading content");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  return r;
}
