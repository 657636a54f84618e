/* libberth-layerindex: reading eStargz blobs (berth_layerindex_open_estargz).
 *
 * Format (stargz-snapshotter docs/estargz.md): a gzip tar whose regular files
 * start gzip members of their own (one per chunk), followed by a member
 * holding the tar entry `stargz.index.json` (the TOC, JSON) and the end of
 * the archive, and by a footer: an empty gzip member whose extra field
 * carries the TOC's compressed offset as 16 hex digits and "STARGZ".  The
 * eStargz footer (51 bytes) wraps that in an RFC 1952 subfield 'S','G';
 * the older stargz footer (47 bytes) has the 22 bytes as the whole field.
 *
 * TOC entries: name, type (dir, reg, symlink, hardlink, char, block, fifo,
 * chunk), size, modtime (RFC 3339), linkName, mode, uid, gid, devMajor,
 * devMinor, xattrs (base64 values), digest, offset, innerOffset, chunkOffset,
 * chunkSize, chunkDigest.  A "chunk" entry continues the previous "reg".
 *
 * Chunks inflate with ISA-L igzip when the library is built with it (as
 * stream.c: HAVE_ISAL and LI_USE_ISAL), about 2.5x zlib's speed, and are
 * hashed piece by piece as they come out (while the piece is still in the
 * CPU's cache) rather than once the whole chunk is there.
 */
#include <config.h>
#if defined HAVE_ISAL && !defined LI_USE_ISAL
#undef HAVE_ISAL
#endif

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <archive.h>
#include <archive_entry.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <zlib.h>
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include "layerindex-private.h"
#include "stream.h"

static int
hexval (int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* "%016xSTARGZ" */
static bool
parse_payload (const unsigned char *p, uint64_t *ret)
{
  uint64_t v = 0;
  for (int i = 0; i < 16; i++)
    {
      int h = hexval (p[i]);
      if (h < 0)
        return false;
      v = v << 4 | (uint64_t) h;
    }
  if (memcmp (p + 16, "STARGZ", 6) != 0)
    return false;
  *ret = v;
  return true;
}

static bool
parse_footer (const unsigned char *f, size_t n, uint64_t *ret_off)
{
  if (f[0] != 0x1f || f[1] != 0x8b || f[2] != 8 || !(f[3] & 4))
    return false;
  unsigned xlen = f[10] | (unsigned) f[11] << 8;
  if (n == BERTH_ESTARGZ_FOOTER_SIZE)
    return xlen == 26 && f[12] == 'S' && f[13] == 'G' && (f[14] | f[15] << 8) == 22 && parse_payload (f + 16, ret_off);
  return xlen == 22 && parse_payload (f + 12, ret_off);
}

/* Inflate src (one or more gzip members) into a new buffer of at most max bytes. */
static int
gunzip_all (const berth_layerindex *idx, const unsigned char *src, size_t len, size_t max, unsigned char **ret,
            size_t *ret_len, berth_error *err)
{
  z_stream z;
  memset (&z, 0, sizeof z);
  if (inflateInit2 (&z, 31) != Z_OK)
    return li_nomem (idx, err);
  size_t cap = 65536, n = 0;
  unsigned char *out = malloc (cap);
  int r = out ? 0 : li_nomem (idx, err);
  z.next_in = (unsigned char *) src;
  z.avail_in = (uInt) len;
  while (r == 0)
    {
      if (n == cap)
        {
          if (cap > max)
            {
              r = li_error (idx, err, BERTH_E_INVALID, "TOC is larger than %zu bytes", max);
              break;
            }
          unsigned char *o = realloc (out, cap * 2);
          if (o == NULL)
            {
              r = li_nomem (idx, err);
              break;
            }
          out = o;
          cap *= 2;
        }
      z.next_out = out + n;
      z.avail_out = (uInt) (cap - n);
      int zr = inflate (&z, Z_NO_FLUSH);
      n = cap - z.avail_out;
      if (zr == Z_STREAM_END)
        {
          if (z.avail_in < 2 || z.next_in[0] != 0x1f || z.next_in[1] != 0x8b)
            break;
          inflateReset (&z);
        }
      else if (zr == Z_BUF_ERROR && z.avail_in == 0)
        r = li_error (idx, err, BERTH_E_INVALID, "TOC gzip member is truncated");
      else if (zr != Z_OK && zr != Z_BUF_ERROR)
        r = li_error (idx, err, BERTH_E_INVALID, "TOC gzip member is corrupt: %s", z.msg ? z.msg : "inflate failed");
    }
  inflateEnd (&z);
  if (r < 0)
    {
      free (out);
      return r;
    }
  *ret = out;
  *ret_len = n;
  return 0;
}

/* RFC 3339 ("2006-01-02T15:04:05.999999999Z07:00") to ns since the epoch. */
static bool
parse_time (const char *s, int64_t *ret)
{
  int y, mo, d, h, mi, sec, nread = 0;
  if (sscanf (s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &nread) != 6 || nread != 19)
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1)
    return false;
  s += nread;
  int64_t ns = 0;
  if (*s == '.')
    {
      int digits = 0;
      for (s++; *s >= '0' && *s <= '9'; s++, digits++)
        if (digits < 9)
          ns = ns * 10 + (*s - '0');
      if (digits == 0)
        return false;
      for (; digits < 9; digits++)
        ns *= 10;
    }
  int64_t off = 0;
  if (*s == 'Z')
    s++;
  else if ((*s == '+' || *s == '-') && strlen (s) == 6 && s[3] == ':')
    {
      int oh = atoi (s + 1), om = atoi (s + 4);
      off = (oh * 3600 + om * 60) * (*s == '-' ? -1 : 1);
      s += 6;
    }
  else
    return false;
  if (*s)
    return false;
  struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
  int64_t t = (int64_t) timegm (&tm) - off;
  if (t < -(INT64_C (1) << 33) || t > (INT64_C (1) << 33))
    return false;
  *ret = t * 1000000000 + ns;
  return true;
}

struct toc_parse
{
  berth_layerindex *idx;
  berth_error *err;
  const char *name; /* of the entry being parsed, for messages */
};

static int
bad (struct toc_parse *p, const char *what)
{
  return li_error (p->idx, p->err, BERTH_E_INVALID, "TOC entry `%s`: %s", p->name ? p->name : "?", what);
}

/* 0 absent, 1 present, <0 wrong type. */
static int
get_u64 (struct toc_parse *p, json_object *o, const char *key, uint64_t *ret)
{
  json_object *v;
  if (!json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_int))
    return li_error (p->idx, p->err, BERTH_E_INVALID, "TOC entry `%s`: `%s` is not an integer", p->name, key);
  int64_t i = json_object_get_int64 (v);
  if (i < 0 || i == INT64_MAX)
    return li_error (p->idx, p->err, BERTH_E_INVALID, "TOC entry `%s`: `%s` is out of range", p->name, key);
  *ret = (uint64_t) i;
  return 1;
}

static int
get_str (struct toc_parse *p, json_object *o, const char *key, const char **ret)
{
  json_object *v;
  *ret = NULL;
  if (!json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_string))
    return li_error (p->idx, p->err, BERTH_E_INVALID, "TOC entry `%s`: `%s` is not a string", p->name, key);
  *ret = json_object_get_string (v);
  return 1;
}

static int
add_chunk (struct toc_parse *p, struct berth_layerindex_entry *reg, json_object *o)
{
  uint64_t off = 0, inner = 0, coff = 0, csize = 0;
  const char *digest;
  int r;
  if ((r = get_u64 (p, o, "offset", &off)) < 0 || (r = get_u64 (p, o, "innerOffset", &inner)) < 0
      || (r = get_u64 (p, o, "chunkOffset", &coff)) < 0 || (r = get_u64 (p, o, "chunkSize", &csize)) < 0
      || (r = get_str (p, o, "chunkDigest", &digest)) < 0)
    return r;
  if (coff > reg->size)
    return bad (p, "chunkOffset past the size");
  if (csize == 0)
    csize = reg->size - coff;
  if (reg->n_chunks >= 1 + reg->size / 1) /* never more chunks than bytes */
    return bad (p, "too many chunks");
  struct berth_layerindex_chunk *v = realloc ((void *) reg->chunks, (reg->n_chunks + 1) * sizeof *v);
  if (v == NULL)
    return li_nomem (p->idx, p->err);
  reg->chunks = v;
  struct berth_layerindex_chunk *c = &v[reg->n_chunks];
  memset (c, 0, sizeof *c);
  c->offset = off;
  c->inner_offset = inner;
  c->chunk_offset = coff;
  c->chunk_size = csize;
  if (digest && (c->digest = strdup (digest)) == NULL)
    return li_nomem (p->idx, p->err);
  reg->n_chunks++;
  return 0;
}

static int
parse_xattrs (struct toc_parse *p, struct berth_layerindex_entry *e, json_object *o)
{
  json_object *xa;
  if (!json_object_object_get_ex (o, "xattrs", &xa) || xa == NULL)
    return 0;
  if (!json_object_is_type (xa, json_type_object))
    return bad (p, "`xattrs` is not an object");
  size_t n = (size_t) json_object_object_length (xa);
  if (n > p->idx->opts.max_xattrs)
    return bad (p, "too many xattrs");
  struct berth_layerindex_xattr *x = calloc (n ? n : 1, sizeof *x);
  if (x == NULL)
    return li_nomem (p->idx, p->err);
  e->xattrs = x;
  json_object_object_foreach (xa, key, val)
  {
    if (!json_object_is_type (val, json_type_string))
      return bad (p, "an xattr value is not a base64 string");
    const char *b64 = json_object_get_string (val);
    size_t bl = strlen (b64);
    if (bl % 4 || bl > p->idx->opts.max_xattrs * 2)
      return bad (p, "an xattr value is not valid base64");
    unsigned char *v = malloc (bl / 4 * 3 + 1);
    if (v == NULL)
      return li_nomem (p->idx, p->err);
    int len = bl ? EVP_DecodeBlock (v, (const unsigned char *) b64, (int) bl) : 0;
    if (len < 0)
      {
        free (v);
        return bad (p, "an xattr value is not valid base64");
      }
    if (bl >= 1 && b64[bl - 1] == '=')
      len--;
    if (bl >= 2 && b64[bl - 2] == '=')
      len--;
    x[e->n_xattrs].name = strdup (key);
    x[e->n_xattrs].value = v;
    x[e->n_xattrs].len = (size_t) len;
    e->n_xattrs++;
    if (x[e->n_xattrs - 1].name == NULL)
      return li_nomem (p->idx, p->err);
  }
  return 0;
}

static int
parse_entry (struct toc_parse *p, struct li_list *l, json_object *o, struct berth_layerindex_entry **last_reg)
{
  berth_layerindex *idx = p->idx;
  const char *name, *type, *s;
  int r;
  p->name = NULL;
  if (!json_object_is_type (o, json_type_object))
    return li_error (idx, p->err, BERTH_E_INVALID, "TOC entry %zu is not an object", l->n);
  if ((r = get_str (p, o, "name", &name)) < 0)
    return r;
  p->name = name;
  if (name == NULL || (r = get_str (p, o, "type", &type)) < 0 || type == NULL)
    return r < 0 ? r : bad (p, "no name or type");
  if (strcmp (type, "chunk") == 0)
    {
      bool b2;
      char *norm = li_path_normalise (name, true, &b2);
      bool same = norm && *last_reg && strcmp (norm, (*last_reg)->path) == 0;
      free (norm);
      if (!same)
        return bad (p, "chunk does not follow its regular file");
      return add_chunk (p, *last_reg, o);
    }
  *last_reg = NULL;
  if (l->n >= idx->opts.max_entries)
    return li_error (idx, p->err, BERTH_E_INVALID, "TOC has more than %" PRIu64 " entries (at `%s`)",
                     idx->opts.max_entries, name);
  struct berth_layerindex_entry *e = li_list_add (l);
  if (e == NULL)
    return li_nomem (idx, p->err);
  bool badpath = false;
  if ((e->path = li_path_normalise (name, true, &badpath)) == NULL)
    return li_nomem (idx, p->err);
  if (badpath)
    return bad (p, "absolute path or `..` component");
  if (strcmp (e->path, BERTH_ESTARGZ_TOC_NAME) == 0)
    return bad (p, "the TOC lists itself");
  static const struct
  {
    const char *name;
    uint32_t type;
  } types[] = { { "reg", BERTH_LAYERINDEX_REG },       { "dir", BERTH_LAYERINDEX_DIR },
                { "symlink", BERTH_LAYERINDEX_SYMLINK }, { "hardlink", BERTH_LAYERINDEX_REG },
                { "char", BERTH_LAYERINDEX_CHAR },     { "block", BERTH_LAYERINDEX_BLOCK },
                { "fifo", BERTH_LAYERINDEX_FIFO } };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp (type, types[i].name) == 0)
      e->type = types[i].type;
  if (e->type == 0)
    return bad (p, "unknown type");
  uint64_t v;
  if ((r = get_u64 (p, o, "mode", &v)) < 0)
    return r;
  e->mode = (uint32_t) (v & 07777);
  if ((r = get_u64 (p, o, "uid", &v)) < 0 || (r == 1 && v > UINT32_MAX))
    return r < 0 ? r : bad (p, "uid out of range");
  e->uid = r ? (uint32_t) v : 0;
  if ((r = get_u64 (p, o, "gid", &v)) < 0 || (r == 1 && v > UINT32_MAX))
    return r < 0 ? r : bad (p, "gid out of range");
  e->gid = r ? (uint32_t) v : 0;
  if ((r = get_u64 (p, o, "devMajor", &v)) < 0 || (r == 1 && v > UINT32_MAX))
    return r < 0 ? r : bad (p, "devMajor out of range");
  e->dev_major = r ? (uint32_t) v : 0;
  if ((r = get_u64 (p, o, "devMinor", &v)) < 0 || (r == 1 && v > UINT32_MAX))
    return r < 0 ? r : bad (p, "devMinor out of range");
  e->dev_minor = r ? (uint32_t) v : 0;
  if ((r = get_str (p, o, "modtime", &s)) < 0)
    return r;
  if (s && !parse_time (s, &e->mtime_ns))
    return bad (p, "`modtime` is not an RFC 3339 time");
  if ((r = get_str (p, o, "linkName", &s)) < 0)
    return r;
  if (strcmp (type, "hardlink") == 0)
    {
      bool b2 = false;
      if (s == NULL || (e->hardlink = li_path_normalise (s, true, &b2)) == NULL || b2 || !e->hardlink[0])
        return e->hardlink || s == NULL ? bad (p, "hard link without a valid target") : li_nomem (idx, p->err);
    }
  else if (e->type == BERTH_LAYERINDEX_SYMLINK)
    {
      if (s == NULL || (e->symlink = strdup (s)) == NULL)
        return s == NULL ? bad (p, "symlink without linkName") : li_nomem (idx, p->err);
    }
  const char *base = strrchr (e->path, '/');
  base = base ? base + 1 : e->path;
  if (strncmp (base, ".wh.", 4) == 0 && e->hardlink == NULL)
    e->type = strcmp (base, ".wh..wh..opq") == 0 ? BERTH_LAYERINDEX_OPAQUE : BERTH_LAYERINDEX_WHITEOUT;
  if ((r = parse_xattrs (p, e, o)) < 0)
    return r;
  if (e->type == BERTH_LAYERINDEX_REG && e->hardlink == NULL)
    {
      if ((r = get_u64 (p, o, "size", &e->size)) < 0)
        return r;
      if (e->size > idx->opts.max_total_size)
        return bad (p, "absurd size");
      if ((r = get_str (p, o, "digest", &s)) < 0)
        return r;
      if (s && (e->digest = strdup (s)) == NULL)
        return li_nomem (idx, p->err);
      if (e->size > 0 && (r = add_chunk (p, e, o)) < 0)
        return r;
      *last_reg = e;
      if (idx->landmark == 0 && strcmp (e->path, BERTH_ESTARGZ_PREFETCH_LANDMARK) == 0)
        idx->landmark = 1;
      else if (idx->landmark == 0 && strcmp (e->path, BERTH_ESTARGZ_NO_PREFETCH_LANDMARK) == 0)
        idx->landmark = 2;
    }
  return li_entry_check (idx, e, p->err);
}

static int
parse_toc (berth_layerindex *idx, const char *json, size_t len, struct li_list *l, berth_error *err)
{
  json_tokener *tok = json_tokener_new_ex (16);
  if (tok == NULL)
    return li_nomem (idx, err);
  json_object *root = json_tokener_parse_ex (tok, json, (int) len);
  enum json_tokener_error je = json_tokener_get_error (tok);
  size_t used = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  int r = 0;
  while (used < len && (json[used] == ' ' || json[used] == '\n' || json[used] == '\t' || json[used] == '\r'))
    used++;
  if (root == NULL || je != json_tokener_success || used != len)
    r = li_error (idx, err, BERTH_E_INVALID, "TOC is not valid JSON: %s",
                  root == NULL || je != json_tokener_success ? json_tokener_error_desc (je) : "trailing data");
  json_object *ver = NULL, *ents = NULL;
  if (r == 0 && (!json_object_is_type (root, json_type_object) || !json_object_object_get_ex (root, "version", &ver)
                 || !json_object_is_type (ver, json_type_int) || json_object_get_int64 (ver) != 1))
    r = li_error (idx, err, BERTH_E_INVALID, "TOC has no `version` 1");
  if (r == 0 && (!json_object_object_get_ex (root, "entries", &ents) || !json_object_is_type (ents, json_type_array)))
    r = li_error (idx, err, BERTH_E_INVALID, "TOC has no `entries` array");
  struct toc_parse p = { .idx = idx, .err = err };
  struct berth_layerindex_entry *last_reg = NULL;
  char **pf = NULL;
  size_t npf = 0;
  size_t n = r == 0 ? json_object_array_length (ents) : 0;
  for (size_t i = 0; i < n && r == 0; i++)
    {
      uint32_t before = idx->landmark;
      /* last_reg points into l->v, which may move: keep it as an index. */
      size_t last = last_reg ? (size_t) (last_reg - l->v) : SIZE_MAX;
      last_reg = last == SIZE_MAX ? NULL : &l->v[last];
      r = parse_entry (&p, l, json_object_array_get_idx (ents, i), &last_reg);
      if (r == 0 && before == 0 && idx->landmark == 1)
        {
          /* every regular file so far is in the prefetch set */
          pf = calloc (l->n ? l->n : 1, sizeof *pf);
          if (pf == NULL)
            r = li_nomem (idx, err);
          for (size_t k = 0; r == 0 && k + 1 < l->n; k++)
            if (l->v[k].type == BERTH_LAYERINDEX_REG && l->v[k].hardlink == NULL && l->v[k].size > 0)
              if ((pf[npf++] = strdup (l->v[k].path)) == NULL)
                r = li_nomem (idx, err);
        }
    }
  idx->prefetch_paths = pf;
  idx->n_prefetch_paths = npf;
  json_object_put (root);
  return r;
}

/* The TOC tar entry, inflated, to JSON. */
static int
toc_json (berth_layerindex *idx, const unsigned char *tar, size_t len, char **ret, size_t *ret_len, berth_error *err)
{
  struct archive *a = archive_read_new ();
  if (a == NULL)
    return li_nomem (idx, err);
  archive_read_support_format_tar (a);
  struct archive_entry *ae;
  int r = 0;
  if (archive_read_open_memory (a, tar, len) != ARCHIVE_OK || archive_read_next_header (a, &ae) < ARCHIVE_WARN)
    r = li_error (idx, err, BERTH_E_INVALID, "TOC member is not a tar entry: %s", archive_error_string (a));
  else if (archive_entry_pathname (ae) == NULL || strcmp (archive_entry_pathname (ae), BERTH_ESTARGZ_TOC_NAME) != 0)
    r = li_error (idx, err, BERTH_E_INVALID, "the entry at the TOC offset is `%s`, not " BERTH_ESTARGZ_TOC_NAME,
                  archive_entry_pathname (ae) ? archive_entry_pathname (ae) : "?");
  else if (archive_entry_size (ae) < 0 || (uint64_t) archive_entry_size (ae) > idx->opts.max_toc
           || (size_t) archive_entry_size (ae) > len)
    r = li_error (idx, err, BERTH_E_INVALID, "TOC size %" PRId64 " is absurd", archive_entry_size (ae));
  char *json = NULL;
  size_t n = 0;
  if (r == 0)
    {
      size_t want = (size_t) archive_entry_size (ae);
      json = malloc (want + 1);
      if (json == NULL)
        r = li_nomem (idx, err);
      while (r == 0 && n < want)
        {
          la_ssize_t k = archive_read_data (a, json + n, want - n);
          if (k < 0)
            r = li_error (idx, err, BERTH_E_INVALID, "TOC: %s", archive_error_string (a));
          else if (k == 0)
            r = li_error (idx, err, BERTH_E_INVALID, "TOC is truncated");
          else
            n += (size_t) k;
        }
    }
  archive_read_free (a);
  if (r < 0)
    {
      free (json);
      return r;
    }
  json[n] = '\0';
  *ret = json;
  *ret_len = n;
  return 0;
}

int
berth_layerindex_open_estargz (const struct berth_host *host, berth_layerindex_read_at_fn read_at, void *data,
                               uint64_t blob_size, const struct berth_layerindex_opts *opts,
                               berth_layerindex **ret_idx, berth_error *err)
{
  *ret_idx = NULL;
  berth_layerindex *idx = li_new (host, read_at, data, blob_size, opts);
  if (idx == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  idx->format = LI_FORMAT_ESTARGZ;
  idx->compression = BERTH_LAYERINDEX_GZIP;
  unsigned char foot[BERTH_ESTARGZ_FOOTER_SIZE];
  size_t got = 0, fsize = 0;
  uint64_t toc_off = 0;
  unsigned char *z = NULL, *tar = NULL;
  char *json = NULL;
  size_t tar_len = 0, json_len = 0;
  struct li_list l = { 0 };
  int r = 0;
  if (blob_size >= BERTH_ESTARGZ_FOOTER_SIZE
      && (r = li_read_full (idx, blob_size - BERTH_ESTARGZ_FOOTER_SIZE, foot, sizeof foot, &got, err)) == 0
      && got == sizeof foot && parse_footer (foot, sizeof foot, &toc_off))
    fsize = BERTH_ESTARGZ_FOOTER_SIZE;
  else if (r == 0 && blob_size >= BERTH_ESTARGZ_LEGACY_FOOTER_SIZE
           && (r = li_read_full (idx, blob_size - BERTH_ESTARGZ_LEGACY_FOOTER_SIZE, foot,
                                 BERTH_ESTARGZ_LEGACY_FOOTER_SIZE, &got, err)) == 0
           && got == BERTH_ESTARGZ_LEGACY_FOOTER_SIZE && parse_footer (foot, got, &toc_off))
    fsize = BERTH_ESTARGZ_LEGACY_FOOTER_SIZE;
  else if (r == 0)
    r = li_error (idx, err, BERTH_E_INVALID, "not an eStargz layer: no stargz footer at the end of the blob");
  if (r == 0 && toc_off >= blob_size - fsize)
    r = li_error (idx, err, BERTH_E_INVALID, "footer: TOC offset %" PRIu64 " is past the blob (%" PRIu64 " bytes)",
                  toc_off, blob_size);
  uint64_t zlen = r == 0 ? blob_size - fsize - toc_off : 0;
  if (r == 0 && zlen > idx->opts.max_toc)
    r = li_error (idx, err, BERTH_E_INVALID, "compressed TOC of %" PRIu64 " bytes is over the limit", zlen);
  if (r == 0 && (z = malloc (zlen ? zlen : 1)) == NULL)
    r = li_nomem (idx, err);
  if (r == 0 && (r = li_read_full (idx, toc_off, z, zlen, &got, err)) == 0 && got != zlen)
    r = li_error (idx, err, BERTH_E_INVALID, "blob ends inside the TOC");
  if (r == 0)
    r = gunzip_all (idx, z, zlen, idx->opts.max_toc + 4096, &tar, &tar_len, err);
  if (r == 0)
    r = toc_json (idx, tar, tar_len, &json, &json_len, err);
  if (r == 0)
    {
      char d[80];
      li_sha256_hex (json, json_len, d);
      if ((idx->toc_digest = strdup (d)) == NULL)
        r = li_nomem (idx, err);
      else if (opts && opts->size >= offsetof (struct berth_layerindex_opts, toc_digest) + sizeof (char *)
               && opts->toc_digest && strcmp (opts->toc_digest, d) != 0)
        r = li_error (idx, err, BERTH_E_PRECONDITION, "TOC digest is %s, the annotation says %s", d,
                      opts->toc_digest);
    }
  idx->toc_offset = toc_off;
  if (r == 0)
    r = parse_toc (idx, json, json_len, &l, err);
  if (r == 0)
    r = li_finish (idx, &l, err);
  free (z);
  free (tar);
  free (json);
  li_list_clear (&l);
  if (r < 0)
    {
      berth_layerindex_free (idx);
      return r;
    }
  *ret_idx = idx;
  return 0;
}

/* ---- chunks ------------------------------------------------------------- */

/* Where a chunk's compressed bytes come from: memory (mem, [at, end)) or
 * the blob through read_at ([at, end), read in pieces into buf). */
struct chunk_src
{
  const berth_layerindex *idx;
  const unsigned char *mem; /* the whole source, or NULL to read through read_at */
  uint64_t at, end;         /* next offset (into mem, or the blob), and the bound */
  unsigned char buf[65536];
};

static int
chunk_input (struct chunk_src *s, const unsigned char **ret, size_t *ret_len, berth_error *err)
{
  size_t want = s->end - s->at < sizeof s->buf ? (size_t) (s->end - s->at) : sizeof s->buf;
  if (s->mem)
    {
      *ret = s->mem + s->at;
      *ret_len = (size_t) (s->end - s->at);
      s->at = s->end;
      return 0;
    }
  size_t n = 0;
  int r = want ? li_read_full (s->idx, s->at, s->buf, want, &n, err) : 0;
  s->at += n;
  *ret = s->buf;
  *ret_len = n;
  return r;
}

#ifdef HAVE_ISAL
/* Inflate chunk i of e from src into dst (chunk_size bytes), hashing what
 * comes out into md.  ISAL_GZIP parses each member's header and checks its
 * CRC when the member ends inside the chunk. */
static int
inflate_chunk (const berth_layerindex *idx, const struct berth_layerindex_entry *e, size_t i, struct chunk_src *src,
               unsigned char *dst, EVP_MD_CTX *md, berth_error *err)
{
  const struct berth_layerindex_chunk *c = &e->chunks[i];
  struct inflate_state *st = malloc (sizeof *st);
  if (st == NULL)
    return li_nomem (idx, err);
  isal_inflate_init (st);
  st->crc_flag = ISAL_GZIP;
  unsigned char skip[4096];
  uint64_t to_skip = c->inner_offset;
  size_t got = 0;
  int r = 0;
  while (r == 0 && got < c->chunk_size)
    {
      if (st->block_state == ISAL_BLOCK_FINISH)
        {
          /* The member ended before the chunk did (members split oddly):
           * the next member starts after what ISA-L has not used, which
           * includes the whole bytes left in its bit buffer. */
          src->at -= st->avail_in + (uint32_t) st->read_in_length / 8;
          isal_inflate_reset (st);
          st->crc_flag = ISAL_GZIP;
          st->avail_in = 0; /* read again from src->at */
        }
      if (st->avail_in == 0)
        {
          const unsigned char *in;
          size_t n;
          if ((r = chunk_input (src, &in, &n, err)) < 0)
            break;
          if (n == 0)
            {
              r = li_error (idx, err, BERTH_E_INVALID, "`%s` chunk %zu: compressed data ends early", e->path, i);
              break;
            }
          st->next_in = (uint8_t *) in;
          st->avail_in = (uint32_t) n;
        }
      unsigned char *out = to_skip ? skip : dst + got;
      uint64_t room = to_skip ? (to_skip < sizeof skip ? to_skip : sizeof skip) : c->chunk_size - got;
      st->next_out = out;
      st->avail_out = room < UINT32_MAX ? (uint32_t) room : UINT32_MAX;
      uint32_t in_before = st->avail_in, out_before = st->avail_out;
      int ir = isal_inflate (st);
      size_t produced = out_before - st->avail_out;
      if (ir < 0)
        {
          r = li_error (idx, err, BERTH_E_INVALID, "`%s` chunk %zu at offset %" PRIu64 ": corrupt gzip data (%s)",
                        e->path, i, c->offset,
                        ir == ISAL_INCORRECT_CHECKSUM ? "checksum mismatch"
                        : ir == ISAL_INVALID_WRAPPER  ? "bad gzip header"
                                                      : "bad deflate data");
          break;
        }
      if (to_skip)
        to_skip -= produced;
      else
        {
          if (produced > 0 && EVP_DigestUpdate (md, dst + got, produced) != 1)
            r = li_error (idx, err, BERTH_E_INTERNAL, "SHA-256 failed");
          got += produced;
        }
      if (st->block_state != ISAL_BLOCK_FINISH && produced == 0 && in_before == st->avail_in && st->avail_in > 0)
        r = li_error (idx, err, BERTH_E_INVALID,
                      "`%s` chunk %zu at offset %" PRIu64 ": corrupt gzip data (no progress)", e->path, i, c->offset);
    }
  free (st);
  return r;
}
#else
static int
inflate_chunk (const berth_layerindex *idx, const struct berth_layerindex_entry *e, size_t i, struct chunk_src *src,
               unsigned char *dst, EVP_MD_CTX *md, berth_error *err)
{
  const struct berth_layerindex_chunk *c = &e->chunks[i];
  z_stream z;
  memset (&z, 0, sizeof z);
  if (inflateInit2 (&z, 31) != Z_OK)
    return li_nomem (idx, err);
  unsigned char skip[4096];
  uint64_t to_skip = c->inner_offset;
  size_t got = 0;
  int r = 0;
  while (r == 0 && got < c->chunk_size)
    {
      if (z.avail_in == 0)
        {
          const unsigned char *in;
          size_t n;
          if ((r = chunk_input (src, &in, &n, err)) < 0)
            break;
          if (n == 0)
            {
              r = li_error (idx, err, BERTH_E_INVALID, "`%s` chunk %zu: compressed data ends early", e->path, i);
              break;
            }
          z.next_in = (unsigned char *) in;
          z.avail_in = n < UINT_MAX ? (uInt) n : UINT_MAX;
        }
      if (to_skip)
        {
          z.next_out = skip;
          z.avail_out = to_skip < sizeof skip ? (uInt) to_skip : sizeof skip;
        }
      else
        {
          z.next_out = dst + got;
          z.avail_out = c->chunk_size - got < UINT_MAX ? (uInt) (c->chunk_size - got) : UINT_MAX;
        }
      uInt before = z.avail_out;
      int zr = inflate (&z, Z_NO_FLUSH);
      if (to_skip)
        to_skip -= before - z.avail_out;
      else
        {
          if (before > z.avail_out && EVP_DigestUpdate (md, dst + got, before - z.avail_out) != 1)
            r = li_error (idx, err, BERTH_E_INTERNAL, "SHA-256 failed");
          got += before - z.avail_out;
        }
      if (zr == Z_STREAM_END && (got < c->chunk_size))
        {
          /* a chunk may run into the next member only if members were split oddly */
          if (inflateReset (&z) != Z_OK)
            r = li_error (idx, err, BERTH_E_INTERNAL, "inflateReset failed");
        }
      else if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && z.avail_in == 0))
        r = li_error (idx, err, BERTH_E_INVALID, "`%s` chunk %zu at offset %" PRIu64 ": corrupt gzip data (%s)",
                      e->path, i, c->offset, z.msg ? z.msg : "inflate failed");
    }
  inflateEnd (&z);
  return r;
}
#endif

/* Decode chunk i of e into dst and check it against its chunkDigest.  On
 * an error dst holds garbage: callers must not use it. */
static int
decode_chunk (const berth_layerindex *idx, const struct berth_layerindex_entry *e, size_t i, struct chunk_src *src,
              unsigned char *dst, berth_error *err)
{
  const struct berth_layerindex_chunk *c = &e->chunks[i];
  EVP_MD_CTX *md = EVP_MD_CTX_new ();
  if (md == NULL || EVP_DigestInit_ex (md, EVP_sha256 (), NULL) != 1)
    {
      EVP_MD_CTX_free (md);
      return li_nomem (idx, err);
    }
  int r = inflate_chunk (idx, e, i, src, dst, md, err);
  unsigned char sum[EVP_MAX_MD_SIZE];
  unsigned sum_len = 0;
  if (r == 0 && EVP_DigestFinal_ex (md, sum, &sum_len) != 1)
    r = li_error (idx, err, BERTH_E_INTERNAL, "SHA-256 failed");
  EVP_MD_CTX_free (md);
  if (r < 0)
    return r;
  char d[80];
  strcpy (d, "sha256:");
  for (unsigned k = 0; k < 32 && k < sum_len; k++)
    snprintf (d + 7 + 2 * k, 3, "%02x", sum[k]);
  if (strcmp (d, c->digest) != 0)
    return li_error (idx, err, BERTH_E_INVALID, "`%s` chunk %zu at offset %" PRIu64 ": chunk digest mismatch (%s, TOC says %s)",
                     e->path, i, c->offset, d, c->digest);
  return 0;
}

int
berth_layerindex_chunk_decode (const berth_layerindex *idx, const struct berth_layerindex_entry *e, size_t i,
                               const void *src, size_t src_len, void *dst, berth_error *err)
{
  if (idx->format != LI_FORMAT_ESTARGZ || e == NULL || i >= e->n_chunks)
    return li_error (idx, err, BERTH_E_INVALID, "no such chunk");
  struct chunk_src *s = calloc (1, sizeof *s);
  if (s == NULL)
    return li_nomem (idx, err);
  s->idx = idx;
  s->mem = src;
  s->end = src_len;
  int r = decode_chunk (idx, e, i, s, dst, err);
  free (s);
  return r;
}

int
li_estargz_read (const berth_layerindex *idx, const struct berth_layerindex_entry *e, uint64_t off, void *buf,
                 size_t len, struct li_chunk_cache *cache, size_t *ret_n, berth_error *err)
{
  size_t done = 0;
  int r = 0;
  /* the first chunk holding off */
  size_t lo = 0, hi = e->n_chunks;
  while (hi - lo > 1)
    {
      size_t mid = (lo + hi) / 2;
      if (e->chunks[mid].chunk_offset <= off)
        lo = mid;
      else
        hi = mid;
    }
  for (size_t i = lo; i < e->n_chunks && done < len && r == 0; i++)
    {
      const struct berth_layerindex_chunk *c = &e->chunks[i];
      uint64_t from = off + done - c->chunk_offset;
      if (from == 0 && len - done >= c->chunk_size && !(cache->valid && cache->e == e && cache->i == i))
        {
          /* The whole chunk is wanted: decode it in place, without the
           * cache and a copy (a FUSE server's blocks are whole chunks).  A
           * chunk that fails is wiped: the caller gets no unverified byte. */
          struct chunk_src *s = calloc (1, sizeof *s);
          if (s == NULL)
            {
              r = li_nomem (idx, err);
              break;
            }
          s->idx = idx;
          s->at = c->offset;
          s->end = c->compressed_end;
          r = decode_chunk (idx, e, i, s, (unsigned char *) buf + done, err);
          free (s);
          if (r < 0)
            memset ((char *) buf + done, 0, (size_t) c->chunk_size);
          done += (size_t) c->chunk_size;
          continue;
        }
      if (!(cache->valid && cache->e == e && cache->i == i))
        {
          cache->valid = false;
          if (cache->cap < c->chunk_size)
            {
              free (cache->buf);
              cache->cap = (size_t) c->chunk_size;
              if ((cache->buf = malloc (cache->cap)) == NULL)
                {
                  cache->cap = 0;
                  r = li_nomem (idx, err);
                  break;
                }
            }
          struct chunk_src *s = calloc (1, sizeof *s);
          if (s == NULL)
            {
              r = li_nomem (idx, err);
              break;
            }
          s->idx = idx;
          s->at = c->offset;
          s->end = c->compressed_end;
          r = decode_chunk (idx, e, i, s, cache->buf, err);
          free (s);
          if (r < 0)
            break;
          cache->e = e;
          cache->i = i;
          cache->valid = true;
        }
      size_t n = (size_t) (c->chunk_size - from);
      if (n > len - done)
        n = len - done;
      memcpy ((char *) buf + done, cache->buf + from, n);
      done += n;
    }
  *ret_n = r < 0 ? 0 : done;
  return r;
}
