/* berth: the command-line client of berthd (and of containerd: it speaks
 * the containerd gRPC API).  Global options, dispatch over cli_groups[],
 * help, and the hidden `__complete` command behind shell completion. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"

enum
{
  OPT_TIMEOUT = 0x100,
  OPT_CONNECT_TIMEOUT,
};

static const struct option global_options[] = {
  { "address", required_argument, NULL, 'a' },
  { "namespace", required_argument, NULL, 'n' },
  { "timeout", required_argument, NULL, OPT_TIMEOUT },
  { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },
  { "help", no_argument, NULL, 'h' },
  { "version", no_argument, NULL, 'v' },
  { NULL, 0, NULL, 0 },
};

/* ---- helpers for commands ---- */

grpc_client *
cli_client (struct cli *cli)
{
  if (cli->client)
    return cli->client;
  _cleanup_error_ berth_error *err = NULL;
  grpc_client *c = NULL;
  int r = grpc_client_connect (cli->address, (int) cli->connect_timeout_ms, &c, &err);
  if (r < 0)
    {
      /* The library names the socket; say what is behind it and what to
       * check, as this is by far the most common error. */
      const char *why = err->errnum ? strerror (err->errnum) : berth_error_message (err);
      if (err->errnum == ENOENT || err->errnum == ECONNREFUSED)
        fprintf (stderr, "berth: cannot connect to berthd at %s: %s (is berthd running?)\n", cli->address, why);
      else if (err->errnum)
        fprintf (stderr, "berth: cannot connect to berthd at %s: %s\n", cli->address, why);
      else
        fprintf (stderr, "berth: %s\n", berth_error_message (err));
      return NULL;
    }
  grpc_client_set_deadline (c, cli->timeout_ms);
  grpc_client_set_user_agent (c, "berth/" PACKAGE_VERSION, NULL);
  cli->client = c;
  return c;
}

int
cli_unary (struct cli *cli, const char *method, const ProtobufCMessage *req,
           const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp, berth_error **err)
{
  grpc_client *c = cli_client (cli);
  if (c == NULL)
    return BERTH_E_UNAVAILABLE;
  struct grpc_client_md md[] = { { "containerd-namespace", cli->ns } };
  return grpc_client_unary (c, method, md, ARRAY_SIZE (md), req, resp_desc, ret_resp, err);
}

int
cli_call_failed (struct cli *cli, const berth_error *err, const char *fmt, ...)
{
  if (err == NULL)
    return CLI_EXIT_FAIL;
  va_list ap;
  va_start (ap, fmt);
  fputs ("berth: ", stderr);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, ": %s\n", berth_error_message (err));
  return CLI_EXIT_FAIL;
}

int
cli_fail (struct cli *cli, const berth_error *err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fputs ("berth: ", stderr);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  if (err)
    fprintf (stderr, ": %s", berth_error_message (err));
  fputc ('\n', stderr);
  return CLI_EXIT_FAIL;
}

static void
print_command_path (FILE *f, const struct cli *cli)
{
  fputs ("berth", f);
  if (cli->group_name)
    fprintf (f, " %s", cli->group_name);
  if (cli->command && cli->command->name && (cli->group_name == NULL || strcmp (cli->command->name, cli->group_name)))
    fprintf (f, " %s", cli->command->name);
}

int
cli_usage_error (struct cli *cli, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  print_command_path (stderr, cli);
  fputs (": ", stderr);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputs ("\nSee '", stderr);
  print_command_path (stderr, cli);
  fputs (" --help'.\n", stderr);
  return CLI_EXIT_USAGE;
}

int
cli_getopt (struct cli *cli, int argc, char **argv)
{
  const struct cli_command *cmd = cli->command;
  char shortopts[64];
  snprintf (shortopts, sizeof shortopts, "+:%s", cmd->shortopts ? cmd->shortopts : "");
  static const struct option none[] = { { NULL, 0, NULL, 0 } };
  int c = getopt_long (argc, argv, shortopts, cmd->options ? cmd->options : none, NULL);
  if (c == '?')
    {
      if (optopt && isprint (optopt))
        cli_usage_error (cli, "unknown option -%c", optopt);
      else
        cli_usage_error (cli, "unknown option %s", argv[optind - 1]);
      return '?';
    }
  if (c == ':')
    {
      cli_usage_error (cli, "option %s needs an argument", argv[optind - 1]);
      return '?';
    }
  return c;
}

int
cli_parse_format (struct cli *cli, const char *arg, enum cli_format *ret)
{
  if (strcmp (arg, "json") == 0)
    *ret = CLI_FORMAT_JSON;
  else if (strcmp (arg, "table") == 0)
    *ret = CLI_FORMAT_TABLE;
  else
    {
      cli_usage_error (cli, "unknown format `%s` (use table or json)", arg);
      return -1;
    }
  return 0;
}

void
cli_print_json (json_object *o)
{
  puts (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                                               | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
}

int
cli_split_label (const char *arg, char **ret_key, char **ret_value)
{
  const char *eq = strchr (arg, '=');
  char *k = eq ? strndup (arg, (size_t) (eq - arg)) : strdup (arg);
  char *v = strdup (eq ? eq + 1 : "true");
  if (k == NULL || v == NULL)
    {
      free (k);
      free (v);
      return -ENOMEM;
    }
  *ret_key = k;
  *ret_value = v;
  return 0;
}

long
cli_parse_duration_ms (const char *s)
{
  char *end;
  errno = 0;
  double v = strtod (s, &end);
  if (errno || end == s || v < 0)
    return -1;
  double mult;
  if (*end == 0 || strcmp (end, "s") == 0)
    mult = 1000;
  else if (strcmp (end, "ms") == 0)
    mult = 1;
  else if (strcmp (end, "m") == 0)
    mult = 60000;
  else if (strcmp (end, "h") == 0)
    mult = 3600000;
  else
    return -1;
  double ms = v * mult;
  if (ms > 1e12)
    return -1;
  return (long) ms;
}

/* ---- lookup and help ---- */

static bool
name_matches (const char *name, const char *const *aliases, const char *word)
{
  if (strcmp (name, word) == 0)
    return true;
  for (const char *const *a = aliases; a && *a; a++)
    if (strcmp (*a, word) == 0)
      return true;
  return false;
}

static const struct cli_group *
find_group (const char *word)
{
  for (const struct cli_group *const *g = cli_groups; *g; g++)
    if (name_matches ((*g)->name, (*g)->aliases, word))
      return *g;
  return NULL;
}

static const struct cli_command *
find_command (const struct cli_group *g, const char *word)
{
  if (g->commands == NULL)
    return NULL;
  for (const struct cli_command *c = g->commands; c->name; c++)
    if (name_matches (c->name, c->aliases, word))
      return c;
  return NULL;
}

static void
print_aliases (FILE *f, const char *const *aliases)
{
  if (aliases == NULL || *aliases == NULL)
    return;
  fputs (" (alias:", f);
  for (const char *const *a = aliases; *a; a++)
    fprintf (f, " %s", *a);
  fputc (')', f);
}

static void
print_main_usage (FILE *f)
{
  fputs ("Usage: berth [OPTIONS] COMMAND [ARGS...]\n"
         "\n"
         "berth talks to berthd (or containerd) over its gRPC socket.\n"
         "\n"
         "Options:\n"
         "  -a, --address PATH          socket of the daemon (default " CLI_DEFAULT_ADDRESS ",\n"
         "                              or $BERTH_ADDRESS)\n"
         "  -n, --namespace NAME        namespace to work in (default \"" CLI_DEFAULT_NAMESPACE "\",\n"
         "                              or $BERTH_NAMESPACE)\n"
         "      --timeout DURATION      deadline of each call, e.g. 30s or 500ms (default none)\n"
         "      --connect-timeout DURATION  time allowed to connect (default 10s)\n"
         "  -h, --help                  show this help (also: berth COMMAND --help)\n"
         "  -v, --version               show the client version\n"
         "\n"
         "Commands:\n",
         f);
  for (const struct cli_group *const *g = cli_groups; *g; g++)
    {
      fprintf (f, "  %-14s %s", (*g)->name, (*g)->summary);
      print_aliases (f, (*g)->aliases);
      fputc ('\n', f);
    }
  fputs ("\nRun 'berth COMMAND --help' for more information on a command.\n"
         "berth talks only to a socket owned by root or by you, served by such a process;\n"
         "BERTH_SOCKET_TRUST_UID=N also trusts uid N (e.g. a daemon seen through a user namespace).\n",
         f);
}

static void
print_group_usage (FILE *f, const struct cli_group *g)
{
  fprintf (f, "Usage: berth %s COMMAND [OPTIONS] [ARGS...]\n\n%s\n\nCommands:\n", g->name, g->summary);
  for (const struct cli_command *c = g->commands; c->name; c++)
    {
      fprintf (f, "  %-10s %s", c->name, c->summary);
      print_aliases (f, c->aliases);
      fputc ('\n', f);
    }
  fprintf (f, "\nRun 'berth %s COMMAND --help' for more information on a command.\n", g->name);
}

static void
print_command_usage (FILE *f, const struct cli_group *g, const struct cli_command *c)
{
  fprintf (f, "Usage: berth %s", g->name);
  if (g->commands)
    fprintf (f, " %s", c->name);
  fprintf (f, "%s%s\n\n%s\n", c->args ? " " : "", c->args ? c->args : "", c->summary);
  if (c->aliases && *c->aliases)
    {
      fputs ("\nAliases:", f);
      for (const char *const *a = c->aliases; *a; a++)
        fprintf (f, " %s", *a);
      fputc ('\n', f);
    }
  fputs ("\nOptions:\n", f);
  if (c->help)
    fputs (c->help, f);
  fputs ("  -h, --help            show this help\n", f);
}

/* --help anywhere before "--"; -h too unless the command uses -h itself. */
static bool
wants_help (const struct cli_command *c, int argc, char **argv)
{
  bool h_is_help = c == NULL || c->shortopts == NULL || strchr (c->shortopts, 'h') == NULL;
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--") == 0)
        return false;
      if (strcmp (argv[i], "--help") == 0 || (h_is_help && strcmp (argv[i], "-h") == 0))
        return true;
    }
  return false;
}

/* `berth help [GROUP [COMMAND]]` */
static int
help_command (int argc, char **argv)
{
  if (argc < 2)
    {
      print_main_usage (stdout);
      return CLI_EXIT_OK;
    }
  const struct cli_group *g = find_group (argv[1]);
  if (g == NULL)
    {
      fprintf (stderr, "berth: unknown command `%s`\nSee 'berth --help'.\n", argv[1]);
      return CLI_EXIT_USAGE;
    }
  if (g->commands == NULL)
    print_command_usage (stdout, g, g->self);
  else if (argc < 3)
    print_group_usage (stdout, g);
  else
    {
      const struct cli_command *c = find_command (g, argv[2]);
      if (c == NULL)
        {
          fprintf (stderr, "berth %s: unknown command `%s`\nSee 'berth %s --help'.\n", g->name, argv[2], g->name);
          return CLI_EXIT_USAGE;
        }
      print_command_usage (stdout, g, c);
    }
  return CLI_EXIT_OK;
}

/* ---- shell completion ---- */

static const struct option *
find_long (const struct option *opts, const char *word)
{
  for (const struct option *o = opts; o && o->name; o++)
    if (strcmp (o->name, word) == 0)
      return o;
  return NULL;
}

/* Does WORD (an option) take the next word as its argument?  Returns the
 * option's long name in *ret_name when it does. */
static bool
option_takes_arg (const struct option *opts, const char *shortopts, const char *word, const char **ret_name)
{
  if (word[0] != '-' || word[1] == 0)
    return false;
  if (word[1] == '-')
    {
      if (strchr (word, '='))
        return false;
      const struct option *o = find_long (opts, word + 2);
      if (o && o->has_arg == required_argument)
        {
          *ret_name = o->name;
          return true;
        }
      return false;
    }
  /* -n or a cluster ending in an option that takes an argument */
  char last = word[strlen (word) - 1];
  const char *p = shortopts ? strchr (shortopts, last) : NULL;
  if (word[2] == 0 && p && p[1] == ':')
    {
      for (const struct option *o = opts; o && o->name; o++)
        if (o->val == last)
          *ret_name = o->name;
      return true;
    }
  return false;
}

static void
complete_option_value (const char *name)
{
  if (name == NULL)
    return;
  if (strcmp (name, "address") == 0)
    puts ("__files");
  else if (strcmp (name, "namespace") == 0)
    puts ("__namespaces");
  else if (strcmp (name, "format") == 0)
    puts ("table\njson");
}

static void
print_options (const struct option *opts)
{
  for (const struct option *o = opts; o && o->name; o++)
    printf ("--%s\n", o->name);
}

/* `berth __complete WORD... CURRENT`: candidates for CURRENT, one a line;
 * "__files" and "__namespaces" ask the script to complete those itself. */
static int
complete_command (int argc, char **argv)
{
  const char *cur = argc > 1 ? argv[argc - 1] : "";
  const struct cli_group *g = NULL;
  const struct cli_command *c = NULL;
  int operands = 0;
  const char *value_of = NULL;
  bool after_dashdash = false;

  for (int i = 1; i < argc - 1; i++)
    {
      const char *w = argv[i];
      const struct option *opts = c ? c->options : global_options;
      const char *shortopts = c ? c->shortopts : "a:n:";
      value_of = NULL;
      if (!after_dashdash && strcmp (w, "--") == 0)
        {
          after_dashdash = true;
          continue;
        }
      if (!after_dashdash && w[0] == '-')
        {
          const char *name = NULL;
          if (option_takes_arg (opts, shortopts, w, &name))
            {
              if (i + 1 < argc - 1)
                i++;
              else
                value_of = name ? name : "";
            }
          continue;
        }
      if (g == NULL)
        {
          if (strcmp (w, "help") == 0)
            continue;
          g = find_group (w);
          if (g == NULL)
            return 0;
          if (g->commands == NULL)
            c = g->self;
        }
      else if (c == NULL)
        {
          c = find_command (g, w);
          if (c == NULL)
            return 0;
        }
      else
        operands++;
    }

  if (value_of)
    {
      complete_option_value (value_of);
      return 0;
    }
  if (cur[0] == '-' && !after_dashdash)
    {
      if (g == NULL)
        print_options (global_options);
      else if (c)
        {
          print_options (c->options);
          puts ("--help");
        }
      else
        puts ("--help");
      return 0;
    }
  if (g == NULL)
    {
      for (const struct cli_group *const *i = cli_groups; *i; i++)
        puts ((*i)->name);
      puts ("help");
    }
  else if (c == NULL)
    {
      for (const struct cli_command *i = g->commands; i->name; i++)
        puts (i->name);
    }
  else if (c->complete && (operands == 0 || strcmp (c->complete, "__namespaces") != 0 || c->args == NULL
                           || strstr (c->args, "NAME...") != NULL))
    puts (c->complete);
  return 0;
}

/* ---- main ---- */

static int
run (struct cli *cli, int argc, char **argv)
{
  if (argc == 0)
    {
      print_main_usage (stderr);
      return CLI_EXIT_USAGE;
    }
  if (strcmp (argv[0], "help") == 0)
    return help_command (argc, argv);
  if (strcmp (argv[0], "__complete") == 0)
    return complete_command (argc, argv);

  const struct cli_group *g = find_group (argv[0]);
  if (g == NULL)
    {
      fprintf (stderr, "berth: unknown command `%s`\nSee 'berth --help'.\n", argv[0]);
      return CLI_EXIT_USAGE;
    }
  cli->group_name = g->name;
  const struct cli_command *c = g->self;
  bool group_help = argc >= 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0);
  if (g->commands && g->default_command && !group_help && (argc < 2 || argv[1][0] == '-'))
    c = g->default_command; /* argv[0] (the group's name) stands for the command's */
  else if (g->commands)
    {
      if (argc < 2 || group_help)
        {
          print_group_usage (argc < 2 ? stderr : stdout, g);
          return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        }
      c = find_command (g, argv[1]);
      if (c == NULL)
        {
          fprintf (stderr, "berth %s: unknown command `%s`\nSee 'berth %s --help'.\n", g->name, argv[1], g->name);
          return CLI_EXIT_USAGE;
        }
      argc--;
      argv++;
    }
  cli->command = c;
  if (wants_help (c, argc, argv))
    {
      print_command_usage (stdout, g, c);
      return CLI_EXIT_OK;
    }
  optind = 0; /* full re-initialisation of getopt for the command's options */
  return c->run (cli, argc, argv);
}

char **cli_argv;

int
main (int argc, char **argv)
{
  cli_argv = argv;
  struct cli cli = {
    .address = getenv ("BERTH_ADDRESS"),
    .ns = getenv ("BERTH_NAMESPACE"),
    .connect_timeout_ms = 10000,
  };
  if (cli.address == NULL || *cli.address == 0)
    cli.address = CLI_DEFAULT_ADDRESS;
  if (cli.ns == NULL || *cli.ns == 0)
    cli.ns = CLI_DEFAULT_NAMESPACE;

  opterr = 0;
  int c;
  while ((c = getopt_long (argc, argv, "+:a:n:hv", global_options, NULL)) != -1)
    {
      switch (c)
        {
        case 'a': cli.address = optarg; break;
        case 'n': cli.ns = optarg; break;
        case OPT_TIMEOUT:
        case OPT_CONNECT_TIMEOUT:
          {
            long ms = cli_parse_duration_ms (optarg);
            if (ms < 0)
              {
                fprintf (stderr, "berth: bad duration `%s` for --%s (e.g. 10s, 500ms, 2m)\n", optarg,
                         c == OPT_TIMEOUT ? "timeout" : "connect-timeout");
                return CLI_EXIT_USAGE;
              }
            if (c == OPT_TIMEOUT)
              cli.timeout_ms = ms;
            else
              cli.connect_timeout_ms = ms;
            break;
          }
        case 'h': print_main_usage (stdout); return CLI_EXIT_OK;
        case 'v': printf ("berth version %s\n", PACKAGE_VERSION); return CLI_EXIT_OK;
        case ':':
          fprintf (stderr, "berth: option %s needs an argument\nSee 'berth --help'.\n", argv[optind - 1]);
          return CLI_EXIT_USAGE;
        default:
          fprintf (stderr, "berth: unknown option %s\nSee 'berth --help'.\n", argv[optind - 1]);
          return CLI_EXIT_USAGE;
        }
    }
  int r = run (&cli, argc - optind, argv + optind);
  grpc_client_free (cli.client);
  if (fflush (stdout) != 0 && r == CLI_EXIT_OK)
    {
      fprintf (stderr, "berth: writing output: %s\n", strerror (errno));
      r = CLI_EXIT_FAIL;
    }
  return r;
}
