/* io.berth.content.v1.local: the content store on the local disk.
 *
 * Layout under the plugin root (<root>/io.berth.content.v1.local), as in
 * containerd's content/local store:
 *
 *   blobs/<alg>/<hex>             committed blobs, mode 0444, never rewritten
 *   labels/<alg>/<hex>            labels of a blob, a JSON object (sidecar)
 *   ingest/<sha256(ref)>/         one resumable upload:
 *       data ref total expected startedat updatedat
 *   ingest/adopt-<alg>-<hex>.<pid>.<n>
 *                                 a file being adopted (ABI 1.3): a hard link
 *                                 of the caller's file or a copy, renamed into
 *                                 blobs/ once verified; a leftover one (a crash
 *                                 mid-adopt) is removed at start-up
 *
 * The ingest directory is named by the hash of the client's ref, so that a
 * ref with '/' or '..' never reaches a path.  Digests are validated before
 * they are turned into paths.
 *
 * Threads: every method may be called from several worker threads at once.
 * `lock` guards the set of refs held by open writers (one writer per ref)
 * and serialises label updates; blob and ingest I/O runs outside it, so
 * writers of different refs proceed in parallel.
 */
#ifndef BERTH_LOCAL_H
#define BERTH_LOCAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <berth/content.h>
#include <berth/plugin.h>

#define LOCAL_MAX_HEX 128 /* sha512 */

/* Names of adopt's temporary files in ingest/ (never an ingest: those are 64 hex digits). */
#define LOCAL_ADOPT_PREFIX "adopt-"

struct local
{
  const struct berth_host *host;
  berth_plugin *plugin;
  char *root;
  char *blobs;  /* <root>/blobs */
  char *labels; /* <root>/labels */
  char *ingest; /* <root>/ingest */
  int64_t ingest_max_age; /* seconds; 0 keeps every ingest */

  pthread_mutex_t lock;
  bool lock_ready;
  char **held; /* refs held by open writers */
  size_t nheld, capheld;
  pthread_mutex_t labels_lock; /* read-modify-write of label sidecars */
  bool labels_lock_ready;
};

/* A validated digest: algorithm and lowercase hex. */
struct local_digest
{
  char alg[8];                   /* "sha256" or "sha512" */
  char hex[LOCAL_MAX_HEX + 1];
};

/* ---- util.c ---------------------------------------------------------- */

/* free(*p) at scope exit (the plugin has no access to core's cleanup.h). */
static inline void
local_freep (void *p)
{
  free (*(void **) p);
}
#define _local_free_ __attribute__ ((cleanup (local_freep)))

/* Fill d from "alg:hex"; BERTH_E_INVALID (naming the algorithm when it is
 * not supported) otherwise. */
int local_digest_parse (struct local *s, const char *digest, struct local_digest *d, berth_error *err);
/* OpenSSL's EVP_MD for "sha256"/"sha512". */
const void *local_digest_md (const char *alg);

/* Map an errno to a BERTH_E_* code: ENOSPC/EDQUOT → EXHAUSTED, ... */
int local_errno_code (int errnum);
/* host->error_set with the code of errnum; ENOSPC messages say "disk full". */
#define local_sys_error(s, err, errnum, ...) \
  ((s)->host->error_set ((err), local_errno_code (errnum), (errnum), __VA_ARGS__))

char *local_path (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
int64_t local_now_ns (void);
int64_t local_stat_mtime_ns (const void *st); /* struct stat * */

/* Small files.  Return 0 or -errno. */
int local_write_file (const char *path, const char *content, bool sync);
int local_read_file (const char *path, char **ret, size_t max);
int local_read_int (const char *path, int64_t *ret);
int local_write_int (const char *path, int64_t v);
int local_fsync_dir (const char *path);
/* rename(2) that never replaces `to` (-EEXIST instead), falling back to
 * link+unlink where the filesystem lacks RENAME_NOREPLACE. */
int local_rename_noreplace (const char *from, const char *to);
/* Copy the first size bytes of in to out (at out's offset): copy_file_range,
 * else pread/write with a 1 MiB buffer.  -EIO when in is shorter. */
int local_copy_fd (int in, int out, int64_t size);
int local_mkdir_p (const char *path, int mode);
/* rm -r of an ingest directory (one level of files, then the dir). */
int local_rm_ingest_dir (const char *path);

/* The ingest directory of ref: <root>/ingest/<sha256(ref) hex>. */
char *local_ingest_dir (struct local *s, const char *ref);
/* Hex digest of a whole file with md; -errno on failure. */
int local_hash_file (int fd, int64_t len, const void *md, void *mdctx);
/* Lowercase hex of the digest so far; the EVP_MD_CTX is copied, so the
 * running hash stays usable (a failed commit can be retried). */
int local_digest_hex (void *mdctx, char *out);

/* ---- locks (local.c) -------------------------------------------------- */

/* Take ref for a writer; BERTH_E_UNAVAILABLE when it is held. */
int local_ref_acquire (struct local *s, const char *ref, berth_error *err);
void local_ref_release (struct local *s, const char *ref);

/* ---- labels (local.c) ------------------------------------------------- */

/* Write the labels sidecar of d from a host label map (NULL or empty removes it). */
int local_labels_store (struct local *s, const struct local_digest *d, const berth_labels *labels, berth_error *err);

/* ---- filter.c ------------------------------------------------------- */

/* containerd's filter syntax, matched against an adaptor that answers a
 * fieldpath's value (NULL when absent). */
typedef struct local_filter local_filter;
typedef const char *(*local_filter_field) (void *obj, const char *const *path, size_t npath);

/* NULL or an empty list gives *ret = NULL, which matches everything. */
int local_filter_parse (struct local *s, const char *const *filters, local_filter **ret, berth_error *err);
bool local_filter_match (const local_filter *f, local_filter_field field, void *obj);
/* Whether any selector's fieldpath starts with `field` (to skip loading labels). */
bool local_filter_uses (const local_filter *f, const char *field);
void local_filter_free (local_filter *f);

/* ---- writer.c -------------------------------------------------------- */

int local_writer_open (void *self, berth_ctx *ctx, const char *ref, int64_t total, const char *expected,
                       berth_content_writer **ret_writer, berth_error *err);
int local_writer_write (void *self, berth_content_writer *w, const void *buf, size_t len, berth_error *err);
int local_writer_status (void *self, berth_content_writer *w, struct berth_content_status *ret_status,
                         berth_error *err);
int local_writer_commit (void *self, berth_content_writer *w, int64_t size, const char *expected,
                         const berth_labels *labels, berth_error *err);
int local_writer_truncate (void *self, berth_content_writer *w, int64_t size, berth_error *err);
void local_writer_close (void *self, berth_content_writer *w);
/* ABI 1.3 (content.h): verify the file open as fd and file it as blob digest. */
int local_adopt (void *self, berth_ctx *ctx, int fd, int64_t size, const char *digest, const berth_labels *labels,
                 berth_error *err);

/* Read an ingest directory into st (ref, offset, total, expected, times). */
int local_ingest_status (struct local *s, const char *dir, struct berth_content_status *st, char **ret_ref);

/* The built-in entry point (core/builtins.c). */
const struct berth_plugin_desc *const *berth_content_local_entry (void);

#endif
