#include <config.h>

#include <stdlib.h>

#include "api/service-util.h"

void *
svc_unpack (grpc_call *call, const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len)
{
  ProtobufCMessage *m = protobuf_c_message_unpack (desc, NULL, len, msg);
  if (m == NULL)
    grpc_call_finish (call, BERTH_E_INVALID, "malformed request: cannot decode protobuf message");
  return m;
}

void
svc_fail (grpc_call *call, const berth_error *err)
{
  grpc_call_finish_error (call, err);
}

struct deferred
{
  grpc_call *call; /* NULL once the client went away */
  void *job;
  void (*work) (void *job);
  void (*reply) (grpc_call *call, void *job);
  void (*free_job) (void *job);
};

static void
deferred_work (void *data)
{
  struct deferred *d = data;
  d->work (d->job);
}

static void
deferred_done (void *data)
{
  struct deferred *d = data;
  if (d->call)
    {
      grpc_call_set_data (d->call, NULL);
      d->reply (d->call, d->job);
    }
  d->free_job (d->job);
  free (d);
}

void
svc_on_cancel (grpc_call *call, void *data)
{
  struct deferred *d = grpc_call_get_data (call);
  if (d)
    d->call = NULL;
}

int
svc_defer (struct daemon *dm, grpc_call *call, void (*work) (void *job), void (*reply) (grpc_call *call, void *job),
           void (*free_job) (void *job), void *job)
{
  struct deferred *d = calloc (1, sizeof *d);
  if (d == NULL)
    {
      free_job (job);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return BERTH_E_NOMEM;
    }
  *d = (struct deferred){ .call = call, .job = job, .work = work, .reply = reply, .free_job = free_job };
  grpc_call_set_data (call, d);
  int r = workers_submit (dm->workers, deferred_work, deferred_done, d);
  if (r < 0)
    {
      grpc_call_set_data (call, NULL);
      free_job (job);
      free (d);
      grpc_call_finish (call, BERTH_E_UNAVAILABLE, "cannot queue the request: worker pool unavailable");
    }
  return r;
}

int
svc_namespace (grpc_call *call, const char **ret, berth_error **err)
{
  const char *ns = grpc_call_namespace (call);
  if (ns == NULL || *ns == '\0')
    return berth_error_set (err, BERTH_E_INVALID, 0, "namespace is required: set the containerd-namespace header");
  int r = meta_validate_namespace (ns, err);
  if (r < 0)
    return r;
  *ret = ns;
  return 0;
}
