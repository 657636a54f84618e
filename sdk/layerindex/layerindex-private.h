/* libberth-layerindex internals.  Only include/berth/layerindex.h is public. */
#ifndef BERTH_LAYERINDEX_PRIVATE_H
#define BERTH_LAYERINDEX_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <berth/layerindex.h>

#define LI_MIB (UINT64_C (1) << 20)
#define LI_WINDOW 32768

enum li_format
{
  LI_FORMAT_TAR = 1,
  LI_FORMAT_ESTARGZ = 2,
};

/* A place to restart decompression.  gzip: `in` is the byte holding the
 * first bit of the next deflate block (bits > 0: that many bits of the byte
 * before it are still unread) and `window` the deflated 32 KiB before `out`;
 * or, with member_start, a gzip member header at `in`.  zstd: a frame at `in`. */
struct li_checkpoint
{
  uint64_t out;
  uint64_t in;
  uint8_t bits;
  uint8_t member_start;
  uint32_t window_len; /* deflated */
  unsigned char *window;
};

struct berth_layerindex
{
  const struct berth_host *host;
  berth_layerindex_read_at_fn read_at;
  void *read_data;
  uint64_t blob_size;
  uint32_t format;
  uint32_t compression;
  struct berth_layerindex_opts opts; /* defaults filled */

  struct berth_layerindex_entry *entries; /* path order */
  size_t n_entries;
  size_t *child_first; /* per entry: start in children[] */
  size_t *child_count;
  const struct berth_layerindex_entry **children;

  struct li_checkpoint *ckpts;
  size_t n_ckpts;
  uint64_t stream_size;
  char *diff_id; /* "sha256:..." of the uncompressed stream, or NULL */

  uint64_t toc_offset;
  char *toc_digest;
  uint32_t landmark; /* 0 none, 1 prefetch, 2 no prefetch */
  const struct berth_layerindex_entry **prefetch;
  size_t n_prefetch;
  char **prefetch_paths; /* normalised paths, as parsed or loaded */
  size_t n_prefetch_paths;
};

/* Growing list of entries being collected; `seq` orders duplicates. */
struct li_list
{
  struct berth_layerindex_entry *v;
  size_t n, cap;
};

int li_error (const berth_layerindex *idx, berth_error *err, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));
int li_nomem (const berth_layerindex *idx, berth_error *err);

void li_opts_defaults (struct berth_layerindex_opts *o, const struct berth_layerindex_opts *in);
berth_layerindex *li_new (const struct berth_host *host, berth_layerindex_read_at_fn read_at, void *data,
                          uint64_t blob_size, const struct berth_layerindex_opts *opts);

/* Normalise `path` into a new string (NULL on ENOMEM); *ret_bad set when it
 * has a ".." component (and, if strict, when it is absolute). */
char *li_path_normalise (const char *path, bool strict, bool *ret_bad);

struct berth_layerindex_entry *li_list_add (struct li_list *l);
void li_entry_clear (struct berth_layerindex_entry *e);
void li_list_clear (struct li_list *l);
/* Checks an entry's own fields against the limits (name in the message). */
int li_entry_check (berth_layerindex *idx, const struct berth_layerindex_entry *e, berth_error *err);

/* Take the list: dedupe, add implicit dirs, sort, link parents, children,
 * hard links; check chunks for eStargz.  The list is emptied. */
int li_finish (berth_layerindex *idx, struct li_list *l, berth_error *err);

int li_read_full (const berth_layerindex *idx, uint64_t off, void *buf, size_t len, size_t *ret_n,
                  berth_error *err);

void li_sha256_hex (const void *buf, size_t len, char out[80]);
bool li_digest_valid (const char *d);

/* Deflate/inflate a checkpoint window. */
int li_window_pack (const unsigned char *win, size_t len, unsigned char **ret, uint32_t *ret_len);

#endif
