/* Tests for sdk/shim (libberth-shimrt) through the two plugins built on it,
 * io.berth.runtime.v1.oci and io.berth.runtime.v1.namespaces.
 *
 * Everything real: runc (and crun) from the host, the berth-shim built in
 * this tree, a busybox-static rootfs and a config.json from `runc spec`.
 * The plugins are called only through their descriptors and ops tables,
 * with a minimal host table of our own (log, errors, config answers, the
 * namespace, and publish recording the events), so the test does not need
 * the daemon.  Tests that cannot run here (not root, no runc, no
 * berth-shim built yet, no busybox) say SKIP with the reason.
 *
 * BERTH_SHIMRT_BENCH=1 also prints the median of 10 runs of
 * create+start+wait+delete of `true` with runc.
 */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <berth/runtime.h>
#include <berth/shimrt.h>

extern const struct berth_plugin_desc *const *berth_runtime_oci_entry (void);
extern const struct berth_plugin_desc *const *berth_runtime_namespaces_entry (void);

/* ---- a minimal host ------------------------------------------------------ */

struct berth_error
{
  int code;
  char msg[2048];
};

struct berth_ctx
{
  const char *ns;
  int cancelled;
};

struct berth_plugin
{
  const char *name;
};

struct berth_buf
{
  char data[65536];
  size_t len;
};

struct event
{
  char topic[64];
  char id[128];
  char exec_id[128];
  int exit_status;
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static struct event events[256];
static size_t n_events;

/* Config answers: key = value pairs set by each test. */
static const char *cfg_keys[16];
static const char *cfg_vals[16];
static size_t n_cfg;

static void
cfg_set (const char *key, const char *value)
{
  cfg_keys[n_cfg] = key;
  cfg_vals[n_cfg++] = value;
}

static void
host_log (berth_plugin *p, int level, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fprintf (stderr, "[plugin %d] ", level);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
}

static int
host_error_set (berth_error *err, int code, int errnum, const char *fmt, ...)
{
  if (err)
    {
      va_list ap;
      va_start (ap, fmt);
      vsnprintf (err->msg, sizeof err->msg, fmt, ap);
      va_end (ap);
      if (errnum)
        snprintf (err->msg + strlen (err->msg), sizeof err->msg - strlen (err->msg), ": %s", strerror (errnum));
      err->code = code;
    }
  return code;
}

static int
host_error_wrap (berth_error *err, const char *fmt, ...)
{
  return err ? err->code : BERTH_E_INTERNAL;
}

static const char *runtimes_names[8];

static int
host_cfg_get (berth_plugin *p, const char *key, struct berth_cfg_value *ret)
{
  for (size_t i = 0; i < n_cfg; i++)
    if (strcmp (cfg_keys[i], key) == 0)
      {
        if (strcmp (key, "runtimes") == 0)
          {
            runtimes_names[0] = cfg_vals[i];
            runtimes_names[1] = NULL;
            ret->type = BERTH_CFG_TABLE;
            ret->v = runtimes_names;
            ret->n = 1;
            return 0;
          }
        if (strcmp (cfg_vals[i], "true") == 0 || strcmp (cfg_vals[i], "false") == 0)
          {
            ret->type = BERTH_CFG_BOOL;
            ret->b = cfg_vals[i][0] == 't';
            return 0;
          }
        if (cfg_vals[i][0] && strspn (cfg_vals[i], "0123456789") == strlen (cfg_vals[i]))
          {
            ret->type = BERTH_CFG_INT;
            ret->i = strtoll (cfg_vals[i], NULL, 10);
            return 0;
          }
        ret->type = BERTH_CFG_STRING;
        ret->s = cfg_vals[i];
        return 0;
      }
  return BERTH_E_NOTFOUND;
}

static int
host_ctx_cancelled (const berth_ctx *ctx)
{
  return __atomic_load_n (&ctx->cancelled, __ATOMIC_SEQ_CST);
}

static const char *
host_ctx_get (const berth_ctx *ctx, const char *key)
{
  return strcmp (key, "namespace") == 0 ? ctx->ns : NULL;
}

static int
host_buf_append (berth_buf *b, const void *data, size_t len)
{
  if (b->len + len >= sizeof b->data)
    return BERTH_E_NOMEM;
  memcpy (b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

static int
host_set_export (berth_plugin *p, const char *key, const char *value)
{
  return 0;
}

static int
host_publish (berth_plugin *p, const char *ns, const char *topic, const char *const *fields)
{
  pthread_mutex_lock (&ev_lock);
  if (n_events < sizeof events / sizeof events[0])
    {
      struct event *e = &events[n_events++];
      memset (e, 0, sizeof *e);
      snprintf (e->topic, sizeof e->topic, "%s", topic);
      e->exit_status = -1;
      for (size_t i = 0; fields[i] && fields[i + 1]; i += 2)
        {
          if (strcmp (fields[i], "container_id") == 0)
            snprintf (e->id, sizeof e->id, "%s", fields[i + 1]);
          else if (strcmp (fields[i], "id") == 0)
            snprintf (e->exec_id, sizeof e->exec_id, "%s", fields[i + 1]);
          else if (strcmp (fields[i], "exit_status") == 0)
            e->exit_status = atoi (fields[i + 1]);
        }
    }
  pthread_cond_broadcast (&ev_cond);
  pthread_mutex_unlock (&ev_lock);
  return 0;
}

static const struct berth_host host = {
  .size = sizeof (struct berth_host),
  .abi_major = BERTH_ABI_MAJOR,
  .abi_minor = BERTH_ABI_MINOR,
  .log = host_log,
  .error_set = host_error_set,
  .error_wrap = host_error_wrap,
  .cfg_get = host_cfg_get,
  .ctx_cancelled = host_ctx_cancelled,
  .ctx_get = host_ctx_get,
  .buf_append = host_buf_append,
  .set_export = host_set_export,
  .publish = host_publish,
};

/* The exit status of the first /tasks/exit for (id, exec_id), waiting up to
 * timeout_s; -1 when none came. */
static int
await_exit_event (const char *id, const char *exec_id, int timeout_s)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_s;
  pthread_mutex_lock (&ev_lock);
  int found = -1;
  for (;;)
    {
      for (size_t i = 0; i < n_events && found < 0; i++)
        if (strcmp (events[i].topic, "/tasks/exit") == 0 && strcmp (events[i].id, id) == 0
            && strcmp (events[i].exec_id, exec_id) == 0)
          found = events[i].exit_status;
      if (found >= 0 || pthread_cond_timedwait (&ev_cond, &ev_lock, &ts) == ETIMEDOUT)
        break;
    }
  pthread_mutex_unlock (&ev_lock);
  return found;
}

static size_t
count_exit_events (const char *id)
{
  size_t n = 0;
  pthread_mutex_lock (&ev_lock);
  for (size_t i = 0; i < n_events; i++)
    n += strcmp (events[i].topic, "/tasks/exit") == 0 && strcmp (events[i].id, id) == 0
         && strcmp (events[i].exec_id, id) == 0;
  pthread_mutex_unlock (&ev_lock);
  return n;
}

/* ---- fixtures -------------------------------------------------------------- */

static char workdir[64];
static char shim_path[4096];
static char runc_path[64] = "/usr/sbin/runc";
static char skip_reason[4608];

#define SKIP_IF_NEEDED()                                                                                               \
  do                                                                                                                   \
    {                                                                                                                  \
      if (skip_reason[0])                                                                                              \
        {                                                                                                              \
          fprintf (stderr, "SKIP: %s: %s\n", __func__, skip_reason);                                                   \
          return;                                                                                                      \
        }                                                                                                              \
    }                                                                                                                  \
  while (0)

static char *
join (const char *fmt, ...)
{
  va_list ap;
  char *p = NULL;
  va_start (ap, fmt);
  ck_assert_int_ge (vasprintf (&p, fmt, ap), 0);
  va_end (ap);
  return p;
}

static bool
exists (const char *path)
{
  struct stat st;
  return lstat (path, &st) == 0;
}

/* A bundle: busybox-static rootfs, `runc spec` with args and no terminal. */
static char *
make_bundle (const char *name, const char *script)
{
  char *dir = join ("%s/bundles/%s", workdir, name);
  char *cmd = join ("mkdir -p '%s/rootfs/bin' && cp /bin/busybox '%s/rootfs/bin/busybox' && "
                    "for c in sh true sleep echo cat; do ln -sf busybox '%s/rootfs/bin/'$c; done && "
                    "cd '%s' && rm -f config.json && %s spec",
                    dir, dir, dir, dir, runc_path);
  ck_assert_msg (system (cmd) == 0, "%s failed", cmd);
  free (cmd);
  char *cfg = join ("%s/config.json", dir);
  json_object *spec = json_object_from_file (cfg);
  ck_assert_ptr_nonnull (spec);
  json_object *process;
  ck_assert (json_object_object_get_ex (spec, "process", &process));
  json_object_object_add (process, "terminal", json_object_new_boolean (0));
  json_object *args = json_object_new_array ();
  json_object_array_add (args, json_object_new_string ("/bin/sh"));
  json_object_array_add (args, json_object_new_string ("-c"));
  json_object_array_add (args, json_object_new_string (script));
  json_object_object_add (process, "args", args);
  ck_assert_int_eq (json_object_to_file (cfg, spec), 0);
  json_object_put (spec);
  free (cfg);
  return dir;
}

struct rt
{
  const struct berth_plugin_desc *desc;
  const struct berth_runtime_ops *ops;
  void *self;
  struct berth_plugin plugin;
  char *state;
  berth_ctx ctx;
};

static int
rt_init (struct rt *r, berth_plugin_entry_fn entry, const char *state, berth_error *err)
{
  memset (r, 0, sizeof *r);
  r->desc = entry ()[0];
  r->ops = r->desc->ops;
  r->plugin.name = r->desc->id;
  r->state = strdup (state);
  r->ctx.ns = "default";
  mkdir (state, 0711);
  struct berth_init_ctx ictx = { .size = sizeof ictx, .plugin = &r->plugin, .root = state, .state = state };
  return r->desc->init (&host, &ictx, &r->self, err);
}

static void
rt_fini (struct rt *r)
{
  r->desc->fini (r->self);
  r->self = NULL;
  free (r->state);
}

static void
oci_open (struct rt *r, const char *state)
{
  n_cfg = 0;
  cfg_set ("shim_binary", shim_path);
  berth_error e = { 0 };
  int rc = rt_init (r, berth_runtime_oci_entry, state, &e);
  ck_assert_msg (rc == 0, "oci init = %d: %s", rc, e.msg);
}

#define ck_ok(call)                                                                                                    \
  do                                                                                                                   \
    {                                                                                                                  \
      berth_error e_ = { 0 };                                                                                          \
      berth_error *err = &e_;                                                                                          \
      int r_ = (call);                                                                                                 \
      ck_assert_msg (r_ == 0, "%s = %d: %s", #call, r_, e_.msg);                                                       \
    }                                                                                                                  \
  while (0)

static void
create_task (struct rt *r, const char *id, const char *bundle, const char *options, uint32_t *ret_status,
             int32_t *ret_pid)
{
  struct berth_task_create req = { .size = sizeof req, .id = id, .bundle = bundle, .options_json = options };
  req.io.size = sizeof req.io;
  struct berth_process_state st = { .size = sizeof st };
  ck_ok (r->ops->create (r->self, &r->ctx, &req, &st, err));
  *ret_status = st.status;
  *ret_pid = st.pid;
}

static struct berth_process_state
task_state (struct rt *r, const char *id, const char *exec_id)
{
  struct berth_process_state st = { .size = sizeof st };
  ck_ok (r->ops->state (r->self, &r->ctx, id, exec_id, &st, err));
  return st;
}

static bool
pid_alive (int32_t pid)
{
  char path[64], buf[512];
  snprintf (path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen (path, "r");
  if (f == NULL)
    return false;
  bool alive = fgets (buf, sizeof buf, f) != NULL;
  fclose (f);
  char *p = strrchr (buf, ')');
  return alive && p && p[2] != 'Z' && p[2] != 'X';
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST (test_namespaces_plugin_skips_without_berth_runtime)
{
  n_cfg = 0;
  cfg_set ("binary", "/nonexistent/berth-runtime");
  struct rt r;
  char *state = join ("%s/ns-state", workdir);
  berth_error e = { 0 };
  int rc = rt_init (&r, berth_runtime_namespaces_entry, state, &e);
  ck_assert_int_eq (rc, BERTH_E_SKIP);
  ck_assert_msg (strstr (e.msg, "/nonexistent/berth-runtime") != NULL, "%s", e.msg);
  free (r.state);
  free (state);
}
END_TEST

START_TEST (test_unknown_and_missing_runtimes_are_refused_at_create)
{
  SKIP_IF_NEEDED ();
  n_cfg = 0;
  cfg_set ("shim_binary", shim_path);
  cfg_set ("runtimes", "ghost");
  cfg_set ("runtimes.ghost.binary", "/nonexistent/ghost-runc");
  struct rt r;
  char *state = join ("%s/refuse", workdir);
  berth_error e = { 0 };
  ck_assert_msg (rt_init (&r, berth_runtime_oci_entry, state, &e) == 0, "%s", e.msg);
  char *bundle = make_bundle ("refuse", "true");
  struct berth_task_create req = { .size = sizeof req, .id = "t1", .bundle = bundle };
  struct berth_process_state st = { .size = sizeof st };

  req.options_json = "{\"runtime\":\"ghost\"}";
  memset (&e, 0, sizeof e);
  ck_assert_int_eq (r.ops->create (r.self, &r.ctx, &req, &st, &e), BERTH_E_PRECONDITION);
  ck_assert_msg (strstr (e.msg, "ghost") && strstr (e.msg, "/nonexistent/ghost-runc"), "%s", e.msg);

  req.options_json = "{\"runtime\":\"nope\"}";
  memset (&e, 0, sizeof e);
  ck_assert_int_eq (r.ops->create (r.self, &r.ctx, &req, &st, &e), BERTH_E_INVALID);
  ck_assert_msg (strstr (e.msg, "unknown OCI runtime `nope`") && strstr (e.msg, "runc, crun, ghost"), "%s", e.msg);

  req.options_json = "[1]";
  memset (&e, 0, sizeof e);
  ck_assert_int_eq (r.ops->create (r.self, &r.ctx, &req, &st, &e), BERTH_E_INVALID);

  req.options_json = NULL;
  req.id = "../escape";
  memset (&e, 0, sizeof e);
  ck_assert_int_eq (r.ops->create (r.self, &r.ctx, &req, &st, &e), BERTH_E_INVALID);
  ck_assert_msg (strstr (e.msg, "not a valid identifier"), "%s", e.msg);

  /* A failing runtime create: the reason reaches the caller, nothing stays. */
  char *cfg = join ("%s/config.json", bundle);
  unlink (cfg);
  req.id = "t2";
  memset (&e, 0, sizeof e);
  ck_assert_int_eq (r.ops->create (r.self, &r.ctx, &req, &st, &e), BERTH_E_INVALID);
  ck_assert_msg (strstr (e.msg, "config.json"), "%s", e.msg);

  char *taskdir = join ("%s/default/t2", state);
  ck_assert (!exists (taskdir));
  rt_fini (&r);
  free (taskdir);
  free (cfg);
  free (bundle);
  free (state);
}
END_TEST

START_TEST (test_a_task_runs_to_its_exit_status_and_is_deleted)
{
  SKIP_IF_NEEDED ();
  struct rt r;
  char *state = join ("%s/exit", workdir);
  oci_open (&r, state);
  char *bundle = make_bundle ("exit", "exit 7");
  uint32_t status;
  int32_t pid;
  create_task (&r, "exit7", bundle, "{\"runtime\":\"runc\"}", &status, &pid);
  ck_assert_int_eq (status, BERTH_TASK_CREATED);
  ck_assert_int_gt (pid, 0);
  ck_assert_int_eq (task_state (&r, "exit7", NULL).status, BERTH_TASK_CREATED);
  int32_t spid = 0;
  ck_ok (r.ops->start (r.self, &r.ctx, "exit7", NULL, &spid, err));
  ck_assert_int_eq (spid, pid);
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "exit7", NULL, &ex, err));
  ck_assert_int_eq (ex.exit_status, 7);
  ck_assert_int_gt (ex.exited_at, 0);
  ck_assert_int_eq (await_exit_event ("exit7", "exit7", 10), 7);
  struct berth_process_state st = task_state (&r, "exit7", NULL);
  ck_assert_int_eq (st.status, BERTH_TASK_STOPPED);
  ck_assert_int_eq (st.exit_status, 7);
  struct berth_task_exit dx = { .size = sizeof dx };
  ck_ok (r.ops->delete (r.self, &r.ctx, "exit7", NULL, &dx, err));
  ck_assert_int_eq (dx.exit_status, 7);
  char *taskdir = join ("%s/default/exit7", state);
  ck_assert_msg (!exists (taskdir), "%s is still there", taskdir);
  berth_error e = { 0 };
  ck_assert_int_eq (r.ops->state (r.self, &r.ctx, "exit7", NULL, &st, &e), BERTH_E_NOTFOUND);
  ck_assert_int_eq (count_exit_events ("exit7"), 1);
  rt_fini (&r);
  free (taskdir);
  free (bundle);
  free (state);
}
END_TEST

static int
collect_pid (int32_t pid, const char *exec_id, void *data)
{
  int32_t *pids = data;
  for (int i = 0; i < 63; i++)
    if (pids[i] == 0)
      {
        pids[i] = pid;
        break;
      }
  return 0;
}

START_TEST (test_exec_pids_kill_and_wait_on_a_running_task)
{
  SKIP_IF_NEEDED ();
  struct rt r;
  char *state = join ("%s/exec", workdir);
  oci_open (&r, state);
  char *bundle = make_bundle ("exec", "sleep 60");
  uint32_t status;
  int32_t pid;
  create_task (&r, "sleeper", bundle, NULL, &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "sleeper", NULL, NULL, err));
  ck_assert_int_eq (task_state (&r, "sleeper", NULL).status, BERTH_TASK_RUNNING);

  int32_t pids[64] = { 0 };
  ck_ok (r.ops->pids (r.self, &r.ctx, "sleeper", collect_pid, pids, err));
  ck_assert_int_eq (pids[0], pid);

  const char *proc = "{\"args\":[\"/bin/sh\",\"-c\",\"exit 3\"],\"cwd\":\"/\",\"env\":[\"PATH=/bin\"],"
                     "\"user\":{\"uid\":0,\"gid\":0},\"terminal\":false}";
  struct berth_task_io io = { .size = sizeof io };
  ck_ok (r.ops->exec (r.self, &r.ctx, "sleeper", "ex1", proc, &io, err));
  int32_t epid = 0;
  ck_ok (r.ops->start (r.self, &r.ctx, "sleeper", "ex1", &epid, err));
  ck_assert_int_gt (epid, 0);
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "sleeper", "ex1", &ex, err));
  ck_assert_int_eq (ex.exit_status, 3);
  ck_assert_int_eq (await_exit_event ("sleeper", "ex1", 10), 3);
  ck_ok (r.ops->delete (r.self, &r.ctx, "sleeper", "ex1", &ex, err));

  /* Deleting a running init is refused by the runtime. */
  berth_error e = { 0 };
  ck_assert_int_lt (r.ops->delete (r.self, &r.ctx, "sleeper", NULL, &ex, &e), 0);
  ck_assert_int_eq (task_state (&r, "sleeper", NULL).status, BERTH_TASK_RUNNING);

  ck_ok (r.ops->kill (r.self, &r.ctx, "sleeper", NULL, SIGKILL, 0, err));
  ck_ok (r.ops->wait (r.self, &r.ctx, "sleeper", NULL, &ex, err));
  ck_assert_int_eq (ex.exit_status, 128 + SIGKILL);
  ck_assert_int_eq (await_exit_event ("sleeper", "sleeper", 10), 128 + SIGKILL);
  ck_ok (r.ops->delete (r.self, &r.ctx, "sleeper", NULL, &ex, err));
  ck_assert (!pid_alive (pid));
  rt_fini (&r);
  free (bundle);
  free (state);
}
END_TEST

static int
count_task (const char *ns, const char *id, const struct berth_process_state *st, void *data)
{
  struct berth_process_state *out = data;
  if (strcmp (id, "survivor") == 0)
    *out = *st;
  return 0;
}

START_TEST (test_a_restarted_runtime_reconnects_and_lists_its_tasks)
{
  SKIP_IF_NEEDED ();
  struct rt r;
  char *state = join ("%s/restart", workdir);
  oci_open (&r, state);
  char *bundle = make_bundle ("restart", "sleep 60");
  uint32_t status;
  int32_t pid;
  create_task (&r, "survivor", bundle, NULL, &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "survivor", NULL, NULL, err));
  int32_t pid2;
  create_task (&r, "ended", bundle, NULL, &status, &pid2);
  ck_ok (r.ops->start (r.self, &r.ctx, "ended", NULL, NULL, err));
  rt_fini (&r); /* berthd goes away; the shims stay */
  ck_assert (pid_alive (pid));
  /* One container dies while nobody listens: its exit must still be told. */
  char *cmd = join ("%s --root %s/default/ended/runtime kill ended KILL", runc_path, state);
  ck_assert_int_eq (system (cmd), 0);
  free (cmd);
  for (int i = 0; i < 100 && pid_alive (pid2); i++)
    usleep (20 * 1000);

  oci_open (&r, state);
  struct berth_process_state st = { .size = sizeof st, .status = 99 };
  ck_ok (r.ops->list (r.self, &r.ctx, count_task, &st, err));
  ck_assert_int_eq (st.status, BERTH_TASK_RUNNING);
  ck_assert_int_eq (st.pid, pid);
  ck_assert_int_eq (await_exit_event ("ended", "ended", 10), 128 + SIGKILL);
  struct berth_process_state st2 = task_state (&r, "ended", NULL);
  ck_assert_int_eq (st2.status, BERTH_TASK_STOPPED);
  ck_assert_int_eq (st2.exit_status, 128 + SIGKILL);
  struct berth_task_exit ex2 = { .size = sizeof ex2 };
  ck_ok (r.ops->delete (r.self, &r.ctx, "ended", NULL, &ex2, err));
  ck_assert_int_eq (ex2.exit_status, 128 + SIGKILL);
  ck_ok (r.ops->kill (r.self, &r.ctx, "survivor", NULL, SIGKILL, 1, err));
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "survivor", NULL, &ex, err));
  ck_assert_int_eq (ex.exit_status, 128 + SIGKILL);
  ck_assert_int_eq (await_exit_event ("survivor", "survivor", 10), 128 + SIGKILL);
  ck_ok (r.ops->delete (r.self, &r.ctx, "survivor", NULL, &ex, err));
  rt_fini (&r);
  free (bundle);
  free (state);
}
END_TEST

START_TEST (test_a_killed_shim_reports_255_and_leaves_nothing)
{
  SKIP_IF_NEEDED ();
  struct rt r;
  char *state = join ("%s/vanish", workdir);
  oci_open (&r, state);
  char *bundle = make_bundle ("vanish", "sleep 60");
  uint32_t status;
  int32_t pid;
  create_task (&r, "victim", bundle, NULL, &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "victim", NULL, NULL, err));
  char *pidfile = join ("%s/default/victim/shim.pid", state);
  FILE *f = fopen (pidfile, "r");
  ck_assert_msg (f != NULL, "no %s", pidfile);
  int shim_pid = 0;
  ck_assert_int_eq (fscanf (f, "%d", &shim_pid), 1);
  fclose (f);
  ck_assert_int_eq (kill (shim_pid, SIGKILL), 0);

  ck_assert_int_eq (await_exit_event ("victim", "victim", 20), 255);
  struct berth_process_state st = task_state (&r, "victim", NULL);
  ck_assert_int_eq (st.status, BERTH_TASK_STOPPED);
  ck_assert_int_eq (st.exit_status, 255);
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "victim", NULL, &ex, err));
  ck_assert_int_eq (ex.exit_status, 255);
  for (int i = 0; i < 100 && pid_alive (pid); i++)
    usleep (50 * 1000);
  ck_assert_msg (!pid_alive (pid), "the container's process %d is still alive", pid);
  char *taskdir = join ("%s/default/victim", state);
  for (int i = 0; i < 100 && exists (taskdir); i++)
    usleep (50 * 1000);
  ck_assert_msg (!exists (taskdir), "%s is still there", taskdir);
  ck_ok (r.ops->delete (r.self, &r.ctx, "victim", NULL, &ex, err));
  ck_assert_int_eq (count_exit_events ("victim"), 1);
  rt_fini (&r);
  free (taskdir);
  free (pidfile);
  free (bundle);
  free (state);
}
END_TEST

static int64_t now_us (void);

/* A shim killed while berthd is down: found at reconnect, reported 255 once. */
START_TEST (test_a_shim_gone_while_down_is_reported_at_reconnect)
{
  SKIP_IF_NEEDED ();
  struct rt r;
  char *state = join ("%s/gone-down", workdir);
  oci_open (&r, state);
  char *bundle = make_bundle ("gone-down", "sleep 60");
  uint32_t status;
  int32_t pid;
  create_task (&r, "orphan", bundle, NULL, &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "orphan", NULL, NULL, err));
  rt_fini (&r);
  char *pidfile = join ("%s/default/orphan/shim.pid", state);
  FILE *f = fopen (pidfile, "r");
  ck_assert_ptr_nonnull (f);
  int shim_pid = 0;
  ck_assert_int_eq (fscanf (f, "%d", &shim_pid), 1);
  fclose (f);
  ck_assert_int_eq (kill (shim_pid, SIGKILL), 0);
  for (int i = 0; i < 100 && pid_alive (shim_pid); i++)
    usleep (20 * 1000);

  oci_open (&r, state);
  ck_assert_int_eq (await_exit_event ("orphan", "orphan", 10), 255);
  struct berth_process_state st = task_state (&r, "orphan", NULL);
  ck_assert_int_eq (st.status, BERTH_TASK_STOPPED);
  ck_assert_int_eq (st.exit_status, 255);
  for (int i = 0; i < 100 && pid_alive (pid); i++)
    usleep (50 * 1000);
  ck_assert_msg (!pid_alive (pid), "the container's process %d is still alive", pid);
  char *taskdir = join ("%s/default/orphan", state);
  ck_assert_msg (!exists (taskdir), "%s is still there", taskdir);
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->delete (r.self, &r.ctx, "orphan", NULL, &ex, err));
  ck_assert_int_eq (ex.exit_status, 255);
  rt_fini (&r);
  free (taskdir);
  free (pidfile);
  free (bundle);
  free (state);
}
END_TEST

/* A shim that does not answer (SIGSTOP) costs one call deadline, not a hang. */
START_TEST (test_a_stuck_shim_answers_unknown_within_the_deadline)
{
  SKIP_IF_NEEDED ();
  n_cfg = 0;
  cfg_set ("shim_binary", shim_path);
  cfg_set ("call_timeout_ms", "1000");
  struct rt r;
  char *state = join ("%s/stuck", workdir);
  berth_error e = { 0 };
  ck_assert_msg (rt_init (&r, berth_runtime_oci_entry, state, &e) == 0, "%s", e.msg);
  char *bundle = make_bundle ("stuck", "sleep 60");
  uint32_t status;
  int32_t pid;
  create_task (&r, "stuck", bundle, NULL, &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "stuck", NULL, NULL, err));
  char *pidfile = join ("%s/default/stuck/shim.pid", state);
  FILE *f = fopen (pidfile, "r");
  ck_assert_ptr_nonnull (f);
  int shim_pid = 0;
  ck_assert_int_eq (fscanf (f, "%d", &shim_pid), 1);
  fclose (f);
  ck_assert_int_eq (kill (shim_pid, SIGSTOP), 0);

  int64_t t0 = now_us ();
  struct berth_process_state st = task_state (&r, "stuck", NULL);
  int64_t took = now_us () - t0;
  ck_assert_int_eq (st.status, BERTH_TASK_UNKNOWN);
  ck_assert_int_eq (st.pid, pid);
  ck_assert_msg (took >= 900000 && took < 3000000, "state took %lld us", (long long)took);
  ck_assert_int_eq (r.ops->kill (r.self, &r.ctx, "stuck", NULL, SIGKILL, 0, &e), BERTH_E_DEADLINE);
  ck_assert_msg (strstr (e.msg, "did not answer `kill` within 1000 ms"), "%s", e.msg);

  ck_assert_int_eq (kill (shim_pid, SIGCONT), 0);
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "stuck", NULL, &ex, err)); /* the late kill went through */
  ck_assert_int_eq (ex.exit_status, 128 + SIGKILL);
  ck_ok (r.ops->delete (r.self, &r.ctx, "stuck", NULL, &ex, err));
  rt_fini (&r);
  free (pidfile);
  free (bundle);
  free (state);
}
END_TEST

/* A stopped shim accepts nothing: once its listen backlog is full a
 * blocking connect() would wait for ever.  The call must fail at once,
 * naming the shim's pid. */
START_TEST (test_a_stopped_shim_with_a_full_backlog_fails_at_once)
{
  SKIP_IF_NEEDED ();
  n_cfg = 0;
  cfg_set ("shim_binary", shim_path);
  cfg_set ("call_timeout_ms", "5000");
  struct rt r;
  char *state = join ("%s/backlog", workdir);
  berth_error e = { 0 };
  ck_assert_msg (rt_init (&r, berth_runtime_oci_entry, state, &e) == 0, "%s", e.msg);
  char *bundle = make_bundle ("backlog", "sleep 60");
  uint32_t status;
  int32_t pid;
  create_task (&r, "backlog", bundle, NULL, &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "backlog", NULL, NULL, err));
  char *pidfile = join ("%s/default/backlog/shim.pid", state);
  FILE *f = fopen (pidfile, "r");
  ck_assert_ptr_nonnull (f);
  int shim_pid = 0;
  ck_assert_int_eq (fscanf (f, "%d", &shim_pid), 1);
  fclose (f);
  ck_assert_int_eq (kill (shim_pid, SIGSTOP), 0);

  /* Fill the backlog. */
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  char *sock = join ("%s/default/backlog/shim.sock", state);
  ck_assert_uint_lt (strlen (sock), sizeof sa.sun_path);
  strcpy (sa.sun_path, sock);
  int fill[256], n = 0;
  for (; n < 256; n++)
    {
      fill[n] = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      ck_assert_int_ge (fill[n], 0);
      if (connect (fill[n], (struct sockaddr *)&sa, sizeof sa) < 0)
        {
          ck_assert_int_eq (errno, EAGAIN);
          close (fill[n]);
          break;
        }
    }
  ck_assert_int_lt (n, 256);

  int64_t t0 = now_us ();
  ck_assert_int_eq (r.ops->kill (r.self, &r.ctx, "backlog", NULL, SIGKILL, 0, &e), BERTH_E_DEADLINE);
  int64_t took = now_us () - t0;
  ck_assert_msg (took < 1000000, "kill took %lld us", (long long)took);
  char want[64];
  snprintf (want, sizeof want, "berth-shim (pid %d)", shim_pid);
  ck_assert_msg (strstr (e.msg, want) && strstr (e.msg, "accepts no connection"), "%s", e.msg);
  struct berth_process_state st = task_state (&r, "backlog", NULL);
  ck_assert_int_eq (st.status, BERTH_TASK_UNKNOWN);

  for (int i = 0; i < n; i++)
    close (fill[i]);
  ck_assert_int_eq (kill (shim_pid, SIGCONT), 0);
  /* The resumed shim first drains the dead connections of its backlog. */
  int kr = BERTH_E_DEADLINE;
  for (int i = 0; i < 100 && kr == BERTH_E_DEADLINE; i++)
    {
      berth_error e2 = { 0 };
      if ((kr = r.ops->kill (r.self, &r.ctx, "backlog", NULL, SIGKILL, 0, &e2)) == BERTH_E_DEADLINE)
        usleep (20 * 1000);
    }
  ck_assert_int_eq (kr, 0);
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "backlog", NULL, &ex, err));
  ck_ok (r.ops->delete (r.self, &r.ctx, "backlog", NULL, &ex, err));
  rt_fini (&r);
  free (sock);
  free (pidfile);
  free (bundle);
  free (state);
}
END_TEST

START_TEST (test_wait_returns_when_cancelled)
{
  SKIP_IF_NEEDED ();
  struct rt r;
  char *state = join ("%s/cancel", workdir);
  oci_open (&r, state);
  char *bundle = make_bundle ("cancel", "sleep 60");
  uint32_t status;
  int32_t pid;
  create_task (&r, "waited", bundle, NULL, &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "waited", NULL, NULL, err));
  berth_ctx ctx = { .ns = "default", .cancelled = 1 };
  struct berth_task_exit ex = { .size = sizeof ex };
  berth_error e = { 0 };
  ck_assert_int_eq (r.ops->wait (r.self, &ctx, "waited", NULL, &ex, &e), BERTH_E_CANCELLED);
  ck_ok (r.ops->kill (r.self, &r.ctx, "waited", NULL, SIGKILL, 0, err));
  ck_ok (r.ops->wait (r.self, &r.ctx, "waited", NULL, &ex, err));
  ck_ok (r.ops->delete (r.self, &r.ctx, "waited", NULL, &ex, err));
  rt_fini (&r);
  free (bundle);
  free (state);
}
END_TEST

START_TEST (test_crun_runs_on_this_host)
{
  SKIP_IF_NEEDED ();
  if (access ("/usr/bin/crun", X_OK) < 0)
    {
      fprintf (stderr, "SKIP: %s: /usr/bin/crun is not installed\n", __func__);
      return;
    }
  struct rt r;
  char *state = join ("%s/crun", workdir);
  oci_open (&r, state);
  /* With a cgroup namespace too: the case crun 1.8 refuses on hybrid hosts. */
  char *bundle = make_bundle ("crun", "exit 5");
  char *cfg = join ("%s/config.json", bundle);
  json_object *spec = json_object_from_file (cfg);
  json_object *linux_, *nss;
  ck_assert (json_object_object_get_ex (spec, "linux", &linux_)
             && json_object_object_get_ex (linux_, "namespaces", &nss));
  json_object *cg = json_object_new_object ();
  json_object_object_add (cg, "type", json_object_new_string ("cgroup"));
  json_object_array_add (nss, cg);
  ck_assert_int_eq (json_object_to_file (cfg, spec), 0);
  json_object_put (spec);
  uint32_t status;
  int32_t pid;
  create_task (&r, "crun1", bundle, "{\"runtime\":\"crun\"}", &status, &pid);
  ck_ok (r.ops->start (r.self, &r.ctx, "crun1", NULL, NULL, err));
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "crun1", NULL, &ex, err));
  ck_assert_int_eq (ex.exit_status, 5);
  ck_ok (r.ops->delete (r.self, &r.ctx, "crun1", NULL, &ex, err));
  rt_fini (&r);
  free (cfg);
  free (bundle);
  free (state);
}
END_TEST

/* The namespaces plugin drives berth-runtime the same way (when built). */
START_TEST (test_the_namespaces_runtime_runs_a_task)
{
  SKIP_IF_NEEDED ();
  char *bin = join ("%s/berth-runtime", TOP_BUILDDIR);
  if (access (bin, X_OK) < 0)
    {
      fprintf (stderr, "SKIP: %s: %s is not built\n", __func__, bin);
      free (bin);
      return;
    }
  n_cfg = 0;
  cfg_set ("shim_binary", shim_path);
  cfg_set ("binary", bin);
  struct rt r;
  char *state = join ("%s/nsrt", workdir);
  berth_error e = { 0 };
  ck_assert_msg (rt_init (&r, berth_runtime_namespaces_entry, state, &e) == 0, "%s", e.msg);
  char *bundle = make_bundle ("nsrt", "exit 9");
  uint32_t status;
  int32_t pid;
  create_task (&r, "ns1", bundle, NULL, &status, &pid);
  ck_assert_int_eq (status, BERTH_TASK_CREATED);
  ck_ok (r.ops->start (r.self, &r.ctx, "ns1", NULL, NULL, err));
  struct berth_task_exit ex = { .size = sizeof ex };
  ck_ok (r.ops->wait (r.self, &r.ctx, "ns1", NULL, &ex, err));
  ck_assert_int_eq (ex.exit_status, 9);
  ck_assert_int_eq (await_exit_event ("ns1", "ns1", 10), 9);
  ck_ok (r.ops->delete (r.self, &r.ctx, "ns1", NULL, &ex, err));
  rt_fini (&r);
  free (bundle);
  free (state);
  free (bin);
}
END_TEST

/* On this host crun 1.8 fails with "cgroups in hybrid mode not supported"
 * unless crun_hide_cgroup2 is on; off, the refusal names the cause and the fix. */
START_TEST (test_crun_on_a_hybrid_host_is_refused_with_the_fix_when_asked)
{
  SKIP_IF_NEEDED ();
  char ctl[256] = "";
  FILE *f = fopen ("/sys/fs/cgroup/unified/cgroup.controllers", "r");
  if (f == NULL || fgets (ctl, sizeof ctl, f) == NULL || ctl[0] == '\n' || access ("/usr/bin/crun", X_OK) < 0)
    {
      if (f)
        fclose (f);
      fprintf (stderr, "SKIP: %s: not a hybrid host with cgroup v2 controllers, or no crun\n", __func__);
      return;
    }
  fclose (f);
  n_cfg = 0;
  cfg_set ("shim_binary", shim_path);
  cfg_set ("crun_hide_cgroup2", "false");
  struct rt r;
  char *state = join ("%s/crun-refused", workdir);
  berth_error e = { 0 };
  ck_assert_msg (rt_init (&r, berth_runtime_oci_entry, state, &e) == 0, "%s", e.msg);
  char *bundle = make_bundle ("crun-refused", "true");
  struct berth_task_create req
      = { .size = sizeof req, .id = "c1", .bundle = bundle, .options_json = "{\"runtime\":\"crun\"}" };
  struct berth_process_state st = { .size = sizeof st };
  ck_assert_int_eq (r.ops->create (r.self, &r.ctx, &req, &st, &e), BERTH_E_PRECONDITION);
  ck_assert_msg (strstr (e.msg, "hybrid") && strstr (e.msg, "mount -t cgroup") && strstr (e.msg, "crun_hide_cgroup2"),
                 "%s", e.msg);
  rt_fini (&r);
  free (bundle);
  free (state);
}
END_TEST

static int64_t
now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
cmp64 (const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

START_TEST (test_bench_true_with_runc)
{
  SKIP_IF_NEEDED ();
  if (getenv ("BERTH_SHIMRT_BENCH") == NULL)
    return;
  struct rt r;
  char *state = join ("%s/bench", workdir);
  oci_open (&r, state);
  char *bundle = make_bundle ("bench", "true");
  int64_t t[10];
  for (int i = 0; i < 10; i++)
    {
      char id[16];
      snprintf (id, sizeof id, "b%d", i);
      int64_t t0 = now_us ();
      uint32_t status;
      int32_t pid;
      create_task (&r, id, bundle, NULL, &status, &pid);
      ck_ok (r.ops->start (r.self, &r.ctx, id, NULL, NULL, err));
      struct berth_task_exit ex = { .size = sizeof ex };
      ck_ok (r.ops->wait (r.self, &r.ctx, id, NULL, &ex, err));
      ck_ok (r.ops->delete (r.self, &r.ctx, id, NULL, &ex, err));
      t[i] = now_us () - t0;
    }
  qsort (t, 10, sizeof t[0], cmp64);
  fprintf (stderr, "BENCH: create+start+wait+delete of `true` with runc: median %.1f ms (min %.1f, max %.1f)\n",
           (t[4] + t[5]) / 2000.0, t[0] / 1000.0, t[9] / 1000.0);
  rt_fini (&r);
  free (bundle);
  free (state);
}
END_TEST

static Suite *
shimrt_suite (void)
{
  Suite *su = suite_create ("shimrt");
  TCase *tc = tcase_create ("shimrt");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_namespaces_plugin_skips_without_berth_runtime);
  tcase_add_test (tc, test_unknown_and_missing_runtimes_are_refused_at_create);
  tcase_add_test (tc, test_a_task_runs_to_its_exit_status_and_is_deleted);
  tcase_add_test (tc, test_exec_pids_kill_and_wait_on_a_running_task);
  tcase_add_test (tc, test_a_restarted_runtime_reconnects_and_lists_its_tasks);
  tcase_add_test (tc, test_a_killed_shim_reports_255_and_leaves_nothing);
  tcase_add_test (tc, test_wait_returns_when_cancelled);
  tcase_add_test (tc, test_a_stuck_shim_answers_unknown_within_the_deadline);
  tcase_add_test (tc, test_a_stopped_shim_with_a_full_backlog_fails_at_once);
  tcase_add_test (tc, test_a_shim_gone_while_down_is_reported_at_reconnect);
  tcase_add_test (tc, test_crun_runs_on_this_host);
  tcase_add_test (tc, test_the_namespaces_runtime_runs_a_task);
  tcase_add_test (tc, test_crun_on_a_hybrid_host_is_refused_with_the_fix_when_asked);
  tcase_add_test (tc, test_bench_true_with_runc);
  suite_add_tcase (su, tc);
  return su;
}

static void
find_shim (void)
{
  const char *env = getenv ("BERTH_SHIM");
  const char *cands[] = { "shim/berth-shim", "berth-shim", NULL };
  if (env && *env)
    {
      snprintf (shim_path, sizeof shim_path, "%s", env);
      return;
    }
  for (size_t i = 0; cands[i]; i++)
    {
      snprintf (shim_path, sizeof shim_path, "%s/%s", TOP_BUILDDIR, cands[i]);
      if (access (shim_path, X_OK) == 0)
        return;
    }
  snprintf (shim_path, sizeof shim_path, "%s/shim/berth-shim", TOP_BUILDDIR);
}

int
main (void)
{
  find_shim ();
  if (geteuid () != 0)
    snprintf (skip_reason, sizeof skip_reason, "needs root to run containers");
  else if (access (runc_path, X_OK) < 0)
    snprintf (skip_reason, sizeof skip_reason, "%s is not installed", runc_path);
  else if (access (shim_path, X_OK) < 0)
    snprintf (skip_reason, sizeof skip_reason, "berth-shim is not built (%s)", shim_path);
  else if (access ("/bin/busybox", X_OK) < 0)
    snprintf (skip_reason, sizeof skip_reason, "/bin/busybox (busybox-static) is not installed");
  snprintf (workdir, sizeof workdir, "/tmp/berth-shimrt.XXXXXX");
  if (mkdtemp (workdir) == NULL)
    {
      perror ("mkdtemp");
      return EXIT_FAILURE;
    }
  SRunner *sr = srunner_create (shimrt_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  char *cmd = NULL;
  if (asprintf (&cmd, "rm -rf '%s'", workdir) >= 0)
    {
      if (system (cmd) != 0)
        fprintf (stderr, "could not remove %s\n", workdir);
      free (cmd);
    }
  if (failed)
    return EXIT_FAILURE;
  if (skip_reason[0])
    {
      printf ("SKIP: %s\n", skip_reason);
      return 77;
    }
  return EXIT_SUCCESS;
}
