/* cli/dockercfg.c: docker's config.json as `berth login` reads and writes
 * it, and the docker-credential-* helper protocol (with a fake helper: a
 * shell script that records what it was asked). */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-c/json.h>

#include "check-main.h"
#include "cleanup.h"
#include "dockercfg.h"

static char tmpdir[64];

static void
setup (void)
{
  snprintf (tmpdir, sizeof tmpdir, "/tmp/berth-dockercfg.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (tmpdir));
}

static void
teardown (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", tmpdir);
}

static char *
path_in (const char *name)
{
  char *p = NULL;
  ck_assert_int_ge (asprintf (&p, "%s/%s", tmpdir, name), 0);
  return p;
}

static void
write_file (const char *path, const char *content, mode_t mode)
{
  FILE *f = fopen (path, "w");
  ck_assert_ptr_nonnull (f);
  fputs (content, f);
  ck_assert_int_eq (fclose (f), 0);
  ck_assert_int_eq (chmod (path, mode), 0);
}

static json_object *
read_json (const char *path)
{
  json_object *o = json_object_from_file (path);
  ck_assert_msg (o != NULL, "%s is not JSON", path);
  return o;
}

/* The string at a dotted path of keys (keys may not contain dots here). */
static const char *
json_at (json_object *o, const char *path)
{
  char buf[256];
  snprintf (buf, sizeof buf, "%s", path);
  char *save = NULL;
  for (char *k = strtok_r (buf, "|", &save); k; k = strtok_r (NULL, "|", &save))
    if (!json_object_object_get_ex (o, k, &o))
      return NULL;
  return json_object_get_string (o);
}

static dockercfg *
load (const char *path)
{
  dockercfg *c = NULL;
  _cleanup_error_ berth_error *err = NULL;
  int r = dockercfg_load (path, &c, &err);
  ck_assert_msg (r == 0, "load: %s", err ? berth_error_message (err) : "?");
  return c;
}

/* A fake helper docker-credential-fake in tmpdir/bin, put first on PATH.
 * It logs "<action> <stdin>" to tmpdir/helper.log, keeps one credential in
 * tmpdir/helper.store, and answers like the real helpers. */
static void
install_fake_helper (void)
{
  _cleanup_free_ char *bin = path_in ("bin");
  ck_assert_int_eq (mkdir (bin, 0755), 0);
  _cleanup_free_ char *script = path_in ("bin/docker-credential-fake");
  char *text = NULL;
  ck_assert_int_ge (asprintf (&text,
                              "#!/bin/sh\n"
                              "input=$(cat)\n"
                              "echo \"$1 $input\" >> %s/helper.log\n"
                              "case $1 in\n"
                              "  store) printf '%%s' \"$input\" > %s/helper.store ;;\n"
                              "  get) [ -f %s/helper.store ] && cat %s/helper.store && exit 0\n"
                              "       echo 'credentials not found in native keychain'; exit 1 ;;\n"
                              "  erase) [ -f %s/helper.store ] && rm %s/helper.store && exit 0\n"
                              "       echo 'credentials not found in native keychain'; exit 1 ;;\n"
                              "esac\n",
                              tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir),
                    0);
  write_file (script, text, 0755);
  free (text);
  char *path = NULL;
  ck_assert_int_ge (asprintf (&path, "%s:%s", bin, getenv ("PATH") ? getenv ("PATH") : "/usr/bin:/bin"), 0);
  setenv ("PATH", path, 1);
  free (path);
}

static char *
slurp (const char *path)
{
  FILE *f = fopen (path, "r");
  if (f == NULL)
    return NULL;
  char *buf = calloc (1, 65536);
  size_t n = fread (buf, 1, 65535, f);
  buf[n] = 0;
  fclose (f);
  return buf;
}

static int
count_entries (const char *dir)
{
  DIR *d = opendir (dir);
  ck_assert_ptr_nonnull (d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir (d)))
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, ".."))
      n++;
  closedir (d);
  return n;
}

START_TEST (test_base64_encodes_and_decodes_like_docker)
{
  _cleanup_free_ char *e = dockercfg_base64_encode ("alice:s3cret", 12);
  ck_assert_str_eq (e, "YWxpY2U6czNjcmV0");
  _cleanup_free_ char *e1 = dockercfg_base64_encode ("a", 1);
  ck_assert_str_eq (e1, "YQ==");
  _cleanup_free_ char *e2 = dockercfg_base64_encode ("ab", 2);
  ck_assert_str_eq (e2, "YWI=");
  size_t len = 0;
  _cleanup_free_ char *d = dockercfg_base64_decode ("Ym9iOnB3IHdpdGggc3BhY2Vz", &len);
  ck_assert_str_eq (d, "bob:pw with spaces");
  ck_assert_uint_eq (len, 18);
  _cleanup_free_ char *d1 = dockercfg_base64_decode ("YQ==", &len);
  ck_assert_str_eq (d1, "a");
  ck_assert_ptr_null (dockercfg_base64_decode ("not base64!", NULL));
  ck_assert_ptr_null (dockercfg_base64_decode ("abcde", NULL));
}
END_TEST

START_TEST (test_server_keys_follow_docker)
{
  static const struct
  {
    const char *in, *want;
  } cases[] = {
    { NULL, DOCKERCFG_HUB_KEY },
    { "", DOCKERCFG_HUB_KEY },
    { "docker.io", DOCKERCFG_HUB_KEY },
    { "index.docker.io", DOCKERCFG_HUB_KEY },
    { "registry-1.docker.io", DOCKERCFG_HUB_KEY },
    { "https://index.docker.io/v1/", DOCKERCFG_HUB_KEY },
    { "registry.example:5000", "registry.example:5000" },
    { "https://registry.example:5000/v2/", "registry.example:5000" },
    { "http://localhost:5000", "localhost:5000" },
    { "ghcr.io/owner/repo", "ghcr.io" },
    { "docker.io.evil.example", "docker.io.evil.example" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    {
      _cleanup_free_ char *k = dockercfg_server_key (cases[i].in);
      ck_assert_msg (strcmp (k, cases[i].want) == 0, "%s -> %s, expected %s", cases[i].in ? cases[i].in : "NULL", k,
                     cases[i].want);
    }
}
END_TEST

START_TEST (test_store_creates_a_private_directory_and_file)
{
  _cleanup_free_ char *dir = path_in ("docker");
  _cleanup_free_ char *path = path_in ("docker/config.json");
  dockercfg *c = load (path);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (dockercfg_store (c, "registry.example:5000", "alice", "s3cret", &err), 0);
  dockercfg_free (c);
  struct stat st;
  ck_assert_int_eq (stat (dir, &st), 0);
  ck_assert_int_eq (st.st_mode & 07777, 0700);
  ck_assert_int_eq (stat (path, &st), 0);
  ck_assert_int_eq (st.st_mode & 07777, 0600);
  json_object *o = read_json (path);
  ck_assert_str_eq (json_at (o, "auths|registry.example:5000|auth"), "YWxpY2U6czNjcmV0");
  json_object_put (o);
  ck_assert_int_eq (count_entries (dir), 1); /* no temporary file left */
}
END_TEST

START_TEST (test_store_keeps_every_other_key_and_tightens_the_mode)
{
  _cleanup_free_ char *path = path_in ("config.json");
  write_file (path,
              "{\n"
              "  \"auths\": {\n"
              "    \"other.example\": { \"auth\": \"b3RoZXI6cHc=\", \"email\": \"o@example\" },\n"
              "    \"https://registry.example:5000/v2/\": { \"auth\": \"b2xkOm9sZA==\" }\n"
              "  },\n"
              "  \"psFormat\": \"table {{.ID}}\",\n"
              "  \"proxies\": { \"default\": { \"httpProxy\": \"http://proxy:3128\" } },\n"
              "  \"credHelpers\": { \"helper.example\": \"fake\" }\n"
              "}\n",
              0644);
  dockercfg *c = load (path);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (dockercfg_store (c, "registry.example:5000", "bob", "pw", &err), 0);
  dockercfg_free (c);

  json_object *o = read_json (path);
  ck_assert_str_eq (json_at (o, "psFormat"), "table {{.ID}}");
  ck_assert_str_eq (json_at (o, "proxies|default|httpProxy"), "http://proxy:3128");
  ck_assert_str_eq (json_at (o, "credHelpers|helper.example"), "fake");
  ck_assert_str_eq (json_at (o, "auths|other.example|email"), "o@example");
  ck_assert_str_eq (json_at (o, "auths|other.example|auth"), "b3RoZXI6cHc=");
  ck_assert_str_eq (json_at (o, "auths|registry.example:5000|auth"), "Ym9iOnB3");
  /* The old spelling of the same server is gone: one entry per server. */
  ck_assert_ptr_null (json_at (o, "auths|https://registry.example:5000/v2/"));
  json_object_put (o);
  struct stat st;
  ck_assert_int_eq (stat (path, &st), 0);
  ck_assert_int_eq (st.st_mode & 07777, 0600);
}
END_TEST

START_TEST (test_store_writes_through_a_symlink)
{
  _cleanup_free_ char *real = path_in ("real.json");
  _cleanup_free_ char *link = path_in ("config.json");
  write_file (real, "{\"psFormat\": \"x\"}", 0600);
  ck_assert_int_eq (symlink (real, link), 0);
  dockercfg *c = load (link);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (dockercfg_store (c, "r.example", "u", "p", &err), 0);
  dockercfg_free (c);
  struct stat st;
  ck_assert_int_eq (lstat (link, &st), 0);
  ck_assert (S_ISLNK (st.st_mode));
  json_object *o = read_json (real);
  ck_assert_str_eq (json_at (o, "auths|r.example|auth"), "dTpw");
  ck_assert_str_eq (json_at (o, "psFormat"), "x");
  json_object_put (o);
}
END_TEST

START_TEST (test_get_finds_credentials_under_another_spelling)
{
  _cleanup_free_ char *path = path_in ("config.json");
  write_file (path, "{\"auths\": {\"https://registry.example/v2/\": {\"auth\": \"Ym9iOnB3OndpdGg6Y29sb25z\"}}}", 0600);
  dockercfg *c = load (path);
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_free_ char *user = NULL, *secret = NULL;
  ck_assert_int_eq (dockercfg_get (c, "registry.example", &user, &secret, &err), 0);
  ck_assert_str_eq (user, "bob");
  ck_assert_str_eq (secret, "pw:with:colons");
  ck_assert_int_eq (dockercfg_get (c, "elsewhere.example", &user, &secret, &err), BERTH_E_NOTFOUND);
  dockercfg_free (c);
}
END_TEST

START_TEST (test_erase_removes_every_matching_entry_and_says_so)
{
  _cleanup_free_ char *path = path_in ("config.json");
  write_file (path,
              "{\"auths\": {\"r.example\": {\"auth\": \"dTpw\"}, \"https://r.example/v2/\": {\"auth\": \"dTpw\"},"
              " \"keep.example\": {\"auth\": \"dTpw\"}}, \"experimental\": \"enabled\"}",
              0600);
  dockercfg *c = load (path);
  _cleanup_error_ berth_error *err = NULL;
  bool found = false;
  ck_assert_int_eq (dockercfg_erase (c, "r.example", &found, &err), 0);
  ck_assert (found);
  ck_assert_int_eq (dockercfg_erase (c, "r.example", &found, &err), 0);
  ck_assert (!found);
  dockercfg_free (c);
  json_object *o = read_json (path);
  ck_assert_ptr_null (json_at (o, "auths|r.example"));
  ck_assert_ptr_null (json_at (o, "auths|https://r.example/v2/"));
  ck_assert_str_eq (json_at (o, "auths|keep.example|auth"), "dTpw");
  ck_assert_str_eq (json_at (o, "experimental"), "enabled");
  json_object_put (o);
}
END_TEST

START_TEST (test_load_treats_a_missing_file_as_empty_and_refuses_garbage)
{
  _cleanup_free_ char *missing = path_in ("nope/config.json");
  dockercfg *c = load (missing);
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_free_ char *u = NULL, *s = NULL;
  ck_assert_int_eq (dockercfg_get (c, "r.example", &u, &s, &err), BERTH_E_NOTFOUND);
  dockercfg_free (c);

  _cleanup_free_ char *bad = path_in ("bad.json");
  write_file (bad, "{\"auths\": ", 0600);
  berth_error *e2 = NULL;
  ck_assert_int_eq (dockercfg_load (bad, &c, &e2), BERTH_E_INVALID);
  ck_assert_ptr_nonnull (strstr (berth_error_message (e2), bad));
  berth_error_free (e2);
  write_file (bad, "[1, 2]", 0600);
  e2 = NULL;
  ck_assert_int_eq (dockercfg_load (bad, &c, &e2), BERTH_E_INVALID);
  berth_error_free (e2);
}
END_TEST

START_TEST (test_default_path_honours_docker_config)
{
  setenv ("DOCKER_CONFIG", "/some/dir", 1);
  _cleanup_free_ char *p = NULL;
  ck_assert_int_eq (dockercfg_default_path (&p, NULL), 0);
  ck_assert_str_eq (p, "/some/dir/config.json");
  unsetenv ("DOCKER_CONFIG");
  setenv ("HOME", "/home/someone", 1);
  _cleanup_free_ char *q = NULL;
  ck_assert_int_eq (dockercfg_default_path (&q, NULL), 0);
  ck_assert_str_eq (q, "/home/someone/.docker/config.json");
}
END_TEST

START_TEST (test_store_get_and_erase_go_through_the_creds_store_helper)
{
  install_fake_helper ();
  _cleanup_free_ char *path = path_in ("config.json");
  write_file (path, "{\"credsStore\": \"fake\"}", 0600);
  dockercfg *c = load (path);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_str_eq (dockercfg_helper (c, "r.example"), "fake");
  ck_assert_int_eq (dockercfg_store (c, "r.example", "dave", "hun\"ter2", &err), 0);
  _cleanup_free_ char *user = NULL, *secret = NULL;
  ck_assert_int_eq (dockercfg_get (c, "r.example", &user, &secret, &err), 0);
  ck_assert_str_eq (user, "dave");
  ck_assert_str_eq (secret, "hun\"ter2");
  bool found = false;
  ck_assert_int_eq (dockercfg_erase (c, "r.example", &found, &err), 0);
  ck_assert (found);
  ck_assert_int_eq (dockercfg_erase (c, "r.example", &found, &err), 0);
  ck_assert (!found);
  dockercfg_free (c);

  _cleanup_free_ char *logpath = path_in ("helper.log");
  _cleanup_free_ char *log = slurp (logpath);
  ck_assert_ptr_nonnull (log);
  ck_assert_str_eq (log, "store {\"ServerURL\":\"r.example\",\"Username\":\"dave\",\"Secret\":\"hun\\\"ter2\"}\n"
                         "get r.example\n"
                         "erase r.example\n"
                         "erase r.example\n");
  /* The file itself never saw the secret. */
  _cleanup_free_ char *cfg = slurp (path);
  ck_assert_ptr_null (strstr (cfg, "hun"));
}
END_TEST

START_TEST (test_cred_helpers_win_over_creds_store_and_missing_helpers_are_named)
{
  install_fake_helper ();
  _cleanup_free_ char *path = path_in ("config.json");
  write_file (path, "{\"credsStore\": \"absent\", \"credHelpers\": {\"https://special.example/\": \"fake\"}}", 0600);
  dockercfg *c = load (path);
  ck_assert_str_eq (dockercfg_helper (c, "special.example"), "fake");
  ck_assert_str_eq (dockercfg_helper (c, "other.example"), "absent");
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (dockercfg_store (c, "special.example", "u", "p", &err), 0);
  ck_assert_int_eq (dockercfg_store (c, "other.example", "u", "p", &err), BERTH_E_NOTFOUND);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "docker-credential-absent not found on PATH"));
  dockercfg_free (c);
}
END_TEST

START_TEST (test_a_failing_helper_reports_what_it_printed)
{
  install_fake_helper ();
  _cleanup_free_ char *path = path_in ("config.json");
  write_file (path, "{\"credsStore\": \"fake\"}", 0600);
  dockercfg *c = load (path);
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_free_ char *u = NULL, *s = NULL;
  ck_assert_int_eq (dockercfg_get (c, "r.example", &u, &s, &err), BERTH_E_NOTFOUND);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "credentials not found in native keychain"));
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "docker-credential-fake get failed (exit 1)"));
  dockercfg_free (c);
}
END_TEST

static Suite *
dockercfg_suite (void)
{
  Suite *s = suite_create ("dockercfg");
  TCase *tc = tcase_create ("dockercfg");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_base64_encodes_and_decodes_like_docker);
  tcase_add_test (tc, test_server_keys_follow_docker);
  tcase_add_test (tc, test_store_creates_a_private_directory_and_file);
  tcase_add_test (tc, test_store_keeps_every_other_key_and_tightens_the_mode);
  tcase_add_test (tc, test_store_writes_through_a_symlink);
  tcase_add_test (tc, test_get_finds_credentials_under_another_spelling);
  tcase_add_test (tc, test_erase_removes_every_matching_entry_and_says_so);
  tcase_add_test (tc, test_load_treats_a_missing_file_as_empty_and_refuses_garbage);
  tcase_add_test (tc, test_default_path_honours_docker_config);
  tcase_add_test (tc, test_store_get_and_erase_go_through_the_creds_store_helper);
  tcase_add_test (tc, test_cred_helpers_win_over_creds_store_and_missing_helpers_are_named);
  tcase_add_test (tc, test_a_failing_helper_reports_what_it_printed);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (dockercfg_suite)
