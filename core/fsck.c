/* Start-up recovery, `berth fsck` and `berth system df` (core/fsck.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "fs.h"
#include "fsck.h"
#include "gc.h"
#include "host-objects.h"
#include "log.h"
#include "plugin-calls.h"
#include "snapshots.h"
#include "tasks.h"

#define SMALL_FILE_MAX (64u << 10)
#define COPY_CHUNK (1u << 20)

/* ---- report -------------------------------------------------------------- */

static void
item_clear (struct fsck_item *it)
{
  free (it->kind);
  free (it->ns);
  free (it->id);
  free (it->problem);
  free (it->action);
  free (it->path);
}

void
fsck_report_clear (struct fsck_report *r)
{
  for (size_t i = 0; i < r->n; i++)
    item_clear (&r->items[i]);
  free (r->items);
  free (r->quarantine);
  memset (r, 0, sizeof *r);
}

size_t
fsck_report_unresolved (const struct fsck_report *r)
{
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    n += r->items[i].action == NULL;
  return n;
}

/* Append an item; answers its index, or -1 when out of memory (the item is
 * then lost, the check goes on). */
static ssize_t BERTH_PRINTF (6, 7)
report_add (struct fsck_report *r, const char *kind, const char *ns, const char *id, int64_t size, const char *fmt, ...)
{
  struct fsck_item *v = realloc (r->items, (r->n + 1) * sizeof *v);
  if (v == NULL)
    return -1;
  r->items = v;
  struct fsck_item *it = &v[r->n];
  memset (it, 0, sizeof *it);
  va_list ap;
  va_start (ap, fmt);
  int k = vasprintf (&it->problem, fmt, ap);
  va_end (ap);
  it->kind = strdup (kind);
  it->ns = ns ? strdup (ns) : NULL;
  it->id = strdup (id);
  it->size = size;
  if (k < 0 || it->kind == NULL || it->id == NULL || (ns && it->ns == NULL))
    {
      if (k < 0)
        it->problem = NULL;
      item_clear (it);
      return -1;
    }
  return (ssize_t) r->n++;
}

static void BERTH_PRINTF (3, 4)
item_done (struct fsck_report *r, ssize_t i, const char *fmt, ...)
{
  if (i < 0)
    return;
  va_list ap;
  va_start (ap, fmt);
  char *s = NULL;
  if (vasprintf (&s, fmt, ap) < 0)
    s = NULL;
  va_end (ap);
  free (r->items[i].action);
  r->items[i].action = s;
}

static void
item_path (struct fsck_report *r, ssize_t i, const char *path)
{
  if (i < 0 || path == NULL)
    return;
  free (r->items[i].path);
  r->items[i].path = strdup (path);
}

/* ---- quarantine ---------------------------------------------------------- */

/* The run's quarantine directory under base (<base>/quarantine/<UTC time>),
 * made on first use; the same time-stamped name is used under the state
 * directory when a move cannot cross file systems. */
static int
quarantine_base (struct fsck_report *r, const char *root, berth_error **err)
{
  if (r->quarantine)
    return 0;
  char stamp[32];
  time_t now = time (NULL);
  struct tm tm;
  gmtime_r (&now, &tm);
  strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  for (int n = 0; n < 100; n++)
    {
      _cleanup_free_ char *dir = NULL;
      if ((n == 0 ? asprintf (&dir, "%s/%s/%s", root, FSCK_QUARANTINE_DIR, stamp)
                  : asprintf (&dir, "%s/%s/%s.%d", root, FSCK_QUARANTINE_DIR, stamp, n))
          < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      struct stat st;
      if (lstat (dir, &st) == 0)
        continue;
      int k = fs_mkdir_p (dir, 0700);
      if (k < 0)
        return berth_error_set (err, BERTH_E_INTERNAL, -k, "cannot create the quarantine directory %s", dir);
      r->quarantine = TAKE_PTR (dir);
      return 0;
    }
  return berth_error_set (err, BERTH_E_INTERNAL, EEXIST, "cannot pick a quarantine directory under %s/%s", root,
                          FSCK_QUARANTINE_DIR);
}

static int
mkdir_parent (const char *path)
{
  _cleanup_free_ char *copy = strdup (path);
  if (copy == NULL)
    return -ENOMEM;
  char *slash = strrchr (copy, '/');
  if (slash == NULL || slash == copy)
    return 0;
  *slash = '\0';
  return fs_mkdir_p (copy, 0700);
}

/* Move src to <quarantine>/<rel>.  When src is on another file system than
 * root (the state directory is often a tmpfs), it goes to
 * <fallback>/quarantine/<same stamp>/<rel> instead.  *ret_dest: malloc'ed. */
static int
quarantine_move (struct fsck_report *r, const char *root, const char *fallback, const char *src, const char *rel,
                 char **ret_dest, berth_error **err)
{
  if (quarantine_base (r, root, err) < 0)
    return BERTH_E_INTERNAL;
  _cleanup_free_ char *dest = NULL;
  if (asprintf (&dest, "%s/%s", r->quarantine, rel) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int k = mkdir_parent (dest);
  if (k < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, -k, "cannot create the directory of %s", dest);
  if (rename (src, dest) == 0)
    {
      *ret_dest = TAKE_PTR (dest);
      return 0;
    }
  if (errno != EXDEV || fallback == NULL)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "cannot move %s to %s", src, dest);
  const char *stamp = strrchr (r->quarantine, '/') + 1;
  free (dest);
  dest = NULL;
  if (asprintf (&dest, "%s/%s/%s/%s", fallback, FSCK_QUARANTINE_DIR, stamp, rel) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if ((k = mkdir_parent (dest)) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, -k, "cannot create the directory of %s", dest);
  if (rename (src, dest) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "cannot move %s to %s", src, dest);
  *ret_dest = TAKE_PTR (dest);
  return 0;
}

/* Names used as one path component in the quarantine. */
static char *
path_component (const char *s)
{
  char *c = strdup (s);
  for (char *p = c; p && *p; p++)
    if (*p == '/' || *p == ':' || (p == c && *p == '.'))
      *p = '_';
  return c;
}

/* Keep a record that is about to be dropped: <quarantine>/records/<kind>/<ns>/<id>.json. */
static int
quarantine_record (struct fsck_report *r, const char *root, const char *kind, const char *ns, const char *id,
                   json_object *o, char **ret_path, berth_error **err)
{
  if (quarantine_base (r, root, err) < 0)
    return BERTH_E_INTERNAL;
  _cleanup_free_ char *cns = path_component (ns ? ns : "-"), *cid = path_component (id), *path = NULL;
  if (cns == NULL || cid == NULL
      || asprintf (&path, "%s/records/%s/%s/%s.json", r->quarantine, kind, cns, cid) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int k = mkdir_parent (path);
  if (k < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, -k, "cannot create the directory of %s", path);
  const char *text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY);
  _cleanup_close_ int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  size_t len = strlen (text);
  if (fd < 0 || write (fd, text, len) != (ssize_t) len || write (fd, "\n", 1) != 1 || fsync (fd) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "cannot write %s", path);
  *ret_path = TAKE_PTR (path);
  return 0;
}

static json_object *
labels_json (const berth_labels *l)
{
  json_object *o = json_object_new_object ();
  const char *k, *v;
  for (size_t it = 0; labels_next (l, &it, &k, &v) > 0;)
    json_object_object_add (o, k, json_object_new_string (v));
  return o;
}

/* ---- files: meta.db, task directories, bundles ------------------------- */

static char *
read_small (const char *path)
{
  _cleanup_close_ int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return NULL;
  char *buf = malloc (SMALL_FILE_MAX + 1);
  if (buf == NULL)
    return NULL;
  size_t n = 0;
  for (ssize_t k; n < SMALL_FILE_MAX && (k = read (fd, buf + n, SMALL_FILE_MAX - n)) != 0;)
    {
      if (k < 0 && errno == EINTR)
        continue;
      if (k < 0)
        {
          free (buf);
          return NULL;
        }
      n += (size_t) k;
    }
  buf[n] = '\0';
  return buf;
}

/* A JSON object (and, when want_ns, one whose "namespace" and "id" are
 * ns and id): NULL, or why not. */
static const char *
json_file_problem (const char *path, const char *ns, const char *id)
{
  _cleanup_free_ char *text = read_small (path);
  if (text == NULL)
    return errno == ENOENT ? "missing" : "unreadable";
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return NULL;
  json_object *o = json_tokener_parse_ex (tok, text, (int) strlen (text));
  bool ok = json_tokener_get_error (tok) == json_tokener_success && json_object_is_type (o, json_type_object);
  json_tokener_free (tok);
  const char *why = ok ? NULL : "not a JSON object";
  if (ok && ns)
    {
      json_object *jns = NULL, *jid = NULL;
      json_object_object_get_ex (o, "namespace", &jns);
      json_object_object_get_ex (o, "id", &jid);
      if (!json_object_is_type (jns, json_type_string) || !json_object_is_type (jid, json_type_string)
          || strcmp (json_object_get_string (jns), ns) != 0 || strcmp (json_object_get_string (jid), id) != 0)
        why = "its namespace and id do not name this task";
    }
  json_object_put (o);
  return why;
}

/* A pid file: absent, or a positive decimal number. */
static bool
pid_file_ok (const char *path)
{
  _cleanup_free_ char *text = read_small (path);
  if (text == NULL)
    return errno == ENOENT;
  char *end;
  errno = 0;
  long v = strtol (text, &end, 10);
  while (*end == '\n' || *end == ' ')
    end++;
  return errno == 0 && end != text && *end == '\0' && v > 0 && v <= INT32_MAX;
}

/* PRAGMA quick_check: NULL when the database is sane or absent, otherwise
 * a malloc'ed reason. */
static char *
meta_db_problem (const char *path, bool live)
{
  struct stat st;
  if (stat (path, &st) < 0)
    return errno == ENOENT ? NULL : strdup ("cannot be read");
  /* Not even the header: say so without opening it (an open in read-write
   * mode would let SQLite remove a -wal that is part of the evidence). */
  char head[16] = { 0 };
  _cleanup_close_ int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || (st.st_size > 0 && (read (fd, head, sizeof head) != (ssize_t) sizeof head
                                    || memcmp (head, "SQLite format 3", 16) != 0)))
    return strdup (fd < 0 ? "cannot be opened" : "file is not a database (bad header)");
  sqlite3 *db = NULL;
  char *why = NULL;
  int rc = sqlite3_open_v2 (path, &db, live ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE, NULL);
  sqlite3_stmt *st2 = NULL;
  if (rc == SQLITE_OK)
    {
      sqlite3_busy_timeout (db, 5000);
      rc = sqlite3_prepare_v2 (db, "PRAGMA quick_check", -1, &st2, NULL);
    }
  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (st2);
      if (rc == SQLITE_ROW)
        {
          const char *res = (const char *) sqlite3_column_text (st2, 0);
          if (res == NULL || strcmp (res, "ok") != 0)
            why = strdup (res ? res : "quick_check answered nothing");
          rc = SQLITE_OK;
        }
    }
  if (rc != SQLITE_OK && why == NULL && rc != SQLITE_BUSY)
    if (asprintf (&why, "%s", db ? sqlite3_errmsg (db) : sqlite3_errstr (rc)) < 0)
      why = NULL;
  sqlite3_finalize (st2);
  sqlite3_close (db);
  return why;
}

struct files_run
{
  const char *root, *state;
  const struct fsck_opts *o;
  struct fsck_report *r;
};

static void
quarantine_tree (struct files_run *f, const char *kind, const char *ns, const char *id, const char *src,
                 const char *rel, const char *problem)
{
  ssize_t i = report_add (f->r, kind, ns, id, fsck_du (src), "%s", problem);
  if (f->o->live || !f->o->repair)
    return;
  _cleanup_free_ char *dest = NULL;
  _cleanup_error_ berth_error *e = NULL;
  /* A crash between mounting a bundle's rootfs and writing its config.json
   * leaves the mount: moved along, it would stay mounted in the quarantine
   * for good (rename carries mounts below the directory with it). */
  int k = fs_unmount_under (src);
  if (k < 0)
    berth_error_set (&e, BERTH_E_INTERNAL, -k, "cannot unmount what is mounted under %s: %s", src, strerror (-k));
  else if (k > 0)
    log_info ("fsck: unmounted %d mount(s) under %s before quarantining it", k, src);
  if (k < 0 || quarantine_move (f->r, f->root, f->state, src, rel, &dest, &e) < 0 || dest == NULL)
    {
      if (i >= 0)
        {
          char *p = NULL;
          if (asprintf (&p, "%s (quarantine failed: %s)", problem, berth_error_message (e)) >= 0)
            free (f->r->items[i].problem), f->r->items[i].problem = p;
        }
      return;
    }
  item_done (f->r, i, "quarantined");
  item_path (f->r, i, dest);
}

/* <state>/io.berth.runtime.v1.<x>/<ns>/<id>/: `meta` names the task, pid
 * files are numbers. */
static void
check_task_dirs (struct files_run *f)
{
  DIR *sd = opendir (f->state);
  struct dirent *pe;
  while (sd && (pe = readdir (sd)) != NULL)
    {
      if (strncmp (pe->d_name, "io.berth.runtime.v1.", 20) != 0)
        continue;
      _cleanup_free_ char *pdir = NULL;
      if (asprintf (&pdir, "%s/%s", f->state, pe->d_name) < 0)
        break;
      DIR *nd = opendir (pdir);
      struct dirent *ne;
      while (nd && (ne = readdir (nd)) != NULL)
        {
          if (ne->d_name[0] == '.' || ne->d_type != DT_DIR)
            continue;
          _cleanup_free_ char *nsdir = NULL;
          if (asprintf (&nsdir, "%s/%s", pdir, ne->d_name) < 0)
            break;
          DIR *td = opendir (nsdir);
          struct dirent *te;
          while (td && (te = readdir (td)) != NULL)
            {
              if (te->d_name[0] == '.' || te->d_type != DT_DIR)
                continue;
              _cleanup_free_ char *dir = NULL, *meta = NULL, *spid = NULL, *ipid = NULL, *rel = NULL;
              if (asprintf (&dir, "%s/%s", nsdir, te->d_name) < 0 || asprintf (&meta, "%s/meta", dir) < 0
                  || asprintf (&spid, "%s/shim.pid", dir) < 0 || asprintf (&ipid, "%s/init.pid", dir) < 0
                  || asprintf (&rel, "state/%s/%s/%s", pe->d_name, ne->d_name, te->d_name) < 0)
                break;
              f->r->files++;
              const char *why = json_file_problem (meta, ne->d_name, te->d_name);
              _cleanup_free_ char *problem = NULL;
              if (why)
                {
                  if (asprintf (&problem, "task record %s is %s", meta, why) < 0)
                    problem = NULL;
                }
              else if (!pid_file_ok (spid) || !pid_file_ok (ipid))
                {
                  if (asprintf (&problem, "a pid file in %s is not a process id", dir) < 0)
                    problem = NULL;
                }
              if (problem)
                quarantine_tree (f, "task-state", ne->d_name, te->d_name, dir, rel, problem);
            }
          if (td)
            closedir (td);
        }
      if (nd)
        closedir (nd);
    }
  if (sd)
    closedir (sd);
}

/* <state>/bundles/<ns>/<id>/config.json must be a JSON object. */
static void
check_bundles (struct files_run *f)
{
  _cleanup_free_ char *root = NULL;
  if (asprintf (&root, "%s/bundles", f->state) < 0)
    return;
  DIR *nd = opendir (root);
  struct dirent *ne;
  while (nd && (ne = readdir (nd)) != NULL)
    {
      if (ne->d_name[0] == '.')
        continue;
      _cleanup_free_ char *nsdir = NULL;
      if (asprintf (&nsdir, "%s/%s", root, ne->d_name) < 0)
        break;
      DIR *bd = opendir (nsdir);
      struct dirent *be;
      while (bd && (be = readdir (bd)) != NULL)
        {
          if (be->d_name[0] == '.')
            continue;
          _cleanup_free_ char *dir = NULL, *cfg = NULL, *rel = NULL, *problem = NULL;
          if (asprintf (&dir, "%s/%s", nsdir, be->d_name) < 0 || asprintf (&cfg, "%s/config.json", dir) < 0
              || asprintf (&rel, "bundles/%s/%s", ne->d_name, be->d_name) < 0)
            break;
          f->r->files++;
          const char *why = json_file_problem (cfg, NULL, NULL);
          if (why && asprintf (&problem, "bundle spec %s is %s", cfg, why) >= 0)
            quarantine_tree (f, "bundle", ne->d_name, be->d_name, dir, rel, problem);
        }
      if (bd)
        closedir (bd);
    }
  if (nd)
    closedir (nd);
}

int
fsck_files (const char *root, const char *state, const struct fsck_opts *o, struct fsck_report *r,
            berth_error **err)
{
  (void) err;
  struct files_run f = { .root = root, .state = state, .o = o, .r = r };
  r->repair = o->repair;
  _cleanup_free_ char *db = NULL;
  if (asprintf (&db, "%s/meta.db", root) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  r->files++;
  _cleanup_free_ char *why = meta_db_problem (db, o->live);
  if (why)
    {
      ssize_t i = report_add (r, "metadata", NULL, db, fsck_du (db), "the metadata database is unreadable: %s", why);
      if (!o->live && o->repair)
        {
          /* The database and its journal go together; a fresh one is made
           * by meta_open.  Blobs and snapshots stay: they are found again
           * as records are re-created (pull) or collected by GC. */
          static const char *const parts[] = { "", "-wal", "-shm" };
          bool moved = true;
          _cleanup_free_ char *first = NULL;
          for (size_t k = 0; k < ARRAY_SIZE (parts); k++)
            {
              _cleanup_free_ char *src = NULL, *rel = NULL, *dest = NULL;
              _cleanup_error_ berth_error *e = NULL;
              if (asprintf (&src, "%s%s", db, parts[k]) < 0 || asprintf (&rel, "meta/meta.db%s", parts[k]) < 0)
                return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
              if (access (src, F_OK) < 0)
                continue;
              if (quarantine_move (r, root, NULL, src, rel, &dest, &e) < 0)
                {
                  moved = false;
                  log_error ("recovery: %s", berth_error_message (e));
                }
              else if (first == NULL)
                first = TAKE_PTR (dest);
            }
          if (moved)
            {
              item_done (r, i, "quarantined; a new empty database is created (images must be pulled again)");
              item_path (r, i, first);
            }
        }
    }
  if (!o->live)
    {
      check_task_dirs (&f);
      check_bundles (&f);
    }
  return 0;
}

/* ---- content ------------------------------------------------------------- */

struct blob
{
  char *digest;
  char *problem; /* the hashing pass: why it is bad */
  int64_t size;
  bool recorded;
  bool gone;
};

struct blob_list
{
  struct blob *v;
  size_t n;
};

static int
collect_blob (const struct berth_content_info *info, void *data)
{
  struct blob_list *l = data;
  struct blob *v = realloc (l->v, (l->n + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  l->v = v;
  v[l->n] = (struct blob){ .digest = strdup (info->digest), .size = info->blob_size };
  if (v[l->n].digest == NULL)
    return BERTH_E_NOMEM;
  l->n++;
  return 0;
}

static void
blob_list_clear (struct blob_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    {
      free (l->v[i].digest);
      free (l->v[i].problem);
    }
  free (l->v);
  memset (l, 0, sizeof *l);
}

static int
blob_cmp (const void *a, const void *b)
{
  return strcmp (((const struct blob *) a)->digest, ((const struct blob *) b)->digest);
}

/* After blob_sort: lookups are O(log n), so big stores check in n log n. */
static void
blob_sort (struct blob_list *l)
{
  if (l->n > 1)
    qsort (l->v, l->n, sizeof *l->v, blob_cmp);
}

static struct blob *
blob_find (struct blob_list *l, const char *digest)
{
  struct blob key = { .digest = (char *) digest };
  return l->n ? bsearch (&key, l->v, l->n, sizeof *l->v, blob_cmp) : NULL;
}

/* sha256 of a blob through the store's reader: "sha256:<hex>" in out. */
static int
blob_hash (plugin *store, const char *digest, char out[80], berth_error **err)
{
  berth_ctx ctx;
  ctx_init (&ctx, NULL, NULL);
  berth_content_reader *rd = NULL;
  int r = content_reader_open (store, &ctx, digest, &rd, err);
  if (r < 0)
    return r;
  _cleanup_free_ unsigned char *buf = malloc (COPY_CHUNK);
  EVP_MD_CTX *h = EVP_MD_CTX_new ();
  if (buf == NULL || h == NULL || EVP_DigestInit_ex (h, EVP_sha256 (), NULL) != 1)
    r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  for (int64_t off = 0; r == 0;)
    {
      size_t n = 0;
      r = content_reader_read_at (store, rd, buf, COPY_CHUNK, off, &n, err);
      if (r < 0 || n == 0)
        break;
      if (EVP_DigestUpdate (h, buf, n) != 1)
        r = berth_error_set (err, BERTH_E_INTERNAL, 0, "sha256 failed");
      off += (int64_t) n;
    }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (r == 0 && EVP_DigestFinal_ex (h, md, &mdlen) != 1)
    r = berth_error_set (err, BERTH_E_INTERNAL, 0, "sha256 failed");
  EVP_MD_CTX_free (h);
  content_reader_close (store, rd);
  if (r < 0)
    return r;
  int k = snprintf (out, 80, "sha256:");
  for (unsigned int i = 0; i < mdlen && k < 78; i++)
    k += snprintf (out + k, 80 - (size_t) k, "%02x", md[i]);
  return 0;
}

/* Copy the blob to <quarantine>/blobs/<alg>/<hex> through the reader, then
 * delete it from the store. */
static int
quarantine_blob (struct fsck_report *r, const char *root, plugin *store, const char *digest, char **ret_dest,
                 berth_error **err)
{
  if (quarantine_base (r, root, err) < 0)
    return BERTH_E_INTERNAL;
  _cleanup_free_ char *name = strdup (digest), *dest = NULL;
  char *colon = name ? strchr (name, ':') : NULL;
  if (colon == NULL || strchr (colon + 1, '/') || strchr (name, '/'))
    return berth_error_set (err, BERTH_E_INVALID, 0, "blob digest `%s` is not <alg>:<hex>", digest);
  *colon = '/';
  if (asprintf (&dest, "%s/blobs/%s", r->quarantine, name) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int k = mkdir_parent (dest);
  if (k < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, -k, "cannot create the directory of %s", dest);
  berth_ctx ctx;
  ctx_init (&ctx, NULL, NULL);
  berth_content_reader *rd = NULL;
  int rc = content_reader_open (store, &ctx, digest, &rd, err);
  if (rc < 0)
    return rc;
  _cleanup_close_ int fd = open (dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  _cleanup_free_ unsigned char *buf = malloc (COPY_CHUNK);
  if (fd < 0)
    rc = berth_error_set (err, BERTH_E_INTERNAL, errno, "cannot create %s", dest);
  else if (buf == NULL)
    rc = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  for (int64_t off = 0; rc == 0;)
    {
      size_t n = 0;
      rc = content_reader_read_at (store, rd, buf, COPY_CHUNK, off, &n, err);
      if (rc < 0 || n == 0)
        break;
      if (write (fd, buf, n) != (ssize_t) n)
        rc = berth_error_set (err, BERTH_E_INTERNAL, errno, "writing %s", dest);
      off += (int64_t) n;
    }
  content_reader_close (store, rd);
  if (rc == 0 && fsync (fd) < 0)
    rc = berth_error_set (err, BERTH_E_INTERNAL, errno, "fsync of %s", dest);
  if (rc < 0)
    {
      unlink (dest);
      return rc;
    }
  if ((rc = content_delete (store, &ctx, digest, err)) < 0)
    return rc;
  *ret_dest = TAKE_PTR (dest);
  return 0;
}

struct ingest_list
{
  struct berth_content_status *v;
  size_t n;
};

static int
collect_ingest (const struct berth_content_status *st, void *data)
{
  struct ingest_list *l = data;
  struct berth_content_status *v = realloc (l->v, (l->n + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  l->v = v;
  size_t len = st->size < sizeof *v ? st->size : sizeof *v;
  memset (&v[l->n], 0, sizeof *v);
  memcpy (&v[l->n], st, len);
  l->n++;
  return 0;
}

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
check_content (struct daemon *d, const struct fsck_opts *o, struct fsck_report *r, berth_error **err)
{
  plugin *store = NULL;
  int rc = gc_content_store (d, &store, err);
  if (rc < 0)
    return rc;
  const char *root = d->cfg->root;
  berth_ctx ctx;
  ctx_init (&ctx, NULL, NULL);
  struct blob_list blobs = { 0 };
  struct meta_namespace *nss = NULL;
  size_t nns = 0;
  /* Hashing every blob can take minutes: do it before taking the lock, so
   * that pulls go on meanwhile; a blob that goes away in between is simply
   * not found again below. */
  struct blob_list bad = { 0 };
  if (o->verify_digests)
    {
      struct blob_list all = { 0 };
      rc = content_walk (store, &ctx, NULL, collect_blob, &all, err);
      for (size_t i = 0; rc == 0 && i < all.n; i++)
        {
          char got[80] = "";
          _cleanup_error_ berth_error *e = NULL;
          char *why = NULL;
          if (strncmp (all.v[i].digest, "sha256:", 7) != 0)
            continue;
          if (blob_hash (store, all.v[i].digest, got, &e) < 0)
            {
              if (e && e->code == BERTH_E_NOTFOUND)
                continue;
              if (asprintf (&why, "cannot be read: %s", berth_error_message (e)) < 0)
                why = NULL;
            }
          else if (strcmp (got, all.v[i].digest) != 0 && asprintf (&why, "its content hashes to %s", got) < 0)
            why = NULL;
          if (why)
            {
              struct berth_content_info info = { .size = sizeof info, .blob_size = all.v[i].size };
              snprintf (info.digest, sizeof info.digest, "%s", all.v[i].digest);
              if (collect_blob (&info, &bad) == 0)
                bad.v[bad.n - 1].problem = why;
              else
                free (why);
            }
        }
      blob_list_clear (&all);
      blob_sort (&bad);
      if (rc < 0)
        {
          blob_list_clear (&bad);
          return rc;
        }
    }
  /* The lock keeps a writer's commit and its record together (meta.h). */
  meta_lock (d->meta);
  rc = content_walk (store, &ctx, NULL, collect_blob, &blobs, err);
  blob_sort (&blobs);
  if (rc == 0)
    rc = meta_namespace_list (d->meta, &nss, &nns, err);

  /* Records against blobs: sizes, then the blobs' own digests. */
  for (size_t i = 0; rc == 0 && i < nns; i++)
    {
      struct meta_content *cs = NULL;
      size_t nc = 0;
      rc = meta_content_list (d->meta, nss[i].name, NULL, 0, &cs, &nc, err);
      for (size_t j = 0; rc == 0 && j < nc; j++)
        {
          r->records++;
          struct blob *b = blob_find (&blobs, cs[j].digest);
          if (b && !b->gone && b->size != cs[j].size)
            {
              ssize_t it = report_add (r, "blob", NULL, b->digest, b->size,
                                       "%" PRId64 " bytes on disk, the record in namespace %s says %" PRId64,
                                       b->size, nss[i].name, cs[j].size);
              b->recorded = true;
              if (o->repair)
                {
                  _cleanup_free_ char *dest = NULL;
                  _cleanup_error_ berth_error *e = NULL;
                  if (quarantine_blob (r, root, store, b->digest, &dest, &e) == 0)
                    {
                      b->gone = true;
                      item_done (r, it, "quarantined");
                      item_path (r, it, dest);
                    }
                  else
                    log_warning ("recovery: quarantining blob %s: %s", b->digest, berth_error_message (e));
                }
            }
          if (b)
            b->recorded = true;
        }
      meta_contents_free (cs, nc);
    }
  for (size_t i = 0; rc == 0 && i < blobs.n; i++)
    {
      struct blob *b = &blobs.v[i];
      if (b->gone)
        continue;
      r->blobs++;
      struct blob *pb = blob_find (&bad, b->digest);
      if (pb)
        {
          ssize_t it = report_add (r, "blob", NULL, b->digest, b->size, "%s", pb->problem);
          if (o->repair && strncmp (pb->problem, "its content", 11) == 0)
            {
              _cleanup_free_ char *dest = NULL;
              _cleanup_error_ berth_error *e2 = NULL;
              if (quarantine_blob (r, root, store, b->digest, &dest, &e2) == 0)
                {
                  b->gone = true;
                  item_done (r, it, "quarantined");
                  item_path (r, it, dest);
                }
              else
                log_warning ("recovery: quarantining blob %s: %s", b->digest, berth_error_message (e2));
            }
          continue;
        }
      if (!b->recorded && !o->drop_records)
        continue; /* start-up: GC's business */
      if (!b->recorded)
        {
          /* A commit whose record never came (crash between the two), or
           * content whose records were deleted: GC collects it too. */
          ssize_t it = report_add (r, "blob", NULL, b->digest, b->size, "no namespace has a record for it");
          if (o->repair)
            {
              _cleanup_free_ char *dest = NULL;
              _cleanup_error_ berth_error *e2 = NULL;
              if (quarantine_blob (r, root, store, b->digest, &dest, &e2) == 0)
                {
                  b->gone = true;
                  item_done (r, it, "quarantined");
                  item_path (r, it, dest);
                }
            }
        }
    }

  /* Records that point at nothing. */
  for (size_t i = 0; rc == 0 && i < nns; i++)
    {
      const char *ns = nss[i].name;
      struct meta_content *cs = NULL;
      size_t nc = 0;
      rc = meta_content_list (d->meta, ns, NULL, 0, &cs, &nc, err);
      for (size_t j = 0; rc == 0 && j < nc; j++)
        {
          struct blob *b = blob_find (&blobs, cs[j].digest);
          if (b && !b->gone)
            continue;
          ssize_t it = report_add (r, "content", ns, cs[j].digest, cs[j].size, "the record points at a missing blob");
          if (!(o->repair && o->drop_records))
            continue;
          json_object *jo = json_object_new_object ();
          json_object_object_add (jo, "digest", json_object_new_string (cs[j].digest));
          json_object_object_add (jo, "size", json_object_new_int64 (cs[j].size));
          json_object_object_add (jo, "labels", labels_json (&cs[j].labels));
          _cleanup_free_ char *saved = NULL;
          _cleanup_error_ berth_error *e = NULL;
          if (quarantine_record (r, root, "content", ns, cs[j].digest, jo, &saved, &e) == 0
              && meta_content_delete (d->meta, ns, cs[j].digest, &e) == 0)
            {
              item_done (r, it, "record dropped");
              item_path (r, it, saved);
            }
          json_object_put (jo);
        }
      meta_contents_free (cs, nc);
      struct meta_image *imgs = NULL;
      size_t ni = 0;
      if (rc == 0)
        rc = meta_image_list (d->meta, ns, NULL, 0, &imgs, &ni, err);
      for (size_t j = 0; rc == 0 && j < ni; j++)
        {
          r->records++;
          struct blob *b = blob_find (&blobs, imgs[j].target.digest);
          if (b && !b->gone)
            continue;
          ssize_t it = report_add (r, "image", ns, imgs[j].name, imgs[j].target.size,
                                   "its target %s is missing from the content store", imgs[j].target.digest);
          if (!(o->repair && o->drop_records))
            continue;
          json_object *jo = json_object_new_object ();
          json_object_object_add (jo, "name", json_object_new_string (imgs[j].name));
          json_object_object_add (jo, "media_type", json_object_new_string (imgs[j].target.media_type ? imgs[j].target.media_type : ""));
          json_object_object_add (jo, "digest", json_object_new_string (imgs[j].target.digest));
          json_object_object_add (jo, "size", json_object_new_int64 (imgs[j].target.size));
          json_object_object_add (jo, "labels", labels_json (&imgs[j].labels));
          _cleanup_free_ char *saved = NULL;
          _cleanup_error_ berth_error *e = NULL;
          if (quarantine_record (r, root, "image", ns, imgs[j].name, jo, &saved, &e) == 0
              && meta_image_delete (d->meta, ns, imgs[j].name, &e) == 0)
            {
              item_done (r, it, "record dropped (pull the image again)");
              item_path (r, it, saved);
            }
          json_object_put (jo);
        }
      meta_images_free (imgs, ni);
    }
  meta_unlock (d->meta);
  meta_namespaces_free (nss, nns);
  blob_list_clear (&blobs);
  blob_list_clear (&bad);
  if (rc < 0)
    return rc;

  /* Ingests nobody wrote to for a day. */
  struct ingest_list ing = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  if (content_list_statuses (store, &ctx, NULL, collect_ingest, &ing, &e) == 0)
    {
      int64_t now = now_ns ();
      for (size_t i = 0; i < ing.n; i++)
        {
          const struct berth_content_status *st = &ing.v[i];
          if (now - st->updated_at < FSCK_INGEST_STALE_NS)
            continue;
          ssize_t it = report_add (r, "ingest", NULL, st->ref, st->offset, "not written for %" PRId64 " hours",
                                   (now - st->updated_at) / (INT64_C (3600) * 1000000000));
          _cleanup_error_ berth_error *e2 = NULL;
          if (o->repair && content_abort (store, &ctx, st->ref, &e2) == 0)
            item_done (r, it, "aborted (a partial download: the next pull fetches it again)");
        }
    }
  free (ing.v);
  return 0;
}

/* ---- snapshots ----------------------------------------------------------- */

struct snap_entry
{
  char *ns, *key; /* of the record that names it, when one does */
  char *name;
  char *parent;
  uint32_t kind;
  bool known;
  bool gone;
};

struct snap_list
{
  struct snap_entry *v;
  size_t n;
};

static int
collect_snap (const struct berth_snapshot_info *info, void *data)
{
  struct snap_list *l = data;
  struct snap_entry *v = realloc (l->v, (l->n + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  l->v = v;
  v[l->n] = (struct snap_entry){ .name = strdup (info->name), .parent = strdup (info->parent), .kind = info->kind };
  if (v[l->n].name == NULL || v[l->n].parent == NULL)
    {
      free (v[l->n].name);
      free (v[l->n].parent);
      return BERTH_E_NOMEM;
    }
  l->n++;
  return 0;
}

static void
snap_list_clear (struct snap_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    {
      free (l->v[i].name);
      free (l->v[i].parent);
      free (l->v[i].ns);
      free (l->v[i].key);
    }
  free (l->v);
  memset (l, 0, sizeof *l);
}

static int
snap_cmp (const void *a, const void *b)
{
  return strcmp (((const struct snap_entry *) a)->name, ((const struct snap_entry *) b)->name);
}

static struct snap_entry *
snap_find (struct snap_list *l, const char *name)
{
  struct snap_entry key = { .name = (char *) name };
  return l->n ? bsearch (&key, l->v, l->n, sizeof *l->v, snap_cmp) : NULL;
}

/* The first absolute path a mount needs that does not exist, or NULL. */
static char *
mount_missing_path (const berth_mounts *ms)
{
  for (size_t i = 0; i < ms->n; i++)
    {
      const struct berth_mount *m = &ms->items[i];
      struct stat st;
      if (m->source && m->source[0] == '/' && strcmp (m->type ? m->type : "", "overlay") != 0
          && stat (m->source, &st) < 0)
        return strdup (m->source);
      for (char **opt = m->options; opt && *opt; opt++)
        {
          const char *v = NULL;
          if (strncmp (*opt, "upperdir=", 9) == 0 || strncmp (*opt, "workdir=", 8) == 0
              || strncmp (*opt, "lowerdir=", 9) == 0)
            v = strchr (*opt, '=') + 1;
          if (v == NULL)
            continue;
          _cleanup_free_ char *copy = strdup (v);
          char *save = NULL;
          for (char *p = copy ? strtok_r (copy, ":", &save) : NULL; p; p = strtok_r (NULL, ":", &save))
            if (p[0] == '/' && stat (p, &st) < 0)
              return strdup (p);
        }
    }
  return NULL;
}

static const char *
snap_kind_name (uint32_t kind)
{
  switch (kind)
    {
    case BERTH_SNAPSHOT_VIEW: return "view";
    case BERTH_SNAPSHOT_ACTIVE: return "active";
    case BERTH_SNAPSHOT_COMMITTED: return "committed";
    default: return "unknown kind";
    }
}

static bool
has_live_child (struct snap_list *l, const char *name)
{
  for (size_t i = 0; i < l->n; i++)
    if (!l->v[i].gone && strcmp (l->v[i].parent, name) == 0)
      return true;
  return false;
}

static json_object *
snapshot_json (const char *snapshotter, const struct meta_snapshot *s)
{
  json_object *jo = json_object_new_object ();
  json_object_object_add (jo, "snapshotter", json_object_new_string (snapshotter));
  json_object_object_add (jo, "key", json_object_new_string (s->key));
  json_object_object_add (jo, "backend", json_object_new_string (s->backend));
  json_object_object_add (jo, "parent", json_object_new_string (s->parent ? s->parent : ""));
  json_object_object_add (jo, "kind", json_object_new_int (s->kind));
  json_object_object_add (jo, "labels", labels_json (&s->labels));
  return jo;
}

static int
check_snapshotter (struct daemon *d, plugin *p, const struct fsck_opts *o, const struct meta_namespace *nss,
                   size_t nns, struct fsck_report *r, berth_error **err)
{
  const char *sn = p->desc.id;
  berth_ctx ctx;
  ctx_init (&ctx, NULL, NULL);
  struct snap_list pl = { 0 };
  int rc = snapshotter_walk (p, &ctx, NULL, collect_snap, &pl, err);
  if (pl.n > 1)
    qsort (pl.v, pl.n, sizeof *pl.v, snap_cmp);

  /* Records against the plugin's snapshots. */
  for (size_t i = 0; rc == 0 && i < nns; i++)
    {
      struct meta_snapshot *ss = NULL;
      size_t n = 0;
      rc = meta_snapshot_list (d->meta, nss[i].name, sn, NULL, 0, &ss, &n, err);
      /* Children first, so that dropping a broken chain works in one run. */
      for (size_t j = n; rc == 0 && j-- > 0;)
        {
          r->records++;
          struct snap_entry *e = snap_find (&pl, ss[j].backend);
          if (e)
            {
              e->known = true;
              free (e->ns);
              free (e->key);
              e->ns = strdup (nss[i].name);
              e->key = strdup (ss[j].key);
              continue;
            }
          ssize_t it = report_add (r, "snapshot", nss[i].name, ss[j].key, 0,
                                   "the record points at snapshot `%s`, which %s does not have", ss[j].backend,
                                   p->full_name);
          if (!(o->repair && o->drop_records))
            continue;
          json_object *jo = snapshot_json (sn, &ss[j]);
          _cleanup_free_ char *saved = NULL, *id = NULL;
          _cleanup_error_ berth_error *e2 = NULL;
          if (asprintf (&id, "%s/%s", sn, ss[j].key) >= 0
              && quarantine_record (r, d->cfg->root, "snapshot", nss[i].name, id, jo, &saved, &e2) == 0
              && meta_snapshot_remove (d->meta, nss[i].name, sn, ss[j].key, NULL, &e2) == 0)
            {
              item_done (r, it, "record dropped");
              item_path (r, it, saved);
            }
          else if (e2)
            log_warning ("fsck: snapshot %s/%s: %s", nss[i].name, ss[j].key, berth_error_message (e2));
          json_object_put (jo);
        }
      meta_snapshots_free (ss, n);
    }

  /* The plugin's snapshots: data present, and recorded somewhere. */
  for (size_t i = 0; rc == 0 && i < pl.n; i++)
    {
      struct snap_entry *e = &pl.v[i];
      r->snapshots++;
      if (e->kind == BERTH_SNAPSHOT_COMMITTED)
        continue;
      berth_mounts ms = { 0 };
      _cleanup_error_ berth_error *e2 = NULL;
      if (snapshotter_mounts (p, &ctx, e->name, &ms, &e2) < 0)
        {
          report_add (r, "snapshot", NULL, e->name, 0, "%s cannot mount it: %s", p->full_name,
                      berth_error_message (e2));
          continue;
        }
      _cleanup_free_ char *missing = mount_missing_path (&ms);
      mounts_clear (&ms);
      if (missing == NULL)
        continue;
      ssize_t it = report_add (r, "snapshot", e->ns, e->key ? e->key : e->name, 0, "its data %s (%s snapshot `%s`) is missing",
                               missing, p->full_name, e->name);
      if (!(o->repair && o->drop_records) || has_live_child (&pl, e->name))
        continue;
      /* Nothing left to keep but the record: save it, then drop record and plugin snapshot. */
      _cleanup_free_ char *saved = NULL;
      _cleanup_error_ berth_error *e3 = NULL;
      if (e->known)
        {
          struct meta_snapshot ms2 = { 0 };
          if (meta_snapshot_get (d->meta, e->ns, sn, e->key, &ms2, &e3) == 0)
            {
              json_object *jo = snapshot_json (sn, &ms2);
              _cleanup_free_ char *id = NULL;
              if (asprintf (&id, "%s/%s", sn, e->key) < 0
                  || quarantine_record (r, d->cfg->root, "snapshot", e->ns, id, jo, &saved, &e3) < 0
                  || meta_snapshot_remove (d->meta, e->ns, sn, e->key, NULL, &e3) < 0)
                saved = (free (saved), NULL);
              json_object_put (jo);
            }
          meta_snapshot_clear (&ms2);
          if (saved == NULL)
            continue;
        }
      int k = snapshotter_remove (p, &ctx, e->name, &e3);
      e->gone = e->known = true;
      if (k == 0 || k == BERTH_E_NOTFOUND)
        {
          item_done (r, it, saved ? "record dropped, snapshot removed" : "snapshot removed");
          item_path (r, it, saved);
        }
    }
  /* Orphans, children before parents: derived data GC would remove too. */
  for (bool progress = true; rc == 0 && progress;)
    {
      progress = false;
      for (size_t i = 0; i < pl.n; i++)
        {
          struct snap_entry *e = &pl.v[i];
          if (e->known || e->gone || has_live_child (&pl, e->name))
            continue;
          e->gone = true;
          progress = true;
          struct berth_snapshot_usage u = { .size = sizeof u };
          _cleanup_error_ berth_error *e2 = NULL;
          snapshotter_usage (p, &ctx, e->name, &u, &e2);
          ssize_t it = report_add (r, "snapshot", NULL, e->name, u.bytes > 0 ? u.bytes : 0,
                                   "no namespace has a record for this %s snapshot (%s)", sn,
                                   snap_kind_name (e->kind));
          if (!o->repair)
            continue;
          _cleanup_error_ berth_error *e3 = NULL;
          int k = snapshotter_remove (p, &ctx, e->name, &e3);
          if (k == 0 || k == BERTH_E_NOTFOUND)
            item_done (r, it, "removed (derived data: unpacked again from its blobs when needed)");
          else
            log_warning ("recovery: removing orphan snapshot %s of %s: %s", e->name, p->full_name,
                         berth_error_message (e3));
        }
    }
  snap_list_clear (&pl);
  return rc;
}

static int
check_containers (struct daemon *d, const struct fsck_opts *o, const struct meta_namespace *nss, size_t nns,
                  struct fsck_report *r, berth_error **err)
{
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < nns; i++)
    {
      struct meta_container *cs = NULL;
      size_t n = 0;
      rc = meta_container_list (d->meta, nss[i].name, NULL, 0, &cs, &n, err);
      for (size_t j = 0; rc == 0 && j < n; j++)
        {
          r->records++;
          if (cs[j].snapshot_key == NULL || cs[j].snapshot_key[0] == '\0' || cs[j].snapshotter == NULL)
            continue;
          struct meta_snapshot s = { 0 };
          _cleanup_error_ berth_error *e = NULL;
          int k = meta_snapshot_get (d->meta, nss[i].name, cs[j].snapshotter, cs[j].snapshot_key, &s, &e);
          meta_snapshot_clear (&s);
          if (k != BERTH_E_NOTFOUND)
            continue;
          bool running = d->tasks && tasks_exists (d->tasks, nss[i].name, cs[j].id);
          ssize_t it = report_add (r, "container", nss[i].name, cs[j].id, 0, "its snapshot %s/%s does not exist%s",
                                   cs[j].snapshotter, cs[j].snapshot_key, running ? " (it has a task)" : "");
          if (!(o->repair && o->drop_records) || running)
            continue;
          json_object *jo = json_object_new_object ();
          json_object_object_add (jo, "id", json_object_new_string (cs[j].id));
          json_object_object_add (jo, "image", json_object_new_string (cs[j].image ? cs[j].image : ""));
          json_object_object_add (jo, "runtime", json_object_new_string (cs[j].runtime_name ? cs[j].runtime_name : ""));
          json_object_object_add (jo, "snapshotter", json_object_new_string (cs[j].snapshotter));
          json_object_object_add (jo, "snapshot_key", json_object_new_string (cs[j].snapshot_key));
          json_object_object_add (jo, "spec_type", json_object_new_string (cs[j].spec.type_url ? cs[j].spec.type_url : ""));
          json_object_object_add (jo, "spec", json_object_new_string_len ((const char *) cs[j].spec.value,
                                                                         (int) cs[j].spec.len));
          json_object_object_add (jo, "labels", labels_json (&cs[j].labels));
          _cleanup_free_ char *saved = NULL;
          if (quarantine_record (r, d->cfg->root, "container", nss[i].name, cs[j].id, jo, &saved, &e) == 0
              && meta_container_delete (d->meta, nss[i].name, cs[j].id, &e) == 0)
            {
              item_done (r, it, "record dropped (it could not run)");
              item_path (r, it, saved);
            }
          json_object_put (jo);
        }
      meta_containers_free (cs, n);
    }
  return rc;
}

int
fsck_store (struct daemon *d, const struct fsck_opts *o, struct fsck_report *r, berth_error **err)
{
  r->repair = o->repair;
  int rc = check_content (d, o, r, err);
  if (rc < 0)
    return berth_error_wrap (err, "checking content");
  struct meta_namespace *nss = NULL;
  size_t nns = 0;
  /* The exclusive lock: no snapshot is half-made (plugin done, record not yet). */
  snaps_lock_exclusive ();
  rc = meta_namespace_list (d->meta, &nss, &nns, err);
  for (size_t i = 0; rc == 0 && d->reg && i < registry_count (d->reg); i++)
    {
      plugin *p = registry_at (d->reg, i);
      if (p->desc.kind == BERTH_KIND_SNAPSHOTTER && p->status == PLUGIN_OK)
        {
          rc = check_snapshotter (d, p, o, nss, nns, r, err);
          if (rc < 0)
            berth_error_wrap (err, "checking %s", p->full_name);
        }
    }
  if (rc == 0)
    rc = check_containers (d, o, nss, nns, r, err);
  snaps_unlock_exclusive ();
  meta_namespaces_free (nss, nns);
  return rc;
}

/* ---- start-up ------------------------------------------------------------ */

static void
log_report (const char *what, const struct fsck_report *r)
{
  for (size_t i = 0; i < r->n; i++)
    {
      const struct fsck_item *it = &r->items[i];
      log_warning ("recovery: %s %s%s%s: %s; %s%s%s", it->kind, it->ns ? it->ns : "", it->ns ? "/" : "", it->id,
                   it->problem, it->action ? it->action : "left in place (see `berth fsck`)",
                   it->path ? " -> " : "", it->path ? it->path : "");
    }
  if (r->n)
    log_warning ("recovery: %s: %zu problem%s, %zu resolved%s%s", what, r->n, r->n == 1 ? "" : "s",
                 r->n - fsck_report_unresolved (r), r->quarantine ? "; quarantine " : "",
                 r->quarantine ? r->quarantine : "");
  else
    log_info ("recovery: %s: clean (%" PRId64 " files, %" PRId64 " records, %" PRId64 " blobs, %" PRId64
              " snapshots checked)",
              what, r->files, r->records, r->blobs, r->snapshots);
}

/* One quarantine directory per start-up: the store phase reuses the one the
 * files phase made.  Start-up is single-threaded. */
static char *startup_quarantine;

void
fsck_startup_files (const char *root, const char *state)
{
  struct fsck_opts o = { .repair = true };
  struct fsck_report r = { 0 };
  _cleanup_error_ berth_error *err = NULL;
  if (fsck_files (root, state, &o, &r, &err) < 0)
    log_error ("recovery: checking files: %s", berth_error_message (err));
  log_report ("metadata and task state", &r);
  free (startup_quarantine);
  startup_quarantine = TAKE_PTR (r.quarantine);
  fsck_report_clear (&r);
}

void
fsck_startup_store (struct daemon *d)
{
  /* Sizes and existence only: hashing every blob at each start is too slow
   * for big stores (`berth fsck` does it). */
  struct fsck_opts o = { .repair = true, .verify_digests = getenv ("BERTH_FSCK_VERIFY_DIGESTS") != NULL };
  struct fsck_report r = { .quarantine = TAKE_PTR (startup_quarantine) };
  _cleanup_error_ berth_error *err = NULL;
  if (fsck_store (d, &o, &r, &err) < 0)
    log_error ("recovery: checking the store: %s", berth_error_message (err));
  log_report ("store", &r);
  fsck_report_clear (&r);
}

/* ---- disk usage ---------------------------------------------------------- */

static int64_t du_total;

static int
du_entry (const char *path, const struct stat *st, int type, struct FTW *f)
{
  (void) path;
  (void) type;
  (void) f;
  du_total += (int64_t) st->st_blocks * 512;
  return 0;
}

int64_t
fsck_du (const char *path)
{
  /* nftw has no user pointer: serialise the callers. */
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock (&lock);
  du_total = 0;
  nftw (path, du_entry, 16, FTW_PHYS | FTW_MOUNT);
  int64_t v = du_total;
  pthread_mutex_unlock (&lock);
  return v;
}

void
df_report_clear (struct df_report *r)
{
  for (size_t i = 0; i < r->n_rows; i++)
    {
      free (r->rows[i].type);
      free (r->rows[i].name);
    }
  for (size_t i = 0; i < r->n_items; i++)
    {
      free (r->items[i].type);
      free (r->items[i].ns);
      free (r->items[i].name);
      free (r->items[i].detail);
    }
  free (r->rows);
  free (r->items);
  memset (r, 0, sizeof *r);
}

static struct df_row *
df_row (struct df_report *r, const char *type, const char *name)
{
  struct df_row *v = realloc (r->rows, (r->n_rows + 1) * sizeof *v);
  if (v == NULL)
    return NULL;
  r->rows = v;
  v[r->n_rows] = (struct df_row){ .type = strdup (type), .name = strdup (name) };
  return &v[r->n_rows++];
}

static void
df_item (struct df_report *r, const char *type, const char *ns, const char *name, int64_t size, const char *detail)
{
  struct df_item *v = realloc (r->items, (r->n_items + 1) * sizeof *v);
  if (v == NULL)
    return;
  r->items = v;
  v[r->n_items++] = (struct df_item){ .type = strdup (type), .ns = strdup (ns ? ns : ""), .name = strdup (name),
                                      .size = size, .detail = strdup (detail ? detail : "") };
}

int
fsck_df (struct daemon *d, bool verbose, struct df_report *ret, berth_error **err)
{
  struct df_report r = { 0 };
  plugin *store = NULL;
  int rc = gc_content_store (d, &store, err);
  if (rc < 0)
    return rc;
  berth_ctx ctx;
  ctx_init (&ctx, NULL, NULL);
  struct blob_list blobs = { 0 };
  struct meta_namespace *nss = NULL;
  size_t nns = 0;
  /* No meta_lock: df only reads, and snaps_usage takes the snapshot lock,
   * which GC takes before meta_lock (lock order). */
  rc = content_walk (store, &ctx, NULL, collect_blob, &blobs, err);
  blob_sort (&blobs);
  if (rc == 0)
    rc = meta_namespace_list (d->meta, &nss, &nns, err);
  int64_t nimages = 0, nused = 0, img_bytes = 0, ncont = 0, nrunning = 0, cont_bytes = 0;
  for (size_t i = 0; rc == 0 && i < nns; i++)
    {
      struct meta_content *cs = NULL;
      size_t nc = 0;
      rc = meta_content_list (d->meta, nss[i].name, NULL, 0, &cs, &nc, err);
      for (size_t j = 0; rc == 0 && j < nc; j++)
        {
          struct blob *b = blob_find (&blobs, cs[j].digest);
          if (b)
            b->recorded = true;
        }
      meta_contents_free (cs, nc);
      struct meta_image *imgs = NULL;
      size_t ni = 0;
      struct meta_container *ctrs = NULL;
      size_t nctr = 0;
      if (rc == 0)
        rc = meta_image_list (d->meta, nss[i].name, NULL, 0, &imgs, &ni, err);
      if (rc == 0)
        rc = meta_container_list (d->meta, nss[i].name, NULL, 0, &ctrs, &nctr, err);
      for (size_t j = 0; rc == 0 && j < ni; j++)
        {
          nimages++;
          bool used = false;
          for (size_t k = 0; k < nctr && !used; k++)
            used = ctrs[k].image && strcmp (ctrs[k].image, imgs[j].name) == 0;
          nused += used;
          if (verbose)
            df_item (&r, "image", nss[i].name, imgs[j].name, imgs[j].target.size, imgs[j].target.digest);
        }
      for (size_t k = 0; rc == 0 && k < nctr; k++)
        {
          ncont++;
          bool running = d->tasks && tasks_exists (d->tasks, nss[i].name, ctrs[k].id);
          nrunning += running;
          int64_t sz = 0;
          plugin *sp = NULL;
          _cleanup_error_ berth_error *e = NULL;
          if (ctrs[k].snapshotter && ctrs[k].snapshot_key && *ctrs[k].snapshot_key
              && snaps_plugin (d->reg, ctrs[k].snapshotter, &sp, &e) == 0)
            {
              struct snaps s = { .m = d->meta, .p = sp, .snapshotter = ctrs[k].snapshotter, .ns = nss[i].name };
              struct berth_snapshot_usage u = { .size = sizeof u };
              if (snaps_usage (&s, ctrs[k].snapshot_key, &u, &e) == 0)
                sz = u.bytes;
            }
          cont_bytes += sz;
          if (verbose)
            df_item (&r, "container", nss[i].name, ctrs[k].id, sz, running ? "task" : "no task");
        }
      meta_images_free (imgs, ni);
      meta_containers_free (ctrs, nctr);
    }
  int64_t blob_bytes = 0, unref_bytes = 0;
  for (size_t i = 0; i < blobs.n; i++)
    {
      blob_bytes += blobs.v[i].size;
      if (blobs.v[i].recorded)
        img_bytes += blobs.v[i].size;
      else
        unref_bytes += blobs.v[i].size;
      if (verbose)
        df_item (&r, "blob", NULL, blobs.v[i].digest, blobs.v[i].size, blobs.v[i].recorded ? "" : "unreferenced");
    }
  struct df_row *row;
  if (rc == 0 && (row = df_row (&r, "images", "")))
    *row = (struct df_row){ row->type, row->name, nimages, nused, img_bytes, -1 };
  if (rc == 0 && (row = df_row (&r, "containers", "")))
    *row = (struct df_row){ row->type, row->name, ncont, nrunning, cont_bytes, -1 };

  /* Snapshots per snapshotter: the plugin's own accounting. */
  for (size_t i = 0; rc == 0 && d->reg && i < registry_count (d->reg); i++)
    {
      plugin *p = registry_at (d->reg, i);
      if (p->desc.kind != BERTH_KIND_SNAPSHOTTER || p->status != PLUGIN_OK)
        continue;
      struct snap_list pl = { 0 };
      _cleanup_error_ berth_error *e = NULL;
      snapshotter_walk (p, &ctx, NULL, collect_snap, &pl, &e);
      int64_t bytes = 0, active = 0, orphan = 0;
      for (size_t j = 0; j < pl.n; j++)
        {
          struct berth_snapshot_usage u = { .size = sizeof u };
          _cleanup_error_ berth_error *e2 = NULL;
          if (snapshotter_usage (p, &ctx, pl.v[j].name, &u, &e2) < 0)
            u.bytes = 0;
          bytes += u.bytes;
          active += pl.v[j].kind != BERTH_SNAPSHOT_COMMITTED;
          bool known = true;
          _cleanup_error_ berth_error *e3 = NULL;
          if (meta_snapshot_backend_known (d->meta, p->desc.id, pl.v[j].name, &known, &e3) == 0 && !known)
            orphan += u.bytes;
          if (verbose)
            df_item (&r, "snapshot", NULL, pl.v[j].name, u.bytes, p->desc.id);
        }
      if ((row = df_row (&r, "snapshots", p->desc.id)))
        *row = (struct df_row){ row->type, row->name, (int64_t) pl.n, active, bytes, orphan };
      snap_list_clear (&pl);
    }
  if (rc == 0 && (row = df_row (&r, "content", "")))
    *row = (struct df_row){ row->type, row->name, (int64_t) blobs.n, 0, blob_bytes, unref_bytes };
  blob_list_clear (&blobs);
  meta_namespaces_free (nss, nns);

  struct ingest_list ing = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int64_t ing_bytes = 0;
  if (rc == 0 && content_list_statuses (store, &ctx, NULL, collect_ingest, &ing, &e) == 0)
    for (size_t i = 0; i < ing.n; i++)
      {
        ing_bytes += ing.v[i].offset;
        if (verbose)
          df_item (&r, "ingest", NULL, ing.v[i].ref, ing.v[i].offset, ing.v[i].expected);
      }
  if (rc == 0 && (row = df_row (&r, "ingests", "")))
    *row = (struct df_row){ row->type, row->name, (int64_t) ing.n, (int64_t) ing.n, ing_bytes, ing_bytes };
  free (ing.v);

  _cleanup_free_ char *qdir = NULL;
  if (rc == 0 && asprintf (&qdir, "%s/%s", d->cfg->root, FSCK_QUARANTINE_DIR) >= 0)
    {
      int64_t nq = 0;
      DIR *qd = opendir (qdir);
      struct dirent *qe;
      while (qd && (qe = readdir (qd)) != NULL)
        nq += qe->d_name[0] != '.';
      if (qd)
        closedir (qd);
      int64_t qbytes = fsck_du (qdir);
      if ((row = df_row (&r, "quarantine", "")))
        *row = (struct df_row){ row->type, row->name, nq, 0, qbytes, qbytes };
    }
  if (rc == 0 && (row = df_row (&r, "build-cache", "")))
    *row = (struct df_row){ row->type, row->name, 0, 0, -1, -1 };
  if (rc < 0)
    {
      df_report_clear (&r);
      return rc;
    }
  *ret = r;
  return 0;
}
