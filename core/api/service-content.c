/* containerd.services.content.v1.Content: the namespaced view of the
 * content store (io.berth.content.v1.local) through content records in the
 * metadata, with containerd 1.6's semantics (metadata/content.go with the
 * "shared" policy, services/content/contentserver):
 *
 * - a blob is visible in a namespace when the namespace has a record for
 *   it; Info/Update/List/Delete act on records only (Delete leaves the blob
 *   to GC, scheduled after it);
 * - Write: ingest refs are prefixed with "<namespace>/" in the store, so
 *   namespaces never share an ingest; an expected digest the namespace
 *   already has answers AlreadyExists, one that only the store has is added
 *   to the namespace (sharing) and answers AlreadyExists too; commit adds
 *   the record with the commit's labels; under a containerd-lease header
 *   the ingest and then the content are added to the lease;
 * - Read streams 1 MiB chunks with back-pressure.
 *
 * Threads: plugin and SQLite calls run on the worker pool.  A Write or Read
 * stream has at most one worker job outstanding, so messages are handled in
 * order; its state is touched by the loop thread only between jobs.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "events.h"
#include "github.com/containerd/containerd/api/events/content.pb-c.h"
#include "filters.h"
#include "gc.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "plugin-calls.h"

#define READ_CHUNK (1u << 20)
#define LIST_BATCH 100

typedef Containerd__Services__Content__V1__Info pb_info;
typedef Containerd__Services__Content__V1__Status pb_status;

static int
validate_digest (const char *d, berth_error **err)
{
  const char *colon = d ? strchr (d, ':') : NULL;
  if (colon == NULL || colon == d || colon[1] == '\0' || strspn (colon + 1, "0123456789abcdef") != strlen (colon + 1))
    return berth_error_set (err, BERTH_E_INVALID, 0, "\"%s\" failed validation: not a digest", d ? d : "");
  return 0;
}

/* The store's ref for a client ref in ns. */
static char *
backend_ref (const char *ns, const char *ref)
{
  char *s = NULL;
  if (asprintf (&s, "%s/%s", ns, ref) < 0)
    return NULL;
  return s;
}

/* ---- unary methods ------------------------------------------------------ */

enum ct_op
{
  CT_INFO,
  CT_UPDATE,
  CT_LIST,
  CT_DELETE,
  CT_STATUS,
  CT_LIST_STATUSES,
  CT_ABORT,
};

struct ct_status
{
  char *ref; /* client ref */
  struct berth_content_status st;
};

struct ct_job
{
  struct daemon *d;
  enum ct_op op;
  ProtobufCMessage *req;
  char *ns;
  int r;
  berth_error *err;
  struct meta_content *items;
  size_t n;
  struct ct_status *sts;
  size_t nsts;
  bool deleted;
  filter_set *fs;
};

static void
ct_job_free (void *data)
{
  struct ct_job *j = data;
  if (j->deleted)
    gc_schedule (j->d);
  if (j->req)
    protobuf_c_message_free_unpacked (j->req, NULL);
  berth_error_free (j->err);
  meta_contents_free (j->items, j->n);
  for (size_t i = 0; i < j->nsts; i++)
    free (j->sts[i].ref);
  free (j->sts);
  filters_free (j->fs);
  free (j->ns);
  free (j);
}

static const char *
status_field (void *obj, const char *const *path, size_t n)
{
  struct ct_status *s = obj;
  if (n == 1 && strcmp (path[0], "ref") == 0)
    return s->ref;
  if (n == 1 && strcmp (path[0], "expected") == 0)
    return s->st.expected;
  return NULL;
}

static int
collect_status (const struct berth_content_status *st, void *data)
{
  struct ct_job *j = data;
  size_t plen = strlen (j->ns);
  if (strncmp (st->ref, j->ns, plen) != 0 || st->ref[plen] != '/')
    return 0;
  struct ct_status *v = realloc (j->sts, (j->nsts + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  j->sts = v;
  v[j->nsts].st = *st;
  if ((v[j->nsts].ref = strdup (st->ref + plen + 1)) == NULL)
    return BERTH_E_NOMEM;
  j->nsts++;
  if (j->fs && !filters_match (j->fs, status_field, &v[j->nsts - 1]))
    free (v[--j->nsts].ref);
  return 0;
}

static int
job_one (struct ct_job *j)
{
  j->items = calloc (1, sizeof *j->items);
  if (j->items == NULL)
    return berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
  j->n = 1;
  return 0;
}

static void
ct_work (void *data)
{
  struct ct_job *j = data;
  meta *m = j->d->meta;
  plugin *store = NULL;
  berth_ctx ctx;
  ctx_init (&ctx, j->ns, NULL);
  if (j->op == CT_STATUS || j->op == CT_LIST_STATUSES || j->op == CT_ABORT)
    {
      j->r = gc_content_store (j->d, &store, &j->err);
      if (j->r < 0)
        return;
    }
  switch (j->op)
    {
    case CT_INFO:
      {
        Containerd__Services__Content__V1__InfoRequest *q = (void *) j->req;
        if ((j->r = validate_digest (q->digest, &j->err)) == 0 && (j->r = job_one (j)) == 0)
          j->r = meta_content_get (m, j->ns, q->digest, &j->items[0], &j->err);
        break;
      }
    case CT_UPDATE:
      {
        Containerd__Services__Content__V1__UpdateRequest *q = (void *) j->req;
        if (q->info == NULL)
          {
            j->r = berth_error_set (&j->err, BERTH_E_INVALID, 0, "info is required");
            break;
          }
        berth_labels labels = { 0 };
        if ((j->r = validate_digest (q->info->digest, &j->err)) == 0 && (j->r = job_one (j)) == 0)
          {
            if (pb_map_read ((void *const *) q->info->labels, q->info->n_labels, &labels) < 0)
              j->r = berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
            else
              j->r = meta_content_update (m, j->ns, q->info->digest, &labels,
                                          q->update_mask ? (const char *const *) q->update_mask->paths : NULL,
                                          q->update_mask ? q->update_mask->n_paths : 0, &j->items[0], &j->err);
          }
        labels_clear (&labels);
        break;
      }
    case CT_LIST:
      {
        Containerd__Services__Content__V1__ListContentRequest *q = (void *) j->req;
        j->r = meta_content_list (m, j->ns, (const char *const *) q->filters, q->n_filters, &j->items, &j->n,
                                  &j->err);
        break;
      }
    case CT_DELETE:
      {
        Containerd__Services__Content__V1__DeleteContentRequest *q = (void *) j->req;
        if ((j->r = validate_digest (q->digest, &j->err)) == 0)
          j->r = meta_content_delete (m, j->ns, q->digest, &j->err);
        j->deleted = j->r == 0;
        if (j->deleted && events_has_subscribers (j->d->events))
          {
            Containerd__Events__ContentDelete ev = CONTAINERD__EVENTS__CONTENT_DELETE__INIT;
            ev.digest = q->digest;
            events_publish (j->d->events, j->ns, "/content/delete", &ev.base);
          }
        break;
      }
    case CT_STATUS:
      {
        Containerd__Services__Content__V1__StatusRequest *q = (void *) j->req;
        _cleanup_free_ char *bref = backend_ref (j->ns, q->ref);
        j->sts = calloc (1, sizeof *j->sts);
        if (bref == NULL || j->sts == NULL || (j->sts[0].ref = strdup (q->ref)) == NULL)
          {
            j->r = berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
            break;
          }
        j->nsts = 1;
        j->sts[0].st.size = sizeof j->sts[0].st;
        j->r = content_status (store, &ctx, bref, &j->sts[0].st, &j->err);
        break;
      }
    case CT_LIST_STATUSES:
      {
        Containerd__Services__Content__V1__ListStatusesRequest *q = (void *) j->req;
        size_t nf = 0;
        for (size_t i = 0; i < q->n_filters; i++)
          nf += *q->filters[i] != '\0';
        j->r = nf ? filters_parse ((const char *const *) q->filters, q->n_filters, &j->fs, &j->err) : 0;
        if (j->r == 0)
          j->r = content_list_statuses (store, &ctx, NULL, collect_status, j, &j->err);
        break;
      }
    case CT_ABORT:
      {
        Containerd__Services__Content__V1__AbortRequest *q = (void *) j->req;
        _cleanup_free_ char *bref = backend_ref (j->ns, q->ref);
        if (bref == NULL)
          j->r = berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
        else
          j->r = content_abort (store, &ctx, bref, &j->err);
        break;
      }
    }
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "content");
}

static pb_info *
info_to_pb (pb_arena *a, const struct meta_content *c)
{
  pb_info *p = pb_new (a, &containerd__services__content__v1__info__descriptor);
  p->digest = pb_strdup (a, c->digest);
  p->size = c->size;
  p->created_at = pb_timestamp (a, c->created_at);
  p->updated_at = pb_timestamp (a, c->updated_at);
  p->labels = pb_map (a, &containerd__services__content__v1__info__labels_entry__descriptor, &c->labels,
                      &p->n_labels);
  return p;
}

static pb_status *
status_to_pb (pb_arena *a, const struct ct_status *s)
{
  pb_status *p = pb_new (a, &containerd__services__content__v1__status__descriptor);
  p->ref = pb_strdup (a, s->ref);
  p->offset = s->st.offset;
  p->total = s->st.total;
  p->expected = pb_strdup (a, s->st.expected);
  p->started_at = pb_timestamp (a, s->st.started_at);
  p->updated_at = pb_timestamp (a, s->st.updated_at);
  return p;
}

static void
ct_reply (grpc_call *call, void *data)
{
  struct ct_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  switch (j->op)
    {
    case CT_INFO:
      {
        Containerd__Services__Content__V1__InfoResponse resp = CONTAINERD__SERVICES__CONTENT__V1__INFO_RESPONSE__INIT;
        resp.info = info_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case CT_UPDATE:
      {
        Containerd__Services__Content__V1__UpdateResponse resp
            = CONTAINERD__SERVICES__CONTENT__V1__UPDATE_RESPONSE__INIT;
        resp.info = info_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case CT_LIST:
      /* containerd sends batches of 100 infos; nothing when empty. */
      for (size_t i = 0; i < j->n; i += LIST_BATCH)
        {
          Containerd__Services__Content__V1__ListContentResponse resp
              = CONTAINERD__SERVICES__CONTENT__V1__LIST_CONTENT_RESPONSE__INIT;
          size_t k = j->n - i < LIST_BATCH ? j->n - i : LIST_BATCH;
          resp.info = pb_alloc (a, (k + 1) * sizeof *resp.info);
          for (size_t x = 0; x < k; x++)
            resp.info[x] = info_to_pb (a, &j->items[i + x]);
          resp.n_info = k;
          grpc_call_send (call, &resp.base);
        }
      break;
    case CT_STATUS:
      {
        Containerd__Services__Content__V1__StatusResponse resp
            = CONTAINERD__SERVICES__CONTENT__V1__STATUS_RESPONSE__INIT;
        resp.status = status_to_pb (a, &j->sts[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case CT_LIST_STATUSES:
      {
        Containerd__Services__Content__V1__ListStatusesResponse resp
            = CONTAINERD__SERVICES__CONTENT__V1__LIST_STATUSES_RESPONSE__INIT;
        resp.statuses = pb_alloc (a, (j->nsts + 1) * sizeof *resp.statuses);
        for (size_t i = 0; i < j->nsts; i++)
          resp.statuses[i] = status_to_pb (a, &j->sts[i]);
        resp.n_statuses = j->nsts;
        grpc_call_send (call, &resp.base);
        break;
      }
    case CT_DELETE:
    case CT_ABORT:
      {
        Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
        grpc_call_send (call, &empty.base);
        break;
      }
    }
  grpc_call_finish (call, 0, NULL);
}

static const ProtobufCMessageDescriptor *const request_desc[] = {
  [CT_INFO] = &containerd__services__content__v1__info_request__descriptor,
  [CT_UPDATE] = &containerd__services__content__v1__update_request__descriptor,
  [CT_LIST] = &containerd__services__content__v1__list_content_request__descriptor,
  [CT_DELETE] = &containerd__services__content__v1__delete_content_request__descriptor,
  [CT_STATUS] = &containerd__services__content__v1__status_request__descriptor,
  [CT_LIST_STATUSES] = &containerd__services__content__v1__list_statuses_request__descriptor,
  [CT_ABORT] = &containerd__services__content__v1__abort_request__descriptor,
};

struct ct_method
{
  struct daemon *d;
  enum ct_op op;
};

static void
ct_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const struct ct_method *cm = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  ProtobufCMessage *req = svc_unpack (call, request_desc[cm->op], msg, len);
  if (req == NULL)
    return;
  struct ct_job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->ns = strdup (ns)) == NULL)
    {
      free (j);
      protobuf_c_message_free_unpacked (req, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = cm->d;
  j->op = cm->op;
  j->req = req;
  svc_defer (cm->d, call, ct_work, ct_reply, ct_job_free, j);
}

/* ---- Read: server stream ------------------------------------------------- */

struct read_stream
{
  struct daemon *d;
  grpc_call *call; /* NULL once the client went away */
  char *ns;
  char *digest;
  int64_t req_offset, req_size;
  plugin *store;
  berth_content_reader *reader;
  bool opened;
  bool busy;
  int64_t off, end;
  uint8_t *buf;
  size_t nbuf;
  int r;
  berth_error *err;
};

static void
read_free (struct read_stream *s)
{
  berth_error_free (s->err);
  free (s->buf);
  free (s->ns);
  free (s->digest);
  free (s);
}

static void
read_close_work (void *data)
{
  struct read_stream *s = data;
  if (s->reader)
    content_reader_close (s->store, s->reader);
  s->reader = NULL;
}

static void
read_close_done (void *data)
{
  read_free (data);
}

/* Loop thread: release the stream (the reader is closed on a worker). */
static void
read_release (struct read_stream *s)
{
  if (s->reader == NULL || workers_submit (s->d->workers, read_close_work, read_close_done, s) < 0)
    {
      read_close_work (s); /* pool gone: close here rather than leak */
      read_free (s);
    }
}

static void
read_work (void *data)
{
  struct read_stream *s = data;
  s->nbuf = 0;
  if (!s->opened)
    {
      s->opened = true;
      struct meta_content rec = { 0 };
      berth_ctx ctx;
      ctx_init (&ctx, s->ns, NULL);
      if ((s->r = validate_digest (s->digest, &s->err)) < 0
          || (s->r = meta_content_get (s->d->meta, s->ns, s->digest, &rec, &s->err)) < 0
          || (s->r = gc_content_store (s->d, &s->store, &s->err)) < 0
          || (s->r = content_reader_open (s->store, &ctx, s->digest, &s->reader, &s->err)) < 0)
        {
          meta_content_clear (&rec);
          return;
        }
      meta_content_clear (&rec);
      int64_t size = content_reader_size (s->store, s->reader);
      if (s->req_offset < 0 || s->req_size < 0)
        {
          s->r = berth_error_set (&s->err, BERTH_E_INVALID, 0, "offset and size must not be negative");
          return;
        }
      if (s->req_offset > size)
        {
          s->r = berth_error_set (&s->err, BERTH_E_INVALID, 0, "read offset %lld is beyond the end of %s (%lld bytes)",
                                  (long long) s->req_offset, s->digest, (long long) size);
          return;
        }
      s->off = s->req_offset;
      s->end = s->req_size == 0 || s->req_offset + s->req_size > size ? size : s->req_offset + s->req_size;
      s->buf = malloc (READ_CHUNK);
      if (s->buf == NULL)
        {
          s->r = berth_error_set (&s->err, BERTH_E_NOMEM, 0, "out of memory");
          return;
        }
    }
  while (s->nbuf < READ_CHUNK && s->off + (int64_t) s->nbuf < s->end)
    {
      size_t want = READ_CHUNK - s->nbuf;
      if ((int64_t) want > s->end - s->off - (int64_t) s->nbuf)
        want = (size_t) (s->end - s->off - (int64_t) s->nbuf);
      size_t n = 0;
      s->r = content_reader_read_at (s->store, s->reader, s->buf + s->nbuf, want, s->off + (int64_t) s->nbuf, &n,
                                     &s->err);
      if (s->r < 0)
        return;
      if (n == 0)
        {
          s->end = s->off + (int64_t) s->nbuf; /* shorter than it said */
          break;
        }
      s->nbuf += n;
    }
}

static void read_done (void *data);

/* Loop thread: end the call and release the stream (see write_end). */
static void
read_end (struct read_stream *s, int code, const berth_error *err, const char *message)
{
  grpc_call *call = s->call;
  s->call = NULL;
  if (call)
    {
      grpc_call_set_data (call, NULL);
      if (err)
        svc_fail (call, err);
      else
        grpc_call_finish (call, code, message);
    }
  if (!s->busy)
    read_release (s);
}

static void
read_next (grpc_call *call, void *data)
{
  struct read_stream *s = data;
  s->busy = true;
  if (workers_submit (s->d->workers, read_work, read_done, s) < 0)
    {
      s->busy = false;
      read_end (s, BERTH_E_UNAVAILABLE, NULL, "worker pool unavailable");
    }
}

static void
read_done (void *data)
{
  struct read_stream *s = data;
  s->busy = false;
  grpc_call *call = s->call;
  if (call == NULL)
    {
      read_release (s);
      return;
    }
  if (s->r < 0)
    {
      read_end (s, s->r, s->err, NULL);
      return;
    }
  if (s->nbuf > 0)
    {
      Containerd__Services__Content__V1__ReadContentResponse resp
          = CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_RESPONSE__INIT;
      resp.offset = s->off;
      resp.data.data = s->buf;
      resp.data.len = s->nbuf;
      int r = grpc_call_send (call, &resp.base);
      s->off += (int64_t) s->nbuf;
      if (r < 0)
        {
          read_end (s, r, NULL, "cannot send");
          return;
        }
    }
  if (s->off >= s->end)
    {
      read_end (s, 0, NULL, NULL);
      return;
    }
  int w = grpc_call_on_writable (call, read_next, s);
  if (w == 1)
    read_next (call, s);
  else if (w < 0)
    read_end (s, 0, NULL, NULL);
}

static void
read_on_cancel (grpc_call *call, void *data)
{
  struct read_stream *s = grpc_call_get_data (call);
  if (s == NULL)
    return;
  s->call = NULL;
  if (!s->busy)
    read_release (s);
}

static void
read_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  struct daemon *d = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  Containerd__Services__Content__V1__ReadContentRequest *q
      = svc_unpack (call, &containerd__services__content__v1__read_content_request__descriptor, msg, len);
  if (q == NULL)
    return;
  struct read_stream *s = calloc (1, sizeof *s);
  if (s)
    {
      s->d = d;
      s->call = call;
      s->ns = strdup (ns);
      s->digest = strdup (q->digest);
      s->req_offset = q->offset;
      s->req_size = q->size;
    }
  protobuf_c_message_free_unpacked (&q->base, NULL);
  if (s == NULL || s->ns == NULL || s->digest == NULL)
    {
      if (s)
        read_free (s);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  grpc_call_set_data (call, s);
  read_next (call, s);
}

/* ---- Write: bidirectional stream ----------------------------------------- */

struct pending
{
  struct pending *next;
  Containerd__Services__Content__V1__WriteContentRequest *req;
};

struct write_session
{
  struct daemon *d;
  grpc_call *call; /* NULL once the client went away or the call finished */
  char *ns, *lease;
  plugin *store;
  berth_content_writer *w;
  char *ref, *bref;
  int64_t total;
  char expected[BERTH_DIGEST_MAX];
  EVP_MD_CTX *hash; /* digest of the ingest's bytes, valid when hash_ok */
  bool hash_ok;
  struct pending *head, *tail;
  bool busy, half_closed;
  /* The answer to the message just processed. */
  Containerd__Services__Content__V1__WriteContentRequest *cur;
  int r;
  berth_error *err;
  int action;
  int64_t offset, started_at, updated_at;
  char digest[BERTH_DIGEST_MAX];
  bool committed;
};

static void
write_free (struct write_session *s)
{
  while (s->head)
    {
      struct pending *p = s->head;
      s->head = p->next;
      protobuf_c_message_free_unpacked (&p->req->base, NULL);
      free (p);
    }
  if (s->cur)
    protobuf_c_message_free_unpacked (&s->cur->base, NULL);
  EVP_MD_CTX_free (s->hash);
  berth_error_free (s->err);
  free (s->ns);
  free (s->lease);
  free (s->ref);
  free (s->bref);
  free (s);
}

static void
write_close_work (void *data)
{
  struct write_session *s = data;
  if (s->w)
    content_writer_close (s->store, s->w);
  s->w = NULL;
}

static void
write_close_done (void *data)
{
  write_free (data);
}

static void
write_release (struct write_session *s)
{
  if (s->w == NULL || workers_submit (s->d->workers, write_close_work, write_close_done, s) < 0)
    {
      write_close_work (s);
      write_free (s);
    }
}

static void
md_ctx_freep (EVP_MD_CTX **p)
{
  EVP_MD_CTX_free (*p);
}

static void
hash_reset (struct write_session *s)
{
  s->hash_ok = s->hash && EVP_DigestInit_ex (s->hash, EVP_sha256 (), NULL) == 1;
}

static void
hash_digest (struct write_session *s, char *out, size_t len)
{
  out[0] = '\0';
  if (!s->hash_ok)
    return;
  _cleanup_ (md_ctx_freep) EVP_MD_CTX *copy = EVP_MD_CTX_new ();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (copy == NULL || EVP_MD_CTX_copy_ex (copy, s->hash) != 1 || EVP_DigestFinal_ex (copy, md, &n) != 1)
    return;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  for (unsigned int i = 0; i < n; i++)
    snprintf (hex + 2 * i, 3, "%02x", md[i]);
  snprintf (out, len, "sha256:%s", hex);
}

/* Make digest visible in the session's namespace (and lease) for a blob
 * that is in the store; called with the metadata lock held. */
static int
write_add_record (struct write_session *s, const char *digest, int64_t size, const berth_labels *labels,
                  berth_error **err)
{
  int r = meta_content_add (s->d->meta, s->ns, digest, size, labels, err);
  if (r == 0 && s->lease)
    {
      r = meta_lease_add_resource (s->d->meta, s->ns, s->lease, "content", digest, err);
      if (r == 0)
        meta_lease_delete_resource (s->d->meta, s->ns, s->lease, "ingests", s->ref, NULL);
    }
  return r;
}

/* The shared policy: an expected digest the namespace has → AlreadyExists;
 * one only the store has → add it to the namespace, AlreadyExists. */
static int
write_check_exists (struct write_session *s, const char *expected, berth_error **err)
{
  struct meta_content rec = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int r = meta_content_get (s->d->meta, s->ns, expected, &rec, &e);
  meta_content_clear (&rec);
  if (r == 0)
    return berth_error_set (err, BERTH_E_EXISTS, 0, "content %s: already exists", expected);
  if (r != BERTH_E_NOTFOUND)
    return berth_error_take (err, TAKE_PTR (e));
  berth_labels labels = { 0 };
  struct berth_content_info info = { .size = sizeof info, .labels = &labels };
  berth_ctx ctx;
  ctx_init (&ctx, s->ns, s->lease);
  berth_error_free (TAKE_PTR (e));
  meta_lock (s->d->meta);
  r = content_info (s->store, &ctx, expected, &info, &e);
  labels_clear (&labels);
  if (r == 0)
    {
      r = write_add_record (s, expected, info.blob_size, NULL, err);
      if (r == 0)
        r = berth_error_set (err, BERTH_E_EXISTS, 0, "content %s: already exists", expected);
    }
  else if (r == BERTH_E_NOTFOUND)
    r = 0;
  else
    r = berth_error_take (err, TAKE_PTR (e));
  meta_unlock (s->d->meta);
  return r;
}

static int
write_open (struct write_session *s, const Containerd__Services__Content__V1__WriteContentRequest *q,
            berth_error **err)
{
  if (q->ref == NULL || *q->ref == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "first message must have a reference");
  int r = gc_content_store (s->d, &s->store, err);
  if (r < 0)
    return r;
  if ((s->ref = strdup (q->ref)) == NULL || (s->bref = backend_ref (s->ns, q->ref)) == NULL
      || (s->hash = EVP_MD_CTX_new ()) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  s->total = q->total;
  if (q->expected && *q->expected)
    {
      if ((r = validate_digest (q->expected, err)) < 0 || (r = write_check_exists (s, q->expected, err)) < 0)
        return r;
      snprintf (s->expected, sizeof s->expected, "%s", q->expected);
    }
  if ((r = meta_namespace_ensure (s->d->meta, s->ns, err)) < 0)
    return r;
  if (s->lease && (r = meta_lease_add_resource (s->d->meta, s->ns, s->lease, "ingests", s->ref, err)) < 0)
    return r;
  berth_ctx ctx;
  ctx_init (&ctx, s->ns, s->lease);
  r = content_writer_open (s->store, &ctx, s->bref, s->total, *s->expected ? s->expected : NULL, &s->w, err);
  if (r == BERTH_E_EXISTS && *s->expected)
    {
      /* Committed in the store meanwhile: share it. */
      berth_error_free (*err);
      *err = NULL;
      return write_check_exists (s, s->expected, err);
    }
  if (r < 0)
    return r;
  struct berth_content_status st = { .size = sizeof st };
  r = content_writer_status (s->store, s->w, &st, err);
  if (r == 0 && st.offset == 0)
    hash_reset (s);
  return r;
}

static void
write_work (void *data)
{
  struct write_session *s = data;
  const Containerd__Services__Content__V1__WriteContentRequest *q = s->cur;
  berth_error **err = &s->err;
  s->digest[0] = '\0';
  s->action = q->action;
  if (s->w == NULL && (s->r = write_open (s, q, err)) < 0)
    return;
  struct berth_content_status st = { .size = sizeof st };
  if ((s->r = content_writer_status (s->store, s->w, &st, err)) < 0)
    return;
  s->offset = st.offset;
  s->started_at = st.started_at;
  s->updated_at = st.updated_at;
  if (q->expected && *q->expected && strcmp (q->expected, s->expected) != 0)
    {
      struct meta_content rec = { 0 };
      if ((s->r = validate_digest (q->expected, err)) < 0)
        return;
      snprintf (s->expected, sizeof s->expected, "%s", q->expected);
      if (meta_content_get (s->d->meta, s->ns, s->expected, &rec, NULL) == 0)
        {
          meta_content_clear (&rec);
          berth_ctx ctx;
          ctx_init (&ctx, s->ns, s->lease);
          content_writer_close (s->store, s->w);
          s->w = NULL;
          content_abort (s->store, &ctx, s->bref, NULL);
          s->r = berth_error_set (err, BERTH_E_EXISTS, 0, "blob with expected digest %s exists", s->expected);
          return;
        }
    }
  if (q->total > 0)
    s->total = q->total;
  if (q->action == CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__STAT)
    {
      hash_digest (s, s->digest, sizeof s->digest);
      return;
    }
  if (q->action != CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__WRITE
      && q->action != CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT)
    {
      s->r = berth_error_set (err, BERTH_E_INVALID, 0, "unknown write action %d", q->action);
      return;
    }
  if (q->offset > 0 && q->offset != st.offset)
    {
      s->r = berth_error_set (err, BERTH_E_INVALID, 0, "write @%lld must occur at current offset %lld",
                              (long long) q->offset, (long long) st.offset);
      return;
    }
  if (q->offset == 0 && st.offset > 0)
    {
      if ((s->r = content_writer_truncate (s->store, s->w, 0, err)) < 0)
        return;
      s->offset = 0;
      hash_reset (s);
    }
  if (q->data.len > 0)
    {
      if ((s->r = content_writer_write (s->store, s->w, q->data.data, q->data.len, err)) < 0)
        return;
      if (s->hash_ok)
        s->hash_ok = EVP_DigestUpdate (s->hash, q->data.data, q->data.len) == 1;
      s->offset += (int64_t) q->data.len;
    }
  hash_digest (s, s->digest, sizeof s->digest);
  if (q->action != CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT)
    return;

  /* Commit. */
  const char *digest = *s->expected ? s->expected : s->digest;
  if (*digest == '\0')
    {
      s->r = berth_error_set (err, BERTH_E_PRECONDITION, 0,
                              "ingest %s was resumed by another stream: commit needs the expected digest", s->ref);
      return;
    }
  berth_labels labels = { 0 };
  if (pb_map_read ((void *const *) q->labels, q->n_labels, &labels) < 0)
    {
      labels_clear (&labels);
      s->r = berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
      return;
    }
  if ((s->r = meta_validate_labels (&labels, err)) < 0)
    {
      labels_clear (&labels);
      return;
    }
  /* Commit and record under the metadata lock: GC never sees the blob
   * without its record. */
  meta_lock (s->d->meta);
  s->r = content_writer_commit (s->store, s->w, s->total, digest, &labels, err);
  if (s->r == BERTH_E_EXISTS)
    {
      /* Another writer committed the same bytes first: share it. */
      berth_error_free (*err);
      *err = NULL;
      s->r = 0;
    }
  if (s->r == 0)
    s->r = write_add_record (s, digest, s->offset, &labels, err);
  meta_unlock (s->d->meta);
  labels_clear (&labels);
  if (s->r == 0)
    {
      snprintf (s->digest, sizeof s->digest, "%s", digest);
      s->committed = true;
    }
}

static void write_kick (struct write_session *s);

/* Loop thread: end the call (code 0: OK, else with err or message) and
 * release the session; the call forgets it first, so that no callback of
 * the call can reach the freed session. */
static void
write_end (struct write_session *s, int code, const berth_error *err, const char *message)
{
  grpc_call *call = s->call;
  s->call = NULL;
  if (call)
    {
      grpc_call_set_data (call, NULL);
      if (err)
        svc_fail (call, err);
      else
        grpc_call_finish (call, code, message);
    }
  if (!s->busy)
    write_release (s);
}

static void
write_done (void *data)
{
  struct write_session *s = data;
  s->busy = false;
  protobuf_c_message_free_unpacked (&s->cur->base, NULL);
  s->cur = NULL;
  if (s->call == NULL)
    {
      write_release (s);
      return;
    }
  if (s->r < 0)
    {
      write_end (s, s->r, s->err, NULL);
      return;
    }
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  Containerd__Services__Content__V1__WriteContentResponse resp
      = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_RESPONSE__INIT;
  resp.action = s->action;
  resp.offset = s->offset;
  resp.total = s->total;
  resp.digest = s->digest;
  resp.started_at = pb_timestamp (a, s->started_at);
  resp.updated_at = pb_timestamp (a, s->updated_at);
  int r = grpc_call_send (s->call, &resp.base);
  if (r < 0 || s->committed)
    {
      /* containerd ends the stream after the commit's answer. */
      write_end (s, r < 0 ? r : 0, NULL, r < 0 ? "cannot send" : NULL);
      return;
    }
  write_kick (s);
}

/* Loop thread: start the next queued message, or end the call after a
 * half-close once the queue is empty. */
static void
write_kick (struct write_session *s)
{
  if (s->busy || s->call == NULL)
    return;
  if (s->head == NULL)
    {
      if (s->half_closed)
        write_end (s, 0, NULL, NULL);
      return;
    }
  struct pending *p = s->head;
  s->head = p->next;
  if (s->head == NULL)
    s->tail = NULL;
  s->cur = p->req;
  free (p);
  s->r = 0;
  s->busy = true;
  if (workers_submit (s->d->workers, write_work, write_done, s) < 0)
    {
      s->busy = false;
      write_end (s, BERTH_E_UNAVAILABLE, NULL, "worker pool unavailable");
    }
}

static void
write_on_message (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  struct daemon *d = data;
  struct write_session *s = grpc_call_get_data (call);
  if (s == NULL)
    {
      _cleanup_error_ berth_error *err = NULL;
      const char *ns = NULL;
      if (svc_namespace (call, &ns, &err) < 0)
        {
          svc_fail (call, err);
          return;
        }
      s = calloc (1, sizeof *s);
      const char *lease = grpc_call_lease (call);
      if (s == NULL || (s->ns = strdup (ns)) == NULL || (lease && *lease && (s->lease = strdup (lease)) == NULL))
        {
          if (s)
            write_free (s);
          grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
          return;
        }
      s->d = d;
      s->call = call;
      grpc_call_set_data (call, s);
    }
  if (s->call == NULL)
    return; /* finished already: drop what the client still sends */
  Containerd__Services__Content__V1__WriteContentRequest *q
      = (void *) protobuf_c_message_unpack (&containerd__services__content__v1__write_content_request__descriptor, NULL,
                                            len, msg);
  struct pending *p = q ? calloc (1, sizeof *p) : NULL;
  if (p == NULL)
    {
      if (q)
        protobuf_c_message_free_unpacked (&q->base, NULL);
      write_end (s, q ? BERTH_E_NOMEM : BERTH_E_INVALID, NULL,
                 q ? "out of memory" : "malformed request: cannot decode protobuf message");
      return;
    }
  p->req = q;
  if (s->tail)
    s->tail->next = p;
  else
    s->head = p;
  s->tail = p;
  write_kick (s);
}

static void
write_on_half_close (grpc_call *call, void *data)
{
  struct write_session *s = grpc_call_get_data (call);
  if (s == NULL)
    {
      grpc_call_finish (call, 0, NULL);
      return;
    }
  if (s->call == NULL)
    return;
  s->half_closed = true;
  write_kick (s);
}

static void
write_on_cancel (grpc_call *call, void *data)
{
  struct write_session *s = grpc_call_get_data (call);
  if (s == NULL || s->call == NULL)
    return;
  s->call = NULL;
  if (!s->busy)
    write_release (s);
}

int
service_content_register (struct daemon *d, berth_error **err)
{
  static const char *const names[] = {
    [CT_INFO] = "Info",       [CT_UPDATE] = "Update",   [CT_LIST] = "List",   [CT_DELETE] = "Delete",
    [CT_STATUS] = "Status",   [CT_LIST_STATUSES] = "ListStatuses", [CT_ABORT] = "Abort",
  };
  static struct ct_method methods[ARRAY_SIZE (names)];
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      methods[i] = (struct ct_method){ .d = d, .op = (enum ct_op) i };
      char path[96];
      snprintf (path, sizeof path, "/containerd.services.content.v1.Content/%s", names[i]);
      struct grpc_method m = {
        .path = path,
        .kind = i == CT_LIST ? GRPC_SERVER_STREAM : GRPC_UNARY,
        .on_message = ct_handle,
        .on_cancel = svc_on_cancel,
        .data = &methods[i],
      };
      int r = grpc_server_register (d->server, &m);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", path);
    }
  struct grpc_method rm = {
    .path = "/containerd.services.content.v1.Content/Read",
    .kind = GRPC_SERVER_STREAM,
    .on_message = read_handle,
    .on_cancel = read_on_cancel,
    .data = d,
  };
  struct grpc_method wm = {
    .path = "/containerd.services.content.v1.Content/Write",
    .kind = GRPC_BIDI,
    .on_message = write_on_message,
    .on_half_close = write_on_half_close,
    .on_cancel = write_on_cancel,
    .data = d,
  };
  int r = grpc_server_register (d->server, &rm);
  if (r == 0)
    r = grpc_server_register (d->server, &wm);
  if (r < 0)
    return berth_error_set (err, r, 0, "registering the content streams");
  return 0;
}
