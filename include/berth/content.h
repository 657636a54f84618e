/* berth plugin SDK: content store plugins (kind BERTH_KIND_CONTENT,
 * type "io.berth.content.v1").
 *
 * Mirrors containerd's content.Store: blobs addressed by digest, written
 * through resumable ingests identified by a client-chosen `ref`.  All methods
 * may block (disk I/O); the core calls them from its worker threads, never
 * from the event loop.  Methods of one writer or reader are never called
 * concurrently; different writers/readers may be used from different threads.
 */
#ifndef BERTH_CONTENT_H
#define BERTH_CONTENT_H

#include <berth/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct berth_content_reader berth_content_reader; /* plugin-owned */
typedef struct berth_content_writer berth_content_writer; /* plugin-owned */

struct berth_content_info
{
  uint32_t size;
  char digest[BERTH_DIGEST_MAX]; /* "sha256:<hex>" */
  int64_t blob_size;
  int64_t created_at; /* ns since the epoch */
  int64_t updated_at;
  berth_labels *labels; /* host-provided; fill with host->labels_set */
};

struct berth_content_status
{
  uint32_t size;
  char ref[BERTH_NAME_MAX];
  int64_t offset;   /* bytes already written: a reopened writer continues here */
  int64_t total;    /* expected size, 0 when unknown */
  char expected[BERTH_DIGEST_MAX];
  int64_t started_at;
  int64_t updated_at;
};

/* Return 0 to continue, a negative code to stop the walk with that code. */
typedef int (*berth_content_info_fn) (const struct berth_content_info *info, void *data);
typedef int (*berth_content_status_fn) (const struct berth_content_status *st, void *data);

struct berth_content_ops
{
  uint32_t size;

  int (*info) (void *self, berth_ctx *ctx, const char *digest, struct berth_content_info *ret_info,
               berth_error *err);
  /* Update the fields named in fieldpaths ("labels", "labels.<key>"); NULL means all. */
  int (*update) (void *self, berth_ctx *ctx, const struct berth_content_info *info,
                 const char *const *fieldpaths, struct berth_content_info *ret_info, berth_error *err);
  /* filters use containerd's filter syntax; NULL or empty matches everything. */
  int (*walk) (void *self, berth_ctx *ctx, const char *const *filters, berth_content_info_fn fn, void *data,
               berth_error *err);
  int (*delete) (void *self, berth_ctx *ctx, const char *digest, berth_error *err);

  int (*reader_open) (void *self, berth_ctx *ctx, const char *digest, berth_content_reader **ret_reader,
                      berth_error *err);
  /* Read up to len bytes at off; *ret_n is 0 only at the end of the blob. */
  int (*reader_read_at) (void *self, berth_content_reader *r, void *buf, size_t len, int64_t off,
                         size_t *ret_n, berth_error *err);
  int64_t (*reader_size) (void *self, berth_content_reader *r);
  void (*reader_close) (void *self, berth_content_reader *r);

  /* Open (or reopen, to resume) the ingest `ref`.  total and expected may be 0/NULL.
   * BERTH_E_EXISTS when expected is already committed; BERTH_E_UNAVAILABLE when
   * another writer holds ref. */
  int (*writer_open) (void *self, berth_ctx *ctx, const char *ref, int64_t total, const char *expected,
                      berth_content_writer **ret_writer, berth_error *err);
  int (*writer_write) (void *self, berth_content_writer *w, const void *buf, size_t len, berth_error *err);
  int (*writer_status) (void *self, berth_content_writer *w, struct berth_content_status *ret_status,
                        berth_error *err);
  /* Verify size (if > 0) and expected digest (if not NULL), fsync, rename into place.
   * On mismatch nothing is committed and the ingest is kept. */
  int (*writer_commit) (void *self, berth_content_writer *w, int64_t size, const char *expected,
                        const berth_labels *labels, berth_error *err);
  int (*writer_truncate) (void *self, berth_content_writer *w, int64_t size, berth_error *err);
  /* Release the writer; the ingest stays on disk for a later resume. */
  void (*writer_close) (void *self, berth_content_writer *w);

  int (*status) (void *self, berth_ctx *ctx, const char *ref, struct berth_content_status *ret_status,
                 berth_error *err);
  int (*list_statuses) (void *self, berth_ctx *ctx, const char *const *filters, berth_content_status_fn fn,
                        void *data, berth_error *err);
  int (*abort) (void *self, berth_ctx *ctx, const char *ref, berth_error *err);

  /* 1.2: a read-only file descriptor (O_CLOEXEC) of the committed blob
   * `digest`, for a helper process that serves the blob's bytes after the
   * call returns and may outlive the daemon (the fuse snapshotter's layer
   * server).  The caller owns and closes it.  The bytes behind it never
   * change; deleting the blob later does not invalidate it.  NOTFOUND;
   * NOTSUP (or a NULL method) for a store whose blobs are not files. */
  int (*blob_fd) (void *self, berth_ctx *ctx, const char *digest, int *ret_fd, berth_error *err);

  /* 1.3: make the complete, immutable file open as `fd` the blob `digest` (size bytes): the store checks size
   * and digest by reading fd, then files it without copying where it can (a hard link of the same inode on
   * the same filesystem), else copies it.  The caller must not write to the file afterwards.
   * EXISTS when the blob is present already; INVALID on a size/digest mismatch (nothing stored);
   * NOTSUP (or a NULL method) for a store that cannot. labels as for writer_commit (may be NULL). */
  int (*adopt) (void *self, berth_ctx *ctx, int fd, int64_t size, const char *digest, const berth_labels *labels,
                berth_error *err);
};

/* The size of the 1.0 layout: the least the host accepts in ops->size. */
#define BERTH_CONTENT_OPS_SIZE_1_0 (offsetof (struct berth_content_ops, abort) + sizeof (void (*) (void)))

#ifdef __cplusplus
}
#endif
#endif
