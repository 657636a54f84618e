/* hosts.toml (containerd certs.d layout) → endpoints. */
#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/pull/hosts.h"

static struct registry_hosts *
parse_ok (const char *text, const char *host, bool plain_http)
{
  struct registry_hosts *h = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = hosts_parse (text, strlen (text), "/etc/berth/certs.d/x", host, plain_http, &h, &err);
  ck_assert_msg (r == 0, "parse failed: %s", err ? berth_error_message (err) : "?");
  return h;
}

static void
assert_parse_fails (const char *text, const char *expected)
{
  struct registry_hosts *h = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = hosts_parse (text, strlen (text), "/d", "example.com", false, &h, &err);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_ptr_null (h);
  ck_assert_msg (strstr (berth_error_message (err), expected) != NULL, "message \"%s\" lacks \"%s\"",
                 berth_error_message (err), expected);
}

static struct registry_hosts *
load_ok (const char *config_path, const char *host, bool plain_http)
{
  struct registry_hosts *h = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = hosts_load (config_path, host, plain_http, &h, &err);
  ck_assert_msg (r == 0, "load failed: %s", err ? berth_error_message (err) : "?");
  return h;
}

START_TEST (test_docker_io_defaults_to_registry_1)
{
  _cleanup_(hosts_freep) struct registry_hosts *h = load_ok (NULL, "docker.io", false);
  ck_assert_uint_eq (h->n, 1);
  ck_assert_str_eq (h->items[0].scheme, "https");
  ck_assert_str_eq (h->items[0].host, "registry-1.docker.io");
  ck_assert_str_eq (h->items[0].path, "/v2");
  ck_assert_uint_eq (h->items[0].caps, HOST_CAP_PULL | HOST_CAP_RESOLVE | HOST_CAP_PUSH);
  ck_assert (!h->items[0].mirror);
  ck_assert (!h->items[0].skip_verify);
}
END_TEST

START_TEST (test_localhost_with_a_port_tries_https_then_http)
{
  _cleanup_(hosts_freep) struct registry_hosts *h = load_ok (NULL, "localhost:5000", false);
  ck_assert_str_eq (h->items[0].scheme, "https");
  ck_assert (h->items[0].http_fallback);
  ck_assert (h->items[0].skip_verify);
  _cleanup_(hosts_freep) struct registry_hosts *h2 = load_ok (NULL, "127.0.0.1", false);
  ck_assert_str_eq (h2->items[0].scheme, "https");
  ck_assert (!h2->items[0].http_fallback);
  _cleanup_(hosts_freep) struct registry_hosts *h3 = load_ok (NULL, "[::1]:80", false);
  ck_assert_str_eq (h3->items[0].scheme, "http");
  ck_assert (!h3->items[0].skip_verify);
  _cleanup_(hosts_freep) struct registry_hosts *h4 = load_ok (NULL, "registry.example:5000", false);
  ck_assert_str_eq (h4->items[0].scheme, "https");
  ck_assert (!h4->items[0].http_fallback);
  ck_assert (!h4->items[0].skip_verify);
}
END_TEST

START_TEST (test_plain_http_makes_the_default_server_http)
{
  _cleanup_(hosts_freep) struct registry_hosts *h = load_ok (NULL, "registry.example:5000", true);
  ck_assert_str_eq (h->items[0].scheme, "http");
  ck_assert_str_eq (h->items[0].host, "registry.example:5000");
  ck_assert (!h->items[0].http_fallback);
}
END_TEST

START_TEST (test_localhost_detection)
{
  ck_assert (hosts_is_localhost ("localhost"));
  ck_assert (hosts_is_localhost ("LOCALHOST:5000"));
  ck_assert (hosts_is_localhost ("127.0.0.1:5000"));
  ck_assert (hosts_is_localhost ("127.1.2.3"));
  ck_assert (hosts_is_localhost ("[::1]:5000"));
  ck_assert (hosts_is_localhost ("::1"));
  ck_assert (!hosts_is_localhost ("128.0.0.1"));
  ck_assert (!hosts_is_localhost ("localhost.example.com"));
  ck_assert (!hosts_is_localhost ("127.0.0.1.example.com"));
}
END_TEST

START_TEST (test_hosts_come_in_order_and_the_server_last)
{
  _cleanup_(hosts_freep) struct registry_hosts *h
      = parse_ok ("server = \"https://registry-1.docker.io\"\n"
                  "[host.\"https://public-mirror.example.com\"]\n  capabilities = [\"pull\"]\n"
                  "[host.\"https://docker-mirror.internal\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
                  "  ca = \"docker-mirror.crt\"\n",
                  "docker.io", false);
  ck_assert_uint_eq (h->n, 3);
  ck_assert_str_eq (h->items[0].host, "public-mirror.example.com");
  ck_assert_uint_eq (h->items[0].caps, HOST_CAP_PULL);
  ck_assert (h->items[0].mirror);
  ck_assert_str_eq (h->items[1].host, "docker-mirror.internal");
  ck_assert_uint_eq (h->items[1].caps, HOST_CAP_PULL | HOST_CAP_RESOLVE);
  ck_assert_str_eq (h->items[1].ca[0], "/etc/berth/certs.d/x/docker-mirror.crt");
  ck_assert_ptr_null (h->items[1].ca[1]);
  ck_assert_str_eq (h->items[2].host, "registry-1.docker.io");
  ck_assert (!h->items[2].mirror);
  ck_assert_uint_eq (h->items[2].caps, HOST_CAP_PULL | HOST_CAP_RESOLVE | HOST_CAP_PUSH);
}
END_TEST

START_TEST (test_without_server_the_namespace_host_is_the_fallback)
{
  _cleanup_(hosts_freep) struct registry_hosts *h
      = parse_ok ("[host.\"https://registry.example.com\"]\n  capabilities = [\"pull\", \"resolve\"]\n", "quay.io", false);
  ck_assert_uint_eq (h->n, 2);
  ck_assert_str_eq (h->items[0].host, "registry.example.com");
  ck_assert_str_eq (h->items[1].scheme, "https");
  ck_assert_str_eq (h->items[1].host, "quay.io");
  ck_assert_str_eq (h->items[1].path, "/v2");
}
END_TEST

START_TEST (test_paths_get_v2_unless_override_path)
{
  _cleanup_(hosts_freep) struct registry_hosts *h
      = parse_ok ("server = \"https://r.example/\"\n"
                  "[host.\"https://a.example/prefix//x/\"]\n"
                  "[host.\"https://b.example/already/v2\"]\n"
                  "[host.\"https://c.example/custom/api\"]\n  override_path = true\n"
                  "[host.\"d.example:5000\"]\n",
                  "r.example", false);
  ck_assert_uint_eq (h->n, 5);
  ck_assert_str_eq (h->items[0].path, "/prefix/x/v2");
  ck_assert_str_eq (h->items[1].path, "/already/v2");
  ck_assert_str_eq (h->items[2].path, "/custom/api");
  ck_assert_str_eq (h->items[3].scheme, "https");
  ck_assert_str_eq (h->items[3].host, "d.example:5000");
  ck_assert_str_eq (h->items[4].path, "/v2");
}
END_TEST

START_TEST (test_tls_client_header_and_skip_verify_are_read)
{
  _cleanup_(hosts_freep) struct registry_hosts *h
      = parse_ok ("[host.\"https://m.example\"]\n"
                  "  skip_verify = true\n"
                  "  ca = [\"/abs/ca1.pem\", \"rel/ca2.pem\"]\n"
                  "  client = [[\"c.cert\", \"c.key\"], \"both.pem\"]\n"
                  "  [host.\"https://m.example\".header]\n"
                  "    x-custom-1 = \"custom header\"\n"
                  "    x-multi = [\"a\", \"b\"]\n",
                  "r.example", false);
  const struct registry_host *m = &h->items[0];
  ck_assert (m->skip_verify);
  ck_assert_str_eq (m->ca[0], "/abs/ca1.pem");
  ck_assert_str_eq (m->ca[1], "/etc/berth/certs.d/x/rel/ca2.pem");
  ck_assert_str_eq (m->client_cert[0], "/etc/berth/certs.d/x/c.cert");
  ck_assert_str_eq (m->client_key[0], "/etc/berth/certs.d/x/c.key");
  ck_assert_str_eq (m->client_cert[1], "/etc/berth/certs.d/x/both.pem");
  ck_assert_str_eq (m->client_key[1], "");
  ck_assert_str_eq (m->headers[0], "x-custom-1: custom header");
  ck_assert_str_eq (m->headers[1], "x-multi: a");
  ck_assert_str_eq (m->headers[2], "x-multi: b");
  ck_assert_ptr_null (m->headers[3]);
}
END_TEST

START_TEST (test_http_host_with_tls_settings_tries_https_first)
{
  _cleanup_(hosts_freep) struct registry_hosts *h
      = parse_ok ("[host.\"http://m.example:5000\"]\n  skip_verify = true\n"
                  "[host.\"http://n.example:80\"]\n  skip_verify = true\n"
                  "[host.\"http://o.example:5000\"]\n",
                  "r.example", false);
  ck_assert_str_eq (h->items[0].scheme, "https");
  ck_assert (h->items[0].http_fallback);
  ck_assert_str_eq (h->items[1].scheme, "http");
  ck_assert (!h->items[1].http_fallback);
  ck_assert_str_eq (h->items[2].scheme, "http");
  ck_assert (!h->items[2].http_fallback);
}
END_TEST

START_TEST (test_bad_hosts_files_are_refused_with_a_reason)
{
  assert_parse_fails ("[host.\"https://m\"]\n  capabilities = [\"pull\", \"fly\"]\n", "unknown capability \"fly\"");
  assert_parse_fails ("server = 5\n", "invalid type integer for \"server\"");
  assert_parse_fails ("ca = 5\n", "invalid type integer for \"ca\"");
  assert_parse_fails ("client = [[\"a\"]]\n", "invalid pair for \"client\"");
  assert_parse_fails ("skip_verify = \"yes\"\n", "invalid type string for \"skip_verify\"");
  assert_parse_fails ("[header]\n  \"bad name\" = \"x\"\n", "invalid header");
  assert_parse_fails ("[header]\n  x = \"a\\nb\"\n", "invalid header");
  assert_parse_fails ("server = \"ftp://x\"\n", "unsupported scheme");
  assert_parse_fails ("server = \"https://user@x\"\n", "invalid host");
  assert_parse_fails ("server = \"https://x/p?q=1\"\n", "invalid path");
  assert_parse_fails ("server = \"https://\"\n", "no host");
  assert_parse_fails ("server = [\n", "line 2, column 1");
}
END_TEST

static char dir[64];

static void
mkdirs (const char *fmt, const char *a)
{
  char cmd[512];
  snprintf (cmd, sizeof cmd, "mkdir -p '%s/", dir);
  strncat (cmd, a, sizeof cmd - strlen (cmd) - 2);
  strcat (cmd, "'");
  (void) fmt;
  ck_assert_int_eq (system (cmd), 0);
}

static void
write_at (const char *rel, const char *text)
{
  char p[512];
  snprintf (p, sizeof p, "%s/%s", dir, rel);
  FILE *f = fopen (p, "w");
  ck_assert_ptr_nonnull (f);
  fputs (text, f);
  fclose (f);
}

static void
make_dir (void)
{
  strcpy (dir, "/tmp/berth-hosts-test.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (dir));
}

static void
remove_dir (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq (system (cmd), 0);
}

START_TEST (test_host_port_directory_wins_then_host_colon_port_then_default)
{
  make_dir ();
  mkdirs (NULL, "r.example_5000_");
  mkdirs (NULL, "r.example:5000");
  mkdirs (NULL, "_default");
  write_at ("r.example_5000_/hosts.toml", "server = \"https://underscore.example\"\n");
  write_at ("r.example:5000/hosts.toml", "server = \"https://colon.example\"\n");
  write_at ("_default/hosts.toml", "[host.\"https://everything-mirror.example\"]\n");
  _cleanup_(hosts_freep) struct registry_hosts *a = load_ok (dir, "r.example:5000", false);
  ck_assert_str_eq (a->items[0].host, "underscore.example");
  char p[512];
  snprintf (p, sizeof p, "%s/r.example_5000_", dir);
  ck_assert_str_eq (a->dir, p);
  snprintf (p, sizeof p, "rm -rf '%s/r.example_5000_'", dir);
  ck_assert_int_eq (system (p), 0);
  _cleanup_(hosts_freep) struct registry_hosts *b = load_ok (dir, "r.example:5000", false);
  ck_assert_str_eq (b->items[0].host, "colon.example");
  _cleanup_(hosts_freep) struct registry_hosts *c = load_ok (dir, "other.example", false);
  ck_assert_uint_eq (c->n, 2);
  ck_assert_str_eq (c->items[0].host, "everything-mirror.example");
  ck_assert_str_eq (c->items[1].host, "other.example");
  remove_dir ();
}
END_TEST

START_TEST (test_docker_certificate_files_configure_the_default_server)
{
  make_dir ();
  mkdirs (NULL, "r.example");
  write_at ("r.example/b-ca.crt", "x");
  write_at ("r.example/a-ca.crt", "x");
  write_at ("r.example/client.cert", "x");
  write_at ("r.example/client.key", "x");
  _cleanup_(hosts_freep) struct registry_hosts *h = load_ok (dir, "r.example", false);
  ck_assert_uint_eq (h->n, 1);
  ck_assert_str_eq (h->items[0].host, "r.example");
  ck_assert_ptr_nonnull (strstr (h->items[0].ca[0], "a-ca.crt"));
  ck_assert_ptr_nonnull (strstr (h->items[0].ca[1], "b-ca.crt"));
  ck_assert_ptr_nonnull (strstr (h->items[0].client_cert[0], "client.cert"));
  ck_assert_ptr_nonnull (strstr (h->items[0].client_key[0], "client.key"));
  remove_dir ();
}
END_TEST

START_TEST (test_a_host_name_with_a_slash_is_refused)
{
  struct registry_hosts *h = NULL;
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (hosts_load ("/tmp", "../etc", false, &h, &err), BERTH_E_INVALID);
  ck_assert_ptr_null (h);
}
END_TEST

static Suite *
hosts_suite (void)
{
  Suite *s = suite_create ("hosts");
  TCase *tc = tcase_create ("hosts");
  tcase_add_test (tc, test_docker_io_defaults_to_registry_1);
  tcase_add_test (tc, test_localhost_with_a_port_tries_https_then_http);
  tcase_add_test (tc, test_plain_http_makes_the_default_server_http);
  tcase_add_test (tc, test_localhost_detection);
  tcase_add_test (tc, test_hosts_come_in_order_and_the_server_last);
  tcase_add_test (tc, test_without_server_the_namespace_host_is_the_fallback);
  tcase_add_test (tc, test_paths_get_v2_unless_override_path);
  tcase_add_test (tc, test_tls_client_header_and_skip_verify_are_read);
  tcase_add_test (tc, test_http_host_with_tls_settings_tries_https_first);
  tcase_add_test (tc, test_bad_hosts_files_are_refused_with_a_reason);
  tcase_add_test (tc, test_host_port_directory_wins_then_host_colon_port_then_default);
  tcase_add_test (tc, test_docker_certificate_files_configure_the_default_server);
  tcase_add_test (tc, test_a_host_name_with_a_slash_is_refused);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (hosts_suite)
