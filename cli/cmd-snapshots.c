/* berth snapshots: the containerd Snapshots service, as ctr's `snapshots`
 * (ls, info, usage, rm, mounts).  --snapshotter picks the snapshotter
 * (default $BERTH_SNAPSHOTTER, else overlayfs, as ctr's default). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "helpers.h"
#include "table.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

#define SNAPSHOTS_SERVICE "/containerd.services.snapshots.v1.Snapshots/"
#define DEFAULT_SNAPSHOTTER "overlayfs"

typedef Containerd__Services__Snapshots__V1__Info info_t;

enum
{
  OPT_SNAPSHOTTER = 0x100,
};

static const struct option ls_options[] = {
  { "snapshotter", required_argument, NULL, OPT_SNAPSHOTTER },
  { "quiet", no_argument, NULL, 'q' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const struct option common_options[] = {
  { "snapshotter", required_argument, NULL, OPT_SNAPSHOTTER },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const struct option rm_options[] = {
  { "snapshotter", required_argument, NULL, OPT_SNAPSHOTTER },
  { NULL, 0, NULL, 0 },
};

static const char *
default_snapshotter (void)
{
  const char *s = getenv ("BERTH_SNAPSHOTTER");
  return s && *s ? s : DEFAULT_SNAPSHOTTER;
}

/* ctr's spelling of snapshots.Kind. */
static const char *
kind_name (Containerd__Services__Snapshots__V1__Kind k)
{
  switch (k)
    {
    case CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__VIEW: return "View";
    case CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__ACTIVE: return "Active";
    case CONTAINERD__SERVICES__SNAPSHOTS__V1__KIND__COMMITTED: return "Committed";
    default: return "Unknown";
    }
}

/* Options every subcommand shares; returns -1 on a usage error. */
struct common
{
  const char *snapshotter;
  enum cli_format format;
  bool quiet;
};

static int
parse_common (struct cli *cli, int argc, char **argv, struct common *o)
{
  *o = (struct common){ .snapshotter = default_snapshotter (), .format = CLI_FORMAT_TABLE };
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case OPT_SNAPSHOTTER: o->snapshotter = optarg; break;
      case 'q': o->quiet = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &o->format) < 0)
          return -1;
        break;
      default: return -1;
      }
  return 0;
}

static json_object *
info_json (const info_t *in)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "name", json_object_new_string (in->name ? in->name : ""));
  json_object_object_add (o, "parent", json_object_new_string (in->parent ? in->parent : ""));
  json_object_object_add (o, "kind", json_object_new_string (kind_name (in->kind)));
  json_object_object_add (o, "created", timestamp_json (in->created_at));
  json_object_object_add (o, "updated", timestamp_json (in->updated_at));
  json_object_object_add (o, "labels", pb_labels_json ((void **) in->labels, in->n_labels));
  return o;
}

/* ---- List (server stream) -------------------------------------------------- */

struct list_acc
{
  json_object *array; /* every info as JSON; the table is built from it */
};

static int
list_on_message (const ProtobufCMessage *msg, void *data, berth_error **err)
{
  struct list_acc *acc = data;
  const Containerd__Services__Snapshots__V1__ListSnapshotsResponse *lr = (const void *) msg;
  for (size_t i = 0; i < lr->n_info; i++)
    if (json_object_array_add (acc->array, info_json (lr->info[i])) < 0)
      return berth_error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  return 0;
}

static int
list_all (struct cli *cli, const char *snapshotter, int nfilters, char **filters, json_object **ret,
          berth_error **err)
{
  grpc_client *client = cli_client (cli);
  if (client == NULL)
    return BERTH_E_UNAVAILABLE;
  Containerd__Services__Snapshots__V1__ListSnapshotsRequest req
      = CONTAINERD__SERVICES__SNAPSHOTS__V1__LIST_SNAPSHOTS_REQUEST__INIT;
  req.snapshotter = (char *) snapshotter;
  req.n_filters = (size_t) nfilters;
  req.filters = filters;
  struct grpc_client_md md[] = { { "containerd-namespace", cli->ns } };
  struct list_acc acc = { .array = json_object_new_array () };
  int r = grpc_client_server_stream (client, SNAPSHOTS_SERVICE "List", md, ARRAY_SIZE (md), &req.base,
                                     &containerd__services__snapshots__v1__list_snapshots_response__descriptor,
                                     list_on_message, &acc, err);
  if (r < 0)
    {
      json_object_put (acc.array);
      return r;
    }
  *ret = acc.array;
  return 0;
}

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v = NULL;
  return json_object_object_get_ex (o, key, &v) ? json_object_get_string (v) : "";
}

static int
ls_run (struct cli *cli, int argc, char **argv)
{
  struct common o;
  if (parse_common (cli, argc, argv, &o) < 0)
    return CLI_EXIT_USAGE;
  _cleanup_error_ berth_error *err = NULL;
  json_object *all = NULL;
  if (list_all (cli, o.snapshotter, argc - optind, argv + optind, &all, &err) < 0)
    return err ? cli_fail (cli, err, "listing snapshots of %s", o.snapshotter) : CLI_EXIT_FAIL;
  size_t n = json_object_array_length (all);
  int ret = CLI_EXIT_OK;
  if (o.format == CLI_FORMAT_JSON)
    {
      cli_print_json (all);
      return CLI_EXIT_OK;
    }
  if (o.quiet)
    for (size_t i = 0; i < n; i++)
      puts (jstr (json_object_array_get_idx (all, i), "name"));
  else
    {
      _cleanup_(table_freep) table *t = table_new ("KEY", "PARENT", "KIND", NULL);
      if (t == NULL)
        ret = cli_fail (cli, NULL, "out of memory");
      for (size_t i = 0; t && i < n && ret == CLI_EXIT_OK; i++)
        {
          json_object *e = json_object_array_get_idx (all, i);
          if (table_add (t, jstr (e, "name"), jstr (e, "parent"), jstr (e, "kind"), NULL) < 0)
            ret = cli_fail (cli, NULL, "out of memory");
        }
      if (t && ret == CLI_EXIT_OK)
        {
          table_sort (t, 0);
          table_print (t, stdout);
        }
    }
  json_object_put (all);
  return ret;
}

/* ---- Stat ------------------------------------------------------------------ */

static int
info_run (struct cli *cli, int argc, char **argv)
{
  struct common o;
  if (parse_common (cli, argc, argv, &o) < 0)
    return CLI_EXIT_USAGE;
  if (optind >= argc)
    return cli_usage_error (cli, "a snapshot key is needed");
  json_object *a = json_object_new_array ();
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      Containerd__Services__Snapshots__V1__StatSnapshotRequest req
          = CONTAINERD__SERVICES__SNAPSHOTS__V1__STAT_SNAPSHOT_REQUEST__INIT;
      req.snapshotter = (char *) o.snapshotter;
      req.key = argv[i];
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      if (cli_unary (cli, SNAPSHOTS_SERVICE "Stat", &req.base,
                     &containerd__services__snapshots__v1__stat_snapshot_response__descriptor, &resp, &err)
          < 0)
        {
          ret = cli_call_failed (cli, err, "snapshot %s", argv[i]);
          continue;
        }
      Containerd__Services__Snapshots__V1__StatSnapshotResponse *sr = (void *) resp;
      if (sr->info)
        json_object_array_add (a, info_json (sr->info));
      protobuf_c_message_free_unpacked (resp, NULL);
    }
  /* One object for one key (as ctr), an array for several. */
  if (json_object_array_length (a) == 1 && argc - optind == 1)
    {
      json_object *one = json_object_get (json_object_array_get_idx (a, 0));
      json_object_put (a);
      cli_print_json (one);
    }
  else if (json_object_array_length (a) > 0)
    cli_print_json (a);
  else
    json_object_put (a);
  return ret;
}

/* ---- Usage ----------------------------------------------------------------- */

static int
usage_run (struct cli *cli, int argc, char **argv)
{
  struct common o;
  if (parse_common (cli, argc, argv, &o) < 0)
    return CLI_EXIT_USAGE;
  _cleanup_error_ berth_error *lerr = NULL;
  json_object *keys = json_object_new_array ();
  if (optind < argc)
    for (int i = optind; i < argc; i++)
      json_object_array_add (keys, json_object_new_string (argv[i]));
  else
    {
      /* Every snapshot, as ctr's `snapshots usage` without a key. */
      json_object *all = NULL;
      if (list_all (cli, o.snapshotter, 0, NULL, &all, &lerr) < 0)
        {
          json_object_put (keys);
          return lerr ? cli_fail (cli, lerr, "listing snapshots of %s", o.snapshotter) : CLI_EXIT_FAIL;
        }
      for (size_t i = 0; i < json_object_array_length (all); i++)
        json_object_array_add (keys, json_object_new_string (jstr (json_object_array_get_idx (all, i), "name")));
      json_object_put (all);
    }
  int ret = CLI_EXIT_OK;
  json_object *a = json_object_new_array ();
  _cleanup_(table_freep) table *t = table_new ("KEY", "SIZE", "INODES", NULL);
  for (size_t i = 0; t && i < json_object_array_length (keys); i++)
    {
      const char *key = json_object_get_string (json_object_array_get_idx (keys, i));
      Containerd__Services__Snapshots__V1__UsageRequest req = CONTAINERD__SERVICES__SNAPSHOTS__V1__USAGE_REQUEST__INIT;
      req.snapshotter = (char *) o.snapshotter;
      req.key = (char *) key;
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      if (cli_unary (cli, SNAPSHOTS_SERVICE "Usage", &req.base,
                     &containerd__services__snapshots__v1__usage_response__descriptor, &resp, &err)
          < 0)
        {
          ret = cli_call_failed (cli, err, "usage of snapshot %s", key);
          if (err == NULL)
            break;
          continue;
        }
      Containerd__Services__Snapshots__V1__UsageResponse *ur = (void *) resp;
      json_object *e = json_object_new_object ();
      json_object_object_add (e, "key", json_object_new_string (key));
      json_object_object_add (e, "size", json_object_new_int64 (ur->size));
      json_object_object_add (e, "inodes", json_object_new_int64 (ur->inodes));
      json_object_array_add (a, e);
      char size[HUMAN_SIZE_MAX], inodes[32];
      snprintf (inodes, sizeof inodes, "%lld", (long long) ur->inodes);
      if (table_add (t, key, human_size (size, ur->size), inodes, NULL) < 0)
        ret = cli_fail (cli, NULL, "out of memory");
      protobuf_c_message_free_unpacked (resp, NULL);
    }
  if (t == NULL)
    ret = cli_fail (cli, NULL, "out of memory");
  else if (o.format == CLI_FORMAT_JSON)
    {
      cli_print_json (a);
      a = NULL;
    }
  else
    table_print (t, stdout);
  json_object_put (a);
  json_object_put (keys);
  return ret;
}

/* ---- Remove ---------------------------------------------------------------- */

static int
rm_run (struct cli *cli, int argc, char **argv)
{
  struct common o;
  if (parse_common (cli, argc, argv, &o) < 0)
    return CLI_EXIT_USAGE;
  if (optind >= argc)
    return cli_usage_error (cli, "a snapshot key is needed");
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      Containerd__Services__Snapshots__V1__RemoveSnapshotRequest req
          = CONTAINERD__SERVICES__SNAPSHOTS__V1__REMOVE_SNAPSHOT_REQUEST__INIT;
      req.snapshotter = (char *) o.snapshotter;
      req.key = argv[i];
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      int r = cli_unary (cli, SNAPSHOTS_SERVICE "Remove", &req.base, &google__protobuf__empty__descriptor, &resp,
                         &err);
      if (r < 0)
        {
          ret = cli_call_failed (cli, err, "removing snapshot %s", argv[i]);
          if (err == NULL)
            break;
          continue;
        }
      protobuf_c_message_free_unpacked (resp, NULL);
    }
  return ret;
}

/* ---- Mounts ---------------------------------------------------------------- */

/* ctr snapshots mounts prints one `mount` command per mount. */
static int
mounts_run (struct cli *cli, int argc, char **argv)
{
  struct common o;
  if (parse_common (cli, argc, argv, &o) < 0)
    return CLI_EXIT_USAGE;
  if (argc - optind != 2)
    return cli_usage_error (cli, "a target directory and a snapshot key are needed");
  const char *target = argv[optind], *key = argv[optind + 1];
  Containerd__Services__Snapshots__V1__MountsRequest req = CONTAINERD__SERVICES__SNAPSHOTS__V1__MOUNTS_REQUEST__INIT;
  req.snapshotter = (char *) o.snapshotter;
  req.key = (char *) key;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, SNAPSHOTS_SERVICE "Mounts", &req.base,
                 &containerd__services__snapshots__v1__mounts_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "mounts of snapshot %s", key);
  Containerd__Services__Snapshots__V1__MountsResponse *mr = (void *) resp;
  if (o.format == CLI_FORMAT_JSON)
    {
      json_object *a = json_object_new_array ();
      for (size_t i = 0; i < mr->n_mounts; i++)
        {
          const Containerd__Types__Mount *m = mr->mounts[i];
          json_object *e = json_object_new_object ();
          json_object_object_add (e, "type", json_object_new_string (m->type ? m->type : ""));
          json_object_object_add (e, "source", json_object_new_string (m->source ? m->source : ""));
          json_object *opts = json_object_new_array ();
          for (size_t k = 0; k < m->n_options; k++)
            json_object_array_add (opts, json_object_new_string (m->options[k]));
          json_object_object_add (e, "options", opts);
          json_object_array_add (a, e);
        }
      cli_print_json (a);
    }
  else
    for (size_t i = 0; i < mr->n_mounts; i++)
      {
        const Containerd__Types__Mount *m = mr->mounts[i];
        printf ("mount -t %s %s %s", m->type, m->source, target);
        for (size_t k = 0; k < m->n_options; k++)
          printf ("%s%s", k == 0 ? " -o " : ",", m->options[k]);
        putchar ('\n');
      }
  protobuf_c_message_free_unpacked (resp, NULL);
  return CLI_EXIT_OK;
}

#define SNAPSHOTTER_HELP "      --snapshotter NAME  the snapshotter (default $BERTH_SNAPSHOTTER, else overlayfs)\n"

static const char *const ls_aliases[] = { "list", NULL };
static const char *const rm_aliases[] = { "remove", "delete", NULL };

static const struct cli_command snapshots_commands[] = {
  {
    .name = "info",
    .args = "[OPTIONS] KEY...",
    .summary = "Show a snapshot's kind, parent, times and labels (JSON)",
    .help = SNAPSHOTTER_HELP,
    .shortopts = "f:",
    .options = common_options,
    .run = info_run,
  },
  {
    .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS] [FILTER...]",
    .summary = "List snapshots",
    .help = SNAPSHOTTER_HELP "  -q, --quiet           print only the keys\n"
                             "      --format FORMAT   table (default) or json\n",
    .shortopts = "qf:",
    .options = ls_options,
    .run = ls_run,
  },
  {
    .name = "mounts",
    .args = "[OPTIONS] TARGET KEY",
    .summary = "Print the mount commands that mount a snapshot on TARGET",
    .help = SNAPSHOTTER_HELP "      --format FORMAT   text (default) or json\n",
    .shortopts = "f:",
    .options = common_options,
    .run = mounts_run,
  },
  {
    .name = "rm",
    .aliases = rm_aliases,
    .args = "[OPTIONS] KEY...",
    .summary = "Remove snapshots (refused while a snapshot has children)",
    .help = SNAPSHOTTER_HELP,
    .options = rm_options,
    .run = rm_run,
  },
  {
    .name = "usage",
    .args = "[OPTIONS] [KEY...]",
    .summary = "Show the disk usage (bytes and inodes) of snapshots (all when no key is given)",
    .help = SNAPSHOTTER_HELP "      --format FORMAT   table (default) or json\n",
    .shortopts = "f:",
    .options = common_options,
    .run = usage_run,
  },
  { 0 },
};

static const char *const snapshots_aliases[] = { "snapshot", "snap", NULL };

const struct cli_group cli_group_snapshots = {
  .name = "snapshots",
  .aliases = snapshots_aliases,
  .summary = "Manage snapshots (unpacked layers and container root filesystems)",
  .commands = snapshots_commands,
};
