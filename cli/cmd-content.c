/* berth content: the containerd Content service, as ctr's `content`
 * commands (ls, get, rm, label, active), plus `fetch`, berthd's
 * daemon-side pull of content only (cli/cmd-pull.c).
 *
 * rm and label report a missing blob as "content `DIGEST`: not found" and
 * go on with the others, exiting 1 at the end. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "helpers.h"
#include "table.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"

#define CONTENT_SERVICE "/containerd.services.content.v1.Content/"

typedef Containerd__Services__Content__V1__Info info_t;
typedef Containerd__Services__Content__V1__Status status_t;

static const struct option ls_options[] = {
  { "quiet", no_argument, NULL, 'q' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const struct option active_options[] = {
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const struct option no_options[] = {
  { NULL, 0, NULL, 0 },
};

static int
info_cmp (const void *a, const void *b)
{
  const info_t *const *ia = a, *const *ib = b;
  return strcmp ((*ia)->digest, (*ib)->digest);
}

static json_object *
info_json (const info_t *in)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "digest", json_object_new_string (in->digest));
  json_object_object_add (o, "size", json_object_new_int64 (in->size));
  json_object_object_add (o, "createdAt", timestamp_json (in->created_at));
  json_object_object_add (o, "updatedAt", timestamp_json (in->updated_at));
  json_object_object_add (o, "labels", pb_labels_json ((void **) in->labels, in->n_labels));
  return o;
}

static int
content_error (struct cli *cli, int r, const berth_error *err, const char *verb, const char *digest)
{
  if (r == BERTH_E_NOTFOUND)
    return cli_fail (cli, NULL, "content `%s`: not found", digest);
  return cli_call_failed (cli, err, "%s content `%s`", verb, digest);
}

/* ---- ls ---- */

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

  /* List is a server stream: the service may split a long list over
   * several messages. */
  grpc_client *client = cli_client (cli);
  if (client == NULL)
    return CLI_EXIT_FAIL;
  Containerd__Services__Content__V1__ListContentRequest req
      = CONTAINERD__SERVICES__CONTENT__V1__LIST_CONTENT_REQUEST__INIT;
  req.n_filters = (size_t) (argc - optind);
  req.filters = argv + optind;
  struct grpc_client_md md[] = { { "containerd-namespace", cli->ns } };
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_grpc_client_call_ grpc_client_call *call = NULL;
  _cleanup_free_ info_t **infos = NULL;
  size_t n = 0;
  /* Messages are kept until printed, to sort across them. */
  _cleanup_free_ ProtobufCMessage **msgs = NULL;
  size_t nmsgs = 0;
  int r = grpc_client_call_open (client, CONTENT_SERVICE "List", md, ARRAY_SIZE (md), &call, &err);
  if (r == 0)
    r = grpc_client_call_send (call, &req.base, &err);
  if (r == 0)
    r = grpc_client_call_close_send (call, &err);
  while (r == 0)
    {
      ProtobufCMessage *m = NULL;
      r = grpc_client_call_recv (call, &containerd__services__content__v1__list_content_response__descriptor, &m,
                                 &err);
      if (r <= 0)
        break;
      r = 0;
      Containerd__Services__Content__V1__ListContentResponse *lr = (void *) m;
      ProtobufCMessage **nm = realloc (msgs, (nmsgs + 1) * sizeof *nm);
      info_t **ni = realloc (infos, (n + lr->n_info + 1) * sizeof *ni);
      if (nm)
        msgs = nm;
      if (ni)
        infos = ni;
      if (nm == NULL || ni == NULL)
        {
          protobuf_c_message_free_unpacked (m, NULL);
          r = berth_error_set (&err, BERTH_E_NOMEM, 0, "out of memory");
          break;
        }
      msgs[nmsgs++] = m;
      for (size_t i = 0; i < lr->n_info; i++)
        infos[n++] = lr->info[i];
    }
  int ret = CLI_EXIT_OK;
  if (r < 0)
    ret = cli_call_failed (cli, err, "listing content");
  else
    {
      if (n)
        qsort (infos, n, sizeof *infos, info_cmp);
      time_t now = time (NULL);
      if (quiet)
        for (size_t i = 0; i < n; i++)
          puts (infos[i]->digest);
      else if (format == CLI_FORMAT_JSON)
        {
          json_object *a = json_object_new_array ();
          for (size_t i = 0; i < n; i++)
            json_object_array_add (a, info_json (infos[i]));
          cli_print_json (a);
        }
      else
        {
          _cleanup_(table_freep) table *t = table_new ("DIGEST", "SIZE", "AGE", "LABELS", NULL);
          if (t == NULL)
            ret = cli_fail (cli, NULL, "out of memory");
          for (size_t i = 0; t && i < n && ret == CLI_EXIT_OK; i++)
            {
              char sz[HUMAN_SIZE_MAX], age[HUMAN_AGE_MAX];
              _cleanup_free_ char *labels = pb_labels_string ((void **) infos[i]->labels, infos[i]->n_labels);
              if (table_add (t, infos[i]->digest, human_size (sz, infos[i]->size),
                             human_age (age, infos[i]->created_at, now), labels)
                  < 0)
                ret = cli_fail (cli, NULL, "out of memory");
            }
          if (t && ret == CLI_EXIT_OK)
            table_print (t, stdout);
        }
    }
  for (size_t i = 0; i < nmsgs; i++)
    protobuf_c_message_free_unpacked (msgs[i], NULL);
  return ret;
}

/* ---- get ---- */

static int
get_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (argc - optind != 1)
    return cli_usage_error (cli, "one digest is needed");
  _cleanup_error_ berth_error *err = NULL;
  fflush (stdout);
  int r = content_read_to_fd (cli, argv[optind], STDOUT_FILENO, &err);
  if (r < 0 && err == NULL)
    return CLI_EXIT_FAIL;
  if (r < 0)
    return content_error (cli, r, err, "reading", argv[optind]);
  return CLI_EXIT_OK;
}

/* ---- rm ---- */

static int
rm_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (optind >= argc)
    return cli_usage_error (cli, "a digest is needed");
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      Containerd__Services__Content__V1__DeleteContentRequest req
          = CONTAINERD__SERVICES__CONTENT__V1__DELETE_CONTENT_REQUEST__INIT;
      req.digest = argv[i];
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      int r = cli_unary (cli, CONTENT_SERVICE "Delete", &req.base, &google__protobuf__empty__descriptor, &resp, &err);
      if (r < 0 && err == NULL)
        return CLI_EXIT_FAIL;
      if (r < 0)
        {
          ret = content_error (cli, r, err, "removing", argv[i]);
          continue;
        }
      protobuf_c_message_free_unpacked (resp, NULL);
      puts (argv[i]);
    }
  return ret;
}

/* ---- label ---- */

static int
label_run (struct cli *cli, int argc, char **argv)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return CLI_EXIT_USAGE;
  if (argc - optind < 2)
    return cli_usage_error (cli, "a digest and at least one KEY=VALUE are needed");
  const char *digest = argv[optind];
  _cleanup_(pb_labels_free) struct pb_labels labels
      = { .entry_desc = &containerd__services__content__v1__info__labels_entry__descriptor };
  if (pb_labels_add_args (&labels, argc - optind - 1, argv + optind + 1) < 0)
    return cli_fail (cli, NULL, "out of memory");
  _cleanup_strv_ char **paths = pb_labels_mask_paths (&labels);
  if (paths == NULL)
    return cli_fail (cli, NULL, "out of memory");

  info_t info = CONTAINERD__SERVICES__CONTENT__V1__INFO__INIT;
  info.digest = (char *) digest;
  info.n_labels = labels.n;
  info.labels = (Containerd__Services__Content__V1__Info__LabelsEntry **) labels.entries;
  Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
  mask.n_paths = labels.n;
  mask.paths = paths;
  Containerd__Services__Content__V1__UpdateRequest req = CONTAINERD__SERVICES__CONTENT__V1__UPDATE_REQUEST__INIT;
  req.info = &info;
  req.update_mask = &mask;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, CONTENT_SERVICE "Update", &req.base,
                     &containerd__services__content__v1__update_response__descriptor, &resp, &err);
  if (r < 0 && err == NULL)
    return CLI_EXIT_FAIL;
  if (r < 0)
    return content_error (cli, r, err, "labelling", digest);
  Containerd__Services__Content__V1__UpdateResponse *ur = (void *) resp;
  if (ur->info)
    {
      _cleanup_free_ char *s = pb_labels_string ((void **) ur->info->labels, ur->info->n_labels);
      puts (s ? s : "");
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  return CLI_EXIT_OK;
}

/* ---- active ---- */

static int
status_cmp (const void *a, const void *b)
{
  const status_t *const *sa = a, *const *sb = b;
  return strcmp ((*sa)->ref, (*sb)->ref);
}

static int
active_run (struct cli *cli, int argc, char **argv)
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
  Containerd__Services__Content__V1__ListStatusesRequest req
      = CONTAINERD__SERVICES__CONTENT__V1__LIST_STATUSES_REQUEST__INIT;
  req.n_filters = (size_t) (argc - optind);
  req.filters = argv + optind;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, CONTENT_SERVICE "ListStatuses", &req.base,
                 &containerd__services__content__v1__list_statuses_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "listing active ingests");
  Containerd__Services__Content__V1__ListStatusesResponse *lr = (void *) resp;
  if (lr->n_statuses)
    qsort (lr->statuses, lr->n_statuses, sizeof *lr->statuses, status_cmp);
  int ret = CLI_EXIT_OK;
  if (format == CLI_FORMAT_JSON)
    {
      json_object *a = json_object_new_array ();
      for (size_t i = 0; i < lr->n_statuses; i++)
        {
          const status_t *s = lr->statuses[i];
          json_object *o = json_object_new_object ();
          json_object_object_add (o, "ref", json_object_new_string (s->ref));
          json_object_object_add (o, "offset", json_object_new_int64 (s->offset));
          json_object_object_add (o, "total", json_object_new_int64 (s->total));
          json_object_object_add (o, "expected", s->expected && *s->expected ? json_object_new_string (s->expected)
                                                                               : NULL);
          json_object_object_add (o, "startedAt", timestamp_json (s->started_at));
          json_object_object_add (o, "updatedAt", timestamp_json (s->updated_at));
          json_object_array_add (a, o);
        }
      cli_print_json (a);
    }
  else
    {
      time_t now = time (NULL);
      _cleanup_(table_freep) table *t = table_new ("REF", "SIZE", "AGE", NULL);
      if (t == NULL)
        ret = cli_fail (cli, NULL, "out of memory");
      for (size_t i = 0; t && i < lr->n_statuses && ret == CLI_EXIT_OK; i++)
        {
          const status_t *s = lr->statuses[i];
          char sz[HUMAN_SIZE_MAX], age[HUMAN_AGE_MAX];
          if (table_add (t, s->ref, human_size (sz, s->offset), human_age (age, s->started_at, now)) < 0)
            ret = cli_fail (cli, NULL, "out of memory");
        }
      if (t && ret == CLI_EXIT_OK)
        table_print (t, stdout);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  return ret;
}

static const char *const ls_aliases[] = { "list", NULL };
static const char *const rm_aliases[] = { "remove", "delete", NULL };

static const struct cli_command content_commands[] = {
  {
    .name = "active",
    .args = "[OPTIONS] [FILTER...]",
    .summary = "List ingests in progress (written but not committed)",
    .help = "      --format FORMAT   table (default) or json\n",
    .options = active_options,
    .run = active_run,
  },
  {
    .name = "explain",
    .args = "DIGEST",
    .summary = "Show the chains of references that keep a blob from garbage collection",
    .run = berth_cmd_content_explain,
  },
  {
    .name = "fetch",
    .args = "[OPTIONS] REF",
    .summary = "Fetch an image's content into the store, without unpacking it",
    .help = cli_pull_help,
    .shortopts = CLI_PULL_SHORTOPTS,
    .options = cli_pull_options,
    .run = berth_cmd_pull_content,
  },
  {
    .name = "get",
    .args = "DIGEST",
    .summary = "Write a blob to standard output",
    .options = no_options,
    .run = get_run,
    .complete = "__content",
  },
  {
    .name = "label",
    .args = "DIGEST KEY=VALUE...",
    .summary = "Set labels of a blob (KEY= removes one, a bare KEY sets \"true\")",
    .options = no_options,
    .run = label_run,
    .complete = "__content",
  },
  {
    .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS] [FILTER...]",
    .summary = "List blobs",
    .help = "  -q, --quiet           print only the digests\n"
            "      --format FORMAT   table (default) or json\n"
            "  FILTER is a containerd filter, e.g. 'labels.\"containerd.io/gc.root\"'.\n",
    .shortopts = "q",
    .options = ls_options,
    .run = ls_run,
  },
  {
    .name = "rm",
    .aliases = rm_aliases,
    .args = "DIGEST...",
    .summary = "Remove blobs",
    .options = no_options,
    .run = rm_run,
    .complete = "__content",
  },
  { 0 },
};

const struct cli_group cli_group_content = {
  .name = "content",
  .summary = "Manage the content store (blobs by digest)",
  .commands = content_commands,
};
