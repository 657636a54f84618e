/* A small pool of threads for blocking work (disk, fork, shim calls).
 * work() runs on a worker thread; done() then runs on the loop thread.
 */
#ifndef BERTH_CORE_WORKERS_H
#define BERTH_CORE_WORKERS_H

#include <stddef.h>
#include "util/loop.h"

typedef struct workers workers;

workers *workers_new (loop *l, size_t nthreads);
/* Waits for queued work to finish, then joins the threads. */
void workers_free (workers *w);
int workers_submit (workers *w, void (*work) (void *data), void (*done) (void *data), void *data);

#endif
