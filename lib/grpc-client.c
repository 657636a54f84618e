/* Blocking gRPC client over h2c on a unix socket (see grpc-client.h).
 *
 * Design: the socket is non-blocking; nghttp2 produces bytes with
 * nghttp2_session_mem_send and eats them with nghttp2_session_mem_recv, and
 * client_pump() moves bytes both ways in one poll() loop until the caller's
 * condition holds, so a large upload never deadlocks against a server that
 * is itself waiting for us to read.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "cleanup.h"
#include "grpc-client.h"

#define GRPC_FRAME_HEADER 5
#define READ_CHUNK (64u << 10)
/* Windows large enough that 1 MiB chunks (Content.Read) flow without a
 * round trip per 64 KiB. */
#define STREAM_WINDOW (4u << 20)
#define CONNECTION_WINDOW (16u << 20)

struct buf
{
  uint8_t *data;
  size_t len;
  size_t off; /* consumed prefix */
  size_t cap;
};

struct message
{
  struct message *next;
  size_t len;
  uint8_t data[];
};

struct header
{
  struct header *next;
  char *key;
  char *value;
};

struct grpc_client_call
{
  grpc_client *client;
  int32_t stream_id;
  long long deadline; /* CLOCK_MONOTONIC ms, 0 = none */

  /* Send side: framed messages waiting for nghttp2's read callback. */
  struct buf out;
  bool out_eof;      /* half-close requested */
  bool out_deferred; /* the data provider answered DEFERRED */

  /* Receive side. */
  struct buf in;
  struct message *queue_head, *queue_tail;
  struct header *headers;
  int http_status;
  bool have_grpc_status;
  int grpc_status;
  char *grpc_message;

  /* End. */
  bool closed;
  uint32_t rst_code;
  int local_code; /* a BERTH_E_* decided here (oversized message, ...) */
  char *local_message;
};

struct grpc_client
{
  int fd;
  nghttp2_session *session;
  long deadline_ms;
  char *user_agent;
  bool broken; /* the connection is gone: every call fails */
  int broken_code;
  char *broken_message;
  /* Bytes from nghttp2_session_mem_send not yet written; they point into
   * nghttp2's buffer, valid until the next mem_send. */
  const uint8_t *pending;
  size_t pending_len;
};

static long long
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- small buffers ---- */

static int
buf_append (struct buf *b, const void *data, size_t len)
{
  if (b->off > 0 && (b->off == b->len || b->off > b->cap / 2))
    {
      memmove (b->data, b->data + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
  if (b->len + len > b->cap)
    {
      size_t cap = b->cap ? b->cap : 4096;
      while (cap < b->len + len)
        cap *= 2;
      uint8_t *n = realloc (b->data, cap);
      if (n == NULL)
        return BERTH_E_NOMEM;
      b->data = n;
      b->cap = cap;
    }
  if (data)
    memcpy (b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static size_t
buf_size (const struct buf *b)
{
  return b->len - b->off;
}

static void
buf_free (struct buf *b)
{
  free (b->data);
  memset (b, 0, sizeof *b);
}

char *
grpc_client_percent_decode (const char *s, size_t len)
{
  char *out = malloc (len + 1);
  if (out == NULL)
    return NULL;
  size_t j = 0;
  for (size_t i = 0; i < len; i++)
    {
      if (s[i] == '%' && i + 2 < len && isxdigit ((unsigned char) s[i + 1]) && isxdigit ((unsigned char) s[i + 2]))
        {
          char hex[3] = { s[i + 1], s[i + 2], 0 };
          out[j++] = (char) strtol (hex, NULL, 16);
          i += 2;
          continue;
        }
      out[j++] = s[i];
    }
  out[j] = 0;
  return out;
}

/* ---- calls ---- */

static void
call_set_local_error (grpc_client_call *call, int code, const char *fmt, ...) BERTH_PRINTF (3, 4);

static void
call_set_local_error (grpc_client_call *call, int code, const char *fmt, ...)
{
  if (call->local_code < 0)
    return;
  va_list ap;
  va_start (ap, fmt);
  char *msg = NULL;
  if (vasprintf (&msg, fmt, ap) < 0)
    msg = NULL;
  va_end (ap);
  call->local_code = code;
  free (call->local_message);
  call->local_message = msg;
}

/* Split complete gRPC frames off call->in into the message queue. */
static int
call_parse_frames (grpc_client_call *call)
{
  for (;;)
    {
      size_t avail = buf_size (&call->in);
      if (avail < GRPC_FRAME_HEADER)
        return 0;
      const uint8_t *p = call->in.data + call->in.off;
      uint32_t len = (uint32_t) p[1] << 24 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 8 | p[4];
      if (p[0] != 0)
        {
          call_set_local_error (call, BERTH_E_INTERNAL, "server sent a compressed message, which was not asked for");
          return -1;
        }
      if (len > GRPC_CLIENT_MAX_MESSAGE)
        {
          call_set_local_error (call, BERTH_E_EXHAUSTED,
                                "response message of %" PRIu32 " bytes exceeds the limit of %u", len,
                                GRPC_CLIENT_MAX_MESSAGE);
          return -1;
        }
      if (avail < GRPC_FRAME_HEADER + (size_t) len)
        return 0;
      struct message *m = malloc (sizeof *m + len);
      if (m == NULL)
        {
          call_set_local_error (call, BERTH_E_NOMEM, "out of memory");
          return -1;
        }
      m->next = NULL;
      m->len = len;
      memcpy (m->data, p + GRPC_FRAME_HEADER, len);
      call->in.off += GRPC_FRAME_HEADER + len;
      if (call->queue_tail)
        call->queue_tail->next = m;
      else
        call->queue_head = m;
      call->queue_tail = m;
    }
}

static struct message *
call_pop (grpc_client_call *call)
{
  struct message *m = call->queue_head;
  if (m)
    {
      call->queue_head = m->next;
      if (call->queue_head == NULL)
        call->queue_tail = NULL;
    }
  return m;
}

/* The status the call ended with: 0 or a negative code with err filled. */
static int
call_status (grpc_client_call *call, berth_error **err)
{
  if (call->local_code < 0)
    return berth_error_set (err, call->local_code, 0, "%s",
                            call->local_message ? call->local_message : berth_errcode_name (call->local_code));
  if (call->have_grpc_status)
    {
      if (call->grpc_status == 0)
        return 0;
      int code = berth_errcode_from_grpc (call->grpc_status);
      if (call->grpc_message && *call->grpc_message)
        return berth_error_set (err, code, 0, "%s", call->grpc_message);
      return berth_error_set (err, code, 0, "%s (grpc-status %d)", berth_errcode_name (code), call->grpc_status);
    }
  if (call->http_status != 0 && call->http_status != 200)
    {
      /* gRPC's HTTP to gRPC status code mapping. */
      int g;
      switch (call->http_status)
        {
        case 400: g = 13; break;
        case 401: g = 16; break;
        case 403: g = 7; break;
        case 404: g = 12; break;
        case 429:
        case 502:
        case 503:
        case 504: g = 14; break;
        default: g = 2; break;
        }
      return berth_error_set (err, berth_errcode_from_grpc (g), 0, "server answered HTTP status %d", call->http_status);
    }
  if (call->client->broken)
    return berth_error_set (err, call->client->broken_code, 0, "%s", call->client->broken_message);
  if (call->rst_code == NGHTTP2_REFUSED_STREAM)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "server refused the stream");
  if (call->rst_code == NGHTTP2_CANCEL)
    return berth_error_set (err, BERTH_E_CANCELLED, 0, "call cancelled by the server");
  if (call->rst_code != 0)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "server reset the stream: %s",
                            nghttp2_http2_strerror (call->rst_code));
  return berth_error_set (err, BERTH_E_INTERNAL, 0, "server ended the call without a grpc-status");
}

static void
call_fail_all (grpc_client *c, int code, const char *fmt, ...) BERTH_PRINTF (3, 4);

/* The connection is gone: remember why; every open call reads it through
 * call_status().  nghttp2 is not told (it has no socket to talk to). */
static void
call_fail_all (grpc_client *c, int code, const char *fmt, ...)
{
  if (c->broken)
    return;
  va_list ap;
  va_start (ap, fmt);
  if (vasprintf (&c->broken_message, fmt, ap) < 0)
    c->broken_message = NULL;
  va_end (ap);
  c->broken = true;
  c->broken_code = code;
}

static bool
call_done (const grpc_client_call *call)
{
  return call->closed || call->local_code < 0 || call->client->broken;
}

/* ---- nghttp2 callbacks ---- */

static grpc_client_call *
stream_call (nghttp2_session *session, int32_t stream_id)
{
  return nghttp2_session_get_stream_user_data (session, stream_id);
}

static int
on_header (nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
           const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  grpc_client_call *call = stream_call (session, frame->hd.stream_id);
  if (call == NULL)
    return 0;
  if (namelen == 7 && memcmp (name, ":status", 7) == 0)
    {
      call->http_status = atoi ((const char *) value);
      return 0;
    }
  if (namelen == 11 && memcmp (name, "grpc-status", 11) == 0)
    {
      call->have_grpc_status = true;
      call->grpc_status = atoi ((const char *) value);
      return 0;
    }
  if (namelen == 12 && memcmp (name, "grpc-message", 12) == 0)
    {
      free (call->grpc_message);
      call->grpc_message = grpc_client_percent_decode ((const char *) value, valuelen);
      return 0;
    }
  struct header *h = calloc (1, sizeof *h);
  if (h == NULL)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  h->key = strndup ((const char *) name, namelen);
  h->value = strndup ((const char *) value, valuelen);
  h->next = call->headers;
  call->headers = h;
  if (h->key == NULL || h->value == NULL)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return 0;
}

static int
on_data_chunk (nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
               void *user_data)
{
  grpc_client_call *call = stream_call (session, stream_id);
  if (call == NULL || call->local_code < 0)
    return 0;
  if (buf_append (&call->in, data, len) < 0)
    call_set_local_error (call, BERTH_E_NOMEM, "out of memory");
  else if (call_parse_frames (call) == 0)
    return 0;
  nghttp2_submit_rst_stream (session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
  return 0;
}

static int
on_stream_close (nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
  grpc_client_call *call = stream_call (session, stream_id);
  if (call == NULL)
    return 0;
  call->closed = true;
  call->rst_code = error_code;
  if (call->local_code == 0 && buf_size (&call->in) != 0 && error_code == 0)
    call_set_local_error (call, BERTH_E_INTERNAL, "server ended the stream inside a message");
  nghttp2_session_set_stream_user_data (session, stream_id, NULL);
  return 0;
}

static ssize_t
read_request_data (nghttp2_session *session, int32_t stream_id, uint8_t *out, size_t length, uint32_t *data_flags,
                   nghttp2_data_source *source, void *user_data)
{
  /* Look the call up rather than trusting source->ptr: a call freed while
   * its stream was still open has cleared the stream's user data. */
  grpc_client_call *call = stream_call (session, stream_id);
  if (call == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  size_t avail = buf_size (&call->out);
  if (avail == 0)
    {
      if (call->out_eof)
        {
          *data_flags |= NGHTTP2_DATA_FLAG_EOF;
          return 0;
        }
      call->out_deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  size_t n = avail < length ? avail : length;
  memcpy (out, call->out.data + call->out.off, n);
  call->out.off += n;
  if (buf_size (&call->out) == 0 && call->out_eof)
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t) n;
}

/* ---- the connection ---- */

static int
sockaddr_for (const char *path, struct sockaddr_un *sa, berth_error **err)
{
  memset (sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (path == NULL || *path == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "empty socket address");
  if (strlen (path) >= sizeof sa->sun_path)
    return berth_error_set (err, BERTH_E_INVALID, 0, "cannot connect to %s: socket path longer than %zu bytes", path,
                            sizeof sa->sun_path - 1);
  strcpy (sa->sun_path, path);
  return 0;
}

static int
connect_error (const char *path, int errnum, berth_error **err)
{
  int code;
  switch (errnum)
    {
    case ENOENT:
    case ENOTDIR: code = BERTH_E_NOTFOUND; break;
    case EACCES:
    case EPERM: code = BERTH_E_PERMISSION; break;
    default: code = BERTH_E_UNAVAILABLE; break;
    }
  return berth_error_set (err, code, errnum, "cannot connect to %s", path);
}

/* BERTH_SOCKET_TRUST_UID=N: also talk to a server running as uid N.  The
 * escape hatch for the two honest cases the owner check below refuses: a
 * root daemon's socket bind-mounted into a user namespace (its owner reads
 * as the overflow uid, 65534) and a rootless daemon of another account.
 * It names one uid rather than switching the check off. */
static int
trusted_extra_uid (uid_t *ret, berth_error **err)
{
  *ret = (uid_t) -1;
  const char *s = getenv ("BERTH_SOCKET_TRUST_UID");
  if (s == NULL || *s == '\0')
    return 0;
  char *end;
  errno = 0;
  unsigned long v = strtoul (s, &end, 10);
  if (errno != 0 || *end != '\0' || !isdigit ((unsigned char) *s) || v >= (unsigned long) (uid_t) -1)
    return berth_error_set (err, BERTH_E_INVALID, 0, "BERTH_SOCKET_TRUST_UID=`%s' is not a uid", s);
  *ret = (uid_t) v;
  return 0;
}

/* Talk only to a server that root or we run: the socket file must be owned
 * by root or our euid, and so must the process listening on it
 * (SO_PEERCRED; the file check alone could race with a rename).  Someone
 * else's socket at our path would otherwise receive registry credentials
 * (pull --user) and answer with whatever it likes. */
static int
check_server_owner (int fd, const char *path, berth_error **err)
{
  uid_t extra;
  int r = trusted_extra_uid (&extra, err);
  if (r < 0)
    return r;
  uid_t me = geteuid ();
  struct stat st;
  if (stat (path, &st) < 0)
    return connect_error (path, errno, err);
  if (st.st_uid != 0 && st.st_uid != me && st.st_uid != extra)
    return berth_error_set (err, BERTH_E_PERMISSION, 0,
                            "refusing to talk to %s: the socket is owned by uid %u, not root or you (uid %u); "
                            "if that daemon is yours, set BERTH_SOCKET_TRUST_UID=%u",
                            path, (unsigned) st.st_uid, (unsigned) me, (unsigned) st.st_uid);
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "cannot read the credentials of %s", path);
  if (cred.uid != 0 && cred.uid != me && cred.uid != extra)
    return berth_error_set (err, BERTH_E_PERMISSION, 0,
                            "refusing to talk to %s: it is served by pid %d running as uid %u, not root or you "
                            "(uid %u); if that daemon is yours, set BERTH_SOCKET_TRUST_UID=%u",
                            path, (int) cred.pid, (unsigned) cred.uid, (unsigned) me, (unsigned) cred.uid);
  return 0;
}

int
grpc_client_connect (const char *path, int timeout_ms, grpc_client **ret, berth_error **err)
{
  struct sockaddr_un sa;
  int r = sockaddr_for (path, &sa, err);
  if (r < 0)
    return r;

  _cleanup_close_ int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "socket");
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    {
      /* A unix socket whose backlog is full answers EAGAIN when
       * non-blocking: wait for it to become writable. */
      if (errno != EAGAIN && errno != EINPROGRESS)
        return connect_error (path, errno, err);
      struct pollfd pfd = { .fd = fd, .events = POLLOUT };
      int n;
      do
        n = poll (&pfd, 1, timeout_ms > 0 ? timeout_ms : -1);
      while (n < 0 && errno == EINTR);
      if (n == 0)
        return connect_error (path, ETIMEDOUT, err);
      if (n < 0)
        return connect_error (path, errno, err);
      if (connect (fd, (struct sockaddr *) &sa, sizeof sa) < 0 && errno != EISCONN)
        return connect_error (path, errno, err);
    }
  r = check_server_owner (fd, path, err);
  if (r < 0)
    return r;

  _cleanup_(grpc_client_freep) grpc_client *c = calloc (1, sizeof *c);
  if (c == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "grpc client");
  c->fd = -1;

  nghttp2_session_callbacks *cbs;
  if (nghttp2_session_callbacks_new (&cbs) != 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "nghttp2 callbacks");
  nghttp2_session_callbacks_set_on_header_callback (cbs, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback (cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback (cbs, on_stream_close);
  r = nghttp2_session_client_new (&c->session, cbs, c);
  nghttp2_session_callbacks_del (cbs);
  if (r != 0)
    return berth_error_set (err, BERTH_E_NOMEM, 0, "nghttp2 session: %s", nghttp2_strerror (r));

  nghttp2_settings_entry settings[] = {
    { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
    { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
  };
  r = nghttp2_submit_settings (c->session, NGHTTP2_FLAG_NONE, settings, ARRAY_SIZE (settings));
  if (r == 0)
    r = nghttp2_session_set_local_window_size (c->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW);
  if (r != 0)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "nghttp2 settings: %s", nghttp2_strerror (r));

  c->fd = TAKE_FD (fd);
  *ret = TAKE_PTR (c);
  return 0;
}

void
grpc_client_free (grpc_client *c)
{
  if (c == NULL)
    return;
  if (c->session)
    nghttp2_session_del (c->session);
  if (c->fd >= 0)
    close (c->fd);
  free (c->user_agent);
  free (c->broken_message);
  free (c);
}

void
grpc_client_set_deadline (grpc_client *c, long deadline_ms)
{
  c->deadline_ms = deadline_ms > 0 ? deadline_ms : 0;
}

int
grpc_client_set_user_agent (grpc_client *c, const char *user_agent, berth_error **err)
{
  char *s = strdup (user_agent);
  if (s == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "user agent");
  free (c->user_agent);
  c->user_agent = s;
  return 0;
}

/* Write what nghttp2 has to send, as far as the socket takes it now. */
static int
client_flush (grpc_client *c)
{
  for (;;)
    {
      if (c->pending_len == 0)
        {
          const uint8_t *data;
          ssize_t n = nghttp2_session_mem_send (c->session, &data);
          if (n < 0)
            {
              call_fail_all (c, BERTH_E_INTERNAL, "HTTP/2 error: %s", nghttp2_strerror ((int) n));
              return -1;
            }
          if (n == 0)
            return 0;
          c->pending = data;
          c->pending_len = (size_t) n;
        }
      ssize_t w = send (c->fd, c->pending, c->pending_len, MSG_NOSIGNAL);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            return 0;
          if (errno == EPIPE || errno == ECONNRESET)
            call_fail_all (c, BERTH_E_UNAVAILABLE, "the server closed the connection");
          else
            call_fail_all (c, BERTH_E_UNAVAILABLE, "connection to the server lost: %s", strerror (errno));
          return -1;
        }
      c->pending += w;
      c->pending_len -= (size_t) w;
    }
}

static int
client_read (grpc_client *c)
{
  uint8_t buf[READ_CHUNK];
  for (int i = 0; i < 16; i++)
    {
      ssize_t n = recv (c->fd, buf, sizeof buf, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            return 0;
          if (errno == ECONNRESET)
            call_fail_all (c, BERTH_E_UNAVAILABLE, "the server closed the connection");
          else
            call_fail_all (c, BERTH_E_UNAVAILABLE, "connection to the server lost: %s", strerror (errno));
          return -1;
        }
      if (n == 0)
        {
          call_fail_all (c, BERTH_E_UNAVAILABLE, "the server closed the connection");
          return -1;
        }
      ssize_t r = nghttp2_session_mem_recv (c->session, buf, (size_t) n);
      if (r < 0)
        {
          call_fail_all (c, BERTH_E_INTERNAL, "HTTP/2 protocol error from the server: %s", nghttp2_strerror ((int) r));
          return -1;
        }
    }
  return 0;
}

/* Move bytes both ways until done(call) holds, the call's deadline passes
 * or the connection breaks.  Returns 0 when done (which includes "the call
 * or connection ended": the caller reads call_status()), BERTH_E_DEADLINE
 * after cancelling the stream. */
static int
client_pump (grpc_client_call *call, bool (*done) (const grpc_client_call *), berth_error **err)
{
  grpc_client *c = call->client;
  for (;;)
    {
      if (!c->broken)
        client_flush (c);
      if (done (call) || call_done (call))
        return 0;
      if (!nghttp2_session_want_read (c->session) && !nghttp2_session_want_write (c->session)
          && c->pending_len == 0)
        {
          call_fail_all (c, BERTH_E_UNAVAILABLE, "the HTTP/2 session with the server ended");
          return 0;
        }
      int timeout = -1;
      if (call->deadline)
        {
          long long left = call->deadline - now_ms ();
          if (left <= 0)
            {
              if (!call->closed && call->stream_id > 0)
                {
                  nghttp2_submit_rst_stream (c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
                  nghttp2_session_set_stream_user_data (c->session, call->stream_id, NULL);
                  call->closed = true;
                  client_flush (c);
                }
              call_set_local_error (call, BERTH_E_DEADLINE, "deadline exceeded");
              return berth_error_set (err, BERTH_E_DEADLINE, 0, "deadline exceeded");
            }
          timeout = left > 60000 ? 60000 : (int) left;
        }
      struct pollfd pfd = { .fd = c->fd, .events = POLLIN | (c->pending_len ? POLLOUT : 0) };
      int n = poll (&pfd, 1, timeout);
      if (n < 0 && errno != EINTR)
        {
          call_fail_all (c, BERTH_E_INTERNAL, "poll: %s", strerror (errno));
          return 0;
        }
      if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        client_read (c);
    }
}

static void
call_free_queue (grpc_client_call *call)
{
  struct message *m;
  while ((m = call_pop (call)))
    free (m);
}

void
grpc_client_call_free (grpc_client_call *call)
{
  if (call == NULL)
    return;
  grpc_client *c = call->client;
  if (!call->closed && call->stream_id > 0 && !c->broken)
    {
      nghttp2_submit_rst_stream (c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
      client_flush (c);
    }
  if (call->stream_id > 0 && !call->closed)
    nghttp2_session_set_stream_user_data (c->session, call->stream_id, NULL);
  call_free_queue (call);
  buf_free (&call->out);
  buf_free (&call->in);
  for (struct header *h = call->headers, *next; h; h = next)
    {
      next = h->next;
      free (h->key);
      free (h->value);
      free (h);
    }
  free (call->grpc_message);
  free (call->local_message);
  free (call);
}

const char *
grpc_client_call_metadata (const grpc_client_call *call, const char *key)
{
  for (const struct header *h = call->headers; h; h = h->next)
    if (strcasecmp (h->key, key) == 0)
      return h->value;
  return NULL;
}

#define NV(k, v, vlen) \
  { (uint8_t *) (k), (uint8_t *) (v), sizeof (k) - 1, (vlen), NGHTTP2_NV_FLAG_NO_COPY_NAME }

int
grpc_client_call_open (grpc_client *c, const char *method, const struct grpc_client_md *md, size_t n_md,
                       grpc_client_call **ret, berth_error **err)
{
  if (c->broken)
    return berth_error_set (err, c->broken_code, 0, "%s", c->broken_message);
  if (method == NULL || method[0] != '/')
    return berth_error_set (err, BERTH_E_INVALID, 0, "bad gRPC method `%s`", method ? method : "(null)");

  _cleanup_(grpc_client_call_freep) grpc_client_call *call = calloc (1, sizeof *call);
  if (call == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "grpc call");
  call->client = c;
  if (c->deadline_ms)
    call->deadline = now_ms () + c->deadline_ms;

  char timeout[32] = "";
  if (c->deadline_ms)
    {
      /* At most 8 digits (gRPC spec): switch to seconds past ~27 hours. */
      if (c->deadline_ms < 100000000L)
        snprintf (timeout, sizeof timeout, "%ldm", c->deadline_ms);
      else
        snprintf (timeout, sizeof timeout, "%ldS", c->deadline_ms / 1000);
    }
  const char *ua = c->user_agent ? c->user_agent : "berth-grpc-client";

  _cleanup_free_ nghttp2_nv *nva = calloc (8 + n_md, sizeof *nva);
  if (nva == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "grpc call");
  size_t n = 0;
  nva[n++] = (nghttp2_nv) NV (":method", "POST", 4);
  nva[n++] = (nghttp2_nv) NV (":scheme", "http", 4);
  nva[n++] = (nghttp2_nv) NV (":path", method, strlen (method));
  nva[n++] = (nghttp2_nv) NV (":authority", "localhost", 9);
  nva[n++] = (nghttp2_nv) NV ("content-type", "application/grpc", 16);
  nva[n++] = (nghttp2_nv) NV ("te", "trailers", 8);
  nva[n++] = (nghttp2_nv) NV ("user-agent", ua, strlen (ua));
  if (*timeout)
    nva[n++] = (nghttp2_nv) NV ("grpc-timeout", timeout, strlen (timeout));
  for (size_t i = 0; i < n_md; i++)
    {
      if (md[i].key == NULL || md[i].value == NULL)
        continue;
      nva[n++] = (nghttp2_nv) { (uint8_t *) md[i].key, (uint8_t *) md[i].value, strlen (md[i].key),
                                strlen (md[i].value), NGHTTP2_NV_FLAG_NONE };
    }

  nghttp2_data_provider prd = { .source.ptr = call, .read_callback = read_request_data };
  int32_t id = nghttp2_submit_request (c->session, NULL, nva, n, &prd, call);
  if (id < 0)
    return berth_error_set (err, id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? BERTH_E_UNAVAILABLE : BERTH_E_INTERNAL,
                            0, "cannot start call %s: %s", method, nghttp2_strerror (id));
  call->stream_id = id;
  /* Send the headers now (the request data follows as it is queued). */
  client_flush (c);
  *ret = TAKE_PTR (call);
  return 0;
}

static bool
out_drained (const grpc_client_call *call)
{
  return buf_size (&call->out) == 0;
}

static int
call_kick_out (grpc_client_call *call, berth_error **err)
{
  grpc_client *c = call->client;
  if (call->out_deferred)
    {
      call->out_deferred = false;
      nghttp2_session_resume_data (c->session, call->stream_id);
    }
  int r = client_pump (call, out_drained, err);
  if (r < 0)
    return r;
  /* The stream ended early (the server answered before reading all of our
   * request): report the status it ended with. */
  if (!out_drained (call) && call_done (call))
    {
      r = call_status (call, err);
      return r < 0 ? r : berth_error_set (err, BERTH_E_INTERNAL, 0, "server ended the call before reading the request");
    }
  return 0;
}

/* Frame msg into the call's send buffer without sending it yet. */
static int
call_queue (grpc_client_call *call, const ProtobufCMessage *msg, const void *raw, size_t len, berth_error **err)
{
  if (call->out_eof)
    return berth_error_set (err, BERTH_E_INVALID, 0, "send after half-close");
  if (msg)
    len = protobuf_c_message_get_packed_size (msg);
  if (len > GRPC_CLIENT_MAX_MESSAGE)
    return berth_error_set (err, BERTH_E_INVALID, 0, "request message of %zu bytes exceeds the limit of %u", len,
                            GRPC_CLIENT_MAX_MESSAGE);
  if (call_done (call))
    {
      int r = call_status (call, err);
      return r < 0 ? r : berth_error_set (err, BERTH_E_PRECONDITION, 0, "send on a finished call");
    }
  uint8_t hdr[GRPC_FRAME_HEADER] = { 0, (uint8_t) (len >> 24), (uint8_t) (len >> 16), (uint8_t) (len >> 8),
                                     (uint8_t) len };
  if (buf_append (&call->out, hdr, sizeof hdr) < 0 || buf_append (&call->out, NULL, len) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "request message");
  uint8_t *dst = call->out.data + call->out.len - len;
  if (msg)
    protobuf_c_message_pack (msg, dst);
  else if (len)
    memcpy (dst, raw, len);
  return 0;
}

int
grpc_client_call_send_raw (grpc_client_call *call, const void *buf, size_t len, berth_error **err)
{
  int r = call_queue (call, NULL, buf, len, err);
  if (r < 0)
    return r;
  return call_kick_out (call, err);
}

int
grpc_client_call_send (grpc_client_call *call, const ProtobufCMessage *msg, berth_error **err)
{
  int r = call_queue (call, msg, NULL, 0, err);
  if (r < 0)
    return r;
  return call_kick_out (call, err);
}

int
grpc_client_call_close_send (grpc_client_call *call, berth_error **err)
{
  if (call->out_eof)
    return 0;
  call->out_eof = true;
  if (call_done (call))
    return 0;
  return call_kick_out (call, err);
}

static bool
has_message (const grpc_client_call *call)
{
  return call->queue_head != NULL;
}

int
grpc_client_call_recv (grpc_client_call *call, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret_msg,
                       berth_error **err)
{
  if (call->queue_head == NULL)
    {
      int r = client_pump (call, has_message, err);
      if (r < 0)
        return r;
    }
  _cleanup_free_ struct message *m = call_pop (call);
  if (m == NULL)
    return call_status (call, err);
  ProtobufCMessage *msg = protobuf_c_message_unpack (desc, NULL, m->len, m->data);
  if (msg == NULL)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "cannot decode the server's %s message (%zu bytes)", desc->name,
                            m->len);
  *ret_msg = msg;
  return 1;
}

static bool
never (const grpc_client_call *call)
{
  return false;
}

int
grpc_client_call_finish (grpc_client_call *call, berth_error **err)
{
  int r = client_pump (call, never, err);
  if (r < 0)
    return r;
  call_free_queue (call);
  return call_status (call, err);
}

static int
open_with_request (grpc_client *c, const char *method, const struct grpc_client_md *md, size_t n_md,
                   const ProtobufCMessage *req, grpc_client_call **ret, berth_error **err)
{
  _cleanup_(grpc_client_call_freep) grpc_client_call *call = NULL;
  int r = grpc_client_call_open (c, method, md, n_md, &call, err);
  if (r < 0)
    return r;
  /* Message and half-close together: one DATA frame with END_STREAM for
   * small requests. */
  r = call_queue (call, req, NULL, 0, err);
  if (r < 0)
    return r;
  call->out_eof = true;
  r = call_kick_out (call, err);
  if (r < 0)
    return r;
  *ret = TAKE_PTR (call);
  return 0;
}

int
grpc_client_unary (grpc_client *c, const char *method, const struct grpc_client_md *md, size_t n_md,
                   const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                   ProtobufCMessage **ret_resp, berth_error **err)
{
  _cleanup_(grpc_client_call_freep) grpc_client_call *call = NULL;
  int r = open_with_request (c, method, md, n_md, req, &call, err);
  if (r < 0)
    return r;
  ProtobufCMessage *resp = NULL;
  r = grpc_client_call_recv (call, resp_desc, &resp, err);
  if (r < 0)
    return r;
  if (r == 0)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "server sent no response message");
  r = grpc_client_call_finish (call, err);
  if (r < 0)
    {
      protobuf_c_message_free_unpacked (resp, NULL);
      return r;
    }
  *ret_resp = resp;
  return 0;
}

int
grpc_client_server_stream (grpc_client *c, const char *method, const struct grpc_client_md *md, size_t n_md,
                           const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                           grpc_client_message_fn on_message, void *data, berth_error **err)
{
  _cleanup_(grpc_client_call_freep) grpc_client_call *call = NULL;
  int r = open_with_request (c, method, md, n_md, req, &call, err);
  if (r < 0)
    return r;
  for (;;)
    {
      ProtobufCMessage *msg = NULL;
      r = grpc_client_call_recv (call, resp_desc, &msg, err);
      if (r <= 0)
        return r;
      r = on_message (msg, data, err);
      protobuf_c_message_free_unpacked (msg, NULL);
      if (r < 0)
        return r;
    }
}
