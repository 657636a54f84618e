#include <config.h>

#include <check.h>
#include <string.h>

#include "check-main.h"
#include "cleanup.h"
#include "filters.h"

struct obj
{
  const char *type, *id, *label;
};

static const char *
adapt (void *o, const char *const *path, size_t n)
{
  struct obj *x = o;
  if (n == 1 && strcmp (path[0], "type") == 0)
    return x->type;
  if (n == 1 && strcmp (path[0], "id") == 0)
    return x->id;
  if (n == 2 && strcmp (path[0], "labels") == 0 && strcmp (path[1], "a.b/c") == 0)
    return x->label;
  return NULL;
}

static bool
match (const char *const *f, size_t n, struct obj *o)
{
  _cleanup_error_ berth_error *err = NULL;
  filter_set *fs = NULL;
  ck_assert_msg (filters_parse (f, n, &fs, &err) == 0, "%s", berth_error_message (err));
  bool r = filters_match (fs, adapt, o);
  filters_free (fs);
  return r;
}

START_TEST (test_conjunction_and_alternatives)
{
  struct obj o = { "io.berth.snapshotter.v1", "overlayfs", "x" };
  const char *f1[] = { "type==io.berth.snapshotter.v1,id==overlayfs" };
  ck_assert (match (f1, 1, &o));
  const char *f2[] = { "type==io.berth.snapshotter.v1,id==native" };
  ck_assert (!match (f2, 1, &o));
  const char *f3[] = { "id==native", "id==overlayfs" };
  ck_assert (match (f3, 2, &o));
  ck_assert (match (NULL, 0, &o));
}
END_TEST

START_TEST (test_operators_presence_and_quoted_fields)
{
  struct obj o = { "t", "overlayfs", "v" };
  const char *ne[] = { "id!=native" };
  ck_assert (match (ne, 1, &o));
  const char *re[] = { "id~=^over" };
  ck_assert (match (re, 1, &o));
  const char *re2[] = { "id~=^native$" };
  ck_assert (!match (re2, 1, &o));
  const char *pres[] = { "labels.\"a.b/c\"" };
  ck_assert (match (pres, 1, &o));
  o.label = NULL;
  ck_assert (!match (pres, 1, &o));
  const char *q[] = { "id==\"overlayfs\"" };
  ck_assert (match (q, 1, &o));
}
END_TEST

START_TEST (test_malformed_filters_are_refused_with_position)
{
  const char *bad[] = { "id=foo", "id==", "==x", "labels.\"open", "id~=(" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      filter_set *fs = NULL;
      ck_assert_int_eq (filters_parse (&bad[i], 1, &fs, &err), BERTH_E_INVALID);
      ck_assert_ptr_nonnull (strstr (berth_error_message (err), "filter `"));
    }
}
END_TEST

START_TEST (test_explosive_regexes_are_refused)
{
  /* glibc's regcomp copies a subexpression per repetition: these would take
   * gigabytes or minutes (found by tests/fuzz/fuzz-filters). */
  const char *bad[] = { "id~=a++++++++++++++++++++++++", "id~=a{1001}", "id~=(a)\\1" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      filter_set *fs = NULL;
      ck_assert_int_eq (filters_parse (&bad[i], 1, &fs, &err), BERTH_E_INVALID);
      ck_assert_ptr_nonnull (strstr (berth_error_message (err), "regular expression"));
    }
  const char *good = "id~=^ab{2}.*?c$";
  _cleanup_error_ berth_error *err = NULL;
  filter_set *fs = NULL;
  ck_assert_int_eq (filters_parse (&good, 1, &fs, &err), 0);
  filters_free (fs);
}
END_TEST

static Suite *
filters_suite (void)
{
  Suite *s = suite_create ("filters");
  TCase *tc = tcase_create ("parse");
  tcase_add_test (tc, test_conjunction_and_alternatives);
  tcase_add_test (tc, test_operators_presence_and_quoted_fields);
  tcase_add_test (tc, test_malformed_filters_are_refused_with_position);
  tcase_add_test (tc, test_explosive_regexes_are_refused);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (filters_suite)
