/* berth images convert: rewrite an image's layers as eStargz, plain tar or
 * zstd and record the result as a new image, on the client side as
 * `nerdctl image convert` and `ctr images convert` do:
 *
 *   Images/Get SOURCE -> index or manifest -> for every chosen manifest:
 *   its layers streamed from Content/Read, decompressed here, checked
 *   (a tar whose sha256 is the config's diff_id), re-encoded and streamed
 *   into Content/Write; the config (new rootfs.diff_ids when they change:
 *   only eStargz rewrites the tar), the manifest and the index written the
 *   same way with containerd's gc.ref labels -> unpacked for the asked
 *   snapshotters (Snapshots/Prepare + Diff/Apply + Snapshots/Commit, the
 *   config labelled containerd.io/gc.ref.snapshot.<snapshotter>, which is
 *   what `berth run` looks for) -> Images/Create TARGET (Update when it
 *   exists: containerd's converter overwrites too, and TARGET may be
 *   SOURCE).
 *
 * Everything written is held by a lease of our own (containerd-lease on
 * every call, expiring after LEASE_TTL_S should we die) until the image
 * record holds it; the lease is deleted at the end, also on failure, so a
 * failed conversion leaves nothing the next GC keeps.
 *
 * The output always uses OCI media types (a Docker manifest becomes an OCI
 * one): Docker has no media type for zstd layers, and mixing them is what
 * containerd's converter refuses too.  A layer already in the target format
 * is kept as it is (an eStargz layer is recognised by its TOC annotation).
 *
 * Layers are read over a second connection: the gRPC client queues every
 * message of an open stream while another call drives the connection, so
 * a Read on the connection the Write blocks on would buffer the whole
 * layer in memory; on its own connection the socket holds it back. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>

#include <berth/layerindex.h>

#include "cleanup.h"
#include "cli.h"
#include "helpers.h"
#include "images.h"
#include "convert.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.pb-c.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.pb-c.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.pb-c.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.pb-c.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"

#define CONTENT_SERVICE "/containerd.services.content.v1.Content/"
#define LEASES_SERVICE "/containerd.services.leases.v1.Leases/"
#define SNAPSHOTS_SVC "/containerd.services.snapshots.v1.Snapshots/"
#define DIFF_SERVICE "/containerd.services.diff.v1.Diff/"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define LABEL_UNCOMPRESSED "containerd.io/uncompressed"

/* Manifests, indexes and configs are small; anything larger is not one. */
#define DOCUMENT_MAX (8u << 20)
/* One Content/Write message (the server's Read sends 1 MiB too). */
#define WRITE_CHUNK (1u << 20)
#define IOBUF (256u << 10)
/* How long our lease outlives a convert that died (containerd's default
 * lease expiry for clients). */
#define LEASE_TTL_S (24 * 3600)
#define DEFAULT_SNAPSHOTTER "overlayfs"
#define PROGRESS_INTERVAL_NS 100000000LL

enum convert_format
{
  CONVERT_NONE,
  CONVERT_ESTARGZ,
  CONVERT_UNCOMPRESSED,
  CONVERT_ZSTD,
};

static const char *const format_names[] = {
  [CONVERT_NONE] = "none",
  [CONVERT_ESTARGZ] = "estargz",
  [CONVERT_UNCOMPRESSED] = "uncompressed",
  [CONVERT_ZSTD] = "zstd",
};

struct convert_opts
{
  enum convert_format format;
  char **prefetch; /* NULL-terminated, or NULL */
  size_t n_prefetch;
  uint64_t chunk_size;
  int zstd_level;
  uint64_t zstd_frame_size; /* tar bytes per zstd frame; 0: one frame */
  struct platform *platforms;
  size_t n_platforms;
  bool all_platforms;
  char **snapshotters; /* NULL-terminated, or NULL */
  size_t n_snapshotters;
  bool skip_unpack;
  bool quiet;
  enum cli_format output;
};

static void
convert_opts_clear (struct convert_opts *o)
{
  strv_free (o->prefetch);
  strv_free (o->snapshotters);
  free (o->platforms);
}

/* One run of the command. */
struct convert
{
  struct cli *cli;
  const struct convert_opts *o;
  grpc_client *reader; /* our second connection, for Content/Read */
  char lease[64];
  bool tty;     /* stderr is a terminal: live progress */
  unsigned seq; /* ingest refs of this run */
};

static int64_t
mono_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
hex_digest (EVP_MD_CTX *md, char *out, size_t len)
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex (md, d, &n);
  size_t at = (size_t)snprintf (out, len, "sha256:");
  for (unsigned i = 0; i < n && at + 2 < len; i++)
    at += (size_t)snprintf (out + at, len - at, "%02x", d[i]);
}

/* "sha256:0123456789ab" for messages. */
static const char *
short_digest (const char *d, char *buf, size_t len)
{
  snprintf (buf, len, "%.19s", d ? d : "?");
  return buf;
}

static void
json_putp (json_object **o)
{
  json_object_put (*o);
}

static json_object *
jget (json_object *o, const char *key)
{
  json_object *v = NULL;
  return o && json_object_object_get_ex (o, key, &v) ? v : NULL;
}

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v = jget (o, key);
  return v && json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
}

static int64_t
jsize (json_object *o)
{
  json_object *v = jget (o, "size");
  return v && json_object_is_type (v, json_type_int) ? json_object_get_int64 (v) : -1;
}

/* ---- calls ---- */

/* A unary call with the namespace and, once we have one, our lease. */
static int
convert_unary (struct convert *cv, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp, berth_error **err)
{
  grpc_client *c = cli_client (cv->cli);
  if (c == NULL)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "cannot connect to %s", cv->cli->address);
  struct grpc_client_md md[] = { { "containerd-namespace", cv->cli->ns }, { "containerd-lease", cv->lease } };
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, method, md, cv->lease[0] ? 2 : 1, req, resp_desc, &resp, err);
  if (r < 0)
    return r;
  if (ret_resp)
    *ret_resp = resp;
  else
    protobuf_c_message_free_unpacked (resp, NULL);
  return 0;
}

static int
lease_create (struct convert *cv, berth_error **err)
{
  char id[64], expire[64];
  unsigned char rnd[8];
  FILE *f = fopen ("/dev/urandom", "re");
  bool ok = f && fread (rnd, 1, sizeof rnd, f) == sizeof rnd;
  if (f)
    fclose (f);
  if (!ok)
    {
      uint64_t t = (uint64_t)mono_ns () ^ ((uint64_t)getpid () << 32);
      memcpy (rnd, &t, sizeof rnd);
    }
  int at = snprintf (id, sizeof id, "berth-convert-");
  for (size_t i = 0; i < sizeof rnd; i++)
    at += snprintf (id + at, sizeof id - (size_t)at, "%02x", rnd[i]);
  time_t t = time (NULL) + LEASE_TTL_S;
  struct tm tm;
  gmtime_r (&t, &tm);
  strftime (expire, sizeof expire, "%Y-%m-%dT%H:%M:%SZ", &tm);

  _cleanup_ (pb_labels_free) struct pb_labels labels
      = { .entry_desc = &containerd__services__leases__v1__create_request__labels_entry__descriptor };
  if (pb_labels_add (&labels, "containerd.io/gc.expire", expire) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "creating a lease");
  Containerd__Services__Leases__V1__CreateRequest req = CONTAINERD__SERVICES__LEASES__V1__CREATE_REQUEST__INIT;
  req.id = id;
  req.n_labels = labels.n;
  req.labels = (Containerd__Services__Leases__V1__CreateRequest__LabelsEntry **)labels.entries;
  int r = convert_unary (cv, LEASES_SERVICE "Create", &req.base,
                         &containerd__services__leases__v1__create_response__descriptor, NULL, err);
  if (r < 0)
    return berth_error_wrap (err, "creating lease %s", id);
  snprintf (cv->lease, sizeof cv->lease, "%s", id);
  return 0;
}

/* Best effort: the lease expires anyway. */
static void
lease_delete (struct convert *cv)
{
  if (cv->lease[0] == '\0')
    return;
  char id[64];
  snprintf (id, sizeof id, "%s", cv->lease);
  cv->lease[0] = '\0'; /* not under the lease being deleted */
  Containerd__Services__Leases__V1__DeleteRequest req = CONTAINERD__SERVICES__LEASES__V1__DELETE_REQUEST__INIT;
  req.id = id;
  _cleanup_error_ berth_error *err = NULL;
  if (convert_unary (cv, LEASES_SERVICE "Delete", &req.base, &google__protobuf__empty__descriptor, NULL, &err) < 0)
    fprintf (stderr, "berth: warning: removing lease %s: %s (it expires in %d hours)\n", id, berth_error_message (err),
             LEASE_TTL_S / 3600);
}

/* Put a blob that existed before we wrote it into our lease, so that it
 * stays until the image holds it. */
static int
lease_hold (struct convert *cv, const char *digest, berth_error **err)
{
  Containerd__Services__Leases__V1__Resource res = CONTAINERD__SERVICES__LEASES__V1__RESOURCE__INIT;
  res.id = (char *)digest;
  res.type = (char *)"content";
  Containerd__Services__Leases__V1__AddResourceRequest req
      = CONTAINERD__SERVICES__LEASES__V1__ADD_RESOURCE_REQUEST__INIT;
  req.id = cv->lease;
  req.resource = &res;
  int r = convert_unary (cv, LEASES_SERVICE "AddResource", &req.base, &google__protobuf__empty__descriptor, NULL, err);
  if (r < 0)
    return berth_error_wrap (err, "adding %s to lease %s", digest, cv->lease);
  return 0;
}

/* ---- reading a blob ---- */

/* Content/Read of one blob as a pull stream over cv->reader; the bytes are
 * checked against digest and size when the stream ends. */
struct blob_source
{
  grpc_client_call *call;
  ProtobufCMessage *msg;
  const uint8_t *p;
  size_t left;
  uint64_t got;
  int64_t size;
  char digest[80];
  EVP_MD_CTX *md;
  bool eof;
};

static void
blob_source_close (struct blob_source *s)
{
  if (s->msg)
    protobuf_c_message_free_unpacked (s->msg, NULL);
  grpc_client_call_free (s->call);
  EVP_MD_CTX_free (s->md);
  memset (s, 0, sizeof *s);
}

static int
blob_source_open (struct convert *cv, const char *digest, int64_t size, struct blob_source *s, berth_error **err)
{
  memset (s, 0, sizeof *s);
  snprintf (s->digest, sizeof s->digest, "%s", digest);
  s->size = size;
  if ((s->md = EVP_MD_CTX_new ()) == NULL || EVP_DigestInit_ex (s->md, EVP_sha256 (), NULL) != 1)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "reading %s", digest);
  struct grpc_client_md md[] = { { "containerd-namespace", cv->cli->ns } };
  Containerd__Services__Content__V1__ReadContentRequest req
      = CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
  req.digest = (char *)digest;
  int r = grpc_client_call_open (cv->reader, CONTENT_SERVICE "Read", md, ARRAY_SIZE (md), &s->call, err);
  if (r == 0)
    r = grpc_client_call_send (s->call, &req.base, err);
  if (r == 0)
    r = grpc_client_call_close_send (s->call, err);
  return r;
}

static int
blob_source_read (struct blob_source *s, void *buf, size_t len, size_t *ret_n, berth_error **err)
{
  while (s->left == 0 && !s->eof)
    {
      if (s->msg)
        protobuf_c_message_free_unpacked (TAKE_PTR (s->msg), NULL);
      int r = grpc_client_call_recv (s->call, &containerd__services__content__v1__read_content_response__descriptor,
                                     &s->msg, err);
      if (r < 0)
        return r;
      if (r == 0)
        {
          s->eof = true;
          char got[80];
          hex_digest (s->md, got, sizeof got);
          if (s->size >= 0 && s->got != (uint64_t)s->size)
            return berth_error_set (err, BERTH_E_INVALID, 0,
                                    "content %s is %" PRIu64 " bytes, its descriptor says %" PRId64, s->digest, s->got,
                                    s->size);
          if (strcmp (got, s->digest) != 0)
            return berth_error_set (err, BERTH_E_INVALID, 0, "content %s is corrupt: its bytes hash to %s", s->digest,
                                    got);
          break;
        }
      const Containerd__Services__Content__V1__ReadContentResponse *m = (const void *)s->msg;
      if (m->offset < 0 || (uint64_t)m->offset != s->got)
        return berth_error_set (err, BERTH_E_INTERNAL, 0,
                                "reading %s: the server sent offset %" PRId64 ", expected %" PRIu64, s->digest,
                                m->offset, s->got);
      s->p = m->data.data;
      s->left = m->data.len;
      s->got += m->data.len;
      EVP_DigestUpdate (s->md, m->data.data, m->data.len);
    }
  size_t n = len < s->left ? len : s->left;
  if (n)
    memcpy (buf, s->p, n);
  s->p += n;
  s->left -= n;
  *ret_n = n;
  return 0;
}

/* ---- decompressing a layer ---- */

/* The uncompressed tar of a layer, from its blob: gzip (multi-member, as
 * eStargz is), zstd (multi-frame) or plain.  Hashes what it hands out, so
 * that the caller can hold it against the config's diff_id. */
struct decoder
{
  uint32_t compression;
  struct blob_source *src;
  unsigned char *in;
  size_t in_len, in_off;
  bool src_eof, seen_input;
  z_stream z;
  bool z_init, member_done;
  ZSTD_DStream *zd;
  size_t zret; /* ZSTD_decompressStream's last answer: 0 when a frame ended, flushed */
  EVP_MD_CTX *md;
  uint64_t total;
};

static void
decoder_clear (struct decoder *d)
{
  if (d->z_init)
    inflateEnd (&d->z);
  ZSTD_freeDStream (d->zd);
  EVP_MD_CTX_free (d->md);
  free (d->in);
  memset (d, 0, sizeof *d);
}

static int
decoder_init (struct decoder *d, uint32_t compression, struct blob_source *src, berth_error **err)
{
  memset (d, 0, sizeof *d);
  d->compression = compression;
  d->src = src;
  if ((d->in = malloc (IOBUF)) == NULL || (d->md = EVP_MD_CTX_new ()) == NULL
      || EVP_DigestInit_ex (d->md, EVP_sha256 (), NULL) != 1)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "decompressing a layer");
  if (compression == BERTH_LAYERINDEX_GZIP)
    {
      if (inflateInit2 (&d->z, 16 + MAX_WBITS) != Z_OK)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "inflateInit2");
      d->z_init = true;
    }
  else if (compression == BERTH_LAYERINDEX_ZSTD)
    {
      if ((d->zd = ZSTD_createDStream ()) == NULL || ZSTD_isError (ZSTD_initDStream (d->zd)))
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "ZSTD_createDStream");
    }
  return 0;
}

static int
decoder_refill (struct decoder *d, berth_error **err)
{
  if (d->in_off < d->in_len || d->src_eof)
    return 0;
  size_t n = 0;
  int r = blob_source_read (d->src, d->in, IOBUF, &n, err);
  if (r < 0)
    return r;
  d->in_off = 0;
  d->in_len = n;
  if (n == 0)
    d->src_eof = true;
  else
    d->seen_input = true;
  return 0;
}

static int
decoder_inflate (struct decoder *d, unsigned char *out, size_t cap, size_t *ret_n, berth_error **err)
{
  for (;;)
    {
      int r = decoder_refill (d, err);
      if (r < 0)
        return r;
      size_t avail = d->in_len - d->in_off;
      if (avail == 0 && d->src_eof)
        {
          if (!d->seen_input)
            return berth_error_set (err, BERTH_E_INVALID, 0, "not a gzip stream: the blob is empty");
          if (!d->member_done)
            return berth_error_set (err, BERTH_E_INVALID, 0, "gzip stream is truncated");
          *ret_n = 0;
          return 0;
        }
      if (d->member_done)
        {
          /* Another member follows (eStargz is one member per chunk). */
          inflateReset (&d->z);
          d->member_done = false;
        }
      d->z.next_in = d->in + d->in_off;
      d->z.avail_in = (uInt)avail;
      d->z.next_out = out;
      d->z.avail_out = (uInt)cap;
      int zr = inflate (&d->z, Z_NO_FLUSH);
      d->in_off = d->in_len - d->z.avail_in;
      size_t produced = cap - d->z.avail_out;
      if (zr == Z_STREAM_END)
        d->member_done = true;
      else if (zr != Z_OK && zr != Z_BUF_ERROR)
        return berth_error_set (err, BERTH_E_INVALID, 0, "not a valid gzip stream (%s)",
                                d->z.msg ? d->z.msg : "inflate failed");
      if (produced)
        {
          *ret_n = produced;
          return 0;
        }
    }
}

static int
decoder_unzstd (struct decoder *d, unsigned char *out, size_t cap, size_t *ret_n, berth_error **err)
{
  for (;;)
    {
      int r = decoder_refill (d, err);
      if (r < 0)
        return r;
      bool drained = d->in_off == d->in_len && d->src_eof;
      if (drained && !d->seen_input)
        return berth_error_set (err, BERTH_E_INVALID, 0, "not a zstd stream: the blob is empty");
      if (drained && d->zret == 0)
        {
          /* The last frame ended and was flushed (asking again would
           * answer the size of the next frame's header). */
          *ret_n = 0;
          return 0;
        }
      ZSTD_inBuffer ib = { d->in, d->in_len, d->in_off };
      ZSTD_outBuffer ob = { out, cap, 0 };
      size_t zr = ZSTD_decompressStream (d->zd, &ob, &ib);
      d->in_off = ib.pos;
      if (ZSTD_isError (zr))
        return berth_error_set (err, BERTH_E_INVALID, 0, "not a valid zstd stream (%s)", ZSTD_getErrorName (zr));
      d->zret = zr;
      if (ob.pos)
        {
          *ret_n = ob.pos;
          return 0;
        }
      if (drained && zr != 0)
        return berth_error_set (err, BERTH_E_INVALID, 0, "zstd stream is truncated");
    }
}

/* Up to cap bytes of tar into out; *ret_n = 0 at the end. */
static int
decoder_read (struct decoder *d, void *out, size_t cap, size_t *ret_n, berth_error **err)
{
  int r;
  *ret_n = 0;
  if (d->compression == BERTH_LAYERINDEX_GZIP)
    r = decoder_inflate (d, out, cap, ret_n, err);
  else if (d->compression == BERTH_LAYERINDEX_ZSTD)
    r = decoder_unzstd (d, out, cap, ret_n, err);
  else
    r = blob_source_read (d->src, out, cap, ret_n, err);
  if (r < 0)
    return r;
  EVP_DigestUpdate (d->md, out, *ret_n);
  d->total += *ret_n;
  return 0;
}

/* ---- writing a blob ---- */

/* Content/Write of one blob whose digest is known only at the end: WRITE
 * messages of WRITE_CHUNK bytes, each answered, then COMMIT with the
 * digest.  A blob the namespace has already is kept (AlreadyExists) and
 * put into our lease. */
struct blob_sink
{
  struct convert *cv;
  grpc_client_call *call;
  char ref[128];
  unsigned char *buf;
  size_t len;
  uint64_t offset; /* sent */
  EVP_MD_CTX *md;
};

static void
blob_sink_clear (struct blob_sink *s)
{
  grpc_client_call_free (s->call);
  EVP_MD_CTX_free (s->md);
  free (s->buf);
  memset (s, 0, sizeof *s);
}

static int
blob_sink_open (struct convert *cv, struct blob_sink *s, berth_error **err)
{
  memset (s, 0, sizeof *s);
  s->cv = cv;
  snprintf (s->ref, sizeof s->ref, "%s-%u", cv->lease, ++cv->seq);
  if ((s->buf = malloc (WRITE_CHUNK)) == NULL || (s->md = EVP_MD_CTX_new ()) == NULL
      || EVP_DigestInit_ex (s->md, EVP_sha256 (), NULL) != 1)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "writing content");
  grpc_client *c = cli_client (cv->cli);
  if (c == NULL)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "cannot connect to %s", cv->cli->address);
  struct grpc_client_md md[] = { { "containerd-namespace", cv->cli->ns }, { "containerd-lease", cv->lease } };
  return grpc_client_call_open (c, CONTENT_SERVICE "Write", md, ARRAY_SIZE (md), &s->call, err);
}

/* One request and its answer. */
static int
blob_sink_round (struct blob_sink *s, Containerd__Services__Content__V1__WriteContentRequest *req,
                 Containerd__Services__Content__V1__WriteContentResponse **ret, berth_error **err)
{
  int r = grpc_client_call_send (s->call, &req->base, err);
  ProtobufCMessage *m = NULL;
  if (r == 0)
    r = grpc_client_call_recv (s->call, &containerd__services__content__v1__write_content_response__descriptor, &m,
                               err);
  if (r == 0)
    r = berth_error_set (err, BERTH_E_INTERNAL, 0, "the server ended the write of %s without an answer", s->ref);
  if (r < 0)
    return r;
  *ret = (void *)m;
  return 0;
}

static int
blob_sink_flush (struct blob_sink *s, berth_error **err)
{
  if (s->len == 0)
    return 0;
  Containerd__Services__Content__V1__WriteContentRequest req
      = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
  req.action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__WRITE;
  req.ref = s->ref;
  req.offset = (int64_t)s->offset;
  req.data.data = s->buf;
  req.data.len = s->len;
  Containerd__Services__Content__V1__WriteContentResponse *resp = NULL;
  int r = blob_sink_round (s, &req, &resp, err);
  if (r < 0)
    return r;
  int64_t at = resp->offset;
  protobuf_c_message_free_unpacked (&resp->base, NULL);
  s->offset += s->len;
  s->len = 0;
  if (at != (int64_t)s->offset)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "writing %s: the server is at offset %" PRId64 ", we at %" PRIu64,
                            s->ref, at, s->offset);
  return 0;
}

static int
blob_sink_write (struct blob_sink *s, const void *data, size_t len, berth_error **err)
{
  const unsigned char *p = data;
  EVP_DigestUpdate (s->md, data, len);
  while (len)
    {
      size_t n = WRITE_CHUNK - s->len < len ? WRITE_CHUNK - s->len : len;
      memcpy (s->buf + s->len, p, n);
      s->len += n;
      p += n;
      len -= n;
      if (s->len == WRITE_CHUNK)
        {
          int r = blob_sink_flush (s, err);
          if (r < 0)
            return r;
        }
    }
  return 0;
}

/* Commit with labels (may be NULL); the blob's digest and size out. */
static int
blob_sink_commit (struct blob_sink *s, const struct pb_labels *labels, char *ret_digest, size_t digest_len,
                  int64_t *ret_size, berth_error **err)
{
  int r = blob_sink_flush (s, err);
  if (r < 0)
    return r;
  hex_digest (s->md, ret_digest, digest_len);
  *ret_size = (int64_t)s->offset;
  Containerd__Services__Content__V1__WriteContentRequest req
      = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
  req.action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT;
  req.ref = s->ref;
  req.total = (int64_t)s->offset;
  req.offset = (int64_t)s->offset;
  req.expected = ret_digest;
  if (labels)
    {
      req.n_labels = labels->n;
      req.labels = (Containerd__Services__Content__V1__WriteContentRequest__LabelsEntry **)labels->entries;
    }
  Containerd__Services__Content__V1__WriteContentResponse *resp = NULL;
  r = blob_sink_round (s, &req, &resp, err);
  if (r == BERTH_E_EXISTS)
    {
      /* The namespace has it (an earlier convert, or the source itself). */
      berth_error_free (TAKE_PTR (*err));
      return lease_hold (s->cv, ret_digest, err);
    }
  if (r < 0)
    return berth_error_wrap (err, "committing %s", ret_digest);
  bool same = resp->digest && strcmp (resp->digest, ret_digest) == 0;
  protobuf_c_message_free_unpacked (&resp->base, NULL);
  if (!same)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "the server committed %s as another digest", ret_digest);
  r = grpc_client_call_close_send (s->call, err);
  if (r == 0)
    r = grpc_client_call_finish (s->call, err);
  return r;
}

/* A document held in memory. */
static int
write_document (struct convert *cv, const char *data, size_t len, const struct pb_labels *labels, char *ret_digest,
                size_t digest_len, int64_t *ret_size, berth_error **err)
{
  struct blob_sink s;
  int r = blob_sink_open (cv, &s, err);
  if (r == 0)
    r = blob_sink_write (&s, data, len, err);
  if (r == 0)
    r = blob_sink_commit (&s, labels, ret_digest, digest_len, ret_size, err);
  blob_sink_clear (&s);
  return r;
}

static json_object *
read_document (struct convert *cv, const char *digest, char **ret_raw, size_t *ret_len, berth_error **err)
{
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = content_read_all (cv->cli, digest, DOCUMENT_MAX, &data, &len, err);
  if (r < 0)
    {
      if (*err == NULL)
        berth_error_set (err, r, 0, "cannot read");
      if (r == BERTH_E_NOTFOUND)
        {
          berth_error_free (TAKE_PTR (*err));
          berth_error_set (err, r, 0, "%s is not in the content store", digest);
        }
      else
        berth_error_wrap (err, "reading %s", digest);
      return NULL;
    }
  json_tokener *tok = json_tokener_new ();
  json_object *o = tok ? json_tokener_parse_ex (tok, data, (int)len) : NULL;
  bool whole = tok && tok->char_offset == (int)len;
  json_tokener_free (tok);
  if (o == NULL || !whole || !json_object_is_type (o, json_type_object))
    {
      json_object_put (o);
      berth_error_set (err, BERTH_E_INVALID, 0, "%s is not a JSON object", digest);
      return NULL;
    }
  if (ret_raw)
    {
      *ret_raw = TAKE_PTR (data);
      *ret_len = len;
    }
  return o;
}

/* ---- progress ---- */

struct progress
{
  struct convert *cv;
  char what[160];
  int64_t total; /* bytes of the source blob, for the live line */
  int64_t start_ns, shown_ns;
};

static void progress_start (struct progress *p, struct convert *cv, const char *fmt, ...) BERTH_PRINTF (3, 4);

static void
progress_start (struct progress *p, struct convert *cv, const char *fmt, ...)
{
  p->cv = cv;
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (p->what, sizeof p->what, fmt, ap);
  va_end (ap);
  p->start_ns = p->shown_ns = mono_ns ();
  if (cv->o->quiet)
    return;
  if (cv->tty)
    fprintf (stderr, "\r\033[K%s", p->what);
  else
    fprintf (stderr, "%s\n", p->what);
  fflush (stderr);
}

static void
progress_bytes (struct progress *p, uint64_t in_bytes)
{
  if (p->cv->o->quiet || !p->cv->tty)
    return;
  int64_t now = mono_ns ();
  if (now - p->shown_ns < PROGRESS_INTERVAL_NS)
    return;
  p->shown_ns = now;
  char sz[HUMAN_SIZE_MAX], tot[HUMAN_SIZE_MAX];
  fprintf (stderr, "\r\033[K%s: %s of %s", p->what, human_size (sz, (int64_t)in_bytes), human_size (tot, p->total));
  fflush (stderr);
}

static void progress_done (struct progress *p, const char *fmt, ...) BERTH_PRINTF (2, 3);

static void
progress_done (struct progress *p, const char *fmt, ...)
{
  if (p->cv->o->quiet)
    return;
  char msg[256];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  double s = (double)(mono_ns () - p->start_ns) / 1e9;
  fprintf (stderr, "%s%s: %s (%.1fs)\n", p->cv->tty ? "\r\033[K" : "", p->what, msg, s);
  fflush (stderr);
}

static void
progress_abort (struct progress *p)
{
  if (p->cv && !p->cv->o->quiet && p->cv->tty)
    fprintf (stderr, "\n");
}

/* ---- converting one layer ---- */

struct layer_out
{
  char media_type[64];
  char digest[80];
  int64_t size;
  char diff_id[80];
  uint64_t uncompressed_size; /* 0 when the layer was kept */
  char toc_digest[80];
  bool converted;
};

/* The state of one layer on its way through; the callbacks keep the first
 * error in err (it says more than what libarchive or the eStargz writer
 * wrap around it). */
struct layer_job
{
  struct convert *cv;
  struct decoder dec;
  struct blob_sink sink;
  ZSTD_CCtx *zc;
  uint64_t frame_size, in_frame; /* zstd: tar bytes per frame (0: one), and in the current one */
  uint64_t frames;               /* zstd frames ended by layer_job_pull */
  unsigned char *buf, *zout;
  size_t zout_cap;
  struct progress *progress;
  berth_error *err;
};

static void
layer_job_clear (struct layer_job *j)
{
  decoder_clear (&j->dec);
  blob_sink_clear (&j->sink);
  ZSTD_freeCCtx (j->zc);
  free (j->buf);
  free (j->zout);
  berth_error_free (j->err);
}

/* Plain tar bytes to the output: as they are, or through zstd. */
static int
layer_job_emit (struct layer_job *j, const void *data, size_t len, ZSTD_EndDirective end)
{
  if (j->zc == NULL)
    return len ? blob_sink_write (&j->sink, data, len, &j->err) : 0;
  ZSTD_inBuffer ib = { data, len, 0 };
  for (;;)
    {
      ZSTD_outBuffer ob = { j->zout, j->zout_cap, 0 };
      size_t zr = ZSTD_compressStream2 (j->zc, &ob, &ib, end);
      if (ZSTD_isError (zr))
        return berth_error_set (&j->err, BERTH_E_INTERNAL, 0, "zstd: %s", ZSTD_getErrorName (zr));
      if (ob.pos)
        {
          int r = blob_sink_write (&j->sink, j->zout, ob.pos, &j->err);
          if (r < 0)
            return r;
        }
      bool done = end == ZSTD_e_end ? zr == 0 : ib.pos == ib.size;
      if (done)
        return 0;
    }
}

/* Next piece of the plain tar, also sent to the output.  zstd: a frame
 * ends after frame_size bytes of tar, so that a reader can start decoding
 * at any frame (berth-fuse decodes them in parallel). */
static int
layer_job_pull (struct layer_job *j, size_t *ret_n)
{
  int r = decoder_read (&j->dec, j->buf, IOBUF, ret_n, &j->err);
  if (r == 0 && *ret_n)
    r = layer_job_emit (j, j->buf, *ret_n, ZSTD_e_continue);
  if (r == 0 && j->zc && j->frame_size && (j->in_frame += *ret_n) >= j->frame_size)
    {
      r = layer_job_emit (j, NULL, 0, ZSTD_e_end);
      j->in_frame = 0;
      j->frames++;
    }
  if (r == 0)
    progress_bytes (j->progress, j->dec.src->got);
  return r;
}

static la_ssize_t
layer_job_archive_read (struct archive *a, void *data, const void **buf)
{
  struct layer_job *j = data;
  size_t n = 0;
  if (layer_job_pull (j, &n) < 0)
    {
      archive_set_error (a, EIO, "%s", berth_error_message (j->err));
      return -1;
    }
  *buf = j->buf;
  return (la_ssize_t)n;
}

/* Plain or zstd: libarchive walks the tar as it passes (a layer that is
 * not a tar is refused, as the eStargz writer refuses it), the bytes after
 * its end-of-archive marker are passed on too, so the output decompresses
 * to exactly the input's tar and the diff_id holds. */
static int
layer_job_recode (struct layer_job *j, berth_error **err)
{
  struct archive *a = archive_read_new ();
  if (a == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "archive_read_new");
  archive_read_support_format_tar (a);
  archive_read_support_format_empty (a);
  int r = 0;
  if (archive_read_open (a, j, NULL, layer_job_archive_read, NULL) != ARCHIVE_OK)
    r = BERTH_E_INVALID;
  while (r == 0)
    {
      struct archive_entry *e;
      int ar = archive_read_next_header (a, &e);
      if (ar == ARCHIVE_EOF)
        break;
      if (ar < ARCHIVE_WARN || archive_read_data_skip (a) < ARCHIVE_WARN)
        r = BERTH_E_INVALID;
    }
  if (r < 0)
    {
      if (j->err)
        r = berth_error_take (err, TAKE_PTR (j->err));
      else
        r = berth_error_set (err, BERTH_E_INVALID, 0, "not a valid tar: %s", archive_error_string (a));
      archive_read_free (a);
      return r;
    }
  archive_read_free (a);
  for (size_t n = 1; n;)
    if (layer_job_pull (j, &n) < 0)
      return berth_error_take (err, TAKE_PTR (j->err));
  /* The last frame (not an empty one after a frame that just ended, unless
   * the layer is empty: a zstd stream has at least one frame). */
  bool ended = j->frames > 0 && j->in_frame == 0;
  if (!ended && layer_job_emit (j, NULL, 0, ZSTD_e_end) < 0)
    return berth_error_take (err, TAKE_PTR (j->err));
  return 0;
}

/* The eStargz writer's host table: errors into our records. */
static const struct berth_host convert_host = {
  .size = sizeof (struct berth_host),
  .error_set = berth_error_set_into,
  .error_wrap = berth_error_wrap_into,
};

static int
estargz_read (void *data, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  struct layer_job *j = data;
  int r = decoder_read (&j->dec, buf, len, ret_n, &j->err);
  if (r < 0)
    return berth_error_set_into (err, r, 0, "%s", berth_error_message (j->err));
  progress_bytes (j->progress, j->dec.src->got);
  return 0;
}

static int
estargz_write (void *data, const void *buf, size_t len, berth_error *err)
{
  struct layer_job *j = data;
  int r = blob_sink_write (&j->sink, buf, len, &j->err);
  if (r < 0)
    return berth_error_set_into (err, r, 0, "%s", berth_error_message (j->err));
  return 0;
}

static int
layer_job_estargz (struct layer_job *j, struct layer_out *out, berth_error **err)
{
  const struct convert_opts *o = j->cv->o;
  struct berth_estargz_opts eo = {
    .size = sizeof eo,
    .chunk_size = o->chunk_size,
    .prefetch = (const char *const *)o->prefetch,
  };
  struct berth_estargz_result res;
  berth_error *we = berth_error_new ();
  if (we == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "converting to eStargz");
  int r = berth_estargz_write (&convert_host, estargz_read, j, estargz_write, j, &eo, &res, we);
  if (r < 0)
    {
      /* The input's or the store's error is the cause; the writer's
       * message says where it hit. */
      if (j->err)
        {
          berth_error_free (we);
          return berth_error_take (err, TAKE_PTR (j->err));
        }
      return berth_error_take (err, we);
    }
  berth_error_free (we);
  /* The writer stops reading at the end of the tar; the rest must still
   * be read to check the diff_id and the blob's digest. */
  for (size_t n = 1; n;)
    {
      r = decoder_read (&j->dec, j->buf, IOBUF, &n, err);
      if (r < 0)
        return r;
    }
  snprintf (out->diff_id, sizeof out->diff_id, "%s", res.diff_id);
  snprintf (out->toc_digest, sizeof out->toc_digest, "%s", res.toc_digest);
  out->uncompressed_size = res.uncompressed_size;
  return 0;
}

/* An OCI media type for a layer kept as it is (Docker's gzip and tar
 * layers have OCI twins with the same bytes). */
static const char *
oci_layer_media_type (const char *mt, uint32_t compression)
{
  if (strncmp (mt, "application/vnd.oci.", 20) == 0)
    return mt;
  return compression == BERTH_LAYERINDEX_GZIP   ? MT_LAYER_GZIP
         : compression == BERTH_LAYERINDEX_ZSTD ? MT_LAYER_ZSTD
                                                : MT_LAYER_TAR;
}

/* Convert layer i (of n) described by desc, whose diff_id the config says
 * is config_diff_id. */
static int
convert_layer (struct convert *cv, json_object *desc, const char *config_diff_id, const char *where, size_t i, size_t n,
               struct layer_out *out, berth_error **err)
{
  const struct convert_opts *o = cv->o;
  const char *mt = jstr (desc, "mediaType"), *digest = jstr (desc, "digest");
  int64_t size = jsize (desc);
  char sd[24], nd[24], sz[HUMAN_SIZE_MAX], nsz[HUMAN_SIZE_MAX];
  memset (out, 0, sizeof *out);
  if (mt == NULL || digest == NULL || size < 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "layer %zu has no media type, digest or size", i + 1);
  uint32_t comp = berth_layerindex_compression_of (mt);
  if (comp == BERTH_LAYERINDEX_UNKNOWN)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "layer %zu (%s) has media type %s, which is not a layer", i + 1,
                            digest, mt);
  json_object *ann = jget (desc, "annotations");
  bool is_estargz = jstr (ann, BERTH_ESTARGZ_TOC_DIGEST_ANNOTATION) != NULL;
  bool keep = (o->format == CONVERT_ESTARGZ && is_estargz && comp == BERTH_LAYERINDEX_GZIP)
              || (o->format == CONVERT_UNCOMPRESSED && comp == BERTH_LAYERINDEX_NONE)
              || (o->format == CONVERT_ZSTD && comp == BERTH_LAYERINDEX_ZSTD);
  struct progress p = { 0 };
  progress_start (&p, cv, "%slayer %zu/%zu %s (%s, %s)", where, i + 1, n, short_digest (digest, sd, sizeof sd),
                  strrchr (mt, '.') ? strrchr (mt, '.') + 1 : mt, human_size (sz, size));
  if (keep)
    {
      snprintf (out->media_type, sizeof out->media_type, "%s", oci_layer_media_type (mt, comp));
      snprintf (out->digest, sizeof out->digest, "%s", digest);
      out->size = size;
      snprintf (out->diff_id, sizeof out->diff_id, "%s", config_diff_id);
      if (is_estargz)
        snprintf (out->toc_digest, sizeof out->toc_digest, "%s", jstr (ann, BERTH_ESTARGZ_TOC_DIGEST_ANNOTATION));
      progress_done (&p, "already %s, kept", format_names[o->format]);
      return lease_hold (cv, digest, err);
    }

  p.total = size;
  struct layer_job j = { .cv = cv, .progress = &p };
  struct blob_source src;
  int r = blob_source_open (cv, digest, size, &src, err);
  if (r == 0)
    r = decoder_init (&j.dec, comp, &src, err);
  if (r == 0)
    r = blob_sink_open (cv, &j.sink, err);
  if (r == 0 && (j.buf = malloc (IOBUF)) == NULL)
    r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "converting a layer");
  if (r == 0 && o->format == CONVERT_ZSTD)
    {
      j.zout_cap = ZSTD_CStreamOutSize ();
      if ((j.zc = ZSTD_createCCtx ()) == NULL || (j.zout = malloc (j.zout_cap)) == NULL)
        r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "zstd");
      else if (ZSTD_isError (ZSTD_CCtx_setParameter (j.zc, ZSTD_c_compressionLevel, o->zstd_level)))
        r = berth_error_set (err, BERTH_E_INVALID, 0, "zstd level %d", o->zstd_level);
      j.frame_size = o->zstd_frame_size;
    }
  if (r == 0)
    r = o->format == CONVERT_ESTARGZ ? layer_job_estargz (&j, out, err) : layer_job_recode (&j, err);
  char got[80] = "";
  if (r == 0)
    {
      hex_digest (j.dec.md, got, sizeof got);
      if (strcmp (got, config_diff_id) != 0)
        r = berth_error_set (err, BERTH_E_INVALID, 0,
                             "its tar hashes to %s, but the image config says the diff_id is %s", got, config_diff_id);
    }
  if (r == 0 && o->format != CONVERT_ESTARGZ)
    {
      snprintf (out->diff_id, sizeof out->diff_id, "%s", got);
      out->uncompressed_size = j.dec.total;
    }
  _cleanup_ (pb_labels_free) struct pb_labels labels
      = { .entry_desc = &containerd__services__content__v1__write_content_request__labels_entry__descriptor };
  if (r == 0 && pb_labels_add (&labels, LABEL_UNCOMPRESSED, out->diff_id) < 0)
    r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "labels");
  if (r == 0)
    r = blob_sink_commit (&j.sink, &labels, out->digest, sizeof out->digest, &out->size, err);
  layer_job_clear (&j);
  blob_source_close (&src);
  if (r < 0)
    {
      progress_abort (&p);
      return berth_error_wrap (err, "layer %zu (%s)", i + 1, digest);
    }
  snprintf (out->media_type, sizeof out->media_type, "%s",
            o->format == CONVERT_ESTARGZ ? MT_LAYER_GZIP
            : o->format == CONVERT_ZSTD  ? MT_LAYER_ZSTD
                                         : MT_LAYER_TAR);
  out->converted = true;
  progress_done (&p, "%s %s (%s)", format_names[o->format], short_digest (out->digest, nd, sizeof nd),
                 human_size (nsz, out->size));
  return 0;
}

/* ---- manifests ---- */

struct manifest_out
{
  char digest[80];
  int64_t size;
  char config_digest[80];
  int64_t config_size;
  json_object *platform; /* the index's platform object (a reference), or NULL */
  bool host;             /* for the host platform: the one to unpack */
  size_t n_layers;
  struct layer_out *layers;
  json_object *report;
};

static void
manifest_out_clear (struct manifest_out *m)
{
  json_object_put (m->platform);
  json_object_put (m->report);
  free (m->layers);
  memset (m, 0, sizeof *m);
}

static json_object *
layer_report (json_object *src_desc, const struct layer_out *l)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "source", json_object_new_string (jstr (src_desc, "digest")));
  json_object_object_add (o, "mediaType", json_object_new_string (l->media_type));
  json_object_object_add (o, "digest", json_object_new_string (l->digest));
  json_object_object_add (o, "size", json_object_new_int64 (l->size));
  json_object_object_add (o, "diffID", json_object_new_string (l->diff_id));
  json_object_object_add (o, "converted", json_object_new_boolean (l->converted));
  if (l->uncompressed_size)
    json_object_object_add (o, "uncompressedSize", json_object_new_int64 ((int64_t)l->uncompressed_size));
  if (l->toc_digest[0])
    json_object_object_add (o, "tocDigest", json_object_new_string (l->toc_digest));
  return o;
}

/* Rewrite desc (a layer descriptor of the manifest) for l. */
static void
layer_descriptor_update (json_object *desc, const struct layer_out *l, enum convert_format format)
{
  json_object_object_add (desc, "mediaType", json_object_new_string (l->media_type));
  json_object_object_add (desc, "digest", json_object_new_string (l->digest));
  json_object_object_add (desc, "size", json_object_new_int64 (l->size));
  json_object_object_del (desc, "urls"); /* a foreign layer's: ours is in the store */
  json_object *ann = jget (desc, "annotations");
  if (format == CONVERT_ESTARGZ)
    {
      if (ann == NULL || !json_object_is_type (ann, json_type_object))
        {
          ann = json_object_new_object ();
          json_object_object_add (desc, "annotations", ann);
        }
      if (l->converted)
        {
          char usize[32];
          snprintf (usize, sizeof usize, "%" PRIu64, l->uncompressed_size);
          json_object_object_add (ann, BERTH_ESTARGZ_TOC_DIGEST_ANNOTATION, json_object_new_string (l->toc_digest));
          json_object_object_add (ann, BERTH_ESTARGZ_UNCOMPRESSED_SIZE_ANNOTATION, json_object_new_string (usize));
        }
    }
  else if (ann && json_object_is_type (ann, json_type_object))
    {
      /* No longer an eStargz blob. */
      json_object_object_del (ann, BERTH_ESTARGZ_TOC_DIGEST_ANNOTATION);
      json_object_object_del (ann, BERTH_ESTARGZ_UNCOMPRESSED_SIZE_ANNOTATION);
      if (json_object_object_length (ann) == 0)
        json_object_object_del (desc, "annotations");
    }
}

static const char *
json_bytes (json_object *o)
{
  return json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Convert the manifest `digest` (where: "" or "linux/arm64 " for messages)
 * into *m. */
static int
convert_manifest (struct convert *cv, const char *digest, const char *where, struct manifest_out *m, berth_error **err)
{
  _cleanup_ (json_putp) json_object *man = read_document (cv, digest, NULL, NULL, err);
  if (man == NULL)
    return berth_error_wrap (err, "manifest");
  json_object *cdesc = jget (man, "config");
  const char *cdigest = jstr (cdesc, "digest");
  json_object *layers = jget (man, "layers");
  if (cdigest == NULL || layers == NULL || !json_object_is_type (layers, json_type_array))
    return berth_error_set (err, BERTH_E_INVALID, 0, "manifest %s has no config or no layers", digest);
  _cleanup_free_ char *craw = NULL;
  size_t clen = 0;
  _cleanup_ (json_putp) json_object *config = read_document (cv, cdigest, &craw, &clen, err);
  if (config == NULL)
    return berth_error_wrap (err, "config of manifest %s", digest);
  json_object *diff_ids = jget (jget (config, "rootfs"), "diff_ids");
  size_t n = json_object_array_length (layers);
  if (diff_ids == NULL || !json_object_is_type (diff_ids, json_type_array) || json_object_array_length (diff_ids) != n)
    return berth_error_set (err, BERTH_E_INVALID, 0, "manifest %s has %zu layers, its config %s %zu diff_ids", digest,
                            n, cdigest, diff_ids ? json_object_array_length (diff_ids) : 0);

  m->n_layers = n;
  if ((m->layers = calloc (n ? n : 1, sizeof *m->layers)) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  m->report = json_object_new_object ();
  json_object *lrep = json_object_new_array ();
  json_object_object_add (m->report, "source", json_object_new_string (digest));
  json_object_object_add (m->report, "layers", lrep);
  bool diff_changed = false;
  for (size_t i = 0; i < n; i++)
    {
      json_object *ld = json_object_array_get_idx (layers, i);
      const char *did = json_object_get_string (json_object_array_get_idx (diff_ids, i));
      if (did == NULL || strncmp (did, "sha256:", 7) != 0)
        return berth_error_set (err, BERTH_E_INVALID, 0, "config %s: rootfs.diff_ids[%zu] is not a digest", cdigest, i);
      int r = convert_layer (cv, ld, did, where, i, n, &m->layers[i], err);
      if (r < 0)
        return r;
      json_object_array_add (lrep, layer_report (ld, &m->layers[i]));
      if (strcmp (m->layers[i].diff_id, did) != 0)
        diff_changed = true;
    }

  /* The config: rewritten only when a diff_id changed, so that a format
   * that keeps the tar (zstd, uncompressed) keeps the config's digest. */
  const char *cbytes = craw;
  size_t cblen = clen;
  if (diff_changed)
    {
      for (size_t i = 0; i < n; i++)
        json_object_array_put_idx (diff_ids, i, json_object_new_string (m->layers[i].diff_id));
      cbytes = json_bytes (config);
      cblen = strlen (cbytes);
    }
  int r = write_document (cv, cbytes, cblen, NULL, m->config_digest, sizeof m->config_digest, &m->config_size, err);
  if (r < 0)
    return berth_error_wrap (err, "writing the config");

  json_object_object_add (man, "schemaVersion", json_object_new_int (2));
  json_object_object_add (man, "mediaType", json_object_new_string (MT_OCI_MANIFEST));
  json_object_object_add (cdesc, "mediaType", json_object_new_string (MT_OCI_CONFIG));
  json_object_object_add (cdesc, "digest", json_object_new_string (m->config_digest));
  json_object_object_add (cdesc, "size", json_object_new_int64 (m->config_size));
  _cleanup_ (pb_labels_free) struct pb_labels labels
      = { .entry_desc = &containerd__services__content__v1__write_content_request__labels_entry__descriptor };
  r = pb_labels_add (&labels, "containerd.io/gc.ref.content.config", m->config_digest);
  for (size_t i = 0; r == 0 && i < n; i++)
    {
      char key[64];
      layer_descriptor_update (json_object_array_get_idx (layers, i), &m->layers[i], cv->o->format);
      snprintf (key, sizeof key, "containerd.io/gc.ref.content.l.%zu", i);
      r = pb_labels_add (&labels, key, m->layers[i].digest);
    }
  if (r < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  const char *mbytes = json_bytes (man);
  r = write_document (cv, mbytes, strlen (mbytes), &labels, m->digest, sizeof m->digest, &m->size, err);
  if (r < 0)
    return berth_error_wrap (err, "writing the manifest");
  json_object_object_add (m->report, "digest", json_object_new_string (m->digest));
  json_object_object_add (m->report, "size", json_object_new_int64 (m->size));
  json_object_object_add (m->report, "config", json_object_new_string (m->config_digest));
  return 0;
}

/* ---- unpacking ---- */

static void
chain_next (const char *parent, const char *diff_id, char *out, size_t len)
{
  if (parent[0] == '\0')
    {
      snprintf (out, len, "%s", diff_id);
      return;
    }
  char in[200];
  int l = snprintf (in, sizeof in, "%s %s", parent, diff_id);
  EVP_MD_CTX *md = EVP_MD_CTX_new ();
  if (md == NULL)
    {
      snprintf (out, len, "?");
      return;
    }
  EVP_DigestInit_ex (md, EVP_sha256 (), NULL);
  EVP_DigestUpdate (md, in, (size_t)l);
  hex_digest (md, out, len);
  EVP_MD_CTX_free (md);
}

static int
snapshot_exists (struct convert *cv, const char *snapshotter, const char *key, bool *ret, berth_error **err)
{
  Containerd__Services__Snapshots__V1__StatSnapshotRequest req
      = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
  req.snapshotter = (char *)snapshotter;
  req.key = (char *)key;
  int r = convert_unary (cv, SNAPSHOTS_SVC "Stat", &req.base,
                         &containerd__services__snapshots__v1__stat_snapshot_response__descriptor, NULL, err);
  *ret = r == 0;
  if (r == BERTH_E_NOTFOUND)
    {
      berth_error_free (TAKE_PTR (*err));
      return 0;
    }
  return r;
}

static void
snapshot_remove (struct convert *cv, const char *snapshotter, const char *key)
{
  Containerd__Services__Snapshots__V1__RemoveSnapshotRequest req
      = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
  req.snapshotter = (char *)snapshotter;
  req.key = (char *)key;
  _cleanup_error_ berth_error *err = NULL;
  convert_unary (cv, SNAPSHOTS_SVC "Remove", &req.base, &google__protobuf__empty__descriptor, NULL, &err);
}

/* Apply layer l on parent as snapshot `chain` (Prepare, Diff/Apply,
 * Commit), as containerd's unpacker does. */
static int
unpack_layer (struct convert *cv, const char *snapshotter, const struct layer_out *l, size_t i, const char *parent,
              const char *chain, berth_error **err)
{
  char key[256];
  snprintf (key, sizeof key, "extract-%s-%zu-%s", cv->lease, i, chain);
  Containerd__Services__Snapshots__V1__PrepareSnapshotRequest pr
      = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__INIT;
  pr.snapshotter = (char *)snapshotter;
  pr.key = key;
  pr.parent = (char *)parent;
  /* containerd's remote-snapshotter labels, as berthd's own unpacker gives
   * them: a snapshotter that serves layers from their blobs (fuse) commits
   * `chain` itself and answers AlreadyExists; the others ignore them. */
  Containerd__Services__Snapshots__V1__PrepareSnapshotRequest__LabelsEntry le[4], *lp[4];
  const char *lk[4] = { "containerd.io/snapshot.ref", "containerd.io/snapshot/cri.layer-digest",
                        "containerd.io/snapshot/io.berth.layer.media-type",
                        "containerd.io/snapshot/io.berth.layer.diff-id" };
  const char *lv[4] = { chain, l->digest, l->media_type, l->diff_id };
  for (size_t k = 0; k < 4; k++)
    {
      le[k] = (Containerd__Services__Snapshots__V1__PrepareSnapshotRequest__LabelsEntry)
          CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_REQUEST__LABELS_ENTRY__INIT;
      le[k].key = (char *)lk[k];
      le[k].value = (char *)lv[k];
      lp[k] = &le[k];
    }
  pr.n_labels = 4;
  pr.labels = lp;
  ProtobufCMessage *presp = NULL;
  int r = convert_unary (cv, SNAPSHOTS_SVC "Prepare", &pr.base,
                         &containerd__services__snapshots__v1__prepare_snapshot_response__descriptor, &presp, err);
  if (r == BERTH_E_EXISTS)
    {
      /* The layer is `chain` now: served by the snapshotter, or unpacked
       * by someone else meanwhile. */
      berth_error_free (TAKE_PTR (*err));
      return 0;
    }
  if (r < 0)
    return berth_error_wrap (err, "preparing a snapshot on %s", parent[0] ? parent : "nothing");
  Containerd__Services__Snapshots__V1__PrepareSnapshotResponse *prep = (void *)presp;

  Containerd__Types__Descriptor d = CONTAINERD__TYPES__DESCRIPTOR__INIT;
  d.media_type = (char *)l->media_type;
  d.digest = (char *)l->digest;
  d.size = l->size;
  Containerd__Services__Diff__V1__ApplyRequest ar = CONTAINERD__SERVICES__DIFF__V1__APPLY_REQUEST__INIT;
  ar.diff = &d;
  ar.n_mounts = prep->n_mounts;
  ar.mounts = prep->mounts;
  ProtobufCMessage *aresp = NULL;
  r = convert_unary (cv, DIFF_SERVICE "Apply", &ar.base, &containerd__services__diff__v1__apply_response__descriptor,
                     &aresp, err);
  protobuf_c_message_free_unpacked (presp, NULL);
  if (r == 0)
    {
      const Containerd__Services__Diff__V1__ApplyResponse *a = (const void *)aresp;
      if (a->applied == NULL || a->applied->digest == NULL || strcmp (a->applied->digest, l->diff_id) != 0)
        r = berth_error_set (err, BERTH_E_INVALID, 0, "applying %s gave diff %s, expected %s", l->digest,
                             a->applied && a->applied->digest ? a->applied->digest : "(none)", l->diff_id);
      protobuf_c_message_free_unpacked (aresp, NULL);
    }
  if (r == 0)
    {
      Containerd__Services__Snapshots__V1__CommitSnapshotRequest cr
          = CONTAINERD__SERVICES__SNAPSHOTS__V1__COMMIT_SNAPSHOT_REQUEST__INIT;
      cr.snapshotter = (char *)snapshotter;
      cr.name = (char *)chain;
      cr.key = key;
      r = convert_unary (cv, SNAPSHOTS_SVC "Commit", &cr.base, &google__protobuf__empty__descriptor, NULL, err);
      if (r == BERTH_E_EXISTS)
        {
          /* Unpacked by someone else meanwhile: theirs is as good. */
          berth_error_free (TAKE_PTR (*err));
          snapshot_remove (cv, snapshotter, key);
          return 0;
        }
      if (r < 0)
        berth_error_wrap (err, "committing snapshot %s", chain);
    }
  if (r < 0)
    snapshot_remove (cv, snapshotter, key);
  return r;
}

/* Unpack m for snapshotter and label its config with the top chain. */
static int
unpack_manifest (struct convert *cv, const char *snapshotter, const struct manifest_out *m, berth_error **err)
{
  char parent[80] = "", chain[80];
  size_t applied = 0;
  struct progress p = { 0 };
  char sd[24];
  progress_start (&p, cv, "unpacking %s for %s", short_digest (m->digest, sd, sizeof sd), snapshotter);
  for (size_t i = 0; i < m->n_layers; i++)
    {
      chain_next (parent, m->layers[i].diff_id, chain, sizeof chain);
      bool exists = false;
      int r = snapshot_exists (cv, snapshotter, chain, &exists, err);
      if (r == 0 && !exists)
        {
          r = unpack_layer (cv, snapshotter, &m->layers[i], i, parent, chain, err);
          applied++;
        }
      if (r < 0)
        {
          progress_abort (&p);
          return berth_error_wrap (err, "unpacking layer %zu (%s) for %s", i + 1, m->layers[i].digest, snapshotter);
        }
      snprintf (parent, sizeof parent, "%s", chain);
    }

  char key[160], path[180];
  snprintf (key, sizeof key, "containerd.io/gc.ref.snapshot.%s", snapshotter);
  snprintf (path, sizeof path, "labels.%s", key);
  _cleanup_ (pb_labels_free) struct pb_labels labels
      = { .entry_desc = &containerd__services__content__v1__info__labels_entry__descriptor };
  if (pb_labels_add (&labels, key, parent) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  Containerd__Services__Content__V1__Info info = CONTAINERD__SERVICES__CONTENT__V1__INFO__INIT;
  info.digest = (char *)m->config_digest;
  info.n_labels = labels.n;
  info.labels = (Containerd__Services__Content__V1__Info__LabelsEntry **)labels.entries;
  char *paths[] = { path };
  Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
  mask.n_paths = 1;
  mask.paths = paths;
  Containerd__Services__Content__V1__UpdateRequest req = CONTAINERD__SERVICES__CONTENT__V1__UPDATE_REQUEST__INIT;
  req.info = &info;
  req.update_mask = &mask;
  int r = convert_unary (cv, CONTENT_SERVICE "Update", &req.base,
                         &containerd__services__content__v1__update_response__descriptor, NULL, err);
  if (r < 0)
    {
      progress_abort (&p);
      return berth_error_wrap (err, "labelling config %s", m->config_digest);
    }
  progress_done (&p, "%zu of %zu layers applied", applied, m->n_layers);
  return 0;
}

/* ---- the image ---- */

/* Every layer blob of the manifests must be in the store before anything
 * is written: list the ones that are not. */
static int
check_layers_present (struct convert *cv, json_object *const *mans, size_t n_mans, berth_error **err)
{
  size_t missing = 0, total = 0;
  char first[300] = "";
  for (size_t k = 0; k < n_mans; k++)
    {
      json_object *layers = jget (mans[k], "layers");
      size_t n = layers && json_object_is_type (layers, json_type_array) ? json_object_array_length (layers) : 0;
      for (size_t i = 0; i < n; i++)
        {
          const char *d = jstr (json_object_array_get_idx (layers, i), "digest");
          if (d == NULL)
            continue;
          total++;
          Containerd__Services__Content__V1__InfoRequest req = CONTAINERD__SERVICES__CONTENT__V1__INFO_REQUEST__INIT;
          req.digest = (char *)d;
          _cleanup_error_ berth_error *e = NULL;
          int r = convert_unary (cv, CONTENT_SERVICE "Info", &req.base,
                                 &containerd__services__content__v1__info_response__descriptor, NULL, &e);
          if (r == BERTH_E_NOTFOUND)
            {
              if (missing++ == 0)
                snprintf (first, sizeof first, "layer %zu (%s)", i + 1, d);
              if (!cv->o->quiet)
                fprintf (stderr, "berth: layer %zu %s is not in the content store\n", i + 1, d);
              continue;
            }
          if (r < 0)
            return berth_error_take (err, TAKE_PTR (e));
        }
    }
  if (missing)
    return berth_error_set (err, BERTH_E_NOTFOUND, 0,
                            "%zu of %zu layer blobs are not in the content store, e.g. %s (pulled with content "
                            "discarded, or removed? pull the image again)",
                            missing, total, first);
  return 0;
}

/* The manifests to convert: the target itself, or those of the index
 * that match --platform / the host / everything.  Fills digests (borrowed
 * from idx) and platforms (references). */
struct chosen
{
  const char *digest;
  json_object *desc;     /* in the index, or NULL */
  json_object *platform; /* in the index, or NULL */
  bool host;
};

/* Is a manifest for platform p asked for?  *ret_host: is it for the host. */
static bool
wanted (const struct convert_opts *o, const struct platform *p, bool *ret_host)
{
  struct platform host;
  platform_host (&host);
  *ret_host = platform_matches (p, &host) && platform_matches (&host, p);
  if (o->all_platforms)
    return true;
  if (o->n_platforms == 0)
    return *ret_host;
  for (size_t i = 0; i < o->n_platforms; i++)
    if (platform_matches (&o->platforms[i], p) && platform_matches (p, &o->platforms[i]))
      return true;
  return false;
}

/* The manifests of an index to convert.  Without --platform or
 * --all-platforms only the first one for the host (containerd's
 * default matcher); a manifest without a platform counts as the host's.
 * The first host manifest chosen is the one unpacked. */
static int
choose_manifests (struct convert *cv, json_object *idx, struct chosen **ret, size_t *ret_n, berth_error **err)
{
  const struct convert_opts *o = cv->o;
  json_object *ms = jget (idx, "manifests");
  size_t n = ms && json_object_is_type (ms, json_type_array) ? json_object_array_length (ms) : 0;
  struct chosen *v = calloc (n ? n : 1, sizeof *v);
  if (v == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  size_t k = 0;
  bool host_taken = false;
  for (size_t i = 0; i < n; i++)
    {
      json_object *d = json_object_array_get_idx (ms, i);
      const char *mt = jstr (d, "mediaType"), *dg = jstr (d, "digest");
      if (dg == NULL || !media_type_is_manifest (mt))
        continue; /* nested indexes and artifacts are left out */
      struct platform p;
      bool host = true, want;
      if (platform_from_json (jget (d, "platform"), &p))
        {
          if (strcmp (p.os, "unknown") == 0 || strcmp (p.arch, "unknown") == 0)
            continue; /* attestation manifests (buildkit) */
          want = wanted (o, &p, &host);
        }
      else
        want = o->all_platforms || o->n_platforms == 0;
      if (o->n_platforms == 0 && !o->all_platforms && host_taken)
        continue;
      if (!want)
        continue;
      v[k].digest = dg;
      v[k].desc = d;
      v[k].platform = jget (d, "platform");
      v[k].host = host && !host_taken;
      host_taken |= host;
      k++;
    }
  if (k == 0)
    {
      free (v);
      return berth_error_set (err, BERTH_E_NOTFOUND, 0, "the index has no manifest for %s",
                              o->n_platforms ? "the platforms asked for" : "the host platform");
    }
  *ret = v;
  *ret_n = k;
  return 0;
}

static int
image_get (struct convert *cv, const char *name, ProtobufCMessage **ret, berth_error **err)
{
  Containerd__Services__Images__V1__GetImageRequest req = CONTAINERD__SERVICES__IMAGES__V1__GET_IMAGE_REQUEST__INIT;
  req.name = (char *)name;
  return convert_unary (cv, IMAGES_SERVICE "Get", &req.base,
                        &containerd__services__images__v1__get_image_response__descriptor, ret, err);
}

/* Create name -> target with labels, or replace it (Update without a mask
 * replaces target and labels, so the old target is never unreferenced in
 * between as with delete + create). */
static int
image_put (struct convert *cv, const char *name, Containerd__Types__Descriptor *target,
           const Containerd__Services__Images__V1__Image *src, berth_error **err)
{
  Containerd__Services__Images__V1__Image img = CONTAINERD__SERVICES__IMAGES__V1__IMAGE__INIT;
  img.name = (char *)name;
  img.target = target;
  img.n_labels = src->n_labels;
  img.labels = src->labels;
  Containerd__Services__Images__V1__CreateImageRequest creq
      = CONTAINERD__SERVICES__IMAGES__V1__CREATE_IMAGE_REQUEST__INIT;
  creq.image = &img;
  int r = convert_unary (cv, IMAGES_SERVICE "Create", &creq.base,
                         &containerd__services__images__v1__create_image_response__descriptor, NULL, err);
  if (r == BERTH_E_EXISTS)
    {
      berth_error_free (TAKE_PTR (*err));
      Containerd__Services__Images__V1__UpdateImageRequest ureq
          = CONTAINERD__SERVICES__IMAGES__V1__UPDATE_IMAGE_REQUEST__INIT;
      ureq.image = &img;
      r = convert_unary (cv, IMAGES_SERVICE "Update", &ureq.base,
                         &containerd__services__images__v1__update_image_response__descriptor, NULL, err);
    }
  if (r < 0)
    return berth_error_wrap (err, "recording image `%s`", name);
  return 0;
}

/* The conversion proper, once the source is known; *ret_report gets the
 * JSON report, *ret_target the new target digest. */
static int
convert_image (struct convert *cv, const char *src_name, const char *dst_name,
               const Containerd__Services__Images__V1__Image *src, json_object **ret_report, berth_error **err)
{
  const struct convert_opts *o = cv->o;
  const char *tmt = src->target->media_type ? src->target->media_type : "";
  const char *tdigest = src->target->digest ? src->target->digest : "";
  bool is_index = media_type_is_index (tmt);
  if (!is_index && !media_type_is_manifest (tmt))
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "its target has media type %s, neither a manifest nor an index",
                            tmt);

  _cleanup_ (json_putp) json_object *idx = NULL;
  _cleanup_free_ struct chosen *chosen = NULL;
  size_t n = 1;
  if (is_index)
    {
      if ((idx = read_document (cv, tdigest, NULL, NULL, err)) == NULL)
        return berth_error_wrap (err, "index");
      int r = choose_manifests (cv, idx, &chosen, &n, err);
      if (r < 0)
        return r;
    }
  else
    {
      if ((chosen = calloc (1, sizeof *chosen)) == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      chosen[0].digest = tdigest;
      chosen[0].host = true;
    }

  /* Before writing anything: every manifest and layer blob is there. */
  _cleanup_free_ json_object **mans = calloc (n, sizeof *mans);
  if (mans == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = 0;
  for (size_t k = 0; r == 0 && k < n; k++)
    if ((mans[k] = read_document (cv, chosen[k].digest, NULL, NULL, err)) == NULL)
      {
        struct platform p;
        char ps[100] = "";
        if (platform_from_json (chosen[k].platform, &p))
          platform_format (&p, ps, sizeof ps);
        r = (*err)->code;
        if (r == BERTH_E_NOTFOUND && ps[0])
          {
            berth_error_free (TAKE_PTR (*err));
            r = berth_error_set (err, r, 0,
                                 "the manifest for %s (%s) is not in the content store (pull it with "
                                 "--platform %s first)",
                                 ps, chosen[k].digest, ps);
          }
        else
          r = berth_error_wrap (err, "manifest");
      }
  if (r == 0)
    r = check_layers_present (cv, mans, n, err);
  for (size_t k = 0; k < n; k++)
    json_object_put (mans[k]);
  if (r < 0)
    return r;

  _cleanup_free_ struct manifest_out *outs = calloc (n, sizeof *outs);
  if (outs == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  /* From here on every path ends at lease_delete(). */
  if ((r = lease_create (cv, err)) < 0)
    return r;
  for (size_t k = 0; r == 0 && k < n; k++)
    {
      char where[120] = "";
      struct platform p;
      if (is_index && platform_from_json (chosen[k].platform, &p))
        {
          platform_format (&p, where, sizeof where - 1);
          strcat (where, " ");
        }
      r = convert_manifest (cv, chosen[k].digest, where, &outs[k], err);
      outs[k].platform = json_object_get (chosen[k].platform);
      outs[k].host = chosen[k].host;
      if (r < 0 && where[0])
        berth_error_wrap (err, "%.*s", (int)strlen (where) - 1, where);
    }

  Containerd__Types__Descriptor target = CONTAINERD__TYPES__DESCRIPTOR__INIT;
  char tgt_digest[80] = "";
  if (r == 0 && is_index)
    {
      /* The new index: the converted manifests only (containerd's
       * converter drops the platforms it did not convert). */
      json_object *ms = json_object_new_array ();
      _cleanup_ (pb_labels_free) struct pb_labels labels
          = { .entry_desc = &containerd__services__content__v1__write_content_request__labels_entry__descriptor };
      for (size_t k = 0; r == 0 && k < n; k++)
        {
          json_object *d = NULL;
          json_object_deep_copy (chosen[k].desc, &d, NULL);
          if (d == NULL)
            d = json_object_new_object ();
          json_object_object_add (d, "mediaType", json_object_new_string (MT_OCI_MANIFEST));
          json_object_object_add (d, "digest", json_object_new_string (outs[k].digest));
          json_object_object_add (d, "size", json_object_new_int64 (outs[k].size));
          json_object_array_add (ms, d);
          char key[64];
          snprintf (key, sizeof key, "containerd.io/gc.ref.content.m.%zu", k);
          if (pb_labels_add (&labels, key, outs[k].digest) < 0)
            r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
        }
      json_object_object_add (idx, "schemaVersion", json_object_new_int (2));
      json_object_object_add (idx, "mediaType", json_object_new_string (MT_OCI_INDEX));
      json_object_object_add (idx, "manifests", ms);
      int64_t size = 0;
      const char *bytes = json_bytes (idx);
      if (r == 0)
        r = write_document (cv, bytes, strlen (bytes), &labels, tgt_digest, sizeof tgt_digest, &size, err);
      if (r < 0)
        berth_error_wrap (err, "writing the index");
      target.media_type = (char *)MT_OCI_INDEX;
      target.size = size;
    }
  else if (r == 0)
    {
      snprintf (tgt_digest, sizeof tgt_digest, "%s", outs[0].digest);
      target.media_type = (char *)MT_OCI_MANIFEST;
      target.size = outs[0].size;
    }
  target.digest = tgt_digest;

  /* Unpack the host's manifest, before the image exists, so that a
   * failure leaves no image that cannot run. */
  json_object *unpacked = json_object_new_array ();
  if (r == 0 && !o->skip_unpack)
    {
      const struct manifest_out *hm = NULL;
      for (size_t k = 0; k < n && hm == NULL; k++)
        if (outs[k].host)
          hm = &outs[k];
      const char *env = getenv ("BERTH_SNAPSHOTTER");
      const char *def[] = { env && *env ? env : DEFAULT_SNAPSHOTTER, NULL };
      const char *const *sns = o->snapshotters ? (const char *const *)o->snapshotters : def;
      if (hm == NULL && !o->quiet)
        fprintf (stderr, "berth: not unpacked: no converted manifest is for the host platform\n");
      for (const char *const *s = sns; hm && r == 0 && *s; s++)
        {
          r = unpack_manifest (cv, *s, hm, err);
          if (r == 0)
            json_object_array_add (unpacked, json_object_new_string (*s));
        }
    }
  if (r == 0)
    r = image_put (cv, dst_name, &target, src, err);
  lease_delete (cv);
  if (r < 0)
    {
      json_object_put (unpacked);
      for (size_t k = 0; k < n; k++)
        manifest_out_clear (&outs[k]);
      return r;
    }

  json_object *rep = json_object_new_object ();
  json_object_object_add (rep, "source", json_object_new_string (src_name));
  json_object_object_add (rep, "image", json_object_new_string (dst_name));
  json_object_object_add (rep, "format", json_object_new_string (format_names[o->format]));
  json_object *t = json_object_new_object ();
  json_object_object_add (t, "mediaType", json_object_new_string (target.media_type));
  json_object_object_add (t, "digest", json_object_new_string (tgt_digest));
  json_object_object_add (t, "size", json_object_new_int64 (target.size));
  json_object_object_add (rep, "target", t);
  json_object *ma = json_object_new_array ();
  for (size_t k = 0; k < n; k++)
    {
      json_object *mr = TAKE_PTR (outs[k].report);
      if (outs[k].platform)
        {
          struct platform p;
          char s[100] = "";
          if (platform_from_json (outs[k].platform, &p))
            platform_format (&p, s, sizeof s);
          json_object_object_add (mr, "platform", json_object_new_string (s));
        }
      json_object_array_add (ma, mr);
      manifest_out_clear (&outs[k]);
    }
  json_object_object_add (rep, "manifests", ma);
  json_object_object_add (rep, "unpacked", unpacked);
  *ret_report = rep;
  return 0;
}

/* ---- options ---- */

/* "4M", "65536", "1G" (base 1024) to bytes; false when malformed. */
static bool
parse_bytes (const char *s, uint64_t *ret)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull (s, &end, 10);
  if (errno || end == s || *s == '-')
    return false;
  unsigned shift = 0;
  if (*end == 'K' || *end == 'k')
    shift = 10;
  else if (*end == 'M' || *end == 'm')
    shift = 20;
  else if (*end == 'G' || *end == 'g')
    shift = 30;
  else if (*end != '\0')
    return false;
  if (shift && *++end == 'i')
    end++;
  if (shift && (*end == 'B' || *end == 'b'))
    end++;
  if (*end != '\0' || v > (UINT64_MAX >> shift))
    return false;
  *ret = (uint64_t)v << shift;
  return true;
}

static int
strv_append (char ***v, size_t *n, const char *s)
{
  char **nv = realloc (*v, (*n + 2) * sizeof *nv);
  if (nv == NULL)
    return -ENOMEM;
  *v = nv;
  if ((nv[*n] = strdup (s)) == NULL)
    return -ENOMEM;
  nv[++*n] = NULL;
  return 0;
}

static int
set_format (struct cli *cli, struct convert_opts *o, enum convert_format f)
{
  if (o->format != CONVERT_NONE && o->format != f)
    return cli_usage_error (cli, "--%s and --%s: choose one format", format_names[o->format], format_names[f]);
  o->format = f;
  return 0;
}

/* Parse the options into o; 0, or an exit code (usage errors printed). */
static int
parse_options (struct cli *cli, int argc, char **argv, struct convert_opts *o)
{
  bool estargz_opts = false, zstd_opts = false;
  uint64_t v;
  int c;
  o->zstd_level = 3;
  o->zstd_frame_size = 4u << 20;
  o->output = CLI_FORMAT_TABLE;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case OPT_ESTARGZ:
        if (set_format (cli, o, CONVERT_ESTARGZ))
          return CLI_EXIT_USAGE;
        break;
      case OPT_UNCOMPRESSED:
        if (set_format (cli, o, CONVERT_UNCOMPRESSED))
          return CLI_EXIT_USAGE;
        break;
      case OPT_ZSTD:
        if (set_format (cli, o, CONVERT_ZSTD))
          return CLI_EXIT_USAGE;
        break;
      case OPT_PREFETCH:
        estargz_opts = true;
        {
          _cleanup_free_ char *copy = strdup (optarg);
          if (copy == NULL)
            return cli_fail (cli, NULL, "out of memory");
          char *save = NULL;
          for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save))
            if (strv_append (&o->prefetch, &o->n_prefetch, t) < 0)
              return cli_fail (cli, NULL, "out of memory");
          if (o->prefetch == NULL)
            return cli_usage_error (cli, "--estargz-prefetch needs at least one path");
        }
        break;
      case OPT_CHUNK_SIZE:
        estargz_opts = true;
        if (!parse_bytes (optarg, &v) || v < 4096 || v > (64u << 20))
          return cli_usage_error (cli, "--estargz-chunk-size `%s`: a size from 4K to 64M, e.g. 4M", optarg);
        o->chunk_size = v;
        break;
      case OPT_ZSTD_LEVEL:
        zstd_opts = true;
        {
          char *end;
          long l = strtol (optarg, &end, 10);
          if (*optarg == '\0' || *end || l < 1 || l > ZSTD_maxCLevel ())
            return cli_usage_error (cli, "--zstd-level `%s`: a level from 1 to %d", optarg, ZSTD_maxCLevel ());
          o->zstd_level = (int)l;
        }
        break;
      case OPT_ZSTD_FRAME_SIZE:
        zstd_opts = true;
        if (!parse_bytes (optarg, &v) || (v != 0 && v < (64u << 10)))
          return cli_usage_error (cli, "--zstd-frame-size `%s`: 0 (one frame) or a size of at least 64K, e.g. 4M",
                                  optarg);
        o->zstd_frame_size = v;
        break;
      case OPT_PLATFORM:
        {
          struct platform p;
          if (!platform_parse (optarg, &p))
            return cli_usage_error (cli, "--platform `%s`: expected OS/ARCH[/VARIANT]", optarg);
          struct platform *np = realloc (o->platforms, (o->n_platforms + 1) * sizeof *np);
          if (np == NULL)
            return cli_fail (cli, NULL, "out of memory");
          o->platforms = np;
          o->platforms[o->n_platforms++] = p;
        }
        break;
      case OPT_ALL_PLATFORMS: o->all_platforms = true; break;
      case OPT_SNAPSHOTTER:
        if (*optarg == '\0' || strchr (optarg, '/'))
          return cli_usage_error (cli, "--snapshotter `%s`: a snapshotter name, e.g. overlayfs", optarg);
        {
          size_t n = o->n_snapshotters;
          if (strv_append (&o->snapshotters, &n, optarg) < 0)
            return cli_fail (cli, NULL, "out of memory");
          o->n_snapshotters = n;
        }
        break;
      case OPT_SKIP_UNPACK: o->skip_unpack = true; break;
      case OPT_FORMAT:
        if (cli_parse_format (cli, optarg, &o->output) < 0)
          return CLI_EXIT_USAGE;
        break;
      case 'q': o->quiet = true; break;
      default: return CLI_EXIT_USAGE;
      }
  if (o->format == CONVERT_NONE)
    return cli_usage_error (cli, "a format is needed: --estargz, --uncompressed or --zstd");
  if (estargz_opts && o->format != CONVERT_ESTARGZ)
    return cli_usage_error (cli, "--estargz-prefetch and --estargz-chunk-size go with --estargz");
  if (zstd_opts && o->format != CONVERT_ZSTD)
    return cli_usage_error (cli, "--zstd-level goes with --zstd");
  if (o->all_platforms && o->n_platforms)
    return cli_usage_error (cli, "--all-platforms and --platform: choose one");
  if (o->skip_unpack && o->n_snapshotters)
    return cli_usage_error (cli, "--skip-unpack and --snapshotter: choose one");
  if (argc - optind != 2)
    return cli_usage_error (cli, "a source and a target image are needed (got %d operand%s)", argc - optind,
                            argc - optind == 1 ? "" : "s");
  if (*argv[optind] == '\0' || *argv[optind + 1] == '\0')
    return cli_usage_error (cli, "image names must not be empty");
  return 0;
}

int
image_convert_run (struct cli *cli, int argc, char **argv)
{
  _cleanup_ (convert_opts_clear) struct convert_opts o = { 0 };
  int ret = parse_options (cli, argc, argv, &o);
  if (ret)
    return ret;
  const char *src_name = argv[optind], *dst_name = argv[optind + 1];
  struct convert cv = { .cli = cli, .o = &o, .tty = isatty (STDERR_FILENO) == 1 };
  if (cli_client (cli) == NULL)
    return CLI_EXIT_FAIL;

  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  int r = image_get (&cv, src_name, &resp, &err);
  if (r == BERTH_E_NOTFOUND)
    return cli_fail (cli, NULL, "image `%s`: not found (pull it first)", src_name);
  if (r < 0)
    return cli_fail (cli, err, "reading image `%s`", src_name);
  Containerd__Services__Images__V1__GetImageResponse *gr = (void *)resp;
  if (gr->image == NULL || gr->image->target == NULL)
    {
      protobuf_c_message_free_unpacked (resp, NULL);
      return cli_fail (cli, NULL, "image `%s` has no target", src_name);
    }

  r = grpc_client_connect (cli->address, (int)cli->connect_timeout_ms, &cv.reader, &err);
  if (r == 0)
    grpc_client_set_deadline (cv.reader, cli->timeout_ms);
  json_object *report = NULL;
  if (r == 0)
    r = convert_image (&cv, src_name, dst_name, gr->image, &report, &err);
  grpc_client_free (cv.reader);
  protobuf_c_message_free_unpacked (resp, NULL);
  if (r < 0)
    return cli_fail (cli, err, "converting image `%s` to `%s`", src_name, dst_name);
  if (o.output == CLI_FORMAT_JSON)
    cli_print_json (report);
  else
    {
      puts (json_object_get_string (jget (jget (report, "target"), "digest")));
      json_object_put (report);
    }
  return CLI_EXIT_OK;
}
