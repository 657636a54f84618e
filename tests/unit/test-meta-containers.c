/* Container records (core/metadata/meta-containers.c) in a real metadata
 * database, and GC keeping a container's snapshot (core/gc.c). */
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

#define NOW ((int64_t)1900000000 * 1000000000)

static char dir[64];
static char path[160];
static berth_error *e;
#define err (&e)
#define OK(x)                                                                                                          \
  do                                                                                                                   \
    {                                                                                                                  \
      int r_ = (x);                                                                                                    \
      ck_assert_msg (r_ == 0, "%s = %d: %s", #x, r_, e ? berth_error_message (e) : "");                                \
    }                                                                                                                  \
  while (0)
#define FAILS(code, x)                                                                                                 \
  do                                                                                                                   \
    {                                                                                                                  \
      berth_error_free (e);                                                                                            \
      e = NULL;                                                                                                        \
      int r_ = (x);                                                                                                    \
      ck_assert_msg (r_ == (code), "%s = %d, expected %d", #x, r_, code);                                              \
      ck_assert_ptr_nonnull (e);                                                                                       \
      berth_error_free (e);                                                                                            \
      e = NULL;                                                                                                        \
    }                                                                                                                  \
  while (0)

static void
setup (void)
{
  snprintf (dir, sizeof dir, "/tmp/berth-test-mctr-XXXXXX");
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

static const char SPEC[] = "{\"ociVersion\":\"1.0.2\"}";

/* A container as ctr creates it; strings borrowed. */
static struct meta_container
sample (const char *id)
{
  struct meta_container c = {
    .id = (char *)id,
    .image = (char *)"docker.io/library/busybox:latest",
    .runtime_name = (char *)"io.containerd.runc.v2",
    .runtime_options = { .type_url = (char *)"containerd.runc.v1.Options" },
    .spec = { .type_url = (char *)"types.containerd.io/opencontainers/runtime-spec/1/Spec",
              .value = (uint8_t *)SPEC,
              .len = sizeof SPEC - 1 },
    .snapshotter = (char *)"overlayfs",
    .snapshot_key = (char *)id,
  };
  return c;
}

START_TEST (test_a_container_is_recorded_and_read_back_with_its_any_values)
{
  meta *m = NULL;
  OK (meta_open (path, &m, err));
  struct meta_container c = sample ("c1");
  struct meta_extension ext
      = { .name = (char *)"ext1", .value = { .type_url = (char *)"x.y/Z", .value = (uint8_t *)"\x08\x01", .len = 2 } };
  c.extensions = &ext;
  c.n_extensions = 1;
  OK (labels_set (&c.labels, "a", "b"));
  struct meta_container got = { 0 };
  OK (meta_container_create (m, "default", &c, &got, err));
  ck_assert_str_eq (got.runtime_name, "io.containerd.runc.v2");
  ck_assert_str_eq (got.runtime_options.type_url, "containerd.runc.v1.Options");
  ck_assert_uint_eq (got.spec.len, sizeof SPEC - 1);
  ck_assert (memcmp (got.spec.value, SPEC, got.spec.len) == 0);
  ck_assert_uint_eq (got.n_extensions, 1);
  ck_assert_str_eq (got.extensions[0].name, "ext1");
  ck_assert_uint_eq (got.extensions[0].value.len, 2);
  ck_assert_str_eq (labels_get (&got.labels, "a"), "b");
  ck_assert (got.created_at > 0 && got.created_at == got.updated_at);
  meta_container_clear (&got);
  FAILS (BERTH_E_EXISTS, meta_container_create (m, "default", &c, NULL, err));
  /* Other namespaces do not see it. */
  FAILS (BERTH_E_NOTFOUND, meta_container_get (m, "other", "c1", &got, err));
  labels_clear (&c.labels);
  meta_close (m);
}
END_TEST

START_TEST (test_creation_refuses_what_containerd_refuses)
{
  meta *m = NULL;
  OK (meta_open (path, &m, err));
  struct meta_container c = sample ("bad/id");
  FAILS (BERTH_E_INVALID, meta_container_create (m, "default", &c, NULL, err));
  c = sample ("ok");
  c.runtime_name = (char *)"";
  FAILS (BERTH_E_INVALID, meta_container_create (m, "default", &c, NULL, err));
  c = sample ("ok");
  c.spec.type_url = NULL;
  FAILS (BERTH_E_INVALID, meta_container_create (m, "default", &c, NULL, err));
  c = sample ("ok");
  c.snapshotter = (char *)"";
  FAILS (BERTH_E_INVALID, meta_container_create (m, "default", &c, NULL, err));
  meta_close (m);
}
END_TEST

START_TEST (test_update_follows_the_field_mask_and_keeps_immutable_fields)
{
  meta *m = NULL;
  OK (meta_open (path, &m, err));
  struct meta_container c = sample ("u1");
  OK (labels_set (&c.labels, "keep", "1"));
  OK (labels_set (&c.labels, "drop", "2"));
  OK (meta_container_create (m, "default", &c, NULL, err));
  labels_clear (&c.labels);

  struct meta_container up = { .id = (char *)"u1", .image = (char *)"other:tag" };
  OK (labels_set (&up.labels, "new", "3"));
  const char *paths[] = { "labels.new", "labels.drop", "image" };
  struct meta_container got = { 0 };
  OK (meta_container_update (m, "default", &up, paths, 3, &got, err));
  ck_assert_str_eq (labels_get (&got.labels, "keep"), "1");
  ck_assert_str_eq (labels_get (&got.labels, "new"), "3");
  ck_assert_ptr_null (labels_get (&got.labels, "drop"));
  ck_assert_str_eq (got.image, "other:tag");
  ck_assert_str_eq (got.snapshot_key, "u1"); /* not in the mask */
  meta_container_clear (&got);

  const char *bad[] = { "runtime" };
  FAILS (BERTH_E_INVALID, meta_container_update (m, "default", &up, bad, 1, NULL, err));
  /* No mask: full replacement, but the runtime cannot change. */
  struct meta_container full = sample ("u1");
  full.runtime_name = (char *)"io.berth.runtime.v1.oci";
  FAILS (BERTH_E_INVALID, meta_container_update (m, "default", &full, NULL, 0, NULL, err));
  full = sample ("u1");
  OK (meta_container_update (m, "default", &full, NULL, 0, &got, err));
  ck_assert_uint_eq (got.labels.n, 0);
  meta_container_clear (&got);

  struct meta_container missing = sample ("nope");
  FAILS (BERTH_E_NOTFOUND, meta_container_update (m, "default", &missing, NULL, 0, NULL, err));
  OK (meta_container_set_label (m, "default", "u1", "io.berth.log.path", "/x/container.log", err));
  OK (meta_container_get (m, "default", "u1", &got, err));
  ck_assert_str_eq (labels_get (&got.labels, "io.berth.log.path"), "/x/container.log");
  meta_container_clear (&got);
  labels_clear (&up.labels);
  meta_close (m);
}
END_TEST

START_TEST (test_list_filters_and_delete)
{
  meta *m = NULL;
  OK (meta_open (path, &m, err));
  struct meta_container a = sample ("a"), b = sample ("b");
  b.runtime_name = (char *)"io.berth.runtime.v1.oci";
  OK (labels_set (&b.labels, "tier", "web"));
  OK (meta_container_create (m, "default", &a, NULL, err));
  OK (meta_container_create (m, "default", &b, NULL, err));
  labels_clear (&b.labels);
  struct meta_container *v = NULL;
  size_t n = 0;
  OK (meta_container_list (m, "default", NULL, 0, &v, &n, err));
  ck_assert_uint_eq (n, 2);
  ck_assert_str_eq (v[0].id, "a");
  meta_containers_free (v, n);
  const char *f1[] = { "labels.tier==web" };
  OK (meta_container_list (m, "default", f1, 1, &v, &n, err));
  ck_assert_uint_eq (n, 1);
  ck_assert_str_eq (v[0].id, "b");
  meta_containers_free (v, n);
  const char *f2[] = { "runtime.name==io.containerd.runc.v2" };
  OK (meta_container_list (m, "default", f2, 1, &v, &n, err));
  ck_assert_uint_eq (n, 1);
  ck_assert_str_eq (v[0].id, "a");
  meta_containers_free (v, n);
  const char *f3[] = { "id==\"unterminated" };
  FAILS (BERTH_E_INVALID, meta_container_list (m, "default", f3, 1, &v, &n, err));

  /* A namespace holding containers cannot be deleted. */
  FAILS (BERTH_E_PRECONDITION, meta_namespace_delete (m, "default", err));
  OK (meta_container_delete (m, "default", "a", err));
  FAILS (BERTH_E_NOTFOUND, meta_container_delete (m, "default", "a", err));
  OK (meta_container_delete (m, "default", "b", err));
  OK (meta_namespace_delete (m, "default", err));
  meta_close (m);
}
END_TEST

START_TEST (test_gc_keeps_the_snapshot_of_a_container)
{
  meta *m = NULL;
  OK (meta_open (path, &m, err));
  const char *keys[] = { "held", "loose" };
  for (size_t i = 0; i < 2; i++)
    {
      _cleanup_free_ char *backend = NULL;
      OK (meta_snapshot_backend_key (m, "default", keys[i], &backend, err));
      struct meta_snapshot s = { .snapshotter = (char *)"overlayfs",
                                 .key = (char *)keys[i],
                                 .backend = backend,
                                 .parent = (char *)"",
                                 .kind = BERTH_SNAPSHOT_ACTIVE };
      OK (meta_snapshot_add (m, "default", &s, NULL, err));
    }
  struct meta_container c = sample ("held");
  OK (meta_container_create (m, "default", &c, NULL, err));
  struct gc_report rep = { 0 };
  OK (gc_collect (m, NULL, NULL, false, NOW, &rep, err));
  gc_report_clear (&rep);
  struct meta_snapshot s = { 0 };
  OK (meta_snapshot_get (m, "default", "overlayfs", "held", &s, err));
  meta_snapshot_clear (&s);
  FAILS (BERTH_E_NOTFOUND, meta_snapshot_get (m, "default", "overlayfs", "loose", &s, err));
  /* Once the container goes, so does its snapshot. */
  OK (meta_container_delete (m, "default", "held", err));
  OK (gc_collect (m, NULL, NULL, false, NOW, &rep, err));
  gc_report_clear (&rep);
  FAILS (BERTH_E_NOTFOUND, meta_snapshot_get (m, "default", "overlayfs", "held", &s, err));
  meta_close (m);
}
END_TEST

static Suite *
make_suite (void)
{
  Suite *s = suite_create ("meta-containers");
  TCase *tc = tcase_create ("records");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_a_container_is_recorded_and_read_back_with_its_any_values);
  tcase_add_test (tc, test_creation_refuses_what_containerd_refuses);
  tcase_add_test (tc, test_update_follows_the_field_mask_and_keeps_immutable_fields);
  tcase_add_test (tc, test_list_filters_and_delete);
  tcase_add_test (tc, test_gc_keeps_the_snapshot_of_a_container);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (make_suite)
