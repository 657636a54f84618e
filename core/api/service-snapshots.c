/* containerd.services.snapshots.v1.Snapshots over the namespaced snapshots
 * of core/snapshots.h (containerd's services/snapshots + metadata/snapshot.go):
 * the request's `snapshotter` picks the plugin (io.berth.snapshotter.v1.<id>),
 * keys and parents are names within the call's namespace, and snapshots
 * created under a containerd-lease header join that lease
 * ("snapshots/<snapshotter>").  Every method runs on the worker pool; List
 * streams batches of 100 infos.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "gc.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb-c.h"
#include "github.com/containerd/containerd/api/types/mount.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "plugin-calls.h"
#include "snapshots.h"

#define LIST_BATCH 100

typedef Containerd__Services__Snapshots__V1__Info pb_info;

enum sn_op
{
  SN_PREPARE,
  SN_VIEW,
  SN_MOUNTS,
  SN_COMMIT,
  SN_REMOVE,
  SN_STAT,
  SN_UPDATE,
  SN_LIST,
  SN_USAGE,
  SN_CLEANUP,
};

struct sn_job
{
  struct daemon *d;
  enum sn_op op;
  ProtobufCMessage *req;
  char *ns;
  char *lease;
  int r;
  berth_error *err;
  berth_mounts mounts;
  struct meta_snapshot *items;
  size_t n;
  struct berth_snapshot_usage usage;
  bool removed;
};

static void
sn_job_free (void *data)
{
  struct sn_job *j = data;
  if (j->removed)
    gc_schedule (j->d);
  if (j->req)
    protobuf_c_message_free_unpacked (j->req, NULL);
  berth_error_free (j->err);
  mounts_clear (&j->mounts);
  meta_snapshots_free (j->items, j->n);
  free (j->ns);
  free (j->lease);
  free (j);
}

/* Every request starts with `string snapshotter = 1`; read it by name. */
static const char *
req_snapshotter (const ProtobufCMessage *req)
{
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name (req->descriptor, "snapshotter");
  if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING)
    return NULL;
  return *(const char *const *) ((const char *) req + f->offset);
}

static int
read_labels (void *const *entries, size_t n, berth_labels *l, berth_error **err)
{
  if (pb_map_read (entries, n, l) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  return 0;
}

static int
one_item (struct sn_job *j)
{
  j->items = calloc (1, sizeof *j->items);
  if (j->items == NULL)
    return berth_error_set (&j->err, BERTH_E_NOMEM, 0, "out of memory");
  j->n = 1;
  return 0;
}

static void
sn_work (void *data)
{
  struct sn_job *j = data;
  plugin *p = NULL;
  const char *id = req_snapshotter (j->req);
  j->r = snaps_plugin (j->d->reg, id, &p, &j->err);
  if (j->r < 0)
    return;
  struct snaps s = { .m = j->d->meta, .p = p, .snapshotter = id, .ns = j->ns, .lease = j->lease };
  berth_labels labels = { 0 };
  switch (j->op)
    {
    case SN_PREPARE:
    case SN_VIEW:
      {
        /* Both requests have the same layout. */
        Containerd__Services__Snapshots__V1__PrepareSnapshotRequest *q = (void *) j->req;
        j->r = read_labels ((void *const *) q->labels, q->n_labels, &labels, &j->err);
        if (j->r == 0)
          j->r = snaps_create (&s, q->key, q->parent, &labels, j->op == SN_VIEW, &j->mounts, &j->err);
        break;
      }
    case SN_MOUNTS:
      {
        Containerd__Services__Snapshots__V1__MountsRequest *q = (void *) j->req;
        j->r = snaps_mounts (&s, q->key, &j->mounts, &j->err);
        break;
      }
    case SN_COMMIT:
      {
        Containerd__Services__Snapshots__V1__CommitSnapshotRequest *q = (void *) j->req;
        j->r = read_labels ((void *const *) q->labels, q->n_labels, &labels, &j->err);
        if (j->r == 0)
          j->r = snaps_commit (&s, q->name, q->key, &labels, &j->err);
        break;
      }
    case SN_REMOVE:
      {
        Containerd__Services__Snapshots__V1__RemoveSnapshotRequest *q = (void *) j->req;
        j->r = snaps_remove (&s, q->key, &j->err);
        j->removed = j->r == 0;
        break;
      }
    case SN_STAT:
      {
        Containerd__Services__Snapshots__V1__StatSnapshotRequest *q = (void *) j->req;
        j->r = one_item (j);
        if (j->r == 0)
          j->r = meta_snapshot_get (s.m, s.ns, id, q->key, &j->items[0], &j->err);
        break;
      }
    case SN_UPDATE:
      {
        Containerd__Services__Snapshots__V1__UpdateSnapshotRequest *q = (void *) j->req;
        if (q->info == NULL || q->info->name == NULL || *q->info->name == '\0')
          {
            j->r = berth_error_set (&j->err, BERTH_E_INVALID, 0, "snapshot name must be provided");
            break;
          }
        j->r = read_labels ((void *const *) q->info->labels, q->info->n_labels, &labels, &j->err);
        if (j->r == 0)
          j->r = one_item (j);
        if (j->r == 0)
          j->r = meta_snapshot_update (s.m, s.ns, id, q->info->name, &labels,
                                       q->update_mask ? (const char *const *) q->update_mask->paths : NULL,
                                       q->update_mask ? q->update_mask->n_paths : 0, &j->items[0], &j->err);
        break;
      }
    case SN_LIST:
      {
        Containerd__Services__Snapshots__V1__ListSnapshotsRequest *q = (void *) j->req;
        j->r = meta_snapshot_list (s.m, s.ns, id, (const char *const *) q->filters, q->n_filters, &j->items, &j->n,
                                   &j->err);
        break;
      }
    case SN_USAGE:
      {
        Containerd__Services__Snapshots__V1__UsageRequest *q = (void *) j->req;
        j->usage.size = sizeof j->usage;
        j->r = snaps_usage (&s, q->key, &j->usage, &j->err);
        break;
      }
    case SN_CLEANUP:
      {
        snaps_lock_exclusive ();
        j->r = snaps_sweep_backend (s.m, p, false, NULL, &j->err);
        snaps_unlock_exclusive ();
        if (j->r == 0)
          {
            berth_ctx ctx;
            ctx_init (&ctx, j->ns, NULL);
            _cleanup_error_ berth_error *e = NULL;
            int rc = snapshotter_cleanup (p, &ctx, &e);
            if (rc < 0 && rc != BERTH_E_NOTSUP)
              j->r = berth_error_take (&j->err, TAKE_PTR (e));
          }
        break;
      }
    }
  labels_clear (&labels);
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "snapshots");
}

static Containerd__Types__Mount **
mounts_to_pb (pb_arena *a, const berth_mounts *m, size_t *ret_n)
{
  Containerd__Types__Mount **v = (Containerd__Types__Mount **) pb_array (a, &containerd__types__mount__descriptor, m->n);
  for (size_t i = 0; i < m->n; i++)
    {
      const struct berth_mount *bm = &m->items[i];
      v[i]->type = pb_strdup (a, bm->type);
      v[i]->source = pb_strdup (a, bm->source);
      v[i]->target = pb_strdup (a, bm->target);
      size_t n = 0;
      while (bm->options && bm->options[n])
        n++;
      v[i]->options = pb_alloc (a, (n + 1) * sizeof *v[i]->options);
      for (size_t k = 0; k < n; k++)
        v[i]->options[k] = pb_strdup (a, bm->options[k]);
      v[i]->n_options = n;
    }
  *ret_n = m->n;
  return v;
}

static pb_info *
info_to_pb (pb_arena *a, const struct meta_snapshot *s)
{
  pb_info *p = pb_new (a, &containerd__services__snapshots__v1__info__descriptor);
  p->name = pb_strdup (a, s->key);
  p->parent = pb_strdup (a, s->parent);
  p->kind = (Containerd__Services__Snapshots__V1__Kind) s->kind;
  p->created_at = pb_timestamp (a, s->created_at);
  p->updated_at = pb_timestamp (a, s->updated_at);
  p->labels = pb_map (a, &containerd__services__snapshots__v1__info__labels_entry__descriptor, &s->labels,
                      &p->n_labels);
  return p;
}

static void
sn_reply (grpc_call *call, void *data)
{
  struct sn_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  switch (j->op)
    {
    case SN_PREPARE:
    case SN_VIEW:
    case SN_MOUNTS:
      {
        /* The three responses share one layout: repeated Mount mounts = 1. */
        Containerd__Services__Snapshots__V1__PrepareSnapshotResponse resp
            = CONTAINERD__SERVICES__SNAPSHOTS__V1__PREPARE_SNAPSHOT_RESPONSE__INIT;
        if (j->op == SN_VIEW)
          resp.base.descriptor = &containerd__services__snapshots__v1__view_snapshot_response__descriptor;
        else if (j->op == SN_MOUNTS)
          resp.base.descriptor = &containerd__services__snapshots__v1__mounts_response__descriptor;
        resp.mounts = mounts_to_pb (a, &j->mounts, &resp.n_mounts);
        grpc_call_send (call, &resp.base);
        break;
      }
    case SN_STAT:
    case SN_UPDATE:
      {
        Containerd__Services__Snapshots__V1__StatSnapshotResponse resp
            = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_RESPONSE__INIT;
        if (j->op == SN_UPDATE)
          resp.base.descriptor = &containerd__services__snapshots__v1__update_snapshot_response__descriptor;
        resp.info = info_to_pb (a, &j->items[0]);
        grpc_call_send (call, &resp.base);
        break;
      }
    case SN_LIST:
      for (size_t i = 0; i < j->n; i += LIST_BATCH)
        {
          Containerd__Services__Snapshots__V1__ListSnapshotsResponse resp
              = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_RESPONSE__INIT;
          size_t k = j->n - i < LIST_BATCH ? j->n - i : LIST_BATCH;
          resp.info = pb_alloc (a, (k + 1) * sizeof *resp.info);
          for (size_t x = 0; x < k; x++)
            resp.info[x] = info_to_pb (a, &j->items[i + x]);
          resp.n_info = k;
          grpc_call_send (call, &resp.base);
        }
      break;
    case SN_USAGE:
      {
        Containerd__Services__Snapshots__V1__UsageResponse resp
            = CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_RESPONSE__INIT;
        resp.size = j->usage.bytes;
        resp.inodes = j->usage.inodes;
        grpc_call_send (call, &resp.base);
        break;
      }
    case SN_COMMIT:
    case SN_REMOVE:
    case SN_CLEANUP:
      {
        Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
        grpc_call_send (call, &empty.base);
        break;
      }
    }
  grpc_call_finish (call, 0, NULL);
}

static const ProtobufCMessageDescriptor *const request_desc[] = {
  [SN_PREPARE] = &containerd__services__snapshots__v1__prepare_snapshot_request__descriptor,
  [SN_VIEW] = &containerd__services__snapshots__v1__view_snapshot_request__descriptor,
  [SN_MOUNTS] = &containerd__services__snapshots__v1__mounts_request__descriptor,
  [SN_COMMIT] = &containerd__services__snapshots__v1__commit_snapshot_request__descriptor,
  [SN_REMOVE] = &containerd__services__snapshots__v1__remove_snapshot_request__descriptor,
  [SN_STAT] = &containerd__services__snapshots__v1__stat_snapshot_request__descriptor,
  [SN_UPDATE] = &containerd__services__snapshots__v1__update_snapshot_request__descriptor,
  [SN_LIST] = &containerd__services__snapshots__v1__list_snapshots_request__descriptor,
  [SN_USAGE] = &containerd__services__snapshots__v1__usage_request__descriptor,
  [SN_CLEANUP] = &containerd__services__snapshots__v1__cleanup_request__descriptor,
};

struct sn_method
{
  struct daemon *d;
  enum sn_op op;
};

static void
sn_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const struct sn_method *sm = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  ProtobufCMessage *req = svc_unpack (call, request_desc[sm->op], msg, len);
  if (req == NULL)
    return;
  const char *lease = grpc_call_lease (call);
  struct sn_job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->ns = strdup (ns)) == NULL || (lease && *lease && (j->lease = strdup (lease)) == NULL))
    {
      if (j)
        free (j->ns);
      free (j);
      protobuf_c_message_free_unpacked (req, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = sm->d;
  j->op = sm->op;
  j->req = req;
  svc_defer (sm->d, call, sn_work, sn_reply, sn_job_free, j);
}

int
service_snapshots_register (struct daemon *d, berth_error **err)
{
  static const char *const names[] = {
    [SN_PREPARE] = "Prepare", [SN_VIEW] = "View",     [SN_MOUNTS] = "Mounts", [SN_COMMIT] = "Commit",
    [SN_REMOVE] = "Remove",   [SN_STAT] = "Stat",     [SN_UPDATE] = "Update", [SN_LIST] = "List",
    [SN_USAGE] = "Usage",     [SN_CLEANUP] = "Cleanup",
  };
  static struct sn_method methods[ARRAY_SIZE (names)];
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      methods[i] = (struct sn_method){ .d = d, .op = (enum sn_op) i };
      char path[96];
      snprintf (path, sizeof path, "/containerd.services.snapshots.v1.Snapshots/%s", names[i]);
      struct grpc_method m = {
        .path = path,
        .kind = i == SN_LIST ? GRPC_SERVER_STREAM : GRPC_UNARY,
        .on_message = sn_handle,
        .on_cancel = svc_on_cancel,
        .data = &methods[i],
      };
      int r = grpc_server_register (d->server, &m);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", path);
    }
  return 0;
}
