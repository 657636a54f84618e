/* containerd.services.namespaces.v1.Namespaces
 *
 * Every method runs on the worker pool (SQLite writes fsync), with
 * containerd's semantics: names validated, AlreadyExists on create,
 * NotFound on get/update/delete of a missing namespace, update_mask paths
 * "labels" and "labels.<key>", no mask replaces all labels.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "api/service-util.h"
#include "cleanup.h"
#include "events.h"
#include "filters.h"
#include "github.com/containerd/containerd/api/events/namespace.pb-c.h"
#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.pb-c.h"

typedef Containerd__Services__Namespaces__V1__Namespace pb_ns;
typedef Containerd__Services__Namespaces__V1__Namespace__LabelsEntry pb_label;

enum ns_op
{
  NS_GET,
  NS_LIST,
  NS_CREATE,
  NS_UPDATE,
  NS_DELETE,
};

struct ns_job
{
  struct daemon *d;
  enum ns_op op;
  ProtobufCMessage *req;
  /* results */
  int r;
  berth_error *err;
  struct meta_namespace *items;
  size_t n;
};

static void
ns_job_free (void *data)
{
  struct ns_job *j = data;
  if (j->req)
    protobuf_c_message_free_unpacked (j->req, NULL);
  berth_error_free (j->err);
  meta_namespaces_free (j->items, j->n);
  free (j);
}

static int
labels_from_pb (const pb_ns *ns, berth_labels *out)
{
  for (size_t i = 0; ns && i < ns->n_labels; i++)
    {
      int r = labels_set (out, ns->labels[i]->key, ns->labels[i]->value);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
job_one (struct ns_job *j)
{
  j->items = calloc (1, sizeof *j->items);
  if (j->items == NULL)
    return berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
  j->n = 1;
  return 0;
}

static const char *
ns_field (void *obj, const char *const *path, size_t n)
{
  const struct meta_namespace *ns = obj;
  if (n == 1 && strcmp (path[0], "name") == 0)
    return ns->name;
  if (n == 2 && strcmp (path[0], "labels") == 0)
    return labels_get (&ns->labels, path[1]);
  return NULL;
}

/* /namespaces/create, /namespaces/update, /namespaces/delete. */
static void
ns_event (struct ns_job *j)
{
  events *e = j->d->events;
  if (!events_has_subscribers (e))
    return;
  if (j->op == NS_DELETE)
    {
      Containerd__Events__NamespaceDelete ev = CONTAINERD__EVENTS__NAMESPACE_DELETE__INIT;
      ev.name = ((Containerd__Services__Namespaces__V1__DeleteNamespaceRequest *) j->req)->name;
      events_publish (e, ev.name, "/namespaces/delete", &ev.base);
      return;
    }
  if (j->op != NS_CREATE && j->op != NS_UPDATE)
    return;
  const struct meta_namespace *ns = &j->items[0];
  /* Create and Update events have the same shape (name, labels). */
  _cleanup_free_ Containerd__Events__NamespaceCreate__LabelsEntry *ents = calloc (ns->labels.n + 1, sizeof *ents);
  _cleanup_free_ Containerd__Events__NamespaceCreate__LabelsEntry **ptrs = calloc (ns->labels.n + 1, sizeof *ptrs);
  if (ents == NULL || ptrs == NULL)
    return;
  for (size_t i = 0; i < ns->labels.n; i++)
    {
      Containerd__Events__NamespaceCreate__LabelsEntry init = CONTAINERD__EVENTS__NAMESPACE_CREATE__LABELS_ENTRY__INIT;
      ents[i] = init;
      if (j->op == NS_UPDATE)
        ents[i].base.descriptor = &containerd__events__namespace_update__labels_entry__descriptor;
      ents[i].key = ns->labels.keys[i];
      ents[i].value = ns->labels.values[i];
      ptrs[i] = &ents[i];
    }
  if (j->op == NS_CREATE)
    {
      Containerd__Events__NamespaceCreate ev = CONTAINERD__EVENTS__NAMESPACE_CREATE__INIT;
      ev.name = ns->name;
      ev.labels = ptrs;
      ev.n_labels = ns->labels.n;
      events_publish (e, ns->name, "/namespaces/create", &ev.base);
    }
  else
    {
      Containerd__Events__NamespaceUpdate ev = CONTAINERD__EVENTS__NAMESPACE_UPDATE__INIT;
      ev.name = ns->name;
      ev.labels = (Containerd__Events__NamespaceUpdate__LabelsEntry **) ptrs;
      ev.n_labels = ns->labels.n;
      events_publish (e, ns->name, "/namespaces/update", &ev.base);
    }
}

static void
ns_work (void *data)
{
  struct ns_job *j = data;
  meta *m = j->d->meta;
  berth_labels labels = { 0 };
  switch (j->op)
    {
    case NS_GET:
      {
        Containerd__Services__Namespaces__V1__GetNamespaceRequest *q = (void *) j->req;
        if ((j->r = job_one (j)) == 0)
          j->r = meta_namespace_get (m, q->name, &j->items[0], &j->err);
        break;
      }
    case NS_LIST:
      {
        Containerd__Services__Namespaces__V1__ListNamespacesRequest *q = (void *) j->req;
        filter_set *fs = NULL;
        const char *f = q->filter;
        j->r = filters_parse (&f, 1, &fs, &j->err);
        if (j->r == 0)
          j->r = meta_namespace_list (m, &j->items, &j->n, &j->err);
        if (j->r == 0 && fs)
          {
            size_t k = 0;
            for (size_t i = 0; i < j->n; i++)
              if (filters_match (fs, ns_field, &j->items[i]))
                j->items[k++] = j->items[i];
              else
                meta_namespace_clear (&j->items[i]);
            j->n = k;
          }
        filters_free (fs);
        break;
      }
    case NS_CREATE:
      {
        Containerd__Services__Namespaces__V1__CreateNamespaceRequest *q = (void *) j->req;
        if (q->namespace_ == NULL)
          {
            j->r = berth_error_set (&j->err, BERTH_E_INVALID, 0, "namespace is required");
            break;
          }
        j->r = labels_from_pb (q->namespace_, &labels);
        if (j->r == 0)
          j->r = meta_namespace_create (m, q->namespace_->name, &labels, &j->err);
        if (j->r == 0 && (j->r = job_one (j)) == 0)
          j->r = meta_namespace_get (m, q->namespace_->name, &j->items[0], &j->err);
        break;
      }
    case NS_UPDATE:
      {
        Containerd__Services__Namespaces__V1__UpdateNamespaceRequest *q = (void *) j->req;
        if (q->namespace_ == NULL)
          {
            j->r = berth_error_set (&j->err, BERTH_E_INVALID, 0, "namespace is required");
            break;
          }
        j->r = labels_from_pb (q->namespace_, &labels);
        const char *const *paths = q->update_mask ? (const char *const *) q->update_mask->paths : NULL;
        size_t npaths = q->update_mask ? q->update_mask->n_paths : 0;
        if (j->r == 0 && (j->r = job_one (j)) == 0)
          j->r = meta_namespace_update (m, q->namespace_->name, &labels, paths, npaths, &j->items[0], &j->err);
        break;
      }
    case NS_DELETE:
      {
        Containerd__Services__Namespaces__V1__DeleteNamespaceRequest *q = (void *) j->req;
        j->r = meta_namespace_delete (m, q->name, &j->err);
        break;
      }
    }
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "namespaces");
  if (j->r == 0)
    ns_event (j);
  labels_clear (&labels);
}

/* Point a pb_ns at a meta_namespace (no copies: both live until the reply is sent). */
static bool
ns_to_pb (const struct meta_namespace *ns, pb_ns *out, pb_label **ptrs, pb_label *ents)
{
  pb_ns init = CONTAINERD__SERVICES__NAMESPACES__V1__NAMESPACE__INIT;
  pb_label linit = CONTAINERD__SERVICES__NAMESPACES__V1__NAMESPACE__LABELS_ENTRY__INIT;
  *out = init;
  out->name = ns->name;
  for (size_t i = 0; i < ns->labels.n; i++)
    {
      ents[i] = linit;
      ents[i].key = ns->labels.keys[i];
      ents[i].value = ns->labels.values[i];
      ptrs[i] = &ents[i];
    }
  out->labels = ptrs;
  out->n_labels = ns->labels.n;
  return true;
}

static void
ns_reply (grpc_call *call, void *data)
{
  struct ns_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  if (j->op == NS_DELETE)
    {
      Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
      grpc_call_send (call, &empty.base);
      grpc_call_finish (call, 0, NULL);
      return;
    }
  size_t nlabels = 0;
  for (size_t i = 0; i < j->n; i++)
    nlabels += j->items[i].labels.n;
  _cleanup_free_ pb_ns *nss = calloc (j->n + 1, sizeof *nss);
  _cleanup_free_ pb_ns **nsp = calloc (j->n + 1, sizeof *nsp);
  _cleanup_free_ pb_label *ents = calloc (nlabels + 1, sizeof *ents);
  _cleanup_free_ pb_label **lp = calloc (nlabels + 1, sizeof *lp);
  if (nss == NULL || nsp == NULL || ents == NULL || lp == NULL)
    {
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  size_t off = 0;
  for (size_t i = 0; i < j->n; i++)
    {
      ns_to_pb (&j->items[i], &nss[i], lp + off, ents + off);
      nsp[i] = &nss[i];
      off += j->items[i].labels.n;
    }
  switch (j->op)
    {
    case NS_LIST:
      {
        Containerd__Services__Namespaces__V1__ListNamespacesResponse resp
            = CONTAINERD__SERVICES__NAMESPACES__V1__LIST_NAMESPACES_RESPONSE__INIT;
        resp.namespaces = nsp;
        resp.n_namespaces = j->n;
        grpc_call_send (call, &resp.base);
        break;
      }
    case NS_GET:
      {
        Containerd__Services__Namespaces__V1__GetNamespaceResponse resp
            = CONTAINERD__SERVICES__NAMESPACES__V1__GET_NAMESPACE_RESPONSE__INIT;
        resp.namespace_ = &nss[0];
        grpc_call_send (call, &resp.base);
        break;
      }
    case NS_CREATE:
      {
        Containerd__Services__Namespaces__V1__CreateNamespaceResponse resp
            = CONTAINERD__SERVICES__NAMESPACES__V1__CREATE_NAMESPACE_RESPONSE__INIT;
        resp.namespace_ = &nss[0];
        grpc_call_send (call, &resp.base);
        break;
      }
    case NS_UPDATE:
      {
        Containerd__Services__Namespaces__V1__UpdateNamespaceResponse resp
            = CONTAINERD__SERVICES__NAMESPACES__V1__UPDATE_NAMESPACE_RESPONSE__INIT;
        resp.namespace_ = &nss[0];
        grpc_call_send (call, &resp.base);
        break;
      }
    case NS_DELETE:
      break;
    }
  grpc_call_finish (call, 0, NULL);
}

static const ProtobufCMessageDescriptor *const request_desc[] = {
  [NS_GET] = &containerd__services__namespaces__v1__get_namespace_request__descriptor,
  [NS_LIST] = &containerd__services__namespaces__v1__list_namespaces_request__descriptor,
  [NS_CREATE] = &containerd__services__namespaces__v1__create_namespace_request__descriptor,
  [NS_UPDATE] = &containerd__services__namespaces__v1__update_namespace_request__descriptor,
  [NS_DELETE] = &containerd__services__namespaces__v1__delete_namespace_request__descriptor,
};

struct ns_method
{
  struct daemon *d;
  enum ns_op op;
};

static void
ns_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const struct ns_method *nm = data;
  ProtobufCMessage *req = svc_unpack (call, request_desc[nm->op], msg, len);
  if (req == NULL)
    return;
  struct ns_job *j = calloc (1, sizeof *j);
  if (j == NULL)
    {
      protobuf_c_message_free_unpacked (req, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = nm->d;
  j->op = nm->op;
  j->req = req;
  svc_defer (nm->d, call, ns_work, ns_reply, ns_job_free, j);
}

int
service_namespaces_register (struct daemon *d, berth_error **err)
{
  static const char *const names[] = {
    [NS_GET] = "Get", [NS_LIST] = "List", [NS_CREATE] = "Create", [NS_UPDATE] = "Update", [NS_DELETE] = "Delete",
  };
  /* Lives as long as the daemon (the server keeps pointers to it). */
  static struct ns_method methods[ARRAY_SIZE (names)];
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      methods[i] = (struct ns_method){ .d = d, .op = (enum ns_op) i };
      char path[96];
      snprintf (path, sizeof path, "/containerd.services.namespaces.v1.Namespaces/%s", names[i]);
      struct grpc_method m = {
        .path = path, .kind = GRPC_UNARY, .on_message = ns_handle, .on_cancel = svc_on_cancel, .data = &methods[i],
      };
      int r = grpc_server_register (d->server, &m);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", path);
    }
  return 0;
}
