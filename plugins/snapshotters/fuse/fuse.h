/* io.berth.snapshotter.v1.fuse: layers served read-only over FUSE straight
 * from their blobs in the content store, containers on a kernel overlay of
 * those FUSE lowers.
 *
 * A layer arrives through containerd's remote-snapshotter protocol: the
 * unpacker prepares "extract-..." with the labels containerd.io/snapshot.ref
 * (the backend name the layer will be committed as) and
 * containerd.io/snapshot/cri.layer-digest (+ berth's media type and diffID
 * labels).  The plugin then takes a read-only fd of the blob from the
 * content store (ABI 1.2 blob_fd), has berth-fuse build the layer's index
 * (checking the diffID), mounts it with berth-fuse on snapshots/<id>/fs,
 * commits the snapshot under the target name itself and answers EXISTS, so
 * nothing is unpacked: disk use is the blob plus its index.  Any other
 * prepare or view is an ordinary overlay snapshot whose lowers may be FUSE
 * layers; a layer applied by the unpacker (no labels, or a content store
 * without blob_fd) is an ordinary directory layer.
 *
 * Layout under <root>/io.berth.snapshotter.v1.fuse:
 *
 *   metadata.db              the snapshot records (libberth-snapstore)
 *   snapshots/<id>/fs        upperdir while active; a FUSE mountpoint for a
 *                            served layer, else an ordinary committed layer
 *   snapshots/<id>/work      overlay's workdir (active snapshots)
 *   snapshots/<id>/layer     a served layer: "<digest>\n<media type>\n"
 *   snapshots/<id>/index     its berth-fuse index
 *   snapshots/<id>/server.log  what its berth-fuse server logs
 *   snapshots/new-XXXXXX, rm-<id>  being created / deleted
 *
 * The berth-fuse servers detach from berthd: containers keep their root
 * filesystems when berthd dies.  At init every served layer whose mount is
 * missing or dead (ENOTCONN after a crash of its server or a reboot) is
 * mounted again from its blob and kept index.
 */
#ifndef BERTH_FUSE_H
#define BERTH_FUSE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <berth/content.h>
#include <berth/plugin.h>
#include <berth/snapshotter.h>
#include <berth/snapstore.h>

#define FZ_LABEL_REF "containerd.io/snapshot.ref"
#define FZ_LABEL_DIGEST "containerd.io/snapshot/cri.layer-digest"
#define FZ_LABEL_MEDIA_TYPE "containerd.io/snapshot/io.berth.layer.media-type"
#define FZ_LABEL_DIFF_ID "containerd.io/snapshot/io.berth.layer.diff-id"

struct fz
{
  const struct berth_host *host;
  berth_plugin *plugin;
  char *root;      /* plugin root */
  char *snapshots; /* <root>/snapshots */
  char *binary;    /* berth-fuse */
  char *content_id; /* the content store whose blobs are served */
  bool index_off;  /* overlay has an index option: mount with index=off as containerd */
  size_t max_data; /* page size - 1: the kernel's limit on mount data */
  int timeout_s;   /* for one berth-fuse index or mount run */
  pthread_mutex_t serve_lock; /* one (re)mount of a served layer at a time */
  berth_snapstore *store;
};

char *fz_path (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* ---- server.c: running berth-fuse ------------------------------------- */

/* The blob `digest` as a read-only fd from the content store: 0, NOTSUP
 * when the store cannot hand out fds, NOTFOUND. */
int fz_blob_fd (struct fz *s, berth_ctx *ctx, const char *digest, int *ret_fd, berth_error *err);
/* berth-fuse index of the blob behind blob_fd into <dir>/index (diff_id
 * checked when not NULL). */
int fz_index (struct fz *s, int blob_fd, const char *dir, const char *media_type, const char *diff_id,
              berth_error *err);
/* Mount the layer of <dir> (its index) on <dir>/fs; returns once it serves. */
int fz_mount (struct fz *s, int blob_fd, const char *dir, berth_error *err);
/* 1 when <dir>/fs is a live fuse.berth mount, 0 when not mounted, -1 when
 * mounted but dead (its server gone: ENOTCONN). */
int fz_mount_state (const char *dir);
/* Unmount <dir>/fs if mounted (lazily: a container's overlay may still hold
 * it, its server ends with the last user).  0 or -errno. */
int fz_unmount (const char *dir);
/* Read <dir>/layer: 0 with digest and media type set, -ENOENT for a layer
 * that is not served. */
int fz_layer_read (const char *dir, char *digest, size_t dlen, char *media_type, size_t mlen);
int fz_layer_write (const char *dir, const char *digest, const char *media_type);

/* The built-in entry point (core/builtins.c). */
const struct berth_plugin_desc *const *berth_snapshotter_fuse_entry (void);

#endif
