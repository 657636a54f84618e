#include <config.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/service-util.h"
#include "cleanup.h"
#include "events.h"
#include "filters.h"
#include "github.com/containerd/containerd/api/events/container.pb-c.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/api/services/events/v1/events.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "log.h"

typedef Containerd__Services__Events__V1__Envelope pb_envelope;

struct subscriber
{
  grpc_call *call;
  filter_set *filters;
  bool dropped; /* logged once */
  struct subscriber *next;
};

struct events
{
  struct daemon *d;
  struct subscriber *subs; /* loop thread only */
  atomic_int nsubs;
};

/* One packed envelope on its way to the loop. */
struct delivery
{
  events *e;
  char *topic;
  char *ns;
  uint8_t *frame;
  size_t len;
};

events *
events_new (struct daemon *d)
{
  events *e = calloc (1, sizeof *e);
  if (e)
    {
      e->d = d;
      atomic_init (&e->nsubs, 0);
    }
  return e;
}

void
events_free (events *e)
{
  if (e == NULL)
    return;
  for (struct subscriber *s = e->subs, *n; s; s = n)
    {
      n = s->next;
      filters_free (s->filters);
      free (s);
    }
  free (e);
}

bool
events_has_subscribers (const events *e)
{
  return e && atomic_load (&((events *) e)->nsubs) > 0;
}

struct envelope_view
{
  const char *topic;
  const char *ns;
};

static const char *
envelope_field (void *obj, const char *const *path, size_t n)
{
  const struct envelope_view *v = obj;
  if (n != 1)
    return NULL;
  if (strcmp (path[0], "topic") == 0)
    return v->topic;
  if (strcmp (path[0], "namespace") == 0)
    return v->ns;
  return NULL;
}

static void
deliver (void *data)
{
  struct delivery *dl = data;
  struct envelope_view v = { dl->topic, dl->ns ? dl->ns : "" };
  /* Progress ticks (berth's own /pull/progress, ten a second) go only to
   * subscribers that ask for them by filter: containerd's clients (ctr
   * events) do not know the type and would warn on each one. */
  bool opt_in = strncmp (dl->topic, "/pull/", 6) == 0;
  for (struct subscriber *s = dl->e->subs; s; s = s->next)
    {
      if (opt_in && filters_is_empty (s->filters))
        continue;
      if (!filters_match (s->filters, envelope_field, &v))
        continue;
      if (grpc_call_send_raw (s->call, dl->frame, dl->len) < 0 && !s->dropped)
        {
          s->dropped = true;
          log_warning ("events: a subscriber is not reading; dropping its events (first: %s)", dl->topic);
        }
    }
  free (dl->topic);
  free (dl->ns);
  free (dl->frame);
  free (dl);
}

static int
pack_envelope (const char *ns, const char *topic, const ProtobufCMessage *event, int64_t when_ns, uint8_t **ret,
               size_t *ret_len)
{
  size_t elen = protobuf_c_message_get_packed_size (event);
  _cleanup_free_ uint8_t *ebuf = malloc (elen ? elen : 1);
  if (ebuf == NULL)
    return BERTH_E_NOMEM;
  protobuf_c_message_pack (event, ebuf);
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  any.type_url = (char *) event->descriptor->name;
  any.value.data = ebuf;
  any.value.len = elen;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = when_ns / 1000000000;
  ts.nanos = (int32_t) (when_ns % 1000000000);
  pb_envelope env = CONTAINERD__SERVICES__EVENTS__V1__ENVELOPE__INIT;
  env.timestamp = &ts;
  env.namespace_ = (char *) (ns ? ns : "");
  env.topic = (char *) topic;
  env.event = &any;
  size_t len = protobuf_c_message_get_packed_size (&env.base);
  uint8_t *buf = malloc (len ? len : 1);
  if (buf == NULL)
    return BERTH_E_NOMEM;
  protobuf_c_message_pack (&env.base, buf);
  *ret = buf;
  *ret_len = len;
  return 0;
}

static int64_t
now_ns (void)
{
  struct timespec t;
  clock_gettime (CLOCK_REALTIME, &t);
  return (int64_t) t.tv_sec * 1000000000 + t.tv_nsec;
}

static void
post_frame (events *e, const char *ns, const char *topic, uint8_t *frame, size_t len)
{
  struct delivery *dl = calloc (1, sizeof *dl);
  if (dl == NULL || (dl->topic = strdup (topic)) == NULL || (ns && (dl->ns = strdup (ns)) == NULL))
    {
      if (dl)
        free (dl->topic);
      free (dl);
      free (frame);
      return;
    }
  dl->e = e;
  dl->frame = frame;
  dl->len = len;
  if (loop_post (e->d->loop, deliver, dl) < 0)
    {
      free (dl->topic);
      free (dl->ns);
      free (dl->frame);
      free (dl);
    }
}

void
events_publish (events *e, const char *ns, const char *topic, const ProtobufCMessage *event)
{
  if (!events_has_subscribers (e) || topic == NULL || event == NULL)
    return;
  uint8_t *frame = NULL;
  size_t len = 0;
  if (pack_envelope (ns, topic, event, now_ns (), &frame, &len) == 0)
    post_frame (e, ns, topic, frame, len);
}

/* ---- events given as strings (plugins, task manager) --------------------- */

const char *
events_field (const char *const *fields, const char *key)
{
  for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
    if (strcmp (fields[i], key) == 0)
      return fields[i + 1];
  return NULL;
}

static char *
field_str (const char *const *fields, const char *key)
{
  const char *v = events_field (fields, key);
  return (char *) (v ? v : "");
}

/* A decimal field; hostile text gives 0. */
static long long
field_num (const char *const *fields, const char *key)
{
  const char *v = events_field (fields, key);
  if (v == NULL || *v == '\0')
    return 0;
  char *end = NULL;
  errno = 0;
  long long n = strtoll (v, &end, 10);
  return errno || *end ? 0 : n;
}

static void
field_time (const char *const *fields, const char *key, Google__Protobuf__Timestamp *ts)
{
  long long t = field_num (fields, key);
  if (t < 0)
    t = 0;
  ts->seconds = t / 1000000000;
  ts->nanos = (int32_t) (t % 1000000000);
}

int
events_publish_fields (events *e, const char *ns, const char *topic, const char *const *fields)
{
  if (topic == NULL)
    return BERTH_E_INVALID;
  if (!events_has_subscribers (e))
    return 0;
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  if (strcmp (topic, "/tasks/exit") == 0)
    {
      Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
      ev.container_id = field_str (fields, "container_id");
      ev.id = field_str (fields, "id");
      if (*ev.id == '\0')
        ev.id = ev.container_id;
      ev.pid = (uint32_t) field_num (fields, "pid");
      ev.exit_status = (uint32_t) field_num (fields, "exit_status");
      field_time (fields, "exited_at", &ts);
      ev.exited_at = &ts;
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/delete") == 0)
    {
      Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
      ev.container_id = field_str (fields, "container_id");
      ev.id = field_str (fields, "id");
      ev.pid = (uint32_t) field_num (fields, "pid");
      ev.exit_status = (uint32_t) field_num (fields, "exit_status");
      field_time (fields, "exited_at", &ts);
      ev.exited_at = &ts;
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/create") == 0)
    {
      Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
      Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;
      ev.container_id = field_str (fields, "container_id");
      ev.bundle = field_str (fields, "bundle");
      ev.pid = (uint32_t) field_num (fields, "pid");
      io.stdin = field_str (fields, "stdin");
      io.stdout = field_str (fields, "stdout");
      io.stderr = field_str (fields, "stderr");
      io.terminal = field_num (fields, "terminal") != 0;
      ev.io = &io;
      ev.checkpoint = (char *) "";
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/start") == 0)
    {
      Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
      ev.container_id = field_str (fields, "container_id");
      ev.pid = (uint32_t) field_num (fields, "pid");
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/exec-added") == 0)
    {
      Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
      ev.container_id = field_str (fields, "container_id");
      ev.exec_id = field_str (fields, "exec_id");
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/exec-started") == 0)
    {
      Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
      ev.container_id = field_str (fields, "container_id");
      ev.exec_id = field_str (fields, "exec_id");
      ev.pid = (uint32_t) field_num (fields, "pid");
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/paused") == 0)
    {
      Containerd__Events__TaskPaused ev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
      ev.container_id = field_str (fields, "container_id");
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/resumed") == 0)
    {
      Containerd__Events__TaskResumed ev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
      ev.container_id = field_str (fields, "container_id");
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/tasks/oom") == 0)
    {
      Containerd__Events__TaskOOM ev = CONTAINERD__EVENTS__TASK_OOM__INIT;
      ev.container_id = field_str (fields, "container_id");
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/containers/create") == 0)
    {
      Containerd__Events__ContainerCreate ev = CONTAINERD__EVENTS__CONTAINER_CREATE__INIT;
      Containerd__Events__ContainerCreate__Runtime rt = CONTAINERD__EVENTS__CONTAINER_CREATE__RUNTIME__INIT;
      ev.id = field_str (fields, "id");
      ev.image = field_str (fields, "image");
      rt.name = field_str (fields, "runtime");
      ev.runtime = &rt;
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/containers/update") == 0)
    {
      Containerd__Events__ContainerUpdate ev = CONTAINERD__EVENTS__CONTAINER_UPDATE__INIT;
      ev.id = field_str (fields, "id");
      ev.image = field_str (fields, "image");
      ev.snapshot_key = field_str (fields, "snapshot_key");
      size_t n = 0;
      for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
        n += strncmp (fields[i], "labels.", 7) == 0;
      _cleanup_free_ Containerd__Events__ContainerUpdate__LabelsEntry *ents = calloc (n + 1, sizeof *ents);
      _cleanup_free_ Containerd__Events__ContainerUpdate__LabelsEntry **ptrs = calloc (n + 1, sizeof *ptrs);
      if (ents == NULL || ptrs == NULL)
        return BERTH_E_NOMEM;
      size_t k = 0;
      for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2)
        if (strncmp (fields[i], "labels.", 7) == 0)
          {
            Containerd__Events__ContainerUpdate__LabelsEntry init = CONTAINERD__EVENTS__CONTAINER_UPDATE__LABELS_ENTRY__INIT;
            ents[k] = init;
            ents[k].key = (char *) fields[i] + 7;
            ents[k].value = (char *) fields[i + 1];
            ptrs[k] = &ents[k];
            k++;
          }
      ev.labels = ptrs;
      ev.n_labels = k;
      events_publish (e, ns, topic, &ev.base);
    }
  else if (strcmp (topic, "/containers/delete") == 0)
    {
      Containerd__Events__ContainerDelete ev = CONTAINERD__EVENTS__CONTAINER_DELETE__INIT;
      ev.id = field_str (fields, "id");
      events_publish (e, ns, topic, &ev.base);
    }
  else
    return BERTH_E_NOTSUP;
  return 0;
}

/* ---- the service --------------------------------------------------------- */

static void
subscribe_cancel (grpc_call *call, void *data)
{
  events *e = data;
  for (struct subscriber **p = &e->subs; *p; p = &(*p)->next)
    if ((*p)->call == call)
      {
        struct subscriber *s = *p;
        *p = s->next;
        filters_free (s->filters);
        free (s);
        atomic_fetch_sub (&e->nsubs, 1);
        return;
      }
}

static void
subscribe_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  events *e = data;
  Containerd__Services__Events__V1__SubscribeRequest *req
      = svc_unpack (call, &containerd__services__events__v1__subscribe_request__descriptor, msg, len);
  if (req == NULL)
    return;
  _cleanup_error_ berth_error *err = NULL;
  filter_set *fs = NULL;
  int r = filters_parse ((const char *const *) req->filters, req->n_filters, &fs, &err);
  protobuf_c_message_free_unpacked (&req->base, NULL);
  if (r < 0)
    {
      svc_fail (call, err);
      return;
    }
  struct subscriber *s = calloc (1, sizeof *s);
  if (s == NULL)
    {
      filters_free (fs);
      grpc_call_finish (call, BERTH_E_NOMEM, "out of memory");
      return;
    }
  s->call = call;
  s->filters = fs;
  s->next = e->subs;
  e->subs = s;
  atomic_fetch_add (&e->nsubs, 1);
  /* The call stays open until the client goes away (subscribe_cancel). */
}

static void
publish_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  events *e = data;
  _cleanup_error_ berth_error *err = NULL;
  const char *ns = NULL;
  if (svc_namespace (call, &ns, &err) < 0)
    {
      svc_fail (call, err);
      return;
    }
  Containerd__Services__Events__V1__PublishRequest *req
      = svc_unpack (call, &containerd__services__events__v1__publish_request__descriptor, msg, len);
  if (req == NULL)
    return;
  if (req->topic == NULL || req->topic[0] != '/' || req->event == NULL)
    {
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_INVALID, "publish needs a topic starting with / and an event");
      return;
    }
  /* Re-wrap the client's Any as is: the daemon does not need to know its type. */
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  int64_t now = now_ns ();
  ts.seconds = now / 1000000000;
  ts.nanos = (int32_t) (now % 1000000000);
  Containerd__Services__Events__V1__Envelope env = CONTAINERD__SERVICES__EVENTS__V1__ENVELOPE__INIT;
  env.timestamp = &ts;
  env.namespace_ = (char *) ns;
  env.topic = req->topic;
  env.event = req->event;
  size_t flen = protobuf_c_message_get_packed_size (&env.base);
  uint8_t *frame = malloc (flen ? flen : 1);
  if (frame)
    {
      protobuf_c_message_pack (&env.base, frame);
      if (events_has_subscribers (e))
        post_frame (e, ns, req->topic, frame, flen);
      else
        free (frame);
    }
  protobuf_c_message_free_unpacked (&req->base, NULL);
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  grpc_call_send (call, &empty.base);
  grpc_call_finish (call, 0, NULL);
}

static void
forward_handle (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  events *e = data;
  Containerd__Services__Events__V1__ForwardRequest *req
      = svc_unpack (call, &containerd__services__events__v1__forward_request__descriptor, msg, len);
  if (req == NULL)
    return;
  if (req->envelope == NULL || req->envelope->topic == NULL || req->envelope->topic[0] != '/')
    {
      protobuf_c_message_free_unpacked (&req->base, NULL);
      grpc_call_finish (call, BERTH_E_INVALID, "forward needs an envelope with a topic starting with /");
      return;
    }
  size_t flen = protobuf_c_message_get_packed_size (&req->envelope->base);
  uint8_t *frame = malloc (flen ? flen : 1);
  if (frame)
    {
      protobuf_c_message_pack (&req->envelope->base, frame);
      if (events_has_subscribers (e))
        post_frame (e, req->envelope->namespace_, req->envelope->topic, frame, flen);
      else
        free (frame);
    }
  protobuf_c_message_free_unpacked (&req->base, NULL);
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  grpc_call_send (call, &empty.base);
  grpc_call_finish (call, 0, NULL);
}

int
service_events_register (struct daemon *d, berth_error **err)
{
  const struct grpc_method methods[] = {
    { .path = "/containerd.services.events.v1.Events/Subscribe", .kind = GRPC_SERVER_STREAM,
      .on_message = subscribe_handle, .on_cancel = subscribe_cancel, .data = d->events },
    { .path = "/containerd.services.events.v1.Events/Publish", .kind = GRPC_UNARY, .on_message = publish_handle,
      .data = d->events },
    { .path = "/containerd.services.events.v1.Events/Forward", .kind = GRPC_UNARY, .on_message = forward_handle,
      .data = d->events },
  };
  for (size_t i = 0; i < ARRAY_SIZE (methods); i++)
    {
      int r = grpc_server_register (d->server, &methods[i]);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", methods[i].path);
    }
  return 0;
}
