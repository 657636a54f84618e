/* berth plugin SDK: random access into image layer blobs
 * (libberth-layerindex, pkg-config berth-layerindex).
 *
 * An index maps every path of a layer to its metadata and to where its bytes
 * are in the layer blob, so that a snapshotter can serve files straight from
 * the blob in the content store (no unpacked copy) and a converter can
 * rewrite layers.  Two ways to get one:
 *
 *  - berth_layerindex_build(): read a whole tar, tar+gzip or tar+zstd blob
 *    once (normally while it downloads) and remember, besides the entries,
 *    decompression checkpoints: for gzip one every `checkpoint_span` bytes of
 *    output (default 1 MiB: compressed bit position + the 32 KiB window,
 *    which the index keeps deflated), for zstd the frame starts at least
 *    that far apart.  A read inflates from the nearest checkpoint before
 *    its offset only; uncompressed blobs are read in place.
 *  - berth_layerindex_open_estargz(): read only the footer and the TOC of an
 *    eStargz blob (github.com/containerd/stargz-snapshotter, docs/estargz.md:
 *    the 51-byte footer or the legacy 47-byte stargz one, `stargz.index.json`)
 *    and answer reads chunk by chunk, each chunk checked against its
 *    chunkDigest: a read never returns bytes that do not match the TOC.
 *
 * Tar headers are parsed by libarchive (ustar, pax incl. SCHILY.xattr and
 * LIBARCHIVE.xattr, GNU long names); the library feeds libarchive the
 * uncompressed stream itself, so archive_filter_bytes() right after a header
 * is the data offset of that entry.  Sparse files are refused (NOTSUP).
 *
 * Every input is hostile: the blob, the TOC and a saved index file are all
 * checked (limits below, path normalisation, `..` refused, parents must be
 * directories, hard links must name an entry, chunks must tile the file,
 * offsets must lie in the blob) and a failure names the entry and the rule.
 *
 * Paths are normalised: no leading "/" or "./", no trailing "/", no empty or
 * "." components; the root is "".  A path given twice keeps the last one (tar
 * semantics).  Directories that the layer does not list get an entry of their
 * own (mode 0755, owner 0, flag BERTH_LAYERINDEX_F_IMPLICIT).  OCI whiteouts
 * (".wh.<name>", ".wh..wh..opq") stay entries of their own types.
 *
 * Errors: 0 or a negative BERTH_E_* code, details through the host table
 * given at creation into `err` (may be NULL).  No host symbol is used.
 *
 * Threads: an index is immutable once made; lookups and reads may run from
 * any number of threads, provided the read_at callback is thread-safe.
 */
#ifndef BERTH_LAYERINDEX_H
#define BERTH_LAYERINDEX_H

#include <stddef.h>
#include <stdint.h>

#include <berth/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct berth_layerindex berth_layerindex;

/* Read up to len bytes of the blob at off into buf; *ret_n gets the count,
 * which is less than len only at the end of the blob.  0 or a BERTH_E_* code
 * (then fill err through the host table).  Must be thread-safe when the
 * index is read from several threads. */
typedef int (*berth_layerindex_read_at_fn) (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n,
                                            berth_error *err);

enum berth_layerindex_compression
{
  BERTH_LAYERINDEX_UNKNOWN = 0,
  BERTH_LAYERINDEX_NONE = 1,
  BERTH_LAYERINDEX_GZIP = 2,
  BERTH_LAYERINDEX_ZSTD = 3,
};

enum berth_layerindex_type
{
  BERTH_LAYERINDEX_REG = 1,
  BERTH_LAYERINDEX_DIR = 2,
  BERTH_LAYERINDEX_SYMLINK = 3,
  BERTH_LAYERINDEX_CHAR = 4,
  BERTH_LAYERINDEX_BLOCK = 5,
  BERTH_LAYERINDEX_FIFO = 6,
  BERTH_LAYERINDEX_WHITEOUT = 7, /* ".wh.<name>": <name> is deleted in the lower layers */
  BERTH_LAYERINDEX_OPAQUE = 8,   /* ".wh..wh..opq": the parent directory hides its lower contents */
};

enum berth_layerindex_flags
{
  BERTH_LAYERINDEX_F_IMPLICIT = 1, /* a directory the layer did not list */
};

struct berth_layerindex_xattr
{
  const char *name;
  const void *value;
  size_t len;
};

/* eStargz: where one chunk of a file is.  `offset` is the start of the gzip
 * member in the blob, `inner_offset` how many uncompressed bytes of that
 * member come before the chunk, [chunk_offset, chunk_offset + chunk_size)
 * the part of the file it holds; compressed_end bounds the member (the next
 * member in the blob, or the TOC). */
struct berth_layerindex_chunk
{
  uint64_t offset;
  uint64_t inner_offset;
  uint64_t chunk_offset;
  uint64_t chunk_size;
  uint64_t compressed_end;
  const char *digest; /* "sha256:<64 hex>" */
};

/* One path, owned by the index.  A hard link shares the data and metadata
 * of its target: `hardlink` names it and data_ino is the target's ino
 * (ino itself otherwise), so a FUSE server can answer one inode. */
struct berth_layerindex_entry
{
  uint64_t ino;        /* 1 + position in path order; the root is 1 */
  uint64_t parent_ino; /* the root's is 1 */
  uint64_t data_ino;
  const char *path;    /* normalised */
  const char *name;    /* last component ("" for the root) */
  uint32_t type;       /* enum berth_layerindex_type */
  uint32_t flags;      /* enum berth_layerindex_flags */
  uint32_t mode;       /* permission bits incl. suid/sgid/sticky (07777) */
  uint32_t uid, gid;
  uint64_t size;       /* regular files: bytes of content */
  int64_t mtime_ns;
  const char *symlink;  /* target, or NULL */
  const char *hardlink; /* normalised path of the target, or NULL */
  uint32_t dev_major, dev_minor;
  size_t n_xattrs;
  const struct berth_layerindex_xattr *xattrs;
  uint64_t offset;      /* tar: content offset in the uncompressed stream */
  size_t n_chunks;      /* eStargz only */
  const struct berth_layerindex_chunk *chunks;
  const char *digest;   /* eStargz: "sha256:..." of the content, or NULL */
};

/* Limits against hostile input; a zero field takes the default in brackets.
 * Size-first (set size = sizeof). */
struct berth_layerindex_opts
{
  uint32_t size;
  uint64_t checkpoint_span; /* [1 MiB] gzip/zstd checkpoint spacing, >= 64 KiB */
  uint64_t max_entries;     /* [1,000,000] */
  uint64_t max_path;        /* [4096] bytes of a path or a link target */
  uint64_t max_total_size;  /* [64 GiB] sum of file sizes, and uncompressed stream size */
  uint64_t max_xattrs;      /* [65536] bytes of xattr names + values per entry */
  uint64_t max_toc;         /* [256 MiB] uncompressed TOC, and index file size */
  uint64_t max_chunk;       /* [64 MiB] one eStargz chunk */
  const char *toc_digest;   /* eStargz: expected TOC digest (the annotation), or NULL */
  /* Appended (check size): */
  const char *diff_id;      /* tar builds: expected "sha256:<64 hex>" of the uncompressed
                               stream (the config's rootfs.diff_ids entry), or NULL */
};

/* The containerd annotation that carries an eStargz layer's TOC digest. */
#define BERTH_ESTARGZ_TOC_DIGEST_ANNOTATION "containerd.io/snapshot/stargz/toc.digest"
/* The annotation with the uncompressed size (estargz writer's convention). */
#define BERTH_ESTARGZ_UNCOMPRESSED_SIZE_ANNOTATION "io.containers.estargz.uncompressed-size"
#define BERTH_ESTARGZ_TOC_NAME "stargz.index.json"
#define BERTH_ESTARGZ_PREFETCH_LANDMARK ".prefetch.landmark"
#define BERTH_ESTARGZ_NO_PREFETCH_LANDMARK ".no.prefetch.landmark"
#define BERTH_ESTARGZ_FOOTER_SIZE 51
#define BERTH_ESTARGZ_LEGACY_FOOTER_SIZE 47

/* OCI and Docker layer media types (also the nondistributable ones) to a
 * compression; BERTH_LAYERINDEX_UNKNOWN for anything else. */
BERTH_PUBLIC uint32_t berth_layerindex_compression_of (const char *media_type);

/* Read the blob [0, blob_size) through read_at and index it.  media_type as
 * in the manifest (or NULL with `compression` set).  read_at/data are kept
 * by the index for later reads and must outlive it.  opts may be NULL.
 * The uncompressed stream is hashed on the way (berth_layerindex_diff_id);
 * with opts->diff_id set, a different hash is PRECONDITION naming both
 * digests and no index is made.
 * INVALID for a corrupt stream or tar, a broken rule or limit (the message
 * names the entry), NOTSUP for sparse files or an unknown media type. */
BERTH_PUBLIC int berth_layerindex_build (const struct berth_host *host, berth_layerindex_read_at_fn read_at, void *data,
                                         uint64_t blob_size, const char *media_type, uint32_t compression,
                                         const struct berth_layerindex_opts *opts, berth_layerindex **ret_idx,
                                         berth_error *err);

/* Read an eStargz blob's footer and TOC through read_at (only those bytes
 * are read: a lazy puller can answer them with Range requests) and index it.
 * INVALID "not an eStargz layer" without the footer, INVALID naming the
 * entry for a TOC that lies, PRECONDITION when opts->toc_digest differs. */
BERTH_PUBLIC int berth_layerindex_open_estargz (const struct berth_host *host, berth_layerindex_read_at_fn read_at,
                                                void *data, uint64_t blob_size,
                                                const struct berth_layerindex_opts *opts, berth_layerindex **ret_idx,
                                                berth_error *err);

/* Save to `path` (written to a temporary file, fsync'ed and renamed) and load
 * back.  The file is a versioned little-endian binary with a SHA-256
 * trailer; the loader checks the trailer, every count and length against the
 * file, and then the same rules as the builders.  The loaded index reads
 * through read_at, which must serve the same blob (blob_size is checked). */
BERTH_PUBLIC int berth_layerindex_save (const berth_layerindex *idx, const char *path, berth_error *err);
BERTH_PUBLIC int berth_layerindex_load (const struct berth_host *host, const char *path,
                                        berth_layerindex_read_at_fn read_at, void *data, uint64_t blob_size,
                                        const struct berth_layerindex_opts *opts, berth_layerindex **ret_idx,
                                        berth_error *err);
/* The same from memory (the whole file in buf): used by load and fuzzing. */
BERTH_PUBLIC int berth_layerindex_load_buffer (const struct berth_host *host, const void *buf, size_t len,
                                               berth_layerindex_read_at_fn read_at, void *data, uint64_t blob_size,
                                               const struct berth_layerindex_opts *opts,
                                               berth_layerindex **ret_idx, berth_error *err);

/* Accepts NULL. */
BERTH_PUBLIC void berth_layerindex_free (berth_layerindex *idx);

BERTH_PUBLIC size_t berth_layerindex_count (const berth_layerindex *idx);
/* The entry of `path` (normalised here, so "/etc/" finds "etc"), or NULL. */
BERTH_PUBLIC const struct berth_layerindex_entry *berth_layerindex_lookup (const berth_layerindex *idx,
                                                                          const char *path);
/* By ino (1 .. count), or NULL. */
BERTH_PUBLIC const struct berth_layerindex_entry *berth_layerindex_get (const berth_layerindex *idx, uint64_t ino);
/* The children of directory `dir` in path order: *ret_children points into
 * the index (n entries).  0 for a non-directory. */
BERTH_PUBLIC size_t berth_layerindex_readdir (const berth_layerindex *idx, const struct berth_layerindex_entry *dir,
                                              const struct berth_layerindex_entry *const **ret_children);

/* Copy up to len bytes of the content of `e` (a hard link reads its target)
 * from `off` into buf; *ret_n is short only at the end of the file.
 * INVALID for a non-regular entry; eStargz: INVALID "chunk digest mismatch"
 * when the blob does not match the TOC (buf then holds no layer bytes). */
BERTH_PUBLIC int berth_layerindex_read (const berth_layerindex *idx, const struct berth_layerindex_entry *e,
                                        uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err);

/* A cursor keeps the decoder (gzip, zstd) or the last verified chunk
 * (eStargz) between reads, so that a sequential reader (a FUSE file handle)
 * does not restart from a checkpoint at every read: a read at or after the
 * cursor's position, before the next checkpoint, goes on from there.  One
 * cursor per thread (it is not locked); the index must outlive it. */
typedef struct berth_layerindex_cursor berth_layerindex_cursor;
BERTH_PUBLIC int berth_layerindex_cursor_new (const berth_layerindex *idx, berth_layerindex_cursor **ret_cursor,
                                              berth_error *err);
/* As berth_layerindex_read. */
BERTH_PUBLIC int berth_layerindex_cursor_read (berth_layerindex_cursor *c, const struct berth_layerindex_entry *e,
                                               uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err);
/* Accepts NULL. */
BERTH_PUBLIC void berth_layerindex_cursor_free (berth_layerindex_cursor *c);

/* The piece [*ret_start, *ret_end) of e's content (file offsets, clipped
 * to the file) around `off` that decodes from one place: from one
 * checkpoint to the next (tar gzip/zstd), one chunk (eStargz), the whole
 * file (uncompressed).  Reading such a piece with a cursor decodes no byte
 * that is not in it (but those of the file's first piece before the file),
 * and different pieces can be decoded on different threads at once, one
 * cursor each: a FUSE server reads ahead that way.  INVALID for an entry
 * that is not a regular file of this index or off >= its size. */
BERTH_PUBLIC int berth_layerindex_span (const berth_layerindex *idx, const struct berth_layerindex_entry *e,
                                        uint64_t off, uint64_t *ret_start, uint64_t *ret_end, berth_error *err);

/* eStargz: decode chunk i of e from `src`, the blob bytes starting at
 * chunk->offset (at least up to the end of the chunk's data; [offset,
 * compressed_end) always suffices), into dst (chunk->chunk_size bytes) and
 * verify the chunk digest.  For pullers that fetch ranges themselves. */
BERTH_PUBLIC int berth_layerindex_chunk_decode (const berth_layerindex *idx, const struct berth_layerindex_entry *e,
                                                size_t i, const void *src, size_t src_len, void *dst,
                                                berth_error *err);

/* eStargz: the regular files before the `.prefetch.landmark` entry in blob
 * order (empty with `.no.prefetch.landmark` or none). */
BERTH_PUBLIC size_t berth_layerindex_prefetch (const berth_layerindex *idx,
                                               const struct berth_layerindex_entry *const **ret_entries);
/* eStargz: "sha256:..." of the TOC JSON, and the TOC's compressed offset;
 * NULL / 0 for other indexes. */
BERTH_PUBLIC const char *berth_layerindex_toc_digest (const berth_layerindex *idx);
BERTH_PUBLIC uint64_t berth_layerindex_toc_offset (const berth_layerindex *idx);
/* Size of the uncompressed tar stream (tar indexes), and number of
 * decompression checkpoints. */
BERTH_PUBLIC uint64_t berth_layerindex_stream_size (const berth_layerindex *idx);
BERTH_PUBLIC size_t berth_layerindex_checkpoints (const berth_layerindex *idx);
/* "sha256:..." of the uncompressed tar stream (the layer's diffID): known
 * for indexes made by berth_layerindex_build and for index files saved from
 * them (file version 2); NULL otherwise (eStargz, version 1 files). */
BERTH_PUBLIC const char *berth_layerindex_diff_id (const berth_layerindex *idx);

/* ---- eStargz writer ----------------------------------------------------- */

/* Sequential input: up to len bytes into buf, *ret_n = 0 at the end. */
typedef int (*berth_estargz_read_fn) (void *data, void *buf, size_t len, size_t *ret_n, berth_error *err);
/* Output: all of buf or an error. */
typedef int (*berth_estargz_write_fn) (void *data, const void *buf, size_t len, berth_error *err);

struct berth_estargz_opts
{
  uint32_t size;
  uint64_t chunk_size;           /* [4 MiB] */
  int level;                     /* gzip level [Z_DEFAULT_COMPRESSION] */
  const char *const *prefetch;   /* NULL-terminated paths to put first, then
                                    `.prefetch.landmark`; NULL: `.no.prefetch.landmark` */
  const char *tmpdir;            /* with prefetch: where file data waits [$TMPDIR or /var/tmp] */
  uint64_t max_entries;          /* [1,000,000] */
};

struct berth_estargz_result
{
  char digest[80];      /* "sha256:..." of the blob */
  uint64_t size;        /* of the blob */
  char toc_digest[80];  /* the annotation's value */
  char diff_id[80];     /* sha256 of the uncompressed tar: config rootfs.diff_ids */
  uint64_t uncompressed_size;
};

/* Convert the tar stream read from `read` (plain, gzip or zstd) into an
 * eStargz blob written to `write`: every regular file's content in gzip
 * members of at most chunk_size bytes, a landmark, the TOC as the last tar
 * entry and the footer.  Entries of the input named like the TOC or a
 * landmark are dropped.  The result is an ordinary tar.gz. */
BERTH_PUBLIC int berth_estargz_write (const struct berth_host *host, berth_estargz_read_fn read, void *rdata,
                                      berth_estargz_write_fn write, void *wdata, const struct berth_estargz_opts *opts,
                                      struct berth_estargz_result *ret_result, berth_error *err);

#ifdef __cplusplus
}
#endif
#endif
