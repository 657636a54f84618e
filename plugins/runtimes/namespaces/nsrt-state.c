/* berth-runtime: the state file (<root>/<id>/state.json), the status of a
 * container as the OCI runtime spec defines it, logging and hooks. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nsrt.h"

void
nsrt_log (const struct nsrt_opts *o, const char *level, const char *fmt, ...)
{
  char msg[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (strcmp (level, "debug") == 0 && !o->debug)
    return;
  /* runc prints errors on stderr and, with --log, to the log too: the shim
   * reads either to tell the user why create failed. */
  if (strcmp (level, "debug") != 0 || o->log_path == NULL)
    fprintf (stderr, "berth-runtime: %s\n", msg);
  if (o->log_path == NULL)
    return;
  int fd = open (o->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  char line[4096];
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r (&ts.tv_sec, &tm);
  char when[64];
  snprintf (when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
  int n;
  if (o->log_json)
    {
      json_object *j = json_object_new_object ();
      json_object_object_add (j, "level", json_object_new_string (level));
      json_object_object_add (j, "msg", json_object_new_string (msg));
      json_object_object_add (j, "time", json_object_new_string (when));
      n = snprintf (line, sizeof line, "%s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN));
      json_object_put (j);
    }
  else
    n = snprintf (line, sizeof line, "time=\"%s\" level=%s msg=\"%s\"\n", when, level, msg);
  if (n > 0)
    {
      if ((size_t) n >= sizeof line)
        n = sizeof line - 1;
      if (write (fd, line, n) < 0)
        { /* nowhere left to report it */
        }
    }
  close (fd);
}

json_object *
nsrt_json_read_fd (int fd, const char *what, struct nsrt_err *err)
{
  json_tokener *tok = json_tokener_new_ex (64);
  json_object *j = NULL;
  enum json_tokener_error jerr = json_tokener_continue;
  char buf[16384];
  size_t total = 0;
  ssize_t n;
  while ((n = read (fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    {
      if (n < 0)
        continue;
      total += n;
      if (total > (64u << 20))
        {
          json_tokener_free (tok);
          nsrt_errf (err, 0, "%s: larger than 64 MiB", what);
          return NULL;
        }
      j = json_tokener_parse_ex (tok, buf, n);
      jerr = json_tokener_get_error (tok);
      if (jerr != json_tokener_continue)
        break;
    }
  if (n < 0)
    nsrt_errf (err, errno, "%s: read", what);
  else if (jerr == json_tokener_success && j)
    {
      json_tokener_free (tok);
      return j;
    }
  else if (jerr == json_tokener_continue)
    nsrt_errf (err, 0, "%s: invalid JSON: unexpected end of data", what);
  else
    nsrt_errf (err, 0, "%s: invalid JSON at offset %zu: %s", what, json_tokener_get_parse_end (tok) + (total - n),
               json_tokener_error_desc (jerr));
  json_object_put (j);
  json_tokener_free (tok);
  return NULL;
}

json_object *
nsrt_json_read_file (const char *path, struct nsrt_err *err)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      nsrt_errf (err, errno, "open %s", path);
      return NULL;
    }
  json_object *j = nsrt_json_read_fd (fd, path, err);
  close (fd);
  return j;
}

int
nsrt_validate_id (const char *id, struct nsrt_err *err)
{
  /* runc's rule: the id names a directory under --root. */
  size_t n = strlen (id);
  if (n == 0 || n > 1024)
    return nsrt_errf (err, 0, "invalid container id `%s`: empty or too long", id);
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'
          || *p == '-' || *p == '.' || *p == '+'))
      return nsrt_errf (err, 0, "invalid container id `%s`: only [A-Za-z0-9_+.-] allowed", id);
  if (strcmp (id, ".") == 0 || strcmp (id, "..") == 0)
    return nsrt_errf (err, 0, "invalid container id `%s`", id);
  return 0;
}

char *
nsrt_state_dir (const struct nsrt_opts *o, const char *id)
{
  char *p;
  if (asprintf (&p, "%s/%s", o->root, id) < 0)
    abort ();
  return p;
}

unsigned long long
nsrt_pid_start_time (pid_t pid)
{
  char path[64], buf[1024];
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  /* comm may hold spaces and parentheses: count fields after the last ')'. */
  char *p = strrchr (buf, ')');
  if (p == NULL)
    return 0;
  p += 2; /* field 3, state */
  if (*p == 'Z' || *p == 'X')
    return 0;
  for (int field = 3; field < 22 && p; field++)
    {
      p = strchr (p, ' ');
      if (p)
        p++;
    }
  return p ? strtoull (p, NULL, 10) : 0;
}

bool
nsrt_pid_alive (pid_t pid, unsigned long long start_time)
{
  if (pid <= 0)
    return false;
  unsigned long long t = nsrt_pid_start_time (pid);
  return t != 0 && t == start_time;
}

int
nsrt_write_file_atomic (const char *path, const char *data, size_t len, struct nsrt_err *err)
{
  char tmp[4096];
  if ((size_t) snprintf (tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return nsrt_errf (err, 0, "%s: path too long", path);
  int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return nsrt_errf (err, errno, "create %s", tmp);
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
          return nsrt_errf (err, e, "write %s", tmp);
        }
      off += w;
    }
  close (fd);
  if (rename (tmp, path) < 0)
    {
      int e = errno;
      unlink (tmp);
      return nsrt_errf (err, e, "rename %s", path);
    }
  return 0;
}

int
nsrt_write_pid_file (const char *path, pid_t pid, struct nsrt_err *err)
{
  char buf[32];
  int n = snprintf (buf, sizeof buf, "%d", (int) pid);
  if (nsrt_write_file_atomic (path, buf, n, err) < 0)
    return -1;
  /* the shim reads it as another user may; runc leaves it 0644 */
  chmod (path, 0644);
  return 0;
}

void
nsrt_state_free (struct nsrt_state *st)
{
  if (st == NULL)
    return;
  free (st->id);
  free (st->dir);
  free (st->bundle);
  free (st->created);
  if (st->config)
    json_object_put (st->config);
  nsrt_cgroup_free (st->cg);
  free (st);
}

int
nsrt_state_save (const struct nsrt_state *st, struct nsrt_err *err)
{
  json_object *j = nsrt_state_json (st, NULL);
  json_object_object_add (j, "init_start_time", json_object_new_uint64 (st->start_time));
  json_object_object_add (j, "paused_flag", json_object_new_boolean (st->paused));
  json_object_object_add (j, "created", json_object_new_string (st->created ? st->created : ""));
  if (st->config)
    json_object_object_add (j, "config", json_object_get (st->config));
  if (st->cg)
    json_object_object_add (j, "cgroup", nsrt_cgroup_to_json (st->cg));
  const char *s = json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN);
  char path[4096];
  snprintf (path, sizeof path, "%s/state.json", st->dir);
  int r = nsrt_write_file_atomic (path, s, strlen (s), err);
  json_object_put (j);
  return r;
}

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex (o, key, &v) && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

int
nsrt_state_load (const struct nsrt_opts *o, const char *id, struct nsrt_state **ret, struct nsrt_err *err)
{
  if (nsrt_validate_id (id, err) < 0)
    return -1;
  char *dir = nsrt_state_dir (o, id);
  char path[4096];
  snprintf (path, sizeof path, "%s/state.json", dir);
  json_object *j = json_object_from_file (path);
  if (j == NULL)
    {
      int e = errno;
      free (dir);
      if (access (path, F_OK) < 0)
        return nsrt_errf (err, 0, "container `%s` does not exist", id);
      return nsrt_errf (err, e, "container `%s`: cannot parse %s", id, path);
    }
  struct nsrt_state *st = calloc (1, sizeof *st);
  if (st == NULL)
    abort ();
  st->id = strdup (id);
  st->dir = dir;
  const char *b = jstr (j, "bundle");
  st->bundle = strdup (b ? b : "");
  const char *c = jstr (j, "created");
  st->created = strdup (c ? c : "");
  json_object *v;
  if (json_object_object_get_ex (j, "pid", &v))
    st->pid = json_object_get_int (v);
  if (json_object_object_get_ex (j, "init_start_time", &v))
    st->start_time = json_object_get_uint64 (v);
  if (json_object_object_get_ex (j, "paused_flag", &v))
    st->paused = json_object_get_boolean (v);
  if (json_object_object_get_ex (j, "config", &v))
    st->config = json_object_get (v);
  else
    st->config = json_object_new_object ();
  if (json_object_object_get_ex (j, "cgroup", &v))
    {
      struct nsrt_err e2;
      if (nsrt_cgroup_from_json (v, &st->cg, &e2) < 0)
        {
          json_object_put (j);
          nsrt_state_free (st);
          return nsrt_errf (err, 0, "container `%s`: state cgroup: %s", id, e2.msg);
        }
    }
  json_object_put (j);
  *ret = st;
  return 0;
}

const char *
nsrt_state_status (const struct nsrt_state *st)
{
  if (!nsrt_pid_alive (st->pid, st->start_time))
    return "stopped";
  char fifo[4096];
  snprintf (fifo, sizeof fifo, "%s/exec.fifo", st->dir);
  if (access (fifo, F_OK) == 0)
    return "created";
  if (st->paused)
    return "paused";
  return "running";
}

json_object *
nsrt_state_json (const struct nsrt_state *st, const char *status)
{
  json_object *j = json_object_new_object ();
  json_object_object_add (j, "ociVersion", json_object_new_string (NSRT_OCI_VERSION));
  json_object_object_add (j, "id", json_object_new_string (st->id));
  if (status == NULL)
    status = "created";
  json_object_object_add (j, "status", json_object_new_string (status));
  /* runc reports pid 0 once stopped */
  json_object_object_add (j, "pid", json_object_new_int (strcmp (status, "stopped") == 0 ? 0 : st->pid));
  json_object_object_add (j, "bundle", json_object_new_string (st->bundle));
  json_object *ann;
  if (st->config && json_object_object_get_ex (st->config, "annotations", &ann)
      && json_object_is_type (ann, json_type_object))
    json_object_object_add (j, "annotations", json_object_get (ann));
  else
    json_object_object_add (j, "annotations", json_object_new_object ());
  return j;
}

/* ---- hooks (OCI runtime spec, "POSIX-platform Hooks") ---- */

static char **
jarray_strv (json_object *a, const char *what, struct nsrt_err *err)
{
  size_t n = a ? json_object_array_length (a) : 0;
  char **v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    abort ();
  for (size_t i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (a, i);
      if (!json_object_is_type (e, json_type_string))
        {
          free (v);
          nsrt_errf (err, 0, "%s[%zu]: not a string", what, i);
          return NULL;
        }
      v[i] = (char *) json_object_get_string (e);
    }
  return v;
}

static int
hook_run (json_object *h, const char *what, const char *state_json, struct nsrt_err *err)
{
  const char *path = jstr (h, "path");
  if (path == NULL || path[0] != '/')
    return nsrt_errf (err, 0, "%s.path: missing or not absolute", what);
  json_object *a = NULL, *e = NULL, *t = NULL;
  if (json_object_object_get_ex (h, "args", &a) && !json_object_is_type (a, json_type_array))
    return nsrt_errf (err, 0, "%s.args: not an array", what);
  if (json_object_object_get_ex (h, "env", &e) && !json_object_is_type (e, json_type_array))
    return nsrt_errf (err, 0, "%s.env: not an array", what);
  int timeout = 0;
  if (json_object_object_get_ex (h, "timeout", &t))
    {
      timeout = json_object_get_int (t);
      if (timeout <= 0)
        return nsrt_errf (err, 0, "%s.timeout: must be positive", what);
    }
  char **argv = jarray_strv (a, what, err);
  if (argv == NULL)
    return -1;
  char **envp = jarray_strv (e, what, err);
  if (envp == NULL)
    {
      free (argv);
      return -1;
    }
  char *defargv[] = { (char *) path, NULL };
  int in[2], errp[2];
  if (pipe2 (in, O_CLOEXEC) < 0 || pipe2 (errp, O_CLOEXEC) < 0)
    {
      free (argv);
      free (envp);
      return nsrt_errf (err, errno, "%s: pipe", what);
    }
  pid_t pid = fork ();
  if (pid == 0)
    {
      dup2 (in[0], 0);
      dup2 (errp[1], 2);
      int devnull = open ("/dev/null", O_WRONLY);
      if (devnull >= 0)
        dup2 (devnull, 1);
      execve (path, argv[0] ? argv : defargv, envp);
      dprintf (2, "exec %s: %s", path, strerror (errno));
      _exit (127);
    }
  free (argv);
  free (envp);
  close (in[0]);
  close (errp[1]);
  if (pid < 0)
    {
      close (in[1]);
      close (errp[0]);
      return nsrt_errf (err, errno, "%s: fork", what);
    }
  /* the state is small; a hook that does not read it gets EPIPE, ignored */
  signal (SIGPIPE, SIG_IGN);
  if (write (in[1], state_json, strlen (state_json)) < 0)
    { /* the hook may exit without reading */
    }
  close (in[1]);
  char msg[512] = "";
  size_t mlen = 0;
  struct timespec start;
  clock_gettime (CLOCK_MONOTONIC, &start);
  int status = 0;
  for (;;)
    {
      pid_t w = waitpid (pid, &status, WNOHANG);
      if (w == pid)
        break;
      struct pollfd p = { .fd = errp[0], .events = POLLIN };
      if (poll (&p, 1, 20) > 0)
        {
          ssize_t n = read (errp[0], msg + mlen, sizeof msg - 1 - mlen);
          if (n > 0)
            mlen += n;
          else
            { /* EOF: keep polling waitpid */
              struct timespec d = { 0, 5000000 };
              nanosleep (&d, NULL);
            }
        }
      if (timeout > 0)
        {
          struct timespec now;
          clock_gettime (CLOCK_MONOTONIC, &now);
          if (now.tv_sec - start.tv_sec >= timeout)
            {
              kill (pid, SIGKILL);
              waitpid (pid, &status, 0);
              close (errp[0]);
              return nsrt_errf (err, 0, "%s (%s): timed out after %d s", what, path, timeout);
            }
        }
    }
  ssize_t n;
  while (mlen < sizeof msg - 1 && (n = read (errp[0], msg + mlen, sizeof msg - 1 - mlen)) > 0)
    mlen += n;
  msg[mlen] = '\0';
  close (errp[0]);
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    return 0;
  if (WIFEXITED (status))
    return nsrt_errf (err, 0, "%s (%s): exit status %d%s%s", what, path, WEXITSTATUS (status), mlen ? ": " : "",
                      msg);
  return nsrt_errf (err, 0, "%s (%s): killed by signal %d", what, path, WTERMSIG (status));
}

int
nsrt_hooks_run (json_object *config, const char *name, const char *state_json, struct nsrt_err *err)
{
  json_object *hooks, *list;
  if (!config || !json_object_object_get_ex (config, "hooks", &hooks) || !json_object_object_get_ex (hooks, name, &list))
    return 0;
  if (!json_object_is_type (list, json_type_array))
    return nsrt_errf (err, 0, "hooks.%s: not an array", name);
  for (size_t i = 0; i < json_object_array_length (list); i++)
    {
      char what[64];
      snprintf (what, sizeof what, "hooks.%s[%zu]", name, i);
      json_object *h = json_object_array_get_idx (list, i);
      if (!json_object_is_type (h, json_type_object))
        return nsrt_errf (err, 0, "%s: not an object", what);
      if (hook_run (h, what, state_json, err) < 0)
        return -1;
    }
  return 0;
}

int
nsrt_rm_rf (const char *path)
{
  DIR *d = opendir (path);
  if (d == NULL)
    return unlink (path) == 0 || errno == ENOENT ? 0 : -1;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      char p[4096];
      snprintf (p, sizeof p, "%s/%s", path, de->d_name);
      if (de->d_type == DT_DIR)
        nsrt_rm_rf (p);
      else
        unlink (p);
    }
  closedir (d);
  return rmdir (path);
}
