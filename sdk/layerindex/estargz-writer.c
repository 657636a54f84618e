/* libberth-layerindex: writing eStargz (berth_estargz_write).
 *
 * libarchive reads the input tar (plain, gzip or zstd) and writes the output
 * tar (pax restricted: ustar headers, pax extensions only when needed) with
 * no blocking, so every byte it produces reaches write_tar() at once and
 * the writer decides where gzip members start: each chunk of a regular
 * file's content gets a member of its own (the TOC's `offset` of that chunk
 * is the member's start in the blob); headers and padding go into the
 * member before.  Then come the TOC member (tar header, JSON, the end of
 * the archive) and the 51-byte footer.
 *
 * With a prefetch list the files must come first, whatever their place in
 * the input: every entry's header is kept in memory (archive_entry_clone)
 * and file contents wait in an unlinked temporary file; a listed file brings
 * its parent directories and, for a hard link, its target along.  An input
 * that names a path twice keeps only its last entry in that mode (tar
 * semantics: the last one wins anyway).  Without the list the conversion
 * streams.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "layerindex-private.h"

#define ZBUF 65536
#define IOBUF (256 * 1024)

struct writer
{
  const struct berth_host *host;
  berth_error *err;
  int r;
  berth_estargz_read_fn read;
  void *rdata;
  berth_estargz_write_fn write;
  void *wdata;
  z_stream z;
  bool z_init, member_open;
  unsigned char *zbuf, *io; /* io: libarchive reads from it, never reuse */
  unsigned char *copy;      /* file data on its way out */
  uint64_t out_bytes, tar_bytes;
  EVP_MD_CTX *blob_md, *diff_md;
  struct archive *aw;
  json_object *toc; /* the entries array */
  uint64_t chunk_size;
};

static int werr (struct writer *w, int code, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static int
werr (struct writer *w, int code, const char *fmt, ...)
{
  if (w->r < 0)
    return w->r;
  char msg[1024];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  w->r = w->host->error_set (w->err, code, 0, "%s", msg);
  return w->r;
}

static int
emit_raw (struct writer *w, const void *buf, size_t len)
{
  if (w->r < 0)
    return w->r;
  int r = w->write (w->wdata, buf, len, w->err);
  if (r < 0)
    return w->r = w->host->error_wrap (w->err, "writing the eStargz blob");
  EVP_DigestUpdate (w->blob_md, buf, len);
  w->out_bytes += len;
  return 0;
}

static int
deflate_out (struct writer *w, const void *buf, size_t len, int flush)
{
  w->z.next_in = (unsigned char *) buf;
  w->z.avail_in = (uInt) len;
  int zr;
  do
    {
      w->z.next_out = w->zbuf;
      w->z.avail_out = ZBUF;
      zr = deflate (&w->z, flush);
      if (zr == Z_STREAM_ERROR)
        return werr (w, BERTH_E_INTERNAL, "%s", "deflate failed");
      if (emit_raw (w, w->zbuf, ZBUF - w->z.avail_out) < 0)
        return w->r;
    }
  while (w->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
  return 0;
}

static int
member_write (struct writer *w, const void *buf, size_t len)
{
  if (!w->member_open)
    {
      if (deflateReset (&w->z) != Z_OK)
        return werr (w, BERTH_E_INTERNAL, "%s", "deflateReset failed");
      w->member_open = true;
    }
  return deflate_out (w, buf, len, Z_NO_FLUSH);
}

static int
member_close (struct writer *w)
{
  if (!w->member_open)
    return 0;
  w->member_open = false;
  return deflate_out (w, "", 0, Z_FINISH);
}

static la_ssize_t
write_tar (struct archive *a, void *data, const void *buf, size_t len)
{
  struct writer *w = data;
  EVP_DigestUpdate (w->diff_md, buf, len);
  w->tar_bytes += len;
  if (member_write (w, buf, len) < 0)
    {
      archive_set_error (a, EIO, "output failed");
      return -1;
    }
  return (la_ssize_t) len;
}

static la_ssize_t
read_tar (struct archive *a, void *data, const void **buf)
{
  struct writer *w = data;
  size_t n = 0;
  if (w->r < 0)
    return -1;
  int r = w->read (w->rdata, w->io, IOBUF, &n, w->err);
  if (r < 0)
    {
      w->r = w->host->error_wrap (w->err, "reading the input layer");
      archive_set_error (a, EIO, "input failed");
      return -1;
    }
  *buf = w->io;
  return (la_ssize_t) n;
}

/* ---- TOC ------------------------------------------------------------------ */

static void
set_str (json_object *o, const char *k, const char *v)
{
  json_object_object_add (o, k, json_object_new_string (v));
}

static void
set_int (json_object *o, const char *k, int64_t v)
{
  json_object_object_add (o, k, json_object_new_int64 (v));
}

static json_object *
toc_entry (struct archive_entry *ae, const char *name, const char *type)
{
  json_object *o = json_object_new_object ();
  if (o == NULL)
    return NULL;
  set_str (o, "name", name);
  set_str (o, "type", type);
  if (strcmp (type, "reg") == 0)
    set_int (o, "size", archive_entry_size (ae));
  time_t t = archive_entry_mtime (ae);
  long ns = archive_entry_mtime_nsec (ae);
  struct tm tm;
  char ts[64];
  if (gmtime_r (&t, &tm) && tm.tm_year + 1900 >= 1 && tm.tm_year + 1900 <= 9999)
    {
      size_t n = strftime (ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
      if (ns > 0 && ns < 1000000000)
        n += (size_t) snprintf (ts + n, sizeof ts - n, ".%09ld", ns);
      snprintf (ts + n, sizeof ts - n, "Z");
      set_str (o, "modtime", ts);
    }
  if (archive_entry_hardlink (ae))
    set_str (o, "linkName", archive_entry_hardlink (ae));
  else if (archive_entry_symlink (ae))
    set_str (o, "linkName", archive_entry_symlink (ae));
  set_int (o, "mode", archive_entry_perm (ae) & 07777);
  set_int (o, "uid", archive_entry_uid (ae));
  set_int (o, "gid", archive_entry_gid (ae));
  if (archive_entry_uname (ae))
    set_str (o, "userName", archive_entry_uname (ae));
  if (archive_entry_gname (ae))
    set_str (o, "groupName", archive_entry_gname (ae));
  if (strcmp (type, "char") == 0 || strcmp (type, "block") == 0)
    {
      set_int (o, "devMajor", archive_entry_rdevmajor (ae));
      set_int (o, "devMinor", archive_entry_rdevminor (ae));
    }
  if (archive_entry_xattr_reset (ae) > 0)
    {
      json_object *x = json_object_new_object ();
      const char *k;
      const void *v;
      size_t len;
      while (archive_entry_xattr_next (ae, &k, &v, &len) == ARCHIVE_OK)
        {
          char *b64 = malloc (4 * ((len + 2) / 3) + 1);
          if (b64 == NULL)
            continue;
          EVP_EncodeBlock ((unsigned char *) b64, v, (int) len);
          set_str (x, k, b64);
          free (b64);
        }
      json_object_object_add (o, "xattrs", x);
    }
  return o;
}

static const char *
type_name (struct archive_entry *ae)
{
  if (archive_entry_hardlink (ae))
    return "hardlink";
  switch (archive_entry_filetype (ae))
    {
    case AE_IFREG:
      return "reg";
    case AE_IFDIR:
      return "dir";
    case AE_IFLNK:
      return "symlink";
    case AE_IFCHR:
      return "char";
    case AE_IFBLK:
      return "block";
    case AE_IFIFO:
      return "fifo";
    default:
      return NULL;
    }
}

/* ---- entries ---------------------------------------------------------------- */

/* Where an entry's content comes from: the input archive, or the spool. */
struct source
{
  struct archive *ar;
  const unsigned char *mem;
  size_t mem_len;
  int fd;
  uint64_t off;
};

static int
source_read (struct writer *w, struct source *s, void *buf, size_t len, size_t *ret_n)
{
  if (s->ar)
    {
      la_ssize_t k = archive_read_data (s->ar, buf, len);
      if (k < 0)
        return w->r < 0 ? w->r : werr (w, BERTH_E_INVALID, "input tar: %s", archive_error_string (s->ar));
      *ret_n = (size_t) k;
      return 0;
    }
  if (s->mem)
    {
      size_t n = len < s->mem_len - s->off ? len : (size_t) (s->mem_len - s->off);
      memcpy (buf, s->mem + s->off, n);
      s->off += n;
      *ret_n = n;
      return 0;
    }
  ssize_t k;
  do
    k = pread (s->fd, buf, len, (off_t) s->off);
  while (k < 0 && errno == EINTR);
  if (k < 0)
    return w->r = w->host->error_set (w->err, BERTH_E_INTERNAL, errno, "reading the spool");
  s->off += (uint64_t) k;
  *ret_n = (size_t) k;
  return 0;
}

static int
emit_entry (struct writer *w, struct archive_entry *ae, const char *name, struct source *src)
{
  const char *type = type_name (ae);
  if (type == NULL)
    return werr (w, BERTH_E_INVALID, "entry `%s`: unsupported file type", name);
  bool reg = strcmp (type, "reg") == 0;
  if (!reg)
    archive_entry_set_size (ae, 0);
  uint64_t size = reg ? (uint64_t) archive_entry_size (ae) : 0;
  archive_entry_set_pathname (ae, name[0] ? name : "./");
  if (archive_write_header (w->aw, ae) != ARCHIVE_OK)
    return w->r < 0 ? w->r : werr (w, BERTH_E_INVALID, "writing a tar header: %s", archive_error_string (w->aw));
  json_object *o = toc_entry (ae, name, type);
  if (o == NULL)
    return werr (w, BERTH_E_NOMEM, "%s", "out of memory");
  json_object_array_add (w->toc, o);
  if (size == 0)
    return 0;
  EVP_MD_CTX *file_md = EVP_MD_CTX_new (), *chunk_md = EVP_MD_CTX_new ();
  if (file_md == NULL || chunk_md == NULL)
    {
      EVP_MD_CTX_free (file_md);
      EVP_MD_CTX_free (chunk_md);
      return werr (w, BERTH_E_NOMEM, "%s", "out of memory");
    }
  EVP_DigestInit_ex (file_md, EVP_sha256 (), NULL);
  uint64_t done = 0;
  while (w->r == 0 && done < size)
    {
      uint64_t csize = size - done < w->chunk_size ? size - done : w->chunk_size;
      if (member_close (w) < 0)
        break;
      uint64_t start = w->out_bytes;
      EVP_DigestInit_ex (chunk_md, EVP_sha256 (), NULL);
      uint64_t got = 0;
      while (got < csize)
        {
          size_t want = csize - got < IOBUF ? (size_t) (csize - got) : IOBUF, n = 0;
          if (source_read (w, src, w->copy, want, &n) < 0)
            break;
          if (n == 0)
            {
              werr (w, BERTH_E_INVALID, "entry `%s`: input ends inside the file", name);
              break;
            }
          if (archive_write_data (w->aw, w->copy, n) != (la_ssize_t) n)
            {
              werr (w, BERTH_E_INTERNAL, "writing `%s`", name);
              break;
            }
          EVP_DigestUpdate (chunk_md, w->copy, n);
          EVP_DigestUpdate (file_md, w->copy, n);
          got += n;
        }
      if (w->r < 0 || member_close (w) < 0)
        break;
      unsigned char md[32];
      EVP_DigestFinal_ex (chunk_md, md, NULL);
      char hex[80] = "sha256:";
      for (int i = 0; i < 32; i++)
        sprintf (hex + 7 + 2 * i, "%02x", md[i]);
      json_object *c = o;
      if (done > 0)
        {
          c = json_object_new_object ();
          set_str (c, "name", name);
          set_str (c, "type", "chunk");
          json_object_array_add (w->toc, c);
        }
      set_int (c, "offset", (int64_t) start);
      if (done > 0)
        set_int (c, "chunkOffset", (int64_t) done);
      if (csize != size)
        set_int (c, "chunkSize", (int64_t) csize);
      set_str (c, "chunkDigest", hex);
      done += csize;
    }
  if (w->r == 0)
    {
      unsigned char md[32];
      EVP_DigestFinal_ex (file_md, md, NULL);
      char hex[80] = "sha256:";
      for (int i = 0; i < 32; i++)
        sprintf (hex + 7 + 2 * i, "%02x", md[i]);
      set_str (o, "digest", hex);
    }
  EVP_MD_CTX_free (file_md);
  EVP_MD_CTX_free (chunk_md);
  return w->r;
}

static int
emit_landmark (struct writer *w, const char *name)
{
  struct archive_entry *ae = archive_entry_new ();
  if (ae == NULL)
    return werr (w, BERTH_E_NOMEM, "%s", "out of memory");
  archive_entry_set_filetype (ae, AE_IFREG);
  archive_entry_set_perm (ae, 0644);
  archive_entry_set_size (ae, 1);
  struct source s = { .mem = (const unsigned char *) "\x0f", .mem_len = 1 };
  int r = emit_entry (w, ae, name, &s);
  archive_entry_free (ae);
  return r;
}

/* ---- prefetch ordering -------------------------------------------------------- */

struct held
{
  struct archive_entry *ae;
  char *name;
  uint64_t spool_off;
  bool placed, dropped;
};

struct by_name
{
  const char *name;
  size_t i;
};

static int
cmp_by_name (const void *a, const void *b)
{
  const struct by_name *x = a, *y = b;
  int c = strcmp (x->name, y->name);
  return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

static ssize_t
find_held (const struct by_name *v, size_t n, const char *name)
{
  size_t lo = 0, hi = n;
  while (lo < hi)
    {
      size_t mid = (lo + hi) / 2;
      if (strcmp (v[mid].name, name) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  if (lo < n && strcmp (v[lo].name, name) == 0)
    return (ssize_t) v[lo].i; /* duplicates were dropped: unique */
  return -1;
}

static void
place (struct held *h, const struct by_name *idx, size_t n_idx, size_t i, size_t *order, size_t *n_order, int depth)
{
  if (h[i].placed || depth > 64)
    return;
  h[i].placed = true;
  /* parents, top down */
  char *p = strdup (h[i].name);
  for (char *s = p ? strchr (p, '/') : NULL; s; s = strchr (s + 1, '/'))
    {
      *s = '\0';
      ssize_t j = find_held (idx, n_idx, p);
      if (j >= 0 && !h[j].placed)
        {
          h[j].placed = true;
          order[(*n_order)++] = (size_t) j;
        }
      *s = '/';
    }
  free (p);
  if (archive_entry_hardlink (h[i].ae))
    {
      ssize_t j = find_held (idx, n_idx, archive_entry_hardlink (h[i].ae));
      if (j >= 0)
        {
          h[i].placed = false;
          place (h, idx, n_idx, (size_t) j, order, n_order, depth + 1);
          h[i].placed = true;
        }
    }
  order[(*n_order)++] = i;
}

static int
spool_open (struct writer *w, const char *dir)
{
  if (dir == NULL)
    dir = getenv ("TMPDIR");
  if (dir == NULL || *dir == '\0')
    dir = "/var/tmp";
  int fd = open (dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    w->r = w->host->error_set (w->err, BERTH_E_INTERNAL, errno, "creating a temporary file in %s", dir);
  return fd;
}

static int
convert (struct writer *w, struct archive *ar, const struct berth_estargz_opts *o)
{
  bool prefetch = o->prefetch != NULL;
  struct held *h = NULL;
  size_t n = 0, cap = 0;
  int spool = -1;
  uint64_t spool_len = 0;
  uint64_t max_entries = o->max_entries ? o->max_entries : 1000000;
  if (prefetch)
    spool = spool_open (w, o->tmpdir);
  else
    emit_landmark (w, BERTH_ESTARGZ_NO_PREFETCH_LANDMARK);
  while (w->r == 0)
    {
      struct archive_entry *ae;
      int ar_r = archive_read_next_header (ar, &ae);
      if (ar_r == ARCHIVE_EOF)
        break;
      if (ar_r < ARCHIVE_WARN)
        {
          if (w->r == 0)
            werr (w, BERTH_E_INVALID, "input tar: %s", archive_error_string (ar));
          break;
        }
      const char *path = archive_entry_pathname (ae);
      bool bad = false;
      char *name = path ? li_path_normalise (path, false, &bad) : NULL;
      if (name == NULL || bad)
        {
          werr (w, BERTH_E_INVALID, "input entry `%s`: bad path", path ? path : "?");
          free (name);
          break;
        }
      if (archive_entry_sparse_reset (ae) > 0)
        {
          werr (w, BERTH_E_NOTSUP, "input entry `%s`: sparse files are not supported", name);
          free (name);
          break;
        }
      if (archive_entry_hardlink (ae))
        {
          char *t = li_path_normalise (archive_entry_hardlink (ae), false, &bad);
          if (t == NULL || bad || !*t)
            {
              werr (w, BERTH_E_INVALID, "input entry `%s`: bad hard link target", name);
              free (t);
              free (name);
              break;
            }
          archive_entry_set_hardlink (ae, t);
          free (t);
        }
      if (strcmp (name, BERTH_ESTARGZ_TOC_NAME) == 0 || strcmp (name, BERTH_ESTARGZ_PREFETCH_LANDMARK) == 0
          || strcmp (name, BERTH_ESTARGZ_NO_PREFETCH_LANDMARK) == 0)
        {
          free (name);
          continue;
        }
      if (n >= max_entries)
        {
          werr (w, BERTH_E_INVALID, "input has too many entries (at `%s`)", name);
          free (name);
          break;
        }
      if (!prefetch)
        {
          struct source s = { .ar = ar };
          emit_entry (w, ae, name, &s);
          free (name);
          n++;
          continue;
        }
      if (n == cap)
        {
          cap = cap ? cap * 2 : 256;
          struct held *nh = realloc (h, cap * sizeof *h);
          if (nh == NULL)
            {
              werr (w, BERTH_E_NOMEM, "%s", "out of memory");
              free (name);
              break;
            }
          h = nh;
        }
      struct held *e = &h[n++];
      memset (e, 0, sizeof *e);
      e->name = name;
      e->ae = archive_entry_clone (ae);
      e->spool_off = spool_len;
      if (e->ae == NULL)
        {
          werr (w, BERTH_E_NOMEM, "%s", "out of memory");
          break;
        }
      if (archive_entry_filetype (ae) == AE_IFREG && !archive_entry_hardlink (ae))
        for (;;)
          {
            la_ssize_t k = archive_read_data (ar, w->copy, IOBUF);
            if (k < 0)
              {
                werr (w, BERTH_E_INVALID, "input tar: %s", archive_error_string (ar));
                break;
              }
            if (k == 0)
              break;
            for (la_ssize_t d = 0; d < k;)
              {
                ssize_t wr = pwrite (spool, w->copy + d, (size_t) (k - d), (off_t) spool_len);
                if (wr < 0 && errno == EINTR)
                  continue;
                if (wr <= 0)
                  {
                    w->r = w->host->error_set (w->err, BERTH_E_EXHAUSTED, errno, "writing the spool");
                    break;
                  }
                d += wr;
                spool_len += (uint64_t) wr;
              }
            if (w->r < 0)
              break;
          }
    }
  if (prefetch && w->r == 0)
    {
      struct by_name *idx = calloc (n ? n : 1, sizeof *idx);
      size_t *order = calloc (n ? n : 1, sizeof *order);
      if (idx == NULL || order == NULL)
        werr (w, BERTH_E_NOMEM, "%s", "out of memory");
      size_t n_idx = 0, n_order = 0;
      for (size_t i = 0; w->r == 0 && i < n; i++)
        idx[i] = (struct by_name) { h[i].name, i };
      if (w->r == 0)
        {
          qsort (idx, n, sizeof *idx, cmp_by_name);
          /* keep the last of each name */
          for (size_t i = 0; i < n; i++)
            {
              if (i + 1 < n && strcmp (idx[i].name, idx[i + 1].name) == 0)
                h[idx[i].i].dropped = h[idx[i].i].placed = true;
              else
                idx[n_idx++] = idx[i];
            }
          for (const char *const *p = o->prefetch; *p; p++)
            {
              bool bad = false;
              char *norm = li_path_normalise (*p, false, &bad);
              ssize_t j = norm && !bad ? find_held (idx, n_idx, norm) : -1;
              free (norm);
              if (j >= 0)
                place (h, idx, n_idx, (size_t) j, order, &n_order, 0);
            }
          size_t before = n_order;
          for (size_t i = 0; i < n; i++)
            if (!h[i].placed)
              order[n_order++] = i;
          for (size_t k = 0; w->r == 0 && k < n_order; k++)
            {
              if (k == before && emit_landmark (w, BERTH_ESTARGZ_PREFETCH_LANDMARK) < 0)
                break;
              struct source s = { .fd = spool, .off = h[order[k]].spool_off };
              emit_entry (w, h[order[k]].ae, h[order[k]].name, &s);
            }
          if (w->r == 0 && before == n_order)
            emit_landmark (w, BERTH_ESTARGZ_PREFETCH_LANDMARK);
        }
      free (idx);
      free (order);
    }
  for (size_t i = 0; i < n && h; i++)
    {
      archive_entry_free (h[i].ae);
      free (h[i].name);
    }
  free (h);
  if (spool >= 0)
    close (spool);
  return w->r;
}

static void
hex_final (EVP_MD_CTX *md, char out[80])
{
  unsigned char d[32];
  EVP_DigestFinal_ex (md, d, NULL);
  strcpy (out, "sha256:");
  for (int i = 0; i < 32; i++)
    sprintf (out + 7 + 2 * i, "%02x", d[i]);
}

static int
finish (struct writer *w, json_object *root, struct berth_estargz_result *res)
{
  size_t len = 0;
  const char *json = json_object_to_json_string_length (root, JSON_C_TO_STRING_PLAIN, &len);
  if (json == NULL)
    return werr (w, BERTH_E_NOMEM, "%s", "out of memory");
  li_sha256_hex (json, len, res->toc_digest);
  /* the last entry's padding belongs before the TOC member */
  if (archive_write_finish_entry (w->aw) != ARCHIVE_OK)
    return werr (w, BERTH_E_INTERNAL, "finishing the last entry: %s", archive_error_string (w->aw));
  if (member_close (w) < 0)
    return w->r;
  uint64_t toc_off = w->out_bytes;
  struct archive_entry *ae = archive_entry_new ();
  if (ae == NULL)
    return werr (w, BERTH_E_NOMEM, "%s", "out of memory");
  archive_entry_set_pathname (ae, BERTH_ESTARGZ_TOC_NAME);
  archive_entry_set_filetype (ae, AE_IFREG);
  archive_entry_set_perm (ae, 0444);
  archive_entry_set_size (ae, (la_int64_t) len);
  if (archive_write_header (w->aw, ae) != ARCHIVE_OK
      || archive_write_data (w->aw, json, len) != (la_ssize_t) len || archive_write_close (w->aw) != ARCHIVE_OK)
    werr (w, BERTH_E_INTERNAL, "writing the TOC: %s", archive_error_string (w->aw));
  archive_entry_free (ae);
  if (w->r < 0 || member_close (w) < 0)
    return w->r;
  unsigned char foot[BERTH_ESTARGZ_FOOTER_SIZE] = { 0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 26, 0, 'S', 'G', 22, 0 };
  char payload[32];
  snprintf (payload, sizeof payload, "%016" PRIx64 "STARGZ", toc_off);
  memcpy (foot + 16, payload, 22);
  static const unsigned char empty[] = { 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0 };
  memcpy (foot + 38, empty, sizeof empty);
  if (emit_raw (w, foot, sizeof foot) < 0)
    return w->r;
  hex_final (w->blob_md, res->digest);
  hex_final (w->diff_md, res->diff_id);
  res->size = w->out_bytes;
  res->uncompressed_size = w->tar_bytes;
  return 0;
}

int
berth_estargz_write (const struct berth_host *host, berth_estargz_read_fn read, void *rdata,
                     berth_estargz_write_fn write, void *wdata, const struct berth_estargz_opts *opts,
                     struct berth_estargz_result *ret_result, berth_error *err)
{
  struct berth_estargz_opts o = { 0 };
  if (opts)
    memcpy (&o, opts, opts->size < sizeof o ? opts->size : sizeof o);
  struct writer w = { .host = host, .err = err, .read = read, .rdata = rdata, .write = write, .wdata = wdata };
  w.chunk_size = o.chunk_size ? o.chunk_size : 4 * LI_MIB;
  memset (ret_result, 0, sizeof *ret_result);
  w.zbuf = malloc (ZBUF);
  w.io = malloc (IOBUF);
  w.copy = malloc (IOBUF);
  w.blob_md = EVP_MD_CTX_new ();
  w.diff_md = EVP_MD_CTX_new ();
  json_object *root = json_object_new_object ();
  w.toc = json_object_new_array ();
  struct archive *ar = archive_read_new ();
  w.aw = archive_write_new ();
  if (!w.zbuf || !w.io || !w.copy || !w.blob_md || !w.diff_md || !root || !w.toc || !ar || !w.aw)
    werr (&w, BERTH_E_NOMEM, "%s", "out of memory");
  else if (deflateInit2 (&w.z, o.level ? o.level : Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY)
           != Z_OK)
    werr (&w, BERTH_E_INVALID, "%s", "bad gzip level");
  else
    w.z_init = true;
  if (w.r == 0)
    {
      set_int (root, "version", 1);
      json_object_object_add (root, "entries", json_object_get (w.toc));
      EVP_DigestInit_ex (w.blob_md, EVP_sha256 (), NULL);
      EVP_DigestInit_ex (w.diff_md, EVP_sha256 (), NULL);
      archive_read_support_format_tar (ar);
      archive_read_support_format_empty (ar);
      archive_read_support_filter_gzip (ar);
      archive_read_support_filter_zstd (ar);
      archive_write_set_format_pax_restricted (w.aw);
      archive_write_set_bytes_per_block (w.aw, 0);
      if (archive_write_open (w.aw, &w, NULL, write_tar, NULL) != ARCHIVE_OK)
        werr (&w, BERTH_E_INTERNAL, "archive_write_open: %s", archive_error_string (w.aw));
      else if (archive_read_open (ar, &w, NULL, read_tar, NULL) != ARCHIVE_OK)
        werr (&w, BERTH_E_INVALID, "input is not a tar stream: %s", archive_error_string (ar));
    }
  if (w.r == 0)
    convert (&w, ar, &o);
  if (w.r == 0)
    finish (&w, root, ret_result);
  if (ar)
    archive_read_free (ar);
  if (w.aw)
    archive_write_free (w.aw);
  if (w.z_init)
    deflateEnd (&w.z);
  json_object_put (w.toc);
  json_object_put (root);
  EVP_MD_CTX_free (w.blob_md);
  EVP_MD_CTX_free (w.diff_md);
  free (w.zbuf);
  free (w.io);
  free (w.copy);
  if (w.r < 0)
    return host->error_wrap (err, "converting to eStargz");
  return 0;
}
