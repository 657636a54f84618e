/* berthd: read config.toml, load plugins, keep metadata, serve the API. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builtins.h"
#include "cleanup.h"
#include "fs.h"
#include "gc.h"
#include "daemon.h"
#include "events.h"
#include "fsck.h"
#include "log.h"
#include "pull/lazy.h"
#include "sd-notify.h"
#include "tasks.h"

/* The gRPC server's own lines (connection cap, slow clients). */
static void
grpc_log_line (const char *line)
{
  log_warning ("%s", line);
}

struct options
{
  const char *config_path;
  bool config_given;
  const char *log_level;
  const char *address;
  const char *root;
  const char *state;
};

static void
usage (FILE *out)
{
  fprintf (out,
           "Usage: berthd [OPTIONS]                 run the daemon\n"
           "       berthd config default [--builtins-only]\n"
           "                                       print the default, commented config.toml\n"
           "       berthd config check [FILE]      validate FILE (default: --config) against every plugin\n"
           "\n"
           "Options:\n"
           "  -c, --config FILE     configuration file (default %s)\n"
           "  -l, --log-level LEVEL debug, info, warn or error (overrides [debug] level)\n"
           "  -a, --address PATH    gRPC socket (overrides [grpc] address)\n"
           "      --root DIR        persistent data (overrides root)\n"
           "      --state DIR       runtime state (overrides state)\n"
           "  -v, --version         print the version\n"
           "  -h, --help            this help\n",
           BERTH_CONFIG_DEFAULT_PATH);
}

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
registry_log (void *data, int level, const plugin *p, const char *msg)
{
  log_msg (level, "%s", msg);
}

static int
registry_cfg (void *data, const plugin *p, const char *key, struct berth_cfg_value *ret)
{
  struct berth_config *cfg = data;
  return config_plugin_get (cfg, p->full_name, p->desc.config_keys, key, ret);
}

/* The task manager that plugin events go to; set once it exists (plugins
 * initialise before it: what they publish meanwhile has no subscriber). */
static _Atomic (tasks *) publish_tasks;

static int
registry_publish (void *data, const plugin *p, const char *ns, const char *topic, const char *const *fields)
{
  if (lazy_publish (ns, topic, fields))
    return 0;
  tasks *t = atomic_load (&publish_tasks);
  if (t == NULL)
    {
      log_debug ("event %s (namespace %s) from %s before the task manager is up; dropped", topic, ns ? ns : "-",
                 p->full_name);
      return 0;
    }
  tasks_plugin_event (t, ns, topic, fields);
  return 0;
}

/* Load the descriptors of every plugin (built-in and, unless builtins_only,
 * plugin_dirs) without initialising them.  daemon_mode gives plugins their
 * root and state directories (made at init). */
static int
build_registry (struct berth_config *cfg, bool daemon_mode, bool builtins_only, registry **ret, berth_error **err)
{
  struct plugin_registry_options o = {
    .root = daemon_mode ? cfg->root : NULL,
    .state = daemon_mode ? cfg->state : NULL,
    .address = cfg->grpc.address,
    .disabled = (const char *const *) cfg->disabled_plugins,
    .required = (const char *const *) cfg->required_plugins,
    .check_owner = geteuid () == 0,
    .log = registry_log,
    .cfg = registry_cfg,
    .publish = registry_publish,
    .data = cfg,
  };
  registry *reg = registry_new (&o);
  if (reg == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "plugin registry");
  for (const berth_plugin_entry_fn *e = builtin_plugins; *e; e++)
    {
      _cleanup_error_ berth_error *e2 = NULL;
      registry_add_builtin (reg, *e, &e2); /* refusals are logged; not fatal */
    }
  for (char **dir = cfg->plugin_dirs; !builtins_only && dir && *dir; dir++)
    {
      _cleanup_error_ berth_error *e2 = NULL;
      registry_load_dir (reg, *dir, &e2);
    }
  *ret = reg;
  return 0;
}

static struct config_plugin_schema *
schemas_of (registry *reg, size_t *ret_n)
{
  size_t n = registry_count (reg);
  struct config_plugin_schema *s = calloc (n + 1, sizeof *s);
  for (size_t i = 0; s && i < n; i++)
    {
      plugin *p = registry_at (reg, i);
      s[i].full_name = p->full_name;
      s[i].keys = p->desc.config_keys;
    }
  *ret_n = n;
  return s;
}

static int
load_config (const char *path, bool given, struct berth_config **ret, berth_error **err)
{
  int r = config_load_file (path, ret, err);
  if (r == BERTH_E_NOTFOUND && !given)
    {
      berth_error_free (*err);
      *err = NULL;
      log_info ("no configuration at %s; using the defaults (see `berthd config default`)", path);
      return config_new_default (ret, err);
    }
  return r;
}

static int
cmd_config (int argc, char **argv, struct options *o)
{
  if (argc < 1)
    {
      fprintf (stderr, "berthd config: expected `default` or `check [FILE]`\n");
      return 2;
    }
  log_set_level (BERTH_LOG_ERROR); /* keep stdout clean: plugin refusals still show */
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_config_ struct berth_config *cfg = NULL;
  registry *reg = NULL;
  if (strcmp (argv[0], "default") == 0)
    {
      bool builtins_only = argc > 1 && strcmp (argv[1], "--builtins-only") == 0;
      if (config_new_default (&cfg, &err) < 0 || build_registry (cfg, false, builtins_only, &reg, &err) < 0)
        {
          fprintf (stderr, "berthd config default: %s\n", berth_error_message (err));
          return 1;
        }
      size_t n;
      _cleanup_free_ struct config_plugin_schema *s = schemas_of (reg, &n);
      _cleanup_free_ char *text = s ? config_default_text (s, n) : NULL;
      registry_free (reg);
      if (text == NULL)
        {
          fprintf (stderr, "berthd config default: out of memory\n");
          return 1;
        }
      fputs (text, stdout);
      return 0;
    }
  if (strcmp (argv[0], "check") == 0)
    {
      const char *path = argc > 1 ? argv[1] : o->config_path;
      if (config_load_file (path, &cfg, &err) < 0)
        {
          fprintf (stderr, "%s\n", berth_error_message (err));
          return 1;
        }
      if (build_registry (cfg, false, false, &reg, &err) < 0)
        {
          fprintf (stderr, "berthd config check: %s\n", berth_error_message (err));
          return 1;
        }
      size_t n;
      _cleanup_free_ struct config_plugin_schema *s = schemas_of (reg, &n);
      _cleanup_strv_ char **problems = NULL;
      int count = s ? config_check (cfg, s, n, &problems) : BERTH_E_NOMEM;
      for (char **pr = problems; pr && *pr; pr++)
        fprintf (stderr, "%s\n", *pr);
      for (char **req = cfg->required_plugins; req && *req; req++)
        {
          bool known = false;
          for (size_t i = 0; i < n; i++)
            known = known || strcmp (s[i].full_name, *req) == 0;
          if (!known)
            {
              fprintf (stderr, "%s: required plugin `%s` is not built in and not found in plugin_dirs\n", path, *req);
              count++;
            }
        }
      registry_free (reg);
      if (count < 0)
        {
          fprintf (stderr, "berthd config check: out of memory\n");
          return 1;
        }
      if (count > 0)
        {
          fprintf (stderr, "%s: %d problem%s\n", path, count, count == 1 ? "" : "s");
          return 1;
        }
      printf ("%s: ok\n", path);
      return 0;
    }
  fprintf (stderr, "berthd config: unknown command `%s` (expected `default` or `check [FILE]`)\n", argv[0]);
  return 2;
}

/* Take <dir>/berthd.lock: a second berthd on the same root or state refuses
 * to start instead of sharing (and corrupting) them.  The fd stays open for
 * the daemon's life. */
static int
take_lock (const char *dir, int *ret_fd, berth_error **err)
{
  int r = fs_mkdir_p (dir, 0711);
  if (r < 0)
    return berth_error_set (err, berth_errcode_from_errno (-r), -r, "cannot create %s", dir);
  _cleanup_free_ char *path = NULL;
  if (asprintf (&path, "%s/berthd.lock", dir) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "%s", dir);
  _cleanup_close_ int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "cannot open %s", path);
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      char pid[32] = "";
      ssize_t n = pread (fd, pid, sizeof pid - 1, 0);
      if (n > 0)
        pid[strcspn (pid, "\n")] = '\0';
      return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "another berthd%s%s is already using %s (lock %s held)",
                              *pid ? " with pid " : "", pid, dir, path);
    }
  char buf[32];
  int len = snprintf (buf, sizeof buf, "%d\n", (int) getpid ());
  if (ftruncate (fd, 0) < 0 || pwrite (fd, buf, len, 0) != len)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "cannot write %s", path);
  *ret_fd = TAKE_FD (fd);
  return 0;
}

/* The server's UUID, kept in <root>/uuid so that it survives restarts. */
static int
load_uuid (const char *root, char *uuid, size_t size, berth_error **err)
{
  _cleanup_free_ char *path = NULL, *tmp = NULL;
  if (asprintf (&path, "%s/uuid", root) < 0 || asprintf (&tmp, "%s/uuid.tmp", root) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "uuid");
  _cleanup_fclose_ FILE *f = fopen (path, "re");
  if (f && fgets (uuid, (int) size, f) && strlen (uuid) >= 36)
    {
      uuid[36] = '\0';
      return 0;
    }
  _cleanup_fclose_ FILE *rnd = fopen ("/proc/sys/kernel/random/uuid", "re");
  if (rnd == NULL || fgets (uuid, (int) size, rnd) == NULL)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "cannot generate a server uuid");
  uuid[strcspn (uuid, "\n")] = '\0';
  _cleanup_fclose_ FILE *out = fopen (tmp, "we");
  if (out == NULL || fprintf (out, "%s\n", uuid) < 0 || fflush (out) != 0 || fsync (fileno (out)) < 0
      || rename (tmp, path) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "cannot write %s", path);
  return 0;
}

struct runtime
{
  struct daemon d;
  struct options *opts;
  bool socket_created;
};

static void
on_term (loop *l, int signo, void *data)
{
  log_info ("received %s; shutting down", strsignal (signo));
  sd_notify_send ("STOPPING=1");
  loop_quit (l);
}

/* SIGHUP: re-read the config.  What can change live (the log level) is
 * applied; what cannot (paths, socket, plugins) is named in the log and keeps
 * its running value.  A broken file changes nothing. */
static void
on_hup (loop *l, int signo, void *data)
{
  struct runtime *rt = data;
  struct berth_config *old = rt->d.cfg;
  sd_notify_send ("RELOADING=1");
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_config_ struct berth_config *nc = NULL;
  if (config_load_file (rt->opts->config_path, &nc, &err) < 0)
    log_error ("reload: keeping the running configuration: %s", berth_error_message (err));
  else
    {
      const char *level = rt->opts->log_level ? rt->opts->log_level : nc->debug.level;
      if (log_set_level_name (level) < 0)
        log_error ("reload: [debug] level `%s` is not one of debug, info, warn, error", level);
#define CHANGED(field) (((old->field) == NULL) != ((nc->field) == NULL) || ((old->field) && strcmp (old->field, nc->field)))
      if (CHANGED (root) || CHANGED (state) || CHANGED (grpc.address))
        log_warning ("reload: root, state and [grpc] address changes take effect at the next restart");
#undef CHANGED
      log_info ("reloaded %s", rt->opts->config_path);
    }
  sd_notify_send ("READY=1");
}

static int
listen_api (struct runtime *rt, berth_error **err)
{
  struct berth_config *cfg = rt->d.cfg;
  int n = sd_listen_fd_count ();
  if (n > 0)
    {
      int fd = SD_LISTEN_FDS_FIRST;
      if (!sd_fd_is_unix_listener (fd))
        return berth_error_set (err, BERTH_E_INVALID, 0,
                                "socket activation passed fd %d, which is not a listening unix stream socket", fd);
      log_info ("serving on the socket passed by systemd (fd %d)", fd);
      return grpc_server_listen_fd (rt->d.server, fd, err);
    }
  int r = grpc_server_listen_unix (rt->d.server, cfg->grpc.address, 0660, (gid_t) cfg->grpc.gid, err);
  if (r < 0)
    return r;
  rt->socket_created = true;
  if (cfg->grpc.uid != 0 && chown (cfg->grpc.address, (uid_t) cfg->grpc.uid, (gid_t) -1) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "cannot give %s to uid %lld",
                            cfg->grpc.address, (long long) cfg->grpc.uid);
  return 0;
}

static int
run_daemon (struct options *o)
{
  _cleanup_error_ berth_error *err = NULL;
  struct runtime rt = { .opts = o };
  struct daemon *d = &rt.d;
  int lock_root = -1, lock_state = -1;
  int r = load_config (o->config_path, o->config_given, &d->cfg, &err);
  if (r < 0)
    {
      fprintf (stderr, "berthd: %s\n", berth_error_message (err));
      return 1;
    }
  struct berth_config *cfg = d->cfg;
  if (o->root)
    free (cfg->root), cfg->root = strdup (o->root);
  if (o->state)
    free (cfg->state), cfg->state = strdup (o->state);
  if (o->address)
    free (cfg->grpc.address), cfg->grpc.address = strdup (o->address);
  const char *level = o->log_level ? o->log_level : cfg->debug.level;
  if (log_set_level_name (level) < 0)
    {
      fprintf (stderr, "berthd: log level `%s` is not one of debug, info, warn, error\n", level);
      config_free (cfg);
      return 1;
    }

  _cleanup_free_ char *meta_path = NULL;
  int status = 1;
  /* Everything that can refuse the config runs before anything is created on disk. */
  if (cfg->grpc.max_recv_message_size < 1024 || cfg->grpc.max_recv_message_size > GRPC_MAX_MESSAGE)
    {
      berth_error_set (&err, BERTH_E_INVALID, 0, "%s: [grpc] max_recv_message_size = %lld: must be between 1024 and %u bytes",
                       cfg->path ? cfg->path : "config", (long long) cfg->grpc.max_recv_message_size, GRPC_MAX_MESSAGE);
      goto out;
    }
  if (build_registry (cfg, true, false, &d->reg, &err) < 0)
    goto out;
  {
    size_t n;
    _cleanup_free_ struct config_plugin_schema *s = schemas_of (d->reg, &n);
    _cleanup_strv_ char **problems = NULL;
    int count = s ? config_check (cfg, s, n, &problems) : BERTH_E_NOMEM;
    /* A table for a plugin that is not loaded (its file missing or refused)
     * must not stop the daemon: only required plugins do that.  It is an
     * error for `berthd config check`, a warning here. */
    for (char **pr = problems; count > 0 && pr && *pr; pr++)
      if (strstr (*pr, ": unknown plugin "))
        {
          log_warning ("%s (not loaded; its table is ignored)", *pr);
          count--;
        }
    if (count != 0)
      {
        for (char **pr = problems; pr && *pr; pr++)
          if (strstr (*pr, ": unknown plugin ") == NULL)
            log_error ("%s", *pr);
        berth_error_set (&err, BERTH_E_INVALID, 0, "%s: %d configuration problem%s (see above; `berthd config check` lists them)",
                         cfg->path ? cfg->path : "config", count, count == 1 ? "" : "s");
        goto out;
      }
  }
  if (take_lock (cfg->root, &lock_root, &err) < 0 || take_lock (cfg->state, &lock_state, &err) < 0)
    goto out;
  chmod (cfg->root, 0700);
  if (load_uuid (cfg->root, d->uuid, sizeof d->uuid, &err) < 0)
    goto out;
  /* Quarantine an unreadable meta.db and broken task state before they are read. */
  fsck_startup_files (cfg->root, cfg->state);
  if (asprintf (&meta_path, "%s/meta.db", cfg->root) < 0)
    goto out;
  if (meta_open (meta_path, &d->meta, &err) < 0)
    goto out;

  /* Block the signals the loop handles (signalfd) before plugins start
   * threads: a thread with them unblocked would take SIGHUP's default
   * action (terminate) for the whole daemon. */
  sigset_t handled;
  sigemptyset (&handled);
  sigaddset (&handled, SIGTERM);
  sigaddset (&handled, SIGINT);
  sigaddset (&handled, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &handled, NULL);
  if (registry_init_all (d->reg, &err) < 0)
    goto out;

  d->loop = loop_new ();
  d->workers = d->loop ? workers_new (d->loop, 4) : NULL;
  d->server = d->workers ? grpc_server_new (d->loop) : NULL;
  if (d->server == NULL)
    {
      berth_error_set (&err, BERTH_E_NOMEM, ENOMEM, "cannot set up the event loop");
      goto out;
    }
  grpc_server_set_max_recv (d->server, (size_t) cfg->grpc.max_recv_message_size); /* range checked above */
  struct grpc_limits lim;
  grpc_limits_default (&lim);
  lim.max_connections = (unsigned) cfg->grpc.max_connections;
  lim.max_streams = (unsigned) cfg->grpc.max_concurrent_streams;
  lim.max_conn_buffer = (size_t) cfg->grpc.max_connection_buffer;
  lim.request_timeout_ms = (unsigned) cfg->grpc.request_timeout * 1000u;
  lim.idle_timeout_ms = (unsigned) cfg->grpc.idle_timeout * 1000u;
  lim.log = grpc_log_line;
  grpc_server_set_limits (d->server, &lim); /* ranges checked by the config loader */
  d->events = events_new (d);
  if (d->events == NULL)
    {
      berth_error_set (&err, BERTH_E_NOMEM, ENOMEM, "events");
      goto out;
    }
  if (service_events_register (d, &err) < 0)
    goto out;
  if (service_version_register (d, &err) < 0 || service_introspection_register (d, &err) < 0
      || service_namespaces_register (d, &err) < 0)
    goto out;
  if (service_content_register (d, &err) < 0 || service_images_register (d, &err) < 0
      || service_leases_register (d, &err) < 0 || service_pull_register (d, &err) < 0
      || service_gc_register (d, &err) < 0 || service_snapshots_register (d, &err) < 0
      || service_diff_register (d, &err) < 0 || service_system_register (d, &err) < 0
      || gc_start (d, &err) < 0)
    goto out;
  if (tasks_new (d, &d->tasks, &err) < 0 || service_containers_register (d, &err) < 0
      || service_tasks_register (d, &err) < 0)
    goto out;
  atomic_store (&publish_tasks, d->tasks);
  lazy_start (d);
  /* Metadata against the plugins' data: quarantine what does not match. */
  fsck_startup_store (d);
  /* Reconnect to the tasks that outlived the last berthd before serving. */
  tasks_recover (d->tasks);
  if (listen_api (&rt, &err) < 0)
    goto out;
  loop_add_signal (d->loop, SIGTERM, on_term, &rt);
  loop_add_signal (d->loop, SIGINT, on_term, &rt);
  loop_add_signal (d->loop, SIGHUP, on_hup, &rt);
  d->started_at = now_ns ();

  size_t nok = 0;
  for (size_t i = 0; i < registry_count (d->reg); i++)
    nok += registry_at (d->reg, i)->status == PLUGIN_OK;
  log_info ("berthd %s serving on %s (root %s, state %s, %zu of %zu plugins ok)", PACKAGE_VERSION, cfg->grpc.address,
            cfg->root, cfg->state, nok, registry_count (d->reg));
  sd_notify_send ("READY=1\nSTATUS=serving on %s\nMAINPID=%d", cfg->grpc.address, (int) getpid ());
  r = loop_run (d->loop);
  status = r < 0 ? 1 : 0;

out:
  if (err)
    {
      log_error ("%s", berth_error_message (err));
      sd_notify_send ("STATUS=failed: %s\nERRNO=%d", berth_error_message (err), err->errnum ? err->errnum : EINVAL);
    }
  if (d->server)
    grpc_server_shutdown (d->server);
  if (d->tasks)
    service_tasks_shutdown (d);
  lazy_stop ();
  workers_free (d->workers);
  atomic_store (&publish_tasks, NULL);
  grpc_server_free (d->server);
  events_free (d->events);
  /* Plugins (and their monitor threads) go before the task manager they publish to. */
  registry_free (d->reg);
  d->reg = NULL;
  tasks_free (d->tasks);
  if (rt.socket_created)
    unlink (cfg->grpc.address);
  loop_free (d->loop);
  registry_free (d->reg);
  meta_close (d->meta);
  if (lock_state >= 0)
    close (lock_state);
  if (lock_root >= 0)
    close (lock_root);
  config_free (d->cfg);
  return status;
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' }, { "log-level", required_argument, NULL, 'l' },
    { "address", required_argument, NULL, 'a' }, { "root", required_argument, NULL, 'R' },
    { "state", required_argument, NULL, 'S' },   { "version", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
  };
  struct options o = { .config_path = BERTH_CONFIG_DEFAULT_PATH };
  /* Worker, Wait and plugin threads would each get a malloc arena that keeps
   * its pages after a burst (20 parallel runs left ~10 MiB behind); two
   * arenas are plenty for a daemon that mostly waits. */
  mallopt (M_ARENA_MAX, 2);
  int c;
  while ((c = getopt_long (argc, argv, "+c:l:a:vh", longopts, NULL)) != -1)
    switch (c)
      {
      case 'c': o.config_path = optarg; o.config_given = true; break;
      case 'l': o.log_level = optarg; break;
      case 'a': o.address = optarg; break;
      case 'R': o.root = optarg; break;
      case 'S': o.state = optarg; break;
      case 'v': printf ("berthd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION, BERTH_ABI_MAJOR, BERTH_ABI_MINOR); return 0;
      case 'h': usage (stdout); return 0;
      default: usage (stderr); return 2;
      }
  if (optind < argc && strcmp (argv[optind], "config") == 0)
    return cmd_config (argc - optind - 1, argv + optind + 1, &o);
  if (optind < argc)
    {
      fprintf (stderr, "berthd: unexpected argument `%s`\n", argv[optind]);
      usage (stderr);
      return 2;
    }
  signal (SIGPIPE, SIG_IGN);
  return run_daemon (&o);
}
