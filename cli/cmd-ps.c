/* The docker-style verbs that look at or act on existing containers: ps,
 * inspect, logs, top, stats, wait, kill, stop, rm, pause, unpause; and the
 * ctr-style groups `containers` (ls, info, rm, create) and `tasks` (ls,
 * start, kill, ps, exec, rm, pause, resume, metrics).
 *
 * logs reads the files the daemon writes (label io.berth.log.path, CRI
 * format, rotated to .1 .. .N with .N the oldest), as nerdctl does; top and
 * stats read /proc and the task's cgroup on this host, from the pids the
 * daemon lists (Tasks/ListPids). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctr.h"
#include "helpers.h"
#include "table.h"
#include "google/protobuf/empty.pb-c.h"

int berth_cmd_exec (struct cli *cli, int argc, char **argv);
int berth_cmd_start (struct cli *cli, int argc, char **argv);
int berth_cmd_create (struct cli *cli, int argc, char **argv);

extern const struct option cli_run_options[];
extern const char cli_run_help[];

static void
json_object_putp (json_object **o)
{
  json_object_put (*o);
}

static json_object *
jget (json_object *o, const char *k)
{
  json_object *v = NULL;
  return o && json_object_object_get_ex (o, k, &v) ? v : NULL;
}

static json_object *
container_spec (const pb_container *c)
{
  if (c->spec == NULL || c->spec->value.len == 0)
    return NULL;
  _cleanup_free_ char *s = strndup ((const char *)c->spec->value.data, c->spec->value.len);
  return s ? json_tokener_parse (s) : NULL;
}

/* Tasks/List as a lookup by container id. */
struct task_list
{
  ProtobufCMessage *resp;
  pb_process **v;
  size_t n;
};

static int
task_list (struct cli *cli, struct task_list *ret, berth_error **err)
{
  Containerd__Services__Tasks__V1__ListTasksRequest req = CONTAINERD__SERVICES__TASKS__V1__LIST_TASKS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, TASKS_SERVICE "List", &req.base,
                     &containerd__services__tasks__v1__list_tasks_response__descriptor, &resp, err);
  if (r < 0)
    return r;
  Containerd__Services__Tasks__V1__ListTasksResponse *lr = (void *)resp;
  *ret = (struct task_list){ .resp = resp, .v = lr->tasks, .n = lr->n_tasks };
  return 0;
}

static pb_process *
task_find (const struct task_list *l, const char *id)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp (l->v[i]->id, id) == 0 || (l->v[i]->container_id && strcmp (l->v[i]->container_id, id) == 0))
      return l->v[i];
  return NULL;
}

static void
task_list_clear (struct task_list *l)
{
  if (l->resp)
    protobuf_c_message_free_unpacked (l->resp, NULL);
  *l = (struct task_list){ 0 };
}

/* `"sh -c 'sleep 1…"` as docker's COMMAND column. */
static char *
command_string (json_object *spec, bool truncate)
{
  json_object *args = jget (jget (spec, "process"), "args");
  char *s = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&s, &len);
  if (f == NULL)
    return NULL;
  size_t n = args && json_object_is_type (args, json_type_array) ? json_object_array_length (args) : 0;
  for (size_t i = 0; i < n; i++)
    {
      const char *a = json_object_get_string (json_object_array_get_idx (args, i));
      if (strpbrk (a, " \t'\"") || *a == 0)
        fprintf (f, "%s'%s'", i ? " " : "", a);
      else
        fprintf (f, "%s%s", i ? " " : "", a);
    }
  fclose (f);
  if (truncate && s && strlen (s) > 20)
    strcpy (s + 19, "…");
  return s;
}

/* ---- ps ---- */

static const struct option ps_options[] = {
  { "all", no_argument, NULL, 'a' },
  { "quiet", no_argument, NULL, 'q' },
  { "no-trunc", no_argument, NULL, 'N' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static int
ps_run (struct cli *cli, int argc, char **argv)
{
  bool all = false, quiet = false, no_trunc = false;
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'a': all = true; break;
      case 'q': quiet = true; break;
      case 'N': no_trunc = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind != argc)
    return cli_usage_error (cli, "no operands expected");
  _cleanup_error_ berth_error *err = NULL;
  struct ctr_list l = { 0 };
  struct task_list tl = { 0 };
  if (ctr_list_all (cli, &l, &err) < 0)
    return cli_call_failed (cli, err, "listing containers");
  if (task_list (cli, &tl, &err) < 0)
    {
      ctr_list_clear (&l);
      return cli_call_failed (cli, err, "listing tasks");
    }
  time_t now = time (NULL);
  _cleanup_ (table_freep) table *t = table_new ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES", NULL);
  json_object *arr = json_object_new_array ();
  /* newest first, as docker */
  for (size_t k = l.n; k > 0; k--)
    {
      size_t i = k - 1;
      const pb_container *ct = l.v[i];
      const pb_process *p = task_find (&tl, ct->id);
      /* A task whose shim does not answer is still there (and most likely
       * running): it stays in the list, shown as Unknown. */
      bool running = p
                     && (p->status == CONTAINERD__V1__TYPES__STATUS__RUNNING
                         || p->status == CONTAINERD__V1__TYPES__STATUS__PAUSED
                         || p->status == CONTAINERD__V1__TYPES__STATUS__UNKNOWN);
      if (!all && !running)
        continue;
      char status[64], age[HUMAN_AGE_MAX], nb[16], id[65];
      const char *state;
      ctr_status (ct, p, now, status, &state);
      snprintf (id, sizeof id, no_trunc ? "%s" : "%.12s", ct->id);
      _cleanup_ (json_object_putp) json_object *spec = container_spec (ct);
      _cleanup_free_ char *cmd = command_string (spec, !no_trunc);
      _cleanup_free_ char *created = timestamp_rfc3339 (ct->created_at);
      if (format == CLI_FORMAT_JSON)
        {
          json_object *o = json_object_new_object ();
          json_object_object_add (o, "ID", json_object_new_string (ct->id));
          json_object_object_add (o, "Names", json_object_new_string (ctr_name (ct, nb)));
          json_object_object_add (o, "Image", json_object_new_string (ct->image ? ct->image : ""));
          _cleanup_free_ char *full = command_string (spec, false);
          json_object_object_add (o, "Command", json_object_new_string (full ? full : ""));
          json_object_object_add (o, "CreatedAt", json_object_new_string (created ? created : ""));
          json_object_object_add (o, "Status", json_object_new_string (status));
          json_object_object_add (o, "State", json_object_new_string (state));
          json_object_object_add (o, "Pid", json_object_new_int64 (p ? p->pid : 0));
          json_object_object_add (o, "Labels", pb_labels_json ((void **)ct->labels, ct->n_labels));
          json_object_array_add (arr, o);
        }
      else if (quiet)
        printf ("%s\n", id);
      else
        {
          char qcmd[300];
          snprintf (qcmd, sizeof qcmd, "\"%s\"", cmd ? cmd : "");
          table_add (t, id, ct->image, qcmd, human_age (age, ct->created_at, now), status, ctr_name (ct, nb));
        }
    }
  if (format == CLI_FORMAT_JSON)
    cli_print_json (arr);
  else
    {
      json_object_put (arr);
      if (!quiet)
        table_print (t, stdout);
    }
  task_list_clear (&tl);
  ctr_list_clear (&l);
  return CLI_EXIT_OK;
}

/* ---- inspect ---- */

static json_object *
jstr_or_null (const char *s)
{
  return s ? json_object_new_string (s) : NULL;
}

static json_object *
inspect_one (struct cli *cli, const pb_container *c)
{
  json_object *o = json_object_new_object ();
  char nb[16];
  json_object_object_add (o, "Id", json_object_new_string (c->id));
  json_object_object_add (o, "Name", json_object_new_string (ctr_name (c, nb)));
  json_object_object_add (o, "Created", timestamp_json (c->created_at));
  json_object_object_add (o, "Image", json_object_new_string (c->image ? c->image : ""));
  json_object *spec = container_spec (c);
  json_object *proc = jget (spec, "process");
  json_object *args = jget (proc, "args");
  if (args && json_object_array_length (args) > 0)
    {
      json_object_object_add (o, "Path", json_object_get (json_object_array_get_idx (args, 0)));
      json_object *rest = json_object_new_array ();
      for (size_t i = 1; i < json_object_array_length (args); i++)
        json_object_array_add (rest, json_object_get (json_object_array_get_idx (args, i)));
      json_object_object_add (o, "Args", rest);
    }
  ProtobufCMessage *resp = NULL;
  pb_process *p = NULL;
  int r = task_get (cli, c->id, NULL, &resp, &p, NULL);
  json_object *st = json_object_new_object ();
  char status[64];
  const char *state;
  ctr_status (c, r == 0 ? p : NULL, time (NULL), status, &state);
  json_object_object_add (st, "Status", json_object_new_string (state));
  json_object_object_add (st, "Running",
                          json_object_new_boolean (strcmp (state, "running") == 0 || strcmp (state, "paused") == 0));
  json_object_object_add (st, "Paused", json_object_new_boolean (strcmp (state, "paused") == 0));
  json_object_object_add (st, "Pid", json_object_new_int64 (r == 0 ? p->pid : 0));
  json_object_object_add (st, "ExitCode", json_object_new_int64 (r == 0 ? p->exit_status : 0));
  json_object_object_add (st, "FinishedAt", r == 0 ? timestamp_json (p->exited_at) : NULL);
  int64_t silent = 0;
  char why[512] = "", msg[700];
  if (r == 0 && ctr_shim_silent (p, &silent, why, sizeof why))
    {
      char d[48];
      snprintf (msg, sizeof msg, "shim not answering for %s%s%s", human_duration ((double)silent / 1000, d, sizeof d),
                *why ? ": " : "", why);
      json_object_object_add (st, "Error", json_object_new_string (msg));
      json_object_object_add (st, "ShimSilentMs", json_object_new_int64 (silent));
    }
  json_object_object_add (o, "State", st);
  if (r == 0)
    protobuf_c_message_free_unpacked (resp, NULL);
  json_object *cfg = json_object_new_object ();
  json_object_object_add (cfg, "Hostname", json_object_get (jget (spec, "hostname")));
  json_object_object_add (cfg, "User", json_object_get (jget (proc, "user")));
  json_object_object_add (cfg, "Env", json_object_get (jget (proc, "env")));
  json_object_object_add (cfg, "Cmd", json_object_get (args));
  json_object_object_add (cfg, "WorkingDir", json_object_get (jget (proc, "cwd")));
  json_object_object_add (cfg, "Tty", json_object_get (jget (proc, "terminal")));
  json_object_object_add (cfg, "Labels", pb_labels_json ((void **)c->labels, c->n_labels));
  json_object_object_add (o, "Config", cfg);
  json_object_object_add (o, "Runtime", jstr_or_null (c->runtime ? c->runtime->name : NULL));
  json_object_object_add (o, "Snapshotter", jstr_or_null (c->snapshotter));
  json_object_object_add (o, "SnapshotKey", jstr_or_null (c->snapshot_key));
  json_object_object_add (o, "LogPath", jstr_or_null (ctr_label (c, LABEL_LOG_PATH)));
  json_object_object_add (o, "Spec", spec);
  return o;
}

static int
inspect_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    if (c != 'f')
      return CLI_EXIT_USAGE;
  if (optind >= argc)
    return cli_usage_error (cli, "a container is needed");
  int ret = CLI_EXIT_OK;
  json_object *a = json_object_new_array ();
  for (int i = optind; i < argc; i++)
    {
      struct ctr_ref ref;
      if (ctr_resolve (cli, argv[i], &ref) != CLI_EXIT_OK)
        {
          ret = CLI_EXIT_FAIL;
          continue;
        }
      json_object_array_add (a, inspect_one (cli, ref.c));
      ctr_ref_clear (&ref);
    }
  cli_print_json (a);
  return ret;
}

/* ---- logs ---- */

static const struct option logs_options[] = {
  { "follow", no_argument, NULL, 'f' },
  { "tail", required_argument, NULL, 'n' },
  { "since", required_argument, NULL, 'S' },
  { "timestamps", no_argument, NULL, 't' },
  { NULL, 0, NULL, 0 },
};

struct logs
{
  bool timestamps;
  double since; /* seconds since the epoch; 0 = all */
  long tail;    /* -1 = all */
  /* --tail: the last `tail` records, a ring */
  char **ring;
  size_t ring_n, ring_pos;
};

/* RFC 3339 (with fraction) to seconds since the epoch; -1 if malformed. */
static double
parse_rfc3339 (const char *s)
{
  struct tm tm = { 0 };
  const char *p = strptime (s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == NULL)
    return -1;
  double frac = 0;
  if (*p == '.')
    {
      char *end;
      frac = strtod (p, &end);
      p = end;
    }
  time_t t = timegm (&tm);
  if (*p == 'Z')
    return (double)t + frac;
  if (*p == '+' || *p == '-')
    {
      int hh = 0, mm = 0;
      if (sscanf (p + 1, "%d:%d", &hh, &mm) < 1)
        return -1;
      double off = hh * 3600.0 + mm * 60.0;
      return (double)t + frac - (*p == '+' ? off : -off);
    }
  return -1;
}

/* One CRI record: print it (or keep it for --tail). */
static void
log_emit (struct logs *lg, const char *line)
{
  /* <time> <stream> <tag> <text> */
  const char *sp1 = strchr (line, ' ');
  const char *sp2 = sp1 ? strchr (sp1 + 1, ' ') : NULL;
  const char *sp3 = sp2 ? strchr (sp2 + 1, ' ') : NULL;
  if (sp3 == NULL)
    return; /* not a record: skip */
  if (lg->since > 0)
    {
      char ts[64];
      snprintf (ts, sizeof ts, "%.*s", (int)(sp1 - line), line);
      if (parse_rfc3339 (ts) < lg->since)
        return;
    }
  bool is_err = strncmp (sp1 + 1, "stderr ", 7) == 0;
  bool partial = sp2[1] == 'P';
  FILE *f = is_err ? stderr : stdout;
  if (lg->timestamps)
    fprintf (f, "%.*s ", (int)(sp1 - line), line);
  fputs (sp3 + 1, f);
  if (!partial)
    fputc ('\n', f);
  fflush (f);
}

static void
log_record (struct logs *lg, const char *line)
{
  if (lg->tail < 0)
    {
      log_emit (lg, line);
      return;
    }
  if (lg->tail == 0)
    return;
  if (lg->ring == NULL)
    lg->ring = calloc ((size_t)lg->tail, sizeof (char *));
  if (lg->ring == NULL)
    return;
  free (lg->ring[lg->ring_pos]);
  lg->ring[lg->ring_pos] = strdup (line);
  lg->ring_pos = (lg->ring_pos + 1) % (size_t)lg->tail;
  if (lg->ring_n < (size_t)lg->tail)
    lg->ring_n++;
}

static void
log_flush_tail (struct logs *lg)
{
  if (lg->ring == NULL)
    return;
  size_t start = (lg->ring_pos + (size_t)lg->tail - lg->ring_n) % (size_t)lg->tail;
  for (size_t i = 0; i < lg->ring_n; i++)
    {
      size_t k = (start + i) % (size_t)lg->tail;
      log_emit (lg, lg->ring[k]);
      free (lg->ring[k]);
    }
  free (lg->ring);
  lg->ring = NULL;
  lg->ring_n = 0;
}

/* Read whole lines from f; an unfinished last line stays in *pending. */
static void
log_read (struct logs *lg, FILE *f, char **pending, size_t *plen)
{
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline (&line, &cap, f)) > 0)
    {
      if (line[n - 1] != '\n')
        {
          /* an incomplete line: keep it for the next round */
          char *np = realloc (*pending, *plen + (size_t)n + 1);
          if (np)
            {
              memcpy (np + *plen, line, (size_t)n);
              *plen += (size_t)n;
              np[*plen] = 0;
              *pending = np;
            }
          break;
        }
      line[n - 1] = 0;
      if (*pending)
        {
          char *np = realloc (*pending, *plen + (size_t)n + 1);
          if (np)
            {
              memcpy (np + *plen, line, (size_t)n);
              log_record (lg, np);
              free (np);
            }
          *pending = NULL;
          *plen = 0;
        }
      else
        log_record (lg, line);
    }
  clearerr (f);
  free (line);
}

static bool
task_running (struct cli *cli, const char *id)
{
  ProtobufCMessage *resp = NULL;
  pb_process *p = NULL;
  if (task_get (cli, id, NULL, &resp, &p, NULL) < 0)
    return false;
  bool running = p->status == CONTAINERD__V1__TYPES__STATUS__RUNNING
                 || p->status == CONTAINERD__V1__TYPES__STATUS__PAUSED
                 || p->status == CONTAINERD__V1__TYPES__STATUS__CREATED;
  protobuf_c_message_free_unpacked (resp, NULL);
  return running;
}

static int
logs_run (struct cli *cli, int argc, char **argv)
{
  struct logs lg = { .tail = -1 };
  bool follow = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'f': follow = true; break;
      case 't': lg.timestamps = true; break;
      case 'n':
        {
          if (strcmp (optarg, "all") == 0)
            break;
          char *end;
          lg.tail = strtol (optarg, &end, 10);
          if (*end || end == optarg || lg.tail < 0 || lg.tail > 10000000)
            return cli_usage_error (cli, "--tail %s: expected a number of lines or all", optarg);
          break;
        }
      case 'S':
        {
          double t = parse_rfc3339 (optarg);
          if (t < 0)
            {
              long ms = cli_parse_duration_ms (optarg);
              if (ms < 0)
                return cli_usage_error (cli, "--since %s: expected a duration (10m) or an RFC 3339 time", optarg);
              struct timespec now;
              clock_gettime (CLOCK_REALTIME, &now);
              t = (double)now.tv_sec + now.tv_nsec / 1e9 - (double)ms / 1000.0;
            }
          lg.since = t;
          break;
        }
      default: return CLI_EXIT_USAGE;
      }
  if (optind + 1 != argc)
    return cli_usage_error (cli, "one container is needed");
  struct ctr_ref ref;
  if (ctr_resolve (cli, argv[optind], &ref) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  const char *lp = ctr_label (ref.c, LABEL_LOG_PATH);
  if (lp == NULL || *lp == 0)
    {
      ctr_ref_clear (&ref);
      return cli_fail (cli, NULL, "container %s has no log (no %s label: the daemon does not keep logs for it)",
                       argv[optind], LABEL_LOG_PATH);
    }
  _cleanup_free_ char *path = strdup (lp);
  _cleanup_free_ char *id = strdup (ref.c->id);
  ctr_ref_clear (&ref);
  if (path == NULL || id == NULL)
    return cli_fail (cli, NULL, "out of memory");

  /* Rotated files, oldest (highest number) first. */
  int maxn = 0;
  for (int n = 1; n < 1000; n++)
    {
      char p[4200];
      snprintf (p, sizeof p, "%s.%d", path, n);
      if (access (p, F_OK) != 0)
        break;
      maxn = n;
    }
  char *pending = NULL;
  size_t plen = 0;
  for (int n = maxn; n >= 1; n--)
    {
      char p[4200];
      snprintf (p, sizeof p, "%s.%d", path, n);
      _cleanup_fclose_ FILE *f = fopen (p, "re");
      if (f)
        log_read (&lg, f, &pending, &plen);
      free (pending);
      pending = NULL;
      plen = 0;
    }
  FILE *f = fopen (path, "re");
  if (f == NULL && errno != ENOENT)
    {
      int e = errno;
      log_flush_tail (&lg);
      return cli_fail (cli, NULL, "reading the log %s: %s", path, strerror (e));
    }
  if (f)
    log_read (&lg, f, &pending, &plen);
  log_flush_tail (&lg);
  lg.tail = -1;
  if (follow)
    {
      struct stat cur = { 0 };
      if (f)
        fstat (fileno (f), &cur);
      int idle = 0;
      for (;;)
        {
          usleep (100 * 1000);
          if (f)
            log_read (&lg, f, &pending, &plen);
          struct stat st;
          if (stat (path, &st) == 0 && (f == NULL || st.st_ino != cur.st_ino || st.st_size < ftell (f)))
            {
              /* rotated (or created): finish the old file, open the new one */
              if (f)
                {
                  log_read (&lg, f, &pending, &plen);
                  fclose (f);
                }
              f = fopen (path, "re");
              if (f)
                fstat (fileno (f), &cur);
              continue;
            }
          if (++idle >= 5)
            {
              idle = 0;
              if (!task_running (cli, id))
                {
                  if (f)
                    log_read (&lg, f, &pending, &plen);
                  break;
                }
            }
        }
    }
  if (f)
    fclose (f);
  free (pending);
  return CLI_EXIT_OK;
}

/* ---- top, stats ---- */

static int
list_pids (struct cli *cli, const char *id, uint32_t **ret, size_t *n, berth_error **err)
{
  Containerd__Services__Tasks__V1__ListPidsRequest req = CONTAINERD__SERVICES__TASKS__V1__LIST_PIDS_REQUEST__INIT;
  req.container_id = (char *)id;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, TASKS_SERVICE "ListPids", &req.base,
                     &containerd__services__tasks__v1__list_pids_response__descriptor, &resp, err);
  if (r < 0)
    return r;
  Containerd__Services__Tasks__V1__ListPidsResponse *lr = (void *)resp;
  *ret = calloc (lr->n_processes + 1, sizeof (uint32_t));
  *n = lr->n_processes;
  for (size_t i = 0; i < lr->n_processes && *ret; i++)
    (*ret)[i] = lr->processes[i]->pid;
  protobuf_c_message_free_unpacked (resp, NULL);
  return 0;
}

static int
top_run (struct cli *cli, int argc, char **argv)
{
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind + 1 != argc)
    return cli_usage_error (cli, "one container is needed");
  struct ctr_ref ref;
  if (ctr_resolve (cli, argv[optind], &ref) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_free_ uint32_t *pids = NULL;
  size_t n = 0;
  int r = list_pids (cli, ref.c->id, &pids, &n, &err);
  ctr_ref_clear (&ref);
  if (r < 0)
    return cli_call_failed (cli, err, "listing the processes of %s", argv[optind]);
  _cleanup_ (table_freep) table *t = table_new ("UID", "PID", "PPID", "STAT", "CMD", NULL);
  json_object *arr = json_object_new_array ();
  for (size_t i = 0; i < n; i++)
    {
      char path[64], pid[16], ppid[16] = "-", uid[16] = "-", stat_s[8] = "-";
      snprintf (pid, sizeof pid, "%" PRIu32, pids[i]);
      snprintf (path, sizeof path, "/proc/%" PRIu32 "/stat", pids[i]);
      _cleanup_fclose_ FILE *f = fopen (path, "re");
      char buf[1024] = "";
      if (f && fgets (buf, sizeof buf, f))
        {
          char *rp = strrchr (buf, ')');
          char s;
          int pp;
          if (rp && sscanf (rp + 2, "%c %d", &s, &pp) == 2)
            {
              snprintf (ppid, sizeof ppid, "%d", pp);
              snprintf (stat_s, sizeof stat_s, "%c", s);
            }
        }
      struct stat st;
      snprintf (path, sizeof path, "/proc/%" PRIu32, pids[i]);
      if (stat (path, &st) == 0)
        {
          struct passwd *pw = getpwuid (st.st_uid);
          snprintf (uid, sizeof uid, "%s", pw ? pw->pw_name : "");
          if (pw == NULL)
            snprintf (uid, sizeof uid, "%u", (unsigned)st.st_uid);
        }
      char cmd[1024] = "";
      snprintf (path, sizeof path, "/proc/%" PRIu32 "/cmdline", pids[i]);
      int fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd >= 0)
        {
          ssize_t got = read (fd, cmd, sizeof cmd - 1);
          close (fd);
          if (got > 0)
            {
              for (ssize_t k = 0; k < got - 1; k++)
                if (cmd[k] == 0)
                  cmd[k] = ' ';
              cmd[got] = 0;
            }
        }
      table_add (t, uid, pid, ppid, stat_s, cmd);
      json_object *o = json_object_new_object ();
      json_object_object_add (o, "UID", json_object_new_string (uid));
      json_object_object_add (o, "PID", json_object_new_int64 (pids[i]));
      json_object_object_add (o, "PPID", json_object_new_int64 (atoll (ppid)));
      json_object_object_add (o, "STAT", json_object_new_string (stat_s));
      json_object_object_add (o, "CMD", json_object_new_string (cmd));
      json_object_array_add (arr, o);
    }
  if (format == CLI_FORMAT_JSON)
    cli_print_json (arr);
  else
    {
      json_object_put (arr);
      table_print (t, stdout);
    }
  return CLI_EXIT_OK;
}

/* The task's cgroup directory (v2 unified, or v1 memory/pids/cpuacct). */
static int
cgroup_dir (uint32_t pid, const char *controller, char *buf, size_t len)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%" PRIu32 "/cgroup", pid);
  _cleanup_fclose_ FILE *f = fopen (path, "re");
  if (f == NULL)
    return -errno;
  char line[4096];
  char v2[4096] = "";
  while (fgets (line, sizeof line, f))
    {
      line[strcspn (line, "\n")] = 0;
      char *c1 = strchr (line, ':');
      char *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
      if (c2 == NULL)
        continue;
      *c2 = 0;
      const char *ctrls = c1 + 1, *cg = c2 + 1;
      if (*ctrls == 0)
        snprintf (v2, sizeof v2, "%s", cg);
      else
        {
          /* "cpu,cpuacct" */
          char tmp[256];
          snprintf (tmp, sizeof tmp, ",%s,", ctrls);
          char want[64];
          snprintf (want, sizeof want, ",%s,", controller);
          if (strstr (tmp, want))
            {
              snprintf (buf, len, "/sys/fs/cgroup/%s%s", ctrls, cg);
              return 1;
            }
        }
    }
  if (v2[0])
    {
      struct stat st;
      snprintf (buf, len, "/sys/fs/cgroup%s", v2);
      if (stat ("/sys/fs/cgroup/cgroup.controllers", &st) == 0)
        return 2;
      snprintf (buf, len, "/sys/fs/cgroup/unified%s", v2);
      return 2;
    }
  return -ENOENT;
}

static int64_t
read_int (const char *dir, const char *file)
{
  char p[4400];
  snprintf (p, sizeof p, "%s/%s", dir, file);
  _cleanup_fclose_ FILE *f = fopen (p, "re");
  char buf[64];
  if (f == NULL || fgets (buf, sizeof buf, f) == NULL)
    return -1;
  if (strncmp (buf, "max", 3) == 0)
    return INT64_MAX;
  return strtoll (buf, NULL, 10);
}

static int64_t
read_key (const char *dir, const char *file, const char *key)
{
  char p[4400];
  snprintf (p, sizeof p, "%s/%s", dir, file);
  _cleanup_fclose_ FILE *f = fopen (p, "re");
  char line[256];
  size_t kl = strlen (key);
  while (f && fgets (line, sizeof line, f))
    if (strncmp (line, key, kl) == 0 && line[kl] == ' ')
      return strtoll (line + kl + 1, NULL, 10);
  return -1;
}

struct sample
{
  int64_t cpu_ns, mem, mem_limit, pids;
};

/* CPU time of the task's processes from /proc (utime + stime), for when
 * its cgroup has no CPU accounting of its own. */
static int64_t
proc_cpu_ns (struct cli *cli, const char *id)
{
  _cleanup_free_ uint32_t *pids = NULL;
  size_t n = 0;
  if (list_pids (cli, id, &pids, &n, NULL) < 0)
    return -1;
  long hz = sysconf (_SC_CLK_TCK);
  int64_t total = 0;
  for (size_t i = 0; i < n; i++)
    {
      char path[64], buf[1024];
      snprintf (path, sizeof path, "/proc/%" PRIu32 "/stat", pids[i]);
      _cleanup_fclose_ FILE *f = fopen (path, "re");
      char *rp = f && fgets (buf, sizeof buf, f) ? strrchr (buf, ')') : NULL;
      unsigned long long ut = 0, st = 0;
      /* fields 14 and 15; rp + 2 is field 3 */
      if (rp && sscanf (rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
        total += (int64_t)((ut + st) * (1000000000ULL / (unsigned long long)(hz > 0 ? hz : 100)));
    }
  return total;
}

static int
sample_task (uint32_t pid, struct sample *s)
{
  char dir[4200];
  *s = (struct sample){ -1, -1, -1, -1 };
  int v = cgroup_dir (pid, "memory", dir, sizeof dir);
  if (v < 0)
    return v;
  if (v == 2)
    {
      s->mem = read_int (dir, "memory.current");
      s->mem_limit = read_int (dir, "memory.max");
      s->pids = read_int (dir, "pids.current");
      int64_t us = read_key (dir, "cpu.stat", "usage_usec");
      s->cpu_ns = us >= 0 ? us * 1000 : -1;
      return 0;
    }
  s->mem = read_int (dir, "memory.usage_in_bytes");
  s->mem_limit = read_int (dir, "memory.limit_in_bytes");
  if (cgroup_dir (pid, "pids", dir, sizeof dir) > 0)
    s->pids = read_int (dir, "pids.current");
  /* cpuacct at the root is the whole host's: not the task's */
  if (cgroup_dir (pid, "cpuacct", dir, sizeof dir) > 0 && strcmp (dir + strlen (dir) - 1, "/") != 0)
    s->cpu_ns = read_int (dir, "cpuacct.usage");
  /* hybrid: the unified hierarchy may have what v1 lacks */
  if ((s->pids < 0 || s->cpu_ns < 0) && cgroup_dir (pid, "", dir, sizeof dir) == 2)
    {
      if (s->pids < 0)
        s->pids = read_int (dir, "pids.current");
    }
  return 0;
}

static const struct option stats_options[] = {
  { "no-stream", no_argument, NULL, 'N' },
  { "all", no_argument, NULL, 'a' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static int
stats_run (struct cli *cli, int argc, char **argv)
{
  bool no_stream = false;
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'N': no_stream = true; break;
      case 'a': break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  _cleanup_error_ berth_error *err = NULL;
  for (bool first = true;; first = false)
    {
      struct ctr_list l = { 0 };
      struct task_list tl = { 0 };
      if (ctr_list_all (cli, &l, &err) < 0)
        return cli_call_failed (cli, err, "listing containers");
      if (task_list (cli, &tl, &err) < 0)
        {
          ctr_list_clear (&l);
          return cli_call_failed (cli, err, "listing tasks");
        }
      size_t n = 0;
      struct
      {
        const pb_container *c;
        uint32_t pid;
        struct sample a, b;
      } *rows = calloc (l.n + 1, sizeof *rows);
      for (size_t i = 0; rows && i < l.n; i++)
        {
          bool named = optind >= argc;
          char nb[16];
          for (int k = optind; k < argc && !named; k++)
            named
                = strcmp (argv[k], ctr_name (l.v[i], nb)) == 0 || strncmp (l.v[i]->id, argv[k], strlen (argv[k])) == 0;
          const pb_process *p = task_find (&tl, l.v[i]->id);
          if (!named || p == NULL || p->status != CONTAINERD__V1__TYPES__STATUS__RUNNING)
            continue;
          rows[n].c = l.v[i];
          rows[n].pid = p->pid;
          sample_task (p->pid, &rows[n].a);
          if (rows[n].a.cpu_ns < 0)
            rows[n].a.cpu_ns = proc_cpu_ns (cli, l.v[i]->id), rows[n].b.cpu_ns = -2;
          n++;
        }
      double interval = 0.5;
      usleep ((useconds_t)(interval * 1e6));
      for (size_t i = 0; i < n; i++)
        {
          bool from_proc = rows[i].b.cpu_ns == -2;
          sample_task (rows[i].pid, &rows[i].b);
          if (from_proc)
            rows[i].b.cpu_ns = proc_cpu_ns (cli, rows[i].c->id);
        }
      if (!first && isatty (STDOUT_FILENO) && format == CLI_FORMAT_TABLE)
        fputs ("\033[2J\033[H", stdout);
      _cleanup_ (table_freep) table *t
          = table_new ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", NULL);
      json_object *arr = json_object_new_array ();
      for (size_t i = 0; i < n; i++)
        {
          const struct sample *a = &rows[i].a, *b = &rows[i].b;
          double cpu = a->cpu_ns >= 0 && b->cpu_ns >= 0 ? (double)(b->cpu_ns - a->cpu_ns) / (interval * 1e9) * 100 : 0;
          char id[13], nb[16], cpus[16], mem[80], memp[16], pids[24], m1[HUMAN_SIZE_MAX], m2[HUMAN_SIZE_MAX];
          snprintf (id, sizeof id, "%.12s", rows[i].c->id);
          snprintf (cpus, sizeof cpus, "%.2f%%", cpu);
          bool limited = b->mem_limit > 0 && b->mem_limit < (INT64_C (1) << 60);
          snprintf (mem, sizeof mem, "%s / %s", b->mem >= 0 ? human_size (m1, b->mem) : "-",
                    limited ? human_size (m2, b->mem_limit) : "-");
          snprintf (memp, sizeof memp, limited ? "%.2f%%" : "-",
                    limited ? (double)b->mem / (double)b->mem_limit * 100 : 0);
          snprintf (pids, sizeof pids, "%" PRId64, b->pids);
          if (format == CLI_FORMAT_JSON)
            {
              json_object *o = json_object_new_object ();
              json_object_object_add (o, "ID", json_object_new_string (rows[i].c->id));
              json_object_object_add (o, "Name", json_object_new_string (ctr_name (rows[i].c, nb)));
              json_object_object_add (o, "CPUPerc", json_object_new_double (cpu));
              json_object_object_add (o, "MemUsage", json_object_new_int64 (b->mem));
              json_object_object_add (o, "MemLimit", limited ? json_object_new_int64 (b->mem_limit) : NULL);
              json_object_object_add (o, "PIDs", json_object_new_int64 (b->pids));
              json_object_array_add (arr, o);
            }
          else
            table_add (t, id, ctr_name (rows[i].c, nb), cpus, mem, memp, pids);
        }
      if (format == CLI_FORMAT_JSON)
        cli_print_json (arr);
      else
        {
          json_object_put (arr);
          table_print (t, stdout);
        }
      fflush (stdout);
      free (rows);
      task_list_clear (&tl);
      ctr_list_clear (&l);
      if (no_stream)
        break;
      sleep (1);
    }
  return CLI_EXIT_OK;
}

/* ---- wait, kill, stop, rm, pause, unpause ---- */

typedef int (*each_fn) (struct cli *cli, const pb_container *c, const char *arg, void *data);

static int
for_each (struct cli *cli, int argc, char **argv, each_fn fn, void *data)
{
  if (optind >= argc)
    return cli_usage_error (cli, "a container is needed");
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      struct ctr_ref ref;
      if (ctr_resolve (cli, argv[i], &ref) != CLI_EXIT_OK)
        {
          ret = CLI_EXIT_FAIL;
          continue;
        }
      if (fn (cli, ref.c, argv[i], data) != CLI_EXIT_OK)
        ret = CLI_EXIT_FAIL;
      ctr_ref_clear (&ref);
    }
  return ret;
}

static int
wait_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  _cleanup_error_ berth_error *err = NULL;
  uint32_t status = 0;
  int r = task_wait (cli, c->id, NULL, &status, &err);
  if (r == BERTH_E_NOTFOUND)
    return cli_fail (cli, NULL, "container %s has no task (never started, or removed)", arg);
  if (r < 0)
    return cli_call_failed (cli, err, "waiting for %s", arg);
  printf ("%" PRIu32 "\n", status);
  fflush (stdout);
  return CLI_EXIT_OK;
}

static int
wait_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  return for_each (cli, argc, argv, wait_one, NULL);
}

struct kill_opts
{
  int sig;
  bool all;
  const char *exec_id;
};

static int
kill_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  struct kill_opts *k = data;
  _cleanup_error_ berth_error *err = NULL;
  int r = task_kill (cli, c->id, k->exec_id, k->sig, k->all, &err);
  if (r == BERTH_E_NOTFOUND)
    return cli_fail (cli, NULL, "container %s is not running", arg);
  if (r < 0)
    return cli_call_failed (cli, err, "killing %s", arg);
  printf ("%s\n", arg);
  return CLI_EXIT_OK;
}

static const struct option kill_options[] = {
  { "signal", required_argument, NULL, 's' },
  { "all", no_argument, NULL, 'a' },
  { "exec-id", required_argument, NULL, 'x' },
  { NULL, 0, NULL, 0 },
};

static int
kill_common (struct cli *cli, int argc, char **argv, int def)
{
  struct kill_opts k = { .sig = def };
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 's':
        k.sig = parse_signal (optarg);
        if (k.sig < 0)
          return cli_usage_error (cli, "unknown signal `%s`", optarg);
        break;
      case 'a': k.all = true; break;
      case 'x': k.exec_id = optarg; break;
      default: return CLI_EXIT_USAGE;
      }
  return for_each (cli, argc, argv, kill_one, &k);
}

static int
kill_run (struct cli *cli, int argc, char **argv)
{
  return kill_common (cli, argc, argv, SIGKILL);
}

static int
tasks_kill_run (struct cli *cli, int argc, char **argv)
{
  return kill_common (cli, argc, argv, SIGTERM);
}

static int
stop_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  long timeout = *(long *)data;
  _cleanup_error_ berth_error *err = NULL;
  int r = task_stop (cli, c->id, timeout, &err);
  if (r < 0 && r != BERTH_E_NOTFOUND)
    {
      /* killing a stopped task is not an error for stop */
      ProtobufCMessage *resp = NULL;
      pb_process *p = NULL;
      if (task_get (cli, c->id, NULL, &resp, &p, NULL) == 0)
        {
          bool stopped = p->status == CONTAINERD__V1__TYPES__STATUS__STOPPED;
          protobuf_c_message_free_unpacked (resp, NULL);
          if (stopped)
            r = 0;
        }
      if (r < 0)
        return cli_call_failed (cli, err, "stopping %s", arg);
    }
  printf ("%s\n", arg);
  return CLI_EXIT_OK;
}

static const struct option stop_options[] = {
  { "time", required_argument, NULL, 't' },
  { NULL, 0, NULL, 0 },
};

static int
stop_run (struct cli *cli, int argc, char **argv)
{
  long timeout = 10;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 't':
        {
          char *end;
          timeout = strtol (optarg, &end, 10);
          if (*end || end == optarg)
            return cli_usage_error (cli, "--time %s: expected seconds", optarg);
          break;
        }
      default: return CLI_EXIT_USAGE;
      }
  return for_each (cli, argc, argv, stop_one, &timeout);
}

static int
rm_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  int r = ctr_remove (cli, c, *(bool *)data);
  if (r == CLI_EXIT_OK)
    printf ("%s\n", arg);
  return r;
}

static const struct option rm_options[] = {
  { "force", no_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static int
rm_run (struct cli *cli, int argc, char **argv)
{
  bool force = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'f': force = true; break;
      default: return CLI_EXIT_USAGE;
      }
  return for_each (cli, argc, argv, rm_one, &force);
}

static int
pause_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  bool resume = *(bool *)data;
  _cleanup_error_ berth_error *err = NULL;
  Containerd__Services__Tasks__V1__PauseTaskRequest pr = CONTAINERD__SERVICES__TASKS__V1__PAUSE_TASK_REQUEST__INIT;
  Containerd__Services__Tasks__V1__ResumeTaskRequest rr = CONTAINERD__SERVICES__TASKS__V1__RESUME_TASK_REQUEST__INIT;
  pr.container_id = rr.container_id = c->id;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, resume ? TASKS_SERVICE "Resume" : TASKS_SERVICE "Pause", resume ? &rr.base : &pr.base,
                     &google__protobuf__empty__descriptor, &resp, &err);
  if (resp)
    protobuf_c_message_free_unpacked (resp, NULL);
  if (r == BERTH_E_NOTFOUND)
    return cli_fail (cli, NULL, "container %s is not running", arg);
  if (r < 0)
    return cli_call_failed (cli, err, "%s %s", resume ? "unpausing" : "pausing", arg);
  printf ("%s\n", arg);
  return CLI_EXIT_OK;
}

static int
pause_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  bool resume = false;
  return for_each (cli, argc, argv, pause_one, &resume);
}

static int
unpause_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  bool resume = true;
  return for_each (cli, argc, argv, pause_one, &resume);
}

/* ---- ctr-style: containers ---- */

static const struct option ls_options[] = {
  { "quiet", no_argument, NULL, 'q' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static int
containers_ls_run (struct cli *cli, int argc, char **argv)
{
  bool quiet = false;
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'q': quiet = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  _cleanup_error_ berth_error *err = NULL;
  struct ctr_list l = { 0 };
  if (ctr_list_all (cli, &l, &err) < 0)
    return cli_call_failed (cli, err, "listing containers");
  _cleanup_ (table_freep) table *t = table_new ("CONTAINER", "IMAGE", "RUNTIME", NULL);
  json_object *arr = json_object_new_array ();
  for (size_t i = 0; i < l.n; i++)
    {
      const pb_container *ct = l.v[i];
      const char *rt = ct->runtime ? ct->runtime->name : "";
      if (format == CLI_FORMAT_JSON)
        {
          json_object *o = json_object_new_object ();
          json_object_object_add (o, "ID", json_object_new_string (ct->id));
          json_object_object_add (o, "Image", json_object_new_string (ct->image ? ct->image : ""));
          json_object_object_add (o, "Runtime", json_object_new_string (rt));
          json_object_object_add (o, "Labels", pb_labels_json ((void **)ct->labels, ct->n_labels));
          json_object_array_add (arr, o);
        }
      else if (quiet)
        printf ("%s\n", ct->id);
      else
        table_add (t, ct->id, ct->image && *ct->image ? ct->image : "-", rt);
    }
  table_sort (t, 0);
  if (format == CLI_FORMAT_JSON)
    cli_print_json (arr);
  else
    {
      json_object_put (arr);
      if (!quiet)
        table_print (t, stdout);
    }
  ctr_list_clear (&l);
  return CLI_EXIT_OK;
}

static int
info_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "ID", json_object_new_string (c->id));
  json_object_object_add (o, "Labels", pb_labels_json ((void **)c->labels, c->n_labels));
  json_object_object_add (o, "Image", json_object_new_string (c->image ? c->image : ""));
  json_object *rt = json_object_new_object ();
  json_object_object_add (rt, "Name", json_object_new_string (c->runtime ? c->runtime->name : ""));
  json_object_object_add (o, "Runtime", rt);
  json_object_object_add (o, "SnapshotKey", json_object_new_string (c->snapshot_key ? c->snapshot_key : ""));
  json_object_object_add (o, "Snapshotter", json_object_new_string (c->snapshotter ? c->snapshotter : ""));
  json_object_object_add (o, "CreatedAt", timestamp_json (c->created_at));
  json_object_object_add (o, "UpdatedAt", timestamp_json (c->updated_at));
  json_object_object_add (o, "Spec", container_spec (c));
  cli_print_json (o);
  return CLI_EXIT_OK;
}

static int
containers_info_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  return for_each (cli, argc, argv, info_one, NULL);
}

/* ---- ctr-style: tasks ---- */

static const char *
status_name (int s)
{
  switch (s)
    {
    case CONTAINERD__V1__TYPES__STATUS__CREATED: return "CREATED";
    case CONTAINERD__V1__TYPES__STATUS__RUNNING: return "RUNNING";
    case CONTAINERD__V1__TYPES__STATUS__STOPPED: return "STOPPED";
    case CONTAINERD__V1__TYPES__STATUS__PAUSED: return "PAUSED";
    case CONTAINERD__V1__TYPES__STATUS__PAUSING: return "PAUSING";
    default: return "UNKNOWN";
    }
}

static int
tasks_ls_run (struct cli *cli, int argc, char **argv)
{
  bool quiet = false;
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'q': quiet = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  _cleanup_error_ berth_error *err = NULL;
  struct task_list tl = { 0 };
  if (task_list (cli, &tl, &err) < 0)
    return cli_call_failed (cli, err, "listing tasks");
  _cleanup_ (table_freep) table *t = table_new ("TASK", "PID", "STATUS", NULL);
  json_object *arr = json_object_new_array ();
  for (size_t i = 0; i < tl.n; i++)
    {
      const pb_process *p = tl.v[i];
      char pid[16];
      snprintf (pid, sizeof pid, "%" PRIu32, p->pid);
      if (format == CLI_FORMAT_JSON)
        {
          json_object *o = json_object_new_object ();
          json_object_object_add (o, "ID", json_object_new_string (p->id));
          json_object_object_add (o, "Pid", json_object_new_int64 (p->pid));
          json_object_object_add (o, "Status", json_object_new_string (status_name (p->status)));
          json_object_object_add (o, "ExitStatus", json_object_new_int64 (p->exit_status));
          json_object_array_add (arr, o);
        }
      else if (quiet)
        printf ("%s\n", p->id);
      else
        table_add (t, p->id, pid, status_name (p->status));
    }
  table_sort (t, 0);
  if (format == CLI_FORMAT_JSON)
    cli_print_json (arr);
  else
    {
      json_object_put (arr);
      if (!quiet)
        table_print (t, stdout);
    }
  task_list_clear (&tl);
  return CLI_EXIT_OK;
}

static int
tasks_ps_run (struct cli *cli, int argc, char **argv)
{
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind + 1 != argc)
    return cli_usage_error (cli, "one container is needed");
  struct ctr_ref ref;
  if (ctr_resolve (cli, argv[optind], &ref) != CLI_EXIT_OK)
    return CLI_EXIT_FAIL;
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_free_ uint32_t *pids = NULL;
  size_t n = 0;
  int r = list_pids (cli, ref.c->id, &pids, &n, &err);
  ctr_ref_clear (&ref);
  if (r < 0)
    return cli_call_failed (cli, err, "listing the processes of %s", argv[optind]);
  _cleanup_ (table_freep) table *t = table_new ("PID", "INFO", NULL);
  json_object *arr = json_object_new_array ();
  for (size_t i = 0; i < n; i++)
    {
      char pid[16];
      snprintf (pid, sizeof pid, "%" PRIu32, pids[i]);
      table_add (t, pid, "-");
      json_object *o = json_object_new_object ();
      json_object_object_add (o, "PID", json_object_new_int64 (pids[i]));
      json_object_array_add (arr, o);
    }
  if (format == CLI_FORMAT_JSON)
    cli_print_json (arr);
  else
    {
      json_object_put (arr);
      table_print (t, stdout);
    }
  return CLI_EXIT_OK;
}

static int
task_rm_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  bool force = *(bool *)data;
  _cleanup_error_ berth_error *err = NULL;
  if (force)
    {
      if (task_kill (cli, c->id, NULL, SIGKILL, true, &err) == 0)
        task_wait (cli, c->id, NULL, NULL, NULL);
      berth_error_free (TAKE_PTR (err));
    }
  uint32_t status = 0;
  int r = task_delete (cli, c->id, &status, &err);
  if (r == BERTH_E_NOTFOUND)
    return cli_fail (cli, NULL, "container %s has no task", arg);
  if (r < 0)
    return cli_call_failed (cli, err, "deleting the task of %s", arg);
  printf ("%s\n", arg);
  return CLI_EXIT_OK;
}

static int
tasks_rm_run (struct cli *cli, int argc, char **argv)
{
  bool force = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'f': force = true; break;
      default: return CLI_EXIT_USAGE;
      }
  return for_each (cli, argc, argv, task_rm_one, &force);
}

static int
metrics_one (struct cli *cli, const pb_container *c, const char *arg, void *data)
{
  enum cli_format format = *(enum cli_format *)data;
  Containerd__Services__Tasks__V1__MetricsRequest req = CONTAINERD__SERVICES__TASKS__V1__METRICS_REQUEST__INIT;
  _cleanup_free_ char *filter = NULL;
  if (asprintf (&filter, "id==%s", c->id) < 0)
    return CLI_EXIT_FAIL;
  req.n_filters = 1;
  req.filters = &filter;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, TASKS_SERVICE "Metrics", &req.base,
                     &containerd__services__tasks__v1__metrics_response__descriptor, &resp, &err);
  if (r < 0)
    return cli_call_failed (cli, err, "metrics of %s", arg);
  Containerd__Services__Tasks__V1__MetricsResponse *mr = (void *)resp;
  json_object *arr = json_object_new_array ();
  for (size_t i = 0; i < mr->n_metrics; i++)
    {
      const Containerd__Types__Metric *m = mr->metrics[i];
      json_object *o = json_object_new_object ();
      json_object_object_add (o, "ID", json_object_new_string (m->id ? m->id : ""));
      json_object_object_add (o, "Timestamp", timestamp_json (m->timestamp));
      if (m->data)
        {
          json_object_object_add (o, "Type", json_object_new_string (m->data->type_url ? m->data->type_url : ""));
          _cleanup_free_ char *s = strndup ((const char *)m->data->value.data, m->data->value.len);
          json_object *d = s ? json_tokener_parse (s) : NULL;
          if (d)
            json_object_object_add (o, "Data", d);
          else
            json_object_object_add (o, "Bytes", json_object_new_int64 ((int64_t)m->data->value.len));
        }
      json_object_array_add (arr, o);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  if (format == CLI_FORMAT_JSON || 1)
    cli_print_json (arr);
  return CLI_EXIT_OK;
}

static int
tasks_metrics_run (struct cli *cli, int argc, char **argv)
{
  enum cli_format format = CLI_FORMAT_JSON;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  return for_each (cli, argc, argv, metrics_one, &format);
}

static int
containers_rm_run (struct cli *cli, int argc, char **argv)
{
  return rm_run (cli, argc, argv);
}

/* ---- tables ---- */

static const struct option none_options[] = { { NULL, 0, NULL, 0 } };
static const struct option format_options[] = {
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};
static const struct option exec_options_ctr[] = {
  { "interactive", no_argument, NULL, 'i' },   { "tty", no_argument, NULL, 't' },
  { "env", required_argument, NULL, 'e' },     { "user", required_argument, NULL, 'u' },
  { "workdir", required_argument, NULL, 'w' }, { "detach", no_argument, NULL, 'd' },
  { "exec-id", required_argument, NULL, 'x' }, { NULL, 0, NULL, 0 },
};
static const struct option start_options_ctr[] = {
  { "attach", no_argument, NULL, 'a' },
  { "interactive", no_argument, NULL, 'i' },
  { NULL, 0, NULL, 0 },
};

#define FORMAT_HELP "      --format FORMAT   table (default) or json\n"

static const struct cli_command ps_command = {
  .name = "ps",
  .args = "[OPTIONS]",
  .summary = "List containers (running ones; -a: all)",
  .help = "  -a, --all             show every container, not only running ones\n"
          "  -q, --quiet           print only the ids\n"
          "      --no-trunc        full ids and commands\n" FORMAT_HELP,
  .shortopts = "aqf:",
  .options = ps_options,
  .run = ps_run,
};
static const struct cli_command inspect_command = {
  .name = "inspect",
  .args = "CONTAINER...",
  .summary = "Show containers in detail (JSON)",
  .help = "      --format json     (the only format)\n",
  .shortopts = "f:",
  .options = format_options,
  .run = inspect_run,
};
static const struct cli_command logs_command = {
  .name = "logs",
  .args = "[OPTIONS] CONTAINER",
  .summary = "Print a container's output (stdout to stdout, stderr to stderr)",
  .help = "  -f, --follow          keep printing until the container stops\n"
          "  -n, --tail N          only the last N lines\n"
          "      --since WHEN      only lines since a time (RFC 3339) or duration ago (10m)\n"
          "  -t, --timestamps      prefix each line with its time\n",
  .shortopts = "fn:t",
  .options = logs_options,
  .run = logs_run,
};
static const struct cli_command top_command = {
  .name = "top",
  .args = "[OPTIONS] CONTAINER",
  .summary = "List a container's processes",
  .help = FORMAT_HELP,
  .shortopts = "f:",
  .options = format_options,
  .run = top_run,
};
static const struct cli_command stats_command = {
  .name = "stats",
  .args = "[OPTIONS] [CONTAINER...]",
  .summary = "CPU, memory and process counts of running containers (from their cgroups)",
  .help = "      --no-stream       print once\n" FORMAT_HELP,
  .shortopts = "af:",
  .options = stats_options,
  .run = stats_run,
};
static const struct cli_command wait_command = {
  .name = "wait",
  .args = "CONTAINER...",
  .summary = "Wait for containers to exit; print their exit codes",
  .run = wait_run,
};
static const struct cli_command kill_command = {
  .name = "kill",
  .args = "[OPTIONS] CONTAINER...",
  .summary = "Send a signal (default KILL) to containers",
  .help = "  -s, --signal SIG      signal name or number\n",
  .shortopts = "s:",
  .options = kill_options,
  .run = kill_run,
};
static const struct cli_command stop_command = {
  .name = "stop",
  .args = "[OPTIONS] CONTAINER...",
  .summary = "Stop containers: SIGTERM, then SIGKILL after the timeout",
  .help = "  -t, --time N          seconds to wait before SIGKILL (default 10)\n",
  .shortopts = "t:",
  .options = stop_options,
  .run = stop_run,
};
static const struct cli_command rm_command = {
  .name = "rm",
  .args = "[OPTIONS] CONTAINER...",
  .summary = "Remove containers (their task, record, snapshot)",
  .help = "  -f, --force           kill running containers first\n",
  .shortopts = "f",
  .options = rm_options,
  .run = rm_run,
};
static const struct cli_command pause_command = {
  .name = "pause",
  .args = "CONTAINER...",
  .summary = "Freeze containers",
  .run = pause_run,
};
static const struct cli_command unpause_command = {
  .name = "unpause",
  .args = "CONTAINER...",
  .summary = "Thaw containers",
  .run = unpause_run,
};

const struct cli_group cli_group_ps = { .name = "ps", .summary = "List containers", .self = &ps_command };
const struct cli_group cli_group_inspect
    = { .name = "inspect", .summary = "Show containers in detail", .self = &inspect_command };
const struct cli_group cli_group_logs
    = { .name = "logs", .summary = "Print a container's output", .self = &logs_command };
const struct cli_group cli_group_top
    = { .name = "top", .summary = "List a container's processes", .self = &top_command };
const struct cli_group cli_group_stats
    = { .name = "stats", .summary = "Resource usage of containers", .self = &stats_command };
const struct cli_group cli_group_wait = { .name = "wait", .summary = "Wait for containers", .self = &wait_command };
const struct cli_group cli_group_kill = { .name = "kill", .summary = "Signal containers", .self = &kill_command };
const struct cli_group cli_group_stop = { .name = "stop", .summary = "Stop containers", .self = &stop_command };
const struct cli_group cli_group_rm = { .name = "rm", .summary = "Remove containers", .self = &rm_command };
const struct cli_group cli_group_pause = { .name = "pause", .summary = "Freeze containers", .self = &pause_command };
const struct cli_group cli_group_unpause
    = { .name = "unpause", .summary = "Thaw containers", .self = &unpause_command };

static const char *const ls_aliases[] = { "list", NULL };
static const char *const rm_aliases[] = { "remove", "delete", "del", NULL };

static const struct cli_command containers_commands[] = {
  { .name = "create",
    .args = "[OPTIONS] IMAGE [COMMAND [ARG...]]",
    .summary = "Create a container (as berth create)",
    .help = cli_run_help,
    .shortopts = "ditu:e:v:w:",
    .options = cli_run_options,
    .run = berth_cmd_create },
  { .name = "info",
    .args = "CONTAINER...",
    .summary = "Show a container's record and spec (JSON)",
    .options = none_options,
    .run = containers_info_run },
  { .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS]",
    .summary = "List containers",
    .help = "  -q, --quiet           print only the ids\n" FORMAT_HELP,
    .shortopts = "qf:",
    .options = ls_options,
    .run = containers_ls_run },
  { .name = "rm",
    .aliases = rm_aliases,
    .args = "[OPTIONS] CONTAINER...",
    .summary = "Remove containers and their snapshots",
    .help = "  -f, --force           kill running ones first\n",
    .shortopts = "f",
    .options = rm_options,
    .run = containers_rm_run },
  { 0 },
};

static const struct cli_command tasks_commands[] = {
  { .name = "exec",
    .args = "[OPTIONS] CONTAINER COMMAND [ARG...]",
    .summary = "Run a process in a task",
    .help = "  --exec-id ID, -i, -t, -d, -e, -u, -w  as berth exec\n",
    .shortopts = "itde:u:w:",
    .options = exec_options_ctr,
    .run = berth_cmd_exec },
  { .name = "kill",
    .args = "[OPTIONS] CONTAINER...",
    .summary = "Signal a task (default TERM)",
    .help = "  -s, --signal SIG      signal\n  -a, --all             every process of the task\n"
            "      --exec-id ID      an exec'd process\n",
    .shortopts = "s:a",
    .options = kill_options,
    .run = tasks_kill_run },
  { .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS]",
    .summary = "List tasks",
    .help = "  -q, --quiet           print only the ids\n" FORMAT_HELP,
    .shortopts = "qf:",
    .options = ls_options,
    .run = tasks_ls_run },
  { .name = "metrics",
    .args = "CONTAINER...",
    .summary = "Print a task's metrics (JSON)",
    .shortopts = "f:",
    .options = format_options,
    .run = tasks_metrics_run },
  { .name = "pause", .args = "CONTAINER...", .summary = "Pause a task", .run = pause_run },
  { .name = "ps",
    .args = "[OPTIONS] CONTAINER",
    .summary = "List a task's pids",
    .help = FORMAT_HELP,
    .shortopts = "f:",
    .options = format_options,
    .run = tasks_ps_run },
  { .name = "resume", .args = "CONTAINER...", .summary = "Resume a task", .run = unpause_run },
  { .name = "rm",
    .aliases = rm_aliases,
    .args = "[OPTIONS] CONTAINER...",
    .summary = "Delete a stopped task",
    .help = "  -f, --force           kill it first\n",
    .shortopts = "f",
    .options = rm_options,
    .run = tasks_rm_run },
  { .name = "start",
    .args = "[OPTIONS] CONTAINER",
    .summary = "Start a container's task",
    .help = "  -a, --attach          wait, copying its output\n",
    .shortopts = "ai",
    .options = start_options_ctr,
    .run = berth_cmd_start },
  { 0 },
};

static const char *const containers_aliases[] = { "container", "c", NULL };
static const char *const tasks_aliases[] = { "task", "t", NULL };

const struct cli_group cli_group_containers = {
  .name = "containers",
  .aliases = containers_aliases,
  .summary = "Manage container records (ctr style)",
  .commands = containers_commands,
};
const struct cli_group cli_group_tasks = {
  .name = "tasks",
  .aliases = tasks_aliases,
  .summary = "Manage tasks, the running processes of containers (ctr style)",
  .commands = tasks_commands,
};
