/* The daemon's single event loop (epoll), the thread that owns every client
 * connection (nghttp2 sessions are not thread-safe).  Everything here except
 * loop_post() must be called on the loop thread.
 */
#ifndef BERTH_CORE_LOOP_H
#define BERTH_CORE_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

typedef struct loop loop;

typedef void (*loop_fd_fn) (loop *l, int fd, uint32_t revents, void *data);
typedef void (*loop_fn) (void *data);
typedef void (*loop_signal_fn) (loop *l, int signo, void *data);

loop *loop_new (void);
void loop_free (loop *l);

/* events are EPOLLIN/EPOLLOUT/...; the callback gets the epoll revents. */
int loop_add_fd (loop *l, int fd, uint32_t events, loop_fd_fn fn, void *data);
int loop_mod_fd (loop *l, int fd, uint32_t events);
int loop_del_fd (loop *l, int fd);

/* One-shot timer; returns an id > 0 or a negative BERTH_E_* code. */
int64_t loop_add_timer (loop *l, uint64_t ms, loop_fn fn, void *data);
void loop_cancel_timer (loop *l, int64_t id);

/* Deliver signo through signalfd.  The signal is blocked in the calling
 * thread and so in every thread started after this call (worker threads
 * block all signals themselves): register signals before starting other
 * threads, or block them there too. */
int loop_add_signal (loop *l, int signo, loop_signal_fn fn, void *data);

/* Thread-safe: run fn(data) on the loop thread soon (eventfd wake-up).
 * Posts still queued when loop_free() runs are dropped without running. */
int loop_post (loop *l, loop_fn fn, void *data);

/* Run until loop_quit(); returns 0 or a negative BERTH_E_* code.  May be
 * called again after it returned. */
int loop_run (loop *l);
/* Thread-safe. */
void loop_quit (loop *l);

#endif
