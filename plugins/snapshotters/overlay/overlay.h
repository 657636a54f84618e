/* io.berth.snapshotter.v1.overlayfs: snapshots as overlayfs layers, with
 * containerd's snapshots/overlay semantics.
 *
 * Layout under the plugin root (<root>/io.berth.snapshotter.v1.overlayfs):
 *
 *   metadata.db            the snapshot records (libberth-snapstore)
 *   snapshots/<id>/fs      the layer: upperdir while active, a lowerdir once
 *                          committed; the whole tree of a snapshot with no parent
 *   snapshots/<id>/work    overlay's workdir (active snapshots only)
 *   snapshots/new-XXXXXX   a snapshot being created (renamed to <id> in the
 *                          same transaction that records it)
 *   snapshots/rm-<id>      a snapshot being deleted
 *   l/<id>                 symlink to ../snapshots/<id>/fs, a short name for
 *                          long lowerdir chains (as Docker's overlay2 l/ dir)
 *
 * Long chains: the kernel copies at most one page of mount data, so a
 * lowerdir chain of full paths stops fitting at a few dozen layers.  The
 * mount options are tried in three spellings, the first that fits wins:
 * full paths (what containerd returns), <root>/l/<id>, and
 * <anchor>/<id>, where the anchor is a symlink to <root>/l kept on a
 * short path (short_link_dir, /run by default: /run/bo-<hash of root>).
 * The kernel resolves the links when the overlay is mounted, so the
 * mounts stay valid for whoever mounts them later (no chdir needed).
 *
 * Threads: every method may run on several workers at once.  The records
 * are guarded by the store's transactions; a snapshot's directory is
 * created, renamed and listed for cleanup only inside a write transaction,
 * so cleanup never sees another call's half-made directory.  Trees are
 * measured and deleted outside transactions.
 */
#ifndef BERTH_OVERLAY_H
#define BERTH_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <berth/plugin.h>
#include <berth/snapshotter.h>
#include <berth/snapstore.h>

/* containerd's label carrying the upperdir of a snapshot (upperdir_label). */
#define OVL_UPPERDIR_LABEL "containerd.io/snapshot/overlay.upperdir"

struct ovl
{
  const struct berth_host *host;
  berth_plugin *plugin;
  char *root;      /* plugin root */
  char *snapshots; /* <root>/snapshots */
  char *links;     /* <root>/l */
  char *anchor;    /* short symlink to links, or NULL when unavailable */
  char **options;  /* overlay mount options: config, then userxattr and index=off as containerd adds them */
  size_t noptions;
  bool upperdir_label;
  size_t max_data; /* the kernel's limit on mount data: page size - 1 */
  berth_snapstore *store;
};

char *ovl_path (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* ---- detect.c --------------------------------------------------------- */

/* What init finds out about overlayfs on this host. */
struct ovl_facts
{
  const char *root;
  bool proc_lists_overlay; /* /proc/filesystems has "overlay" */
  int dtype;               /* 1 supported, 0 not (DT_UNKNOWN), -errno when the check failed */
  int probe_errno;         /* 0 when the probe mount worked */
  int options_errno;       /* the probe failed with s->options but worked without them */
  char fstype[32];         /* backing filesystem of root: "ext4", "xfs", "0x1234" */
  char fsbuf[32];
};

/* Gather the facts: reads /proc/filesystems, statfs and d_type of the
 * root, and mounts a probe overlay (two lowers, upper, work) under it with
 * s->options.  Returns 0 or -ENOMEM; the verdict is ovl_detect_reason's. */
int ovl_detect (struct ovl *s, struct ovl_facts *ret);
/* NULL when overlayfs is usable, else the reason for a SKIP (malloc'd). */
char *ovl_detect_reason (const struct ovl_facts *f);
/* Whether the text of /proc/filesystems lists overlay. */
bool ovl_proc_lists_overlay (const char *text);
/* Whether the text of /proc/self/uid_map is the initial user namespace's. */
bool ovl_uid_map_is_initial (const char *text);
/* Mount and unmount a probe overlay under dir: 0 or -errno. */
int ovl_probe_mount (const char *dir, const char *const *extra, size_t nextra);
const char *ovl_fs_name (unsigned long magic, char *buf, size_t len);
/* containerd's supportsIndex and NeedsUserXAttr. */
bool ovl_supports_index (void);
bool ovl_needs_userxattr (const char *root);

/* ---- mounts.c ---------------------------------------------------------- */

/* The mount of one snapshot, before it is handed to the host. */
struct ovl_mount
{
  const char *type; /* "bind" or "overlay" (static) */
  char *source;
  char **options; /* NULL-terminated */
  size_t n;
};

void ovl_mount_clear (struct ovl_mount *m);
/* containerd's mounts(): a bind of fs without parents (ro for a view), a
 * ro bind of the parent for a view on one parent, otherwise an overlay
 * with s->options, workdir and upperdir (active) and the lowerdir chain,
 * nearest parent first, shortened through l/ when it does not fit.
 * BERTH_E_INVALID when even the shortest spelling exceeds the page. */
int ovl_mount_build (struct ovl *s, const struct berth_snapstore_snapshot *snap, struct ovl_mount *ret,
                     berth_error *err);
int ovl_mount_emit (struct ovl *s, const struct ovl_mount *m, berth_mounts *ret_mounts, berth_error *err);
/* Length of the options joined with commas, as the mount data page gets them. */
size_t ovl_options_length (char *const *options, size_t n);

/* l/<id> → ../snapshots/<id>/fs; 0 or -errno (EEXIST is success). */
int ovl_link_create (struct ovl *s, const char *id);
/* Point the anchor <dir>/bo-<hash of root> at s->links; sets s->anchor.
 * 0 or -errno. */
int ovl_anchor_setup (struct ovl *s, const char *dir);
void ovl_anchor_remove (struct ovl *s);

/* The built-in entry point (core/builtins.c). */
const struct berth_plugin_desc *const *berth_snapshotter_overlay_entry (void);

#endif
