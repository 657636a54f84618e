/* The uncompressed side of a layer: pulls compressed bytes through an
 * unpack_read_fn, inflates them (ISA-L igzip where configure found it, else
 * zlib; libzstd; or nothing for a plain tar) and hashes what comes out with
 * sha256 (the diffID), handing the result on in chunks of up to 1 MiB.
 *
 * Not thread-safe; one stream per apply.  The chunk returned by
 * unpack_stream_next stays valid until the next call (libarchive's read
 * callback contract).
 */
#ifndef BERTH_CORE_UNPACK_STREAM_H
#define BERTH_CORE_UNPACK_STREAM_H

#include "core/unpack/unpack.h"

#define UNPACK_STREAM_CHUNK (1024 * 1024)

struct unpack_stream;

/* Which decoder a stream uses: from `c`, or for UNPACK_AUTO from the magic
 * bytes (as containerd's compression.DecompressStream does), falling back
 * to `media_type` only when the stream is too short to tell. */
int unpack_stream_new (unpack_read_fn read, void *data, enum unpack_compression c, const char *media_type,
                       const volatile int *cancelled, struct unpack_stream **ret, berth_error **err);
void unpack_stream_free (struct unpack_stream *s);
static inline void
unpack_stream_freep (struct unpack_stream **s)
{
  unpack_stream_free (*s);
}

/* The next chunk of the uncompressed stream: > 0 bytes, 0 at the end, or a
 * negative BERTH_E_* (a truncated or corrupt stream is BERTH_E_INVALID). */
ssize_t unpack_stream_next (struct unpack_stream *s, const void **ret_buf, berth_error **err);

/* Read (and hash) whatever is left, then give the digest and the size. */
int unpack_stream_finish (struct unpack_stream *s, char ret_digest[80], int64_t *ret_size, berth_error **err);

/* Refuse to produce more than `max` uncompressed bytes (<= 0: no limit):
 * unpack_stream_next hands on the bytes up to the limit, then fails with
 * BERTH_E_EXHAUSTED when more follow. */
void unpack_stream_set_limit (struct unpack_stream *s, int64_t max);

/* Uncompressed bytes produced so far (read ahead of the tar reader). */
int64_t unpack_stream_total (const struct unpack_stream *s);

/* Format a byte count for messages: "4 EiB", "1.5 GiB (1610612736 bytes)",
 * "512 bytes". */
const char *unpack_format_size (int64_t n, char buf[64]);

/* The decoder's name, for messages and benchmarks: "gzip (isa-l)", ... */
const char *unpack_stream_decoder (const struct unpack_stream *s);

#endif
