/* Plugins compiled into berthd.  They go through exactly the same
 * descriptor checks as loaded ones (registry_add_builtin). */
#ifndef BERTH_CORE_BUILTINS_H
#define BERTH_CORE_BUILTINS_H

#include <berth/plugin.h>

/* NULL-terminated list of entry points of the built-in plugins. */
extern const berth_plugin_entry_fn builtin_plugins[];

#endif
