/* berth namespaces: the containerd Namespaces service, with ctr's
 * behaviour (labels as KEY=VALUE, a bare KEY meaning "true", KEY= clearing
 * a label; rm ignores namespaces that do not exist and prints each name it
 * removed). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "table.h"
#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"

#define NS_SERVICE "/containerd.services.namespaces.v1.Namespaces/"

typedef Containerd__Services__Namespaces__V1__Namespace ns_t;
typedef Containerd__Services__Namespaces__V1__Namespace__LabelsEntry label_t;

static const struct option ls_options[] = {
  { "quiet", no_argument, NULL, 'q' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const struct option no_options[] = {
  { NULL, 0, NULL, 0 },
};

/* Labels from KEY=VALUE operands, as protobuf entries (freed with
 * labels_free). */
struct labels
{
  size_t n;
  label_t **entries;
  label_t *storage;
};

static void
labels_free (struct labels *l)
{
  for (size_t i = 0; i < l->n; i++)
    {
      free (l->storage[i].key);
      free (l->storage[i].value);
    }
  free (l->storage);
  free (l->entries);
}

static int
labels_parse (struct labels *l, int argc, char **argv)
{
  l->n = 0;
  l->entries = calloc ((size_t) argc + 1, sizeof *l->entries);
  l->storage = calloc ((size_t) argc + 1, sizeof *l->storage);
  if (l->entries == NULL || l->storage == NULL)
    return -1;
  for (int i = 0; i < argc; i++)
    {
      label_t init = CONTAINERD__SERVICES__NAMESPACES__V1__NAMESPACE__LABELS_ENTRY__INIT;
      l->storage[i] = init;
      if (cli_split_label (argv[i], &l->storage[i].key, &l->storage[i].value) < 0)
        return -1;
      l->entries[i] = &l->storage[i];
      l->n++;
    }
  return 0;
}

static int
label_cmp (const void *a, const void *b)
{
  const label_t *const *la = a, *const *lb = b;
  return strcmp ((*la)->key, (*lb)->key);
}

/* "k1=v1,k2=v2", keys sorted (as ctr prints them). */
static char *
labels_string (const ns_t *ns)
{
  if (ns->n_labels)
    qsort (ns->labels, ns->n_labels, sizeof *ns->labels, label_cmp);
  size_t len = 1;
  for (size_t i = 0; i < ns->n_labels; i++)
    len += strlen (ns->labels[i]->key) + strlen (ns->labels[i]->value) + 2;
  char *s = malloc (len);
  if (s == NULL)
    return NULL;
  char *p = s;
  *p = 0;
  for (size_t i = 0; i < ns->n_labels; i++)
    p += sprintf (p, "%s%s=%s", i ? "," : "", ns->labels[i]->key, ns->labels[i]->value);
  return s;
}

static int
ns_cmp (const void *a, const void *b)
{
  const ns_t *const *na = a, *const *nb = b;
  return strcmp ((*na)->name, (*nb)->name);
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
  if (optind < argc)
    return cli_usage_error (cli, "unexpected argument `%s`", argv[optind]);

  Containerd__Services__Namespaces__V1__ListNamespacesRequest req
      = CONTAINERD__SERVICES__NAMESPACES__V1__LIST_NAMESPACES_REQUEST__INIT;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, NS_SERVICE "List", &req.base,
                         &containerd__services__namespaces__v1__list_namespaces_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "listing namespaces");
  Containerd__Services__Namespaces__V1__ListNamespacesResponse *lr = (void *) resp;
  if (lr->n_namespaces)
    qsort (lr->namespaces, lr->n_namespaces, sizeof *lr->namespaces, ns_cmp);

  int ret = CLI_EXIT_OK;
  if (quiet)
    for (size_t i = 0; i < lr->n_namespaces; i++)
      puts (lr->namespaces[i]->name);
  else if (format == CLI_FORMAT_JSON)
    {
      json_object *a = json_object_new_array ();
      for (size_t i = 0; i < lr->n_namespaces; i++)
        {
          const ns_t *ns = lr->namespaces[i];
          json_object *o = json_object_new_object ();
          json_object_object_add (o, "name", json_object_new_string (ns->name));
          json_object *labels = json_object_new_object ();
          if (ns->n_labels)
            qsort (ns->labels, ns->n_labels, sizeof *ns->labels, label_cmp);
          for (size_t j = 0; j < ns->n_labels; j++)
            json_object_object_add (labels, ns->labels[j]->key, json_object_new_string (ns->labels[j]->value));
          json_object_object_add (o, "labels", labels);
          json_object_array_add (a, o);
        }
      cli_print_json (a);
    }
  else
    {
      _cleanup_(table_freep) table *t = table_new ("NAME", "LABELS", NULL);
      for (size_t i = 0; t && i < lr->n_namespaces && ret == CLI_EXIT_OK; i++)
        {
          _cleanup_free_ char *labels = labels_string (lr->namespaces[i]);
          if (labels == NULL || table_add (t, lr->namespaces[i]->name, labels) < 0)
            ret = cli_fail (cli, NULL, "out of memory");
        }
      if (t == NULL)
        ret = cli_fail (cli, NULL, "out of memory");
      else if (ret == CLI_EXIT_OK)
        table_print (t, stdout);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  return ret;
}

static int
no_options_then_operands (struct cli *cli, int argc, char **argv, int min)
{
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    return -1;
  if (argc - optind < min)
    {
      cli_usage_error (cli, "%s", min == 1 ? "a namespace name is needed" : "missing arguments");
      return -1;
    }
  return 0;
}

static int
create_run (struct cli *cli, int argc, char **argv)
{
  if (no_options_then_operands (cli, argc, argv, 1) < 0)
    return CLI_EXIT_USAGE;
  const char *name = argv[optind];
  _cleanup_(labels_free) struct labels labels = { 0 };
  if (labels_parse (&labels, argc - optind - 1, argv + optind + 1) < 0)
    return cli_fail (cli, NULL, "out of memory");

  ns_t ns = CONTAINERD__SERVICES__NAMESPACES__V1__NAMESPACE__INIT;
  ns.name = (char *) name;
  ns.n_labels = labels.n;
  ns.labels = labels.entries;
  Containerd__Services__Namespaces__V1__CreateNamespaceRequest req
      = CONTAINERD__SERVICES__NAMESPACES__V1__CREATE_NAMESPACE_REQUEST__INIT;
  req.namespace_ = &ns;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, NS_SERVICE "Create", &req.base,
                         &containerd__services__namespaces__v1__create_namespace_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "creating namespace `%s`", name);
  protobuf_c_message_free_unpacked (resp, NULL);
  return CLI_EXIT_OK;
}

static int
label_run (struct cli *cli, int argc, char **argv)
{
  if (no_options_then_operands (cli, argc, argv, 1) < 0)
    return CLI_EXIT_USAGE;
  const char *name = argv[optind];
  _cleanup_(labels_free) struct labels labels = { 0 };
  if (labels_parse (&labels, argc - optind - 1, argv + optind + 1) < 0)
    return cli_fail (cli, NULL, "out of memory");


  /* One Update with a mask entry per key: an empty value removes the label
   * (containerd's namespace store does that for "labels.<key>"). */
  _cleanup_free_ char **paths = calloc (labels.n + 1, sizeof *paths);
  if (paths == NULL)
    return cli_fail (cli, NULL, "out of memory");
  for (size_t i = 0; i < labels.n; i++)
    if (asprintf (&paths[i], "labels.%s", labels.entries[i]->key) < 0)
      {
        paths[i] = NULL;
        for (size_t j = 0; j < i; j++)
          free (paths[j]);
        return cli_fail (cli, NULL, "out of memory");
      }

  ns_t ns = CONTAINERD__SERVICES__NAMESPACES__V1__NAMESPACE__INIT;
  ns.name = (char *) name;
  ns.n_labels = labels.n;
  ns.labels = labels.entries;
  Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
  mask.n_paths = labels.n;
  mask.paths = paths;
  Containerd__Services__Namespaces__V1__UpdateNamespaceRequest req
      = CONTAINERD__SERVICES__NAMESPACES__V1__UPDATE_NAMESPACE_REQUEST__INIT;
  req.namespace_ = &ns;
  req.update_mask = &mask;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  int r = cli_unary (cli, NS_SERVICE "Update", &req.base,
                             &containerd__services__namespaces__v1__update_namespace_response__descriptor, &resp, &err);
  for (size_t i = 0; i < labels.n; i++)
    free (paths[i]);
  if (r < 0)
    return cli_call_failed (cli, err, "labelling namespace `%s`", name);
  protobuf_c_message_free_unpacked (resp, NULL);
  return CLI_EXIT_OK;
}

static int
rm_run (struct cli *cli, int argc, char **argv)
{
  if (no_options_then_operands (cli, argc, argv, 1) < 0)
    return CLI_EXIT_USAGE;
  int ret = CLI_EXIT_OK;
  for (int i = optind; i < argc; i++)
    {
      Containerd__Services__Namespaces__V1__DeleteNamespaceRequest req
          = CONTAINERD__SERVICES__NAMESPACES__V1__DELETE_NAMESPACE_REQUEST__INIT;
      req.name = argv[i];
      _cleanup_error_ berth_error *err = NULL;
      ProtobufCMessage *resp = NULL;
      int r = cli_unary (cli, NS_SERVICE "Delete", &req.base, &google__protobuf__empty__descriptor,
                                 &resp, &err);
      if (r < 0 && err == NULL)
        return CLI_EXIT_FAIL; /* could not connect: already said */
      if (r < 0 && r != BERTH_E_NOTFOUND)
        {
          /* Keep going with the others, as ctr does; fail at the end. */
          ret = cli_call_failed (cli, err, "removing namespace `%s`", argv[i]);
          continue;
        }
      if (resp)
        protobuf_c_message_free_unpacked (resp, NULL);
      puts (argv[i]);
    }
  return ret;
}

static const char *const ls_aliases[] = { "list", NULL };
static const char *const rm_aliases[] = { "remove", NULL };

static const struct cli_command namespaces_commands[] = {
  {
    .name = "create",
    .args = "NAME [KEY=VALUE...]",
    .summary = "Create a namespace, with labels",
    .options = no_options,
    .run = create_run,
  },
  {
    .name = "label",
    .args = "NAME [KEY=VALUE...]",
    .summary = "Set labels of a namespace (KEY= removes one, a bare KEY sets \"true\")",
    .options = no_options,
    .run = label_run,
    .complete = "__namespaces",
  },
  {
    .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS]",
    .summary = "List namespaces",
    .help = "  -q, --quiet           print only the names\n"
            "      --format FORMAT   table (default) or json\n",
    .shortopts = "q",
    .options = ls_options,
    .run = ls_run,
  },
  {
    .name = "rm",
    .aliases = rm_aliases,
    .args = "NAME...",
    .summary = "Remove namespaces (the ones that do not exist are ignored)",
    .options = no_options,
    .run = rm_run,
    .complete = "__namespaces",
  },
  { 0 },
};

static const char *const namespaces_aliases[] = { "namespace", "ns", NULL };

const struct cli_group cli_group_namespaces = {
  .name = "namespaces",
  .aliases = namespaces_aliases,
  .summary = "Manage namespaces",
  .commands = namespaces_commands,
};
