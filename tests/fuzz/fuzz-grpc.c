/* libFuzzer target over the gRPC server's input path: the bytes after the
 * HTTP/2 client preface go to a real connection of core/api/grpc-server.c
 * (nghttp2 framing, header checks, the length-prefix deframer, the buffer
 * caps) whose methods are every request of the containerd and berth
 * services, each unpacked with protobuf-c as the services do.  An input whose
 * first byte is 0xff skips HTTP/2: byte 1 picks a method and the rest is its
 * request message.
 *
 * Checked: no crash, no leak (ASan), the server closes the connection after
 * the client's EOF (a connection that outlives its client aborts), and a
 * request that unpacks packs again to the same size or less.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "api/grpc-server.h"
#include "util/loop.h"
#include "berth/services/v1/gc.pb-c.h"
#include "berth/services/v1/pull.pb-c.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.pb-c.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.pb-c.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.pb-c.h"
#include "github.com/containerd/containerd/api/services/events/v1/events.pb-c.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.pb-c.h"
#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.pb-c.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.pb-c.h"
#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.pb-c.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb-c.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.pb-c.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.pb-c.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const ProtobufCServiceDescriptor *const services[] = {
  &containerd__services__containers__v1__containers__descriptor,
  &containerd__services__content__v1__content__descriptor,
  &containerd__services__diff__v1__diff__descriptor,
  &containerd__services__events__v1__events__descriptor,
  &containerd__services__images__v1__images__descriptor,
  &containerd__services__introspection__v1__introspection__descriptor,
  &containerd__services__leases__v1__leases__descriptor,
  &containerd__services__namespaces__v1__namespaces__descriptor,
  &containerd__services__snapshots__v1__snapshots__descriptor,
  &containerd__services__tasks__v1__tasks__descriptor,
  &containerd__services__version__v1__version__descriptor,
  &berth__services__v1__gc__descriptor,
  &berth__services__v1__pull__descriptor,
};

/* Streaming methods, as the daemon registers them; the rest are unary. */
static const struct
{
  const char *path;
  enum grpc_method_kind kind;
} streaming[] = {
  { "/containerd.services.content.v1.Content/Write", GRPC_BIDI },
  { "/containerd.services.content.v1.Content/Read", GRPC_SERVER_STREAM },
  { "/containerd.services.content.v1.Content/List", GRPC_SERVER_STREAM },
  { "/containerd.services.content.v1.Content/ListStatuses", GRPC_UNARY },
  { "/containerd.services.containers.v1.Containers/ListStream", GRPC_SERVER_STREAM },
  { "/containerd.services.events.v1.Events/Subscribe", GRPC_SERVER_STREAM },
  { "/containerd.services.snapshots.v1.Snapshots/List", GRPC_SERVER_STREAM },
  { "/berth.services.v1.Pull/Pull", GRPC_SERVER_STREAM },
};

static loop *L;
static grpc_server *S;
static const ProtobufCMessageDescriptor **inputs;
static size_t n_inputs;
static bool client_eof;

/* Unpack as a service would; a message that decodes packs back. */
static bool
unpack_check (const ProtobufCMessageDescriptor *d, const uint8_t *msg, size_t len)
{
  ProtobufCMessage *m = protobuf_c_message_unpack (d, NULL, len, msg);
  if (m == NULL)
    return false;
  size_t n = protobuf_c_message_get_packed_size (m);
  uint8_t *buf = malloc (n ? n : 1);
  if (buf == NULL || protobuf_c_message_pack (m, buf) != n)
    abort ();
  free (buf);
  protobuf_c_message_free_unpacked (m, NULL);
  return true;
}

static void
on_message (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const ProtobufCMessageDescriptor *d = data;
  if (!unpack_check (d, msg, len))
    {
      grpc_call_finish (call, BERTH_E_INVALID, "malformed request: cannot decode protobuf message");
      return;
    }
  /* Unary and server-streaming: answer with the request (some bytes out). */
  if (grpc_call_get_data (call) == NULL)
    {
      grpc_call_send_raw (call, msg, len < 64 ? len : 64);
      grpc_call_finish (call, 0, NULL);
    }
}

static void
on_stream_message (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  grpc_call_set_data (call, call); /* mark: streaming, finish at half-close */
  on_message (call, msg, len, data);
}

static void
on_half_close (grpc_call *call, void *data)
{
  grpc_call_finish (call, 0, NULL);
}

static void
init (void)
{
  L = loop_new ();
  S = L ? grpc_server_new (L) : NULL;
  if (S == NULL)
    abort ();
  struct grpc_limits lim;
  grpc_limits_default (&lim);
  lim.max_conn_buffer = 256u << 10; /* reachable from a 64 KiB input */
  if (grpc_server_set_limits (S, &lim) < 0 || grpc_server_set_max_recv (S, 64u << 10) < 0)
    abort ();
  for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
    for (unsigned k = 0; k < services[i]->n_methods; k++)
      {
        const ProtobufCMethodDescriptor *md = &services[i]->methods[k];
        char path[256];
        snprintf (path, sizeof path, "/%s/%s", services[i]->name, md->name);
        enum grpc_method_kind kind = GRPC_UNARY;
        for (size_t j = 0; j < sizeof streaming / sizeof streaming[0]; j++)
          if (strcmp (streaming[j].path, path) == 0)
            kind = streaming[j].kind;
        struct grpc_method m = {
          .path = path,
          .kind = kind,
          .on_message = kind == GRPC_BIDI || kind == GRPC_CLIENT_STREAM ? on_stream_message : on_message,
          .on_half_close = on_half_close,
          .data = (void *) md->input,
        };
        if (grpc_server_register (S, &m) < 0)
          abort ();
        inputs = realloc (inputs, (n_inputs + 1) * sizeof *inputs);
        inputs[n_inputs++] = md->input;
      }
}

static void
client_io (loop *l, int fd, uint32_t revents, void *data)
{
  char buf[65536];
  for (;;)
    {
      ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
      client_eof = true; /* the server closed its end */
      loop_del_fd (l, fd);
      loop_quit (l);
      return;
    }
}

static void
watchdog (void *data)
{
  abort (); /* the server kept a connection whose client is gone */
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (L == NULL)
    init ();
  if (size >= 2 && data[0] == 0xff)
    {
      unpack_check (inputs[data[1] % n_inputs], data + 2, size - 2);
      return 0;
    }
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    abort ();
  int big = 1 << 20;
  setsockopt (sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (write (sv[1], preface, sizeof preface - 1) != (ssize_t) sizeof preface - 1)
    abort ();
  size_t off = 0;
  while (off < size)
    {
      ssize_t n = write (sv[1], data + off, size - off);
      if (n <= 0)
        abort (); /* max_len keeps inputs within the socket buffer */
      off += (size_t) n;
    }
  shutdown (sv[1], SHUT_WR);
  if (grpc_server_adopt_fd (S, sv[0]) < 0)
    abort ();
  client_eof = false;
  if (loop_add_fd (L, sv[1], EPOLLIN, client_io, NULL) < 0)
    abort ();
  int64_t t = loop_add_timer (L, 5000, watchdog, NULL);
  loop_run (L);
  loop_cancel_timer (L, t);
  if (!client_eof)
    abort ();
  close (sv[1]);
  return 0;
}
