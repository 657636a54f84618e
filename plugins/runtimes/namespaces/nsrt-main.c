/* berth-runtime: the command line, runc's verbs and flags (`runc --help`).
 *
 * Flags are accepted as --flag value, --flag=value and Go's single-dash
 * -flag forms, since tools that drive runc use all of them. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nsrt.h"

extern char **environ;

#define MAX_MULTI 64

struct optdef
{
  const char *name;
  char short_;
  bool arg;
};

struct optval
{
  const char *v;
  const char *list[MAX_MULTI];
  int n;
};

/* argv[i..] of a verb: options (anywhere, until "--") and positionals. */
static int
parse_opts (int argc, char **argv, const struct optdef *defs, size_t ndefs, struct optval *vals, char **pos,
            int *npos, int maxpos)
{
  *npos = 0;
  bool only_pos = false;
  for (int i = 0; i < argc; i++)
    {
      char *a = argv[i];
      if (only_pos || a[0] != '-' || a[1] == '\0')
        {
          if (*npos >= maxpos)
            {
              /* everything after the positional(s) belongs to the process (exec args) */
              pos[(*npos)++] = a;
              return i + 1;
            }
          pos[(*npos)++] = a;
          if (*npos == maxpos)
            return i + 1;
          continue;
        }
      if (strcmp (a, "--") == 0)
        {
          only_pos = true;
          continue;
        }
      const char *name = a + 1 + (a[1] == '-');
      const char *eq = strchr (name, '=');
      size_t nlen = eq ? (size_t) (eq - name) : strlen (name);
      size_t k;
      for (k = 0; k < ndefs; k++)
        if ((strlen (defs[k].name) == nlen && strncmp (defs[k].name, name, nlen) == 0)
            || (nlen == 1 && defs[k].short_ && defs[k].short_ == name[0]))
          break;
      if (k == ndefs)
        {
          fprintf (stderr, "berth-runtime: unknown option %s\n", a);
          exit (1);
        }
      const char *v = "1";
      if (defs[k].arg)
        {
          if (eq)
            v = eq + 1;
          else if (i + 1 < argc)
            v = argv[++i];
          else
            {
              fprintf (stderr, "berth-runtime: option %s needs a value\n", a);
              exit (1);
            }
        }
      else if (eq)
        v = strcmp (eq + 1, "false") == 0 ? NULL : "1";
      vals[k].v = v;
      if (vals[k].n < MAX_MULTI)
        vals[k].list[vals[k].n++] = v;
    }
  return argc;
}

static void
usage (FILE *f)
{
  fputs ("usage: berth-runtime [global options] COMMAND [options] <container-id>\n"
         "\n"
         "berth's OCI runtime (runc-compatible command line).\n"
         "\n"
         "commands:\n"
         "  create   create a container (blocks its init until start)\n"
         "  start    run the user process of a created container\n"
         "  run      create and start a container\n"
         "  state    print the state of a container (OCI runtime spec JSON)\n"
         "  kill     send a signal to the init (--all: to every process)\n"
         "  delete   delete a container (--force kills it first)\n"
         "  exec     run a new process inside a container\n"
         "  ps       list the container's processes (--format table|json)\n"
         "  pause    freeze every process of the container\n"
         "  resume   thaw a paused container\n"
         "  update   update the container's resource limits (--resources FILE|-)\n"
         "  events   print the container's stats (--stats: once)\n"
         "  list     list containers\n"
         "  spec     write a default config.json\n"
         "  features print the runtime's features (JSON)\n"
         "\n"
         "global options:\n"
         "  --root DIR          state directory (default " NSRT_DEFAULT_ROOT ")\n"
         "  --log FILE          log file (errors also go to stderr)\n"
         "  --log-format F      text or json\n"
         "  --debug             debug logging\n"
         "  --systemd-cgroup    accept slice:prefix:name cgroup paths (mapped to cgroupfs)\n",
         f);
}

/* CVE-2019-5736: a process in the container's pid namespace running this
 * binary (the init before execve, an exec'd process) could be opened by
 * the container through /proc/<pid>/exe and the host binary overwritten.
 * Commands that put a process into a container therefore run from a
 * sealed memfd copy (as runc does): /proc/self/exe is then the memfd,
 * which F_SEAL_WRITE makes unwritable, never the file on the host. */
static int
ensure_sealed_exe (char **argv)
{
  int fd = open ("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int seals = fcntl (fd, F_GET_SEALS);
  if (seals >= 0 && (seals & F_SEAL_WRITE))
    {
      close (fd);
      return 0;
    }
  struct stat st;
  int mfd = memfd_create ("berth-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0 || fstat (fd, &st) < 0)
    return -1;
  off_t off = 0;
  while (off < st.st_size)
    {
      ssize_t n = sendfile (mfd, fd, &off, st.st_size - off);
      if (n <= 0)
        return -1;
    }
  close (fd);
  if (fcntl (mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
    return -1;
  fexecve (mfd, argv, environ);
  return -1;
}

static int
fail (const struct nsrt_opts *o, const struct nsrt_err *err)
{
  nsrt_log (o, "error", "%s", err->msg);
  return 1;
}

static int
need_id (int npos, const char *verb)
{
  if (npos < 1)
    {
      fprintf (stderr, "berth-runtime %s: a container id is required\n", verb);
      return 0;
    }
  return 1;
}

static int
parse_signal (const char *s)
{
  static const struct
  {
    const char *n;
    int s;
  } sigs[] = {
    { "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT }, { "ILL", SIGILL },   { "TRAP", SIGTRAP },
    { "ABRT", SIGABRT }, { "BUS", SIGBUS },   { "FPE", SIGFPE },   { "KILL", SIGKILL }, { "USR1", SIGUSR1 },
    { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
    { "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
    { "TTOU", SIGTTOU }, { "URG", SIGURG },   { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
    { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO }, { "PWR", SIGPWR },   { "SYS", SIGSYS },
  };
  char *end;
  long n = strtol (s, &end, 10);
  if (*s && *end == '\0')
    return n > 0 && n < NSIG ? (int) n : -1;
  if (strncasecmp (s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (strcasecmp (s, sigs[i].n) == 0)
      return sigs[i].s;
  return -1;
}

static int
cmd_state (const struct nsrt_opts *o, const char *id)
{
  struct nsrt_state *st;
  struct nsrt_err err;
  if (nsrt_state_load (o, id, &st, &err) < 0)
    return fail (o, &err);
  json_object *j = nsrt_state_json (st, nsrt_state_status (st));
  json_object_object_add (j, "created", json_object_new_string (st->created));
  printf ("%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (j);
  nsrt_state_free (st);
  return 0;
}

static int
cmd_kill (const struct nsrt_opts *o, const char *id, const char *sigs, bool all)
{
  struct nsrt_state *st;
  struct nsrt_err err;
  int sig = parse_signal (sigs ? sigs : "TERM");
  if (sig < 0)
    {
      fprintf (stderr, "berth-runtime: kill: unknown signal `%s`\n", sigs);
      return 1;
    }
  if (nsrt_state_load (o, id, &st, &err) < 0)
    return fail (o, &err);
  int r = 0;
  if (all && st->cg)
    {
      pid_t *pids = NULL;
      size_t n = 0;
      if (nsrt_cgroup_pids (st->cg, &pids, &n, &err) < 0)
        r = fail (o, &err);
      else
        for (size_t i = 0; i < n; i++)
          kill (pids[i], sig);
      free (pids);
    }
  else if (!nsrt_pid_alive (st->pid, st->start_time))
    {
      nsrt_errf (&err, 0, "container `%s` is not running", id);
      r = fail (o, &err);
    }
  else if (kill (st->pid, sig) < 0)
    {
      nsrt_errf (&err, errno, "kill %d", (int) st->pid);
      r = fail (o, &err);
    }
  nsrt_state_free (st);
  return r;
}

static int
cmd_delete (const struct nsrt_opts *o, const char *id, bool force)
{
  struct nsrt_state *st;
  struct nsrt_err err;
  if (nsrt_state_load (o, id, &st, &err) < 0)
    {
      if (!force || nsrt_validate_id (id, &err) < 0)
        return fail (o, &err);
      /* --force: also a directory left by a create that died half-way */
      char *dir = nsrt_state_dir (o, id);
      int r = nsrt_rm_rf (dir) < 0 && errno != ENOENT ? fail (o, &err) : 0;
      free (dir);
      return r;
    }
  const char *status = nsrt_state_status (st);
  if (strcmp (status, "stopped") != 0)
    {
      /* runc deletes a created container without --force */
      if (strcmp (status, "created") != 0 && !force)
        {
          nsrt_errf (&err, 0, "cannot delete container `%s` that is not stopped: %s (use --force)", id, status);
          nsrt_state_free (st);
          return fail (o, &err);
        }
      if (strcmp (status, "paused") == 0 && st->cg)
        nsrt_cgroup_freeze (st->cg, 0, &err);
      nsrt_kill_wait (st, SIGKILL, 5000);
    }
  int r = nsrt_destroy (o, st, &err) < 0 ? fail (o, &err) : 0;
  nsrt_state_free (st);
  return r;
}

static int
cmd_ps (const struct nsrt_opts *o, const char *id, const char *format)
{
  struct nsrt_state *st;
  struct nsrt_err err;
  if (nsrt_state_load (o, id, &st, &err) < 0)
    return fail (o, &err);
  pid_t *pids = NULL;
  size_t n = 0;
  if (st->cg && nsrt_cgroup_pids (st->cg, &pids, &n, &err) < 0)
    {
      nsrt_state_free (st);
      return fail (o, &err);
    }
  if (format && strcmp (format, "json") == 0)
    {
      json_object *a = json_object_new_array ();
      for (size_t i = 0; i < n; i++)
        json_object_array_add (a, json_object_new_int (pids[i]));
      printf ("%s\n", json_object_to_json_string_ext (a, JSON_C_TO_STRING_PLAIN));
      json_object_put (a);
    }
  else if (format && strcmp (format, "table") != 0)
    {
      fprintf (stderr, "berth-runtime ps: --format must be table or json\n");
      free (pids);
      nsrt_state_free (st);
      return 1;
    }
  else
    {
      printf ("%-8s %s\n", "PID", "CMD");
      for (size_t i = 0; i < n; i++)
        {
          char path[64], cmd[512] = "";
          snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pids[i]);
          int fd = open (path, O_RDONLY | O_CLOEXEC);
          ssize_t r = fd >= 0 ? read (fd, cmd, sizeof cmd - 1) : -1;
          if (fd >= 0)
            close (fd);
          for (ssize_t k = 0; k < r - 1; k++)
            if (cmd[k] == '\0')
              cmd[k] = ' ';
          printf ("%-8d %s\n", (int) pids[i], r > 0 ? cmd : "?");
        }
    }
  free (pids);
  nsrt_state_free (st);
  return 0;
}

static int
cmd_pause (const struct nsrt_opts *o, const char *id, bool pause)
{
  struct nsrt_state *st;
  struct nsrt_err err;
  if (nsrt_state_load (o, id, &st, &err) < 0)
    return fail (o, &err);
  const char *status = nsrt_state_status (st);
  int r = 0;
  if (strcmp (status, pause ? "running" : "paused") != 0)
    {
      nsrt_errf (&err, 0, "cannot %s container `%s`: it is %s", pause ? "pause" : "resume", id, status);
      r = fail (o, &err);
    }
  else if (st->cg == NULL || nsrt_cgroup_freeze (st->cg, pause, &err) < 0)
    r = fail (o, &err);
  else
    {
      st->paused = pause;
      if (nsrt_state_save (st, &err) < 0)
        r = fail (o, &err);
    }
  nsrt_state_free (st);
  return r;
}

static json_object *
read_json_file (const char *path, const char *what, struct nsrt_err *err)
{
  char label[4200];
  snprintf (label, sizeof label, "%s %s", what, strcmp (path, "-") == 0 ? "(stdin)" : path);
  if (strcmp (path, "-") == 0)
    return nsrt_json_read_fd (0, label, err);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      nsrt_errf (err, errno, "%s", label);
      return NULL;
    }
  json_object *j = nsrt_json_read_fd (fd, label, err);
  close (fd);
  return j;
}

static void
set_num (json_object *res, const char *group, const char *key, const char *v, bool is_str)
{
  if (v == NULL)
    return;
  json_object *g;
  if (!json_object_object_get_ex (res, group, &g))
    {
      g = json_object_new_object ();
      json_object_object_add (res, group, g);
    }
  json_object_object_add (g, key, is_str ? json_object_new_string (v) : json_object_new_int64 (strtoll (v, NULL, 10)));
}

static int
cmd_events (const struct nsrt_opts *o, const char *id, bool stats, const char *interval)
{
  struct nsrt_state *st;
  struct nsrt_err err;
  if (nsrt_state_load (o, id, &st, &err) < 0)
    return fail (o, &err);
  if (st->cg == NULL)
    {
      nsrt_errf (&err, 0, "container `%s` has no cgroup", id);
      nsrt_state_free (st);
      return fail (o, &err);
    }
  int every = interval ? atoi (interval) : 5;
  if (every <= 0)
    every = 5;
  unsigned long ooms = 0, now;
  nsrt_cgroup_oom_count (st->cg, &ooms);
  for (;;)
    {
      json_object *j;
      if (nsrt_cgroup_stats (st->cg, id, &j, &err) < 0)
        {
          nsrt_state_free (st);
          return fail (o, &err);
        }
      printf ("%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN));
      fflush (stdout);
      json_object_put (j);
      if (stats)
        break;
      for (int t = 0; t < every * 10; t++)
        {
          struct timespec d = { 0, 100000000 };
          nanosleep (&d, NULL);
          if (nsrt_cgroup_oom_count (st->cg, &now) == 0 && now > ooms)
            {
              ooms = now;
              printf ("{\"type\":\"oom\",\"id\":\"%s\"}\n", id);
              fflush (stdout);
            }
          if (!nsrt_pid_alive (st->pid, st->start_time))
            {
              nsrt_state_free (st);
              return 0;
            }
        }
    }
  nsrt_state_free (st);
  return 0;
}

static int
cmd_list (const struct nsrt_opts *o, const char *format, bool quiet)
{
  bool json = format && strcmp (format, "json") == 0;
  json_object *a = json_object_new_array ();
  DIR *d = opendir (o->root);
  if (!json && !quiet)
    printf ("%-12s %-8s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
  struct dirent *de;
  while (d && (de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.')
        continue;
      struct nsrt_state *st;
      struct nsrt_err err;
      if (nsrt_state_load (o, de->d_name, &st, &err) < 0)
        continue;
      const char *status = nsrt_state_status (st);
      if (quiet)
        printf ("%s\n", st->id);
      else if (json)
        {
          json_object *j = nsrt_state_json (st, status);
          json_object_object_add (j, "created", json_object_new_string (st->created));
          json_object_object_add (j, "owner", json_object_new_string ("root"));
          json_object_array_add (a, j);
        }
      else
        printf ("%-12s %-8d %-10s %-40s %-30s %s\n", st->id, strcmp (status, "stopped") ? (int) st->pid : 0, status,
                st->bundle, st->created, "root");
      nsrt_state_free (st);
    }
  if (d)
    closedir (d);
  if (json)
    printf ("%s\n", json_object_to_json_string_ext (a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (a);
  return 0;
}

/* runc spec's default, with berth's masked/readonly paths */
static const char default_spec[] =
    "{\"ociVersion\":\"" NSRT_OCI_VERSION "\",\"process\":{\"terminal\":true,\"user\":{\"uid\":0,\"gid\":0},"
    "\"args\":[\"sh\"],\"env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
    "\"TERM=xterm\"],\"cwd\":\"/\",\"capabilities\":{\"bounding\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\","
    "\"CAP_NET_BIND_SERVICE\"],\"effective\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
    "\"permitted\":[\"CAP_AUDIT_WRITE\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],\"ambient\":[\"CAP_AUDIT_WRITE\","
    "\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"]},\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":1024}],"
    "\"noNewPrivileges\":true},\"root\":{\"path\":\"rootfs\",\"readonly\":true},\"hostname\":\"berth\","
    "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"strictatime\","
    "\"mode=755\",\"size=65536k\"]},{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\","
    "\"options\":[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=0620\",\"gid=5\"]},"
    "{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\",\"source\":\"shm\",\"options\":[\"nosuid\",\"noexec\","
    "\"nodev\",\"mode=1777\",\"size=65536k\"]},{\"destination\":\"/dev/mqueue\",\"type\":\"mqueue\","
    "\"source\":\"mqueue\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"]},{\"destination\":\"/sys\","
    "\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]},"
    "{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\",\"source\":\"cgroup\",\"options\":[\"nosuid\","
    "\"noexec\",\"nodev\",\"relatime\",\"ro\"]}],\"linux\":{\"resources\":{\"devices\":[{\"allow\":false,"
    "\"access\":\"rwm\"}]},\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\"},{\"type\":\"ipc\"},"
    "{\"type\":\"uts\"},{\"type\":\"mount\"},{\"type\":\"cgroup\"}],\"maskedPaths\":[\"/proc/acpi\","
    "\"/proc/asound\",\"/proc/kcore\",\"/proc/keys\",\"/proc/latency_stats\",\"/proc/timer_list\","
    "\"/proc/timer_stats\",\"/proc/sched_debug\",\"/sys/firmware\",\"/proc/scsi\"],\"readonlyPaths\":["
    "\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\",\"/proc/sysrq-trigger\"]}}";

static int
cmd_spec (const char *bundle)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/config.json", bundle ? bundle : ".");
  if (access (path, F_OK) == 0)
    {
      fprintf (stderr, "berth-runtime spec: %s already exists\n", path);
      return 1;
    }
  json_object *j = json_tokener_parse (default_spec);
  int r = json_object_to_file_ext (path, j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  json_object_put (j);
  if (r < 0)
    {
      fprintf (stderr, "berth-runtime spec: write %s: %s\n", path, strerror (errno));
      return 1;
    }
  return 0;
}

static int
cmd_features (void)
{
  printf ("{\"ociVersionMin\":\"1.0.0\",\"ociVersionMax\":\"" NSRT_OCI_VERSION "\","
          "\"hooks\":[\"prestart\",\"createRuntime\",\"poststart\",\"poststop\"],"
          "\"mountOptions\":[\"async\",\"atime\",\"bind\",\"dev\",\"diratime\",\"dirsync\",\"exec\",\"mand\","
          "\"noatime\",\"nodev\",\"nodiratime\",\"noexec\",\"nomand\",\"norelatime\",\"nostrictatime\",\"nosuid\","
          "\"private\",\"rbind\",\"relatime\",\"ro\",\"rprivate\",\"rshared\",\"rslave\",\"runbindable\",\"rw\","
          "\"shared\",\"slave\",\"strictatime\",\"suid\",\"sync\",\"unbindable\"],"
          "\"linux\":{\"namespaces\":[\"cgroup\",\"ipc\",\"mount\",\"network\",\"pid\",\"user\",\"uts\"],"
          "\"cgroup\":{\"v1\":true,\"v2\":true,\"systemd\":false},\"seccomp\":{\"enabled\":true},"
          "\"apparmor\":{\"enabled\":false},\"selinux\":{\"enabled\":false}},"
          "\"annotations\":{\"io.berth.runtime\":\"berth-runtime\"}}\n");
  return 0;
}

/* exec's process: --process FILE, or the container's process with the
 * args and flags of the command line (runc's rules). */
static json_object *
exec_process_json (const struct nsrt_opts *o, const char *id, struct optval *v, char **args, int nargs,
                   struct nsrt_err *err)
{
  /* option indexes, see exec_defs */
  enum { P_PROCESS, P_DETACH, P_PIDFILE, P_CONSOLE, P_TTY, P_CWD, P_ENV, P_USER, P_GIDS, P_CAP, P_NNP };
  if (v[P_PROCESS].v)
    {
      json_object *p = read_json_file (v[P_PROCESS].v, "--process", err);
      if (p && !json_object_is_type (p, json_type_object))
        {
          json_object_put (p);
          nsrt_errf (err, 0, "--process %s: not a JSON object", v[P_PROCESS].v);
          return NULL;
        }
      return p;
    }
  if (nargs == 0)
    {
      nsrt_errf (err, 0, "exec: give --process FILE or the command to run");
      return NULL;
    }
  struct nsrt_state *st;
  if (nsrt_state_load (o, id, &st, err) < 0)
    return NULL;
  json_object *base = NULL, *p = json_object_new_object ();
  json_object_object_get_ex (st->config, "process", &base);
  json_object *a = json_object_new_array ();
  for (int i = 0; i < nargs; i++)
    json_object_array_add (a, json_object_new_string (args[i]));
  json_object_object_add (p, "args", a);
  json_object *env = json_object_new_array (), *x;
  if (base && json_object_object_get_ex (base, "env", &x) && json_object_is_type (x, json_type_array))
    for (size_t i = 0; i < json_object_array_length (x); i++)
      json_object_array_add (env, json_object_get (json_object_array_get_idx (x, i)));
  for (int i = 0; i < v[P_ENV].n; i++)
    json_object_array_add (env, json_object_new_string (v[P_ENV].list[i]));
  json_object_object_add (p, "env", env);
  json_object_object_add (p, "cwd", json_object_new_string (v[P_CWD].v ? v[P_CWD].v
                                                            : (base && json_object_object_get_ex (base, "cwd", &x))
                                                                ? json_object_get_string (x)
                                                                : "/"));
  json_object_object_add (p, "terminal", json_object_new_boolean (v[P_TTY].v != NULL));
  json_object *user = json_object_new_object ();
  if (v[P_USER].v)
    {
      char *end;
      long uid = strtol (v[P_USER].v, &end, 10);
      long gid = 0;
      if (*end == ':')
        gid = strtol (end + 1, &end, 10);
      if (*end || uid < 0 || gid < 0)
        {
          nsrt_errf (err, 0, "--user `%s`: expected uid[:gid] (numbers)", v[P_USER].v);
          json_object_put (user);
          json_object_put (p);
          nsrt_state_free (st);
          return NULL;
        }
      json_object_object_add (user, "uid", json_object_new_int64 (uid));
      json_object_object_add (user, "gid", json_object_new_int64 (gid));
    }
  else if (base && json_object_object_get_ex (base, "user", &x))
    {
      json_object_put (user);
      user = json_object_get (x);
    }
  if (v[P_GIDS].n)
    {
      json_object *g = json_object_new_array ();
      for (int i = 0; i < v[P_GIDS].n; i++)
        json_object_array_add (g, json_object_new_int64 (atol (v[P_GIDS].list[i])));
      json_object_object_add (user, "additionalGids", g);
    }
  json_object_object_add (p, "user", user);
  if (base && json_object_object_get_ex (base, "capabilities", &x))
    {
      json_object *caps = NULL;
      json_object_deep_copy (x, &caps, NULL);
      for (int i = 0; i < v[P_CAP].n; i++)
        {
          static const char *const sets[] = { "bounding", "effective", "permitted", "inheritable", "ambient" };
          for (size_t s = 0; s < 5; s++)
            {
              json_object *set;
              if (!json_object_object_get_ex (caps, sets[s], &set))
                json_object_object_add (caps, sets[s], set = json_object_new_array ());
              json_object_array_add (set, json_object_new_string (v[P_CAP].list[i]));
            }
        }
      json_object_object_add (p, "capabilities", caps);
    }
  if (v[P_NNP].v || (base && json_object_object_get_ex (base, "noNewPrivileges", &x) && json_object_get_boolean (x)))
    json_object_object_add (p, "noNewPrivileges", json_object_new_boolean (true));
  nsrt_state_free (st);
  return p;
}

int
main (int argc, char **argv)
{
  struct nsrt_opts o = { .root = NSRT_DEFAULT_ROOT };
  static const struct optdef global_defs[] = {
    { "root", 0, true },   { "log", 0, true },   { "log-format", 0, true }, { "debug", 0, false },
    { "systemd-cgroup", 0, false }, { "criu", 0, true }, { "rootless", 0, true }, { "help", 'h', false },
    { "version", 'v', false },
  };
  enum { G_ROOT, G_LOG, G_LOGFMT, G_DEBUG, G_SYSTEMD, G_CRIU, G_ROOTLESS, G_HELP, G_VERSION, G_N };
  struct optval gv[G_N] = { 0 };
  /* global options come before the verb */
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++)
    {
      char *pos[1];
      int npos;
      int take = (i + 1 < argc && strchr (argv[i], '=') == NULL) ? 2 : 1;
      /* does this flag take a value? */
      const char *name = argv[i] + 1 + (argv[i][1] == '-');
      bool has_arg = false;
      for (size_t k = 0; k < G_N; k++)
        if (strncmp (global_defs[k].name, name, strcspn (name, "=")) == 0
            && strlen (global_defs[k].name) == strcspn (name, "="))
          has_arg = global_defs[k].arg;
      if (!has_arg || strchr (argv[i], '='))
        take = 1;
      parse_opts (take, argv + i, global_defs, G_N, gv, pos, &npos, 0);
      i += take - 1;
    }
  if (gv[G_VERSION].v)
    {
      printf ("berth-runtime version %s\nspec: %s\n", PACKAGE_VERSION, NSRT_OCI_VERSION);
      return 0;
    }
  if (gv[G_HELP].v || i >= argc)
    {
      usage (gv[G_HELP].v ? stdout : stderr);
      return gv[G_HELP].v ? 0 : 1;
    }
  if (gv[G_ROOT].v)
    o.root = gv[G_ROOT].v;
  o.log_path = gv[G_LOG].v;
  o.debug = gv[G_DEBUG].v != NULL;
  o.systemd_cgroup = gv[G_SYSTEMD].v != NULL;
  if (gv[G_LOGFMT].v)
    {
      if (strcmp (gv[G_LOGFMT].v, "json") == 0)
        o.log_json = true;
      else if (strcmp (gv[G_LOGFMT].v, "text") != 0)
        {
          fprintf (stderr, "berth-runtime: --log-format must be text or json\n");
          return 1;
        }
    }
  const char *verb = argv[i++];
  int rest = argc - i;
  char **rargv = argv + i;
  char *pos[8];
  int npos = 0;
  struct optval v[16];
  memset (v, 0, sizeof v);

  if (strcmp (verb, "create") == 0 || strcmp (verb, "run") == 0)
    {
      static const struct optdef defs[] = {
        { "bundle", 'b', true },   { "console-socket", 0, true }, { "pid-file", 0, true },
        { "no-pivot", 0, false },  { "no-new-keyring", 0, false }, { "preserve-fds", 0, true },
        { "detach", 'd', false },  { "keep", 0, false },          { "pidfd-socket", 0, true },
        { "no-subreaper", 0, false },
      };
      parse_opts (rest, rargv, defs, sizeof defs / sizeof defs[0], v, pos, &npos, 1);
      if (!need_id (npos, verb))
        return 1;
      if (v[5].v && atoi (v[5].v) != 0)
        {
          fprintf (stderr, "berth-runtime %s: --preserve-fds is not supported\n", verb);
          return 1;
        }
      if (ensure_sealed_exe (argv) < 0)
        {
          fprintf (stderr, "berth-runtime: cannot re-execute from a sealed copy of itself: %s\n", strerror (errno));
          return 1;
        }
      struct nsrt_create_args a = {
        .id = pos[0],
        .bundle = v[0].v,
        .console_socket = v[1].v,
        .pid_file = v[2].v,
        .no_pivot = v[3].v != NULL,
        .detach = v[6].v != NULL,
        .keep = v[7].v != NULL,
        .start = strcmp (verb, "run") == 0,
      };
      return nsrt_create (&o, &a);
    }
  if (strcmp (verb, "start") == 0)
    {
      parse_opts (rest, rargv, NULL, 0, v, pos, &npos, 1);
      if (!need_id (npos, verb))
        return 1;
      struct nsrt_state *st;
      struct nsrt_err err;
      if (nsrt_state_load (&o, pos[0], &st, &err) < 0)
        return fail (&o, &err);
      int r = nsrt_start (&o, st, &err) < 0 ? fail (&o, &err) : 0;
      nsrt_state_free (st);
      return r;
    }
  if (strcmp (verb, "state") == 0)
    {
      parse_opts (rest, rargv, NULL, 0, v, pos, &npos, 1);
      return need_id (npos, verb) ? cmd_state (&o, pos[0]) : 1;
    }
  if (strcmp (verb, "kill") == 0)
    {
      static const struct optdef defs[] = { { "all", 'a', false } };
      parse_opts (rest, rargv, defs, 1, v, pos, &npos, 2);
      return need_id (npos, verb) ? cmd_kill (&o, pos[0], npos > 1 ? pos[1] : NULL, v[0].v != NULL) : 1;
    }
  if (strcmp (verb, "delete") == 0)
    {
      static const struct optdef defs[] = { { "force", 'f', false } };
      parse_opts (rest, rargv, defs, 1, v, pos, &npos, 1);
      return need_id (npos, verb) ? cmd_delete (&o, pos[0], v[0].v != NULL) : 1;
    }
  if (strcmp (verb, "ps") == 0)
    {
      static const struct optdef defs[] = { { "format", 'f', true } };
      parse_opts (rest, rargv, defs, 1, v, pos, &npos, 1);
      return need_id (npos, verb) ? cmd_ps (&o, pos[0], v[0].v) : 1;
    }
  if (strcmp (verb, "pause") == 0 || strcmp (verb, "resume") == 0)
    {
      parse_opts (rest, rargv, NULL, 0, v, pos, &npos, 1);
      return need_id (npos, verb) ? cmd_pause (&o, pos[0], strcmp (verb, "pause") == 0) : 1;
    }
  if (strcmp (verb, "events") == 0)
    {
      static const struct optdef defs[] = { { "stats", 0, false }, { "interval", 0, true } };
      parse_opts (rest, rargv, defs, 2, v, pos, &npos, 1);
      return need_id (npos, verb) ? cmd_events (&o, pos[0], v[0].v != NULL, v[1].v) : 1;
    }
  if (strcmp (verb, "list") == 0)
    {
      static const struct optdef defs[] = { { "format", 'f', true }, { "quiet", 'q', false } };
      parse_opts (rest, rargv, defs, 2, v, pos, &npos, 0);
      return cmd_list (&o, v[0].v, v[1].v != NULL);
    }
  if (strcmp (verb, "spec") == 0)
    {
      static const struct optdef defs[] = { { "bundle", 'b', true }, { "rootless", 0, false } };
      parse_opts (rest, rargv, defs, 2, v, pos, &npos, 0);
      return cmd_spec (v[0].v);
    }
  if (strcmp (verb, "features") == 0)
    return cmd_features ();
  if (strcmp (verb, "update") == 0)
    {
      static const struct optdef defs[] = {
        { "resources", 'r', true }, { "memory", 'm', true },     { "memory-swap", 0, true },
        { "memory-reservation", 0, true }, { "pids-limit", 0, true }, { "cpu-quota", 0, true },
        { "cpu-period", 0, true },  { "cpu-share", 0, true },    { "cpuset-cpus", 0, true },
        { "cpuset-mems", 0, true }, { "blkio-weight", 0, true },
      };
      parse_opts (rest, rargv, defs, sizeof defs / sizeof defs[0], v, pos, &npos, 1);
      if (!need_id (npos, verb))
        return 1;
      struct nsrt_err err;
      json_object *res;
      if (v[0].v)
        {
          if ((res = read_json_file (v[0].v, "--resources", &err)) == NULL)
            return fail (&o, &err);
          if (!json_object_is_type (res, json_type_object))
            {
              json_object_put (res);
              nsrt_errf (&err, 0, "--resources: not a JSON object");
              return fail (&o, &err);
            }
        }
      else
        {
          res = json_object_new_object ();
          set_num (res, "memory", "limit", v[1].v, false);
          set_num (res, "memory", "swap", v[2].v, false);
          set_num (res, "memory", "reservation", v[3].v, false);
          set_num (res, "pids", "limit", v[4].v, false);
          set_num (res, "cpu", "quota", v[5].v, false);
          set_num (res, "cpu", "period", v[6].v, false);
          set_num (res, "cpu", "shares", v[7].v, false);
          set_num (res, "cpu", "cpus", v[8].v, true);
          set_num (res, "cpu", "mems", v[9].v, true);
          set_num (res, "blockIO", "weight", v[10].v, false);
        }
      struct nsrt_state *st;
      int r = 0;
      if (nsrt_state_load (&o, pos[0], &st, &err) < 0)
        r = fail (&o, &err);
      else
        {
          if (st->cg == NULL || nsrt_cgroup_apply (st->cg, res, &err) < 0)
            r = fail (&o, &err);
          nsrt_state_free (st);
        }
      json_object_put (res);
      return r;
    }
  if (strcmp (verb, "exec") == 0)
    {
      static const struct optdef defs[] = {
        { "process", 'p', true }, { "detach", 'd', false }, { "pid-file", 0, true }, { "console-socket", 0, true },
        { "tty", 't', false },    { "cwd", 0, true },       { "env", 'e', true },    { "user", 'u', true },
        { "additional-gids", 'g', true }, { "cap", 'c', true }, { "no-new-privs", 0, false },
        { "process-label", 0, true }, { "apparmor", 0, true }, { "preserve-fds", 0, true }, { "ignore-paused", 0, false },
        { "pidfd-socket", 0, true },
      };
      char *xpos[256];
      int consumed = parse_opts (rest, rargv, defs, sizeof defs / sizeof defs[0], v, xpos, &npos, 1);
      if (!need_id (npos, verb))
        return 1;
      /* everything after the id is the command */
      char **args = rargv + consumed;
      int nargs = rest - consumed;
      if (nargs > 0 && strcmp (args[0], "--") == 0)
        args++, nargs--;
      if (ensure_sealed_exe (argv) < 0)
        {
          fprintf (stderr, "berth-runtime: cannot re-execute from a sealed copy of itself: %s\n", strerror (errno));
          return 1;
        }
      struct nsrt_err err;
      json_object *proc = exec_process_json (&o, xpos[0], v, args, nargs, &err);
      if (proc == NULL)
        return fail (&o, &err);
      struct nsrt_exec_args a = {
        .id = xpos[0],
        .process = proc,
        .pid_file = v[2].v,
        .console_socket = v[3].v,
        .detach = v[1].v != NULL,
      };
      int r = nsrt_exec (&o, &a);
      json_object_put (proc);
      return r;
    }
  fprintf (stderr, "berth-runtime: unknown command `%s` (see --help)\n", verb);
  return 1;
}
