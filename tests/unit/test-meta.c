#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "check-main.h"
#include "cleanup.h"
#include "metadata/meta.h"

static char dir[] = "/tmp/berth-test-meta-XXXXXX";
static char path[128];

static void
setup (void)
{
  ck_assert_ptr_nonnull (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/meta.db", dir);
}

static void
teardown (void)
{
  char cmd[160];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq (system (cmd), 0);
}

static meta *
open_meta (void)
{
  _cleanup_error_ berth_error *err = NULL;
  meta *m = NULL;
  int r = meta_open (path, &m, &err);
  ck_assert_msg (r == 0, "meta_open: %s", berth_error_message (err));
  return m;
}

START_TEST (test_open_creates_schema_at_current_version)
{
  meta *m = open_meta ();
  ck_assert_int_eq (meta_version (m), meta_schema_version ());
  meta_close (m);
  /* Reopening migrates nothing and keeps the version. */
  m = open_meta ();
  ck_assert_int_eq (meta_version (m), meta_schema_version ());
  meta_close (m);
}
END_TEST

START_TEST (test_open_refuses_a_newer_schema)
{
  meta_close (open_meta ());
  sqlite3 *db;
  ck_assert_int_eq (sqlite3_open (path, &db), SQLITE_OK);
  ck_assert_int_eq (sqlite3_exec (db, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close (db);
  _cleanup_error_ berth_error *err = NULL;
  meta *m = NULL;
  ck_assert_int_eq (meta_open (path, &m, &err), BERTH_E_PRECONDITION);
  ck_assert_ptr_nonnull (strstr (berth_error_message (err), "newer berthd"));
}
END_TEST

START_TEST (test_namespace_create_get_list_delete)
{
  meta *m = open_meta ();
  _cleanup_error_ berth_error *err = NULL;
  berth_labels l = { 0 };
  labels_set (&l, "team", "infra");
  ck_assert_int_eq (meta_namespace_create (m, "build-1", &l, &err), 0);
  ck_assert_int_eq (meta_namespace_create (m, "apps", NULL, &err), 0);
  ck_assert_int_eq (meta_namespace_create (m, "apps", NULL, &err), BERTH_E_EXISTS);

  struct meta_namespace ns;
  ck_assert_int_eq (meta_namespace_get (m, "build-1", &ns, &err), 0);
  ck_assert_str_eq (ns.name, "build-1");
  ck_assert_str_eq (labels_get (&ns.labels, "team"), "infra");
  ck_assert_int_gt (ns.created_at, 0);
  meta_namespace_clear (&ns);

  struct meta_namespace *v;
  size_t n;
  ck_assert_int_eq (meta_namespace_list (m, &v, &n, &err), 0);
  ck_assert_uint_eq (n, 2);
  ck_assert_str_eq (v[0].name, "apps");
  ck_assert_str_eq (v[1].name, "build-1");
  meta_namespaces_free (v, n);

  ck_assert_int_eq (meta_namespace_delete (m, "apps", &err), 0);
  ck_assert_int_eq (meta_namespace_delete (m, "apps", &err), BERTH_E_NOTFOUND);
  ck_assert_int_eq (meta_namespace_get (m, "apps", &ns, &err), BERTH_E_NOTFOUND);
  labels_clear (&l);
  meta_close (m);
}
END_TEST

START_TEST (test_namespace_update_by_mask_sets_and_deletes_single_labels)
{
  meta *m = open_meta ();
  _cleanup_error_ berth_error *err = NULL;
  berth_labels l = { 0 };
  labels_set (&l, "a", "1");
  labels_set (&l, "b", "2");
  ck_assert_int_eq (meta_namespace_create (m, "ns", &l, &err), 0);
  labels_clear (&l);

  /* labels.a with a value sets it; labels.b absent from the request deletes it. */
  labels_set (&l, "a", "10");
  const char *paths[] = { "labels.a", "labels.b" };
  struct meta_namespace ns;
  ck_assert_int_eq (meta_namespace_update (m, "ns", &l, paths, 2, &ns, &err), 0);
  ck_assert_str_eq (labels_get (&ns.labels, "a"), "10");
  ck_assert_ptr_null (labels_get (&ns.labels, "b"));
  meta_namespace_clear (&ns);

  /* No mask replaces the whole set. */
  labels_clear (&l);
  labels_set (&l, "c", "3");
  ck_assert_int_eq (meta_namespace_update (m, "ns", &l, NULL, 0, &ns, &err), 0);
  ck_assert_uint_eq (ns.labels.n, 1);
  ck_assert_str_eq (labels_get (&ns.labels, "c"), "3");
  meta_namespace_clear (&ns);

  const char *bad[] = { "name" };
  ck_assert_int_eq (meta_namespace_update (m, "ns", &l, bad, 1, NULL, &err), BERTH_E_INVALID);
  ck_assert_int_eq (meta_namespace_update (m, "missing", &l, NULL, 0, NULL, &err), BERTH_E_NOTFOUND);
  labels_clear (&l);
  meta_close (m);
}
END_TEST

START_TEST (test_namespace_names_follow_containerd_rules)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (meta_validate_namespace ("default", &err), 0);
  ck_assert_int_eq (meta_validate_namespace ("k8s.io", &err), 0);
  ck_assert_int_eq (meta_validate_namespace ("a-b_c.d", &err), 0);
  ck_assert_int_eq (meta_validate_namespace ("", &err), BERTH_E_INVALID);
  ck_assert_int_eq (meta_validate_namespace ("-a", &err), BERTH_E_INVALID);
  ck_assert_int_eq (meta_validate_namespace ("a..b", &err), BERTH_E_INVALID);
  ck_assert_int_eq (meta_validate_namespace ("a/b", &err), BERTH_E_INVALID);
  ck_assert_int_eq (meta_validate_namespace ("a.", &err), BERTH_E_INVALID);
  char longname[80];
  memset (longname, 'a', 77);
  longname[77] = '\0';
  ck_assert_int_eq (meta_validate_namespace (longname, &err), BERTH_E_INVALID);
}
END_TEST

START_TEST (test_ensure_is_idempotent)
{
  meta *m = open_meta ();
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (meta_namespace_ensure (m, "default", &err), 0);
  ck_assert_int_eq (meta_namespace_ensure (m, "default", &err), 0);
  struct meta_namespace *v;
  size_t n;
  ck_assert_int_eq (meta_namespace_list (m, &v, &n, &err), 0);
  ck_assert_uint_eq (n, 1);
  meta_namespaces_free (v, n);
  meta_close (m);
}
END_TEST

static Suite *
meta_suite (void)
{
  Suite *s = suite_create ("meta");
  TCase *tc = tcase_create ("namespaces");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_open_creates_schema_at_current_version);
  tcase_add_test (tc, test_open_refuses_a_newer_schema);
  tcase_add_test (tc, test_namespace_create_get_list_delete);
  tcase_add_test (tc, test_namespace_update_by_mask_sets_and_deletes_single_labels);
  tcase_add_test (tc, test_namespace_names_follow_containerd_rules);
  tcase_add_test (tc, test_ensure_is_idempotent);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (meta_suite)
