/* The events exchange behind containerd.services.events.v1.Events.
 *
 * events_publish() may be called from any thread: the event is packed into
 * an Envelope on the caller's thread and handed to the loop, which sends it
 * to every subscriber whose filters match (containerd filter syntax over
 * the envelope's `topic` and `namespace`).  A subscriber that reads too
 * slowly loses events rather than growing the daemon's memory: its send
 * queue is bounded by the gRPC server (grpc_call_send answers EXHAUSTED),
 * and the drop is logged once per subscriber.
 *
 * The event's type URL is its protobuf full name
 * ("containerd.services.images.v1.ImageCreate"), which is what ctr's typeurl
 * expects for containerd's own events.
 */
#ifndef BERTH_CORE_EVENTS_H
#define BERTH_CORE_EVENTS_H

#include <stdbool.h>
#include <protobuf-c/protobuf-c.h>

#include "daemon.h"

typedef struct events events;

events *events_new (struct daemon *d);
void events_free (events *e);

/* Any thread.  ns may be NULL (no namespace). */
void events_publish (events *e, const char *ns, const char *topic, const ProtobufCMessage *event);
/* Any thread: an event given as NULL-terminated key, value string pairs
 * (the plugin ABI's host->publish form, also used by the task manager),
 * mapped to containerd's message for the topic: /tasks/create, /tasks/start,
 * /tasks/exit, /tasks/delete, /tasks/exec-added, /tasks/exec-started,
 * /tasks/paused, /tasks/resumed, /tasks/oom (api/events/task.proto),
 * /containers/create, /containers/update, /containers/delete
 * (container.proto; "labels.<k>" fields become labels).  Other topics are
 * dropped with BERTH_E_NOTSUP. */
int events_publish_fields (events *e, const char *ns, const char *topic, const char *const *fields);
/* The value of key in NULL-terminated key, value pairs (a plugin's
 * publish fields); NULL when absent. */
const char *events_field (const char *const *fields, const char *key);
/* Cheap check, any thread: skip building events nobody listens to. */
bool events_has_subscribers (const events *e);

int service_events_register (struct daemon *d, berth_error **err);

#endif
