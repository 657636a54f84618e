/* core/pull: layers pulled lazily through a remote snapshotter (lazy.h). */
#include <config.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

static void refresh_drop (const char *ns, const char *digest);

void
lazy_forget (const char *state_dir, const char *ns, const char *digest)
{
  refresh_drop (ns, digest);
  static const char *const exts[] = { "headers", "ca.pem" };
  for (size_t i = 0; i < sizeof exts / sizeof *exts; i++)
    {
      _cleanup_free_ char *p = secret_path (state_dir, ns, digest, exts[i]);
      if (p && unlink (p) < 0 && errno != ENOENT)
        log_warning ("removing %s: %s", p, strerror (errno));
    }
}

static void refresh_add (const char *path, const char *ns, const char *digest, const struct lazy_source *src,
                         time_t expires);

int
lazy_labels (const char *state_dir, const char *ns, const char *digest, int64_t size, const char *toc_digest,
             const struct registry_blob_access *a, const struct lazy_source *src, berth_labels *l,
             berth_error **err)
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
      if (a->token_expires > 0 && src)
        refresh_add (p, ns, digest, src, a->token_expires);
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

/* ---- renewing Bearer tokens --------------------------------------------- */

/* A registry's tokens live minutes (Docker Hub: 300 s); a layer may take
 * longer to arrive.  berth-fuse reads its headers file again on a 401 when
 * the file changed, so keeping the file fresh is enough: each entry is one
 * lazily served blob whose headers hold a token, written again at about
 * 2/3 of the token's lifetime with a token from a new session (so the
 * credentials come from the same places a pull takes them), until the blob
 * is adopted (lazy_forget) or its file is gone.  In memory only: after a
 * berthd restart a layer still arriving keeps the last token written. */

#define REFRESH_RETRY_S 10         /* after a failed renewal */
#define REFRESH_GIVE_UP_S (7 * 86400) /* an entry never forgotten (image removed before complete) */

struct refresh
{
  struct refresh *next;
  char *path, *ns, *digest, *host, *repo;
  char *config_path, *username, *secret;
  bool plain_http;
  time_t at, created;
};

static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t refresh_cond = PTHREAD_COND_INITIALIZER;
static struct refresh *refreshes;
static pthread_t refresh_thread;
static bool refresh_started, refresh_stopping;

static void
refresh_clear (struct refresh *e)
{
  free (e->path);
  free (e->ns);
  free (e->digest);
  free (e->host);
  free (e->repo);
  free (e->config_path);
  free (e->username);
  if (e->secret)
    explicit_bzero (e->secret, strlen (e->secret));
  free (e->secret);
}

static void
refresh_free (struct refresh *e)
{
  if (e == NULL)
    return;
  refresh_clear (e);
  free (e);
}

static time_t
refresh_time (time_t now, time_t expires)
{
  time_t left = expires - now;
  return now + (left > 3 ? left * 2 / 3 : 1);
}

static char *
dup_or_null (const char *s, bool *failed)
{
  char *d = s ? strdup (s) : NULL;
  if (s && d == NULL)
    *failed = true;
  return d;
}

/* One renewal, without the lock: write e's headers file again. */
static int
refresh_one (const struct refresh *e, time_t *ret_expires, berth_error **err)
{
  struct registry_options ro = {
    .config_path = e->config_path, .username = e->username, .secret = e->secret, .plain_http = e->plain_http,
  };
  _cleanup_(registry_session_freep) registry_session *rs = NULL;
  int r = registry_session_new (e->host, &ro, &rs, err);
  struct registry_blob_access a;
  if (r == 0)
    r = registry_blob_access (rs, e->repo, e->digest, &a, err);
  if (r < 0)
    return r;
  if (a.headers)
    r = write_secret (e->path, a.headers, strlen (a.headers), err);
  *ret_expires = a.token_expires;
  registry_blob_access_clear (&a);
  return r;
}

static void *
refresh_main (void *data)
{
  (void) data;
  pthread_mutex_lock (&refresh_lock);
  while (!refresh_stopping)
    {
      time_t now = time (NULL), next = 0;
      struct refresh *due = NULL;
      for (struct refresh **pp = &refreshes; *pp;)
        {
          struct refresh *e = *pp;
          if (now - e->created > REFRESH_GIVE_UP_S || access (e->path, F_OK) < 0)
            {
              *pp = e->next;
              refresh_free (e);
              continue;
            }
          if (e->at <= now && due == NULL)
            due = e;
          else if (next == 0 || e->at < next)
            next = e->at;
          pp = &e->next;
        }
      if (due == NULL)
        {
          if (next == 0)
            pthread_cond_wait (&refresh_cond, &refresh_lock);
          else
            {
              struct timespec until = { .tv_sec = next };
              pthread_cond_timedwait (&refresh_cond, &refresh_lock, &until);
            }
          continue;
        }
      /* Renew a copy, without the lock: lazy_forget may drop the entry meanwhile. */
      bool failed = false;
      struct refresh copy = {
        .path = dup_or_null (due->path, &failed), .ns = dup_or_null (due->ns, &failed),
        .digest = dup_or_null (due->digest, &failed), .host = dup_or_null (due->host, &failed),
        .repo = dup_or_null (due->repo, &failed), .config_path = dup_or_null (due->config_path, &failed),
        .username = dup_or_null (due->username, &failed), .secret = dup_or_null (due->secret, &failed),
        .plain_http = due->plain_http,
      };
      due->at = now + REFRESH_RETRY_S;
      pthread_mutex_unlock (&refresh_lock);
      time_t expires = 0;
      _cleanup_error_ berth_error *e = NULL;
      int r = failed ? berth_error_set (&e, BERTH_E_NOMEM, ENOMEM, "out of memory") : refresh_one (&copy, &expires, &e);
      if (r < 0)
        log_warning ("lazily pulled layer %s (namespace %s): renewing its registry token: %s; trying again in %d s",
                     copy.digest ? copy.digest : "?", copy.ns ? copy.ns : "?", berth_error_message (e),
                     REFRESH_RETRY_S);
      else
        log_debug ("lazily pulled layer %s (namespace %s): registry token renewed%s", copy.digest, copy.ns,
                   expires > 0 ? "" : "; the registry no longer asks for one");
      pthread_mutex_lock (&refresh_lock);
      for (struct refresh **pp = &refreshes; *pp; pp = &(*pp)->next)
        if (copy.ns && copy.digest && strcmp ((*pp)->ns, copy.ns) == 0 && strcmp ((*pp)->digest, copy.digest) == 0)
          {
            struct refresh *x = *pp;
            if (r == 0 && expires == 0)
              {
                *pp = x->next;
                refresh_free (x);
              }
            else if (r == 0)
              x->at = refresh_time (time (NULL), expires);
            break;
          }
      refresh_clear (&copy);
    }
  pthread_mutex_unlock (&refresh_lock);
  return NULL;
}

/* Drop the entry of (ns, digest), if any; refresh_lock held. */
static void
refresh_unlink_locked (const char *ns, const char *digest)
{
  for (struct refresh **pp = &refreshes; *pp; pp = &(*pp)->next)
    if (strcmp ((*pp)->ns, ns) == 0 && strcmp ((*pp)->digest, digest) == 0)
      {
        struct refresh *x = *pp;
        *pp = x->next;
        refresh_free (x);
        return;
      }
}

static void
refresh_add (const char *path, const char *ns, const char *digest, const struct lazy_source *src, time_t expires)
{
  bool failed = false;
  struct refresh *e = calloc (1, sizeof *e);
  if (e == NULL)
    failed = true;
  else
    {
      e->path = dup_or_null (path, &failed);
      e->ns = dup_or_null (ns, &failed);
      e->digest = dup_or_null (digest, &failed);
      e->host = dup_or_null (src->host, &failed);
      e->repo = dup_or_null (src->repo, &failed);
      e->config_path = dup_or_null (src->ro ? src->ro->config_path : NULL, &failed);
      e->username = dup_or_null (src->ro ? src->ro->username : NULL, &failed);
      e->secret = dup_or_null (src->ro ? src->ro->secret : NULL, &failed);
      e->plain_http = src->ro && src->ro->plain_http;
      e->created = time (NULL);
      e->at = refresh_time (e->created, expires);
    }
  if (failed || e->path == NULL || e->ns == NULL || e->digest == NULL || e->host == NULL || e->repo == NULL)
    {
      log_warning ("lazily pulled layer %s: out of memory: its registry token will not be renewed", digest);
      refresh_free (e);
      return;
    }
  pthread_mutex_lock (&refresh_lock);
  /* One entry per (namespace, blob): a second pull replaces the first. */
  refresh_unlink_locked (ns, digest);
  e->next = refreshes;
  refreshes = e;
  if (!refresh_started && !refresh_stopping)
    {
      sigset_t all, old;
      sigfillset (&all);
      pthread_sigmask (SIG_BLOCK, &all, &old); /* signals stay with the loop thread */
      refresh_started = pthread_create (&refresh_thread, NULL, refresh_main, NULL) == 0;
      pthread_sigmask (SIG_SETMASK, &old, NULL);
      if (!refresh_started)
        log_warning ("starting the registry token renewer: %s; tokens of lazily pulled layers are not renewed",
                     strerror (errno));
    }
  pthread_cond_signal (&refresh_cond);
  pthread_mutex_unlock (&refresh_lock);
}

static void
refresh_drop (const char *ns, const char *digest)
{
  pthread_mutex_lock (&refresh_lock);
  refresh_unlink_locked (ns, digest);
  pthread_mutex_unlock (&refresh_lock);
}

static void
refresh_stop (void)
{
  pthread_mutex_lock (&refresh_lock);
  refresh_stopping = true;
  pthread_cond_broadcast (&refresh_cond);
  bool started = refresh_started;
  pthread_mutex_unlock (&refresh_lock);
  if (started)
    pthread_join (refresh_thread, NULL);
  pthread_mutex_lock (&refresh_lock);
  while (refreshes)
    {
      struct refresh *x = refreshes;
      refreshes = x->next;
      refresh_free (x);
    }
  refresh_started = false;
  pthread_mutex_unlock (&refresh_lock);
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
  struct adopt_job *next; /* in `pending` */
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

/* Worker thread: record the blob in the namespace, then file the complete
 * file in the content store, in one step under the metadata lock (GC
 * sweeps a blob without a record: it must never see one between the two).
 * Record first: the plugin takes a blob it can open in the store as
 * adopted and drops its cache, so a crash between the two steps must leave
 * a record without a blob (the plugin publishes again and the blob is
 * filed then), never a blob without a record (GC would delete it and the
 * layer would be lost: tests/faults/crash.sh, content-adopt-after-rename).
 * A blob that is in the store already is only recorded. */
static void
adopt_work (void *data)
{
  struct adopt_job *j = data;
  struct daemon *d = j->d;
  _cleanup_error_ berth_error *e = NULL;
  plugin *store = registry_find_kind (d->reg, BERTH_KIND_CONTENT, "local");
  int r = 0;
  berth_labels l = { 0 };
  if (store == NULL)
    r = berth_error_set (&e, BERTH_E_UNAVAILABLE, 0, "no content store");
  else if (j->diff_id && *j->diff_id && labels_set (&l, "containerd.io/uncompressed", j->diff_id) < 0)
    r = berth_error_set (&e, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (r == 0)
    {
      berth_ctx ctx;
      ctx_init (&ctx, j->ns, NULL);
      meta_lock (d->meta);
      struct meta_content had;
      _cleanup_error_ berth_error *ge = NULL;
      bool recorded = meta_content_get (d->meta, j->ns, j->digest, &had, &ge) == 0;
      if (recorded)
        meta_content_clear (&had);
      r = meta_content_add (d->meta, j->ns, j->digest, j->size, &l, &e);
      struct berth_content_info info = { .size = sizeof info };
      berth_labels il = { 0 };
      info.labels = &il;
      _cleanup_error_ berth_error *ie = NULL;
      bool stored = r == 0 && content_info (store, &ctx, j->digest, &info, &ie) == 0;
      labels_clear (&il);
      if (r == 0 && !stored)
        {
          _cleanup_close_ int fd = open (j->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
          if (fd < 0)
            r = berth_error_set (&e, berth_errcode_from_errno (errno), errno, "opening %s", j->path);
          else
            r = content_adopt (store, &ctx, fd, j->size, j->digest, NULL, &e);
          if (r == BERTH_E_EXISTS)
            {
              berth_error_free (e);
              e = NULL;
              r = 0;
            }
          if (r < 0 && !recorded)
            {
              _cleanup_error_ berth_error *de = NULL;
              meta_content_delete (d->meta, j->ns, j->digest, &de);
            }
        }
      meta_unlock (d->meta);
    }
  labels_clear (&l);
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

/* Publishes that come before berthd serves (the plugin's watcher starts at
 * its init, and publishes at once the layers that completed while berthd
 * was down): kept, and adopted once lazy_start runs. */
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static struct adopt_job *pending;
static bool serving, stopped;

static void
adopt_submit (struct daemon *d, struct adopt_job *j)
{
  j->d = d;
  const char *digest = j->digest;
  if (workers_submit (d->workers, adopt_work, adopt_done, j) < 0)
    {
      log_warning ("lazily pulled layer %s: cannot adopt it now (shutting down)", digest);
      inflight_drop (digest);
      adopt_job_free (j);
    }
}

bool
lazy_publish (const char *ns, const char *topic, const char *const *fields)
{
  if (topic == NULL || strcmp (topic, LAZY_TOPIC_COMPLETE) != 0)
    return false;
  const char *digest = events_field (fields, "digest"), *path = events_field (fields, "path");
  const char *size = events_field (fields, "size"), *diff_id = events_field (fields, "diff_id");
  char *end = NULL;
  long long n = size ? strtoll (size, &end, 10) : -1;
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
      j->size = n;
      j->ns = strdup (ns);
      j->digest = strdup (digest);
      j->path = strdup (path);
      j->diff_id = diff_id ? strdup (diff_id) : NULL;
    }
  if (j == NULL || j->ns == NULL || j->digest == NULL || j->path == NULL || (diff_id && j->diff_id == NULL))
    {
      log_warning ("lazily pulled layer %s: cannot adopt it now (out of memory)", digest);
      if (j)
        adopt_job_free (j);
      inflight_drop (digest);
      return true;
    }
  /* Submitted under the lock: lazy_stop (before the workers go) waits for it. */
  pthread_mutex_lock (&pending_lock);
  struct daemon *d = serving ? atomic_load (&lazy_daemon) : NULL;
  bool keep = !serving && !stopped;
  if (d)
    adopt_submit (d, j);
  else if (keep)
    {
      j->next = pending;
      pending = j;
    }
  pthread_mutex_unlock (&pending_lock);
  if (!d && !keep)
    {
      inflight_drop (digest); /* shutting down: the plugin publishes again after the restart */
      adopt_job_free (j);
    }
  return true;
}

void
lazy_start (struct daemon *d)
{
  pthread_mutex_lock (&pending_lock);
  atomic_store (&lazy_daemon, d);
  serving = true;
  struct adopt_job *list = pending;
  pending = NULL;
  while (list)
    {
      struct adopt_job *next = list->next;
      adopt_submit (d, list);
      list = next;
    }
  pthread_mutex_unlock (&pending_lock);
}

void
lazy_stop (void)
{
  pthread_mutex_lock (&pending_lock);
  serving = false;
  stopped = true;
  atomic_store (&lazy_daemon, NULL);
  struct adopt_job *list = pending;
  pending = NULL;
  pthread_mutex_unlock (&pending_lock);
  while (list)
    {
      struct adopt_job *next = list->next;
      inflight_drop (list->digest);
      adopt_job_free (list);
      list = next;
    }
  refresh_stop ();
}
