/* Decompression and the diffID hash: see stream.h. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "cleanup.h"
#include "core/unpack/stream.h"
#include "core/unpack/unpack-testing.h"

unsigned unpack_testing_flags;

#define IN_SIZE (1024 * 1024)

enum decoder
{
  DEC_NONE,
  DEC_ISAL,
  DEC_ZLIB,
  DEC_ZSTD,
};

struct unpack_stream
{
  unpack_read_fn read;
  void *data;
  const volatile int *cancelled;
  enum decoder dec;

  uint8_t *in; /* compressed bytes; for DEC_NONE the chunks themselves */
  size_t in_pos, in_len;
  bool in_eof;
  uint8_t *out;
  bool done;

  EVP_MD_CTX *md;
  int64_t total;
  int64_t limit; /* <= 0: none */
  bool over;     /* handed on up to the limit; more followed */

  z_stream z;
  bool z_init, z_member_done;
  ZSTD_DCtx *zs;
  size_t zs_last; /* ZSTD_decompressStream's last answer: 0 = at a frame boundary */
#ifdef HAVE_ISAL
  struct inflate_state *isal;
#endif
};

void
unpack_stream_free (struct unpack_stream *s)
{
  if (s == NULL)
    return;
  free (s->in);
  free (s->out);
  EVP_MD_CTX_free (s->md);
  if (s->z_init)
    inflateEnd (&s->z);
  ZSTD_freeDCtx (s->zs);
#ifdef HAVE_ISAL
  free (s->isal);
#endif
  free (s);
}

const char *
unpack_stream_decoder (const struct unpack_stream *s)
{
  switch (s->dec)
    {
    case DEC_ISAL:
      return "gzip (isa-l)";
    case DEC_ZLIB:
      return "gzip (zlib)";
    case DEC_ZSTD:
      return "zstd";
    default:
      return "none";
    }
}

void
unpack_stream_set_limit (struct unpack_stream *s, int64_t max)
{
  s->limit = max;
}

int64_t
unpack_stream_total (const struct unpack_stream *s)
{
  return s->total;
}

const char *
unpack_format_size (int64_t n, char buf[64])
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  if (n < 1024)
    {
      snprintf (buf, 64, "%lld bytes", (long long) n);
      return buf;
    }
  int u = 0;
  while (u < 5 && n >= (INT64_C (1024) << (10 * (u + 1))))
    u++;
  int64_t unit = INT64_C (1024) << (10 * u);
  if (n % unit == 0)
    snprintf (buf, 64, "%lld %s", (long long) (n / unit), units[u]);
  else
    snprintf (buf, 64, "%.1f %s (%lld bytes)", (double) n / (double) unit, units[u], (long long) n);
  return buf;
}

/* Read more compressed input into s->in (append at s->in_len). */
static int
read_more (struct unpack_stream *s, berth_error **err)
{
  if (s->cancelled && *s->cancelled)
    return berth_error_set (err, BERTH_E_CANCELLED, 0, "unpack cancelled");
  ssize_t n = s->read (s->data, s->in + s->in_len, IN_SIZE - s->in_len);
  if (n < 0)
    return berth_error_set (err, (int) n, 0, "reading the layer: %s", berth_errcode_name ((int) n));
  if (n == 0)
    s->in_eof = true;
  s->in_len += (size_t) n;
  return 0;
}

/* Called when all buffered input is consumed and the decoder wants more. */
static int
refill (struct unpack_stream *s, berth_error **err)
{
  s->in_pos = s->in_len = 0;
  return read_more (s, err);
}

static int
truncated (struct unpack_stream *s, berth_error **err)
{
  return berth_error_set (err, BERTH_E_INVALID, 0, "layer: %s stream is truncated", unpack_stream_decoder (s));
}

#ifdef HAVE_ISAL
static ssize_t
next_isal (struct unpack_stream *s, berth_error **err)
{
  struct inflate_state *st = s->isal;
  st->next_out = s->out;
  st->avail_out = UNPACK_STREAM_CHUNK;
  for (;;)
    {
      size_t produced = UNPACK_STREAM_CHUNK - st->avail_out;
      if (st->block_state == ISAL_BLOCK_FINISH)
        {
          /* End of a gzip member: another may follow (multi-member gzip,
           * as pigz and concatenated streams write). */
          if (s->in_pos == s->in_len)
            {
              if (produced > 0)
                return (ssize_t) produced;
              if (s->in_eof)
                {
                  s->done = true;
                  return 0;
                }
              int r = refill (s, err);
              if (r < 0)
                return r;
              continue;
            }
          isal_inflate_reset (st);
          st->crc_flag = ISAL_GZIP;
        }
      if (s->in_pos == s->in_len && !s->in_eof)
        {
          if (produced > 0)
            return (ssize_t) produced;
          int r = refill (s, err);
          if (r < 0)
            return r;
          continue;
        }
      st->next_in = s->in + s->in_pos;
      st->avail_in = (uint32_t) (s->in_len - s->in_pos);
      uint32_t in_before = st->avail_in, out_before = st->avail_out;
      int r = isal_inflate (st);
      s->in_pos += in_before - st->avail_in;
      if (r < 0)
        return berth_error_set (err, BERTH_E_INVALID, 0, "layer: gzip stream is corrupt (%s)",
                                r == ISAL_INCORRECT_CHECKSUM ? "checksum mismatch"
                                : r == ISAL_INVALID_WRAPPER  ? "bad gzip header"
                                                             : "bad deflate data");
      produced = UNPACK_STREAM_CHUNK - st->avail_out;
      if (st->avail_out == 0)
        return (ssize_t) produced;
      if (st->block_state == ISAL_BLOCK_FINISH)
        continue;
      if (in_before == st->avail_in && out_before == st->avail_out)
        {
          if (produced > 0)
            return (ssize_t) produced;
          if (s->in_eof && s->in_pos == s->in_len)
            return truncated (s, err);
          if (s->in_pos < s->in_len)
            return berth_error_set (err, BERTH_E_INVALID, 0, "layer: gzip stream is corrupt (no progress)");
        }
    }
}
#endif

static ssize_t
next_zlib (struct unpack_stream *s, berth_error **err)
{
  z_stream *z = &s->z;
  z->next_out = s->out;
  z->avail_out = UNPACK_STREAM_CHUNK;
  for (;;)
    {
      size_t produced = UNPACK_STREAM_CHUNK - z->avail_out;
      if (s->z_member_done)
        {
          if (s->in_pos == s->in_len)
            {
              if (produced > 0)
                return (ssize_t) produced;
              if (s->in_eof)
                {
                  s->done = true;
                  return 0;
                }
              int r = refill (s, err);
              if (r < 0)
                return r;
              continue;
            }
          inflateReset (z);
          s->z_member_done = false;
        }
      if (s->in_pos == s->in_len && !s->in_eof)
        {
          if (produced > 0)
            return (ssize_t) produced;
          int r = refill (s, err);
          if (r < 0)
            return r;
          continue;
        }
      z->next_in = s->in + s->in_pos;
      z->avail_in = (uInt) (s->in_len - s->in_pos);
      uInt in_before = z->avail_in, out_before = z->avail_out;
      int r = inflate (z, Z_NO_FLUSH);
      s->in_pos += in_before - z->avail_in;
      if (r == Z_STREAM_END)
        {
          s->z_member_done = true;
          continue;
        }
      if (r != Z_OK && r != Z_BUF_ERROR)
        return berth_error_set (err, BERTH_E_INVALID, 0, "layer: gzip stream is corrupt (%s)",
                                z->msg ? z->msg : "zlib error");
      produced = UNPACK_STREAM_CHUNK - z->avail_out;
      if (z->avail_out == 0)
        return (ssize_t) produced;
      if (in_before == z->avail_in && out_before == z->avail_out)
        {
          if (produced > 0)
            return (ssize_t) produced;
          if (s->in_eof && s->in_pos == s->in_len)
            return truncated (s, err);
          if (s->in_pos < s->in_len)
            return berth_error_set (err, BERTH_E_INVALID, 0, "layer: gzip stream is corrupt (no progress)");
        }
    }
}

static ssize_t
next_zstd (struct unpack_stream *s, berth_error **err)
{
  ZSTD_outBuffer ob = { s->out, UNPACK_STREAM_CHUNK, 0 };
  for (;;)
    {
      if (s->in_pos == s->in_len && !s->in_eof)
        {
          if (ob.pos > 0)
            return (ssize_t) ob.pos;
          int r = refill (s, err);
          if (r < 0)
            return r;
          continue;
        }
      if (s->in_pos == s->in_len && s->zs_last == 0)
        {
          if (ob.pos == 0)
            s->done = true;
          return (ssize_t) ob.pos;
        }
      ZSTD_inBuffer ib = { s->in, s->in_len, s->in_pos };
      size_t out_before = ob.pos, in_before = ib.pos;
      size_t r = ZSTD_decompressStream (s->zs, &ob, &ib);
      s->in_pos = ib.pos;
      if (ZSTD_isError (r))
        return berth_error_set (err, BERTH_E_INVALID, 0, "layer: zstd stream is corrupt (%s)", ZSTD_getErrorName (r));
      s->zs_last = r;
      if (ob.pos == ob.size)
        return (ssize_t) ob.pos;
      if (ob.pos == out_before && ib.pos == in_before && r != 0)
        {
          if (ob.pos > 0)
            return (ssize_t) ob.pos;
          if (s->in_eof && s->in_pos == s->in_len)
            return truncated (s, err);
        }
    }
}

static ssize_t
next_none (struct unpack_stream *s, const void **ret_buf, berth_error **err)
{
  if (s->in_pos == s->in_len)
    {
      if (s->in_eof)
        {
          s->done = true;
          return 0;
        }
      int r = refill (s, err);
      if (r < 0)
        return r;
      if (s->in_len == 0)
        {
          s->done = true;
          return 0;
        }
    }
  *ret_buf = s->in + s->in_pos;
  size_t n = s->in_len - s->in_pos;
  s->in_pos = s->in_len;
  return (ssize_t) n;
}

ssize_t
unpack_stream_next (struct unpack_stream *s, const void **ret_buf, berth_error **err)
{
  if (s->over)
    {
      char a[64];
      return berth_error_set (err, BERTH_E_EXHAUSTED, 0,
                              "layer: the uncompressed stream exceeds the limit of %s (unpack max_uncompressed)",
                              unpack_format_size (s->limit, a));
    }
  if (s->done)
    return 0;
  ssize_t n;
  *ret_buf = s->out;
  switch (s->dec)
    {
#ifdef HAVE_ISAL
    case DEC_ISAL:
      n = next_isal (s, err);
      break;
#endif
    case DEC_ZLIB:
      n = next_zlib (s, err);
      break;
    case DEC_ZSTD:
      n = next_zstd (s, err);
      break;
    default:
      n = next_none (s, ret_buf, err);
      break;
    }
  if (n > 0 && s->limit > 0 && n > s->limit - s->total)
    {
      /* Hand on the bytes up to the limit, so that the error names the
       * entry that crosses it; the next call fails. */
      s->over = true;
      n = (ssize_t) (s->limit - s->total);
      if (n == 0)
        return unpack_stream_next (s, ret_buf, err);
    }
  if (n > 0)
    {
      if (EVP_DigestUpdate (s->md, *ret_buf, (size_t) n) != 1)
        return berth_error_set (err, BERTH_E_INTERNAL, 0, "sha256 update failed");
      s->total += n;
    }
  return n;
}

int
unpack_stream_finish (struct unpack_stream *s, char ret_digest[80], int64_t *ret_size, berth_error **err)
{
  for (;;)
    {
      const void *buf;
      ssize_t n = unpack_stream_next (s, &buf, err);
      if (n < 0)
        return (int) n;
      if (n == 0)
        break;
    }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex (s->md, md, &len) != 1 || len != 32)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "sha256 final failed");
  char *p = ret_digest + sprintf (ret_digest, "sha256:");
  for (unsigned i = 0; i < len; i++)
    p += sprintf (p, "%02x", md[i]);
  *ret_size = s->total;
  return 0;
}

static enum unpack_compression
from_media_type (const char *mt)
{
  if (mt == NULL)
    return UNPACK_AUTO;
  if (strstr (mt, "gzip"))
    return UNPACK_GZIP;
  if (strstr (mt, "zstd"))
    return UNPACK_ZSTD;
  if (strstr (mt, "tar"))
    return UNPACK_NONE;
  return UNPACK_AUTO;
}

int
unpack_stream_new (unpack_read_fn read, void *data, enum unpack_compression c, const char *media_type,
                   const volatile int *cancelled, struct unpack_stream **ret, berth_error **err)
{
  _cleanup_(unpack_stream_freep) struct unpack_stream *s = calloc (1, sizeof *s);
  if (s == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "unpack stream");
  s->read = read;
  s->data = data;
  s->cancelled = cancelled;
  s->in = malloc (IN_SIZE);
  s->md = EVP_MD_CTX_new ();
  if (s->in == NULL || s->md == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "unpack stream");
  if (EVP_DigestInit_ex (s->md, EVP_sha256 (), NULL) != 1)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "sha256 init failed");

  if (c == UNPACK_AUTO)
    {
      /* Sniff as containerd does; the media type only breaks a tie. */
      while (s->in_len < 4 && !s->in_eof)
        {
          int r = read_more (s, err);
          if (r < 0)
            return r;
        }
      static const uint8_t zstd_magic[4] = { 0x28, 0xb5, 0x2f, 0xfd };
      if (s->in_len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b)
        c = UNPACK_GZIP;
      else if (s->in_len >= 4 && memcmp (s->in, zstd_magic, 4) == 0)
        c = UNPACK_ZSTD;
      else if (s->in_len < 4 && s->in_len > 0 && (c = from_media_type (media_type)) != UNPACK_AUTO)
        ;
      else
        c = UNPACK_NONE;
    }

  switch (c)
    {
    case UNPACK_GZIP:
#ifdef HAVE_ISAL
      if (!(unpack_testing_flags & UNPACK_TESTING_ZLIB))
        {
          s->dec = DEC_ISAL;
          s->isal = calloc (1, sizeof *s->isal);
          if (s->isal == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "unpack stream");
          isal_inflate_init (s->isal);
          s->isal->crc_flag = ISAL_GZIP;
          break;
        }
#endif
      s->dec = DEC_ZLIB;
      if (inflateInit2 (&s->z, 16 + MAX_WBITS) != Z_OK)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "zlib init");
      s->z_init = true;
      break;
    case UNPACK_ZSTD:
      s->dec = DEC_ZSTD;
      s->zs = ZSTD_createDCtx ();
      if (s->zs == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "zstd init");
      s->zs_last = 1;
      break;
    default:
      s->dec = DEC_NONE;
      break;
    }
  if (s->dec != DEC_NONE)
    {
      s->out = malloc (UNPACK_STREAM_CHUNK);
      if (s->out == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "unpack stream");
    }
  *ret = TAKE_PTR (s);
  return 0;
}
