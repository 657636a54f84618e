/* The gRPC server against a small nghttp2 client driven by the same loop
 * (so every test is single-threaded and deterministic apart from the worker
 * pool), raw sockets for bad input, and the real ctr (grpc-go) for interop.
 */
#include <config.h>

#include <check.h>

#include "check-main.h"
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <nghttp2/nghttp2.h>

#include "cleanup.h"
#include "error.h"
#include "api/grpc-server.h"
#include "util/loop.h"
#include "util/workers.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.pb-c.h"
#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.pb-c.h"

/* ---- fixture -------------------------------------------------------- */

static loop *L;
static grpc_server *S;
static workers *W;
static char tmpdir[64];
static char sockpath[128];

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct waiter
{
  bool (*pred) (void *arg);
  void *arg;
  int64_t deadline;
  bool ok;
};

static void
waiter_tick (void *data)
{
  struct waiter *w = data;
  if (w->pred (w->arg))
    {
      w->ok = true;
      loop_quit (L);
      return;
    }
  if (now_ms () > w->deadline)
    {
      loop_quit (L);
      return;
    }
  loop_add_timer (L, 2, waiter_tick, w);
}

/* Run the loop until pred(arg) holds or timeout_ms passed. */
static bool
run_until (bool (*pred) (void *), void *arg, int timeout_ms)
{
  struct waiter w = { .pred = pred, .arg = arg, .deadline = now_ms () + timeout_ms };
  loop_add_timer (L, 0, waiter_tick, &w);
  loop_run (L);
  return w.ok;
}

static bool
never (void *arg)
{
  return false;
}

/* Run the loop for ms, whatever happens. */
static void
run_for (int ms)
{
  run_until (never, NULL, ms);
}

static bool
flag_set (void *arg)
{
  return *(volatile int *) arg != 0;
}

/* ---- handlers ------------------------------------------------------- */

static int sum_msgs, cancels, hang_started, deferred_done_cancelled, deferred_done_ran;
static grpc_call *zombie;

static void
h_unary_echo (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  ck_assert_int_eq (grpc_call_send_raw (c, msg, len), 0);
  grpc_call_finish (c, 0, NULL);
}

static void
h_fail (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  grpc_call_finish (c, BERTH_E_NOTFOUND, "snapshot \"a b\" 100% gone\n\xc3\xa9");
}

static void
h_meta (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  char buf[256];
  const char *x = grpc_call_metadata (c, "x-custom");
  snprintf (buf, sizeof buf, "ns=%s lease=%s x=%s path=%s deadline=%lld",
            grpc_call_namespace (c) ?: "-", grpc_call_lease (c) ?: "-", x ?: "-", grpc_call_path (c),
            (long long) grpc_call_deadline_ms (c));
  grpc_call_send_raw (c, (const uint8_t *) buf, strlen (buf));
  grpc_call_finish (c, 0, NULL);
}

struct deferred
{
  grpc_call *call;
  bool cancelled;
  int sleep_ms;
};

static void
deferred_work (void *data)
{
  struct deferred *d = data;
  usleep (d->sleep_ms * 1000);
}

static void
deferred_done (void *data)
{
  struct deferred *d = data;
  deferred_done_ran++;
  if (d->cancelled)
    deferred_done_cancelled++;
  else
    {
      ck_assert_int_eq (grpc_call_send_raw (d->call, (const uint8_t *) "later", 5), 0);
      grpc_call_finish (d->call, 0, NULL);
    }
  free (d);
}

static void
deferred_cancel (grpc_call *c, void *data)
{
  struct deferred *d = grpc_call_get_data (c);
  d->cancelled = true;
  cancels++;
}

static void
h_deferred (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  struct deferred *d = calloc (1, sizeof *d);
  d->call = c;
  d->sleep_ms = len > 0 ? msg[0] : 50;
  grpc_call_set_data (c, d);
  ck_assert_int_eq (workers_submit (W, deferred_work, deferred_done, d), 0);
}

static void
h_stream (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  ck_assert_int_eq (len, 1);
  for (int i = 0; i < msg[0]; i++)
    {
      char buf[16];
      snprintf (buf, sizeof buf, "msg-%d", i);
      ck_assert_int_eq (grpc_call_send_raw (c, (const uint8_t *) buf, strlen (buf)), 0);
    }
  grpc_call_finish (c, 0, NULL);
}

struct sum
{
  int n;
  size_t bytes;
};

static void
h_sum_msg (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  struct sum *s = grpc_call_get_data (c);
  if (s == NULL)
    {
      s = calloc (1, sizeof *s);
      grpc_call_set_data (c, s);
    }
  s->n++;
  s->bytes += len;
  sum_msgs++;
}

static void
h_sum_close (grpc_call *c, void *data)
{
  struct sum *s = grpc_call_get_data (c);
  char buf[64];
  snprintf (buf, sizeof buf, "n=%d bytes=%zu", s ? s->n : 0, s ? s->bytes : 0);
  free (s);
  grpc_call_send_raw (c, (const uint8_t *) buf, strlen (buf));
  grpc_call_finish (c, 0, NULL);
}

static void
h_sum_cancel (grpc_call *c, void *data)
{
  free (grpc_call_get_data (c));
  cancels++;
}

static void
h_bidi_msg (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  ck_assert_int_eq (grpc_call_send_raw (c, msg, len), 0);
}

static void
h_bidi_close (grpc_call *c, void *data)
{
  grpc_call_finish (c, 0, NULL);
}

static void
h_hang (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  hang_started++;
}

static void
h_count_cancel (grpc_call *c, void *data)
{
  cancels++;
}

static void
h_hang_no_cancel (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  hang_started++;
  zombie = c;
}

/* Big: stream `total` bytes in 1 MiB messages, honouring back-pressure. */
static size_t big_total, big_sent, big_max_queued;
static int big_send_error;

static void
big_pump (grpc_call *c, void *data)
{
  static uint8_t chunk[1 << 20];
  while (big_sent < big_total)
    {
      int r = grpc_call_on_writable (c, big_pump, NULL);
      if (r == 0)
        return; /* armed: the queue is full, wait */
      ck_assert_int_eq (r, 1);
      size_t n = big_total - big_sent < sizeof chunk ? big_total - big_sent : sizeof chunk;
      memset (chunk, (int) (big_sent >> 20) & 0xff, n);
      int e = grpc_call_send_raw (c, chunk, n);
      if (e < 0)
        {
          big_send_error = e;
          return;
        }
      big_sent += n;
      if (grpc_call_queued (c) > big_max_queued)
        big_max_queued = grpc_call_queued (c);
    }
  grpc_call_finish (c, 0, NULL);
}

static void
h_big (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  big_pump (c, NULL);
}

/* Flood: ignore back-pressure until the hard bound stops us. */
static int flood_sent, flood_error;

static void
h_flood (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  static uint8_t chunk[1 << 20];
  int r;
  while ((r = grpc_call_send_raw (c, chunk, sizeof chunk)) == 0)
    flood_sent++;
  flood_error = r;
  grpc_call_finish (c, r, "send queue full");
}

static void
h_version (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  Containerd__Services__Version__V1__VersionResponse resp
      = CONTAINERD__SERVICES__VERSION__V1__VERSION_RESPONSE__INIT;
  resp.version = (char *) "9.8.7-berth-test";
  resp.revision = (char *) "cafebabe";
  ck_assert_int_eq (grpc_call_send (c, &resp.base), 0);
  grpc_call_finish (c, 0, NULL);
}

/* ctr version also asks for the daemon UUID. */
static void
h_server_info (grpc_call *c, const uint8_t *msg, size_t len, void *data)
{
  Containerd__Services__Introspection__V1__ServerResponse resp
      = CONTAINERD__SERVICES__INTROSPECTION__V1__SERVER_RESPONSE__INIT;
  resp.uuid = (char *) "0f0e0d0c-berth-test-uuid";
  ck_assert_int_eq (grpc_call_send (c, &resp.base), 0);
  grpc_call_finish (c, 0, NULL);
}

static const struct grpc_method methods[] = {
  { .path = "/test.T/Echo", .kind = GRPC_UNARY, .on_message = h_unary_echo },
  { .path = "/test.T/Fail", .kind = GRPC_UNARY, .on_message = h_fail },
  { .path = "/test.T/Meta", .kind = GRPC_UNARY, .on_message = h_meta },
  { .path = "/test.T/Deferred", .kind = GRPC_UNARY, .on_message = h_deferred, .on_cancel = deferred_cancel },
  { .path = "/test.T/Stream", .kind = GRPC_SERVER_STREAM, .on_message = h_stream },
  { .path = "/test.T/Sum", .kind = GRPC_CLIENT_STREAM, .on_message = h_sum_msg, .on_half_close = h_sum_close,
    .on_cancel = h_sum_cancel },
  { .path = "/test.T/Bidi", .kind = GRPC_BIDI, .on_message = h_bidi_msg, .on_half_close = h_bidi_close,
    .on_cancel = h_count_cancel },
  { .path = "/test.T/Hang", .kind = GRPC_UNARY, .on_message = h_hang, .on_cancel = h_count_cancel },
  { .path = "/test.T/HangNoCancel", .kind = GRPC_UNARY, .on_message = h_hang_no_cancel },
  { .path = "/test.T/Big", .kind = GRPC_SERVER_STREAM, .on_message = h_big, .on_cancel = h_count_cancel },
  { .path = "/test.T/Flood", .kind = GRPC_SERVER_STREAM, .on_message = h_flood },
  { .path = "/containerd.services.version.v1.Version/Version", .kind = GRPC_UNARY, .on_message = h_version },
  { .path = "/containerd.services.introspection.v1.Introspection/Server", .kind = GRPC_UNARY,
    .on_message = h_server_info },
};

static void
setup (void)
{
  strcpy (tmpdir, "/tmp/berth-grpc-XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (tmpdir));
  snprintf (sockpath, sizeof sockpath, "%s/run/berth/berth.sock", tmpdir);
  L = loop_new ();
  S = grpc_server_new (L);
  W = workers_new (L, 2);
  for (size_t i = 0; i < ARRAY_SIZE (methods); i++)
    ck_assert_int_eq (grpc_server_register (S, &methods[i]), 0);
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_server_listen_unix (S, sockpath, 0660, (gid_t) -1, &err);
  ck_assert_msg (r == 0, "listen: %s", err ? err->msg : "?");
}

static void
teardown (void)
{
  workers_free (W);
  run_for (5); /* let posted done() callbacks run */
  grpc_server_free (S);
  loop_free (L);
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", tmpdir);
}

/* ---- a small nghttp2 client on the same loop ------------------------ */

struct tstream
{
  int32_t id;
  char status[8];
  char content_type[64];
  int grpc_status;
  char grpc_message[256];
  int header_frames;
  bool trailers_only;
  bool closed;
  uint32_t close_error;
  uint8_t *body;
  size_t body_len, body_cap;
  /* request body */
  uint8_t *req;
  size_t req_len, req_off;
  bool req_eof;
  bool req_deferred;
};

struct tclient
{
  int fd;
  nghttp2_session *session;
  bool eof, goaway, write_blocked, paused;
};

static ssize_t
tc_send (nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *user)
{
  struct tclient *tc = user;
  ssize_t n = send (tc->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    {
      tc->write_blocked = true;
      return NGHTTP2_ERR_WOULDBLOCK;
    }
  return n < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : n;
}

static ssize_t
tc_recv (nghttp2_session *s, uint8_t *buf, size_t len, int flags, void *user)
{
  struct tclient *tc = user;
  ssize_t n = recv (tc->fd, buf, len, MSG_DONTWAIT);
  if (n == 0)
    return NGHTTP2_ERR_EOF;
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
  return n;
}

static int
tc_header (nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
           size_t vl, uint8_t flags, void *user)
{
  struct tstream *ts = nghttp2_session_get_stream_user_data (s, f->hd.stream_id);
  if (ts == NULL)
    return 0;
  int n = (int) vl;
  if (nl == 7 && memcmp (name, ":status", 7) == 0)
    snprintf (ts->status, sizeof ts->status, "%.*s", n, value);
  else if (nl == 12 && memcmp (name, "content-type", 12) == 0)
    snprintf (ts->content_type, sizeof ts->content_type, "%.*s", n, value);
  else if (nl == 11 && memcmp (name, "grpc-status", 11) == 0)
    ts->grpc_status = atoi ((const char *) value);
  else if (nl == 12 && memcmp (name, "grpc-message", 12) == 0)
    snprintf (ts->grpc_message, sizeof ts->grpc_message, "%.*s", n, value);
  return 0;
}

static int
tc_frame_recv (nghttp2_session *s, const nghttp2_frame *f, void *user)
{
  struct tclient *tc = user;
  if (f->hd.type == NGHTTP2_GOAWAY)
    tc->goaway = true;
  if (f->hd.type != NGHTTP2_HEADERS)
    return 0;
  struct tstream *ts = nghttp2_session_get_stream_user_data (s, f->hd.stream_id);
  if (ts == NULL)
    return 0;
  ts->header_frames++;
  if (ts->header_frames == 1 && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
    ts->trailers_only = true;
  return 0;
}

static int
tc_data (nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
  struct tstream *ts = nghttp2_session_get_stream_user_data (s, id);
  if (ts == NULL)
    return 0;
  if (ts->body_len + len > ts->body_cap)
    {
      ts->body_cap = (ts->body_len + len) * 2;
      ts->body = realloc (ts->body, ts->body_cap);
    }
  memcpy (ts->body + ts->body_len, data, len);
  ts->body_len += len;
  return 0;
}

static int
tc_close (nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
  struct tstream *ts = nghttp2_session_get_stream_user_data (s, id);
  if (ts)
    {
      ts->closed = true;
      ts->close_error = error_code;
    }
  return 0;
}

static void
tc_pump (struct tclient *tc, bool do_read)
{
  if (do_read && !tc->paused && !tc->eof && nghttp2_session_recv (tc->session) < 0)
    tc->eof = true;
  tc->write_blocked = false;
  if (!tc->eof && nghttp2_session_send (tc->session) < 0)
    tc->eof = true;
  if (!tc->eof)
    loop_mod_fd (L, tc->fd, (tc->paused ? 0 : EPOLLIN) | (tc->write_blocked ? EPOLLOUT : 0));
}

static void
tc_io (loop *l, int fd, uint32_t revents, void *data)
{
  tc_pump (data, revents & (EPOLLIN | EPOLLHUP | EPOLLERR));
}

static int
connect_unix (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strcpy (sa.sun_path, path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (connect (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  return fd;
}

static struct tclient *
tc_new (void)
{
  struct tclient *tc = calloc (1, sizeof *tc);
  tc->fd = connect_unix (sockpath);
  fcntl (tc->fd, F_SETFL, O_NONBLOCK);
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new (&cbs);
  nghttp2_session_callbacks_set_send_callback (cbs, tc_send);
  nghttp2_session_callbacks_set_recv_callback (cbs, tc_recv);
  nghttp2_session_callbacks_set_on_header_callback (cbs, tc_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback (cbs, tc_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback (cbs, tc_data);
  nghttp2_session_callbacks_set_on_stream_close_callback (cbs, tc_close);
  ck_assert_int_eq (nghttp2_session_client_new (&tc->session, cbs, tc), 0);
  nghttp2_session_callbacks_del (cbs);
  ck_assert_int_eq (nghttp2_submit_settings (tc->session, NGHTTP2_FLAG_NONE, NULL, 0), 0);
  ck_assert_int_eq (loop_add_fd (L, tc->fd, EPOLLIN, tc_io, tc), 0);
  tc_pump (tc, false);
  return tc;
}

static void
tc_free (struct tclient *tc)
{
  if (tc->fd >= 0)
    {
      loop_del_fd (L, tc->fd);
      close (tc->fd);
    }
  nghttp2_session_del (tc->session);
  free (tc);
}

static void
ts_free (struct tstream *ts)
{
  free (ts->body);
  free (ts->req);
  free (ts);
}

static ssize_t
tc_req_read (nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags, nghttp2_data_source *src,
             void *user)
{
  struct tstream *ts = src->ptr;
  size_t n = ts->req_len - ts->req_off;
  if (n > len)
    n = len;
  if (n)
    memcpy (buf, ts->req + ts->req_off, n);
  ts->req_off += n;
  if (ts->req_off == ts->req_len)
    {
      if (ts->req_eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      else if (n == 0)
        {
          ts->req_deferred = true;
          return NGHTTP2_ERR_DEFERRED;
        }
    }
  return (ssize_t) n;
}

/* Append a gRPC-framed message (flags byte, 4-byte length) to the request. */
static void
ts_write_frame (struct tclient *tc, struct tstream *ts, uint8_t flags, uint32_t declared, const void *msg,
                size_t len, bool eof)
{
  ts->req = realloc (ts->req, ts->req_len + 5 + len + 1);
  uint8_t *p = ts->req + ts->req_len;
  p[0] = flags;
  p[1] = declared >> 24;
  p[2] = declared >> 16;
  p[3] = declared >> 8;
  p[4] = declared;
  if (len)
    memcpy (p + 5, msg, len);
  ts->req_len += 5 + len;
  ts->req_eof = eof;
  if (ts->req_deferred && ts->id > 0)
    {
      ts->req_deferred = false;
      nghttp2_session_resume_data (tc->session, ts->id);
    }
  tc_pump (tc, false);
}

static void
ts_write (struct tclient *tc, struct tstream *ts, const void *msg, size_t len, bool eof)
{
  ts_write_frame (tc, ts, 0, (uint32_t) len, msg, len, eof);
}

static void
ts_end (struct tclient *tc, struct tstream *ts)
{
  ts->req_eof = true;
  if (ts->req_deferred)
    {
      ts->req_deferred = false;
      nghttp2_session_resume_data (tc->session, ts->id);
    }
  tc_pump (tc, false);
}

#define MAKE_NV(n, v) \
  { (uint8_t *) (n), (uint8_t *) (v), strlen (n), strlen (v), NGHTTP2_NV_FLAG_NONE }

/* Open a stream; extra is a NULL-terminated list of name, value pairs. */
static struct tstream *
tc_open_ex (struct tclient *tc, const char *method, const char *path, const char *ctype, const char **extra)
{
  struct tstream *ts = calloc (1, sizeof *ts);
  ts->grpc_status = -1;
  nghttp2_nv nva[16] = { MAKE_NV (":method", method), MAKE_NV (":scheme", "http"), MAKE_NV (":path", path),
                         MAKE_NV (":authority", "localhost"), MAKE_NV ("te", "trailers") };
  size_t n = 5;
  if (ctype)
    nva[n++] = (nghttp2_nv) MAKE_NV ("content-type", ctype);
  for (; extra && extra[0]; extra += 2)
    nva[n++] = (nghttp2_nv) MAKE_NV (extra[0], extra[1]);
  nghttp2_data_provider prd = { .source.ptr = ts, .read_callback = tc_req_read };
  ts->id = nghttp2_submit_request (tc->session, NULL, nva, n, strcmp (method, "POST") == 0 ? &prd : NULL, ts);
  ck_assert_int_gt (ts->id, 0);
  tc_pump (tc, false);
  return ts;
}

static struct tstream *
tc_open (struct tclient *tc, const char *path)
{
  return tc_open_ex (tc, "POST", path, "application/grpc", NULL);
}

/* A unary call: one message, half-close. */
static struct tstream *
tc_unary (struct tclient *tc, const char *path, const void *msg, size_t len)
{
  struct tstream *ts = calloc (1, sizeof *ts);
  ts->grpc_status = -1;
  ts_write_frame (tc, ts, 0, (uint32_t) len, msg, len, true);
  nghttp2_nv nva[] = { MAKE_NV (":method", "POST"), MAKE_NV (":scheme", "http"), MAKE_NV (":path", path),
                       MAKE_NV (":authority", "localhost"), MAKE_NV ("te", "trailers"),
                       MAKE_NV ("content-type", "application/grpc") };
  nghttp2_data_provider prd = { .source.ptr = ts, .read_callback = tc_req_read };
  ts->id = nghttp2_submit_request (tc->session, NULL, nva, ARRAY_SIZE (nva), &prd, ts);
  ck_assert_int_gt (ts->id, 0);
  tc_pump (tc, false);
  return ts;
}

static bool
ts_closed (void *arg)
{
  return ((struct tstream *) arg)->closed;
}

static void
wait_closed (struct tstream *ts)
{
  ck_assert_msg (run_until (ts_closed, ts, 10000), "stream %d never closed", ts->id);
}

/* The i-th gRPC message of a response body, NULL if there are fewer. */
static const uint8_t *
ts_message (const struct tstream *ts, int i, size_t *ret_len)
{
  size_t off = 0;
  for (int k = 0; off + 5 <= ts->body_len; k++)
    {
      const uint8_t *p = ts->body + off;
      uint32_t len = (uint32_t) p[1] << 24 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 8 | p[4];
      ck_assert_int_eq (p[0], 0);
      ck_assert_uint_le (off + 5 + len, ts->body_len);
      if (k == i)
        {
          *ret_len = len;
          return p + 5;
        }
      off += 5 + len;
    }
  return NULL;
}

static int
ts_count_messages (const struct tstream *ts)
{
  size_t len;
  int n = 0;
  while (ts_message (ts, n, &len))
    n++;
  return n;
}

static void
assert_message (const struct tstream *ts, int i, const char *expected)
{
  size_t len;
  const uint8_t *m = ts_message (ts, i, &len);
  ck_assert_msg (m != NULL, "no message %d", i);
  ck_assert_int_eq (len, strlen (expected));
  ck_assert (memcmp (m, expected, len) == 0);
}

/* ---- tests: calls --------------------------------------------------- */

START_TEST (test_unary_call_answers_headers_message_and_ok_trailers)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Echo", "hello", 5);
  wait_closed (ts);
  ck_assert_str_eq (ts->status, "200");
  ck_assert_str_eq (ts->content_type, "application/grpc");
  ck_assert_int_eq (ts->header_frames, 2); /* response headers + trailers */
  ck_assert (!ts->trailers_only);
  ck_assert_int_eq (ts->grpc_status, 0);
  ck_assert_int_eq (ts_count_messages (ts), 1);
  assert_message (ts, 0, "hello");
  ck_assert_int_eq (ts->close_error, NGHTTP2_NO_ERROR);

  /* An empty message is a message too. */
  struct tstream *t2 = tc_unary (tc, "/test.T/Echo", "", 0);
  wait_closed (t2);
  ck_assert_int_eq (t2->grpc_status, 0);
  ck_assert_int_eq (ts_count_messages (t2), 1);
  assert_message (t2, 0, "");
  ts_free (ts);
  ts_free (t2);
  tc_free (tc);
}
END_TEST

START_TEST (test_unknown_method_is_unimplemented_in_a_trailers_only_response)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/x/y", "a", 1);
  wait_closed (ts);
  ck_assert (ts->trailers_only);
  ck_assert_int_eq (ts->header_frames, 1);
  ck_assert_str_eq (ts->status, "200");
  ck_assert_str_eq (ts->content_type, "application/grpc");
  ck_assert_int_eq (ts->grpc_status, 12);
  ck_assert_str_eq (ts->grpc_message, "unknown method /x/y");
  ck_assert_int_eq (ts->body_len, 0);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_error_status_maps_errdefs_and_percent_encodes_the_message)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Fail", "", 0);
  wait_closed (ts);
  ck_assert (ts->trailers_only);
  ck_assert_int_eq (ts->grpc_status, 5); /* NOT_FOUND */
  ck_assert_str_eq (ts->grpc_message, "snapshot \"a b\" 100%25 gone%0A%C3%A9");
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_compressed_message_is_unimplemented)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_open (tc, "/test.T/Echo");
  ts_write_frame (tc, ts, 1, 3, "abc", 3, true);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 12);
  ck_assert_str_eq (ts->grpc_message, "compression not supported");
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_request_that_is_not_a_grpc_post_gets_an_http_error)
{
  struct tclient *tc = tc_new ();
  struct tstream *get = tc_open_ex (tc, "GET", "/test.T/Echo", "application/grpc", NULL);
  struct tstream *json = tc_open_ex (tc, "POST", "/test.T/Echo", "application/json", NULL);
  ts_end (tc, json);
  struct tstream *plus = tc_open_ex (tc, "POST", "/test.T/Echo", "application/grpc+proto", NULL);
  ts_write (tc, plus, "ok", 2, true);
  wait_closed (get);
  wait_closed (json);
  wait_closed (plus);
  ck_assert_str_eq (get->status, "405");
  ck_assert_int_eq (get->grpc_status, 13);
  ck_assert_str_eq (json->status, "415");
  ck_assert_int_eq (json->grpc_status, 13);
  ck_assert_str_eq (plus->status, "200");
  ck_assert_int_eq (plus->grpc_status, 0);
  assert_message (plus, 0, "ok");
  ts_free (get);
  ts_free (json);
  ts_free (plus);
  tc_free (tc);
}
END_TEST

START_TEST (test_unary_with_two_messages_or_none_is_refused)
{
  struct tclient *tc = tc_new ();
  struct tstream *two = tc_open (tc, "/test.T/Echo");
  ts_write (tc, two, "a", 1, false);
  ts_write (tc, two, "b", 1, true);
  struct tstream *none = tc_open (tc, "/test.T/Echo");
  ts_end (tc, none);
  wait_closed (two);
  wait_closed (none);
  ck_assert_int_eq (two->grpc_status, 13);
  ck_assert_int_eq (none->grpc_status, 13);
  ck_assert_int_eq (ts_count_messages (two), 0);
  ts_free (two);
  ts_free (none);
  tc_free (tc);
}
END_TEST

START_TEST (test_metadata_namespace_lease_and_timeout_reach_the_handler)
{
  struct tclient *tc = tc_new ();
  const char *extra[] = { "containerd-namespace", "k8s.io", "containerd-lease", "lease-1",
                          "x-custom", "v", "grpc-timeout", "1500m", NULL };
  struct tstream *ts = tc_open_ex (tc, "POST", "/test.T/Meta", "application/grpc", extra);
  ts_write (tc, ts, "", 0, true);
  struct tstream *plain = tc_unary (tc, "/test.T/Meta", "", 0);
  wait_closed (ts);
  wait_closed (plain);
  size_t len;
  const uint8_t *m = ts_message (ts, 0, &len);
  ck_assert_ptr_nonnull (m);
  char buf[256];
  snprintf (buf, sizeof buf, "%.*s", (int) len, m);
  long long dl = -2;
  ck_assert_msg (strncmp (buf, "ns=k8s.io lease=lease-1 x=v path=/test.T/Meta deadline=", 55) == 0, "%s", buf);
  dl = atoll (buf + 55);
  ck_assert_int_gt (dl, 1000);
  ck_assert_int_le (dl, 1500);
  assert_message (plain, 0, "ns=- lease=- x=- path=/test.T/Meta deadline=-1");
  ts_free (ts);
  ts_free (plain);
  tc_free (tc);
}
END_TEST

START_TEST (test_deferred_unary_call_finishes_from_the_worker_done_callback)
{
  struct tclient *tc = tc_new ();
  int64_t t0 = now_ms ();
  uint8_t ms = 200;
  struct tstream *ts = tc_unary (tc, "/test.T/Deferred", &ms, 1);
  /* Meanwhile the loop serves other calls. */
  struct tstream *quick = tc_unary (tc, "/test.T/Echo", "q", 1);
  wait_closed (quick);
  ck_assert (!ts->closed);
  wait_closed (ts);
  ck_assert_int_ge (now_ms () - t0, 195);
  ck_assert_int_eq (ts->grpc_status, 0);
  assert_message (ts, 0, "later");
  ck_assert_int_eq (deferred_done_ran, 1);
  ts_free (ts);
  ts_free (quick);
  tc_free (tc);
}
END_TEST

START_TEST (test_server_streaming_sends_every_message_then_trailers)
{
  struct tclient *tc = tc_new ();
  uint8_t n = 100;
  struct tstream *ts = tc_unary (tc, "/test.T/Stream", &n, 1);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  ck_assert_int_eq (ts_count_messages (ts), 100);
  assert_message (ts, 0, "msg-0");
  assert_message (ts, 99, "msg-99");
  /* Zero messages: a Trailers-Only OK. */
  n = 0;
  struct tstream *empty = tc_unary (tc, "/test.T/Stream", &n, 1);
  wait_closed (empty);
  ck_assert (empty->trailers_only);
  ck_assert_int_eq (empty->grpc_status, 0);
  ts_free (ts);
  ts_free (empty);
  tc_free (tc);
}
END_TEST

START_TEST (test_client_streaming_delivers_each_message_then_half_close)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_open (tc, "/test.T/Sum");
  ts_write (tc, ts, "aaa", 3, false);
  run_for (10);
  ts_write (tc, ts, "bb", 2, false);
  ts_write (tc, ts, "", 0, false);
  run_for (10);
  ck_assert (!ts->closed);
  ts_end (tc, ts);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  assert_message (ts, 0, "n=3 bytes=5");
  ts_free (ts);
  tc_free (tc);
}
END_TEST

struct count_arg
{
  struct tstream *ts;
  int n;
};

static bool
has_messages (void *arg)
{
  struct count_arg *a = arg;
  return ts_count_messages (a->ts) >= a->n;
}

START_TEST (test_bidi_echoes_each_message_before_the_client_half_closes)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_open (tc, "/test.T/Bidi");
  ts_write (tc, ts, "one", 3, false);
  struct count_arg one = { ts, 1 }, two = { ts, 2 };
  ck_assert (run_until (has_messages, &one, 5000));
  ck_assert_int_eq (ts_count_messages (ts), 1);
  assert_message (ts, 0, "one");
  ts_write (tc, ts, "two", 3, false);
  ck_assert (run_until (has_messages, &two, 5000));
  ck_assert_int_eq (ts_count_messages (ts), 2);
  ck_assert (!ts->closed);
  ts_end (tc, ts);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  assert_message (ts, 1, "two");
  ck_assert_int_eq (cancels, 0);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

/* A frame split byte by byte across DATA frames still reassembles. */
START_TEST (test_message_split_across_many_data_frames_reassembles)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_open (tc, "/test.T/Bidi");
  const uint8_t frame[] = { 0, 0, 0, 0, 4, 'a', 'b', 'c', 'd' };
  for (size_t i = 0; i < sizeof frame; i++)
    {
      ts->req = realloc (ts->req, ts->req_len + 1);
      ts->req[ts->req_len++] = frame[i];
      if (ts->req_deferred)
        {
          ts->req_deferred = false;
          nghttp2_session_resume_data (tc->session, ts->id);
        }
      tc_pump (tc, false);
      run_for (3);
    }
  struct count_arg one = { ts, 1 };
  ck_assert (run_until (has_messages, &one, 5000));
  ck_assert_int_eq (ts_count_messages (ts), 1);
  assert_message (ts, 0, "abcd");
  ts_end (tc, ts);
  wait_closed (ts);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

/* ---- tests: cancellation -------------------------------------------- */

static bool
cancels_reach (void *arg)
{
  return cancels >= *(int *) arg;
}

START_TEST (test_client_reset_cancels_a_pending_call)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Hang", "x", 1);
  ck_assert (run_until (flag_set, &hang_started, 5000));
  nghttp2_submit_rst_stream (tc->session, NGHTTP2_FLAG_NONE, ts->id, NGHTTP2_CANCEL);
  tc_pump (tc, false);
  int one = 1;
  ck_assert (run_until (cancels_reach, &one, 5000));
  /* The connection keeps working. */
  struct tstream *ok = tc_unary (tc, "/test.T/Echo", "z", 1);
  wait_closed (ok);
  ck_assert_int_eq (ok->grpc_status, 0);
  ck_assert_int_eq (cancels, 1);
  ts_free (ts);
  ts_free (ok);
  tc_free (tc);
}
END_TEST

static bool
all_three_started (void *bidi)
{
  return hang_started && sum_msgs && ts_count_messages (bidi) > 0;
}

START_TEST (test_disconnect_cancels_every_call_of_the_connection)
{
  struct tclient *tc = tc_new ();
  struct tstream *a = tc_unary (tc, "/test.T/Hang", "x", 1);
  struct tstream *b = tc_open (tc, "/test.T/Bidi");
  ts_write (tc, b, "m", 1, false);
  struct tstream *c = tc_open (tc, "/test.T/Sum");
  ts_write (tc, c, "m", 1, false);
  ck_assert (run_until (all_three_started, b, 5000));
  ck_assert_int_eq (hang_started, 1);
  tc_free (tc);
  int three = 3;
  ck_assert (run_until (cancels_reach, &three, 5000));
  run_for (10);
  ck_assert_int_eq (cancels, 3);
  ts_free (a);
  ts_free (b);
  ts_free (c);
}
END_TEST

static bool
deferred_done_seen (void *arg)
{
  return deferred_done_ran > 0;
}

START_TEST (test_cancelled_deferred_call_is_not_touched_by_its_late_done)
{
  struct tclient *tc = tc_new ();
  uint8_t ms = 80;
  struct tstream *ts = tc_unary (tc, "/test.T/Deferred", &ms, 1);
  run_for (20);
  nghttp2_submit_rst_stream (tc->session, NGHTTP2_FLAG_NONE, ts->id, NGHTTP2_CANCEL);
  tc_pump (tc, false);
  ck_assert (run_until (deferred_done_seen, NULL, 5000));
  ck_assert_int_eq (cancels, 1);
  ck_assert_int_eq (deferred_done_cancelled, 1);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_call_without_on_cancel_waits_for_finish_after_its_stream_is_gone)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/HangNoCancel", "x", 1);
  ck_assert (run_until (flag_set, &hang_started, 5000));
  ck_assert (!grpc_call_cancelled (zombie));
  tc_free (tc);
  run_for (30);
  /* Still valid (ASan would object otherwise), and it says so. */
  ck_assert (grpc_call_cancelled (zombie));
  ck_assert_int_eq (grpc_call_send_raw (zombie, (const uint8_t *) "x", 1), BERTH_E_CANCELLED);
  grpc_call_finish (zombie, 0, NULL); /* frees it */
  ts_free (ts);
}
END_TEST

/* ---- tests: limits and flow control --------------------------------- */

START_TEST (test_oversized_length_prefix_is_refused_without_buffering)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_open (tc, "/test.T/Sum");
  /* Only the prefix: the server must answer at once, not wait for 16 MiB. */
  ts_write_frame (tc, ts, 0, GRPC_MAX_MESSAGE + 1, NULL, 0, false);
  wait_closed (ts);
  ck_assert (ts->trailers_only);
  ck_assert_int_eq (ts->grpc_status, 8); /* RESOURCE_EXHAUSTED */
  ck_assert_msg (strstr (ts->grpc_message, "larger than max") != NULL, "%s", ts->grpc_message);
  /* Not a handler's business yet: Sum had no message, so nothing to cancel. */
  ck_assert_int_eq (cancels, 0);
  struct tstream *ok = tc_unary (tc, "/test.T/Echo", "still here", 10);
  wait_closed (ok);
  ck_assert_int_eq (ok->grpc_status, 0);
  ts_free (ts);
  ts_free (ok);
  tc_free (tc);
}
END_TEST

START_TEST (test_message_at_the_limit_flows_through_the_windows)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_open (tc, "/test.T/Sum");
  size_t big = GRPC_MAX_MESSAGE;
  uint8_t *buf = calloc (1, big);
  ts_write (tc, ts, buf, 1 << 20, false);
  ts_write (tc, ts, buf, big, true);
  free (buf);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  char expect[64];
  snprintf (expect, sizeof expect, "n=2 bytes=%zu", big + (1 << 20));
  assert_message (ts, 0, expect);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_large_server_stream_reaches_a_reader_intact)
{
  struct tclient *tc = tc_new ();
  big_total = 24u << 20;
  struct tstream *ts = tc_unary (tc, "/test.T/Big", "", 0);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  ck_assert_int_eq (ts_count_messages (ts), 24);
  size_t len;
  const uint8_t *m = ts_message (ts, 23, &len);
  ck_assert_int_eq (len, 1 << 20);
  ck_assert_int_eq (m[0], 23);
  ck_assert_int_eq (m[len - 1], 23);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_slow_reader_holds_the_producer_back)
{
  struct tclient *tc = tc_new ();
  big_total = 256u << 20;
  tc->paused = true; /* never read the socket: only the request goes out */
  struct tstream *ts = tc_unary (tc, "/test.T/Big", "", 0);
  run_for (300);
  printf ("slow reader: producer sent %zu bytes, peak queue %zu bytes\n", big_sent, big_max_queued);
  /* Queue ≤ soft mark + one message; everything else sits in the client's
   * window and the socket buffers, not in our memory. */
  ck_assert_uint_le (big_max_queued, GRPC_SEND_QUEUE_SOFT + (1u << 20) + 5);
  ck_assert_uint_lt (big_sent, 16u << 20);
  ck_assert_int_eq (big_send_error, 0);
  /* Cancel the rest; the producer learns through on_cancel. */
  tc_free (tc);
  int one = 1;
  ck_assert (run_until (cancels_reach, &one, 5000));
  ts_free (ts);
}
END_TEST

START_TEST (test_producer_ignoring_back_pressure_hits_the_hard_queue_bound)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Flood", "", 0);
  ck_assert (run_until (flag_set, &flood_error, 5000));
  ck_assert_int_eq (flood_error, BERTH_E_EXHAUSTED);
  ck_assert_int_le (flood_sent, (int) (GRPC_SEND_QUEUE_MAX >> 20) + 1);
  ck_assert_int_ge (flood_sent, (int) (GRPC_SEND_QUEUE_MAX >> 20) - 1);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 8);
  ck_assert_int_eq (ts_count_messages (ts), flood_sent);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

/* ---- tests: bad and idle clients ------------------------------------ */

struct raw
{
  int fd;
  int eof;
  size_t got;
};

static void
raw_io (loop *l, int fd, uint32_t revents, void *data)
{
  struct raw *r = data;
  char buf[4096];
  ssize_t n = read (fd, buf, sizeof buf);
  if (n > 0)
    r->got += (size_t) n;
  else if (n == 0 || (errno != EAGAIN && errno != EINTR))
    {
      r->eof = 1;
      loop_del_fd (l, fd);
    }
}

START_TEST (test_garbage_bytes_close_that_connection_only)
{
  struct raw r = { .fd = connect_unix (sockpath) };
  struct tclient *tc = tc_new ();
  fcntl (r.fd, F_SETFL, O_NONBLOCK);
  ck_assert_int_eq (loop_add_fd (L, r.fd, EPOLLIN, raw_io, &r), 0);
  const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ck_assert_int_eq (write (r.fd, junk, sizeof junk - 1), (ssize_t) sizeof junk - 1);
  ck_assert (run_until (flag_set, &r.eof, 5000));
  struct tstream *ts = tc_unary (tc, "/test.T/Echo", "fine", 4);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  /* And a new connection is accepted after that. */
  struct tclient *tc2 = tc_new ();
  struct tstream *t2 = tc_unary (tc2, "/test.T/Echo", "fine", 4);
  wait_closed (t2);
  ck_assert_int_eq (t2->grpc_status, 0);
  close (r.fd);
  ts_free (ts);
  ts_free (t2);
  tc_free (tc);
  tc_free (tc2);
}
END_TEST

START_TEST (test_silent_client_does_not_block_others)
{
  int silent = connect_unix (sockpath);
  int half = connect_unix (sockpath);
  /* Half a preface, then nothing. */
  ck_assert_int_eq (write (half, "PRI * HTTP/2.0\r\n", 16), 16);
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Echo", "hi", 2);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  close (silent);
  close (half);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

static bool
goaway_and_eof (void *arg)
{
  struct tclient *tc = arg;
  return tc->goaway && tc->eof;
}

/* ---- limits against hostile clients (struct grpc_limits) ------------ */

static bool
tc_eof (void *arg)
{
  struct tclient *tc = arg;
  return tc->eof;
}

static void
set_limits (unsigned max_conns, size_t conn_buffer, unsigned request_ms, unsigned idle_ms)
{
  struct grpc_limits lim;
  grpc_limits_default (&lim);
  lim.max_connections = max_conns;
  lim.max_conn_buffer = conn_buffer;
  lim.request_timeout_ms = request_ms;
  lim.idle_timeout_ms = idle_ms;
  ck_assert_int_eq (grpc_server_set_limits (S, &lim), 0);
}

START_TEST (test_limits_out_of_range_are_refused)
{
  struct grpc_limits lim;
  grpc_limits_default (&lim);
  lim.max_conn_buffer = 1024;
  ck_assert_int_eq (grpc_server_set_limits (S, &lim), BERTH_E_INVALID);
  grpc_limits_default (&lim);
  lim.max_connections = 0;
  ck_assert_int_eq (grpc_server_set_limits (S, &lim), BERTH_E_INVALID);
  grpc_limits_default (&lim);
  lim.request_timeout_ms = 10;
  ck_assert_int_eq (grpc_server_set_limits (S, &lim), BERTH_E_INVALID);
}
END_TEST

START_TEST (test_partial_messages_past_the_connection_cap_are_resource_exhausted)
{
  set_limits (16, 64u << 10, 30000, 0);
  struct tclient *tc = tc_new ();
  /* 40 KiB declared on two streams: the second would pass 64 KiB. */
  struct tstream *a = tc_open (tc, "/test.T/Sum");
  ts_write_frame (tc, a, 0, 40u << 10, "x", 1, false);
  struct tstream *b = tc_open (tc, "/test.T/Sum");
  ts_write_frame (tc, b, 0, 40u << 10, "y", 1, false);
  wait_closed (b);
  ck_assert_int_eq (b->grpc_status, 8);
  ck_assert_msg (strstr (b->grpc_message, "unfinished requests") != NULL, "%s", b->grpc_message);
  ck_assert (!a->closed);
  /* Another connection has its own share. */
  struct tclient *tc2 = tc_new ();
  struct tstream *c = tc_open (tc2, "/test.T/Sum");
  ts_write_frame (tc2, c, 0, 40u << 10, "z", 1, false);
  run_for (50);
  ck_assert (!c->closed);
  /* Once a's message is gone (reset), b's room is back. */
  nghttp2_submit_rst_stream (tc->session, NGHTTP2_FLAG_NONE, a->id, NGHTTP2_CANCEL);
  tc_pump (tc, false);
  run_for (50);
  struct tstream *d = tc_unary (tc, "/test.T/Echo", "ok", 2);
  wait_closed (d);
  ck_assert_int_eq (d->grpc_status, 0);
  ts_free (a);
  ts_free (b);
  ts_free (c);
  ts_free (d);
  tc_free (tc);
  tc_free (tc2);
}
END_TEST

START_TEST (test_message_not_finished_within_request_timeout_is_deadline_exceeded)
{
  set_limits (16, 32u << 20, 200, 0);
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_open (tc, "/test.T/Sum");
  ts_write_frame (tc, ts, 0, 100, "abc", 3, false);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 4);
  ck_assert_msg (strstr (ts->grpc_message, "request_timeout") != NULL, "%s", ts->grpc_message);
  /* A unary request never half-closed: the same. */
  struct tstream *u = tc_open (tc, "/test.T/Echo");
  ts_write_frame (tc, u, 0, 2, "hi", 2, false);
  wait_closed (u);
  ck_assert_int_eq (u->grpc_status, 4);
  /* The connection itself is fine. */
  struct tstream *ok = tc_unary (tc, "/test.T/Echo", "ok", 2);
  wait_closed (ok);
  ck_assert_int_eq (ok->grpc_status, 0);
  ts_free (ts);
  ts_free (u);
  ts_free (ok);
  tc_free (tc);
}
END_TEST

START_TEST (test_half_a_frame_closes_the_connection_after_request_timeout)
{
  set_limits (16, 32u << 20, 200, 0);
  struct raw r = { .fd = connect_unix (sockpath) };
  fcntl (r.fd, F_SETFL, O_NONBLOCK);
  ck_assert_int_eq (loop_add_fd (L, r.fd, EPOLLIN, raw_io, &r), 0);
  ck_assert_int_eq (write (r.fd, "PRI * HTTP/2.0\r\n", 16), 16);
  ck_assert (run_until (flag_set, &r.eof, 5000));
  close (r.fd);
}
END_TEST

START_TEST (test_idle_connection_gets_goaway_after_idle_timeout)
{
  set_limits (16, 32u << 20, 30000, 200);
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Echo", "hi", 2);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  ck_assert (run_until (goaway_and_eof, tc, 5000));
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_past_max_connections_the_longest_idle_one_is_closed)
{
  set_limits (2, 32u << 20, 30000, 0);
  struct tclient *a = tc_new ();
  run_for (20);
  struct tclient *b = tc_new ();
  struct tstream *hold = tc_open (b, "/test.T/Sum"); /* b is busy */
  run_for (20);
  struct tclient *c = tc_new ();
  ck_assert (run_until (goaway_and_eof, a, 5000));
  struct tstream *ts = tc_unary (c, "/test.T/Echo", "hi", 2);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  ck_assert (!b->eof);
  /* b and c busy: a fourth connection is refused. */
  struct tstream *hold2 = tc_open (c, "/test.T/Sum");
  run_for (20);
  struct tclient *d = tc_new ();
  ck_assert (run_until (tc_eof, d, 5000));
  ck_assert (!b->eof && !c->eof);
  ts_free (hold);
  ts_free (hold2);
  ts_free (ts);
  tc_free (a);
  tc_free (b);
  tc_free (c);
  tc_free (d);
}
END_TEST

START_TEST (test_shutdown_sends_goaway_closes_and_removes_the_socket)
{
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Hang", "x", 1);
  ck_assert (run_until (flag_set, &hang_started, 5000));
  grpc_server_shutdown (S);
  ck_assert (run_until (goaway_and_eof, tc, 5000));
  ck_assert_int_eq (cancels, 1);
  ck_assert_int_eq (access (sockpath, F_OK), -1);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

/* ---- tests: listening ----------------------------------------------- */

START_TEST (test_listen_creates_parents_and_applies_mode_and_group)
{
  struct stat st;
  char dir[192];
  snprintf (dir, sizeof dir, "%s/run/berth", tmpdir);
  ck_assert_int_eq (stat (dir, &st), 0);
  ck_assert_int_eq (st.st_mode & 07777, 0711);
  ck_assert_int_eq (stat (sockpath, &st), 0);
  ck_assert (S_ISSOCK (st.st_mode));
  ck_assert_int_eq (st.st_mode & 07777, 0660);

  if (geteuid () != 0)
    {
      printf ("SKIP group ownership part: needs root\n");
      return;
    }
  char p2[192];
  snprintf (p2, sizeof p2, "%s/other/b.sock", tmpdir);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (grpc_server_listen_unix (S, p2, 0600, 4321, &err), 0);
  ck_assert_int_eq (stat (p2, &st), 0);
  ck_assert_int_eq (st.st_gid, 4321);
  ck_assert_int_eq (st.st_mode & 07777, 0600);
}
END_TEST

START_TEST (test_second_server_on_a_live_socket_is_refused)
{
  grpc_server *s2 = grpc_server_new (L);
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_server_listen_unix (s2, sockpath, 0660, (gid_t) -1, &err);
  ck_assert_int_eq (r, BERTH_E_EXISTS);
  ck_assert_msg (strstr (err->msg, "already serving") && strstr (err->msg, sockpath), "%s", err->msg);
  grpc_server_free (s2);
  /* The first one still serves. */
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Echo", "x", 1);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_stale_socket_is_replaced)
{
  char p[192];
  snprintf (p, sizeof p, "%s/stale.sock", tmpdir);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strcpy (sa.sun_path, p);
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_eq (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  close (fd); /* the path stays behind, nobody listens */
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_server_listen_unix (S, p, 0660, (gid_t) -1, &err);
  ck_assert_msg (r == 0, "%s", err ? err->msg : "");
  strcpy (sockpath, p);
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Echo", "x", 1);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_uncreatable_directory_is_named_in_the_error)
{
  char file[192], p[256];
  snprintf (file, sizeof file, "%s/afile", tmpdir);
  int fd = open (file, O_CREAT | O_WRONLY, 0600);
  close (fd);
  snprintf (p, sizeof p, "%s/sub/berth.sock", file);
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_server_listen_unix (S, p, 0660, (gid_t) -1, &err);
  ck_assert_int_lt (r, 0);
  char dir[256];
  snprintf (dir, sizeof dir, "`%s/sub'", file);
  ck_assert_msg (strstr (err->msg, "cannot create directory") && strstr (err->msg, dir), "%s", err->msg);
}
END_TEST

START_TEST (test_listen_fd_serves_an_inherited_socket)
{
  char p[192];
  snprintf (p, sizeof p, "%s/activated.sock", tmpdir);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strcpy (sa.sun_path, p);
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  ck_assert_int_eq (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (grpc_server_listen_fd (S, fd, &err), BERTH_E_INVALID); /* not listening yet */
  berth_error_free (err);
  err = NULL;
  ck_assert_int_eq (listen (fd, 16), 0);
  ck_assert_int_eq (grpc_server_listen_fd (S, fd, &err), 0);
  strcpy (sockpath, p);
  struct tclient *tc = tc_new ();
  struct tstream *ts = tc_unary (tc, "/test.T/Echo", "x", 1);
  wait_closed (ts);
  ck_assert_int_eq (ts->grpc_status, 0);
  ts_free (ts);
  tc_free (tc);
}
END_TEST

START_TEST (test_register_refuses_duplicates_and_bad_methods)
{
  struct grpc_method m = { .path = "/test.T/Echo", .on_message = h_unary_echo };
  ck_assert_int_eq (grpc_server_register (S, &m), BERTH_E_EXISTS);
  m.path = "no-slash";
  ck_assert_int_eq (grpc_server_register (S, &m), BERTH_E_INVALID);
  m.path = "/a/b";
  m.on_message = NULL;
  ck_assert_int_eq (grpc_server_register (S, &m), BERTH_E_INVALID);
}
END_TEST

/* ---- tests: the real ctr (grpc-go) ---------------------------------- */

struct child
{
  pid_t pid;
  int out;
  char buf[8192];
  size_t len;
  int done;
  int status;
};

static void
child_io (loop *l, int fd, uint32_t revents, void *data)
{
  struct child *c = data;
  ssize_t n = read (fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
  if (n > 0)
    {
      c->len += (size_t) n;
      c->buf[c->len] = '\0';
      return;
    }
  loop_del_fd (l, fd);
  close (fd);
  waitpid (c->pid, &c->status, 0);
  c->done = 1;
}

/* Run ctr with args while the loop serves it; returns its output. */
static struct child *
run_ctr (const char *a1, const char *a2)
{
  int p[2];
  ck_assert_int_eq (pipe2 (p, O_CLOEXEC), 0);
  struct child *c = calloc (1, sizeof *c);
  printf ("running: ctr --address %s %s %s\n", sockpath, a1, a2 ? a2 : "");
  c->pid = fork ();
  ck_assert_int_ge (c->pid, 0);
  if (c->pid == 0)
    {
      dup2 (p[1], 1);
      dup2 (p[1], 2);
      execl ("/usr/bin/ctr", "ctr", "--address", sockpath, "--timeout", "10s", a1, a2, (char *) NULL);
      _exit (127);
    }
  close (p[1]);
  c->out = p[0];
  ck_assert_int_eq (loop_add_fd (L, p[0], EPOLLIN, child_io, c), 0);
  ck_assert_msg (run_until (flag_set, &c->done, 30000), "ctr did not finish: %s", c->buf);
  printf ("%s", c->buf);
  return c;
}

START_TEST (test_real_ctr_version_talks_to_the_server)
{
  if (access ("/usr/bin/ctr", X_OK) != 0)
    {
      printf ("SKIP ctr interop: /usr/bin/ctr missing (Debian package containerd)\n");
      return;
    }
  struct child *c = run_ctr ("version", NULL);
  ck_assert_msg (WIFEXITED (c->status) && WEXITSTATUS (c->status) == 0, "ctr failed: %s", c->buf);
  ck_assert_msg (strstr (c->buf, "9.8.7-berth-test") != NULL, "%s", c->buf);
  ck_assert_msg (strstr (c->buf, "cafebabe") != NULL, "%s", c->buf);
  ck_assert_msg (strstr (c->buf, "0f0e0d0c-berth-test-uuid") != NULL, "%s", c->buf);
  free (c);
}
END_TEST

START_TEST (test_real_ctr_prints_unimplemented_for_an_unknown_service)
{
  if (access ("/usr/bin/ctr", X_OK) != 0)
    {
      printf ("SKIP ctr interop: /usr/bin/ctr missing (Debian package containerd)\n");
      return;
    }
  struct child *c = run_ctr ("namespaces", "ls");
  ck_assert_msg (WIFEXITED (c->status) && WEXITSTATUS (c->status) != 0, "ctr should fail: %s", c->buf);
  ck_assert_msg (strstr (c->buf, "unknown method /containerd.services.namespaces.v1.Namespaces/List") != NULL,
                 "%s", c->buf);
  free (c);
}
END_TEST

static Suite *
grpc_server_suite (void)
{
  Suite *s = suite_create ("grpc-server");
  TCase *tc = tcase_create ("grpc-server");
  tcase_set_timeout (tc, 60);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_unary_call_answers_headers_message_and_ok_trailers);
  tcase_add_test (tc, test_unknown_method_is_unimplemented_in_a_trailers_only_response);
  tcase_add_test (tc, test_error_status_maps_errdefs_and_percent_encodes_the_message);
  tcase_add_test (tc, test_compressed_message_is_unimplemented);
  tcase_add_test (tc, test_request_that_is_not_a_grpc_post_gets_an_http_error);
  tcase_add_test (tc, test_unary_with_two_messages_or_none_is_refused);
  tcase_add_test (tc, test_metadata_namespace_lease_and_timeout_reach_the_handler);
  tcase_add_test (tc, test_deferred_unary_call_finishes_from_the_worker_done_callback);
  tcase_add_test (tc, test_server_streaming_sends_every_message_then_trailers);
  tcase_add_test (tc, test_client_streaming_delivers_each_message_then_half_close);
  tcase_add_test (tc, test_bidi_echoes_each_message_before_the_client_half_closes);
  tcase_add_test (tc, test_message_split_across_many_data_frames_reassembles);
  tcase_add_test (tc, test_client_reset_cancels_a_pending_call);
  tcase_add_test (tc, test_disconnect_cancels_every_call_of_the_connection);
  tcase_add_test (tc, test_cancelled_deferred_call_is_not_touched_by_its_late_done);
  tcase_add_test (tc, test_call_without_on_cancel_waits_for_finish_after_its_stream_is_gone);
  tcase_add_test (tc, test_oversized_length_prefix_is_refused_without_buffering);
  tcase_add_test (tc, test_message_at_the_limit_flows_through_the_windows);
  tcase_add_test (tc, test_large_server_stream_reaches_a_reader_intact);
  tcase_add_test (tc, test_slow_reader_holds_the_producer_back);
  tcase_add_test (tc, test_producer_ignoring_back_pressure_hits_the_hard_queue_bound);
  tcase_add_test (tc, test_garbage_bytes_close_that_connection_only);
  tcase_add_test (tc, test_limits_out_of_range_are_refused);
  tcase_add_test (tc, test_partial_messages_past_the_connection_cap_are_resource_exhausted);
  tcase_add_test (tc, test_message_not_finished_within_request_timeout_is_deadline_exceeded);
  tcase_add_test (tc, test_half_a_frame_closes_the_connection_after_request_timeout);
  tcase_add_test (tc, test_idle_connection_gets_goaway_after_idle_timeout);
  tcase_add_test (tc, test_past_max_connections_the_longest_idle_one_is_closed);
  tcase_add_test (tc, test_silent_client_does_not_block_others);
  tcase_add_test (tc, test_shutdown_sends_goaway_closes_and_removes_the_socket);
  tcase_add_test (tc, test_listen_creates_parents_and_applies_mode_and_group);
  tcase_add_test (tc, test_second_server_on_a_live_socket_is_refused);
  tcase_add_test (tc, test_stale_socket_is_replaced);
  tcase_add_test (tc, test_uncreatable_directory_is_named_in_the_error);
  tcase_add_test (tc, test_listen_fd_serves_an_inherited_socket);
  tcase_add_test (tc, test_register_refuses_duplicates_and_bad_methods);
  tcase_add_test (tc, test_real_ctr_version_talks_to_the_server);
  tcase_add_test (tc, test_real_ctr_prints_unimplemented_for_an_unknown_service);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (grpc_server_suite)
