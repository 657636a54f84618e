/* berth.services.v1.GC: Collect (a run or a dry run) and Explain, on the
 * worker pool (a collection walks the metadata and deletes blobs). */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "api/service-util.h"
#include "berth/services/v1/gc.pb-c.h"
#include "cleanup.h"
#include "gc.h"

struct gc_job
{
  struct daemon *d;
  bool explain;
  bool dry_run;
  char *ns;     /* Collect: the request's namespace (NULL: all); Explain: the call's */
  char *digest; /* Explain */
  struct gc_report report;
  char *text;
  int r;
  berth_error *err;
};

static void
gc_job_free (void *data)
{
  struct gc_job *j = data;
  free (j->ns);
  free (j->digest);
  gc_report_clear (&j->report);
  free (j->text);
  berth_error_free (j->err);
  free (j);
}

static void
gc_work (void *data)
{
  struct gc_job *j = data;
  if (j->explain)
    j->r = gc_explain (j->d, j->ns, j->digest, &j->text, &j->err);
  else
    j->r = gc_run (j->d, j->ns, j->dry_run, &j->report, &j->err);
}

static void
gc_reply (grpc_call *call, void *data)
{
  struct gc_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  if (j->explain)
    {
      Berth__Services__V1__ExplainResponse resp = BERTH__SERVICES__V1__EXPLAIN_RESPONSE__INIT;
      resp.text = j->text;
      /* One chain per line; "not referenced" lines carry no arrow. */
      _cleanup_free_ char *copy = strdup (j->text ? j->text : "");
      size_t n = 0;
      for (char *c = copy; c && *c; c++)
        n += *c == '\n';
      _cleanup_free_ char **chains = calloc (n + 2, sizeof (char *));
      if (copy == NULL || chains == NULL)
        {
          grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
          return;
        }
      char *save = NULL;
      for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
        if (strstr (line, " -> ") || strncmp (line, "image ", 6) == 0 || strncmp (line, "lease ", 6) == 0)
          chains[resp.n_chains++] = line;
      resp.chains = chains;
      resp.referenced = resp.n_chains > 0;
      grpc_call_send (call, &resp.base);
      grpc_call_finish (call, 0, NULL);
      return;
    }
  size_t n = j->report.n;
  _cleanup_free_ Berth__Services__V1__Removed *items = calloc (n + 1, sizeof *items);
  _cleanup_free_ Berth__Services__V1__Removed **ptrs = calloc (n + 1, sizeof *ptrs);
  if (items == NULL || ptrs == NULL)
    {
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  for (size_t i = 0; i < n; i++)
    {
      const struct gc_item *it = &j->report.items[i];
      Berth__Services__V1__Removed init = BERTH__SERVICES__V1__REMOVED__INIT;
      items[i] = init;
      items[i].type = (char *) gc_kind_name (it->kind);
      items[i].id = it->id;
      items[i].namespace_ = it->ns ? it->ns : (char *) "";
      items[i].reason = it->reason ? it->reason : (char *) "";
      items[i].size = it->size;
      ptrs[i] = &items[i];
    }
  Berth__Services__V1__CollectResponse resp = BERTH__SERVICES__V1__COLLECT_RESPONSE__INIT;
  resp.removed = ptrs;
  resp.n_removed = n;
  resp.dry_run = j->report.dry_run;
  grpc_call_send (call, &resp.base);
  grpc_call_finish (call, 0, NULL);
}

static void
gc_collect_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  Berth__Services__V1__CollectRequest *req = svc_unpack (call, &berth__services__v1__collect_request__descriptor, msg, len);
  if (req == NULL)
    return;
  struct gc_job *j = calloc (1, sizeof *j);
  if (j == NULL || (req->namespace_ && *req->namespace_ && (j->ns = strdup (req->namespace_)) == NULL))
    {
      free (j);
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = data;
  j->dry_run = req->dry_run;
  protobuf_c_message_free_unpacked (&req->base, NULL);
  svc_defer (j->d, call, gc_work, gc_reply, gc_job_free, j);
}

static void
gc_explain_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  Berth__Services__V1__ExplainRequest *req = svc_unpack (call, &berth__services__v1__explain_request__descriptor, msg, len);
  if (req == NULL)
    return;
  struct gc_job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->ns = strdup (ns)) == NULL || (j->digest = strdup (req->digest ? req->digest : "")) == NULL)
    {
      if (j)
        gc_job_free (j);
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  protobuf_c_message_free_unpacked (&req->base, NULL);
  j->d = data;
  j->explain = true;
  svc_defer (j->d, call, gc_work, gc_reply, gc_job_free, j);
}

int
service_gc_register (struct daemon *d, berth_error **err)
{
  const struct grpc_method methods[] = {
    { .path = "/berth.services.v1.GC/Collect", .kind = GRPC_UNARY, .on_message = gc_collect_handle,
      .on_cancel = svc_on_cancel, .data = d },
    { .path = "/berth.services.v1.GC/Explain", .kind = GRPC_UNARY, .on_message = gc_explain_handle,
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
