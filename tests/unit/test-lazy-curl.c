/* core/util/lazy-curl: libcurl is dlopened at first use, not linked.  This
 * program links libberth-pull-fetch.la as berthd does, so it also checks
 * that nothing there links libcurl. */
#include <config.h>

#include <check.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "check-main.h"
#include "cleanup.h"
#include "lazy-curl.h"

static bool
libcurl_mapped (void)
{
  void *h = dlopen (LIBCURL_SONAME, RTLD_NOW | RTLD_NOLOAD);
  if (h)
    dlclose (h);
  return h != NULL;
}

START_TEST (test_libcurl_is_not_mapped_before_the_first_load)
{
  ck_assert (!libcurl_mapped ());
  ck_assert_ptr_null (lazy_curl.easy_init);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (lazy_curl_load (&err), 0);
  ck_assert_ptr_null (err);
  ck_assert (libcurl_mapped ());
}
END_TEST

START_TEST (test_the_loaded_functions_are_libcurls)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (lazy_curl_load (&err), 0);
  void *h = dlopen (LIBCURL_SONAME, RTLD_NOW | RTLD_NOLOAD);
  ck_assert_ptr_nonnull (h);
  ck_assert_ptr_eq ((void *) lazy_curl.easy_escape, dlsym (h, "curl_easy_escape"));
  ck_assert_ptr_eq ((void *) lazy_curl.multi_poll, dlsym (h, "curl_multi_poll"));
  dlclose (h);

  CURL *c = curl_easy_init ();
  ck_assert_ptr_nonnull (c);
  ck_assert_int_eq (curl_easy_setopt (c, CURLOPT_URL, "http://127.0.0.1/"), CURLE_OK);
  char *esc = curl_easy_escape (c, "a b/c", 0);
  ck_assert_str_eq (esc, "a%20b%2Fc");
  curl_free (esc);
  ck_assert_str_eq (curl_easy_strerror (CURLE_OK), "No error");
  struct curl_slist *l = curl_slist_append (NULL, "Accept: */*");
  ck_assert_ptr_nonnull (l);
  curl_slist_free_all (l);
  curl_easy_cleanup (c);

  CURLM *m = curl_multi_init ();
  ck_assert_ptr_nonnull (m);
  ck_assert_int_eq (curl_multi_setopt (m, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX), CURLM_OK);
  ck_assert_int_eq (curl_multi_cleanup (m), CURLM_OK);
}
END_TEST

START_TEST (test_loading_again_keeps_the_same_functions)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (lazy_curl_load (&err), 0);
  struct lazy_curl first = lazy_curl;
  ck_assert_int_eq (lazy_curl_load (&err), 0);
  ck_assert_ptr_null (err);
  ck_assert (memcmp (&first, &lazy_curl, sizeof first) == 0);
}
END_TEST

static Suite *
lazy_curl_suite (void)
{
  Suite *s = suite_create ("lazy-curl");
  TCase *tc = tcase_create ("lazy-curl");
  tcase_add_test (tc, test_libcurl_is_not_mapped_before_the_first_load);
  tcase_add_test (tc, test_the_loaded_functions_are_libcurls);
  tcase_add_test (tc, test_loading_again_keeps_the_same_functions);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (lazy_curl_suite)
