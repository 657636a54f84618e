/* berth plugin SDK: snapshot metadata for snapshotter plugins
 * (libberth-snapstore, pkg-config berth-snapstore).
 *
 * Every snapshotter keeps the same records that containerd keeps in
 * snapshots/storage: key -> id, kind, parent chain, labels, times, and the
 * usage recorded at commit.  This library keeps them in one SQLite file
 * (WAL mode) that the plugin owns, normally "<ictx->root>/metadata.db".
 * The snapshot *data* stays the plugin's business: the store hands out an
 * id (decimal text, never reused) that the plugin uses as a directory name.
 *
 * Semantics follow containerd's storage package:
 *  - keys of active snapshots and views and names of committed snapshots
 *    share one key space;
 *  - a parent is always a committed snapshot; parent chains are answered as
 *    ids from the nearest parent down to the base (overlay's lowerdir order);
 *  - commit turns an active snapshot into a committed one under a new name,
 *    keeping its id (the directory does not move);
 *  - remove answers the id and kind so the plugin can delete the directory
 *    after the transaction committed, and refuses while children exist.
 *
 * Errors: every fallible function returns 0 or a negative BERTH_E_* code
 * and fills the plugin-call's `berth_error *err` (may be NULL) through the
 * host table given to berth_snapstore_open(), with messages that name the
 * keys, e.g. "snapshot `k1` does not exist".
 *
 * Labels go in and out through the host's label maps (host->labels_next,
 * host->labels_set); the store never creates one.
 *
 * Threads: a store may be used from any number of threads.  A transaction
 * holds the store's lock from begin to commit/rollback and belongs to the
 * thread that began it; beginning a second one in the same thread answers
 * BERTH_E_INTERNAL instead of deadlocking.  Keep transactions short: copy
 * trees or unpack outside them.  berth_snapstore_walk() takes its own
 * transaction and releases it before calling back, so the callback may use
 * the store (and the plugin) again.
 *
 * The library uses no host symbol: link it into the plugin
 * (`pkg-config --libs berth-snapstore`); only the functions below are
 * exported.
 */
#ifndef BERTH_SNAPSTORE_H
#define BERTH_SNAPSTORE_H

#include <stdint.h>

#include <berth/plugin.h>
#include <berth/snapshotter.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct berth_snapstore berth_snapstore;
typedef struct berth_snaptx berth_snaptx;

/* Room for an id, with its NUL ("18446744073709551615"). */
#define BERTH_SNAPSTORE_ID_MAX 24

/* One snapshot record as the plugin needs it to find its data.
 * Allocated by the store; free with berth_snapstore_snapshot_free(). */
struct berth_snapstore_snapshot
{
  char id[BERTH_SNAPSTORE_ID_MAX]; /* decimal, unique, never reused */
  uint32_t kind;                   /* enum berth_snapshot_kind */
  size_t n_parents;
  char **parent_ids; /* n_parents ids + NULL, nearest parent first; never NULL */
  int64_t inodes;    /* committed: the usage given at commit; otherwise 0 */
  int64_t bytes;
};

/* Open (creating if needed) the store at `path`.  `host` must outlive the
 * store.  BERTH_E_INTERNAL when the file cannot be opened or its schema is
 * newer than this library. */
BERTH_PUBLIC int berth_snapstore_open (const struct berth_host *host, const char *path,
                                       berth_snapstore **ret_store, berth_error *err);
/* Accepts NULL.  No transaction may be open. */
BERTH_PUBLIC void berth_snapstore_close (berth_snapstore *s);

/* ---- transactions ------------------------------------------------------ */

/* writable: 1 for a write transaction (needed by create, commit, remove,
 * update), 0 for a read-only one. */
BERTH_PUBLIC int berth_snapstore_begin (berth_snapstore *s, int writable, berth_snaptx **ret_tx, berth_error *err);
/* Commit and free tx, whatever the result (on failure the changes are rolled back). */
BERTH_PUBLIC int berth_snapstore_commit (berth_snaptx *tx, berth_error *err);
/* Roll back and free tx.  Accepts NULL, so it suits a cleanup attribute. */
BERTH_PUBLIC void berth_snapstore_rollback (berth_snaptx *tx);

/* ---- records ------------------------------------------------------------ */

/* Create an active snapshot or a view (kind BERTH_SNAPSHOT_ACTIVE or
 * BERTH_SNAPSHOT_VIEW) under `key`, on `parent` (a committed name, or NULL
 * or "" for none), with `labels` (may be NULL).  *ret_snap (may be NULL)
 * gets the new id and the parent chain.
 * EXISTS when key is taken, NOTFOUND when parent does not exist, INVALID for
 * an empty key, a bad kind or a parent that is not committed. */
BERTH_PUBLIC int berth_snapstore_create (berth_snaptx *tx, uint32_t kind, const char *key, const char *parent,
                                         const berth_labels *labels, struct berth_snapstore_snapshot **ret_snap,
                                         berth_error *err);

/* Id, kind, parent chain and recorded usage of `key`.  NOTFOUND. */
BERTH_PUBLIC int berth_snapstore_get (berth_snaptx *tx, const char *key, struct berth_snapstore_snapshot **ret_snap,
                                      berth_error *err);

/* Fill ret_info (host-allocated, fields written only when BERTH_HAS):
 * kind, name, parent, created_at, updated_at, and the labels into
 * ret_info->labels when not NULL.  ret_id (may be NULL) gets the id.
 * NOTFOUND. */
BERTH_PUBLIC int berth_snapstore_get_info (berth_snaptx *tx, const char *key, struct berth_snapshot_info *ret_info,
                                           char ret_id[BERTH_SNAPSTORE_ID_MAX], berth_error *err);

/* containerd's UpdateInfo: info->name names the snapshot; fieldpaths NULL,
 * empty or containing "labels" replace every label with info->labels;
 * "labels.<key>" sets that key from info->labels or deletes it when absent
 * there.  Any other field is INVALID.  updated_at becomes now.  ret_info
 * (may be NULL) is filled as by get_info.  NOTFOUND. */
BERTH_PUBLIC int berth_snapstore_update_info (berth_snaptx *tx, const struct berth_snapshot_info *info,
                                              const char *const *fieldpaths, struct berth_snapshot_info *ret_info,
                                              berth_error *err);

/* Commit the active snapshot `key` as `name`: the record moves to `name`
 * with kind COMMITTED, the same id and parent, the given labels (the active
 * snapshot's labels are dropped, as in containerd), created/updated now and
 * `usage` (may be NULL) recorded.  ret_id (may be NULL) gets the id.
 * NOTFOUND for key, EXISTS for name, PRECONDITION when key is not active. */
BERTH_PUBLIC int berth_snapstore_commit_active (berth_snaptx *tx, const char *key, const char *name,
                                                const berth_labels *labels, const struct berth_snapshot_usage *usage,
                                                char ret_id[BERTH_SNAPSTORE_ID_MAX], berth_error *err);

/* Remove the record of `key`; ret_id and ret_kind (may be NULL) say what it
 * was, so the plugin can delete the data once the transaction committed.
 * NOTFOUND; PRECONDITION "cannot remove snapshot with child" while children exist. */
BERTH_PUBLIC int berth_snapstore_remove (berth_snaptx *tx, const char *key, char ret_id[BERTH_SNAPSTORE_ID_MAX],
                                         uint32_t *ret_kind, berth_error *err);

/* Every id the store knows, NULL-terminated, ascending (free with
 * berth_snapstore_strv_free).  For cleanup: a directory whose name is not
 * in this list belongs to no snapshot. */
BERTH_PUBLIC int berth_snapstore_ids (berth_snaptx *tx, char ***ret_ids, berth_error *err);

/* Call fn for every snapshot matching `filters` (containerd's filter syntax
 * over the fields kind ("active", "view", "committed"), name, parent and
 * labels.<key>; NULL or empty matches all; several filters are OR-ed).
 * Takes its own read transaction (none may be open in this thread) and
 * calls fn after releasing it.  info->labels is NULL (the ABI gives plugins
 * no way to make a label map; callers stat for labels).  A non-zero return
 * from fn stops the walk; a negative one is returned.  ctx (may be NULL) is
 * polled for cancellation between callbacks: BERTH_E_CANCELLED. */
BERTH_PUBLIC int berth_snapstore_walk (berth_snapstore *s, berth_ctx *ctx, const char *const *filters,
                                       berth_snapshot_info_fn fn, void *data, berth_error *err);

/* ---- helpers every snapshotter needs ------------------------------------ */

/* containerd's fs.DiskUsage: inodes and bytes (st_blocks * 512) of the tree
 * at `path`, counting each hard-linked inode once; does not cross mounts. */
BERTH_PUBLIC int berth_snapstore_disk_usage (const berth_snapstore *s, const char *path,
                                             struct berth_snapshot_usage *ret_usage, berth_error *err);

/* rm -rf `name` under the directory dirfd (AT_FDCWD for a path); ENOENT is
 * success.  Does not follow symlinks nor cross mounts (EBUSY/EXDEV stops
 * with an error instead of deleting another filesystem). */
BERTH_PUBLIC int berth_snapstore_remove_tree (const berth_snapstore *s, int dirfd, const char *name,
                                              berth_error *err);

BERTH_PUBLIC void berth_snapstore_snapshot_free (struct berth_snapstore_snapshot *snap);
BERTH_PUBLIC void berth_snapstore_strv_free (char **strv);

/* The kind as containerd names it ("active", "view", "committed"), or "unknown". */
BERTH_PUBLIC const char *berth_snapstore_kind_name (uint32_t kind);

#ifdef __cplusplus
}
#endif
#endif
