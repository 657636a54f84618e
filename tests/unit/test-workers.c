#include <config.h>

#include <check.h>

#include "check-main.h"
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "util/loop.h"
#include "util/workers.h"

static void
fail_cb (void *data)
{
  ck_abort_msg ("%s", (const char *) data);
}

struct job
{
  loop *l;
  pthread_t loop_thread;
  int *done_count;
  int total;
  atomic_int *worked;
  int work_on_loop_thread;
  int done_off_loop_thread;
};

static void
work (void *data)
{
  struct job *j = data;
  if (pthread_equal (pthread_self (), j->loop_thread))
    j->work_on_loop_thread = 1;
  usleep (1000);
  atomic_fetch_add (j->worked, 1);
}

static void
done (void *data)
{
  struct job *j = data;
  if (!pthread_equal (pthread_self (), j->loop_thread))
    j->done_off_loop_thread = 1;
  if (++*j->done_count == j->total)
    loop_quit (j->l);
}

START_TEST (test_work_runs_off_the_loop_and_done_runs_on_it)
{
  loop *l = loop_new ();
  workers *w = workers_new (l, 3);
  ck_assert_ptr_nonnull (w);
  enum { N = 50 };
  static struct job jobs[N];
  int done_count = 0;
  atomic_int worked = 0;
  for (int i = 0; i < N; i++)
    {
      jobs[i] = (struct job) { .l = l, .loop_thread = pthread_self (), .done_count = &done_count,
                               .total = N, .worked = &worked };
      ck_assert_int_eq (workers_submit (w, work, done, &jobs[i]), 0);
    }
  loop_add_timer (l, 10000, fail_cb, "not every done() ran");
  ck_assert_int_eq (loop_run (l), 0);
  ck_assert_int_eq (done_count, N);
  ck_assert_int_eq (atomic_load (&worked), N);
  for (int i = 0; i < N; i++)
    {
      ck_assert_int_eq (jobs[i].work_on_loop_thread, 0);
      ck_assert_int_eq (jobs[i].done_off_loop_thread, 0);
    }
  workers_free (w);
  loop_free (l);
}
END_TEST

static void
slow_work (void *data)
{
  usleep (20000);
  atomic_fetch_add ((atomic_int *) data, 1);
}

START_TEST (test_free_waits_for_queued_work)
{
  loop *l = loop_new ();
  workers *w = workers_new (l, 2);
  atomic_int n = 0;
  for (int i = 0; i < 6; i++)
    ck_assert_int_eq (workers_submit (w, slow_work, NULL, &n), 0);
  workers_free (w);
  ck_assert_int_eq (atomic_load (&n), 6);
  loop_free (l);
}
END_TEST

static atomic_int concurrent, peak;

static void
count_work (void *data)
{
  int c = atomic_fetch_add (&concurrent, 1) + 1;
  int p = atomic_load (&peak);
  while (c > p && !atomic_compare_exchange_weak (&peak, &p, c))
    ;
  usleep (20000);
  atomic_fetch_sub (&concurrent, 1);
}

START_TEST (test_pool_never_runs_more_threads_than_asked)
{
  loop *l = loop_new ();
  workers *w = workers_new (l, 2);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq (workers_submit (w, count_work, NULL, NULL), 0);
  workers_free (w);
  ck_assert_int_eq (atomic_load (&peak), 2);
  loop_free (l);
}
END_TEST

static Suite *
workers_suite (void)
{
  Suite *s = suite_create ("workers");
  TCase *tc = tcase_create ("workers");
  tcase_set_timeout (tc, 30);
  tcase_add_test (tc, test_work_runs_off_the_loop_and_done_runs_on_it);
  tcase_add_test (tc, test_free_waits_for_queued_work);
  tcase_add_test (tc, test_pool_never_runs_more_threads_than_asked);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (workers_suite)
