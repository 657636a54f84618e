/* libberth-layerindex: the index file (berth_layerindex_save/load).
 *
 * Layout, all integers little-endian:
 *   "BERTHLIX" u32 version=1 u32 format u32 compression u32 landmark
 *   u64 blob_size u64 stream_size u64 toc_offset
 *   u64 n_entries u64 n_checkpoints u64 n_prefetch   str toc_digest
 *   entries:     str path u32 type flags mode uid gid dev_major dev_minor
 *                u64 size i64 mtime_ns u64 offset str symlink str hardlink
 *                str digest u32 n_xattrs {str name, str value}
 *                u32 n_chunks {u64 offset inner_offset chunk_offset chunk_size, str digest}
 *   checkpoints: u64 out u64 in u8 bits u8 member_start str window (deflated)
 *   prefetch:    str path
 *   (version 2)  str diff_id
 *   32 bytes:    SHA-256 of everything before
 * str = u32 length + bytes, 0xffffffff for NULL.  Hard links carry only
 * their target's path: the loader links them again.  The loader trusts
 * nothing: every length is checked against what is left and the limits,
 * and the entries go through the same li_finish() rules as a fresh index.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "layerindex-private.h"

#define MAGIC "BERTHLIX"
#define VERSION 2 /* 2 added diff_id; 1 is still read */
#define NULL_LEN UINT32_MAX

struct wbuf
{
  unsigned char *p;
  size_t n, cap;
  bool oom;
};

static void
put (struct wbuf *b, const void *v, size_t len)
{
  if (b->oom)
    return;
  if (b->n + len > b->cap)
    {
      size_t cap = b->cap ? b->cap : 65536;
      while (cap < b->n + len)
        cap *= 2;
      unsigned char *p = realloc (b->p, cap);
      if (p == NULL)
        {
          b->oom = true;
          return;
        }
      b->p = p;
      b->cap = cap;
    }
  memcpy (b->p + b->n, v, len);
  b->n += len;
}

static void
put_u32 (struct wbuf *b, uint32_t v)
{
  unsigned char x[4] = { v, v >> 8, v >> 16, v >> 24 };
  put (b, x, 4);
}

static void
put_u64 (struct wbuf *b, uint64_t v)
{
  put_u32 (b, (uint32_t) v);
  put_u32 (b, (uint32_t) (v >> 32));
}

static void
put_bytes (struct wbuf *b, const void *v, size_t len)
{
  put_u32 (b, v ? (uint32_t) len : NULL_LEN);
  if (v)
    put (b, v, len);
}

static void
put_str (struct wbuf *b, const char *s)
{
  put_bytes (b, s, s ? strlen (s) : 0);
}

int
berth_layerindex_save (const berth_layerindex *idx, const char *path, berth_error *err)
{
  struct wbuf b = { 0 };
  put (&b, MAGIC, 8);
  put_u32 (&b, VERSION);
  put_u32 (&b, idx->format);
  put_u32 (&b, idx->compression);
  put_u32 (&b, idx->landmark);
  put_u64 (&b, idx->blob_size);
  put_u64 (&b, idx->stream_size);
  put_u64 (&b, idx->toc_offset);
  put_u64 (&b, idx->n_entries);
  put_u64 (&b, idx->n_ckpts);
  put_u64 (&b, idx->n_prefetch);
  put_str (&b, idx->toc_digest);
  for (size_t i = 0; i < idx->n_entries; i++)
    {
      const struct berth_layerindex_entry *e = &idx->entries[i];
      bool link = e->hardlink != NULL;
      put_str (&b, e->path);
      uint32_t u[] = { e->type, e->flags, e->mode, e->uid, e->gid, e->dev_major, e->dev_minor };
      for (size_t k = 0; k < sizeof u / sizeof u[0]; k++)
        put_u32 (&b, u[k]);
      put_u64 (&b, e->size);
      put_u64 (&b, (uint64_t) e->mtime_ns);
      put_u64 (&b, e->offset);
      put_str (&b, link ? NULL : e->symlink);
      put_str (&b, e->hardlink);
      put_str (&b, link ? NULL : e->digest);
      put_u32 (&b, link ? 0 : (uint32_t) e->n_xattrs);
      for (size_t k = 0; !link && k < e->n_xattrs; k++)
        {
          put_str (&b, e->xattrs[k].name);
          put_bytes (&b, e->xattrs[k].value ? e->xattrs[k].value : "", e->xattrs[k].len);
        }
      put_u32 (&b, link ? 0 : (uint32_t) e->n_chunks);
      for (size_t k = 0; !link && k < e->n_chunks; k++)
        {
          const struct berth_layerindex_chunk *c = &e->chunks[k];
          put_u64 (&b, c->offset);
          put_u64 (&b, c->inner_offset);
          put_u64 (&b, c->chunk_offset);
          put_u64 (&b, c->chunk_size);
          put_str (&b, c->digest);
        }
    }
  for (size_t i = 0; i < idx->n_ckpts; i++)
    {
      const struct li_checkpoint *c = &idx->ckpts[i];
      put_u64 (&b, c->out);
      put_u64 (&b, c->in);
      put (&b, &c->bits, 1);
      put (&b, &c->member_start, 1);
      put_bytes (&b, c->window ? c->window : (const unsigned char *) "", c->window_len);
    }
  for (size_t i = 0; i < idx->n_prefetch; i++)
    put_str (&b, idx->prefetch[i]->path);
  put_str (&b, idx->diff_id);
  unsigned char md[32];
  if (!b.oom)
    EVP_Digest (b.p, b.n, md, NULL, EVP_sha256 (), NULL);
  put (&b, md, sizeof md);
  if (b.oom)
    {
      free (b.p);
      return li_nomem (idx, err);
    }
  size_t plen = strlen (path);
  char *tmp = malloc (plen + 16);
  if (tmp == NULL)
    {
      free (b.p);
      return li_nomem (idx, err);
    }
  int r = 0;
  snprintf (tmp, plen + 16, "%s.tmp.XXXXXX", path);
  int fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    r = idx->host->error_set (err, BERTH_E_INTERNAL, errno, "creating %s", tmp);
  for (size_t off = 0; r == 0 && off < b.n;)
    {
      ssize_t k = write (fd, b.p + off, b.n - off);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        r = idx->host->error_set (err, errno == ENOSPC ? BERTH_E_EXHAUSTED : BERTH_E_INTERNAL, errno, "writing %s", tmp);
      else
        off += (size_t) k;
    }
  if (r == 0 && fsync (fd) < 0)
    r = idx->host->error_set (err, BERTH_E_INTERNAL, errno, "fsync %s", tmp);
  if (fd >= 0)
    close (fd);
  if (r == 0 && rename (tmp, path) < 0)
    r = idx->host->error_set (err, BERTH_E_INTERNAL, errno, "renaming %s to %s", tmp, path);
  if (r < 0 && fd >= 0)
    unlink (tmp);
  free (tmp);
  free (b.p);
  return r;
}

/* ---- loading --------------------------------------------------------------- */

struct rbuf
{
  const unsigned char *p;
  size_t n, at;
  bool bad;
};

static bool
get (struct rbuf *b, void *v, size_t len)
{
  if (b->bad || len > b->n - b->at)
    {
      b->bad = true;
      memset (v, 0, len);
      return false;
    }
  memcpy (v, b->p + b->at, len);
  b->at += len;
  return true;
}

static uint32_t
get_u32 (struct rbuf *b)
{
  unsigned char x[4];
  get (b, x, 4);
  return x[0] | (uint32_t) x[1] << 8 | (uint32_t) x[2] << 16 | (uint32_t) x[3] << 24;
}

static uint64_t
get_u64 (struct rbuf *b)
{
  uint64_t lo = get_u32 (b);
  return lo | (uint64_t) get_u32 (b) << 32;
}

/* A new copy (NUL-terminated) of at most max bytes, or NULL for a NULL
 * string; *ret_len gets the length.  Sets b->bad on a bad length or a NUL
 * inside a string (text = true). */
static void *
get_bytes (struct rbuf *b, size_t max, bool text, size_t *ret_len, bool *ret_oom)
{
  uint32_t len = get_u32 (b);
  if (ret_len)
    *ret_len = 0;
  if (b->bad || len == NULL_LEN)
    return NULL;
  if (len > max || len > b->n - b->at)
    {
      b->bad = true;
      return NULL;
    }
  char *s = malloc ((size_t) len + 1);
  if (s == NULL)
    {
      *ret_oom = true;
      b->bad = true;
      return NULL;
    }
  memcpy (s, b->p + b->at, len);
  s[len] = '\0';
  b->at += len;
  if (text && memchr (s, '\0', len))
    {
      free (s);
      b->bad = true;
      return NULL;
    }
  if (ret_len)
    *ret_len = len;
  return s;
}

static bool
normalised (const char *p)
{
  bool bad = false;
  char *n = li_path_normalise (p, true, &bad);
  bool ok = n && !bad && strcmp (n, p) == 0;
  free (n);
  return ok;
}

static int
load_entry (berth_layerindex *idx, struct rbuf *b, struct berth_layerindex_entry *e, bool *oom, berth_error *err)
{
  const struct berth_layerindex_opts *o = &idx->opts;
  e->path = get_bytes (b, o->max_path, true, NULL, oom);
  uint32_t *u[] = { &e->type, &e->flags, &e->mode, &e->uid, &e->gid, &e->dev_major, &e->dev_minor };
  for (size_t k = 0; k < sizeof u / sizeof u[0]; k++)
    *u[k] = get_u32 (b);
  e->size = get_u64 (b);
  e->mtime_ns = (int64_t) get_u64 (b);
  e->offset = get_u64 (b);
  e->symlink = get_bytes (b, o->max_path, true, NULL, oom);
  e->hardlink = get_bytes (b, o->max_path, true, NULL, oom);
  e->digest = get_bytes (b, 80, true, NULL, oom);
  if (b->bad || e->path == NULL)
    return 1;
  if (!normalised (e->path) || (e->hardlink && (!normalised (e->hardlink) || !e->hardlink[0])))
    return li_error (idx, err, BERTH_E_INVALID, "index file: entry `%s` has a path that is not normalised", e->path);
  if (e->mode > 07777 || e->flags > BERTH_LAYERINDEX_F_IMPLICIT)
    return li_error (idx, err, BERTH_E_INVALID, "index file: entry `%s` has a bad mode or flags", e->path);
  uint32_t nx = get_u32 (b);
  if (nx > o->max_xattrs || nx > (b->n - b->at) / 8)
    return 1;
  if (nx)
    {
      struct berth_layerindex_xattr *x = calloc (nx, sizeof *x);
      if (x == NULL)
        return li_nomem (idx, err);
      e->xattrs = x;
      for (uint32_t k = 0; k < nx && !b->bad; k++)
        {
          x[k].name = get_bytes (b, 255, true, NULL, oom);
          x[k].value = get_bytes (b, o->max_xattrs, false, &x[k].len, oom);
          e->n_xattrs = k + 1;
          if (x[k].name == NULL || x[k].value == NULL)
            b->bad = true;
        }
    }
  uint32_t nc = get_u32 (b);
  if (nc > (b->n - b->at) / 36)
    return 1;
  if (nc)
    {
      struct berth_layerindex_chunk *c = calloc (nc, sizeof *c);
      if (c == NULL)
        return li_nomem (idx, err);
      e->chunks = c;
      for (uint32_t k = 0; k < nc && !b->bad; k++)
        {
          c[k].offset = get_u64 (b);
          c[k].inner_offset = get_u64 (b);
          c[k].chunk_offset = get_u64 (b);
          c[k].chunk_size = get_u64 (b);
          c[k].digest = get_bytes (b, 80, true, NULL, oom);
          e->n_chunks = k + 1;
        }
    }
  if (b->bad)
    return 1;
  return li_entry_check (idx, e, err);
}

int
berth_layerindex_load_buffer (const struct berth_host *host, const void *buf, size_t len,
                              berth_layerindex_read_at_fn read_at, void *data, uint64_t blob_size,
                              const struct berth_layerindex_opts *opts, berth_layerindex **ret_idx,
                              berth_error *err)
{
  *ret_idx = NULL;
  berth_layerindex *idx = li_new (host, read_at, data, blob_size, opts);
  if (idx == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  struct rbuf b = { .p = buf, .n = len };
  struct li_list l = { 0 };
  bool oom = false;
  int r = 0;
  unsigned char md[32];
  char magic[8];
  uint32_t version = 0;
  if (len < 8 + 32 + 4 || len > idx->opts.max_toc * 4)
    r = li_error (idx, err, BERTH_E_INVALID, "index file: bad size %zu", len);
  else
    {
      EVP_Digest (buf, len - 32, md, NULL, EVP_sha256 (), NULL);
      b.n = len - 32;
      get (&b, magic, 8);
      if (memcmp (magic, MAGIC, 8) != 0)
        r = li_error (idx, err, BERTH_E_INVALID, "index file: not a berth layer index");
      else if ((version = get_u32 (&b)) < 1 || version > VERSION)
        r = li_error (idx, err, BERTH_E_INVALID, "index file: unsupported version %" PRIu32, version);
      else if (memcmp (md, (const unsigned char *) buf + len - 32, 32) != 0)
        r = li_error (idx, err, BERTH_E_INVALID, "index file: checksum mismatch");
    }
  uint64_t n_entries = 0, n_ckpts = 0, n_pf = 0;
  if (r == 0)
    {
      idx->format = get_u32 (&b);
      idx->compression = get_u32 (&b);
      idx->landmark = get_u32 (&b);
      uint64_t bs = get_u64 (&b);
      idx->stream_size = get_u64 (&b);
      idx->toc_offset = get_u64 (&b);
      n_entries = get_u64 (&b);
      n_ckpts = get_u64 (&b);
      n_pf = get_u64 (&b);
      idx->toc_digest = get_bytes (&b, 80, true, NULL, &oom);
      if (b.bad)
        r = li_error (idx, err, BERTH_E_INVALID, "index file: truncated header");
      else if (bs != blob_size)
        r = li_error (idx, err, BERTH_E_PRECONDITION,
                      "index file: made for a blob of %" PRIu64 " bytes, this one has %" PRIu64, bs, blob_size);
      else if ((idx->format != LI_FORMAT_TAR && idx->format != LI_FORMAT_ESTARGZ)
               || idx->compression < BERTH_LAYERINDEX_NONE || idx->compression > BERTH_LAYERINDEX_ZSTD
               || idx->landmark > 2 || idx->stream_size > idx->opts.max_total_size
               || (idx->format == LI_FORMAT_ESTARGZ
                   && (idx->compression != BERTH_LAYERINDEX_GZIP || idx->toc_offset >= blob_size
                       || idx->toc_digest == NULL || !li_digest_valid (idx->toc_digest))))
        r = li_error (idx, err, BERTH_E_INVALID, "index file: bad header fields");
      else if (n_entries > idx->opts.max_entries || n_entries > (b.n - b.at) / 60
               || n_ckpts > (b.n - b.at) / 22 || n_pf > n_entries)
        r = li_error (idx, err, BERTH_E_INVALID, "index file: counts larger than the file");
    }
  for (uint64_t i = 0; r == 0 && i < n_entries; i++)
    {
      struct berth_layerindex_entry *e = li_list_add (&l);
      if (e == NULL)
        r = li_nomem (idx, err);
      else if ((r = load_entry (idx, &b, e, &oom, err)) > 0)
        r = oom ? li_nomem (idx, err)
                : li_error (idx, err, BERTH_E_INVALID, "index file: entry %" PRIu64 " is truncated or too large", i);
    }
  if (r == 0 && n_ckpts)
    {
      idx->ckpts = calloc (n_ckpts, sizeof *idx->ckpts);
      if (idx->ckpts == NULL)
        r = li_nomem (idx, err);
    }
  for (uint64_t i = 0; r == 0 && i < n_ckpts; i++)
    {
      struct li_checkpoint *c = &idx->ckpts[i];
      c->out = get_u64 (&b);
      c->in = get_u64 (&b);
      get (&b, &c->bits, 1);
      get (&b, &c->member_start, 1);
      size_t wl = 0;
      c->window = get_bytes (&b, 65536, false, &wl, &oom);
      c->window_len = (uint32_t) wl;
      idx->n_ckpts = i + 1;
      const struct li_checkpoint *p = i ? &idx->ckpts[i - 1] : NULL;
      if (b.bad || c->window == NULL)
        r = oom ? li_nomem (idx, err) : li_error (idx, err, BERTH_E_INVALID, "index file: checkpoint %" PRIu64 " truncated", i);
      else if (c->bits > 7 || c->member_start > 1 || c->in >= blob_size || c->out > idx->stream_size
               || (i == 0 && (c->out != 0 || c->in != 0 || !c->member_start))
               || (p && (c->out <= p->out || c->in <= p->in)) || (c->bits && c->member_start)
               || (!c->member_start && idx->compression != BERTH_LAYERINDEX_GZIP)
               || (!c->member_start && c->window_len == 0))
        r = li_error (idx, err, BERTH_E_INVALID, "index file: checkpoint %" PRIu64 " is inconsistent", i);
    }
  if (r == 0 && idx->format == LI_FORMAT_TAR && idx->compression != BERTH_LAYERINDEX_NONE && n_ckpts == 0)
    r = li_error (idx, err, BERTH_E_INVALID, "index file: no checkpoints for a compressed layer");
  if (r == 0 && n_pf)
    {
      idx->prefetch_paths = calloc (n_pf, sizeof (char *));
      if (idx->prefetch_paths == NULL)
        r = li_nomem (idx, err);
    }
  for (uint64_t i = 0; r == 0 && i < n_pf; i++)
    {
      idx->prefetch_paths[i] = get_bytes (&b, idx->opts.max_path, true, NULL, &oom);
      idx->n_prefetch_paths = i + 1;
      if (idx->prefetch_paths[i] == NULL)
        r = oom ? li_nomem (idx, err) : li_error (idx, err, BERTH_E_INVALID, "index file: prefetch list truncated");
    }
  if (r == 0 && version >= 2)
    {
      idx->diff_id = get_bytes (&b, 80, true, NULL, &oom);
      if (b.bad || (idx->diff_id != NULL && !li_digest_valid (idx->diff_id)))
        r = oom ? li_nomem (idx, err) : li_error (idx, err, BERTH_E_INVALID, "index file: bad diff_id");
    }
  if (r == 0 && b.at != b.n)
    r = li_error (idx, err, BERTH_E_INVALID, "index file: %zu bytes of trailing data", b.n - b.at);
  if (r == 0)
    r = li_finish (idx, &l, err);
  li_list_clear (&l);
  if (r < 0)
    {
      berth_layerindex_free (idx);
      return r;
    }
  *ret_idx = idx;
  return 0;
}

int
berth_layerindex_load (const struct berth_host *host, const char *path, berth_layerindex_read_at_fn read_at,
                       void *data, uint64_t blob_size, const struct berth_layerindex_opts *opts,
                       berth_layerindex **ret_idx, berth_error *err)
{
  struct berth_layerindex_opts o;
  li_opts_defaults (&o, opts);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return host->error_set (err, errno == ENOENT ? BERTH_E_NOTFOUND : BERTH_E_INTERNAL, errno, "opening %s", path);
  struct stat st;
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || (uint64_t) st.st_size > o.max_toc * 4)
    {
      close (fd);
      return host->error_set (err, BERTH_E_INVALID, 0, "index file %s: not a regular file of a sane size", path);
    }
  size_t len = (size_t) st.st_size;
  unsigned char *buf = malloc (len ? len : 1);
  size_t got = 0;
  while (buf && got < len)
    {
      ssize_t k = read (fd, buf + got, len - got);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0)
        break;
      got += (size_t) k;
    }
  close (fd);
  if (buf == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  int r = got == len ? berth_layerindex_load_buffer (host, buf, len, read_at, data, blob_size, opts, ret_idx, err)
                     : host->error_set (err, BERTH_E_INTERNAL, errno, "reading %s", path);
  free (buf);
  if (r < 0)
    host->error_wrap (err, "index file %s", path);
  return r;
}
