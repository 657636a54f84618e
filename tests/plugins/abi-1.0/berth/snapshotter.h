/* FROZEN COPY at ABI 1.0 (see plugin.h in this directory): never edit. */
/* berth plugin SDK: snapshotter plugins (kind BERTH_KIND_SNAPSHOTTER,
 * type "io.berth.snapshotter.v1").
 *
 * Mirrors containerd's snapshots.Snapshotter: keys name active snapshots and
 * views, names of committed ones; `parent` is always a committed name.
 * Methods may block; they are called from worker threads.  Keys are unique
 * across the whole snapshotter (the core prefixes them per namespace).
 */
#ifndef BERTH_SNAPSHOTTER_H
#define BERTH_SNAPSHOTTER_H

#include <berth/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same numbers as containerd's snapshots.Kind. */
enum berth_snapshot_kind
{
  BERTH_SNAPSHOT_UNKNOWN = 0,
  BERTH_SNAPSHOT_VIEW = 1,
  BERTH_SNAPSHOT_ACTIVE = 2,
  BERTH_SNAPSHOT_COMMITTED = 3,
};

struct berth_snapshot_info
{
  uint32_t size;
  uint32_t kind; /* enum berth_snapshot_kind */
  char name[BERTH_NAME_MAX];
  char parent[BERTH_NAME_MAX]; /* "" when none */
  int64_t created_at;          /* ns since the epoch */
  int64_t updated_at;
  berth_labels *labels; /* host-provided */
};

struct berth_snapshot_usage
{
  uint32_t size;
  int64_t inodes;
  int64_t bytes;
};

typedef int (*berth_snapshot_info_fn) (const struct berth_snapshot_info *info, void *data);

struct berth_snapshotter_ops
{
  uint32_t size;

  int (*stat) (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info,
               berth_error *err);
  /* Update the fields named in fieldpaths ("labels", "labels.<key>"); NULL means labels. */
  int (*update) (void *self, berth_ctx *ctx, const struct berth_snapshot_info *info,
                 const char *const *fieldpaths, struct berth_snapshot_info *ret_info, berth_error *err);
  int (*usage) (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_usage *ret_usage,
                berth_error *err);
  int (*mounts) (void *self, berth_ctx *ctx, const char *key, berth_mounts *ret_mounts, berth_error *err);
  int (*prepare) (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
                  berth_mounts *ret_mounts, berth_error *err);
  int (*view) (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
               berth_mounts *ret_mounts, berth_error *err);
  int (*commit) (void *self, berth_ctx *ctx, const char *name, const char *key, const berth_labels *labels,
                 berth_error *err);
  /* BERTH_E_PRECONDITION while children exist. */
  int (*remove) (void *self, berth_ctx *ctx, const char *key, berth_error *err);
  int (*walk) (void *self, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn, void *data,
               berth_error *err);
  /* Reclaim space of removed snapshots (containerd's Cleaner). */
  int (*cleanup) (void *self, berth_ctx *ctx, berth_error *err);
};

#ifdef __cplusplus
}
#endif
#endif
