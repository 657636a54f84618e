/* libberth-layerindex: the index model, its rules and lookups (see
 * include/berth/layerindex.h).
 *
 * Entries are kept in one array in strcmp order of their normalised paths,
 * so a lookup is a binary search and an ino is a position; children are one
 * array grouped by parent.  Everything the builders, the TOC parser and the
 * loader produce goes through li_finish(), so the rules hold whatever the
 * source.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "layerindex-private.h"

int
li_error (const berth_layerindex *idx, berth_error *err, int code, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (idx == NULL || idx->host == NULL)
    return code;
  return idx->host->error_set (err, code, 0, "%s", msg);
}

int
li_nomem (const berth_layerindex *idx, berth_error *err)
{
  return li_error (idx, err, BERTH_E_NOMEM, "out of memory");
}

void
li_opts_defaults (struct berth_layerindex_opts *o, const struct berth_layerindex_opts *in)
{
  memset (o, 0, sizeof *o);
  if (in)
    memcpy (o, in, in->size < sizeof *o ? in->size : sizeof *o);
  o->size = sizeof *o;
  if (o->checkpoint_span == 0)
    o->checkpoint_span = LI_MIB;
  if (o->checkpoint_span < 65536)
    o->checkpoint_span = 65536;
  if (o->max_entries == 0)
    o->max_entries = 1000000;
  if (o->max_path == 0)
    o->max_path = 4096;
  if (o->max_total_size == 0)
    o->max_total_size = UINT64_C (64) << 30;
  if (o->max_xattrs == 0)
    o->max_xattrs = 65536;
  if (o->max_toc == 0)
    o->max_toc = 256 * LI_MIB;
  if (o->max_chunk == 0)
    o->max_chunk = 64 * LI_MIB;
}

berth_layerindex *
li_new (const struct berth_host *host, berth_layerindex_read_at_fn read_at, void *data, uint64_t blob_size,
        const struct berth_layerindex_opts *opts)
{
  berth_layerindex *idx = calloc (1, sizeof *idx);
  if (idx == NULL)
    return NULL;
  idx->host = host;
  idx->read_at = read_at;
  idx->read_data = data;
  idx->blob_size = blob_size;
  li_opts_defaults (&idx->opts, opts);
  idx->opts.toc_digest = NULL; /* borrowed; not kept */
  idx->opts.diff_id = NULL;
  return idx;
}

uint32_t
berth_layerindex_compression_of (const char *mt)
{
  static const struct
  {
    const char *mt;
    uint32_t c;
  } known[] = {
    { "application/vnd.oci.image.layer.v1.tar", BERTH_LAYERINDEX_NONE },
    { "application/vnd.oci.image.layer.v1.tar+gzip", BERTH_LAYERINDEX_GZIP },
    { "application/vnd.oci.image.layer.v1.tar+zstd", BERTH_LAYERINDEX_ZSTD },
    { "application/vnd.oci.image.layer.nondistributable.v1.tar", BERTH_LAYERINDEX_NONE },
    { "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", BERTH_LAYERINDEX_GZIP },
    { "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", BERTH_LAYERINDEX_ZSTD },
    { "application/vnd.docker.image.rootfs.diff.tar", BERTH_LAYERINDEX_NONE },
    { "application/vnd.docker.image.rootfs.diff.tar.gzip", BERTH_LAYERINDEX_GZIP },
    { "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", BERTH_LAYERINDEX_GZIP },
    { "application/vnd.docker.image.rootfs.diff.tar.zstd", BERTH_LAYERINDEX_ZSTD },
  };
  for (size_t i = 0; mt && i < sizeof known / sizeof known[0]; i++)
    if (strcmp (mt, known[i].mt) == 0)
      return known[i].c;
  return BERTH_LAYERINDEX_UNKNOWN;
}

char *
li_path_normalise (const char *path, bool strict, bool *ret_bad)
{
  size_t n = strlen (path);
  char *out = malloc (n + 1);
  if (out == NULL)
    return NULL;
  *ret_bad = strict && path[0] == '/';
  size_t o = 0;
  const char *p = path;
  while (*p)
    {
      while (*p == '/')
        p++;
      const char *s = p;
      while (*p && *p != '/')
        p++;
      size_t len = (size_t) (p - s);
      if (len == 0 || (len == 1 && s[0] == '.'))
        continue;
      if (len == 2 && s[0] == '.' && s[1] == '.')
        *ret_bad = true;
      if (o)
        out[o++] = '/';
      memcpy (out + o, s, len);
      o += len;
    }
  out[o] = '\0';
  return out;
}

struct berth_layerindex_entry *
li_list_add (struct li_list *l)
{
  if (l->n == l->cap)
    {
      size_t cap = l->cap ? l->cap * 2 : 64;
      struct berth_layerindex_entry *v = realloc (l->v, cap * sizeof *v);
      if (v == NULL)
        return NULL;
      l->v = v;
      l->cap = cap;
    }
  struct berth_layerindex_entry *e = &l->v[l->n++];
  memset (e, 0, sizeof *e);
  e->ino = l->n; /* stream order until li_finish */
  return e;
}

/* Frees what the entry owns: everything, unless it is a hard link, which
 * shares its target's symlink, xattrs, chunks and digest. */
void
li_entry_clear (struct berth_layerindex_entry *e)
{
  free ((char *) e->path);
  free ((char *) e->hardlink);
  if (e->hardlink == NULL || e->data_ino == 0)
    {
      free ((char *) e->symlink);
      for (size_t i = 0; i < e->n_xattrs; i++)
        {
          free ((char *) e->xattrs[i].name);
          free ((void *) e->xattrs[i].value);
        }
      free ((void *) e->xattrs);
      for (size_t i = 0; i < e->n_chunks; i++)
        free ((char *) e->chunks[i].digest);
      free ((void *) e->chunks);
      free ((char *) e->digest);
    }
  memset (e, 0, sizeof *e);
}

void
li_list_clear (struct li_list *l)
{
  for (size_t i = 0; i < l->n; i++)
    li_entry_clear (&l->v[i]);
  free (l->v);
  memset (l, 0, sizeof *l);
}

int
li_entry_check (berth_layerindex *idx, const struct berth_layerindex_entry *e, berth_error *err)
{
  const struct berth_layerindex_opts *o = &idx->opts;
  if (strlen (e->path) > o->max_path)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%.200s...`: path longer than %" PRIu64 " bytes", e->path,
                     o->max_path);
  if (e->symlink && strlen (e->symlink) > o->max_path)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: link target longer than %" PRIu64 " bytes", e->path,
                     o->max_path);
  if (e->size > o->max_total_size)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: size %" PRIu64 " is larger than the limit %" PRIu64,
                     e->path, e->size, o->max_total_size);
  if (e->type < BERTH_LAYERINDEX_REG || e->type > BERTH_LAYERINDEX_OPAQUE)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: unknown type %u", e->path, e->type);
  if (e->type == BERTH_LAYERINDEX_SYMLINK && e->symlink == NULL)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: symlink without a target", e->path);
  uint64_t xb = 0;
  for (size_t i = 0; i < e->n_xattrs; i++)
    xb += strlen (e->xattrs[i].name) + e->xattrs[i].len;
  if (xb > o->max_xattrs)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: %" PRIu64 " bytes of xattrs, more than %" PRIu64,
                     e->path, xb, o->max_xattrs);
  if (e->path[0] == '\0' && e->type != BERTH_LAYERINDEX_DIR)
    return li_error (idx, err, BERTH_E_INVALID, "entry `/`: the root is not a directory");
  return 0;
}

static int
cmp_path_seq (const void *a, const void *b)
{
  const struct berth_layerindex_entry *x = a, *y = b;
  int c = strcmp (x->path, y->path);
  if (c)
    return c;
  return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int
cmp_key_entry (const void *key, const void *b)
{
  return strcmp (key, ((const struct berth_layerindex_entry *) b)->path);
}

static struct berth_layerindex_entry *
find (struct berth_layerindex_entry *v, size_t n, const char *path)
{
  if (n == 0)
    return NULL;
  return bsearch (path, v, n, sizeof *v, cmp_key_entry);
}

/* Parent path of a normalised non-root path, in buf. */
static const char *
dirname_of (const char *path, char *buf, size_t bufsz)
{
  const char *s = strrchr (path, '/');
  size_t n = s ? (size_t) (s - path) : 0;
  if (n >= bufsz)
    n = bufsz - 1;
  memcpy (buf, path, n);
  buf[n] = '\0';
  return buf;
}

struct chunk_ref
{
  uint64_t off, inner;
  struct berth_layerindex_chunk *c;
  const char *path;
};

static int
cmp_chunk_ref (const void *a, const void *b)
{
  const struct chunk_ref *x = a, *y = b;
  if (x->off != y->off)
    return x->off < y->off ? -1 : 1;
  return x->inner < y->inner ? -1 : x->inner > y->inner;
}

static int
check_chunks (berth_layerindex *idx, berth_error *err)
{
  /* Every chunk's (offset, inner) must be unique and inside the blob before
   * the TOC; compressed_end is the next larger member start. */
  size_t total = 0;
  for (size_t i = 0; i < idx->n_entries; i++)
    if (idx->entries[i].hardlink == NULL)
      total += idx->entries[i].n_chunks;
  if (total == 0)
    return 0;
  struct chunk_ref *refs = calloc (total, sizeof *refs);
  if (refs == NULL)
    return li_nomem (idx, err);
  size_t k = 0;
  for (size_t i = 0; i < idx->n_entries; i++)
    {
      struct berth_layerindex_entry *e = &idx->entries[i];
      if (e->hardlink)
        continue;
      for (size_t j = 0; j < e->n_chunks; j++)
        refs[k++] = (struct chunk_ref) { e->chunks[j].offset, e->chunks[j].inner_offset,
                                   (struct berth_layerindex_chunk *) &e->chunks[j], e->path };
    }
  qsort (refs, total, sizeof *refs, cmp_chunk_ref);
  int r = 0;
  for (size_t i = 0; i < total && r == 0; i++)
    {
      if (refs[i].off >= idx->toc_offset)
        r = li_error (idx, err, BERTH_E_INVALID,
                      "entry `%s`: chunk at offset %" PRIu64 " is not before the TOC at %" PRIu64, refs[i].path,
                      refs[i].off, idx->toc_offset);
      else if (i > 0 && refs[i].off == refs[i - 1].off && refs[i].inner < refs[i - 1].inner + refs[i - 1].c->chunk_size)
        r = li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunk at offset %" PRIu64 " overlaps one of `%s`",
                      refs[i].path, refs[i].off, refs[i - 1].path);
    }
  for (size_t i = total; r == 0 && i-- > 0;)
    {
      uint64_t end = idx->toc_offset;
      if (i + 1 < total)
        end = refs[i + 1].off > refs[i].off ? refs[i + 1].off : refs[i + 1].c->compressed_end;
      refs[i].c->compressed_end = end;
    }
  free (refs);
  return r;
}

static int
check_file_chunks (berth_layerindex *idx, const struct berth_layerindex_entry *e, berth_error *err)
{
  if (e->hardlink)
    return 0; /* shares its target's chunks, checked there */
  if (e->type != BERTH_LAYERINDEX_REG)
    {
      if (e->n_chunks)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunks on an entry that is not a regular file",
                         e->path);
      return 0;
    }
  if (e->size > 0 && e->n_chunks == 0)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: %" PRIu64 " bytes but no chunks", e->path, e->size);
  uint64_t at = 0;
  for (size_t i = 0; i < e->n_chunks; i++)
    {
      const struct berth_layerindex_chunk *c = &e->chunks[i];
      if (c->chunk_offset != at)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunk %zu starts at %" PRIu64 ", expected %" PRIu64,
                         e->path, i, c->chunk_offset, at);
      if (c->chunk_size == 0 || c->chunk_size > idx->opts.max_chunk)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunk %zu has size %" PRIu64 " (limit %" PRIu64 ")",
                         e->path, i, c->chunk_size, idx->opts.max_chunk);
      if (c->inner_offset > idx->opts.max_total_size)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunk %zu has an absurd innerOffset", e->path, i);
      if (c->digest == NULL || !li_digest_valid (c->digest))
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunk %zu has no valid chunkDigest", e->path, i);
      at += c->chunk_size;
      if (at > e->size)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunks go past the size %" PRIu64, e->path,
                         e->size);
    }
  if (at != e->size)
    return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunks cover %" PRIu64 " of %" PRIu64 " bytes", e->path,
                     at, e->size);
  return 0;
}

int
li_finish (berth_layerindex *idx, struct li_list *l, berth_error *err)
{
  int r = 0;
  /* 1. duplicates: the last one wins. */
  if (l->n > 0)
    qsort (l->v, l->n, sizeof *l->v, cmp_path_seq);
  size_t w = 0;
  for (size_t i = 0; i < l->n; i++)
    {
      if (w > 0 && strcmp (l->v[w - 1].path, l->v[i].path) == 0)
        {
          li_entry_clear (&l->v[w - 1]);
          l->v[w - 1] = l->v[i];
        }
      else
        l->v[w++] = l->v[i];
    }
  l->n = w;

  /* 2. implicit directories (and the root). */
  struct li_list extra = { 0 };
  char *buf = malloc (idx->opts.max_path + 2);
  if (buf == NULL)
    return li_nomem (idx, err);
  size_t n0 = l->n;
  for (size_t i = 0; i <= n0 && r == 0; i++)
    {
      const char *p = i < n0 ? l->v[i].path : "";
      if (i == n0 && find (l->v, n0, "") != NULL)
        break;
      for (;;)
        {
          if (*p == '\0' && i < n0)
            break;
          const char *d = *p ? dirname_of (p, buf, idx->opts.max_path + 1) : "";
          if (*p == '\0' || find (l->v, n0, d) != NULL)
            {
              if (*p == '\0')
                d = "";
              else
                break;
            }
          if (extra.n > 0 && strcmp (extra.v[extra.n - 1].path, d) == 0)
            break;
          if (n0 + extra.n >= idx->opts.max_entries)
            {
              r = li_error (idx, err, BERTH_E_INVALID, "layer has more than %" PRIu64 " entries (at `%s`)",
                            idx->opts.max_entries, d);
              break;
            }
          struct berth_layerindex_entry *e = li_list_add (&extra);
          if (e == NULL || (e->path = strdup (d)) == NULL)
            {
              r = li_nomem (idx, err);
              break;
            }
          e->type = BERTH_LAYERINDEX_DIR;
          e->mode = 0755;
          e->flags = BERTH_LAYERINDEX_F_IMPLICIT;
          if (*d == '\0')
            break;
          p = e->path;
        }
    }
  free (buf);
  if (r == 0 && extra.n > 0)
    {
      struct berth_layerindex_entry *v = realloc (l->v, (l->n + extra.n) * sizeof *v);
      if (v == NULL)
        r = li_nomem (idx, err);
      else
        {
          l->v = v;
          memcpy (v + l->n, extra.v, extra.n * sizeof *v);
          l->n += extra.n;
          l->cap = l->n;
          free (extra.v);
          memset (&extra, 0, sizeof extra);
          qsort (l->v, l->n, sizeof *l->v, cmp_path_seq);
          /* implicit dirs were absent from the layer but may repeat among themselves */
          w = 0;
          for (size_t i = 0; i < l->n; i++)
            {
              if (w > 0 && strcmp (l->v[w - 1].path, l->v[i].path) == 0)
                li_entry_clear (&l->v[i]);
              else
                l->v[w++] = l->v[i];
            }
          l->n = w;
        }
    }
  li_list_clear (&extra);
  if (r < 0)
    return r;

  /* The index takes the array. */
  idx->entries = l->v;
  idx->n_entries = l->n;
  memset (l, 0, sizeof *l);
  size_t n = idx->n_entries;
  struct berth_layerindex_entry *v = idx->entries;
  if (n > idx->opts.max_entries)
    return li_error (idx, err, BERTH_E_INVALID, "layer has more than %" PRIu64 " entries", idx->opts.max_entries);

  /* 3. inos, names, parents. */
  for (size_t i = 0; i < n; i++)
    {
      v[i].ino = i + 1;
      const char *s = strrchr (v[i].path, '/');
      v[i].name = s ? s + 1 : v[i].path;
    }
  idx->child_first = calloc (n, sizeof (size_t));
  idx->child_count = calloc (n, sizeof (size_t));
  idx->children = calloc (n ? n : 1, sizeof (void *));
  buf = malloc (idx->opts.max_path + 2);
  if (idx->child_first == NULL || idx->child_count == NULL || idx->children == NULL || buf == NULL)
    {
      free (buf);
      return li_nomem (idx, err);
    }
  for (size_t i = 1; i < n && r == 0; i++)
    {
      struct berth_layerindex_entry *p = find (v, n, dirname_of (v[i].path, buf, idx->opts.max_path + 1));
      if (p == NULL)
        r = li_error (idx, err, BERTH_E_INTERNAL, "entry `%s`: parent missing", v[i].path);
      else if (p->type != BERTH_LAYERINDEX_DIR)
        r = li_error (idx, err, BERTH_E_INVALID, "entry `%s`: parent `%s` is not a directory", v[i].path, p->path);
      else
        {
          v[i].parent_ino = p->ino;
          idx->child_count[p->ino - 1]++;
        }
    }
  free (buf);
  if (r < 0)
    return r;
  v[0].parent_ino = 1;
  size_t at = 0;
  for (size_t i = 0; i < n; i++)
    {
      idx->child_first[i] = at;
      at += idx->child_count[i];
      idx->child_count[i] = 0;
    }
  for (size_t i = 1; i < n; i++)
    {
      size_t p = v[i].parent_ino - 1;
      idx->children[idx->child_first[p] + idx->child_count[p]++] = &v[i];
    }

  /* 4. hard links share their target's data. */
  for (size_t i = 0; i < n; i++)
    {
      struct berth_layerindex_entry *e = &v[i];
      if (e->hardlink == NULL)
        {
          e->data_ino = e->ino;
          continue;
        }
      const struct berth_layerindex_entry *t = e;
      for (int hops = 0; t->hardlink; hops++)
        {
          t = find (v, n, t->hardlink);
          if (t == NULL || hops > 64 || t == e)
            return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: hard link to `%s`, %s", e->path, e->hardlink,
                             t == NULL ? "which is not in the layer" : "which is a loop");
        }
      if (t->type != BERTH_LAYERINDEX_REG && t->type != BERTH_LAYERINDEX_SYMLINK && t->type != BERTH_LAYERINDEX_CHAR
          && t->type != BERTH_LAYERINDEX_BLOCK && t->type != BERTH_LAYERINDEX_FIFO)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: hard link to `%s`, which is not a file", e->path,
                         t->path);
      if (e->symlink || e->n_xattrs || e->n_chunks || e->digest)
        {
          /* the link's own copies are dropped: the target's data counts */
          free ((char *) e->symlink);
          for (size_t k = 0; k < e->n_xattrs; k++)
            {
              free ((char *) e->xattrs[k].name);
              free ((void *) e->xattrs[k].value);
            }
          free ((void *) e->xattrs);
          for (size_t k = 0; k < e->n_chunks; k++)
            free ((char *) e->chunks[k].digest);
          free ((void *) e->chunks);
          free ((char *) e->digest);
        }
      e->data_ino = t->ino;
      e->type = t->type;
      e->mode = t->mode;
      e->uid = t->uid;
      e->gid = t->gid;
      e->size = t->size;
      e->mtime_ns = t->mtime_ns;
      e->symlink = t->symlink;
      e->dev_major = t->dev_major;
      e->dev_minor = t->dev_minor;
      e->n_xattrs = t->n_xattrs;
      e->xattrs = t->xattrs;
      e->offset = t->offset;
      e->n_chunks = t->n_chunks;
      e->chunks = t->chunks;
      e->digest = t->digest;
    }

  /* 5. sizes and, for eStargz, chunks. */
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++)
    {
      if (v[i].hardlink == NULL && v[i].type == BERTH_LAYERINDEX_REG)
        {
          total += v[i].size;
          if (total > idx->opts.max_total_size)
            return li_error (idx, err, BERTH_E_INVALID,
                             "entry `%s`: the layer's files add up to more than %" PRIu64 " bytes", v[i].path,
                             idx->opts.max_total_size);
          if (idx->format == LI_FORMAT_TAR && idx->stream_size && v[i].offset + v[i].size > idx->stream_size)
            return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: data past the end of the stream", v[i].path);
        }
      if (idx->format == LI_FORMAT_ESTARGZ && (r = check_file_chunks (idx, &v[i], err)) < 0)
        return r;
      if (idx->format == LI_FORMAT_TAR && v[i].n_chunks && !v[i].hardlink)
        return li_error (idx, err, BERTH_E_INVALID, "entry `%s`: chunks in a tar index", v[i].path);
    }
  if (idx->format == LI_FORMAT_ESTARGZ && (r = check_chunks (idx, err)) < 0)
    return r;

  /* 6. the prefetch list, given as paths, becomes entries. */
  if (idx->n_prefetch_paths)
    {
      idx->prefetch = calloc (idx->n_prefetch_paths, sizeof (void *));
      if (idx->prefetch == NULL)
        return li_nomem (idx, err);
      size_t k = 0;
      for (size_t j = 0; j < idx->n_prefetch_paths; j++)
        {
          const struct berth_layerindex_entry *e = find (v, n, idx->prefetch_paths[j]);
          if (e && e->type == BERTH_LAYERINDEX_REG)
            idx->prefetch[k++] = e;
        }
      idx->n_prefetch = k;
    }
  return 0;
}

const struct berth_layerindex_entry *
berth_layerindex_lookup (const berth_layerindex *idx, const char *path)
{
  if (idx == NULL || path == NULL)
    return NULL;
  bool bad;
  char *p = li_path_normalise (path, false, &bad);
  if (p == NULL)
    return NULL;
  const struct berth_layerindex_entry *e = bad ? NULL : find (idx->entries, idx->n_entries, p);
  free (p);
  return e;
}

const struct berth_layerindex_entry *
berth_layerindex_get (const berth_layerindex *idx, uint64_t ino)
{
  if (idx == NULL || ino == 0 || ino > idx->n_entries)
    return NULL;
  return &idx->entries[ino - 1];
}

size_t
berth_layerindex_count (const berth_layerindex *idx)
{
  return idx ? idx->n_entries : 0;
}

size_t
berth_layerindex_readdir (const berth_layerindex *idx, const struct berth_layerindex_entry *dir,
                          const struct berth_layerindex_entry *const **ret_children)
{
  *ret_children = NULL;
  if (idx == NULL || dir == NULL || dir->ino == 0 || dir->ino > idx->n_entries
      || &idx->entries[dir->ino - 1] != dir || dir->type != BERTH_LAYERINDEX_DIR)
    return 0;
  *ret_children = &idx->children[idx->child_first[dir->ino - 1]];
  return idx->child_count[dir->ino - 1];
}

size_t
berth_layerindex_prefetch (const berth_layerindex *idx, const struct berth_layerindex_entry *const **ret_entries)
{
  *ret_entries = idx ? idx->prefetch : NULL;
  return idx ? idx->n_prefetch : 0;
}

const char *
berth_layerindex_toc_digest (const berth_layerindex *idx)
{
  return idx ? idx->toc_digest : NULL;
}

uint64_t
berth_layerindex_toc_offset (const berth_layerindex *idx)
{
  return idx ? idx->toc_offset : 0;
}

uint64_t
berth_layerindex_stream_size (const berth_layerindex *idx)
{
  return idx ? idx->stream_size : 0;
}

size_t
berth_layerindex_checkpoints (const berth_layerindex *idx)
{
  return idx ? idx->n_ckpts : 0;
}

const char *
berth_layerindex_diff_id (const berth_layerindex *idx)
{
  return idx ? idx->diff_id : NULL;
}

void
berth_layerindex_free (berth_layerindex *idx)
{
  if (idx == NULL)
    return;
  /* hard links first: they point into their targets */
  for (size_t i = 0; i < idx->n_entries; i++)
    if (idx->entries[i].hardlink)
      li_entry_clear (&idx->entries[i]);
  for (size_t i = 0; i < idx->n_entries; i++)
    li_entry_clear (&idx->entries[i]);
  free (idx->entries);
  free (idx->child_first);
  free (idx->child_count);
  free (idx->children);
  for (size_t i = 0; i < idx->n_ckpts; i++)
    free (idx->ckpts[i].window);
  free (idx->ckpts);
  free (idx->toc_digest);
  free (idx->diff_id);
  free (idx->prefetch);
  for (size_t i = 0; i < idx->n_prefetch_paths; i++)
    free (idx->prefetch_paths[i]);
  free (idx->prefetch_paths);
  free (idx);
}

void
li_sha256_hex (const void *buf, size_t len, char out[80])
{
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest (buf, len, md, &mdlen, EVP_sha256 (), NULL);
  strcpy (out, "sha256:");
  for (int i = 0; i < 32; i++)
    sprintf (out + 7 + 2 * i, "%02x", md[i]);
}

bool
li_digest_valid (const char *d)
{
  if (strncmp (d, "sha256:", 7) != 0 || strlen (d) != 7 + 64)
    return false;
  for (const char *p = d + 7; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return false;
  return true;
}

int
li_window_pack (const unsigned char *win, size_t len, unsigned char **ret, uint32_t *ret_len)
{
  uLongf n = compressBound (len);
  unsigned char *out = malloc (n);
  if (out == NULL)
    return BERTH_E_NOMEM;
  if (compress2 (out, &n, win, len, 6) != Z_OK)
    {
      free (out);
      return BERTH_E_INTERNAL;
    }
  unsigned char *shrunk = realloc (out, n ? n : 1);
  *ret = shrunk ? shrunk : out;
  *ret_len = (uint32_t) n;
  return 0;
}
