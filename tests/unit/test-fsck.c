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
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (fsck_suite)
