/* io.berth.snapshotter.v1.native: snapshots as plain directory copies
 * (containerd's snapshots/native).  Works on every filesystem.
 *
 * Layout under the plugin root (<root>/io.berth.snapshotter.v1.native, or
 * the `root_path` config key):
 *
 *   metadata.db        the libberth-snapstore records (key -> id, ...)
 *   snapshots/<id>/    the tree of one snapshot, bind-mounted as its root
 *   tmp/new-XXXXXX/    a prepare copying its parent, not yet recorded
 *   removed/<id>/      a removed snapshot being deleted
 *
 * Crash safety: a directory enters snapshots/ by rename inside the write
 * transaction that records it, and leaves it by rename inside the one that
 * removes the record; deletion happens afterwards.  So after a crash
 * snapshots/ may only hold directories no record names (cleanup removes
 * them), tmp/ and removed/ only garbage (init and cleanup empty them).
 *
 * Threads: every method may run on several worker threads at once.  Tree
 * copies and disk usage run outside store transactions, so prepares of
 * different snapshots proceed in parallel.
 */
#ifndef BERTH_NATIVE_H
#define BERTH_NATIVE_H

#include <stdbool.h>
#include <sys/types.h>

#include <berth/plugin.h>
#include <berth/snapshotter.h>
#include <berth/snapstore.h>

struct native
{
  const struct berth_host *host;
  berth_plugin *plugin;
  char *root;
  char *snapshots; /* <root>/snapshots */
  char *tmp;       /* <root>/tmp */
  char *removed;   /* <root>/removed */
  berth_snapstore *store;
};

/* ---- copy.c ---------------------------------------------------------- */

/* Copy the tree `src` into the existing, empty directory `dst`, preserving
 * type, ownership, mode (setuid/setgid/sticky included), xattrs, mtimes and
 * atimes, device numbers, symlink targets and hard links within the tree;
 * dst itself takes src's metadata.  File data is reflinked (FICLONE) where
 * the filesystem allows, else copied with copy_file_range (holes kept),
 * else read/write.  Polls ctx for cancellation. */
int native_copy_tree (struct native *s, berth_ctx *ctx, const char *src, const char *dst, berth_error *err);

/* host->error_set with a code for errnum (ENOSPC/EDQUOT: EXHAUSTED,
 * EPERM/EACCES: PERMISSION, ENOENT: NOTFOUND, else INTERNAL). */
int native_errno_code (int errnum);
#define native_sys_error(s, err, errnum, ...) \
  ((s)->host->error_set ((err), native_errno_code (errnum), (errnum), __VA_ARGS__))

#endif
