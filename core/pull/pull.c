/* The daemon-side pull; see pull.h for the contract. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "events.h"
#include "github.com/containerd/containerd/api/events/image.pb-c.h"
#include "host-objects.h"
#include "log.h"
#include "plugin-calls.h"
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
    [PULL_ERROR] = "error",
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

struct layer_job
{
  struct pull_state *st;
  size_t idx;
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
  if (!in_store (st, digest))
    {
      char ref[BERTH_NAME_MAX];
      ingest_ref (st, digest, ref, sizeof ref);
      berth_content_writer *w = NULL;
      r = content_writer_open (st->store, &st->ctx, ref, (int64_t) len, digest, &w, err);
      if (r == BERTH_E_EXISTS)
        {
          berth_error_free (*err);
          *err = NULL;
        }
      else if (r < 0)
        return r;
      else
        {
          r = content_writer_truncate (st->store, w, 0, err);
          if (r == 0)
            r = content_writer_write (st->store, w, data, len, err);
          if (r == 0)
            r = content_writer_commit (st->store, w, (int64_t) len, digest, NULL, err);
          content_writer_close (st->store, w);
          if (r == BERTH_E_EXISTS)
            {
              berth_error_free (*err);
              *err = NULL;
              r = 0;
            }
          if (r < 0)
            return r;
        }
    }
  return record (st, digest, (int64_t) len, labels, err);
}

static int
gc_ref_label (berth_labels *l, const char *key, const char *digest)
{
  return labels_set (l, key, digest);
}

/* ---- layers ------------------------------------------------------------ */

static int
layer_sink (void *data, const void *buf, size_t len)
{
  struct layer_job *j = data;
  struct pull_state *st = j->st;
  _cleanup_error_ berth_error *e = NULL;
  int r = content_writer_write (st->store, j->w, buf, len, &e);
  if (r < 0)
    {
      free (st->layers[j->idx].error);
      st->layers[j->idx].error = strdup (berth_error_message (e));
      return r;
    }
  return cancelled (st) ? BERTH_E_CANCELLED : 0;
}

static int
layer_reset (void *data, int64_t offset)
{
  struct layer_job *j = data;
  _cleanup_error_ berth_error *e = NULL;
  j->st->layers[j->idx].resumed = 0;
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
      r = hold (st, l->digest, err);
      if (r < 0)
        break;
      if (in_store (st, l->digest))
        {
          l->phase = PULL_EXISTS;
          l->offset = l->total;
          r = record (st, l->digest, l->total, NULL, err);
          continue;
        }
      char ref[BERTH_NAME_MAX];
      ingest_ref (st, l->digest, ref, sizeof ref);
      struct layer_job *j = &jobs[i];
      *j = (struct layer_job){ .st = st, .idx = i };
      r = content_writer_open (st->store, &st->ctx, ref, l->total, l->digest, &j->w, err);
      if (r == BERTH_E_EXISTS)
        {
          berth_error_free (*err);
          *err = NULL;
          l->phase = PULL_EXISTS;
          l->offset = l->total;
          r = record (st, l->digest, l->total, NULL, err);
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
      if (lr == 0)
        {
          set_phase (st, j->idx, PULL_VERIFYING);
          lr = content_writer_commit (st->store, j->w, l->total, l->digest, NULL, &e);
          if (lr == BERTH_E_EXISTS)
            lr = 0;
          if (lr == 0)
            lr = record (st, l->digest, l->total, NULL, &e);
          if (lr == 0)
            {
              l->offset = l->total;
              set_phase (st, j->idx, PULL_DONE);
            }
        }
      else if (blobs[b].err)
        e = TAKE_PTR (blobs[b].err);
      berth_error_free (blobs[b].err);
      content_writer_close (st->store, j->w);
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
    r = fetch_layers (&st, err);
  if (r == 0 && !req->content_only)
    {
      struct meta_descriptor target = {
        .media_type = st.target_mt, .digest = st.target_digest, .size = st.target_size,
      };
      struct meta_image old;
      _cleanup_error_ berth_error *e = NULL;
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
  if (r == 0)
    {
      st.status = "done";
      emit (&st, true, true);
      log_info ("pulled %s (%s) in %.1f s", st.name, st.target_digest, (double) (mono_ns () - st.start_ns) / 1e9);
    }
  state_clear (&st);
  return r;
}
