/* The command table.  To add a group: write cli/cmd-<group>.c defining
 * `const struct cli_group cli_group_<group>`, declare it here, list it in
 * cli_groups[] (the order of `berth --help`), and add the file to cli/cli.am.
 * The bash completion asks the binary (`berth __complete`), so it needs no
 * change. */
#include <config.h>

#include "cli.h"

extern const struct cli_group cli_group_content;
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
  &cli_group_content,
  &cli_group_gc,
  &cli_group_images,
  &cli_group_leases,
  &cli_group_login,
  &cli_group_logout,
  &cli_group_namespaces,
  &cli_group_plugins,
  &cli_group_pull,
  &cli_group_rmi,
  &cli_group_snapshots,
  &cli_group_tag,
  &cli_group_version,
  NULL,
};
