/* berth leases: the containerd Leases service, as ctr's `leases`.
 *
 * create makes the id on the client when none is given (containerd's
 * servers require one; ctr does the same) and sets containerd.io/gc.expire
 * from --expires (24h by default, 0 for a lease that never expires). */
#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cleanup.h"
#include "cli.h"
#include "helpers.h"
#include "table.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.pb-c.h"
#include "google/protobuf/empty.pb-c.h"

#define LEASES_SERVICE "/containerd.services.leases.v1.Leases/"
#define LABEL_GC_EXPIRE "containerd.io/gc.expire"

typedef Containerd__Services__Leases__V1__Lease lease_t;

enum
{
  OPT_ID = 0x100,
  OPT_EXPIRES,
  OPT_SYNC,
};

static const struct option ls_options[] = {
  { "quiet", no_argument, NULL, 'q' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const struct option create_options[] = {
  { "id", required_argument, NULL, OPT_ID },
  { "expires", required_argument, NULL, 'x' },
  { NULL, 0, NULL, 0 },
};

static const struct option rm_options[] = {
  { "sync", no_argument, NULL, OPT_SYNC },
  { NULL, 0, NULL, 0 },
};

static int
lease_cmp (const void *a, const void *b)
{
  const lease_t *const *la = a, *const *lb = b;
  return strcmp ((*la)->id, (*lb)->id);
}

static int
ls_run (struct cli *cli, int argc, char **argv)
{
  enum cli_format format = CLI_FORMAT_TABLE;
  bool quiet = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'q': quiet = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }
  Containerd__Services__Leases__V1__ListRequest req = CONTAINERD__SERVICES__LEASES__V1__LIST_REQUEST__INIT;
  req.n_filters = (size_t) (argc - optind);
  req.filters = argv + optind;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, LEASES_SERVICE "List", &req.base, &containerd__services__leases__v1__list_response__descriptor,
                 &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "listing leases");
  Containerd__Services__Leases__V1__ListResponse *lr = (void *) resp;
  if (lr->n_leases)
    qsort (lr->leases, lr->n_leases, sizeof *lr->leases, lease_cmp);
  int ret = CLI_EXIT_OK;
  if (quiet)
    for (size_t i = 0; i < lr->n_leases; i++)
      puts (lr->leases[i]->id);
  else if (format == CLI_FORMAT_JSON)
    {
      json_object *a = json_object_new_array ();
      for (size_t i = 0; i < lr->n_leases; i++)
        {
          const lease_t *l = lr->leases[i];
          json_object *o = json_object_new_object ();
          json_object_object_add (o, "id", json_object_new_string (l->id));
          json_object_object_add (o, "createdAt", timestamp_json (l->created_at));
          json_object_object_add (o, "labels", pb_labels_json ((void **) l->labels, l->n_labels));
          json_object_array_add (a, o);
        }
      cli_print_json (a);
    }
  else
    {
      time_t now = time (NULL);
      _cleanup_(table_freep) table *t = table_new ("ID", "CREATED", "LABELS", NULL);
      if (t == NULL)
        ret = cli_fail (cli, NULL, "out of memory");
      for (size_t i = 0; t && i < lr->n_leases && ret == CLI_EXIT_OK; i++)
        {
          const lease_t *l = lr->leases[i];
          char age[HUMAN_AGE_MAX];
          _cleanup_free_ char *labels = pb_labels_string ((void **) l->labels, l->n_labels);
          if (table_add (t, l->id, human_age (age, l->created_at, now), labels) < 0)
            ret = cli_fail (cli, NULL, "out of memory");
        }
      if (t && ret == CLI_EXIT_OK)
        table_print (t, stdout);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  return ret;
}

/* "<nanoseconds>-<4 url-safe base64 characters>", the shape of
 * containerd's leases.WithRandomID, so ids look alike whoever made them. */
static void
random_id (char *buf, size_t len)
{
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char r[3] = { 0 };
  if (getrandom (r, sizeof r, 0) != (ssize_t) sizeof r)
    {
      unsigned v = (unsigned) rand ();
      memcpy (r, &v, sizeof r);
    }
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  unsigned v = (unsigned) r[0] << 16 | (unsigned) r[1] << 8 | r[2];
  snprintf (buf, len, "%ld-%c%c%c%c", ts.tv_nsec, b64[(v >> 18) & 63], b64[(v >> 12) & 63], b64[(v >> 6) & 63],
            b64[v & 63]);
}

static int
create_run (struct cli *cli, int argc, char **argv)
{
  const char *id = NULL;
  long expires_ms = 24L * 3600 * 1000;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case OPT_ID: id = optarg; break;
      case 'x':
        expires_ms = cli_parse_duration_ms (optarg);
        if (expires_ms < 0)
          return cli_usage_error (cli, "bad duration `%s` for --expires (e.g. 30m, 24h, 0 for never)", optarg);
        break;
      default: return CLI_EXIT_USAGE;
      }
  char idbuf[48];
  if (id == NULL)
    {
      random_id (idbuf, sizeof idbuf);
      id = idbuf;
    }
  _cleanup_(pb_labels_free) struct pb_labels labels
      = { .entry_desc = &containerd__services__leases__v1__create_request__labels_entry__descriptor };
  if (expires_ms > 0)
    {
      char when[32];
      time_rfc3339 (when, time (NULL) + (expires_ms + 999) / 1000);
      if (pb_labels_add (&labels, LABEL_GC_EXPIRE, when) < 0)
        return cli_fail (cli, NULL, "out of memory");
    }
  if (pb_labels_add_args (&labels, argc - optind, argv + optind) < 0)
    return cli_fail (cli, NULL, "out of memory");

  Containerd__Services__Leases__V1__CreateRequest req = CONTAINERD__SERVICES__LEASES__V1__CREATE_REQUEST__INIT;
  req.id = (char *) id;
  req.n_labels = labels.n;
  req.labels = (Containerd__Services__Leases__V1__CreateRequest__LabelsEntry **) labels.entries;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, LEASES_SERVICE "Create", &req.base,
                 &containerd__services__leases__v1__create_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "creating lease `%s`", id);
  Containerd__Services__Leases__V1__CreateResponse *cr = (void *) resp;
  puts (cr->lease && cr->lease->id ? cr->lease->id : id);
  protobuf_c_message_free_unpacked (resp, NULL);
  return CLI_EXIT_OK;
}

static int
rm_run (struct cli *cli, int argc, char **argv)
{
  bool sync = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case OPT_SYNC: sync = true; break;
      default: return CLI_EXIT_USAGE;
      }
  if (optind >= argc)
    return cli_usage_error (cli, "a lease id is needed");
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      Containerd__Services__Leases__V1__DeleteRequest req = CONTAINERD__SERVICES__LEASES__V1__DELETE_REQUEST__INIT;
      req.id = argv[i];
      req.sync = sync && i == argc - 1;
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      int r = cli_unary (cli, LEASES_SERVICE "Delete", &req.base, &google__protobuf__empty__descriptor, &resp, &err);
      if (r < 0 && err == NULL)
        return CLI_EXIT_FAIL;
      if (r == BERTH_E_NOTFOUND)
        {
          ret = cli_fail (cli, NULL, "lease `%s`: not found", argv[i]);
          continue;
        }
      if (r < 0)
        {
          ret = cli_call_failed (cli, err, "removing lease `%s`", argv[i]);
          continue;
        }
      protobuf_c_message_free_unpacked (resp, NULL);
      puts (argv[i]);
    }
  return ret;
}

static const char *const ls_aliases[] = { "list", NULL };
static const char *const rm_aliases[] = { "delete", "remove", NULL };

static const struct cli_command leases_commands[] = {
  {
    .name = "create",
    .args = "[OPTIONS] [KEY=VALUE...]",
    .summary = "Create a lease (prints its id)",
    .help = "      --id ID           the lease's id (default: a random one)\n"
            "  -x, --expires DURATION  expire after this long, e.g. 30m or 24h (default 24h,\n"
            "                        0 = never); sets the containerd.io/gc.expire label\n",
    .shortopts = "x:",
    .options = create_options,
    .run = create_run,
  },
  {
    .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS] [FILTER...]",
    .summary = "List leases",
    .help = "  -q, --quiet           print only the ids\n"
            "      --format FORMAT   table (default) or json\n",
    .shortopts = "q",
    .options = ls_options,
    .run = ls_run,
  },
  {
    .name = "rm",
    .aliases = rm_aliases,
    .args = "[OPTIONS] ID...",
    .summary = "Remove leases (what they held goes with the next garbage collection)",
    .help = "      --sync            wait for the garbage collection after the last one\n",
    .options = rm_options,
    .run = rm_run,
    .complete = "__leases",
  },
  { 0 },
};

static const char *const leases_aliases[] = { "lease", NULL };

const struct cli_group cli_group_leases = {
  .name = "leases",
  .aliases = leases_aliases,
  .summary = "Manage leases (what keeps content from the garbage collector)",
  .commands = leases_commands,
};
