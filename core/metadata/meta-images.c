/* Image records (containerd's metadata/images.go model): name → target
 * descriptor, labels, created/updated, per namespace.  The target's
 * annotations are stored as labels of kind "image.annotation". */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "metadata/meta-private.h"

#define KIND "image"
#define KIND_ANN "image.annotation"

void
meta_descriptor_clear (struct meta_descriptor *d)
{
  if (d == NULL)
    return;
  free (d->media_type);
  free (d->digest);
  labels_clear (&d->annotations);
  memset (d, 0, sizeof *d);
}

void
meta_image_clear (struct meta_image *img)
{
  if (img == NULL)
    return;
  free (img->name);
  meta_descriptor_clear (&img->target);
  labels_clear (&img->labels);
  memset (img, 0, sizeof *img);
}

void
meta_images_free (struct meta_image *v, size_t n)
{
  for (size_t i = 0; v && i < n; i++)
    meta_image_clear (&v[i]);
  free (v);
}

#define IMAGE_COLUMNS "name, media_type, digest, size, created_at, updated_at"

static int
row_to_image (meta *m, const char *ns, sqlite3_stmt *st, struct meta_image *ret, berth_error **err)
{
  memset (ret, 0, sizeof *ret);
  int r = meta_strdup ((const char *) sqlite3_column_text (st, 0), &ret->name, err);
  if (r == 0)
    r = meta_strdup ((const char *) sqlite3_column_text (st, 1), &ret->target.media_type, err);
  if (r == 0)
    r = meta_strdup ((const char *) sqlite3_column_text (st, 2), &ret->target.digest, err);
  ret->target.size = sqlite3_column_int64 (st, 3);
  ret->created_at = sqlite3_column_int64 (st, 4);
  ret->updated_at = sqlite3_column_int64 (st, 5);
  if (r == 0)
    r = meta_labels_load (m, ns, KIND, ret->name, &ret->labels, err);
  if (r == 0)
    r = meta_labels_load (m, ns, KIND_ANN, ret->name, &ret->target.annotations, err);
  return r;
}

static int
image_get_locked (meta *m, const char *ns, const char *name, struct meta_image *ret, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m, "SELECT " IMAGE_COLUMNS " FROM images WHERE namespace = ? AND name = ?", &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      r = row_to_image (m, ns, st, ret, err);
      if (r < 0)
        meta_image_clear (ret);
    }
  else if (rc == SQLITE_DONE)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "image `%s`: not found", name);
  else
    r = meta_sql_error (m, rc, err, "reading images");
  sqlite3_finalize (st);
  return r;
}

int
meta_image_get (meta *m, const char *ns, const char *name, struct meta_image *ret, berth_error **err)
{
  meta_lock (m);
  int r = image_get_locked (m, ns, name, ret, err);
  meta_unlock (m);
  return r;
}

static const char *
image_field (void *obj, const char *const *path, size_t n)
{
  struct meta_image *img = obj;
  static __thread char size[24];
  if (n == 1 && strcmp (path[0], "name") == 0)
    return img->name;
  if (n == 2 && strcmp (path[0], "target") == 0)
    {
      if (strcmp (path[1], "mediatype") == 0 || strcmp (path[1], "media_type") == 0)
        return img->target.media_type;
      if (strcmp (path[1], "digest") == 0)
        return img->target.digest;
      if (strcmp (path[1], "size") == 0)
        {
          snprintf (size, sizeof size, "%lld", (long long) img->target.size);
          return size;
        }
    }
  if (n == 2 && strcmp (path[0], "labels") == 0)
    return labels_get (&img->labels, path[1]);
  if (n == 3 && strcmp (path[0], "target") == 0 && strcmp (path[1], "annotations") == 0)
    return labels_get (&img->target.annotations, path[2]);
  return NULL;
}

int
meta_image_list (meta *m, const char *ns, const char *const *filters, size_t nfilters, struct meta_image **ret,
                 size_t *ret_n, berth_error **err)
{
  filter_set *fs = NULL;
  int r = meta_filters (filters, nfilters, &fs, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  meta_lock (m);
  r = meta_prepare (m, "SELECT " IMAGE_COLUMNS " FROM images WHERE namespace = ? ORDER BY name", &st, err);
  struct meta_image *v = NULL;
  size_t n = 0;
  if (r == 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      int rc;
      while (r == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW)
        {
          struct meta_image *nv = realloc (v, (n + 1) * sizeof *v);
          if (nv == NULL)
            {
              r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listing images");
              break;
            }
          v = nv;
          r = row_to_image (m, ns, st, &v[n], err);
          n++;
          if (r == 0 && fs && !filters_match (fs, image_field, &v[n - 1]))
            meta_image_clear (&v[--n]);
        }
      if (r == 0 && rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "listing images");
    }
  sqlite3_finalize (st);
  meta_unlock (m);
  filters_free (fs);
  if (r < 0)
    {
      meta_images_free (v, n);
      return r;
    }
  *ret = v;
  *ret_n = n;
  return 0;
}

static int
validate_target (const char *name, const struct meta_descriptor *t, berth_error **err)
{
  if (t == NULL || t->digest == NULL || strchr (t->digest, ':') == NULL)
    return berth_error_set (err, BERTH_E_INVALID, 0, "image `%s`: target digest is required", name);
  if (t->media_type == NULL || *t->media_type == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "image `%s`: target media type is required", name);
  if (t->size < 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "image `%s`: negative target size", name);
  return meta_validate_labels (&t->annotations, err);
}

static int
validate_image (const struct meta_image *img, berth_error **err)
{
  if (img->name == NULL || *img->name == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "image name is required");
  int r = meta_validate_labels (&img->labels, err);
  if (r == 0)
    r = validate_target (img->name, &img->target, err);
  return r;
}

/* Set the target columns and annotations (inside a transaction). */
static int
write_target (meta *m, const char *ns, const char *name, const struct meta_descriptor *t, berth_error **err)
{
  sqlite3_stmt *st = NULL;
  int r = meta_prepare (m,
                        "UPDATE images SET media_type = ?, digest = ?, size = ?, updated_at = ? "
                        "WHERE namespace = ? AND name = ?",
                        &st, err);
  if (r < 0)
    return r;
  sqlite3_bind_text (st, 1, t->media_type, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, t->digest, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 3, t->size);
  sqlite3_bind_int64 (st, 4, meta_now_ns ());
  sqlite3_bind_text (st, 5, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 6, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "updating image");
  return 0;
}

static int
insert_image (meta *m, const char *ns, const struct meta_image *img, berth_error **err)
{
  int r = meta_ns_touch (m, ns, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  r = meta_prepare (m,
                    "INSERT INTO images (namespace, name, media_type, digest, size, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    &st, err);
  if (r < 0)
    return r;
  int64_t t = meta_now_ns ();
  sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 2, img->name, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 3, img->target.media_type, -1, SQLITE_STATIC);
  sqlite3_bind_text (st, 4, img->target.digest, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 5, img->target.size);
  sqlite3_bind_int64 (st, 6, t);
  sqlite3_bind_int64 (st, 7, t);
  int rc = sqlite3_step (st);
  sqlite3_finalize (st);
  if (rc == SQLITE_CONSTRAINT)
    return berth_error_set (err, BERTH_E_EXISTS, 0, "image `%s`: already exists", img->name);
  if (rc != SQLITE_DONE)
    return meta_sql_error (m, rc, err, "creating image");
  r = meta_labels_put (m, ns, KIND, img->name, &img->labels, err);
  if (r == 0)
    r = meta_labels_put (m, ns, KIND_ANN, img->name, &img->target.annotations, err);
  return r;
}

int
meta_image_create (meta *m, const char *ns, const struct meta_image *img, struct meta_image *ret, berth_error **err)
{
  int r = meta_validate_namespace (ns, err);
  if (r == 0)
    r = validate_image (img, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_tx_end (m, insert_image (m, ns, img, err), err);
  if (r == 0 && ret)
    r = meta_image_get (m, ns, img->name, ret, err);
  return r;
}

int
meta_image_update (meta *m, const char *ns, const struct meta_image *img, const char *const *paths, size_t npaths,
                   struct meta_image *ret, berth_error **err)
{
  if (img->name == NULL || *img->name == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "image name is required");
  int r = meta_validate_labels (&img->labels, err);
  if (r == 0)
    r = meta_validate_labels (&img->target.annotations, err);
  bool target = npaths == 0;
  for (size_t i = 0; r == 0 && i < npaths; i++)
    {
      const char *p = paths[i];
      if (strcmp (p, "target") == 0)
        target = true;
      else if (strcmp (p, "name") == 0)
        continue; /* the name is the key: it always matches */
      else if (strcmp (p, "labels") != 0 && strncmp (p, "labels.", 7) != 0 && strcmp (p, "annotations") != 0
               && strncmp (p, "annotations.", 12) != 0)
        r = berth_error_set (err, BERTH_E_INVALID, 0, "cannot update `%s` field on image `%s`", p, img->name);
    }
  if (r == 0 && target)
    r = validate_target (img->name, &img->target, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  char t[24];
  snprintf (t, sizeof t, "%lld", (long long) meta_now_ns ());
  r = meta_run (m, "UPDATE images SET updated_at = ? WHERE namespace = ? AND name = ?", err, t, ns, img->name, NULL);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "image `%s`: not found", img->name);
  if (r > 0)
    r = 0;
  if (r == 0 && target)
    r = write_target (m, ns, img->name, &img->target, err);
  if (r == 0 && npaths == 0)
    {
      r = meta_labels_apply_path (m, ns, KIND, img->name, "labels", "labels", &img->labels, err);
      if (r >= 0)
        r = meta_labels_apply_path (m, ns, KIND_ANN, img->name, "annotations", "annotations",
                                    &img->target.annotations, err);
    }
  for (size_t i = 0; r >= 0 && i < npaths; i++)
    {
      r = meta_labels_apply_path (m, ns, KIND, img->name, "labels", paths[i], &img->labels, err);
      if (r == 0)
        r = meta_labels_apply_path (m, ns, KIND_ANN, img->name, "annotations", paths[i], &img->target.annotations,
                                    err);
    }
  r = meta_tx_end (m, r < 0 ? r : 0, err);
  if (r == 0 && ret)
    r = meta_image_get (m, ns, img->name, ret, err);
  return r;
}

int
meta_image_create_or_update (meta *m, const char *ns, const char *name, const struct meta_descriptor *target,
                             const berth_labels *labels, berth_error **err)
{
  struct meta_image img = { .name = (char *) name };
  if (target)
    img.target = *target;
  if (labels)
    img.labels = *labels;
  int r = meta_validate_namespace (ns, err);
  if (r == 0)
    r = validate_image (&img, err);
  if (r < 0)
    return r;
  r = meta_begin (m, err);
  if (r < 0)
    return r;
  sqlite3_stmt *st = NULL;
  bool exists = false;
  r = meta_prepare (m, "SELECT 1 FROM images WHERE namespace = ? AND name = ?", &st, err);
  if (r >= 0)
    {
      sqlite3_bind_text (st, 1, ns, -1, SQLITE_STATIC);
      sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
      int rc = sqlite3_step (st);
      exists = rc == SQLITE_ROW;
      if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = meta_sql_error (m, rc, err, "reading images");
    }
  sqlite3_finalize (st);
  if (r >= 0 && !exists)
    r = insert_image (m, ns, &img, err);
  else if (r >= 0)
    {
      r = write_target (m, ns, name, &img.target, err);
      if (r == 0)
        r = meta_labels_apply_path (m, ns, KIND_ANN, name, "annotations", "annotations", &img.target.annotations,
                                    err);
      if (r >= 0 && labels)
        r = meta_labels_apply_path (m, ns, KIND, name, "labels", "labels", labels, err);
    }
  r = meta_tx_end (m, r < 0 ? r : 0, err);
  if (r < 0)
    return berth_error_wrap (err, "image `%s`", name);
  return 0;
}

int
meta_image_delete (meta *m, const char *ns, const char *name, berth_error **err)
{
  int r = meta_begin (m, err);
  if (r < 0)
    return r;
  r = meta_run (m, "DELETE FROM images WHERE namespace = ? AND name = ?", err, ns, name, NULL);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_NOTFOUND, 0, "image `%s`: not found", name);
  if (r > 0)
    r = meta_labels_delete_all (m, ns, KIND, name, err);
  if (r == 0)
    r = meta_labels_delete_all (m, ns, KIND_ANN, name, err);
  return meta_tx_end (m, r, err);
}
