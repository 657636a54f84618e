/* berth.services.v1.System: Fsck and DiskUsage, on the worker pool (both
 * walk the store and may hash every blob). */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "api/service-util.h"
#include "berth/services/v1/system.pb-c.h"
#include "cleanup.h"
#include "fsck.h"

struct system_job
{
  struct daemon *d;
  bool df;
  bool verbose;
  struct fsck_opts opts;
  struct fsck_report report;
  struct df_report usage;
  int r;
  berth_error *err;
};

static void
system_job_free (void *data)
{
  struct system_job *j = data;
  fsck_report_clear (&j->report);
  df_report_clear (&j->usage);
  berth_error_free (j->err);
  free (j);
}

static void
system_work (void *data)
{
  struct system_job *j = data;
  if (j->df)
    {
      j->r = fsck_df (j->d, j->verbose, &j->usage, &j->err);
      return;
    }
  j->r = fsck_files (j->d->cfg->root, j->d->cfg->state, &j->opts, &j->report, &j->err);
  if (j->r == 0)
    j->r = fsck_store (j->d, &j->opts, &j->report, &j->err);
}

static char *
str_or_empty (char *s)
{
  return s ? s : (char *) "";
}

static void
fsck_reply (grpc_call *call, struct system_job *j)
{
  size_t n = j->report.n;
  _cleanup_free_ Berth__Services__V1__FsckItem *items = calloc (n + 1, sizeof *items);
  _cleanup_free_ Berth__Services__V1__FsckItem **ptrs = calloc (n + 1, sizeof *ptrs);
  if (items == NULL || ptrs == NULL)
    {
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  for (size_t i = 0; i < n; i++)
    {
      const struct fsck_item *it = &j->report.items[i];
      Berth__Services__V1__FsckItem init = BERTH__SERVICES__V1__FSCK_ITEM__INIT;
      items[i] = init;
      items[i].kind = str_or_empty (it->kind);
      items[i].namespace_ = str_or_empty (it->ns);
      items[i].id = str_or_empty (it->id);
      items[i].problem = str_or_empty (it->problem);
      items[i].action = str_or_empty (it->action);
      items[i].path = str_or_empty (it->path);
      items[i].size = it->size;
      ptrs[i] = &items[i];
    }
  Berth__Services__V1__FsckResponse resp = BERTH__SERVICES__V1__FSCK_RESPONSE__INIT;
  resp.items = ptrs;
  resp.n_items = n;
  resp.repair = j->report.repair;
  resp.blobs_checked = j->report.blobs;
  resp.records_checked = j->report.records;
  resp.snapshots_checked = j->report.snapshots;
  resp.files_checked = j->report.files;
  resp.quarantine = str_or_empty (j->report.quarantine);
  grpc_call_send (call, &resp.base);
  grpc_call_finish (call, 0, NULL);
}

static void
df_reply (grpc_call *call, struct system_job *j)
{
  const struct df_report *u = &j->usage;
  _cleanup_free_ Berth__Services__V1__DiskUsageRow *rows = calloc (u->n_rows + 1, sizeof *rows);
  _cleanup_free_ Berth__Services__V1__DiskUsageRow **rptrs = calloc (u->n_rows + 1, sizeof *rptrs);
  _cleanup_free_ Berth__Services__V1__DiskUsageItem *items = calloc (u->n_items + 1, sizeof *items);
  _cleanup_free_ Berth__Services__V1__DiskUsageItem **iptrs = calloc (u->n_items + 1, sizeof *iptrs);
  if (rows == NULL || rptrs == NULL || items == NULL || iptrs == NULL)
    {
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  for (size_t i = 0; i < u->n_rows; i++)
    {
      Berth__Services__V1__DiskUsageRow init = BERTH__SERVICES__V1__DISK_USAGE_ROW__INIT;
      rows[i] = init;
      rows[i].type = str_or_empty (u->rows[i].type);
      rows[i].name = str_or_empty (u->rows[i].name);
      rows[i].count = u->rows[i].count;
      rows[i].active = u->rows[i].active;
      rows[i].size = u->rows[i].size;
      rows[i].reclaimable = u->rows[i].reclaimable;
      rptrs[i] = &rows[i];
    }
  for (size_t i = 0; i < u->n_items; i++)
    {
      Berth__Services__V1__DiskUsageItem init = BERTH__SERVICES__V1__DISK_USAGE_ITEM__INIT;
      items[i] = init;
      items[i].type = str_or_empty (u->items[i].type);
      items[i].namespace_ = str_or_empty (u->items[i].ns);
      items[i].name = str_or_empty (u->items[i].name);
      items[i].size = u->items[i].size;
      items[i].detail = str_or_empty (u->items[i].detail);
      iptrs[i] = &items[i];
    }
  Berth__Services__V1__DiskUsageResponse resp = BERTH__SERVICES__V1__DISK_USAGE_RESPONSE__INIT;
  resp.rows = rptrs;
  resp.n_rows = u->n_rows;
  resp.items = iptrs;
  resp.n_items = u->n_items;
  grpc_call_send (call, &resp.base);
  grpc_call_finish (call, 0, NULL);
}

static void
system_reply (grpc_call *call, void *data)
{
  struct system_job *j = data;
  if (j->r < 0)
    svc_fail (call, j->err);
  else if (j->df)
    df_reply (call, j);
  else
    fsck_reply (call, j);
}

static void
system_fsck_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  Berth__Services__V1__FsckRequest *req = svc_unpack (call, &berth__services__v1__fsck_request__descriptor, msg, len);
  if (req == NULL)
    return;
  struct system_job *j = calloc (1, sizeof *j);
  if (j == NULL)
    {
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = data;
  /* The daemon is serving: meta.db and task state stay where they are. */
  j->opts = (struct fsck_opts){ .repair = req->repair, .verify_digests = !req->no_digests, .live = true,
                                .drop_records = true };
  protobuf_c_message_free_unpacked (&req->base, NULL);
  svc_defer (j->d, call, system_work, system_reply, system_job_free, j);
}

static void
system_df_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  Berth__Services__V1__DiskUsageRequest *req
      = svc_unpack (call, &berth__services__v1__disk_usage_request__descriptor, msg, len);
  if (req == NULL)
    return;
  struct system_job *j = calloc (1, sizeof *j);
  if (j == NULL)
    {
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = data;
  j->df = true;
  j->verbose = req->verbose;
  protobuf_c_message_free_unpacked (&req->base, NULL);
  svc_defer (j->d, call, system_work, system_reply, system_job_free, j);
}

int
service_system_register (struct daemon *d, berth_error **err)
{
  const struct grpc_method methods[] = {
    { .path = "/berth.services.v1.System/Fsck", .kind = GRPC_UNARY, .on_message = system_fsck_handle,
      .on_cancel = svc_on_cancel, .data = d },
    { .path = "/berth.services.v1.System/DiskUsage", .kind = GRPC_UNARY, .on_message = system_df_handle,
      .on_cancel = svc_on_cancel, .data = d },
  };
  for (size_t i = 0; i < ARRAY_SIZE (methods); i++)
    {
      int r = grpc_server_register (d->server, &methods[i]);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", methods[i].path);
    }
  return 0;
}
