/* The command table.  To add a group: write cli/cmd-<group>.c defining
 * `const struct cli_group cli_group_<group>`, declare it here, list it in
 * cli_groups[] (the order of `berth --help`), and add the file to cli/cli.am.
 * The bash completion asks the binary (`berth __complete`), so it needs no
 * change. */
#include <config.h>

#include "cli.h"

extern const struct cli_group cli_group_attach;
extern const struct cli_group cli_group_containers;
extern const struct cli_group cli_group_create;
extern const struct cli_group cli_group_exec;
extern const struct cli_group cli_group_inspect;
extern const struct cli_group cli_group_kill;
extern const struct cli_group cli_group_logs;
extern const struct cli_group cli_group_pause;
extern const struct cli_group cli_group_ps;
extern const struct cli_group cli_group_restart;
extern const struct cli_group cli_group_rm;
extern const struct cli_group cli_group_run;
extern const struct cli_group cli_group_start;
extern const struct cli_group cli_group_stats;
extern const struct cli_group cli_group_stop;
extern const struct cli_group cli_group_system;
extern const struct cli_group cli_group_tasks;
extern const struct cli_group cli_group_top;
extern const struct cli_group cli_group_unpause;
extern const struct cli_group cli_group_wait;
extern const struct cli_group cli_group_content;
extern const struct cli_group cli_group_fsck;
extern const struct cli_group cli_group_gc;
extern const struct cli_group cli_group_images;
extern const struct cli_group cli_group_leases;
extern const struct cli_group cli_group_login;
extern const struct cli_group cli_group_logout;
extern const struct cli_group cli_group_namespaces;
extern const struct cli_group cli_group_plugins;
extern const struct cli_group cli_group_pull;
extern const struct cli_group cli_group_rmi;
extern const struct cli_group cli_group_snapshots;
extern const struct cli_group cli_group_tag;
extern const struct cli_group cli_group_version;

const struct cli_group *const cli_groups[] = {
  &cli_group_attach,
  &cli_group_containers,
  &cli_group_content,
  &cli_group_create,
  &cli_group_exec,
  &cli_group_fsck,
  &cli_group_gc,
  &cli_group_images,
  &cli_group_inspect,
  &cli_group_kill,
  &cli_group_leases,
  &cli_group_login,
  &cli_group_logout,
  &cli_group_logs,
  &cli_group_namespaces,
  &cli_group_pause,
  &cli_group_plugins,
  &cli_group_ps,
  &cli_group_pull,
  &cli_group_restart,
  &cli_group_rm,
  &cli_group_rmi,
  &cli_group_run,
  &cli_group_snapshots,
  &cli_group_start,
  &cli_group_stats,
  &cli_group_stop,
  &cli_group_system,
  &cli_group_tag,
  &cli_group_tasks,
  &cli_group_top,
  &cli_group_unpause,
  &cli_group_version,
  &cli_group_wait,
  NULL,
};
