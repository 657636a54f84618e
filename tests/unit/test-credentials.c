/* Docker config.json credentials and docker-credential-* helpers (fake
 * helpers are shell scripts put first on PATH). */
#include <config.h>

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/pull/credentials.h"

static char dir[64];

static void
setup (void)
{
  strcpy (dir, "/tmp/berth-creds-test.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (dir));
  char p[4096];
  snprintf (p, sizeof p, "%s:%s", dir, getenv ("PATH"));
  setenv ("PATH", p, 1);
}

static void
teardown (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq (system (cmd), 0);
}

static void
write_file (const char *name, int mode, const char *fmt, ...)
{
  char p[256];
  snprintf (p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen (p, "w");
  ck_assert_ptr_nonnull (f);
  va_list ap;
  va_start (ap, fmt);
  vfprintf (f, fmt, ap);
  va_end (ap);
  fclose (f);
  chmod (p, (mode_t) mode);
}

static void
creds_clearp (struct registry_credentials *c)
{
  credentials_clear (c);
}

static struct registry_credentials
from_config (const char *json, const char *host)
{
  struct registry_credentials c;
  _cleanup_error_ berth_error *err = NULL;
  int r = credentials_from_config (json, strlen (json), host, &c, &err);
  ck_assert_msg (r == 0, "%s", err ? berth_error_message (err) : "?");
  return c;
}

START_TEST (test_auths_base64_entry_gives_user_and_password)
{
  _cleanup_ (creds_clearp) struct registry_credentials c
      = from_config ("{\"auths\":{\"registry.example:5000\":{\"auth\":\"YWxpY2U6czNjcjp0\"}}}", "registry.example:5000");
  ck_assert_str_eq (c.username, "alice");
  ck_assert_str_eq (c.secret, "s3cr:t"); /* only the first ':' splits */
  ck_assert_ptr_null (c.identity_token);
}
END_TEST

START_TEST (test_auths_keys_match_with_scheme_and_path)
{
  _cleanup_ (creds_clearp) struct registry_credentials c
      = from_config ("{\"auths\":{\"https://registry.example/v1/\":{\"username\":\"bob\",\"password\":\"pw\"}}}",
                     "registry.example");
  ck_assert_str_eq (c.username, "bob");
  ck_assert_str_eq (c.secret, "pw");
  _cleanup_ (creds_clearp) struct registry_credentials none
      = from_config ("{\"auths\":{\"https://registry.example/v1/\":{\"username\":\"bob\",\"password\":\"pw\"}}}",
                     "other.example");
  ck_assert_ptr_null (none.username);
  ck_assert_ptr_null (none.secret);
}
END_TEST

START_TEST (test_docker_io_uses_the_index_key)
{
  ck_assert_str_eq (credentials_server_key ("docker.io"), "https://index.docker.io/v1/");
  ck_assert_str_eq (credentials_server_key ("ghcr.io"), "ghcr.io");
  _cleanup_ (creds_clearp) struct registry_credentials c
      = from_config ("{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"dTpw\",\"identitytoken\":\"idt\"}}}",
                     "docker.io");
  ck_assert_str_eq (c.username, "u");
  ck_assert_str_eq (c.secret, "p");
  ck_assert_str_eq (c.identity_token, "idt");
}
END_TEST

START_TEST (test_malformed_config_is_refused_without_the_secret)
{
  struct registry_credentials c;
  _cleanup_error_ berth_error *err = NULL;
  const char *bad = "{\"auths\":{\"r.example\":{\"auth\":\"bm9jb2xvbg==\"}}}"; /* "nocolon" */
  ck_assert_int_eq (credentials_from_config (bad, strlen (bad), "r.example", &c, &err), BERTH_E_INVALID);
  ck_assert_ptr_null (strstr (berth_error_message (err), "nocolon"));
  ck_assert_ptr_null (strstr (berth_error_message (err), "bm9jb2xvbg"));
  _cleanup_error_ berth_error *err2 = NULL;
  ck_assert_int_eq (credentials_from_config ("{\"auths\":", 9, "r.example", &c, &err2), BERTH_E_INVALID);
  _cleanup_error_ berth_error *err3 = NULL;
  ck_assert_int_eq (credentials_from_config ("[1]", 3, "r.example", &c, &err3), BERTH_E_INVALID);
}
END_TEST

START_TEST (test_cred_helper_is_run_with_the_server_url_on_stdin)
{
  write_file ("docker-credential-fake", 0755,
              "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread url\necho \"$url\" > %s/asked\n"
              "echo '{\"ServerURL\":\"x\",\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}'\n",
              dir);
  _cleanup_ (creds_clearp) struct registry_credentials c
      = from_config ("{\"credHelpers\":{\"r.example\":\"fake\"},\"auths\":{\"r.example\":{\"auth\":\"dTpw\"}}}",
                     "r.example");
  ck_assert_str_eq (c.username, "helper-user");
  ck_assert_str_eq (c.secret, "helper-secret");
  char p[256], got[256] = "";
  snprintf (p, sizeof p, "%s/asked", dir);
  FILE *f = fopen (p, "r");
  ck_assert_ptr_nonnull (f);
  ck_assert_ptr_nonnull (fgets (got, sizeof got, f));
  fclose (f);
  ck_assert_str_eq (got, "r.example\n");
}
END_TEST

START_TEST (test_creds_store_answers_for_docker_io_with_the_index_url)
{
  write_file ("docker-credential-store", 0755,
              "#!/bin/sh\nread url\n[ \"$url\" = https://index.docker.io/v1/ ] || exit 4\n"
              "echo '{\"Username\":\"<token>\",\"Secret\":\"refresh-tok\"}'\n");
  _cleanup_ (creds_clearp) struct registry_credentials c = from_config ("{\"credsStore\":\"store\"}", "docker.io");
  ck_assert_ptr_null (c.username);
  ck_assert_str_eq (c.identity_token, "refresh-tok");
}
END_TEST

START_TEST (test_helper_without_credentials_falls_back_to_auths)
{
  write_file ("docker-credential-empty", 0755,
              "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n");
  _cleanup_ (creds_clearp) struct registry_credentials c
      = from_config ("{\"credsStore\":\"empty\",\"auths\":{\"r.example\":{\"auth\":\"dTpw\"}}}", "r.example");
  ck_assert_str_eq (c.username, "u");
}
END_TEST

START_TEST (test_failing_helper_is_an_error)
{
  write_file ("docker-credential-broken", 0755, "#!/bin/sh\necho 'secret-ish output'\nexit 2\n");
  struct registry_credentials c;
  _cleanup_error_ berth_error *err = NULL;
  const char *cfg = "{\"credsStore\":\"broken\"}";
  ck_assert_int_eq (credentials_from_config (cfg, strlen (cfg), "r.example", &c, &err), BERTH_E_UNAVAILABLE);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "docker-credential-broken failed (exit status 2)"));
  ck_assert_ptr_null (strstr (berth_error_message (err), "secret-ish"));
  _cleanup_error_ berth_error *err2 = NULL;
  const char *missing = "{\"credsStore\":\"does-not-exist\"}";
  ck_assert_int_eq (credentials_from_config (missing, strlen (missing), "r.example", &c, &err2), BERTH_E_NOTFOUND);
  _cleanup_error_ berth_error *err3 = NULL;
  const char *evil = "{\"credsStore\":\"../../bin/sh\"}";
  ck_assert_int_eq (credentials_from_config (evil, strlen (evil), "r.example", &c, &err3), BERTH_E_INVALID);
}
END_TEST

START_TEST (test_a_hanging_helper_is_killed_after_the_time_limit)
{
  write_file ("docker-credential-hang", 0755, "#!/bin/sh\nexec sleep 60\n");
  struct registry_credentials c;
  _cleanup_error_ berth_error *err = NULL;
  time_t a = time (NULL);
  ck_assert_int_eq (credentials_run_helper ("hang", "r.example", &c, &err), BERTH_E_DEADLINE);
  ck_assert_int_le (time (NULL) - a, 8);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "timed out"));
}
END_TEST

START_TEST (test_lookup_reads_docker_config_and_tolerates_a_missing_file)
{
  write_file ("config.json", 0600, "{\"auths\":{\"r.example\":{\"auth\":\"dTpw\"}}}");
  struct registry_credentials c;
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (credentials_lookup (dir, "r.example", &c, &err), 0);
  ck_assert_str_eq (c.username, "u");
  credentials_clear (&c);
  setenv ("DOCKER_CONFIG", dir, 1);
  ck_assert_int_eq (credentials_lookup (NULL, "r.example", &c, &err), 0);
  ck_assert_str_eq (c.secret, "p");
  credentials_clear (&c);
  ck_assert_int_eq (credentials_lookup ("/nonexistent/dir", "r.example", &c, &err), 0);
  ck_assert_ptr_null (c.username);
}
END_TEST

static Suite *
credentials_suite (void)
{
  Suite *s = suite_create ("credentials");
  TCase *tc = tcase_create ("credentials");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 20);
  tcase_add_test (tc, test_auths_base64_entry_gives_user_and_password);
  tcase_add_test (tc, test_auths_keys_match_with_scheme_and_path);
  tcase_add_test (tc, test_docker_io_uses_the_index_key);
  tcase_add_test (tc, test_malformed_config_is_refused_without_the_secret);
  tcase_add_test (tc, test_cred_helper_is_run_with_the_server_url_on_stdin);
  tcase_add_test (tc, test_creds_store_answers_for_docker_io_with_the_index_url);
  tcase_add_test (tc, test_helper_without_credentials_falls_back_to_auths);
  tcase_add_test (tc, test_failing_helper_is_an_error);
  tcase_add_test (tc, test_a_hanging_helper_is_killed_after_the_time_limit);
  tcase_add_test (tc, test_lookup_reads_docker_config_and_tolerates_a_missing_file);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (credentials_suite)
