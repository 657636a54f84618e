/* The daemon's state, shared by the service handlers.  Owned by main();
 * everything in it lives until shutdown. */
#ifndef BERTH_CORE_DAEMON_H
#define BERTH_CORE_DAEMON_H

#include <stdint.h>

#include "api/grpc-server.h"
#include "config/config.h"
#include "metadata/meta.h"
#include "registry.h"
#include "util/loop.h"
#include "util/workers.h"

struct events;
struct tasks;

struct daemon
{
  struct berth_config *cfg;
  registry *reg;
  meta *meta;
  loop *loop;
  workers *workers;
  grpc_server *server;
  struct events *events; /* core/events.h */
  struct tasks *tasks;   /* core/tasks.h */
  char uuid[40];
  int64_t started_at;
};

/* Services: each registers its methods on d->server. */
int service_version_register (struct daemon *d, berth_error **err);
int service_introspection_register (struct daemon *d, berth_error **err);
int service_namespaces_register (struct daemon *d, berth_error **err);
int service_content_register (struct daemon *d, berth_error **err);
int service_images_register (struct daemon *d, berth_error **err);
int service_leases_register (struct daemon *d, berth_error **err);
int service_pull_register (struct daemon *d, berth_error **err);
int service_gc_register (struct daemon *d, berth_error **err);
int service_snapshots_register (struct daemon *d, berth_error **err);
int service_diff_register (struct daemon *d, berth_error **err);
int service_containers_register (struct daemon *d, berth_error **err);
int service_tasks_register (struct daemon *d, berth_error **err);
/* Cancel the Wait calls still blocked in a runtime plugin (up to 2 s),
 * before the plugins are finalised. */
void service_tasks_shutdown (struct daemon *d);
/* service_events_register is in core/events.h. */

#endif
