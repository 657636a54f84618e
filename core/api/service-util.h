/* Shared plumbing of the API handlers: request decoding, deferred calls on
 * the worker pool, and protobuf map helpers. */
#ifndef BERTH_CORE_SERVICE_UTIL_H
#define BERTH_CORE_SERVICE_UTIL_H

#include "daemon.h"

/* Unpack a request; on failure the call is finished with INVALID_ARGUMENT
 * and NULL is returned. */
void *svc_unpack (grpc_call *call, const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len);

/* Run work(job) on a worker, then reply(call, job) on the loop thread unless
 * the client went away meanwhile; free_job(job) runs in both cases.  The
 * method must use svc_on_cancel as its on_cancel. */
int svc_defer (struct daemon *d, grpc_call *call, void (*work) (void *job), void (*reply) (grpc_call *call, void *job),
               void (*free_job) (void *job), void *job);
void svc_on_cancel (grpc_call *call, void *data);

/* Finish with the code/message of err (INTERNAL when NULL). */
void svc_fail (grpc_call *call, const berth_error *err);

/* The namespace a call acts in: containerd-namespace, else BERTH_E_INVALID
 * with containerd's message. */
int svc_namespace (grpc_call *call, const char **ret, berth_error **err);

#endif
