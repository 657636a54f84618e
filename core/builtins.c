#include <config.h>

#include "builtins.h"

/* plugins/stores/local */
extern const struct berth_plugin_desc *const *berth_content_local_entry (void);
/* plugins/snapshotters/native */
extern const struct berth_plugin_desc *const *berth_snapshotter_native_entry (void);
/* plugins/snapshotters/overlay */
extern const struct berth_plugin_desc *const *berth_snapshotter_overlay_entry (void);
/* plugins/snapshotters/fuse */
extern const struct berth_plugin_desc *const *berth_snapshotter_fuse_entry (void);
/* plugins/runtimes/namespaces (plugin.c) */
extern const struct berth_plugin_desc *const *berth_runtime_namespaces_entry (void);
/* plugins/runtimes/oci */
extern const struct berth_plugin_desc *const *berth_runtime_oci_entry (void);

/* Later issues add their entry points here (content store, snapshotters,
 * runtimes), each built from its own plugins/ folder. */
const berth_plugin_entry_fn builtin_plugins[] = {
  berth_content_local_entry,
  berth_snapshotter_native_entry,
  berth_snapshotter_overlay_entry,
  berth_snapshotter_fuse_entry,
  berth_runtime_namespaces_entry,
  berth_runtime_oci_entry,
  NULL,
};
