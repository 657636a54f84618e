#include <config.h>

#include <check.h>
#include <string.h>

#include "check-main.h"
#include "host-objects.h"

START_TEST (test_labels_set_replace_delete_and_iterate_in_order)
{
  berth_labels l = { 0 };
  ck_assert_int_eq (labels_set (&l, "a", "1"), 0);
  ck_assert_int_eq (labels_set (&l, "b", "2"), 0);
  ck_assert_int_eq (labels_set (&l, "a", "3"), 0);
  ck_assert_str_eq (labels_get (&l, "a"), "3");
  ck_assert_int_eq (labels_set (&l, "a", NULL), 0);
  ck_assert_ptr_null (labels_get (&l, "a"));
  ck_assert_int_eq (labels_set (&l, "", "x"), BERTH_E_INVALID);
  size_t it = 0;
  const char *k, *v;
  ck_assert_int_eq (labels_next (&l, &it, &k, &v), 1);
  ck_assert_str_eq (k, "b");
  ck_assert_str_eq (v, "2");
  ck_assert_int_eq (labels_next (&l, &it, &k, &v), 0);
  labels_clear (&l);
}
END_TEST

START_TEST (test_mounts_copy_everything_they_are_given)
{
  berth_mounts m = { 0 };
  char opt[] = "ro";
  const char *opts[] = { opt, "index=off", NULL };
  ck_assert_int_eq (mounts_add (&m, "overlay", "overlay", NULL, opts), 0);
  opt[0] = 'X';
  ck_assert_uint_eq (m.n, 1);
  ck_assert_str_eq (m.items[0].options[0], "ro");
  ck_assert_str_eq (m.items[0].target, "");
  ck_assert_ptr_null (m.items[0].options[2]);
  ck_assert_int_eq (mounts_add (&m, NULL, "x", NULL, NULL), BERTH_E_INVALID);
  mounts_clear (&m);
}
END_TEST

START_TEST (test_buf_grows_stays_terminated_and_has_a_bound)
{
  berth_buf b = { .max = 16 };
  ck_assert_int_eq (buf_append (&b, "{\"a\":", 5), 0);
  ck_assert_int_eq (buf_append (&b, "1}", 2), 0);
  ck_assert_str_eq ((char *) b.data, "{\"a\":1}");
  ck_assert_int_eq (buf_append (&b, "0123456789", 10), BERTH_E_EXHAUSTED);
  ck_assert_uint_eq (b.len, 7);
  buf_clear (&b);
}
END_TEST

START_TEST (test_ctx_answers_namespace_and_lease)
{
  berth_ctx ctx;
  ctx_init (&ctx, "default", "lease-1");
  ck_assert_str_eq (ctx_get (&ctx, "namespace"), "default");
  ck_assert_str_eq (ctx_get (&ctx, "lease"), "lease-1");
  ck_assert_ptr_null (ctx_get (&ctx, "other"));
  ck_assert (!ctx_is_cancelled (&ctx));
  atomic_store (&ctx.cancelled, 1);
  ck_assert (ctx_is_cancelled (&ctx));
}
END_TEST

static Suite *
host_objects_suite (void)
{
  Suite *s = suite_create ("host-objects");
  TCase *tc = tcase_create ("objects");
  tcase_add_test (tc, test_labels_set_replace_delete_and_iterate_in_order);
  tcase_add_test (tc, test_mounts_copy_everything_they_are_given);
  tcase_add_test (tc, test_buf_grows_stays_terminated_and_has_a_bound);
  tcase_add_test (tc, test_ctx_answers_namespace_and_lease);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (host_objects_suite)
