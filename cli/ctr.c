/* Containers and tasks for the docker-style verbs: see ctr.h. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "ctr.h"
#include "helpers.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

/* ---- containers ---- */

void
ctr_ref_clear (struct ctr_ref *r)
{
  if (r->resp)
    protobuf_c_message_free_unpacked (r->resp, NULL);
  r->resp = NULL;
  r->c = NULL;
}

void
ctr_list_clear (struct ctr_list *l)
{
  if (l->resp)
    protobuf_c_message_free_unpacked (l->resp, NULL);
  *l = (struct ctr_list){ 0 };
}

int
ctr_list_all (struct cli *cli, struct ctr_list *ret, berth_error **err)
{
  Containerd__Services__Containers__V1__ListContainersRequest req
      = CONTAINERD__SERVICES__CONTAINERS__V1__LIST_CONTAINERS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, CONTAINERS_SERVICE "List", &req.base,
                     &containerd__services__containers__v1__list_containers_response__descriptor, &resp, err);
  if (r < 0)
    return r;
  Containerd__Services__Containers__V1__ListContainersResponse *lr = (void *)resp;
  *ret = (struct ctr_list){ .resp = resp, .v = lr->containers, .n = lr->n_containers };
  return 0;
}

const char *
ctr_label (const pb_container *c, const char *key)
{
  return pb_labels_get ((void *const *)c->labels, c->n_labels, key);
}

const char *
ctr_name (const pb_container *c, char *buf)
{
  const char *n = ctr_label (c, LABEL_NAME);
  if (n && *n)
    return n;
  snprintf (buf, 13, "%.12s", c->id);
  return buf;
}

int
ctr_resolve (struct cli *cli, const char *ref, struct ctr_ref *ret)
{
  *ret = (struct ctr_ref){ 0 };
  if (ref == NULL || *ref == 0)
    return cli_fail (cli, NULL, "empty container name");
  _cleanup_error_ berth_error *err = NULL;
  struct ctr_list l = { 0 };
  int r = ctr_list_all (cli, &l, &err);
  if (r < 0)
    return cli_call_failed (cli, err, "listing containers");
  ssize_t found = -1;
  for (size_t i = 0; i < l.n && found < 0; i++)
    if (strcmp (l.v[i]->id, ref) == 0)
      found = (ssize_t)i;
  for (size_t i = 0; i < l.n && found < 0; i++)
    {
      const char *n = ctr_label (l.v[i], LABEL_NAME);
      if (n && strcmp (n, ref) == 0)
        found = (ssize_t)i;
    }
  if (found < 0)
    {
      size_t matches = 0, len = strlen (ref);
      for (size_t i = 0; i < l.n; i++)
        if (strncmp (l.v[i]->id, ref, len) == 0)
          {
            matches++;
            found = (ssize_t)i;
          }
      if (matches > 1)
        {
          fprintf (stderr, "berth: container `%s` is ambiguous: it is a prefix of", ref);
          for (size_t i = 0; i < l.n; i++)
            if (strncmp (l.v[i]->id, ref, len) == 0)
              fprintf (stderr, " %.12s", l.v[i]->id);
          fputc ('\n', stderr);
          ctr_list_clear (&l);
          return CLI_EXIT_FAIL;
        }
    }
  if (found < 0)
    {
      ctr_list_clear (&l);
      return cli_fail (cli, NULL, "no such container: %s", ref);
    }
  /* Keep the whole list response alive; it owns the container. */
  ret->resp = l.resp;
  ret->c = l.v[found];
  return CLI_EXIT_OK;
}

/* ---- tasks ---- */

int
task_get (struct cli *cli, const char *id, const char *exec_id, ProtobufCMessage **ret_resp, pb_process **ret,
          berth_error **err)
{
  Containerd__Services__Tasks__V1__GetRequest req = CONTAINERD__SERVICES__TASKS__V1__GET_REQUEST__INIT;
  req.container_id = (char *)id;
  if (exec_id)
    req.exec_id = (char *)exec_id;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, TASKS_SERVICE "Get", &req.base, &containerd__services__tasks__v1__get_response__descriptor,
                     &resp, err);
  if (r < 0)
    return r;
  Containerd__Services__Tasks__V1__GetResponse *gr = (void *)resp;
  if (gr->process == NULL)
    {
      protobuf_c_message_free_unpacked (resp, NULL);
      return berth_error_set (err, BERTH_E_NOTFOUND, 0, "no task for %s", id);
    }
  *ret_resp = resp;
  *ret = gr->process;
  return 0;
}

int
task_kill (struct cli *cli, const char *id, const char *exec_id, int sig, bool all, berth_error **err)
{
  Containerd__Services__Tasks__V1__KillRequest req = CONTAINERD__SERVICES__TASKS__V1__KILL_REQUEST__INIT;
  req.container_id = (char *)id;
  if (exec_id)
    req.exec_id = (char *)exec_id;
  req.signal = (uint32_t)sig;
  req.all = all;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, TASKS_SERVICE "Kill", &req.base, &google__protobuf__empty__descriptor, &resp, err);
  if (resp)
    protobuf_c_message_free_unpacked (resp, NULL);
  return r;
}

int
task_delete (struct cli *cli, const char *id, uint32_t *ret_status, berth_error **err)
{
  Containerd__Services__Tasks__V1__DeleteTaskRequest req = CONTAINERD__SERVICES__TASKS__V1__DELETE_TASK_REQUEST__INIT;
  req.container_id = (char *)id;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, TASKS_SERVICE "Delete", &req.base,
                     &containerd__services__tasks__v1__delete_response__descriptor, &resp, err);
  if (r < 0)
    return r;
  if (ret_status)
    *ret_status = ((Containerd__Services__Tasks__V1__DeleteResponse *)resp)->exit_status;
  protobuf_c_message_free_unpacked (resp, NULL);
  return 0;
}

int
task_wait (struct cli *cli, const char *id, const char *exec_id, uint32_t *ret_status, berth_error **err)
{
  Containerd__Services__Tasks__V1__WaitRequest req = CONTAINERD__SERVICES__TASKS__V1__WAIT_REQUEST__INIT;
  req.container_id = (char *)id;
  if (exec_id)
    req.exec_id = (char *)exec_id;
  ProtobufCMessage *resp = NULL;
  /* Waiting has no deadline, whatever --timeout says. */
  grpc_client *c = cli_client (cli);
  if (c == NULL)
    return BERTH_E_UNAVAILABLE;
  grpc_client_set_deadline (c, 0);
  int r = cli_unary (cli, TASKS_SERVICE "Wait", &req.base, &containerd__services__tasks__v1__wait_response__descriptor,
                     &resp, err);
  grpc_client_set_deadline (c, cli->timeout_ms);
  if (r < 0)
    return r;
  if (ret_status)
    *ret_status = ((Containerd__Services__Tasks__V1__WaitResponse *)resp)->exit_status;
  protobuf_c_message_free_unpacked (resp, NULL);
  return 0;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Status of the task, or -1 when it is gone. */
static int
task_status (struct cli *cli, const char *id, berth_error **err)
{
  ProtobufCMessage *resp = NULL;
  pb_process *p = NULL;
  int r = task_get (cli, id, NULL, &resp, &p, err);
  if (r < 0)
    return r == BERTH_E_NOTFOUND ? -1 : r;
  int s = p->status;
  protobuf_c_message_free_unpacked (resp, NULL);
  return s;
}

int
task_stop (struct cli *cli, const char *id, long timeout_s, berth_error **err)
{
  int r = task_kill (cli, id, NULL, SIGTERM, false, err);
  if (r < 0)
    return r;
  double until = now_s () + (double)timeout_s;
  for (;;)
    {
      berth_error *e = NULL;
      int s = task_status (cli, id, &e);
      if (s < -1)
        return berth_error_take (err, e);
      if (s == -1 || s == CONTAINERD__V1__TYPES__STATUS__STOPPED)
        return 0;
      if (timeout_s >= 0 && now_s () >= until)
        break;
      usleep (50 * 1000);
    }
  r = task_kill (cli, id, NULL, SIGKILL, true, err);
  if (r < 0)
    return r;
  return task_wait (cli, id, NULL, NULL, err);
}

/* ---- statuses ---- */

const char *
human_duration (double d, char *buf, size_t len)
{
  long s = d < 0 ? 0 : (long)d;
  long m = s / 60;
  long h = (long)(d / 3600.0 + 0.5);
  if (s < 1)
    snprintf (buf, len, "Less than a second");
  else if (s == 1)
    snprintf (buf, len, "1 second");
  else if (s < 60)
    snprintf (buf, len, "%ld seconds", s);
  else if (m == 1)
    snprintf (buf, len, "About a minute");
  else if (m < 60)
    snprintf (buf, len, "%ld minutes", m);
  else if (h == 1)
    snprintf (buf, len, "About an hour");
  else if (h < 48)
    snprintf (buf, len, "%ld hours", h);
  else if (h < 24 * 7 * 2)
    snprintf (buf, len, "%ld days", h / 24);
  else if (h < 24 * 30 * 2)
    snprintf (buf, len, "%ld weeks", h / 24 / 7);
  else if (h < 24 * 365 * 2)
    snprintf (buf, len, "%ld months", h / 24 / 30);
  else
    snprintf (buf, len, "%ld years", s / 3600 / 24 / 365);
  return buf;
}

static double
ts_age (const Google__Protobuf__Timestamp *ts, time_t now)
{
  if (ts == NULL)
    return 0;
  return (double)now - (double)ts->seconds - ts->nanos / 1e9;
}

/* When the process started (this host's /proc), else the container's
 * creation: docker's "Up" counts from the start. */
static double
started_age (const pb_container *c, const pb_process *p, time_t now)
{
  char path[64], buf[1024];
  snprintf (path, sizeof path, "/proc/%" PRIu32 "/stat", p->pid);
  FILE *f = p->pid > 0 ? fopen (path, "re") : NULL;
  char *got = f ? fgets (buf, sizeof buf, f) : NULL;
  if (f)
    fclose (f);
  char *rp = got ? strrchr (buf, ')') : NULL;
  unsigned long long start = 0;
  if (rp)
    {
      /* field 22 (starttime); rp + 2 is field 3 */
      char *q = rp + 2;
      for (int field = 3; field < 22 && q; field++)
        {
          q = strchr (q, ' ');
          if (q)
            q++;
        }
      if (q)
        start = strtoull (q, NULL, 10);
    }
  long hz = sysconf (_SC_CLK_TCK);
  FILE *sf = start ? fopen ("/proc/stat", "re") : NULL;
  unsigned long long btime = 0;
  while (sf && fgets (buf, sizeof buf, sf))
    if (sscanf (buf, "btime %llu", &btime) == 1)
      break;
  if (sf)
    fclose (sf);
  if (start && btime && hz > 0)
    return (double)now - ((double)btime + (double)start / (double)hz);
  return ts_age (c->created_at, now);
}

bool
ctr_shim_silent (const pb_process *p, int64_t *ret_silent_ms, char *ret_why, size_t why_len)
{
  for (unsigned i = 0; p && i < p->base.n_unknown_fields; i++)
    {
      const ProtobufCMessageUnknownField *f = &p->base.unknown_fields[i];
      if (f->tag != 1000 || f->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED || f->len > 4096)
        continue;
      /* protobuf-c keeps a length-delimited field with its length prefix */
      size_t off = 0, len = 0;
      for (int shift = 0; off < f->len && shift < 35; shift += 7)
        {
          len |= (size_t)(f->data[off] & 0x7f) << shift;
          if ((f->data[off++] & 0x80) == 0)
            break;
        }
      if (len > f->len - off)
        continue;
      json_tokener *tok = json_tokener_new ();
      json_object *o = tok ? json_tokener_parse_ex (tok, (const char *)f->data + off, (int)len) : NULL;
      if (tok)
        json_tokener_free (tok);
      json_object *v;
      bool silent = json_object_is_type (o, json_type_object) && json_object_object_get_ex (o, "answering", &v)
                    && json_object_is_type (v, json_type_boolean) && !json_object_get_boolean (v);
      if (silent && ret_silent_ms)
        *ret_silent_ms = json_object_object_get_ex (o, "silent_ms", &v) ? json_object_get_int64 (v) : 0;
      if (silent && ret_why && why_len)
        snprintf (ret_why, why_len, "%s",
                  json_object_object_get_ex (o, "error", &v) && json_object_is_type (v, json_type_string)
                      ? json_object_get_string (v)
                      : "");
      json_object_put (o);
      if (silent)
        return true;
    }
  return false;
}

const char *
ctr_status (const pb_container *c, const pb_process *p, time_t now, char *buf, const char **state)
{
  char d[48];
  const char *st = "created";
  if (p == NULL)
    snprintf (buf, 64, "Created");
  else
    switch (p->status)
      {
      case CONTAINERD__V1__TYPES__STATUS__CREATED: snprintf (buf, 64, "Created"); break;
      case CONTAINERD__V1__TYPES__STATUS__RUNNING:
        st = "running";
        snprintf (buf, 64, "Up %s", human_duration (started_age (c, p, now), d, sizeof d));
        break;
      case CONTAINERD__V1__TYPES__STATUS__PAUSED:
      case CONTAINERD__V1__TYPES__STATUS__PAUSING:
        st = "paused";
        snprintf (buf, 64, "Up %s (Paused)", human_duration (started_age (c, p, now), d, sizeof d));
        break;
      case CONTAINERD__V1__TYPES__STATUS__STOPPED:
        st = "exited";
        snprintf (buf, 64, "Exited (%" PRIu32 ") %s ago", p->exit_status,
                  human_duration (ts_age (p->exited_at, now), d, sizeof d));
        break;
      default:
        {
          int64_t silent = 0;
          st = "unknown";
          if (ctr_shim_silent (p, &silent, NULL, 0))
            snprintf (buf, 64, "Unknown (shim not answering for %s)",
                      human_duration ((double)silent / 1000, d, sizeof d));
          else
            snprintf (buf, 64, "Unknown");
          break;
        }
      }
  if (state)
    *state = st;
  return buf;
}

static const struct
{
  const char *name;
  int sig;
} signals[] = {
  { "HUP", SIGHUP },   { "INT", SIGINT },     { "QUIT", SIGQUIT }, { "ILL", SIGILL },   { "TRAP", SIGTRAP },
  { "ABRT", SIGABRT }, { "BUS", SIGBUS },     { "FPE", SIGFPE },   { "KILL", SIGKILL }, { "USR1", SIGUSR1 },
  { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },   { "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
  { "CHLD", SIGCHLD }, { "CONT", SIGCONT },   { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
  { "TTOU", SIGTTOU }, { "URG", SIGURG },     { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
  { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },     { "PWR", SIGPWR },   { "SYS", SIGSYS },
};

int
parse_signal (const char *s)
{
  if (s == NULL || *s == 0)
    return -1;
  char *end;
  errno = 0;
  long n = strtol (s, &end, 10);
  if (*end == 0 && errno == 0)
    return n > 0 && n < 65 ? (int)n : -1;
  if (strncasecmp (s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < ARRAY_SIZE (signals); i++)
    if (strcasecmp (signals[i].name, s) == 0)
      return signals[i].sig;
  return -1;
}

/* ---- removal ---- */

static void
remove_dir_files (const char *dir)
{
  DIR *d = opendir (dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, ".."))
      unlinkat (dirfd (d), e->d_name, 0);
  closedir (d);
  rmdir (dir);
}

int
ctr_remove (struct cli *cli, const pb_container *c, bool force)
{
  char nb[16];
  const char *name = ctr_name (c, nb);
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  pb_process *p = NULL;
  int r = task_get (cli, c->id, NULL, &resp, &p, &err);
  if (r < 0 && r != BERTH_E_NOTFOUND)
    return cli_call_failed (cli, err, "removing container %s: getting its task", name);
  if (r == 0)
    {
      int st = p->status;
      protobuf_c_message_free_unpacked (resp, NULL);
      if (st != CONTAINERD__V1__TYPES__STATUS__STOPPED && st != CONTAINERD__V1__TYPES__STATUS__CREATED)
        {
          if (!force)
            return cli_fail (cli, NULL, "container %s is running: stop it first, or use rm -f", name);
          berth_error_free (TAKE_PTR (err));
          if (st == CONTAINERD__V1__TYPES__STATUS__PAUSED)
            {
              Containerd__Services__Tasks__V1__ResumeTaskRequest rq
                  = CONTAINERD__SERVICES__TASKS__V1__RESUME_TASK_REQUEST__INIT;
              rq.container_id = c->id;
              ProtobufCMessage *e = NULL;
              if (cli_unary (cli, TASKS_SERVICE "Resume", &rq.base, &google__protobuf__empty__descriptor, &e, NULL)
                  == 0)
                protobuf_c_message_free_unpacked (e, NULL);
            }
          r = task_kill (cli, c->id, NULL, SIGKILL, true, &err);
          if (r == 0)
            r = task_wait (cli, c->id, NULL, NULL, &err);
          if (r < 0 && r != BERTH_E_NOTFOUND)
            return cli_call_failed (cli, err, "killing container %s", name);
        }
      else if (st == CONTAINERD__V1__TYPES__STATUS__CREATED)
        {
          /* A created task has an init process waiting to exec: kill it. */
          berth_error_free (TAKE_PTR (err));
          task_kill (cli, c->id, NULL, SIGKILL, true, NULL);
        }
      berth_error_free (TAKE_PTR (err));
      r = task_delete (cli, c->id, NULL, &err);
      if (r < 0 && r != BERTH_E_NOTFOUND)
        return cli_call_failed (cli, err, "removing container %s: deleting its task", name);
    }
  berth_error_free (TAKE_PTR (err));

  Containerd__Services__Containers__V1__DeleteContainerRequest dr
      = CONTAINERD__SERVICES__CONTAINERS__V1__DELETE_CONTAINER_REQUEST__INIT;
  dr.id = c->id;
  resp = NULL;
  r = cli_unary (cli, CONTAINERS_SERVICE "Delete", &dr.base, &google__protobuf__empty__descriptor, &resp, &err);
  if (resp)
    protobuf_c_message_free_unpacked (resp, NULL);
  if (r < 0 && r != BERTH_E_NOTFOUND)
    return cli_call_failed (cli, err, "removing container %s", name);
  berth_error_free (TAKE_PTR (err));

  if (c->snapshot_key && *c->snapshot_key && c->snapshotter && *c->snapshotter)
    {
      Containerd__Services__Snapshots__V1__RemoveSnapshotRequest sr
          = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
      sr.snapshotter = c->snapshotter;
      sr.key = c->snapshot_key;
      resp = NULL;
      r = cli_unary (cli, SNAPSHOTS_SERVICE "Remove", &sr.base, &google__protobuf__empty__descriptor, &resp, &err);
      if (resp)
        protobuf_c_message_free_unpacked (resp, NULL);
      if (r < 0 && r != BERTH_E_NOTFOUND)
        return cli_call_failed (cli, err, "removing the snapshot %s of container %s", c->snapshot_key, name);
    }
  char dir[4096];
  if (ctr_fifo_dir (cli->ns, c->id, dir, sizeof dir) == 0)
    remove_dir_files (dir);
  return CLI_EXIT_OK;
}

/* ---- FIFOs ---- */

int
ctr_fifo_dir (const char *ns, const char *id, char *buf, size_t len)
{
  const char *base = getenv ("BERTH_FIFO_DIR");
  char tmp[4096];
  if (base == NULL || *base == 0)
    {
      if (geteuid () == 0)
        base = "/run/berth/fifo";
      else
        {
          const char *x = getenv ("XDG_RUNTIME_DIR");
          if (x == NULL || *x == 0)
            return -ENOENT;
          snprintf (tmp, sizeof tmp, "%s/berth/fifo", x);
          base = tmp;
        }
    }
  int n = snprintf (buf, len, "%s/%s/%s", base, ns, id);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int
mkdir_p (const char *path, mode_t mode)
{
  char buf[4096];
  if (strlen (path) >= sizeof buf)
    return -ENAMETOOLONG;
  strcpy (buf, path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/')
      {
        *p = 0;
        if (mkdir (buf, mode) < 0 && errno != EEXIST)
          return -errno;
        *p = '/';
      }
  if (mkdir (buf, mode) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

int
ctr_fifos_create (const char *ns, const char *id, const char *prefix, bool want_in, bool tty, struct ctr_fifos *ret,
                  berth_error **err)
{
  *ret = (struct ctr_fifos){ 0 };
  int r = ctr_fifo_dir (ns, id, ret->dir, sizeof ret->dir);
  if (r < 0)
    return berth_error_set (err, BERTH_E_INVALID, -r,
                            "no directory for the stdio FIFOs (set XDG_RUNTIME_DIR or "
                            "BERTH_FIFO_DIR)");
  r = mkdir_p (ret->dir, 0700);
  if (r < 0)
    return berth_error_set (err, berth_errcode_from_errno (-r), -r, "creating %s: %s", ret->dir, strerror (-r));
  struct
  {
    char *path;
    const char *name;
    bool want;
  } f[] = { { ret->in, "stdin", want_in }, { ret->out, "stdout", true }, { ret->err, "stderr", !tty } };
  for (size_t i = 0; i < ARRAY_SIZE (f); i++)
    {
      if (!f[i].want)
        continue;
      snprintf (f[i].path, sizeof ret->in, "%s/%s%s", ret->dir, prefix ? prefix : "", f[i].name);
      unlink (f[i].path);
      if (mkfifo (f[i].path, 0600) < 0)
        {
          int e = errno;
          ctr_fifos_unlink (ret);
          return berth_error_set (err, berth_errcode_from_errno (e), e, "creating the FIFO %s: %s", f[i].path,
                                  strerror (e));
        }
    }
  return 0;
}

void
ctr_fifos_unlink (const struct ctr_fifos *f)
{
  if (f->in[0])
    unlink (f->in);
  if (f->out[0])
    unlink (f->out);
  if (f->err[0])
    unlink (f->err);
}

/* ---- attach: copying stdio ---- */

struct io_state
{
  struct cli *cli; /* the main connection: only for its address/ns */
  struct cli side; /* our own connection for Kill/ResizePty/CloseIO */
  const struct attach_opts *o;
  int in_fd, out_fd, err_fd;
  int done_fd; /* read end: the main thread says the process exited */
  int sig_fd;
  bool tty;
};

static void
send_resize (struct io_state *s)
{
  struct winsize ws;
  if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl (STDIN_FILENO, TIOCGWINSZ, &ws) < 0)
    return;
  Containerd__Services__Tasks__V1__ResizePtyRequest req = CONTAINERD__SERVICES__TASKS__V1__RESIZE_PTY_REQUEST__INIT;
  req.container_id = (char *)s->o->id;
  if (s->o->exec_id)
    req.exec_id = (char *)s->o->exec_id;
  req.width = ws.ws_col;
  req.height = ws.ws_row;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (&s->side, TASKS_SERVICE "ResizePty", &req.base, &google__protobuf__empty__descriptor, &resp, NULL)
      == 0)
    protobuf_c_message_free_unpacked (resp, NULL);
}

static void
send_closeio (struct io_state *s)
{
  Containerd__Services__Tasks__V1__CloseIORequest req = CONTAINERD__SERVICES__TASKS__V1__CLOSE_IOREQUEST__INIT;
  req.container_id = (char *)s->o->id;
  if (s->o->exec_id)
    req.exec_id = (char *)s->o->exec_id;
  req.stdin = true;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (&s->side, TASKS_SERVICE "CloseIO", &req.base, &google__protobuf__empty__descriptor, &resp, NULL) == 0)
    protobuf_c_message_free_unpacked (resp, NULL);
}

static int
write_all (int fd, const char *buf, size_t len)
{
  while (len > 0)
    {
      ssize_t w = write (fd, buf, len);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -errno;
      buf += w;
      len -= (size_t)w;
    }
  return 0;
}

static void *
io_thread (void *data)
{
  struct io_state *s = data;
  char buf[32768];
  bool exited = false;
  double exited_at = 0, last_data = 0;
  bool stdin_open = s->in_fd >= 0;
  if (s->tty)
    send_resize (s);
  for (;;)
    {
      if (s->out_fd < 0 && s->err_fd < 0 && exited)
        break;
      struct pollfd p[5];
      int n = 0, i_in = -1, i_out = -1, i_err = -1, i_done = -1, i_sig = -1;
      if (stdin_open)
        {
          i_in = n;
          p[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
        }
      if (s->out_fd >= 0)
        {
          i_out = n;
          p[n++] = (struct pollfd){ .fd = s->out_fd, .events = POLLIN };
        }
      if (s->err_fd >= 0)
        {
          i_err = n;
          p[n++] = (struct pollfd){ .fd = s->err_fd, .events = POLLIN };
        }
      if (!exited)
        {
          i_done = n;
          p[n++] = (struct pollfd){ .fd = s->done_fd, .events = POLLIN };
        }
      if (s->sig_fd >= 0)
        {
          i_sig = n;
          p[n++] = (struct pollfd){ .fd = s->sig_fd, .events = POLLIN };
        }
      /* After the exit, drain what the daemon still has, then stop: a
       * daemon that keeps the FIFO open must not hang us. */
      int timeout = -1;
      if (exited)
        {
          double t = now_s ();
          if (t - last_data > 0.15 || t - exited_at > 5)
            break;
          timeout = 50;
        }
      int r = poll (p, (nfds_t)n, timeout);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        break;
      if (i_done >= 0 && p[i_done].revents)
        {
          exited = true;
          exited_at = last_data = now_s ();
        }
      int outs[2] = { i_out, i_err };
      int *fds[2] = { &s->out_fd, &s->err_fd };
      int dst[2] = { STDOUT_FILENO, STDERR_FILENO };
      for (int k = 0; k < 2; k++)
        if (outs[k] >= 0 && p[outs[k]].revents)
          {
            ssize_t got = read (*fds[k], buf, sizeof buf);
            if (got > 0)
              {
                write_all (dst[k], buf, (size_t)got);
                last_data = now_s ();
              }
            else if (got == 0 || (errno != EAGAIN && errno != EINTR))
              {
                close (*fds[k]);
                *fds[k] = -1;
              }
          }
      if (i_in >= 0 && p[i_in].revents)
        {
          ssize_t got = read (STDIN_FILENO, buf, sizeof buf);
          if (got > 0)
            {
              if (write_all (s->in_fd, buf, (size_t)got) < 0)
                got = 0;
            }
          if (got <= 0 && !(got < 0 && (errno == EAGAIN || errno == EINTR)))
            {
              stdin_open = false;
              close (s->in_fd);
              s->in_fd = -1;
              if (!exited)
                send_closeio (s);
            }
        }
      if (i_sig >= 0 && p[i_sig].revents)
        {
          struct signalfd_siginfo si;
          if (read (s->sig_fd, &si, sizeof si) == sizeof si)
            {
              if ((int)si.ssi_signo == SIGWINCH)
                {
                  if (s->tty)
                    send_resize (s);
                }
              else if (s->o->sig_proxy && !exited)
                task_kill (&s->side, s->o->id, s->o->exec_id, (int)si.ssi_signo, false, NULL);
            }
        }
    }
  return NULL;
}

int
exit_code_for_error (const berth_error *err)
{
  /* Only errors about exec'ing the command (runc's and berth-runtime's
   * `exec: "cmd": ...`): a missing runtime binary is berth's failure. */
  const char *m = err ? berth_error_message (err) : "";
  const char *ex = strstr (m, "exec: \"");
  if (ex == NULL)
    ex = strstr (m, "exec \"");
  if (ex == NULL)
    ex = strstr (m, "open executable"); /* crun */
  if (strstr (m, "executable file not found") || (strstr (m, "executable file `") && strstr (m, "not found in $PATH")))
    return EXIT_NOT_FOUND;
  if (ex == NULL)
    return EXIT_BERTH_ERROR;
  if (strcasestr (ex, "no such file or directory"))
    return EXIT_NOT_FOUND;
  if (strcasestr (ex, "permission denied") || strstr (ex, "not executable") || strcasestr (ex, "is a directory")
      || strstr (ex, "exec format error"))
    return EXIT_CANNOT_INVOKE;
  return EXIT_BERTH_ERROR;
}

/* What ctr_attach sets up and must undo, in one place (cleanup attribute). */
struct attach_env
{
  struct io_state s;
  int done_pipe[2];
  struct termios saved;
  bool raw;
  sigset_t old;
  bool masked;
};

static void
attach_env_done (struct attach_env *e)
{
  if (e->raw)
    tcsetattr (STDIN_FILENO, TCSANOW, &e->saved);
  int fds[] = { e->s.sig_fd, e->s.out_fd, e->s.err_fd, e->s.in_fd, e->done_pipe[0], e->done_pipe[1] };
  for (size_t i = 0; i < ARRAY_SIZE (fds); i++)
    if (fds[i] >= 0)
      close (fds[i]);
  if (e->masked)
    pthread_sigmask (SIG_SETMASK, &e->old, NULL);
  grpc_client_free (e->s.side.client);
}

int
ctr_attach (struct cli *cli, const struct attach_opts *o, uint32_t *ret_status)
{
  _cleanup_ (attach_env_done) struct attach_env e = {
    .s = { .cli = cli,
           .side = *cli,
           .o = o,
           .in_fd = -1,
           .out_fd = -1,
           .err_fd = -1,
           .done_fd = -1,
           .sig_fd = -1,
           .tty = o->tty },
    .done_pipe = { -1, -1 },
  };
  struct io_state *s = &e.s;
  s->side.client = NULL;
  _cleanup_error_ berth_error *err = NULL;

  /* Open our ends before the task starts: the read ends non-blocking (a
   * FIFO with no writer yet polls as nothing to read); stdin read-write so
   * that opening does not wait for the daemon's reader. */
  if (o->out && *o->out && (s->out_fd = open (o->out, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
    return cli_fail (cli, NULL, "opening %s: %s", o->out, strerror (errno));
  if (o->err && *o->err && (s->err_fd = open (o->err, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0)
    return cli_fail (cli, NULL, "opening %s: %s", o->err, strerror (errno));
  if (o->in && *o->in && (s->in_fd = open (o->in, O_RDWR | O_CLOEXEC)) < 0)
    return cli_fail (cli, NULL, "opening %s: %s", o->in, strerror (errno));
  if (pipe2 (e.done_pipe, O_CLOEXEC) < 0)
    return cli_fail (cli, NULL, "pipe: %s", strerror (errno));
  s->done_fd = e.done_pipe[0];

  /* A reader of our output that goes away (| head) must not kill us
   * before the container is waited for (and removed with --rm). */
  signal (SIGPIPE, SIG_IGN);
  /* Forwarded signals are read by the stdio thread from a signalfd; the
   * main thread blocks in Tasks/Wait. */
  sigset_t mask;
  sigemptyset (&mask);
  int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
  for (size_t i = 0; i < ARRAY_SIZE (fwd); i++)
    sigaddset (&mask, fwd[i]);
  if (pthread_sigmask (SIG_BLOCK, &mask, &e.old) == 0)
    {
      e.masked = true;
      s->sig_fd = signalfd (-1, &mask, SFD_CLOEXEC);
    }
  if (o->tty && s->in_fd >= 0 && isatty (STDIN_FILENO) && tcgetattr (STDIN_FILENO, &e.saved) == 0)
    {
      struct termios t = e.saved;
      cfmakeraw (&t);
      t.c_oflag |= OPOST; /* keep "\n" -> "\r\n" for our own messages */
      e.raw = tcsetattr (STDIN_FILENO, TCSANOW, &t) == 0;
    }

  if (o->start)
    {
      int r = o->start (cli, o->data);
      if (r != 0)
        return r;
    }

  pthread_t th;
  int r = pthread_create (&th, NULL, io_thread, s);
  if (r != 0)
    return cli_fail (cli, NULL, "starting the stdio thread: %s", strerror (r));
  uint32_t status = 0;
  r = task_wait (cli, o->id, o->exec_id, &status, &err);
  if (write (e.done_pipe[1], "x", 1) < 0)
    { /* the thread also stops at EOF */
    }
  pthread_join (th, NULL);
  if (e.raw)
    {
      tcsetattr (STDIN_FILENO, TCSANOW, &e.saved);
      e.raw = false;
    }
  if (r < 0)
    return cli_call_failed (cli, err, "waiting for %s", o->exec_id ? o->exec_id : o->id);
  *ret_status = status;
  return CLI_EXIT_OK;
}
