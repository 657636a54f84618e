/* libberth-layerindex: decompressing a layer blob (stream.c). */
#ifndef BERTH_LAYERINDEX_STREAM_H
#define BERTH_LAYERINDEX_STREAM_H

#include <zlib.h>
#include <zstd.h>

#include "layerindex-private.h"

struct li_stream
{
  const berth_layerindex *idx; /* blob, limits, errors */
  uint32_t comp;
  bool record; /* collect checkpoints (indexing) */
  z_stream z;
  bool z_init, raw;
  void *isal; /* struct inflate_state: reads (not indexing) with ISA-L igzip, when built with it */
  ZSTD_DStream *zs;
  bool mid_frame;
  unsigned char *in;
  size_t in_len, in_off;
  uint64_t in_base; /* blob offset of in[0] */
  uint64_t out_pos; /* uncompressed offset of the next byte out */
  bool eof;
  struct li_checkpoint *ckpts;
  size_t n_ckpts, cap_ckpts;
  uint64_t last_ckpt;
};

/* From the start (from NULL) or a checkpoint. */
int li_stream_open (struct li_stream *s, const berth_layerindex *idx, uint32_t comp, const struct li_checkpoint *from,
                    bool record, berth_error *err);
/* Up to len bytes; *ret_n = 0 at the end of the stream. */
int li_stream_read (struct li_stream *s, void *buf, size_t len, size_t *ret_n, berth_error *err);
/* Reads (not indexing): go back to `from` (NULL: the start) in the same
 * blob, keeping the buffers and the decoder's allocations (a FUSE server's
 * lanes restart at about every block they decode).  On an error the stream
 * must be closed. */
int li_stream_restart (struct li_stream *s, const struct li_checkpoint *from, berth_error *err);
void li_stream_close (struct li_stream *s);

/* estargz.c: the last chunk decoded (and verified) */
struct li_chunk_cache
{
  const struct berth_layerindex_entry *e;
  size_t i;
  bool valid;
  unsigned char *buf;
  size_t cap;
};
int li_estargz_read (const berth_layerindex *idx, const struct berth_layerindex_entry *e, uint64_t off, void *buf,
                     size_t len, struct li_chunk_cache *cache, size_t *ret_n, berth_error *err);

#endif
