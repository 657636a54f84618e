/* Tests for the eStargz half of sdk/layerindex: berth_estargz_write() turns
 * a tar (made by python3's tarfile at test time) into an eStargz blob, which
 * must be an ordinary tar.gz (GNU tar lists it, our tar+gzip indexer reads
 * it) and which berth_layerindex_open_estargz() must read back byte for
 * byte, chunk digests checked.  Then TOCs that lie, corrupted chunks and
 * blobs that are not eStargz at all, each refused with an error naming what
 * is wrong.
 */
#include <config.h>

#include <check.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <berth/layerindex.h>

#include "check-sdk.h"
#include "error.h"

static char workdir[] = "/tmp/test-estargz-XXXXXX";

static const char make_layer_py[] =
  "import os, sys, tarfile, io, random\n"
  "out = sys.argv[1]; tree = os.path.join(out, 'tree'); os.makedirs(tree)\n"
  "rnd = random.Random(11)\n"
  "tf = tarfile.open(os.path.join(out, 'layer.tar'), 'w', format=tarfile.PAX_FORMAT)\n"
  "files = []\n"
  "def add(name, data=None, **kw):\n"
  "    ti = tarfile.TarInfo(name)\n"
  "    for k, v in kw.items(): setattr(ti, k, v)\n"
  "    ti.mtime = 1700000000\n"
  "    if data is not None:\n"
  "        ti.size = len(data)\n"
  "        p = os.path.join(tree, name); os.makedirs(os.path.dirname(p), exist_ok=True)\n"
  "        open(p, 'wb').write(data); files.append(name)\n"
  "        tf.addfile(ti, io.BytesIO(data))\n"
  "    else:\n"
  "        tf.addfile(ti)\n"
  "for i in range(6):\n"
  "    add('d/s%d' % i, type=tarfile.DIRTYPE, mode=0o755)\n"
  "    for j in range(20):\n"
  "        add('d/s%d/f%d' % (i, j), rnd.randbytes(rnd.randrange(0, 30000)), mode=0o644)\n"
  "big = bytearray()\n"
  "while len(big) < 9 * 1024 * 1024 + 777:\n"
  "    big += rnd.randbytes(2000) + b'0123456789' * rnd.randrange(1, 3000)\n"
  "add('big', bytes(big), mode=0o755)\n"
  "add('bighard', type=tarfile.LNKTYPE, linkname='big')\n"
  "add('sym', type=tarfile.SYMTYPE, linkname='big')\n"
  "add('d/s1/.wh.gone', b'')\n"
  "ti = tarfile.TarInfo('xat'); ti.size = 2; ti.mtime = 1700000000\n"
  "ti.pax_headers = {'SCHILY.xattr.user.k': 'value'}\n"
  "tf.addfile(ti, io.BytesIO(b'hi')); open(os.path.join(tree, 'xat'), 'wb').write(b'hi'); files.append('xat')\n"
  "add('stargz.index.json', b'an old TOC that must be dropped')\n"
  "files.remove('stargz.index.json')\n"
  "add('dev/tty', type=tarfile.CHRTYPE, devmajor=5, devminor=0, mode=0o666)\n"
  "add('zlast', b'odd')  # its padding must not end up in the TOC member\n"
  "tf.close()\n"
  "open(os.path.join(out, 'files.txt'), 'w').write('\\n'.join(files) + '\\n')\n";

struct blob
{
  unsigned char *p;
  size_t n, cap, at;
};

static int
mem_read_at (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  struct blob *b = data;
  size_t n = off >= b->n ? 0 : (len < b->n - off ? len : (size_t) (b->n - off));
  memcpy (buf, b->p + off, n);
  *ret_n = n;
  return 0;
}

static int
mem_read (void *data, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  struct blob *b = data;
  size_t n = len < b->n - b->at ? len : b->n - b->at;
  memcpy (buf, b->p + b->at, n);
  b->at += n;
  *ret_n = n;
  return 0;
}

static int
mem_write (void *data, const void *buf, size_t len, berth_error *err)
{
  struct blob *b = data;
  if (b->n + len > b->cap)
    {
      b->cap = (b->n + len) * 2;
      b->p = realloc (b->p, b->cap);
    }
  memcpy (b->p + b->n, buf, len);
  b->n += len;
  return 0;
}

static unsigned char *
slurp (const char *path, size_t *ret_len)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  struct stat st;
  fstat (fd, &st);
  unsigned char *buf = malloc ((size_t) st.st_size + 1);
  size_t got = 0;
  while (got < (size_t) st.st_size)
    {
      ssize_t k = read (fd, buf + got, (size_t) st.st_size - got);
      if (k <= 0)
        break;
      got += (size_t) k;
    }
  close (fd);
  *ret_len = got;
  return buf;
}

static struct blob tar_blob;

static void
setup_layer (void)
{
  char path[512];
  snprintf (path, sizeof path, "%s/layer.tar", workdir);
  if (access (path, F_OK) != 0)
    {
      char cmd[1024], script[512];
      snprintf (script, sizeof script, "%s/make.py", workdir);
      FILE *f = fopen (script, "w");
      fputs (make_layer_py, f);
      fclose (f);
      snprintf (cmd, sizeof cmd, "python3 %s %s", script, workdir);
      ck_assert_int_eq (system (cmd), 0);
    }
  tar_blob.p = slurp (path, &tar_blob.n);
  tar_blob.at = 0;
  ck_assert_ptr_nonnull (tar_blob.p);
}

static struct blob
convert (const char *const *prefetch, uint64_t chunk, struct berth_estargz_result *res)
{
  struct blob out = { 0 };
  struct berth_estargz_opts o = { .size = sizeof o, .chunk_size = chunk, .prefetch = prefetch, .tmpdir = workdir };
  tar_blob.at = 0;
  ck_ok (berth_estargz_write (&check_sdk_host, mem_read, &tar_blob, mem_write, &out, &o, res, err));
  return out;
}

static void
compare_with_tree (berth_layerindex *idx)
{
  char path[1024], line[512];
  snprintf (path, sizeof path, "%s/files.txt", workdir);
  FILE *f = fopen (path, "r");
  int n_files = 0;
  while (fgets (line, sizeof line, f))
    {
      line[strcspn (line, "\n")] = '\0';
      if (!*line)
        continue;
      snprintf (path, sizeof path, "%s/tree/%s", workdir, line);
      size_t len, n;
      unsigned char *want = slurp (path, &len);
      const struct berth_layerindex_entry *e = berth_layerindex_lookup (idx, line);
      ck_assert_msg (e != NULL, "`%s` missing", line);
      if (e->type != BERTH_LAYERINDEX_REG)
        {
          free (want);
          continue;
        }
      unsigned char *got = malloc (len + 1);
      ck_ok (berth_layerindex_read (idx, e, 0, got, len + 1, &n, err));
      ck_assert_int_eq (n, len);
      ck_assert_msg (memcmp (got, want, len) == 0, "`%s` differs", line);
      for (int t = 0; t < (len > 1000000 ? 30 : 1) && len; t++)
        {
          uint64_t off = (uint64_t) rand () % len;
          size_t rl = (size_t) rand () % 300000, exp = rl < len - off ? rl : len - off;
          ck_ok (berth_layerindex_read (idx, e, off, got, rl, &n, err));
          ck_assert_int_eq (n, exp);
          ck_assert_msg (memcmp (got, want + off, exp) == 0, "`%s` at %llu differs", line, (unsigned long long) off);
        }
      if (len > 1000000)
        {
          /* a cursor, sequentially, then backwards and forwards */
          berth_layerindex_cursor *cur = NULL;
          ck_ok (berth_layerindex_cursor_new (idx, &cur, err));
          for (uint64_t off = 0; off < len; off += 100000)
            {
              size_t exp = len - off < 100000 ? len - off : 100000;
              ck_ok (berth_layerindex_cursor_read (cur, e, off, got, 100000, &n, err));
              ck_assert_int_eq (n, exp);
              ck_assert_msg (memcmp (got, want + off, exp) == 0, "cursor: `%s` at %llu differs", line,
                             (unsigned long long) off);
            }
          uint64_t offs[] = { 10, len - 5, len / 2, len / 2 + 70000, 3, len / 3 };
          for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++)
            {
              size_t exp = len - offs[k] < 5000 ? len - offs[k] : 5000;
              ck_ok (berth_layerindex_cursor_read (cur, e, offs[k], got, 5000, &n, err));
              ck_assert_int_eq (n, exp);
              ck_assert_int_eq (memcmp (got, want + offs[k], exp), 0);
            }
          berth_layerindex_cursor_free (cur);
        }
      free (got);
      free (want);
      n_files++;
    }
  fclose (f);
  ck_assert_int_gt (n_files, 100);
}

static void
sha256_hex (const void *p, size_t n, char out[80])
{
  unsigned char md[32];
  EVP_Digest (p, n, md, NULL, EVP_sha256 (), NULL);
  strcpy (out, "sha256:");
  for (int i = 0; i < 32; i++)
    sprintf (out + 7 + 2 * i, "%02x", md[i]);
}

/* gunzip all members */
static struct blob
gunzip (const struct blob *in)
{
  struct blob out = { malloc (64 << 20), 0, 64 << 20 };
  z_stream z = { 0 };
  inflateInit2 (&z, 31);
  z.next_in = in->p;
  z.avail_in = (uInt) in->n;
  for (;;)
    {
      z.next_out = out.p + out.n;
      z.avail_out = (uInt) (out.cap - out.n);
      int r = inflate (&z, Z_NO_FLUSH);
      out.n = out.cap - z.avail_out;
      if (r == Z_STREAM_END && z.avail_in > 0)
        inflateReset (&z);
      else if (r != Z_OK)
        {
          ck_assert_int_eq (r, Z_STREAM_END);
          break;
        }
    }
  inflateEnd (&z);
  return out;
}

START_TEST (test_writer_output_reads_back_through_the_toc)
{
  setup_layer ();
  struct berth_estargz_result res;
  struct blob es = convert (NULL, 0, &res);
  char d[80];
  sha256_hex (es.p, es.n, d);
  ck_assert_str_eq (res.digest, d);
  ck_assert_int_eq (res.size, es.n);
  struct blob raw = gunzip (&es);
  sha256_hex (raw.p, raw.n, d);
  ck_assert_str_eq (res.diff_id, d);
  ck_assert_int_eq (res.uncompressed_size, raw.n);
  free (raw.p);

  struct berth_layerindex_opts o = { .size = sizeof o, .toc_digest = res.toc_digest };
  berth_layerindex *idx = NULL;
  ck_ok (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &es, es.n, &o, &idx, err));
  ck_assert_str_eq (berth_layerindex_toc_digest (idx), res.toc_digest);
  compare_with_tree (idx);
  const struct berth_layerindex_entry *big = berth_layerindex_lookup (idx, "big"), *e;
  ck_assert_int_eq (big->n_chunks, 3); /* 9 MiB in 4 MiB chunks */
  ck_assert_int_eq (big->mode, 0755);
  ck_assert_int_eq (big->mtime_ns, 1700000000LL * 1000000000LL);
  e = berth_layerindex_lookup (idx, "bighard");
  ck_assert_int_eq (e->data_ino, big->ino);
  ck_assert_str_eq (berth_layerindex_lookup (idx, "sym")->symlink, "big");
  ck_assert_int_eq (berth_layerindex_lookup (idx, "d/s1/.wh.gone")->type, BERTH_LAYERINDEX_WHITEOUT);
  e = berth_layerindex_lookup (idx, "xat");
  ck_assert_int_eq (e->n_xattrs, 1);
  ck_assert_str_eq (e->xattrs[0].name, "user.k");
  ck_assert_int_eq (e->xattrs[0].len, 5);
  ck_assert_int_eq (memcmp (e->xattrs[0].value, "value", 5), 0);
  e = berth_layerindex_lookup (idx, "dev/tty");
  ck_assert_int_eq (e->type, BERTH_LAYERINDEX_CHAR);
  ck_assert_int_eq (e->dev_major, 5);
  ck_assert_ptr_nonnull (berth_layerindex_lookup (idx, BERTH_ESTARGZ_NO_PREFETCH_LANDMARK));
  ck_assert_ptr_null (berth_layerindex_lookup (idx, BERTH_ESTARGZ_TOC_NAME)); /* the old one was dropped */
  const struct berth_layerindex_entry *const *pf;
  ck_assert_int_eq (berth_layerindex_prefetch (idx, &pf), 0);

  /* every chunk decodes from its byte range and matches its digest */
  for (size_t i = 0; i < big->n_chunks; i++)
    {
      const struct berth_layerindex_chunk *c = &big->chunks[i];
      unsigned char *dst = malloc (c->chunk_size);
      ck_assert_int_lt (c->offset, c->compressed_end);
      ck_ok (berth_layerindex_chunk_decode (idx, big, i, es.p + c->offset, c->compressed_end - c->offset, dst, err));
      free (dst);
    }

  /* the index file of an eStargz index round-trips too */
  char path[512];
  snprintf (path, sizeof path, "%s/estargz.idx", workdir);
  ck_ok (berth_layerindex_save (idx, path, err));
  berth_layerindex *back = NULL;
  ck_ok (berth_layerindex_load (&check_sdk_host, path, mem_read_at, &es, es.n, NULL, &back, err));
  compare_with_tree (back);
  ck_assert_str_eq (berth_layerindex_toc_digest (back), res.toc_digest);
  berth_layerindex_free (back);
  berth_layerindex_free (idx);

  /* it is an ordinary tar.gz: our gzip indexer and GNU tar read it */
  ck_ok (berth_layerindex_build (&check_sdk_host, mem_read_at, &es, es.n, "application/vnd.oci.image.layer.v1.tar+gzip", 0,
                                 NULL, &idx, err));
  compare_with_tree (idx);
  ck_assert_ptr_nonnull (berth_layerindex_lookup (idx, BERTH_ESTARGZ_TOC_NAME));
  berth_layerindex_free (idx);
  snprintf (path, sizeof path, "%s/estargz.tar.gz", workdir);
  FILE *f = fopen (path, "w");
  fwrite (es.p, 1, es.n, f);
  fclose (f);
  char cmd[1200];
  snprintf (cmd, sizeof cmd, "tar -tzf %s > %s/list && grep -qx big %s/list && grep -qx stargz.index.json %s/list",
            path, workdir, workdir, workdir);
  ck_assert_msg (system (cmd) == 0, "%s failed", cmd);
  snprintf (cmd, sizeof cmd, "mkdir %s/x && tar -xzf %s -C %s/x --exclude dev && cmp %s/x/big %s/tree/big", workdir,
            path, workdir, workdir, workdir);
  ck_assert_msg (system (cmd) == 0, "%s failed", cmd);
  free (es.p);
}
END_TEST

START_TEST (test_prefetch_files_come_first)
{
  setup_layer ();
  struct berth_estargz_result res;
  const char *const pf[] = { "d/s3/f5", "/bighard", "no/such/file", NULL };
  struct blob es = convert (pf, 1 << 20, &res);
  berth_layerindex *idx = NULL;
  ck_ok (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &es, es.n, NULL, &idx, err));
  const struct berth_layerindex_entry *const *list;
  size_t n = berth_layerindex_prefetch (idx, &list);
  ck_assert_int_eq (n, 2);
  ck_assert_str_eq (list[0]->path, "d/s3/f5");
  ck_assert_str_eq (list[1]->path, "big"); /* the hard link brought its target */
  ck_assert_int_eq (berth_layerindex_lookup (idx, "big")->n_chunks, 10);
  ck_assert_ptr_null (berth_layerindex_lookup (idx, BERTH_ESTARGZ_NO_PREFETCH_LANDMARK));
  compare_with_tree (idx);
  berth_layerindex_free (idx);
  char path[512], cmd[1200];
  snprintf (path, sizeof path, "%s/pf.tar.gz", workdir);
  FILE *f = fopen (path, "w");
  fwrite (es.p, 1, es.n, f);
  fclose (f);
  snprintf (cmd, sizeof cmd, "tar -tzf %s | head -7 | tr '\\n' ' ' > %s/order", path, workdir);
  ck_assert_int_eq (system (cmd), 0);
  snprintf (path, sizeof path, "%s/order", workdir);
  size_t len;
  char *order = (char *) slurp (path, &len);
  order[len] = '\0';
  ck_assert_str_eq (order, "d/s3/ d/s3/f5 big bighard .prefetch.landmark d/s0/ d/s0/f0 ");
  free (order);
  free (es.p);
}
END_TEST

/* ---- hostile TOCs ------------------------------------------------------- */

static void
put_header (unsigned char *h, const char *name, size_t size)
{
  memset (h, 0, 512);
  snprintf ((char *) h, 100, "%s", name);
  memcpy (h + 100, "0000444", 8);
  memcpy (h + 108, "0000000", 8);
  memcpy (h + 116, "0000000", 8);
  snprintf ((char *) h + 124, 12, "%011o", (unsigned) (size & 07777777777));
  memcpy (h + 136, "00000000000", 12);
  h[156] = '0';
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  memset (h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += h[i];
  snprintf ((char *) h + 148, 8, "%06o", sum);
}

/* The blob `es` up to its TOC, then a TOC member with `json` and a footer
 * (legacy: the 47-byte one). */
static struct blob
with_toc (const struct blob *es, uint64_t toc_off, const char *json, bool legacy)
{
  size_t jl = strlen (json), tl = 512 + (jl + 511) / 512 * 512 + 1024;
  unsigned char *tar = calloc (1, tl);
  put_header (tar, "stargz.index.json", jl);
  memcpy (tar + 512, json, jl);
  struct blob out = { malloc (toc_off + tl + 4096), 0 };
  memcpy (out.p, es->p, toc_off);
  out.n = toc_off;
  z_stream z = { 0 };
  deflateInit2 (&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  z.next_in = tar;
  z.avail_in = (uInt) tl;
  z.next_out = out.p + out.n;
  z.avail_out = (uInt) (tl + 4096);
  ck_assert_int_eq (deflate (&z, Z_FINISH), Z_STREAM_END);
  out.n += z.total_out;
  deflateEnd (&z);
  free (tar);
  unsigned char f[51] = { 0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff };
  char payload[32];
  snprintf (payload, sizeof payload, "%016llxSTARGZ", (unsigned long long) toc_off);
  size_t fl;
  if (legacy)
    {
      f[10] = 22;
      memcpy (f + 12, payload, 22);
      fl = 47;
    }
  else
    {
      f[10] = 26;
      f[12] = 'S';
      f[13] = 'G';
      f[14] = 22;
      memcpy (f + 16, payload, 22);
      fl = 51;
    }
  static const unsigned char empty[] = { 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0 };
  memcpy (f + fl - 13, empty, 13);
  memcpy (out.p + out.n, f, fl);
  out.n += fl;
  return out;
}

static json_object *
toc_entry_named (json_object *toc, const char *name, const char *type)
{
  json_object *ents = json_object_object_get (toc, "entries");
  for (size_t i = 0; i < json_object_array_length (ents); i++)
    {
      json_object *e = json_object_array_get_idx (ents, i);
      if (strcmp (json_object_get_string (json_object_object_get (e, "name")), name) == 0
          && strcmp (json_object_get_string (json_object_object_get (e, "type")), type) == 0)
        return e;
    }
  ck_abort_msg ("no %s entry %s", type, name);
  return NULL;
}

START_TEST (test_lying_tocs_are_refused)
{
  setup_layer ();
  struct berth_estargz_result res;
  struct blob es = convert (NULL, 0, &res);
  berth_layerindex *idx = NULL;
  ck_ok (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &es, es.n, NULL, &idx, err));
  uint64_t toc_off = berth_layerindex_toc_offset (idx);
  berth_layerindex_free (idx);
  idx = NULL;
  /* the TOC as written */
  struct blob raw = gunzip (&(struct blob) { es.p + toc_off, es.n - toc_off });
  char *json = strndup ((char *) raw.p + 512, raw.n - 512);
  free (raw.p);

  static const struct
  {
    const char *name, *type, *key;
    int kind; /* 0 set int, 1 set string, 2 delete */
    int64_t iv;
    const char *sv;
    int code;
    const char *needle;
  } cases[] = {
    { "big", "reg", "offset", 0, 1LL << 40, NULL, BERTH_E_INVALID, "`big`: chunk at offset 1099511627776 is not before the TOC" },
    { "xat", "reg", "name", 1, 0, "../../etc/shadow", BERTH_E_INVALID, "`../../etc/shadow`: absolute path or `..`" },
    { "xat", "reg", "name", 1, 0, "/etc/shadow", BERTH_E_INVALID, "`/etc/shadow`: absolute path" },
    { "xat", "reg", "size", 0, 1LL << 62, NULL, BERTH_E_INVALID, "`xat`: absurd size" },
    { "big", "chunk", "chunkSize", 0, 1LL << 40, NULL, BERTH_E_INVALID, "`big`: chunk 1 has size 1099511627776" },
    { "xat", "reg", "chunkDigest", 2, 0, NULL, BERTH_E_INVALID, "`xat`: chunk 0 has no valid chunkDigest" },
    { "xat", "reg", "chunkDigest", 1, 0, "md5:abc", BERTH_E_INVALID, "no valid chunkDigest" },
    { "xat", "reg", "uid", 1, 0, "root", BERTH_E_INVALID, "`uid` is not an integer" },
    { "xat", "reg", "modtime", 1, 0, "yesterday", BERTH_E_INVALID, "`modtime` is not an RFC 3339 time" },
    { "xat", "reg", "type", 1, 0, "socket", BERTH_E_INVALID, "`xat`: unknown type" },
    { "bighard", "hardlink", "linkName", 1, 0, "nothing", BERTH_E_INVALID, "`bighard`: hard link to `nothing`" },
    { "d/s0", "dir", "type", 1, 0, "reg", BERTH_E_INVALID, "parent `d/s0` is not a directory" },
    { "big", "chunk", "chunkOffset", 0, 5, NULL, BERTH_E_INVALID, "`big`: chunk 1 starts at 5" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      json_object *toc = json_tokener_parse (json);
      json_object *e = toc_entry_named (toc, cases[i].name, cases[i].type);
      if (cases[i].kind == 0)
        json_object_object_add (e, cases[i].key, json_object_new_int64 (cases[i].iv));
      else if (cases[i].kind == 1)
        json_object_object_add (e, cases[i].key, json_object_new_string (cases[i].sv));
      else
        json_object_object_del (e, cases[i].key);
      struct blob bad = with_toc (&es, toc_off, json_object_to_json_string (toc), false);
      ck_fails (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &bad, bad.n, NULL, &idx, err), cases[i].code,
                cases[i].needle);
      ck_assert_ptr_null (idx);
      free (bad.p);
      json_object_put (toc);
    }

  /* two files claiming the same compressed bytes */
  json_object *toc = json_tokener_parse (json);
  json_object *a = toc_entry_named (toc, "d/s0/f1", "reg"), *b = toc_entry_named (toc, "d/s0/f2", "reg");
  json_object_object_add (b, "offset", json_object_get (json_object_object_get (a, "offset")));
  struct blob bad = with_toc (&es, toc_off, json_object_to_json_string (toc), false);
  ck_fails (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &bad, bad.n, NULL, &idx, err), BERTH_E_INVALID,
            "overlaps");
  free (bad.p);
  json_object_put (toc);

  /* not JSON, wrong version, a chunk without its file */
  const char *junk[][2] = { { "{\"version\":1,\"entries\":[", "not valid JSON" },
                            { "{\"version\":2,\"entries\":[]}", "no `version` 1" },
                            { "{\"version\":1,\"entries\":[{\"name\":\"a\",\"type\":\"chunk\"}]}",
                              "chunk does not follow" },
                            { "[1,2,3]", "no `version` 1" } };
  for (size_t i = 0; i < 4; i++)
    {
      bad = with_toc (&es, toc_off, junk[i][0], false);
      ck_fails (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &bad, bad.n, NULL, &idx, err), BERTH_E_INVALID,
                junk[i][1]);
      free (bad.p);
    }

  /* the legacy 47-byte footer works */
  bad = with_toc (&es, toc_off, json, true);
  ck_ok (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &bad, bad.n, NULL, &idx, err));
  berth_layerindex_free (idx);
  idx = NULL;
  free (bad.p);

  /* a TOC digest that is not the annotation's */
  struct berth_layerindex_opts o = { .size = sizeof o, .toc_digest = "sha256:0000" };
  ck_fails (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &es, es.n, &o, &idx, err), BERTH_E_PRECONDITION,
            "the annotation says sha256:0000");

  /* an ordinary gzip layer claimed as eStargz, and a footer pointing nowhere */
  struct blob plain = { tar_blob.p, tar_blob.n };
  ck_fails (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &plain, plain.n, NULL, &idx, err), BERTH_E_INVALID,
            "not an eStargz layer");
  bad = with_toc (&es, toc_off, json, false);
  memcpy (bad.p + bad.n - 51 + 16, "ffffffffffffff00", 16);
  ck_fails (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &bad, bad.n, NULL, &idx, err), BERTH_E_INVALID,
            "is past the blob");
  free (bad.p);
  free (json);
  free (es.p);
}
END_TEST

START_TEST (test_corrupted_chunks_never_return_bytes)
{
  setup_layer ();
  struct berth_estargz_result res;
  struct blob es = convert (NULL, 0, &res);
  berth_layerindex *idx = NULL;
  ck_ok (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &es, es.n, NULL, &idx, err));
  const struct berth_layerindex_entry *big = berth_layerindex_lookup (idx, "big");
  const struct berth_layerindex_chunk *c = &big->chunks[1];
  unsigned char *buf = malloc (1 << 20);
  size_t n = 1234;
  /* a flipped bit inside the deflate data of chunk 1 */
  es.p[c->offset + (c->compressed_end - c->offset) / 2] ^= 0x10;
  berth_error *e = berth_error_new ();
  int r = berth_layerindex_read (idx, big, c->chunk_offset + 100, buf, 1 << 20, &n, e);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_int_eq (n, 0);
  ck_assert_msg (strstr (berth_error_message (e), "`big` chunk 1"), "%s", berth_error_message (e));
  berth_error_free (e);
  /* the same chunk read whole is decoded in place: the buffer is wiped, not
   * left with what came out of the bad chunk */
  unsigned char *whole = malloc (c->chunk_size);
  memset (whole, 0xa5, c->chunk_size);
  n = 1234;
  ck_fails (berth_layerindex_read (idx, big, c->chunk_offset, whole, c->chunk_size, &n, err), BERTH_E_INVALID,
            "`big` chunk 1");
  ck_assert_int_eq (n, 0);
  for (size_t k = 0; k < c->chunk_size; k++)
    ck_assert_msg (whole[k] == 0, "byte %zu of a failed chunk left in the buffer", k);
  free (whole);
  es.p[c->offset + (c->compressed_end - c->offset) / 2] ^= 0x10;
  ck_ok (berth_layerindex_read (idx, big, c->chunk_offset + 100, buf, 1 << 20, &n, err));
  /* chunk 0 read fine meanwhile; a stored block swapped for another file's: digest mismatch */
  const struct berth_layerindex_entry *f1 = berth_layerindex_lookup (idx, "d/s0/f1");
  const struct berth_layerindex_entry *f2 = berth_layerindex_lookup (idx, "d/s0/f2");
  ck_assert_int_gt (f1->size, 0);
  ck_assert_int_gt (f2->size, 0);
  struct berth_layerindex_chunk *c1 = (struct berth_layerindex_chunk *) &f1->chunks[0];
  uint64_t keep = c1->offset;
  c1->offset = f2->chunks[0].offset; /* the TOC "lies" about where f1 is */
  n = 99;
  ck_fails (berth_layerindex_read (idx, f1, 0, buf, f1->size, &n, err), BERTH_E_INVALID, "");
  ck_assert_int_eq (n, 0);
  c1->offset = keep;
  ck_ok (berth_layerindex_read (idx, f1, 0, buf, f1->size, &n, err));
  ck_assert_int_eq (n, f1->size);
  /* chunk_decode over a too-short range */
  ck_fails (berth_layerindex_chunk_decode (idx, big, 0, es.p + big->chunks[0].offset, 100, buf, err),
            BERTH_E_INVALID, "ends early");
  berth_layerindex_free (idx);
  free (buf);
  free (es.p);
}
END_TEST

/* A chunk may start inside a gzip member (innerOffset) or run on into the
 * next members, as other writers split files: the TOC of our blob is
 * rewritten so that `big` has chunks [0, 2 MiB) and [2 MiB, 4 MiB) in the
 * first member (the second at innerOffset 2 MiB) and one chunk from 4 MiB
 * to its end over two members, and every read must still give the file. */
START_TEST (test_chunks_inside_and_across_gzip_members_read_back)
{
  setup_layer ();
  struct berth_estargz_result res;
  struct blob es = convert (NULL, 0, &res);
  berth_layerindex *idx = NULL;
  ck_ok (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &es, es.n, NULL, &idx, err));
  uint64_t toc_off = berth_layerindex_toc_offset (idx);
  ck_assert_int_eq (berth_layerindex_lookup (idx, "big")->n_chunks, 3);
  berth_layerindex_free (idx);
  idx = NULL;
  struct blob raw = gunzip (&(struct blob) { es.p + toc_off, es.n - toc_off });
  json_object *toc = json_tokener_parse ((char *) raw.p + 512);
  free (raw.p);
  ck_assert_ptr_nonnull (toc);
  char path[600], d[80];
  snprintf (path, sizeof path, "%s/tree/big", workdir);
  size_t len;
  unsigned char *want = slurp (path, &len);
  const size_t M2 = 2 << 20;
  ck_assert_int_gt (len, 2 * (4 << 20));

  json_object *ents = json_object_object_get (toc, "entries"), *out = json_object_new_array ();
  for (size_t i = 0; i < json_object_array_length (ents); i++)
    {
      json_object *e = json_object_get (json_object_array_get_idx (ents, i));
      const char *name = json_object_get_string (json_object_object_get (e, "name"));
      const char *type = json_object_get_string (json_object_object_get (e, "type"));
      if (strcmp (name, "big") != 0)
        {
          json_object_array_add (out, e);
          continue;
        }
      int64_t coff = json_object_get_int64 (json_object_object_get (e, "chunkOffset"));
      if (strcmp (type, "reg") == 0)
        {
          json_object_object_add (e, "chunkSize", json_object_new_int64 ((int64_t) M2));
          sha256_hex (want, M2, d);
          json_object_object_add (e, "chunkDigest", json_object_new_string (d));
          json_object_array_add (out, e);
          json_object *half = json_object_new_object ();
          json_object_object_add (half, "name", json_object_new_string ("big"));
          json_object_object_add (half, "type", json_object_new_string ("chunk"));
          json_object_object_add (half, "offset", json_object_get (json_object_object_get (e, "offset")));
          json_object_object_add (half, "innerOffset", json_object_new_int64 ((int64_t) M2));
          json_object_object_add (half, "chunkOffset", json_object_new_int64 ((int64_t) M2));
          json_object_object_add (half, "chunkSize", json_object_new_int64 ((int64_t) M2));
          sha256_hex (want + M2, M2, d);
          json_object_object_add (half, "chunkDigest", json_object_new_string (d));
          json_object_array_add (out, half);
        }
      else if (coff == 4 << 20)
        {
          json_object_object_add (e, "chunkSize", json_object_new_int64 ((int64_t) (len - (4 << 20))));
          sha256_hex (want + (4 << 20), len - (4 << 20), d);
          json_object_object_add (e, "chunkDigest", json_object_new_string (d));
          json_object_array_add (out, e);
        }
      else
        json_object_put (e); /* the last chunk: now part of the one before */
    }
  json_object_object_add (toc, "entries", out);
  struct blob odd = with_toc (&es, toc_off, json_object_to_json_string (toc), false);
  json_object_put (toc);
  ck_ok (berth_layerindex_open_estargz (&check_sdk_host, mem_read_at, &odd, odd.n, NULL, &idx, err));
  const struct berth_layerindex_entry *big = berth_layerindex_lookup (idx, "big");
  ck_assert_int_eq (big->n_chunks, 3);
  ck_assert_int_eq (big->chunks[1].inner_offset, M2);
  ck_assert_int_eq (big->chunks[1].offset, big->chunks[0].offset);
  ck_assert_int_eq (big->chunks[2].chunk_size, len - (4 << 20));
  compare_with_tree (idx); /* whole files (chunks decoded in place), random pieces, a cursor */
  unsigned char *got = malloc (len);
  size_t n = 0;
  for (size_t i = 0; i < big->n_chunks; i++)
    {
      const struct berth_layerindex_chunk *c = &big->chunks[i];
      memset (got, 0xa5, len);
      ck_ok (berth_layerindex_read (idx, big, c->chunk_offset, got, c->chunk_size, &n, err));
      ck_assert_int_eq (n, c->chunk_size);
      ck_assert_msg (memcmp (got, want + c->chunk_offset, n) == 0, "chunk %zu differs", i);
      ck_ok (berth_layerindex_chunk_decode (idx, big, i, odd.p + c->offset, c->compressed_end - c->offset, got, err));
      ck_assert_msg (memcmp (got, want + c->chunk_offset, n) == 0, "chunk_decode: chunk %zu differs", i);
    }
  /* the chunk over two members, from a range that ends in its second member */
  const struct berth_layerindex_chunk *c2 = &big->chunks[2];
  ck_fails (berth_layerindex_chunk_decode (idx, big, 2, odd.p + c2->offset, (c2->compressed_end - c2->offset) * 3 / 4,
                                           got, err),
            BERTH_E_INVALID, "ends early");
  free (got);
  free (want);
  berth_layerindex_free (idx);
  free (odd.p);
  free (es.p);
}
END_TEST

START_TEST (test_writer_refuses_bad_input)
{
  struct blob junk = { (unsigned char *) "this is not a tar file at all, not even close ....", 50, 0, 0 };
  struct blob out = { 0 };
  struct berth_estargz_result res;
  ck_fails (berth_estargz_write (&check_sdk_host, mem_read, &junk, mem_write, &out, NULL, &res, err), BERTH_E_INVALID,
            "converting to eStargz");
  free (out.p);
}
END_TEST

static Suite *
estargz_suite (void)
{
  Suite *s = suite_create ("estargz");
  TCase *tc = tcase_create ("estargz");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_writer_output_reads_back_through_the_toc);
  tcase_add_test (tc, test_prefetch_files_come_first);
  tcase_add_test (tc, test_lying_tocs_are_refused);
  tcase_add_test (tc, test_corrupted_chunks_never_return_bytes);
  tcase_add_test (tc, test_chunks_inside_and_across_gzip_members_read_back);
  tcase_add_test (tc, test_writer_refuses_bad_input);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  if (system ("python3 -c 'import tarfile, random; random.Random().randbytes' >/dev/null 2>&1") != 0
      || system ("tar --version >/dev/null 2>&1") != 0)
    {
      printf ("SKIP: python3 >= 3.9 and tar are needed to make and check the test layers\n");
      return 77;
    }
  if (mkdtemp (workdir) == NULL)
    return EXIT_FAILURE;
  SRunner *sr = srunner_create (estargz_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  char cmd[600];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", workdir);
  if (system (cmd) != 0)
    failed++;
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
