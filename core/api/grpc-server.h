/* gRPC over h2c (HTTP/2 without TLS) on unix sockets, with nghttp2.
 *
 * Contract: every function runs on the loop thread.  A handler may answer
 * at once or later (a deferred call: hand the work to the worker pool and
 * finish from its done() callback); until grpc_call_finish() or on_cancel the
 * call stays valid.  After on_cancel returns (client RST_STREAM, GOAWAY or
 * disconnect) the call must not be touched.
 *
 * Limits: messages over GRPC_MAX_MESSAGE (16 MiB) are refused with
 * RESOURCE_EXHAUSTED; flow-control windows hold 1 MiB chunks; unknown
 * methods answer UNIMPLEMENTED; errors use Trailers-Only responses.
 *
 * Hostile clients (struct grpc_limits): the bytes of unfinished requests
 * (header lists, partial messages, unary requests waiting for half-close)
 * are capped per connection and in total (4 × the per-connection cap); a
 * message that would pass the cap is refused with RESOURCE_EXHAUSTED.  A
 * connection holds at most max_streams open streams (SETTINGS, enforced by
 * nghttp2 with REFUSED_STREAM).  A frame, a header list or a request message
 * not received in full within request_timeout ends that call with
 * DEADLINE_EXCEEDED (a frame or header list: the connection); so does a
 * client that reads none of its queued responses for that long.  A
 * connection without streams for idle_timeout gets GOAWAY.  Past
 * max_connections the longest idle connection is closed to make room, and
 * when none is idle the new one is refused, with a log line.
 *
 * Cancellation without on_cancel: if a method has no on_cancel, a call whose
 * stream goes away while the handler still owns it stays allocated (detached
 * from its connection) until the handler calls grpc_call_finish(), which then
 * only frees it; grpc_call_send() answers BERTH_E_CANCELLED meanwhile and
 * grpc_call_cancelled() tells.  With on_cancel, the call is freed as soon as
 * on_cancel returns.  Either way grpc_server_free() frees every call.
 *
 * Send queue (back-pressure): grpc_call_send() never blocks; it queues the
 * framed message and nghttp2 pulls from the queue as the client's
 * flow-control window opens.  A producer of a large stream keeps
 * grpc_call_queued() under GRPC_SEND_QUEUE_SOFT by waiting for
 * grpc_call_on_writable(); a producer that ignores it is stopped by a hard
 * bound: grpc_call_send() fails with BERTH_E_EXHAUSTED once more than
 * GRPC_SEND_QUEUE_MAX bytes are queued (the call stays valid), so memory
 * per call never exceeds GRPC_SEND_QUEUE_MAX + one message.
 */
#ifndef BERTH_CORE_GRPC_SERVER_H
#define BERTH_CORE_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <protobuf-c/protobuf-c.h>

#include "error.h"
#include "util/loop.h"

#define GRPC_MAX_MESSAGE (16u << 20)
/* Send-queue marks, see above. */
#define GRPC_SEND_QUEUE_SOFT (1u << 20)
#define GRPC_SEND_QUEUE_MAX (64u << 20)

typedef struct grpc_server grpc_server;
typedef struct grpc_call grpc_call;

enum grpc_method_kind
{
  GRPC_UNARY,
  GRPC_SERVER_STREAM,
  GRPC_CLIENT_STREAM,
  GRPC_BIDI,
};

struct grpc_method
{
  const char *path; /* "/containerd.services.version.v1.Version/Version" */
  enum grpc_method_kind kind;
  /* Unary and server-streaming: called once with the request, after the
   * client half-closed.  Client-streaming and bidi: once per message.
   * msg is borrowed for the duration of the callback. */
  void (*on_message) (grpc_call *call, const uint8_t *msg, size_t len, void *data);
  /* Client-streaming and bidi: the client half-closed (may be NULL). */
  void (*on_half_close) (grpc_call *call, void *data);
  /* The call ended before grpc_call_finish() (may be NULL). */
  void (*on_cancel) (grpc_call *call, void *data);
  void *data;
};

grpc_server *grpc_server_new (loop *l);
void grpc_server_free (grpc_server *s);

int grpc_server_register (grpc_server *s, const struct grpc_method *m);

struct grpc_limits
{
  unsigned max_connections;  /* [grpc] max_connections: 1024 */
  unsigned max_streams;      /* [grpc] max_concurrent_streams per connection: 128 */
  size_t max_conn_buffer;    /* [grpc] max_connection_buffer, bytes: 32 MiB */
  unsigned request_timeout_ms; /* [grpc] request_timeout (s): 30 s */
  unsigned idle_timeout_ms;  /* [grpc] idle_timeout (s): 300 s; 0: never */
  /* Where the server's own log lines go (NULL: stderr). */
  void (*log) (const char *line);
};

/* Defaults in lim; grpc_server_set_limits checks ranges (BERTH_E_INVALID:
 * counts >= 1, max_conn_buffer >= 64 KiB, request_timeout >= 100 ms) and
 * applies to connections accepted later. */
void grpc_limits_default (struct grpc_limits *lim);
int grpc_server_set_limits (grpc_server *s, const struct grpc_limits *lim);

/* Largest request message accepted ([grpc] max_recv_message_size), between
 * 1 KiB and GRPC_MAX_MESSAGE; BERTH_E_INVALID otherwise. */
int grpc_server_set_max_recv (grpc_server *s, size_t bytes);

/* Create (mkdir -p the parent, 0711), bind, chmod mode, chown to gid, listen.
 * Refuses when another process is already serving on path, and
 * (BERTH_E_PERMISSION) when the socket's directory or one above it is not
 * owned by root or us, or is group/world-writable without the sticky bit. */
int grpc_server_listen_unix (grpc_server *s, const char *path, mode_t mode, gid_t gid, berth_error **err);
/* Serve an already listening socket (systemd socket activation). */
int grpc_server_listen_fd (grpc_server *s, int fd, berth_error **err);
/* Serve one connected stream socket as if accepted (tests, fuzzing); the
 * server owns fd on success. */
int grpc_server_adopt_fd (grpc_server *s, int fd);
/* Stop accepting, send GOAWAY to every client, close. */
void grpc_server_shutdown (grpc_server *s);

/* Request metadata (lower-case header name), NULL if absent. */
const char *grpc_call_metadata (const grpc_call *c, const char *key);
const char *grpc_call_path (const grpc_call *c);
/* Shortcuts for containerd-namespace / containerd-lease. */
const char *grpc_call_namespace (const grpc_call *c);
const char *grpc_call_lease (const grpc_call *c);

/* Send one response message (unary: exactly one before finish). */
int grpc_call_send (grpc_call *c, const ProtobufCMessage *msg);
int grpc_call_send_raw (grpc_call *c, const uint8_t *buf, size_t len);
/* End the call: code 0 sends grpc-status 0, a BERTH_E_* code its gRPC status
 * with message as grpc-message.  The call is freed by the server afterwards. */
void grpc_call_finish (grpc_call *c, int code, const char *message);
/* Finish with err's code and message (err may be NULL → INTERNAL). */
void grpc_call_finish_error (grpc_call *c, const berth_error *err);

void grpc_call_set_data (grpc_call *c, void *data);
void *grpc_call_get_data (const grpc_call *c);

/* Remaining time of the client's grpc-timeout in ms (0 once passed), or -1
 * when the client set none.  The server does not enforce it: the client
 * cancels (RST_STREAM → on_cancel) at its deadline. */
int64_t grpc_call_deadline_ms (const grpc_call *c);
/* Bytes queued by grpc_call_send() and not yet handed to HTTP/2. */
size_t grpc_call_queued (const grpc_call *c);
/* One-shot: run fn on the loop thread once grpc_call_queued() drops below
 * GRPC_SEND_QUEUE_SOFT.  Returns 0 when armed, 1 when the queue is already
 * below the mark (fn is not kept: just send), BERTH_E_CANCELLED when the
 * call is gone.  Never runs after the call ended (on_cancel runs instead). */
int grpc_call_on_writable (grpc_call *c, void (*fn) (grpc_call *c, void *data), void *data);
/* True when the stream is gone and the call waits only for grpc_call_finish(). */
int grpc_call_cancelled (const grpc_call *c);

#endif
