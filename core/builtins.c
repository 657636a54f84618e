#include <config.h>

#include "builtins.h"

/* Later issues add their entry points here (content store, snapshotters,
 * runtimes), each built from its own plugins/ folder. */
const berth_plugin_entry_fn builtin_plugins[] = {
  NULL,
};
