/* libberth-layerindex: indexing a tar layer (berth_layerindex_build).
 *
 * libarchive parses the tar headers (every dialect layers use); it reads the
 * uncompressed stream from li_stream, which decompresses and records the
 * checkpoints on the way.  Because libarchive consumes exactly the header
 * blocks of an entry before returning it, archive_filter_bytes(a, 0) is then
 * the offset of the entry's data in the uncompressed stream.
 *
 * Every uncompressed byte also goes through SHA-256 (OpenSSL EVP): the
 * result is the layer's diffID, which a caller that knows the image config
 * can insist on (opts->diff_id) so that an index is never made for a blob
 * whose content is not what the config says.
 */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "layerindex-private.h"
#include "stream.h"

#define OUT_CAP (128 * 1024)

struct build
{
  berth_layerindex *idx;
  struct li_stream s;
  unsigned char *out;
  EVP_MD_CTX *md; /* the diffID */
  berth_error *err;
  int r;
};

/* The next uncompressed bytes, hashed. */
static int
build_read (struct build *b, size_t *ret_n)
{
  int r = li_stream_read (&b->s, b->out, OUT_CAP, ret_n, b->err);
  if (r == 0 && *ret_n > 0 && EVP_DigestUpdate (b->md, b->out, *ret_n) != 1)
    r = li_error (b->idx, b->err, BERTH_E_INTERNAL, "SHA-256 failed");
  return r;
}

static la_ssize_t
cb_read (struct archive *a, void *data, const void **buf)
{
  struct build *b = data;
  size_t n = 0;
  if (b->r < 0)
    return -1;
  b->r = build_read (b, &n);
  if (b->r < 0)
    {
      archive_set_error (a, EIO, "decompression failed");
      return -1;
    }
  *buf = b->out;
  return (la_ssize_t) n;
}

static int
entry_from_archive (struct build *b, struct archive *a, struct archive_entry *ae, struct berth_layerindex_entry *e)
{
  berth_layerindex *idx = b->idx;
  berth_error *err = b->err;
  const char *path = archive_entry_pathname (ae);
  if (path == NULL)
    return li_error (idx, err, BERTH_E_INVALID, "tar entry at offset %" PRId64 " has no path",
                     archive_read_header_position (a));
  bool bad = false;
  if ((e->path = li_path_normalise (path, false, &bad)) == NULL)
    return li_nomem (idx, err);
  if (bad)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: path has a `..` component", path);
  const char *hl = archive_entry_hardlink (ae);
  if (hl)
    {
      if ((e->hardlink = li_path_normalise (hl, false, &bad)) == NULL)
        return li_nomem (idx, err);
      if (bad || e->hardlink[0] == '\0')
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: bad hard link target `%s`", e->path, hl);
      if (strcmp (e->hardlink, e->path) == 0)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: hard link to itself", e->path);
    }
  if (archive_entry_sparse_reset (ae) > 0)
    return li_error (idx, err, BERTH_E_NOTSUP, "entry `%s`: sparse files are not supported", e->path);
  const char *base = strrchr (e->path, '/');
  base = base ? base + 1 : e->path;
  switch (archive_entry_filetype (ae))
    {
    case AE_IFREG:
      e->type = BERTH_LAYERINDEX_REG;
      break;
    case AE_IFDIR:
      e->type = BERTH_LAYERINDEX_DIR;
      break;
    case AE_IFLNK:
      e->type = BERTH_LAYERINDEX_SYMLINK;
      break;
    case AE_IFCHR:
      e->type = BERTH_LAYERINDEX_CHAR;
      break;
    case AE_IFBLK:
      e->type = BERTH_LAYERINDEX_BLOCK;
      break;
    case AE_IFIFO:
      e->type = BERTH_LAYERINDEX_FIFO;
      break;
    default:
      if (!hl)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: unsupported file type 0%o", e->path,
                         (unsigned) archive_entry_filetype (ae));
      e->type = BERTH_LAYERINDEX_REG;
    }
  if (strncmp (base, ".wh.", 4) == 0 && !hl)
    e->type = strcmp (base, ".wh..wh..opq") == 0 ? BERTH_LAYERINDEX_OPAQUE : BERTH_LAYERINDEX_WHITEOUT;
  if (e->type == BERTH_LAYERINDEX_SYMLINK && !hl)
    {
      const char *t = archive_entry_symlink (ae);
      if (t == NULL)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: symlink without a target", e->path);
      if ((e->symlink = strdup (t)) == NULL)
        return li_nomem (idx, err);
    }
  e->mode = (uint32_t) archive_entry_perm (ae) & 07777;
  int64_t uid = archive_entry_uid (ae), gid = archive_entry_gid (ae);
  if (uid < 0 || uid > UINT32_MAX || gid < 0 || gid > UINT32_MAX)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: uid/gid out of range", e->path);
  e->uid = (uint32_t) uid;
  e->gid = (uint32_t) gid;
  int64_t size = archive_entry_size (ae);
  if (size < 0)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: negative size", e->path);
  e->size = e->type == BERTH_LAYERINDEX_REG && !hl ? (uint64_t) size : 0;
  e->mtime_ns = (int64_t) archive_entry_mtime (ae) * 1000000000 + archive_entry_mtime_nsec (ae);
  e->dev_major = (uint32_t) archive_entry_rdevmajor (ae);
  e->dev_minor = (uint32_t) archive_entry_rdevminor (ae);
  int64_t off = archive_filter_bytes (a, 0);
  if (off < 0)
    return li_error (idx, err, BERTH_E_INTERNAL, "entry `%s`: no data offset", e->path);
  e->offset = (uint64_t) off;
  int nx = archive_entry_xattr_reset (ae);
  if (nx > 0 && !hl)
    {
      struct berth_layerindex_xattr *x = calloc ((size_t) nx, sizeof *x);
      if (x == NULL)
        return li_nomem (idx, err);
      e->xattrs = x;
      const char *name;
      const void *value;
      size_t len;
      uint64_t total = 0;
      while (archive_entry_xattr_next (ae, &name, &value, &len) == ARCHIVE_OK && e->n_xattrs < (size_t) nx)
        {
          total += strlen (name) + len;
          if (total > idx->opts.max_xattrs)
            return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: more than %" PRIu64 " bytes of xattrs", e->path,
                             idx->opts.max_xattrs);
          x[e->n_xattrs].name = strdup (name);
          void *v = malloc (len ? len : 1);
          if (x[e->n_xattrs].name == NULL || v == NULL)
            {
              free (v);
              e->n_xattrs++;
              return li_nomem (idx, err);
            }
          if (len)
            memcpy (v, value, len);
          x[e->n_xattrs].value = v;
          x[e->n_xattrs].len = len;
          e->n_xattrs++;
        }
    }
  return li_entry_check (idx, e, err);
}

static int
build_entries (struct build *b, struct li_list *l)
{
  berth_layerindex *idx = b->idx;
  struct archive *a = archive_read_new ();
  if (a == NULL)
    return li_nomem (idx, b->err);
  archive_read_support_format_tar (a);
  archive_read_support_format_empty (a);
  int r = 0;
  if (archive_read_open (a, b, NULL, cb_read, NULL) != ARCHIVE_OK)
    r = b->r < 0 ? b->r : li_error (idx, b->err, BERTH_E_INVALID, "not a tar stream: %s", archive_error_string (a));
  while (r == 0)
    {
      struct archive_entry *ae;
      int ar = archive_read_next_header (a, &ae);
      if (ar == ARCHIVE_EOF)
        break;
      if (ar < ARCHIVE_WARN)
        {
          r = b->r < 0 ? b->r
                       : li_error (idx, b->err, BERTH_E_INVALID, "tar: after %zu entries, at offset %" PRId64 ": %s",
                                   l->n, archive_read_header_position (a), archive_error_string (a));
          break;
        }
      if (l->n >= idx->opts.max_entries)
        {
          r = li_error (idx, b->err, BERTH_E_INVALID, "layer has more than %" PRIu64 " entries (at `%s`)",
                        idx->opts.max_entries, archive_entry_pathname (ae) ? archive_entry_pathname (ae) : "?");
          break;
        }
      struct berth_layerindex_entry *e = li_list_add (l);
      if (e == NULL)
        {
          r = li_nomem (idx, b->err);
          break;
        }
      r = entry_from_archive (b, a, ae, e);
    }
  archive_read_free (a);
  /* Read to the end: the stream size, the last checkpoints and the gzip
   * trailers (CRC) of the whole blob count. */
  while (r == 0)
    {
      size_t n = 0;
      r = build_read (b, &n);
      if (r == 0 && n == 0)
        break;
    }
  return r;
}

int
berth_layerindex_build (const struct berth_host *host, berth_layerindex_read_at_fn read_at, void *data,
                        uint64_t blob_size, const char *media_type, uint32_t compression,
                        const struct berth_layerindex_opts *opts, berth_layerindex **ret_idx, berth_error *err)
{
  *ret_idx = NULL;
  berth_layerindex *idx = li_new (host, read_at, data, blob_size, opts);
  if (idx == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  if (media_type)
    compression = berth_layerindex_compression_of (media_type);
  if (compression < BERTH_LAYERINDEX_NONE || compression > BERTH_LAYERINDEX_ZSTD)
    {
      int r = li_error (idx, err, BERTH_E_NOTSUP, "cannot index layers of media type `%s`",
                        media_type ? media_type : "?");
      berth_layerindex_free (idx);
      return r;
    }
  const char *want = NULL;
  if (opts != NULL && opts->size >= offsetof (struct berth_layerindex_opts, diff_id) + sizeof opts->diff_id)
    want = opts->diff_id;
  if (want != NULL && !li_digest_valid (want))
    {
      int r = li_error (idx, err, BERTH_E_INVALID, "`%s` is not a sha256 diffID", want);
      berth_layerindex_free (idx);
      return r;
    }
  idx->format = LI_FORMAT_TAR;
  idx->compression = compression;
  struct build b = { .idx = idx, .err = err };
  struct li_list l = { 0 };
  int r = li_stream_open (&b.s, idx, compression, NULL, true, err);
  if (r == 0 && (b.out = malloc (OUT_CAP)) == NULL)
    r = li_nomem (idx, err);
  if (r == 0 && ((b.md = EVP_MD_CTX_new ()) == NULL || EVP_DigestInit_ex (b.md, EVP_sha256 (), NULL) != 1))
    r = li_nomem (idx, err);
  if (r == 0)
    r = build_entries (&b, &l);
  if (r == 0)
    {
      unsigned char md[32];
      unsigned int mdlen = 0;
      if (EVP_DigestFinal_ex (b.md, md, &mdlen) != 1 || (idx->diff_id = malloc (80)) == NULL)
        r = li_nomem (idx, err);
      else
        {
          strcpy (idx->diff_id, "sha256:");
          for (int i = 0; i < 32; i++)
            snprintf (idx->diff_id + 7 + 2 * i, 3, "%02x", md[i]);
          if (want != NULL && strcmp (want, idx->diff_id) != 0)
            r = li_error (idx, err, BERTH_E_PRECONDITION,
                          "the layer's uncompressed content is %s, not the expected diffID %s", idx->diff_id, want);
        }
    }
  if (r == 0)
    {
      idx->stream_size = b.s.out_pos;
      idx->ckpts = b.s.ckpts;
      idx->n_ckpts = b.s.n_ckpts;
      b.s.ckpts = NULL;
      b.s.n_ckpts = 0;
      r = li_finish (idx, &l, err);
    }
  li_stream_close (&b.s);
  free (b.out);
  EVP_MD_CTX_free (b.md);
  li_list_clear (&l);
  if (r < 0)
    {
      berth_layerindex_free (idx);
      return r;
    }
  *ret_idx = idx;
  return 0;
}
