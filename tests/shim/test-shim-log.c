/* Unit tests of berth-shim's CRI log writer (shim/log.c) and of the parser
 * of the runtime's failure reason (shim/runtime-msg.c). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-main.h"
#include "shim.h"

static char dir[64];
static char path[128];

static void
setup (void)
{
  snprintf (dir, sizeof dir, "/tmp/test-shim-log.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/logs/c/container.log", dir);
}

static void
teardown (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq (system (cmd), 0);
}

static char *
slurp (const char *p)
{
  static char buf[1 << 17];
  int fd = open (p, O_RDONLY);
  if (fd < 0)
    return NULL;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  buf[n < 0 ? 0 : n] = '\0';
  return buf;
}

START_TEST (test_timestamp_is_rfc3339nano_without_trailing_zeros)
{
  char b[64];
  format_rfc3339nano (b, sizeof b, 1700000000LL * 1000000000 + 120000000);
  ck_assert_str_eq (b, "2023-11-14T22:13:20.12Z");
  format_rfc3339nano (b, sizeof b, 1700000000LL * 1000000000);
  ck_assert_str_eq (b, "2023-11-14T22:13:20Z");
  format_rfc3339nano (b, sizeof b, 1700000000LL * 1000000000 + 1);
  ck_assert_str_eq (b, "2023-11-14T22:13:20.000000001Z");
}
END_TEST

START_TEST (test_lines_become_full_records_and_the_tail_waits)
{
  struct cri_log l = { .fd = -1, .path = path };
  ck_assert_int_eq (cri_log_open (&l), 0);
  char line[SHIM_CRI_LINE_MAX];
  size_t len = 0;
  cri_log_feed (&l, "stdout", line, &len, "a\nbc", 4, false);
  ck_assert_uint_eq (len, 2);
  cri_log_feed (&l, "stderr", line, &len, "d\n", 2, false);
  ck_assert_uint_eq (len, 0);
  cri_log_feed (&l, "stdout", line, &len, "tail", 4, true);
  cri_log_close (&l);
  char *t = slurp (path);
  ck_assert_ptr_nonnull (strstr (t, "Z stdout F a\n"));
  ck_assert_ptr_nonnull (strstr (t, "Z stderr F bcd\n"));
  ck_assert_ptr_nonnull (strstr (t, "Z stdout F tail\n"));
}
END_TEST

START_TEST (test_a_long_line_is_split_into_partial_records)
{
  struct cri_log l = { .fd = -1, .path = path };
  ck_assert_int_eq (cri_log_open (&l), 0);
  size_t n = SHIM_CRI_LINE_MAX + 10;
  char *data = malloc (n + 1);
  memset (data, 'x', n);
  data[n] = '\n';
  char line[SHIM_CRI_LINE_MAX];
  size_t len = 0;
  cri_log_feed (&l, "stdout", line, &len, data, n + 1, false);
  cri_log_close (&l);
  free (data);
  char *t = slurp (path);
  char *p = strstr (t, " stdout P ");
  ck_assert_ptr_nonnull (p);
  char *nl = strchr (p, '\n');
  ck_assert_uint_eq ((size_t) (nl - p), strlen (" stdout P ") + SHIM_CRI_LINE_MAX);
  ck_assert_ptr_nonnull (strstr (nl, " stdout F xxxxxxxxxx\n"));
}
END_TEST

START_TEST (test_rotation_keeps_max_files)
{
  struct cri_log l = { .fd = -1, .path = path, .max_size = 100, .max_files = 2 };
  ck_assert_int_eq (cri_log_open (&l), 0);
  char line[SHIM_CRI_LINE_MAX];
  size_t len = 0;
  for (int i = 0; i < 20; i++)
    {
      char msg[64];
      int m = snprintf (msg, sizeof msg, "message number %02d\n", i);
      cri_log_feed (&l, "stdout", line, &len, msg, (size_t) m, false);
    }
  cri_log_close (&l);
  char p1[160], p2[160], p3[160];
  snprintf (p1, sizeof p1, "%s.1", path);
  snprintf (p2, sizeof p2, "%s.2", path);
  snprintf (p3, sizeof p3, "%s.3", path);
  struct stat st;
  ck_assert_int_eq (stat (path, &st), 0);
  ck_assert_int_le (st.st_size, 100);
  ck_assert_int_eq (stat (p1, &st), 0);
  ck_assert_int_eq (stat (p2, &st), 0);
  ck_assert_int_ne (stat (p3, &st), 0);
  ck_assert_ptr_nonnull (strstr (slurp (path), "message number 19"));
  ck_assert_ptr_nonnull (strstr (slurp (p1), "message number 1"));
}
END_TEST

START_TEST (test_runc_json_log_gives_the_last_error)
{
  const char log[] = "{\"level\":\"warning\",\"msg\":\"a warning\",\"time\":\"x\"}\n"
                     "{\"level\":\"error\",\"msg\":\"runc create failed: unable to start container process: exec: "
                     "\\\"/nope\\\": stat /nope: no such file or directory\",\"time\":\"2024\"}\n";
  char msg[256];
  ck_assert (runtime_msg_from_json_log (log, sizeof log - 1, msg, sizeof msg));
  ck_assert_str_eq (msg, "runc create failed: unable to start container process: exec: \"/nope\": stat /nope: no "
                         "such file or directory");
}
END_TEST

START_TEST (test_hostile_runtime_text_is_bounded)
{
  char msg[16];
  const char log[] = "{\"level\":\"error\",\"msg\":\"\\u00e9\\u4e2d aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
  ck_assert (runtime_msg_from_json_log (log, sizeof log - 1, msg, sizeof msg));
  ck_assert_uint_lt (strlen (msg), sizeof msg);
  ck_assert (!runtime_msg_from_json_log ("{\"level\":\"error\"}", 17, msg, sizeof msg));
  ck_assert (!runtime_msg_from_json_log ("\"msg\":\"", 7, msg, sizeof msg));
  char big[64];
  const char logrus[] = "time=\"t\" level=error msg=\"boom \\\"x\\\"\"\n";
  ck_assert (runtime_msg_from_stderr (logrus, sizeof logrus - 1, big, sizeof big));
  ck_assert_str_eq (big, "boom \"x\"");
  ck_assert (runtime_msg_from_stderr ("  plain\nreason\n", 15, big, sizeof big));
  ck_assert_str_eq (big, "plain;reason");
  ck_assert (!runtime_msg_from_stderr ("", 0, big, sizeof big));
}
END_TEST

static Suite *
shim_log_suite (void)
{
  Suite *s = suite_create ("shim-log");
  TCase *tc = tcase_create ("log");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_timestamp_is_rfc3339nano_without_trailing_zeros);
  tcase_add_test (tc, test_lines_become_full_records_and_the_tail_waits);
  tcase_add_test (tc, test_a_long_line_is_split_into_partial_records);
  tcase_add_test (tc, test_rotation_keeps_max_files);
  tcase_add_test (tc, test_runc_json_log_gives_the_last_error);
  tcase_add_test (tc, test_hostile_runtime_text_is_bounded);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (shim_log_suite)
