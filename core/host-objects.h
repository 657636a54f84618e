/* The host objects that cross the plugin boundary: call context, mount
 * lists, label maps and byte buffers.  Plugins see them only as opaque
 * pointers and reach them through the host table (struct berth_host);
 * the core uses these functions directly.
 */
#ifndef BERTH_CORE_HOST_OBJECTS_H
#define BERTH_CORE_HOST_OBJECTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <berth/plugin.h>

/* One API call.  `cancelled` may be set from the loop thread while a worker
 * runs the call; plugins poll it through host->ctx_cancelled. */
struct berth_ctx
{
  const char *namespace;
  const char *lease;
  atomic_int cancelled;
  int64_t deadline_ms; /* CLOCK_MONOTONIC ms, 0 for none */
  const char *(*metadata) (void *data, const char *key);
  void *metadata_data;
};

void ctx_init (berth_ctx *ctx, const char *ns, const char *lease);
bool ctx_is_cancelled (const berth_ctx *ctx);
const char *ctx_get (const berth_ctx *ctx, const char *key);

struct berth_mount
{
  char *type;
  char *source;
  char *target;
  char **options; /* NULL-terminated */
};

struct berth_mounts
{
  struct berth_mount *items;
  size_t n;
};

void mounts_clear (berth_mounts *m);
int mounts_add (berth_mounts *m, const char *type, const char *source, const char *target,
                const char *const *options);

/* A small ordered string map (labels rarely exceed a few dozen entries). */
struct berth_labels
{
  char **keys;
  char **values;
  size_t n;
};

void labels_clear (berth_labels *l);
const char *labels_get (const berth_labels *l, const char *key);
int labels_set (berth_labels *l, const char *key, const char *value);
int labels_next (const berth_labels *l, size_t *iter, const char **key, const char **value);

struct berth_buf
{
  unsigned char *data;
  size_t len;
  size_t cap;
  size_t max; /* refuse growth beyond this (0: 64 MiB) */
};

void buf_clear (berth_buf *b);
int buf_append (berth_buf *b, const void *data, size_t len);

#endif
