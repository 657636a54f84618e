/* The daemon-side pull; see pull.h for the contract. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <berth/failpoint.h>
#include <berth/layerindex.h>

#include "cleanup.h"
#include "fs.h"
#include "gc.h"
#include "snapshots.h"
#include "unpack/unpack.h"
#include "events.h"
#include "github.com/containerd/containerd/api/events/image.pb-c.h"
#include "host-objects.h"
#include "log.h"
#include "plugin-calls.h"
#include "pull/lazy.h"
#include "pull/oci.h"
#include "pull/platform.h"
#include "pull/pull.h"
#include "pull/reference.h"
#include "pull/registry.h"

#define PULL_LEASE_TTL_S 3600
#define FETCH_LEASE_TTL_S (24 * 3600)
#define MAX_INDEX_DEPTH 4
#define PROGRESS_INTERVAL_NS (100 * 1000000LL)

const char *
pull_phase_name (enum pull_phase p)
{
  static const char *const names[] = {
    [PULL_WAITING] = "waiting",   [PULL_DOWNLOADING] = "downloading", [PULL_VERIFYING] = "verifying",
    [PULL_DONE] = "done",         [PULL_EXISTS] = "exists",           [PULL_EXTRACTING] = "extracting",
    [PULL_ERROR] = "error",       [PULL_LAZY] = "lazy",
  };
  return p < ARRAY_SIZE (names) ? names[p] : "unknown";
}

static int64_t
mono_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A layer's bytes on their way from the registry client's sink to an
 * unpack thread that applies them while the layer downloads.  Bounded: a
 * layer whose applier falls more than STREAM_QUEUE_MAX behind stops
 * streaming and is applied from the content store after its commit. */
#define STREAM_QUEUE_MAX (64u << 20)

struct chunk
{
  struct chunk *next;
  size_t len, off;
  unsigned char data[];
};

struct stream
{
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct chunk *head, *tail;
  size_t queued;
  bool eof, abort, started;
  bool block;                  /* never drop: wait for the applier (no blob to fall back on) */
  pthread_t thread;
  char staging[4096];          /* where the applier writes */
  enum unpack_mode mode;       /* native for a base layer, overlay form above it */
  int r;                       /* the applier's result */
  berth_error *err;
  struct unpack_result res;
};

struct unpack_layer
{
  char digest[OCI_DIGEST_MAX];
  char *media_type;
  int64_t size;
  char diff_id[OCI_DIGEST_MAX];
  char chain[OCI_DIGEST_MAX];
  char *toc_digest;            /* eStargz TOC digest annotation, NULL when absent */
  bool needed;                 /* no snapshot for chain yet */
  bool lazy;                   /* served by the snapshotter from the registry: not fetched */
  struct stream *stream;       /* non-NULL while streaming is possible */
};

struct layer_job
{
  struct pull_state *st;
  size_t idx;
  struct unpack_layer *unpack; /* when this layer streams into an applier */
  EVP_MD_CTX *md;              /* direct mode: the blob is only hashed, never stored */
  berth_content_writer *w;
  int64_t rate_mark_ns; /* start of the current rate window */
  int64_t rate_mark_bytes;
};

struct pull_state
{
  struct daemon *d;
  const struct pull_request *req;
  plugin *store;
  berth_ctx ctx;
  char lease[64];
  registry_session *rs;
  const struct registry_options *ro; /* rs's options (lazy layers renew their tokens with them) */
  char *repo;  /* "library/busybox" */
  char *name;  /* "docker.io/library/busybox:latest" */
  char *ref;   /* tag or digest to resolve */
  pull_progress_fn fn;
  void *fn_data;
  const volatile int *cancelled;
  const char *status;
  char target_digest[OCI_DIGEST_MAX];
  char *target_mt;
  int64_t target_size;
  struct pull_layer *layers;
  size_t nlayers;
  int64_t start_ns, last_emit_ns;
  /* What to unpack: the layers of the first (best) manifest, with the
   * config's diff_ids; filled by handle_manifest. */
  struct unpack_layer *unpack;
  size_t nunpack;
  char unpack_config[OCI_DIGEST_MAX];
  int64_t unpack_config_size;
  char unpack_manifest[OCI_DIGEST_MAX];
  plugin *snapshotter;         /* chosen before the layers are fetched */
  char staging_root[4096];     /* <root>/io.berth.unpack/<gc_instance> */
};

static void
emit (struct pull_state *st, bool force, bool done)
{
  if (st->fn == NULL)
    return;
  int64_t now = mono_ns ();
  if (!force && now - st->last_emit_ns < PROGRESS_INTERVAL_NS)
    return;
  st->last_emit_ns = now;
  struct pull_status s = {
    .status = st->status,
    .image = st->name,
    .target_digest = st->target_digest,
    .target_media_type = st->target_mt,
    .target_size = st->target_size,
    .layers = st->layers,
    .nlayers = st->nlayers,
    .done = done,
    .elapsed = (double) (now - st->start_ns) / 1e9,
  };
  st->fn (&s, st->fn_data);
}

static void
set_phase (struct pull_state *st, size_t i, enum pull_phase phase)
{
  if (st->layers[i].phase == phase)
    return;
  st->layers[i].phase = phase;
  emit (st, true, false);
}

static bool
cancelled (const struct pull_state *st)
{
  return st->cancelled && *st->cancelled;
}

/* Hold digest in the pull's lease (before it is written, so that a GC
 * running meanwhile keeps it), then record it in the namespace. */
static int
hold (struct pull_state *st, const char *digest, berth_error **err)
{
  return meta_lease_add_resource (st->d->meta, st->req->ns, st->lease, "content", digest, err);
}

static int
record (struct pull_state *st, const char *digest, int64_t size, const berth_labels *labels, berth_error **err)
{
  return meta_content_add (st->d->meta, st->req->ns, digest, size, labels, err);
}

static bool
in_store (struct pull_state *st, const char *digest)
{
  struct berth_content_info info = { .size = sizeof info };
  berth_labels l = { 0 };
  info.labels = &l;
  _cleanup_error_ berth_error *e = NULL;
  int r = content_info (st->store, &st->ctx, digest, &info, &e);
  labels_clear (&l);
  return r == 0;
}

/* Record digest when its blob is in the store (*ret_stored), as one step
 * for GC: GC holds the metadata lock from its mark to its blob sweep, and
 * a blob without a record is swept.  A lease holds records, not blobs, so
 * checking the store first and recording later lets a GC in between
 * delete the blob and leave the record naming nothing (found by the fault
 * harness: tests/faults/crash.sh, pull-blob-before-record, where the crash
 * leaves a committed blob without its record). */
static int
record_if_stored (struct pull_state *st, const char *digest, int64_t size, const berth_labels *labels,
                  bool *ret_stored, berth_error **err)
{
  meta_lock (st->d->meta);
  bool stored = in_store (st, digest);
  int r = stored ? record (st, digest, size, labels, err) : 0;
  meta_unlock (st->d->meta);
  *ret_stored = stored;
  return r;
}

/* The blob that a writer found committed by someone else: record it, or
 * say it went meanwhile (a GC between the two; the next pull fetches it). */
static int
record_existing (struct pull_state *st, const char *digest, int64_t size, const berth_labels *labels,
                 berth_error **err)
{
  bool stored;
  int r = record_if_stored (st, digest, size, labels, &stored, err);
  if (r == 0 && !stored)
    r = berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "content %s was removed while this pull recorded it; retry",
                         digest);
  return r;
}

/* Ingest refs are per namespace and per blob, so that a pull cut short is
 * resumed by the next pull of anything sharing the blob. */
static void
ingest_ref (const struct pull_state *st, const char *digest, char *buf, size_t len)
{
  snprintf (buf, len, "%s/pull/%s", st->req->ns, digest);
}

/* Store a small document (manifest, index, config) held in memory. */
static int
store_bytes (struct pull_state *st, const char *digest, const unsigned char *data, size_t len,
             const berth_labels *labels, berth_error **err)
{
  int r = hold (st, digest, err);
  if (r < 0)
    return r;
  bool stored;
  r = record_if_stored (st, digest, (int64_t) len, labels, &stored, err);
  if (r < 0 || stored)
    return r;
  char ref[BERTH_NAME_MAX];
  ingest_ref (st, digest, ref, sizeof ref);
  berth_content_writer *w = NULL;
  r = content_writer_open (st->store, &st->ctx, ref, (int64_t) len, digest, &w, err);
  if (r == BERTH_E_EXISTS)
    {
      berth_error_free (*err);
      *err = NULL;
      return record_existing (st, digest, (int64_t) len, labels, err);
    }
  if (r < 0)
    return r;
  r = content_writer_truncate (st->store, w, 0, err);
  if (r == 0)
    r = content_writer_write (st->store, w, data, len, err);
  /* Commit and record under the metadata lock (see fetch_layers). */
  meta_lock (st->d->meta);
  if (r == 0)
    r = content_writer_commit (st->store, w, (int64_t) len, digest, NULL, err);
  content_writer_close (st->store, w);
  if (r == BERTH_E_EXISTS)
    {
      berth_error_free (*err);
      *err = NULL;
      r = 0;
    }
  if (r == 0)
    r = record (st, digest, (int64_t) len, labels, err);
  meta_unlock (st->d->meta);
  return r;
}

static int
gc_ref_label (berth_labels *l, const char *key, const char *digest)
{
  return labels_set (l, key, digest);
}

/* ---- streaming a layer into its applier ------------------------------- */

static void
stream_drop_queue (struct stream *s)
{
  for (struct chunk *c = s->head, *n; c; c = n)
    {
      n = c->next;
      free (c);
    }
  s->head = s->tail = NULL;
  s->queued = 0;
}

/* Sink side (the registry client's thread). Never blocks on the applier. */
static void
stream_push (struct stream *s, const void *buf, size_t len)
{
  pthread_mutex_lock (&s->lock);
  while (s->block && !s->abort && s->queued > 0 && s->queued + len > STREAM_QUEUE_MAX)
    pthread_cond_wait (&s->cond, &s->lock);
  if (!s->abort && !s->eof)
    {
      struct chunk *c = s->queued + len > STREAM_QUEUE_MAX && !s->block ? NULL : malloc (sizeof *c + len);
      if (c == NULL)
        {
          /* The applier is too far behind (or memory is short): stop
           * streaming this layer; it is applied from the store later. */
          s->abort = true;
          stream_drop_queue (s);
        }
      else
        {
          c->next = NULL;
          c->len = len;
          c->off = 0;
          memcpy (c->data, buf, len);
          if (s->tail)
            s->tail->next = c;
          else
            s->head = c;
          s->tail = c;
          s->queued += len;
        }
      pthread_cond_broadcast (&s->cond);
    }
  pthread_mutex_unlock (&s->lock);
}

static void
stream_end (struct stream *s, bool ok)
{
  pthread_mutex_lock (&s->lock);
  if (ok)
    s->eof = true;
  else
    {
      s->abort = true;
      stream_drop_queue (s);
    }
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);
}

/* Applier side. */
static ssize_t
stream_read (void *data, void *buf, size_t len)
{
  struct stream *s = data;
  pthread_mutex_lock (&s->lock);
  while (s->head == NULL && !s->eof && !s->abort)
    pthread_cond_wait (&s->cond, &s->lock);
  ssize_t r;
  if (s->abort)
    r = BERTH_E_CANCELLED;
  else if (s->head == NULL)
    r = 0; /* eof */
  else
    {
      struct chunk *c = s->head;
      size_t n = c->len - c->off < len ? c->len - c->off : len;
      memcpy (buf, c->data + c->off, n);
      c->off += n;
      s->queued -= n;
      if (c->off == c->len)
        {
          s->head = c->next;
          if (s->head == NULL)
            s->tail = NULL;
          free (c);
        }
      r = (ssize_t) n;
      if (s->block)
        pthread_cond_broadcast (&s->cond); /* room for a waiting sink */
    }
  pthread_mutex_unlock (&s->lock);
  return r;
}

struct applier_args
{
  struct stream *s;
  const char *media_type;
  const volatile int *cancelled;
};

static void *
stream_apply_thread (void *data)
{
  struct applier_args *a = data;
  struct stream *s = a->s;
  struct unpack_options o = {
    .mode = s->mode, .media_type = a->media_type, .same_owner = geteuid () == 0, .cancelled = a->cancelled,
  };
  s->r = unpack_apply (s->staging, stream_read, s, &o, &s->res, &s->err);
  if (s->r < 0)
    stream_end (s, false); /* the sink stops queueing for a dead applier */
  free (a);
  return NULL;
}

/* Start the applier at the layer's first bytes (from offset 0 only: a
 * resumed ingest cannot be applied from its middle). */
static void
stream_start (struct pull_state *st, struct unpack_layer *u)
{
  struct stream *s = u->stream;
  if (s->started)
    return;
  s->started = true;
  struct applier_args *a = calloc (1, sizeof *a);
  /* 0755 like a snapshotter's fresh directory: a layer without a "./"
   * entry leaves the root as it is, and move_staged copies it over. */
  if (a == NULL || fs_mkdir_p (s->staging, 0755) < 0 || chmod (s->staging, 0755) < 0)
    {
      free (a);
      stream_end (s, false);
      return;
    }
  a->s = s;
  a->media_type = u->media_type;
  a->cancelled = st->cancelled;
  if (pthread_create (&s->thread, NULL, stream_apply_thread, a) != 0)
    {
      free (a);
      s->started = false;
      stream_end (s, false);
    }
}

/* Wait for the applier; true when it applied the whole layer. */
static bool
stream_join (struct stream *s)
{
  if (s->started)
    {
      pthread_join (s->thread, NULL);
      s->started = false;
    }
  return s->r == 0 && s->eof && !s->abort;
}

static void
stream_free (struct pull_state *st, struct unpack_layer *u)
{
  struct stream *s = u->stream;
  if (s == NULL)
    return;
  stream_end (s, false);
  stream_join (s);
  stream_drop_queue (s);
  berth_error_free (s->err);
  if (s->staging[0])
    {
      _cleanup_free_ char *cmd = NULL;
      /* The staging tree holds whatever was not moved into a snapshot. */
      if (asprintf (&cmd, "rm -rf -- '%s'", s->staging) > 0 && strchr (s->staging, '\'') == NULL)
        {
          int rc = system (cmd);
          (void) rc;
        }
    }
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  free (s);
  u->stream = NULL;
}

/* ---- layers ------------------------------------------------------------ */

static int
layer_sink (void *data, const void *buf, size_t len)
{
  struct layer_job *j = data;
  struct pull_state *st = j->st;
  _cleanup_error_ berth_error *e = NULL;
  if (j->md)
    {
      if (EVP_DigestUpdate (j->md, buf, len) != 1)
        return BERTH_E_INTERNAL;
      stream_start (st, j->unpack);
      stream_push (j->unpack->stream, buf, len);
      return cancelled (st) ? BERTH_E_CANCELLED : 0;
    }
  int r = content_writer_write (st->store, j->w, buf, len, &e);
  if (r < 0)
    {
      free (st->layers[j->idx].error);
      st->layers[j->idx].error = strdup (berth_error_message (e));
      return r;
    }
  if (j->unpack && j->unpack->stream)
    {
      stream_start (st, j->unpack);
      stream_push (j->unpack->stream, buf, len);
    }
  return cancelled (st) ? BERTH_E_CANCELLED : 0;
}

static int
layer_reset (void *data, int64_t offset)
{
  struct layer_job *j = data;
  _cleanup_error_ berth_error *e = NULL;
  j->st->layers[j->idx].resumed = 0;
  if (j->md) /* from 0, before any byte: nothing to undo; otherwise the applier saw bytes */
    {
      if (j->unpack->stream->started)
        return BERTH_E_INVALID;
      return EVP_DigestInit_ex (j->md, EVP_sha256 (), NULL) == 1 ? 0 : BERTH_E_INTERNAL;
    }
  /* The bytes the applier saw are void: apply this layer from the store. */
  if (j->unpack && j->unpack->stream && j->unpack->stream->started)
    stream_end (j->unpack->stream, false);
  return content_writer_truncate (j->st->store, j->w, offset, &e);
}

static void
layer_progress (void *data, int64_t done, int64_t total)
{
  struct layer_job *j = data;
  struct pull_state *st = j->st;
  struct pull_layer *l = &st->layers[j->idx];
  int64_t now = mono_ns ();
  if (l->phase == PULL_WAITING)
    {
      l->phase = PULL_DOWNLOADING;
      j->rate_mark_ns = now;
      j->rate_mark_bytes = done;
      l->offset = done;
      emit (st, true, false);
    }
  l->offset = done;
  if (done == total && j->unpack && j->unpack->stream)
    stream_end (j->unpack->stream, true);
  if (now - j->rate_mark_ns >= 1000000000LL)
    {
      l->rate = (double) (done - j->rate_mark_bytes) * 1e9 / (double) (now - j->rate_mark_ns);
      j->rate_mark_ns = now;
      j->rate_mark_bytes = done;
    }
  emit (st, false, false);
}

static int
add_layer (struct pull_state *st, const oci_descriptor *d)
{
  for (size_t i = 0; i < st->nlayers; i++)
    if (strcmp (st->layers[i].digest, d->digest) == 0)
      return 0; /* shared between platforms */
  struct pull_layer *v = realloc (st->layers, (st->nlayers + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  st->layers = v;
  struct pull_layer *l = &v[st->nlayers++];
  memset (l, 0, sizeof *l);
  snprintf (l->digest, sizeof l->digest, "%s", d->digest);
  l->media_type = strdup (d->media_type ? d->media_type : "");
  l->total = d->size;
  l->phase = PULL_WAITING;
  return l->media_type ? 0 : BERTH_E_NOMEM;
}

/* A layer of the image that the snapshotter serves from the registry. */
static bool
is_lazy (const struct pull_state *st, const char *digest)
{
  for (size_t i = 0; i < st->nunpack; i++)
    if (st->unpack[i].lazy && strcmp (st->unpack[i].digest, digest) == 0)
      return true;
  return false;
}

static int
fetch_layers (struct pull_state *st, berth_error **err)
{
  size_t n = st->nlayers;
  _cleanup_free_ struct layer_job *jobs = calloc (n + 1, sizeof *jobs);
  _cleanup_free_ struct registry_blob *blobs = calloc (n + 1, sizeof *blobs);
  if (jobs == NULL || blobs == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "pull");
  size_t nb = 0;
  int r = 0;
  for (size_t i = 0; r == 0 && i < n; i++)
    {
      struct pull_layer *l = &st->layers[i];
      if (is_lazy (st, l->digest))
        continue;
      r = hold (st, l->digest, err);
      if (r < 0)
        break;
      bool stored;
      r = record_if_stored (st, l->digest, l->total, NULL, &stored, err);
      if (r < 0)
        break;
      if (stored)
        {
          l->phase = PULL_EXISTS;
          l->offset = l->total;
          continue;
        }
      struct layer_job *j = &jobs[i];
      *j = (struct layer_job){ .st = st, .idx = i };
      /* discard_unpacked_layers with a streaming applier: the compressed
       * blob is hashed on its way and never written, so the pull needs no
       * more disk than the unpacked tree (no resume for such a layer). */
      if (st->d->cfg->registry.discard_unpacked_layers)
        for (size_t k = 0; k < st->nunpack; k++)
          if (st->unpack[k].stream && strcmp (st->unpack[k].digest, l->digest) == 0
              && oci_digest_algorithm (l->digest) == OCI_DIGEST_SHA256)
            j->unpack = &st->unpack[k];
      if (j->unpack && (j->md = EVP_MD_CTX_new ()) != NULL && EVP_DigestInit_ex (j->md, EVP_sha256 (), NULL) == 1)
        {
          j->unpack->stream->block = true;
          l->resumed = l->offset = 0;
          blobs[nb++] = (struct registry_blob){
            .digest = l->digest, .size = l->total, .offset = 0, .sink = layer_sink, .reset = layer_reset,
            .progress = layer_progress, .data = j,
          };
          continue;
        }
      EVP_MD_CTX_free (j->md);
      j->md = NULL;
      j->unpack = NULL;
      char ref[BERTH_NAME_MAX];
      ingest_ref (st, l->digest, ref, sizeof ref);
      r = content_writer_open (st->store, &st->ctx, ref, l->total, l->digest, &j->w, err);
      if (r == BERTH_E_EXISTS)
        {
          berth_error_free (*err);
          *err = NULL;
          l->phase = PULL_EXISTS;
          l->offset = l->total;
          r = record_existing (st, l->digest, l->total, NULL, err);
          continue;
        }
      if (r < 0)
        break;
      struct berth_content_status cs = { .size = sizeof cs };
      r = content_writer_status (st->store, j->w, &cs, err);
      if (r < 0)
        {
          content_writer_close (st->store, j->w);
          break;
        }
      if (cs.offset > l->total)
        {
          r = content_writer_truncate (st->store, j->w, 0, err);
          cs.offset = 0;
        }
      l->resumed = l->offset = cs.offset;
      for (size_t k = 0; k < st->nunpack && cs.offset == 0; k++)
        if (st->unpack[k].stream && strcmp (st->unpack[k].digest, l->digest) == 0)
          j->unpack = &st->unpack[k];
      blobs[nb++] = (struct registry_blob){
        .digest = l->digest, .size = l->total, .offset = cs.offset, .sink = layer_sink, .reset = layer_reset,
        .progress = layer_progress, .data = j,
      };
    }
  emit (st, true, false);

  int fr = 0;
  if (r == 0 && nb > 0)
    {
      _cleanup_error_ berth_error *ferr = NULL;
      fr = registry_fetch_blobs (st->rs, st->repo, blobs, nb, st->cancelled, &ferr);
    }
  /* Commit what arrived, whatever happened to the others: a later pull
   * then has less to fetch. */
  for (size_t b = 0; b < nb; b++)
    {
      struct layer_job *j = blobs[b].data;
      struct pull_layer *l = &st->layers[j->idx];
      _cleanup_error_ berth_error *e = NULL;
      int lr = r < 0 ? BERTH_E_CANCELLED : blobs[b].result;
      if (j->md)
        {
          if (lr == 0)
            {
              set_phase (st, j->idx, PULL_VERIFYING);
              unsigned char md[EVP_MAX_MD_SIZE];
              unsigned int mdlen = 0;
              char hex[2 * EVP_MAX_MD_SIZE + 8] = "sha256:";
              EVP_DigestFinal_ex (j->md, md, &mdlen);
              for (unsigned int k = 0; k < mdlen; k++)
                snprintf (hex + 7 + 2 * k, 3, "%02x", md[k]);
              if (strcmp (hex, l->digest) != 0)
                lr = berth_error_set (&e, BERTH_E_INVALID, 0, "digest mismatch: the registry sent %s", hex);
            }
          else if (blobs[b].err)
            e = TAKE_PTR (blobs[b].err);
          berth_error_free (blobs[b].err);
          EVP_MD_CTX_free (j->md);
          j->md = NULL;
          if (lr < 0)
            stream_end (j->unpack->stream, false);
          else
            {
              l->offset = l->total;
              set_phase (st, j->idx, PULL_DONE);
            }
        }
      else if (lr == 0)
        {
          set_phase (st, j->idx, PULL_VERIFYING);
          /* Commit and record under the metadata lock, as Content.Write
           * does: a GC running meanwhile never sees the blob without its
           * record (it would delete it, and the record would then name a
           * blob that is gone). */
          meta_lock (st->d->meta);
          lr = content_writer_commit (st->store, j->w, l->total, l->digest, NULL, &e);
          if (lr == BERTH_E_EXISTS)
            lr = 0;
          if (lr == 0)
            BERTH_FAILPOINT ("pull-blob-before-record");
          if (lr == 0)
            lr = record (st, l->digest, l->total, NULL, &e);
          meta_unlock (st->d->meta);
          if (lr == 0)
            {
              l->offset = l->total;
              set_phase (st, j->idx, PULL_DONE);
            }
        }
      else if (blobs[b].err)
        e = TAKE_PTR (blobs[b].err);
      if (j->w)
        {
          berth_error_free (blobs[b].err);
          content_writer_close (st->store, j->w);
        }
      if (lr < 0)
        {
          free (l->error);
          l->error = strdup (e ? berth_error_message (e) : berth_errcode_name (lr));
          l->phase = PULL_ERROR;
          if (r == 0)
            {
              r = lr;
              berth_error_free (*err);
              *err = TAKE_PTR (e);
              berth_error_wrap (err, "layer %s", l->digest);
            }
        }
    }
  emit (st, true, false);
  if (r == 0 && fr < 0)
    r = berth_error_set (err, fr, 0, "fetching layers");
  return r;
}

/* ---- manifests ---------------------------------------------------------- */

static int fetch_manifest_tree (struct pull_state *st, const char *media_type, const char *digest, int64_t size,
                                int depth, berth_error **err);

static int
handle_manifest (struct pull_state *st, const char *digest, const char *media_type, const unsigned char *data,
                 size_t len, berth_error **err)
{
  _cleanup_(oci_manifest_freep) oci_manifest *m = NULL;
  int r = oci_manifest_parse (media_type, (const char *) data, len, &m, err);
  if (r < 0)
    return berth_error_wrap (err, "manifest %s", digest);

  /* The config: small, fetched whole, checked against the layers. */
  _cleanup_free_ unsigned char *cfg = NULL;
  size_t cfg_len = 0;
  r = registry_fetch_blob_bytes (st->rs, st->repo, m->config.digest, m->config.size, 0, &cfg, &cfg_len, err);
  if (r < 0)
    return berth_error_wrap (err, "config %s", m->config.digest);
  _cleanup_(oci_config_freep) oci_config *c = NULL;
  r = oci_config_parse (m->config.media_type, (const char *) cfg, cfg_len, &c, err);
  if (r < 0)
    return berth_error_wrap (err, "config %s", m->config.digest);
  if (c->n_diff_ids != m->n_layers)
    return berth_error_set (err, BERTH_E_INVALID, 0, "config %s lists %zu diff_ids for the %zu layers of manifest %s",
                            m->config.digest, c->n_diff_ids, m->n_layers, digest);
  r = store_bytes (st, m->config.digest, cfg, cfg_len, NULL, err);
  if (r < 0)
    return r;
  if (st->unpack == NULL && !st->req->content_only)
    {
      st->unpack = calloc (m->n_layers, sizeof *st->unpack);
      if (st->unpack == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "pull");
      st->nunpack = m->n_layers;
      for (size_t i = 0; i < m->n_layers; i++)
        {
          struct unpack_layer *u = &st->unpack[i];
          snprintf (u->digest, sizeof u->digest, "%s", m->layers[i].digest);
          u->media_type = strdup (m->layers[i].media_type ? m->layers[i].media_type : "");
          u->size = m->layers[i].size;
          snprintf (u->diff_id, sizeof u->diff_id, "%s", c->diff_ids[i]);
          const char *toc = oci_map_get (&m->layers[i].annotations, BERTH_ESTARGZ_TOC_DIGEST_ANNOTATION);
          u->toc_digest = toc && *toc ? strdup (toc) : NULL;
          if (u->media_type == NULL || (toc && *toc && u->toc_digest == NULL))
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "pull");
        }
      snprintf (st->unpack_config, sizeof st->unpack_config, "%s", m->config.digest);
      st->unpack_config_size = (int64_t) cfg_len;
      snprintf (st->unpack_manifest, sizeof st->unpack_manifest, "%s", digest);
    }

  for (size_t i = 0; i < m->n_layers; i++)
    {
      if (oci_media_type_kind (m->layers[i].media_type) != OCI_KIND_LAYER)
        return berth_error_set (err, BERTH_E_NOTSUP, 0, "manifest %s: layer %zu has media type %s, not a layer",
                                digest, i, m->layers[i].media_type ? m->layers[i].media_type : "(none)");
      if ((r = add_layer (st, &m->layers[i])) < 0)
        return berth_error_set (err, r, ENOMEM, "pull");
    }

  /* gc.ref labels: the manifest keeps its config and layers alive. */
  berth_labels l = { 0 };
  r = gc_ref_label (&l, "containerd.io/gc.ref.content.config", m->config.digest);
  for (size_t i = 0; r == 0 && i < m->n_layers; i++)
    {
      char key[64];
      snprintf (key, sizeof key, "containerd.io/gc.ref.content.l.%zu", i);
      r = gc_ref_label (&l, key, m->layers[i].digest);
    }
  if (r == 0)
    r = store_bytes (st, digest, data, len, &l, err);
  else
    r = berth_error_set (err, r, ENOMEM, "pull");
  labels_clear (&l);
  return r;
}

/* The manifests of idx to pull: every platform's (--all-platforms), the
 * best match of each --platform, or the best match for the host. */
static int
choose_manifests (struct pull_state *st, const oci_index *idx, const oci_descriptor ***ret, size_t *ret_n,
                  berth_error **err)
{
  const struct pull_request *req = st->req;
  if (req->all_platforms || req->nplatforms == 0)
    {
      _cleanup_(platform_matcher_freep) platform_matcher *m = NULL;
      int r = req->all_platforms ? platform_matcher_all (&m, err) : platform_matcher_default (&m, err);
      if (r == 0)
        r = platform_select (idx, m, ret, ret_n, err);
      if (r == 0 && !req->all_platforms && *ret_n > 1)
        *ret_n = 1; /* best first */
      return r;
    }
  const oci_descriptor **out = calloc (req->nplatforms + 1, sizeof *out);
  if (out == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "pull");
  size_t n = 0;
  for (size_t i = 0; i < req->nplatforms; i++)
    {
      _cleanup_(oci_platform_freep) oci_platform *p = NULL;
      _cleanup_(platform_matcher_freep) platform_matcher *m = NULL;
      _cleanup_free_ const oci_descriptor **found = NULL;
      size_t nfound = 0;
      int r = platform_parse (req->platforms[i], &p, err);
      if (r == 0)
        r = platform_matcher_only (p, &m, err);
      if (r == 0)
        r = platform_select (idx, m, &found, &nfound, err);
      if (r < 0)
        {
          free (out);
          return r;
        }
      bool dup = false;
      for (size_t k = 0; k < n; k++)
        dup = dup || strcmp (out[k]->digest, found[0]->digest) == 0;
      if (!dup)
        out[n++] = found[0];
    }
  *ret = out;
  *ret_n = n;
  return 0;
}

static int
handle_index (struct pull_state *st, const char *digest, const char *media_type, const unsigned char *data,
              size_t len, int depth, berth_error **err)
{
  _cleanup_(oci_index_freep) oci_index *idx = NULL;
  int r = oci_index_parse (media_type, (const char *) data, len, &idx, err);
  if (r < 0)
    return berth_error_wrap (err, "index %s", digest);
  _cleanup_free_ const oci_descriptor **chosen = NULL;
  size_t nchosen = 0;
  r = choose_manifests (st, idx, &chosen, &nchosen, err);
  if (r < 0)
    return berth_error_wrap (err, "%s", st->name);
  berth_labels l = { 0 };
  for (size_t i = 0; r == 0 && i < idx->n_manifests; i++)
    {
      char key[64];
      snprintf (key, sizeof key, "containerd.io/gc.ref.content.m.%zu", i);
      r = gc_ref_label (&l, key, idx->manifests[i].digest);
    }
  if (r < 0)
    {
      labels_clear (&l);
      return berth_error_set (err, r, ENOMEM, "pull");
    }
  for (size_t k = 0; r == 0 && k < nchosen; k++)
    {
      const oci_descriptor *m = chosen[k];
      r = fetch_manifest_tree (st, m->media_type, m->digest, m->size, depth + 1, err);
    }
  if (r == 0)
    r = store_bytes (st, digest, data, len, &l, err);
  labels_clear (&l);
  return r;
}

static int
fetch_manifest_tree (struct pull_state *st, const char *media_type, const char *digest, int64_t size, int depth,
                     berth_error **err)
{
  if (depth > MAX_INDEX_DEPTH)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: indexes nested deeper than %d", digest, MAX_INDEX_DEPTH);
  if (cancelled (st))
    return berth_error_set (err, BERTH_E_CANCELLED, 0, "pull cancelled");
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_free_ char *served_mt = NULL;
  size_t len = 0;
  int r = hold (st, digest, err);
  if (r == 0)
    r = registry_fetch_manifest (st->rs, st->repo, digest, size, &data, &len, &served_mt, err);
  if (r < 0)
    return r;
  const char *mt = media_type && *media_type ? media_type : served_mt;
  if (mt == NULL || oci_media_type_kind (mt) == OCI_KIND_UNKNOWN)
    mt = oci_detect_media_type ((const char *) data, len);
  switch (mt ? oci_media_type_kind (mt) : OCI_KIND_UNKNOWN)
    {
    case OCI_KIND_INDEX: return handle_index (st, digest, mt, data, len, depth, err);
    case OCI_KIND_MANIFEST: return handle_manifest (st, digest, mt, data, len, err);
    case OCI_KIND_SCHEMA1: return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s: %s", st->name, OCI_SCHEMA1_MESSAGE);
    default:
      return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s: %s is a %s, not an image manifest or index", st->name,
                              digest, mt ? mt : "document of unknown type");
    }
}

/* ---- unpack ---------------------------------------------------------- */

/* chainID(0) = diffID(0); chainID(n) = sha256(chainID(n-1) + " " + diffID(n))
 * (image-spec config.md, "Layer ChainID"). */
static int
chain_id (const char *parent, const char *diff_id, char *ret, size_t len)
{
  if (parent == NULL || *parent == '\0')
    {
      snprintf (ret, len, "%s", diff_id);
      return 0;
    }
  unsigned char md[SHA256_DIGEST_LENGTH];
  EVP_MD_CTX *c = EVP_MD_CTX_new ();
  if (c == NULL || EVP_DigestInit_ex (c, EVP_sha256 (), NULL) != 1 || EVP_DigestUpdate (c, parent, strlen (parent)) != 1
      || EVP_DigestUpdate (c, " ", 1) != 1 || EVP_DigestUpdate (c, diff_id, strlen (diff_id)) != 1
      || EVP_DigestFinal_ex (c, md, NULL) != 1)
    {
      EVP_MD_CTX_free (c);
      return BERTH_E_INTERNAL;
    }
  EVP_MD_CTX_free (c);
  int n = snprintf (ret, len, "sha256:");
  for (size_t i = 0; i < sizeof md && (size_t) n + 2 < len; i++)
    n += snprintf (ret + n, len - (size_t) n, "%02x", md[i]);
  return 0;
}

/* Reads a committed blob through the content store for unpack_apply. */
struct blob_source
{
  plugin *store;
  berth_content_reader *r;
  int64_t off;
  const volatile int *cancelled;
};

static ssize_t
blob_read (void *data, void *buf, size_t len)
{
  struct blob_source *b = data;
  if (b->cancelled && *b->cancelled)
    return BERTH_E_CANCELLED;
  size_t n = 0;
  _cleanup_error_ berth_error *e = NULL;
  int r = content_reader_read_at (b->store, b->r, buf, len, b->off, &n, &e);
  if (r < 0)
    return r;
  b->off += (int64_t) n;
  return (ssize_t) n;
}

/* Where a snapshot's files are written: the upper directory of an overlay
 * mount (whiteouts in overlayfs form) or the directory of a bind mount
 * (a full copy of the parent: whiteouts applied as deletions), as
 * containerd's Diff.Apply does it.  NULL when the mounts are neither. */
static const char *
apply_target (const berth_mounts *m, enum unpack_mode *ret_mode)
{
  if (m->n != 1)
    return NULL;
  const struct berth_mount *mt = &m->items[0];
  if (strcmp (mt->type, "overlay") == 0)
    for (char **o = mt->options; o && *o; o++)
      if (strncmp (*o, "upperdir=", 9) == 0)
        {
          *ret_mode = UNPACK_OVERLAY;
          return *o + 9;
        }
  if (strcmp (mt->type, "bind") == 0)
    {
      *ret_mode = UNPACK_NATIVE;
      return mt->source;
    }
  return NULL;
}

/* Make a layer's unpacked files durable before its snapshot is committed:
 * the commit is a record (SQLite, synchronous=FULL) that reaches the disk
 * at once, while the files may sit in the page cache (ext4's delayed
 * allocation).  Without this a power cut after the pull leaves a committed
 * snapshot of empty or zeroed files ("exec format error"), which no later
 * pull repairs since the chain exists (found by tests/faults/powerloss.sh).
 * syncfs: one call for the whole tree (and the staging tree it was moved
 * from, on the same filesystem). */
static int
sync_tree (const char *dir, berth_error **err)
{
  _cleanup_close_ int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || syncfs (fd) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "syncing the unpacked layer in %s to disk",
                            dir);
  return 0;
}

/* The end of one layer's snapshot, however its files got there: r == 0
 * commits it under its chainID (a chain another pull committed meanwhile
 * wins, ours is dropped) and puts containerd's diffID label on the layer's
 * content record — unless the blob was only hashed, never stored;
 * r < 0 removes it, so no half-made snapshot stays. */
static int
layer_snapshot_end (struct pull_state *st, const struct snaps *sn, const struct unpack_layer *u, const char *key,
                    int r, berth_error **err)
{
  _cleanup_error_ berth_error *e = NULL;
  if (r < 0)
    {
      snaps_remove (sn, key, &e);
      return r;
    }
  r = snaps_commit (sn, u->chain, key, NULL, err);
  if (r == 0)
    BERTH_FAILPOINT ("pull-after-snapshot-commit");
  if (r == BERTH_E_EXISTS)
    {
      berth_error_free (*err);
      *err = NULL;
      r = 0;
      snaps_remove (sn, key, &e);
    }
  if (r < 0 || (u->stream && u->stream->block))
    return r;
  berth_labels l = { 0 };
  if (labels_set (&l, "containerd.io/uncompressed", u->diff_id) == 0)
    record (st, u->digest, u->size, &l, err);
  labels_clear (&l);
  return 0;
}

/* containerd's remote-snapshotter labels (snapshots.go) for preparing the
 * snapshot of layer u: a snapshotter that serves the layer from its blob
 * (fuse) commits it itself and answers EXISTS; the others ignore them. */
static int
layer_labels (const struct unpack_layer *u, berth_labels *rl)
{
  int r = labels_set (rl, "containerd.io/snapshot.ref", u->chain);
  if (r == 0)
    r = labels_set (rl, "containerd.io/snapshot/cri.layer-digest", u->digest);
  if (r == 0 && u->media_type)
    r = labels_set (rl, "containerd.io/snapshot/io.berth.layer.media-type", u->media_type);
  if (r == 0)
    r = labels_set (rl, "containerd.io/snapshot/io.berth.layer.diff-id", u->diff_id);
  return r;
}

static int
unpack_layer (struct pull_state *st, const struct snaps *sn, size_t i, const char *parent, berth_error **err)
{
  struct unpack_layer *u = &st->unpack[i];
  char key[BERTH_NAME_MAX];
  snprintf (key, sizeof key, "extract-%s-%zu-%s", st->lease, i, u->chain);
  berth_mounts mounts = { 0 };
  berth_labels rl = { 0 };
  int r = layer_labels (u, &rl);
  if (r == 0)
    r = snaps_create (sn, key, parent, &rl, false, &mounts, err);
  else
    r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  labels_clear (&rl);
  if (r == BERTH_E_EXISTS)
    {
      /* Committed as u->chain by the snapshotter (or by another pull meanwhile). */
      berth_error_free (*err);
      *err = NULL;
      berth_labels l = { 0 };
      if (labels_set (&l, "containerd.io/uncompressed", u->diff_id) == 0)
        record (st, u->digest, u->size, &l, err);
      labels_clear (&l);
      return 0;
    }
  if (r < 0)
    return r;
  enum unpack_mode mode = UNPACK_NATIVE;
  const char *target = apply_target (&mounts, &mode);
  struct unpack_result res = { 0 };
  struct blob_source src = { .store = st->store, .cancelled = st->cancelled };
  if (target == NULL)
    r = berth_error_set (err, BERTH_E_NOTSUP, 0, "snapshotter %s: cannot apply onto its mounts (neither one overlay "
                         "with an upperdir nor one bind mount)", sn->snapshotter);
  if (r == 0)
    r = content_reader_open (st->store, &st->ctx, u->digest, &src.r, err);
  if (r == 0)
    {
      struct unpack_options o = {
        .mode = mode, .media_type = u->media_type, .same_owner = geteuid () == 0, .cancelled = st->cancelled,
      };
      r = unpack_apply (target, blob_read, &src, &o, &res, err);
      content_reader_close (st->store, src.r);
    }
  if (r == 0)
    r = sync_tree (target, err);
  mounts_clear (&mounts);
  if (r == 0 && strcmp (res.diff_id, u->diff_id) != 0)
    r = berth_error_set (err, BERTH_E_INVALID, 0,
                         "layer %s: its uncompressed content is %s, but the image config says %s", u->digest,
                         res.diff_id, u->diff_id);
  if (r < 0)
    berth_error_wrap (err, "unpacking layer %s", u->digest);
  return layer_snapshot_end (st, sn, u, key, r, err);
}

static struct pull_layer *
progress_of (struct pull_state *st, const char *digest)
{
  for (size_t i = 0; i < st->nlayers; i++)
    if (strcmp (st->layers[i].digest, digest) == 0)
      return &st->layers[i];
  return NULL;
}

/* Choose the snapshotter, compute the chain IDs, see which chains exist
 * already, and — for overlayfs, where each layer is its own directory —
 * set up a streaming applier per missing layer, so that layers are applied
 * while they download, in parallel, into staging trees that are moved into
 * their snapshots in order afterwards. */
static int
plan_unpack (struct pull_state *st, berth_error **err)
{
  if (st->nunpack == 0 || st->req->content_only || st->req->skip_unpack)
    return 0;
  const char *id = st->req->snapshotter && *st->req->snapshotter ? st->req->snapshotter : NULL;
  int r;
  if (id)
    r = snaps_plugin (st->d->reg, id, &st->snapshotter, err);
  else
    {
      /* containerd's default is overlayfs; where it cannot run, native. */
      r = snaps_plugin (st->d->reg, "overlayfs", &st->snapshotter, err);
      if (r < 0)
        {
          berth_error_free (*err);
          *err = NULL;
          r = snaps_plugin (st->d->reg, "native", &st->snapshotter, err);
        }
    }
  if (r < 0)
    return r;
  const char *sid = st->snapshotter->desc.id;
  bool stream = strcmp (sid, "overlayfs") == 0;
  /* Per daemon process: GC removes the trees of pulls that died with an
   * earlier one (gc.h, GC_STAGING_DIR). */
  snprintf (st->staging_root, sizeof st->staging_root, "%s/" GC_STAGING_DIR "/%s", st->d->cfg->root, gc_instance ());
  const char *parent = "";
  for (size_t i = 0; i < st->nunpack; i++)
    {
      struct unpack_layer *u = &st->unpack[i];
      if (chain_id (parent, u->diff_id, u->chain, sizeof u->chain) < 0)
        return berth_error_set (err, BERTH_E_INTERNAL, 0, "computing the chain ID of layer %zu", i);
      parent = u->chain;
      struct meta_snapshot have;
      _cleanup_error_ berth_error *e = NULL;
      /* A chain that exists is held by this pull's lease from the moment it
       * is seen, under the metadata lock that GC holds from mark to sweep:
       * otherwise a GC before the image record (which references it) may
       * remove it, and the image names a snapshot that is gone (found by
       * tests/faults/crash.sh, pull-after-snapshot-commit). */
      meta_lock (st->d->meta);
      u->needed = meta_snapshot_get (st->d->meta, st->req->ns, sid, u->chain, &have, &e) < 0;
      if (!u->needed)
        {
          meta_snapshot_clear (&have);
          char type[64];
          snprintf (type, sizeof type, "snapshots/%s", sid);
          int hr = meta_lease_add_resource (st->d->meta, st->req->ns, st->lease, type, u->chain, err);
          if (hr < 0)
            {
              meta_unlock (st->d->meta);
              return hr;
            }
        }
      meta_unlock (st->d->meta);
      if (!u->needed || !stream)
        continue;
      struct stream *s = calloc (1, sizeof *s);
      if (s == NULL)
        continue; /* applied from the store instead */
      pthread_mutex_init (&s->lock, NULL);
      pthread_cond_init (&s->cond, NULL);
      s->mode = i == 0 ? UNPACK_NATIVE : UNPACK_OVERLAY;
      int n = snprintf (s->staging, sizeof s->staging, "%s/%s-%zu", st->staging_root, st->lease, i);
      if (n < 0 || (size_t) n >= sizeof s->staging)
        {
          pthread_mutex_destroy (&s->lock);
          pthread_cond_destroy (&s->cond);
          free (s);
          continue;
        }
      u->stream = s;
    }
  return 0;
}

/* ---- lazy layers ------------------------------------------------------ */

/* Offer layer i (eStargz, blob not in the store, no snapshot yet) to the
 * snapshotter to serve from the registry.  1: it does (the layer is
 * committed under its chainID and will not be fetched); 0: it does not (the
 * pull downloads it; the reason is logged); < 0 only for running out of
 * memory. */
static int
lazy_layer (struct pull_state *st, const struct snaps *sn, size_t i, const char *parent, berth_error **err)
{
  struct unpack_layer *u = &st->unpack[i];
  _cleanup_error_ berth_error *e = NULL;
  struct registry_blob_access a;
  int r = registry_blob_access (st->rs, st->repo, u->digest, &a, &e);
  if (r == 0 && a.size >= 0 && a.size != u->size)
    r = berth_error_set (&e, BERTH_E_INVALID, 0, "the registry says it is %" PRId64 " bytes, the manifest %" PRId64,
                         a.size, u->size);
  berth_labels rl = { 0 };
  if (r == 0 && layer_labels (u, &rl) < 0)
    r = berth_error_set (&e, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (r == 0)
    {
      const struct lazy_source src = { .host = registry_session_host (st->rs), .repo = st->repo, .ro = st->ro };
      r = lazy_labels (st->d->cfg->state, st->req->ns, u->digest, u->size, u->toc_digest, &a, &src, &rl, &e);
    }
  registry_blob_access_clear (&a);
  char key[BERTH_NAME_MAX];
  snprintf (key, sizeof key, "extract-%s-%zu-%s", st->lease, i, u->chain);
  berth_mounts mounts = { 0 };
  if (r == 0)
    r = snaps_create (sn, key, parent, &rl, false, &mounts, &e);
  labels_clear (&rl);
  mounts_clear (&mounts);
  if (r != BERTH_E_EXISTS)
    lazy_forget (st->d->cfg->state, st->req->ns, u->digest);
  if (r == BERTH_E_EXISTS)
    {
      /* committed as u->chain: by the snapshotter, or by another pull */
      u->lazy = true;
      u->needed = false;
      stream_free (st, u);
      struct pull_layer *l = progress_of (st, u->digest);
      if (l)
        set_phase (st, (size_t) (l - st->layers), PULL_LAZY);
      return 1;
    }
  if (r == 0)
    {
      /* An ordinary active snapshot: the snapshotter wants the blob. */
      _cleanup_error_ berth_error *e2 = NULL;
      snaps_remove (sn, key, &e2);
      log_info ("pull %s: layer %s: snapshotter %s does not serve it lazily; downloading it", st->name, u->digest,
                sn->snapshotter);
      return 0;
    }
  if (r == BERTH_E_NOMEM)
    {
      *err = TAKE_PTR (e);
      return r;
    }
  log_info ("pull %s: layer %s: not served lazily (%s); downloading it", st->name, u->digest,
            e ? berth_error_message (e) : berth_errcode_name (r));
  return 0;
}

/* A layer served lazily already (its chain exists; its blob is still
 * arriving): write its headers file again with what this pull's
 * credentials give now, so that a server holding an expired token (a
 * berthd restart lost the renewals) picks the new one up at its next 401. */
static void
lazy_renew (struct pull_state *st, const struct unpack_layer *u)
{
  _cleanup_error_ berth_error *e = NULL;
  struct registry_blob_access a;
  int r = registry_blob_access (st->rs, st->repo, u->digest, &a, &e);
  if (r < 0)
    {
      log_info ("pull %s: layer %s (served lazily): %s", st->name, u->digest, berth_error_message (e));
      return;
    }
  berth_labels scratch = { 0 };
  const struct lazy_source src = { .host = registry_session_host (st->rs), .repo = st->repo, .ro = st->ro };
  if (a.headers && lazy_labels (st->d->cfg->state, st->req->ns, u->digest, u->size, u->toc_digest, &a, &src,
                                &scratch, &e) < 0)
    log_warning ("pull %s: layer %s (served lazily): renewing its credentials: %s", st->name, u->digest,
                 berth_error_message (e));
  labels_clear (&scratch);
  registry_blob_access_clear (&a);
}

/* With a snapshotter that serves eStargz layers from the registry
 * (LAZY_CAPABILITY), offer it the layers in order, up to the first that
 * is not an eStargz layer or that it does not take: a layer's snapshot
 * needs its parent's, so every layer above a downloaded one is downloaded
 * too.  A layer whose chain exists already and whose blob is not in the
 * store is not fetched either (an image pulled lazily before, pulled
 * again). */
static int
lazy_layers (struct pull_state *st, berth_error **err)
{
  if (st->snapshotter == NULL || st->nunpack == 0 || !plugin_has_capability (st->snapshotter, LAZY_CAPABILITY))
    return 0;
  struct snaps sn = {
    .m = st->d->meta, .p = st->snapshotter, .snapshotter = st->snapshotter->desc.id, .ns = st->req->ns,
    .lease = st->lease,
  };
  const char *parent = "";
  for (size_t i = 0; i < st->nunpack; parent = st->unpack[i].chain, i++)
    {
      struct unpack_layer *u = &st->unpack[i];
      bool stored = in_store (st, u->digest);
      if (!u->needed)
        {
          if (u->toc_digest && !stored)
            {
              u->lazy = true;
              struct pull_layer *l = progress_of (st, u->digest);
              if (l)
                set_phase (st, (size_t) (l - st->layers), PULL_LAZY);
              lazy_renew (st, u);
            }
          continue;
        }
      if (u->toc_digest == NULL || stored)
        break;
      int r = lazy_layer (st, &sn, i, parent, err);
      if (r <= 0)
        return r;
    }
  return 0;
}

/* Move a staged layer into its snapshot's directory: every entry by rename
 * (same filesystem), then the root's own mode, owner, times and xattrs
 * (a layer's "./" entry and an opaque root live there). */
static int
move_staged (const char *from, const char *to, berth_error **err)
{
  _cleanup_close_ int src = open (from, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  _cleanup_close_ int dst = open (to, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (src < 0 || dst < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "moving %s into %s", from, to);
  DIR *dir = fdopendir (dup (src));
  if (dir == NULL)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "reading %s", from);
  int r = 0;
  struct dirent *de;
  while (r == 0 && (de = readdir (dir)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (renameat (src, de->d_name, dst, de->d_name) < 0)
        r = berth_error_set (err, errno == EXDEV ? BERTH_E_NOTSUP : BERTH_E_INTERNAL, errno, "moving %s/%s into %s",
                             from, de->d_name, to);
    }
  closedir (dir);
  if (r < 0)
    return r;
  struct stat st;
  if (fstat (src, &st) < 0 || fchown (dst, st.st_uid, st.st_gid) < 0 || fchmod (dst, st.st_mode & 07777) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "copying the attributes of %s", from);
  char names[4096];
  ssize_t nl = flistxattr (src, names, sizeof names);
  for (ssize_t off = 0; nl > 0 && off < nl; off += (ssize_t) strlen (names + off) + 1)
    {
      char value[4096];
      ssize_t vl = fgetxattr (src, names + off, value, sizeof value);
      if (vl >= 0 && fsetxattr (dst, names + off, value, (size_t) vl, 0) < 0)
        return berth_error_set (err, BERTH_E_INTERNAL, errno, "copying xattr %s of %s", names + off, from);
    }
  struct timespec times[2] = { st.st_atim, st.st_mtim };
  if (futimens (dst, times) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "copying the times of %s", from);
  return 0;
}

/* A streamed layer: its staging tree becomes the new snapshot's content. */
static int
commit_staged (struct pull_state *st, const struct snaps *sn, size_t i, const char *parent, berth_error **err)
{
  struct unpack_layer *u = &st->unpack[i];
  char key[BERTH_NAME_MAX];
  snprintf (key, sizeof key, "extract-%s-%zu-%s", st->lease, i, u->chain);
  berth_mounts mounts = { 0 };
  int r = snaps_create (sn, key, parent, NULL, false, &mounts, err);
  if (r < 0)
    return r;
  enum unpack_mode mode;
  const char *target = apply_target (&mounts, &mode);
  if (target == NULL)
    r = berth_error_set (err, BERTH_E_NOTSUP, 0, "snapshotter %s: no directory to move layer %zu into",
                         sn->snapshotter, i);
  if (r == 0)
    r = move_staged (u->stream->staging, target, err);
  if (r == 0)
    r = sync_tree (target, err);
  mounts_clear (&mounts);
  return layer_snapshot_end (st, sn, u, key, r, err);
}

/* Unpack the chosen manifest's layers into snapshots named by chainID, in
 * order: a streamed layer is moved in from its staging tree, any other (not
 * streamed, resumed, fallen behind, or failed) is applied from the content
 * store now.  Then the config holds the top snapshot alive
 * (containerd.io/gc.ref.snapshot.<snapshotter>). */
static int
unpack_image (struct pull_state *st, berth_error **err)
{
  if (st->nunpack == 0 || st->snapshotter == NULL)
    return 0;
  struct snaps sn = {
    .m = st->d->meta, .p = st->snapshotter, .snapshotter = st->snapshotter->desc.id, .ns = st->req->ns,
    .lease = st->lease,
  };
  int r = 0;
  const char *parent = "";
  for (size_t i = 0; r == 0 && i < st->nunpack; i++)
    {
      struct unpack_layer *u = &st->unpack[i];
      if (u->needed)
        {
          struct pull_layer *l = progress_of (st, u->digest);
          bool streamed = u->stream && stream_join (u->stream) && strcmp (u->stream->res.diff_id, u->diff_id) == 0;
          if (l)
            set_phase (st, (size_t) (l - st->layers), PULL_EXTRACTING);
          if (streamed)
            {
              r = commit_staged (st, &sn, i, parent, err);
              if (r == BERTH_E_NOTSUP) /* not movable here: apply again from the store */
                {
                  berth_error_free (*err);
                  *err = NULL;
                  streamed = false;
                }
            }
          if (!streamed && u->stream && u->stream->block)
            {
              /* Its blob was never stored (discard_unpacked_layers): no second try. */
              const struct stream *s = u->stream;
              r = berth_error_set (err, s->r < 0 ? s->r : BERTH_E_INVALID, 0,
                                   "layer %s: applying it while it downloaded failed (%s), and with "
                                   "discard_unpacked_layers its blob was not kept to try again",
                                   u->digest, s->err ? berth_error_message (s->err)
                                                     : (s->r == 0 ? "its diffID does not match the config" : "aborted"));
            }
          else if (!streamed)
            r = unpack_layer (st, &sn, i, parent, err);
          if (l && r < 0)
            {
              /* The progress line says why, not just "error". */
              free (l->error);
              l->error = strdup (*err ? berth_error_message (*err) : berth_errcode_name (r));
            }
          if (l)
            set_phase (st, (size_t) (l - st->layers), r == 0 ? PULL_DONE : PULL_ERROR);
        }
      parent = u->chain;
    }
  for (size_t i = 0; i < st->nunpack; i++)
    stream_free (st, &st->unpack[i]);
  if (r < 0)
    return r;
  char key[128];
  snprintf (key, sizeof key, "containerd.io/gc.ref.snapshot.%s", sn.snapshotter);
  berth_labels l = { 0 };
  r = labels_set (&l, key, parent);
  if (r == 0)
    r = record (st, st->unpack_config, st->unpack_config_size, &l, err);
  labels_clear (&l);
  return r;
}

/* [registry] discard_unpacked_layers: once the layers are snapshots, drop
 * the manifest's references to their compressed blobs (as containerd does)
 * so that the GC that follows the pull reclaims them. */
static int
discard_layers (struct pull_state *st, berth_error **err)
{
  size_t n = st->nunpack;
  _cleanup_free_ char *keys = calloc (n + 1, 64);
  _cleanup_free_ const char **paths = calloc (n + 1, sizeof (char *));
  if (keys == NULL || paths == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "pull");
  for (size_t i = 0; i < n; i++)
    {
      snprintf (keys + i * 64, 64, "labels.containerd.io/gc.ref.content.l.%zu", i);
      paths[i] = keys + i * 64;
    }
  berth_labels none = { 0 }; /* a path whose key is absent deletes that label */
  return meta_content_update (st->d->meta, st->req->ns, st->unpack_manifest, &none, paths, n, NULL, err);
}

static void
gc_soon (void *data)
{
  gc_schedule (data);
}

/* ---- the pull --------------------------------------------------------- */

static void
state_clear (struct pull_state *st)
{
  registry_session_free (st->rs);
  free (st->repo);
  free (st->name);
  free (st->ref);
  free (st->target_mt);
  for (size_t i = 0; i < st->nlayers; i++)
    {
      free (st->layers[i].media_type);
      free (st->layers[i].error);
    }
  free (st->layers);
  for (size_t i = 0; i < st->nunpack; i++)
    {
      stream_free (st, &st->unpack[i]);
      free (st->unpack[i].media_type);
      free (st->unpack[i].toc_digest);
    }
  free (st->unpack);
}

static int
lease_create (struct pull_state *st, int ttl_s, berth_error **err)
{
  char expire[64];
  time_t t = time (NULL) + ttl_s;
  struct tm tm;
  gmtime_r (&t, &tm);
  strftime (expire, sizeof expire, "%Y-%m-%dT%H:%M:%SZ", &tm);
  char rnd[17];
  FILE *f = fopen ("/proc/sys/kernel/random/uuid", "re");
  if (f == NULL || fscanf (f, "%16[0-9a-f]", rnd) != 1)
    snprintf (rnd, sizeof rnd, "%llx", (unsigned long long) mono_ns ());
  if (f)
    fclose (f);
  snprintf (st->lease, sizeof st->lease, "berth-pull-%s", rnd);
  berth_labels l = { 0 };
  int r = labels_set (&l, "containerd.io/gc.expire", expire);
  /* A pull's lease lives as long as the pull (it is deleted once the image
   * is recorded); a content-only fetch's holds the content for its TTL,
   * whatever becomes of this daemon. */
  if (r == 0 && !st->req->content_only)
    r = labels_set (&l, GC_LABEL_PULL_INSTANCE, gc_instance ());
  if (r == 0)
    r = meta_lease_create (st->d->meta, st->req->ns, st->lease, &l, NULL, err);
  else
    r = berth_error_set (err, r, ENOMEM, "pull");
  labels_clear (&l);
  return r;
}

int
pull_run (struct daemon *d, const struct pull_request *req, pull_progress_fn fn, void *data,
          const volatile int *cancelled_flag, berth_error **err)
{
  struct pull_state st = {
    .d = d, .req = req, .fn = fn, .fn_data = data, .cancelled = cancelled_flag, .status = "resolving",
  };
  st.start_ns = mono_ns ();
  st.store = registry_find_kind (d->reg, BERTH_KIND_CONTENT, "local");
  if (st.store == NULL)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "no content store: io.berth.content.v1.local is not ok");

  _cleanup_(reference_freep) struct reference *ref = NULL;
  int r = reference_parse (req->reference, &ref, err);
  if (r < 0)
    return r;
  st.name = reference_string (ref);
  st.repo = strdup (ref->path);
  st.ref = strdup (ref->digest ? ref->digest : (ref->tag ? ref->tag : "latest"));
  if (st.name == NULL || st.repo == NULL || st.ref == NULL)
    {
      state_clear (&st);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "pull");
    }
  struct registry_options ro = {
    .config_path = d->cfg->registry.config_path,
    .username = req->username,
    .secret = req->secret,
    .plain_http = req->plain_http,
    .max_parallel = req->max_concurrent_downloads > 0 ? req->max_concurrent_downloads
                                                      : (int) d->cfg->registry.max_concurrent_downloads,
  };
  st.ro = &ro;
  r = registry_session_new (ref->domain, &ro, &st.rs, err);
  if (r == 0)
    r = lease_create (&st, req->content_only ? FETCH_LEASE_TTL_S : PULL_LEASE_TTL_S, err);
  if (r < 0)
    {
      state_clear (&st);
      return r;
    }
  ctx_init (&st.ctx, req->ns, st.lease);
  emit (&st, true, false);

  _cleanup_free_ char *digest = NULL;
  int64_t size = 0;
  r = registry_resolve (st.rs, st.repo, st.ref, &st.target_mt, &digest, &size, err);
  if (r == 0)
    {
      snprintf (st.target_digest, sizeof st.target_digest, "%s", digest);
      st.target_size = size;
      st.status = "fetching";
      emit (&st, true, false);
      r = fetch_manifest_tree (&st, st.target_mt, digest, size, 0, err);
    }
  if (r == 0)
    r = plan_unpack (&st, err);
  if (r == 0)
    r = lazy_layers (&st, err);
  if (r == 0)
    r = fetch_layers (&st, err);
  if (r == 0 && !req->content_only && !req->skip_unpack)
    {
      st.status = "unpacking";
      emit (&st, true, false);
      r = unpack_image (&st, err);
      if (r == 0 && d->cfg->registry.discard_unpacked_layers && st.unpack_manifest[0])
        r = discard_layers (&st, err);
    }
  if (r == 0 && !req->content_only)
    {
      struct meta_descriptor target = {
        .media_type = st.target_mt, .digest = st.target_digest, .size = st.target_size,
      };
      struct meta_image old;
      _cleanup_error_ berth_error *e = NULL;
      BERTH_FAILPOINT ("pull-before-image-record");
      bool existed = meta_image_get (d->meta, req->ns, st.name, &old, &e) == 0;
      if (existed)
        meta_image_clear (&old);
      r = meta_image_create_or_update (d->meta, req->ns, st.name, &target, NULL, err);
      if (r == 0 && events_has_subscribers (d->events))
        {
          if (existed)
            {
              Containerd__Services__Images__V1__ImageUpdate ev = CONTAINERD__SERVICES__IMAGES__V1__IMAGE_UPDATE__INIT;
              ev.name = st.name;
              events_publish (d->events, req->ns, "/images/update", &ev.base);
            }
          else
            {
              Containerd__Services__Images__V1__ImageCreate ev = CONTAINERD__SERVICES__IMAGES__V1__IMAGE_CREATE__INIT;
              ev.name = st.name;
              events_publish (d->events, req->ns, "/images/create", &ev.base);
            }
        }
    }
  /* The image record (or, for content only, the lease's expiry) holds the
   * content from now on.  A failed pull keeps its lease until it expires,
   * so that what it committed is still there for the next try. */
  if (r == 0 && !req->content_only)
    {
      _cleanup_error_ berth_error *e = NULL;
      if (meta_lease_delete (d->meta, req->ns, st.lease, &e) < 0)
        log_warning ("pull %s: removing lease %s: %s", st.name, st.lease, berth_error_message (e));
    }
  if (r == 0 && d->cfg->registry.discard_unpacked_layers && !req->content_only && !req->skip_unpack)
    loop_post (d->loop, gc_soon, d);
  if (r == 0)
    {
      st.status = "done";
      emit (&st, true, true);
      log_info ("pulled %s (%s) in %.1f s", st.name, st.target_digest, (double) (mono_ns () - st.start_ns) / 1e9);
    }
  state_clear (&st);
  return r;
}
