/* containerd.services.images.v1.Images on the metadata (core/metadata):
 * Get, List (filters), Create (AlreadyExists), Update (update_mask paths
 * labels, labels.<k>, target, annotations, annotations.<k>), Delete (sync:
 * GC before answering; otherwise GC is scheduled).  Events are not
 * published yet (no Events service).  Every method runs on the worker
 * pool. */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "events.h"
#include "github.com/containerd/containerd/api/events/image.pb-c.h"
#include "gc.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

typedef Containerd__Services__Images__V1__Image pb_image;

enum img_op
{
  IMG_GET,
  IMG_LIST,
  IMG_CREATE,
  IMG_UPDATE,
  IMG_DELETE,
};

struct img_job
{
  struct daemon *d;
  enum img_op op;
  ProtobufCMessage *req;
  char *ns;
  int r;
  berth_error *err;
  struct meta_image *items;
  size_t n;
  bool deleted; /* schedule GC from the loop thread */
};

static void
img_job_free (void *data)
{
  struct img_job *j = data;
  if (j->deleted) /* loop thread, also when the client went away */
    gc_schedule (j->d);
  if (j->req)
    protobuf_c_message_free_unpacked (j->req, NULL);
  berth_error_free (j->err);
  meta_images_free (j->items, j->n);
  free (j->ns);
  free (j);
}

/* Borrow the request's strings into img (no copies; img is not cleared). */
static int
image_from_pb (const pb_image *p, struct meta_image *img)
{
  memset (img, 0, sizeof *img);
  img->name = p->name;
  if (p->target)
    {
      img->target.media_type = p->target->media_type;
      img->target.digest = p->target->digest;
      img->target.size = p->target->size;
      int r = pb_map_read ((void *const *) p->target->annotations, p->target->n_annotations, &img->target.annotations);
      if (r < 0)
        return r;
    }
  return pb_map_read ((void *const *) p->labels, p->n_labels, &img->labels);
}

static void
image_borrowed_clear (struct meta_image *img)
{
  labels_clear (&img->labels);
  labels_clear (&img->target.annotations);
}

static int
job_one (struct img_job *j)
{
  j->items = calloc (1, sizeof *j->items);
  if (j->items == NULL)
    return berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
  j->n = 1;
  return 0;
}

/* /images/create, /images/update, /images/delete on the events stream. */
static void
image_event (struct img_job *j)
{
  if (!events_has_subscribers (j->d->events))
    return;
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  if (a == NULL)
    return;
  switch (j->op)
    {
    case IMG_CREATE:
      {
        Containerd__Services__Images__V1__ImageCreate *ev
            = pb_new (a, &containerd__services__images__v1__image_create__descriptor);
        ev->name = pb_strdup (a, j->items[0].name);
        ev->labels = pb_map (a, &containerd__services__images__v1__image_create__labels_entry__descriptor,
                             &j->items[0].labels, &ev->n_labels);
        events_publish (j->d->events, j->ns, "/images/create", &ev->base);
        break;
      }
    case IMG_UPDATE:
      {
        Containerd__Services__Images__V1__ImageUpdate *ev
            = pb_new (a, &containerd__services__images__v1__image_update__descriptor);
        ev->name = pb_strdup (a, j->items[0].name);
        ev->labels = pb_map (a, &containerd__services__images__v1__image_update__labels_entry__descriptor,
                             &j->items[0].labels, &ev->n_labels);
        events_publish (j->d->events, j->ns, "/images/update", &ev->base);
        break;
      }
    case IMG_DELETE:
      {
        Containerd__Services__Images__V1__ImageDelete *ev
            = pb_new (a, &containerd__services__images__v1__image_delete__descriptor);
        ev->name = pb_strdup (a, ((Containerd__Services__Images__V1__DeleteImageRequest *) j->req)->name);
        events_publish (j->d->events, j->ns, "/images/delete", &ev->base);
        break;
      }
    default:
      break;
    }
}

static void
img_work (void *data)
{
  struct img_job *j = data;
  meta *m = j->d->meta;
  struct meta_image img = { 0 };
  switch (j->op)
    {
    case IMG_GET:
      {
        Containerd__Services__Images__V1__GetImageRequest *q = (void *) j->req;
        if ((j->r = job_one (j)) == 0)
          j->r = meta_image_get (m, j->ns, q->name, &j->items[0], &j->err);
        break;
      }
    case IMG_LIST:
      {
        Containerd__Services__Images__V1__ListImagesRequest *q = (void *) j->req;
        j->r = meta_image_list (m, j->ns, (const char *const *) q->filters, q->n_filters, &j->items, &j->n, &j->err);
        break;
      }
    case IMG_CREATE:
    case IMG_UPDATE:
      {
        const pb_image *p;
        const Google__Protobuf__FieldMask *mask = NULL;
        if (j->op == IMG_CREATE)
          p = ((Containerd__Services__Images__V1__CreateImageRequest *) j->req)->image;
        else
          {
            p = ((Containerd__Services__Images__V1__UpdateImageRequest *) j->req)->image;
            mask = ((Containerd__Services__Images__V1__UpdateImageRequest *) j->req)->update_mask;
          }
        if (p == NULL)
          {
            j->r = berth_error_set (&j->err, BERTH_E_INVALID, 0, "image is required");
            break;
          }
        if (image_from_pb (p, &img) < 0)
          {
            j->r = berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
            break;
          }
        if ((j->r = job_one (j)) < 0)
          break;
        if (j->op == IMG_CREATE)
          j->r = meta_image_create (m, j->ns, &img, &j->items[0], &j->err);
        else
          j->r = meta_image_update (m, j->ns, &img, mask ? (const char *const *) mask->paths : NULL,
                                    mask ? mask->n_paths : 0, &j->items[0], &j->err);
        break;
      }
    case IMG_DELETE:
      {
        Containerd__Services__Images__V1__DeleteImageRequest *q = (void *) j->req;
        j->r = meta_image_delete (m, j->ns, q->name, &j->err);
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
    }
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "images");
  if (j->r == 0)
    image_event (j);
  image_borrowed_clear (&img);
}

static pb_image *
image_to_pb (pb_arena *a, const struct meta_image *img)
{
  pb_image *p = pb_new (a, &containerd__services__images__v1__image__descriptor);
  p->name = pb_strdup (a, img->name);
  p->labels = pb_map (a, &containerd__services__images__v1__image__labels_entry__descriptor, &img->labels,
                      &p->n_labels);
  p->target = pb_new (a, &containerd__types__descriptor__descriptor);
  p->target->media_type = pb_strdup (a, img->target.media_type);
  p->target->digest = pb_strdup (a, img->target.digest);
  p->target->size = img->target.size;
  p->target->annotations = pb_map (a, &containerd__types__descriptor__annotations_entry__descriptor,
                                   &img->target.annotations, &p->target->n_annotations);
  p->created_at = pb_timestamp (a, img->created_at);
  p->updated_at = pb_timestamp (a, img->updated_at);
  return p;
}

static void
img_reply (grpc_call *call, void *data)
{
  struct img_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  switch (j->op)
    {
    case IMG_GET:
      {
        Containerd__Services__Images__V1__GetImageResponse resp
            = CONTAINERD__SERVICES__IMAGES__V1__GET_IMAGE_RESPONSE__INIT;
        resp.image = image_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case IMG_LIST:
      {
        Containerd__Services__Images__V1__ListImagesResponse resp
            = CONTAINERD__SERVICES__IMAGES__V1__LIST_IMAGES_RESPONSE__INIT;
        resp.images = pb_alloc (a, (j->n + 1) * sizeof *resp.images);
        for (size_t i = 0; i < j->n; i++)
          resp.images[i] = image_to_pb (a, &j->items[i]);
        resp.n_images = j->n;
        grpc_call_send (call, &resp.base);
        break;
      }
    case IMG_CREATE:
      {
        Containerd__Services__Images__V1__CreateImageResponse resp
            = CONTAINERD__SERVICES__IMAGES__V1__CREATE_IMAGE_RESPONSE__INIT;
        resp.image = image_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case IMG_UPDATE:
      {
        Containerd__Services__Images__V1__UpdateImageResponse resp
            = CONTAINERD__SERVICES__IMAGES__V1__UPDATE_IMAGE_RESPONSE__INIT;
        resp.image = image_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case IMG_DELETE:
      {
        Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
        grpc_call_send (call, &empty.base);
        break;
      }
    }
  grpc_call_finish (call, 0, NULL);
}

static const ProtobufCMessageDescriptor *const request_desc[] = {
  [IMG_GET] = &containerd__services__images__v1__get_image_request__descriptor,
  [IMG_LIST] = &containerd__services__images__v1__list_images_request__descriptor,
  [IMG_CREATE] = &containerd__services__images__v1__create_image_request__descriptor,
  [IMG_UPDATE] = &containerd__services__images__v1__update_image_request__descriptor,
  [IMG_DELETE] = &containerd__services__images__v1__delete_image_request__descriptor,
};

struct img_method
{
  struct daemon *d;
  enum img_op op;
};

static void
img_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const struct img_method *im = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  ProtobufCMessage *req = svc_unpack (call, request_desc[im->op], msg, len);
  if (req == NULL)
    return;
  struct img_job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->ns = strdup (ns)) == NULL)
    {
      free (j);
      protobuf_c_message_free_unpacked (req, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = im->d;
  j->op = im->op;
  j->req = req;
  svc_defer (im->d, call, img_work, img_reply, img_job_free, j);
}

int
service_images_register (struct daemon *d, berth_error **err)
{
  static const char *const names[] = {
    [IMG_GET] = "Get", [IMG_LIST] = "List", [IMG_CREATE] = "Create", [IMG_UPDATE] = "Update", [IMG_DELETE] = "Delete",
  };
  static struct img_method methods[ARRAY_SIZE (names)];
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      methods[i] = (struct img_method){ .d = d, .op = (enum img_op) i };
      char path[96];
      snprintf (path, sizeof path, "/containerd.services.images.v1.Images/%s", names[i]);
      struct grpc_method m = {
        .path = path, .kind = GRPC_UNARY, .on_message = img_handle, .on_cancel = svc_on_cancel, .data = &methods[i],
      };
      int r = grpc_server_register (d->server, &m);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", path);
    }
  return 0;
}
