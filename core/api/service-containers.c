/* containerd.services.containers.v1.Containers on the metadata
 * (core/metadata/meta-containers.c): Get, List (filters), ListStream, Create
 * (AlreadyExists), Update (update_mask), Delete (FailedPrecondition while a
 * task runs).  Publishes /containers/create, /containers/update and
 * /containers/delete.  Every method runs on the worker pool. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "events.h"
#include "gc.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "tasks.h"

typedef Containerd__Services__Containers__V1__Container pb_container;

enum ctr_op
{
  CTR_GET,
  CTR_LIST,
  CTR_LIST_STREAM,
  CTR_CREATE,
  CTR_UPDATE,
  CTR_DELETE,
};

struct ctr_job
{
  struct daemon *d;
  enum ctr_op op;
  ProtobufCMessage *req;
  char *ns;
  int r;
  berth_error *err;
  struct meta_container *items;
  size_t n;
  bool deleted;
};

static void
ctr_job_free (void *data)
{
  struct ctr_job *j = data;
  if (j->deleted)
    gc_schedule (j->d);
  if (j->req)
    protobuf_c_message_free_unpacked (j->req, NULL);
  berth_error_free (j->err);
  meta_containers_free (j->items, j->n);
  free (j->ns);
  free (j);
}

static void
any_borrow (const Google__Protobuf__Any *a, struct meta_any *ret)
{
  memset (ret, 0, sizeof *ret);
  if (a == NULL)
    return;
  ret->type_url = a->type_url;
  ret->value = a->value.data;
  ret->len = a->value.len;
}

/* Borrow the request's strings into c (only labels and the extensions
 * array are allocated: release with container_borrowed_clear). */
static int
container_from_pb (const pb_container *p, struct meta_container *c)
{
  memset (c, 0, sizeof *c);
  c->id = p->id;
  c->image = p->image;
  if (p->runtime)
    {
      c->runtime_name = p->runtime->name;
      any_borrow (p->runtime->options, &c->runtime_options);
    }
  any_borrow (p->spec, &c->spec);
  c->snapshotter = p->snapshotter;
  c->snapshot_key = p->snapshot_key;
  if (p->n_extensions)
    {
      c->extensions = calloc (p->n_extensions, sizeof *c->extensions);
      if (c->extensions == NULL)
        return BERTH_E_NOMEM;
      for (size_t i = 0; i < p->n_extensions; i++)
        {
          c->extensions[i].name = p->extensions[i]->key;
          any_borrow (p->extensions[i]->value, &c->extensions[i].value);
        }
      c->n_extensions = p->n_extensions;
    }
  return pb_map_read ((void *const *)p->labels, p->n_labels, &c->labels);
}

static void
container_borrowed_clear (struct meta_container *c)
{
  labels_clear (&c->labels);
  free (c->extensions);
  memset (c, 0, sizeof *c);
}

static int
job_one (struct ctr_job *j)
{
  j->items = calloc (1, sizeof *j->items);
  if (j->items == NULL)
    return berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
  j->n = 1;
  return 0;
}

static void
container_event (struct ctr_job *j, const char *deleted_id)
{
  events *e = j->d->events;
  if (!events_has_subscribers (e))
    return;
  if (j->op == CTR_DELETE)
    {
      const char *f[] = { "id", deleted_id, NULL };
      events_publish_fields (e, j->ns, "/containers/delete", f);
      return;
    }
  const struct meta_container *c = &j->items[0];
  if (j->op == CTR_CREATE)
    {
      const char *f[] = { "id", c->id, "image", c->image, "runtime", c->runtime_name, NULL };
      events_publish_fields (e, j->ns, "/containers/create", f);
      return;
    }
  /* update: id, image, snapshot_key, then labels.<k> pairs */
  size_t n = 6 + 2 * c->labels.n + 1;
  _cleanup_free_ const char **f = calloc (n, sizeof *f);
  _cleanup_free_ char **keys = calloc (c->labels.n + 1, sizeof *keys);
  if (f == NULL || keys == NULL)
    return;
  size_t k = 0;
  f[k++] = "id", f[k++] = c->id, f[k++] = "image", f[k++] = c->image, f[k++] = "snapshot_key";
  f[k++] = c->snapshot_key;
  for (size_t i = 0; i < c->labels.n; i++)
    {
      if (asprintf (&keys[i], "labels.%s", c->labels.keys[i]) < 0)
        {
          keys[i] = NULL;
          break;
        }
      f[k++] = keys[i];
      f[k++] = c->labels.values[i];
    }
  f[k] = NULL;
  events_publish_fields (e, j->ns, "/containers/update", f);
  for (size_t i = 0; i < c->labels.n; i++)
    free (keys[i]);
}

static void
ctr_work (void *data)
{
  struct ctr_job *j = data;
  meta *m = j->d->meta;
  struct meta_container c = { 0 };
  switch (j->op)
    {
    case CTR_GET:
      {
        Containerd__Services__Containers__V1__GetContainerRequest *q = (void *)j->req;
        if ((j->r = job_one (j)) == 0)
          j->r = meta_container_get (m, j->ns, q->id, &j->items[0], &j->err);
        break;
      }
    case CTR_LIST:
    case CTR_LIST_STREAM:
      {
        Containerd__Services__Containers__V1__ListContainersRequest *q = (void *)j->req;
        j->r = meta_container_list (m, j->ns, (const char *const *)q->filters, q->n_filters, &j->items, &j->n, &j->err);
        break;
      }
    case CTR_CREATE:
    case CTR_UPDATE:
      {
        const pb_container *p;
        const Google__Protobuf__FieldMask *mask = NULL;
        if (j->op == CTR_CREATE)
          p = ((Containerd__Services__Containers__V1__CreateContainerRequest *)j->req)->container;
        else
          {
            p = ((Containerd__Services__Containers__V1__UpdateContainerRequest *)j->req)->container;
            mask = ((Containerd__Services__Containers__V1__UpdateContainerRequest *)j->req)->update_mask;
          }
        if (p == NULL)
          {
            j->r = berth_error_set (&j->err, BERTH_E_INVALID, 0, "container is required");
            break;
          }
        if (container_from_pb (p, &c) < 0)
          {
            j->r = berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
            break;
          }
        if ((j->r = job_one (j)) < 0)
          break;
        if (j->op == CTR_CREATE)
          j->r = meta_container_create (m, j->ns, &c, &j->items[0], &j->err);
        else
          j->r = meta_container_update (m, j->ns, &c, mask ? (const char *const *)mask->paths : NULL,
                                        mask ? mask->n_paths : 0, &j->items[0], &j->err);
        break;
      }
    case CTR_DELETE:
      {
        Containerd__Services__Containers__V1__DeleteContainerRequest *q = (void *)j->req;
        if (q->id && j->d->tasks && tasks_exists (j->d->tasks, j->ns, q->id))
          j->r = berth_error_set (&j->err, BERTH_E_PRECONDITION, 0,
                                  "cannot delete container %s: it has a task (delete the task first)", q->id);
        else
          j->r = meta_container_delete (m, j->ns, q->id ? q->id : "", &j->err);
        j->deleted = j->r == 0;
        break;
      }
    }
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "containers");
  if (j->r == 0 && j->op != CTR_GET && j->op != CTR_LIST && j->op != CTR_LIST_STREAM)
    container_event (
        j, j->op == CTR_DELETE ? ((Containerd__Services__Containers__V1__DeleteContainerRequest *)j->req)->id : NULL);
  container_borrowed_clear (&c);
}

static Google__Protobuf__Any *
any_to_pb (pb_arena *a, const struct meta_any *m)
{
  if (m->type_url == NULL || *m->type_url == '\0')
    return NULL;
  Google__Protobuf__Any *any = pb_new (a, &google__protobuf__any__descriptor);
  any->type_url = pb_strdup (a, m->type_url);
  if (m->len)
    {
      any->value.data = pb_alloc (a, m->len);
      memcpy (any->value.data, m->value, m->len);
      any->value.len = m->len;
    }
  return any;
}

static pb_container *
container_to_pb (pb_arena *a, const struct meta_container *c)
{
  pb_container *p = pb_new (a, &containerd__services__containers__v1__container__descriptor);
  p->id = pb_strdup (a, c->id);
  p->labels = pb_map (a, &containerd__services__containers__v1__container__labels_entry__descriptor, &c->labels,
                      &p->n_labels);
  p->image = pb_strdup (a, c->image);
  p->runtime = pb_new (a, &containerd__services__containers__v1__container__runtime__descriptor);
  p->runtime->name = pb_strdup (a, c->runtime_name);
  p->runtime->options = any_to_pb (a, &c->runtime_options);
  p->spec = any_to_pb (a, &c->spec);
  p->snapshotter = pb_strdup (a, c->snapshotter);
  p->snapshot_key = pb_strdup (a, c->snapshot_key);
  p->created_at = pb_timestamp (a, c->created_at);
  p->updated_at = pb_timestamp (a, c->updated_at);
  if (c->n_extensions)
    {
      p->extensions = (void *)pb_array (
          a, &containerd__services__containers__v1__container__extensions_entry__descriptor, c->n_extensions);
      for (size_t i = 0; i < c->n_extensions; i++)
        {
          p->extensions[i]->key = pb_strdup (a, c->extensions[i].name);
          p->extensions[i]->value = any_to_pb (a, &c->extensions[i].value);
        }
      p->n_extensions = c->n_extensions;
    }
  return p;
}

static void
ctr_reply (grpc_call *call, void *data)
{
  struct ctr_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  switch (j->op)
    {
    case CTR_GET:
      {
        Containerd__Services__Containers__V1__GetContainerResponse resp
            = CONTAINERD__SERVICES__CONTAINERS__V1__GET_CONTAINER_RESPONSE__INIT;
        resp.container = container_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case CTR_LIST:
      {
        Containerd__Services__Containers__V1__ListContainersResponse resp
            = CONTAINERD__SERVICES__CONTAINERS__V1__LIST_CONTAINERS_RESPONSE__INIT;
        resp.containers = pb_alloc (a, (j->n + 1) * sizeof *resp.containers);
        for (size_t i = 0; i < j->n; i++)
          resp.containers[i] = container_to_pb (a, &j->items[i]);
        resp.n_containers = j->n;
        grpc_call_send (call, &resp.base);
        break;
      }
    case CTR_LIST_STREAM:
      for (size_t i = 0; i < j->n; i++)
        {
          _cleanup_arena_ pb_arena *one = pb_arena_new ();
          Containerd__Services__Containers__V1__ListContainerMessage msg
              = CONTAINERD__SERVICES__CONTAINERS__V1__LIST_CONTAINER_MESSAGE__INIT;
          msg.container = container_to_pb (one, &j->items[i]);
          grpc_call_send (call, &msg.base);
        }
      break;
    case CTR_CREATE:
      {
        Containerd__Services__Containers__V1__CreateContainerResponse resp
            = CONTAINERD__SERVICES__CONTAINERS__V1__CREATE_CONTAINER_RESPONSE__INIT;
        resp.container = container_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case CTR_UPDATE:
      {
        Containerd__Services__Containers__V1__UpdateContainerResponse resp
            = CONTAINERD__SERVICES__CONTAINERS__V1__UPDATE_CONTAINER_RESPONSE__INIT;
        resp.container = container_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case CTR_DELETE:
      {
        Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
        grpc_call_send (call, &empty.base);
        break;
      }
    }
  grpc_call_finish (call, 0, NULL);
}

static const ProtobufCMessageDescriptor *const request_desc[] = {
  [CTR_GET] = &containerd__services__containers__v1__get_container_request__descriptor,
  [CTR_LIST] = &containerd__services__containers__v1__list_containers_request__descriptor,
  [CTR_LIST_STREAM] = &containerd__services__containers__v1__list_containers_request__descriptor,
  [CTR_CREATE] = &containerd__services__containers__v1__create_container_request__descriptor,
  [CTR_UPDATE] = &containerd__services__containers__v1__update_container_request__descriptor,
  [CTR_DELETE] = &containerd__services__containers__v1__delete_container_request__descriptor,
};

struct ctr_method
{
  struct daemon *d;
  enum ctr_op op;
};

static void
ctr_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const struct ctr_method *cm = data;
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
  struct ctr_job *j = calloc (1, sizeof *j);
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
  svc_defer (cm->d, call, ctr_work, ctr_reply, ctr_job_free, j);
}

int
service_containers_register (struct daemon *d, berth_error **err)
{
  static const char *const names[] = {
    [CTR_GET] = "Get",       [CTR_LIST] = "List",     [CTR_LIST_STREAM] = "ListStream",
    [CTR_CREATE] = "Create", [CTR_UPDATE] = "Update", [CTR_DELETE] = "Delete",
  };
  static struct ctr_method methods[ARRAY_SIZE (names)];
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      methods[i] = (struct ctr_method){ .d = d, .op = (enum ctr_op)i };
      char path[96];
      snprintf (path, sizeof path, "/containerd.services.containers.v1.Containers/%s", names[i]);
      struct grpc_method m = {
        .path = path,
        .kind = i == CTR_LIST_STREAM ? GRPC_SERVER_STREAM : GRPC_UNARY,
        .on_message = ctr_handle,
        .on_cancel = svc_on_cancel,
        .data = &methods[i],
      };
      int r = grpc_server_register (d->server, &m);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", path);
    }
  return 0;
}
