/* containerd.services.tasks.v1.Tasks on the task manager (core/tasks.h).
 * Every method runs on the worker pool (runtime calls block on the shim);
 * Wait runs on a thread of its own, since it blocks until the process
 * exits and would otherwise hold a worker for that long: the client going
 * away cancels its context and the reply is dropped.
 *
 * Not implemented: Checkpoint (no CRIU support), Metrics (containerd's
 * answer is a cgroups stats protobuf — io.containerd.cgroups.v1.Metrics —
 * which berth does not build yet; the runtime's JSON statistics are
 * available to berth's own CLI through the plugin's stats call). */
#include <config.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/service-pb.h"
#include "api/service-util.h"
#include "cleanup.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "log.h"
#include "tasks.h"

#define JSON_TYPE_PROCESS "types.containerd.io/opencontainers/runtime-spec/1/Process"
#define JSON_TYPE_RESOURCES "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

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
    free (j->items[i].id);
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
        break;
      }
    case T_LIST: j->r = tasks_list (t, j->ns, collect_task, j, err); break;
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
    case T_METRICS:
      j->r = berth_error_set (err, BERTH_E_NOTSUP, 0,
                              "task metrics are not supported yet (berth does not build containerd's cgroups "
                              "metrics messages)");
      break;
    case T_WAIT:
    case T_NOPS: break;
    }
  if (j->r < 0 && j->err == NULL)
    berth_error_set (&j->err, j->r, 0, "tasks");
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
        grpc_call_send (call, &resp.base);
        break;
      }
    case T_LIST:
      {
        Containerd__Services__Tasks__V1__ListTasksResponse resp
            = CONTAINERD__SERVICES__TASKS__V1__LIST_TASKS_RESPONSE__INIT;
        resp.tasks = pb_alloc (a, (j->n + 1) * sizeof *resp.tasks);
        for (size_t i = 0; i < j->n; i++)
          resp.tasks[i] = process_to_pb (a, j->items[i].id, j->items[i].id, &j->items[i].st);
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
