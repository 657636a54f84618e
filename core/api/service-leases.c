/* containerd.services.leases.v1.Leases on the metadata: Create (id and
 * labels; containerd.io/gc.expire sets the expiry), Delete (sync: GC before
 * answering), List (filters), AddResource, DeleteResource, ListResources
 * (types content, ingests, snapshots/<snapshotter>).  Worker pool. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "gc.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

typedef Containerd__Services__Leases__V1__Lease pb_lease;

enum lease_op
{
  LEASE_CREATE,
  LEASE_DELETE,
  LEASE_LIST,
  LEASE_ADD_RESOURCE,
  LEASE_DELETE_RESOURCE,
  LEASE_LIST_RESOURCES,
};

struct lease_job
{
  struct daemon *d;
  enum lease_op op;
  ProtobufCMessage *req;
  char *ns;
  int r;
  berth_error *err;
  struct meta_lease *items;
  size_t n;
  struct meta_lease_resource *res;
  size_t nres;
  bool deleted;
};

static void
lease_job_free (void *data)
{
  struct lease_job *j = data;
  if (j->deleted)
    gc_schedule (j->d);
  if (j->req)
    protobuf_c_message_free_unpacked (j->req, NULL);
  berth_error_free (j->err);
  meta_leases_free (j->items, j->n);
  meta_lease_resources_free (j->res, j->nres);
  free (j->ns);
  free (j);
}

/* containerd's leases.WithRandomID for a Create without an id:
 * "<nanoseconds of the current second>-<4 base64url characters>". */
static void
random_id (char *buf, size_t len)
{
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char r[3] = { 0 };
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  if (getrandom (r, sizeof r, 0) != (ssize_t) sizeof r)
    {
      r[0] = (unsigned char) ts.tv_nsec;
      r[1] = (unsigned char) (ts.tv_nsec >> 8);
      r[2] = (unsigned char) getpid ();
    }
  uint32_t v = (uint32_t) r[0] << 16 | (uint32_t) r[1] << 8 | r[2];
  snprintf (buf, len, "%ld-%c%c%c%c", ts.tv_nsec, b64[(v >> 18) & 63], b64[(v >> 12) & 63], b64[(v >> 6) & 63],
            b64[v & 63]);
}

static void
lease_work (void *data)
{
  struct lease_job *j = data;
  meta *m = j->d->meta;
  switch (j->op)
    {
    case LEASE_CREATE:
      {
        Containerd__Services__Leases__V1__CreateRequest *q = (void *) j->req;
        berth_labels labels = { 0 };
        j->items = calloc (1, sizeof *j->items);
        if (j->items == NULL || pb_map_read ((void *const *) q->labels, q->n_labels, &labels) < 0)
          j->r = berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
        else
          {
            char id[48];
            if (q->id == NULL || *q->id == '\0')
              random_id (id, sizeof id);
            j->n = 1;
            j->r = meta_lease_create (m, j->ns, q->id && *q->id ? q->id : id, &labels, &j->items[0], &j->err);
          }
        labels_clear (&labels);
        break;
      }
    case LEASE_DELETE:
      {
        Containerd__Services__Leases__V1__DeleteRequest *q = (void *) j->req;
        j->r = meta_lease_delete (m, j->ns, q->id, &j->err);
        if (j->r == 0 && q->sync)
          {
            struct gc_report rep;
            j->r = gc_run (j->d, NULL, false, &rep, &j->err);
            gc_report_clear (&rep);
          }
        else if (j->r == 0)
          j->deleted = true;
        break;
      }
    case LEASE_LIST:
      {
        Containerd__Services__Leases__V1__ListRequest *q = (void *) j->req;
        j->r = meta_lease_list (m, j->ns, (const char *const *) q->filters, q->n_filters, &j->items, &j->n, &j->err);
        break;
      }
    case LEASE_ADD_RESOURCE:
    case LEASE_DELETE_RESOURCE:
      {
        /* Both requests have the same layout: id, resource. */
        Containerd__Services__Leases__V1__AddResourceRequest *q = (void *) j->req;
        if (q->resource == NULL)
          {
            j->r = berth_error_set (&j->err, BERTH_E_INVALID, 0, "resource is required");
            break;
          }
        if (j->op == LEASE_ADD_RESOURCE)
          j->r = meta_lease_add_resource (m, j->ns, q->id, q->resource->type, q->resource->id, &j->err);
        else
          {
            j->r = meta_lease_delete_resource (m, j->ns, q->id, q->resource->type, q->resource->id, &j->err);
            j->deleted = j->r == 0;
          }
        break;
      }
    case LEASE_LIST_RESOURCES:
      {
        Containerd__Services__Leases__V1__ListResourcesRequest *q = (void *) j->req;
        j->r = meta_lease_list_resources (m, j->ns, q->id, &j->res, &j->nres, &j->err);
        break;
      }
    }
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "leases");
}

static pb_lease *
lease_to_pb (pb_arena *a, const struct meta_lease *l)
{
  pb_lease *p = pb_new (a, &containerd__services__leases__v1__lease__descriptor);
  p->id = pb_strdup (a, l->id);
  p->created_at = pb_timestamp (a, l->created_at);
  p->labels = pb_map (a, &containerd__services__leases__v1__lease__labels_entry__descriptor, &l->labels,
                      &p->n_labels);
  return p;
}

static void
lease_reply (grpc_call *call, void *data)
{
  struct lease_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  switch (j->op)
    {
    case LEASE_CREATE:
      {
        Containerd__Services__Leases__V1__CreateResponse resp = CONTAINERD__SERVICES__LEASES__V1__CREATE_RESPONSE__INIT;
        resp.lease = lease_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case LEASE_LIST:
      {
        Containerd__Services__Leases__V1__ListResponse resp = CONTAINERD__SERVICES__LEASES__V1__LIST_RESPONSE__INIT;
        resp.leases = pb_alloc (a, (j->n + 1) * sizeof *resp.leases);
        for (size_t i = 0; i < j->n; i++)
          resp.leases[i] = lease_to_pb (a, &j->items[i]);
        resp.n_leases = j->n;
        grpc_call_send (call, &resp.base);
        break;
      }
    case LEASE_LIST_RESOURCES:
      {
        Containerd__Services__Leases__V1__ListResourcesResponse resp
            = CONTAINERD__SERVICES__LEASES__V1__LIST_RESOURCES_RESPONSE__INIT;
        resp.resources = (Containerd__Services__Leases__V1__Resource **) pb_array (
            a, &containerd__services__leases__v1__resource__descriptor, j->nres);
        for (size_t i = 0; i < j->nres; i++)
          {
            resp.resources[i]->id = pb_strdup (a, j->res[i].id);
            resp.resources[i]->type = pb_strdup (a, j->res[i].type);
          }
        resp.n_resources = j->nres;
        grpc_call_send (call, &resp.base);
        break;
      }
    case LEASE_DELETE:
    case LEASE_ADD_RESOURCE:
    case LEASE_DELETE_RESOURCE:
      {
        Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
        grpc_call_send (call, &empty.base);
        break;
      }
    }
  grpc_call_finish (call, 0, NULL);
}

static const ProtobufCMessageDescriptor *const request_desc[] = {
  [LEASE_CREATE] = &containerd__services__leases__v1__create_request__descriptor,
  [LEASE_DELETE] = &containerd__services__leases__v1__delete_request__descriptor,
  [LEASE_LIST] = &containerd__services__leases__v1__list_request__descriptor,
  [LEASE_ADD_RESOURCE] = &containerd__services__leases__v1__add_resource_request__descriptor,
  [LEASE_DELETE_RESOURCE] = &containerd__services__leases__v1__delete_resource_request__descriptor,
  [LEASE_LIST_RESOURCES] = &containerd__services__leases__v1__list_resources_request__descriptor,
};

struct lease_method
{
  struct daemon *d;
  enum lease_op op;
};

static void
lease_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const struct lease_method *lm = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  ProtobufCMessage *req = svc_unpack (call, request_desc[lm->op], msg, len);
  if (req == NULL)
    return;
  struct lease_job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->ns = strdup (ns)) == NULL)
    {
      free (j);
      protobuf_c_message_free_unpacked (req, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = lm->d;
  j->op = lm->op;
  j->req = req;
  svc_defer (lm->d, call, lease_work, lease_reply, lease_job_free, j);
}

int
service_leases_register (struct daemon *d, berth_error **err)
{
  static const char *const names[] = {
    [LEASE_CREATE] = "Create",
    [LEASE_DELETE] = "Delete",
    [LEASE_LIST] = "List",
    [LEASE_ADD_RESOURCE] = "AddResource",
    [LEASE_DELETE_RESOURCE] = "DeleteResource",
    [LEASE_LIST_RESOURCES] = "ListResources",
  };
  static struct lease_method methods[ARRAY_SIZE (names)];
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      methods[i] = (struct lease_method){ .d = d, .op = (enum lease_op) i };
      char path[96];
      snprintf (path, sizeof path, "/containerd.services.leases.v1.Leases/%s", names[i]);
      struct grpc_method m = {
        .path = path, .kind = GRPC_UNARY, .on_message = lease_handle, .on_cancel = svc_on_cancel, .data = &methods[i],
      };
      int r = grpc_server_register (d->server, &m);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", path);
    }
  return 0;
}
