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
 *
 * Lazy layers (docs/design-notes.md, "Lazy eStargz pulls"; the contract
 * with the core: the remote-snapshot capability).  When the blob is not in
 * the content store and the labels say where it is in a registry
 * (FZ_LABEL_REMOTE_*), berth-fuse mounts the eStargz layer in lazy mode:
 * it fetches what is read, completes the blob in the background into
 * snapshots/<id>/blob and verifies it.  The snapshot directory then also
 * holds
 *
 *   snapshots/<id>/remote      how to reach the blob again (fz_remote: URL,
 *                              size, namespace, the headers file's path,
 *                              never a secret); its presence is what makes
 *                              the layer lazy
 *   snapshots/<id>/blob        the cache: once complete, the blob itself
 *   snapshots/<id>/blob.state  berth-fuse's block bitmap (remote.h)
 *
 * A watcher thread publishes FZ_TOPIC_BLOB_COMPLETE once the cache is
 * complete; once the content store has the blob (the core adopted the
 * cache), the layer is indexed like any other, `remote` and the cache name
 * go, and from then on it is served from the store's blob.
 */
#ifndef BERTH_FUSE_H
#define BERTH_FUSE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <berth/content.h>
#include <berth/plugin.h>
#include <berth/snapshotter.h>
#include <berth/snapstore.h>

#define FZ_LABEL_REF "containerd.io/snapshot.ref"
#define FZ_LABEL_DIGEST "containerd.io/snapshot/cri.layer-digest"
#define FZ_LABEL_MEDIA_TYPE "containerd.io/snapshot/io.berth.layer.media-type"
#define FZ_LABEL_DIFF_ID "containerd.io/snapshot/io.berth.layer.diff-id"
/* Where a blob that is not in the content store is (core/pull/lazy.h). */
#define FZ_LABEL_REMOTE_URL "containerd.io/snapshot/io.berth.remote.url"
#define FZ_LABEL_REMOTE_SIZE "containerd.io/snapshot/io.berth.remote.size"
#define FZ_LABEL_REMOTE_TOC_DIGEST "containerd.io/snapshot/io.berth.remote.toc-digest"
#define FZ_LABEL_REMOTE_PLAIN_HTTP "containerd.io/snapshot/io.berth.remote.plain-http"
#define FZ_LABEL_REMOTE_HEADERS_FILE "containerd.io/snapshot/io.berth.remote.headers-file"
#define FZ_LABEL_REMOTE_CA_FILE "containerd.io/snapshot/io.berth.remote.ca-file"
#define FZ_CAPABILITY_REMOTE "remote-snapshot"
#define FZ_TOPIC_BLOB_COMPLETE "/snapshots/io.berth.blob-complete"

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
  bool lazy;       /* config `lazy`: serve eStargz layers from registries */
  int remote_timeout_s; /* config `remote_timeout`: 0 = berth-fuse's defaults */
  int remote_retries;   /* config `remote_retries` */
  _Atomic bool stopping; /* fini: the watcher ends, a helper it runs is killed */
  /* The lazy layers not yet in the content store.  The watcher alone
   * removes entries and follows `next`; prepare and init push at the head.
   * lazy_lock guards the head and wakes the watcher (lazy_cond). */
  struct fz_lazy *lazy_head;
  pthread_mutex_t lazy_lock;
  pthread_cond_t lazy_cond;
  pthread_t watcher;
  bool watcher_started;
};

/* A lazily served layer on the watcher's list. */
struct fz_lazy
{
  struct fz_lazy *next;
  char *id;              /* snapshot id: snapshots/<id> */
  time_t published;      /* monotonic seconds of the last publish; 0 never */
  time_t retry_at;       /* adoption failed: not before this */
  unsigned failures;     /* adoptions failed in a row */
  time_t check_at;       /* next look at its server (ensure_served) */
  bool indexed;          /* index.watch built from the complete cache, diffID checked */
};

/* What re-serving a lazy layer needs, kept in snapshots/<id>/remote. */
struct fz_remote
{
  char *ns;              /* namespace it was prepared in: where the core records the blob */
  char *url;
  uint64_t size;
  char *toc_digest;      /* may be NULL */
  char *diff_id;         /* may be NULL */
  bool plain_http;
  char *headers_file;    /* may be NULL; a path, the secrets stay in it */
  char *ca_file;         /* may be NULL */
};

char *fz_path (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* ---- server.c: running berth-fuse ------------------------------------- */

/* The blob `digest` as a read-only fd from the content store: 0, NOTSUP
 * when the store cannot hand out fds, NOTFOUND. */
int fz_blob_fd (struct fz *s, berth_ctx *ctx, const char *digest, int *ret_fd, berth_error *err);
/* Running berth-fuse: ret_msg (NULL, or msglen bytes) gets the reason of a
 * failure, for a log line (a plugin cannot read a berth_error back). */
/* berth-fuse index of the blob behind blob_fd into <dir>/<name> (diff_id
 * checked when not NULL). */
int fz_index (struct fz *s, int blob_fd, const char *dir, const char *name, const char *media_type,
              const char *diff_id, char *ret_msg, size_t msglen, berth_error *err);
/* Mount the layer of <dir> (its index) on <dir>/fs; returns once it serves. */
int fz_mount (struct fz *s, int blob_fd, const char *dir, char *ret_msg, size_t msglen, berth_error *err);
/* Mount the eStargz layer `digest` of <dir> lazily from its registry on
 * <dir>/fs, the cache in <dir>/blob (resumed when there is one); returns
 * once it serves (berth-fuse has read the footer and the TOC). */
int fz_mount_lazy (struct fz *s, const char *dir, const char *digest, const struct fz_remote *rm, char *ret_msg,
                   size_t msglen, berth_error *err);

/* <dir>/remote: 0, -ENOENT for a layer that is not lazy (any more),
 * -EINVAL for a file that is not one.  _read fills rm (fz_remote_clear). */
int fz_remote_read (const char *dir, struct fz_remote *rm);
int fz_remote_write (const char *dir, const struct fz_remote *rm);
void fz_remote_clear (struct fz_remote *rm);
/* The state berth-fuse's lazy mode recorded in <dir>/blob.state (remote.h
 * enum remote_state: 0 partial, 1 complete and verified, 2 corrupt) for
 * blob `digest` of size bytes; -errno when there is none or it is for
 * another blob. */
int fz_remote_state (const char *dir, const char *digest, uint64_t size);
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
