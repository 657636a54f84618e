/* libberth-shimrt: struct berth_runtime_ops on top of berth-shim.
 *
 * One berth-shim per task (include/berth/shimrt.h).  The library keeps
 * nothing in memory that a restart of berthd needs: each task's directory
 * <state_dir>/<ns>/<id>/ holds `meta` (written here before the shim
 * starts: bundle, runtime binary and args, io), and the shim's own files
 * (shim.sock, shim.pid, init.pid, exit, runtime/).  berth_shimrt_new walks
 * these directories and reconnects.
 *
 * Deadlines: every shim call but `wait` gives up after call_timeout_ms
 * (BERTH_E_DEADLINE; `state` answers UNKNOWN instead), so a stuck shim
 * never holds a worker thread.  `wait` blocks until the exit, the shim's
 * disappearance or the ctx's cancellation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <berth/failpoint.h>
#include "shimrt-private.h"

#define META_MAX (64u << 10)

extern char **environ;

int64_t
shimrt_now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *path_join (const char *fmt, ...) BERTH_PRINTF (1, 2);
static char *
path_join (const char *fmt, ...)
{
  char *p = NULL;
  va_list ap;
  va_start (ap, fmt);
  int n = vasprintf (&p, fmt, ap);
  va_end (ap);
  return n < 0 ? NULL : p;
}

static void
strv_free (char **v)
{
  for (char **i = v; v && *i; i++)
    free (*i);
  free (v);
}

static char **
strv_dup (const char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  char **r = calloc (n + 1, sizeof *r);
  if (r == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if ((r[i] = strdup (v[i])) == NULL)
      {
        strv_free (r);
        return NULL;
      }
  return r;
}

static int
nomem (struct shimrt *s, berth_error *err)
{
  return s->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
}

/* containerd's identifiers: alphanumerics separated by single [._-], at
 * most 76 characters.  They become path components here. */
static bool
valid_name (const char *s)
{
  size_t n = s ? strlen (s) : 0;
  if (n == 0 || n > 76)
    return false;
  for (size_t i = 0; i < n; i++)
    {
      char c = s[i];
      bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      bool sep = c == '.' || c == '_' || c == '-';
      if (!alnum && !(sep && i > 0 && i + 1 < n && !(s[i - 1] == '.' || s[i - 1] == '_' || s[i - 1] == '-')))
        return false;
    }
  return true;
}

/* ---- tasks ------------------------------------------------------------- */

static void
task_free (struct shimrt_task *t)
{
  if (t == NULL)
    return;
  if (t->sub_fd >= 0)
    close (t->sub_fd);
  free (t->ns);
  free (t->id);
  free (t->dir);
  free (t->binary);
  strv_free (t->args);
  free (t);
}

void
shimrt_task_unref (struct shimrt *s, struct shimrt_task *t)
{
  if (t == NULL)
    return;
  pthread_mutex_lock (&s->lock);
  bool last = --t->refs == 0;
  pthread_mutex_unlock (&s->lock);
  if (last)
    task_free (t);
}

static struct shimrt_task *
task_new (struct shimrt *s, const char *ns, const char *id, const char *binary, const char *const *args, uint32_t flags)
{
  struct shimrt_task *t = calloc (1, sizeof *t);
  if (t == NULL)
    return NULL;
  t->sub_fd = -1;
  t->refs = 1;
  t->owner = s;
  t->flags = flags;
  t->ns = strdup (ns);
  t->id = strdup (id);
  t->dir = path_join ("%s/%s/%s", s->state_dir, ns, id);
  t->binary = strdup (binary);
  t->args = strv_dup (args);
  if (!t->ns || !t->id || !t->dir || !t->binary || !t->args)
    {
      task_free (t);
      return NULL;
    }
  return t;
}

/* Add t to the table (the table holds one reference). */
static void
task_insert_locked (struct shimrt *s, struct shimrt_task *t)
{
  t->serial = ++s->next_serial;
  t->next = s->tasks;
  s->tasks = t;
}

static void
task_remove (struct shimrt *s, struct shimrt_task *t)
{
  pthread_mutex_lock (&s->lock);
  for (struct shimrt_task **p = &s->tasks; *p; p = &(*p)->next)
    if (*p == t)
      {
        *p = t->next;
        t->next = NULL;
        t->refs--; /* the table's reference; the caller still holds one */
        break;
      }
  pthread_mutex_unlock (&s->lock);
}

static struct shimrt_task *
task_find_locked (struct shimrt *s, const char *ns, const char *id)
{
  for (struct shimrt_task *t = s->tasks; t; t = t->next)
    if (strcmp (t->ns, ns) == 0 && strcmp (t->id, id) == 0)
      return t;
  return NULL;
}

/* The task named by ctx's namespace and id, referenced; NOTFOUND otherwise. */
static int
task_get (struct shimrt *s, berth_ctx *ctx, const char *id, struct shimrt_task **ret, berth_error *err)
{
  const char *ns = ctx ? s->host->ctx_get (ctx, "namespace") : NULL;
  if (ns == NULL || *ns == '\0')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "%s: the call carries no namespace", s->name);
  if (id == NULL || *id == '\0')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "%s: no task id", s->name);
  pthread_mutex_lock (&s->lock);
  struct shimrt_task *t = task_find_locked (s, ns, id);
  if (t)
    t->refs++;
  pthread_mutex_unlock (&s->lock);
  if (t == NULL)
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "task %s not found in namespace %s", id, ns);
  *ret = t;
  return 0;
}

static void
task_unrefp (struct shimrt_task **t)
{
  if (*t)
    shimrt_task_unref ((*t)->owner, *t);
}
#define _cleanup_task_ __attribute__ ((cleanup (task_unrefp)))

static bool
task_gone (struct shimrt *s, struct shimrt_task *t)
{
  pthread_mutex_lock (&s->lock);
  bool gone = t->gone;
  pthread_mutex_unlock (&s->lock);
  return gone;
}

/* ---- calls ------------------------------------------------------------- */

/* The longest a `state` call may take, whatever call_timeout_ms says. */
#define STATE_TIMEOUT_MS 2000

static uint32_t
timeout_ms (struct shimrt *s)
{
  return s->timeout_ms ? s->timeout_ms : 10000;
}

static int32_t read_pid (const char *dir, const char *name);

/* Send one request to t's shim and read the reply within the call deadline
 * (deadline_ms 0: none, ctx polled for cancellation).  A reply "err" becomes
 * its code and message; *ret holds the "ok" reply.  A shim that does not
 * take the request (stopped, its backlog or queue full) or does not answer
 * in time gives BERTH_E_DEADLINE with a message naming the shim's pid, so
 * that whoever reads it knows which process to look at. */
static int
shim_call (struct shimrt *s, struct shimrt_task *t, berth_ctx *ctx, bool no_deadline, const char *const *req, size_t n,
           struct shim_msg *ret, berth_error *err)
{
  memset (ret, 0, sizeof *ret);
  int fd = shim_connect (t->dir);
  /* `wait` has no deadline: it waits for a stopped shim to take it too,
   * polling for cancellation. */
  while (fd == -EAGAIN && no_deadline && !(ctx && s->host->ctx_cancelled (ctx)))
    {
      struct timespec ts = { 0, 200 * 1000 * 1000 };
      nanosleep (&ts, NULL);
      fd = shim_connect (t->dir);
    }
  if (fd == -EAGAIN && no_deadline)
    return s->host->error_set (err, BERTH_E_CANCELLED, 0, "`%s` of task %s cancelled", req[0], t->id);
  if (fd == -EAGAIN)
    return s->host->error_set (err, BERTH_E_DEADLINE, 0,
                               "berth-shim (pid %" PRId32 ") of task %s is not answering: it accepts no connection "
                               "(stopped or stuck; `%s` not sent)",
                               read_pid (t->dir, "shim.pid"), t->id, req[0]);
  if (fd < 0)
    return s->host->error_set (err, BERTH_E_UNAVAILABLE, -fd, "the shim of task %s is not reachable at %s/shim.sock",
                               t->id, t->dir);
  _cleanup_close_ int cfd = fd;
  int r = shim_send (fd, req, n);
  if (r == -EAGAIN)
    return s->host->error_set (err, BERTH_E_DEADLINE, 0,
                               "berth-shim (pid %" PRId32 ") of task %s is not answering: its queue is full "
                               "(stopped or stuck; `%s` not sent)",
                               read_pid (t->dir, "shim.pid"), t->id, req[0]);
  if (r < 0)
    return s->host->error_set (err, BERTH_E_UNAVAILABLE, -r, "sending `%s` to the shim of task %s", req[0], t->id);
  uint32_t limit = timeout_ms (s);
  /* `state` is answered from the shim's memory: a shim that takes longer
   * is stuck, and must not hold up listings (ps, tasks ls) for long. */
  if (strcmp (req[0], "state") == 0 && limit > STATE_TIMEOUT_MS)
    limit = STATE_TIMEOUT_MS;
  int64_t deadline = no_deadline ? 0 : shimrt_monotonic_ms () + limit;
  /* The ctx is polled too: the core may give up before our deadline. */
  r = shim_recv (s, ctx, fd, deadline, ret);
  if (r == -ETIMEDOUT)
    return s->host->error_set (err, BERTH_E_DEADLINE, 0,
                               "berth-shim (pid %" PRId32 ") of task %s did not answer `%s` within %" PRIu32
                               " ms (stopped or stuck?)",
                               read_pid (t->dir, "shim.pid"), t->id, req[0], limit);
  if (r == -ECANCELED)
    return s->host->error_set (err, BERTH_E_CANCELLED, 0, "`%s` of task %s cancelled", req[0], t->id);
  if (r == -ECONNRESET)
    return s->host->error_set (err, BERTH_E_UNAVAILABLE, 0, "the shim of task %s hung up during `%s`", t->id, req[0]);
  if (r < 0)
    return s->host->error_set (err, BERTH_E_UNAVAILABLE, -r, "reading the shim's answer to `%s` (task %s)", req[0],
                               t->id);
  if (strcmp (ret->f[0], "ok") == 0)
    return 0;
  int code = strcmp (ret->f[0], "err") == 0 ? shim_errcode (ret->f[1]) : BERTH_E_INTERNAL;
  if (strcmp (ret->f[0], "err") != 0)
    s->host->error_set (err, code, 0, "the shim of task %s answered `%s` with `%.64s`", t->id, req[0], ret->f[0]);
  else
    s->host->error_set (err, code, 0, "%s", *ret->f[2] ? ret->f[2] : ret->f[1]);
  shim_msg_clear (ret);
  return code;
}

/* A call whose "ok" reply carries nothing we need. */
static int
simple_call (struct shimrt *s, berth_ctx *ctx, const char *id, const char *const *req, size_t n, berth_error *err)
{
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  if (task_gone (s, t))
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "task %s: its shim is gone (process already finished)", id);
  struct shim_msg m;
  r = shim_call (s, t, ctx, false, req, n, &m, err);
  shim_msg_clear (&m);
  return r;
}

static uint32_t
parse_status (const char *v)
{
  static const char *const names[] = { "unknown", "created", "running", "stopped", "paused", "pausing" };
  char *end;
  unsigned long n = strtoul (v, &end, 10);
  if (*v && *end == '\0')
    return n <= BERTH_TASK_PAUSING ? (uint32_t)n : BERTH_TASK_UNKNOWN;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp (v, names[i]) == 0)
      return (uint32_t)i;
  return BERTH_TASK_UNKNOWN;
}

static void
copy_path (char dst[BERTH_NAME_MAX], const char *src)
{
  snprintf (dst, BERTH_NAME_MAX, "%s", src ? src : "");
}

/* ---- meta -------------------------------------------------------------- */

static int
write_file_atomic (const char *dir, const char *name, const char *data, size_t len)
{
  _cleanup_free_ char *tmp = path_join ("%s/.%s.tmp", dir, name);
  _cleanup_free_ char *final = path_join ("%s/%s", dir, name);
  if (tmp == NULL || final == NULL)
    return -ENOMEM;
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  size_t off = 0;
  while (off < len)
    {
      ssize_t w = write (fd, data + off, len - off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        {
          int e = errno;
          close (fd);
          unlink (tmp);
          return -e;
        }
      off += (size_t)w;
    }
  if (fsync (fd) < 0 || close (fd) < 0 || rename (tmp, final) < 0)
    {
      int e = errno;
      unlink (tmp);
      return -e;
    }
  return 0;
}

/* Read a small file whole (at most max bytes); NULL with errno set otherwise. */
static char *
read_small (const char *path, size_t max)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return NULL;
  char *buf = malloc (max + 1);
  size_t off = 0;
  while (buf && off < max)
    {
      ssize_t n = read (fd, buf + off, max - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      off += (size_t)n;
    }
  close (fd);
  if (buf)
    buf[off] = '\0';
  return buf;
}

struct task_io
{
  const char *stdin_path, *stdout_path, *stderr_path;
  int terminal;
};

static int
meta_write (struct shimrt_task *t, const char *bundle, const struct task_io *io, const char *log_path)
{
  json_object *o = json_object_new_object ();
  json_object *args = json_object_new_array ();
  if (o == NULL || args == NULL)
    {
      json_object_put (o);
      json_object_put (args);
      return -ENOMEM;
    }
  for (char **a = t->args; *a; a++)
    json_object_array_add (args, json_object_new_string (*a));
  json_object_object_add (o, "version", json_object_new_int (1));
  json_object_object_add (o, "namespace", json_object_new_string (t->ns));
  json_object_object_add (o, "id", json_object_new_string (t->id));
  json_object_object_add (o, "bundle", json_object_new_string (bundle));
  json_object_object_add (o, "runtime", json_object_new_string (t->binary));
  json_object_object_add (o, "runtime_args", args);
  json_object_object_add (o, "flags", json_object_new_int64 (t->flags));
  json_object_object_add (o, "terminal", json_object_new_boolean (io->terminal));
  if (io->stdin_path)
    json_object_object_add (o, "stdin", json_object_new_string (io->stdin_path));
  if (io->stdout_path)
    json_object_object_add (o, "stdout", json_object_new_string (io->stdout_path));
  if (io->stderr_path)
    json_object_object_add (o, "stderr", json_object_new_string (io->stderr_path));
  if (log_path)
    json_object_object_add (o, "log_path", json_object_new_string (log_path));
  const char *text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  int r = text ? write_file_atomic (t->dir, "meta", text, strlen (text)) : -ENOMEM;
  json_object_put (o);
  return r;
}

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v;
  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_string))
    return NULL;
  return json_object_get_string (v);
}

/* The task recorded in <state_dir>/<ns>/<id>/meta.  The file is ours, but
 * it is still checked: names must match the directory, the binary must be
 * absolute. */
static int
meta_read (struct shimrt *s, const char *ns, const char *id, struct shimrt_task **ret, berth_error *err)
{
  _cleanup_free_ char *path = path_join ("%s/%s/%s/meta", s->state_dir, ns, id);
  if (path == NULL)
    return nomem (s, err);
  _cleanup_free_ char *text = read_small (path, META_MAX);
  if (text == NULL)
    return s->host->error_set (err, BERTH_E_NOTFOUND, errno, "reading %s", path);
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return nomem (s, err);
  json_object *o = json_tokener_parse_ex (tok, text, (int)strlen (text));
  bool ok = json_tokener_get_error (tok) == json_tokener_success && json_object_is_type (o, json_type_object);
  json_tokener_free (tok);
  const char *mns = ok ? jstr (o, "namespace") : NULL, *mid = ok ? jstr (o, "id") : NULL;
  const char *bin = ok ? jstr (o, "runtime") : NULL;
  json_object *args = NULL, *flags = NULL;
  if (ok)
    {
      json_object_object_get_ex (o, "runtime_args", &args);
      json_object_object_get_ex (o, "flags", &flags);
    }
  if (!ok || mns == NULL || mid == NULL || strcmp (mns, ns) != 0 || strcmp (mid, id) != 0 || bin == NULL
      || bin[0] != '/' || (args && !json_object_is_type (args, json_type_array)))
    {
      json_object_put (o);
      return s->host->error_set (err, BERTH_E_INVALID, 0, "%s is not a task record of %s/%s", path, ns, id);
    }
  size_t n = args ? json_object_array_length (args) : 0;
  const char **argv = calloc (n + 1, sizeof *argv);
  if (argv == NULL)
    {
      json_object_put (o);
      return nomem (s, err);
    }
  for (size_t i = 0; i < n; i++)
    {
      argv[i] = json_object_get_string (json_object_array_get_idx (args, i));
      if (argv[i] == NULL)
        argv[i] = "";
    }
  struct shimrt_task *t = task_new (s, ns, id, bin, argv,
                                    flags ? (uint32_t)json_object_get_int64 (flags) & BERTH_SHIMRT_HIDE_CGROUP2 : 0);
  free (argv);
  json_object_put (o);
  if (t == NULL)
    return nomem (s, err);
  *ret = t;
  return 0;
}

/* "<pid>" from <dir>/<name>, 0 when absent or malformed. */
static int32_t
read_pid (const char *dir, const char *name)
{
  _cleanup_free_ char *path = path_join ("%s/%s", dir, name);
  _cleanup_free_ char *text = path ? read_small (path, 32) : NULL;
  if (text == NULL)
    return 0;
  char *end;
  long v = strtol (text, &end, 10);
  return (v > 0 && v <= INT32_MAX && (*end == '\0' || *end == '\n')) ? (int32_t)v : 0;
}

/* ---- the runtime binary, for cleanups ---------------------------------- */

/* `<runtime> [args] --root <dir>/runtime delete --force <id>`: kills what
 * is left of the container and removes the runtime's state. */
static void
runtime_force_delete (struct shimrt *s, struct shimrt_task *t)
{
  size_t n = 0;
  while (t->args[n])
    n++;
  _cleanup_free_ char *root = path_join ("%s/runtime", t->dir);
  _cleanup_free_ char **argv = calloc (n + 7, sizeof *argv);
  if (root == NULL || argv == NULL)
    return;
  size_t k = 0;
  argv[k++] = t->binary;
  for (size_t i = 0; i < n; i++)
    argv[k++] = t->args[i];
  argv[k++] = "--root";
  argv[k++] = root;
  argv[k++] = "delete";
  argv[k++] = "--force";
  argv[k++] = t->id;
  char msg[1024];
  int r = shimrt_run (argv, t->flags, timeout_ms (s), msg, sizeof msg);
  if (r != 0 && strstr (msg, "not exist") == NULL && strstr (msg, "not found") == NULL)
    s->host->log (s->plugin, BERTH_LOG_WARNING, "%s: %s delete --force %s: status %d: %s", s->name, t->binary, t->id, r,
                  msg);
}

/* Kill the shim if it is still there (it closed its socket but lives on). */
static void
kill_shim (struct shimrt *s, struct shimrt_task *t)
{
  int32_t pid = read_pid (t->dir, "shim.pid");
  if (pid <= 1)
    return;
  char link[64], exe[PATH_MAX];
  snprintf (link, sizeof link, "/proc/%" PRId32 "/exe", pid);
  ssize_t n = readlink (link, exe, sizeof exe - 1);
  if (n <= 0)
    return;
  exe[n] = '\0';
  const char *base = strrchr (s->shim, '/');
  const char *ebase = strrchr (exe, '/');
  if (strcmp (exe, s->shim) == 0 || (base && ebase && strcmp (base, ebase) == 0))
    kill (pid, SIGKILL);
}

/* True while pid runs (a zombie, waiting for whoever reaps orphans, does not). */
static bool
pid_running (int32_t pid)
{
  char path[64], buf[256];
  snprintf (path, sizeof path, "/proc/%" PRId32 "/stat", pid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  const char *p = strrchr (buf, ')');
  return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Wait (a little) for the shim to exit after delete, so that its last
 * writes into the task directory are done before we remove it. */
static void
await_shim_exit (int32_t pid)
{
  if (pid <= 1)
    return;
  /* A pidfd is readable as soon as the process has exited: no polling. */
  int pfd = (int)syscall (SYS_pidfd_open, (pid_t)pid, 0);
  if (pfd >= 0)
    {
      struct pollfd p = { .fd = pfd, .events = POLLIN };
      while (poll (&p, 1, 2000) < 0 && errno == EINTR)
        ;
      close (pfd);
      return;
    }
  for (int i = 0; i < 400 && pid_running (pid); i++)
    {
      struct timespec ts = { 0, (i < 20 ? 1 : 5) * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
}

static void
remove_task_dir (struct shimrt *s, struct shimrt_task *t)
{
  int r = shimrt_remove_tree (t->dir);
  if (r < 0)
    s->host->log (s->plugin, BERTH_LOG_WARNING, "%s: could not remove %s: %s", s->name, t->dir, strerror (-r));
}

static void
read_exit_file (struct shimrt_task *t, bool *ret_found, uint32_t *ret_status, int64_t *ret_at)
{
  _cleanup_free_ char *path = path_join ("%s/exit", t->dir);
  _cleanup_free_ char *text = path ? read_small (path, 64) : NULL;
  unsigned long long st;
  long long at;
  *ret_found = false;
  if (text && sscanf (text, "%llu %lld", &st, &at) == 2 && st <= 255 + 128)
    {
      *ret_found = true;
      *ret_status = (uint32_t)st;
      *ret_at = at;
    }
}

void
shimrt_task_vanished (struct shimrt *s, struct shimrt_task *t)
{
  bool found;
  uint32_t status = 255;
  int64_t at = 0;
  read_exit_file (t, &found, &status, &at);
  if (!found)
    {
      status = 255;
      at = shimrt_now_ns ();
    }
  pthread_mutex_lock (&s->lock);
  if (t->gone)
    {
      pthread_mutex_unlock (&s->lock);
      return;
    }
  t->gone = true;
  bool publish = !t->init_exited;
  if (!t->init_exited)
    {
      t->init_exited = true;
      t->exit_status = status;
      t->exited_at = at;
    }
  int32_t pid = t->pid;
  pthread_cond_broadcast (&s->cond);
  pthread_mutex_unlock (&s->lock);

  if (publish)
    {
      char spid[16], sstatus[16], sat[32];
      snprintf (spid, sizeof spid, "%" PRId32, pid);
      snprintf (sstatus, sizeof sstatus, "%" PRIu32, status);
      snprintf (sat, sizeof sat, "%" PRId64, at);
      const char *fields[]
          = { "container_id", t->id, "id", t->id, "pid", spid, "exit_status", sstatus, "exited_at", sat, NULL };
      s->host->publish (s->plugin, t->ns, "/tasks/exit", fields);
    }
  kill_shim (s, t);
  runtime_force_delete (s, t);
  remove_task_dir (s, t);
  s->host->log (s->plugin, BERTH_LOG_INFO,
                "%s: task %s/%s cleaned up after its shim went away (exit status %" PRIu32 ")", s->name, t->ns, t->id,
                status);
}

/* ---- create ------------------------------------------------------------ */

struct argv_builder
{
  char **v;
  size_t n, cap;
  bool oom;
};

static void
argv_add (struct argv_builder *b, const char *a)
{
  if (b->oom)
    return;
  if (b->n + 2 > b->cap)
    {
      size_t cap = b->cap ? b->cap * 2 : 32;
      char **v = realloc (b->v, cap * sizeof *v);
      if (v == NULL)
        {
          b->oom = true;
          return;
        }
      b->v = v;
      b->cap = cap;
    }
  if ((b->v[b->n] = strdup (a)) == NULL)
    {
      b->oom = true;
      return;
    }
  b->v[++b->n] = NULL;
}

/* Read the shim's ready line ("ok <pid>" or "err <message>") from fd until
 * deadline.  Returns 0 with *ret_pid, or an error carrying the message. */
static int
read_ready (struct shimrt *s, struct shimrt_task *t, int fd, int64_t deadline, int32_t *ret_pid, berth_error *err)
{
  char buf[8192];
  size_t off = 0;
  for (;;)
    {
      int64_t left = deadline - shimrt_monotonic_ms ();
      if (left <= 0)
        return s->host->error_set (err, BERTH_E_DEADLINE, 0,
                                   "berth-shim for task %s did not report ready within %" PRId64 " ms", t->id,
                                   (int64_t)timeout_ms (s) * 3);
      struct pollfd p = { .fd = fd, .events = POLLIN };
      int r = poll (&p, 1, (int)left);
      if (r < 0 && errno != EINTR)
        return s->host->error_set (err, BERTH_E_INTERNAL, errno, "waiting for berth-shim");
      if (r <= 0)
        continue;
      ssize_t n = read (fd, buf + off, sizeof buf - 1 - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || (off += (size_t)n) == sizeof buf - 1 || memchr (buf, '\n', off))
        break;
    }
  buf[off] = '\0';
  /* Everything up to the last newline is the message (runc's reason may span lines). */
  while (off > 0 && (buf[off - 1] == '\n' || buf[off - 1] == '\r'))
    buf[--off] = '\0';
  if (strncmp (buf, "ok ", 3) == 0)
    {
      char *end;
      long pid = strtol (buf + 3, &end, 10);
      if (pid > 0 && pid <= INT32_MAX && *end == '\0')
        {
          *ret_pid = (int32_t)pid;
          return 0;
        }
    }
  if (strncmp (buf, "err ", 4) == 0)
    return s->host->error_set (err, BERTH_E_INTERNAL, 0, "OCI runtime create failed: %s", buf + 4);
  if (off == 0)
    return s->host->error_set (err, BERTH_E_INTERNAL, 0,
                               "berth-shim for task %s exited without reporting (see %s/shim.log)", t->id, t->dir);
  return s->host->error_set (err, BERTH_E_INTERNAL, 0, "berth-shim for task %s reported `%.200s`", t->id, buf);
}

static int
spawn_shim (struct shimrt *s, struct shimrt_task *t, const char *bundle, const struct task_io *io, const char *log_path,
            int32_t *ret_pid, berth_error *err)
{
  struct argv_builder b = { 0 };
  char num[32];
  argv_add (&b, s->shim);
  argv_add (&b, "--namespace");
  argv_add (&b, t->ns);
  argv_add (&b, "--id");
  argv_add (&b, t->id);
  argv_add (&b, "--bundle");
  argv_add (&b, bundle);
  argv_add (&b, "--task-dir");
  argv_add (&b, t->dir);
  argv_add (&b, "--runtime");
  argv_add (&b, t->binary);
  for (char **a = t->args; *a; a++)
    {
      argv_add (&b, "--runtime-arg");
      argv_add (&b, *a);
    }
  if (io->stdin_path && *io->stdin_path)
    {
      argv_add (&b, "--stdin");
      argv_add (&b, io->stdin_path);
    }
  if (io->stdout_path && *io->stdout_path)
    {
      argv_add (&b, "--stdout");
      argv_add (&b, io->stdout_path);
    }
  if (io->stderr_path && *io->stderr_path)
    {
      argv_add (&b, "--stderr");
      argv_add (&b, io->stderr_path);
    }
  if (io->terminal)
    argv_add (&b, "--terminal");
  if (log_path && *log_path)
    {
      argv_add (&b, "--log");
      argv_add (&b, log_path);
      argv_add (&b, "--log-max-size");
      snprintf (num, sizeof num, "%" PRIu64, s->log_max_size);
      argv_add (&b, num);
      argv_add (&b, "--log-max-files");
      snprintf (num, sizeof num, "%" PRIu32, s->log_max_files);
      argv_add (&b, num);
    }
  argv_add (&b, "--ready-fd");
  argv_add (&b, "3");
  if (b.oom)
    {
      strv_free (b.v);
      return nomem (s, err);
    }

  int pfd[2];
  if (pipe2 (pfd, O_CLOEXEC) < 0)
    {
      strv_free (b.v);
      return s->host->error_set (err, BERTH_E_INTERNAL, errno, "pipe");
    }
  int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
  static const char exec_failed[] = "err cannot execute berth-shim\n";
  static const char ns_failed[] = "err cannot hide cgroup v2 from the runtime (private mount namespace)\n";
  pid_t pid = devnull < 0 ? -1 : fork ();
  if (pid == 0)
    {
      if (pfd[1] == 3)
        fcntl (3, F_SETFD, 0);
      else if (dup2 (pfd[1], 3) < 0)
        _exit (126);
      dup2 (devnull, 0);
      dup2 (devnull, 1);
      dup2 (devnull, 2);
      if ((t->flags & BERTH_SHIMRT_HIDE_CGROUP2) && shimrt_hide_cgroup2 () < 0)
        {
          (void)!write (3, ns_failed, sizeof ns_failed - 1);
          _exit (126);
        }
      execve (b.v[0], b.v, environ);
      (void)!write (3, exec_failed, sizeof exec_failed - 1);
      _exit (127);
    }
  int fork_errno = errno;
  close (pfd[1]);
  if (devnull >= 0)
    close (devnull);
  strv_free (b.v);
  if (pid < 0)
    {
      close (pfd[0]);
      return s->host->error_set (err, BERTH_E_INTERNAL, fork_errno, "starting %s", s->shim);
    }
  int r = read_ready (s, t, pfd[0], shimrt_monotonic_ms () + (int64_t)timeout_ms (s) * 3, ret_pid, err);
  close (pfd[0]);
  /* The first process exits once the shim has daemonized; reap it. */
  int status;
  for (int i = 0; i < 400; i++)
    {
      pid_t w = waitpid (pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno != EINTR))
        break;
      struct timespec ts = { 0, 5 * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
  return r;
}

static int
parse_options (struct shimrt *s, const char *options_json, char **ret_log_path, berth_error *err)
{
  *ret_log_path = NULL;
  if (options_json == NULL || *options_json == '\0')
    return 0;
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return nomem (s, err);
  json_object *o = json_tokener_parse_ex (tok, options_json, (int)strnlen (options_json, 1 << 20));
  bool ok = json_tokener_get_error (tok) == json_tokener_success && json_object_is_type (o, json_type_object);
  json_tokener_free (tok);
  if (!ok)
    {
      json_object_put (o);
      return s->host->error_set (err, BERTH_E_INVALID, 0, "%s: the task options are not a JSON object", s->name);
    }
  json_object *v;
  int r = 0;
  if (json_object_object_get_ex (o, "log_path", &v) && !json_object_is_type (v, json_type_null))
    {
      const char *lp = json_object_is_type (v, json_type_string) ? json_object_get_string (v) : NULL;
      if (lp == NULL || (*lp && *lp != '/'))
        r = s->host->error_set (err, BERTH_E_INVALID, 0, "%s: options.log_path must be an absolute path", s->name);
      else if (*lp && (*ret_log_path = strdup (lp)) == NULL)
        r = nomem (s, err);
    }
  json_object_put (o);
  return r;
}

static int
create_task (struct shimrt *s, berth_ctx *ctx, const struct berth_task_create *req, const char *binary,
             const char *const *args, uint32_t flags, struct berth_process_state *ret_state, berth_error *err)
{
  const char *ns = ctx ? s->host->ctx_get (ctx, "namespace") : NULL;
  if (ns == NULL || !valid_name (ns))
    return s->host->error_set (err, BERTH_E_INVALID, 0, "%s: namespace `%s` is not a valid identifier", s->name,
                               ns ? ns : "");
  if (req == NULL || !valid_name (req->id))
    return s->host->error_set (err, BERTH_E_INVALID, 0, "%s: task id `%s` is not a valid identifier", s->name,
                               req && req->id ? req->id : "");
  if (req->bundle == NULL || req->bundle[0] != '/')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "task %s: the bundle must be an absolute path", req->id);
  if (req->rootfs != NULL)
    return s->host->error_set (err, BERTH_E_NOTSUP, 0, "task %s: %s expects the rootfs mounted by the caller", req->id,
                               s->name);
  _cleanup_free_ char *config = path_join ("%s/config.json", req->bundle);
  if (config == NULL)
    return nomem (s, err);
  if (access (config, R_OK) < 0)
    return s->host->error_set (err, BERTH_E_INVALID, errno, "task %s: %s", req->id, config);
  _cleanup_free_ char *log_path = NULL;
  int r = parse_options (s, req->options_json, &log_path, err);
  if (r < 0)
    return r;

  struct shimrt_task *t = task_new (s, ns, req->id, binary, args, flags);
  if (t == NULL)
    return nomem (s, err);
  pthread_mutex_lock (&s->lock);
  if (task_find_locked (s, ns, req->id))
    {
      pthread_mutex_unlock (&s->lock);
      task_free (t);
      return s->host->error_set (err, BERTH_E_EXISTS, 0, "task %s already exists in namespace %s", req->id, ns);
    }
  task_insert_locked (s, t);
  t->refs++;
  pthread_mutex_unlock (&s->lock);
  _cleanup_task_ struct shimrt_task *held = t;

  _cleanup_free_ char *nsdir = path_join ("%s/%s", s->state_dir, ns);
  if (nsdir == NULL)
    r = nomem (s, err);
  else if (mkdir (nsdir, 0711) < 0 && errno != EEXIST)
    r = s->host->error_set (err, BERTH_E_INTERNAL, errno, "creating %s", nsdir);
  else if (mkdir (t->dir, 0700) < 0)
    {
      r = errno == EEXIST ? s->host->error_set (err, BERTH_E_EXISTS, 0, "task %s: %s is in use", req->id, t->dir)
                          : s->host->error_set (err, BERTH_E_INTERNAL, errno, "creating %s", t->dir);
      task_remove (s, t);
      return r;
    }
  struct task_io io = { req->io.stdin_path, req->io.stdout_path, req->io.stderr_path, req->io.terminal };
  if (r == 0 && (r = meta_write (t, req->bundle, &io, log_path)) < 0)
    r = s->host->error_set (err, BERTH_E_INTERNAL, -r, "writing %s/meta", t->dir);
  int32_t pid = 0;
  BERTH_FAILPOINT ("shim-start-before-spawn");
  if (r == 0)
    r = spawn_shim (s, t, req->bundle, &io, log_path, &pid, err);
  BERTH_FAILPOINT ("shim-start-after-spawn");
  if (r == 0)
    {
      pthread_mutex_lock (&s->lock);
      t->pid = pid;
      pthread_mutex_unlock (&s->lock);
      /* The shim listens before it reports ready; a short retry covers a
       * shim that binds its socket just after. */
      int w = shimrt_monitor_watch (s, t);
      for (int i = 0; i < 50 && (w == -ENOENT || w == -ECONNREFUSED); i++)
        {
          struct timespec ts = { 0, 10 * 1000 * 1000 };
          nanosleep (&ts, NULL);
          w = shimrt_monitor_watch (s, t);
        }
      if (w < 0)
        r = s->host->error_set (err, BERTH_E_UNAVAILABLE, -w, "task %s: subscribing to its shim", req->id);
    }
  if (r < 0)
    {
      pthread_mutex_lock (&s->lock);
      t->gone = true; /* no exit event for a task that never was */
      pthread_mutex_unlock (&s->lock);
      shimrt_monitor_unwatch (s, t);
      kill_shim (s, t);
      runtime_force_delete (s, t);
      remove_task_dir (s, t);
      task_remove (s, t);
      return r;
    }
  if (ret_state)
    {
      if (BERTH_HAS (struct berth_process_state, ret_state, status))
        ret_state->status = BERTH_TASK_CREATED;
      if (BERTH_HAS (struct berth_process_state, ret_state, pid))
        ret_state->pid = pid;
      if (BERTH_HAS (struct berth_process_state, ret_state, terminal))
        ret_state->terminal = req->io.terminal;
      if (BERTH_HAS (struct berth_process_state, ret_state, stderr_path))
        {
          copy_path (ret_state->stdin_path, req->io.stdin_path);
          copy_path (ret_state->stdout_path, req->io.stdout_path);
          copy_path (ret_state->stderr_path, req->io.stderr_path);
        }
    }
  return 0;
}

static int
shimrt_create (void *self, berth_ctx *ctx, const struct berth_task_create *req, struct berth_process_state *ret_state,
               berth_error *err)
{
  struct shimrt *s = self;
  return create_task (s, ctx, req, s->binary, (const char *const *)s->args, 0, ret_state, err);
}

int
berth_shimrt_create_with (void *self, berth_ctx *ctx, const struct berth_task_create *req,
                          const struct berth_shimrt_runtime *rt, struct berth_process_state *ret_state,
                          berth_error *err)
{
  struct shimrt *s = self;
  const char *bin = s->binary;
  const char *const *args = (const char *const *)s->args;
  uint32_t flags = 0;
  if (BERTH_HAS (struct berth_shimrt_runtime, rt, binary) && rt->binary)
    bin = rt->binary;
  if (BERTH_HAS (struct berth_shimrt_runtime, rt, args) && rt->args)
    args = rt->args;
  if (BERTH_HAS (struct berth_shimrt_runtime, rt, flags))
    flags = rt->flags & BERTH_SHIMRT_HIDE_CGROUP2;
  if (bin[0] != '/')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "%s: runtime binary `%s` is not an absolute path", s->name,
                               bin);
  return create_task (s, ctx, req, bin, args, flags, ret_state, err);
}

/* ---- the other methods ------------------------------------------------- */

static const char *
exec_or_init (const char *exec_id)
{
  return exec_id ? exec_id : "";
}

static int
check_exec_id (struct shimrt *s, const char *exec_id, berth_error *err)
{
  if (exec_id && *exec_id && !valid_name (exec_id))
    return s->host->error_set (err, BERTH_E_INVALID, 0, "exec id `%s` is not a valid identifier", exec_id);
  return 0;
}

static int
shimrt_start (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int32_t *ret_pid, berth_error *err)
{
  struct shimrt *s = self;
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = check_exec_id (s, exec_id, err);
  if (r == 0)
    r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  if (task_gone (s, t))
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "task %s: its shim is gone", id);
  const char *req[] = { "start", exec_or_init (exec_id) };
  struct shim_msg m;
  r = shim_call (s, t, ctx, false, req, 2, &m, err);
  if (r < 0)
    return r;
  long pid = strtol (m.f[1], NULL, 10);
  shim_msg_clear (&m);
  if (ret_pid)
    *ret_pid = pid > 0 && pid <= INT32_MAX ? (int32_t)pid : 0;
  return 0;
}

static void
fill_state (struct berth_process_state *st, uint32_t status, int32_t pid, uint32_t exit_status, int64_t at)
{
  if (BERTH_HAS (struct berth_process_state, st, status))
    st->status = status;
  if (BERTH_HAS (struct berth_process_state, st, pid))
    st->pid = pid;
  if (BERTH_HAS (struct berth_process_state, st, exit_status))
    st->exit_status = exit_status;
  if (BERTH_HAS (struct berth_process_state, st, exited_at))
    st->exited_at = at;
}

static int
task_state (struct shimrt *s, berth_ctx *ctx, struct shimrt_task *t, const char *exec_id,
            struct berth_process_state *ret, berth_error *err)
{
  bool init = exec_id == NULL || *exec_id == '\0';
  pthread_mutex_lock (&s->lock);
  bool gone = t->gone;
  int32_t pid = t->pid;
  uint32_t status = t->exit_status;
  int64_t at = t->exited_at;
  pthread_mutex_unlock (&s->lock);
  if (gone)
    {
      if (!init)
        return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "process %s of task %s: the shim is gone", exec_id, t->id);
      fill_state (ret, BERTH_TASK_STOPPED, pid, status, at);
      return 0;
    }
  const char *req[] = { "state", exec_or_init (exec_id) };
  struct shim_msg m;
  berth_error *e = err;
  int r = shim_call (s, t, ctx, false, req, 2, &m, e);
  if (r == BERTH_E_DEADLINE || r == BERTH_E_UNAVAILABLE || r == BERTH_E_CANCELLED)
    {
      if (!init)
        return r;
      /* A stuck or dying shim: say so rather than block or fail the listing. */
      fill_state (ret, BERTH_TASK_UNKNOWN, pid, 0, 0);
      return 0;
    }
  if (r < 0)
    return r;
  long long p = strtoll (m.f[2], NULL, 10);
  fill_state (ret, parse_status (m.f[1]), p > 0 && p <= INT32_MAX ? (int32_t)p : 0,
              (uint32_t)strtoul (m.f[3], NULL, 10), strtoll (m.f[4], NULL, 10));
  if (BERTH_HAS (struct berth_process_state, ret, terminal))
    ret->terminal = strcmp (m.f[5], "1") == 0 || strcasecmp (m.f[5], "true") == 0;
  if (BERTH_HAS (struct berth_process_state, ret, stderr_path))
    {
      copy_path (ret->stdin_path, m.f[6]);
      copy_path (ret->stdout_path, m.f[7]);
      copy_path (ret->stderr_path, m.f[8]);
    }
  shim_msg_clear (&m);
  return 0;
}

static int
shimrt_state (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_process_state *ret_state,
              berth_error *err)
{
  struct shimrt *s = self;
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = check_exec_id (s, exec_id, err);
  if (r == 0)
    r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  return task_state (s, ctx, t, exec_id, ret_state, err);
}

static int
shimrt_kill (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int signal, int all, berth_error *err)
{
  struct shimrt *s = self;
  if (signal <= 0 || signal > 64)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "signal %d is out of range", signal);
  int r = check_exec_id (s, exec_id, err);
  if (r < 0)
    return r;
  char sig[16];
  snprintf (sig, sizeof sig, "%d", signal);
  const char *req[] = { "kill", exec_or_init (exec_id), sig, all ? "1" : "0" };
  return simple_call (s, ctx, id, req, 4, err);
}

static int
shimrt_pids (void *self, berth_ctx *ctx, const char *id, berth_pid_fn fn, void *data, berth_error *err)
{
  struct shimrt *s = self;
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  if (task_gone (s, t))
    return 0;
  const char *req[] = { "pids" };
  struct shim_msg m;
  r = shim_call (s, t, ctx, false, req, 1, &m, err);
  if (r < 0)
    return r;
  json_object *o = json_tokener_parse (m.f[1]);
  shim_msg_clear (&m);
  if (!json_object_is_type (o, json_type_array))
    {
      json_object_put (o);
      return s->host->error_set (err, BERTH_E_INTERNAL, 0, "task %s: `ps` did not answer a JSON array", id);
    }
  size_t n = json_object_array_length (o);
  for (size_t i = 0; i < n && r == 0; i++)
    {
      json_object *v = json_object_array_get_idx (o, i);
      int64_t pid = json_object_is_type (v, json_type_int) ? json_object_get_int64 (v) : 0;
      if (pid > 0 && pid <= INT32_MAX && fn)
        r = fn ((int32_t)pid, "", data);
    }
  json_object_put (o);
  return r < 0 ? r : 0;
}

static int
write_request_file (struct shimrt *s, struct shimrt_task *t, const char *name, const char *json, char **ret_path,
                    berth_error *err)
{
  json_object *o = json ? json_tokener_parse (json) : NULL;
  bool ok = json_object_is_type (o, json_type_object);
  json_object_put (o);
  if (!ok)
    return s->host->error_set (err, BERTH_E_INVALID, 0, "task %s: %s is not a JSON object", t->id, name);
  int r = write_file_atomic (t->dir, name, json, strlen (json));
  if (r < 0)
    return s->host->error_set (err, BERTH_E_INTERNAL, -r, "writing %s/%s", t->dir, name);
  if ((*ret_path = path_join ("%s/%s", t->dir, name)) == NULL)
    return nomem (s, err);
  return 0;
}

static int
shimrt_exec (void *self, berth_ctx *ctx, const char *id, const char *exec_id, const char *spec_json,
             const struct berth_task_io *io, berth_error *err)
{
  struct shimrt *s = self;
  if (exec_id == NULL || *exec_id == '\0')
    return s->host->error_set (err, BERTH_E_INVALID, 0, "exec needs an exec id");
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = check_exec_id (s, exec_id, err);
  if (r == 0)
    r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  if (task_gone (s, t))
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "task %s is not running", id);
  _cleanup_free_ char *name = path_join ("exec-%s.json", exec_id);
  _cleanup_free_ char *path = NULL;
  if (name == NULL)
    return nomem (s, err);
  r = write_request_file (s, t, name, spec_json, &path, err);
  if (r < 0)
    return r;
  int terminal = BERTH_HAS (struct berth_task_io, io, terminal) ? io->terminal : 0;
  const char *req[] = { "exec",
                        exec_id,
                        path,
                        terminal ? "1" : "0",
                        io && io->stdin_path ? io->stdin_path : "",
                        io && io->stdout_path ? io->stdout_path : "",
                        io && io->stderr_path ? io->stderr_path : "" };
  struct shim_msg m;
  r = shim_call (s, t, ctx, false, req, 7, &m, err);
  shim_msg_clear (&m);
  if (r < 0)
    unlink (path);
  return r;
}

static int
shimrt_pause (void *self, berth_ctx *ctx, const char *id, berth_error *err)
{
  const char *req[] = { "pause" };
  return simple_call (self, ctx, id, req, 1, err);
}

static int
shimrt_resume (void *self, berth_ctx *ctx, const char *id, berth_error *err)
{
  const char *req[] = { "resume" };
  return simple_call (self, ctx, id, req, 1, err);
}

/* The recorded exit of init once known (exit message or vanished shim). */
static bool
init_exit_known (struct shimrt *s, struct shimrt_task *t, struct berth_task_exit *ret)
{
  pthread_mutex_lock (&s->lock);
  bool known = t->init_exited;
  if (known && ret)
    {
      if (BERTH_HAS (struct berth_task_exit, ret, pid))
        ret->pid = t->pid;
      if (BERTH_HAS (struct berth_task_exit, ret, exit_status))
        ret->exit_status = t->exit_status;
      if (BERTH_HAS (struct berth_task_exit, ret, exited_at))
        ret->exited_at = t->exited_at;
    }
  pthread_mutex_unlock (&s->lock);
  return known;
}

static void
fill_exit (struct berth_task_exit *ret, int32_t pid, const char *status, const char *at)
{
  if (ret == NULL)
    return;
  if (BERTH_HAS (struct berth_task_exit, ret, pid))
    ret->pid = pid;
  if (BERTH_HAS (struct berth_task_exit, ret, exit_status))
    ret->exit_status = (uint32_t)strtoul (status, NULL, 10);
  if (BERTH_HAS (struct berth_task_exit, ret, exited_at))
    ret->exited_at = strtoll (at, NULL, 10);
}

static int
shimrt_wait (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
             berth_error *err)
{
  struct shimrt *s = self;
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = check_exec_id (s, exec_id, err);
  if (r == 0)
    r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  bool init = exec_id == NULL || *exec_id == '\0';
  if (init && init_exit_known (s, t, ret_exit))
    return 0;
  if (task_gone (s, t))
    return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "process %s of task %s: the shim is gone", exec_id, id);
  const char *req[] = { "wait", exec_or_init (exec_id) };
  struct shim_msg m;
  r = shim_call (s, t, ctx, true, req, 2, &m, err);
  if (r == 0)
    {
      fill_exit (ret_exit, init ? t->pid : 0, m.f[1], m.f[2]);
      shim_msg_clear (&m);
      return 0;
    }
  if (r != BERTH_E_UNAVAILABLE || !init)
    return r;
  /* The shim went away while we waited: the monitor records the exit
   * (255, or the shim's exit file) and wakes us. */
  pthread_mutex_lock (&s->lock);
  while (!t->init_exited && !s->host->ctx_cancelled (ctx))
    {
      struct timespec ts;
      clock_gettime (CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += 200 * 1000 * 1000;
      if (ts.tv_nsec >= 1000000000)
        {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000;
        }
      pthread_cond_timedwait (&s->cond, &s->lock, &ts);
      if (!t->init_exited && !t->gone && t->sub_fd < 0)
        break; /* nobody is watching: find out ourselves */
    }
  bool exited = t->init_exited;
  pthread_mutex_unlock (&s->lock);
  if (!exited && !s->host->ctx_cancelled (ctx))
    {
      shimrt_task_vanished (s, t);
      exited = true;
    }
  if (!exited)
    return s->host->error_set (err, BERTH_E_CANCELLED, 0, "wait for task %s cancelled", id);
  init_exit_known (s, t, ret_exit);
  return 0;
}

static int
shimrt_resize_pty (void *self, berth_ctx *ctx, const char *id, const char *exec_id, uint32_t width, uint32_t height,
                   berth_error *err)
{
  struct shimrt *s = self;
  int r = check_exec_id (s, exec_id, err);
  if (r < 0)
    return r;
  char w[16], h[16];
  snprintf (w, sizeof w, "%" PRIu32, width);
  snprintf (h, sizeof h, "%" PRIu32, height);
  const char *req[] = { "resize", exec_or_init (exec_id), w, h };
  return simple_call (s, ctx, id, req, 4, err);
}

static int
shimrt_close_io (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int close_stdin, berth_error *err)
{
  struct shimrt *s = self;
  int r = check_exec_id (s, exec_id, err);
  if (r < 0 || !close_stdin)
    return r;
  const char *req[] = { "closeio", exec_or_init (exec_id) };
  return simple_call (s, ctx, id, req, 2, err);
}

static int
shimrt_update (void *self, berth_ctx *ctx, const char *id, const char *resources_json, berth_error *err)
{
  struct shimrt *s = self;
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  if (task_gone (s, t))
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "task %s is not running", id);
  _cleanup_free_ char *path = NULL;
  r = write_request_file (s, t, "update.json", resources_json, &path, err);
  if (r < 0)
    return r;
  const char *req[] = { "update", path };
  struct shim_msg m;
  r = shim_call (s, t, ctx, false, req, 2, &m, err);
  shim_msg_clear (&m);
  unlink (path);
  return r;
}

static int
shimrt_stats (void *self, berth_ctx *ctx, const char *id, berth_buf *ret_json, berth_error *err)
{
  struct shimrt *s = self;
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  if (task_gone (s, t))
    return s->host->error_set (err, BERTH_E_PRECONDITION, 0, "task %s is not running", id);
  const char *req[] = { "stats" };
  struct shim_msg m;
  r = shim_call (s, t, ctx, false, req, 1, &m, err);
  if (r < 0)
    return r;
  json_object *o = json_tokener_parse (m.f[1]);
  bool ok = json_object_is_type (o, json_type_object);
  json_object_put (o);
  if (!ok)
    r = s->host->error_set (err, BERTH_E_INTERNAL, 0, "task %s: the runtime's stats are not a JSON object", id);
  else if (ret_json && (r = s->host->buf_append (ret_json, m.f[1], strlen (m.f[1]))) < 0)
    s->host->error_set (err, r, 0, "task %s: stats", id);
  shim_msg_clear (&m);
  return r;
}

static int
shimrt_delete (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
               berth_error *err)
{
  struct shimrt *s = self;
  _cleanup_task_ struct shimrt_task *t = NULL;
  int r = check_exec_id (s, exec_id, err);
  if (r == 0)
    r = task_get (s, ctx, id, &t, err);
  if (r < 0)
    return r;
  struct shim_msg m;
  if (exec_id && *exec_id)
    {
      if (task_gone (s, t))
        return s->host->error_set (err, BERTH_E_NOTFOUND, 0, "process %s of task %s: the shim is gone", exec_id, id);
      const char *req[] = { "delete", exec_id };
      r = shim_call (s, t, ctx, false, req, 2, &m, err);
      if (r < 0)
        return r;
      fill_exit (ret_exit, 0, m.f[1], m.f[2]);
      shim_msg_clear (&m);
      _cleanup_free_ char *spec = path_join ("%s/exec-%s.json", t->dir, exec_id);
      if (spec)
        unlink (spec);
      return 0;
    }

  pthread_mutex_lock (&s->lock);
  bool gone = t->gone;
  t->deleting = true;
  pthread_mutex_unlock (&s->lock);
  if (!gone)
    {
      int32_t shim_pid = read_pid (t->dir, "shim.pid");
      const char *req[] = { "delete", "" };
      r = shim_call (s, t, ctx, false, req, 2, &m, err);
      if (r == BERTH_E_UNAVAILABLE)
        {
          /* The shim is already gone: clean up as the monitor would. */
          shimrt_monitor_unwatch (s, t);
          shimrt_task_vanished (s, t);
          r = 0;
        }
      else if (r < 0)
        {
          pthread_mutex_lock (&s->lock);
          t->deleting = false;
          pthread_mutex_unlock (&s->lock);
          return r;
        }
      else
        {
          pthread_mutex_lock (&s->lock);
          if (!t->init_exited)
            {
              t->init_exited = true;
              t->exit_status = (uint32_t)strtoul (m.f[1], NULL, 10);
              t->exited_at = strtoll (m.f[2], NULL, 10);
            }
          t->gone = true;
          pthread_cond_broadcast (&s->cond);
          pthread_mutex_unlock (&s->lock);
          shim_msg_clear (&m);
          shimrt_monitor_unwatch (s, t);
          await_shim_exit (shim_pid);
          remove_task_dir (s, t);
        }
    }
  init_exit_known (s, t, ret_exit);
  task_remove (s, t);
  return 0;
}

static int
shimrt_list (void *self, berth_ctx *ctx, berth_task_fn fn, void *data, berth_error *err)
{
  struct shimrt *s = self;
  pthread_mutex_lock (&s->lock);
  size_t n = 0;
  for (struct shimrt_task *t = s->tasks; t; t = t->next)
    n++;
  struct shimrt_task **v = calloc (n ? n : 1, sizeof *v);
  if (v == NULL)
    {
      pthread_mutex_unlock (&s->lock);
      return nomem (s, err);
    }
  n = 0;
  for (struct shimrt_task *t = s->tasks; t; t = t->next)
    {
      t->refs++;
      v[n++] = t;
    }
  pthread_mutex_unlock (&s->lock);
  int r = 0;
  for (size_t i = 0; i < n; i++)
    {
      if (r == 0)
        {
          struct berth_process_state st = { .size = sizeof st };
          if (task_state (s, ctx, v[i], NULL, &st, NULL) < 0)
            st.status = BERTH_TASK_UNKNOWN;
          if (fn)
            r = fn (v[i]->ns, v[i]->id, &st, data);
        }
      shimrt_task_unref (s, v[i]);
    }
  free (v);
  return r < 0 ? r : 0;
}

const struct berth_runtime_ops berth_shimrt_ops = {
  .size = sizeof (struct berth_runtime_ops),
  .create = shimrt_create,
  .start = shimrt_start,
  .state = shimrt_state,
  .kill = shimrt_kill,
  .pids = shimrt_pids,
  .exec = shimrt_exec,
  .pause = shimrt_pause,
  .resume = shimrt_resume,
  .wait = shimrt_wait,
  .resize_pty = shimrt_resize_pty,
  .close_io = shimrt_close_io,
  .update = shimrt_update,
  .stats = shimrt_stats,
  .delete = shimrt_delete,
  .list = shimrt_list,
};

/* ---- new / free -------------------------------------------------------- */

/* Reconnect to every task recorded under state_dir. */
static void
reconnect_all (struct shimrt *s)
{
  DIR *d = opendir (s->state_dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    {
      if (e->d_name[0] == '.' || !valid_name (e->d_name))
        continue;
      _cleanup_free_ char *nsdir = path_join ("%s/%s", s->state_dir, e->d_name);
      DIR *nd = nsdir ? opendir (nsdir) : NULL;
      if (nd == NULL)
        continue;
      struct dirent *f;
      while ((f = readdir (nd)) != NULL)
        {
          if (f->d_name[0] == '.')
            continue;
          struct shimrt_task *t = NULL;
          berth_error *none = NULL;
          if (!valid_name (f->d_name) || meta_read (s, e->d_name, f->d_name, &t, none) < 0)
            {
              /* A create that crashed before its record: nothing runs there. */
              _cleanup_free_ char *dir = path_join ("%s/%s", nsdir, f->d_name);
              s->host->log (s->plugin, BERTH_LOG_WARNING, "%s: %s holds no valid task record; removing it", s->name,
                            dir ? dir : f->d_name);
              if (dir)
                shimrt_remove_tree (dir);
              continue;
            }
          t->pid = read_pid (t->dir, "init.pid");
          pthread_mutex_lock (&s->lock);
          task_insert_locked (s, t);
          pthread_mutex_unlock (&s->lock);
          int r = shimrt_monitor_watch (s, t);
          if (r < 0)
            {
              s->host->log (s->plugin, BERTH_LOG_WARNING, "%s: the shim of %s/%s is gone (%s)", s->name, t->ns, t->id,
                            strerror (-r));
              shimrt_task_vanished (s, t);
            }
          else
            s->host->log (s->plugin, BERTH_LOG_INFO, "%s: reconnected to the shim of %s/%s", s->name, t->ns, t->id);
        }
      closedir (nd);
      rmdir (nsdir); /* only when empty */
    }
  closedir (d);
}

void
berth_shimrt_free (void *self)
{
  struct shimrt *s = self;
  if (s == NULL)
    return;
  shimrt_monitor_stop (s);
  /* The shims keep running: containers outlive berthd. */
  while (s->tasks)
    {
      struct shimrt_task *t = s->tasks;
      s->tasks = t->next;
      if (--t->refs == 0)
        task_free (t);
    }
  pthread_mutex_destroy (&s->lock);
  pthread_cond_destroy (&s->cond);
  free (s->name);
  free (s->binary);
  strv_free (s->args);
  free (s->shim);
  free (s->state_dir);
  free (s);
}

static int
mkdir_p (const char *path, mode_t mode)
{
  _cleanup_free_ char *p = strdup (path);
  if (p == NULL)
    return -ENOMEM;
  for (char *c = p + 1; *c; c++)
    if (*c == '/')
      {
        *c = '\0';
        if (mkdir (p, 0755) < 0 && errno != EEXIST)
          return -errno;
        *c = '/';
      }
  if (mkdir (p, mode) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

void *
berth_shimrt_new (const struct berth_shimrt_config *cfg, const struct berth_host *host, berth_error *err)
{
  if (cfg == NULL || host == NULL || !BERTH_HAS (struct berth_shimrt_config, cfg, call_timeout_ms))
    return host ? (host->error_set (err, BERTH_E_INVALID, 0, "berth_shimrt_new: incomplete configuration"), NULL)
                : NULL;
  const char *name = cfg->plugin_name ? cfg->plugin_name : "shimrt";
  if (cfg->runtime_binary == NULL || cfg->runtime_binary[0] != '/' || cfg->shim_binary == NULL
      || cfg->shim_binary[0] != '/' || cfg->state_dir == NULL || cfg->state_dir[0] != '/')
    {
      host->error_set (err, BERTH_E_INVALID, 0, "%s: runtime_binary, shim_binary and state_dir must be absolute paths",
                       name);
      return NULL;
    }
  struct shimrt *s = calloc (1, sizeof *s);
  if (s == NULL)
    {
      host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
      return NULL;
    }
  s->host = host;
  s->plugin = cfg->plugin;
  s->epfd = s->wakefd = -1;
  s->log_max_size = cfg->log_max_size;
  s->log_max_files = cfg->log_max_files;
  s->timeout_ms = cfg->call_timeout_ms;
  pthread_mutex_init (&s->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&s->cond, &ca);
  pthread_condattr_destroy (&ca);
  s->name = strdup (name);
  s->binary = strdup (cfg->runtime_binary);
  s->args = strv_dup (cfg->runtime_args);
  s->shim = strdup (cfg->shim_binary);
  s->state_dir = strdup (cfg->state_dir);
  if (!s->name || !s->binary || !s->args || !s->shim || !s->state_dir)
    {
      host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
      berth_shimrt_free (s);
      return NULL;
    }
  int r = mkdir_p (s->state_dir, 0711);
  if (r < 0)
    {
      host->error_set (err, BERTH_E_INTERNAL, -r, "%s: creating %s", name, s->state_dir);
      berth_shimrt_free (s);
      return NULL;
    }
  if (shimrt_monitor_start (s, err) < 0)
    {
      berth_shimrt_free (s);
      return NULL;
    }
  reconnect_all (s);
  return s;
}
