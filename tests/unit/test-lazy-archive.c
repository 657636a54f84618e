/* core/util/lazy-archive: libarchive is dlopened at first use, not linked.
 * This program links libberth-unpack.la as berthd does, so it also checks
 * that nothing there links libarchive. */
#include <config.h>

#include <check.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "check-main.h"
#include "cleanup.h"
#include "core/util/lazy-archive.h"

static bool
libarchive_mapped (void)
{
  void *h = dlopen (LIBARCHIVE_SONAME, RTLD_NOW | RTLD_NOLOAD);
  if (h)
    dlclose (h);
  return h != NULL;
}

START_TEST (test_libarchive_is_not_mapped_before_the_first_load)
{
  ck_assert (!libarchive_mapped ());
  ck_assert_ptr_null (lazy_archive.read_new);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (lazy_archive_load (&err), 0);
  ck_assert_ptr_null (err);
  ck_assert (libarchive_mapped ());
}
END_TEST

/* One ustar entry, "hello" (0644, 5 bytes), then the end-of-archive blocks. */
static void
ustar_hello (unsigned char tar[3 * 512])
{
  memset (tar, 0, 3 * 512);
  strcpy ((char *) tar, "hello");
  memcpy (tar + 100, "0000644", 8);
  memcpy (tar + 108, "0000000", 8);
  memcpy (tar + 116, "0000000", 8);
  memcpy (tar + 124, "00000000005", 12);
  memcpy (tar + 136, "00000000000", 12);
  tar[156] = '0';
  memcpy (tar + 257, "ustar", 6);
  memcpy (tar + 263, "00", 2);
  memset (tar + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += tar[i];
  snprintf ((char *) tar + 148, 8, "%06o", sum);
  memcpy (tar + 512, "world", 5);
}

static unsigned char tar[3 * 512 + 1024];

static la_ssize_t
read_all (struct archive *a, void *data, const void **buf)
{
  bool *done = data;
  if (*done)
    return 0;
  *done = true;
  *buf = tar;
  return sizeof tar;
}

START_TEST (test_the_loaded_functions_read_a_tar)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (lazy_archive_load (&err), 0);
  void *h = dlopen (LIBARCHIVE_SONAME, RTLD_NOW | RTLD_NOLOAD);
  ck_assert_ptr_nonnull (h);
  ck_assert_ptr_eq ((void *) lazy_archive.read_new, dlsym (h, "archive_read_new"));
  ck_assert_ptr_eq ((void *) lazy_archive.entry_xattr_next, dlsym (h, "archive_entry_xattr_next"));
  dlclose (h);

  ustar_hello (tar);
  struct archive *a = archive_read_new ();
  ck_assert_ptr_nonnull (a);
  archive_read_support_format_tar (a);
  bool done = false;
  ck_assert_int_eq (archive_read_open (a, &done, NULL, read_all, NULL), ARCHIVE_OK);
  struct archive_entry *e;
  ck_assert_int_eq (archive_read_next_header (a, &e), ARCHIVE_OK);
  ck_assert_str_eq (archive_entry_pathname (e), "hello");
  ck_assert_int_eq (archive_entry_filetype (e), AE_IFREG);
  ck_assert_int_eq (archive_entry_perm (e), 0644);
  ck_assert_int_eq (archive_entry_size (e), 5);
  const void *buf;
  size_t len;
  la_int64_t off;
  ck_assert_int_eq (archive_read_data_block (a, &buf, &len, &off), ARCHIVE_OK);
  ck_assert_int_eq (len, 5);
  ck_assert (memcmp (buf, "world", 5) == 0);
  ck_assert_int_eq (archive_read_next_header (a, &e), ARCHIVE_EOF);
  archive_set_error (a, 5, "set by %s", "the test");
  ck_assert_str_eq (archive_error_string (a), "set by the test");
  ck_assert_int_eq (archive_read_free (a), ARCHIVE_OK);
}
END_TEST

START_TEST (test_loading_again_keeps_the_same_functions)
{
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (lazy_archive_load (&err), 0);
  struct lazy_archive first = lazy_archive;
  ck_assert_int_eq (lazy_archive_load (&err), 0);
  ck_assert_ptr_null (err);
  ck_assert (memcmp (&first, &lazy_archive, sizeof first) == 0);
}
END_TEST

static Suite *
lazy_archive_suite (void)
{
  Suite *s = suite_create ("lazy-archive");
  TCase *tc = tcase_create ("lazy-archive");
  tcase_add_test (tc, test_libarchive_is_not_mapped_before_the_first_load);
  tcase_add_test (tc, test_the_loaded_functions_read_a_tar);
  tcase_add_test (tc, test_loading_again_keeps_the_same_functions);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (lazy_archive_suite)
