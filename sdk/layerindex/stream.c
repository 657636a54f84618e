/* libberth-layerindex: the uncompressed tar stream of a blob, from the start
 * (while indexing, recording checkpoints) or from a checkpoint (reads).
 *
 * gzip follows zlib's examples/zran.c idea: inflate with Z_BLOCK so that
 * inflate stops at every deflate block boundary; where at least
 * checkpoint_span bytes came out since the last checkpoint, remember the
 * compressed position (byte + unused bits, restored with inflatePrime) and
 * the 32 KiB window (inflateGetDictionary, restored with
 * inflateSetDictionary).  Concatenated gzip members (eStargz is made of
 * them) are followed; a member start is a checkpoint that needs no window.
 * zstd frames are independent, so a frame start is a checkpoint.
 *
 * Reads (not indexing, which needs zlib's Z_BLOCK stops) inflate with ISA-L
 * igzip when the library is built with it (HAVE_ISAL from configure, and
 * LI_USE_ISAL from layerindex.am, so that a build that compiles these
 * sources on its own without linking ISA-L gets zlib), about twice zlib's
 * speed: a checkpoint restart is a raw inflate with isal_inflate_set_dict
 * and the unused bits of the byte before put into ISA-L's bit buffer
 * (read_in / read_in_length), a member start a ISAL_GZIP inflate, which
 * also checks the member's CRC.
 */
#include <config.h>
#if defined HAVE_ISAL && !defined LI_USE_ISAL
#undef HAVE_ISAL
#endif

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "layerindex-private.h"
#include "stream.h"

#define IN_CAP (256 * 1024)

int
li_read_full (const berth_layerindex *idx, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  size_t done = 0;
  while (done < len)
    {
      size_t n = 0;
      if (off + done >= idx->blob_size)
        break;
      size_t want = len - done;
      if (want > idx->blob_size - (off + done))
        want = (size_t) (idx->blob_size - (off + done));
      int r = idx->read_at (idx->read_data, off + done, (char *) buf + done, want, &n, err);
      if (r < 0)
        return idx->host->error_wrap (err, "reading the layer at offset %" PRIu64, off + done);
      if (n == 0)
        break;
      done += n;
    }
  *ret_n = done;
  return 0;
}

/* Make at least `need` bytes available after in_off (fewer at the end of the blob). */
static int
fill (struct li_stream *s, size_t need, berth_error *err)
{
  if (s->in_len - s->in_off >= need)
    return 0;
  memmove (s->in, s->in + s->in_off, s->in_len - s->in_off);
  s->in_base += s->in_off;
  s->in_len -= s->in_off;
  s->in_off = 0;
  while (s->in_len < need && s->in_base + s->in_len < s->idx->blob_size)
    {
      size_t n = 0;
      int r = li_read_full (s->idx, s->in_base + s->in_len, s->in + s->in_len, IN_CAP - s->in_len, &n, err);
      if (r < 0)
        return r;
      if (n == 0)
        break;
      s->in_len += n;
    }
  return 0;
}

static int
add_checkpoint (struct li_stream *s, uint8_t bits, bool member_start, berth_error *err)
{
  const berth_layerindex *idx = s->idx;
  if (s->n_ckpts == s->cap_ckpts)
    {
      size_t cap = s->cap_ckpts ? s->cap_ckpts * 2 : 64;
      struct li_checkpoint *v = realloc (s->ckpts, cap * sizeof *v);
      if (v == NULL)
        return li_nomem (idx, err);
      s->ckpts = v;
      s->cap_ckpts = cap;
    }
  struct li_checkpoint *c = &s->ckpts[s->n_ckpts];
  memset (c, 0, sizeof *c);
  c->out = s->out_pos;
  c->in = s->in_base + s->in_off;
  c->bits = bits;
  c->member_start = member_start;
  if (s->comp == BERTH_LAYERINDEX_GZIP && !member_start)
    {
      unsigned char win[LI_WINDOW];
      uInt wlen = sizeof win;
      if (inflateGetDictionary (&s->z, win, &wlen) != Z_OK
          || li_window_pack (win, wlen, &c->window, &c->window_len) < 0)
        return li_nomem (idx, err);
    }
  s->n_ckpts++;
  s->last_ckpt = s->out_pos;
  return 0;
}

/* The byte before a checkpoint, whose last `bits` bits start its block. */
static int
checkpoint_bits (const berth_layerindex *idx, const struct li_checkpoint *from, unsigned *ret_val, berth_error *err)
{
  unsigned char b;
  size_t n = 0;
  *ret_val = 0;
  if (from->bits == 0)
    return 0;
  if (from->in == 0)
    return li_error (idx, err, BERTH_E_INVALID, "checkpoint at offset 0 with bits");
  int r = li_read_full (idx, from->in - 1, &b, 1, &n, err);
  if (r < 0)
    return r;
  if (n != 1)
    return li_error (idx, err, BERTH_E_INVALID, "checkpoint past the end of the layer");
  *ret_val = (unsigned) (b >> (8 - from->bits));
  return 0;
}

static int
checkpoint_window (const berth_layerindex *idx, const struct li_checkpoint *from, unsigned char *win,
                   uLongf *ret_len, berth_error *err)
{
  if (from->window_len == 0 || uncompress (win, ret_len, from->window, from->window_len) != Z_OK)
    return li_error (idx, err, BERTH_E_INVALID, "checkpoint at %" PRIu64 ": bad window", from->out);
  return 0;
}

#ifdef HAVE_ISAL
static int
isal_open (struct li_stream *s, const struct li_checkpoint *from, berth_error *err)
{
  const berth_layerindex *idx = s->idx;
  struct inflate_state *st = s->isal != NULL ? s->isal : malloc (sizeof *st);
  if (st == NULL)
    return li_nomem (idx, err);
  s->isal = st;
  isal_inflate_init (st);
  s->raw = from && !from->member_start;
  st->crc_flag = s->raw ? ISAL_DEFLATE : ISAL_GZIP;
  if (!s->raw)
    return 0;
  unsigned val = 0;
  unsigned char win[LI_WINDOW];
  int r = checkpoint_bits (idx, from, &val, err);
  if (r < 0)
    return r;
  /* The window is kept zlib-compressed (li_window_pack): inflate it with
   * ISA-L too, about twice as fast as uncompress() and a restart happens
   * for every block a FUSE server decodes. */
  st->crc_flag = ISAL_ZLIB;
  st->next_in = from->window;
  st->avail_in = from->window_len;
  st->next_out = win;
  st->avail_out = sizeof win;
  if (from->window_len == 0 || isal_inflate_stateless (st) != ISAL_DECOMP_OK)
    return li_error (idx, err, BERTH_E_INVALID, "checkpoint at %" PRIu64 ": bad window", from->out);
  uint32_t wlen = st->total_out;
  isal_inflate_init (st);
  st->crc_flag = ISAL_DEFLATE;
  if (isal_inflate_set_dict (st, win, wlen) != COMP_OK)
    return li_error (idx, err, BERTH_E_INVALID, "checkpoint at %" PRIu64 ": bad window", from->out);
  st->read_in = val;
  st->read_in_length = from->bits;
  return 0;
}

static int
out_isal (struct li_stream *s, unsigned char *buf, size_t len, size_t *ret_n, berth_error *err)
{
  const berth_layerindex *idx = s->idx;
  struct inflate_state *st = s->isal;
  size_t got = 0;
  if (len > UINT32_MAX)
    len = UINT32_MAX;
  while (got == 0 && !s->eof)
    {
      int r;
      if (st->block_state == ISAL_BLOCK_FINISH)
        {
          /* A raw inflate (from a checkpoint) leaves the member's trailer to
           * us; ISAL_GZIP has read and checked it.  Then another member or the end. */
          if (s->raw)
            {
              if ((r = fill (s, 8, err)) < 0)
                return r;
              if (s->in_len - s->in_off < 8)
                return li_error (idx, err, BERTH_E_INVALID, "gzip stream truncated in a member trailer");
              s->in_off += 8;
            }
          if ((r = fill (s, 2, err)) < 0)
            return r;
          if (s->in_len - s->in_off < 2 || s->in[s->in_off] != 0x1f || s->in[s->in_off + 1] != 0x8b)
            {
              s->eof = true;
              break;
            }
          isal_inflate_reset (st);
          st->crc_flag = ISAL_GZIP;
          s->raw = false;
        }
      if ((r = fill (s, 1, err)) < 0)
        return r;
      bool in_eof = s->in_len == s->in_off;
      st->next_in = s->in + s->in_off;
      st->avail_in = (uint32_t) (s->in_len - s->in_off);
      st->next_out = buf + got;
      st->avail_out = (uint32_t) (len - got);
      uint32_t in_before = st->avail_in, out_before = st->avail_out;
      int ir = isal_inflate (st);
      s->in_off = s->in_len - st->avail_in;
      size_t produced = out_before - st->avail_out;
      got += produced;
      s->out_pos += produced;
      if (ir == ISAL_DECOMP_OK && st->block_state == ISAL_BLOCK_FINISH && st->read_in_length >= 8)
        {
          /* A raw inflate ends with whole bytes still in its bit buffer
           * (the start of the trailer): give them back. */
          uint64_t pos = s->in_base + s->in_off - (uint64_t) (st->read_in_length / 8);
          if (pos >= s->in_base)
            s->in_off = (size_t) (pos - s->in_base);
          else
            {
              s->in_base = pos;
              s->in_len = s->in_off = 0;
            }
          st->read_in = 0;
          st->read_in_length = 0;
        }
      if (ir < 0)
        return li_error (idx, err, BERTH_E_INVALID, "corrupt gzip data near offset %" PRIu64 ": %s",
                         s->in_base + s->in_off,
                         ir == ISAL_INCORRECT_CHECKSUM ? "checksum mismatch"
                         : ir == ISAL_INVALID_WRAPPER  ? "bad gzip header"
                                                       : "bad deflate data");
      if (s->out_pos > idx->opts.max_total_size)
        return li_error (idx, err, BERTH_E_INVALID, "the uncompressed layer is larger than %" PRIu64 " bytes",
                         idx->opts.max_total_size);
      if (st->block_state != ISAL_BLOCK_FINISH && in_before == st->avail_in && produced == 0)
        {
          /* No progress with room to write: the input must end early. */
          size_t left = s->in_len - s->in_off;
          if (in_eof || s->in_base + s->in_len >= idx->blob_size)
            return li_error (idx, err, BERTH_E_INVALID, "gzip stream truncated at offset %" PRIu64,
                             s->in_base + s->in_off);
          if (left >= IN_CAP)
            return li_error (idx, err, BERTH_E_INVALID, "corrupt gzip data near offset %" PRIu64 ": no progress",
                             s->in_base + s->in_off);
          if ((r = fill (s, left + 1, err)) < 0)
            return r;
        }
    }
  *ret_n = got;
  return 0;
}
#endif

int
li_stream_open (struct li_stream *s, const berth_layerindex *idx, uint32_t comp, const struct li_checkpoint *from,
                bool record, berth_error *err)
{
  memset (s, 0, sizeof *s);
  s->idx = idx;
  s->comp = comp;
  s->record = record;
  s->in = malloc (IN_CAP);
  if (s->in == NULL)
    return li_nomem (idx, err);
  s->in_base = from ? from->in : 0;
  s->out_pos = from ? from->out : 0;
#ifdef HAVE_ISAL
  if (comp == BERTH_LAYERINDEX_GZIP && !record)
    return isal_open (s, from, err);
#endif
  if (comp == BERTH_LAYERINDEX_GZIP)
    {
      bool raw = from && !from->member_start;
      if (inflateInit2 (&s->z, raw ? -15 : 31) != Z_OK)
        return li_nomem (idx, err);
      s->z_init = true;
      s->raw = raw;
      if (raw)
        {
          unsigned val = 0;
          unsigned char win[LI_WINDOW];
          uLongf wlen = sizeof win;
          int r = checkpoint_bits (idx, from, &val, err);
          if (r == 0)
            r = checkpoint_window (idx, from, win, &wlen, err);
          if (r < 0)
            return r;
          if (from->bits)
            inflatePrime (&s->z, from->bits, (int) val);
          if (inflateSetDictionary (&s->z, win, (uInt) wlen) != Z_OK)
            return li_error (idx, err, BERTH_E_INVALID, "checkpoint at %" PRIu64 ": bad window", from->out);
        }
    }
  else if (comp == BERTH_LAYERINDEX_ZSTD)
    {
      s->zs = ZSTD_createDStream ();
      if (s->zs == NULL)
        return li_nomem (idx, err);
      /* A hostile frame may ask for a huge window: zstd's own default cap (128 MiB) applies. */
      ZSTD_initDStream (s->zs);
    }
  if (record && comp != BERTH_LAYERINDEX_NONE)
    return add_checkpoint (s, 0, true, err);
  return 0;
}

int
li_stream_restart (struct li_stream *s, const struct li_checkpoint *from, berth_error *err)
{
  const berth_layerindex *idx = s->idx;
  uint32_t comp = s->comp;
  if (s->record || s->z_init)
    {
      li_stream_close (s);
      return li_stream_open (s, idx, comp, from, false, err);
    }
  unsigned char *in = s->in;
  void *isal = s->isal;
  ZSTD_DStream *zs = s->zs;
  memset (s, 0, sizeof *s);
  s->idx = idx;
  s->comp = comp;
  s->in = in;
  s->isal = isal;
  s->zs = zs;
  s->in_base = from ? from->in : 0;
  s->out_pos = from ? from->out : 0;
#ifdef HAVE_ISAL
  if (comp == BERTH_LAYERINDEX_GZIP)
    return isal_open (s, from, err);
#endif
  if (zs != NULL && ZSTD_isError (ZSTD_DCtx_reset (zs, ZSTD_reset_session_only)))
    return li_error (idx, err, BERTH_E_INTERNAL, "ZSTD_DCtx_reset failed");
  return 0;
}

void
li_stream_close (struct li_stream *s)
{
  if (s->z_init)
    inflateEnd (&s->z);
  if (s->zs)
    ZSTD_freeDStream (s->zs);
  free (s->isal);
  free (s->in);
  for (size_t i = 0; i < s->n_ckpts; i++)
    free (s->ckpts[i].window);
  free (s->ckpts);
  memset (s, 0, sizeof *s);
}

static int
gzip_member_end (struct li_stream *s, berth_error *err)
{
  const berth_layerindex *idx = s->idx;
  int r;
  if (s->raw)
    {
      if ((r = fill (s, 8, err)) < 0)
        return r;
      if (s->in_len - s->in_off < 8)
        return li_error (idx, err, BERTH_E_INVALID, "gzip stream truncated in a member trailer");
      s->in_off += 8;
    }
  if ((r = fill (s, 2, err)) < 0)
    return r;
  if (s->in_len - s->in_off < 2 || s->in[s->in_off] != 0x1f || s->in[s->in_off + 1] != 0x8b)
    {
      s->eof = true; /* the end, or trailing bytes that gzip(1) also ignores */
      return 0;
    }
  if (inflateReset2 (&s->z, 31) != Z_OK)
    return li_error (idx, err, BERTH_E_INTERNAL, "inflateReset2 failed");
  s->raw = false;
  if (s->record && s->out_pos - s->last_ckpt >= idx->opts.checkpoint_span)
    return add_checkpoint (s, 0, true, err);
  return 0;
}

static int
out_gzip (struct li_stream *s, unsigned char *buf, size_t len, size_t *ret_n, berth_error *err)
{
  const berth_layerindex *idx = s->idx;
  size_t got = 0;
  while (got == 0 && !s->eof)
    {
      int r = fill (s, 1, err);
      if (r < 0)
        return r;
      bool in_eof = s->in_len == s->in_off;
      s->z.next_in = s->in + s->in_off;
      s->z.avail_in = (uInt) (s->in_len - s->in_off);
      s->z.next_out = buf + got;
      s->z.avail_out = (uInt) (len - got);
      int zr = inflate (&s->z, s->record ? Z_BLOCK : Z_NO_FLUSH);
      s->in_off = s->in_len - s->z.avail_in;
      size_t produced = (len - got) - s->z.avail_out;
      got += produced;
      s->out_pos += produced;
      if (s->out_pos > idx->opts.max_total_size)
        return li_error (idx, err, BERTH_E_INVALID, "the uncompressed layer is larger than %" PRIu64 " bytes",
                         idx->opts.max_total_size);
      if (zr == Z_STREAM_END)
        {
          if ((r = gzip_member_end (s, err)) < 0)
            return r;
          continue;
        }
      if (zr == Z_BUF_ERROR && in_eof)
        return li_error (idx, err, BERTH_E_INVALID, "gzip stream truncated at offset %" PRIu64, s->in_base + s->in_off);
      if (zr != Z_OK && zr != Z_BUF_ERROR)
        return li_error (idx, err, BERTH_E_INVALID, "corrupt gzip data near offset %" PRIu64 ": %s",
                         s->in_base + s->in_off, s->z.msg ? s->z.msg : "inflate failed");
      if (s->record && (s->z.data_type & 128) && !(s->z.data_type & 64)
          && s->out_pos - s->last_ckpt >= idx->opts.checkpoint_span)
        if ((r = add_checkpoint (s, (uint8_t) (s->z.data_type & 7), false, err)) < 0)
          return r;
    }
  *ret_n = got;
  return 0;
}

static int
out_zstd (struct li_stream *s, unsigned char *buf, size_t len, size_t *ret_n, berth_error *err)
{
  const berth_layerindex *idx = s->idx;
  size_t got = 0;
  while (got == 0 && !s->eof)
    {
      int r = fill (s, 1, err);
      if (r < 0)
        return r;
      if (s->in_len == s->in_off)
        {
          if (s->mid_frame)
            return li_error (idx, err, BERTH_E_INVALID, "zstd stream truncated at offset %" PRIu64,
                             s->in_base + s->in_off);
          s->eof = true;
          break;
        }
      if (!s->mid_frame && s->record && s->out_pos - s->last_ckpt >= idx->opts.checkpoint_span
          && (r = add_checkpoint (s, 0, true, err)) < 0)
        return r;
      ZSTD_inBuffer in = { s->in + s->in_off, s->in_len - s->in_off, 0 };
      ZSTD_outBuffer out = { buf + got, len - got, 0 };
      size_t zr = ZSTD_decompressStream (s->zs, &out, &in);
      if (ZSTD_isError (zr))
        return li_error (idx, err, BERTH_E_INVALID, "corrupt zstd data near offset %" PRIu64 ": %s",
                         s->in_base + s->in_off, ZSTD_getErrorName (zr));
      s->in_off += in.pos;
      got += out.pos;
      s->out_pos += out.pos;
      s->mid_frame = zr != 0;
      if (s->out_pos > idx->opts.max_total_size)
        return li_error (idx, err, BERTH_E_INVALID, "the uncompressed layer is larger than %" PRIu64 " bytes",
                         idx->opts.max_total_size);
    }
  *ret_n = got;
  return 0;
}

int
li_stream_read (struct li_stream *s, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  *ret_n = 0;
  if (len == 0 || s->eof)
    return 0;
#ifdef HAVE_ISAL
  if (s->isal != NULL)
    return out_isal (s, buf, len, ret_n, err);
#endif
  if (s->comp == BERTH_LAYERINDEX_GZIP)
    return out_gzip (s, buf, len, ret_n, err);
  if (s->comp == BERTH_LAYERINDEX_ZSTD)
    return out_zstd (s, buf, len, ret_n, err);
  int r = li_read_full (s->idx, s->out_pos, buf, len, ret_n, err);
  if (r == 0)
    {
      s->out_pos += *ret_n;
      s->eof = *ret_n == 0;
    }
  return r;
}

struct berth_layerindex_cursor
{
  const berth_layerindex *idx;
  struct li_stream s;
  bool open;
  unsigned char *scratch;
  struct li_chunk_cache cache;
};

/* Read [pos, pos + len) of the uncompressed stream: go on from where the
 * cursor's decoder is when that is ahead of the nearest checkpoint,
 * otherwise restart from the checkpoint. */
static int
read_stream_at (berth_layerindex_cursor *c, uint64_t pos, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  const berth_layerindex *idx = c->idx;
  *ret_n = 0;
  if (idx->compression == BERTH_LAYERINDEX_NONE)
    return li_read_full (idx, pos, buf, len, ret_n, err);
  if (idx->n_ckpts == 0)
    return li_error (idx, err, BERTH_E_INTERNAL, "no checkpoints");
  size_t lo = 0, hi = idx->n_ckpts;
  while (hi - lo > 1)
    {
      size_t mid = (lo + hi) / 2;
      if (idx->ckpts[mid].out <= pos)
        lo = mid;
      else
        hi = mid;
    }
  int r = 0;
  if (c->open && (c->s.out_pos > pos || idx->ckpts[lo].out > c->s.out_pos)
      && (r = li_stream_restart (&c->s, &idx->ckpts[lo], err)) < 0)
    {
      li_stream_close (&c->s);
      c->open = false;
      return r;
    }
  if (!c->open)
    {
      r = li_stream_open (&c->s, idx, idx->compression, &idx->ckpts[lo], false, err);
      if (r < 0)
        {
          li_stream_close (&c->s);
          return r;
        }
      c->open = true;
    }
  if (c->scratch == NULL && (c->scratch = malloc (65536)) == NULL)
    r = li_nomem (idx, err);
  while (r == 0 && c->s.out_pos < pos)
    {
      size_t want = pos - c->s.out_pos < 65536 ? (size_t) (pos - c->s.out_pos) : 65536, n = 0;
      r = li_stream_read (&c->s, c->scratch, want, &n, err);
      if (r == 0 && n == 0)
        r = li_error (idx, err, BERTH_E_INVALID, "stream ends before offset %" PRIu64, pos);
    }
  size_t done = 0;
  while (r == 0 && done < len)
    {
      size_t n = 0;
      r = li_stream_read (&c->s, (char *) buf + done, len - done, &n, err);
      if (n == 0)
        break;
      done += n;
    }
  if (r < 0)
    {
      li_stream_close (&c->s);
      c->open = false;
      return r;
    }
  *ret_n = done;
  return 0;
}

int
berth_layerindex_cursor_new (const berth_layerindex *idx, berth_layerindex_cursor **ret_cursor, berth_error *err)
{
  berth_layerindex_cursor *c = calloc (1, sizeof *c);
  if (c == NULL)
    return li_nomem (idx, err);
  c->idx = idx;
  *ret_cursor = c;
  return 0;
}

void
berth_layerindex_cursor_free (berth_layerindex_cursor *c)
{
  if (c == NULL)
    return;
  if (c->open)
    li_stream_close (&c->s);
  free (c->scratch);
  free (c->cache.buf);
  free (c);
}

int
berth_layerindex_cursor_read (berth_layerindex_cursor *c, const struct berth_layerindex_entry *e, uint64_t off,
                              void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  const berth_layerindex *idx = c->idx;
  *ret_n = 0;
  if (e == NULL || e->ino == 0 || e->ino > idx->n_entries || &idx->entries[e->ino - 1] != e)
    return li_error (idx, err, BERTH_E_INVALID, "entry is not from this index");
  e = &idx->entries[e->data_ino - 1];
  if (e->type != BERTH_LAYERINDEX_REG)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s` is not a regular file", e->path);
  if (off >= e->size)
    return 0;
  if (len > e->size - off)
    len = (size_t) (e->size - off);
  int r;
  size_t n = 0;
  if (idx->format == LI_FORMAT_ESTARGZ)
    r = li_estargz_read (idx, e, off, buf, len, &c->cache, &n, err);
  else
    r = read_stream_at (c, e->offset + off, buf, len, &n, err);
  if (r < 0)
    return idx->host->error_wrap (err, "reading `%s` at %" PRIu64, e->path, off);
  if (n != len)
    return li_error (idx, err, BERTH_E_INVALID, "reading `%s`: the layer ends early", e->path);
  *ret_n = n;
  return 0;
}

int
berth_layerindex_read (const berth_layerindex *idx, const struct berth_layerindex_entry *e, uint64_t off, void *buf,
                       size_t len, size_t *ret_n, berth_error *err)
{
  berth_layerindex_cursor c = { .idx = idx };
  int r = berth_layerindex_cursor_read (&c, e, off, buf, len, ret_n, err);
  if (c.open)
    li_stream_close (&c.s);
  free (c.scratch);
  free (c.cache.buf);
  return r;
}

int
berth_layerindex_span (const berth_layerindex *idx, const struct berth_layerindex_entry *e, uint64_t off,
                       uint64_t *ret_start, uint64_t *ret_end, berth_error *err)
{
  *ret_start = *ret_end = 0;
  if (e == NULL || e->ino == 0 || e->ino > idx->n_entries || &idx->entries[e->ino - 1] != e)
    return li_error (idx, err, BERTH_E_INVALID, "entry is not from this index");
  e = &idx->entries[e->data_ino - 1];
  if (e->type != BERTH_LAYERINDEX_REG || off >= e->size)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: no data at %" PRIu64, e->path, off);
  uint64_t start = 0, end = e->size;
  if (idx->format == LI_FORMAT_ESTARGZ)
    {
      size_t lo = 0, hi = e->n_chunks;
      while (hi - lo > 1)
        {
          size_t mid = (lo + hi) / 2;
          if (e->chunks[mid].chunk_offset <= off)
            lo = mid;
          else
            hi = mid;
        }
      if (e->n_chunks > 0)
        {
          start = e->chunks[lo].chunk_offset;
          end = start + e->chunks[lo].chunk_size;
        }
    }
  else if (idx->compression != BERTH_LAYERINDEX_NONE && idx->n_ckpts > 0)
    {
      uint64_t pos = e->offset + off;
      size_t lo = 0, hi = idx->n_ckpts;
      while (hi - lo > 1)
        {
          size_t mid = (lo + hi) / 2;
          if (idx->ckpts[mid].out <= pos)
            lo = mid;
          else
            hi = mid;
        }
      uint64_t a = idx->ckpts[lo].out, b = lo + 1 < idx->n_ckpts ? idx->ckpts[lo + 1].out : idx->stream_size;
      start = a > e->offset ? a - e->offset : 0;
      end = b > e->offset ? b - e->offset : 0;
      if (end > e->size || end <= off)
        end = e->size;
    }
  *ret_start = start;
  *ret_end = end;
  return 0;
}
