/* A small blocking gRPC client: h2c (HTTP/2 without TLS) over a unix
 * socket, with nghttp2 and protobuf-c.
 *
 * Used by the berth CLI, by berthd's tests and (later) by clients of
 * berth-shim, so it knows nothing about any of them: no logging, no exit,
 * no printing.  Errors follow STYLE.md: functions return 0 (or a count) or a
 * negative BERTH_E_* and fill `berth_error **err`, the last parameter.
 *
 * Threads: a grpc_client and its calls belong to one thread at a time.
 * Ownership: free every call before the client it was opened on.
 * Several calls may be open at once on one client (they are multiplexed
 * over the connection); whichever call blocks drives the whole connection,
 * so messages for the other calls are queued meanwhile.
 *
 * Blocking: every function that talks to the server blocks in poll() until
 * it is done, the call's deadline passes (BERTH_E_DEADLINE; the stream is
 * cancelled with RST_STREAM) or the connection breaks (BERTH_E_UNAVAILABLE).
 *
 * Status mapping: a non-zero grpc-status becomes berth_errcode_from_grpc()
 * of it, with the percent-decoded grpc-message as the error message (the
 * status name when the server sent none).  A non-200 HTTP status without
 * grpc-status is mapped as the gRPC HTTP-to-status table says.
 *
 * Limits: messages larger than GRPC_CLIENT_MAX_MESSAGE (16 MiB) are refused
 * both ways (BERTH_E_INVALID to send, BERTH_E_EXHAUSTED to receive);
 * compressed messages are not supported (we never advertise an encoding).
 */
#ifndef BERTH_LIB_GRPC_CLIENT_H
#define BERTH_LIB_GRPC_CLIENT_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#include "error.h"

#define GRPC_CLIENT_MAX_MESSAGE (16u << 20)

typedef struct grpc_client grpc_client;
typedef struct grpc_client_call grpc_client_call;

/* One request metadata entry (an HTTP/2 header): key in lower case, e.g.
 * { "containerd-namespace", "default" }.  Arrays of them come with a count. */
struct grpc_client_md
{
  const char *key;
  const char *value;
};

/* Connect to the unix socket at path, waiting at most timeout_ms (<= 0: no
 * limit) for the connection.  No byte is exchanged until the first call.
 * Errors: BERTH_E_NOTFOUND (no such socket), BERTH_E_UNAVAILABLE (refused,
 * timed out), BERTH_E_PERMISSION, BERTH_E_INVALID (path too long); the
 * message reads "cannot connect to PATH: <strerror>" and err->errnum keeps
 * the errno so that a caller can add a hint ("is berthd running?").
 * BERTH_E_PERMISSION also when the socket file or its listening process
 * belongs to neither root nor the caller ("refusing to talk to PATH: ...");
 * BERTH_SOCKET_TRUST_UID=N in the environment accepts uid N as well. */
int grpc_client_connect (const char *path, int timeout_ms, grpc_client **ret, berth_error **err);
/* Close the connection; calls still open are cancelled.  Accepts NULL. */
void grpc_client_free (grpc_client *c);
static inline void
grpc_client_freep (grpc_client **c)
{
  grpc_client_free (*c);
  *c = NULL;
}
#define _cleanup_grpc_client_ __attribute__ ((cleanup (grpc_client_freep)))

/* Deadline of the calls opened from now on, in milliseconds from their
 * start; 0 (the default) means none.  Sent as grpc-timeout and enforced
 * locally too. */
void grpc_client_set_deadline (grpc_client *c, long deadline_ms);

/* User-Agent sent with every call ("berth-grpc-client" by default). */
int grpc_client_set_user_agent (grpc_client *c, const char *user_agent, berth_error **err);

/* Unary call.  method is the HTTP/2 path "/pkg.Service/Method".  On
 * success *ret_resp is a message of resp_desc, to be freed with
 * protobuf_c_message_free_unpacked (resp, NULL). */
int grpc_client_unary (grpc_client *c, const char *method, const struct grpc_client_md *md, size_t n_md,
                       const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                       ProtobufCMessage **ret_resp, berth_error **err);

/* Server streaming: on_message is called for every response message, which
 * is borrowed for the duration of the callback (the library frees it
 * afterwards).  A negative return from on_message cancels the call and is
 * returned (on_message fills err).  Returns 0 when the server ended the
 * stream with status OK. */
typedef int (*grpc_client_message_fn) (const ProtobufCMessage *msg, void *data, berth_error **err);
int grpc_client_server_stream (grpc_client *c, const char *method, const struct grpc_client_md *md,
                               size_t n_md, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc, grpc_client_message_fn on_message,
                               void *data, berth_error **err);

/* Client-streaming and bidirectional calls, step by step.
 *
 *   grpc_client_call_open     send the request headers (nothing else yet)
 *   grpc_client_call_send     queue one message; blocks until nghttp2 has
 *                             taken all of it (flow control), so memory stays
 *                             bounded by one message
 *   grpc_client_call_close_send  half-close (END_STREAM)
 *   grpc_client_call_recv     next response message: returns 1 and sets
 *                             *ret_msg, or 0 at the end of a stream that
 *                             finished with status OK, or the error status
 *   grpc_client_call_free     cancels the call (RST_STREAM) if still open
 *
 * The deadline (grpc_client_set_deadline) counts from open. */
int grpc_client_call_open (grpc_client *c, const char *method, const struct grpc_client_md *md, size_t n_md,
                           grpc_client_call **ret, berth_error **err);
int grpc_client_call_send (grpc_client_call *call, const ProtobufCMessage *msg, berth_error **err);
int grpc_client_call_send_raw (grpc_client_call *call, const void *buf, size_t len, berth_error **err);
int grpc_client_call_close_send (grpc_client_call *call, berth_error **err);
int grpc_client_call_recv (grpc_client_call *call, const ProtobufCMessageDescriptor *desc,
                           ProtobufCMessage **ret_msg, berth_error **err);
/* Wait for the end of the call, dropping any message not yet received;
 * returns 0 for status OK or the error status. */
int grpc_client_call_finish (grpc_client_call *call, berth_error **err);
void grpc_client_call_free (grpc_client_call *call);
static inline void
grpc_client_call_freep (grpc_client_call **call)
{
  grpc_client_call_free (*call);
  *call = NULL;
}
#define _cleanup_grpc_client_call_ __attribute__ ((cleanup (grpc_client_call_freep)))

/* Response metadata (headers or trailers) of a call, NULL if absent.  The
 * string lives as long as the call. */
const char *grpc_client_call_metadata (const grpc_client_call *call, const char *key);

/* Decode a grpc-message value (percent-encoding, RFC 3986 style as the gRPC
 * spec says); returns a malloc'ed string or NULL when out of memory. */
char *grpc_client_percent_decode (const char *s, size_t len);

#endif
