/* berth plugins ls: Introspection/Plugins.
 *
 * berthd puts two extra exports on every plugin: "berth.source" (builtin or
 * the .so path) and "berth.abi" (the ABI version it was built against);
 * against containerd they are absent and the columns read "-". */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "table.h"
#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.pb-c.h"

typedef Containerd__Services__Introspection__V1__Plugin plugin_t;

static const struct option ls_options[] = {
  { "detailed", no_argument, NULL, 'd' },
  { "format", required_argument, NULL, 'f' },
  { NULL, 0, NULL, 0 },
};

static const char *
plugin_export (const plugin_t *p, const char *key)
{
  for (size_t i = 0; i < p->n_exports; i++)
    if (strcmp (p->exports[i]->key, key) == 0)
      return p->exports[i]->value;
  return NULL;
}

/* ok / disabled / skip / error, from init_err (containerd's convention:
 * a skipped plugin's error mentions "skip plugin", a disabled one in
 * berthd reads "skip plugin: disabled"). */
static const char *
plugin_status (const plugin_t *p)
{
  if (p->init_err == NULL || (p->init_err->code == 0 && (p->init_err->message == NULL || !*p->init_err->message)))
    return "ok";
  const char *m = p->init_err->message ? p->init_err->message : "";
  if (strncmp (m, "skip plugin: disabled", 21) == 0)
    return "disabled";
  /* berthd starts the message with it, containerd ends it with ": skip plugin". */
  if (strstr (m, "skip plugin") != NULL)
    return "skip";
  return "error";
}

static char *
platform_string (const Containerd__Types__Platform *pl)
{
  char *s = NULL;
  if (asprintf (&s, "%s/%s%s%s", pl->os, pl->architecture, pl->variant && *pl->variant ? "/" : "",
                pl->variant ? pl->variant : "")
      < 0)
    return NULL;
  return s;
}

static json_object *
plugin_json (const plugin_t *p)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "type", json_object_new_string (p->type));
  json_object_object_add (o, "id", json_object_new_string (p->id));
  const char *source = plugin_export (p, "berth.source");
  json_object_object_add (o, "source", source ? json_object_new_string (source) : NULL);
  json_object_object_add (o, "status", json_object_new_string (plugin_status (p)));
  json_object *req = json_object_new_array ();
  for (size_t i = 0; i < p->n_requires; i++)
    json_object_array_add (req, json_object_new_string (p->requires[i]));
  json_object_object_add (o, "requires", req);
  json_object *plats = json_object_new_array ();
  for (size_t i = 0; i < p->n_platforms; i++)
    {
      _cleanup_free_ char *s = platform_string (p->platforms[i]);
      json_object_array_add (plats, json_object_new_string (s ? s : ""));
    }
  json_object_object_add (o, "platforms", plats);
  json_object *exports = json_object_new_object ();
  for (size_t i = 0; i < p->n_exports; i++)
    if (strncmp (p->exports[i]->key, "berth.", 6) != 0)
      json_object_object_add (exports, p->exports[i]->key, json_object_new_string (p->exports[i]->value));
  json_object_object_add (o, "exports", exports);
  json_object *caps = json_object_new_array ();
  for (size_t i = 0; i < p->n_capabilities; i++)
    json_object_array_add (caps, json_object_new_string (p->capabilities[i]));
  json_object_object_add (o, "capabilities", caps);
  const char *abi = plugin_export (p, "berth.abi");
  json_object_object_add (o, "abi", abi ? json_object_new_string (abi) : NULL);
  if (p->init_err && p->init_err->message && *p->init_err->message)
    json_object_object_add (o, "error", json_object_new_string (p->init_err->message));
  return o;
}

static void
print_detailed (const plugin_t *p)
{
  const char *source = plugin_export (p, "berth.source");
  const char *abi = plugin_export (p, "berth.abi");
  printf ("Type:          %s\n", p->type);
  printf ("ID:            %s\n", p->id);
  printf ("Source:        %s\n", source ? source : "-");
  printf ("Status:        %s\n", plugin_status (p));
  printf ("ABI:           %s\n", abi ? abi : "-");
  printf ("Requires:     ");
  if (p->n_requires == 0)
    printf (" -");
  for (size_t i = 0; i < p->n_requires; i++)
    printf (" %s", p->requires[i]);
  printf ("\nPlatforms:    ");
  if (p->n_platforms == 0)
    printf (" -");
  for (size_t i = 0; i < p->n_platforms; i++)
    {
      _cleanup_free_ char *s = platform_string (p->platforms[i]);
      printf (" %s", s ? s : "?");
    }
  printf ("\nCapabilities: ");
  if (p->n_capabilities == 0)
    printf (" -");
  for (size_t i = 0; i < p->n_capabilities; i++)
    printf (" %s", p->capabilities[i]);
  printf ("\nExports:");
  size_t shown = 0;
  for (size_t i = 0; i < p->n_exports; i++)
    if (strncmp (p->exports[i]->key, "berth.", 6) != 0)
      {
        printf ("\n  %s = %s", p->exports[i]->key, p->exports[i]->value);
        shown++;
      }
  if (shown == 0)
    printf ("       -");
  printf ("\n");
  if (p->init_err && p->init_err->message && *p->init_err->message)
    printf ("Error:         %s\n", p->init_err->message);
  printf ("\n");
}

static int
ls_run (struct cli *cli, int argc, char **argv)
{
  enum cli_format format = CLI_FORMAT_TABLE;
  bool detailed = false;
  int c;
  while ((c = cli_getopt (cli, argc, argv)) != -1)
    switch (c)
      {
      case 'd': detailed = true; break;
      case 'f':
        if (cli_parse_format (cli, optarg, &format) < 0)
          return CLI_EXIT_USAGE;
        break;
      default: return CLI_EXIT_USAGE;
      }

  /* Operands are containerd filters, e.g. type==io.containerd.snapshotter.v1 */
  Containerd__Services__Introspection__V1__PluginsRequest req
      = CONTAINERD__SERVICES__INTROSPECTION__V1__PLUGINS_REQUEST__INIT;
  req.n_filters = (size_t) (argc - optind);
  req.filters = argv + optind;
  _cleanup_error_ berth_error *err = NULL;
  ProtobufCMessage *resp = NULL;
  if (cli_unary (cli, "/containerd.services.introspection.v1.Introspection/Plugins", &req.base,
                         &containerd__services__introspection__v1__plugins_response__descriptor, &resp, &err)
      < 0)
    return cli_call_failed (cli, err, "listing plugins");
  Containerd__Services__Introspection__V1__PluginsResponse *pr = (void *) resp;

  int ret = CLI_EXIT_OK;
  if (format == CLI_FORMAT_JSON)
    {
      json_object *a = json_object_new_array ();
      for (size_t i = 0; i < pr->n_plugins; i++)
        json_object_array_add (a, plugin_json (pr->plugins[i]));
      cli_print_json (a);
    }
  else if (detailed)
    for (size_t i = 0; i < pr->n_plugins; i++)
      print_detailed (pr->plugins[i]);
  else
    {
      /* Server order: the load order, which is what an operator debugs. */
      _cleanup_(table_freep) table *t = table_new ("TYPE", "ID", "SOURCE", "STATUS", NULL);
      if (t == NULL)
        ret = cli_fail (cli, NULL, "out of memory");
      for (size_t i = 0; t && i < pr->n_plugins; i++)
        {
          const plugin_t *p = pr->plugins[i];
          if (table_add (t, p->type, p->id, plugin_export (p, "berth.source"), plugin_status (p)) < 0)
            {
              ret = cli_fail (cli, NULL, "out of memory");
              break;
            }
        }
      if (t && ret == CLI_EXIT_OK)
        table_print (t, stdout);
    }
  protobuf_c_message_free_unpacked (resp, NULL);
  return ret;
}

static const char *const ls_aliases[] = { "list", NULL };

static const struct cli_command plugins_commands[] = {
  {
    .name = "ls",
    .aliases = ls_aliases,
    .args = "[OPTIONS] [FILTER...]",
    .summary = "List plugins and their status",
    .help = "  -d, --detailed        show requires, exports, capabilities, platforms, ABI\n"
            "                        and the error of every plugin\n"
            "      --format FORMAT   table (default) or json\n"
            "  FILTER is a containerd filter, e.g. type==io.containerd.snapshotter.v1\n",
    .shortopts = "d",
    .options = ls_options,
    .run = ls_run,
  },
  { 0 },
};

static const char *const plugins_aliases[] = { "plugin", NULL };

const struct cli_group cli_group_plugins = {
  .name = "plugins",
  .aliases = plugins_aliases,
  .summary = "Inspect the daemon's plugins",
  .commands = plugins_commands,
};
