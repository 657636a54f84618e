/* The daemon's event loop: epoll for fds, a binary heap of one-shot timers
 * (the epoll_wait timeout is the nearest deadline), one signalfd for every
 * registered signal and one eventfd that wakes the loop for loop_post().
 *
 * Memory: a watch per fd (indexed by fd number), a heap slot per timer, a
 * node per queued post.  Nothing is preallocated beyond that.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include "cleanup.h"
#include "util/loop.h"

#include <berth/errors.h>

struct watch
{
  int fd;
  bool dead; /* removed while a batch of events was being dispatched */
  loop_fd_fn fn;
  void *data;
  struct watch *next_dead;
};

struct timer
{
  uint64_t deadline; /* CLOCK_MONOTONIC, ms */
  int64_t id;
  loop_fn fn;
  void *data;
};

struct post
{
  loop_fn fn;
  void *data;
  struct post *next;
};

struct sig
{
  int signo;
  loop_signal_fn fn;
  void *data;
};

struct loop
{
  int epfd;
  int eventfd;
  int sigfd;
  sigset_t sigmask;

  struct watch **watches; /* indexed by fd */
  size_t n_watches;
  struct watch *dead; /* freed after the current dispatch */

  struct timer *timers; /* binary min-heap on (deadline, id) */
  size_t n_timers, cap_timers;
  int64_t next_timer_id;

  struct sig *sigs;
  size_t n_sigs;

  pthread_mutex_t post_lock;
  struct post *posts, **posts_tail;

  atomic_bool quit;
};

/* Markers for the loop's own fds in epoll data (never valid watch pointers). */
static char eventfd_marker, sigfd_marker;

static uint64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

loop *
loop_new (void)
{
  loop *l = calloc (1, sizeof *l);
  if (l == NULL)
    return NULL;
  l->epfd = l->eventfd = l->sigfd = -1;
  l->next_timer_id = 1;
  l->posts_tail = &l->posts;
  sigemptyset (&l->sigmask);
  pthread_mutex_init (&l->post_lock, NULL);

  l->epfd = epoll_create1 (EPOLL_CLOEXEC);
  l->eventfd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (l->epfd < 0 || l->eventfd < 0)
    {
      loop_free (l);
      return NULL;
    }
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &eventfd_marker };
  if (epoll_ctl (l->epfd, EPOLL_CTL_ADD, l->eventfd, &ev) < 0)
    {
      loop_free (l);
      return NULL;
    }
  return l;
}

static void
free_dead (loop *l)
{
  while (l->dead)
    {
      struct watch *w = l->dead;
      l->dead = w->next_dead;
      free (w);
    }
}

void
loop_free (loop *l)
{
  if (l == NULL)
    return;
  for (size_t i = 0; i < l->n_watches; i++)
    free (l->watches[i]);
  free (l->watches);
  free_dead (l);
  free (l->timers);
  free (l->sigs);
  /* Posts that never ran are dropped: their owners are gone with the loop. */
  while (l->posts)
    {
      struct post *p = l->posts;
      l->posts = p->next;
      free (p);
    }
  if (l->sigfd >= 0)
    close (l->sigfd);
  if (l->eventfd >= 0)
    close (l->eventfd);
  if (l->epfd >= 0)
    close (l->epfd);
  pthread_mutex_destroy (&l->post_lock);
  free (l);
}

int
loop_add_fd (loop *l, int fd, uint32_t events, loop_fd_fn fn, void *data)
{
  if (fd < 0 || fn == NULL)
    return BERTH_E_INVALID;
  if ((size_t) fd >= l->n_watches)
    {
      size_t n = l->n_watches ? l->n_watches : 16;
      while (n <= (size_t) fd)
        n *= 2;
      struct watch **w = realloc (l->watches, n * sizeof *w);
      if (w == NULL)
        return BERTH_E_NOMEM;
      memset (w + l->n_watches, 0, (n - l->n_watches) * sizeof *w);
      l->watches = w;
      l->n_watches = n;
    }
  if (l->watches[fd])
    return BERTH_E_EXISTS;
  struct watch *w = calloc (1, sizeof *w);
  if (w == NULL)
    return BERTH_E_NOMEM;
  w->fd = fd;
  w->fn = fn;
  w->data = data;
  struct epoll_event ev = { .events = events, .data.ptr = w };
  if (epoll_ctl (l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    {
      int r = errno == ENOMEM ? BERTH_E_NOMEM : BERTH_E_INVALID;
      free (w);
      return r;
    }
  l->watches[fd] = w;
  return 0;
}

int
loop_mod_fd (loop *l, int fd, uint32_t events)
{
  if (fd < 0 || (size_t) fd >= l->n_watches || l->watches[fd] == NULL)
    return BERTH_E_NOTFOUND;
  struct epoll_event ev = { .events = events, .data.ptr = l->watches[fd] };
  if (epoll_ctl (l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
    return BERTH_E_INVALID;
  return 0;
}

/* The watch is not freed at once: an event for it may still sit in the batch
 * being dispatched, so it goes on the dead list until the batch is over. */
int
loop_del_fd (loop *l, int fd)
{
  if (fd < 0 || (size_t) fd >= l->n_watches || l->watches[fd] == NULL)
    return BERTH_E_NOTFOUND;
  struct watch *w = l->watches[fd];
  l->watches[fd] = NULL;
  epoll_ctl (l->epfd, EPOLL_CTL_DEL, fd, NULL);
  w->dead = true;
  w->next_dead = l->dead;
  l->dead = w;
  return 0;
}

static bool
timer_before (const struct timer *a, const struct timer *b)
{
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void
heap_swap (loop *l, size_t a, size_t b)
{
  struct timer t = l->timers[a];
  l->timers[a] = l->timers[b];
  l->timers[b] = t;
}

static void
heap_up (loop *l, size_t i)
{
  while (i > 0)
    {
      size_t p = (i - 1) / 2;
      if (!timer_before (&l->timers[i], &l->timers[p]))
        break;
      heap_swap (l, i, p);
      i = p;
    }
}

static void
heap_down (loop *l, size_t i)
{
  for (;;)
    {
      size_t c = 2 * i + 1, m = i;
      if (c < l->n_timers && timer_before (&l->timers[c], &l->timers[m]))
        m = c;
      if (c + 1 < l->n_timers && timer_before (&l->timers[c + 1], &l->timers[m]))
        m = c + 1;
      if (m == i)
        return;
      heap_swap (l, i, m);
      i = m;
    }
}

static void
heap_remove (loop *l, size_t i)
{
  l->n_timers--;
  if (i == l->n_timers)
    return;
  l->timers[i] = l->timers[l->n_timers];
  heap_down (l, i);
  heap_up (l, i);
}

int64_t
loop_add_timer (loop *l, uint64_t ms, loop_fn fn, void *data)
{
  if (fn == NULL)
    return BERTH_E_INVALID;
  if (l->n_timers == l->cap_timers)
    {
      size_t n = l->cap_timers ? l->cap_timers * 2 : 8;
      struct timer *t = realloc (l->timers, n * sizeof *t);
      if (t == NULL)
        return BERTH_E_NOMEM;
      l->timers = t;
      l->cap_timers = n;
    }
  struct timer *t = &l->timers[l->n_timers++];
  t->deadline = now_ms () + ms;
  t->id = l->next_timer_id++;
  t->fn = fn;
  t->data = data;
  int64_t id = t->id;
  heap_up (l, l->n_timers - 1); /* moves *t */
  return id;
}

/* Linear search: the daemon holds a handful of timers at a time. */
void
loop_cancel_timer (loop *l, int64_t id)
{
  for (size_t i = 0; i < l->n_timers; i++)
    if (l->timers[i].id == id)
      {
        heap_remove (l, i);
        return;
      }
}

int
loop_add_signal (loop *l, int signo, loop_signal_fn fn, void *data)
{
  if (fn == NULL || signo <= 0 || signo >= NSIG)
    return BERTH_E_INVALID;
  for (size_t i = 0; i < l->n_sigs; i++)
    if (l->sigs[i].signo == signo)
      return BERTH_E_EXISTS;
  struct sig *s = realloc (l->sigs, (l->n_sigs + 1) * sizeof *s);
  if (s == NULL)
    return BERTH_E_NOMEM;
  l->sigs = s;

  sigset_t mask = l->sigmask;
  sigaddset (&mask, signo);
  /* Threads started later (the worker pool) inherit the blocked mask;
   * workers also block every signal themselves. */
  pthread_sigmask (SIG_BLOCK, &mask, NULL);
  int fd = signalfd (l->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0)
    return BERTH_E_INVALID;
  if (l->sigfd < 0)
    {
      struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &sigfd_marker };
      if (epoll_ctl (l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        {
          close (fd);
          return BERTH_E_INVALID;
        }
      l->sigfd = fd;
    }
  l->sigmask = mask;
  l->sigs[l->n_sigs++] = (struct sig) { .signo = signo, .fn = fn, .data = data };
  return 0;
}

int
loop_post (loop *l, loop_fn fn, void *data)
{
  struct post *p = malloc (sizeof *p);
  if (p == NULL)
    return BERTH_E_NOMEM;
  p->fn = fn;
  p->data = data;
  p->next = NULL;
  pthread_mutex_lock (&l->post_lock);
  *l->posts_tail = p;
  l->posts_tail = &p->next;
  pthread_mutex_unlock (&l->post_lock);

  uint64_t one = 1;
  /* EAGAIN means the counter is already non-zero: the loop will wake. */
  while (write (l->eventfd, &one, sizeof one) < 0 && errno == EINTR)
    ;
  return 0;
}

static void
run_posts (loop *l)
{
  uint64_t v;
  while (read (l->eventfd, &v, sizeof v) < 0 && errno == EINTR)
    ;
  pthread_mutex_lock (&l->post_lock);
  struct post *p = l->posts;
  l->posts = NULL;
  l->posts_tail = &l->posts;
  pthread_mutex_unlock (&l->post_lock);
  while (p)
    {
      struct post *next = p->next;
      p->fn (p->data);
      free (p);
      p = next;
    }
}

static void
run_signals (loop *l)
{
  struct signalfd_siginfo si;
  while (read (l->sigfd, &si, sizeof si) == (ssize_t) sizeof si)
    for (size_t i = 0; i < l->n_sigs; i++)
      if (l->sigs[i].signo == (int) si.ssi_signo)
        {
          l->sigs[i].fn (l, (int) si.ssi_signo, l->sigs[i].data);
          break;
        }
}

static void
run_timers (loop *l)
{
  uint64_t now = now_ms ();
  /* Only timers due now; a callback that re-arms with 0 ms runs next turn. */
  int64_t last_id = l->next_timer_id;
  while (l->n_timers > 0 && l->timers[0].deadline <= now && l->timers[0].id < last_id && !l->quit)
    {
      struct timer t = l->timers[0];
      heap_remove (l, 0);
      t.fn (t.data);
    }
}

static int
next_timeout (loop *l)
{
  if (l->n_timers == 0)
    return -1;
  uint64_t now = now_ms ();
  if (l->timers[0].deadline <= now)
    return 0;
  uint64_t d = l->timers[0].deadline - now;
  return d > INT32_MAX ? INT32_MAX : (int) d;
}

int
loop_run (loop *l)
{
  struct epoll_event evs[32];
  l->quit = false;
  while (!l->quit)
    {
      int n = epoll_wait (l->epfd, evs, ARRAY_SIZE (evs), next_timeout (l));
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return BERTH_E_INTERNAL;
        }
      for (int i = 0; i < n && !l->quit; i++)
        {
          void *p = evs[i].data.ptr;
          if (p == &eventfd_marker)
            run_posts (l);
          else if (p == &sigfd_marker)
            run_signals (l);
          else
            {
              struct watch *w = p;
              if (!w->dead)
                w->fn (l, w->fd, evs[i].events, w->data);
            }
        }
      free_dead (l);
      if (!l->quit)
        run_timers (l);
    }
  return 0;
}

/* Safe from any thread: the flag is atomic and the eventfd wakes epoll. */
void
loop_quit (loop *l)
{
  l->quit = true;
  uint64_t one = 1;
  while (write (l->eventfd, &one, sizeof one) < 0 && errno == EINTR)
    ;
}
