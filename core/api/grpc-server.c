/* gRPC over h2c with nghttp2 (see grpc-server.h for the contract).
 *
 * Wire format: gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): request
 * HEADERS (POST, content-type application/grpc[+proto]), length-prefixed
 * messages (1 byte compressed flag, 4 bytes big-endian length), response
 * HEADERS (:status 200, content-type), messages, trailers (grpc-status,
 * grpc-message percent-encoded).  Errors before the first message use
 * Trailers-Only: one HEADERS frame with END_STREAM.
 *
 * Ownership: a grpc_call belongs to its HTTP/2 stream (stream_open) and, once
 * its handler was first invoked, to the application (app_owned) until
 * grpc_call_finish() or on_cancel.  It is freed when neither holds it and no
 * code up the stack has it pinned.  A connection is torn down only when no
 * nghttp2 call is on the stack (busy): teardown requested from a callback
 * marks it and the outermost conn_process() finishes the job.
 *
 * Memory per idle connection: the nghttp2 session (HPACK tables, ~10 KiB)
 * and struct conn.  nghttp2 reads into a stack buffer; nothing is static.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <nghttp2/nghttp2.h>

#include "cleanup.h"
#include "api/grpc-server.h"

/* Receive windows: a 1 MiB chunk flows without waiting for a WINDOW_UPDATE. */
#define STREAM_WINDOW (4u << 20)
#define CONN_WINDOW (16u << 20)
#define MAX_HEADER_BYTES (64u << 10)
/* The bytes of unfinished requests of all connections together are capped at
 * this many times the per-connection cap. */
#define TOTAL_BUFFER_FACTOR 4
/* Bytes read from one connection per loop turn, so that a busy client does
 * not starve the others (epoll is level-triggered: the rest comes next turn). */
#define READ_BUDGET (256u << 10)

struct out_chunk
{
  struct out_chunk *next;
  size_t len, off;
  uint8_t buf[];
};

struct header
{
  char *name;
  char *value; /* in the same allocation as name */
};

struct conn;

struct grpc_call
{
  grpc_server *s;
  struct conn *conn; /* NULL once the stream is gone */
  int32_t stream_id;
  const struct grpc_method *m;
  struct grpc_call *prev, *next; /* conn->calls, or s->zombies */
  bool in_zombies;

  struct header *hdrs;
  size_t n_hdrs, hdr_bytes;
  int64_t deadline; /* CLOCK_MONOTONIC ms, -1: none */

  /* Incoming framing. */
  uint8_t prefix[5];
  size_t prefix_len;
  uint8_t *msg;
  size_t msg_len, msg_off;
  bool in_msg;
  uint8_t *pending; /* unary/server-streaming request, until half-close */
  size_t pending_len;
  unsigned n_msgs;
  size_t charged; /* bytes counted in conn->buffered and s->buffered */
  bool headers_done;
  int64_t begun_ms; /* request HEADERS started */
  int64_t msg_started_ms; /* first byte of the current message */
  int64_t send_wait_ms; /* queue non-empty and no byte taken since */

  /* Outgoing. */
  struct out_chunk *out_head, *out_tail;
  size_t queued;
  int status; /* gRPC code for the trailers */
  char *status_msg; /* percent-encoded, or NULL */
  void (*writable_fn) (grpc_call *c, void *data);
  void *writable_data;
  bool writable_due;

  bool stream_open;
  bool app_owned;
  bool cancel_notified;
  bool cancelling; /* inside on_cancel: the call may not be used */
  bool headers_sent;
  bool data_deferred; /* the data provider returned NGHTTP2_ERR_DEFERRED */
  bool finished; /* status decided (by the handler or the server) */
  bool discard; /* drop further request data */
  int pinned;

  void *user_data;
};

struct conn
{
  grpc_server *s;
  int fd;
  nghttp2_session *session;
  struct conn *prev, *next;
  grpc_call *calls;
  uint32_t events;
  size_t read_budget;
  bool busy; /* inside conn_process */
  bool need_send;
  bool write_blocked;
  bool dead; /* I/O or protocol error: tear down */
  bool closing; /* shutdown: tear down after flushing GOAWAY */
  /* Frame boundaries in the bytes received (lengths only, nghttp2 parses):
   * bytes of preface or payload still to come, bytes of the next frame
   * header seen. */
  size_t rx_skip;
  unsigned rx_hdr_len;
  uint8_t rx_hdr[3];
  bool partial_frame; /* inside the preface or a frame */
  int64_t frame_started_ms; /* when that frame began */
  int64_t idle_since; /* no calls since */
  size_t buffered; /* bytes of unfinished requests (struct grpc_call.charged) */
};

struct listener
{
  grpc_server *s;
  int fd;
  char *path; /* unlinked at shutdown if still ours; NULL for listen_fd */
  dev_t dev;
  ino_t ino;
  int64_t retry_timer;
  struct listener *next;
};

struct grpc_server
{
  loop *l;
  struct grpc_method **methods;
  size_t n_methods;
  struct listener *listeners;
  struct conn *conns;
  grpc_call *zombies;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  uint32_t max_recv; /* largest request message accepted, <= GRPC_MAX_MESSAGE */
  struct grpc_limits lim;
  size_t buffered; /* sum of every call's charged bytes */
  unsigned n_conns;
  int64_t tick_timer;
  int64_t refused_logged_ms;
  unsigned refused, evicted; /* connections refused / closed since the last log line */
  bool shut;
};

static void conn_process (struct conn *c, bool do_read);
static void conn_free (struct conn *c);
static void server_arm_tick (grpc_server *s);

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void server_log (grpc_server *s, const char *fmt, ...) BERTH_PRINTF (2, 3);

static void
server_log (grpc_server *s, const char *fmt, ...)
{
  char line[256];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  if (s->lim.log)
    s->lim.log (line);
  else
    fprintf (stderr, "berthd: %s\n", line);
}

#define NV(n, v) \
  { (uint8_t *) (n), (uint8_t *) (v), sizeof (n) - 1, strlen (v), NGHTTP2_NV_FLAG_NONE }

/* grpc-message: percent-encode bytes outside 0x20-0x7E and '%' (spec:
 * "Percent-Encoded", PROTOCOL-HTTP2.md). */
static char *
percent_encode (const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    n += (*p < 0x20 || *p > 0x7e || *p == '%') ? 3 : 1;
  char *out = malloc (n + 1), *o = out;
  if (out == NULL)
    return NULL;
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    if (*p < 0x20 || *p > 0x7e || *p == '%')
      {
        *o++ = '%';
        *o++ = hex[*p >> 4];
        *o++ = hex[*p & 15];
      }
    else
      *o++ = (char) *p;
  *o = '\0';
  return out;
}

static int
to_grpc_code (int code)
{
  return code == 0 ? 0 : berth_errcode_to_grpc (code);
}

/* ---- calls ---------------------------------------------------------- */

static void
call_link (grpc_call **head, grpc_call *c)
{
  c->prev = NULL;
  c->next = *head;
  if (*head)
    (*head)->prev = c;
  *head = c;
}

static void
call_unlink (grpc_call **head, grpc_call *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else
    *head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* Count n more bytes of unfinished request against the connection and the
 * server; false (nothing counted) when that passes a cap. */
static bool
call_charge (grpc_call *c, size_t n)
{
  grpc_server *s = c->s;
  size_t total = s->lim.max_conn_buffer * TOTAL_BUFFER_FACTOR;
  if (c->conn && c->conn->buffered + n > s->lim.max_conn_buffer)
    return false;
  if (s->buffered + n > total)
    return false;
  c->charged += n;
  if (c->conn)
    c->conn->buffered += n;
  s->buffered += n;
  return true;
}

static void
call_uncharge (grpc_call *c, size_t n)
{
  c->charged -= n;
  if (c->conn)
    c->conn->buffered -= n;
  c->s->buffered -= n;
}

static void
call_free (grpc_call *c)
{
  c->s->buffered -= c->charged;
  for (size_t i = 0; i < c->n_hdrs; i++)
    free (c->hdrs[i].name);
  free (c->hdrs);
  free (c->msg);
  free (c->pending);
  while (c->out_head)
    {
      struct out_chunk *o = c->out_head;
      c->out_head = o->next;
      free (o);
    }
  free (c->status_msg);
  free (c);
}

static void
call_maybe_free (grpc_call *c)
{
  if (c->app_owned || c->stream_open || c->pinned > 0)
    return;
  if (c->in_zombies)
    call_unlink (&c->s->zombies, c);
  call_free (c);
}

static void
call_notify_cancel (grpc_call *c)
{
  if (!c->app_owned || c->cancel_notified)
    return;
  c->cancel_notified = true;
  c->writable_fn = NULL;
  if (c->m && c->m->on_cancel)
    {
      c->cancelling = true;
      c->pinned++;
      c->m->on_cancel (c, c->m->data);
      c->pinned--;
      c->cancelling = false;
      c->app_owned = false;
    }
}

/* The stream is gone (closed, reset, or its connection torn down).  The
 * caller has already unlinked c from its connection. */
static void
call_stream_gone (grpc_call *c)
{
  if (c->conn)
    c->conn->buffered -= c->charged;
  c->conn = NULL;
  c->stream_open = false;
  if (c->app_owned && !c->finished)
    call_notify_cancel (c);
  if (c->app_owned && !c->in_zombies)
    {
      call_link (&c->s->zombies, c);
      c->in_zombies = true;
    }
  call_maybe_free (c);
}

static const char *
call_header (const grpc_call *c, const char *name)
{
  for (size_t i = 0; i < c->n_hdrs; i++)
    if (strcasecmp (c->hdrs[i].name, name) == 0)
      return c->hdrs[i].value;
  return NULL;
}

/* Ask the connection to send what was just submitted.  Inside nghttp2
 * callbacks (busy) the outer conn_process() sends it. */
static void
conn_kick (struct conn *c)
{
  if (c == NULL)
    return;
  if (c->busy)
    c->need_send = true;
  else
    conn_process (c, false);
}

static int
submit_trailers (grpc_call *c)
{
  char code[12];
  snprintf (code, sizeof code, "%d", c->status);
  nghttp2_nv nva[2] = { NV ("grpc-status", code) };
  size_t n = 1;
  if (c->status_msg)
    nva[n++] = (nghttp2_nv) NV ("grpc-message", c->status_msg);
  return nghttp2_submit_trailer (c->conn->session, c->stream_id, nva, n);
}

static ssize_t
data_read (nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
           uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
  grpc_call *c = source->ptr;
  size_t n = 0;
  c->send_wait_ms = now_ms ();
  while (n < length && c->out_head)
    {
      struct out_chunk *o = c->out_head;
      size_t k = o->len - o->off;
      if (k > length - n)
        k = length - n;
      memcpy (buf + n, o->buf + o->off, k);
      o->off += k;
      n += k;
      if (o->off == o->len)
        {
          c->out_head = o->next;
          if (c->out_head == NULL)
            c->out_tail = NULL;
          free (o);
        }
    }
  c->queued -= n;
  if (c->writable_fn && c->queued < GRPC_SEND_QUEUE_SOFT)
    c->writable_due = true;
  if (c->out_head == NULL && c->finished)
    {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      if (submit_trailers (c) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      return (ssize_t) n;
    }
  if (n == 0)
    {
      c->data_deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  return (ssize_t) n;
}

static int
submit_response_headers (grpc_call *c)
{
  nghttp2_nv nva[] = { NV (":status", "200"), NV ("content-type", "application/grpc") };
  nghttp2_data_provider prd = { .source.ptr = c, .read_callback = data_read };
  int rv = nghttp2_submit_response (c->conn->session, c->stream_id, nva, ARRAY_SIZE (nva), &prd);
  if (rv < 0)
    return BERTH_E_NOMEM;
  c->headers_sent = true;
  return 0;
}

/* Decide the call's status and put it on the wire: Trailers-Only when no
 * response HEADERS went out yet, else trailers after the queued messages. */
static void
call_submit_status (grpc_call *c, int grpc_code, const char *message, const char *http_status)
{
  if (c->finished || !c->stream_open)
    return;
  c->finished = true;
  c->discard = true;
  c->status = grpc_code;
  free (c->status_msg);
  c->status_msg = message && *message ? percent_encode (message) : NULL;
  if (!c->headers_sent)
    {
      char code[12];
      snprintf (code, sizeof code, "%d", grpc_code);
      nghttp2_nv nva[4] = { NV (":status", http_status), NV ("content-type", "application/grpc"),
                            NV ("grpc-status", code) };
      size_t n = 3;
      if (c->status_msg)
        nva[n++] = (nghttp2_nv) NV ("grpc-message", c->status_msg);
      if (nghttp2_submit_response (c->conn->session, c->stream_id, nva, n, NULL) < 0)
        nghttp2_submit_rst_stream (c->conn->session, NGHTTP2_FLAG_NONE, c->stream_id,
                                   NGHTTP2_INTERNAL_ERROR);
      c->headers_sent = true;
    }
  else if (c->data_deferred)
    {
      c->data_deferred = false;
      nghttp2_session_resume_data (c->conn->session, c->stream_id);
    }
  conn_kick (c->conn);
}

/* The server ends the call on its own (bad input): status to the client,
 * on_cancel to a handler that already owns the call. */
static void
call_abort (grpc_call *c, int code, const char *message)
{
  call_uncharge (c, (c->msg ? c->msg_len : 0) + (c->pending ? c->pending_len : 0));
  free (c->msg);
  c->msg = NULL;
  c->in_msg = false;
  free (c->pending);
  c->pending = NULL;
  call_submit_status (c, to_grpc_code (code), message, "200");
  if (c->app_owned)
    call_notify_cancel (c);
}

static void
call_deliver (grpc_call *c, uint8_t *buf, size_t len)
{
  static const uint8_t empty[1];
  c->app_owned = true;
  c->pinned++;
  c->m->on_message (c, len ? buf : empty, len, c->m->data);
  c->pinned--;
}

static void
call_message_complete (grpc_call *c)
{
  _cleanup_free_ uint8_t *buf = TAKE_PTR (c->msg);
  size_t len = c->msg_len;
  c->in_msg = false;
  c->n_msgs++;
  if (c->m->kind == GRPC_UNARY || c->m->kind == GRPC_SERVER_STREAM)
    {
      c->pending = TAKE_PTR (buf);
      c->pending_len = len;
      return;
    }
  call_uncharge (c, len);
  call_deliver (c, buf, len);
}

/* Feed request DATA through the length-prefix framing. */
static void
call_feed (grpc_call *c, const uint8_t *data, size_t len)
{
  while (len > 0 && !c->discard)
    {
      if (!c->in_msg)
        {
          if (c->prefix_len == 0)
            c->msg_started_ms = now_ms ();
          size_t k = 5 - c->prefix_len;
          if (k > len)
            k = len;
          memcpy (c->prefix + c->prefix_len, data, k);
          c->prefix_len += k;
          data += k;
          len -= k;
          if (c->prefix_len < 5)
            return;
          c->prefix_len = 0;
          uint32_t mlen = (uint32_t) c->prefix[1] << 24 | (uint32_t) c->prefix[2] << 16
                          | (uint32_t) c->prefix[3] << 8 | c->prefix[4];
          if (c->prefix[0] & 1)
            {
              call_abort (c, BERTH_E_NOTSUP, "compression not supported");
              return;
            }
          if (c->prefix[0] != 0)
            {
              call_abort (c, BERTH_E_INTERNAL, "invalid message flags");
              return;
            }
          if (mlen > c->conn->s->max_recv)
            {
              char m[96];
              snprintf (m, sizeof m, "received message larger than max (%u vs. %u)", mlen,
                        c->conn->s->max_recv);
              call_abort (c, BERTH_E_EXHAUSTED, m);
              return;
            }
          if ((c->m->kind == GRPC_UNARY || c->m->kind == GRPC_SERVER_STREAM) && c->n_msgs > 0)
            {
              call_abort (c, BERTH_E_INTERNAL, "more than one request message for a unary request");
              return;
            }
          if (!call_charge (c, mlen))
            {
              char m[160];
              snprintf (m, sizeof m,
                        "server busy: a %u-byte message would pass the cap on unfinished "
                        "requests (%zu bytes on this connection, %zu in all)",
                        mlen, c->conn->buffered, c->s->buffered);
              call_abort (c, BERTH_E_EXHAUSTED, m);
              return;
            }
          c->msg = malloc (mlen ? mlen : 1);
          if (c->msg == NULL)
            {
              call_uncharge (c, mlen);
              call_abort (c, BERTH_E_NOMEM, "out of memory");
              return;
            }
          c->msg_len = mlen;
          c->msg_off = 0;
          c->in_msg = true;
          if (mlen == 0)
            call_message_complete (c);
          continue;
        }
      size_t k = c->msg_len - c->msg_off;
      if (k > len)
        k = len;
      memcpy (c->msg + c->msg_off, data, k);
      c->msg_off += k;
      data += k;
      len -= k;
      if (c->msg_off == c->msg_len)
        call_message_complete (c);
    }
}

static void
call_half_close (grpc_call *c)
{
  if (c->discard || c->m == NULL)
    return;
  if (c->in_msg || c->prefix_len > 0)
    {
      call_abort (c, BERTH_E_INTERNAL, "request stream ended inside a message");
      return;
    }
  if (c->m->kind == GRPC_UNARY || c->m->kind == GRPC_SERVER_STREAM)
    {
      if (c->n_msgs == 0)
        {
          call_abort (c, BERTH_E_INTERNAL, "request message missing");
          return;
        }
      _cleanup_free_ uint8_t *buf = TAKE_PTR (c->pending);
      call_uncharge (c, c->pending_len);
      call_deliver (c, buf, c->pending_len);
      return;
    }
  c->app_owned = true;
  if (c->m->on_half_close)
    {
      c->pinned++;
      c->m->on_half_close (c, c->m->data);
      c->pinned--;
    }
}

/* "grpc-timeout: 1*8DIGIT unit", unit one of H M S m u n. */
static int64_t
parse_timeout (const char *v)
{
  size_t n = strspn (v, "0123456789");
  if (n == 0 || n > 8 || v[n] == '\0' || v[n + 1] != '\0')
    return -1;
  int64_t x = strtoll (v, NULL, 10);
  switch (v[n])
    {
    case 'H': return x * 3600 * 1000;
    case 'M': return x * 60 * 1000;
    case 'S': return x * 1000;
    case 'm': return x;
    case 'u': return (x + 999) / 1000;
    case 'n': return (x + 999999) / 1000000;
    default: return -1;
    }
}

static const struct grpc_method *
server_lookup (grpc_server *s, const char *path)
{
  for (size_t i = 0; i < s->n_methods; i++)
    if (strcmp (s->methods[i]->path, path) == 0)
      return s->methods[i];
  return NULL;
}

/* Request HEADERS are complete: check them and pick the method. */
static void
call_start (grpc_call *c)
{
  const char *method = call_header (c, ":method");
  const char *ct = call_header (c, "content-type");
  const char *path = call_header (c, ":path");
  const char *timeout = call_header (c, "grpc-timeout");

  c->headers_done = true;
  if (timeout)
    {
      int64_t t = parse_timeout (timeout);
      if (t >= 0)
        c->deadline = now_ms () + t;
    }
  /* Like grpc-go: 405 / 415 with a gRPC status for clients that read one. */
  if (method == NULL || strcmp (method, "POST") != 0)
    {
      call_submit_status (c, 13, "invalid gRPC request method", "405");
      return;
    }
  if (ct == NULL || strncmp (ct, "application/grpc", 16) != 0
      || (ct[16] != '\0' && ct[16] != '+' && ct[16] != ';'))
    {
      call_submit_status (c, 13, "invalid gRPC request content-type", "415");
      return;
    }
  c->m = path ? server_lookup (c->s, path) : NULL;
  if (c->m == NULL)
    {
      _cleanup_free_ char *m = NULL;
      if (asprintf (&m, "unknown method %s", path ? path : "(none)") < 0)
        m = NULL;
      call_submit_status (c, 12, m ? m : "unknown method", "200");
    }
}

/* ---- nghttp2 callbacks ---------------------------------------------- */

static ssize_t
cb_send (nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user_data)
{
  struct conn *c = user_data;
  for (;;)
    {
      ssize_t n = send (c->fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0)
        return n;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          c->write_blocked = true;
          return NGHTTP2_ERR_WOULDBLOCK;
        }
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

/* Follow frame boundaries so that a frame (or preface) received in part
 * for longer than request_timeout can be told: slowloris. */
static void
conn_track_frames (struct conn *c, const uint8_t *p, size_t n)
{
  bool began = false;
  while (n > 0)
    {
      if (c->rx_skip > 0)
        {
          size_t k = n < c->rx_skip ? n : c->rx_skip;
          c->rx_skip -= k;
          p += k;
          n -= k;
          continue;
        }
      if (c->rx_hdr_len == 0)
        began = true;
      if (c->rx_hdr_len < 3)
        c->rx_hdr[c->rx_hdr_len] = *p;
      c->rx_hdr_len++;
      p++;
      n--;
      if (c->rx_hdr_len == 9)
        {
          c->rx_skip = (size_t) c->rx_hdr[0] << 16 | (size_t) c->rx_hdr[1] << 8 | c->rx_hdr[2];
          c->rx_hdr_len = 0;
        }
    }
  c->partial_frame = c->rx_skip > 0 || c->rx_hdr_len > 0;
  if (began && c->partial_frame)
    c->frame_started_ms = now_ms ();
}

static ssize_t
cb_recv (nghttp2_session *session, uint8_t *buf, size_t length, int flags, void *user_data)
{
  struct conn *c = user_data;
  if (c->read_budget == 0)
    return NGHTTP2_ERR_WOULDBLOCK;
  if (length > c->read_budget)
    length = c->read_budget;
  for (;;)
    {
      ssize_t n = recv (c->fd, buf, length, MSG_DONTWAIT);
      if (n > 0)
        {
          c->read_budget -= (size_t) n;
          conn_track_frames (c, buf, (size_t) n);
          return n;
        }
      if (n == 0)
        return NGHTTP2_ERR_EOF;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return NGHTTP2_ERR_WOULDBLOCK;
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

static int
cb_begin_headers (nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
  struct conn *conn = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  grpc_call *c = calloc (1, sizeof *c);
  if (c == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  c->s = conn->s;
  c->conn = conn;
  c->stream_id = frame->hd.stream_id;
  c->deadline = -1;
  c->stream_open = true;
  c->begun_ms = now_ms ();
  if (nghttp2_session_set_stream_user_data (session, c->stream_id, c) < 0)
    {
      free (c);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
  call_link (&conn->calls, c);
  return 0;
}

static int
cb_header (nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
           const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0; /* gRPC clients send no trailers; ignore them if one does */
  grpc_call *c = nghttp2_session_get_stream_user_data (session, frame->hd.stream_id);
  if (c == NULL)
    return 0;
  c->hdr_bytes += namelen + valuelen + 32;
  if (c->hdr_bytes > MAX_HEADER_BYTES || !call_charge (c, namelen + valuelen + 32))
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if ((c->n_hdrs & 7) == 0)
    {
      struct header *h = realloc (c->hdrs, (c->n_hdrs + 8) * sizeof *h);
      if (h == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      c->hdrs = h;
    }
  char *p = malloc (namelen + valuelen + 2);
  if (p == NULL)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  memcpy (p, name, namelen);
  p[namelen] = '\0';
  memcpy (p + namelen + 1, value, valuelen);
  p[namelen + 1 + valuelen] = '\0';
  c->hdrs[c->n_hdrs++] = (struct header) { .name = p, .value = p + namelen + 1 };
  return 0;
}

static int
cb_frame_recv (nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
  grpc_call *c;
  switch (frame->hd.type)
    {
    case NGHTTP2_HEADERS:
      if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        break;
      c = nghttp2_session_get_stream_user_data (session, frame->hd.stream_id);
      if (c == NULL)
        break;
      call_start (c);
      if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        call_half_close (c);
      break;
    case NGHTTP2_DATA:
      if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        break;
      c = nghttp2_session_get_stream_user_data (session, frame->hd.stream_id);
      if (c)
        call_half_close (c);
      break;
    default:
      break;
    }
  return 0;
}

/* Request data is consumed (window credit returned) once it has been framed
 * into the call's message buffer or dropped.  The buffer of one call is
 * bounded by GRPC_MAX_MESSAGE. */
static int
cb_data_chunk (nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
               size_t len, void *user_data)
{
  grpc_call *c = nghttp2_session_get_stream_user_data (session, stream_id);
  if (c && c->m && !c->discard)
    call_feed (c, data, len);
  nghttp2_session_consume (session, stream_id, len);
  return 0;
}

/* After our END_STREAM, reset a stream the client is still sending on
 * (RFC 7540 8.1; grpc-go does the same), so it stops sending. */
static int
cb_frame_send (nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
      && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
      && nghttp2_session_get_stream_remote_close (session, frame->hd.stream_id) == 0)
    nghttp2_submit_rst_stream (session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  /* Trailers go out as HEADERS with END_STREAM too: same rule. */
  return 0;
}

static int
cb_stream_close (nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
  struct conn *conn = user_data;
  grpc_call *c = nghttp2_session_get_stream_user_data (session, stream_id);
  if (c == NULL)
    return 0;
  nghttp2_session_set_stream_user_data (session, stream_id, NULL);
  call_unlink (&conn->calls, c);
  if (conn->calls == NULL)
    conn->idle_since = now_ms ();
  call_stream_gone (c);
  return 0;
}

/* ---- connections ---------------------------------------------------- */

/* Run one-shot writable callbacks whose queue fell below the soft mark. */
static bool
conn_fire_writable (struct conn *conn)
{
  bool fired = false;
restart:
  for (grpc_call *c = conn->calls; c; c = c->next)
    if (c->writable_due)
      {
        c->writable_due = false;
        void (*fn) (grpc_call *, void *) = c->writable_fn;
        c->writable_fn = NULL;
        if (fn == NULL || !c->app_owned || c->finished)
          continue;
        c->pinned++;
        fn (c, c->writable_data);
        c->pinned--;
        fired = true;
        goto restart;
      }
  return fired;
}

static void
conn_update (struct conn *c)
{
  if (c->dead || c->closing
      || (!nghttp2_session_want_read (c->session) && !nghttp2_session_want_write (c->session)))
    {
      conn_free (c);
      return;
    }
  uint32_t ev = EPOLLIN | (c->write_blocked ? EPOLLOUT : 0);
  if (ev != c->events && loop_mod_fd (c->s->l, c->fd, ev) == 0)
    c->events = ev;
}

static void
conn_process (struct conn *c, bool do_read)
{
  if (c->busy)
    {
      c->need_send = true;
      return;
    }
  c->busy = true;
  if (do_read && !c->dead && !c->closing)
    {
      c->read_budget = READ_BUDGET;
      if (nghttp2_session_recv (c->session) < 0)
        c->dead = true; /* EOF, bad preface, protocol error: nghttp2 said it all */
    }
  while (!c->dead)
    {
      c->need_send = false;
      c->write_blocked = false;
      if (nghttp2_session_send (c->session) < 0)
        {
          c->dead = true;
          break;
        }
      bool fired = conn_fire_writable (c);
      if (!fired && !c->need_send)
        break;
    }
  c->busy = false;
  conn_update (c);
}

static void
conn_io (loop *l, int fd, uint32_t revents, void *data)
{
  conn_process (data, (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0);
}

static void
conn_free (struct conn *c)
{
  if (c->busy)
    {
      c->dead = true; /* conn_process tears it down on its way out */
      return;
    }
  grpc_server *s = c->s;
  loop_del_fd (s->l, c->fd);
  close (c->fd);
  s->n_conns--;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;

  /* Detach every call first, so that an on_cancel touching a sibling call
   * finds it already off the connection (and pinned). */
  grpc_call *list = c->calls;
  c->calls = NULL;
  for (grpc_call *k = list; k; k = k->next)
    {
      k->conn = NULL;
      k->stream_open = false;
      k->pinned++;
    }
  while (list)
    {
      grpc_call *k = list;
      list = k->next;
      k->prev = k->next = NULL;
      k->pinned--;
      call_stream_gone (k);
    }
  nghttp2_session_del (c->session);
  free (c);
}

static int
conn_new (grpc_server *s, int fd)
{
  struct conn *c = calloc (1, sizeof *c);
  if (c == NULL)
    return BERTH_E_NOMEM;
  c->s = s;
  c->fd = fd;
  if (nghttp2_session_server_new2 (&c->session, s->cbs, c, s->opt) < 0)
    {
      free (c);
      return BERTH_E_NOMEM;
    }
  nghttp2_settings_entry iv[] = {
    { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->lim.max_streams },
    { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
    { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES },
  };
  if (nghttp2_submit_settings (c->session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE (iv)) < 0
      || nghttp2_session_set_local_window_size (c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) < 0
      || loop_add_fd (s->l, fd, EPOLLIN, conn_io, c) < 0)
    {
      nghttp2_session_del (c->session);
      free (c);
      return BERTH_E_NOMEM;
    }
  c->events = EPOLLIN;
  c->idle_since = c->frame_started_ms = now_ms ();
  c->rx_skip = NGHTTP2_CLIENT_MAGIC_LEN; /* the preface comes first */
  c->partial_frame = true;
  s->n_conns++;
  server_arm_tick (s);
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  conn_process (c, false); /* our SETTINGS go first */
  return 0;
}

/* Send GOAWAY (best effort) and tear the connection down once it is out.
 * Frees c unless it is busy. */
static void
conn_goaway (struct conn *c, uint32_t error_code, const char *why)
{
  if (c->closing || c->dead)
    return;
  nghttp2_submit_goaway (c->session, NGHTTP2_FLAG_NONE,
                         nghttp2_session_get_last_proc_stream_id (c->session), error_code,
                         (const uint8_t *) why, strlen (why));
  c->closing = true;
  conn_kick (c);
}

/* Apply the timeouts of struct grpc_limits to one connection. */
static void
conn_check_timeouts (struct conn *conn, int64_t now)
{
  grpc_server *s = conn->s;
  int64_t limit = s->lim.request_timeout_ms;
  const char *why = NULL;

  if (conn->closing || conn->dead)
    return;
  conn->busy = true; /* aborting a call may send; conn_process below does it */
  if (conn->partial_frame && now - conn->frame_started_ms > limit)
    why = "an HTTP/2 frame was not received in full within request_timeout";
  for (grpc_call *c = conn->calls; c && why == NULL; c = c->next)
    {
      if (!c->headers_done && now - c->begun_ms > limit)
        why = "request headers were not received in full within request_timeout";
      else if (c->queued > 0 && now - c->send_wait_ms > limit)
        why = "the client read no response data within request_timeout";
      else if (c->headers_done && c->m && !c->finished && !c->discard)
        {
          if ((c->in_msg || c->prefix_len > 0) && now - c->msg_started_ms > limit)
            call_abort (c, BERTH_E_DEADLINE,
                        "request message not received in full within the server's request_timeout");
          else if (!c->app_owned && now - c->begun_ms > limit)
            call_abort (c, BERTH_E_DEADLINE,
                        "request not received in full within the server's request_timeout");
        }
    }
  if (why == NULL && conn->calls == NULL && s->lim.idle_timeout_ms > 0
      && now - conn->idle_since > (int64_t) s->lim.idle_timeout_ms)
    {
      conn->busy = false;
      conn_goaway (conn, NGHTTP2_NO_ERROR, "idle_timeout");
      return;
    }
  conn->busy = false;
  if (why)
    {
      server_log (s, "grpc: closing a connection (fd %d): %s (%u ms)", conn->fd, why,
                  s->lim.request_timeout_ms);
      conn_goaway (conn, NGHTTP2_ENHANCE_YOUR_CALM, why);
      return;
    }
  conn_process (conn, false);
}

static void
server_tick (void *data)
{
  grpc_server *s = data;
  s->tick_timer = 0;
  int64_t now = now_ms ();
  if ((s->refused || s->evicted) && now - s->refused_logged_ms >= 10000)
    {
      server_log (s, "grpc: max_connections (%u): closed %u idle and refused %u new connection(s)",
                  s->lim.max_connections, s->evicted, s->refused);
      s->refused = s->evicted = 0;
      s->refused_logged_ms = now;
    }
  struct conn *next;
  for (struct conn *c = s->conns; c; c = next)
    {
      next = c->next;
      conn_check_timeouts (c, now);
    }
  server_arm_tick (s);
}

static void
server_arm_tick (grpc_server *s)
{
  if (s->tick_timer > 0 || s->n_conns == 0 || s->shut)
    return;
  unsigned ms = s->lim.request_timeout_ms / 4;
  if (ms > 1000)
    ms = 1000;
  int64_t t = loop_add_timer (s->l, ms, server_tick, s);
  if (t > 0)
    s->tick_timer = t;
}

/* At max_connections: close the connection idle the longest, or tell that
 * the new one cannot be served. */
static bool
server_make_room (grpc_server *s)
{
  if (s->n_conns < s->lim.max_connections)
    return true;
  struct conn *oldest = NULL;
  for (struct conn *c = s->conns; c; c = c->next)
    if (c->calls == NULL && !c->busy && (oldest == NULL || c->idle_since < oldest->idle_since))
      oldest = c;
  bool room = false;
  if (oldest)
    {
      s->evicted++;
      conn_goaway (oldest, NGHTTP2_NO_ERROR, "max_connections"); /* frees it */
      room = s->n_conns < s->lim.max_connections;
    }
  if (!room)
    s->refused++;
  int64_t now = now_ms ();
  if (s->refused_logged_ms == 0 || now - s->refused_logged_ms >= 10000)
    {
      server_log (s,
                  "grpc: %u connections open (max_connections = %u): closed %u idle and "
                  "refused %u new connection(s)",
                  s->n_conns, s->lim.max_connections, s->evicted, s->refused);
      s->refused = s->evicted = 0;
      s->refused_logged_ms = now;
    }
  return room;
}

/* ---- listeners ------------------------------------------------------ */

static void
listener_resume (void *data)
{
  struct listener *ln = data;
  ln->retry_timer = 0;
  loop_mod_fd (ln->s->l, ln->fd, EPOLLIN);
}

static void
listener_io (loop *l, int fd, uint32_t revents, void *data)
{
  struct listener *ln = data;
  for (int i = 0; i < 64; i++)
    {
      int cfd = accept4 (fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (cfd < 0)
        {
          if (errno == EINTR || errno == ECONNABORTED)
            continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            {
              /* Out of fds: stop polling the listener for a while instead of
               * spinning on a level-triggered event. */
              if (loop_mod_fd (l, fd, 0) == 0)
                {
                  int64_t t = loop_add_timer (l, 100, listener_resume, ln);
                  if (t > 0)
                    ln->retry_timer = t;
                  else
                    loop_mod_fd (l, fd, EPOLLIN);
                }
            }
          return;
        }
      if (!server_make_room (ln->s) || conn_new (ln->s, cfd) < 0)
        close (cfd);
    }
}

static int
server_add_listener (grpc_server *s, int fd, const char *path, berth_error **err)
{
  struct listener *ln = calloc (1, sizeof *ln);
  if (ln == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listener");
  ln->s = s;
  ln->fd = fd;
  if (path)
    {
      struct stat st;
      ln->path = strdup (path);
      if (ln->path == NULL)
        {
          free (ln);
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "listener");
        }
      if (stat (path, &st) == 0)
        {
          ln->dev = st.st_dev;
          ln->ino = st.st_ino;
        }
    }
  int r = loop_add_fd (s->l, fd, EPOLLIN, listener_io, ln);
  if (r < 0)
    {
      free (ln->path);
      free (ln);
      return berth_error_set (err, r, 0, "cannot watch listening socket");
    }
  ln->next = s->listeners;
  s->listeners = ln;
  return 0;
}

static int
mkdir_parents (const char *path, berth_error **err)
{
  _cleanup_free_ char *dir = strdup (path);
  if (dir == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "socket path");
  char *slash = strrchr (dir, '/');
  if (slash == NULL || slash == dir)
    return 0;
  *slash = '\0';
  for (char *p = dir + 1;; p++)
    {
      if (*p != '/' && *p != '\0')
        continue;
      char saved = *p;
      *p = '\0';
      if (mkdir (dir, 0711) < 0 && errno != EEXIST)
        return berth_error_set (err, berth_errcode_from_errno (errno), errno,
                                "cannot create directory `%s' for socket `%s'", dir, path);
      *p = saved;
      if (saved == '\0')
        break;
    }
  struct stat st;
  if (stat (dir, &st) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno,
                            "cannot create directory `%s' for socket `%s'", dir, path);
  if (!S_ISDIR (st.st_mode))
    return berth_error_set (err, BERTH_E_INVALID, ENOTDIR,
                            "cannot create directory `%s' for socket `%s'", dir, path);
  return 0;
}

/* The socket's directory, and every directory above it, must be one that
 * only root or we can change: owned by root or by our euid, and not
 * writable by group or others unless sticky (/tmp).  Otherwise someone
 * else could rename the directory away or put their own socket at the
 * path between our checks and bind(), and clients would hand their
 * registry credentials to it.  Symbolic links are resolved first and the
 * real path is checked. */
static int
check_socket_dir (const char *path, berth_error **err)
{
  _cleanup_free_ char *dir = strdup (path);
  if (dir == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "socket path");
  char *slash = strrchr (dir, '/');
  if (slash == NULL)
    strcpy (dir, ".");
  else if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  _cleanup_free_ char *real = realpath (dir, NULL);
  if (real == NULL)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno,
                            "cannot resolve directory `%s' of socket `%s'", dir, path);
  uid_t me = geteuid ();
  size_t len = strlen (real);
  for (size_t i = 0; i <= len; i++)
    {
      if (real[i] != '/' && real[i] != '\0')
        continue;
      char saved = real[i];
      real[i] = '\0';
      const char *d = i == 0 ? "/" : real;
      struct stat st;
      if (stat (d, &st) < 0)
        return berth_error_set (err, berth_errcode_from_errno (errno), errno,
                                "cannot check directory `%s' of socket `%s'", d, path);
      if (st.st_uid != 0 && st.st_uid != me)
        return berth_error_set (err, BERTH_E_PERMISSION, 0,
                                "refusing socket `%s': directory `%s' is owned by uid %u, not root%s; "
                                "another user could replace the socket",
                                path, d, (unsigned) st.st_uid, me != 0 ? " or us" : "");
      if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)
        return berth_error_set (err, BERTH_E_PERMISSION, 0,
                                "refusing socket `%s': directory `%s' (mode %04o) is writable by %s "
                                "and not sticky; another user could replace the socket",
                                path, d, (unsigned) (st.st_mode & 07777),
                                (st.st_mode & S_IWOTH) != 0 ? "others" : "its group");
      real[i] = saved;
    }
  return 0;
}

/* Listen on the unix socket PATH with MODE and group GID ((gid_t) -1: keep).
 * Refuses (BERTH_E_PERMISSION) a directory others can change, see
 * check_socket_dir(); refuses (BERTH_E_EXISTS) anything at PATH that is not
 * a socket (symbolic links included) and a socket someone is accepting on;
 * removes a stale socket (connect refused). */
int
grpc_server_listen_unix (grpc_server *s, const char *path, mode_t mode, gid_t gid, berth_error **err)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (path == NULL || *path == '\0' || strlen (path) >= sizeof sa.sun_path)
    return berth_error_set (err, BERTH_E_INVALID, 0, "socket path `%s' is empty or longer than %zu bytes",
                            path ? path : "", sizeof sa.sun_path - 1);
  strcpy (sa.sun_path, path);
  int r = mkdir_parents (path, err);
  if (r < 0)
    return r;
  r = check_socket_dir (path, err);
  if (r < 0)
    return r;

  struct stat st;
  if (lstat (path, &st) == 0)
    {
      if (!S_ISSOCK (st.st_mode))
        return berth_error_set (err, BERTH_E_EXISTS, 0, "`%s' exists and is not a socket (%s); not removing it",
                                path, S_ISLNK (st.st_mode) ? "a symbolic link" : S_ISDIR (st.st_mode) ? "a directory" : "a file");
      /* Someone accepting there?  Then refuse; a refused connect means a
       * stale socket left by a dead daemon. */
      _cleanup_close_ int probe = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (probe < 0)
        return berth_error_set (err, BERTH_E_INTERNAL, errno, "socket");
      if (connect (probe, (struct sockaddr *) &sa, sizeof sa) == 0 || errno == EAGAIN
          || errno == EINPROGRESS)
        return berth_error_set (err, BERTH_E_EXISTS, 0,
                                "another process is already serving on `%s'", path);
      if (errno != ECONNREFUSED && errno != ENOENT)
        return berth_error_set (err, berth_errcode_from_errno (errno), errno,
                                "cannot probe existing socket `%s'", path);
      if (unlink (path) < 0 && errno != ENOENT)
        return berth_error_set (err, berth_errcode_from_errno (errno), errno,
                                "cannot remove stale socket `%s'", path);
    }

  _cleanup_close_ int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "socket");
  if (bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "cannot bind `%s'", path);
  /* Nobody can connect before listen(), so mode and group are set in time. */
  if (chmod (path, mode) < 0)
    {
      int e = errno;
      unlink (path);
      return berth_error_set (err, berth_errcode_from_errno (e), e, "cannot chmod `%s'", path);
    }
  if (gid != (gid_t) -1 && chown (path, (uid_t) -1, gid) < 0)
    {
      int e = errno;
      unlink (path);
      return berth_error_set (err, berth_errcode_from_errno (e), e, "cannot chown `%s' to group %u",
                              path, (unsigned) gid);
    }
  if (listen (fd, SOMAXCONN) < 0)
    {
      int e = errno;
      unlink (path);
      return berth_error_set (err, BERTH_E_INTERNAL, e, "cannot listen on `%s'", path);
    }
  r = server_add_listener (s, fd, path, err);
  if (r < 0)
    {
      unlink (path);
      return r;
    }
  fd = -1;
  return 0;
}

int
grpc_server_listen_fd (grpc_server *s, int fd, berth_error **err)
{
  int listening = 0;
  socklen_t len = sizeof listening;
  if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
    return berth_error_set (err, BERTH_E_INVALID, errno, "fd %d is not a socket", fd);
  if (!listening)
    return berth_error_set (err, BERTH_E_INVALID, 0, "fd %d is not a listening socket", fd);
  int fl = fcntl (fd, F_GETFL);
  if (fl < 0 || fcntl (fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return berth_error_set (err, BERTH_E_INVALID, errno, "fd %d", fd);
  fcntl (fd, F_SETFD, FD_CLOEXEC);
  return server_add_listener (s, fd, NULL, err);
}

int
grpc_server_adopt_fd (grpc_server *s, int fd)
{
  int fl = fcntl (fd, F_GETFL);
  if (fl < 0 || fcntl (fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return BERTH_E_INVALID;
  if (!server_make_room (s))
    return BERTH_E_EXHAUSTED;
  return conn_new (s, fd);
}

/* ---- server --------------------------------------------------------- */

grpc_server *
grpc_server_new (loop *l)
{
  grpc_server *s = calloc (1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->l = l;
  s->max_recv = GRPC_MAX_MESSAGE;
  grpc_limits_default (&s->lim);
  if (nghttp2_session_callbacks_new (&s->cbs) < 0 || nghttp2_option_new (&s->opt) < 0)
    {
      grpc_server_free (s);
      return NULL;
    }
  nghttp2_session_callbacks_set_send_callback (s->cbs, cb_send);
  nghttp2_session_callbacks_set_recv_callback (s->cbs, cb_recv);
  nghttp2_session_callbacks_set_on_begin_headers_callback (s->cbs, cb_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback (s->cbs, cb_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback (s->cbs, cb_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback (s->cbs, cb_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback (s->cbs, cb_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback (s->cbs, cb_stream_close);
  nghttp2_option_set_no_auto_window_update (s->opt, 1);
  return s;
}

int
grpc_server_set_max_recv (grpc_server *s, size_t bytes)
{
  if (bytes < 1024 || bytes > GRPC_MAX_MESSAGE)
    return BERTH_E_INVALID;
  s->max_recv = (uint32_t) bytes;
  return 0;
}

void
grpc_limits_default (struct grpc_limits *lim)
{
  *lim = (struct grpc_limits) {
    .max_connections = 1024,
    .max_streams = 128,
    .max_conn_buffer = 32u << 20,
    .request_timeout_ms = 30000,
    .idle_timeout_ms = 300000,
  };
}

int
grpc_server_set_limits (grpc_server *s, const struct grpc_limits *lim)
{
  if (lim->max_connections < 1 || lim->max_streams < 1 || lim->max_conn_buffer < (64u << 10)
      || lim->max_conn_buffer > (SIZE_MAX / TOTAL_BUFFER_FACTOR) || lim->request_timeout_ms < 100)
    return BERTH_E_INVALID;
  s->lim = *lim;
  return 0;
}

int
grpc_server_register (grpc_server *s, const struct grpc_method *m)
{
  if (m == NULL || m->path == NULL || m->path[0] != '/' || m->on_message == NULL)
    return BERTH_E_INVALID;
  if (server_lookup (s, m->path))
    return BERTH_E_EXISTS;
  struct grpc_method **v = realloc (s->methods, (s->n_methods + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  s->methods = v;
  struct grpc_method *copy = malloc (sizeof *copy);
  if (copy == NULL)
    return BERTH_E_NOMEM;
  *copy = *m;
  copy->path = strdup (m->path);
  if (copy->path == NULL)
    {
      free (copy);
      return BERTH_E_NOMEM;
    }
  s->methods[s->n_methods++] = copy;
  return 0;
}

void
grpc_server_shutdown (grpc_server *s)
{
  if (s->shut)
    return;
  s->shut = true;
  if (s->tick_timer > 0)
    loop_cancel_timer (s->l, s->tick_timer);
  s->tick_timer = 0;
  while (s->listeners)
    {
      struct listener *ln = s->listeners;
      s->listeners = ln->next;
      if (ln->retry_timer > 0)
        loop_cancel_timer (s->l, ln->retry_timer);
      loop_del_fd (s->l, ln->fd);
      close (ln->fd);
      struct stat st;
      /* Remove the path only while it is still the socket we bound. */
      if (ln->path && lstat (ln->path, &st) == 0 && st.st_dev == ln->dev && st.st_ino == ln->ino)
        unlink (ln->path);
      free (ln->path);
      free (ln);
    }
  struct conn *next;
  for (struct conn *c = s->conns; c; c = next)
    {
      next = c->next;
      nghttp2_submit_goaway (c->session, NGHTTP2_FLAG_NONE,
                             nghttp2_session_get_last_proc_stream_id (c->session), NGHTTP2_NO_ERROR,
                             NULL, 0);
      c->closing = true;
      conn_kick (c); /* sends GOAWAY (best effort), then frees c unless busy */
    }
}

void
grpc_server_free (grpc_server *s)
{
  if (s == NULL)
    return;
  if (s->cbs)
    grpc_server_shutdown (s);
  while (s->zombies)
    {
      grpc_call *c = s->zombies;
      call_unlink (&s->zombies, c);
      call_free (c);
    }
  for (size_t i = 0; i < s->n_methods; i++)
    {
      free ((char *) s->methods[i]->path);
      free (s->methods[i]);
    }
  free (s->methods);
  if (s->cbs)
    nghttp2_session_callbacks_del (s->cbs);
  if (s->opt)
    nghttp2_option_del (s->opt);
  free (s);
}

/* ---- call API ------------------------------------------------------- */

const char *
grpc_call_metadata (const grpc_call *c, const char *key)
{
  return call_header (c, key);
}

const char *
grpc_call_path (const grpc_call *c)
{
  return call_header (c, ":path");
}

const char *
grpc_call_namespace (const grpc_call *c)
{
  return call_header (c, "containerd-namespace");
}

const char *
grpc_call_lease (const grpc_call *c)
{
  return call_header (c, "containerd-lease");
}

static int
call_can_send (const grpc_call *c)
{
  if (!c->app_owned || c->cancelling || c->finished || !c->stream_open)
    return BERTH_E_CANCELLED;
  if (c->queued > GRPC_SEND_QUEUE_MAX)
    return BERTH_E_EXHAUSTED;
  return 0;
}

static int
call_enqueue (grpc_call *c, struct out_chunk *o)
{
  o->next = NULL;
  if (c->out_tail)
    c->out_tail->next = o;
  else
    c->out_head = o;
  c->out_tail = o;
  if (c->queued == 0)
    c->send_wait_ms = now_ms ();
  c->queued += o->len;
  if (!c->headers_sent)
    {
      int r = submit_response_headers (c);
      if (r < 0)
        return r; /* the chunk stays queued and is freed with the call */
    }
  else if (c->data_deferred)
    {
      c->data_deferred = false;
      nghttp2_session_resume_data (c->conn->session, c->stream_id);
    }
  conn_kick (c->conn);
  return 0;
}

static struct out_chunk *
chunk_new (size_t len)
{
  struct out_chunk *o = malloc (sizeof *o + 5 + len);
  if (o == NULL)
    return NULL;
  o->len = 5 + len;
  o->off = 0;
  o->buf[0] = 0;
  o->buf[1] = (uint8_t) (len >> 24);
  o->buf[2] = (uint8_t) (len >> 16);
  o->buf[3] = (uint8_t) (len >> 8);
  o->buf[4] = (uint8_t) len;
  return o;
}

int
grpc_call_send (grpc_call *c, const ProtobufCMessage *msg)
{
  int r = call_can_send (c);
  if (r < 0)
    return r;
  size_t len = protobuf_c_message_get_packed_size (msg);
  if (len > GRPC_MAX_MESSAGE)
    return BERTH_E_EXHAUSTED;
  struct out_chunk *o = chunk_new (len);
  if (o == NULL)
    return BERTH_E_NOMEM;
  protobuf_c_message_pack (msg, o->buf + 5);
  return call_enqueue (c, o);
}

int
grpc_call_send_raw (grpc_call *c, const uint8_t *buf, size_t len)
{
  int r = call_can_send (c);
  if (r < 0)
    return r;
  if (len > GRPC_MAX_MESSAGE)
    return BERTH_E_EXHAUSTED;
  struct out_chunk *o = chunk_new (len);
  if (o == NULL)
    return BERTH_E_NOMEM;
  if (len)
    memcpy (o->buf + 5, buf, len);
  return call_enqueue (c, o);
}

void
grpc_call_finish (grpc_call *c, int code, const char *message)
{
  if (c == NULL || !c->app_owned || c->cancelling)
    return;
  c->app_owned = false;
  c->writable_fn = NULL;
  c->pinned++;
  if (code != 0 && message == NULL)
    message = berth_errcode_name (code);
  if (c->stream_open && !c->finished)
    call_submit_status (c, to_grpc_code (code), message, "200");
  c->pinned--;
  call_maybe_free (c);
}

void
grpc_call_finish_error (grpc_call *c, const berth_error *err)
{
  if (err == NULL)
    grpc_call_finish (c, BERTH_E_INTERNAL, "internal error");
  else
    grpc_call_finish (c, err->code < 0 ? err->code : BERTH_E_INTERNAL, berth_error_message (err));
}

void
grpc_call_set_data (grpc_call *c, void *data)
{
  c->user_data = data;
}

void *
grpc_call_get_data (const grpc_call *c)
{
  return c->user_data;
}

int64_t
grpc_call_deadline_ms (const grpc_call *c)
{
  if (c->deadline < 0)
    return -1;
  int64_t left = c->deadline - now_ms ();
  return left > 0 ? left : 0;
}

size_t
grpc_call_queued (const grpc_call *c)
{
  return c->queued;
}

int
grpc_call_on_writable (grpc_call *c, void (*fn) (grpc_call *c, void *data), void *data)
{
  if (!c->app_owned || c->cancelling || c->finished || !c->stream_open)
    return BERTH_E_CANCELLED;
  if (c->queued < GRPC_SEND_QUEUE_SOFT)
    return 1;
  c->writable_fn = fn;
  c->writable_data = data;
  c->writable_due = false;
  return 0;
}

int
grpc_call_cancelled (const grpc_call *c)
{
  return !c->stream_open || c->cancel_notified;
}
