/* containerd.services.version.v1.Version */
#include <config.h>

#include "api/service-util.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.pb-c.h"

#ifndef BERTH_REVISION
#define BERTH_REVISION "unknown"
#endif

static void
version_version (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  Containerd__Services__Version__V1__VersionResponse resp = CONTAINERD__SERVICES__VERSION__V1__VERSION_RESPONSE__INIT;
  resp.version = (char *) PACKAGE_VERSION;
  resp.revision = (char *) BERTH_REVISION;
  grpc_call_send (call, &resp.base);
  grpc_call_finish (call, 0, NULL);
}

int
service_version_register (struct daemon *d, berth_error **err)
{
  static const struct grpc_method m = {
    .path = "/containerd.services.version.v1.Version/Version",
    .kind = GRPC_UNARY,
    .on_message = version_version,
  };
  int r = grpc_server_register (d->server, &m);
  if (r < 0)
    return berth_error_set (err, r, 0, "registering %s", m.path);
  return 0;
}
