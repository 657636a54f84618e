#include <config.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/pull/reference.h"

#define HEX64 "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

/* Parse s and compare its normalised and familiar forms. */
static void
expect (const char *s, const char *full, const char *familiar)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (reference_freep) reference *r = NULL;
  int rc = reference_parse (s, &r, &err);
  ck_assert_msg (rc == 0, "%s: %s", s, berth_error_message (err));
  _cleanup_free_ char *f = reference_string (r);
  _cleanup_free_ char *fam = reference_familiar (r);
  ck_assert_msg (strcmp (f, full) == 0, "%s: got %s, want %s", s, f, full);
  ck_assert_msg (strcmp (fam, familiar) == 0, "%s: familiar %s, want %s", s, fam, familiar);
}

static void
expect_error (const char *s, const char *want_in_msg)
{
  _cleanup_error_ berth_error *err = NULL;
  reference *r = NULL;
  ck_assert_msg (reference_parse (s, &r, &err) == BERTH_E_INVALID, "%s accepted", s);
  ck_assert_ptr_null (r);
  ck_assert_msg (strstr (berth_error_message (err), want_in_msg) != NULL, "%s: \"%s\" lacks \"%s\"", s,
                 berth_error_message (err), want_in_msg);
}

START_TEST (test_short_names_get_docker_hub_library_and_latest)
{
  expect ("busybox", "docker.io/library/busybox:latest", "busybox:latest");
  expect ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36");
  expect ("user/app", "docker.io/user/app:latest", "user/app:latest");
  expect ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest");
  expect ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x");
  expect ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest");
}
END_TEST

START_TEST (test_first_component_is_a_domain_when_it_looks_like_one)
{
  expect ("localhost:5000/x/y:tag", "localhost:5000/x/y:tag", "localhost:5000/x/y:tag");
  expect ("localhost/x", "localhost/x:latest", "localhost/x:latest");
  expect ("registry.example.com/team/app:v1.2.3", "registry.example.com/team/app:v1.2.3",
          "registry.example.com/team/app:v1.2.3");
  expect ("[::1]:5000/foo", "[::1]:5000/foo:latest", "[::1]:5000/foo:latest");
  expect ("Example.COM/foo", "Example.COM/foo:latest", "Example.COM/foo:latest");
  expect ("FOO/bar", "FOO/bar:latest", "FOO/bar:latest");
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (reference_freep) reference *r = NULL;
  ck_assert_int_eq (reference_parse ("localhost:5000/x/y:tag", &r, &err), 0);
  ck_assert_str_eq (r->domain, "localhost:5000");
  ck_assert_str_eq (r->path, "x/y");
  ck_assert_str_eq (r->tag, "tag");
  ck_assert_ptr_null (r->digest);
  ck_assert_str_eq (reference_registry_host (r), "localhost:5000");
}
END_TEST

START_TEST (test_digest_references_keep_no_default_tag)
{
  expect ("busybox@sha256:" HEX64, "docker.io/library/busybox@sha256:" HEX64, "busybox@sha256:" HEX64);
  expect ("host:1/repo@sha256:" HEX64, "host:1/repo@sha256:" HEX64, "host:1/repo@sha256:" HEX64);
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (reference_freep) reference *r = NULL;
  ck_assert_int_eq (reference_parse ("busybox:1.36@sha256:" HEX64, &r, &err), 0);
  ck_assert_str_eq (r->tag, "1.36");
  ck_assert_str_eq (r->digest, "sha256:" HEX64);
  _cleanup_free_ char *s = reference_string (r);
  ck_assert_str_eq (s, "docker.io/library/busybox:1.36@sha256:" HEX64);
  _cleanup_free_ char *n = reference_name (r);
  ck_assert_str_eq (n, "docker.io/library/busybox");
  ck_assert_str_eq (reference_registry_host (r), "registry-1.docker.io");
}
END_TEST

START_TEST (test_upper_case_repository_is_refused_with_reason)
{
  expect_error ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase");
  expect_error ("user/App:1", "must be lowercase");
  expect_error ("example.com/App", "repository name (App) must be lowercase");
}
END_TEST

START_TEST (test_malformed_references_say_what_is_wrong)
{
  expect_error ("", "at least one component");
  expect_error (HEX64, "cannot specify 64-byte hexadecimal strings");
  expect_error ("busybox:", "invalid tag");
  expect_error ("busybox:-x", "invalid tag");
  expect_error ("a..b", "invalid repository name");
  expect_error ("a-/b", "invalid repository name");
  expect_error ("a/b/", "invalid repository name");
  expect_error ("a___b", "invalid repository name");
  expect_error ("ex_ample.com/foo", "invalid domain");
  expect_error ("-x.com/foo", "invalid domain");
  expect_error ("host:port/foo", "invalid domain");
  expect_error ("busybox@sha256:abc", "too short");
  expect_error ("busybox@sha256:" HEX64 "00", "digest");
  expect_error ("busybox@md5:" HEX64, "unsupported digest algorithm");
  expect_error ("busybox@" HEX64, "no algorithm");
  expect_error ("busybox@sha256:" HEX64 "@sha256:" HEX64, "more than one");
  expect ("a__b/c-----d.e_f", "docker.io/a__b/c-----d.e_f:latest", "a__b/c-----d.e_f:latest");
}
END_TEST

START_TEST (test_lengths_are_bounded)
{
  char tag[160] = "busybox:";
  memset (tag + 8, 't', 128);
  tag[8 + 128] = '\0';
  expect ("busybox:tttt", "docker.io/library/busybox:tttt", "busybox:tttt");
  {
    _cleanup_error_ berth_error *err = NULL;
    _cleanup_ (reference_freep) reference *r = NULL;
    ck_assert_int_eq (reference_parse (tag, &r, &err), 0);
  }
  strcat (tag, "t");
  expect_error (tag, "invalid tag");
  char name[300] = "example.com/";
  size_t n = strlen (name);
  memset (name + n, 'a', 255 - n);
  name[255] = '\0';
  {
    _cleanup_error_ berth_error *err = NULL;
    _cleanup_ (reference_freep) reference *r = NULL;
    ck_assert_int_eq (reference_parse (name, &r, &err), 0);
  }
  strcat (name, "a");
  expect_error (name, "must not be more than 255 characters");
}
END_TEST

START_TEST (test_strict_parse_adds_no_defaults)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (reference_freep) reference *r = NULL;
  ck_assert_int_eq (reference_parse_strict ("docker.io/library/busybox", &r, &err), 0);
  ck_assert_ptr_null (r->tag);
  ck_assert_str_eq (r->path, "library/busybox");
  reference *r2 = NULL;
  ck_assert_int_eq (reference_parse_strict ("busybox", &r2, &err), BERTH_E_INVALID);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "not a fully qualified name"));
}
END_TEST

static Suite *
reference_suite (void)
{
  Suite *s = suite_create ("reference");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_short_names_get_docker_hub_library_and_latest);
  tcase_add_test (tc, test_first_component_is_a_domain_when_it_looks_like_one);
  tcase_add_test (tc, test_digest_references_keep_no_default_tag);
  tcase_add_test (tc, test_upper_case_repository_is_refused_with_reason);
  tcase_add_test (tc, test_malformed_references_say_what_is_wrong);
  tcase_add_test (tc, test_lengths_are_bounded);
  tcase_add_test (tc, test_strict_parse_adds_no_defaults);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (reference_suite)
