/* containerd.services.tasks.v1.Tasks on the task manager (core/tasks.h).
 * Every method runs on the worker pool (runtime calls block on the shim);
 * Wait runs on a thread of its own, since it blocks until the process
 * exits and would otherwise hold a worker for that long: the client going
 * away cancels its context and the reply is dropped.
 *
 * Metrics answers containerd's cgroup v1 shape (io.containerd.cgroups.v1.Metrics
 * in a containerd.types.Metric), translated from the runtime's
 * `events --stats` JSON; a task whose runtime does not answer is left out.
 *
 * Not implemented: Checkpoint (no CRIU support). */
#include <config.h>

#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "filters.h"
#include "github.com/containerd/cgroups/stats/v1/metrics.pb-c.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "host-objects.h"
#include "log.h"
#include "tasks.h"

#define JSON_TYPE_PROCESS "types.containerd.io/opencontainers/runtime-spec/1/Process"
#define JSON_TYPE_RESOURCES "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
#define CGROUPS_V1_METRICS "io.containerd.cgroups.v1.Metrics"
/* A task whose shim does not answer carries, in its containerd.v1.types.
 * Process (List, Get), the berth extension field 1000 (a string): the JSON
 * object {"answering": false, "last_answer": RFC 3339, "last_answer_ns": N,
 * "silent_ms": N, "error": "..."}.  containerd 1.6's Process has no field
 * for it (no `info`); protobuf parsers skip unknown fields, so ctr and
 * other containerd clients see exactly containerd's message. */
#define TASK_HEALTH_FIELD 1000

enum task_op
{
  T_CREATE,
  T_START,
  T_DELETE,
  T_DELETE_PROCESS,
  T_GET,
  T_LIST,
  T_KILL,
  T_EXEC,
  T_RESIZE,
  T_CLOSE_IO,
  T_PAUSE,
  T_RESUME,
  T_LIST_PIDS,
  T_CHECKPOINT,
  T_UPDATE,
  T_METRICS,
  T_WAIT,
  T_NOPS,
};

struct pid_item
{
  uint32_t pid;
};

struct list_item
{
  char *id;
  struct berth_process_state st;
  struct task_health health; /* List: filled after the listing */
  /* Metrics: the packed io.containerd.cgroups.v1.Metrics, when taken */
  uint8_t *metrics;
  size_t metrics_len;
  int64_t metrics_at;
};

struct task_job
{
  struct daemon *d;
  enum task_op op;
  ProtobufCMessage *req;
  char *ns;
  int r;
  berth_error *err;
  /* results */
  char *bundle;
  int32_t pid;
  struct berth_process_state st;
  struct task_health health; /* Get of init */
  struct berth_task_exit ex;
  struct list_item *items;
  size_t n;
  struct pid_item *pids;
  size_t npids;
};

static void
task_job_free (void *data)
{
  struct task_job *j = data;
  if (j->req)
    protobuf_c_message_free_unpacked (j->req, NULL);
  berth_error_free (j->err);
  free (j->bundle);
  for (size_t i = 0; i < j->n; i++)
    {
      free (j->items[i].id);
      free (j->items[i].metrics);
    }
  free (j->items);
  free (j->pids);
  free (j->ns);
  free (j);
}

/* A JSON Any (containerd's typeurl JSON registration of runtime-spec types),
 * copied NUL-terminated. */
static int
json_any (const Google__Protobuf__Any *a, const char *want, const char *what, char **ret, berth_error **err)
{
  if (a == NULL || a->value.len == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s is required", what);
  if (a->type_url == NULL || strcmp (a->type_url, want) != 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: type %s is not supported (expected %s)", what,
                            a->type_url ? a->type_url : "(none)", want);
  if (memchr (a->value.data, '\0', a->value.len))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: not JSON text", what);
  *ret = strndup ((const char *)a->value.data, a->value.len);
  if (*ret == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  return 0;
}

static const char *
nz (const char *s)
{
  return s && *s ? s : NULL;
}

static int
collect_task (const char *id, const struct berth_process_state *st, void *data)
{
  struct task_job *j = data;
  struct list_item *v = realloc (j->items, (j->n + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  j->items = v;
  v[j->n] = (struct list_item){ 0 };
  v[j->n].id = strdup (id);
  if (v[j->n].id == NULL)
    return BERTH_E_NOMEM;
  v[j->n].st = *st;
  j->n++;
  return 0;
}

static int
collect_pid (int32_t pid, const char *exec_id, void *data)
{
  struct task_job *j = data;
  struct pid_item *v = realloc (j->pids, (j->npids + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  j->pids = v;
  v[j->npids++].pid = (uint32_t)pid;
  return 0;
}

/* ---- Metrics: runc's `events --stats` JSON → cgroups v1 Metrics ---------- */

/* The member when it is an object (or array), else NULL: the JSON comes from
 * a runtime binary and is treated as hostile (wrong types are ignored). */
static json_object *
jget (json_object *o, const char *key, json_type type)
{
  json_object *v = NULL;
  if (o == NULL || !json_object_is_type (o, json_type_object) || !json_object_object_get_ex (o, key, &v))
    return NULL;
  return json_object_is_type (v, type) ? v : NULL;
}

/* A non-negative integer member, 0 when absent, negative or not an integer. */
static uint64_t
ju64_of (json_object *v)
{
  if (v == NULL || !json_object_is_type (v, json_type_int))
    return 0;
  if (json_object_get_int64 (v) < 0)
    return 0;
  return json_object_get_uint64 (v);
}

static uint64_t
ju64 (json_object *o, const char *key)
{
  return ju64_of (jget (o, key, json_type_int));
}

static Io__Containerd__Cgroups__V1__MemoryEntry *
mem_entry (pb_arena *a, json_object *mem, const char *key)
{
  json_object *e = jget (mem, key, json_type_object);
  Io__Containerd__Cgroups__V1__MemoryEntry *m = pb_new (a, &io__containerd__cgroups__v1__memory_entry__descriptor);
  m->limit = ju64 (e, "limit");
  m->usage = ju64 (e, "usage");
  m->max = ju64 (e, "max");
  m->failcnt = ju64 (e, "failcnt");
  return m;
}

/* memory.stat keys (runc's "raw") → MemoryStat fields, as containerd's cgroups v1 reads them. */
#define MS(f) offsetof (Io__Containerd__Cgroups__V1__MemoryStat, f)
static const struct
{
  const char *key;
  size_t off;
} memory_raw[] = {
  { "cache", MS (cache) },
  { "rss", MS (rss) },
  { "rss_huge", MS (rss_huge) },
  { "mapped_file", MS (mapped_file) },
  { "dirty", MS (dirty) },
  { "writeback", MS (writeback) },
  { "pgpgin", MS (pg_pg_in) },
  { "pgpgout", MS (pg_pg_out) },
  { "pgfault", MS (pg_fault) },
  { "pgmajfault", MS (pg_maj_fault) },
  { "inactive_anon", MS (inactive_anon) },
  { "active_anon", MS (active_anon) },
  { "inactive_file", MS (inactive_file) },
  { "active_file", MS (active_file) },
  { "unevictable", MS (unevictable) },
  { "hierarchical_memory_limit", MS (hierarchical_memory_limit) },
  { "hierarchical_memsw_limit", MS (hierarchical_swap_limit) },
  { "total_cache", MS (total_cache) },
  { "total_rss", MS (total_rss) },
  { "total_rss_huge", MS (total_rss_huge) },
  { "total_mapped_file", MS (total_mapped_file) },
  { "total_dirty", MS (total_dirty) },
  { "total_writeback", MS (total_writeback) },
  { "total_pgpgin", MS (total_pg_pg_in) },
  { "total_pgpgout", MS (total_pg_pg_out) },
  { "total_pgfault", MS (total_pg_fault) },
  { "total_pgmajfault", MS (total_pg_maj_fault) },
  { "total_inactive_anon", MS (total_inactive_anon) },
  { "total_active_anon", MS (total_active_anon) },
  { "total_inactive_file", MS (total_inactive_file) },
  { "total_active_file", MS (total_active_file) },
  { "total_unevictable", MS (total_unevictable) },
};
#undef MS

static Io__Containerd__Cgroups__V1__BlkIOEntry **
blkio_list (pb_arena *a, json_object *blk, const char *key, size_t *ret_n)
{
  json_object *arr = jget (blk, key, json_type_array);
  size_t n = arr ? json_object_array_length (arr) : 0;
  *ret_n = 0;
  if (n == 0)
    return NULL;
  Io__Containerd__Cgroups__V1__BlkIOEntry **v
      = (void *)pb_array (a, &io__containerd__cgroups__v1__blk_ioentry__descriptor, n);
  for (size_t i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      if (e == NULL || !json_object_is_type (e, json_type_object))
        continue;
      Io__Containerd__Cgroups__V1__BlkIOEntry *b = v[(*ret_n)++];
      json_object *op = jget (e, "op", json_type_string);
      b->op = pb_strdup (a, op ? json_object_get_string (op) : NULL);
      b->major = ju64 (e, "major");
      b->minor = ju64 (e, "minor");
      b->value = ju64 (e, "value");
    }
  return v;
}

/* Fill m from the runtime's stats JSON (the whole {"type":"stats","data":{...}}
 * document, or its data object). */
static int
metrics_from_json (pb_arena *a, const char *text, size_t len, Io__Containerd__Cgroups__V1__Metrics *m,
                   berth_error **err)
{
  if (text == NULL || len == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "runtime statistics: empty answer");
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  if (len > INT_MAX)
    len = INT_MAX;
  json_object *root = json_tokener_parse_ex (tok, text, (int)len);
  enum json_tokener_error e = json_tokener_get_error (tok);
  size_t end = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  while (root && end < len && strchr (" \t\r\n", text[end]) && text[end] != '\0')
    end++;
  const char *why = NULL;
  if (e == json_tokener_continue)
    why = "truncated JSON";
  else if (root == NULL || e != json_tokener_success)
    why = json_tokener_error_desc (e);
  else if (end < len)
    why = "text after the JSON value";
  else if (!json_object_is_type (root, json_type_object))
    why = "not a JSON object";
  if (why)
    {
      json_object_put (root);
      return berth_error_set (err, BERTH_E_INVALID, 0, "runtime statistics: %s", why);
    }
  json_object *data = jget (root, "data", json_type_object);
  if (data == NULL)
    data = root;

  json_object *pids = jget (data, "pids", json_type_object);
  m->pids = pb_new (a, &io__containerd__cgroups__v1__pids_stat__descriptor);
  m->pids->current = ju64 (pids, "current");
  m->pids->limit = ju64 (pids, "limit");

  json_object *cpu = jget (data, "cpu", json_type_object);
  json_object *usage = jget (cpu, "usage", json_type_object);
  json_object *thr = jget (cpu, "throttling", json_type_object);
  m->cpu = pb_new (a, &io__containerd__cgroups__v1__cpustat__descriptor);
  m->cpu->usage = pb_new (a, &io__containerd__cgroups__v1__cpuusage__descriptor);
  m->cpu->usage->total = ju64 (usage, "total");
  m->cpu->usage->kernel = ju64 (usage, "kernel");
  m->cpu->usage->user = ju64 (usage, "user");
  json_object *percpu = jget (usage, "percpu", json_type_array);
  size_t ncpu = percpu ? json_object_array_length (percpu) : 0;
  if (ncpu > 0)
    {
      m->cpu->usage->per_cpu = pb_alloc (a, ncpu * sizeof *m->cpu->usage->per_cpu);
      for (size_t i = 0; i < ncpu; i++)
        m->cpu->usage->per_cpu[i] = ju64_of (json_object_array_get_idx (percpu, i));
      m->cpu->usage->n_per_cpu = ncpu;
    }
  m->cpu->throttling = pb_new (a, &io__containerd__cgroups__v1__throttle__descriptor);
  m->cpu->throttling->periods = ju64 (thr, "periods");
  m->cpu->throttling->throttled_periods = ju64 (thr, "throttled_periods");
  m->cpu->throttling->throttled_time = ju64 (thr, "throttled_time");

  json_object *mem = jget (data, "memory", json_type_object);
  m->memory = pb_new (a, &io__containerd__cgroups__v1__memory_stat__descriptor);
  json_object *raw = jget (mem, "raw", json_type_object);
  for (size_t i = 0; raw && i < ARRAY_SIZE (memory_raw); i++)
    *(uint64_t *)((char *)m->memory + memory_raw[i].off) = ju64 (raw, memory_raw[i].key);
  if (jget (mem, "cache", json_type_int))
    m->memory->cache = ju64 (mem, "cache");
  m->memory->usage = mem_entry (a, mem, "usage");
  m->memory->swap = mem_entry (a, mem, "swap");
  m->memory->kernel = mem_entry (a, mem, "kernel");
  m->memory->kernel_tcp = mem_entry (a, mem, "kernelTCP");

  json_object *blk = jget (data, "blkio", json_type_object);
  if (blk)
    {
      Io__Containerd__Cgroups__V1__BlkIOStat *b = pb_new (a, &io__containerd__cgroups__v1__blk_iostat__descriptor);
      b->io_service_bytes_recursive = blkio_list (a, blk, "ioServiceBytesRecursive", &b->n_io_service_bytes_recursive);
      b->io_serviced_recursive = blkio_list (a, blk, "ioServicedRecursive", &b->n_io_serviced_recursive);
      b->io_queued_recursive = blkio_list (a, blk, "ioQueueRecursive", &b->n_io_queued_recursive);
      b->io_service_time_recursive = blkio_list (a, blk, "ioServiceTimeRecursive", &b->n_io_service_time_recursive);
      b->io_wait_time_recursive = blkio_list (a, blk, "ioWaitTimeRecursive", &b->n_io_wait_time_recursive);
      b->io_merged_recursive = blkio_list (a, blk, "ioMergedRecursive", &b->n_io_merged_recursive);
      b->io_time_recursive = blkio_list (a, blk, "ioTimeRecursive", &b->n_io_time_recursive);
      b->sectors_recursive = blkio_list (a, blk, "sectorsRecursive", &b->n_sectors_recursive);
      m->blkio = b;
    }
  json_object_put (root);
  return 0;
}

struct metrics_filter_obj
{
  const char *id;
  const char *ns;
};

/* containerd's task adaptor for Metrics: id and namespace. */
static const char *
metrics_field (void *obj, const char *const *path, size_t npath)
{
  const struct metrics_filter_obj *o = obj;
  if (npath != 1)
    return NULL;
  if (strcmp (path[0], "id") == 0)
    return o->id;
  if (strcmp (path[0], "namespace") == 0)
    return o->ns;
  return NULL;
}

/* Worker: the stats of every task the filters select.  A task whose runtime
 * fails or does not answer within the state deadline is skipped. */
static int
task_metrics (struct task_job *j, berth_error **err)
{
  Containerd__Services__Tasks__V1__MetricsRequest *q = (void *)j->req;
  filter_set *fs = NULL;
  int r = filters_parse ((const char *const *)q->filters, q->n_filters, &fs, err);
  if (r < 0)
    return r;
  r = tasks_list_ids (j->d->tasks, j->ns, collect_task, j, err);
  for (size_t i = 0; r == 0 && i < j->n; i++)
    {
      struct list_item *it = &j->items[i];
      struct metrics_filter_obj o = { .id = it->id, .ns = j->ns };
      if (!filters_match (fs, metrics_field, &o))
        continue;
      berth_buf buf = { 0 };
      _cleanup_error_ berth_error *e = NULL;
      _cleanup_arena_ pb_arena *a = pb_arena_new ();
      Io__Containerd__Cgroups__V1__Metrics m = IO__CONTAINERD__CGROUPS__V1__METRICS__INIT;
      if (tasks_stats (j->d->tasks, j->ns, it->id, &buf, &e) < 0
          || metrics_from_json (a, (const char *)buf.data, buf.len, &m, &e) < 0)
        {
          log_warning ("task %s/%s: metrics: %s", j->ns, it->id, e ? berth_error_message (e) : "failed");
          buf_clear (&buf);
          continue;
        }
      buf_clear (&buf);
      struct timespec now;
      clock_gettime (CLOCK_REALTIME, &now);
      it->metrics_at = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
      it->metrics_len = protobuf_c_message_get_packed_size (&m.base);
      it->metrics = malloc (it->metrics_len ? it->metrics_len : 1);
      if (it->metrics == NULL)
        r = berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
      else
        protobuf_c_message_pack (&m.base, it->metrics);
    }
  filters_free (fs);
  return r;
}

static void
task_work (void *data)
{
  struct task_job *j = data;
  tasks *t = j->d->tasks;
  berth_error **err = &j->err;
  switch (j->op)
    {
    case T_CREATE:
      {
        Containerd__Services__Tasks__V1__CreateTaskRequest *q = (void *)j->req;
        berth_mounts ms = { 0 };
        for (size_t i = 0; j->r == 0 && i < q->n_rootfs; i++)
          {
            const Containerd__Types__Mount *m = q->rootfs[i];
            /* protobuf-c's repeated strings are counted, mounts_add wants a NULL-terminated list */
            _cleanup_free_ const char **opts = calloc (m->n_options + 1, sizeof *opts);
            for (size_t k = 0; opts && k < m->n_options; k++)
              opts[k] = m->options[k];
            if (opts == NULL || mounts_add (&ms, m->type, m->source, m->target, opts) < 0)
              j->r = berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
          }
        if (j->r == 0 && q->checkpoint)
          j->r = berth_error_set (err, BERTH_E_NOTSUP, 0, "restoring from a checkpoint is not supported");
        if (j->r == 0)
          {
            struct task_create cr = {
              .ns = j->ns,
              .container_id = q->container_id,
              .rootfs = &ms,
              .io = { .size = sizeof cr.io,
                      .stdin_path = nz (q->stdin),
                      .stdout_path = nz (q->stdout),
                      .stderr_path = nz (q->stderr),
                      .terminal = q->terminal },
              .options_type = q->options ? q->options->type_url : NULL,
              .options = q->options ? q->options->value.data : NULL,
              .options_len = q->options ? q->options->value.len : 0,
            };
            j->r = tasks_create (t, &cr, &j->bundle, &j->st, err);
          }
        mounts_clear (&ms);
        break;
      }
    case T_START:
      {
        Containerd__Services__Tasks__V1__StartRequest *q = (void *)j->req;
        j->r = tasks_start (t, j->ns, q->container_id, q->exec_id, &j->pid, err);
        break;
      }
    case T_DELETE:
      {
        Containerd__Services__Tasks__V1__DeleteTaskRequest *q = (void *)j->req;
        j->r = tasks_delete (t, j->ns, q->container_id, NULL, &j->ex, err);
        break;
      }
    case T_DELETE_PROCESS:
      {
        Containerd__Services__Tasks__V1__DeleteProcessRequest *q = (void *)j->req;
        if (q->exec_id == NULL || *q->exec_id == '\0')
          j->r = berth_error_set (err, BERTH_E_INVALID, 0, "exec_id is required (use Delete for the task)");
        else
          j->r = tasks_delete (t, j->ns, q->container_id, q->exec_id, &j->ex, err);
        break;
      }
    case T_GET:
      {
        Containerd__Services__Tasks__V1__GetRequest *q = (void *)j->req;
        j->r = tasks_state (t, j->ns, q->container_id, q->exec_id, &j->st, err);
        /* Deleted meanwhile, or an exec process: nothing to add. */
        if (j->r != 0 || (q->exec_id && *q->exec_id) || tasks_health (t, j->ns, q->container_id, &j->health, NULL) < 0)
          j->health.answering = true;
        break;
      }
    case T_LIST:
      j->r = tasks_list (t, j->ns, collect_task, j, err);
      for (size_t i = 0; j->r == 0 && i < j->n; i++)
        if (tasks_health (t, j->ns, j->items[i].id, &j->items[i].health, NULL) < 0)
          j->items[i].health.answering = true; /* deleted meanwhile */
      break;
    case T_KILL:
      {
        Containerd__Services__Tasks__V1__KillRequest *q = (void *)j->req;
        j->r = tasks_kill (t, j->ns, q->container_id, q->exec_id, (int)q->signal, q->all, err);
        break;
      }
    case T_EXEC:
      {
        Containerd__Services__Tasks__V1__ExecProcessRequest *q = (void *)j->req;
        _cleanup_free_ char *spec = NULL;
        j->r = json_any (q->spec, JSON_TYPE_PROCESS, "exec process spec", &spec, err);
        if (j->r == 0)
          {
            struct berth_task_io io = { .size = sizeof io,
                                        .stdin_path = nz (q->stdin),
                                        .stdout_path = nz (q->stdout),
                                        .stderr_path = nz (q->stderr),
                                        .terminal = q->terminal };
            j->r = tasks_exec (t, j->ns, q->container_id, q->exec_id, spec, &io, err);
          }
        break;
      }
    case T_RESIZE:
      {
        Containerd__Services__Tasks__V1__ResizePtyRequest *q = (void *)j->req;
        j->r = tasks_resize (t, j->ns, q->container_id, q->exec_id, q->width, q->height, err);
        break;
      }
    case T_CLOSE_IO:
      {
        Containerd__Services__Tasks__V1__CloseIORequest *q = (void *)j->req;
        j->r = q->stdin ? tasks_close_io (t, j->ns, q->container_id, q->exec_id, err) : 0;
        break;
      }
    case T_PAUSE:
    case T_RESUME:
      {
        /* Both requests carry only container_id (field 1). */
        Containerd__Services__Tasks__V1__PauseTaskRequest *q = (void *)j->req;
        j->r = tasks_pause (t, j->ns, q->container_id, j->op == T_PAUSE, err);
        break;
      }
    case T_LIST_PIDS:
      {
        Containerd__Services__Tasks__V1__ListPidsRequest *q = (void *)j->req;
        j->r = tasks_pids (t, j->ns, q->container_id, collect_pid, j, err);
        break;
      }
    case T_UPDATE:
      {
        Containerd__Services__Tasks__V1__UpdateTaskRequest *q = (void *)j->req;
        _cleanup_free_ char *res = NULL;
        j->r = json_any (q->resources, JSON_TYPE_RESOURCES, "resources", &res, err);
        if (j->r == 0)
          j->r = tasks_update (t, j->ns, q->container_id, res, err);
        break;
      }
    case T_CHECKPOINT: j->r = berth_error_set (err, BERTH_E_NOTSUP, 0, "checkpoint is not supported by berth"); break;
    case T_METRICS: j->r = task_metrics (j, err); break;
    case T_WAIT:
    case T_NOPS: break;
    }
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "tasks");
}

/* Attach the extension field TASK_HEALTH_FIELD to p when its shim is not
 * answering. */
static void
health_to_pb (pb_arena *a, Containerd__V1__Types__Process *p, const struct task_health *h)
{
  if (h == NULL || h->answering)
    return;
  json_object *o = json_object_new_object ();
  if (o == NULL)
    return;
  char when[64] = "";
  time_t secs = (time_t)(h->last_answer_ns / 1000000000);
  struct tm tm;
  if (h->last_answer_ns > 0 && gmtime_r (&secs, &tm))
    strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_object_object_add (o, "answering", json_object_new_boolean (0));
  json_object_object_add (o, "last_answer", json_object_new_string (when));
  json_object_object_add (o, "last_answer_ns", json_object_new_int64 (h->last_answer_ns));
  json_object_object_add (o, "silent_ms", json_object_new_int64 (h->silent_ms));
  json_object_object_add (o, "error", json_object_new_string (h->why));
  const char *text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  size_t len = text ? strlen (text) : 0;
  /* protobuf-c copies an unknown field's bytes as they are: for a
   * length-delimited one they start with the length (a varint). */
  uint8_t *data = pb_alloc (a, len + 10);
  size_t off = 0;
  for (size_t v = len; off == 0 || v; v >>= 7)
    data[off++] = (uint8_t)((v & 0x7f) | (v >> 7 ? 0x80 : 0));
  memcpy (data + off, text ? text : "", len);
  ProtobufCMessageUnknownField *f = pb_alloc (a, sizeof *f);
  f->tag = TASK_HEALTH_FIELD;
  f->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
  f->len = off + len;
  f->data = data;
  p->base.n_unknown_fields = 1;
  p->base.unknown_fields = f;
  json_object_put (o);
}

static Containerd__V1__Types__Process *
process_to_pb (pb_arena *a, const char *container_id, const char *id, const struct berth_process_state *st)
{
  Containerd__V1__Types__Process *p = pb_new (a, &containerd__v1__types__process__descriptor);
  p->container_id = pb_strdup (a, container_id);
  p->id = pb_strdup (a, id);
  p->pid = st->pid > 0 ? (uint32_t)st->pid : 0;
  p->status = st->status <= BERTH_TASK_PAUSING ? (Containerd__V1__Types__Status)st->status
                                               : CONTAINERD__V1__TYPES__STATUS__UNKNOWN;
  p->stdin = pb_strdup (a, st->stdin_path);
  p->stdout = pb_strdup (a, st->stdout_path);
  p->stderr = pb_strdup (a, st->stderr_path);
  p->terminal = st->terminal != 0;
  p->exit_status = st->exit_status;
  if (st->exited_at)
    p->exited_at = pb_timestamp (a, st->exited_at);
  return p;
}

static void
send_empty (grpc_call *call)
{
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  grpc_call_send (call, &empty.base);
}

static void
task_reply (grpc_call *call, void *data)
{
  struct task_job *j = data;
  if (j->r < 0)
    {
      svc_fail (call, j->err);
      return;
    }
  _cleanup_arena_ pb_arena *a = pb_arena_new ();
  switch (j->op)
    {
    case T_CREATE:
      {
        Containerd__Services__Tasks__V1__CreateTaskResponse resp
            = CONTAINERD__SERVICES__TASKS__V1__CREATE_TASK_RESPONSE__INIT;
        resp.container_id = ((Containerd__Services__Tasks__V1__CreateTaskRequest *)j->req)->container_id;
        resp.pid = j->st.pid > 0 ? (uint32_t)j->st.pid : 0;
        grpc_call_send (call, &resp.base);
        break;
      }
    case T_START:
      {
        Containerd__Services__Tasks__V1__StartResponse resp = CONTAINERD__SERVICES__TASKS__V1__START_RESPONSE__INIT;
        resp.pid = j->pid > 0 ? (uint32_t)j->pid : 0;
        grpc_call_send (call, &resp.base);
        break;
      }
    case T_DELETE:
    case T_DELETE_PROCESS:
      {
        Containerd__Services__Tasks__V1__DeleteResponse resp = CONTAINERD__SERVICES__TASKS__V1__DELETE_RESPONSE__INIT;
        if (j->op == T_DELETE)
          resp.id = ((Containerd__Services__Tasks__V1__DeleteTaskRequest *)j->req)->container_id;
        else
          resp.id = ((Containerd__Services__Tasks__V1__DeleteProcessRequest *)j->req)->exec_id;
        resp.pid = j->ex.pid > 0 ? (uint32_t)j->ex.pid : 0;
        resp.exit_status = j->ex.exit_status;
        resp.exited_at = pb_timestamp (a, j->ex.exited_at);
        grpc_call_send (call, &resp.base);
        break;
      }
    case T_GET:
      {
        Containerd__Services__Tasks__V1__GetRequest *q = (void *)j->req;
        Containerd__Services__Tasks__V1__GetResponse resp = CONTAINERD__SERVICES__TASKS__V1__GET_RESPONSE__INIT;
        resp.process
            = process_to_pb (a, q->container_id, q->exec_id && *q->exec_id ? q->exec_id : q->container_id, &j->st);
        if (j->st.status == BERTH_TASK_UNKNOWN)
          health_to_pb (a, resp.process, &j->health);
        grpc_call_send (call, &resp.base);
        break;
      }
    case T_LIST:
      {
        Containerd__Services__Tasks__V1__ListTasksResponse resp
            = CONTAINERD__SERVICES__TASKS__V1__LIST_TASKS_RESPONSE__INIT;
        resp.tasks = pb_alloc (a, (j->n + 1) * sizeof *resp.tasks);
        for (size_t i = 0; i < j->n; i++)
          {
            resp.tasks[i] = process_to_pb (a, j->items[i].id, j->items[i].id, &j->items[i].st);
            if (j->items[i].st.status == BERTH_TASK_UNKNOWN)
              health_to_pb (a, resp.tasks[i], &j->items[i].health);
          }
        resp.n_tasks = j->n;
        grpc_call_send (call, &resp.base);
        break;
      }
    case T_LIST_PIDS:
      {
        Containerd__Services__Tasks__V1__ListPidsResponse resp
            = CONTAINERD__SERVICES__TASKS__V1__LIST_PIDS_RESPONSE__INIT;
        resp.processes = (void *)pb_array (a, &containerd__v1__types__process_info__descriptor, j->npids);
        for (size_t i = 0; i < j->npids; i++)
          resp.processes[i]->pid = j->pids[i].pid;
        resp.n_processes = j->npids;
        grpc_call_send (call, &resp.base);
        break;
      }
    case T_METRICS:
      {
        Containerd__Services__Tasks__V1__MetricsResponse resp = CONTAINERD__SERVICES__TASKS__V1__METRICS_RESPONSE__INIT;
        resp.metrics = pb_alloc (a, (j->n + 1) * sizeof *resp.metrics);
        for (size_t i = 0; i < j->n; i++)
          {
            const struct list_item *it = &j->items[i];
            if (it->metrics == NULL)
              continue;
            Containerd__Types__Metric *m = pb_new (a, &containerd__types__metric__descriptor);
            m->timestamp = pb_timestamp (a, it->metrics_at);
            m->id = pb_strdup (a, it->id);
            m->data = pb_new (a, &google__protobuf__any__descriptor);
            m->data->type_url = (char *)CGROUPS_V1_METRICS;
            m->data->value.data = it->metrics;
            m->data->value.len = it->metrics_len;
            resp.metrics[resp.n_metrics++] = m;
          }
        grpc_call_send (call, &resp.base);
        break;
      }
    default: send_empty (call); break;
    }
  grpc_call_finish (call, 0, NULL);
}

/* ---- Wait: a thread per call ------------------------------------------ */

struct wait_call
{
  size_t slot;
  struct daemon *d;
  grpc_call *call; /* NULL once the client went away (loop thread) */
  Containerd__Services__Tasks__V1__WaitRequest *req;
  char *ns;
  berth_ctx ctx;
  int r;
  berth_error *err;
  struct berth_task_exit ex;
};

/* Live Wait threads, so that shutdown can cancel them before the runtime
 * plugins they call into go away. */
static pthread_mutex_t waits_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t waits_cond = PTHREAD_COND_INITIALIZER;
static struct wait_call *waits[256];
static size_t nwaits;

static void
wait_call_free (struct wait_call *w)
{
  if (w->req)
    protobuf_c_message_free_unpacked (&w->req->base, NULL);
  free (w->ns);
  berth_error_free (w->err);
  free (w);
}

/* Loop thread. */
static void
wait_done (void *data)
{
  struct wait_call *w = data;
  if (w->call)
    {
      grpc_call_set_data (w->call, NULL);
      if (w->r < 0)
        svc_fail (w->call, w->err);
      else
        {
          _cleanup_arena_ pb_arena *a = pb_arena_new ();
          Containerd__Services__Tasks__V1__WaitResponse resp = CONTAINERD__SERVICES__TASKS__V1__WAIT_RESPONSE__INIT;
          resp.exit_status = w->ex.exit_status;
          resp.exited_at = pb_timestamp (a, w->ex.exited_at);
          grpc_call_send (w->call, &resp.base);
          grpc_call_finish (w->call, 0, NULL);
        }
    }
  wait_call_free (w);
}

static void *
wait_thread (void *data)
{
  struct wait_call *w = data;
  w->r = tasks_wait (w->d->tasks, &w->ctx, w->req->container_id, w->req->exec_id, &w->ex, &w->err);
  if (w->r < 0 && w->err == NULL)
    berth_error_set (&w->err, w->r, 0, "wait");
  pthread_mutex_lock (&waits_lock);
  waits[w->slot] = NULL;
  nwaits--;
  pthread_cond_broadcast (&waits_cond);
  pthread_mutex_unlock (&waits_lock);
  if (loop_post (w->d->loop, wait_done, w) < 0)
    log_warning ("tasks: cannot hand a Wait reply to the loop (shutting down?)");
  return NULL;
}

static void
wait_cancel (grpc_call *call, void *data)
{
  struct wait_call *w = grpc_call_get_data (call);
  if (w)
    {
      w->call = NULL;
      atomic_store (&w->ctx.cancelled, 1);
    }
}

static void
wait_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  struct daemon *d = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  Containerd__Services__Tasks__V1__WaitRequest *req
      = svc_unpack (call, &containerd__services__tasks__v1__wait_request__descriptor, msg, len);
  if (req == NULL)
    return;
  struct wait_call *w = calloc (1, sizeof *w);
  if (w == NULL || (w->ns = strdup (ns)) == NULL)
    {
      free (w);
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  w->d = d;
  w->call = call;
  w->req = req;
  ctx_init (&w->ctx, w->ns, NULL);
  grpc_call_set_data (call, w);
  pthread_mutex_lock (&waits_lock);
  size_t slot = 0;
  while (slot < ARRAY_SIZE (waits) && waits[slot])
    slot++;
  if (slot == ARRAY_SIZE (waits))
    {
      pthread_mutex_unlock (&waits_lock);
      grpc_call_set_data (call, NULL);
      wait_call_free (w);
      grpc_call_finish (call, BERTH_E_EXHAUSTED, "too many concurrent Wait calls (256)");
      return;
    }
  waits[slot] = w;
  w->slot = slot;
  nwaits++;
  pthread_mutex_unlock (&waits_lock);
  pthread_attr_t attr;
  pthread_attr_init (&attr);
  pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize (&attr, 256 * 1024);
  pthread_t th;
  int e = pthread_create (&th, &attr, wait_thread, w);
  pthread_attr_destroy (&attr);
  if (e != 0)
    {
      pthread_mutex_lock (&waits_lock);
      waits[slot] = NULL;
      nwaits--;
      pthread_mutex_unlock (&waits_lock);
      grpc_call_set_data (call, NULL);
      wait_call_free (w);
      grpc_call_finish (call, BERTH_E_UNAVAILABLE, "cannot start a thread for Wait");
    }
}

void
service_tasks_shutdown (struct daemon *d)
{
  /* The refresher calls the runtime plugins: it stops before they go. */
  tasks_shutdown (d->tasks);
  pthread_mutex_lock (&waits_lock);
  for (size_t i = 0; i < ARRAY_SIZE (waits); i++)
    if (waits[i])
      atomic_store (&waits[i]->ctx.cancelled, 1);
  struct timespec until;
  clock_gettime (CLOCK_REALTIME, &until);
  until.tv_sec += 2;
  while (nwaits > 0 && pthread_cond_timedwait (&waits_cond, &waits_lock, &until) == 0)
    ;
  if (nwaits > 0)
    log_warning ("tasks: %zu Wait call(s) still blocked in their runtime at shutdown", nwaits);
  pthread_mutex_unlock (&waits_lock);
}

/* ---- registration -------------------------------------------------------- */

static const struct
{
  const char *name;
  const ProtobufCMessageDescriptor *desc;
} methods_def[T_NOPS] = {
  [T_CREATE] = { "Create", &containerd__services__tasks__v1__create_task_request__descriptor },
  [T_START] = { "Start", &containerd__services__tasks__v1__start_request__descriptor },
  [T_DELETE] = { "Delete", &containerd__services__tasks__v1__delete_task_request__descriptor },
  [T_DELETE_PROCESS] = { "DeleteProcess", &containerd__services__tasks__v1__delete_process_request__descriptor },
  [T_GET] = { "Get", &containerd__services__tasks__v1__get_request__descriptor },
  [T_LIST] = { "List", &containerd__services__tasks__v1__list_tasks_request__descriptor },
  [T_KILL] = { "Kill", &containerd__services__tasks__v1__kill_request__descriptor },
  [T_EXEC] = { "Exec", &containerd__services__tasks__v1__exec_process_request__descriptor },
  [T_RESIZE] = { "ResizePty", &containerd__services__tasks__v1__resize_pty_request__descriptor },
  [T_CLOSE_IO] = { "CloseIO", &containerd__services__tasks__v1__close_iorequest__descriptor },
  [T_PAUSE] = { "Pause", &containerd__services__tasks__v1__pause_task_request__descriptor },
  [T_RESUME] = { "Resume", &containerd__services__tasks__v1__resume_task_request__descriptor },
  [T_LIST_PIDS] = { "ListPids", &containerd__services__tasks__v1__list_pids_request__descriptor },
  [T_CHECKPOINT] = { "Checkpoint", &containerd__services__tasks__v1__checkpoint_task_request__descriptor },
  [T_UPDATE] = { "Update", &containerd__services__tasks__v1__update_task_request__descriptor },
  [T_METRICS] = { "Metrics", &containerd__services__tasks__v1__metrics_request__descriptor },
  [T_WAIT] = { "Wait", &containerd__services__tasks__v1__wait_request__descriptor },
};

struct task_method
{
  struct daemon *d;
  enum task_op op;
};

static void
task_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  const struct task_method *tm = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  ProtobufCMessage *req = svc_unpack (call, methods_def[tm->op].desc, msg, len);
  if (req == NULL)
    return;
  struct task_job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->ns = strdup (ns)) == NULL)
    {
      free (j);
      protobuf_c_message_free_unpacked (req, NULL);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  j->d = tm->d;
  j->op = tm->op;
  j->req = req;
  svc_defer (tm->d, call, task_work, task_reply, task_job_free, j);
}

int
service_tasks_register (struct daemon *d, berth_error **err)
{
  static struct task_method methods[T_NOPS];
  for (size_t i = 0; i < T_NOPS; i++)
    {
      methods[i] = (struct task_method){ .d = d, .op = (enum task_op)i };
      char path[96];
      snprintf (path, sizeof path, "/containerd.services.tasks.v1.Tasks/%s", methods_def[i].name);
      struct grpc_method m = {
        .path = path,
        .kind = GRPC_UNARY,
        .on_message = i == T_WAIT ? wait_handle : task_handle,
        .on_cancel = i == T_WAIT ? wait_cancel : svc_on_cancel,
        .data = i == T_WAIT ? (void *)d : (void *)&methods[i],
      };
      int r = grpc_server_register (d->server, &m);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", path);
    }
  return 0;
}
