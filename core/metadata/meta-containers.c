/* Container records (containerd's metadata/containers.go model): id →
 * image, runtime (name + options Any), spec Any, snapshotter + snapshot
 * key, extensions (name → Any), labels, created/updated, per namespace.
 * Labels are object_labels of kind "container"; extensions live in
 * container_extensions. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <berth/failpoint.h>

#include "cleanup.h"
#include "metadata/meta-private.h"

#define KIND "container"

void
meta_any_clear (struct meta_any *a)
{
  if (a == NULL)
    return;
  free (a->type_url);
  free (a->value);
  memset (a, 0, sizeof *a);
}

void
meta_container_clear (struct meta_container *c)
{
  if (c == NULL)
    return;
  free (c->id);
  labels_clear (&c->labels);
  free (c->image);
  free (c->runtime_name);
  meta_any_clear (&c->runtime_options);
  meta_any_clear (&c->spec);
  free (c->snapshotter);
  free (c->snapshot_key);
  free (c->sandbox_id);
  for (size_t i = 0; i < c->n_extensions; i++)
    {
      free (c->extensions[i].name);
      meta_any_clear (&c->extensions[i].value);
    }
  free (c->extensions);
  memset (c, 0, sizeof *c);
}

void
meta_containers_free (struct meta_container *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    meta_container_clear (&v[i]);
  free (v);
}

static int
blob_dup (const void *data, size_t len, uint8_t **ret, berth_error **err)
{
  *ret = NULL;
  if (data == NULL || len == 0)
    return 0;
  *ret = malloc (len);
  if (*ret == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  memcpy (*ret, data, len);
  return 0;
}

static int
any_from_columns (sqlite3_stmt *st, int type_col, int value_col, struct meta_any *ret, berth_error **err)
{
  int r = meta_strdup ((const char *)sqlite3_column_text (st, type_col), &ret->type_url, err);
  if (r == 0)
    {
      ret->len = (size_t)sqlite3_column_bytes (st, value_col);
      r = blob_dup (sqlite3_column_blob (st, value_col), ret->len, &ret->value, err);
      if (ret->value == NULL)
        ret->len = 0;
    }
  return r;
}

#define CONTAINER_COLUMNS                                                                                              \
  "id, image, runtime_name, runtime_options_type, runtime_options, spec_type, spec, snapshotter, snapshot_key, "       \
  "sandbox_id, created_at, updated_at"

static int
load_extensions (meta *m, const char *ns, struct meta_container *c, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m,
                        "SELECT name, type_url, value FROM container_extensions WHERE namespace = ? AND container = ? "
                        "ORDER BY name",
                        &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, c->id, -1, SQLITE_STATIC);
  int rc;
  while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      struct meta_extension *v = realloc (c->extensions, (c->n_extensions + 1) * sizeof *v);
      if (v == NULL)
        {
          r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
          break;
        }
      c->extensions = v;
      struct meta_extension *e = &v[c->n_extensions++];
      memset (e, 0, sizeof *e);
      r = meta_strdup ((const char *)sqlite3_column_text (st, 0), &e->name, err);
      if (r == 0)
        r = any_from_columns (st, 1, 2, &e->value, err);
    }
  if (r == 0 && rc != SQLITE_DONE)
    r = meta_sql_error (m, rc, err, "reading container extensions");
  sqlite3_finalize (st);
  return r;
}

static int
row_to_container (meta *m, const char *ns, sqlite3_stmt *st, struct meta_container *ret, berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  int r = meta_strdup ((const char *)sqlite3_column_text (st, 0), &ret->id, err);
  if (r == 0)
    r = meta_strdup ((const char *)sqlite3_column_text (st, 1), &ret->image, err);
  if (r == 0)
    r = meta_strdup ((const char *)sqlite3_column_text (st, 2), &ret->runtime_name, err);
  if (r == 0)
    r = any_from_columns (st, 3, 4, &ret->runtime_options, err);
  if (r == 0)
    r = any_from_columns (st, 5, 6, &ret->spec, err);
  if (r == 0)
    r = meta_strdup ((const char *)sqlite3_column_text (st, 7), &ret->snapshotter, err);
  if (r == 0)
    r = meta_strdup ((const char *)sqlite3_column_text (st, 8), &ret->snapshot_key, err);
  if (r == 0)
    r = meta_strdup ((const char *)sqlite3_column_text (st, 9), &ret->sandbox_id, err);
  ret->created_at = sqlite3_column_int64 (st, 10);
  ret->updated_at = sqlite3_column_int64 (st, 11);
  if (r == 0)
    r = meta_labels_load (m, ns, KIND, ret->id, &ret->labels, err);
  if (r == 0)
    r = load_extensions (m, ns, ret, err);
  return r;
}

static int
container_get_locked (meta *m, const char *ns, const char *id, struct meta_container *ret, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m, "SELECT " CONTAINER_COLUMNS " FROM containers WHERE namespace = ? AND id = ?", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      r = row_to_container (m, ns, st, ret, err);
      if (r < 0)
        meta_container_clear (ret);
    }
  else if (rc == SQLITE_DONE)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "container \"%s\": not found", id);
  else
    r = meta_sql_error (m, rc, err, "reading containers");
  sqlite3_finalize (st);
  return r;
}

int
meta_container_get (meta *m, const char *ns, const char *id, struct meta_container *ret, berth_error **err)
{
  meta_lock (m);
  int r = container_get_locked (m, ns, id, ret, err);
  meta_unlock (m);
  return r;
}

static const char *
container_field (void *obj, const char *const *path, size_t n)
{
  struct meta_container *c = obj;
  if (n == 1 && strcmp (path[0], "id") == 0)
    return c->id;
  if (n == 1 && strcmp (path[0], "image") == 0)
    return c->image;
  if (n == 1 && strcmp (path[0], "snapshotter") == 0)
    return c->snapshotter;
  if (n == 1 && (strcmp (path[0], "snapshotkey") == 0 || strcmp (path[0], "snapshot_key") == 0))
    return c->snapshot_key;
  if (n == 2 && strcmp (path[0], "runtime") == 0 && strcmp (path[1], "name") == 0)
    return c->runtime_name;
  if (n == 2 && strcmp (path[0], "labels") == 0)
    return labels_get (&c->labels, path[1]);
  return NULL;
}

int
meta_container_list (meta *m, const char *ns, const char *const *filters, size_t nfilters, struct meta_container **ret,
                     size_t *ret_n, berth_error **err)
{
  filter_set *fs = NULL;
  int r = meta_filters (filters, nfilters, &fs, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  r = meta_prepare (m, "SELECT " CONTAINER_COLUMNS " FROM containers WHERE namespace = ? ORDER BY id", &st, err);
  struct meta_container *v = NULL;
  size_t n = 0;
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      int rc;
      while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          struct meta_container *nv = realloc (v, (n + 1) * sizeof *v);
          if (nv == NULL)
            {
              r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listing containers");
              break;
            }
          v = nv;
          r = row_to_container (m, ns, st, &v[n], err);
          n++;
          if (r == 0 && fs && !filters_match (fs, container_field, &v[n - 1]))
            meta_container_clear (&v[--n]);
        }
      if (r == 0 && rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "listing containers");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  filters_free (fs);
  if (r < 0)
    {
      meta_containers_free (v, n);
      return r;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}

/* containerd's identifiers.Validate: [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, at most 76. */
static int
validate_id (const char *id, berth_error **err)
{
  if (id == NULL || *id == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "container id is required");
  size_t len = strlen (id);
  bool ok = len <= 76 && isalnum ((unsigned char)id[0]) && isalnum ((unsigned char)id[len - 1]);
  for (size_t i = 0; ok && i < len; i++)
    {
      unsigned char ch = (unsigned char)id[i];
      if (ch == '.' || ch == '_' || ch == '-')
        ok = isalnum ((unsigned char)id[i + 1]);
      else
        ok = isalnum (ch) && ch < 0x80;
    }
  if (!ok)
    return berth_error_set (err, BERTH_E_INVALID, 0,
                            "container id `%s`: must match [A-Za-z0-9]+([._-][A-Za-z0-9]+)* and be at most 76 "
                            "characters",
                            id);
  return 0;
}

static int
validate_container (const struct meta_container *c, berth_error **err)
{
  int r = validate_id (c->id, err);
  if (r == 0)
    r = meta_validate_labels (&c->labels, err);
  if (r < 0)
    return r;
  if (c->runtime_name == NULL || *c->runtime_name == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "container `%s`: runtime name must be set", c->id);
  if (c->spec.type_url == NULL || *c->spec.type_url == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "container `%s`: container.Spec must be set", c->id);
  if (c->snapshot_key && *c->snapshot_key && (c->snapshotter == NULL || *c->snapshotter == '\0'))
    return berth_error_set (err, BERTH_E_INVALID, 0,
                            "container `%s`: container.Snapshotter must be set if container.SnapshotKey is set", c->id);
  for (size_t i = 0; i < c->n_extensions; i++)
    if (c->extensions[i].name == NULL || *c->extensions[i].name == '\0')
      return berth_error_set (err, BERTH_E_INVALID, 0, "container `%s`: extension with an empty name", c->id);
  return 0;
}

static void
bind_any (sqlite3_stmt *st, int type_col, int value_col, const struct meta_any *a)
{
  sqlite3_bind_text (st, type_col, a->type_url ? a->type_url : "", -1, SQLITE_STATIC);
  if (a->value && a->len)
    sqlite3_bind_blob (st, value_col, a->value, (int)a->len, SQLITE_STATIC);
  else
    sqlite3_bind_null (st, value_col);
}

static const char *
nz (const char *s)
{
  return s ? s : "";
}

static int
write_extensions (meta *m, const char *ns, const struct meta_container *c, berth_error **err)
{
  int r = meta_run (m, "DELETE FROM container_extensions WHERE namespace = ? AND container = ?", err, ns, c->id, NULL);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  r = meta_prepare (m,
                    "INSERT OR REPLACE INTO container_extensions (namespace, container, name, type_url, value) "
                    "VALUES (?, ?, ?, ?, ?)",
                    &st, err);
  for (size_t i = 0; r == 0 && i < c->n_extensions; i++)
    {
      sqlite3_reset (st);
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, c->id, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 3, c->extensions[i].name, -1, SQLITE_STATIC);
      bind_any (st, 4, 5, &c->extensions[i].value);
      int rc = sqlite3_step (st);
      if (rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "writing container extensions");
    }
  sqlite3_finalize (st);
  return r;
}

/* INSERT (create) or UPDATE (replace the row) inside a transaction. */
static int
write_container (meta *m, const char *ns, const struct meta_container *c, bool create, int64_t created_at,
                 berth_error **err)
{
  int r = create ? meta_ns_touch (m, ns, err) : 0;
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  r = meta_prepare (m,
                    create ? "INSERT INTO containers (image, runtime_name, runtime_options_type, runtime_options, "
                             "spec_type, spec, snapshotter, snapshot_key, sandbox_id, created_at, updated_at, "
                             "namespace, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                           : "UPDATE containers SET image = ?, runtime_name = ?, runtime_options_type = ?, "
                             "runtime_options = ?, spec_type = ?, spec = ?, snapshotter = ?, snapshot_key = ?, "
                             "sandbox_id = ?, created_at = ?, updated_at = ? WHERE namespace = ? AND id = ?",
                    &st, err);
  if (r < 0)
    return r;
  int64_t t = meta_now_ns ();
  sqlite3_bind_text (st, 1, nz (c->image), -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, nz (c->runtime_name), -1, SQLITE_STATIC);
  bind_any (st, 3, 4, &c->runtime_options);
  bind_any (st, 5, 6, &c->spec);
  sqlite3_bind_text (st, 7, nz (c->snapshotter), -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 8, nz (c->snapshot_key), -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 9, nz (c->sandbox_id), -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 10, create ? t : created_at);
  sqlite3_bind_int64 (st, 11, t);
  sqlite3_bind_text (st, 12, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 13, c->id, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc == SQLITE_CONSTRAINT)
    return berth_error_set (err, BERTH_E_EXISTS, 0, "container \"%s\": already exists", c->id);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, create ? "creating container" : "updating container");
  if (create)
    BERTH_FAILPOINT ("container-create-in-tx");
  r = meta_labels_delete_all (m, ns, KIND, c->id, err);
  if (r == 0)
    r = meta_labels_put (m, ns, KIND, c->id, &c->labels, err);
  if (r == 0)
    r = write_extensions (m, ns, c, err);
  return r;
}

int
meta_container_create (meta *m, const char *ns, const struct meta_container *c, struct meta_container *ret,
                       berth_error **err)
{
  int r = meta_validate_namespace (ns, err);
  if (r == 0)
    r = validate_container (c, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_tx_end (m, write_container (m, ns, c, true, 0, err), err);
  if (r == 0)
    BERTH_FAILPOINT ("container-create-after-record");
  if (r == 0 && ret)
    r = meta_container_get (m, ns, c->id, ret, err);
  return r;
}

static int
any_copy (const struct meta_any *src, struct meta_any *dst, berth_error **err)
{
  meta_any_clear (dst);
  int r = meta_strdup (src->type_url, &dst->type_url, err);
  if (r == 0)
    r = blob_dup (src->value, src->len, &dst->value, err);
  dst->len = dst->value ? src->len : 0;
  return r;
}

static int
str_replace (char **dst, const char *src, berth_error **err)
{
  char *s = NULL;
  int r = meta_strdup (src, &s, err);
  if (r == 0)
    {
      free (*dst);
      *dst = s;
    }
  return r;
}

/* Set (from src) or delete the extension `name` of dst. */
static int
extension_apply (struct meta_container *dst, const struct meta_container *src, const char *name, berth_error **err)
{
  const struct meta_extension *from = NULL;
  for (size_t i = 0; i < src->n_extensions; i++)
    if (strcmp (src->extensions[i].name, name) == 0)
      from = &src->extensions[i];
  size_t at = dst->n_extensions;
  for (size_t i = 0; i < dst->n_extensions; i++)
    if (strcmp (dst->extensions[i].name, name) == 0)
      at = i;
  if (from == NULL)
    {
      if (at < dst->n_extensions)
        {
          free (dst->extensions[at].name);
          meta_any_clear (&dst->extensions[at].value);
          dst->extensions[at] = dst->extensions[--dst->n_extensions];
        }
      return 0;
    }
  if (at == dst->n_extensions)
    {
      struct meta_extension *v = realloc (dst->extensions, (dst->n_extensions + 1) * sizeof *v);
      if (v == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      dst->extensions = v;
      memset (&v[at], 0, sizeof v[at]);
      dst->n_extensions++;
      int r = meta_strdup (name, &v[at].name, err);
      if (r < 0)
        return r;
    }
  return any_copy (&from->value, &dst->extensions[at].value, err);
}

static int
extensions_replace (struct meta_container *dst, const struct meta_container *src, berth_error **err)
{
  while (dst->n_extensions > 0)
    {
      dst->n_extensions--;
      free (dst->extensions[dst->n_extensions].name);
      meta_any_clear (&dst->extensions[dst->n_extensions].value);
    }
  for (size_t i = 0; i < src->n_extensions; i++)
    {
      int r = extension_apply (dst, src, src->extensions[i].name, err);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
labels_copy (berth_labels *dst, const berth_labels *src)
{
  labels_clear (dst);
  size_t it = 0;
  const char *k, *v;
  while (labels_next (src, &it, &k, &v))
    if (*v && labels_set (dst, k, v) < 0)
      return BERTH_E_NOMEM;
  return 0;
}

/* Apply the update mask to cur (containerd's metadata/containers.go Update). */
static int
apply_update (struct meta_container *cur, const struct meta_container *c, const char *const *paths, size_t npaths,
              berth_error **err)
{
  int r = 0;
  if (npaths == 0)
    {
      if (c->runtime_name && *c->runtime_name && strcmp (c->runtime_name, cur->runtime_name) != 0)
        return berth_error_set (err, BERTH_E_INVALID, 0, "container `%s`: container.Runtime.Name field is immutable",
                                cur->id);
      if (nz (c->snapshotter)[0] && strcmp (nz (c->snapshotter), cur->snapshotter) != 0)
        return berth_error_set (err, BERTH_E_INVALID, 0, "container `%s`: container.Snapshotter field is immutable",
                                cur->id);
      if (labels_copy (&cur->labels, &c->labels) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      r = any_copy (&c->spec, &cur->spec, err);
      if (r == 0)
        r = extensions_replace (cur, c, err);
      if (r == 0)
        r = str_replace (&cur->image, c->image, err);
      if (r == 0)
        r = str_replace (&cur->snapshot_key, c->snapshot_key, err);
      return r;
    }
  for (size_t i = 0; r == 0 && i < npaths; i++)
    {
      const char *p = paths[i];
      if (strncmp (p, "labels.", 7) == 0)
        {
          const char *v = labels_get (&c->labels, p + 7);
          r = labels_set (&cur->labels, p + 7, v ? v : "");
          if (r < 0)
            r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
        }
      else if (strncmp (p, "extensions.", 11) == 0)
        r = extension_apply (cur, c, p + 11, err);
      else if (strcmp (p, "labels") == 0)
        {
          if (labels_copy (&cur->labels, &c->labels) < 0)
            r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
        }
      else if (strcmp (p, "spec") == 0)
        r = any_copy (&c->spec, &cur->spec, err);
      else if (strcmp (p, "extensions") == 0)
        r = extensions_replace (cur, c, err);
      else if (strcmp (p, "image") == 0)
        r = str_replace (&cur->image, c->image, err);
      else if (strcmp (p, "snapshotkey") == 0)
        r = str_replace (&cur->snapshot_key, c->snapshot_key, err);
      else
        r = berth_error_set (err, BERTH_E_INVALID, 0, "cannot update \"%s\" field on \"%s\"", p, cur->id);
    }
  return r;
}

int
meta_container_update (meta *m, const char *ns, const struct meta_container *c, const char *const *paths, size_t npaths,
                       struct meta_container *ret, berth_error **err)
{
  if (c->id == NULL || *c->id == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "container id is required");
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  struct meta_container cur = { 0 };
  r = container_get_locked (m, ns, c->id, &cur, err);
  if (r == 0)
    r = apply_update (&cur, c, paths, npaths, err);
  if (r == 0)
    r = validate_container (&cur, err);
  if (r == 0)
    r = write_container (m, ns, &cur, false, cur.created_at, err);
  r = meta_tx_end (m, r, err);
  meta_container_clear (&cur);
  if (r == 0 && ret)
    r = meta_container_get (m, ns, c->id, ret, err);
  return r;
}

int
meta_container_set_label (meta *m, const char *ns, const char *id, const char *key, const char *value,
                          berth_error **err)
{
  berth_labels one = { 0 };
  if (labels_set (&one, key, value ? value : "") < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  struct meta_container c = { .id = (char *)id, .labels = one };
  _cleanup_free_ char *path = NULL;
  if (asprintf (&path, "labels.%s", key) < 0)
    {
      labels_clear (&one);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
    }
  const char *paths[] = { path };
  int r = meta_container_update (m, ns, &c, paths, 1, NULL, err);
  labels_clear (&one);
  return r;
}

int
meta_container_delete (meta *m, const char *ns, const char *id, berth_error **err)
{
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_run (m, "DELETE FROM container_extensions WHERE namespace = ? AND container = ?", err, ns, id, NULL);
  BERTH_FAILPOINT ("container-delete-in-tx");
  if (r >= 0)
    r = meta_run (m, "DELETE FROM containers WHERE namespace = ? AND id = ?", err, ns, id, NULL);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "container \"%s\": not found", id);
  if (r > 0)
    r = meta_labels_delete_all (m, ns, KIND, id, err);
  return meta_tx_end (m, r, err);
}
