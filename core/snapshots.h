/* Namespaced snapshots: the metadata records (core/metadata/meta-snapshots.c)
 * paired with the snapshotter plugin calls, containerd's
 * metadata/snapshot.go.  Used by the Snapshots service, Diff and the
 * daemon-side pull.
 *
 * Keys name snapshots within (namespace, snapshotter); the plugin sees
 * "<ns>/<seq>/<key>".  Mutations take a shared lock and GC's backend sweep
 * an exclusive one, so a plugin snapshot that is being created (and not yet
 * recorded) is never taken for an orphan.
 *
 * Everything here blocks (plugin calls, SQLite writes): worker threads only.
 */
#ifndef BERTH_CORE_SNAPSHOTS_H
#define BERTH_CORE_SNAPSHOTS_H

#include <stdbool.h>

#include <berth/snapshotter.h>

#include "metadata/meta.h"
#include "registry.h"

/* One caller's view: namespace, snapshotter and lease (may be NULL). */
struct snaps
{
  meta *m;
  plugin *p;
  const char *snapshotter; /* the plugin's id: "overlayfs", "native" */
  const char *ns;
  const char *lease;
};

/* The snapshotter plugin with this id: BERTH_E_INVALID when id is empty,
 * BERTH_E_NOTFOUND "snapshotter not loaded: <id>" when there is none or it
 * is not ok (its status and reason in the message). */
int snaps_plugin (registry *reg, const char *id, plugin **ret, berth_error **err);

/* Prepare (view false) or View (view true) key on parent ("" or NULL: none).
 * Labels are kept in the metadata; the plugin gets the inherited ones
 * (containerd.io/snapshot/...).  BERTH_E_EXISTS when key is taken,
 * BERTH_E_NOTFOUND when parent does not exist.  ret_mounts may be NULL.
 * With the label containerd.io/snapshot.ref = TARGET (containerd's remote
 * snapshotter protocol) the plugin gets TARGET's backend name in that label
 * and may commit the layer itself and answer EXISTS: TARGET is then
 * recorded as committed on parent, with the labels and a GC reference to
 * the blob named by containerd.io/snapshot/cri.layer-digest, and
 * BERTH_E_EXISTS is returned: the layer is there, nothing to apply. */
int snaps_create (const struct snaps *s, const char *key, const char *parent, const berth_labels *labels, bool view,
                  berth_mounts *ret_mounts, berth_error **err);
/* BERTH_E_EXISTS when name is taken, BERTH_E_NOTFOUND when key does not exist. */
int snaps_commit (const struct snaps *s, const char *name, const char *key, const berth_labels *labels,
                  berth_error **err);
/* BERTH_E_PRECONDITION while children exist.  The plugin's data goes at once
 * (or at the next GC when the plugin refuses). */
int snaps_remove (const struct snaps *s, const char *key, berth_error **err);
int snaps_mounts (const struct snaps *s, const char *key, berth_mounts *ret_mounts, berth_error **err);
int snaps_usage (const struct snaps *s, const char *key, struct berth_snapshot_usage *ret_usage, berth_error **err);

/* GC: the exclusive lock around the metadata sweep and snaps_sweep_backend. */
void snaps_lock_exclusive (void);
void snaps_unlock_exclusive (void);
/* Remove the plugin's snapshots that no namespace records (children first),
 * then let it reclaim space (cleanup).  Call with the exclusive lock held.
 * *ret_removed (may be NULL) counts them. */
int snaps_sweep_backend (meta *m, plugin *p, bool dry_run, size_t *ret_removed, berth_error **err);

#endif
