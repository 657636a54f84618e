/* The command table.  To add a group: write cli/cmd-<group>.c defining
 * `const struct cli_group cli_group_<group>`, declare it here, list it in
 * cli_groups[] (the order of `berth --help`), and add the file to cli/cli.am.
 * The bash completion asks the binary (`berth __complete`), so it needs no
 * change. */
#include <config.h>

#include "cli.h"

extern const struct cli_group cli_group_namespaces;
extern const struct cli_group cli_group_plugins;
extern const struct cli_group cli_group_version;

const struct cli_group *const cli_groups[] = {
  &cli_group_namespaces,
  &cli_group_plugins,
  &cli_group_version,
  NULL,
};
