/* GC: mark-and-sweep over a fixture graph in a real metadata database and a
 * fake content store (a plugin record with info/walk/delete). */
#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-main.h"
#include "cleanup.h"
#include "gc.h"

#define DIDX "sha256:1000000000000000000000000000000000000000000000000000000000000000"
#define DMAN "sha256:2000000000000000000000000000000000000000000000000000000000000000"
#define DCFG "sha256:3000000000000000000000000000000000000000000000000000000000000000"
#define DLAY "sha256:4000000000000000000000000000000000000000000000000000000000000000"
#define DORPHAN "sha256:5000000000000000000000000000000000000000000000000000000000000000"
#define DLEASED "sha256:6000000000000000000000000000000000000000000000000000000000000000"
#define DROOT "sha256:7000000000000000000000000000000000000000000000000000000000000000"
#define DSTRAY "sha256:8000000000000000000000000000000000000000000000000000000000000000"

#define NOW ((int64_t) 1900000000 * 1000000000)

static const char dir_template[] = "/tmp/berth-test-gc-XXXXXX";
static char dir[64];
static char path[160];

/* ---- a fake content store ---- */
static struct
{
  const char *digest;
  int64_t size;
  bool present;
} blobs[] = {
  { DIDX, 100, true },   { DMAN, 200, true },    { DCFG, 300, true },  { DLAY, 400, true },
  { DORPHAN, 500, true }, { DLEASED, 600, true }, { DROOT, 700, true }, { DSTRAY, 800, true },
};

static int
fake_info (void *self, berth_ctx *ctx, const char *digest, struct berth_content_info *ret, berth_error *err)
{
  for (size_t i = 0; i < ARRAY_SIZE (blobs); i++)
    if (blobs[i].present && strcmp (blobs[i].digest, digest) == 0)
      {
        snprintf (ret->digest, sizeof ret->digest, "%s", digest);
        ret->blob_size = blobs[i].size;
        return 0;
      }
  return BERTH_E_NOTFOUND;
}

static int
fake_walk (void *self, berth_ctx *ctx, const char *const *filters, berth_content_info_fn fn, void *data,
           berth_error *err)
{
  for (size_t i = 0; i < ARRAY_SIZE (blobs); i++)
    if (blobs[i].present)
      {
        struct berth_content_info info = { .size = sizeof info, .blob_size = blobs[i].size };
        snprintf (info.digest, sizeof info.digest, "%s", blobs[i].digest);
        int r = fn (&info, data);
        if (r < 0)
          return r;
      }
  return 0;
}

static int
fake_delete (void *self, berth_ctx *ctx, const char *digest, berth_error *err)
{
  for (size_t i = 0; i < ARRAY_SIZE (blobs); i++)
    if (blobs[i].present && strcmp (blobs[i].digest, digest) == 0)
      {
        blobs[i].present = false;
        return 0;
      }
  return BERTH_E_NOTFOUND;
}

static bool
present (const char *digest)
{
  for (size_t i = 0; i < ARRAY_SIZE (blobs); i++)
    if (strcmp (blobs[i].digest, digest) == 0)
      return blobs[i].present;
  return false;
}

static plugin store;

static void
setup (void)
{
  snprintf (dir, sizeof dir, "%s", dir_template);
  ck_assert_ptr_nonnull (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/meta.db", dir);
  for (size_t i = 0; i < ARRAY_SIZE (blobs); i++)
    blobs[i].present = true; /* also without fork mode (CK_FORK=no) */
  memset (&store, 0, sizeof store);
  store.desc.kind = BERTH_KIND_CONTENT;
  store.status = PLUGIN_OK;
  store.full_name = (char *) "io.berth.content.v1.fake";
  store.ops.content.size = sizeof store.ops.content;
  store.ops.content.info = fake_info;
  store.ops.content.walk = fake_walk;
  store.ops.content.delete = fake_delete;
}

static void
teardown (void)
{
  char cmd[200];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq (system (cmd), 0);
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

static void
add (meta *m, const char *ns, const char *digest, const char *k1, const char *v1, const char *k2, const char *v2)
{
  berth_labels l = { 0 };
  if (k1)
    labels_set (&l, k1, v1);
  if (k2)
    labels_set (&l, k2, v2);
  OK (meta_content_add (m, ns, digest, 1, &l, err));
  labels_clear (&l);
}

/* default: image busybox → index → manifest (m.0) → config + layer;
 * an orphan; content held by a live lease; content with gc.root;
 * an expired lease.  Namespace "other" holds the layer too (no refs).
 * The store also has a stray blob nobody records. */
static meta *
fixture (void)
{
  meta *m = NULL;
  OK (meta_open (path, &m, err));
  add (m, "default", DIDX, "containerd.io/gc.ref.content.m.0", DMAN, NULL, NULL);
  add (m, "default", DMAN, "containerd.io/gc.ref.content.config", DCFG, "containerd.io/gc.ref.content.l.0", DLAY);
  add (m, "default", DCFG, NULL, NULL, NULL, NULL);
  add (m, "default", DLAY, NULL, NULL, NULL, NULL);
  add (m, "default", DORPHAN, NULL, NULL, NULL, NULL);
  add (m, "default", DLEASED, NULL, NULL, NULL, NULL);
  add (m, "default", DROOT, "containerd.io/gc.root", "2024-01-01T00:00:00Z", NULL, NULL);
  add (m, "other", DLAY, NULL, NULL, NULL, NULL);
  struct meta_descriptor t = { .media_type = (char *) "application/vnd.oci.image.index.v1+json",
                               .digest = (char *) DIDX, .size = 100 };
  OK (meta_image_create_or_update (m, "default", "docker.io/library/busybox:latest", &t, NULL, err));
  berth_labels l = { 0 };
  labels_set (&l, "containerd.io/gc.expire", "2099-01-01T00:00:00Z");
  OK (meta_lease_create (m, "default", "live", &l, NULL, err));
  OK (meta_lease_add_resource (m, "default", "live", "content", DLEASED, err));
  labels_clear (&l);
  labels_set (&l, "containerd.io/gc.expire", "2020-01-01T00:00:00Z");
  OK (meta_lease_create (m, "default", "old", &l, NULL, err));
  labels_clear (&l);
  return m;
}

static const struct gc_item *
find_item (const struct gc_report *rep, enum gc_kind kind, const char *ns, const char *id)
{
  for (size_t i = 0; i < rep->n; i++)
    if (rep->items[i].kind == kind && strcmp (rep->items[i].id, id) == 0
        && ((ns == NULL && rep->items[i].ns == NULL) || (ns && rep->items[i].ns && strcmp (ns, rep->items[i].ns) == 0)))
      return &rep->items[i];
  return NULL;
}

START_TEST (test_dry_run_lists_what_would_go_and_why_without_removing_it)
{
  meta *m = fixture ();
  struct gc_report rep;
  OK (gc_collect (m, &store, NULL, true, NOW, &rep, err));
  ck_assert (rep.dry_run);
  const struct gc_item *it = find_item (&rep, GC_CONTENT, "default", DORPHAN);
  ck_assert_ptr_nonnull (it);
  ck_assert_msg (strstr (it->reason, "unreferenced") != NULL, "reason: %s", it->reason);
  ck_assert_ptr_nonnull (find_item (&rep, GC_CONTENT, "other", DLAY));
  ck_assert_ptr_nonnull (find_item (&rep, GC_LEASE, "default", "old"));
  ck_assert_ptr_nonnull (find_item (&rep, GC_BLOB, NULL, DORPHAN));
  ck_assert_ptr_nonnull (find_item (&rep, GC_BLOB, NULL, DSTRAY));
  /* Kept: the image's chain, leased content, gc.root, the live lease, and
   * the layer's blob (default still references it). */
  ck_assert_ptr_null (find_item (&rep, GC_CONTENT, "default", DIDX));
  ck_assert_ptr_null (find_item (&rep, GC_CONTENT, "default", DMAN));
  ck_assert_ptr_null (find_item (&rep, GC_CONTENT, "default", DCFG));
  ck_assert_ptr_null (find_item (&rep, GC_CONTENT, "default", DLAY));
  ck_assert_ptr_null (find_item (&rep, GC_CONTENT, "default", DLEASED));
  ck_assert_ptr_null (find_item (&rep, GC_CONTENT, "default", DROOT));
  ck_assert_ptr_null (find_item (&rep, GC_LEASE, "default", "live"));
  ck_assert_ptr_null (find_item (&rep, GC_BLOB, NULL, DLAY));
  ck_assert_uint_eq (rep.n, 5);
  ck_assert_int_eq (rep.bytes, 500 + 800);
  gc_report_clear (&rep);
  /* Nothing was removed. */
  ck_assert (present (DORPHAN) && present (DSTRAY));
  struct meta_content c = { 0 };
  OK (meta_content_get (m, "default", DORPHAN, &c, err));
  meta_content_clear (&c);
  struct meta_lease l = { 0 };
  OK (meta_lease_get (m, "default", "old", &l, err));
  meta_lease_clear (&l);
  meta_close (m);
}
END_TEST

START_TEST (test_sweep_removes_unreferenced_records_blobs_and_expired_leases)
{
  meta *m = fixture ();
  struct gc_report rep;
  OK (gc_collect (m, &store, NULL, false, NOW, &rep, err));
  ck_assert_uint_eq (rep.n, 5);
  gc_report_clear (&rep);
  ck_assert (!present (DORPHAN));
  ck_assert (!present (DSTRAY));
  ck_assert (present (DIDX) && present (DMAN) && present (DCFG) && present (DLAY) && present (DLEASED)
             && present (DROOT));
  struct meta_content c = { 0 };
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (meta_content_get (m, "default", DORPHAN, &c, &e), BERTH_E_NOTFOUND);
  struct meta_lease l = { 0 };
  berth_error_free (TAKE_PTR (e));
  ck_assert_int_eq (meta_lease_get (m, "default", "old", &l, &e), BERTH_E_NOTFOUND);

  /* A second run finds nothing. */
  OK (gc_collect (m, &store, NULL, false, NOW, &rep, err));
  ck_assert_uint_eq (rep.n, 0);
  gc_report_clear (&rep);

  /* Deleting the image releases its whole chain. */
  OK (meta_image_delete (m, "default", "docker.io/library/busybox:latest", err));
  OK (gc_collect (m, &store, NULL, false, NOW, &rep, err));
  ck_assert_uint_eq (rep.n, 8); /* 4 records + 4 blobs */
  gc_report_clear (&rep);
  ck_assert (!present (DIDX) && !present (DMAN) && !present (DCFG) && !present (DLAY));
  ck_assert (present (DLEASED) && present (DROOT));
  meta_close (m);
}
END_TEST

START_TEST (test_a_lease_keeps_content_until_it_expires)
{
  meta *m = fixture ();
  struct gc_report rep;
  /* After 2099 the "live" lease has expired too. */
  OK (gc_collect (m, &store, NULL, false, (int64_t) 4102444800 * 1000000000 + 1, &rep, err));
  ck_assert_ptr_nonnull (find_item (&rep, GC_LEASE, "default", "live"));
  ck_assert_ptr_nonnull (find_item (&rep, GC_CONTENT, "default", DLEASED));
  gc_report_clear (&rep);
  ck_assert (!present (DLEASED));
  meta_close (m);
}
END_TEST

START_TEST (test_a_namespace_limited_run_sweeps_only_that_namespace)
{
  meta *m = fixture ();
  struct gc_report rep;
  OK (gc_collect (m, &store, "other", false, NOW, &rep, err));
  ck_assert_ptr_nonnull (find_item (&rep, GC_CONTENT, "other", DLAY));
  ck_assert_ptr_null (find_item (&rep, GC_CONTENT, "default", DORPHAN));
  /* The orphan's blob stays: default's record still references it. */
  ck_assert_ptr_null (find_item (&rep, GC_BLOB, NULL, DORPHAN));
  ck_assert_ptr_nonnull (find_item (&rep, GC_BLOB, NULL, DSTRAY));
  gc_report_clear (&rep);
  ck_assert (present (DLAY) && present (DORPHAN));
  meta_close (m);
}
END_TEST

START_TEST (test_explain_prints_the_chain_that_keeps_a_blob)
{
  meta *m = fixture ();
  _cleanup_free_ char *text = NULL;
  OK (gc_explain_in (m, &store, "default", DLAY, NOW, &text, err));
  ck_assert_str_eq (text, "image docker.io/library/busybox:latest -> index " DIDX " -> " DMAN
                          " (label containerd.io/gc.ref.content.m.0) -> " DLAY
                          " (label containerd.io/gc.ref.content.l.0)\n");
  free (TAKE_PTR (text));
  OK (gc_explain_in (m, &store, "default", DLEASED, NOW, &text, err));
  ck_assert_str_eq (text, "lease live -> " DLEASED "\n");
  free (TAKE_PTR (text));
  OK (gc_explain_in (m, &store, "default", DROOT, NOW, &text, err));
  ck_assert_str_eq (text, "content -> " DROOT " (label containerd.io/gc.root)\n");
  free (TAKE_PTR (text));
  OK (gc_explain_in (m, &store, "default", DORPHAN, NOW, &text, err));
  ck_assert_msg (strstr (text, "not referenced (would be collected)") != NULL, "%s", text);
  free (TAKE_PTR (text));
  OK (gc_explain_in (m, &store, NULL, DSTRAY, NOW, &text, err));
  ck_assert_msg (strstr (text, "not referenced (would be collected): no namespace has a content record") != NULL,
                 "%s", text);
  free (TAKE_PTR (text));
  /* Every namespace: one line per namespace that keeps or records it. */
  OK (gc_explain_in (m, &store, NULL, DLAY, NOW, &text, err));
  ck_assert_msg (strstr (text, "namespace default: image docker.io/library/busybox:latest") != NULL, "%s", text);
  ck_assert_msg (strstr (text, "namespace other: " DLAY ": not referenced") != NULL, "%s", text);
  free (TAKE_PTR (text));
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (gc_explain_in (m, &store, "default", "sha256:9999", NOW, &text, &e), BERTH_E_NOTFOUND);
  meta_close (m);
}
END_TEST

START_TEST (test_gc_without_a_store_sweeps_only_the_metadata)
{
  meta *m = fixture ();
  struct gc_report rep;
  OK (gc_collect (m, NULL, NULL, false, NOW, &rep, err));
  ck_assert_ptr_nonnull (find_item (&rep, GC_CONTENT, "default", DORPHAN));
  ck_assert_ptr_null (find_item (&rep, GC_BLOB, NULL, DORPHAN));
  gc_report_clear (&rep);
  ck_assert (present (DORPHAN));
  meta_close (m);
}
END_TEST

static Suite *
make_suite (void)
{
  Suite *s = suite_create ("gc");
  TCase *tc = tcase_create ("mark-sweep");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_dry_run_lists_what_would_go_and_why_without_removing_it);
  tcase_add_test (tc, test_sweep_removes_unreferenced_records_blobs_and_expired_leases);
  tcase_add_test (tc, test_a_lease_keeps_content_until_it_expires);
  tcase_add_test (tc, test_a_namespace_limited_run_sweeps_only_that_namespace);
  tcase_add_test (tc, test_explain_prints_the_chain_that_keeps_a_blob);
  tcase_add_test (tc, test_gc_without_a_store_sweeps_only_the_metadata);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (make_suite)
