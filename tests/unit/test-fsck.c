/* fsck_files: the checks that run before the metadata is opened, on real
 * files in a temporary root and state directory (the store checks need
 * plugins and are covered by tests/integration/recovery.sh). */
#include <config.h>

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-main.h"
#include "cleanup.h"
#include "fs.h"
#include "fsck.h"

static char root[64], state[96];

static void
write_file (const char *path, const char *text)
{
  _cleanup_free_ char *dir = strdup (path);
  *strrchr (dir, '/') = '\0';
  ck_assert_int_eq (fs_mkdir_p (dir, 0700), 0);
  FILE *f = fopen (path, "w");
  ck_assert_ptr_nonnull (f);
  fputs (text, f);
  fclose (f);
}

static bool __attribute__ ((format (printf, 1, 2)))
exists (const char *fmt, ...)
{
  char p[512];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (p, sizeof p, fmt, ap);
  va_end (ap);
  return access (p, F_OK) == 0;
}

static void
setup (void)
{
  snprintf (root, sizeof root, "/tmp/berth-test-fsck-XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (root));
  snprintf (state, sizeof state, "%s/state", root);
  ck_assert_int_eq (fs_mkdir_p (state, 0700), 0);
}

static int
rm_entry (const char *path, const struct stat *st, int type, struct FTW *f)
{
  return type == FTW_DP ? rmdir (path) : unlink (path);
}

static void
teardown (void)
{
  fs_unmount_under (root); /* what a failed mount test left */
  nftw (root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
make_db (const char *path)
{
  sqlite3 *db = NULL;
  ck_assert_int_eq (sqlite3_open (path, &db), SQLITE_OK);
  ck_assert_int_eq (sqlite3_exec (db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close (db);
}

START_TEST (test_fsck_files_finds_nothing_in_a_sane_store)
{
  char p[256];
  snprintf (p, sizeof p, "%s/meta.db", root);
  make_db (p);
  snprintf (p, sizeof p, "%s/io.berth.runtime.v1.oci/default/c1/meta", state);
  write_file (p, "{\"namespace\":\"default\",\"id\":\"c1\",\"runtime\":\"/usr/bin/runc\"}");
  snprintf (p, sizeof p, "%s/io.berth.runtime.v1.oci/default/c1/shim.pid", state);
  write_file (p, "1234\n");
  snprintf (p, sizeof p, "%s/bundles/default/c1/config.json", state);
  write_file (p, "{\"ociVersion\":\"1.0.2\"}");
  struct fsck_opts o = { .repair = true };
  struct fsck_report r = { 0 };
  berth_error *err = NULL;
  ck_assert_int_eq (fsck_files (root, state, &o, &r, &err), 0);
  ck_assert_uint_eq (r.n, 0);
  ck_assert_int_eq (r.files, 3);
  ck_assert_ptr_null (r.quarantine);
  fsck_report_clear (&r);
}
END_TEST

START_TEST (test_fsck_files_quarantines_an_unreadable_metadata_database)
{
  char p[256];
  snprintf (p, sizeof p, "%s/meta.db", root);
  write_file (p, "this is not an SQLite database, it is garbage left by a broken disk\n");
  snprintf (p, sizeof p, "%s/meta.db-wal", root);
  write_file (p, "junk");
  struct fsck_opts o = { .repair = true };
  struct fsck_report r = { 0 };
  berth_error *err = NULL;
  ck_assert_int_eq (fsck_files (root, state, &o, &r, &err), 0);
  ck_assert_uint_eq (r.n, 1);
  ck_assert_str_eq (r.items[0].kind, "metadata");
  ck_assert_ptr_nonnull (r.items[0].action);
  ck_assert_ptr_nonnull (strstr (r.items[0].problem, "unreadable"));
  ck_assert (!exists ("%s/meta.db%s", root, ""));
  ck_assert (!exists ("%s/meta.db%s", root, "-wal"));
  ck_assert (exists ("%s/meta/meta.db%s", r.quarantine, ""));
  ck_assert (exists ("%s/meta/meta.db%s", r.quarantine, "-wal"));
  ck_assert_uint_eq (fsck_report_unresolved (&r), 0);
  fsck_report_clear (&r);
}
END_TEST

START_TEST (test_fsck_files_without_repair_only_reports)
{
  char p[256];
  snprintf (p, sizeof p, "%s/meta.db", root);
  write_file (p, "garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage\n");
  snprintf (p, sizeof p, "%s/bundles/default/c2/config.json", state);
  write_file (p, "{\"ociVersion\": ");
  struct fsck_opts o = { .repair = false };
  struct fsck_report r = { 0 };
  berth_error *err = NULL;
  ck_assert_int_eq (fsck_files (root, state, &o, &r, &err), 0);
  ck_assert_uint_eq (r.n, 2);
  ck_assert_uint_eq (fsck_report_unresolved (&r), 2);
  ck_assert (exists ("%s/meta.db%s", root, ""));
  ck_assert (exists ("%s/bundles/default/%s", state, "c2"));
  ck_assert_ptr_null (r.quarantine);
  fsck_report_clear (&r);
}
END_TEST

START_TEST (test_fsck_files_quarantines_broken_task_state_and_bundles)
{
  char p[256];
  /* meta names another task; a pid file that is not a number; a truncated spec */
  snprintf (p, sizeof p, "%s/io.berth.runtime.v1.oci/default/bad/meta", state);
  write_file (p, "{\"namespace\":\"default\",\"id\":\"other\",\"runtime\":\"/usr/bin/runc\"}");
  snprintf (p, sizeof p, "%s/io.berth.runtime.v1.oci/default/badpid/meta", state);
  write_file (p, "{\"namespace\":\"default\",\"id\":\"badpid\",\"runtime\":\"/usr/bin/runc\"}");
  snprintf (p, sizeof p, "%s/io.berth.runtime.v1.oci/default/badpid/shim.pid", state);
  write_file (p, "12ab");
  snprintf (p, sizeof p, "%s/io.berth.runtime.v1.oci/default/good/meta", state);
  write_file (p, "{\"namespace\":\"default\",\"id\":\"good\",\"runtime\":\"/usr/bin/runc\"}");
  snprintf (p, sizeof p, "%s/bundles/default/bad/config.json", state);
  write_file (p, "\x01\x02 not json");
  struct fsck_opts o = { .repair = true };
  struct fsck_report r = { 0 };
  berth_error *err = NULL;
  ck_assert_int_eq (fsck_files (root, state, &o, &r, &err), 0);
  ck_assert_uint_eq (r.n, 3);
  ck_assert_uint_eq (fsck_report_unresolved (&r), 0);
  ck_assert (!exists ("%s/io.berth.runtime.v1.oci/default/%s", state, "bad"));
  ck_assert (!exists ("%s/io.berth.runtime.v1.oci/default/%s", state, "badpid"));
  ck_assert (exists ("%s/io.berth.runtime.v1.oci/default/%s", state, "good"));
  ck_assert (exists ("%s/state/io.berth.runtime.v1.oci/default/%s/meta", r.quarantine, "bad"));
  ck_assert (exists ("%s/state/io.berth.runtime.v1.oci/default/%s/shim.pid", r.quarantine, "badpid"));
  ck_assert (exists ("%s/bundles/default/%s/config.json", r.quarantine, "bad"));
  for (size_t i = 0; i < r.n; i++)
    ck_assert_ptr_nonnull (r.items[i].path);
  fsck_report_clear (&r);
}
END_TEST

START_TEST (test_fsck_files_live_never_moves_anything)
{
  char p[256];
  snprintf (p, sizeof p, "%s/meta.db", root);
  write_file (p, "garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage garbage\n");
  snprintf (p, sizeof p, "%s/bundles/default/bad/config.json", state);
  write_file (p, "nope");
  struct fsck_opts o = { .repair = true, .live = true };
  struct fsck_report r = { 0 };
  berth_error *err = NULL;
  ck_assert_int_eq (fsck_files (root, state, &o, &r, &err), 0);
  ck_assert_uint_eq (r.n, 1); /* the database is reported, task state is not looked at */
  ck_assert_ptr_null (r.items[0].action);
  ck_assert (exists ("%s/meta.db%s", root, ""));
  ck_assert (exists ("%s/bundles/default/%s", state, "bad"));
  fsck_report_clear (&r);
}
END_TEST

/* Whether /proc/self/mountinfo lists a mount at path. */
static bool
mounted_at (const char *path)
{
  FILE *f = fopen ("/proc/self/mountinfo", "re");
  ck_assert_ptr_nonnull (f);
  char line[4096], mp[4096];
  bool found = false;
  while (!found && fgets (line, sizeof line, f))
    found = sscanf (line, "%*s %*s %*s %*s %4095s", mp) == 1 && strcmp (mp, path) == 0;
  fclose (f);
  return found;
}

/* A crash between mounting the rootfs and writing config.json leaves a
 * bundle without a spec and a mount in it (crash.sh's point
 * task-create-before-config): the mount must not travel into the
 * quarantine with the directory. */
START_TEST (test_fsck_files_unmounts_a_bundle_before_quarantining_it)
{
  char p[512], rootfs[256];
  snprintf (rootfs, sizeof rootfs, "%s/bundles/default/half/rootfs", state);
  ck_assert_int_eq (fs_mkdir_p (rootfs, 0711), 0);
  if (mount ("berth-test", rootfs, "tmpfs", 0, "size=1m") < 0)
    {
      fprintf (stderr, "SKIP test_fsck_files_unmounts_a_bundle_before_quarantining_it: mounting a tmpfs: %s\n",
               strerror (errno));
      return;
    }
  snprintf (p, sizeof p, "%s/bin/sh", rootfs);
  write_file (p, "#!");
  /* stacked twice and a mount below the rootfs, as a bind of /etc files would be */
  snprintf (p, sizeof p, "%s/bin", rootfs);
  ck_assert_int_eq (mount ("berth-test", p, "tmpfs", 0, "size=1m"), 0);
  ck_assert_int_eq (mount ("berth-test", rootfs, "tmpfs", 0, "size=1m"), 0);
  _cleanup_free_ char *real = realpath (rootfs, NULL);
  ck_assert_ptr_nonnull (real);
  ck_assert (mounted_at (real));
  struct fsck_opts o = { .repair = true };
  struct fsck_report r = { 0 };
  berth_error *err = NULL;
  ck_assert_int_eq (fsck_files (root, state, &o, &r, &err), 0);
  ck_assert_uint_eq (r.n, 1);
  ck_assert_uint_eq (fsck_report_unresolved (&r), 0);
  ck_assert (!mounted_at (real));
  snprintf (p, sizeof p, "%s/bin", real);
  ck_assert (!mounted_at (p));
  ck_assert (!exists ("%s/bundles/default/%s", state, "half"));
  _cleanup_free_ char *moved = NULL;
  ck_assert_int_ge (asprintf (&moved, "%s/bundles/default/half/rootfs", r.quarantine), 0);
  ck_assert (exists ("%s", moved));
  _cleanup_free_ char *qreal = realpath (moved, NULL);
  ck_assert_ptr_nonnull (qreal);
  ck_assert (!mounted_at (qreal));
  ck_assert (!exists ("%s/bin/sh", moved)); /* the file was on the tmpfs, gone with it */
  fsck_report_clear (&r);
}
END_TEST

/* fs_unmount_under: nothing mounted or no directory is 0, not an error. */
START_TEST (test_fs_unmount_under_without_mounts)
{
  char p[256];
  snprintf (p, sizeof p, "%s/plain", root);
  ck_assert_int_eq (fs_mkdir_p (p, 0700), 0);
  ck_assert_int_eq (fs_unmount_under (p), 0);
  snprintf (p, sizeof p, "%s/missing", root);
  ck_assert_int_eq (fs_unmount_under (p), 0);
}
END_TEST

START_TEST (test_fsck_du_counts_allocated_blocks)
{
  char p[256];
  snprintf (p, sizeof p, "%s/d/f", root);
  write_file (p, "");
  int fd = open (p, O_WRONLY);
  static char buf[65536];
  memset (buf, 'x', sizeof buf);
  ck_assert_int_eq (write (fd, buf, sizeof buf), (ssize_t) sizeof buf);
  fsync (fd);
  close (fd);
  snprintf (p, sizeof p, "%s/d", root);
  int64_t n = fsck_du (p);
  ck_assert_int_ge (n, 65536);
  ck_assert_int_lt (n, 65536 + 16 * 4096);
  snprintf (p, sizeof p, "%s/missing", root);
  ck_assert_int_eq (fsck_du (p), 0);
}
END_TEST

static Suite *
fsck_suite (void)
{
  Suite *s = suite_create ("fsck");
  TCase *tc = tcase_create ("files");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_fsck_files_finds_nothing_in_a_sane_store);
  tcase_add_test (tc, test_fsck_files_quarantines_an_unreadable_metadata_database);
  tcase_add_test (tc, test_fsck_files_without_repair_only_reports);
  tcase_add_test (tc, test_fsck_files_quarantines_broken_task_state_and_bundles);
  tcase_add_test (tc, test_fsck_files_live_never_moves_anything);
  tcase_add_test (tc, test_fsck_du_counts_allocated_blocks);
  tcase_add_test (tc, test_fsck_files_unmounts_a_bundle_before_quarantining_it);
  tcase_add_test (tc, test_fs_unmount_under_without_mounts);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (fsck_suite)
