/* Snapshot records (core/metadata/meta-snapshots.c) in a real metadata
 * database, and GC's marking of snapshots (core/gc.c, metadata only). */
#include <config.h>

#include <berth/snapshotter.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check-main.h"
#include "cleanup.h"
#include "gc.h"
#include "metadata/meta.h"

#define NOW ((int64_t) 1900000000 * 1000000000)
#define DCFG "sha256:3000000000000000000000000000000000000000000000000000000000000000"

static char dir[64];
static char path[160];
static berth_error *e;
#define err (&e)
#define OK(x)                                                                                                      \
  do                                                                                                               \
    {                                                                                                              \
      int r_ = (x);                                                                                                \
      ck_assert_msg (r_ == 0, "%s = %d: %s", #x, r_, e ? berth_error_message (e) : "");                           \
    }                                                                                                              \
  while (0)
#define FAILS(code, x)                                                                                             \
  do                                                                                                               \
    {                                                                                                              \
      berth_error_free (e);                                                                                        \
      e = NULL;                                                                                                    \
      int r_ = (x);                                                                                                \
      ck_assert_msg (r_ == (code), "%s = %d, expected %d", #x, r_, code);                                         \
      ck_assert_ptr_nonnull (e);                                                                                   \
      berth_error_free (e);                                                                                        \
      e = NULL;                                                                                                    \
    }                                                                                                              \
  while (0)

static void
setup (void)
{
  snprintf (dir, sizeof dir, "/tmp/berth-test-msnap-XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/meta.db", dir);
}

static void
teardown (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq (system (cmd), 0);
  berth_error_free (e);
  e = NULL;
}

static meta *
open_db (void)
{
  meta *m = NULL;
  OK (meta_open (path, &m, err));
  return m;
}

/* Record (sn, key) as the plugin would have made it: backend from the sequence. */
static int
add (meta *m, const char *ns, const char *sn, const char *key, const char *parent, int kind, const char *lease)
{
  _cleanup_free_ char *backend = NULL;
  int r = meta_snapshot_backend_key (m, ns, key, &backend, err);
  if (r < 0)
    return r;
  struct meta_snapshot s = {
    .snapshotter = (char *) sn, .key = (char *) key, .backend = backend, .parent = (char *) parent, .kind = kind,
  };
  return meta_snapshot_add (m, ns, &s, lease, err);
}

static bool
exists (meta *m, const char *ns, const char *sn, const char *key)
{
  struct meta_snapshot s = { 0 };
  _cleanup_error_ berth_error *e2 = NULL;
  int r = meta_snapshot_get (m, ns, sn, key, &s, &e2);
  meta_snapshot_clear (&s);
  return r == 0;
}

START_TEST (test_backend_keys_are_namespaced_and_never_reused)
{
  meta *m = open_db ();
  _cleanup_free_ char *a = NULL, *b = NULL;
  OK (meta_snapshot_backend_key (m, "default", "k", &a, err));
  OK (meta_snapshot_backend_key (m, "default", "k", &b, err));
  ck_assert_str_eq (a, "default/1/k");
  ck_assert_str_eq (b, "default/2/k");
  meta_close (m);
}
END_TEST

START_TEST (test_a_chain_is_recorded_and_read_back_per_namespace_and_snapshotter)
{
  meta *m = open_db ();
  OK (add (m, "default", "overlayfs", "base", "", BERTH_SNAPSHOT_COMMITTED, NULL));
  OK (add (m, "default", "overlayfs", "top", "base", BERTH_SNAPSHOT_ACTIVE, NULL));
  struct meta_snapshot s = { 0 };
  OK (meta_snapshot_get (m, "default", "overlayfs", "top", &s, err));
  ck_assert_str_eq (s.parent, "base");
  ck_assert_int_eq (s.kind, BERTH_SNAPSHOT_ACTIVE);
  ck_assert (strncmp (s.backend, "default/", 8) == 0);
  ck_assert (s.created_at > 0);
  meta_snapshot_clear (&s);
  ck_assert (!exists (m, "other", "overlayfs", "top"));
  ck_assert (!exists (m, "default", "native", "top"));
  struct meta_snapshot *v = NULL;
  size_t n = 0;
  OK (meta_snapshot_list (m, "default", "overlayfs", NULL, 0, &v, &n, err));
  ck_assert_uint_eq (n, 2);
  ck_assert_str_eq (v[0].key, "base");
  meta_snapshots_free (v, n);
  const char *filters[] = { "kind==active" };
  OK (meta_snapshot_list (m, "default", "overlayfs", filters, 1, &v, &n, err));
  ck_assert_uint_eq (n, 1);
  ck_assert_str_eq (v[0].key, "top");
  meta_snapshots_free (v, n);
  meta_close (m);
}
END_TEST

START_TEST (test_creation_refuses_a_taken_key_a_missing_parent_and_an_active_parent)
{
  meta *m = open_db ();
  OK (add (m, "default", "native", "a", "", BERTH_SNAPSHOT_ACTIVE, NULL));
  FAILS (BERTH_E_EXISTS, add (m, "default", "native", "a", "", BERTH_SNAPSHOT_ACTIVE, NULL));
  FAILS (BERTH_E_NOTFOUND, add (m, "default", "native", "b", "nope", BERTH_SNAPSHOT_ACTIVE, NULL));
  FAILS (BERTH_E_INVALID, add (m, "default", "native", "c", "a", BERTH_SNAPSHOT_ACTIVE, NULL));
  FAILS (BERTH_E_NOTFOUND, add (m, "default", "native", "d", "", BERTH_SNAPSHOT_ACTIVE, "no-such-lease"));
  ck_assert (!exists (m, "default", "native", "d"));
  meta_close (m);
}
END_TEST

START_TEST (test_commit_renames_the_record_and_moves_its_lease_reference)
{
  meta *m = open_db ();
  OK (meta_lease_create (m, "default", "l1", NULL, NULL, err));
  OK (add (m, "default", "overlayfs", "extract-1", "", BERTH_SNAPSHOT_ACTIVE, "l1"));
  berth_labels labels = { 0 };
  ck_assert_int_eq (labels_set (&labels, "x", "y"), 0);
  OK (meta_snapshot_commit (m, "default", "overlayfs", "sha256:chain", "extract-1", "default/9/sha256:chain", &labels,
                            "l1", err));
  labels_clear (&labels);
  ck_assert (!exists (m, "default", "overlayfs", "extract-1"));
  struct meta_snapshot s = { 0 };
  OK (meta_snapshot_get (m, "default", "overlayfs", "sha256:chain", &s, err));
  ck_assert_int_eq (s.kind, BERTH_SNAPSHOT_COMMITTED);
  ck_assert_str_eq (s.backend, "default/9/sha256:chain");
  ck_assert_str_eq (labels_get (&s.labels, "x"), "y");
  meta_snapshot_clear (&s);
  struct meta_lease_resource *res = NULL;
  size_t n = 0;
  OK (meta_lease_list_resources (m, "default", "l1", &res, &n, err));
  ck_assert_uint_eq (n, 1);
  ck_assert_str_eq (res[0].type, "snapshots/overlayfs");
  ck_assert_str_eq (res[0].id, "sha256:chain");
  meta_lease_resources_free (res, n);
  OK (add (m, "default", "overlayfs", "other", "", BERTH_SNAPSHOT_ACTIVE, NULL));
  FAILS (BERTH_E_EXISTS, meta_snapshot_commit (m, "default", "overlayfs", "sha256:chain", "other", "default/10/x",
                                               NULL, NULL, err));
  FAILS (BERTH_E_NOTFOUND, meta_snapshot_commit (m, "default", "overlayfs", "n2", "gone", "default/11/n2", NULL,
                                                 NULL, err));
  meta_close (m);
}
END_TEST

START_TEST (test_remove_is_refused_while_children_exist)
{
  meta *m = open_db ();
  OK (add (m, "default", "native", "p", "", BERTH_SNAPSHOT_COMMITTED, NULL));
  OK (add (m, "default", "native", "c", "p", BERTH_SNAPSHOT_VIEW, NULL));
  FAILS (BERTH_E_PRECONDITION, meta_snapshot_remove (m, "default", "native", "p", NULL, err));
  _cleanup_free_ char *backend = NULL;
  OK (meta_snapshot_remove (m, "default", "native", "c", &backend, err));
  ck_assert (strstr (backend, "/c") != NULL);
  OK (meta_snapshot_remove (m, "default", "native", "p", NULL, err));
  FAILS (BERTH_E_NOTFOUND, meta_snapshot_remove (m, "default", "native", "p", NULL, err));
  bool known = true;
  OK (meta_snapshot_backend_known (m, "native", backend, &known, err));
  ck_assert (!known);
  meta_close (m);
}
END_TEST

START_TEST (test_update_changes_labels_only)
{
  meta *m = open_db ();
  OK (add (m, "default", "native", "s", "", BERTH_SNAPSHOT_COMMITTED, NULL));
  berth_labels labels = { 0 };
  ck_assert_int_eq (labels_set (&labels, "a", "1"), 0);
  ck_assert_int_eq (labels_set (&labels, "b", "2"), 0);
  const char *one[] = { "labels.a" };
  struct meta_snapshot s = { 0 };
  OK (meta_snapshot_update (m, "default", "native", "s", &labels, one, 1, &s, err));
  ck_assert_str_eq (labels_get (&s.labels, "a"), "1");
  ck_assert_ptr_null (labels_get (&s.labels, "b"));
  meta_snapshot_clear (&s);
  const char *bad[] = { "parent" };
  FAILS (BERTH_E_INVALID, meta_snapshot_update (m, "default", "native", "s", &labels, bad, 1, NULL, err));
  labels_clear (&labels);
  meta_close (m);
}
END_TEST

START_TEST (test_a_namespace_with_snapshots_cannot_be_deleted)
{
  meta *m = open_db ();
  OK (add (m, "apps", "native", "s", "", BERTH_SNAPSHOT_COMMITTED, NULL));
  FAILS (BERTH_E_PRECONDITION, meta_namespace_delete (m, "apps", err));
  OK (meta_snapshot_remove (m, "apps", "native", "s", NULL, err));
  OK (meta_namespace_delete (m, "apps", err));
  meta_close (m);
}
END_TEST

static bool
reported (const struct gc_report *rep, const char *id)
{
  for (size_t i = 0; i < rep->n; i++)
    if (rep->items[i].kind == GC_SNAPSHOT && strcmp (rep->items[i].id, id) == 0)
      return true;
  return false;
}

/* An image whose config labels the top of a chain, a leased snapshot, a
 * gc.root snapshot, and an unreferenced chain with an active child. */
START_TEST (test_gc_keeps_referenced_chains_and_removes_the_rest)
{
  meta *m = open_db ();
  berth_labels cl = { 0 };
  ck_assert_int_eq (labels_set (&cl, "containerd.io/gc.ref.snapshot.overlayfs", "l2"), 0);
  OK (meta_content_add (m, "default", DCFG, 10, &cl, err));
  labels_clear (&cl);
  struct meta_image img = { .name = (char *) "img", .target = { .media_type = (char *) "application/vnd.oci.image.config.v1+json",
                                                                 .digest = (char *) DCFG, .size = 10 } };
  OK (meta_image_create (m, "default", &img, NULL, err));
  OK (add (m, "default", "overlayfs", "l1", "", BERTH_SNAPSHOT_COMMITTED, NULL));
  OK (add (m, "default", "overlayfs", "l2", "l1", BERTH_SNAPSHOT_COMMITTED, NULL));
  OK (meta_lease_create (m, "default", "hold", NULL, NULL, err));
  OK (add (m, "default", "native", "leased", "", BERTH_SNAPSHOT_ACTIVE, "hold"));
  OK (add (m, "default", "native", "rooted", "", BERTH_SNAPSHOT_COMMITTED, NULL));
  berth_labels root = { 0 };
  ck_assert_int_eq (labels_set (&root, "containerd.io/gc.root", "2030-01-01T00:00:00Z"), 0);
  OK (meta_snapshot_update (m, "default", "native", "rooted", &root, NULL, 0, NULL, err));
  labels_clear (&root);
  OK (add (m, "default", "overlayfs", "junk-base", "", BERTH_SNAPSHOT_COMMITTED, NULL));
  OK (add (m, "default", "overlayfs", "junk-child", "junk-base", BERTH_SNAPSHOT_ACTIVE, NULL));

  struct gc_report rep;
  OK (gc_collect (m, NULL, NULL, true, NOW, &rep, err));
  ck_assert (reported (&rep, "overlayfs/junk-base"));
  ck_assert (reported (&rep, "overlayfs/junk-child"));
  ck_assert_uint_eq (rep.n, 2);
  gc_report_clear (&rep);
  ck_assert (exists (m, "default", "overlayfs", "junk-base")); /* dry run */

  OK (gc_collect (m, NULL, NULL, false, NOW, &rep, err));
  gc_report_clear (&rep);
  ck_assert (!exists (m, "default", "overlayfs", "junk-base"));
  ck_assert (!exists (m, "default", "overlayfs", "junk-child"));
  ck_assert (exists (m, "default", "overlayfs", "l1"));
  ck_assert (exists (m, "default", "overlayfs", "l2"));
  ck_assert (exists (m, "default", "native", "leased"));
  ck_assert (exists (m, "default", "native", "rooted"));

  /* Without the image the chain goes; without the lease the leased one. */
  OK (meta_image_delete (m, "default", "img", err));
  OK (meta_lease_delete (m, "default", "hold", err));
  OK (gc_collect (m, NULL, NULL, false, NOW, &rep, err));
  ck_assert (reported (&rep, "overlayfs/l1"));
  ck_assert (reported (&rep, "overlayfs/l2"));
  ck_assert (reported (&rep, "native/leased"));
  gc_report_clear (&rep);
  ck_assert (!exists (m, "default", "overlayfs", "l1"));
  ck_assert (exists (m, "default", "native", "rooted"));
  meta_close (m);
}
END_TEST

static Suite *
make_suite (void)
{
  Suite *s = suite_create ("meta-snapshots");
  TCase *tc = tcase_create ("records");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_backend_keys_are_namespaced_and_never_reused);
  tcase_add_test (tc, test_a_chain_is_recorded_and_read_back_per_namespace_and_snapshotter);
  tcase_add_test (tc, test_creation_refuses_a_taken_key_a_missing_parent_and_an_active_parent);
  tcase_add_test (tc, test_commit_renames_the_record_and_moves_its_lease_reference);
  tcase_add_test (tc, test_remove_is_refused_while_children_exist);
  tcase_add_test (tc, test_update_changes_labels_only);
  tcase_add_test (tc, test_a_namespace_with_snapshots_cannot_be_deleted);
  tcase_add_test (tc, test_gc_keeps_referenced_chains_and_removes_the_rest);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (make_suite)
