/* include/berth/failpoint.h: BERTH_FAILPOINTS parsing and actions.  Each
 * test runs in its own forked process (Check's fork mode), so each sets the
 * variable before the first BERTH_FAILPOINT of the process parses it. */
#include <config.h>

#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <berth/failpoint.h>

#include "check-main.h"

static void
arm (const char *value)
{
  ck_assert_int_eq (setenv (BERTH_FAILPOINTS_ENV, value, 1), 0);
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST (test_unset_variable_does_nothing)
{
  unsetenv (BERTH_FAILPOINTS_ENV);
  for (int i = 0; i < 1000; i++)
    BERTH_FAILPOINT ("anything");
  ck_assert (!berth_failpoints_.any);
}
END_TEST

START_TEST (test_named_point_kills_the_process)
{
  arm ("other,victim");
  BERTH_FAILPOINT ("other-not-this");
  BERTH_FAILPOINT ("victim");
  ck_abort_msg ("still alive after the failpoint");
}
END_TEST

START_TEST (test_exit_action_exits_1)
{
  arm ("p=exit");
  BERTH_FAILPOINT ("p");
}
END_TEST

START_TEST (test_nth_hit_fires_only_then)
{
  arm ("p@3=exit");
  BERTH_FAILPOINT ("p");
  BERTH_FAILPOINT ("p");
  BERTH_FAILPOINT ("q");
  BERTH_FAILPOINT ("p"); /* the third hit of p */
  ck_abort_msg ("the third hit did not fire");
}
END_TEST

START_TEST (test_sleep_action_sleeps_and_returns)
{
  arm ("p=sleep:120");
  double t0 = now_s ();
  BERTH_FAILPOINT ("p");
  ck_assert (now_s () - t0 >= 0.11);
}
END_TEST

START_TEST (test_malformed_entries_are_ignored)
{
  /* Each is refused; none may fire or crash the parser. */
  arm ("p@0,p@x=kill,p=explode,p=sleep:,p=sleep:9999999,bad name,@3,=kill,"
       "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp,p=sleep:-1,,,");
  for (int i = 0; i < 5; i++)
    BERTH_FAILPOINT ("p");
  ck_assert_uint_eq (berth_failpoints_.n, 0);
}
END_TEST

START_TEST (test_at_most_32_entries_are_kept)
{
  char v[64 * 40] = "";
  for (int i = 0; i < 40; i++)
    snprintf (v + strlen (v), sizeof v - strlen (v), "p%d=sleep:0,", i);
  arm (v);
  BERTH_FAILPOINT ("p0");
  ck_assert_uint_eq (berth_failpoints_.n, BERTH_FAILPOINT_MAX);
}
END_TEST

static Suite *
failpoint_suite (void)
{
  Suite *s = suite_create ("failpoint");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_unset_variable_does_nothing);
  tcase_add_test_raise_signal (tc, test_named_point_kills_the_process, SIGKILL);
  tcase_add_exit_test (tc, test_exit_action_exits_1, 1);
  tcase_add_exit_test (tc, test_nth_hit_fires_only_then, 1);
  tcase_add_test (tc, test_sleep_action_sleeps_and_returns);
  tcase_add_test (tc, test_malformed_entries_are_ignored);
  tcase_add_test (tc, test_at_most_32_entries_are_kept);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (failpoint_suite)
