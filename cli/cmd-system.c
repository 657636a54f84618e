/* berth fsck [--repair] and berth system df (berth.services.v1.System). */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "berth/services/v1/system.pb-c.h"
#include "cleanup.h"
#include "cli.h"
#include "helpers.h"
#include "table.h"

/* fsck's exit status, for scripts: 0 clean (or, with --repair, everything
 * repaired or quarantined), 1 problems left, 2 the check itself failed. */
#define FSCK_EXIT_PROBLEMS 1
#define FSCK_EXIT_ERROR 2

static const struct option fsck_options[] = {
  { "repair", no_argument, NULL, 'r' },
  { "no-digests", no_argument, NULL, 'D' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static int
fsck_run (struct cli *cli, int argc, char **argv)
{
  Berth__Services__V1__FsckRequest req = BERTH__SERVICES__V1__FSCK_REQUEST__INIT;
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'r': req.repair = true; break;
      case 'D': req.no_digests = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return FSCK_EXIT_ERROR;
        break;
      default: return FSCK_EXIT_ERROR;
      }
  if (optind < argc)
    {
      cli_usage_error (cli, "unexpected argument `%s`", argv[optind]);
      return FSCK_EXIT_ERROR;
    }
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *m = NULL;
  if (cli_unary (cli, "/berth.services.v1.System/Fsck", &req.base, &berth__services__v1__fsck_response__descriptor,
                 &m, &err)
      < 0)
    {
      cli_call_failed (cli, err, "fsck");
      return FSCK_EXIT_ERROR;
    }
  Berth__Services__V1__FsckResponse *resp = (void *) m;
  size_t unresolved = 0;
  for (size_t i = 0; i < resp->n_items; i++)
    unresolved += *resp->items[i]->action == '\0';
  if (format == CLI_FORMAT_JSON)
    {
      json_object *o = json_object_new_object (), *a = json_object_new_array ();
      for (size_t i = 0; i < resp->n_items; i++)
        {
          const Berth__Services__V1__FsckItem *it = resp->items[i];
          json_object *j = json_object_new_object ();
          json_object_object_add (j, "kind", json_object_new_string (it->kind));
          json_object_object_add (j, "namespace", json_object_new_string (it->namespace_));
          json_object_object_add (j, "id", json_object_new_string (it->id));
          json_object_object_add (j, "problem", json_object_new_string (it->problem));
          json_object_object_add (j, "action", json_object_new_string (it->action));
          json_object_object_add (j, "path", json_object_new_string (it->path));
          json_object_object_add (j, "size", json_object_new_int64 (it->size));
          json_object_array_add (a, j);
        }
      json_object_object_add (o, "repair", json_object_new_boolean (resp->repair));
      json_object_object_add (o, "items", a);
      json_object_object_add (o, "unresolved", json_object_new_int64 ((int64_t) unresolved));
      json_object_object_add (o, "blobs_checked", json_object_new_int64 (resp->blobs_checked));
      json_object_object_add (o, "records_checked", json_object_new_int64 (resp->records_checked));
      json_object_object_add (o, "snapshots_checked", json_object_new_int64 (resp->snapshots_checked));
      json_object_object_add (o, "files_checked", json_object_new_int64 (resp->files_checked));
      json_object_object_add (o, "quarantine", json_object_new_string (resp->quarantine));
      cli_print_json (o);
    }
  else
    {
      for (size_t i = 0; i < resp->n_items; i++)
        {
          const Berth__Services__V1__FsckItem *it = resp->items[i];
          printf ("%s %s%s%s: %s", it->kind, it->namespace_, *it->namespace_ ? "/" : "", it->id, it->problem);
          if (*it->action)
            printf ("; %s%s%s", it->action, *it->path ? " -> " : "", it->path);
          else
            printf ("; %s", resp->repair ? "NOT repaired" : "use --repair");
          putchar ('\n');
        }
      printf ("checked %lld blobs, %lld records, %lld snapshots, %lld files: %zu problem%s, %zu left\n",
              (long long) resp->blobs_checked, (long long) resp->records_checked,
              (long long) resp->snapshots_checked, (long long) resp->files_checked, resp->n_items,
              resp->n_items == 1 ? "" : "s", unresolved);
      if (*resp->quarantine)
        printf ("quarantine: %s\n", resp->quarantine);
    }
  protobuf_c_message_free_unpacked (m, NULL);
  return unresolved ? FSCK_EXIT_PROBLEMS : CLI_EXIT_OK;
}

static const struct option df_options[] = {
  { "verbose", no_argument, NULL, 'v' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const char *
size_cell (char *buf, int64_t v)
{
  return v < 0 ? "n/a" : human_size (buf, v);
}

static int
df_run (struct cli *cli, int argc, char **argv)
{
  Berth__Services__V1__DiskUsageRequest req = BERTH__SERVICES__V1__DISK_USAGE_REQUEST__INIT;
  enum cli_format format = CLI_FORMAT_TABLE;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'v': req.verbose = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind < argc)
    return cli_usage_error (cli, "unexpected argument `%s`", argv[optind]);
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *m = NULL;
  if (cli_unary (cli, "/berth.services.v1.System/DiskUsage", &req.base,
                 &berth__services__v1__disk_usage_response__descriptor, &m, &err)
      < 0)
    return cli_call_failed (cli, err, "disk usage");
  Berth__Services__V1__DiskUsageResponse *resp = (void *) m;
  if (format == CLI_FORMAT_JSON)
    {
      json_object *o = json_object_new_object (), *rows = json_object_new_array (), *items = json_object_new_array ();
      for (size_t i = 0; i < resp->n_rows; i++)
        {
          const Berth__Services__V1__DiskUsageRow *r = resp->rows[i];
          json_object *j = json_object_new_object ();
          json_object_object_add (j, "type", json_object_new_string (r->type));
          json_object_object_add (j, "name", json_object_new_string (r->name));
          json_object_object_add (j, "count", json_object_new_int64 (r->count));
          json_object_object_add (j, "active", json_object_new_int64 (r->active));
          json_object_object_add (j, "size", r->size < 0 ? NULL : json_object_new_int64 (r->size));
          json_object_object_add (j, "reclaimable", r->reclaimable < 0 ? NULL : json_object_new_int64 (r->reclaimable));
          json_object_array_add (rows, j);
        }
      for (size_t i = 0; i < resp->n_items; i++)
        {
          const Berth__Services__V1__DiskUsageItem *it = resp->items[i];
          json_object *j = json_object_new_object ();
          json_object_object_add (j, "type", json_object_new_string (it->type));
          json_object_object_add (j, "namespace", json_object_new_string (it->namespace_));
          json_object_object_add (j, "name", json_object_new_string (it->name));
          json_object_object_add (j, "size", json_object_new_int64 (it->size));
          json_object_object_add (j, "detail", json_object_new_string (it->detail));
          json_object_array_add (items, j);
        }
      json_object_object_add (o, "rows", rows);
      if (req.verbose)
        json_object_object_add (o, "items", items);
      else
        json_object_put (items);
      cli_print_json (o);
      protobuf_c_message_free_unpacked (m, NULL);
      return CLI_EXIT_OK;
    }
  char a[HUMAN_SIZE_MAX], b[HUMAN_SIZE_MAX];
  printf ("%-22s %8s %8s %12s %12s\n", "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE");
  for (size_t i = 0; i < resp->n_rows; i++)
    {
      const Berth__Services__V1__DiskUsageRow *r = resp->rows[i];
      char type[64];
      snprintf (type, sizeof type, "%s%s%s%s", r->type, *r->name ? " (" : "", r->name, *r->name ? ")" : "");
      if (r->size < 0)
        printf ("%-22s %8s %8s %12s %12s\n", type, "n/a", "n/a", "n/a", "n/a");
      else
        printf ("%-22s %8lld %8lld %12s %12s\n", type, (long long) r->count, (long long) r->active,
                size_cell (a, r->size), size_cell (b, r->reclaimable));
    }
  if (req.verbose && resp->n_items)
    {
      printf ("\n%-10s %-12s %-72s %12s  %s\n", "TYPE", "NAMESPACE", "NAME", "SIZE", "DETAIL");
      for (size_t i = 0; i < resp->n_items; i++)
        {
          const Berth__Services__V1__DiskUsageItem *it = resp->items[i];
          printf ("%-10s %-12s %-72s %12s  %s\n", it->type, *it->namespace_ ? it->namespace_ : "-", it->name,
                  human_size (a, it->size), it->detail);
        }
    }
  protobuf_c_message_free_unpacked (m, NULL);
  return CLI_EXIT_OK;
}

static const struct cli_command fsck_command = {
  .name = "fsck",
  .args = "[OPTIONS]",
  .summary = "check the store (metadata against blobs, snapshots, task state); exit 0 clean, 1 problems, 2 error",
  .help = "  -r, --repair          quarantine what is broken (under <root>/quarantine/) and drop records\n"
          "                        that point at nothing; exit 0 when everything was resolved\n"
          "  -D, --no-digests      sizes and existence only (skip hashing every blob)\n"
          "  --format table|json\n",
  .shortopts = "rDf:",
  .options = fsck_options,
  .run = fsck_run,
};

const struct cli_group cli_group_fsck = {
  .name = "fsck",
  .summary = "check and repair the store",
  .self = &fsck_command,
};

static const struct cli_command system_commands[] = {
  {
    .name = "df",
    .args = "[OPTIONS]",
    .summary = "Show what uses disk: images, containers, snapshots, content, ingests, quarantine",
    .help = "  -v, --verbose         list every image, container, snapshot, blob and ingest\n"
            "  --format table|json\n",
    .shortopts = "vf:",
    .options = df_options,
    .run = df_run,
  },
  {
    .name = "fsck",
    .args = "[OPTIONS]",
    .summary = "Same as `berth fsck`",
    .help = "  -r, --repair  -D, --no-digests  --format table|json\n",
    .shortopts = "rDf:",
    .options = fsck_options,
    .run = fsck_run,
  },
  { 0 },
};

const struct cli_group cli_group_system = {
  .name = "system",
  .summary = "Disk usage and store checks",
  .commands = system_commands,
};
