/* Worker pool: a FIFO of jobs under one mutex, up to nthreads threads.
 *
 * Threads are started lazily (one more each time a job is queued and no
 * thread is idle, up to the limit), so an idle daemon carries no worker
 * stacks.  Workers block every signal: signals belong to the loop's
 * signalfd.  A finished job's done() is handed to the loop with loop_post().
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/workers.h"

#include <berth/errors.h>

#define WORKERS_DEFAULT 4

struct job
{
  void (*work) (void *data);
  void (*done) (void *data);
  void *data;
  struct job *next;
};

struct workers
{
  loop *l;
  size_t max_threads;
  pthread_t *threads;
  size_t n_threads;
  size_t idle;
  bool stopping;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct job *head, **tail;
};

workers *
workers_new (loop *l, size_t nthreads)
{
  workers *w = calloc (1, sizeof *w);
  if (w == NULL)
    return NULL;
  w->l = l;
  w->max_threads = nthreads ? nthreads : WORKERS_DEFAULT;
  w->threads = calloc (w->max_threads, sizeof *w->threads);
  if (w->threads == NULL)
    {
      free (w);
      return NULL;
    }
  w->tail = &w->head;
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->cond, NULL);
  return w;
}

static void
job_done (void *data)
{
  struct job *j = data;
  j->done (j->data);
  free (j);
}

static void *
worker_main (void *arg)
{
  workers *w = arg;
  sigset_t all;
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, NULL);

  pthread_mutex_lock (&w->lock);
  for (;;)
    {
      while (w->head == NULL && !w->stopping)
        {
          w->idle++;
          pthread_cond_wait (&w->cond, &w->lock);
          w->idle--;
        }
      if (w->head == NULL)
        break; /* stopping and drained */
      struct job *j = w->head;
      w->head = j->next;
      if (w->head == NULL)
        w->tail = &w->head;
      pthread_mutex_unlock (&w->lock);

      j->work (j->data);
      /* If the post cannot be queued (out of memory) done() is lost; there
       * is no better place to report it from a worker thread. */
      if (j->done == NULL || loop_post (w->l, job_done, j) < 0)
        free (j);

      pthread_mutex_lock (&w->lock);
    }
  pthread_mutex_unlock (&w->lock);
  return NULL;
}

int
workers_submit (workers *w, void (*work) (void *data), void (*done) (void *data), void *data)
{
  if (work == NULL)
    return BERTH_E_INVALID;
  struct job *j = calloc (1, sizeof *j);
  if (j == NULL)
    return BERTH_E_NOMEM;
  j->work = work;
  j->done = done;
  j->data = data;

  pthread_mutex_lock (&w->lock);
  if (w->stopping)
    {
      pthread_mutex_unlock (&w->lock);
      free (j);
      return BERTH_E_UNAVAILABLE;
    }
  *w->tail = j;
  w->tail = &j->next;
  if (w->idle == 0 && w->n_threads < w->max_threads)
    {
      if (pthread_create (&w->threads[w->n_threads], NULL, worker_main, w) == 0)
        w->n_threads++;
      if (w->n_threads == 0)
        {
          /* No thread at all can run it: take the job back. */
          w->head = NULL;
          w->tail = &w->head;
          pthread_mutex_unlock (&w->lock);
          free (j);
          return BERTH_E_NOMEM;
        }
    }
  else
    pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
  return 0;
}

/* Queued jobs still run (threads drain the queue before they exit); their
 * done() callbacks are posted to the loop and run on its next turn. */
void
workers_free (workers *w)
{
  if (w == NULL)
    return;
  pthread_mutex_lock (&w->lock);
  w->stopping = true;
  pthread_cond_broadcast (&w->cond);
  pthread_mutex_unlock (&w->lock);
  for (size_t i = 0; i < w->n_threads; i++)
    pthread_join (w->threads[i], NULL);
  free (w->threads);
  pthread_cond_destroy (&w->cond);
  pthread_mutex_destroy (&w->lock);
  free (w);
}
