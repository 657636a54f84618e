/* A small pool of threads for blocking work (disk, fork, shim calls).
 * work() runs on a worker thread; done() then runs on the loop thread.
 */
#ifndef BERTH_CORE_WORKERS_H
#define BERTH_CORE_WORKERS_H

#include <stddef.h>
#include "util/loop.h"

typedef struct workers workers;

/* nthreads 0 picks the default (4).  Threads start on demand, up to
 * nthreads, so an idle pool costs no stacks. */
workers *workers_new (loop *l, size_t nthreads);
/* Waits for queued work to finish, then joins the threads.  The done()
 * callbacks of that work are posted: run the loop once more before
 * loop_free() if they must run. */
void workers_free (workers *w);
/* done may be NULL.  Returns 0, BERTH_E_NOMEM, or BERTH_E_UNAVAILABLE while
 * the pool is being freed. */
int workers_submit (workers *w, void (*work) (void *data), void (*done) (void *data), void *data);

#endif
