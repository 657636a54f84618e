/* Writers of the local content store: resumable ingests, and adopt (ABI
 * 1.3, at the end), which files a complete file the caller holds.
 *
 * A writer owns its ref (one writer per ref, taken in local_ref_acquire) and
 * the ingest directory <root>/ingest/<sha256(ref)>.  Bytes go straight to
 * `data` and into a running OpenSSL hash, so the on-disk offset and the hash
 * always agree, even after a short write (ENOSPC): a later writer reopens
 * the ingest, hashes the bytes already there and continues.
 *
 * Commit verifies size and digest before anything is renamed (containerd:
 * FailedPrecondition "unexpected commit size/digest"), keeps the ingest and
 * the writer usable on a mismatch, and on success fsyncs the data, renames it
 * into blobs/ without replacing an existing blob, fsyncs the directory and
 * removes the ingest.
 *
 * Methods of one writer are never called concurrently (content.h), so the
 * writer itself needs no lock.  Large writes hash on a helper thread of the
 * writer while the calling thread writes the same (borrowed) buffer, so
 * that sha256 (~1.5 GB/s) and the page-cache copy (~1 GB/s) overlap instead
 * of adding up.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <berth/failpoint.h>

#include "local.h"

struct berth_content_writer
{
  struct local *s;
  char *ref;
  char *dir;  /* ingest/<sha256(ref)> */
  char *data; /* dir/data */
  int fd;
  bool held;      /* ref taken in s->held */
  bool committed; /* the ingest is gone */
  int64_t offset; /* bytes in data, all hashed */
  int64_t total;
  char expected[BERTH_DIGEST_MAX]; /* "" when none */
  char alg[8];                     /* algorithm of the running hash */
  EVP_MD_CTX *hash;
  int64_t started_at, updated_at;

  /* The hashing helper (started at the first large write). */
  pthread_t hasher;
  bool hasher_started;
  pthread_mutex_t hlock;
  pthread_cond_t hcond;
  const void *hbuf;
  size_t hlen;
  bool hbusy, hquit, hfailed;
};

/* Writes at least this large are hashed on the helper thread. */
#define PARALLEL_HASH_MIN (128 * 1024)

static void *
hasher_main (void *arg)
{
  struct berth_content_writer *w = arg;
  pthread_mutex_lock (&w->hlock);
  for (;;)
    {
      while (!w->hbusy && !w->hquit)
        pthread_cond_wait (&w->hcond, &w->hlock);
      if (w->hquit)
        break;
      const void *buf = w->hbuf;
      size_t len = w->hlen;
      pthread_mutex_unlock (&w->hlock);
      bool ok = EVP_DigestUpdate (w->hash, buf, len);
      pthread_mutex_lock (&w->hlock);
      w->hfailed = !ok;
      w->hbusy = false;
      pthread_cond_broadcast (&w->hcond);
    }
  pthread_mutex_unlock (&w->hlock);
  return NULL;
}

static bool
hasher_start (struct berth_content_writer *w)
{
  if (w->hasher_started)
    return true;
  if (pthread_mutex_init (&w->hlock, NULL) != 0)
    return false;
  if (pthread_cond_init (&w->hcond, NULL) != 0)
    {
      pthread_mutex_destroy (&w->hlock);
      return false;
    }
  if (pthread_create (&w->hasher, NULL, hasher_main, w) != 0)
    {
      pthread_cond_destroy (&w->hcond);
      pthread_mutex_destroy (&w->hlock);
      return false;
    }
  w->hasher_started = true;
  return true;
}

static void
hasher_stop (struct berth_content_writer *w)
{
  if (!w->hasher_started)
    return;
  pthread_mutex_lock (&w->hlock);
  w->hquit = true;
  pthread_cond_broadcast (&w->hcond);
  pthread_mutex_unlock (&w->hlock);
  pthread_join (w->hasher, NULL);
  pthread_cond_destroy (&w->hcond);
  pthread_mutex_destroy (&w->hlock);
  w->hasher_started = false;
}

static void
writer_free (struct berth_content_writer *w)
{
  if (w == NULL)
    return;
  hasher_stop (w);
  if (w->fd >= 0)
    close (w->fd);
  if (w->held)
    local_ref_release (w->s, w->ref);
  EVP_MD_CTX_free (w->hash);
  free (w->ref);
  free (w->dir);
  free (w->data);
  free (w);
}

static char *
ingest_file (struct berth_content_writer *w, const char *name)
{
  return local_path ("%s/%s", w->dir, name);
}

/* Restart the running hash over the first len bytes of data. */
static int
rehash (struct berth_content_writer *w, int64_t len, berth_error *err)
{
  struct local *s = w->s;
  const EVP_MD *md = local_digest_md (w->alg);
  if (!EVP_DigestInit_ex (w->hash, md, NULL))
    return s->host->error_set (err, BERTH_E_INTERNAL, 0, "cannot initialise %s", w->alg);
  int r = local_hash_file (w->fd, len, md, w->hash);
  if (r < 0)
    return local_sys_error (s, err, -r, "hashing ingest %s", w->ref);
  return 0;
}

/* Compare a stored ingest value with what the caller gives on reopen. */
static int
reconcile_total (struct berth_content_writer *w, int64_t total, berth_error *err)
{
  struct local *s = w->s;
  char *path = ingest_file (w, "total");
  int64_t stored = 0;
  int r = path ? local_read_int (path, &stored) : -ENOMEM;
  if (r < 0 && r != -ENOENT)
    {
      free (path);
      return local_sys_error (s, err, -r, "reading total of ingest %s", w->ref);
    }
  if (stored > 0 && total > 0 && stored != total)
    {
      free (path);
      return s->host->error_set (err, BERTH_E_PRECONDITION, 0,
                                 "provided total %" PRId64 " differs from the total %" PRId64 " of ingest %s", total,
                                 stored, w->ref);
    }
  r = 0;
  if (stored <= 0 && total > 0)
    r = local_write_int (path, total);
  free (path);
  if (r < 0)
    return local_sys_error (s, err, -r, "writing total of ingest %s", w->ref);
  w->total = total > 0 ? total : stored;
  return 0;
}

static int
reconcile_expected (struct berth_content_writer *w, const char *expected, berth_error *err)
{
  struct local *s = w->s;
  char *path = ingest_file (w, "expected");
  char *stored = NULL;
  int r = path ? local_read_file (path, &stored, BERTH_DIGEST_MAX - 1) : -ENOMEM;
  if (r < 0 && r != -ENOENT)
    {
      free (path);
      return local_sys_error (s, err, -r, "reading expected digest of ingest %s", w->ref);
    }
  if (stored && *stored && expected && strcmp (stored, expected) != 0)
    {
      r = s->host->error_set (err, BERTH_E_PRECONDITION, 0,
                              "provided expected digest %s differs from %s of ingest %s", expected, stored, w->ref);
      free (stored);
      free (path);
      return r;
    }
  r = 0;
  if ((stored == NULL || *stored == '\0') && expected)
    r = local_write_file (path, expected, false);
  free (path);
  const char *use = expected ? expected : stored;
  if (use && *use)
    {
      struct local_digest d;
      int e = local_digest_parse (s, use, &d, err);
      if (e < 0)
        {
          free (stored);
          return e;
        }
      snprintf (w->expected, sizeof w->expected, "%s", use);
      snprintf (w->alg, sizeof w->alg, "%s", d.alg);
    }
  free (stored);
  if (r < 0)
    return local_sys_error (s, err, -r, "writing expected digest of ingest %s", w->ref);
  return 0;
}

int
local_writer_open (void *self, berth_ctx *ctx, const char *ref, int64_t total, const char *expected,
                   berth_content_writer **ret_writer, berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  if (ref == NULL || *ref == '\0')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "ref must not be empty");
  if (strlen (ref) >= BERTH_NAME_MAX)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "ref is longer than %d bytes", BERTH_NAME_MAX - 1);
  if (total < 0)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "negative total %" PRId64, total);
  if (expected && *expected == '\0')
    expected = NULL;
  if (expected)
    {
      struct local_digest d;
      int r = local_digest_parse (s, expected, &d, err);
      if (r < 0)
        return r;
      char *blob = local_path ("%s/%s/%s", s->blobs, d.alg, d.hex);
      if (blob == NULL)
        return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
      struct stat st;
      r = stat (blob, &st);
      free (blob);
      if (r == 0)
        return s->host->error_set (err, BERTH_E_EXISTS, 0, "content %s: already exists", expected);
    }

  int r = local_ref_acquire (s, ref, err);
  if (r < 0)
    return r;
  struct berth_content_writer *w = calloc (1, sizeof *w);
  if (w == NULL)
    {
      local_ref_release (s, ref);
      return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }
  w->s = s;
  w->fd = -1;
  w->ref = strdup (ref);
  w->held = w->ref != NULL;
  if (!w->held)
    local_ref_release (s, ref);
  w->dir = local_ingest_dir (s, ref);
  w->data = w->dir ? ingest_file (w, "data") : NULL;
  w->hash = EVP_MD_CTX_new ();
  snprintf (w->alg, sizeof w->alg, "sha256");
  if (!w->held || w->data == NULL || w->hash == NULL)
    {
      writer_free (w);
      return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }

  if (mkdir (w->dir, 0700) < 0 && errno != EEXIST)
    {
      r = local_sys_error (s, err, errno, "creating ingest %s for ref %s", w->dir, ref);
      writer_free (w);
      return r;
    }
  /* The ref file names the owner of the directory (its name is a hash). */
  char *path = ingest_file (w, "ref");
  char *stored = NULL;
  r = path ? local_read_file (path, &stored, BERTH_NAME_MAX) : -ENOMEM;
  if (r == -ENOENT)
    r = local_write_file (path, ref, false);
  else if (r == 0 && strcmp (stored, ref) != 0)
    r = -EEXIST;
  free (stored);
  free (path);
  if (r < 0)
    {
      r = r == -EEXIST ? s->host->error_set (err, BERTH_E_INTERNAL, 0, "ingest %s belongs to another ref", w->dir)
                       : local_sys_error (s, err, -r, "writing ref of ingest %s", ref);
      writer_free (w);
      return r;
    }
  if ((r = reconcile_total (w, total, err)) < 0 || (r = reconcile_expected (w, expected, err)) < 0)
    {
      writer_free (w);
      return r;
    }

  int64_t now = local_now_ns ();
  path = ingest_file (w, "startedat");
  r = path ? local_read_int (path, &w->started_at) : -ENOMEM;
  if (r == -ENOENT || r == -EINVAL)
    {
      w->started_at = now;
      r = local_write_int (path, now);
    }
  free (path);
  if (r < 0)
    {
      r = local_sys_error (s, err, -r, "writing start time of ingest %s", ref);
      writer_free (w);
      return r;
    }

  w->fd = open (w->data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  struct stat st;
  if (w->fd < 0 || fstat (w->fd, &st) < 0)
    {
      r = local_sys_error (s, err, errno, "opening ingest data of %s", ref);
      writer_free (w);
      return r;
    }
  /* Resume: the bytes already on disk are the prefix of the blob. */
  if ((r = rehash (w, st.st_size, err)) < 0)
    {
      writer_free (w);
      return r;
    }
  w->offset = st.st_size;
  if (lseek (w->fd, w->offset, SEEK_SET) < 0)
    {
      r = local_sys_error (s, err, errno, "seeking ingest data of %s", ref);
      writer_free (w);
      return r;
    }
  w->updated_at = now;
  path = ingest_file (w, "updatedat");
  r = path ? local_write_int (path, now) : -ENOMEM;
  free (path);
  if (r < 0)
    {
      r = local_sys_error (s, err, -r, "writing update time of ingest %s", ref);
      writer_free (w);
      return r;
    }
  *ret_writer = w;
  return 0;
}

static int
check_open (struct berth_content_writer *w, berth_error *err)
{
  if (w->committed)
    return w->s->host->error_set (err, BERTH_E_PRECONDITION, 0, "writer for ref %s is already committed", w->ref);
  return 0;
}

/* write(2) all of buf; returns 0 or an errno, with *ret_done bytes written. */
static int
write_all (int fd, const unsigned char *buf, size_t len, size_t *ret_done)
{
  size_t done = 0;
  int e = 0;
  while (done < len)
    {
      ssize_t n = write (fd, buf + done, len - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          e = errno;
          break;
        }
      done += (size_t) n;
    }
  *ret_done = done;
  return e;
}

int
local_writer_write (void *self, berth_content_writer *w, const void *buf, size_t len, berth_error *err)
{
  struct local *s = self;
  int r = check_open (w, err);
  if (r < 0)
    return r;
  size_t done = 0;
  int e;
  bool hashed;
  if (len >= PARALLEL_HASH_MIN && hasher_start (w))
    {
      pthread_mutex_lock (&w->hlock);
      w->hbuf = buf;
      w->hlen = len;
      w->hbusy = true;
      pthread_cond_broadcast (&w->hcond);
      pthread_mutex_unlock (&w->hlock);
      e = write_all (w->fd, buf, len, &done);
      pthread_mutex_lock (&w->hlock);
      while (w->hbusy)
        pthread_cond_wait (&w->hcond, &w->hlock);
      hashed = !w->hfailed;
      pthread_mutex_unlock (&w->hlock);
    }
  else
    {
      e = write_all (w->fd, buf, len, &done);
      hashed = EVP_DigestUpdate (w->hash, buf, done);
    }
  int64_t before = w->offset;
  w->offset += (int64_t) done;
  w->updated_at = local_now_ns ();
  if (!hashed)
    return s->host->error_set (err, BERTH_E_INTERNAL, 0, "hashing ingest %s", w->ref);
  if (e == 0)
    return 0;
  /* A short write: the helper hashed the whole buffer, so hash again what
   * reached the file, keeping offset and digest in step for a resume. */
  if (done < len && len >= PARALLEL_HASH_MIN && (r = rehash (w, w->offset, err)) < 0)
    return r;
  if (e == ENOSPC || e == EDQUOT)
    return s->host->error_set (err, BERTH_E_EXHAUSTED, e,
                               "disk full writing ingest %s at offset %" PRId64
                               " (the ingest is kept; resume after freeing space)",
                               w->ref, w->offset);
  return local_sys_error (s, err, e, "writing ingest %s at offset %" PRId64, w->ref, before);
}

static void
fill_status (struct berth_content_status *dst, const struct berth_content_status *src)
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

int
local_writer_status (void *self, berth_content_writer *w, struct berth_content_status *ret_status, berth_error *err)
{
  struct local *s = self;
  if (ret_status == NULL)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "no status to fill");
  struct berth_content_status st = { .size = sizeof st };
  snprintf (st.ref, sizeof st.ref, "%s", w->ref);
  snprintf (st.expected, sizeof st.expected, "%s", w->expected);
  st.offset = w->offset;
  st.total = w->total;
  st.started_at = w->started_at;
  st.updated_at = w->updated_at;
  fill_status (ret_status, &st);
  return 0;
}

int
local_writer_truncate (void *self, berth_content_writer *w, int64_t size, berth_error *err)
{
  struct local *s = self;
  int r = check_open (w, err);
  if (r < 0)
    return r;
  if (size < 0 || size > w->offset)
    return s->host->error_set (err, BERTH_E_INVALID, 0,
                               "cannot truncate ingest %s to %" PRId64 ": it holds %" PRId64 " bytes", w->ref, size,
                               w->offset);
  if (ftruncate (w->fd, size) < 0)
    return local_sys_error (s, err, errno, "truncating ingest %s", w->ref);
  if (lseek (w->fd, size, SEEK_SET) < 0)
    return local_sys_error (s, err, errno, "seeking ingest %s", w->ref);
  w->offset = size;
  w->updated_at = local_now_ns ();
  return rehash (w, size, err);
}

/* The digest of the data in algorithm alg, as "alg:hex". */
static int
data_digest (struct berth_content_writer *w, const char *alg, char *out, size_t outlen, berth_error *err)
{
  struct local *s = w->s;
  char hex[LOCAL_MAX_HEX + 1];
  int r;
  if (strcmp (alg, w->alg) == 0)
    r = local_digest_hex (w->hash, hex);
  else
    {
      /* Another algorithm than the running hash: read the data again. */
      const EVP_MD *md = local_digest_md (alg);
      EVP_MD_CTX *c = EVP_MD_CTX_new ();
      r = c && EVP_DigestInit_ex (c, md, NULL) ? local_hash_file (w->fd, w->offset, md, c) : -ENOMEM;
      if (r == 0)
        r = local_digest_hex (c, hex);
      EVP_MD_CTX_free (c);
    }
  if (r < 0)
    return local_sys_error (s, err, -r, "computing the %s digest of ingest %s", alg, w->ref);
  snprintf (out, outlen, "%s:%s", alg, hex);
  return 0;
}

static int
verify_digest (struct berth_content_writer *w, const char *expected, struct local_digest *ret, berth_error *err)
{
  struct local *s = w->s;
  struct local_digest d;
  int r = local_digest_parse (s, expected, &d, err);
  if (r < 0)
    return r;
  char actual[BERTH_DIGEST_MAX];
  if ((r = data_digest (w, d.alg, actual, sizeof actual, err)) < 0)
    return r;
  if (strcmp (actual, expected) != 0)
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "unexpected commit digest %s, expected %s", actual,
                               expected);
  *ret = d;
  return 0;
}

/* Drop the ingest after a commit (or after finding the blob already there). */
static void
finish_ingest (struct berth_content_writer *w)
{
  if (w->fd >= 0)
    close (w->fd);
  w->fd = -1;
  local_rm_ingest_dir (w->dir);
  w->committed = true;
  if (w->held)
    local_ref_release (w->s, w->ref);
  w->held = false;
}

int
local_writer_commit (void *self, berth_content_writer *w, int64_t size, const char *expected,
                     const berth_labels *labels, berth_error *err)
{
  struct local *s = self;
  int r = check_open (w, err);
  if (r < 0)
    return r;
  if (expected && *expected == '\0')
    expected = NULL;

  if (fsync (w->fd) < 0)
    {
      int e = errno;
      if (e == ENOSPC || e == EDQUOT)
        return s->host->error_set (err, BERTH_E_EXHAUSTED, e,
                                   "disk full syncing ingest %s (nothing committed; the ingest is kept)", w->ref);
      return local_sys_error (s, err, e, "syncing ingest %s", w->ref);
    }
  struct stat st;
  if (fstat (w->fd, &st) < 0)
    return local_sys_error (s, err, errno, "stat of ingest %s", w->ref);
  if (st.st_size != w->offset)
    return s->host->error_set (err, BERTH_E_INTERNAL, 0,
                               "ingest %s holds %" PRId64 " bytes but %" PRId64 " were written", w->ref,
                               (int64_t) st.st_size, w->offset);
  if (size > 0 && size != w->offset)
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "unexpected commit size %" PRId64 ", expected %" PRId64,
                               w->offset, size);

  /* Every digest the caller named (at open, now) must match; the blob is
   * filed under the one given to commit, else the one given at open. */
  struct local_digest d = { { 0 } };
  if (*w->expected && (r = verify_digest (w, w->expected, &d, err)) < 0)
    return r;
  if (expected && (r = verify_digest (w, expected, &d, err)) < 0)
    return r;
  if (d.alg[0] == '\0')
    {
      char actual[BERTH_DIGEST_MAX];
      if ((r = data_digest (w, w->alg, actual, sizeof actual, err)) < 0)
        return r;
      if ((r = local_digest_parse (s, actual, &d, err)) < 0)
        return r;
    }

  char *dir = local_path ("%s/%s", s->blobs, d.alg);
  char *target = dir ? local_path ("%s/%s", dir, d.hex) : NULL;
  if (target == NULL)
    {
      free (dir);
      return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
    }
  if ((r = local_mkdir_p (dir, 0700)) < 0)
    {
      r = local_sys_error (s, err, -r, "creating %s", dir);
      goto out;
    }
  if (access (target, F_OK) == 0)
    {
      finish_ingest (w);
      r = s->host->error_set (err, BERTH_E_EXISTS, 0, "content %s:%s: already exists", d.alg, d.hex);
      goto out;
    }
  /* Labels first: a blob never appears without the labels it was committed
   * with.  (Two writers racing to commit the same digest may both write
   * them; the loser then gets EXISTS below.) */
  if (labels && (r = local_labels_store (s, &d, labels, err)) < 0)
    goto out;
  /* Blobs are immutable; their mtime is the commit time (created_at). */
  if (fchmod (w->fd, 0444) < 0 || futimens (w->fd, NULL) < 0)
    {
      r = local_sys_error (s, err, errno, "preparing ingest %s for commit", w->ref);
      fchmod (w->fd, 0600);
      goto out;
    }
  BERTH_FAILPOINT ("content-commit-before-rename");
  r = local_rename_noreplace (w->data, target);
  if (r < 0)
    {
      int e = -r;
      if (e == EEXIST)
        {
          finish_ingest (w);
          r = s->host->error_set (err, BERTH_E_EXISTS, 0, "content %s:%s: already exists", d.alg, d.hex);
        }
      else
        {
          fchmod (w->fd, 0600);
          r = local_sys_error (s, err, e, "committing ingest %s to %s", w->ref, target);
        }
      goto out;
    }
  if ((r = local_fsync_dir (dir)) < 0)
    {
      /* The rename happened; an fsync error of the directory is reported but
       * the blob is complete and verified. */
      s->host->log (s->plugin, BERTH_LOG_WARNING, "fsync of %s failed: %s", dir, strerror (-r));
    }
  BERTH_FAILPOINT ("content-commit-after-rename");
  finish_ingest (w);
  r = 0;
out:
  free (target);
  free (dir);
  return r;
}

void
local_writer_close (void *self, berth_content_writer *w)
{
  (void) self;
  if (w == NULL)
    return;
  if (!w->committed)
    {
      /* Keep the ingest for a resume; remember when it was last written. */
      char *path = ingest_file (w, "updatedat");
      if (path)
        local_write_int (path, w->updated_at);
      free (path);
    }
  writer_free (w);
}

int
local_ingest_status (struct local *s, const char *dir, struct berth_content_status *st, char **ret_ref)
{
  (void) s;
  char *path = local_path ("%s/ref", dir);
  char *ref = NULL;
  int r = path ? local_read_file (path, &ref, BERTH_NAME_MAX - 1) : -ENOMEM;
  free (path);
  if (r < 0)
    return r;
  snprintf (st->ref, sizeof st->ref, "%s", ref);

  struct stat sb;
  path = local_path ("%s/data", dir);
  r = path ? stat (path, &sb) : -1;
  int e = errno;
  free (path);
  if (r < 0)
    {
      /* Created but never written (a crash between mkdir and open). */
      if (e != ENOENT)
        {
          free (ref);
          return -e;
        }
      st->offset = 0;
      st->updated_at = 0;
    }
  else
    {
      st->offset = sb.st_size;
      st->updated_at = local_stat_mtime_ns (&sb);
    }

  int64_t v = 0;
  path = local_path ("%s/total", dir);
  st->total = path && local_read_int (path, &v) == 0 ? v : 0;
  free (path);
  v = 0;
  path = local_path ("%s/startedat", dir);
  st->started_at = path && local_read_int (path, &v) == 0 ? v : 0;
  free (path);
  v = 0;
  path = local_path ("%s/updatedat", dir);
  if (path && local_read_int (path, &v) == 0 && v > st->updated_at)
    st->updated_at = v;
  free (path);
  char *exp = NULL;
  path = local_path ("%s/expected", dir);
  st->expected[0] = '\0';
  if (path && local_read_file (path, &exp, BERTH_DIGEST_MAX - 1) == 0)
    snprintf (st->expected, sizeof st->expected, "%s", exp);
  free (exp);
  free (path);
  if (st->updated_at == 0)
    st->updated_at = st->started_at;
  if (ret_ref)
    *ret_ref = ref;
  else
    free (ref);
  return 0;
}

/* ---- adopt (ABI 1.3) ------------------------------------------------------------

   Filing a file the caller already has complete (the fuse snapshotter's
   cache of a lazily pulled layer) without a second copy: after checking size
   and digest by reading fd, the inode gets a second name in ingest/ (a hard
   link; a copy when fd's file is on another filesystem or cannot be linked),
   is made read-only and synced, and is renamed into blobs/ like a commit.
   Every step before the rename leaves at most the temporary name, which the
   start-up cleanup removes (clean_ingests); the rename is the commit point. */

/* A fresh temporary name in ingest/ for an adopt of d. */
static char *
adopt_tmp_name (struct local *s, const struct local_digest *d)
{
  static unsigned counter;
  unsigned n = __atomic_add_fetch (&counter, 1, __ATOMIC_RELAXED);
  return local_path ("%s/" LOCAL_ADOPT_PREFIX "%s-%s.%ld.%u", s->ingest, d->alg, d->hex, (long) getpid (), n);
}

/* A second name for fd's inode.  AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH;
 * /proc/self/fd works without it (the kernel refuses both for a file whose
 * last name is gone: ENOENT). */
static int
link_fd (int fd, const char *path)
{
  if (linkat (fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno != EPERM && errno != ENOENT && errno != EINVAL)
    return -errno;
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
  return linkat (AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

/* link(2) errors after which a copy still works. */
static bool
link_impossible (int errnum)
{
  return errnum == EXDEV || errnum == EPERM || errnum == ENOENT || errnum == EMLINK || errnum == EOPNOTSUPP;
}

/* A blob is read-only and its mtime is its creation time (created_at). */
static int
seal (int fd)
{
  if (fchmod (fd, 0444) < 0 || futimens (fd, NULL) < 0 || fsync (fd) < 0)
    return -errno;
  return 0;
}

/* Give fd's inode the temporary name tmp, sealed.  0, or -errno with
 * nothing left behind (the inode's mode restored). */
static int
adopt_link (int fd, const struct stat *st, const char *tmp)
{
  int r = link_fd (fd, tmp);
  if (r < 0)
    return r;
  BERTH_FAILPOINT ("content-adopt-after-link");
  if ((r = seal (fd)) < 0)
    {
      unlink (tmp);
      fchmod (fd, st->st_mode & 07777);
    }
  return r;
}

/* Copy size bytes of fd into the new file tmp, sealed.  0, or -errno with
 * tmp removed. */
static int
adopt_copy (int fd, int64_t size, const char *tmp)
{
  int out = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0)
    return -errno;
  int r = local_copy_fd (fd, out, size);
  if (r == 0)
    r = seal (out);
  if (close (out) < 0 && r == 0)
    r = -errno;
  if (r < 0)
    unlink (tmp);
  return r;
}

/* Check fd against size and d: 0, or INVALID / a system error. */
static int
adopt_verify (struct local *s, int fd, int64_t size, const char *digest, const struct local_digest *d,
              struct stat *ret_st, berth_error *err)
{
  if (size < 0)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "adopting %s: negative size %" PRId64, digest, size);
  if (fstat (fd, ret_st) < 0)
    return local_sys_error (s, err, errno, "adopting %s: stat of fd %d", digest, fd);
  if (!S_ISREG (ret_st->st_mode))
    return s->host->error_set (err, BERTH_E_INVALID, 0, "adopting %s: fd %d is not a regular file", digest, fd);
  if (ret_st->st_size != size)
    return s->host->error_set (err, BERTH_E_INVALID, 0,
                               "adopting %s: the file holds %" PRId64 " bytes, the blob is %" PRId64 " bytes",
                               digest, (int64_t) ret_st->st_size, size);
  const EVP_MD *md = local_digest_md (d->alg);
  EVP_MD_CTX *c = EVP_MD_CTX_new ();
  char hex[LOCAL_MAX_HEX + 1];
  int r = c && EVP_DigestInit_ex (c, md, NULL) ? local_hash_file (fd, size, md, c) : -ENOMEM;
  if (r == 0)
    r = local_digest_hex (c, hex);
  EVP_MD_CTX_free (c);
  if (r == -EIO)
    return s->host->error_set (err, BERTH_E_INVALID, EIO, "adopting %s: the file shrank or could not be read while "
                               "it was hashed", digest);
  if (r < 0)
    return local_sys_error (s, err, -r, "adopting %s: hashing the file", digest);
  if (strcmp (hex, d->hex) != 0)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "adopting %s: digest mismatch: the file is %s:%s", digest,
                               d->alg, hex);
  return 0;
}

int
local_adopt (void *self, berth_ctx *ctx, int fd, int64_t size, const char *digest, const berth_labels *labels,
             berth_error *err)
{
  struct local *s = self;
  (void) ctx;
  struct local_digest d;
  int r = local_digest_parse (s, digest, &d, err);
  if (r < 0)
    return r;
  _local_free_ char *dir = local_path ("%s/%s", s->blobs, d.alg);
  _local_free_ char *target = dir ? local_path ("%s/%s", dir, d.hex) : NULL;
  _local_free_ char *tmp = target ? adopt_tmp_name (s, &d) : NULL;
  if (tmp == NULL)
    return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  if (access (target, F_OK) == 0)
    return s->host->error_set (err, BERTH_E_EXISTS, 0, "content %s: already exists", digest);
  struct stat st;
  if ((r = adopt_verify (s, fd, size, digest, &d, &st, err)) < 0)
    return r;
  if ((r = local_mkdir_p (dir, 0700)) < 0)
    return local_sys_error (s, err, -r, "creating %s", dir);
  /* Labels first, as in commit: a blob never appears without them. */
  if (labels && (r = local_labels_store (s, &d, labels, err)) < 0)
    return r;

  r = adopt_link (fd, &st, tmp);
  bool linked = r == 0, copied = false;
  if (!linked && link_impossible (-r))
    {
      copied = true;
      r = adopt_copy (fd, size, tmp);
    }
  if (r < 0)
    return local_sys_error (s, err, -r, "adopting %s: %s into %s", digest, copied ? "copying the file" : "linking it",
                            s->ingest);
  BERTH_FAILPOINT ("content-adopt-before-rename");
  if ((r = local_rename_noreplace (tmp, target)) < 0)
    {
      unlink (tmp);
      if (linked)
        fchmod (fd, st.st_mode & 07777);
      if (r == -EEXIST)
        return s->host->error_set (err, BERTH_E_EXISTS, 0, "content %s: already exists", digest);
      return local_sys_error (s, err, -r, "adopting %s: renaming %s to %s", digest, tmp, target);
    }
  if ((r = local_fsync_dir (dir)) < 0)
    /* The blob is complete and verified; as in commit, only reported. */
    s->host->log (s->plugin, BERTH_LOG_WARNING, "fsync of %s failed: %s", dir, strerror (-r));
  BERTH_FAILPOINT ("content-adopt-after-rename");
  return 0;
}
