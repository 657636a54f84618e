/* libFuzzer target for sdk/layerindex: the eStargz footer + TOC parser, the
 * index-file loader and the tar / tar+gzip / tar+zstd index builder.  The
 * first byte picks the parser, the rest is the blob (or the index file);
 * whatever is accepted is then read through, entry by entry, so the rules
 * the parsers promise (offsets inside the stream, chunks tiling files) are
 * exercised by the readers too.
 *
 *   CC=clang ./configure --enable-fuzz && make tests/fuzz/fuzz-estargz
 *   tests/fuzz/fuzz-estargz -max_total_time=600 corpus/
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <berth/layerindex.h>

/* The host's error record is opaque to the library: a code is enough here. */
struct berth_error
{
  int code;
};

static int f_error_set (berth_error *e, int code, int errnum, const char *fmt, ...) BERTH_PRINTF (4, 5);
static int f_error_wrap (berth_error *e, const char *fmt, ...) BERTH_PRINTF (2, 3);

static int
f_error_set (berth_error *e, int code, int errnum, const char *fmt, ...)
{
  char buf[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap); /* formats must hold */
  va_end (ap);
  if (e)
    e->code = code;
  return code;
}

static int
f_error_wrap (berth_error *e, const char *fmt, ...)
{
  char buf[2048];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  return e && e->code ? e->code : BERTH_E_INTERNAL;
}

static const struct berth_host host = {
  .size = sizeof (struct berth_host), .error_set = f_error_set, .error_wrap = f_error_wrap
};

struct blob
{
  const uint8_t *p;
  size_t n;
  uint64_t virtual_size; /* index files: a blob of zeros of that size */
};

static int
read_at (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  const struct blob *b = data;
  if (b->virtual_size)
    {
      size_t n = off >= b->virtual_size ? 0 : (len < b->virtual_size - off ? len : (size_t) (b->virtual_size - off));
      memset (buf, 0, n);
      *ret_n = n;
      return 0;
    }
  size_t n = off >= b->n ? 0 : (len < b->n - off ? len : (size_t) (b->n - off));
  memcpy (buf, b->p + off, n);
  *ret_n = n;
  return 0;
}

static void
read_all (berth_layerindex *idx)
{
  static unsigned char buf[1 << 16];
  size_t n = berth_layerindex_count (idx);
  for (uint64_t ino = 1; ino <= n && ino <= 64; ino++)
    {
      const struct berth_layerindex_entry *e = berth_layerindex_get (idx, ino);
      const struct berth_layerindex_entry *const *kids;
      berth_layerindex_readdir (idx, e, &kids);
      berth_layerindex_lookup (idx, e->path);
      if (e->type != BERTH_LAYERINDEX_REG)
        continue;
      struct berth_error err = { 0 };
      size_t got;
      berth_layerindex_read (idx, e, 0, buf, sizeof buf, &got, &err);
      if (e->size > 1)
        berth_layerindex_read (idx, e, e->size / 2, buf, 1000, &got, &err);
    }
  const struct berth_layerindex_entry *const *pf;
  berth_layerindex_prefetch (idx, &pf);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  struct blob b = { data + 1, size - 1, 0 };
  struct berth_layerindex_opts o = { .size = sizeof o,
                                     .checkpoint_span = 65536,
                                     .max_entries = 10000,
                                     .max_total_size = 64 << 20,
                                     .max_toc = 4 << 20,
                                     .max_chunk = 4 << 20 };
  struct berth_error err = { 0 };
  berth_layerindex *idx = NULL;
  switch (data[0] % 5)
    {
    case 0:
      berth_layerindex_open_estargz (&host, read_at, &b, b.n, &o, &idx, &err);
      break;
    case 1:
      {
        /* blob_size sits after magic, version, format, compression, landmark */
        uint64_t bs = 0;
        for (int i = 0; i < 8 && 24 + i < (int) b.n; i++)
          bs |= (uint64_t) b.p[24 + i] << (8 * i);
        b.virtual_size = bs > (64 << 20) ? 64 << 20 : bs;
        berth_layerindex_load_buffer (&host, b.p, b.n, read_at, &b, bs, &o, &idx, &err);
        break;
      }
    default:
      berth_layerindex_build (&host, read_at, &b, b.n, NULL, (uint32_t) (data[0] % 5 - 1), &o, &idx, &err);
      break;
    }
  if (idx)
    read_all (idx);
  berth_layerindex_free (idx);
  return 0;
}
