/* io.berth.content.v1.local: descriptor, init/fini, blobs (info, update,
 * walk, delete, readers), ingest queries (status, list_statuses, abort),
 * the per-ref writer locks and the label sidecars.  Writers are in
 * writer.c; the layout and the threading rules are in local.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <berth/config.h>
#include <berth/content.h>
#include <berth/plugin.h>

#include "local.h"

/* containerd refuses a label whose key and value exceed this together. */
#define LABEL_MAX 4096

static const char *const algorithms[] = { "sha256", "sha512", NULL };

/* ---- writer locks -------------------------------------------------------- */

int
local_ref_acquire (struct local *s, const char *ref, berth_error *err)
{
  pthread_mutex_lock (&s->lock);
  for (size_t i = 0; i < s->nheld; i++)
    if (strcmp (s->held[i], ref) == 0)
      {
        pthread_mutex_unlock (&s->lock);
        return s->host->error_set (err, BERTH_E_UNAVAILABLE, 0, "ref %s locked", ref);
      }
  int r = 0;
  if (s->nheld == s->capheld)
    {
      size_t cap = s->capheld ? 2 * s->capheld : 16;
      char **n = realloc (s->held, cap * sizeof *n);
      if (n == NULL)
        r = BERTH_E_NOMEM;
      else
        {
          s->held = n;
          s->capheld = cap;
        }
    }
  char *copy = r == 0 ? strdup (ref) : NULL;
  if (copy)
    s->held[s->nheld++] = copy;
  pthread_mutex_unlock (&s->lock);
  if (copy == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  return 0;
}

void
local_ref_release (struct local *s, const char *ref)
{
  pthread_mutex_lock (&s->lock);
  for (size_t i = 0; i < s->nheld; i++)
    if (strcmp (s->held[i], ref) == 0)
      {
        free (s->held[i]);
        s->held[i] = s->held[--s->nheld];
        break;
      }
  pthread_mutex_unlock (&s->lock);
}

/* ---- label sidecars ------------------------------------------------------ */

static char *
labels_path (struct local *s, const struct local_digest *d)
{
  return local_path ("%s/%s/%s", s->labels, d->alg, d->hex);
}

/* The labels of d as a JSON object (empty when there is no sidecar). */
static int
labels_load (struct local *s, const struct local_digest *d, json_object **ret, berth_error *err)
{
  char *path = labels_path (s, d);
  char *text = NULL;
  int r = path ? local_read_file (path, &text, 1 << 20) : -ENOMEM;
  if (r == -ENOENT)
    {
      free (path);
      *ret = json_object_new_object ();
      return *ret ? 0 : s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }
  if (r < 0)
    {
      r = local_sys_error (s, err, -r, "reading labels %s", path ? path : d->hex);
      free (path);
      return r;
    }
  json_object *obj = json_tokener_parse (text);
  free (text);
  if (obj == NULL || !json_object_is_type (obj, json_type_object))
    {
      json_object_put (obj);
      r = s->host->error_set (err, BERTH_E_INTERNAL, 0, "labels file %s is not a JSON object", path);
      free (path);
      return r;
    }
  free (path);
  *ret = obj;
  return 0;
}

static int
labels_save (struct local *s, const struct local_digest *d, json_object *obj, berth_error *err)
{
  char *dir = local_path ("%s/%s", s->labels, d->alg);
  char *path = labels_path (s, d);
  int r = dir && path ? 0 : -ENOMEM;
  if (r == 0 && json_object_object_length (obj) == 0)
    {
      if (unlink (path) < 0 && errno != ENOENT)
        r = -errno;
    }
  else if (r == 0 && (r = local_mkdir_p (dir, 0700)) == 0)
    r = local_write_file (path, json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PLAIN), true);
  if (r < 0)
    r = r == -ENOSPC ? s->host->error_set (err, BERTH_E_EXHAUSTED, ENOSPC, "disk full writing labels of %s:%s",
                                           d->alg, d->hex)
                     : local_sys_error (s, err, -r, "writing labels of %s:%s", d->alg, d->hex);
  free (dir);
  free (path);
  return r;
}

static int
label_check (struct local *s, const char *key, const char *value, berth_error *err)
{
  if (key == NULL || *key == '\0')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "empty label key");
  if (strlen (key) + (value ? strlen (value) : 0) > LABEL_MAX)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "label %.64s…: key and value longer than %d bytes", key,
                               LABEL_MAX);
  return 0;
}

int
local_labels_store (struct local *s, const struct local_digest *d, const berth_labels *labels, berth_error *err)
{
  json_object *obj = json_object_new_object ();
  if (obj == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  size_t it = 0;
  const char *k, *v;
  int r = 0;
  while (labels && r == 0 && s->host->labels_next (labels, &it, &k, &v) == 1)
    if ((r = label_check (s, k, v, err)) == 0)
      json_object_object_add (obj, k, json_object_new_string (v ? v : ""));
  if (r == 0)
    {
      pthread_mutex_lock (&s->labels_lock);
      r = labels_save (s, d, obj, err);
      pthread_mutex_unlock (&s->labels_lock);
    }
  json_object_put (obj);
  return r;
}

/* ---- blobs ------------------------------------------------------------------ */

static char *
blob_path (struct local *s, const struct local_digest *d)
{
  return local_path ("%s/%s/%s", s->blobs, d->alg, d->hex);
}

/* stat of a blob: NOTFOUND "content X: not found" when absent. */
static int
blob_stat (struct local *s, const struct local_digest *d, struct stat *st, berth_error *err)
{
  char *path = blob_path (s, d);
  if (path == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  int r = stat (path, st) < 0 ? -errno : 0;
  free (path);
  if (r == -ENOENT)
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "content %s:%s: not found", d->alg, d->hex);
  if (r < 0)
    return local_sys_error (s, err, -r, "stat of content %s:%s", d->alg, d->hex);
  return 0;
}

/* updated_at: the later of the commit and the last label update. */
static int64_t
blob_updated (struct local *s, const struct local_digest *d, const struct stat *st)
{
  int64_t t = local_stat_mtime_ns (st);
  char *path = labels_path (s, d);
  struct stat ls;
  if (path && stat (path, &ls) == 0 && local_stat_mtime_ns (&ls) > t)
    t = local_stat_mtime_ns (&ls);
  free (path);
  return t;
}

static void
fill_info (struct local *s, struct berth_content_info *dst, const struct local_digest *d, const struct stat *st,
           json_object *labels)
{
  if (BERTH_HAS (struct berth_content_info, dst, digest))
    snprintf (dst->digest, sizeof dst->digest, "%s:%s", d->alg, d->hex);
  if (BERTH_HAS (struct berth_content_info, dst, blob_size))
    dst->blob_size = st->st_size;
  if (BERTH_HAS (struct berth_content_info, dst, created_at))
    dst->created_at = local_stat_mtime_ns (st);
  if (BERTH_HAS (struct berth_content_info, dst, updated_at))
    dst->updated_at = blob_updated (s, d, st);
  if (BERTH_HAS (struct berth_content_info, dst, labels) && dst->labels && labels)
    {
      json_object_object_foreach (labels, k, v)
        s->host->labels_set (dst->labels, k, json_object_get_string (v));
    }
}

static int
local_info (void *self, berth_ctx *ctx, const char *digest, struct berth_content_info *ret_info, berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  struct local_digest d;
  struct stat st;
  int r;
  if ((r = local_digest_parse (s, digest, &d, err)) < 0 || (r = blob_stat (s, &d, &st, err)) < 0)
    return r;
  json_object *labels = NULL;
  if (ret_info && BERTH_HAS (struct berth_content_info, ret_info, labels) && ret_info->labels
      && (r = labels_load (s, &d, &labels, err)) < 0)
    return r;
  if (ret_info)
    fill_info (s, ret_info, &d, &st, labels);
  json_object_put (labels);
  return 0;
}

/* containerd semantics: no fieldpaths (or "labels") replaces every label;
 * "labels.<key>" sets that key from info, or removes it when info lacks it;
 * any other field is refused. */
static int
local_update (void *self, berth_ctx *ctx, const struct berth_content_info *info, const char *const *fieldpaths,
              struct berth_content_info *ret_info, berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  if (info == NULL)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "no content info to update");
  const berth_labels *in = BERTH_HAS (struct berth_content_info, info, labels) ? info->labels : NULL;
  struct local_digest d;
  struct stat st;
  int r;
  if ((r = local_digest_parse (s, info->digest, &d, err)) < 0)
    return r;
  bool all = fieldpaths == NULL || fieldpaths[0] == NULL;
  for (const char *const *f = fieldpaths; f && *f; f++)
    if (strcmp (*f, "labels") == 0)
      all = true;
    else if (strncmp (*f, "labels.", 7) != 0 || (*f)[7] == '\0')
      return s->host->error_set (err, BERTH_E_INVALID, 0, "cannot update %s field on content info %s", *f,
                                 info->digest);

  pthread_mutex_lock (&s->labels_lock);
  json_object *labels = NULL;
  if ((r = blob_stat (s, &d, &st, err)) < 0 || (r = labels_load (s, &d, &labels, err)) < 0)
    goto out;
  if (all)
    {
      json_object_put (labels);
      labels = json_object_new_object ();
      size_t it = 0;
      const char *k, *v;
      while (labels && r == 0 && in && s->host->labels_next (in, &it, &k, &v) == 1)
        if ((r = label_check (s, k, v, err)) == 0)
          json_object_object_add (labels, k, json_object_new_string (v ? v : ""));
      if (labels == NULL)
        r = s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }
  for (const char *const *f = fieldpaths; r == 0 && !all && f && *f; f++)
    {
      const char *key = *f + 7;
      const char *v = in ? s->host->labels_get (in, key) : NULL;
      if (v == NULL)
        json_object_object_del (labels, key);
      else if ((r = label_check (s, key, v, err)) == 0)
        json_object_object_add (labels, key, json_object_new_string (v));
    }
  if (r == 0)
    r = labels_save (s, &d, labels, err);
  if (r == 0 && ret_info)
    fill_info (s, ret_info, &d, &st, labels);
out:
  pthread_mutex_unlock (&s->labels_lock);
  json_object_put (labels);
  return r;
}

struct walk_item
{
  const struct local_digest *d;
  char digest[8 + sizeof ((struct dirent *) 0)->d_name]; /* "alg:" + a directory entry */
  char size[24];
  json_object *labels;
};

static const char *
info_field (void *obj, const char *const *path, size_t npath)
{
  struct walk_item *it = obj;
  if (npath == 1 && strcmp (path[0], "digest") == 0)
    return it->digest;
  if (npath == 1 && strcmp (path[0], "size") == 0)
    return it->size;
  if (npath >= 2 && strcmp (path[0], "labels") == 0 && it->labels)
    {
      /* labels.a.b is the label "a.b", as containerd joins the rest. */
      char key[LABEL_MAX + 1];
      size_t n = 0;
      for (size_t i = 1; i < npath; i++)
        n += (size_t) snprintf (key + (n < sizeof key ? n : sizeof key - 1), n < sizeof key ? sizeof key - n : 1,
                                "%s%s", i > 1 ? "." : "", path[i]);
      json_object *v;
      if (n < sizeof key && json_object_object_get_ex (it->labels, key, &v))
        return json_object_get_string (v);
    }
  return NULL;
}

/* The callback gets digest, size and times; info.labels is NULL because a
 * plugin cannot make a host label map (ABI 1.1 has no labels_new); callers
 * that need labels ask info for each digest.  Label
 * filters are matched here against the sidecars.  No lock is held while fn
 * runs, so fn may call the store again. */
static int
local_walk (void *self, berth_ctx *ctx, const char *const *filters, berth_content_info_fn fn, void *data,
            berth_error *err)
{
  struct local *s = self;
  local_filter *f = NULL;
  int r = local_filter_parse (s, filters, &f, err);
  if (r < 0)
    return r;
  bool want_labels = local_filter_uses (f, "labels");
  for (const char *const *alg = algorithms; r == 0 && *alg; alg++)
    {
      char *dirpath = local_path ("%s/%s", s->blobs, *alg);
      DIR *dir = dirpath ? opendir (dirpath) : NULL;
      if (dir == NULL)
        {
          if (dirpath == NULL || errno != ENOENT)
            r = local_sys_error (s, err, dirpath ? errno : ENOMEM, "listing %s", dirpath ? dirpath : *alg);
          free (dirpath);
          continue;
        }
      struct dirent *e;
      while (r == 0 && (e = readdir (dir)) != NULL)
        {
          if (ctx && s->host->ctx_cancelled (ctx))
            {
              r = s->host->error_set (err, BERTH_E_CANCELLED, 0, "walk cancelled");
              break;
            }
          struct walk_item it = { 0 };
          struct local_digest d;
          snprintf (it.digest, sizeof it.digest, "%s:%s", *alg, e->d_name);
          if (local_digest_parse (s, it.digest, &d, NULL) < 0)
            continue; /* not a blob (".", "..", stray files) */
          struct stat st;
          if (fstatat (dirfd (dir), e->d_name, &st, 0) < 0 || !S_ISREG (st.st_mode))
            continue; /* deleted meanwhile */
          it.d = &d;
          snprintf (it.size, sizeof it.size, "%" PRId64, (int64_t) st.st_size);
          if (want_labels && labels_load (s, &d, &it.labels, NULL) < 0)
            it.labels = NULL;
          bool match = local_filter_match (f, info_field, &it);
          json_object_put (it.labels);
          if (!match)
            continue;
          struct berth_content_info info = { .size = sizeof info };
          fill_info (s, &info, &d, &st, NULL);
          r = fn (&info, data);
        }
      closedir (dir);
      free (dirpath);
    }
  local_filter_free (f);
  return r;
}

static int
local_delete (void *self, berth_ctx *ctx, const char *digest, berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  struct local_digest d;
  int r = local_digest_parse (s, digest, &d, err);
  if (r < 0)
    return r;
  char *path = blob_path (s, &d);
  if (path == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  r = unlink (path) < 0 ? -errno : 0;
  free (path);
  if (r == -ENOENT)
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "content %s: not found", digest);
  if (r < 0)
    return local_sys_error (s, err, -r, "deleting content %s", digest);
  pthread_mutex_lock (&s->labels_lock);
  path = labels_path (s, &d);
  if (path)
    unlink (path);
  free (path);
  pthread_mutex_unlock (&s->labels_lock);
  return 0;
}

/* ---- readers ----------------------------------------------------------------- */

struct berth_content_reader
{
  int fd;
  int64_t size;
};

static int
local_reader_open (void *self, berth_ctx *ctx, const char *digest, berth_content_reader **ret_reader,
                   berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  struct local_digest d;
  int r = local_digest_parse (s, digest, &d, err);
  if (r < 0)
    return r;
  char *path = blob_path (s, &d);
  if (path == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  int e = errno;
  free (path);
  if (fd < 0)
    return e == ENOENT ? s->host->error_set (err, BERTH_E_NOTFOUND, 0, "content %s: not found", digest)
                       : local_sys_error (s, err, e, "opening content %s", digest);
  struct stat st;
  struct berth_content_reader *rd = fstat (fd, &st) == 0 ? malloc (sizeof *rd) : NULL;
  if (rd == NULL)
    {
      close (fd);
      return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }
  rd->fd = fd;
  rd->size = st.st_size;
  *ret_reader = rd;
  return 0;
}

static int
local_reader_read_at (void *self, berth_content_reader *rd, void *buf, size_t len, int64_t off, size_t *ret_n,
                      berth_error *err)
{
  struct local *s = self;
  if (off < 0)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "negative offset %" PRId64, off);
  size_t done = 0;
  while (done < len && off + (int64_t) done < rd->size)
    {
      ssize_t n = pread (rd->fd, (char *) buf + done, len - done, off + (int64_t) done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return local_sys_error (s, err, errno, "reading content at %" PRId64, off + (int64_t) done);
      if (n == 0)
        break;
      done += (size_t) n;
    }
  *ret_n = done;
  return 0;
}

static int64_t
local_reader_size (void *self, berth_content_reader *rd)
{
  (void) self;
  return rd->size;
}

static void
local_reader_close (void *self, berth_content_reader *rd)
{
  (void) self;
  if (rd == NULL)
    return;
  close (rd->fd);
  free (rd);
}

/* ABI 1.2: the blob's own file, opened read-only.  A committed blob is
 * never rewritten (a new one is renamed over nothing), so the descriptor
 * keeps serving the same bytes, even after the blob is deleted. */
static int
local_blob_fd (void *self, berth_ctx *ctx, const char *digest, int *ret_fd, berth_error *err)
{
  berth_content_reader *rd = NULL;
  int r = local_reader_open (self, ctx, digest, &rd, err);
  if (r < 0)
    return r;
  *ret_fd = rd->fd;
  free (rd);
  return 0;
}

/* ---- ingests ------------------------------------------------------------------ */

static int
check_ref (struct local *s, const char *ref, berth_error *err)
{
  if (ref == NULL || *ref == '\0')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "ref must not be empty");
  if (strlen (ref) >= BERTH_NAME_MAX)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "ref is longer than %d bytes", BERTH_NAME_MAX - 1);
  return 0;
}

static void
copy_status (struct berth_content_status *dst, const struct berth_content_status *src)
{
  if (BERTH_HAS (struct berth_content_status, dst, ref))
    snprintf (dst->ref, sizeof dst->ref, "%s", src->ref);
  if (BERTH_HAS (struct berth_content_status, dst, offset))
    dst->offset = src->offset;
  if (BERTH_HAS (struct berth_content_status, dst, total))
    dst->total = src->total;
  if (BERTH_HAS (struct berth_content_status, dst, expected))
    snprintf (dst->expected, sizeof dst->expected, "%s", src->expected);
  if (BERTH_HAS (struct berth_content_status, dst, started_at))
    dst->started_at = src->started_at;
  if (BERTH_HAS (struct berth_content_status, dst, updated_at))
    dst->updated_at = src->updated_at;
}

static int
local_status (void *self, berth_ctx *ctx, const char *ref, struct berth_content_status *ret_status, berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  int r = check_ref (s, ref, err);
  if (r < 0)
    return r;
  char *dir = local_ingest_dir (s, ref);
  if (dir == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  struct berth_content_status st = { .size = sizeof st };
  char *stored = NULL;
  r = local_ingest_status (s, dir, &st, &stored);
  free (dir);
  if (r == 0 && strcmp (stored, ref) != 0)
    r = -ENOENT;
  free (stored);
  if (r == -ENOENT)
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "ingest ref %s: not found", ref);
  if (r < 0)
    return local_sys_error (s, err, -r, "status of ingest ref %s", ref);
  if (ret_status)
    copy_status (ret_status, &st);
  return 0;
}

static const char *
status_field (void *obj, const char *const *path, size_t npath)
{
  const struct berth_content_status *st = obj;
  if (npath == 1 && strcmp (path[0], "ref") == 0)
    return st->ref;
  if (npath == 1 && strcmp (path[0], "expected") == 0 && st->expected[0])
    return st->expected;
  return NULL;
}

static bool
is_ingest_name (const char *name)
{
  size_t n = strlen (name);
  if (n != 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
      return false;
  return true;
}

/* Filters: containerd's, on "ref" (and "expected").  No lock is held while fn runs. */
static int
local_list_statuses (void *self, berth_ctx *ctx, const char *const *filters, berth_content_status_fn fn, void *data,
                     berth_error *err)
{
  struct local *s = self;
  local_filter *f = NULL;
  int r = local_filter_parse (s, filters, &f, err);
  if (r < 0)
    return r;
  DIR *dir = opendir (s->ingest);
  if (dir == NULL)
    {
      r = errno == ENOENT ? 0 : local_sys_error (s, err, errno, "listing %s", s->ingest);
      local_filter_free (f);
      return r;
    }
  struct dirent *e;
  while (r == 0 && (e = readdir (dir)) != NULL)
    {
      if (ctx && s->host->ctx_cancelled (ctx))
        {
          r = s->host->error_set (err, BERTH_E_CANCELLED, 0, "list cancelled");
          break;
        }
      if (!is_ingest_name (e->d_name))
        continue;
      char *path = local_path ("%s/%s", s->ingest, e->d_name);
      struct berth_content_status st = { .size = sizeof st };
      int q = path ? local_ingest_status (s, path, &st, NULL) : -ENOMEM;
      free (path);
      if (q < 0)
        continue; /* aborted or committed meanwhile, or half-created */
      if (local_filter_match (f, status_field, &st))
        r = fn (&st, data);
    }
  closedir (dir);
  local_filter_free (f);
  return r;
}

/* Remove an ingest.  A ref held by an open writer is refused (Unavailable):
 * its writer would otherwise go on writing into an unlinked file. */
static int
local_abort (void *self, berth_ctx *ctx, const char *ref, berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  int r = check_ref (s, ref, err);
  if (r < 0 || (r = local_ref_acquire (s, ref, err)) < 0)
    return r;
  char *dir = local_ingest_dir (s, ref);
  struct stat st;
  if (dir == NULL)
    r = s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  else if (stat (dir, &st) < 0)
    r = errno == ENOENT ? s->host->error_set (err, BERTH_E_NOTFOUND, 0, "ingest ref %s: not found", ref)
                        : local_sys_error (s, err, errno, "stat of ingest ref %s", ref);
  else if ((r = local_rm_ingest_dir (dir)) < 0)
    r = local_sys_error (s, err, -r, "removing ingest ref %s", ref);
  free (dir);
  local_ref_release (s, ref);
  return r;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static void
local_fini (void *self)
{
  struct local *s = self;
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->nheld; i++)
    free (s->held[i]);
  free (s->held);
  if (s->lock_ready)
    pthread_mutex_destroy (&s->lock);
  if (s->labels_lock_ready)
    pthread_mutex_destroy (&s->labels_lock);
  free (s->root);
  free (s->blobs);
  free (s->labels);
  free (s->ingest);
  free (s);
}

/* An ingest whose expected blob is in the store can never be written or
 * committed again (a writer for that digest gets EXISTS at open): it is
 * what a crash between the commit's rename and the ingest's removal leaves
 * (the data gone into blobs/, the ref and its other files still here). */
static bool
ingest_committed (struct local *s, const struct berth_content_status *st)
{
  struct local_digest d;
  if (st->expected[0] == '\0' || local_digest_parse (s, st->expected, &d, NULL) < 0)
    return false;
  struct stat bs;
  return blob_stat (s, &d, &bs, NULL) == 0;
}

/* At start-up: remove ingests whose blob is committed, those not written
 * for ingest_max_age seconds (0: keep them), and the temporary files of
 * interrupted adopts; one log line each. */
static void
clean_ingests (struct local *s)
{
  DIR *dir = opendir (s->ingest);
  if (dir == NULL)
    return;
  int64_t now = local_now_ns ();
  int64_t max = s->ingest_max_age * INT64_C (1000000000);
  struct dirent *e;
  while ((e = readdir (dir)) != NULL)
    {
      if (strncmp (e->d_name, LOCAL_ADOPT_PREFIX, strlen (LOCAL_ADOPT_PREFIX)) == 0)
        {
          /* No adopt runs before init returns: this one was interrupted
           * before its rename (the blob, if any, is complete in blobs/). */
          if (unlinkat (dirfd (dir), e->d_name, 0) < 0 && errno != ENOENT)
            s->host->log (s->plugin, BERTH_LOG_WARNING, "cannot remove %s/%s (left by an interrupted adopt): %s",
                          s->ingest, e->d_name, strerror (errno));
          else
            s->host->log (s->plugin, BERTH_LOG_INFO, "removed %s/%s: left by an interrupted adopt", s->ingest,
                          e->d_name);
          continue;
        }
      if (!is_ingest_name (e->d_name))
        continue;
      char *path = local_path ("%s/%s", s->ingest, e->d_name);
      if (path == NULL)
        break;
      struct berth_content_status st = { .size = sizeof st };
      char *ref = NULL;
      int64_t updated;
      struct stat ds;
      bool committed = false;
      if (local_ingest_status (s, path, &st, &ref) == 0)
        {
          updated = st.updated_at;
          committed = ingest_committed (s, &st);
        }
      else
        updated = stat (path, &ds) == 0 ? local_stat_mtime_ns (&ds) : now; /* no ref file: half-created */
      if (committed || (s->ingest_max_age > 0 && now - updated > max))
        {
          int r = local_rm_ingest_dir (path);
          if (r < 0)
            s->host->log (s->plugin, BERTH_LOG_WARNING, "cannot remove %s ingest %s: %s",
                          committed ? "committed" : "stale", path, strerror (-r));
          else if (committed)
            s->host->log (s->plugin, BERTH_LOG_INFO,
                          "removed ingest %s (ref %s): its blob %s is committed (a commit interrupted after its "
                          "rename)",
                          e->d_name, ref ? ref : "?", st.expected);
          else
            s->host->log (s->plugin, BERTH_LOG_INFO,
                          "removed stale ingest %s (ref %s, %" PRId64 " bytes, last written %" PRId64 "s ago)",
                          e->d_name, ref ? ref : "?", st.offset, (now - updated) / 1000000000);
        }
      free (ref);
      free (path);
    }
  closedir (dir);
}

static int
local_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self, berth_error *err)
{
  struct local *s = calloc (1, sizeof *s);
  if (s == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  *ret_self = s;
  s->host = host;
  s->plugin = ictx->plugin;
  if (ictx->root == NULL || *ictx->root == '\0')
    return host->error_set (err, BERTH_E_SKIP, 0, "no root directory");
  if (pthread_mutex_init (&s->lock, NULL) != 0)
    return host->error_set (err, BERTH_E_NOMEM, 0, "cannot create a mutex");
  s->lock_ready = true;
  if (pthread_mutex_init (&s->labels_lock, NULL) != 0)
    return host->error_set (err, BERTH_E_NOMEM, 0, "cannot create a mutex");
  s->labels_lock_ready = true;

  s->root = strdup (ictx->root);
  s->blobs = local_path ("%s/blobs", ictx->root);
  s->labels = local_path ("%s/labels", ictx->root);
  s->ingest = local_path ("%s/ingest", ictx->root);
  if (!s->root || !s->blobs || !s->labels || !s->ingest)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");

  s->ingest_max_age = 86400;
  struct berth_cfg_value v = { .size = sizeof v };
  if (host->cfg_get (ictx->plugin, "ingest_max_age", &v) == 0 && v.type == BERTH_CFG_INT)
    {
      if (v.i < 0)
        return host->error_set (err, BERTH_E_INVALID, 0, "ingest_max_age must not be negative (got %" PRId64 ")",
                                v.i);
      s->ingest_max_age = v.i;
    }

  char *sha256 = local_path ("%s/sha256", s->blobs);
  int r = sha256 ? local_mkdir_p (sha256, 0700) : -ENOMEM;
  free (sha256);
  if (r == 0)
    r = local_mkdir_p (s->labels, 0700);
  if (r == 0)
    r = local_mkdir_p (s->ingest, 0700);
  if (r < 0)
    return local_sys_error (s, err, -r, "creating the store under %s", s->root);

  clean_ingests (s);

  host->set_export (ictx->plugin, "root", s->root);
  host->add_capability (ictx->plugin, "resumable-ingest");
  host->add_capability (ictx->plugin, "digest-sha512");
  return 0;
}

static const struct berth_content_ops local_ops = {
  .size = sizeof (struct berth_content_ops),
  .info = local_info,
  .update = local_update,
  .walk = local_walk,
  .delete = local_delete,
  .reader_open = local_reader_open,
  .reader_read_at = local_reader_read_at,
  .reader_size = local_reader_size,
  .reader_close = local_reader_close,
  .writer_open = local_writer_open,
  .writer_write = local_writer_write,
  .writer_status = local_writer_status,
  .writer_commit = local_writer_commit,
  .writer_truncate = local_writer_truncate,
  .writer_close = local_writer_close,
  .status = local_status,
  .list_statuses = local_list_statuses,
  .abort = local_abort,
  .blob_fd = local_blob_fd,
  .adopt = local_adopt,
};

static const struct berth_config_key k_ingest_max_age
    = BERTH_CFG_KEY_RANGE ("ingest_max_age", "86400",
                           "at start-up, remove ingests not written for this many seconds (0 keeps them)", 0,
                           INT64_C (315360000));
static const struct berth_config_key *const local_keys[] = { &k_ingest_max_age, NULL };

static const struct berth_plugin_desc local_desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = "io.berth.content.v1",
  .id = "local",
  .version = "0.1.0",
  .requires = NULL,
  .config_keys = local_keys,
  .init = local_init,
  .fini = local_fini,
  .ops = &local_ops,
  .description = "content-addressed blobs on the local disk with resumable ingests",
};

static const struct berth_plugin_desc *const local_plugins[] = { &local_desc, NULL };

/* Built into berthd only (core/builtins.c); see local.am for why there is no
 * separate shared object. */
const struct berth_plugin_desc *const *
berth_content_local_entry (void)
{
  return local_plugins;
}
