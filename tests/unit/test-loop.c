#include <config.h>

#include <check.h>

#include "check-main.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "util/loop.h"

#include <berth/errors.h>

static void
quit_cb (void *data)
{
  loop_quit (data);
}

/* Guard so that a broken loop fails the test instead of hanging it. */
static void
fail_cb (void *data)
{
  ck_abort_msg ("%s", (const char *) data);
}

struct fdrec
{
  int reads;
  char buf[16];
};

static void
read_cb (loop *l, int fd, uint32_t revents, void *data)
{
  struct fdrec *r = data;
  ck_assert (revents & EPOLLIN);
  ssize_t n = read (fd, r->buf, sizeof r->buf - 1);
  ck_assert_int_gt (n, 0);
  r->buf[n] = '\0';
  r->reads++;
  loop_del_fd (l, fd);
  loop_quit (l);
}

START_TEST (test_fd_callback_runs_when_the_fd_is_readable)
{
  loop *l = loop_new ();
  int p[2];
  ck_assert_int_eq (pipe (p), 0);
  struct fdrec r = { 0 };
  ck_assert_int_eq (loop_add_fd (l, p[0], EPOLLIN, read_cb, &r), 0);
  ck_assert_int_eq (loop_add_fd (l, p[0], EPOLLIN, read_cb, &r), BERTH_E_EXISTS);
  ck_assert_int_eq (write (p[1], "hi", 2), 2);
  loop_add_timer (l, 2000, fail_cb, "fd never became readable");
  ck_assert_int_eq (loop_run (l), 0);
  ck_assert_int_eq (r.reads, 1);
  ck_assert_str_eq (r.buf, "hi");
  ck_assert_int_eq (loop_del_fd (l, p[0]), BERTH_E_NOTFOUND);
  close (p[0]);
  close (p[1]);
  loop_free (l);
}
END_TEST

struct order
{
  loop *l;
  int seq[8];
  int n;
};

static struct order ord;

static void
t1 (void *d)
{
  ord.seq[ord.n++] = 1;
}
static void
t2 (void *d)
{
  ord.seq[ord.n++] = 2;
}
static void
t3 (void *d)
{
  ord.seq[ord.n++] = 3;
  loop_quit (ord.l);
}

START_TEST (test_timers_fire_in_deadline_order_and_cancelled_ones_never_fire)
{
  loop *l = loop_new ();
  ord.l = l;
  ord.n = 0;
  int64_t a = loop_add_timer (l, 30, t3, NULL);
  int64_t b = loop_add_timer (l, 10, t2, NULL);
  int64_t c = loop_add_timer (l, 0, t1, NULL);
  int64_t d = loop_add_timer (l, 20, fail_cb, "cancelled timer fired");
  ck_assert (a > 0 && b > 0 && c > 0 && d > 0);
  loop_cancel_timer (l, d);
  struct timespec t0, t9;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq (loop_run (l), 0);
  clock_gettime (CLOCK_MONOTONIC, &t9);
  ck_assert_int_eq (ord.n, 3);
  ck_assert_int_eq (ord.seq[0], 1);
  ck_assert_int_eq (ord.seq[1], 2);
  ck_assert_int_eq (ord.seq[2], 3);
  long ms = (t9.tv_sec - t0.tv_sec) * 1000 + (t9.tv_nsec - t0.tv_nsec) / 1000000;
  ck_assert_int_ge (ms, 29);
  loop_free (l);
}
END_TEST

struct posted
{
  loop *l;
  pthread_t loop_thread;
  int count;
  int wrong_thread;
};

static void
posted_cb (void *data)
{
  struct posted *p = data;
  if (!pthread_equal (pthread_self (), p->loop_thread))
    p->wrong_thread++;
  if (++p->count == 1000)
    loop_quit (p->l);
}

static void *
poster (void *data)
{
  struct posted *p = data;
  for (int i = 0; i < 500; i++)
    ck_assert_int_eq (loop_post (p->l, posted_cb, p), 0);
  return NULL;
}

START_TEST (test_posts_from_other_threads_all_run_on_the_loop_thread)
{
  loop *l = loop_new ();
  struct posted p = { .l = l, .loop_thread = pthread_self () };
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    pthread_create (&th[i], NULL, poster, &p);
  loop_add_timer (l, 5000, fail_cb, "posts did not all arrive");
  ck_assert_int_eq (loop_run (l), 0);
  for (int i = 0; i < 2; i++)
    pthread_join (th[i], NULL);
  ck_assert_int_eq (p.count, 1000);
  ck_assert_int_eq (p.wrong_thread, 0);
  loop_free (l);
}
END_TEST

static int got_signal;

static void
sig_cb (loop *l, int signo, void *data)
{
  got_signal = signo;
  loop_quit (l);
}

START_TEST (test_signal_is_delivered_through_the_loop)
{
  loop *l = loop_new ();
  ck_assert_int_eq (loop_add_signal (l, SIGUSR1, sig_cb, NULL), 0);
  ck_assert_int_eq (loop_add_signal (l, SIGUSR2, sig_cb, NULL), 0);
  ck_assert_int_eq (loop_add_signal (l, SIGUSR1, sig_cb, NULL), BERTH_E_EXISTS);
  kill (getpid (), SIGUSR2);
  loop_add_timer (l, 2000, fail_cb, "signal never arrived");
  ck_assert_int_eq (loop_run (l), 0);
  ck_assert_int_eq (got_signal, SIGUSR2);
  loop_free (l);
}
END_TEST

static void
del_other_cb (loop *l, int fd, uint32_t revents, void *data)
{
  /* Both pipes are readable in the same batch: whichever runs first removes
   * the other, whose pending event must then be dropped, not dispatched. */
  int *other = data;
  static int calls;
  ck_assert_int_eq (++calls, 1);
  loop_del_fd (l, *other);
  loop_del_fd (l, fd);
  loop_add_timer (l, 20, quit_cb, l);
}

START_TEST (test_fd_removed_during_a_batch_gets_no_stale_event)
{
  loop *l = loop_new ();
  int a[2], b[2];
  ck_assert_int_eq (pipe (a), 0);
  ck_assert_int_eq (pipe (b), 0);
  ck_assert_int_eq (loop_add_fd (l, a[0], EPOLLIN, del_other_cb, &b[0]), 0);
  ck_assert_int_eq (loop_add_fd (l, b[0], EPOLLIN, del_other_cb, &a[0]), 0);
  ck_assert_int_eq (write (a[1], "x", 1), 1);
  ck_assert_int_eq (write (b[1], "x", 1), 1);
  loop_add_timer (l, 2000, fail_cb, "loop never quit");
  ck_assert_int_eq (loop_run (l), 0);
  loop_free (l);
}
END_TEST

static void *
quitter (void *data)
{
  usleep (20000);
  loop_quit (data);
  return NULL;
}

START_TEST (test_quit_from_another_thread_wakes_an_idle_loop)
{
  loop *l = loop_new ();
  pthread_t th;
  pthread_create (&th, NULL, quitter, l);
  loop_add_timer (l, 5000, fail_cb, "idle loop did not wake");
  ck_assert_int_eq (loop_run (l), 0);
  pthread_join (th, NULL);
  loop_free (l);
}
END_TEST

static Suite *
loop_suite (void)
{
  Suite *s = suite_create ("loop");
  TCase *tc = tcase_create ("loop");
  tcase_add_test (tc, test_fd_callback_runs_when_the_fd_is_readable);
  tcase_add_test (tc, test_timers_fire_in_deadline_order_and_cancelled_ones_never_fire);
  tcase_add_test (tc, test_posts_from_other_threads_all_run_on_the_loop_thread);
  tcase_add_test (tc, test_signal_is_delivered_through_the_loop);
  tcase_add_test (tc, test_fd_removed_during_a_batch_gets_no_stale_event);
  tcase_add_test (tc, test_quit_from_another_thread_wakes_an_idle_loop);
  suite_add_tcase (s, tc);
  return s;
}

CHECK_MAIN (loop_suite)
