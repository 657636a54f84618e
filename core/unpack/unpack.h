/* Diff apply: an OCI layer (tar, gzip or zstd) applied onto a directory.
 *
 * The layer arrives as a stream of compressed bytes pulled through `read`
 * (so that a layer is applied while it downloads: the caller feeds a pipe
 * from the registry client's sink).  unpack_apply decompresses (ISA-L igzip
 * for gzip where available, else zlib; libzstd for zstd), hashes the
 * uncompressed stream (the diffID, sha256) and hands it to libarchive,
 * applying each entry under `root` with path safety: no entry may write
 * outside root (`..`, absolute names, symlinks or hard links pointing out,
 * a symlinked parent) — every path is resolved with openat2
 * RESOLVE_IN_ROOT (or an equivalent fallback), and a refused entry fails
 * the whole apply with BERTH_E_INVALID naming the entry.
 *
 * Whiteouts (OCI image-spec layer.md): `.wh.<name>` deletes <name> below,
 * `.wh..wh..opq` makes its directory opaque.  In UNPACK_OVERLAY mode they
 * are written for overlayfs (a 0/0 character device for a deleted name,
 * xattr trusted.overlay.opaque=y on an opaque directory), in UNPACK_NATIVE
 * mode they are applied (the name removed from the tree, an opaque
 * directory emptied first).
 *
 * Blocking; run it on a worker thread.  Thread-safe across different roots.
 */
#ifndef BERTH_CORE_UNPACK_H
#define BERTH_CORE_UNPACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum unpack_mode
{
  UNPACK_OVERLAY, /* upper directory of an overlay layer: whiteouts as overlayfs wants them */
  UNPACK_NATIVE,  /* a full copy of the parent: whiteouts applied as deletions */
};

enum unpack_compression
{
  UNPACK_AUTO = 0, /* sniffed from the magic bytes as containerd does; the media type only
                    * decides for a stream shorter than 4 bytes */
  UNPACK_NONE,
  UNPACK_GZIP,
  UNPACK_ZSTD,
};

/* Returns bytes read (> 0), 0 at the end, or a negative BERTH_E_* code.
 * Called only from the thread running unpack_apply. */
typedef ssize_t (*unpack_read_fn) (void *data, void *buf, size_t len);

struct unpack_options
{
  enum unpack_mode mode;
  enum unpack_compression compression;
  const char *media_type;    /* for UNPACK_AUTO; may be NULL */
  bool same_owner;           /* chown entries to their uid/gid (root) */
  const volatile int *cancelled; /* polled between entries and reads; may be NULL */
  /* UNPACK_OVERLAY: the lower layers' directories, nearest first, NULL-
   * terminated; a parent directory missing from the layer is created with
   * the attributes (owner, mode, times, xattrs but trusted.*) of the first
   * lower layer that has it, as containerd's mkparent.  May be NULL (0755). */
  const char *const *parents;
  /* When set ("sha256:<hex>", the image config's rootfs.diff_ids entry), a
   * layer whose uncompressed stream hashes differently fails with
   * BERTH_E_INVALID after it was applied.  May be NULL. */
  const char *expected_diff_id;

  /* Tar bomb limits; 0 takes the default (UNPACK_DEFAULT_*), a negative
   * value means no limit.  A layer over one fails with BERTH_E_EXHAUSTED
   * naming the entry and the limit, before that entry is written where the
   * header tells (entry count, declared sizes):
   *  - max_entries: tar entries, whiteouts and directories included;
   *  - max_apparent_size: the sum of the sizes regular files declare (a
   *    sparse file counts its full logical size, not the bytes it carries);
   *  - max_uncompressed: bytes of the uncompressed stream (the diffID's
   *    input, padding after the tar's end included). */
  int64_t max_entries;
  int64_t max_apparent_size;
  int64_t max_uncompressed;
  /* Character and block device entries: created (the default, as
   * containerd does when running as root) or refused with
   * BERTH_E_PERMISSION naming the entry.  FIFOs and overlay whiteouts are
   * not devices here.  Without euid 0 devices are always refused. */
  enum unpack_devices
  {
    UNPACK_DEVICES_ALLOW = 0,
    UNPACK_DEVICES_REFUSE,
  } devices;
};

/* The defaults (containerd has no limits; these are generous):
 *  - 1,000,000 entries: ~9x the file count of a notoriously file-heavy whole
 *    image (ocaml/opam, ~113,000 entries) and more than whole-OS layers
 *    hold; a bomb stops at 1M inodes (released with the snapshot), which
 *    also bounds native mode's per-entry memory (~80 MB);
 *  - 1 TiB apparent: dense files cannot get near it (their bytes are in the
 *    stream, capped below), sparse ones may (a lastlog for UIDs up to ~3.7e9
 *    stays under); a 4 EiB declaration is refused at its header;
 *  - 256 GiB uncompressed: registries cap a layer at tens of GB compressed
 *    (ECR ~52 GB, GHCR 10 GB); a gzip bomb stops after ~256 GiB of
 *    decompression (minutes of one core) or at ENOSPC, whichever is first. */
#define UNPACK_DEFAULT_MAX_ENTRIES INT64_C (1000000)
#define UNPACK_DEFAULT_MAX_APPARENT_SIZE (INT64_C (1) << 40)  /* 1 TiB */
#define UNPACK_DEFAULT_MAX_UNCOMPRESSED (INT64_C (256) << 30) /* 256 GiB */

struct unpack_result
{
  char diff_id[80];        /* "sha256:<hex>" of the uncompressed stream, read to its end
                            * (padding after the tar's end-of-archive blocks included) */
  int64_t uncompressed;    /* bytes */
  int64_t entries;         /* tar entries read, whiteouts included */
};

/* Apply the layer read through `read` onto `root` (a directory; the caller
 * owns it).  On error the tree may hold part of the layer: the caller
 * discards the snapshot.  Errors: BERTH_E_INVALID for a refused entry
 * ("layer entry `NAME`: path escapes the root", ...) or a corrupt, truncated
 * or non-tar stream; BERTH_E_PERMISSION for a device node without euid 0
 * or CAP_MKNOD, or against o->devices; BERTH_E_EXHAUSTED for a layer over
 * one of the limits ("layer entry `NAME`: apparent size 4 EiB exceeds the
 * limit of 1 TiB (unpack max_apparent_size)"); BERTH_E_CANCELLED; what
 * `read` returned; errno classes for the file system; BERTH_E_INVALID
 * "diffID mismatch" (o->expected_diff_id). */
int unpack_apply (const char *root, unpack_read_fn read, void *data, const struct unpack_options *o,
                  struct unpack_result *ret, berth_error **err);

/* Convenience: apply from a file descriptor (read until EOF). */
int unpack_apply_fd (const char *root, int fd, const struct unpack_options *o, struct unpack_result *ret,
                     berth_error **err);

#endif
