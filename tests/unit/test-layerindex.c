/* Tests for sdk/layerindex (libberth-layerindex, include/berth/layerindex.h):
 * the index of tar, tar+gzip and tar+zstd layers.
 *
 * The test layer is made at test time by python3's tarfile (pax format:
 * many files, a file of several MiB crossing many checkpoints, hard links,
 * symlinks, long names, whiteouts, SCHILY.xattr, devices, a path given
 * twice) together with the tree it should extract to; zstd layers are
 * compressed here, frame by frame.  Every file is read back through the
 * index, whole and at random offsets, and compared byte for byte with the
 * tree.  Errors go through a host table over lib/error.c, as a plugin's do.
 */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>
#include <zstd.h>

#include <berth/layerindex.h>

#include "check-sdk.h"
#include "error.h"

static char workdir[] = "/tmp/test-layerindex-XXXXXX";

/* python3: layer.tar + tree/ (expected contents) + files.txt (regular files). */
static const char make_layer_py[] =
  "import os, sys, tarfile, io, random\n"
  "out = sys.argv[1]; tree = os.path.join(out, 'tree'); os.makedirs(tree)\n"
  "rnd = random.Random(7)\n"
  "tf = tarfile.open(os.path.join(out, 'layer.tar'), 'w', format=tarfile.PAX_FORMAT)\n"
  "files = []\n"
  "def add(name, data=None, **kw):\n"
  "    ti = tarfile.TarInfo(name)\n"
  "    for k, v in kw.items(): setattr(ti, k, v)\n"
  "    ti.mtime = 1700000000\n"
  "    if data is not None:\n"
  "        ti.size = len(data)\n"
  "        p = os.path.join(tree, name.strip('/')); os.makedirs(os.path.dirname(p), exist_ok=True)\n"
  "        open(p, 'wb').write(data)\n"
  "        if name.strip('/') not in files: files.append(name.strip('/'))\n"
  "        tf.addfile(ti, io.BytesIO(data))\n"
  "    else:\n"
  "        tf.addfile(ti)\n"
  "add('d', type=tarfile.DIRTYPE, mode=0o755)\n"
  "for i in range(10):\n"
  "    add('d/s%d' % i, type=tarfile.DIRTYPE, mode=0o750, uid=1000 + i, gid=2000)\n"
  "    for j in range(40):\n"
  "        n = rnd.choice([0, 1, 511, 512, 513, 4096, rnd.randrange(1, 70000)])\n"
  "        data = rnd.randbytes(n // 4) * 4 + b'x' * (n % 4)\n"
  "        add('d/s%d/f%d' % (i, j), data, mode=0o644)\n"
  "big = bytearray()\n"
  "while len(big) < 6 * 1024 * 1024 + 12345:\n"
  "    big += rnd.randbytes(3000) + b'abcdefgh' * rnd.randrange(1, 2000)\n"
  "add('./big', bytes(big), mode=0o600)\n"
  "add('bighard', type=tarfile.LNKTYPE, linkname='big')\n"
  "add('d/link', type=tarfile.SYMTYPE, linkname='../big')\n"
  "long = 'long/' + 'n' * 120 + '/' + 'm' * 150 + '.txt'\n"
  "add(long, b'long name contents\\n' * 100, mode=0o644)\n"
  "add('d/s1/.wh.gone', b'')\n"
  "add('d/s2/.wh..wh..opq', b'')\n"
  "ti = tarfile.TarInfo('xat'); ti.size = 5; ti.mtime = 1700000000\n"
  "ti.pax_headers = {'SCHILY.xattr.user.foo': 'bar', 'SCHILY.xattr.security.capability': 'cap'}\n"
  "tf.addfile(ti, io.BytesIO(b'hello')); open(os.path.join(tree, 'xat'), 'wb').write(b'hello'); files.append('xat')\n"
  "add('dev/null', type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)\n"
  "add('fifo', type=tarfile.FIFOTYPE, mode=0o600)\n"
  "add('implicit/a/b/file', b'implicit parents', mode=0o644)\n"
  "add('dup', b'first version', mode=0o644)\n"
  "add('dup', b'second and last version', mode=0o640)\n"
  "tf.close()\n"
  "open(os.path.join(out, 'files.txt'), 'w').write('\\n'.join(files) + '\\n')\n";

static void
run_python (const char *script, const char *arg)
{
  char path[512];
  snprintf (path, sizeof path, "%s/script.py", workdir);
  FILE *f = fopen (path, "w");
  ck_assert_ptr_nonnull (f);
  fputs (script, f);
  fclose (f);
  pid_t pid = fork ();
  if (pid == 0)
    {
      execlp ("python3", "python3", path, arg, (char *) NULL);
      _exit (127);
    }
  int st = 0;
  waitpid (pid, &st, 0);
  ck_assert_msg (WIFEXITED (st) && WEXITSTATUS (st) == 0, "python3 %s %s failed", path, arg);
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

/* A blob in memory. */
struct blob
{
  unsigned char *p;
  size_t n;
};

static int
mem_read_at (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  struct blob *b = data;
  if (off >= b->n)
    {
      *ret_n = 0;
      return 0;
    }
  size_t n = len < b->n - off ? len : (size_t) (b->n - off);
  memcpy (buf, b->p + off, n);
  *ret_n = n;
  return 0;
}

static struct blob tar_blob;

static void
setup_layer (void)
{
  char path[512];
  snprintf (path, sizeof path, "%s/layer.tar", workdir);
  if (access (path, F_OK) != 0)
    run_python (make_layer_py, workdir);
  tar_blob.p = slurp (path, &tar_blob.n);
  ck_assert_ptr_nonnull (tar_blob.p);
}

static struct blob
gzip_blob (const struct blob *in, int members)
{
  struct blob out = { malloc (in->n + in->n / 10 + 65536 * (members + 1)), 0 };
  size_t per = in->n / (size_t) members + 1;
  for (size_t at = 0; at < in->n; at += per)
    {
      z_stream z = { 0 };
      deflateInit2 (&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
      z.next_in = in->p + at;
      z.avail_in = (uInt) (in->n - at < per ? in->n - at : per);
      z.next_out = out.p + out.n;
      z.avail_out = (uInt) (in->n + in->n / 10 + 65536 - out.n);
      ck_assert_int_eq (deflate (&z, Z_FINISH), Z_STREAM_END);
      out.n += z.total_out;
      deflateEnd (&z);
    }
  return out;
}

static struct blob
zstd_blob (const struct blob *in, size_t frame)
{
  size_t cap = ZSTD_compressBound (in->n) + 4096 * (in->n / frame + 1);
  struct blob out = { malloc (cap), 0 };
  for (size_t at = 0; at < in->n; at += frame)
    {
      size_t n = in->n - at < frame ? in->n - at : frame;
      size_t k = ZSTD_compress (out.p + out.n, cap - out.n, in->p + at, n, 3);
      ck_assert (!ZSTD_isError (k));
      out.n += k;
    }
  return out;
}

/* Every regular file, whole and at random places, against the tree. */
static void
compare_with_tree (berth_layerindex *idx, unsigned seed)
{
  char path[4096];
  snprintf (path, sizeof path, "%s/files.txt", workdir);
  FILE *f = fopen (path, "r");
  ck_assert_ptr_nonnull (f);
  char line[2048];
  size_t nfiles = 0;
  srand (seed);
  while (fgets (line, sizeof line, f))
    {
      line[strcspn (line, "\n")] = '\0';
      if (!*line)
        continue;
      snprintf (path, sizeof path, "%s/tree/%s", workdir, line);
      size_t len;
      unsigned char *want = slurp (path, &len);
      ck_assert_ptr_nonnull (want);
      const struct berth_layerindex_entry *e = berth_layerindex_lookup (idx, line);
      ck_assert_msg (e != NULL, "`%s` not in the index", line);
      if (e->type == BERTH_LAYERINDEX_WHITEOUT || e->type == BERTH_LAYERINDEX_OPAQUE)
        {
          free (want);
          continue;
        }
      ck_assert_int_eq (e->size, len);
      unsigned char *got = malloc (len + 1);
      size_t n = 0;
      ck_ok (berth_layerindex_read (idx, e, 0, got, len + 1, &n, err));
      ck_assert_int_eq (n, len);
      ck_assert_msg (memcmp (got, want, len) == 0, "`%s` differs", line);
      int tries = len > 1000000 ? 40 : 2;
      for (int t = 0; t < tries && len > 0; t++)
        {
          uint64_t off = (uint64_t) rand () % len;
          size_t rl = (size_t) rand () % 200000;
          ck_ok (berth_layerindex_read (idx, e, off, got, rl, &n, err));
          size_t exp = rl < len - off ? rl : len - off;
          ck_assert_int_eq (n, exp);
          ck_assert_msg (memcmp (got, want + off, exp) == 0, "`%s` at %llu+%zu differs", line,
                         (unsigned long long) off, exp);
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
      nfiles++;
    }
  fclose (f);
  ck_assert_int_gt (nfiles, 400);
}

static void
check_metadata (berth_layerindex *idx)
{
  const struct berth_layerindex_entry *root = berth_layerindex_get (idx, 1), *e, *t;
  ck_assert_str_eq (root->path, "");
  ck_assert_int_eq (root->type, BERTH_LAYERINDEX_DIR);
  ck_assert_ptr_eq (berth_layerindex_lookup (idx, "/"), root);
  e = berth_layerindex_lookup (idx, "/d/link");
  ck_assert_ptr_nonnull (e);
  ck_assert_int_eq (e->type, BERTH_LAYERINDEX_SYMLINK);
  ck_assert_str_eq (e->symlink, "../big");
  e = berth_layerindex_lookup (idx, "bighard");
  t = berth_layerindex_lookup (idx, "big");
  ck_assert_ptr_nonnull (e);
  ck_assert_str_eq (e->hardlink, "big");
  ck_assert_int_eq (e->data_ino, t->ino);
  ck_assert_int_eq (e->size, t->size);
  ck_assert_int_eq (t->mode, 0600);
  size_t n = 0;
  unsigned char a[64], b[64];
  ck_ok (berth_layerindex_read (idx, e, 5000000, a, sizeof a, &n, err));
  ck_ok (berth_layerindex_read (idx, t, 5000000, b, sizeof b, &n, err));
  ck_assert_int_eq (memcmp (a, b, sizeof a), 0);
  e = berth_layerindex_lookup (idx, "d/s1/.wh.gone");
  ck_assert_int_eq (e->type, BERTH_LAYERINDEX_WHITEOUT);
  e = berth_layerindex_lookup (idx, "d/s2/.wh..wh..opq");
  ck_assert_int_eq (e->type, BERTH_LAYERINDEX_OPAQUE);
  e = berth_layerindex_lookup (idx, "xat");
  ck_assert_int_eq (e->n_xattrs, 2);
  int seen = 0;
  for (size_t i = 0; i < e->n_xattrs; i++)
    if (strcmp (e->xattrs[i].name, "user.foo") == 0 && e->xattrs[i].len == 3
        && memcmp (e->xattrs[i].value, "bar", 3) == 0)
      seen++;
  ck_assert_int_eq (seen, 1);
  e = berth_layerindex_lookup (idx, "dev/null");
  ck_assert_int_eq (e->type, BERTH_LAYERINDEX_CHAR);
  ck_assert_int_eq (e->dev_major, 1);
  ck_assert_int_eq (e->dev_minor, 3);
  e = berth_layerindex_lookup (idx, "dev");
  ck_assert_int_eq (e->flags, BERTH_LAYERINDEX_F_IMPLICIT);
  ck_assert_int_eq (berth_layerindex_lookup (idx, "fifo")->type, BERTH_LAYERINDEX_FIFO);
  ck_assert_int_eq (berth_layerindex_lookup (idx, "implicit/a/b")->type, BERTH_LAYERINDEX_DIR);
  e = berth_layerindex_lookup (idx, "dup");
  ck_assert_int_eq (e->mode, 0640);
  ck_assert_int_eq (e->size, strlen ("second and last version"));
  ck_assert_int_eq (e->mtime_ns, 1700000000LL * 1000000000LL);
  e = berth_layerindex_lookup (idx, "d/s3");
  ck_assert_int_eq (e->uid, 1003);
  ck_assert_int_eq (e->mode, 0750);
  const struct berth_layerindex_entry *const *kids;
  n = berth_layerindex_readdir (idx, e, &kids);
  ck_assert_int_eq (n, 40);
  for (size_t i = 0; i < n; i++)
    {
      ck_assert_int_eq (kids[i]->parent_ino, e->ino);
      ck_assert_ptr_eq (berth_layerindex_get (idx, kids[i]->ino), kids[i]);
    }
  n = berth_layerindex_readdir (idx, root, &kids);
  ck_assert_int_eq (n, 9); /* d big bighard long xat dev fifo implicit dup */
  ck_assert_int_eq (berth_layerindex_readdir (idx, berth_layerindex_lookup (idx, "xat"), &kids), 0);
  ck_assert_ptr_null (berth_layerindex_lookup (idx, "nope"));
  ck_assert_ptr_null (berth_layerindex_lookup (idx, "d/../big"));
}

static berth_layerindex *
build (struct blob *b, uint32_t comp, uint64_t span)
{
  struct berth_layerindex_opts o = { .size = sizeof o, .checkpoint_span = span };
  berth_layerindex *idx = NULL;
  ck_ok (berth_layerindex_build (&check_sdk_host, mem_read_at, b, b->n, NULL, comp, &o, &idx, err));
  return idx;
}

START_TEST (test_plain_tar_reads_in_place)
{
  setup_layer ();
  berth_layerindex *idx = build (&tar_blob, BERTH_LAYERINDEX_NONE, 0);
  ck_assert_int_eq (berth_layerindex_checkpoints (idx), 0);
  ck_assert_int_eq (berth_layerindex_stream_size (idx), tar_blob.n);
  check_metadata (idx);
  compare_with_tree (idx, 1);
  berth_layerindex_free (idx);
}
END_TEST

START_TEST (test_gzip_reads_from_checkpoints)
{
  setup_layer ();
  struct blob gz = gzip_blob (&tar_blob, 1);
  berth_layerindex *idx = build (&gz, BERTH_LAYERINDEX_GZIP, 65536);
  ck_assert_int_gt (berth_layerindex_checkpoints (idx), 50);
  check_metadata (idx);
  compare_with_tree (idx, 2);
  berth_layerindex_free (idx);
  /* the default spacing, and the media type */
  berth_layerindex *idx2 = NULL;
  ck_ok (berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, "application/vnd.oci.image.layer.v1.tar+gzip", 0,
                                 NULL, &idx2, err));
  ck_assert_int_ge (berth_layerindex_checkpoints (idx2), 8);
  compare_with_tree (idx2, 3);
  berth_layerindex_free (idx2);
  free (gz.p);
}
END_TEST

START_TEST (test_gzip_with_many_members)
{
  setup_layer ();
  struct blob gz = gzip_blob (&tar_blob, 37);
  berth_layerindex *idx = build (&gz, BERTH_LAYERINDEX_GZIP, 65536);
  compare_with_tree (idx, 4);
  check_metadata (idx);
  berth_layerindex_free (idx);
  free (gz.p);
}
END_TEST

START_TEST (test_zstd_reads_from_frame_starts)
{
  setup_layer ();
  struct blob zs = zstd_blob (&tar_blob, 300 * 1024);
  berth_layerindex *idx = build (&zs, BERTH_LAYERINDEX_ZSTD, 65536);
  ck_assert_int_gt (berth_layerindex_checkpoints (idx), 10);
  check_metadata (idx);
  compare_with_tree (idx, 5);
  berth_layerindex_free (idx);
  struct blob one = zstd_blob (&tar_blob, tar_blob.n);
  idx = build (&one, BERTH_LAYERINDEX_ZSTD, 0);
  ck_assert_int_eq (berth_layerindex_checkpoints (idx), 1);
  compare_with_tree (idx, 6);
  berth_layerindex_free (idx);
  free (zs.p);
  free (one.p);
}
END_TEST

START_TEST (test_index_file_round_trips)
{
  setup_layer ();
  struct blob gz = gzip_blob (&tar_blob, 3);
  berth_layerindex *idx = build (&gz, BERTH_LAYERINDEX_GZIP, 65536), *back = NULL;
  char path[512];
  snprintf (path, sizeof path, "%s/index.bin", workdir);
  ck_ok (berth_layerindex_save (idx, path, err));
  ck_ok (berth_layerindex_load (&check_sdk_host, path, mem_read_at, &gz, gz.n, NULL, &back, err));
  ck_assert_int_eq (berth_layerindex_count (back), berth_layerindex_count (idx));
  ck_assert_int_eq (berth_layerindex_checkpoints (back), berth_layerindex_checkpoints (idx));
  for (uint64_t i = 1; i <= berth_layerindex_count (idx); i++)
    {
      const struct berth_layerindex_entry *a = berth_layerindex_get (idx, i), *b = berth_layerindex_get (back, i);
      ck_assert_str_eq (a->path, b->path);
      ck_assert_int_eq (a->type, b->type);
      ck_assert_int_eq (a->offset, b->offset);
      ck_assert_int_eq (a->data_ino, b->data_ino);
      ck_assert_int_eq (a->n_xattrs, b->n_xattrs);
    }
  check_metadata (back);
  compare_with_tree (back, 7);
  berth_layerindex_free (back);
  back = NULL;

  /* hostile files */
  size_t len;
  unsigned char *file = slurp (path, &len);
  ck_fails (berth_layerindex_load (&check_sdk_host, path, mem_read_at, &gz, gz.n - 1, NULL, &back, err),
            BERTH_E_PRECONDITION, "made for a blob");
  file[len / 2] ^= 0x40;
  ck_fails (berth_layerindex_load_buffer (&check_sdk_host, file, len, mem_read_at, &gz, gz.n, NULL, &back, err),
            BERTH_E_INVALID, "checksum mismatch");
  file[len / 2] ^= 0x40;
  ck_fails (berth_layerindex_load_buffer (&check_sdk_host, file, len - 7, mem_read_at, &gz, gz.n, NULL, &back, err),
            BERTH_E_INVALID, "index file");
  memcpy (file, "NOTINDEX", 8);
  ck_fails (berth_layerindex_load_buffer (&check_sdk_host, file, len, mem_read_at, &gz, gz.n, NULL, &back, err),
            BERTH_E_INVALID, "not a berth layer index");
  ck_fails (berth_layerindex_load (&check_sdk_host, "/nonexistent/index", mem_read_at, &gz, gz.n, NULL, &back, err),
            BERTH_E_NOTFOUND, "/nonexistent/index");
  ck_assert_ptr_null (back);
  free (file);
  berth_layerindex_free (idx);
  free (gz.p);
}
END_TEST

static void
sha256_of (const struct blob *b, char out[80])
{
  unsigned char md[32];
  EVP_Digest (b->p, b->n, md, NULL, EVP_sha256 (), NULL);
  strcpy (out, "sha256:");
  for (int i = 0; i < 32; i++)
    snprintf (out + 7 + 2 * i, 3, "%02x", md[i]);
}

START_TEST (test_diff_id_is_the_hash_of_the_uncompressed_tar)
{
  setup_layer ();
  char want[80];
  sha256_of (&tar_blob, want);
  struct blob gz = gzip_blob (&tar_blob, 3), zs = zstd_blob (&tar_blob, 300 * 1024);
  berth_layerindex *idx = build (&gz, BERTH_LAYERINDEX_GZIP, 65536), *back = NULL;
  ck_assert_str_eq (berth_layerindex_diff_id (idx), want);
  berth_layerindex *plain = build (&tar_blob, BERTH_LAYERINDEX_NONE, 0), *z = build (&zs, BERTH_LAYERINDEX_ZSTD, 0);
  ck_assert_str_eq (berth_layerindex_diff_id (plain), want);
  ck_assert_str_eq (berth_layerindex_diff_id (z), want);

  /* kept in the index file */
  char path[512];
  snprintf (path, sizeof path, "%s/diffid.idx", workdir);
  ck_ok (berth_layerindex_save (idx, path, err));
  ck_ok (berth_layerindex_load (&check_sdk_host, path, mem_read_at, &gz, gz.n, NULL, &back, err));
  ck_assert_str_eq (berth_layerindex_diff_id (back), want);
  berth_layerindex_free (back);
  back = NULL;

  /* insisted on */
  struct berth_layerindex_opts o = { .size = sizeof o, .diff_id = want };
  ck_ok (berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, NULL, BERTH_LAYERINDEX_GZIP, &o, &back, err));
  berth_layerindex_free (back);
  back = NULL;
  char wrong[80];
  snprintf (wrong, sizeof wrong, "sha256:%064d", 0);
  o.diff_id = wrong;
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, NULL, BERTH_LAYERINDEX_GZIP, &o, &back, err),
            BERTH_E_PRECONDITION, want);
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &zs, zs.n, NULL, BERTH_LAYERINDEX_ZSTD, &o, &back, err),
            BERTH_E_PRECONDITION, wrong);
  o.diff_id = "sha256:nothex";
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, NULL, BERTH_LAYERINDEX_GZIP, &o, &back, err),
            BERTH_E_INVALID, "not a sha256 diffID");
  ck_assert_ptr_null (back);
  /* an older caller's opts, without the field: no check */
  o.size = (uint32_t) offsetof (struct berth_layerindex_opts, diff_id);
  o.diff_id = wrong;
  ck_ok (berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, NULL, BERTH_LAYERINDEX_GZIP, &o, &back, err));
  berth_layerindex_free (back);
  berth_layerindex_free (idx);
  berth_layerindex_free (plain);
  berth_layerindex_free (z);
  free (gz.p);
  free (zs.p);
}
END_TEST

/* Spans tile a file and each decodes on its own, in any order, with
 * several cursors: what a FUSE server decoding ahead on threads does. */
static void
check_spans (berth_layerindex *idx, bool many)
{
  char path[512];
  snprintf (path, sizeof path, "%s/tree/big", workdir);
  size_t len;
  unsigned char *want = slurp (path, &len);
  ck_assert_ptr_nonnull (want);
  const struct berth_layerindex_entry *e = berth_layerindex_lookup (idx, "big");
  ck_assert_ptr_nonnull (e);
  uint64_t starts[4096], ends[4096];
  size_t n = 0;
  for (uint64_t at = 0; at < e->size; n++)
    {
      ck_assert_uint_lt (n, 4096);
      ck_ok (berth_layerindex_span (idx, e, at + (n % 3) * 7 % (n + 1), &starts[n], &ends[n], err));
      ck_assert_uint_eq (starts[n], at);
      ck_assert_uint_gt (ends[n], at);
      at = ends[n];
    }
  ck_assert_uint_eq (ends[n - 1], e->size);
  if (many)
    ck_assert_uint_gt (n, 20);
  else
    ck_assert_uint_eq (n, 1);
  berth_layerindex_cursor *c[2];
  ck_ok (berth_layerindex_cursor_new (idx, &c[0], err));
  ck_ok (berth_layerindex_cursor_new (idx, &c[1], err));
  unsigned char *got = malloc (len);
  for (size_t k = n; k-- > 0;)
    {
      size_t r = 0;
      ck_ok (berth_layerindex_cursor_read (c[k % 2], e, starts[k], got + starts[k], (size_t) (ends[k] - starts[k]),
                                           &r, err));
      ck_assert_uint_eq (r, ends[k] - starts[k]);
    }
  ck_assert_msg (memcmp (got, want, len) == 0, "spans read back differ");
  uint64_t s, t;
  ck_fails (berth_layerindex_span (idx, e, e->size, &s, &t, err), BERTH_E_INVALID, "no data");
  ck_fails (berth_layerindex_span (idx, berth_layerindex_lookup (idx, "d"), 0, &s, &t, err), BERTH_E_INVALID,
            "no data");
  berth_layerindex_cursor_free (c[0]);
  berth_layerindex_cursor_free (c[1]);
  free (got);
  free (want);
}

START_TEST (test_spans_tile_a_file_and_decode_alone)
{
  setup_layer ();
  struct blob gz = gzip_blob (&tar_blob, 5), one = zstd_blob (&tar_blob, tar_blob.n);
  berth_layerindex *idx = build (&gz, BERTH_LAYERINDEX_GZIP, 65536);
  check_spans (idx, true);
  berth_layerindex_free (idx);
  idx = build (&one, BERTH_LAYERINDEX_ZSTD, 0);
  check_spans (idx, false);
  berth_layerindex_free (idx);
  idx = build (&tar_blob, BERTH_LAYERINDEX_NONE, 0);
  check_spans (idx, false);
  berth_layerindex_free (idx);
  free (gz.p);
  free (one.p);
}
END_TEST

/* Truncate the tar at `cut` and put a header of our own there. */
static struct blob
tar_with_entry (const char *name, char type, size_t size)
{
  struct blob b = { calloc (1, 512 * 4 + size), 512 * 3 + (size + 511) / 512 * 512 };
  unsigned char *h = b.p;
  snprintf ((char *) h, 100, "%s", name);
  memcpy (h + 100, "0000644", 8);
  memcpy (h + 108, "0000000", 8);
  memcpy (h + 116, "0000000", 8);
  snprintf ((char *) h + 124, 12, "%011o", (unsigned) (size & 07777777777));
  memcpy (h + 136, "14000000000", 12);
  h[156] = (unsigned char) type;
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  memset (h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++)
    sum += h[i];
  snprintf ((char *) h + 148, 8, "%06o", sum);
  return b;
}

START_TEST (test_hostile_layers_are_refused_naming_the_entry)
{
  setup_layer ();
  berth_layerindex *idx = NULL;
  struct blob b = tar_with_entry ("a/../../etc/passwd", '0', 10);
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &b, b.n, NULL, BERTH_LAYERINDEX_NONE, NULL, &idx, err),
            BERTH_E_INVALID, "`a/../../etc/passwd`: path has a `..` component");
  free (b.p);
  b = tar_with_entry ("x", '1', 0); /* hard link to nothing */
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &b, b.n, NULL, BERTH_LAYERINDEX_NONE, NULL, &idx, err),
            BERTH_E_INVALID, "entry `x`");
  free (b.p);

  struct berth_layerindex_opts o = { .size = sizeof o, .max_entries = 100 };
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &tar_blob, tar_blob.n, NULL, BERTH_LAYERINDEX_NONE, &o, &idx,
                                    err),
            BERTH_E_INVALID, "more than 100 entries (at `d/s2/f");
  o = (struct berth_layerindex_opts) { .size = sizeof o, .max_path = 200 };
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &tar_blob, tar_blob.n, NULL, BERTH_LAYERINDEX_NONE, &o, &idx,
                                    err),
            BERTH_E_INVALID, "path longer than 200 bytes");
  o = (struct berth_layerindex_opts) { .size = sizeof o, .max_total_size = 4 << 20 };
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &tar_blob, tar_blob.n, NULL, BERTH_LAYERINDEX_NONE, &o, &idx,
                                    err),
            BERTH_E_INVALID, "`big`: size");

  struct blob gz = gzip_blob (&tar_blob, 1);
  gz.p[gz.n / 2] ^= 0xff;
  berth_error *e = berth_error_new ();
  int r = berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, NULL, BERTH_LAYERINDEX_GZIP, NULL, &idx, e);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  berth_error_free (e);
  gz.p[gz.n / 2] ^= 0xff;
  gz.n -= 100;
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, NULL, BERTH_LAYERINDEX_GZIP, NULL, &idx, err),
            BERTH_E_INVALID, "truncated");
  ck_fails (berth_layerindex_build (&check_sdk_host, mem_read_at, &gz, gz.n, "application/x-rar", 0, NULL, &idx, err),
            BERTH_E_NOTSUP, "application/x-rar");
  ck_assert_ptr_null (idx);
  free (gz.p);
}
END_TEST

START_TEST (test_media_types_map_to_compressions)
{
  ck_assert_int_eq (berth_layerindex_compression_of ("application/vnd.oci.image.layer.v1.tar"), BERTH_LAYERINDEX_NONE);
  ck_assert_int_eq (berth_layerindex_compression_of ("application/vnd.docker.image.rootfs.diff.tar.gzip"),
                    BERTH_LAYERINDEX_GZIP);
  ck_assert_int_eq (berth_layerindex_compression_of ("application/vnd.oci.image.layer.v1.tar+zstd"),
                    BERTH_LAYERINDEX_ZSTD);
  ck_assert_int_eq (berth_layerindex_compression_of ("text/plain"), BERTH_LAYERINDEX_UNKNOWN);
  ck_assert_int_eq (berth_layerindex_compression_of (NULL), BERTH_LAYERINDEX_UNKNOWN);
}
END_TEST

static Suite *
layerindex_suite (void)
{
  Suite *s = suite_create ("layerindex");
  TCase *tc = tcase_create ("layerindex");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_plain_tar_reads_in_place);
  tcase_add_test (tc, test_gzip_reads_from_checkpoints);
  tcase_add_test (tc, test_gzip_with_many_members);
  tcase_add_test (tc, test_zstd_reads_from_frame_starts);
  tcase_add_test (tc, test_index_file_round_trips);
  tcase_add_test (tc, test_diff_id_is_the_hash_of_the_uncompressed_tar);
  tcase_add_test (tc, test_spans_tile_a_file_and_decode_alone);
  tcase_add_test (tc, test_hostile_layers_are_refused_naming_the_entry);
  tcase_add_test (tc, test_media_types_map_to_compressions);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  if (system ("python3 -c 'import tarfile' >/dev/null 2>&1") != 0)
    {
      printf ("SKIP: python3 is needed to make the test layers\n");
      return 77;
    }
  if (mkdtemp (workdir) == NULL)
    return EXIT_FAILURE;
  SRunner *sr = srunner_create (layerindex_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  char cmd[600];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", workdir);
  if (system (cmd) != 0)
    failed++;
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
