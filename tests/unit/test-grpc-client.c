/* Unit tests for lib/grpc-client.c against a tiny nghttp2 h2c server that
 * runs in a child process on a unix socket in a temporary directory. */
#include <config.h>

#include <check.h>

#include "check-main.h"
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "cleanup.h"
#include "grpc-client.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.pb-c.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.pb-c.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

typedef Containerd__Services__Version__V1__VersionResponse msg_t;
#define MSG_DESC (&containerd__services__version__v1__version_response__descriptor)
#define MSG_INIT CONTAINERD__SERVICES__VERSION__V1__VERSION_RESPONSE__INIT

/* ---- the test server ---- */

struct srv_stream
{
  char path[128];
  char ns[64];
  char timeout[32];
  uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_len, out_off;
  bool eof;       /* all response data queued */
  int status;     /* grpc-status for the trailers */
  bool deferred;
};

struct srv
{
  nghttp2_session *session;
  bool close_now;
};

static void
out_append (struct srv_stream *s, const void *data, size_t len)
{
  s->out = realloc (s->out, s->out_len + len);
  memcpy (s->out + s->out_len, data, len);
  s->out_len += len;
}

static void
out_message (struct srv_stream *s, const char *version, const char *revision)
{
  msg_t m = MSG_INIT;
  m.version = (char *) version;
  m.revision = (char *) revision;
  size_t len = protobuf_c_message_get_packed_size (&m.base);
  uint8_t hdr[5] = { 0, (uint8_t) (len >> 24), (uint8_t) (len >> 16), (uint8_t) (len >> 8), (uint8_t) len };
  out_append (s, hdr, 5);
  uint8_t *buf = malloc (len + 1);
  protobuf_c_message_pack (&m.base, buf);
  out_append (s, buf, len);
  free (buf);
}

static ssize_t
srv_read (nghttp2_session *session, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
          nghttp2_data_source *source, void *user_data)
{
  struct srv_stream *s = source->ptr;
  size_t avail = s->out_len - s->out_off;
  if (avail == 0)
    {
      if (!s->eof)
        {
          s->deferred = true;
          return NGHTTP2_ERR_DEFERRED;
        }
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      char st[16];
      snprintf (st, sizeof st, "%d", s->status);
      nghttp2_nv trailers[] = { { (uint8_t *) "grpc-status", (uint8_t *) st, 11, strlen (st), 0 } };
      nghttp2_submit_trailer (session, id, trailers, 1);
      return 0;
    }
  size_t n = avail < length ? avail : length;
  memcpy (buf, s->out + s->out_off, n);
  s->out_off += n;
  return (ssize_t) n;
}

static void
respond (nghttp2_session *session, int32_t id, struct srv_stream *s)
{
  nghttp2_nv hdrs[] = {
    { (uint8_t *) ":status", (uint8_t *) "200", 7, 3, 0 },
    { (uint8_t *) "content-type", (uint8_t *) "application/grpc", 12, 16, 0 },
    { (uint8_t *) "x-test", (uint8_t *) "yes", 6, 3, 0 },
  };
  nghttp2_data_provider prd = { .source.ptr = s, .read_callback = srv_read };
  nghttp2_submit_response (session, id, hdrs, 3, &prd);
}

static void
respond_trailers_only (nghttp2_session *session, int32_t id, const char *status, const char *message)
{
  nghttp2_nv hdrs[] = {
    { (uint8_t *) ":status", (uint8_t *) "200", 7, 3, 0 },
    { (uint8_t *) "content-type", (uint8_t *) "application/grpc", 12, 16, 0 },
    { (uint8_t *) "grpc-status", (uint8_t *) status, 11, strlen (status), 0 },
    { (uint8_t *) "grpc-message", (uint8_t *) message, 12, strlen (message), 0 },
  };
  nghttp2_submit_response (session, id, hdrs, 4, NULL);
}

/* Unpack the first request message (VersionResponse used as a request). */
static msg_t *
request_message (struct srv_stream *s)
{
  if (s->in_len < 5)
    return NULL;
  size_t len = (size_t) s->in[1] << 24 | (size_t) s->in[2] << 16 | (size_t) s->in[3] << 8 | s->in[4];
  return (msg_t *) protobuf_c_message_unpack (MSG_DESC, NULL, len, s->in + 5);
}

static void
handle_request (struct srv *srv, int32_t id, struct srv_stream *s)
{
  nghttp2_session *session = srv->session;
  if (strcmp (s->path, "/test.Echo/Unary") == 0)
    {
      msg_t *req = request_message (s);
      char version[256];
      snprintf (version, sizeof version, "%s|%s", req ? req->version : "(none)", s->ns);
      out_message (s, version, *s->timeout ? s->timeout : "none");
      if (req)
        protobuf_c_message_free_unpacked (&req->base, NULL);
      s->eof = true;
      respond (session, id, s);
    }
  else if (strcmp (s->path, "/test.Echo/Error") == 0)
    respond_trailers_only (session, id, "5", "namespace%20%22x%22%3A%20not found%");
  else if (strcmp (s->path, "/test.Echo/Stream") == 0)
    {
      for (int i = 0; i < 3; i++)
        {
          char v[8];
          snprintf (v, sizeof v, "%d", i);
          out_message (s, v, "");
        }
      s->eof = true;
      respond (session, id, s);
    }
  else if (strcmp (s->path, "/test.Echo/Big") == 0)
    {
      uint8_t hdr[5] = { 0, 0x01, 0x10, 0, 0 }; /* 17 MiB */
      out_append (s, hdr, 5);
      respond (session, id, s);
    }
  else if (strcmp (s->path, "/test.Echo/Hang") == 0)
    ;
  else if (strcmp (s->path, "/test.Echo/Close") == 0)
    srv->close_now = true;
  else if (strcmp (s->path, "/test.Echo/Bidi") == 0)
    {
      s->eof = true;
      if (s->deferred)
        {
          s->deferred = false;
          nghttp2_session_resume_data (session, id);
        }
    }
  else
    respond_trailers_only (session, id, "12", "unknown method");
}

static int
srv_on_begin_headers (nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
  struct srv_stream *s = calloc (1, sizeof *s);
  nghttp2_session_set_stream_user_data (session, frame->hd.stream_id, s);
  return 0;
}

static int
srv_on_header (nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
               const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
  struct srv_stream *s = nghttp2_session_get_stream_user_data (session, frame->hd.stream_id);
  if (s == NULL)
    return 0;
  if (strcmp ((const char *) name, ":path") == 0)
    snprintf (s->path, sizeof s->path, "%s", value);
  else if (strcmp ((const char *) name, "containerd-namespace") == 0)
    snprintf (s->ns, sizeof s->ns, "%s", value);
  else if (strcmp ((const char *) name, "grpc-timeout") == 0)
    snprintf (s->timeout, sizeof s->timeout, "%s", value);
  return 0;
}

static int
srv_on_data (nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user_data)
{
  struct srv_stream *s = nghttp2_session_get_stream_user_data (session, id);
  if (s == NULL)
    return 0;
  s->in = realloc (s->in, s->in_len + len + 1);
  memcpy (s->in + s->in_len, data, len);
  s->in_len += len;
  if (strcmp (s->path, "/test.Echo/Bidi") == 0)
    {
      /* Echo every complete message at once, before the client half-closes. */
      while (s->in_len >= 5)
        {
          size_t mlen = (size_t) s->in[1] << 24 | (size_t) s->in[2] << 16 | (size_t) s->in[3] << 8 | s->in[4];
          if (s->in_len < 5 + mlen)
            break;
          out_append (s, s->in, 5 + mlen);
          memmove (s->in, s->in + 5 + mlen, s->in_len - 5 - mlen);
          s->in_len -= 5 + mlen;
        }
      if (s->deferred)
        {
          s->deferred = false;
          nghttp2_session_resume_data (session, id);
        }
    }
  return 0;
}

static int
srv_on_frame (nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
  struct srv *srv = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
    return 0;
  struct srv_stream *s = nghttp2_session_get_stream_user_data (session, frame->hd.stream_id);
  if (s == NULL)
    return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && strcmp (s->path, "/test.Echo/Bidi") == 0)
    respond (session, frame->hd.stream_id, s);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
    handle_request (srv, frame->hd.stream_id, s);
  return 0;
}

static void
serve_connection (int fd)
{
  struct srv srv = { 0 };
  nghttp2_session_callbacks *cbs;
  nghttp2_session_callbacks_new (&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback (cbs, srv_on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback (cbs, srv_on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback (cbs, srv_on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback (cbs, srv_on_frame);
  nghttp2_session_server_new (&srv.session, cbs, &srv);
  nghttp2_session_callbacks_del (cbs);
  nghttp2_submit_settings (srv.session, NGHTTP2_FLAG_NONE, NULL, 0);
  for (;;)
    {
      const uint8_t *data;
      ssize_t n;
      while ((n = nghttp2_session_mem_send (srv.session, &data)) > 0)
        for (ssize_t off = 0; off < n;)
          {
            ssize_t w = send (fd, data + off, (size_t) (n - off), MSG_NOSIGNAL);
            if (w <= 0)
              goto out;
            off += w;
          }
      if (srv.close_now || n < 0)
        break;
      uint8_t buf[65536];
      ssize_t r = recv (fd, buf, sizeof buf, 0);
      if (r <= 0 || nghttp2_session_mem_recv (srv.session, buf, (size_t) r) < 0)
        break;
    }
out:
  nghttp2_session_del (srv.session);
  close (fd);
}

/* One temporary directory for the test case, made and removed by an
 * unchecked fixture in the runner process, so that it goes away even when a
 * forked test fails half-way; each test's server socket is named after the
 * test's pid. */
static char tmpdir[64];
static char sock_path[128];
static pid_t server_pid;

static void
tmpdir_create (void)
{
  strcpy (tmpdir, "/tmp/test-grpc-client.XXXXXX");
  if (mkdtemp (tmpdir) == NULL)
    abort ();
}

static void
tmpdir_remove (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", tmpdir);
}

static void
start_server (void)
{
  snprintf (sock_path, sizeof sock_path, "%s/s-%d.sock", tmpdir, (int) getpid ());
  int lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strcpy (sa.sun_path, sock_path);
  ck_assert_int_eq (bind (lfd, (struct sockaddr *) &sa, sizeof sa), 0);
  ck_assert_int_eq (listen (lfd, 16), 0);
  server_pid = fork ();
  ck_assert_int_ge (server_pid, 0);
  if (server_pid == 0)
    {
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      for (;;)
        {
          int fd = accept (lfd, NULL, NULL);
          if (fd < 0)
            _exit (1);
          serve_connection (fd);
        }
    }
  close (lfd);
}

static void
stop_server (void)
{
  if (server_pid > 0)
    {
      kill (server_pid, SIGKILL);
      waitpid (server_pid, NULL, 0);
      server_pid = 0;
    }
  unlink (sock_path);
}

static grpc_client *
connect_or_fail (void)
{
  grpc_client *c = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_client_connect (sock_path, 1000, &c, &err);
  ck_assert_msg (r == 0, "connect: %s", berth_error_message (err));
  return c;
}

/* ---- tests ---- */

START_TEST (test_connecting_to_a_missing_socket_names_the_path_and_the_reason)
{
  _cleanup_error_ berth_error *err = NULL;
  grpc_client *c = NULL;
  int r = grpc_client_connect ("/nonexistent-berth-dir/berth.sock", 1000, &c, &err);
  ck_assert_int_eq (r, BERTH_E_NOTFOUND);
  ck_assert_ptr_null (c);
  ck_assert_int_eq (err->errnum, ENOENT);
  ck_assert_str_eq (berth_error_message (err),
                    "cannot connect to /nonexistent-berth-dir/berth.sock: No such file or directory");
}
END_TEST

START_TEST (test_connecting_to_a_socket_nobody_listens_on_is_refused)
{
  char path[128];
  snprintf (path, sizeof path, "%s/stale.sock", tmpdir);
  /* A socket file left behind by a dead daemon: bound, never listening. */
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  strcpy (sa.sun_path, path);
  ck_assert_int_eq (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  close (fd);

  _cleanup_error_ berth_error *err = NULL;
  grpc_client *c = NULL;
  int r = grpc_client_connect (path, 1000, &c, &err);
  unlink (path);
  ck_assert_int_eq (r, BERTH_E_UNAVAILABLE);
  ck_assert_int_eq (err->errnum, ECONNREFUSED);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "stale.sock: Connection refused"));
}
END_TEST

START_TEST (test_a_socket_path_too_long_is_invalid)
{
  char path[200];
  memset (path, 'a', sizeof path - 1);
  path[0] = '/';
  path[sizeof path - 1] = 0;
  _cleanup_error_ berth_error *err = NULL;
  grpc_client *c = NULL;
  ck_assert_int_eq (grpc_client_connect (path, 1000, &c, &err), BERTH_E_INVALID);
}
END_TEST

START_TEST (test_unary_call_sends_request_and_metadata_and_returns_the_response)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  msg_t req = MSG_INIT;
  req.version = "hello";
  struct grpc_client_md md[] = { { "containerd-namespace", "k8s.io" } };
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, "/test.Echo/Unary", md, 1, &req.base, MSG_DESC, &resp, &err);
  ck_assert_msg (r == 0, "unary: %s", berth_error_message (err));
  msg_t *m = (msg_t *) resp;
  ck_assert_str_eq (m->version, "hello|k8s.io");
  ck_assert_str_eq (m->revision, "none"); /* no deadline: no grpc-timeout */
  protobuf_c_message_free_unpacked (resp, NULL);

  /* A second call on the same connection works too. */
  resp = NULL;
  req.version = "again";
  r = grpc_client_unary (c, "/test.Echo/Unary", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  ck_assert_msg (r == 0, "unary: %s", berth_error_message (err));
  ck_assert_str_eq (((msg_t *) resp)->version, "again|");
  protobuf_c_message_free_unpacked (resp, NULL);
  stop_server ();
}
END_TEST

START_TEST (test_a_deadline_is_sent_as_grpc_timeout)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  grpc_client_set_deadline (c, 5000);
  msg_t req = MSG_INIT;
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, "/test.Echo/Unary", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  ck_assert_msg (r == 0, "unary: %s", berth_error_message (err));
  ck_assert_str_eq (((msg_t *) resp)->revision, "5000m");
  protobuf_c_message_free_unpacked (resp, NULL);
  stop_server ();
}
END_TEST

START_TEST (test_error_status_maps_to_berth_code_with_decoded_message)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  msg_t req = MSG_INIT;
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, "/test.Echo/Error", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  ck_assert_int_eq (r, BERTH_E_NOTFOUND);
  ck_assert_ptr_null (resp);
  ck_assert_str_eq (berth_error_message (err), "namespace \"x\": not found%");

  berth_error_free (err);
  err = NULL;
  r = grpc_client_unary (c, "/test.Nope/Nothing", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  ck_assert_int_eq (r, BERTH_E_NOTSUP);
  stop_server ();
}
END_TEST

static int
collect (const ProtobufCMessage *msg, void *data, berth_error **err)
{
  char *seen = data;
  strcat (seen, ((const msg_t *) msg)->version);
  return 0;
}

START_TEST (test_server_stream_delivers_every_message_in_order)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  msg_t req = MSG_INIT;
  char seen[16] = "";
  int r = grpc_client_server_stream (c, "/test.Echo/Stream", NULL, 0, &req.base, MSG_DESC, collect, seen, &err);
  ck_assert_msg (r == 0, "stream: %s", berth_error_message (err));
  ck_assert_str_eq (seen, "012");
  stop_server ();
}
END_TEST

static int
stop_after_first (const ProtobufCMessage *msg, void *data, berth_error **err)
{
  (*(int *) data)++;
  return berth_error_set (err, BERTH_E_CANCELLED, 0, "enough");
}

START_TEST (test_server_stream_callback_error_stops_the_call)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  msg_t req = MSG_INIT;
  int calls = 0;
  int r = grpc_client_server_stream (c, "/test.Echo/Stream", NULL, 0, &req.base, MSG_DESC, stop_after_first, &calls,
                                     &err);
  ck_assert_int_eq (r, BERTH_E_CANCELLED);
  ck_assert_int_eq (calls, 1);
  ck_assert_str_eq (berth_error_message (err), "enough");
  stop_server ();
}
END_TEST

START_TEST (test_bidi_call_echoes_messages_before_half_close)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_(grpc_client_call_freep) grpc_client_call *call = NULL;
  int r = grpc_client_call_open (c, "/test.Echo/Bidi", NULL, 0, &call, &err);
  ck_assert_msg (r == 0, "open: %s", berth_error_message (err));

  /* One small message, then one of 2 MiB that needs several windows. */
  size_t big_len = 2u << 20;
  char *big = malloc (big_len + 1);
  memset (big, 'x', big_len);
  big[big_len] = 0;
  const char *payloads[] = { "ping", big };
  for (int i = 0; i < 2; i++)
    {
      msg_t m = MSG_INIT;
      m.version = (char *) payloads[i];
      r = grpc_client_call_send (call, &m.base, &err);
      ck_assert_msg (r == 0, "send: %s", berth_error_message (err));
      ProtobufCMessage *echo = NULL;
      r = grpc_client_call_recv (call, MSG_DESC, &echo, &err);
      ck_assert_msg (r == 1, "recv: %s", berth_error_message (err));
      ck_assert_str_eq (((msg_t *) echo)->version, payloads[i]);
      protobuf_c_message_free_unpacked (echo, NULL);
    }
  free (big);
  ck_assert_str_eq (grpc_client_call_metadata (call, "x-test"), "yes");
  ck_assert_int_eq (grpc_client_call_close_send (call, &err), 0);
  ProtobufCMessage *none = NULL;
  ck_assert_int_eq (grpc_client_call_recv (call, MSG_DESC, &none, &err), 0);
  ck_assert_ptr_null (none);
  stop_server ();
}
END_TEST

START_TEST (test_deadline_cancels_a_call_the_server_never_answers)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  grpc_client_set_deadline (c, 200);
  msg_t req = MSG_INIT;
  ProtobufCMessage *resp = NULL;
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  int r = grpc_client_unary (c, "/test.Echo/Hang", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  ck_assert_int_eq (r, BERTH_E_DEADLINE);
  long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
  ck_assert_int_ge (ms, 190);
  ck_assert_int_lt (ms, 2000);

  /* The connection is still usable after the cancelled call. */
  berth_error_free (err);
  err = NULL;
  grpc_client_set_deadline (c, 0);
  r = grpc_client_unary (c, "/test.Echo/Unary", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  ck_assert_msg (r == 0, "unary after deadline: %s", berth_error_message (err));
  protobuf_c_message_free_unpacked (resp, NULL);
  stop_server ();
}
END_TEST

START_TEST (test_oversized_response_message_is_refused)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  msg_t req = MSG_INIT;
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, "/test.Echo/Big", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  ck_assert_int_eq (r, BERTH_E_EXHAUSTED);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "exceeds the limit"));
  stop_server ();
}
END_TEST

START_TEST (test_oversized_request_message_is_refused_before_sending)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_(grpc_client_call_freep) grpc_client_call *call = NULL;
  ck_assert_int_eq (grpc_client_call_open (c, "/test.Echo/Bidi", NULL, 0, &call, &err), 0);
  static char huge[(16u << 20) + 1];
  ck_assert_int_eq (grpc_client_call_send_raw (call, huge, sizeof huge, &err), BERTH_E_INVALID);
  stop_server ();
}
END_TEST

START_TEST (test_server_closing_the_connection_makes_the_call_unavailable)
{
  start_server ();
  _cleanup_grpc_client_ grpc_client *c = connect_or_fail ();
  _cleanup_error_ berth_error *err = NULL;
  msg_t req = MSG_INIT;
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, "/test.Echo/Close", NULL, 0, &req.base, MSG_DESC, &resp, &err);
  ck_assert_int_eq (r, BERTH_E_UNAVAILABLE);
  ck_assert_str_eq (berth_error_message (err), "the server closed the connection");
  /* Later calls fail the same way instead of hanging. */
  berth_error_free (err);
  err = NULL;
  ck_assert_int_eq (grpc_client_unary (c, "/test.Echo/Unary", NULL, 0, &req.base, MSG_DESC, &resp, &err),
                    BERTH_E_UNAVAILABLE);
  stop_server ();
}
END_TEST

START_TEST (test_percent_decoding_keeps_malformed_escapes)
{
  const char *in = "a%20b%zz%4";
  _cleanup_free_ char *out = grpc_client_percent_decode (in, strlen (in));
  ck_assert_str_eq (out, "a b%zz%4");
}
END_TEST

/* ---- against a real containerd (Debian's package), when there is one ----
 *
 * One containerd for the whole test case (an unchecked fixture, started in
 * the runner process before the forked tests), on a temporary root, state
 * and socket; never the system one. */

#define CONTAINERD "/usr/bin/containerd"

static char ctrd_dir[64];
static char ctrd_sock[128];
static pid_t ctrd_pid;

static bool
containerd_usable (const char **why)
{
  if (access (CONTAINERD, X_OK) != 0)
    *why = CONTAINERD " is not installed (apt-get install containerd)";
  else if (geteuid () != 0)
    *why = "containerd needs root";
  else
    return true;
  return false;
}

static void
containerd_start (void)
{
  strcpy (ctrd_dir, "/tmp/test-grpc-ctrd.XXXXXX");
  if (mkdtemp (ctrd_dir) == NULL)
    abort ();
  snprintf (ctrd_sock, sizeof ctrd_sock, "%s/c.sock", ctrd_dir);
  char path[192];
  snprintf (path, sizeof path, "%s/config.toml", ctrd_dir);
  FILE *f = fopen (path, "w");
  fprintf (f,
           "version = 2\nroot = \"%s/root\"\nstate = \"%s/state\"\n"
           "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
           "[grpc]\n  address = \"%s\"\n[ttrpc]\n  address = \"%s.ttrpc\"\n",
           ctrd_dir, ctrd_dir, ctrd_sock, ctrd_sock);
  fclose (f);
  ctrd_pid = fork ();
  if (ctrd_pid == 0)
    {
      char log[192];
      snprintf (log, sizeof log, "%s/containerd.log", ctrd_dir);
      int fd = open (log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2 (fd, 1);
      dup2 (fd, 2);
      prctl (PR_SET_PDEATHSIG, SIGTERM);
      execl (CONTAINERD, "containerd", "--config", path, (char *) NULL);
      _exit (127);
    }
  /* Ready when Version answers. */
  for (int i = 0; i < 200; i++)
    {
      grpc_client *c = NULL;
      berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
      int r = grpc_client_connect (ctrd_sock, 1000, &c, &err);
      if (r == 0)
        r = grpc_client_unary (c, "/containerd.services.version.v1.Version/Version", NULL, 0, &empty.base,
                               &containerd__services__version__v1__version_response__descriptor, &resp, &err);
      if (resp)
        protobuf_c_message_free_unpacked (resp, NULL);
      grpc_client_free (c);
      berth_error_free (err);
      if (r == 0)
        return;
      usleep (50000);
    }
  fprintf (stderr, "containerd did not start; see %s/containerd.log\n", ctrd_dir);
}

static void
containerd_stop (void)
{
  if (ctrd_pid > 0)
    {
      kill (ctrd_pid, SIGTERM);
      for (int i = 0; i < 100 && waitpid (ctrd_pid, NULL, WNOHANG) == 0; i++)
        usleep (50000);
      kill (ctrd_pid, SIGKILL);
      waitpid (ctrd_pid, NULL, 0);
      ctrd_pid = 0;
    }
  char cmd[256];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", ctrd_dir);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", ctrd_dir);
}

static grpc_client *
containerd_connect (void)
{
  grpc_client *c = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_client_connect (ctrd_sock, 1000, &c, &err);
  ck_assert_msg (r == 0, "connect to containerd: %s", berth_error_message (err));
  grpc_client_set_deadline (c, 20000);
  return c;
}

START_TEST (test_containerd_answers_version)
{
  _cleanup_grpc_client_ grpc_client *c = containerd_connect ();
  _cleanup_error_ berth_error *err = NULL;
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, "/containerd.services.version.v1.Version/Version", NULL, 0, &empty.base,
                             &containerd__services__version__v1__version_response__descriptor, &resp, &err);
  ck_assert_msg (r == 0, "Version: %s", berth_error_message (err));
  ck_assert_str_ne (((msg_t *) resp)->version, "");
  protobuf_c_message_free_unpacked (resp, NULL);
}
END_TEST

START_TEST (test_containerd_error_status_comes_back_as_not_found)
{
  _cleanup_grpc_client_ grpc_client *c = containerd_connect ();
  _cleanup_error_ berth_error *err = NULL;
  struct grpc_client_md md[] = { { "containerd-namespace", "default" } };
  Containerd__Services__Content__V1__InfoRequest req = CONTAINERD__SERVICES__CONTENT__V1__INFO_REQUEST__INIT;
  req.digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
  ProtobufCMessage *resp = NULL;
  int r = grpc_client_unary (c, "/containerd.services.content.v1.Content/Info", md, 1, &req.base,
                             &containerd__services__content__v1__info_response__descriptor, &resp, &err);
  ck_assert_int_eq (r, BERTH_E_NOTFOUND);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "not found"));
}
END_TEST

struct read_check
{
  const uint8_t *blob;
  size_t n, got;
  bool same;
};

static int
check_chunk (const ProtobufCMessage *m, void *data, berth_error **err)
{
  struct read_check *s = data;
  const Containerd__Services__Content__V1__ReadContentResponse *rr = (const void *) m;
  if (rr->offset != (int64_t) s->got || s->got + rr->data.len > s->n
      || memcmp (s->blob + s->got, rr->data.data, rr->data.len) != 0)
    s->same = false;
  s->got += rr->data.len;
  return 0;
}

/* One Content.Write round: send req, expect one response. */
static Containerd__Services__Content__V1__WriteContentResponse *
write_round (grpc_client_call *call, Containerd__Services__Content__V1__WriteContentRequest *req)
{
  _cleanup_error_ berth_error *err = NULL;
  int r = grpc_client_call_send (call, &req->base, &err);
  ck_assert_msg (r == 0, "send at %" PRId64 ": %s", req->offset, berth_error_message (err));
  ProtobufCMessage *resp = NULL;
  r = grpc_client_call_recv (call, &containerd__services__content__v1__write_content_response__descriptor, &resp,
                             &err);
  ck_assert_msg (r == 1, "recv at %" PRId64 ": %s", req->offset, r < 0 ? berth_error_message (err) : "end of stream");
  return (Containerd__Services__Content__V1__WriteContentResponse *) resp;
}

/* Content.Write (bidi, 1 MiB chunks) then Content.Read (server stream):
 * the bytes come back as written. */
START_TEST (test_containerd_content_write_then_read_round_trips_a_blob)
{
  _cleanup_grpc_client_ grpc_client *c = containerd_connect ();
  _cleanup_error_ berth_error *err = NULL;
  /* Unreferenced content is garbage-collected by containerd unless a lease
   * holds it (as ctr does for every pull): without one the blob can vanish
   * between Write and Read, which a slow ASan build made happen. */
  struct grpc_client_md md[] = { { "containerd-namespace", "default" }, { "containerd-lease", "test-grpc-client" } };
  Containerd__Services__Leases__V1__CreateRequest lreq = CONTAINERD__SERVICES__LEASES__V1__CREATE_REQUEST__INIT;
  lreq.id = "test-grpc-client";
  ProtobufCMessage *lresp = NULL;
  int lr = grpc_client_unary (c, "/containerd.services.leases.v1.Leases/Create", md, 1, &lreq.base,
                              &containerd__services__leases__v1__create_response__descriptor, &lresp, &err);
  ck_assert_msg (lr == 0, "Leases.Create: %s", berth_error_message (err));
  protobuf_c_message_free_unpacked (lresp, NULL);

  const size_t n = 3500000, chunk = 1u << 20;
  _cleanup_free_ uint8_t *blob = malloc (n);
  for (size_t i = 0; i < n; i++)
    blob[i] = (uint8_t) (i * 2654435761u >> 13);
  char file[192], cmd[256], digest[80] = "sha256:";
  snprintf (file, sizeof file, "%s/blob", ctrd_dir);
  FILE *f = fopen (file, "w");
  ck_assert_uint_eq (fwrite (blob, 1, n, f), n);
  fclose (f);
  snprintf (cmd, sizeof cmd, "sha256sum '%s'", file);
  f = popen (cmd, "r");
  ck_assert_int_eq (fscanf (f, "%64s", digest + 7), 1);
  pclose (f);

  _cleanup_(grpc_client_call_freep) grpc_client_call *call = NULL;
  int r = grpc_client_call_open (c, "/containerd.services.content.v1.Content/Write", md, 2, &call, &err);
  ck_assert_msg (r == 0, "open: %s", berth_error_message (err));
  Containerd__Services__Content__V1__WriteContentRequest req
      = CONTAINERD__SERVICES__CONTENT__V1__WRITE_CONTENT_REQUEST__INIT;
  req.ref = "test-grpc-client";
  req.total = (int64_t) n;
  req.expected = digest;
  for (size_t off = 0; off < n; off += chunk)
    {
      req.action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__WRITE;
      req.offset = (int64_t) off;
      req.data.data = blob + off;
      req.data.len = n - off < chunk ? n - off : chunk;
      Containerd__Services__Content__V1__WriteContentResponse *wr = write_round (call, &req);
      ck_assert_int_eq (wr->offset, (int64_t) (off + req.data.len));
      protobuf_c_message_free_unpacked (&wr->base, NULL);
    }
  req.action = CONTAINERD__SERVICES__CONTENT__V1__WRITE_ACTION__COMMIT;
  req.offset = (int64_t) n;
  req.data.len = 0;
  Containerd__Services__Content__V1__WriteContentResponse *wr = write_round (call, &req);
  ck_assert_str_eq (wr->digest, digest);
  protobuf_c_message_free_unpacked (&wr->base, NULL);
  ck_assert_int_eq (grpc_client_call_close_send (call, &err), 0);
  ck_assert_msg (grpc_client_call_finish (call, &err) == 0, "finish: %s", berth_error_message (err));

  struct read_check seen = { blob, n, 0, true };
  Containerd__Services__Content__V1__ReadContentRequest rreq
      = CONTAINERD__SERVICES__CONTENT__V1__READ_CONTENT_REQUEST__INIT;
  rreq.digest = digest;
  r = grpc_client_server_stream (c, "/containerd.services.content.v1.Content/Read", md, 2, &rreq.base,
                                 &containerd__services__content__v1__read_content_response__descriptor, check_chunk,
                                 &seen, &err);
  ck_assert_msg (r == 0, "Read: %s", berth_error_message (err));
  ck_assert_uint_eq (seen.got, n);
  ck_assert (seen.same);
}
END_TEST

static Suite *
suite (void)
{
  Suite *s = suite_create ("grpc-client");
  TCase *tc = tcase_create ("core");
  tcase_set_timeout (tc, 20);
  tcase_add_unchecked_fixture (tc, tmpdir_create, tmpdir_remove);
  tcase_add_test (tc, test_connecting_to_a_missing_socket_names_the_path_and_the_reason);
  tcase_add_test (tc, test_connecting_to_a_socket_nobody_listens_on_is_refused);
  tcase_add_test (tc, test_a_socket_path_too_long_is_invalid);
  tcase_add_test (tc, test_unary_call_sends_request_and_metadata_and_returns_the_response);
  tcase_add_test (tc, test_a_deadline_is_sent_as_grpc_timeout);
  tcase_add_test (tc, test_error_status_maps_to_berth_code_with_decoded_message);
  tcase_add_test (tc, test_server_stream_delivers_every_message_in_order);
  tcase_add_test (tc, test_server_stream_callback_error_stops_the_call);
  tcase_add_test (tc, test_bidi_call_echoes_messages_before_half_close);
  tcase_add_test (tc, test_deadline_cancels_a_call_the_server_never_answers);
  tcase_add_test (tc, test_oversized_response_message_is_refused);
  tcase_add_test (tc, test_oversized_request_message_is_refused_before_sending);
  tcase_add_test (tc, test_server_closing_the_connection_makes_the_call_unavailable);
  tcase_add_test (tc, test_percent_decoding_keeps_malformed_escapes);
  suite_add_tcase (s, tc);

  const char *why = NULL;
  if (containerd_usable (&why))
    {
      TCase *tr = tcase_create ("containerd");
      tcase_set_timeout (tr, 60);
      tcase_add_unchecked_fixture (tr, containerd_start, containerd_stop);
      tcase_add_test (tr, test_containerd_answers_version);
      tcase_add_test (tr, test_containerd_error_status_comes_back_as_not_found);
      tcase_add_test (tr, test_containerd_content_write_then_read_round_trips_a_blob);
      suite_add_tcase (s, tr);
    }
  else
    printf ("SKIP: grpc-client against containerd: %s\n", why);
  return s;
}

CHECK_MAIN (suite)
