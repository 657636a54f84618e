/* berth version: the client's version and the server's (Version/Version,
 * plus the server UUID from Introspection/Server when it answers). */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.pb-c.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

static const struct option version_options[] = {
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static int
version_run (struct cli *cli, int argc, char **argv)
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
  if (optind < argc)
    return cli_usage_error (cli, "unexpected argument `%s`", argv[optind]);

  if (format == CLI_FORMAT_TABLE)
    printf ("Client:\n  Version:  %s\n\n", PACKAGE_VERSION);
  /* Print the client part before connecting, so that it shows even when
   * the daemon is down. */
  fflush (stdout);

  _cleanup_error_ berth_error *err = NULL;
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, "/containerd.services.version.v1.Version/Version", &empty.base,
                         &containerd__services__version__v1__version_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "getting the server version");
  Containerd__Services__Version__V1__VersionResponse *v = (void *) resp;

  /* The UUID is optional: older servers do not implement Server. */
  ProtobufCMessage *sresp = NULL;
  _cleanup_error_ berth_error *serr = NULL;
  const char *uuid = NULL;
  if (cli_unary (cli, "/containerd.services.introspection.v1.Introspection/Server", &empty.base,
                         &containerd__services__introspection__v1__server_response__descriptor, &sresp, &serr)
      == 0)
    uuid = ((Containerd__Services__Introspection__V1__ServerResponse *) sresp)->uuid;

  if (format == CLI_FORMAT_JSON)
    {
      json_object *o = json_object_new_object ();
      json_object *jc = json_object_new_object ();
      json_object_object_add (jc, "version", json_object_new_string (PACKAGE_VERSION));
      json_object_object_add (o, "client", jc);
      json_object *js = json_object_new_object ();
      json_object_object_add (js, "version", json_object_new_string (v->version));
      json_object_object_add (js, "revision", json_object_new_string (v->revision));
      if (uuid && *uuid)
        json_object_object_add (js, "uuid", json_object_new_string (uuid));
      json_object_object_add (o, "server", js);
      cli_print_json (o);
    }
  else
    {
      printf ("Server:\n  Version:  %s\n  Revision: %s\n", v->version, v->revision);
      if (uuid && *uuid)
        printf ("  UUID:     %s\n", uuid);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  if (sresp)
    protobuf_c_message_free_unpacked (sresp, NULL);
  return CLI_EXIT_OK;
}

static const struct cli_command version_command = {
  .name = "version",
  .args = "[OPTIONS]",
  .summary = "Show the client and server versions",
  .help = "      --format FORMAT   table (default) or json\n",
  .shortopts = "",
  .options = version_options,
  .run = version_run,
};

const struct cli_group cli_group_version = {
  .name = "version",
  .summary = "Show the client and server versions",
  .self = &version_command,
};
