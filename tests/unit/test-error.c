#include <config.h>

#include <check.h>

#include "check-main.h"
#include <errno.h>
#include <string.h>

#include "error.h"

START_TEST (test_set_then_wrap_puts_context_first)
{
  _cleanup_error_ berth_error *err = NULL;
  int r = berth_error_set (&err, BERTH_E_NOTFOUND, ENOENT, "blob %s", "sha256:abc");
  ck_assert_int_eq (r, BERTH_E_NOTFOUND);
  r = berth_error_wrap (&err, "image `%s`", "busybox");
  ck_assert_int_eq (r, BERTH_E_NOTFOUND);
  ck_assert_str_eq (berth_error_message (err), "image `busybox`: blob sha256:abc: No such file or directory");
}
END_TEST

START_TEST (test_set_with_positive_code_becomes_internal)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (berth_error_set (&err, 0, 0, "x"), BERTH_E_INTERNAL);
  ck_assert_int_eq (err->code, BERTH_E_INTERNAL);
}
END_TEST

START_TEST (test_wrap_without_error_is_internal)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (berth_error_wrap (&err, "ctx"), BERTH_E_INTERNAL);
  ck_assert_str_eq (berth_error_message (err), "ctx: internal error");
}
END_TEST

START_TEST (test_every_code_maps_to_grpc_and_back_to_its_class)
{
  const int codes[] = { BERTH_E_NOTFOUND, BERTH_E_EXISTS, BERTH_E_PRECONDITION, BERTH_E_INVALID,
                        BERTH_E_UNAVAILABLE, BERTH_E_NOTSUP, BERTH_E_CANCELLED, BERTH_E_INTERNAL,
                        BERTH_E_DEADLINE, BERTH_E_PERMISSION, BERTH_E_UNAUTHENTICATED,
                        BERTH_E_EXHAUSTED, BERTH_E_CONFLICT };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    {
      int g = berth_errcode_to_grpc (codes[i]);
      ck_assert_int_gt (g, 0);
      ck_assert_int_eq (berth_errcode_from_grpc (g), codes[i]);
    }
  ck_assert_int_eq (berth_errcode_to_grpc (BERTH_E_NOTFOUND), 5);
  ck_assert_int_eq (berth_errcode_to_grpc (BERTH_E_NOTSUP), 12);
}
END_TEST

START_TEST (test_errno_classes)
{
  ck_assert_int_eq (berth_errcode_from_errno (ENOENT), BERTH_E_NOTFOUND);
  ck_assert_int_eq (berth_errcode_from_errno (ENOSPC), BERTH_E_EXHAUSTED);
  ck_assert_int_eq (berth_errcode_from_errno (EACCES), BERTH_E_PERMISSION);
  ck_assert_int_eq (berth_errcode_from_errno (EIO), BERTH_E_INTERNAL);
}
END_TEST

static Suite *
error_suite (void)
{
  Suite *s = suite_create ("error");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_set_then_wrap_puts_context_first);
  tcase_add_test (tc, test_set_with_positive_code_becomes_internal);
  tcase_add_test (tc, test_wrap_without_error_is_internal);
  tcase_add_test (tc, test_every_code_maps_to_grpc_and_back_to_its_class);
  tcase_add_test (tc, test_errno_classes);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (error_suite)
