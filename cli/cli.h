/* berth CLI: shared state, the command table and helpers.
 *
 * Layout: one file per command group (cli/cmd-<group>.c) defines a
 * `const struct cli_group cli_group_<group>`, and cli/commands.c lists them
 * in cli_groups[].  A group either has subcommands (`berth namespaces ls`)
 * or is a command itself (`berth version`; docker-style shortcuts such as
 * `berth ps` are groups of this kind that call into another group's code).
 *
 * Exit codes: 0 success, 1 the operation failed (daemon error, I/O), 2 usage
 * error.  Commands print results on stdout and errors on stderr as
 * "berth: <what failed>: <why>" through cli_fail().
 */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <json-c/json.h>

#include "error.h"
#include "grpc-client.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_ADDRESS "/run/berth/berth.sock"
#define CLI_DEFAULT_NAMESPACE "default"

struct cli
{
  const char *address;
  const char *ns;              /* containerd-namespace for namespaced calls */
  long timeout_ms;         /* per call deadline, 0 = none */
  long connect_timeout_ms;
  grpc_client *client;     /* connected on first use */
  /* The command being run, for messages ("berth namespaces create"). */
  const char *group_name;
  const struct cli_command *command;
};

enum cli_format
{
  CLI_FORMAT_TABLE,
  CLI_FORMAT_JSON,
};

struct cli_command
{
  const char *name;
  const char *const *aliases; /* NULL-terminated, or NULL */
  const char *args;           /* usage after the command: "[OPTIONS] NAME [KEY=VALUE...]" */
  const char *summary;        /* one line */
  const char *help;           /* option descriptions, printed by --help (may be NULL) */
  const char *shortopts;      /* getopt_long, without the leading '+' */
  const struct option *options;
  /* argv[0] is the command name; options are parsed by the command with
   * cli_getopt().  Returns an exit code. */
  int (*run) (struct cli *cli, int argc, char **argv);
  /* What operands are, for shell completion: NULL (nothing to offer),
   * "__namespaces", "__files". */
  const char *complete;
};

struct cli_group
{
  const char *name;
  const char *const *aliases;
  const char *summary;
  const struct cli_command *commands; /* {NULL}-terminated; NULL for a plain command */
  const struct cli_command *self;     /* the command when commands == NULL */
  /* Run when no subcommand is given or the next word is an option, as
   * docker's `images` (= images ls) and `images -q`; NULL: print usage. */
  const struct cli_command *default_command;
};

extern const struct cli_group *const cli_groups[];
/* main's argv, for a command that hands the whole command line to another
 * program (image convert: convert-exec.c). */
extern char **cli_argv;

/* Connect on first use (address, connect timeout and deadline from the
 * global options); prints the error and returns NULL if it fails. */
grpc_client *cli_client (struct cli *cli);
/* A unary call with the containerd-namespace metadata (containerd wants it
 * even on non-namespaced services, e.g. to publish events), connecting on
 * first use.  Errors fill err; a connection failure has already been printed
 * and returns BERTH_E_UNAVAILABLE with err left NULL, so callers print with
 * cli_fail() only when err is set. */
int cli_unary (struct cli *cli, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp, berth_error **err);
/* cli_fail() for a cli_unary() result: nothing more to print if the
 * connection failed (already said). */
int cli_call_failed (struct cli *cli, const berth_error *err, const char *fmt, ...) BERTH_PRINTF (3, 4);

/* Print "berth: <what>: <err>" on stderr and return CLI_EXIT_FAIL. */
int cli_fail (struct cli *cli, const berth_error *err, const char *fmt, ...) BERTH_PRINTF (3, 4);
/* Print "berth <group> <cmd>: <message>" and a pointer to --help; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error (struct cli *cli, const char *fmt, ...) BERTH_PRINTF (2, 3);

/* getopt_long over the current command's options.  Returns the option
 * character, -1 at the end of the options (optind is the first operand),
 * or '?' after printing a usage error (the caller returns
 * CLI_EXIT_USAGE). */
int cli_getopt (struct cli *cli, int argc, char **argv);

/* Parse --format's argument ("table" or "json"); prints a usage error and
 * returns -1 otherwise. */
int cli_parse_format (struct cli *cli, const char *arg, enum cli_format *ret);

/* Print a JSON value on stdout (pretty, like ctr/nerdctl --format json) and
 * release it. */
void cli_print_json (json_object *o);

/* "key=value" → key, value; a bare "key" gets "true" (as ctr's labels). */
int cli_split_label (const char *arg, char **ret_key, char **ret_value);

/* "10s", "500ms", "2m", "1h", plain seconds; -1 if malformed. */
long cli_parse_duration_ms (const char *s);

/* berth pull and its twins `images pull` and `content fetch` (cli/cmd-pull.c):
 * groups that offer them use these options, help and run functions. */
extern const struct option cli_pull_options[];
extern const char cli_pull_help[];
#define CLI_PULL_SHORTOPTS "u:q"
int berth_cmd_pull (struct cli *cli, int argc, char **argv);
int berth_cmd_pull_content (struct cli *cli, int argc, char **argv);
/* Pull ref for `berth run --pull` (progress on stderr); an exit code. */
int cli_pull_image (struct cli *cli, const char *ref, const char *snapshotter, bool plain_http);
/* berth content explain DIGEST (cli/cmd-gc.c). */
int berth_cmd_content_explain (struct cli *cli, int argc, char **argv);

#endif
