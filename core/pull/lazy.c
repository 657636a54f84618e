/* core/pull: layers pulled lazily through a remote snapshotter (lazy.h). */
#include <config.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cleanup.h"
#include "daemon.h"
#include "events.h"
#include "fs.h"
#include "log.h"
#include "metadata/meta.h"
#include "plugin-calls.h"
#include "pull/lazy.h"
#include "registry.h"

/* ---- the files of secrets ------------------------------------------------ */

/* "<state>/io.berth.remote/<ns>-<alg>-<hex>.<ext>" */
static char *
secret_path (const char *state_dir, const char *ns, const char *digest, const char *ext)
{
  char *p = NULL;
  const char *colon = strchr (digest, ':');
  if (colon == NULL
      || asprintf (&p, "%s/" LAZY_STATE_DIR "/%s-%.*s-%s.%s", state_dir, ns, (int) (colon - digest), digest, colon + 1,
                   ext)
             < 0)
    return NULL;
  return p;
}

/* Write data to path, mode 0600, replacing it at once (rename). */
static int
write_secret (const char *path, const char *data, size_t len, berth_error **err)
{
  _cleanup_free_ char *tmp = NULL;
  if (asprintf (&tmp, "%s.%d.tmp", path, (int) getpid ()) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  _cleanup_close_ int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "creating %s", tmp);
  size_t off = 0;
  while (off < len)
    {
      ssize_t n = write (fd, data + off, len - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int e = n < 0 ? errno : EIO;
          unlink (tmp);
          return berth_error_set (err, berth_errcode_from_errno (e), e, "writing %s", tmp);
        }
      off += (size_t) n;
    }
  if (rename (tmp, path) < 0)
    {
      int e = errno;
      unlink (tmp);
      return berth_error_set (err, berth_errcode_from_errno (e), e, "renaming %s to %s", tmp, path);
    }
  return 0;
}

void
lazy_forget (const char *state_dir, const char *ns, const char *digest)
{
  static const char *const exts[] = { "headers", "ca.pem" };
  for (size_t i = 0; i < sizeof exts / sizeof *exts; i++)
    {
      _cleanup_free_ char *p = secret_path (state_dir, ns, digest, exts[i]);
      if (p && unlink (p) < 0 && errno != ENOENT)
        log_warning ("removing %s: %s", p, strerror (errno));
    }
}

int
lazy_labels (const char *state_dir, const char *ns, const char *digest, int64_t size, const char *toc_digest,
             const struct registry_blob_access *a, berth_labels *l, berth_error **err)
{
  char num[32];
  snprintf (num, sizeof num, "%" PRId64, size);
  int r = labels_set (l, LAZY_LABEL_URL, a->url);
  if (r == 0)
    r = labels_set (l, LAZY_LABEL_SIZE, num);
  if (r == 0)
    r = labels_set (l, LAZY_LABEL_TOC_DIGEST, toc_digest);
  if (r == 0 && a->plain_http)
    r = labels_set (l, LAZY_LABEL_PLAIN_HTTP, "true");
  if (r < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (a->headers == NULL && a->ca_pem == NULL)
    return 0;
  _cleanup_free_ char *dir = NULL;
  if (asprintf (&dir, "%s/" LAZY_STATE_DIR, state_dir) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (mkdir (dir, 0700) < 0 && errno != EEXIST)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "creating %s", dir);
  if (a->headers)
    {
      _cleanup_free_ char *p = secret_path (state_dir, ns, digest, "headers");
      if (p == NULL)
        return berth_error_set (err, BERTH_E_INVALID, 0, "blob digest `%s`", digest);
      r = write_secret (p, a->headers, strlen (a->headers), err);
      if (r == 0)
        r = labels_set (l, LAZY_LABEL_HEADERS_FILE, p) < 0 ? berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "labels")
                                                            : 0;
      if (r < 0)
        return r;
    }
  if (a->ca_pem)
    {
      _cleanup_free_ char *p = secret_path (state_dir, ns, digest, "ca.pem");
      if (p == NULL)
        return berth_error_set (err, BERTH_E_INVALID, 0, "blob digest `%s`", digest);
      r = write_secret (p, a->ca_pem, a->ca_len, err);
      if (r == 0)
        r = labels_set (l, LAZY_LABEL_CA_FILE, p) < 0 ? berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "labels") : 0;
      if (r < 0)
        return r;
    }
  return 0;
}

/* ---- adopting a completed blob -------------------------------------------- */

static _Atomic (struct daemon *) lazy_daemon;

/* Digests being adopted now (a plugin publishes again until it sees the
 * blob in the store): one adoption at a time per blob. */
static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static char **inflight;
static size_t n_inflight;

struct adopt_job
{
  struct daemon *d;
  char *ns, *digest, *path, *diff_id;
  int64_t size;
};

static bool
inflight_take (const char *digest)
{
  pthread_mutex_lock (&inflight_lock);
  bool busy = false;
  for (size_t i = 0; i < n_inflight && !busy; i++)
    busy = strcmp (inflight[i], digest) == 0;
  char **v = busy ? NULL : realloc (inflight, (n_inflight + 1) * sizeof *v);
  char *dup = v ? strdup (digest) : NULL;
  if (v)
    inflight = v;
  if (dup)
    inflight[n_inflight++] = dup;
  pthread_mutex_unlock (&inflight_lock);
  return dup != NULL;
}

static void
inflight_drop (const char *digest)
{
  pthread_mutex_lock (&inflight_lock);
  for (size_t i = 0; i < n_inflight; i++)
    if (strcmp (inflight[i], digest) == 0)
      {
        free (inflight[i]);
        inflight[i] = inflight[--n_inflight];
        break;
      }
  if (n_inflight == 0)
    {
      free (inflight);
      inflight = NULL;
    }
  pthread_mutex_unlock (&inflight_lock);
}

static void
adopt_job_free (struct adopt_job *j)
{
  free (j->ns);
  free (j->digest);
  free (j->path);
  free (j->diff_id);
  free (j);
}

/* Worker thread: file the complete blob in the content store and record it
 * in the namespace, in one step under the metadata lock (GC sweeps a blob
 * without a record: it must never see one between the two). */
static void
adopt_work (void *data)
{
  struct adopt_job *j = data;
  struct daemon *d = j->d;
  _cleanup_error_ berth_error *e = NULL;
  plugin *store = registry_find_kind (d->reg, BERTH_KIND_CONTENT, "local");
  int r = 0;
  _cleanup_close_ int fd = open (j->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (store == NULL)
    r = berth_error_set (&e, BERTH_E_UNAVAILABLE, 0, "no content store");
  else if (fd < 0)
    r = berth_error_set (&e, berth_errcode_from_errno (errno), errno, "opening %s", j->path);
  if (r == 0)
    {
      berth_ctx ctx;
      ctx_init (&ctx, j->ns, NULL);
      berth_labels l = { 0 };
      if (j->diff_id && *j->diff_id && labels_set (&l, "containerd.io/uncompressed", j->diff_id) < 0)
        r = berth_error_set (&e, BERTH_E_NOMEM, ENOMEM, "out of memory");
      meta_lock (d->meta);
      if (r == 0)
        r = content_adopt (store, &ctx, fd, j->size, j->digest, NULL, &e);
      if (r == BERTH_E_EXISTS)
        {
          berth_error_free (e);
          e = NULL;
          r = 0;
        }
      if (r == 0)
        r = meta_content_add (d->meta, j->ns, j->digest, j->size, &l, &e);
      meta_unlock (d->meta);
      labels_clear (&l);
    }
  if (r == 0)
    {
      log_info ("lazily pulled layer %s is complete: filed in the content store (namespace %s)", j->digest, j->ns);
      lazy_forget (d->cfg->state, j->ns, j->digest);
    }
  else
    log_warning ("lazily pulled layer %s (namespace %s): filing %s in the content store: %s", j->digest, j->ns,
                 j->path, berth_error_message (e));
  inflight_drop (j->digest);
}

static void
adopt_done (void *data)
{
  adopt_job_free (data);
}

bool
lazy_publish (const char *ns, const char *topic, const char *const *fields)
{
  if (topic == NULL || strcmp (topic, LAZY_TOPIC_COMPLETE) != 0)
    return false;
  struct daemon *d = atomic_load (&lazy_daemon);
  const char *digest = events_field (fields, "digest"), *path = events_field (fields, "path");
  const char *size = events_field (fields, "size"), *diff_id = events_field (fields, "diff_id");
  char *end = NULL;
  long long n = size ? strtoll (size, &end, 10) : -1;
  if (d == NULL)
    return true; /* not serving yet or any more: the plugin publishes again */
  if (ns == NULL || digest == NULL || path == NULL || path[0] != '/' || end == NULL || *end != '\0' || n <= 0)
    {
      log_warning ("%s: ignored: it wants namespace, digest, an absolute path and size (got %s, %s, %s, %s)",
                   LAZY_TOPIC_COMPLETE, ns ? ns : "-", digest ? digest : "-", path ? path : "-", size ? size : "-");
      return true;
    }
  if (!inflight_take (digest))
    return true;
  struct adopt_job *j = calloc (1, sizeof *j);
  if (j)
    {
      j->d = d;
      j->size = n;
      j->ns = strdup (ns);
      j->digest = strdup (digest);
      j->path = strdup (path);
      j->diff_id = diff_id ? strdup (diff_id) : NULL;
    }
  if (j == NULL || j->ns == NULL || j->digest == NULL || j->path == NULL || (diff_id && j->diff_id == NULL)
      || workers_submit (d->workers, adopt_work, adopt_done, j) < 0)
    {
      log_warning ("lazily pulled layer %s: cannot adopt it now (out of memory or shutting down)", digest);
      if (j)
        adopt_job_free (j);
      inflight_drop (digest);
    }
  return true;
}

void
lazy_start (struct daemon *d)
{
  atomic_store (&lazy_daemon, d);
}

void
lazy_stop (void)
{
  atomic_store (&lazy_daemon, NULL);
}
