/* The monitor thread of libberth-shimrt: one `subscribe` connection per
 * shim in one epoll set.  Exit and OOM messages become host->publish
 * events; a hang-up that no delete asked for means the shim is gone
 * (shimrt_task_vanished).  Only this thread reads the subscriptions; the
 * connection is closed under the lock by whoever stops watching first, and
 * the thread reads only while holding the lock (recv is non-blocking), so
 * an fd is never used after another thread closed it. */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "shimrt-private.h"

#define MAX_BATCH 32

static struct shimrt_task *
find_serial (struct shimrt *s, uint64_t serial)
{
  for (struct shimrt_task *t = s->tasks; t; t = t->next)
    if (t->serial == serial)
      return t;
  return NULL;
}

static void
close_sub_locked (struct shimrt *s, struct shimrt_task *t)
{
  if (t->sub_fd < 0)
    return;
  epoll_ctl (s->epfd, EPOLL_CTL_DEL, t->sub_fd, NULL);
  close (t->sub_fd);
  t->sub_fd = -1;
}

static void
publish_exit (struct shimrt *s, struct shimrt_task *t, const char *exec_id, int32_t pid, uint32_t status, int64_t at)
{
  char spid[16], sstatus[16], sat[32];
  snprintf (spid, sizeof spid, "%" PRId32, pid);
  snprintf (sstatus, sizeof sstatus, "%" PRIu32, status);
  snprintf (sat, sizeof sat, "%" PRId64, at);
  const char *fields[]
      = { "container_id", t->id, "id", exec_id && *exec_id ? exec_id : t->id, "pid", spid, "exit_status", sstatus,
          "exited_at",    sat,   NULL };
  if (s->host->publish (s->plugin, t->ns, "/tasks/exit", fields) < 0)
    s->host->log (s->plugin, BERTH_LOG_WARNING, "%s: could not publish the exit of %s/%s", s->name, t->ns, t->id);
}

/* One message of the event stream. */
static void
handle_event (struct shimrt *s, struct shimrt_task *t, struct shim_msg *m)
{
  if (m->n >= 5 && strcmp (m->f[0], "exit") == 0)
    {
      const char *exec_id = m->f[1];
      char *end;
      long long pid = strtoll (m->f[2], &end, 10);
      unsigned long long status = strtoull (m->f[3], NULL, 10);
      long long at = strtoll (m->f[4], NULL, 10);
      bool init = *exec_id == '\0';
      bool dup = false;
      pthread_mutex_lock (&s->lock);
      if (init)
        {
          dup = t->init_exited && t->exited_at == at;
          t->init_exited = true;
          t->exit_status = (uint32_t)status;
          t->exited_at = at;
          pthread_cond_broadcast (&s->cond);
        }
      pthread_mutex_unlock (&s->lock);
      if (!dup)
        publish_exit (s, t, exec_id, (int32_t)pid, (uint32_t)status, at);
    }
  else if (m->n >= 1 && strcmp (m->f[0], "oom") == 0)
    {
      const char *fields[] = { "container_id", t->id, NULL };
      s->host->publish (s->plugin, t->ns, "/tasks/oom", fields);
    }
  /* "ok" answering subscribe, and anything newer, are ignored. */
}

static void
handle_ready (struct shimrt *s, uint64_t serial, uint32_t events)
{
  struct shim_msg msgs[MAX_BATCH];
  size_t n = 0;
  bool hup = false, deleting = false;
  pthread_mutex_lock (&s->lock);
  struct shimrt_task *t = find_serial (s, serial);
  if (t == NULL || t->sub_fd < 0)
    {
      pthread_mutex_unlock (&s->lock);
      return;
    }
  t->refs++;
  while (n < MAX_BATCH)
    {
      ssize_t len = recv (t->sub_fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
      if (len < 0 && (errno == EAGAIN || errno == EINTR))
        break;
      if (len <= 0 || len > 65536)
        {
          hup = true;
          break;
        }
      msgs[n].buf = malloc ((size_t)len + 1);
      if (msgs[n].buf == NULL)
        break;
      ssize_t got = recv (t->sub_fd, msgs[n].buf, (size_t)len, MSG_DONTWAIT);
      if (got <= 0)
        {
          free (msgs[n].buf);
          hup = true;
          break;
        }
      /* Same splitting as replies. */
      struct shim_msg *m = &msgs[n++];
      m->buf[got] = '\0';
      size_t k = 0, off = 0;
      while (k < sizeof m->f / sizeof m->f[0])
        {
          m->f[k++] = m->buf + off;
          size_t l = strnlen (m->buf + off, (size_t)got - off);
          if (off + l >= (size_t)got)
            break;
          off += l + 1;
        }
      m->n = k;
      for (size_t i = k; i < sizeof m->f / sizeof m->f[0]; i++)
        m->f[i] = "";
    }
  if (n == 0 && (events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN))
    hup = true;
  if (hup)
    {
      close_sub_locked (s, t);
      deleting = t->deleting || t->gone;
    }
  pthread_mutex_unlock (&s->lock);

  for (size_t i = 0; i < n; i++)
    {
      handle_event (s, t, &msgs[i]);
      free (msgs[i].buf);
    }
  if (hup && !deleting)
    {
      s->host->log (s->plugin, BERTH_LOG_WARNING, "%s: the shim of %s/%s went away", s->name, t->ns, t->id);
      shimrt_task_vanished (s, t);
    }
  shimrt_task_unref (s, t);
}

static void *
monitor_main (void *data)
{
  struct shimrt *s = data;
  for (;;)
    {
      struct epoll_event ev[16];
      int n = epoll_wait (s->epfd, ev, 16, -1);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          s->host->log (s->plugin, BERTH_LOG_ERROR, "%s: epoll_wait: %s; exits are no longer watched", s->name,
                        strerror (errno));
          return NULL;
        }
      for (int i = 0; i < n; i++)
        {
          if (ev[i].data.u64 == 0)
            return NULL;
          handle_ready (s, ev[i].data.u64, ev[i].events);
        }
    }
}

int
shimrt_monitor_start (struct shimrt *s, berth_error *err)
{
  s->epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (s->epfd < 0)
    return s->host->error_set (err, BERTH_E_INTERNAL, errno, "%s: epoll_create1", s->name);
  s->wakefd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wakefd < 0)
    return s->host->error_set (err, BERTH_E_INTERNAL, errno, "%s: eventfd", s->name);
  struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
  if (epoll_ctl (s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0)
    return s->host->error_set (err, BERTH_E_INTERNAL, errno, "%s: epoll_ctl", s->name);
  /* The host's signals (SIGTERM, SIGHUP...) are the host's business: the
   * thread starts with every signal blocked, whatever mask the caller has. */
  sigset_t all, old;
  sigfillset (&all);
  pthread_sigmask (SIG_BLOCK, &all, &old);
  int r = pthread_create (&s->monitor, NULL, monitor_main, s);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (r != 0)
    return s->host->error_set (err, BERTH_E_INTERNAL, r, "%s: starting the monitor thread", s->name);
  s->monitor_started = true;
  return 0;
}

void
shimrt_monitor_stop (struct shimrt *s)
{
  if (s->monitor_started)
    {
      uint64_t one = 1;
      if (write (s->wakefd, &one, sizeof one) < 0)
        s->host->log (s->plugin, BERTH_LOG_WARNING, "%s: could not wake the monitor", s->name);
      pthread_join (s->monitor, NULL);
      s->monitor_started = false;
    }
  pthread_mutex_lock (&s->lock);
  for (struct shimrt_task *t = s->tasks; t; t = t->next)
    close_sub_locked (s, t);
  pthread_mutex_unlock (&s->lock);
  if (s->wakefd >= 0)
    close (s->wakefd);
  if (s->epfd >= 0)
    close (s->epfd);
  s->wakefd = s->epfd = -1;
}

int
shimrt_monitor_watch (struct shimrt *s, struct shimrt_task *t)
{
  int fd = shim_connect (t->dir);
  if (fd < 0)
    return fd;
  const char *req[] = { "subscribe" };
  int r = shim_send (fd, req, 1);
  if (r < 0)
    {
      close (fd);
      return r;
    }
  pthread_mutex_lock (&s->lock);
  close_sub_locked (s, t);
  t->sub_fd = fd;
  struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = t->serial };
  if (epoll_ctl (s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
    {
      r = -errno;
      close (fd);
      t->sub_fd = -1;
    }
  pthread_mutex_unlock (&s->lock);
  return r;
}

void
shimrt_monitor_unwatch (struct shimrt *s, struct shimrt_task *t)
{
  pthread_mutex_lock (&s->lock);
  close_sub_locked (s, t);
  pthread_mutex_unlock (&s->lock);
}
