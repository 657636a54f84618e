/* berth gc [--dry-run] and berth content explain DIGEST
 * (berth.services.v1.GC). */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "berth/services/v1/gc.pb-c.h"
#include "cleanup.h"
#include "cli.h"
#include "table.h"

static const struct option gc_options[] = {
  { "dry-run", no_argument, NULL, 'n' },
  { "all-namespaces", no_argument, NULL, 'A' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static int
gc_run (struct cli *cli, int argc, char **argv)
{
  Berth__Services__V1__CollectRequest req = BERTH__SERVICES__V1__COLLECT_REQUEST__INIT;
  enum cli_format format = CLI_FORMAT_TABLE;
  bool all = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'n': req.dry_run = true; break;
      case 'A': all = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind < argc)
    return cli_usage_error (cli, "unexpected argument `%s`", argv[optind]);
  req.namespace_ = all ? (char *) "" : (char *) cli->ns;

  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *m = NULL;
  if (cli_unary (cli, "/berth.services.v1.GC/Collect", &req.base, &berth__services__v1__collect_response__descriptor,
                 &m, &err)
      < 0)
    return cli_call_failed (cli, err, "garbage collection");
  Berth__Services__V1__CollectResponse *resp = (void *) m;
  if (format == CLI_FORMAT_JSON)
    {
      json_object *a = json_object_new_array ();
      for (size_t i = 0; i < resp->n_removed; i++)
        {
          const Berth__Services__V1__Removed *r = resp->removed[i];
          json_object *o = json_object_new_object ();
          json_object_object_add (o, "type", json_object_new_string (r->type));
          json_object_object_add (o, "id", json_object_new_string (r->id));
          json_object_object_add (o, "namespace", json_object_new_string (r->namespace_));
          json_object_object_add (o, "size", json_object_new_int64 (r->size));
          json_object_object_add (o, "reason", json_object_new_string (r->reason));
          json_object_array_add (a, o);
        }
      cli_print_json (a);
    }
  else
    {
      int64_t bytes = 0;
      for (size_t i = 0; i < resp->n_removed; i++)
        {
          const Berth__Services__V1__Removed *r = resp->removed[i];
          printf ("%s %s %s%s%s: %s\n", resp->dry_run ? "would remove" : "removed", r->type, r->id,
                  *r->namespace_ ? " in " : "", r->namespace_, r->reason);
          if (strcmp (r->type, "blob") == 0)
            bytes += r->size;
        }
      printf ("%zu item%s, %lld bytes of blobs %s\n", resp->n_removed, resp->n_removed == 1 ? "" : "s",
              (long long) bytes, resp->dry_run ? "would be freed (dry run)" : "freed");
    }
  protobuf_c_message_free_unpacked (m, NULL);
  return CLI_EXIT_OK;
}

int
berth_cmd_content_explain (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (optind + 1 != argc)
    return cli_usage_error (cli, "expected one digest");
  Berth__Services__V1__ExplainRequest req = BERTH__SERVICES__V1__EXPLAIN_REQUEST__INIT;
  req.digest = argv[optind];
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *m = NULL;
  if (cli_unary (cli, "/berth.services.v1.GC/Explain", &req.base, &berth__services__v1__explain_response__descriptor,
                 &m, &err)
      < 0)
    return cli_call_failed (cli, err, "explaining %s", req.digest);
  Berth__Services__V1__ExplainResponse *resp = (void *) m;
  fputs (resp->text, stdout);
  if (*resp->text && resp->text[strlen (resp->text) - 1] != '\n')
    putchar ('\n');
  protobuf_c_message_free_unpacked (m, NULL);
  return CLI_EXIT_OK;
}

static const struct cli_command gc_command = {
  .name = "gc",
  .args = "[OPTIONS]",
  .summary = "collect unreferenced content now, or list what would go and why",
  .help = "  -n, --dry-run         only list what would be removed, and why\n"
          "  -A, --all-namespaces  every namespace, not just --namespace\n"
          "  --format table|json\n",
  .shortopts = "nAf:",
  .options = gc_options,
  .run = gc_run,
};

const struct cli_group cli_group_gc = {
  .name = "gc",
  .summary = "garbage collection",
  .self = &gc_command,
};
