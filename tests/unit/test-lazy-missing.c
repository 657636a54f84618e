/* core/util/lazy-curl and lazy-archive when the library cannot be loaded:
 * this program builds both with SONAMEs that do not exist (see
 * LAZY_*_SONAME in pull-fetch.am) and checks the error each answers. */
#include <config.h>

#include <check.h>
#include <string.h>

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/util/lazy-archive.h"
#include "lazy-curl.h"

START_TEST (test_a_missing_libcurl_is_named_in_the_error)
{
  for (int i = 0; i < 2; i++) /* the second call answers the same */
    {
      _cleanup_error_ berth_error *err = NULL;
      ck_assert_int_eq (lazy_curl_load (&err), BERTH_E_INTERNAL);
      ck_assert_ptr_nonnull (err);
      const char *msg = berth_error_message (err);
      ck_assert_msg (strncmp (msg, "cannot load libberth-missing-curl.so.4: ", 40) == 0, "message: %s", msg);
      ck_assert_msg (strstr (msg, "No such file") != NULL, "message: %s", msg);
      ck_assert_msg (strstr (msg + 40, "libberth-missing") == NULL, "the name is said twice: %s", msg);
    }
  ck_assert_ptr_null (lazy_curl.easy_init);
}
END_TEST

START_TEST (test_a_missing_libarchive_is_named_in_the_error)
{
  for (int i = 0; i < 2; i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      ck_assert_int_eq (lazy_archive_load (&err), BERTH_E_INTERNAL);
      const char *msg = berth_error_message (err);
      ck_assert_msg (strncmp (msg, "cannot load libberth-missing-archive.so.13: ", 44) == 0, "message: %s", msg);
    }
  ck_assert_ptr_null (lazy_archive.read_new);
}
END_TEST

static Suite *
lazy_missing_suite (void)
{
  Suite *s = suite_create ("lazy-missing");
  TCase *tc = tcase_create ("lazy-missing");
  tcase_add_test (tc, test_a_missing_libcurl_is_named_in_the_error);
  tcase_add_test (tc, test_a_missing_libarchive_is_named_in_the_error);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (lazy_missing_suite)
