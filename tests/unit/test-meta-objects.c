/* Schema 2 of the metadata: migration from the foundation's schema, content
 * records, images and leases. */
#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "check-main.h"
#include "cleanup.h"
#include "metadata/meta.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static const char dir_template[] = "/tmp/berth-test-meta-objects-XXXXXX";
static char dir[64];
static char path[160];

static void
setup (void)
{
  snprintf (dir, sizeof dir, "%s", dir_template);
  ck_assert_ptr_nonnull (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/meta.db", dir);
}

static void
teardown (void)
{
  char cmd[200];
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

#define OK(call)                                                                        \
  do                                                                                    \
    {                                                                                   \
      _cleanup_error_ berth_error *err_ = NULL;                                         \
      berth_error **err = &err_;                                                        \
      int r_ = (call);                                                                  \
      ck_assert_msg (r_ == 0, "%s: %d %s", #call, r_, err_ ? berth_error_message (err_) : ""); \
    }                                                                                   \
  while (0)

#define FAILS(code, call)                                                      \
  do                                                                           \
    {                                                                          \
      _cleanup_error_ berth_error *err_ = NULL;                                \
      berth_error **err = &err_;                                               \
      int r_ = (call);                                                         \
      ck_assert_msg (r_ == (code), "%s: got %d, expected %d (%s)", #call, r_, (code), \
                     err_ ? berth_error_message (err_) : "");                  \
    }                                                                          \
  while (0)

/* The foundation's schema, exactly as migration 0 → 1 wrote it. */
static void
write_v1_database (void)
{
  sqlite3 *db;
  ck_assert_int_eq (sqlite3_open (path, &db), SQLITE_OK);
  ck_assert_int_eq (sqlite3_exec (db,
                                  "CREATE TABLE namespaces ("
                                  "  name TEXT PRIMARY KEY NOT NULL,"
                                  "  created_at INTEGER NOT NULL,"
                                  "  updated_at INTEGER NOT NULL);"
                                  "CREATE TABLE namespace_labels ("
                                  "  namespace TEXT NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,"
                                  "  key TEXT NOT NULL,"
                                  "  value TEXT NOT NULL,"
                                  "  PRIMARY KEY (namespace, key));"
                                  "INSERT INTO namespaces VALUES ('apps', 1, 2);"
                                  "INSERT INTO namespace_labels VALUES ('apps', 'team', 'blue');"
                                  "PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                    SQLITE_OK);
  sqlite3_close (db);
}

START_TEST (test_a_foundation_database_is_migrated_and_keeps_its_namespaces)
{
  write_v1_database ();
  meta *m = open_meta ();
  ck_assert_int_eq (meta_version (m), meta_schema_version ());
  ck_assert_int_ge (meta_schema_version (), 2);
  struct meta_namespace ns = { 0 };
  OK (meta_namespace_get (m, "apps", &ns, err));
  ck_assert_str_eq (labels_get (&ns.labels, "team"), "blue");
  ck_assert_int_eq (ns.created_at, 1);
  meta_namespace_clear (&ns);
  /* The new tables work in the migrated database. */
  OK (meta_content_add (m, "apps", D1, 10, NULL, err));
  meta_close (m);
  m = open_meta ();
  struct meta_content c = { 0 };
  OK (meta_content_get (m, "apps", D1, &c, err));
  ck_assert_int_eq (c.size, 10);
  meta_content_clear (&c);
  meta_close (m);
}
END_TEST

START_TEST (test_content_records_are_per_namespace_and_add_is_idempotent)
{
  meta *m = open_meta ();
  berth_labels l = { 0 };
  labels_set (&l, "a", "1");
  OK (meta_content_add (m, "ns1", D1, 5, &l, err));
  OK (meta_content_add (m, "ns1", D1, 5, NULL, err)); /* again: no error, labels kept */
  struct meta_content c = { 0 };
  OK (meta_content_get (m, "ns1", D1, &c, err));
  ck_assert_str_eq (labels_get (&c.labels, "a"), "1");
  meta_content_clear (&c);
  FAILS (BERTH_E_NOTFOUND, meta_content_get (m, "ns2", D1, &c, err));
  bool ref = false;
  OK (meta_content_referenced (m, D1, &ref, err));
  ck_assert (ref);
  OK (meta_content_referenced (m, D2, &ref, err));
  ck_assert (!ref);
  /* The namespace record was created implicitly. */
  struct meta_namespace ns = { 0 };
  OK (meta_namespace_get (m, "ns1", &ns, err));
  meta_namespace_clear (&ns);
  labels_clear (&l);
  meta_close (m);
}
END_TEST

START_TEST (test_content_update_follows_field_paths_and_list_filters)
{
  meta *m = open_meta ();
  berth_labels l = { 0 };
  labels_set (&l, "a", "1");
  labels_set (&l, "b", "2");
  OK (meta_content_add (m, "ns", D1, 5, &l, err));
  OK (meta_content_add (m, "ns", D2, 7, NULL, err));
  labels_clear (&l);
  /* labels.a absent from the update → deleted; labels.c set; b untouched. */
  labels_set (&l, "c", "3");
  const char *paths[] = { "labels.a", "labels.c" };
  struct meta_content c = { 0 };
  OK (meta_content_update (m, "ns", D1, &l, paths, 2, &c, err));
  ck_assert_ptr_null (labels_get (&c.labels, "a"));
  ck_assert_str_eq (labels_get (&c.labels, "b"), "2");
  ck_assert_str_eq (labels_get (&c.labels, "c"), "3");
  meta_content_clear (&c);
  const char *bad[] = { "size" };
  FAILS (BERTH_E_INVALID, meta_content_update (m, "ns", D1, &l, bad, 1, NULL, err));
  FAILS (BERTH_E_NOTFOUND, meta_content_update (m, "ns", "sha256:33", &l, NULL, 0, NULL, err));
  labels_clear (&l);

  struct meta_content *v = NULL;
  size_t n = 0;
  const char *f[] = { "labels.c==3" };
  OK (meta_content_list (m, "ns", f, 1, &v, &n, err));
  ck_assert_uint_eq (n, 1);
  ck_assert_str_eq (v[0].digest, D1);
  meta_contents_free (v, n);
  OK (meta_content_list (m, "ns", NULL, 0, &v, &n, err));
  ck_assert_uint_eq (n, 2);
  meta_contents_free (v, n);
  OK (meta_content_delete (m, "ns", D2, err));
  FAILS (BERTH_E_NOTFOUND, meta_content_delete (m, "ns", D2, err));
  meta_close (m);
}
END_TEST

static struct meta_image
image (const char *name, const char *digest)
{
  struct meta_image img = { .name = (char *) name };
  img.target.media_type = (char *) "application/vnd.oci.image.index.v1+json";
  img.target.digest = (char *) digest;
  img.target.size = 123;
  return img;
}

START_TEST (test_images_create_get_update_delete_like_containerd)
{
  meta *m = open_meta ();
  struct meta_image img = image ("docker.io/library/busybox:latest", D1);
  labels_set (&img.labels, "x", "1");
  labels_set (&img.target.annotations, "ann", "v");
  struct meta_image got = { 0 };
  OK (meta_image_create (m, "ns", &img, &got, err));
  ck_assert_str_eq (got.target.digest, D1);
  ck_assert_str_eq (labels_get (&got.target.annotations, "ann"), "v");
  ck_assert_int_gt (got.created_at, 0);
  meta_image_clear (&got);
  FAILS (BERTH_E_EXISTS, meta_image_create (m, "ns", &img, NULL, err));
  labels_clear (&img.labels);
  labels_clear (&img.target.annotations);

  /* Update only the target: labels stay. */
  struct meta_image upd = image ("docker.io/library/busybox:latest", D2);
  const char *paths[] = { "target" };
  OK (meta_image_update (m, "ns", &upd, paths, 1, &got, err));
  ck_assert_str_eq (got.target.digest, D2);
  ck_assert_str_eq (labels_get (&got.labels, "x"), "1");
  meta_image_clear (&got);
  const char *bad[] = { "created_at" };
  FAILS (BERTH_E_INVALID, meta_image_update (m, "ns", &upd, bad, 1, NULL, err));
  struct meta_image missing = image ("nope", D1);
  FAILS (BERTH_E_NOTFOUND, meta_image_update (m, "ns", &missing, NULL, 0, NULL, err));
  struct meta_image notarget = { .name = (char *) "n" };
  FAILS (BERTH_E_INVALID, meta_image_create (m, "ns", &notarget, NULL, err));

  /* create_or_update (the daemon-side pull) both creates and repoints. */
  struct meta_descriptor t = { .media_type = (char *) "application/vnd.oci.image.manifest.v1+json",
                               .digest = (char *) D1, .size = 9 };
  OK (meta_image_create_or_update (m, "ns", "docker.io/library/alpine:3", &t, NULL, err));
  t.digest = (char *) D2;
  OK (meta_image_create_or_update (m, "ns", "docker.io/library/alpine:3", &t, NULL, err));
  OK (meta_image_get (m, "ns", "docker.io/library/alpine:3", &got, err));
  ck_assert_str_eq (got.target.digest, D2);
  meta_image_clear (&got);

  struct meta_image *v = NULL;
  size_t n = 0;
  const char *f[] = { "name~=alpine" };
  OK (meta_image_list (m, "ns", f, 1, &v, &n, err));
  ck_assert_uint_eq (n, 1);
  meta_images_free (v, n);
  const char *f2[] = { "target.mediatype==application/vnd.oci.image.index.v1+json" };
  OK (meta_image_list (m, "ns", f2, 1, &v, &n, err));
  ck_assert_uint_eq (n, 1);
  ck_assert_str_eq (v[0].name, "docker.io/library/busybox:latest");
  meta_images_free (v, n);

  OK (meta_image_delete (m, "ns", "docker.io/library/busybox:latest", err));
  FAILS (BERTH_E_NOTFOUND, meta_image_delete (m, "ns", "docker.io/library/busybox:latest", err));
  meta_close (m);
}
END_TEST

START_TEST (test_leases_hold_typed_resources_and_parse_their_expiry)
{
  meta *m = open_meta ();
  berth_labels l = { 0 };
  labels_set (&l, "containerd.io/gc.expire", "2030-01-02T03:04:05Z");
  struct meta_lease got = { 0 };
  OK (meta_lease_create (m, "ns", "l1", &l, &got, err));
  ck_assert_int_eq (meta_lease_expiry (&got), (int64_t) 1893553445 * 1000000000);
  meta_lease_clear (&got);
  labels_clear (&l);
  FAILS (BERTH_E_EXISTS, meta_lease_create (m, "ns", "l1", NULL, NULL, err));
  FAILS (BERTH_E_INVALID, meta_lease_create (m, "ns", "", NULL, NULL, err));

  OK (meta_lease_add_resource (m, "ns", "l1", "content", D1, err));
  OK (meta_lease_add_resource (m, "ns", "l1", "content", D1, err)); /* idempotent */
  OK (meta_lease_add_resource (m, "ns", "l1", "ingests", "my-ref", err));
  OK (meta_lease_add_resource (m, "ns", "l1", "snapshots/overlayfs", "key", err));
  FAILS (BERTH_E_INVALID, meta_lease_add_resource (m, "ns", "l1", "bogus", "x", err));
  FAILS (BERTH_E_INVALID, meta_lease_add_resource (m, "ns", "l1", "content", "not-a-digest", err));
  FAILS (BERTH_E_NOTFOUND, meta_lease_add_resource (m, "ns", "nope", "content", D1, err));
  struct meta_lease_resource *res = NULL;
  size_t n = 0;
  OK (meta_lease_list_resources (m, "ns", "l1", &res, &n, err));
  ck_assert_uint_eq (n, 3);
  ck_assert_str_eq (res[0].type, "content");
  meta_lease_resources_free (res, n);
  OK (meta_lease_delete_resource (m, "ns", "l1", "ingests", "my-ref", err));
  OK (meta_lease_list_resources (m, "ns", "l1", &res, &n, err));
  ck_assert_uint_eq (n, 2);
  meta_lease_resources_free (res, n);

  struct meta_lease *v = NULL;
  const char *f[] = { "id==l1" };
  OK (meta_lease_list (m, "ns", f, 1, &v, &n, err));
  ck_assert_uint_eq (n, 1);
  meta_leases_free (v, n);
  OK (meta_lease_delete (m, "ns", "l1", err));
  FAILS (BERTH_E_NOTFOUND, meta_lease_list_resources (m, "ns", "l1", &res, &n, err));

  /* Offsets and fractions in gc.expire. */
  struct meta_lease x = { 0 };
  labels_set (&x.labels, "containerd.io/gc.expire", "2030-01-02T05:04:05.5+02:00");
  ck_assert_int_eq (meta_lease_expiry (&x), (int64_t) 1893553445 * 1000000000 + 500000000);
  labels_clear (&x.labels);
  labels_set (&x.labels, "containerd.io/gc.expire", "tomorrow");
  ck_assert_int_eq (meta_lease_expiry (&x), 0);
  labels_clear (&x.labels);
  meta_close (m);
}
END_TEST

START_TEST (test_a_namespace_holding_anything_cannot_be_deleted)
{
  meta *m = open_meta ();
  OK (meta_content_add (m, "c", D1, 1, NULL, err));
  FAILS (BERTH_E_PRECONDITION, meta_namespace_delete (m, "c", err));
  OK (meta_content_delete (m, "c", D1, err));
  OK (meta_namespace_delete (m, "c", err));

  struct meta_image img = image ("i", D1);
  OK (meta_image_create (m, "i", &img, NULL, err));
  FAILS (BERTH_E_PRECONDITION, meta_namespace_delete (m, "i", err));
  OK (meta_image_delete (m, "i", "i", err));
  OK (meta_namespace_delete (m, "i", err));

  OK (meta_lease_create (m, "l", "x", NULL, NULL, err));
  FAILS (BERTH_E_PRECONDITION, meta_namespace_delete (m, "l", err));
  OK (meta_lease_delete (m, "l", "x", err));
  OK (meta_namespace_delete (m, "l", err));
  meta_close (m);
}
END_TEST

static Suite *
make_suite (void)
{
  Suite *s = suite_create ("meta-objects");
  TCase *tc = tcase_create ("schema2");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_a_foundation_database_is_migrated_and_keeps_its_namespaces);
  tcase_add_test (tc, test_content_records_are_per_namespace_and_add_is_idempotent);
  tcase_add_test (tc, test_content_update_follows_field_paths_and_list_filters);
  tcase_add_test (tc, test_images_create_get_update_delete_like_containerd);
  tcase_add_test (tc, test_leases_hold_typed_resources_and_parse_their_expiry);
  tcase_add_test (tc, test_a_namespace_holding_anything_cannot_be_deleted);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (make_suite)
