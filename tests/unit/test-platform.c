#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/pull/platform.h"

static char *
parsed (const char *spec)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_platform_freep) oci_platform *p = NULL;
  ck_assert_msg (platform_parse (spec, &p, &err) == 0, "%s: %s", spec, berth_error_message (err));
  return platform_format (p);
}

static void
expect_parse (const char *spec, const char *want)
{
  _cleanup_free_ char *got = parsed (spec);
  ck_assert_msg (strcmp (got, want) == 0, "%s: got %s, want %s", spec, got, want);
}

static oci_platform *
plat (const char *os, const char *arch, const char *variant)
{
  oci_platform *p = calloc (1, sizeof *p);
  p->os = strdup (os);
  p->architecture = strdup (arch);
  p->variant = variant ? strdup (variant) : NULL;
  return p;
}

static int
rank (const char *want, const char *os, const char *arch, const char *variant)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (oci_platform_freep) oci_platform *w = NULL;
  _cleanup_ (platform_matcher_freep) platform_matcher *m = NULL;
  ck_assert_int_eq (platform_parse (want, &w, &err), 0);
  ck_assert_int_eq (platform_matcher_only (w, &m, &err), 0);
  _cleanup_ (oci_platform_freep) oci_platform *p = plat (os, arch, variant);
  return platform_rank (m, p);
}

START_TEST (test_specifiers_parse_and_normalise)
{
  expect_parse ("linux/amd64", "linux/amd64");
  expect_parse ("linux/x86_64", "linux/amd64");
  expect_parse ("Linux/AMD64", "linux/amd64");
  expect_parse ("linux/aarch64", "linux/arm64");
  expect_parse ("linux/arm64/v8", "linux/arm64/v8");
  expect_parse ("linux/aarch64/8", "linux/arm64/v8");
  expect_parse ("linux/arm/v7", "linux/arm/v7");
  expect_parse ("linux/arm", "linux/arm");
  expect_parse ("linux/armhf", "linux/arm");
  expect_parse ("linux/armel", "linux/arm/v6");
  expect_parse ("linux/arm/6", "linux/arm/v6");
  expect_parse ("linux/i386", "linux/386");
  expect_parse ("windows/amd64", "windows/amd64");
  expect_parse ("macos/arm64", "darwin/arm64");
  expect_parse ("linux/riscv64", "linux/riscv64");
}
END_TEST

START_TEST (test_one_part_specifier_fills_in_the_host)
{
  _cleanup_ (oci_platform_freep) oci_platform *host = platform_default ();
  ck_assert_str_eq (host->os, "linux");
  _cleanup_free_ char *a = parsed ("linux");
  _cleanup_free_ char *hostf = platform_format (host);
  if (strcmp (host->architecture, "arm") != 0 && strcmp (host->architecture, "arm64") != 0)
    ck_assert_str_eq (a, hostf);
  else
    ck_assert (strncmp (a, "linux/arm", 9) == 0);
  _cleanup_free_ char *b = parsed ("arm64");
  ck_assert_str_eq (b, "linux/arm64");
  _cleanup_free_ char *c = parsed ("x86_64");
  ck_assert_str_eq (c, "linux/amd64");
}
END_TEST

START_TEST (test_bad_specifiers_are_refused)
{
  static const char *const bad[] = { "", "linux/", "/amd64", "linux/amd64/v8/x", "linux/*", "linux amd64", "frobnicate",
                                     "linux/amd64/v8.1" };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      oci_platform *p = NULL;
      ck_assert_msg (platform_parse (bad[i], &p, &err) == BERTH_E_INVALID, "%s accepted", bad[i]);
      ck_assert_ptr_null (p);
      ck_assert_ptr_nonnull (strstr (berth_error_message (err), "platform \""));
    }
}
END_TEST

START_TEST (test_arm64_v8_matches_an_entry_without_variant)
{
  ck_assert_int_eq (rank ("linux/arm64/v8", "linux", "arm64", NULL), 0);
  ck_assert_int_eq (rank ("linux/arm64", "linux", "arm64", "v8"), 0);
  ck_assert_int_eq (rank ("linux/aarch64", "linux", "aarch64", NULL), 0);
  ck_assert_int_eq (rank ("linux/arm64", "linux", "arm64", "v9"), -1);
  ck_assert_int_eq (rank ("linux/arm64", "windows", "arm64", NULL), -1);
  /* aarch32 fallback, after every arm64 entry */
  ck_assert_int_gt (rank ("linux/arm64", "linux", "arm", "v7"), 0);
}
END_TEST

START_TEST (test_arm_v7_also_accepts_v6_then_v5)
{
  int v7 = rank ("linux/arm/v7", "linux", "arm", "v7");
  int none = rank ("linux/arm/v7", "linux", "arm", NULL); /* arm without variant is v7 */
  int v6 = rank ("linux/arm/v7", "linux", "arm", "v6");
  int v5 = rank ("linux/arm/v7", "linux", "arm", "v5");
  ck_assert_int_eq (v7, 0);
  ck_assert_int_eq (none, 0);
  ck_assert_int_gt (v6, v7);
  ck_assert_int_gt (v5, v6);
  ck_assert_int_eq (rank ("linux/arm/v7", "linux", "arm", "v8"), -1);
  ck_assert_int_eq (rank ("linux/arm/v6", "linux", "arm", "v7"), -1);
  ck_assert_int_eq (rank ("linux/arm/v7", "linux", "arm64", NULL), -1);
}
END_TEST

START_TEST (test_amd64_accepts_lower_levels_and_386)
{
  ck_assert_int_eq (rank ("linux/amd64", "linux", "x86_64", NULL), 0);
  ck_assert_int_eq (rank ("linux/amd64", "linux", "amd64", "v1"), 0);
  ck_assert_int_eq (rank ("linux/amd64/v3", "linux", "amd64", "v3"), 0);
  ck_assert_int_eq (rank ("linux/amd64/v3", "linux", "amd64", "v2"), 1);
  ck_assert_int_eq (rank ("linux/amd64/v3", "linux", "amd64", NULL), 2);
  ck_assert_int_eq (rank ("linux/amd64", "linux", "amd64", "v3"), -1);
  ck_assert_int_gt (rank ("linux/amd64", "linux", "386", NULL), 0);
  ck_assert_int_eq (rank ("linux/386", "linux", "amd64", NULL), -1);
}
END_TEST

/* An index with the given "os/arch[/variant]" entries ("-" = no platform,
 * "!" = an attestation manifest of unknown media type). */
static oci_index *
make_index (const char *const *entries, size_t n)
{
  char json[8192];
  size_t len = snprintf (json, sizeof json, "{\"schemaVersion\":2,\"manifests\":[");
  for (size_t i = 0; i < n; i++)
    {
      char plat_json[256] = "";
      const char *mt = OCI_MT_MANIFEST;
      if (strcmp (entries[i], "!") == 0)
        {
          mt = "application/vnd.in-toto+json";
          snprintf (plat_json, sizeof plat_json, ",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}");
        }
      else if (strcmp (entries[i], "-") != 0)
        {
          char os[32], arch[32], var[32] = "";
          int k = sscanf (entries[i], "%31[^/]/%31[^/]/%31s", os, arch, var);
          ck_assert_int_ge (k, 2);
          snprintf (plat_json, sizeof plat_json, ",\"platform\":{\"os\":\"%s\",\"architecture\":\"%s\"%s%s%s}", os, arch,
                    k == 3 ? ",\"variant\":\"" : "", k == 3 ? var : "", k == 3 ? "\"" : "");
        }
      len += snprintf (json + len, sizeof json - len,
                       "%s{\"mediaType\":\"%s\",\"size\":%zu,\"digest\":\"sha256:%064zx\"%s}", i ? "," : "", mt, i + 1,
                       i + 1, plat_json);
    }
  snprintf (json + len, sizeof json - len, "]}");
  _cleanup_error_ berth_error *err = NULL;
  oci_index *x = NULL;
  ck_assert_msg (oci_index_parse (NULL, json, strlen (json), &x, &err) == 0, "%s", berth_error_message (err));
  return x;
}

static size_t
select_sizes (const oci_index *x, const char *want, int64_t *sizes, size_t max, berth_error **err)
{
  _cleanup_ (platform_matcher_freep) platform_matcher *m = NULL;
  if (want)
    {
      _cleanup_ (oci_platform_freep) oci_platform *w = NULL;
      ck_assert_int_eq (platform_parse (want, &w, err), 0);
      ck_assert_int_eq (platform_matcher_only (w, &m, err), 0);
    }
  else
    ck_assert_int_eq (platform_matcher_all (&m, err), 0);
  _cleanup_free_ const oci_descriptor **d = NULL;
  size_t n = 0;
  int r = platform_select (x, m, &d, &n, err);
  if (r < 0)
    return (size_t) r;
  for (size_t i = 0; i < n && i < max; i++)
    sizes[i] = d[i]->size;
  return n;
}

START_TEST (test_select_picks_the_wanted_platform_first)
{
  static const char *const e[] = { "linux/amd64", "linux/arm/v6", "linux/arm64/v8", "linux/arm/v7", "!", "linux/s390x" };
  _cleanup_ (oci_index_freep) oci_index *x = make_index (e, ARRAY_SIZE (e));
  _cleanup_error_ berth_error *err = NULL;
  int64_t s[8];
  ck_assert_int_eq (select_sizes (x, "linux/amd64", s, 8, &err), 1);
  ck_assert_int_eq (s[0], 1);
  ck_assert_int_eq (select_sizes (x, "linux/arm64", s, 8, &err), 3);
  ck_assert_int_eq (s[0], 3); /* arm64/v8, then arm/v7, arm/v6 */
  ck_assert_int_eq (s[1], 4);
  ck_assert_int_eq (s[2], 2);
  ck_assert_int_eq (select_sizes (x, "linux/arm/v7", s, 8, &err), 2);
  ck_assert_int_eq (s[0], 4);
  ck_assert_int_eq (s[1], 2);
}
END_TEST

START_TEST (test_all_platforms_selects_every_manifest_in_order)
{
  static const char *const e[] = { "linux/amd64", "!", "linux/arm64/v8", "-" };
  _cleanup_ (oci_index_freep) oci_index *x = make_index (e, ARRAY_SIZE (e));
  _cleanup_error_ berth_error *err = NULL;
  int64_t s[8];
  ck_assert_int_eq (select_sizes (x, NULL, s, 8, &err), 3);
  ck_assert_int_eq (s[0], 1);
  ck_assert_int_eq (s[1], 3);
  ck_assert_int_eq (s[2], 4);
}
END_TEST

START_TEST (test_entry_without_platform_matches_last)
{
  static const char *const e[] = { "-", "linux/amd64" };
  _cleanup_ (oci_index_freep) oci_index *x = make_index (e, ARRAY_SIZE (e));
  _cleanup_error_ berth_error *err = NULL;
  int64_t s[8];
  ck_assert_int_eq (select_sizes (x, "linux/amd64", s, 8, &err), 2);
  ck_assert_int_eq (s[0], 2);
  ck_assert_int_eq (s[1], 1);
}
END_TEST

START_TEST (test_no_matching_platform_lists_what_is_available)
{
  static const char *const e[] = { "linux/amd64", "linux/arm/v7", "!" };
  _cleanup_ (oci_index_freep) oci_index *x = make_index (e, ARRAY_SIZE (e));
  _cleanup_error_ berth_error *err = NULL;
  int64_t s[8];
  ck_assert_int_eq ((int) select_sizes (x, "linux/s390x", s, 8, &err), BERTH_E_NOTFOUND);
  ck_assert_str_eq (berth_error_message (err), "no manifest for platform linux/s390x in the index (available: "
                                               "linux/amd64, linux/arm/v7, unknown/unknown)");
}
END_TEST

START_TEST (test_default_matcher_accepts_the_host)
{
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_ (platform_matcher_freep) platform_matcher *m = NULL;
  ck_assert_int_eq (platform_matcher_default (&m, &err), 0);
  _cleanup_ (oci_platform_freep) oci_platform *host = platform_default ();
  ck_assert (platform_match (m, host));
  _cleanup_ (oci_platform_freep) oci_platform *other = plat ("windows", host->architecture, NULL);
  ck_assert (!platform_match (m, other));
}
END_TEST

static Suite *
platform_suite (void)
{
  Suite *s = suite_create ("platform");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_specifiers_parse_and_normalise);
  tcase_add_test (tc, test_one_part_specifier_fills_in_the_host);
  tcase_add_test (tc, test_bad_specifiers_are_refused);
  tcase_add_test (tc, test_arm64_v8_matches_an_entry_without_variant);
  tcase_add_test (tc, test_arm_v7_also_accepts_v6_then_v5);
  tcase_add_test (tc, test_amd64_accepts_lower_levels_and_386);
  tcase_add_test (tc, test_select_picks_the_wanted_platform_first);
  tcase_add_test (tc, test_all_platforms_selects_every_manifest_in_order);
  tcase_add_test (tc, test_entry_without_platform_matches_last);
  tcase_add_test (tc, test_no_matching_platform_lists_what_is_available);
  tcase_add_test (tc, test_default_matcher_accepts_the_host);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (platform_suite)
