/* The registry client against real registries on 127.0.0.1:
 *  - Debian's docker-registry over plain HTTP (the test image is pushed to
 *    it with the distribution API by registry-fixtures.py push);
 *  - a second docker-registry on the same storage with TLS (a CA made with
 *    the openssl CLI) and htpasswd basic auth;
 *  - a third behind bearer-token auth, with the python token server of
 *    registry-fixtures.py (JWTs signed by a certificate the registry trusts);
 *  - registry-fixtures.py fake: a stand-in registry for the misbehaviours a
 *    real one does not show (wrong manifest bytes, a body cut mid-way, a
 *    lying Content-Length, ignored Range, redirects to a second port that
 *    records headers, a token that the registry revokes).
 * All are started once (unchecked fixture) and killed by pid at the end.
 * Without docker-registry, openssl, htpasswd or python3 the program skips
 * (exit 77) and says why.
 */
#include <config.h>

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/pull/registry.h"

#ifndef FIXTURES_PY
#define FIXTURES_PY "tests/unit/registry-fixtures.py"
#endif

static char tmp[256];
static pid_t pids[8];
static size_t npids;
static int plain_port, tls_port, token_reg_port, fake_port, storage_port;
static char plain_host[64], tls_host[64], token_host[64], fake_host[64];

struct desc
{
  char digest[80];
  int64_t size;
};
static struct desc manifest, config_blob, layers[2];

/* ---- process and file helpers --------------------------------------- */

static void
xwrite_file (const char *path, const char *fmt, ...)
{
  FILE *f = fopen (path, "w");
  ck_assert_msg (f != NULL, "open %s: %s", path, strerror (errno));
  va_list ap;
  va_start (ap, fmt);
  vfprintf (f, fmt, ap);
  va_end (ap);
  fclose (f);
}

static char *
path_of (const char *fmt, ...)
{
  static char bufs[8][512];
  static int i;
  char *b = bufs[i++ % 8];
  int n = snprintf (b, 512, "%s/", tmp);
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (b + n, 512 - (size_t) n, fmt, ap);
  va_end (ap);
  return b;
}

static int
sh (const char *fmt, ...)
{
  char cmd[4096];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (cmd, sizeof cmd, fmt, ap);
  va_end (ap);
  int st = system (cmd);
  return WIFEXITED (st) ? WEXITSTATUS (st) : -1;
}

static pid_t
spawn (const char *log, char *const argv[])
{
  pid_t pid = fork ();
  if (pid == 0)
    {
      int fd = open (log, O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0)
        {
          dup2 (fd, 1);
          dup2 (fd, 2);
        }
      execvp (argv[0], argv);
      _exit (127);
    }
  ck_assert_int_gt (pid, 0);
  pids[npids++] = pid;
  return pid;
}

static int
free_port (void)
{
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t l = sizeof a;
  bind (fd, (struct sockaddr *) &a, sizeof a);
  getsockname (fd, (struct sockaddr *) &a, &l);
  close (fd);
  return ntohs (a.sin_port);
}

static bool
port_open (int port)
{
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port),
                           .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  bool ok = connect (fd, (struct sockaddr *) &a, sizeof a) == 0;
  close (fd);
  return ok;
}

static void
wait_port (int port, const char *what)
{
  for (int i = 0; i < 200; i++)
    {
      if (port_open (port))
        return;
      usleep (25000);
    }
  ck_abort_msg ("%s did not start on port %d (see %s)", what, port, tmp);
}

static int
read_port_file (const char *path)
{
  for (int i = 0; i < 200; i++)
    {
      FILE *f = fopen (path, "r");
      int p = 0;
      if (f && fscanf (f, "%d", &p) == 1)
        {
          fclose (f);
          return p;
        }
      if (f)
        fclose (f);
      usleep (25000);
    }
  ck_abort_msg ("no port in %s", path);
  return 0;
}

static char *
slurp (const char *path, size_t *ret_len)
{
  FILE *f = fopen (path, "rb");
  if (f == NULL)
    return NULL;
  char *b = NULL;
  size_t n = 0, cap = 0;
  for (;;)
    {
      if (n + 65536 > cap)
        {
          cap = (n + 65536) * 2;
          b = realloc (b, cap + 1);
        }
      size_t k = fread (b + n, 1, 65536, f);
      n += k;
      if (k == 0)
        break;
    }
  fclose (f);
  b[n] = '\0';
  if (ret_len)
    *ret_len = n;
  return b;
}

static int
count_lines (const char *path, const char *needle)
{
  _cleanup_free_ char *t = slurp (path, NULL);
  int n = 0;
  if (t == NULL)
    return 0;
  for (char *l = strtok (t, "\n"); l; l = strtok (NULL, "\n"))
    if (strstr (l, needle))
      n++;
  return n;
}

/* Servers log a request after answering it: wait (up to 2 s) until the
 * log holds at least `want` matching lines, then count them. */
static int
wait_lines (const char *path, const char *needle, int want)
{
  int n = 0;
  for (int i = 0; i < 100 && (n = count_lines (path, needle)) < want; i++)
    usleep (20000);
  return n;
}

static void
registry_config (const char *name, int port, const char *extra)
{
  xwrite_file (path_of ("%s.yml", name),
               "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: %s\nstorage:\n  filesystem:\n"
               "    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%d\n%s",
               strcmp (name, "tls") == 0 ? "false" : "true", tmp, port, extra);
}

static void
start_registry (const char *name, int port)
{
  char *argv[] = { (char *) "docker-registry", (char *) "serve", path_of ("%s.yml", name), NULL };
  spawn (path_of ("%s.log", name), argv);
  wait_port (port, name);
}

static void
load_image_json (void)
{
  _cleanup_free_ char *t = slurp (path_of ("fake/image.json"), NULL);
  ck_assert_ptr_nonnull (t);
  struct json_object *o = json_tokener_parse (t), *m, *c, *ls, *v;
  ck_assert_ptr_nonnull (o);
  ck_assert (json_object_object_get_ex (o, "manifest", &m));
  ck_assert (json_object_object_get_ex (o, "config", &c));
  ck_assert (json_object_object_get_ex (o, "layers", &ls));
  struct
  {
    struct json_object *j;
    struct desc *d;
  } all[] = { { m, &manifest }, { c, &config_blob },
              { json_object_array_get_idx (ls, 0), &layers[0] }, { json_object_array_get_idx (ls, 1), &layers[1] } };
  for (size_t i = 0; i < 4; i++)
    {
      json_object_object_get_ex (all[i].j, "digest", &v);
      snprintf (all[i].d->digest, sizeof all[i].d->digest, "%s", json_object_get_string (v));
      json_object_object_get_ex (all[i].j, "size", &v);
      all[i].d->size = json_object_get_int64 (v);
    }
  json_object_put (o);
}

static void
setup_servers (void)
{
  strcpy (tmp, "/tmp/berth-registry-test.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (tmp));
  ck_assert_int_eq (sh ("mkdir -p %s/data %s/fake %s/certs %s/docker", tmp, tmp, tmp, tmp), 0);

  /* plain registry, and the test image */
  plain_port = free_port ();
  registry_config ("plain", plain_port, "");
  start_registry ("plain", plain_port);
  snprintf (plain_host, sizeof plain_host, "127.0.0.1:%d", plain_port);
  ck_assert_int_eq (sh ("python3 %s push http://%s test/img v1 %s/fake >%s/push.log 2>&1", FIXTURES_PY, plain_host,
                        tmp, tmp),
                    0);
  load_image_json ();

  /* TLS + htpasswd */
  ck_assert_int_eq (sh ("cd %s/certs && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 "
                        "-subj /CN=berth-test-ca >/dev/null 2>&1 && openssl req -newkey rsa:2048 -nodes -keyout "
                        "srv.key -out srv.csr -subj /CN=127.0.0.1 >/dev/null 2>&1 && printf "
                        "'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && openssl x509 -req -in srv.csr "
                        "-CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext.cnf >/dev/null "
                        "2>&1 && htpasswd -Bbn alice s3cret > htpasswd && openssl req -x509 -newkey rsa:2048 -nodes "
                        "-keyout %s/token.key -out %s/token.crt -days 2 -subj /CN=berth-token >/dev/null 2>&1",
                        tmp, tmp, tmp),
                    0);
  tls_port = free_port ();
  char extra[2048];
  snprintf (extra, sizeof extra,
            "  tls:\n    certificate: %s/certs/srv.crt\n    key: %s/certs/srv.key\nauth:\n  htpasswd:\n"
            "    realm: berth-realm\n    path: %s/certs/htpasswd\n",
            tmp, tmp, tmp);
  registry_config ("tls", tls_port, extra);
  start_registry ("tls", tls_port);
  snprintf (tls_host, sizeof tls_host, "127.0.0.1:%d", tls_port);

  /* bearer: token server + registry */
  xwrite_file (path_of ("token.json"), "{\"expires_in\": 300}");
  char *targv[] = { (char *) "python3", (char *) FIXTURES_PY, (char *) "token", tmp, NULL };
  spawn (path_of ("token-server.log"), targv);
  int token_port = read_port_file (path_of ("token.port"));
  token_reg_port = free_port ();
  snprintf (extra, sizeof extra,
            "auth:\n  token:\n    realm: http://127.0.0.1:%d/token\n    service: berth-test\n"
            "    issuer: berth-test-issuer\n    rootcertbundle: %s/token.crt\n",
            token_port, tmp);
  registry_config ("token", token_reg_port, extra);
  start_registry ("token", token_reg_port);
  snprintf (token_host, sizeof token_host, "127.0.0.1:%d", token_reg_port);

  /* the stand-in */
  char *fargv[] = { (char *) "python3", (char *) FIXTURES_PY, (char *) "fake", path_of ("fake"), NULL };
  spawn (path_of ("fake-server.log"), fargv);
  fake_port = read_port_file (path_of ("fake/fake.port"));
  storage_port = read_port_file (path_of ("fake/storage.port"));
  snprintf (fake_host, sizeof fake_host, "127.0.0.1:%d", fake_port);
}

static void
teardown_servers (void)
{
  for (size_t i = 0; i < npids; i++)
    {
      kill (pids[i], SIGTERM);
      waitpid (pids[i], NULL, 0);
    }
  npids = 0;
  if (tmp[0] && getenv ("BERTH_TEST_KEEP") == NULL)
    sh ("rm -rf %s", tmp);
}

/* ---- client helpers ------------------------------------------------- */

static registry_session *
session (const char *host, const struct registry_options *o)
{
  registry_session *s = NULL;
  _cleanup_error_ berth_error *err = NULL;
  struct registry_options def = { .timeout_s = 10, .docker_config_dir = path_of ("docker") };
  int r = registry_session_new (host, o ? o : &def, &s, &err);
  ck_assert_msg (r == 0, "session: %s", err ? berth_error_message (err) : "?");
  return s;
}

struct sink
{
  unsigned char *d;
  size_t len;
  int resets, progress_calls;
  int64_t last_done, last_total;
};

static int
sink_write (void *data, const void *buf, size_t len)
{
  struct sink *k = data;
  k->d = realloc (k->d, k->len + len);
  memcpy (k->d + k->len, buf, len);
  k->len += len;
  return 0;
}

static int
sink_reset (void *data, int64_t offset)
{
  struct sink *k = data;
  ck_assert_int_eq (offset, 0);
  k->len = 0;
  k->resets++;
  return 0;
}

static void
sink_progress (void *data, int64_t done, int64_t total)
{
  struct sink *k = data;
  ck_assert_int_ge (done, k->last_done);
  k->progress_calls++;
  k->last_done = done;
  k->last_total = total;
}

static unsigned char *
blob_file (const char *digest, size_t *ret_len)
{
  return (unsigned char *) slurp (path_of ("fake/blobs/%s", digest + 7), ret_len);
}

static void
assert_sink_is_blob (const struct sink *k, const struct desc *d, size_t from)
{
  size_t n;
  _cleanup_free_ unsigned char *want = blob_file (d->digest, &n);
  ck_assert_ptr_nonnull (want);
  ck_assert_uint_eq (k->len, n - from);
  ck_assert_msg (memcmp (k->d, want + from, n - from) == 0, "blob bytes differ");
}

static int
fetch_one (registry_session *s, const char *repo, const struct desc *d, int64_t offset, struct sink *k, bool reset,
           berth_error **ret_err)
{
  struct registry_blob b = { .digest = d->digest, .size = d->size, .offset = offset, .sink = sink_write,
                             .reset = reset ? sink_reset : NULL, .progress = sink_progress, .data = k };
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_fetch_blobs (s, repo, &b, 1, NULL, &err);
  ck_assert_int_eq (r, b.result);
  if (ret_err)
    *ret_err = TAKE_PTR (b.err);
  else
    berth_error_free (b.err);
  return r;
}

static const char *
msg (berth_error *e)
{
  return e ? berth_error_message (e) : "(no error)";
}

/* ---- resolve and manifests ------------------------------------------ */

START_TEST (test_resolve_by_tag_gives_digest_size_and_media_type)
{
  _cleanup_(registry_session_freep) registry_session *s = session (plain_host, NULL);
  _cleanup_free_ char *mt = NULL, *dg = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int64_t size = 0;
  int r = registry_resolve (s, "test/img", "v1", &mt, &dg, &size, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_str_eq (dg, manifest.digest);
  ck_assert_int_eq (size, manifest.size);
  ck_assert_str_eq (mt, REGISTRY_MT_OCI_MANIFEST);
}
END_TEST

START_TEST (test_resolve_by_digest_returns_that_digest)
{
  _cleanup_(registry_session_freep) registry_session *s = session (plain_host, NULL);
  _cleanup_free_ char *mt = NULL, *dg = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int64_t size = 0;
  int r = registry_resolve (s, "test/img", manifest.digest, &mt, &dg, &size, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_str_eq (dg, manifest.digest);
  ck_assert_int_eq (size, manifest.size);
}
END_TEST

START_TEST (test_resolve_gets_the_manifest_when_head_has_no_digest)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  _cleanup_free_ char *mt = NULL, *dg = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int64_t size = 0;
  int r = registry_resolve (s, "nodigest", manifest.digest, &mt, &dg, &size, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_str_eq (dg, manifest.digest);
  ck_assert_int_eq (size, manifest.size);
  ck_assert_int_ge (wait_lines (path_of ("fake/fake.log"), "GET /v2/nodigest/manifests/", 1), 1);
}
END_TEST

START_TEST (test_fetch_manifest_checks_digest_and_size)
{
  _cleanup_(registry_session_freep) registry_session *s = session (plain_host, NULL);
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_free_ char *mt = NULL;
  _cleanup_error_ berth_error *err = NULL;
  size_t len = 0;
  int r = registry_fetch_manifest (s, "test/img", manifest.digest, manifest.size, &data, &len, &mt, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_uint_eq (len, (size_t) manifest.size);
  ck_assert_ptr_nonnull (strstr ((char *) data, "schemaVersion"));
  ck_assert_str_eq (mt, REGISTRY_MT_OCI_MANIFEST);

  _cleanup_free_ unsigned char *d2 = NULL;
  _cleanup_error_ berth_error *err2 = NULL;
  r = registry_fetch_manifest (s, "test/img", manifest.digest, manifest.size + 1, &d2, &len, NULL, &err2);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_ptr_nonnull (strstr (msg (err2), "size mismatch"));
}
END_TEST

START_TEST (test_manifest_with_wrong_bytes_is_rejected)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_error_ berth_error *err = NULL;
  size_t len = 0;
  int r = registry_fetch_manifest (s, "badmanifest", manifest.digest, -1, &data, &len, NULL, &err);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_ptr_null (data);
  ck_assert_msg (strstr (msg (err), "digest mismatch") != NULL, "%s", msg (err));
}
END_TEST

START_TEST (test_small_blob_is_fetched_whole_and_verified)
{
  _cleanup_(registry_session_freep) registry_session *s = session (plain_host, NULL);
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_error_ berth_error *err = NULL;
  size_t len = 0;
  int r = registry_fetch_blob_bytes (s, "test/img", config_blob.digest, config_blob.size, 0, &data, &len, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_uint_eq (len, (size_t) config_blob.size);
  ck_assert_ptr_nonnull (strstr ((char *) data, "rootfs"));
}
END_TEST

/* ---- blobs ---------------------------------------------------------- */

START_TEST (test_blobs_are_fetched_in_parallel_with_progress)
{
  struct registry_options o = { .timeout_s = 10, .max_parallel = 3, .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session (plain_host, &o);
  struct sink k[3] = { 0 };
  const struct desc *ds[3] = { &config_blob, &layers[0], &layers[1] };
  struct registry_blob b[3];
  for (int i = 0; i < 3; i++)
    b[i] = (struct registry_blob){ .digest = ds[i]->digest, .size = ds[i]->size, .sink = sink_write,
                                   .progress = sink_progress, .data = &k[i] };
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_fetch_blobs (s, "test/img", b, 3, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  for (int i = 0; i < 3; i++)
    {
      ck_assert_int_eq (b[i].result, 0);
      assert_sink_is_blob (&k[i], ds[i], 0);
      ck_assert_int_eq (k[i].last_done, ds[i]->size);
      ck_assert_int_eq (k[i].last_total, ds[i]->size);
      ck_assert_int_ge (k[i].progress_calls, 1);
      free (k[i].d);
    }
  ck_assert_int_gt (k[2].progress_calls, 2); /* 700 KiB arrives in several chunks */
}
END_TEST

START_TEST (test_blob_resumes_from_offset_with_a_range_request)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  struct sink k = { 0 };
  const int64_t off = 300000;
  int r = fetch_one (s, "resume", &layers[1], off, &k, true, NULL);
  ck_assert_int_eq (r, 0);
  assert_sink_is_blob (&k, &layers[1], (size_t) off);
  ck_assert_int_eq (k.resets, 0);
  ck_assert_int_eq (k.last_done, layers[1].size);
  /* the server saw the Range and sent only the remainder */
  char want[256];
  snprintf (want, sizeof want, "GET /v2/resume/blobs/%s range=bytes=%lld-", layers[1].digest, (long long) off);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 1), 1);
  snprintf (want, sizeof want, "sent %lld of %s", (long long) (layers[1].size - off), layers[1].digest + 7);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 1), 1);
  free (k.d);
}
END_TEST

START_TEST (test_server_ignoring_range_restarts_through_reset)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  struct sink k = { 0 };
  k.len = 1000; /* what the sink "held" before */
  k.d = calloc (1, 1000);
  int r = fetch_one (s, "norange", &layers[0], 1000, &k, true, NULL);
  ck_assert_int_eq (r, 0);
  ck_assert_int_eq (k.resets, 1);
  assert_sink_is_blob (&k, &layers[0], 0);
  free (k.d);

  /* without a reset callback the client drops the bytes already held */
  struct sink k2 = { 0 };
  r = fetch_one (s, "norange", &layers[0], 1000, &k2, false, NULL);
  ck_assert_int_eq (r, 0);
  assert_sink_is_blob (&k2, &layers[0], 1000);
  free (k2.d);
}
END_TEST

START_TEST (test_connection_closed_mid_body_is_resumed)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  struct sink k = { 0 };
  int r = fetch_one (s, "closemid", &layers[1], 0, &k, true, NULL);
  ck_assert_int_eq (r, 0);
  assert_sink_is_blob (&k, &layers[1], 0);
  ck_assert_int_eq (k.resets, 0);
  char want[256];
  snprintf (want, sizeof want, "then closed");
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 1), 1);
  /* the second request asked for the rest only */
  snprintf (want, sizeof want, "GET /v2/closemid/blobs/%s range=bytes=", layers[1].digest);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 1), 1);
  free (k.d);
}
END_TEST

START_TEST (test_content_length_lie_fails_the_blob)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  struct sink k = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int r = fetch_one (s, "cllie", &layers[0], 0, &k, true, &e);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_msg (strstr (msg (e), "Content-Length") != NULL, "%s", msg (e));
  ck_assert_uint_eq (k.len, 0);
  free (k.d);
}
END_TEST

START_TEST (test_body_longer_than_size_is_cut_and_fails)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  struct sink k = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int r = fetch_one (s, "overflow", &layers[0], 0, &k, true, &e);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_msg (strstr (msg (e), "sent more than") != NULL, "%s", msg (e));
  ck_assert_uint_le (k.len, (size_t) layers[0].size);
  free (k.d);
}
END_TEST

START_TEST (test_redirect_to_another_host_does_not_carry_credentials)
{
  char dir[512];
  snprintf (dir, sizeof dir, "%s", path_of ("hosts-redirect/%s", fake_host));
  ck_assert_int_eq (sh ("mkdir -p '%s'", dir), 0);
  xwrite_file (path_of ("hosts-redirect/%s/hosts.toml", fake_host),
               "server = \"http://%s\"\n[header]\n  X-Berth-Test = \"secret-header\"\n", fake_host);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-redirect"),
                                .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, &o);
  struct sink k = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  int r = fetch_one (s, "bearer-redirect", &layers[0], 0, &k, true, &e);
  ck_assert_msg (r == 0, "%s", msg (e));
  assert_sink_is_blob (&k, &layers[0], 0);
  /* the registry got the bearer token, the storage host got nothing */
  char want[256];
  snprintf (want, sizeof want, "GET /v2/bearer-redirect/blobs/%s range=- auth=Bearer", layers[0].digest);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 1), 1);
  snprintf (want, sizeof want, "storage GET /storage/%s", layers[0].digest + 7);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 1), 1);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), "storage GET /storage/", 1), 1);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), "auth=no custom=no", 1), 1);
  free (k.d);
}
END_TEST

START_TEST (test_cancelled_flag_stops_the_transfers)
{
  _cleanup_(registry_session_freep) registry_session *s = session (plain_host, NULL);
  struct sink k = { 0 };
  volatile int cancelled = 1;
  struct registry_blob b = { .digest = layers[1].digest, .size = layers[1].size, .sink = sink_write, .data = &k };
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_fetch_blobs (s, "test/img", &b, 1, &cancelled, &err);
  ck_assert_int_eq (r, BERTH_E_CANCELLED);
  ck_assert_int_eq (b.result, BERTH_E_CANCELLED);
  berth_error_free (b.err);
  free (k.d);
}
END_TEST

/* ---- errors --------------------------------------------------------- */

START_TEST (test_not_found_names_repository_tag_and_host)
{
  _cleanup_(registry_session_freep) registry_session *s = session (plain_host, NULL);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "nope", NULL, NULL, NULL, &err);
  ck_assert_int_eq (r, BERTH_E_NOTFOUND);
  char want[256];
  snprintf (want, sizeof want, "not found: test/img:nope on %s", plain_host);
  ck_assert_msg (strstr (msg (err), want) != NULL, "%s", msg (err));
}
END_TEST

START_TEST (test_denied_is_explained_with_the_registry_message)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_error_ berth_error *err = NULL;
  size_t len;
  int r = registry_fetch_manifest (s, "denied", manifest.digest, -1, &data, &len, NULL, &err);
  ck_assert_int_eq (r, BERTH_E_PERMISSION);
  ck_assert_msg (strstr (msg (err), "denied: ") && strstr (msg (err), "DENIED: requested access to the resource"),
                 "%s", msg (err));
}
END_TEST

START_TEST (test_unavailable_registry_is_retried_with_backoff)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  _cleanup_free_ unsigned char *data = NULL;
  _cleanup_error_ berth_error *err = NULL;
  size_t len;
  struct timespec a, b;
  clock_gettime (CLOCK_MONOTONIC, &a);
  int r = registry_fetch_manifest (s, "unavailable", manifest.digest, -1, &data, &len, NULL, &err);
  clock_gettime (CLOCK_MONOTONIC, &b);
  ck_assert_int_eq (r, BERTH_E_UNAVAILABLE);
  ck_assert_msg (strstr (msg (err), "HTTP 503") && strstr (msg (err), "after 3 tries"), "%s", msg (err));
  double secs = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
  ck_assert_msg (secs >= 0.55, "backoff too short: %.3f s", secs); /* 200 + 400 ms */
  char want[256];
  snprintf (want, sizeof want, "GET /v2/unavailable/manifests/%s", manifest.digest);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 3), 3);
}
END_TEST

/* ---- basic auth over TLS --------------------------------------------- */

static void
write_tls_hosts (const char *root, bool with_ca)
{
  ck_assert_int_eq (sh ("mkdir -p '%s/127.0.0.1_%d_'", root, tls_port), 0);
  char p[600];
  snprintf (p, sizeof p, "%s/127.0.0.1_%d_/hosts.toml", root, tls_port);
  if (with_ca)
    {
      ck_assert_int_eq (sh ("cp %s/certs/ca.crt '%s/127.0.0.1_%d_/ca.crt'", tmp, root, tls_port), 0);
      xwrite_file (p, "server = \"https://%s\"\nca = \"ca.crt\"\n", tls_host);
    }
  else
    xwrite_file (p, "server = \"https://%s\"\n", tls_host);
}

START_TEST (test_basic_auth_with_the_right_password_pulls_over_tls_and_http2)
{
  write_tls_hosts (path_of ("hosts-tls"), true);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-tls"), .username = "alice",
                                .secret = "s3cret", .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session (tls_host, &o);
  _cleanup_free_ char *dg = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, &dg, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_str_eq (dg, manifest.digest);
  struct sink k = { 0 };
  r = fetch_one (s, "test/img", &layers[0], 0, &k, true, NULL);
  ck_assert_int_eq (r, 0);
  assert_sink_is_blob (&k, &layers[0], 0);
  free (k.d);
  /* the TLS registry offers h2, and berth took it (its access log) */
  char want[256];
  snprintf (want, sizeof want, "\"GET /v2/test/img/blobs/%s HTTP/2.0\" 200", layers[0].digest);
  ck_assert_int_ge (wait_lines (path_of ("tls.log"), want, 1), 1);
}
END_TEST

START_TEST (test_basic_auth_with_a_wrong_password_says_unauthorized)
{
  write_tls_hosts (path_of ("hosts-tls"), true);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-tls"), .username = "alice",
                                .secret = "WRONG-pw-123", .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session (tls_host, &o);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, NULL, NULL, &err);
  ck_assert_int_eq (r, BERTH_E_UNAUTHENTICATED);
  char want[256];
  snprintf (want, sizeof want, "unauthorized: authentication required for %s/test/img (berth login %s)", tls_host,
            tls_host);
  ck_assert_msg (strstr (msg (err), want) != NULL, "%s", msg (err));
  ck_assert_ptr_null (strstr (msg (err), "WRONG-pw-123"));
}
END_TEST

START_TEST (test_no_credentials_says_unauthorized_with_berth_login)
{
  write_tls_hosts (path_of ("hosts-tls"), true);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-tls"),
                                .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session (tls_host, &o);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, NULL, NULL, &err);
  ck_assert_int_eq (r, BERTH_E_UNAUTHENTICATED);
  ck_assert_msg (strstr (msg (err), "(berth login ") != NULL, "%s", msg (err));
}
END_TEST

START_TEST (test_tls_without_the_ca_fails_verification)
{
  write_tls_hosts (path_of ("hosts-noca"), false);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-noca"), .username = "alice",
                                .secret = "s3cret", .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session (tls_host, &o);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, NULL, NULL, &err);
  ck_assert_int_eq (r, BERTH_E_UNAVAILABLE);
  ck_assert_msg (strstr (msg (err), "certificate") || strstr (msg (err), "SSL"), "%s", msg (err));
}
END_TEST

START_TEST (test_credential_helper_supplies_the_password)
{
  write_tls_hosts (path_of ("hosts-tls"), true);
  ck_assert_int_eq (sh ("mkdir -p %s/bin %s/docker-helper", tmp, tmp), 0);
  xwrite_file (path_of ("bin/docker-credential-berthtest"),
               "#!/bin/sh\nread url\necho \"$url\" > %s/helper-asked\n"
               "echo '{\"ServerURL\":\"'$url'\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}'\n",
               tmp);
  chmod (path_of ("bin/docker-credential-berthtest"), 0755);
  xwrite_file (path_of ("docker-helper/config.json"), "{\"credHelpers\": {\"%s\": \"berthtest\"}}", tls_host);
  char path[4096];
  snprintf (path, sizeof path, "%s/bin:%s", tmp, getenv ("PATH"));
  setenv ("PATH", path, 1);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-tls"),
                                .docker_config_dir = path_of ("docker-helper") };
  _cleanup_(registry_session_freep) registry_session *s = session (tls_host, &o);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, NULL, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  _cleanup_free_ char *asked = slurp (path_of ("helper-asked"), NULL);
  ck_assert_ptr_nonnull (asked);
  ck_assert_ptr_nonnull (strstr (asked, tls_host));
}
END_TEST

START_TEST (test_config_json_auths_supply_the_password)
{
  write_tls_hosts (path_of ("hosts-tls"), true);
  ck_assert_int_eq (sh ("mkdir -p %s/docker-auths", tmp), 0);
  /* base64("alice:s3cret") */
  xwrite_file (path_of ("docker-auths/config.json"), "{\"auths\": {\"https://%s\": {\"auth\": \"YWxpY2U6czNjcmV0\"}}}",
               tls_host);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-tls"),
                                .docker_config_dir = path_of ("docker-auths") };
  _cleanup_(registry_session_freep) registry_session *s = session (tls_host, &o);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, NULL, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
}
END_TEST

/* ---- bearer --------------------------------------------------------- */

START_TEST (test_bearer_token_is_fetched_once_and_cached)
{
  int before = count_lines (path_of ("token.log"), "issued");
  _cleanup_(registry_session_freep) registry_session *s = session (token_host, NULL);
  _cleanup_free_ char *dg = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, &dg, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_str_eq (dg, manifest.digest);
  _cleanup_free_ unsigned char *data = NULL;
  size_t len;
  r = registry_fetch_manifest (s, "test/img", manifest.digest, manifest.size, &data, &len, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  struct sink k[2] = { 0 };
  struct registry_blob b[2];
  for (int i = 0; i < 2; i++)
    b[i] = (struct registry_blob){ .digest = layers[i].digest, .size = layers[i].size, .sink = sink_write,
                                   .data = &k[i] };
  r = registry_fetch_blobs (s, "test/img", b, 2, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  for (int i = 0; i < 2; i++)
    {
      assert_sink_is_blob (&k[i], &layers[i], 0);
      free (k[i].d);
    }
  ck_assert_int_eq (count_lines (path_of ("token.log"), "issued scope=repository:test/img:pull") - before, 1);
}
END_TEST

START_TEST (test_bearer_token_is_fetched_again_after_it_expires)
{
  xwrite_file (path_of ("token.json"), "{\"expires_in\": 1}");
  int before = count_lines (path_of ("token.log"), "issued");
  _cleanup_(registry_session_freep) registry_session *s = session (token_host, NULL);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, NULL, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_int_eq (count_lines (path_of ("token.log"), "issued") - before, 1);
  sleep (2);
  _cleanup_free_ unsigned char *data = NULL;
  size_t len;
  r = registry_fetch_manifest (s, "test/img", manifest.digest, manifest.size, &data, &len, NULL, &err);
  xwrite_file (path_of ("token.json"), "{\"expires_in\": 300}");
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_int_eq (count_lines (path_of ("token.log"), "issued") - before, 2);
}
END_TEST

START_TEST (test_token_refused_mid_pull_is_refreshed_once)
{
  _cleanup_(registry_session_freep) registry_session *s = session (fake_host, NULL);
  _cleanup_error_ berth_error *err = NULL;
  int before = count_lines (path_of ("fake/fake.log"), "token issued");
  int r = registry_resolve (s, "bearer", manifest.digest, NULL, NULL, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_int_eq (count_lines (path_of ("fake/fake.log"), "token issued") - before, 1);
  /* the registry now refuses every token issued so far */
  int total = count_lines (path_of ("fake/fake.log"), "token issued");
  for (int i = 1; i <= total; i++)
    ck_assert_int_eq (sh ("curl -s -o /dev/null http://%s/control/revoke/tok-%d", fake_host, i), 0);
  struct sink k = { 0 };
  r = fetch_one (s, "bearer", &layers[0], 0, &k, true, NULL);
  ck_assert_int_eq (r, 0);
  assert_sink_is_blob (&k, &layers[0], 0);
  ck_assert_int_eq (count_lines (path_of ("fake/fake.log"), "token issued") - before, 2);
  free (k.d);
}
END_TEST

/* ---- mirrors -------------------------------------------------------- */

START_TEST (test_mirrors_are_tried_in_order_and_resolve_skips_pull_only_hosts)
{
  int closed = free_port ();
  ck_assert_int_eq (sh ("mkdir -p %s/hosts-mirror/mirror.test", tmp), 0);
  xwrite_file (path_of ("hosts-mirror/mirror.test/hosts.toml"),
               "server = \"http://%s\"\n"
               "[host.\"http://127.0.0.1:%d\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
               "[host.\"http://%s/fail503\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n"
               "[host.\"http://%s\"]\n  capabilities = [\"pull\"]\n",
               plain_host, closed, fake_host, fake_host);
  struct registry_options o = { .timeout_s = 5, .config_path = path_of ("hosts-mirror"),
                                .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session ("mirror.test", &o);
  int heads_before = count_lines (path_of ("fake/fake.log"), "HEAD /v2/test/img/manifests/v1");
  _cleanup_free_ char *dg = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_resolve (s, "test/img", "v1", NULL, &dg, NULL, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert_str_eq (dg, manifest.digest);
  /* the 503 mirror was asked, the pull-only mirror was not */
  ck_assert_int_ge (wait_lines (path_of ("fake/fake.log"), "HEAD /fail503/test/img/manifests/v1", 1), 1);
  ck_assert_int_eq (count_lines (path_of ("fake/fake.log"), "HEAD /v2/test/img/manifests/v1") - heads_before, 0);

  /* blobs: the refused and the failing mirror are passed, the pull-only one serves them (with ?ns=) */
  struct sink k = { 0 };
  r = fetch_one (s, "test/img", &layers[0], 0, &k, true, NULL);
  ck_assert_int_eq (r, 0);
  assert_sink_is_blob (&k, &layers[0], 0);
  char want[256];
  snprintf (want, sizeof want, "GET /v2/test/img/blobs/%s range=- auth=- ns=yes", layers[0].digest);
  ck_assert_int_eq (wait_lines (path_of ("fake/fake.log"), want, 1), 1);
  free (k.d);
}
END_TEST

/* ---- access for another process (the fuse snapshotter's lazy reader) -- */

/* Fetch the blob as another process would, with curl and only what a
 * gives: 0 when the bytes have the digest. */
static int
curl_with_access (const struct registry_blob_access *a, const char *digest)
{
  xwrite_file (path_of ("access.headers"), "%s", a->headers ? a->headers : "");
  char ca[600] = "";
  if (a->ca_pem)
    {
      xwrite_file (path_of ("access-ca.pem"), "%s", a->ca_pem);
      snprintf (ca, sizeof ca, "--cacert '%s'", path_of ("access-ca.pem"));
    }
  return sh ("curl -fsS %s -H @'%s' '%s' | sha256sum | grep -q '^%s '", ca, path_of ("access.headers"), a->url,
             digest + strlen ("sha256:"));
}

START_TEST (test_blob_access_with_a_bearer_token_lets_curl_fetch_the_blob)
{
  _cleanup_(registry_session_freep) registry_session *s = session (token_host, NULL);
  struct registry_blob_access a;
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_blob_access (s, "test/img", layers[1].digest, &a, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  char want[256];
  snprintf (want, sizeof want, "http://%s/v2/test/img/blobs/%s", token_host, layers[1].digest);
  ck_assert_str_eq (a.url, want);
  ck_assert (a.plain_http);
  ck_assert_int_eq (a.size, layers[1].size);
  ck_assert_ptr_nonnull (a.headers);
  ck_assert_ptr_nonnull (strstr (a.headers, "Authorization: Bearer "));
  /* token.json: expires_in 300 (the fixture's default) */
  ck_assert_int_gt (a.token_expires, time (NULL) + 200);
  ck_assert_int_le (a.token_expires, time (NULL) + 300);
  ck_assert_int_eq (curl_with_access (&a, layers[1].digest), 0);
  /* without the header the registry refuses: the token is what lets curl in */
  free (a.headers);
  a.headers = NULL;
  ck_assert_int_ne (curl_with_access (&a, layers[1].digest), 0);
  registry_blob_access_clear (&a);
}
END_TEST

START_TEST (test_blob_access_over_tls_with_basic_auth_gives_the_ca_and_the_credentials)
{
  write_tls_hosts (path_of ("hosts-tls"), true);
  struct registry_options o = { .timeout_s = 10, .config_path = path_of ("hosts-tls"), .username = "alice",
                                .secret = "s3cret", .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session (tls_host, &o);
  struct registry_blob_access a;
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_blob_access (s, "test/img", layers[0].digest, &a, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  ck_assert (!a.plain_http);
  ck_assert_ptr_nonnull (a.ca_pem);
  /* base64 ("alice:s3cret") */
  ck_assert_ptr_nonnull (a.headers);
  ck_assert_ptr_nonnull (strstr (a.headers, "Authorization: Basic YWxpY2U6czNjcmV0\n"));
  ck_assert_int_eq (a.token_expires, 0); /* basic credentials do not expire */
  ck_assert_int_eq (curl_with_access (&a, layers[0].digest), 0);
  registry_blob_access_clear (&a);
}
END_TEST

START_TEST (test_blob_access_names_the_mirror_that_has_the_blob_and_refuses_skip_verify)
{
  ck_assert_int_eq (sh ("mkdir -p %s/hosts-access/mirror.test", tmp), 0);
  xwrite_file (path_of ("hosts-access/mirror.test/hosts.toml"),
               "server = \"http://%s\"\n"
               "[host.\"http://%s/fail503\"]\n  capabilities = [\"pull\"]\n  override_path = true\n"
               "[host.\"http://%s\"]\n  capabilities = [\"pull\"]\n  header = { X-Mirror = \"yes\" }\n",
               plain_host, fake_host, plain_host);
  struct registry_options o = { .timeout_s = 5, .config_path = path_of ("hosts-access"),
                                .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s = session ("mirror.test", &o);
  struct registry_blob_access a;
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_blob_access (s, "test/img", layers[0].digest, &a, &err);
  ck_assert_msg (r == 0, "%s", msg (err));
  char want[256];
  snprintf (want, sizeof want, "http://%s/v2/test/img/blobs/%s?ns=mirror.test", plain_host, layers[0].digest);
  ck_assert_str_eq (a.url, want);
  ck_assert_ptr_nonnull (a.headers);
  ck_assert_str_eq (a.headers, "X-Mirror: yes\n");
  ck_assert_int_eq (curl_with_access (&a, layers[0].digest), 0);
  registry_blob_access_clear (&a);

  /* a blob no host has */
  r = registry_blob_access (s, "test/img", "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                            &a, &err);
  ck_assert_int_eq (r, BERTH_E_NOTFOUND);
  ck_assert_ptr_null (a.url);

  /* skip_verify cannot be handed on: NOTSUP, the caller downloads itself */
  write_tls_hosts (path_of ("hosts-skip"), false);
  char p[600];
  snprintf (p, sizeof p, "%s/127.0.0.1_%d_/hosts.toml", path_of ("hosts-skip"), tls_port);
  xwrite_file (p, "server = \"https://%s\"\nskip_verify = true\n", tls_host);
  struct registry_options o2 = { .timeout_s = 10, .config_path = path_of ("hosts-skip"), .username = "alice",
                                 .secret = "s3cret", .docker_config_dir = path_of ("docker") };
  _cleanup_(registry_session_freep) registry_session *s2 = session (tls_host, &o2);
  berth_error_free (err);
  err = NULL;
  r = registry_blob_access (s2, "test/img", layers[0].digest, &a, &err);
  ck_assert_int_eq (r, BERTH_E_NOTSUP);
  ck_assert_ptr_nonnull (strstr (msg (err), "skip_verify"));
}
END_TEST

static Suite *
registry_client_suite (void)
{
  Suite *s = suite_create ("registry-client");
  TCase *tc = tcase_create ("registry");
  tcase_add_unchecked_fixture (tc, setup_servers, teardown_servers);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_resolve_by_tag_gives_digest_size_and_media_type);
  tcase_add_test (tc, test_resolve_by_digest_returns_that_digest);
  tcase_add_test (tc, test_resolve_gets_the_manifest_when_head_has_no_digest);
  tcase_add_test (tc, test_fetch_manifest_checks_digest_and_size);
  tcase_add_test (tc, test_manifest_with_wrong_bytes_is_rejected);
  tcase_add_test (tc, test_small_blob_is_fetched_whole_and_verified);
  tcase_add_test (tc, test_blobs_are_fetched_in_parallel_with_progress);
  tcase_add_test (tc, test_blob_resumes_from_offset_with_a_range_request);
  tcase_add_test (tc, test_server_ignoring_range_restarts_through_reset);
  tcase_add_test (tc, test_connection_closed_mid_body_is_resumed);
  tcase_add_test (tc, test_content_length_lie_fails_the_blob);
  tcase_add_test (tc, test_body_longer_than_size_is_cut_and_fails);
  tcase_add_test (tc, test_redirect_to_another_host_does_not_carry_credentials);
  tcase_add_test (tc, test_cancelled_flag_stops_the_transfers);
  tcase_add_test (tc, test_not_found_names_repository_tag_and_host);
  tcase_add_test (tc, test_denied_is_explained_with_the_registry_message);
  tcase_add_test (tc, test_unavailable_registry_is_retried_with_backoff);
  tcase_add_test (tc, test_basic_auth_with_the_right_password_pulls_over_tls_and_http2);
  tcase_add_test (tc, test_basic_auth_with_a_wrong_password_says_unauthorized);
  tcase_add_test (tc, test_no_credentials_says_unauthorized_with_berth_login);
  tcase_add_test (tc, test_tls_without_the_ca_fails_verification);
  tcase_add_test (tc, test_credential_helper_supplies_the_password);
  tcase_add_test (tc, test_config_json_auths_supply_the_password);
  tcase_add_test (tc, test_bearer_token_is_fetched_once_and_cached);
  tcase_add_test (tc, test_bearer_token_is_fetched_again_after_it_expires);
  tcase_add_test (tc, test_token_refused_mid_pull_is_refreshed_once);
  tcase_add_test (tc, test_mirrors_are_tried_in_order_and_resolve_skips_pull_only_hosts);
  tcase_add_test (tc, test_blob_access_with_a_bearer_token_lets_curl_fetch_the_blob);
  tcase_add_test (tc, test_blob_access_over_tls_with_basic_auth_gives_the_ca_and_the_credentials);
  tcase_add_test (tc, test_blob_access_names_the_mirror_that_has_the_blob_and_refuses_skip_verify);
  suite_add_tcase (s, tc);
  return s;
}

static bool
have (const char *prog)
{
  char cmd[256];
  snprintf (cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
  return system (cmd) == 0;
}

int
main (void)
{
  const char *need[] = { "docker-registry", "openssl", "python3", "htpasswd", "curl" };
  for (size_t i = 0; i < ARRAY_SIZE (need); i++)
    if (!have (need[i]))
      {
        printf ("SKIP: %s not found (apt-get install docker-registry openssl python3 apache2-utils curl)\n", need[i]);
        return 77;
      }
  if (access (FIXTURES_PY, R_OK) != 0)
    {
      printf ("SKIP: %s not readable\n", FIXTURES_PY);
      return 77;
    }
  SRunner *sr = srunner_create (registry_client_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
