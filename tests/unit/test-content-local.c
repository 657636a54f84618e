/* Tests for plugins/stores/local (io.berth.content.v1.local).
 *
 * The store is registered through the registry exactly as berthd does it
 * (registry_add_builtin with its entry point, registry_init_all) and called
 * only through the core wrappers of core/plugin-calls.h, so these tests also
 * prove the ABI path: descriptor checks, zero-padded ops copy, host-owned
 * error records.
 *
 * Every test works in its own directory under a work directory that main()
 * creates and removes.  The disk-full test mounts a small tmpfs when run as
 * root (and says SKIP with the reason otherwise); main() unmounts it even if
 * the test failed.
 */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cleanup.h"
#include "error.h"
#include "host-objects.h"
#include "plugin-calls.h"
#include "registry.h"

extern const struct berth_plugin_desc *const *berth_content_local_entry (void);

#define PLUGIN_NAME "io.berth.content.v1.local"

#define ck_assert_contains(haystack, needle)                                                       \
  do                                                                                               \
    {                                                                                              \
      const char *h_ = (haystack);                                                                 \
      ck_assert_msg (h_ != NULL && strstr (h_, (needle)) != NULL, "`%s` does not contain `%s`",    \
                     h_ ? h_ : "(null)", (needle));                                                \
    }                                                                                              \
  while (0)

/* Assert a call returned 0, showing the error otherwise. */
#define ck_ok(call)                                                                                \
  do                                                                                               \
    {                                                                                              \
      _cleanup_error_ berth_error *e_ = NULL;                                                      \
      berth_error **err = &e_;                                                                     \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == 0, "%s = %d: %s", #call, r_, berth_error_message (e_));                 \
    }                                                                                              \
  while (0)

/* ---- log capture --------------------------------------------------------- */

static char *lines[256];
static size_t nlines;

static void
capture_log (void *data, int level, const plugin *p, const char *msg)
{
  (void) data;
  (void) p;
  if (nlines < sizeof lines / sizeof lines[0])
    lines[nlines++] = strdup (msg);
  fprintf (stderr, "  log %d %s\n", level, msg);
}

static void
clear_lines (void)
{
  for (size_t i = 0; i < nlines; i++)
    free (lines[i]);
  nlines = 0;
}

static size_t
count_lines (const char *needle)
{
  size_t n = 0;
  for (size_t i = 0; i < nlines; i++)
    n += strstr (lines[i], needle) != NULL;
  return n;
}

/* ---- directories ----------------------------------------------------------- */

static char workdir[64];

static char *
make_tmpdir (void)
{
  char *dir = NULL;
  ck_assert_int_ge (asprintf (&dir, "%s/t.XXXXXX", workdir), 0);
  ck_assert_ptr_nonnull (mkdtemp (dir));
  return dir;
}

static char *
join (const char *fmt, ...)
{
  va_list ap;
  char *p = NULL;
  va_start (ap, fmt);
  ck_assert_int_ge (vasprintf (&p, fmt, ap), 0);
  va_end (ap);
  return p;
}

static size_t
count_entries (const char *dir)
{
  DIR *d = opendir (dir);
  if (d == NULL)
    return 0;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    n += strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0;
  closedir (d);
  return n;
}

/* ---- the store through the registry --------------------------------------- */

static int64_t cfg_max_age = -1; /* -1: the declared default */

static int
cfg_answer (void *data, const plugin *p, const char *key, struct berth_cfg_value *ret)
{
  (void) data;
  (void) p;
  if (strcmp (key, "ingest_max_age") == 0)
    {
      ret->type = BERTH_CFG_INT;
      ret->i = cfg_max_age < 0 ? 86400 : cfg_max_age;
      ret->is_default = cfg_max_age < 0;
      return 0;
    }
  return BERTH_E_NOTFOUND;
}

struct store
{
  registry *reg;
  plugin *p;
  char *top;   /* daemon root */
  char *state;
  char *root;  /* the plugin's root */
  berth_ctx ctx;
};

static void
store_open_at (struct store *s, const char *top)
{
  s->top = strdup (top);
  s->state = join ("%s.state", top);
  s->root = join ("%s/" PLUGIN_NAME, top);
  struct plugin_registry_options o = {
    .root = s->top, .state = s->state, .log = capture_log, .cfg = cfg_max_age >= 0 ? cfg_answer : NULL,
  };
  s->reg = registry_new (&o);
  ck_assert_ptr_nonnull (s->reg);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_add_builtin (s->reg, berth_content_local_entry, &err);
  ck_assert_msg (r == 0, "registry_add_builtin: %s", berth_error_message (err));
  r = registry_init_all (s->reg, &err);
  ck_assert_msg (r == 0, "registry_init_all: %s", berth_error_message (err));
  s->p = registry_find (s->reg, "io.berth.content.v1", "local");
  ck_assert_ptr_nonnull (s->p);
  ck_assert_msg (s->p->status == PLUGIN_OK, "plugin status %s: %s", plugin_status_name (s->p->status),
                 s->p->error ? s->p->error : "");
  ctx_init (&s->ctx, "default", NULL);
}

static void
store_open (struct store *s)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *top = join ("%s/root", dir);
  store_open_at (s, top);
}

/* Shut the registry down (fini) but keep the directories, as a daemon restart. */
static void
store_close (struct store *s)
{
  registry_free (s->reg);
  s->reg = NULL;
  s->p = NULL;
}

static void
store_reopen (struct store *s)
{
  _cleanup_free_ char *top = strdup (s->top);
  store_close (s);
  free (s->top);
  free (s->state);
  free (s->root);
  store_open_at (s, top);
}

static void
store_free (struct store *s)
{
  if (s->reg)
    store_close (s);
  free (s->top);
  free (s->state);
  free (s->root);
}

static void
digest_of (const char *alg, const void *data, size_t len, char *out, size_t outlen)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  ck_assert (EVP_Digest (data, len, md, &n, strcmp (alg, "sha512") == 0 ? EVP_sha512 () : EVP_sha256 (), NULL));
  size_t o = (size_t) snprintf (out, outlen, "%s:", alg);
  for (unsigned i = 0; i < n; i++)
    o += (size_t) snprintf (out + o, outlen - o, "%02x", md[i]);
}

static void
sha256 (const void *data, size_t len, char *out)
{
  digest_of ("sha256", data, len, out, BERTH_DIGEST_MAX);
}

/* The ingest directory the store uses for ref (sha256 of the ref). */
static char *
ingest_dir (struct store *s, const char *ref)
{
  char d[BERTH_DIGEST_MAX];
  sha256 (ref, strlen (ref), d);
  return join ("%s/ingest/%s", s->root, d + 7);
}

static berth_content_writer *
open_writer (struct store *s, const char *ref, int64_t total, const char *expected)
{
  berth_content_writer *w = NULL;
  ck_ok (content_writer_open (s->p, &s->ctx, ref, total, expected, &w, err));
  ck_assert_ptr_nonnull (w);
  return w;
}

static void
write_bytes (struct store *s, berth_content_writer *w, const void *data, size_t len)
{
  ck_ok (content_writer_write (s->p, w, data, len, err));
}

/* Write data under ref and commit it; returns nothing, fills digest. */
static void
put_blob (struct store *s, const char *ref, const void *data, size_t len, const berth_labels *labels, char *digest)
{
  sha256 (data, len, digest);
  berth_content_writer *w = open_writer (s, ref, (int64_t) len, digest);
  write_bytes (s, w, data, len);
  ck_ok (content_writer_commit (s->p, w, (int64_t) len, digest, labels, err));
  content_writer_close (s->p, w);
}

/* Read a whole blob back through a reader. */
static unsigned char *
read_blob (struct store *s, const char *digest, size_t *ret_len)
{
  berth_content_reader *r = NULL;
  ck_ok (content_reader_open (s->p, &s->ctx, digest, &r, err));
  int64_t size = content_reader_size (s->p, r);
  ck_assert_int_ge (size, 0);
  unsigned char *buf = malloc ((size_t) size + 7); /* the last read may ask for 7 bytes past the end */
  size_t off = 0;
  for (;;)
    {
      size_t n = 0;
      ck_ok (content_reader_read_at (s->p, r, buf + off, 7, (int64_t) off, &n, err)); /* odd chunk size on purpose */
      if (n == 0)
        break;
      off += n;
    }
  content_reader_close (s->p, r);
  ck_assert_uint_eq (off, (size_t) size);
  *ret_len = off;
  return buf;
}

static int
status_of (struct store *s, const char *ref, struct berth_content_status *st, berth_error **err)
{
  memset (st, 0, sizeof *st);
  st->size = sizeof *st;
  return content_status (s->p, &s->ctx, ref, st, err);
}

static const char payload[] = "The quick brown fox jumps over the lazy dog, resumably.";
#define PAYLOAD_LEN (sizeof payload - 1)

/* ---- write, commit, read ------------------------------------------------------ */

START_TEST (test_committed_blob_reads_back_with_its_digest_size_and_times)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  int64_t before = (int64_t) time (NULL) * 1000000000 - 1000000000;

  berth_content_writer *w = open_writer (&s, "blob-1", PAYLOAD_LEN, digest);
  write_bytes (&s, w, payload, 10);
  write_bytes (&s, w, payload + 10, PAYLOAD_LEN - 10);
  struct berth_content_status st = { .size = sizeof st };
  ck_ok (content_writer_status (s.p, w, &st, err));
  ck_assert_str_eq (st.ref, "blob-1");
  ck_assert_int_eq (st.offset, PAYLOAD_LEN);
  ck_assert_int_eq (st.total, PAYLOAD_LEN);
  ck_assert_str_eq (st.expected, digest);
  ck_assert_int_ge (st.started_at, before);
  ck_assert_int_ge (st.updated_at, st.started_at);
  ck_ok (content_writer_commit (s.p, w, PAYLOAD_LEN, digest, NULL, err));
  content_writer_close (s.p, w);

  struct berth_content_info info = { .size = sizeof info };
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  ck_assert_str_eq (info.digest, digest);
  ck_assert_int_eq (info.blob_size, PAYLOAD_LEN);
  ck_assert_int_ge (info.created_at, before);
  ck_assert_int_ge (info.updated_at, info.created_at);

  size_t len;
  _cleanup_free_ unsigned char *back = read_blob (&s, digest, &len);
  ck_assert_uint_eq (len, PAYLOAD_LEN);
  ck_assert_mem_eq (back, payload, PAYLOAD_LEN);

  /* The blob sits where containerd puts it, read-only; the ingest is gone. */
  _cleanup_free_ char *path = join ("%s/blobs/sha256/%s", s.root, digest + 7);
  struct stat sb;
  ck_assert_int_eq (stat (path, &sb), 0);
  ck_assert_int_eq (sb.st_mode & 0777, 0444);
  _cleanup_free_ char *ingest = join ("%s/ingest", s.root);
  ck_assert_uint_eq (count_entries (ingest), 0);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (status_of (&s, "blob-1", &st, &e), BERTH_E_NOTFOUND);
  store_free (&s);
}
END_TEST

START_TEST (test_reader_reads_at_any_offset_and_answers_zero_at_the_end)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  put_blob (&s, "r", payload, PAYLOAD_LEN, NULL, digest);
  berth_content_reader *r = NULL;
  ck_ok (content_reader_open (s.p, &s.ctx, digest, &r, err));
  ck_assert_int_eq (content_reader_size (s.p, r), PAYLOAD_LEN);
  char buf[64];
  size_t n = 0;
  ck_ok (content_reader_read_at (s.p, r, buf, 5, 4, &n, err));
  ck_assert_uint_eq (n, 5);
  ck_assert_mem_eq (buf, "quick", 5);
  ck_ok (content_reader_read_at (s.p, r, buf, sizeof buf, PAYLOAD_LEN - 3, &n, err));
  ck_assert_uint_eq (n, 3);
  ck_ok (content_reader_read_at (s.p, r, buf, sizeof buf, PAYLOAD_LEN, &n, err));
  ck_assert_uint_eq (n, 0);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_reader_read_at (s.p, r, buf, 1, -1, &n, &e), BERTH_E_INVALID);
  content_reader_close (s.p, r);
  store_free (&s);
}
END_TEST

/* ---- resume -------------------------------------------------------------------- */

START_TEST (test_writer_resumes_after_close_at_the_offset_it_reached)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);

  berth_content_writer *w = open_writer (&s, "layer-resume", PAYLOAD_LEN, digest);
  write_bytes (&s, w, payload, 20);
  content_writer_close (s.p, w);

  struct berth_content_status st;
  ck_ok (status_of (&s, "layer-resume", &st, err));
  ck_assert_int_eq (st.offset, 20);
  ck_assert_int_eq (st.total, PAYLOAD_LEN);
  ck_assert_str_eq (st.expected, digest);
  int64_t started = st.started_at;

  /* Reopened without total or expected: both come back from the ingest. */
  w = open_writer (&s, "layer-resume", 0, NULL);
  memset (&st, 0, sizeof st);
  st.size = sizeof st;
  ck_ok (content_writer_status (s.p, w, &st, err));
  ck_assert_int_eq (st.offset, 20);
  ck_assert_int_eq (st.total, PAYLOAD_LEN);
  ck_assert_str_eq (st.expected, digest);
  ck_assert_int_eq (st.started_at, started);
  write_bytes (&s, w, payload + 20, PAYLOAD_LEN - 20);
  /* The running digest covers the 20 bytes written before the close. */
  ck_ok (content_writer_commit (s.p, w, PAYLOAD_LEN, digest, NULL, err));
  content_writer_close (s.p, w);
  size_t len;
  _cleanup_free_ unsigned char *back = read_blob (&s, digest, &len);
  ck_assert_mem_eq (back, payload, PAYLOAD_LEN);
  store_free (&s);
}
END_TEST

START_TEST (test_resume_survives_a_daemon_restart)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  berth_content_writer *w = open_writer (&s, "restart", PAYLOAD_LEN, NULL);
  write_bytes (&s, w, payload, 33);
  content_writer_close (s.p, w);
  store_reopen (&s);
  w = open_writer (&s, "restart", PAYLOAD_LEN, NULL);
  struct berth_content_status st = { .size = sizeof st };
  ck_ok (content_writer_status (s.p, w, &st, err));
  ck_assert_int_eq (st.offset, 33);
  write_bytes (&s, w, payload + 33, PAYLOAD_LEN - 33);
  ck_ok (content_writer_commit (s.p, w, 0, digest, NULL, err));
  content_writer_close (s.p, w);
  store_free (&s);
}
END_TEST

START_TEST (test_reopened_ref_holding_every_byte_commits_without_writing_again)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  berth_content_writer *w = open_writer (&s, "same-bytes", 0, NULL);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  content_writer_close (s.p, w);

  w = open_writer (&s, "same-bytes", 0, NULL);
  struct berth_content_status st = { .size = sizeof st };
  ck_ok (content_writer_status (s.p, w, &st, err));
  ck_assert_int_eq (st.offset, PAYLOAD_LEN);
  ck_ok (content_writer_commit (s.p, w, PAYLOAD_LEN, digest, NULL, err));
  content_writer_close (s.p, w);
  struct berth_content_info info = { .size = sizeof info };
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  store_free (&s);
}
END_TEST

START_TEST (test_truncate_to_zero_restarts_the_ingest_and_its_digest)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  berth_content_writer *w = open_writer (&s, "trunc", 0, NULL);
  write_bytes (&s, w, "garbage from a bad mirror", 25);
  ck_ok (content_writer_truncate (s.p, w, 0, err));
  struct berth_content_status st = { .size = sizeof st };
  ck_ok (content_writer_status (s.p, w, &st, err));
  ck_assert_int_eq (st.offset, 0);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  ck_ok (content_writer_commit (s.p, w, PAYLOAD_LEN, digest, NULL, err));
  content_writer_close (s.p, w);

  /* A partial truncate keeps the prefix and its hash. */
  char d2[BERTH_DIGEST_MAX];
  sha256 (payload, 9, d2);
  w = open_writer (&s, "trunc-9", 0, NULL);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  ck_ok (content_writer_truncate (s.p, w, 9, err));
  ck_ok (content_writer_commit (s.p, w, 9, d2, NULL, err));
  content_writer_close (s.p, w);

  w = open_writer (&s, "trunc-bad", 0, NULL);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_writer_truncate (s.p, w, 1, &e), BERTH_E_INVALID);
  content_writer_close (s.p, w);
  store_free (&s);
}
END_TEST

/* ---- commit verification ------------------------------------------------------ */

START_TEST (test_digest_mismatch_commits_nothing_and_keeps_the_ingest)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX], wrong[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  sha256 ("something else", 14, wrong);

  berth_content_writer *w = open_writer (&s, "mismatch", 0, NULL);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_writer_commit (s.p, w, PAYLOAD_LEN, wrong, NULL, &e), BERTH_E_PRECONDITION);
  _cleanup_free_ char *want = join ("unexpected commit digest %s, expected %s", digest, wrong);
  ck_assert_contains (berth_error_message (e), want);
  ck_assert_contains (berth_error_message (e), PLUGIN_NAME " writer_commit");

  _cleanup_error_ berth_error *e2 = NULL;
  struct berth_content_info info = { .size = sizeof info };
  ck_assert_int_eq (content_info (s.p, &s.ctx, digest, &info, &e2), BERTH_E_NOTFOUND);
  ck_assert_int_eq (content_info (s.p, &s.ctx, wrong, &info, &e2), BERTH_E_NOTFOUND);
  _cleanup_free_ char *blobs = join ("%s/blobs/sha256", s.root);
  ck_assert_uint_eq (count_entries (blobs), 0);
  struct berth_content_status st;
  ck_ok (status_of (&s, "mismatch", &st, err));
  ck_assert_int_eq (st.offset, PAYLOAD_LEN);

  /* The same writer can still commit with the right digest. */
  ck_ok (content_writer_commit (s.p, w, PAYLOAD_LEN, digest, NULL, err));
  content_writer_close (s.p, w);
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  store_free (&s);
}
END_TEST

START_TEST (test_expected_digest_given_at_open_is_checked_at_commit)
{
  struct store s = { 0 };
  store_open (&s);
  char wrong[BERTH_DIGEST_MAX];
  sha256 ("other", 5, wrong);
  berth_content_writer *w = open_writer (&s, "open-expected", 0, wrong);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_writer_commit (s.p, w, 0, NULL, NULL, &e), BERTH_E_PRECONDITION);
  ck_assert_contains (berth_error_message (e), "unexpected commit digest");
  content_writer_close (s.p, w);
  /* Reopening with another expected digest than the ingest's is refused. */
  char other[BERTH_DIGEST_MAX];
  sha256 ("x", 1, other);
  berth_content_writer *w2 = NULL;
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (content_writer_open (s.p, &s.ctx, "open-expected", 0, other, &w2, &e2), BERTH_E_PRECONDITION);
  store_free (&s);
}
END_TEST

START_TEST (test_size_mismatch_is_a_failed_precondition_and_commits_nothing)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  berth_content_writer *w = open_writer (&s, "size", 0, NULL);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_writer_commit (s.p, w, PAYLOAD_LEN + 1, digest, NULL, &e), BERTH_E_PRECONDITION);
  _cleanup_free_ char *want = join ("unexpected commit size %zu, expected %zu", PAYLOAD_LEN, PAYLOAD_LEN + 1);
  ck_assert_contains (berth_error_message (e), want);
  struct berth_content_info info = { .size = sizeof info };
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (content_info (s.p, &s.ctx, digest, &info, &e2), BERTH_E_NOTFOUND);
  struct berth_content_status st;
  ck_ok (status_of (&s, "size", &st, err));
  ck_assert_int_eq (st.offset, PAYLOAD_LEN);
  content_writer_close (s.p, w);
  store_free (&s);
}
END_TEST

START_TEST (test_commit_of_an_existing_blob_is_already_exists_and_drops_the_ingest)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  put_blob (&s, "first", payload, PAYLOAD_LEN, NULL, digest);

  berth_content_writer *w = open_writer (&s, "second", 0, NULL);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_writer_commit (s.p, w, PAYLOAD_LEN, digest, NULL, &e), BERTH_E_EXISTS);
  ck_assert_contains (berth_error_message (e), "already exists");
  content_writer_close (s.p, w);
  struct berth_content_status st;
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (status_of (&s, "second", &st, &e2), BERTH_E_NOTFOUND);

  /* Opening a writer for a digest that is already there says so at once. */
  berth_content_writer *w3 = NULL;
  _cleanup_error_ berth_error *e3 = NULL;
  ck_assert_int_eq (content_writer_open (s.p, &s.ctx, "third", PAYLOAD_LEN, digest, &w3, &e3), BERTH_E_EXISTS);
  ck_assert_ptr_null (w3);
  store_free (&s);
}
END_TEST

START_TEST (test_a_committed_writer_refuses_more_bytes)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  berth_content_writer *w = open_writer (&s, "done", 0, NULL);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  ck_ok (content_writer_commit (s.p, w, 0, NULL, NULL, err));
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_writer_write (s.p, w, "x", 1, &e), BERTH_E_PRECONDITION);
  content_writer_close (s.p, w);
  /* Without an expected digest, the blob lands under its sha256. */
  struct berth_content_info info = { .size = sizeof info };
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  store_free (&s);
}
END_TEST

/* ---- locks, abort, statuses ------------------------------------------------------- */

START_TEST (test_second_writer_of_a_ref_is_unavailable_until_the_first_closes)
{
  struct store s = { 0 };
  store_open (&s);
  berth_content_writer *w = open_writer (&s, "busy", 0, NULL);
  berth_content_writer *w2 = NULL;
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_writer_open (s.p, &s.ctx, "busy", 0, NULL, &w2, &e), BERTH_E_UNAVAILABLE);
  ck_assert_contains (berth_error_message (e), "ref busy locked");
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (content_abort (s.p, &s.ctx, "busy", &e2), BERTH_E_UNAVAILABLE);
  /* Another ref is independent. */
  berth_content_writer *other = open_writer (&s, "other", 0, NULL);
  content_writer_close (s.p, other);
  content_writer_close (s.p, w);
  w = open_writer (&s, "busy", 0, NULL);
  content_writer_close (s.p, w);
  store_free (&s);
}
END_TEST

START_TEST (test_abort_removes_the_ingest_and_a_new_writer_starts_at_zero)
{
  struct store s = { 0 };
  store_open (&s);
  berth_content_writer *w = open_writer (&s, "abort-me", 0, NULL);
  write_bytes (&s, w, payload, 10);
  content_writer_close (s.p, w);
  ck_ok (content_abort (s.p, &s.ctx, "abort-me", err));
  struct berth_content_status st;
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (status_of (&s, "abort-me", &st, &e), BERTH_E_NOTFOUND);
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (content_abort (s.p, &s.ctx, "abort-me", &e2), BERTH_E_NOTFOUND);
  ck_assert_contains (berth_error_message (e2), "abort-me");
  w = open_writer (&s, "abort-me", 0, NULL);
  st.size = sizeof st;
  ck_ok (content_writer_status (s.p, w, &st, err));
  ck_assert_int_eq (st.offset, 0);
  content_writer_close (s.p, w);
  store_free (&s);
}
END_TEST

struct collected
{
  char refs[8][BERTH_NAME_MAX];
  int64_t offsets[8];
  char digests[8][BERTH_DIGEST_MAX];
  size_t n;
};

static int
collect_status (const struct berth_content_status *st, void *data)
{
  struct collected *c = data;
  ck_assert_uint_lt (c->n, 8);
  snprintf (c->refs[c->n], sizeof c->refs[c->n], "%s", st->ref);
  c->offsets[c->n++] = st->offset;
  return 0;
}

static int64_t
offset_of (const struct collected *c, const char *ref)
{
  for (size_t i = 0; i < c->n; i++)
    if (strcmp (c->refs[i], ref) == 0)
      return c->offsets[i];
  return -1;
}

static size_t
list (struct store *s, const char *filter, struct collected *c)
{
  memset (c, 0, sizeof *c);
  const char *filters[] = { filter, NULL };
  ck_ok (content_list_statuses (s->p, &s->ctx, filter ? filters : NULL, collect_status, c, err));
  return c->n;
}

START_TEST (test_list_statuses_shows_every_ingest_and_filters_by_ref)
{
  struct store s = { 0 };
  store_open (&s);
  const char *refs[] = { "layer-a", "layer-b", "manifest-c" };
  for (size_t i = 0; i < 3; i++)
    {
      berth_content_writer *w = open_writer (&s, refs[i], 100, NULL);
      write_bytes (&s, w, payload, i + 1);
      if (i != 1)
        content_writer_close (s.p, w);
      else
        {
          /* An open writer's bytes are visible too. */
          struct collected c;
          ck_assert_uint_eq (list (&s, "ref==layer-b", &c), 1);
          ck_assert_int_eq (c.offsets[0], 2);
          content_writer_close (s.p, w);
        }
    }
  struct collected c;
  ck_assert_uint_eq (list (&s, NULL, &c), 3);
  ck_assert_int_eq (offset_of (&c, "layer-a"), 1);
  ck_assert_int_eq (offset_of (&c, "layer-b"), 2);
  ck_assert_int_eq (offset_of (&c, "manifest-c"), 3);
  ck_assert_uint_eq (list (&s, "ref~=^layer-", &c), 2);
  ck_assert_int_eq (offset_of (&c, "manifest-c"), -1);
  ck_assert_uint_eq (list (&s, "ref!=layer-a", &c), 2);
  ck_assert_uint_eq (list (&s, "ref==nothing", &c), 0);

  const char *bad[] = { "ref==", NULL };
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_list_statuses (s.p, &s.ctx, bad, collect_status, &c, &e), BERTH_E_INVALID);
  store_free (&s);
}
END_TEST

/* ---- walk, labels, delete ------------------------------------------------------------ */

static int
collect_info (const struct berth_content_info *info, void *data)
{
  struct collected *c = data;
  ck_assert_uint_lt (c->n, 8);
  snprintf (c->digests[c->n], sizeof c->digests[c->n], "%s", info->digest);
  c->offsets[c->n++] = info->blob_size;
  return 0;
}

static size_t
walk (struct store *s, const char *f1, const char *f2, struct collected *c)
{
  memset (c, 0, sizeof *c);
  const char *filters[] = { f1, f2, NULL };
  ck_ok (content_walk (s->p, &s->ctx, f1 ? filters : NULL, collect_info, c, err));
  return c->n;
}

static bool
has_digest (const struct collected *c, const char *d)
{
  for (size_t i = 0; i < c->n; i++)
    if (strcmp (c->digests[i], d) == 0)
      return true;
  return false;
}

START_TEST (test_walk_filters_on_digest_size_and_labels)
{
  struct store s = { 0 };
  store_open (&s);
  berth_labels l1 = { 0 }, l2 = { 0 };
  labels_set (&l1, "kind", "layer");
  labels_set (&l1, "containerd.io/gc.ref.content.0", "sha256:abc");
  labels_set (&l2, "kind", "config");
  char d1[BERTH_DIGEST_MAX], d2[BERTH_DIGEST_MAX], d3[BERTH_DIGEST_MAX];
  put_blob (&s, "one", "12345", 5, &l1, d1);
  put_blob (&s, "two", "1234567", 7, &l2, d2);
  put_blob (&s, "three", "abcde", 5, NULL, d3);
  labels_clear (&l1);
  labels_clear (&l2);

  struct collected c;
  ck_assert_uint_eq (walk (&s, NULL, NULL, &c), 3);
  ck_assert (has_digest (&c, d1) && has_digest (&c, d2) && has_digest (&c, d3));
  ck_assert_uint_eq (walk (&s, "size==5", NULL, &c), 2);
  ck_assert (has_digest (&c, d1) && has_digest (&c, d3));
  ck_assert_uint_eq (walk (&s, "labels.kind==layer", NULL, &c), 1);
  ck_assert (has_digest (&c, d1));
  ck_assert_uint_eq (walk (&s, "labels.\"containerd.io/gc.ref.content.0\"", NULL, &c), 1);
  ck_assert_uint_eq (walk (&s, "labels.kind", NULL, &c), 2);
  ck_assert_uint_eq (walk (&s, "labels.kind!=layer", NULL, &c), 2); /* config and the unlabelled one */
  ck_assert_uint_eq (walk (&s, "labels.kind~=^(lay|conf)", NULL, &c), 2);
  _cleanup_free_ char *byd = join ("digest==%s", d2);
  ck_assert_uint_eq (walk (&s, byd, NULL, &c), 1);
  ck_assert (has_digest (&c, d2));
  /* Selectors in one filter are ANDed, filters in the list ORed. */
  ck_assert_uint_eq (walk (&s, "size==5,labels.kind==layer", NULL, &c), 1);
  ck_assert_uint_eq (walk (&s, "labels.kind==config", "size==5", &c), 3);
  ck_assert_uint_eq (walk (&s, "size==5,labels.kind==config", NULL, &c), 0);

  const char *bad[] = { "labels.kind==\"unterminated", NULL };
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_walk (s.p, &s.ctx, bad, collect_info, &c, &e), BERTH_E_INVALID);
  store_free (&s);
}
END_TEST

static int
stop_walk (const struct berth_content_info *info, void *data)
{
  (void) info;
  ++*(int *) data;
  return BERTH_E_CANCELLED;
}

START_TEST (test_walk_stops_with_the_code_its_callback_returns)
{
  struct store s = { 0 };
  store_open (&s);
  char d[BERTH_DIGEST_MAX];
  put_blob (&s, "a", "a", 1, NULL, d);
  put_blob (&s, "b", "b", 1, NULL, d);
  int calls = 0;
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_walk (s.p, &s.ctx, NULL, stop_walk, &calls, &e), BERTH_E_CANCELLED);
  ck_assert_int_eq (calls, 1);
  store_free (&s);
}
END_TEST

START_TEST (test_label_updates_follow_fieldpaths_and_survive_a_restart)
{
  struct store s = { 0 };
  store_open (&s);
  berth_labels l = { 0 };
  labels_set (&l, "a", "1");
  labels_set (&l, "keep", "yes");
  char digest[BERTH_DIGEST_MAX];
  put_blob (&s, "labelled", payload, PAYLOAD_LEN, &l, digest);
  labels_clear (&l);

  /* labels.b: set b, leave the others. */
  struct berth_content_info in = { .size = sizeof in };
  snprintf (in.digest, sizeof in.digest, "%s", digest);
  berth_labels inl = { 0 };
  labels_set (&inl, "b", "2");
  in.labels = &inl;
  berth_labels outl = { 0 };
  struct berth_content_info out = { .size = sizeof out, .labels = &outl };
  const char *paths_b[] = { "labels.b", NULL };
  ck_ok (content_update (s.p, &s.ctx, &in, paths_b, &out, err));
  ck_assert_str_eq (labels_get (&outl, "a"), "1");
  ck_assert_str_eq (labels_get (&outl, "b"), "2");
  ck_assert_int_eq (out.blob_size, PAYLOAD_LEN);
  labels_clear (&outl);

  /* labels.a with no "a" in the input: delete it. */
  const char *paths_a[] = { "labels.a", NULL };
  ck_ok (content_update (s.p, &s.ctx, &in, paths_a, NULL, err));

  /* Anything but labels is refused. */
  const char *paths_size[] = { "size", NULL };
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_update (s.p, &s.ctx, &in, paths_size, NULL, &e), BERTH_E_INVALID);

  store_reopen (&s);
  struct berth_content_info info = { .size = sizeof info, .labels = &outl };
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  ck_assert_ptr_null (labels_get (&outl, "a"));
  ck_assert_str_eq (labels_get (&outl, "b"), "2");
  ck_assert_str_eq (labels_get (&outl, "keep"), "yes");
  labels_clear (&outl);

  /* No fieldpaths: replace them all. */
  ck_ok (content_update (s.p, &s.ctx, &in, NULL, NULL, err));
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  ck_assert_uint_eq (outl.n, 1);
  ck_assert_str_eq (labels_get (&outl, "b"), "2");
  labels_clear (&outl);

  /* Updating a blob that is not there. */
  char missing[BERTH_DIGEST_MAX];
  sha256 ("missing", 7, missing);
  snprintf (in.digest, sizeof in.digest, "%s", missing);
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (content_update (s.p, &s.ctx, &in, NULL, NULL, &e2), BERTH_E_NOTFOUND);
  labels_clear (&inl);
  store_free (&s);
}
END_TEST

START_TEST (test_delete_removes_the_blob_and_its_labels)
{
  struct store s = { 0 };
  store_open (&s);
  berth_labels l = { 0 };
  labels_set (&l, "x", "y");
  char digest[BERTH_DIGEST_MAX];
  put_blob (&s, "del", payload, PAYLOAD_LEN, &l, digest);
  labels_clear (&l);
  ck_ok (content_delete (s.p, &s.ctx, digest, err));
  struct berth_content_info info = { .size = sizeof info };
  _cleanup_error_ berth_error *e = NULL, *e2 = NULL, *e3 = NULL;
  ck_assert_int_eq (content_info (s.p, &s.ctx, digest, &info, &e), BERTH_E_NOTFOUND);
  ck_assert_int_eq (content_delete (s.p, &s.ctx, digest, &e2), BERTH_E_NOTFOUND);
  berth_content_reader *r = NULL;
  ck_assert_int_eq (content_reader_open (s.p, &s.ctx, digest, &r, &e3), BERTH_E_NOTFOUND);
  _cleanup_free_ char *labels = join ("%s/labels/sha256", s.root);
  ck_assert_uint_eq (count_entries (labels), 0);
  /* Committed again, it comes back without the old labels. */
  berth_labels outl = { 0 };
  put_blob (&s, "del-again", payload, PAYLOAD_LEN, NULL, digest);
  struct berth_content_info info2 = { .size = sizeof info2, .labels = &outl };
  ck_ok (content_info (s.p, &s.ctx, digest, &info2, err));
  ck_assert_uint_eq (outl.n, 0);
  store_free (&s);
}
END_TEST

START_TEST (test_sha512_digests_are_accepted_and_other_algorithms_refused)
{
  struct store s = { 0 };
  store_open (&s);
  char d512[BERTH_DIGEST_MAX];
  digest_of ("sha512", payload, PAYLOAD_LEN, d512, sizeof d512);
  berth_content_writer *w = open_writer (&s, "five-twelve", PAYLOAD_LEN, d512);
  write_bytes (&s, w, payload, PAYLOAD_LEN);
  ck_ok (content_writer_commit (s.p, w, PAYLOAD_LEN, d512, NULL, err));
  content_writer_close (s.p, w);
  struct berth_content_info info = { .size = sizeof info };
  ck_ok (content_info (s.p, &s.ctx, d512, &info, err));
  ck_assert_str_eq (info.digest, d512);
  struct collected c;
  ck_assert_uint_eq (walk (&s, NULL, NULL, &c), 1);

  /* A sha256 writer can still be checked against a sha512 digest at commit. */
  char d512b[BERTH_DIGEST_MAX];
  digest_of ("sha512", "abc", 3, d512b, sizeof d512b);
  w = open_writer (&s, "late-512", 0, NULL);
  write_bytes (&s, w, "abc", 3);
  ck_ok (content_writer_commit (s.p, w, 3, d512b, NULL, err));
  content_writer_close (s.p, w);

  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_info (s.p, &s.ctx, "sha384:0123", &info, &e), BERTH_E_INVALID);
  ck_assert_contains (berth_error_message (e), "sha384");
  store_free (&s);
}
END_TEST

/* ---- hostile input ---------------------------------------------------------------------- */

START_TEST (test_refs_with_slashes_and_dots_stay_inside_the_ingest_directory)
{
  struct store s = { 0 };
  store_open (&s);
  const char *refs[] = { "../../../../evil", "/etc/passwd", "a/../../b", "..", ".", "x\ny" };
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
    {
      berth_content_writer *w = open_writer (&s, refs[i], 0, NULL);
      write_bytes (&s, w, "data", 4);
      content_writer_close (s.p, w);
      struct berth_content_status st;
      ck_ok (status_of (&s, refs[i], &st, err));
      ck_assert_str_eq (st.ref, refs[i]);
    }
  /* Nothing but hashed directories in ingest/, nothing next to the root. */
  _cleanup_free_ char *ingest = join ("%s/ingest", s.root);
  DIR *d = opendir (ingest);
  ck_assert_ptr_nonnull (d);
  struct dirent *e;
  size_t n = 0;
  while ((e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      ck_assert_uint_eq (strlen (e->d_name), 64);
      ck_assert_uint_eq (strspn (e->d_name, "0123456789abcdef"), 64);
      n++;
    }
  closedir (d);
  ck_assert_uint_eq (n, sizeof refs / sizeof refs[0]);
  _cleanup_free_ char *evil = join ("%s/../evil", s.top);
  ck_assert_int_ne (access (evil, F_OK), 0);
  ck_assert_uint_eq (count_entries (s.top), 1); /* only the plugin's own root */

  struct collected c;
  ck_assert_uint_eq (list (&s, "ref==\"../../../../evil\"", &c), 1);
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
    ck_ok (content_abort (s.p, &s.ctx, refs[i], err));

  /* Empty and oversized refs are invalid. */
  berth_content_writer *w = NULL;
  _cleanup_error_ berth_error *e1 = NULL, *e2 = NULL;
  ck_assert_int_eq (content_writer_open (s.p, &s.ctx, "", 0, NULL, &w, &e1), BERTH_E_INVALID);
  char big[BERTH_NAME_MAX + 10];
  memset (big, 'r', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ck_assert_int_eq (content_writer_open (s.p, &s.ctx, big, 0, NULL, &w, &e2), BERTH_E_INVALID);
  store_free (&s);
}
END_TEST

START_TEST (test_malformed_digests_are_refused_before_touching_a_path)
{
  struct store s = { 0 };
  store_open (&s);
  char good[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, good);
  char upper[BERTH_DIGEST_MAX];
  snprintf (upper, sizeof upper, "%s", good);
  for (char *c = upper + 7; *c; c++)
    if (*c >= 'a' && *c <= 'f')
      *c = (char) (*c - 'a' + 'A');
  const char *bad[] = {
    "sha256:../../../../etc/passwd",
    "sha256:0123",
    upper,
    "sha256:" "../../../../../../../../../../../../../../../../../../../../etc/pw",
    "nocolon",
    "",
    "md5:d41d8cd98f00b204e9800998ecf8427e",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      struct berth_content_info info = { .size = sizeof info };
      _cleanup_error_ berth_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;
      ck_assert_int_eq (content_info (s.p, &s.ctx, bad[i], &info, &e1), BERTH_E_INVALID);
      ck_assert_int_eq (content_delete (s.p, &s.ctx, bad[i], &e2), BERTH_E_INVALID);
      berth_content_reader *r = NULL;
      ck_assert_int_eq (content_reader_open (s.p, &s.ctx, bad[i], &r, &e3), BERTH_E_INVALID);
      berth_content_writer *w = NULL;
      if (*bad[i])
        ck_assert_int_eq (content_writer_open (s.p, &s.ctx, "ref", 0, bad[i], &w, &e4), BERTH_E_INVALID);
    }
  _cleanup_error_ berth_error *e = NULL;
  struct berth_content_info info = { .size = sizeof info };
  ck_assert_int_eq (content_info (s.p, &s.ctx, "md5:d41d8cd98f00b204e9800998ecf8427e", &info, &e), BERTH_E_INVALID);
  ck_assert_contains (berth_error_message (e), "unsupported digest algorithm md5");
  store_free (&s);
}
END_TEST

/* ---- start-up cleanup, config, exports ----------------------------------------------------- */

static void
age_ingest (struct store *s, const char *ref, int64_t seconds)
{
  _cleanup_free_ char *dir = ingest_dir (s, ref);
  _cleanup_free_ char *upd = join ("%s/updatedat", dir);
  _cleanup_free_ char *data = join ("%s/data", dir);
  int64_t t = ((int64_t) time (NULL) - seconds);
  FILE *f = fopen (upd, "w");
  ck_assert_ptr_nonnull (f);
  fprintf (f, "%" PRId64 "\n", t * 1000000000);
  fclose (f);
  struct timespec ts[2] = { { .tv_sec = t }, { .tv_sec = t } };
  ck_assert_int_eq (utimensat (AT_FDCWD, data, ts, 0), 0);
}

START_TEST (test_stale_ingests_are_removed_at_start_up_with_a_log_line_each)
{
  struct store s = { 0 };
  store_open (&s);
  berth_content_writer *w = open_writer (&s, "old-upload", 0, NULL);
  write_bytes (&s, w, payload, 5);
  content_writer_close (s.p, w);
  w = open_writer (&s, "fresh-upload", 0, NULL);
  write_bytes (&s, w, payload, 6);
  content_writer_close (s.p, w);
  store_close (&s);
  age_ingest (&s, "old-upload", 2 * 86400);

  clear_lines ();
  store_reopen (&s);
  struct berth_content_status st;
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (status_of (&s, "old-upload", &st, &e), BERTH_E_NOTFOUND);
  ck_ok (status_of (&s, "fresh-upload", &st, err));
  ck_assert_int_eq (st.offset, 6);
  ck_assert_uint_eq (count_lines ("removed stale ingest"), 1);
  ck_assert_uint_eq (count_lines ("ref old-upload"), 1);
  store_free (&s);
}
END_TEST

START_TEST (test_ingest_max_age_comes_from_the_config_and_zero_keeps_everything)
{
  struct store s = { 0 };
  cfg_max_age = 0;
  store_open (&s);
  berth_content_writer *w = open_writer (&s, "ancient", 0, NULL);
  write_bytes (&s, w, payload, 5);
  content_writer_close (s.p, w);
  store_close (&s);
  age_ingest (&s, "ancient", 365 * 86400);
  store_reopen (&s);
  struct berth_content_status st;
  ck_ok (status_of (&s, "ancient", &st, err));

  /* One hour: the year-old ingest goes. */
  cfg_max_age = 3600;
  store_reopen (&s);
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (status_of (&s, "ancient", &st, &e), BERTH_E_NOTFOUND);
  store_free (&s);
  cfg_max_age = -1;
}
END_TEST

START_TEST (test_plugin_exports_its_root_and_declares_its_config_key)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *want = join ("root=%s", s.root);
  bool found = false;
  for (char **e = s.p->exports; e && *e; e++)
    found |= strcmp (*e, want) == 0;
  ck_assert_msg (found, "no export %s", want);
  bool cap = false;
  for (char **c = s.p->capabilities; c && *c; c++)
    cap |= strcmp (*c, "resumable-ingest") == 0;
  ck_assert (cap);
  const struct berth_config_key *const *k = s.p->desc.config_keys;
  ck_assert_ptr_nonnull (k);
  ck_assert_str_eq (k[0]->name, "ingest_max_age");
  ck_assert_str_eq (k[0]->default_value, "86400");
  store_free (&s);
}
END_TEST

/* ---- adopt (ABI 1.3) -------------------------------------------------------------------------- */

/* A file of len bytes (a pattern of seed) at path; its sha256 into digest. */
static void
make_file (const char *path, size_t len, unsigned seed, char *digest)
{
  unsigned char *data = malloc (len ? len : 1);
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char) (i * seed + (i >> 13));
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (write (fd, data, len), (ssize_t) len);
  ck_assert_int_eq (close (fd), 0);
  if (digest)
    sha256 (data, len, digest);
  free (data);
}

static int
open_ro (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge (fd, 0);
  return fd;
}

static bool
files_equal (const char *a, const char *b)
{
  _cleanup_free_ char *cmd = join ("cmp -s '%s' '%s'", a, b);
  return system (cmd) == 0;
}

/* Files of adopt left in ingest/ (temporary names). */
static size_t
adopt_leftovers (struct store *s)
{
  _cleanup_free_ char *dir = join ("%s/ingest", s->root);
  DIR *d = opendir (dir);
  ck_assert_ptr_nonnull (d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    n += strncmp (e->d_name, "adopt-", 6) == 0;
  closedir (d);
  return n;
}

static char *
blob_file (struct store *s, const char *digest)
{
  const char *colon = strchr (digest, ':');
  return join ("%s/blobs/%.*s/%s", s->root, (int) (colon - digest), digest, colon + 1);
}

START_TEST (test_adopt_files_a_verified_file_as_a_read_only_link_of_the_same_inode)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/cache", dir);
  char digest[BERTH_DIGEST_MAX];
  size_t len = (3 << 20) + 4321; /* several 1 MiB reads, the last one short */
  make_file (src, len, 13, digest);
  int fd = open_ro (src);
  struct stat before;
  ck_assert_int_eq (fstat (fd, &before), 0);

  berth_labels l = { 0 };
  labels_set (&l, "containerd.io/uncompressed", "sha256:1234");
  ck_ok (content_adopt (s.p, &s.ctx, fd, (int64_t) len, digest, &l, err));
  labels_clear (&l);

  _cleanup_free_ char *blob = blob_file (&s, digest);
  struct stat bs;
  ck_assert_int_eq (stat (blob, &bs), 0);
  ck_assert_uint_eq (bs.st_ino, before.st_ino);
  ck_assert_uint_eq (bs.st_dev, before.st_dev);
  ck_assert_uint_eq (bs.st_nlink, 2);
  ck_assert_int_eq (bs.st_mode & 07777, 0444);
  ck_assert (files_equal (src, blob));

  berth_labels outl = { 0 };
  struct berth_content_info info = { .size = sizeof info, .labels = &outl };
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  ck_assert_int_eq (info.blob_size, (int64_t) len);
  ck_assert_str_eq (info.digest, digest);
  ck_assert_str_eq (labels_get (&outl, "containerd.io/uncompressed"), "sha256:1234");
  labels_clear (&outl);
  ck_assert_uint_eq (adopt_leftovers (&s), 0);

  /* The caller drops its own name; the blob stays, readable. */
  close (fd);
  ck_assert_int_eq (unlink (src), 0);
  size_t n = 0;
  _cleanup_free_ unsigned char *back = read_blob (&s, digest, &n);
  ck_assert_uint_eq (n, len);
  ck_assert_uint_eq (back[len - 1], (unsigned char) ((len - 1) * 13 + ((len - 1) >> 13)));
  store_free (&s);
}
END_TEST

START_TEST (test_adopt_with_the_wrong_size_is_invalid_naming_both_sizes)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/cache", dir);
  char digest[BERTH_DIGEST_MAX];
  make_file (src, 1000, 7, digest);
  int fd = open_ro (src);
  _cleanup_error_ berth_error *e = NULL, *e2 = NULL;
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, 999, digest, NULL, &e), BERTH_E_INVALID);
  ck_assert_contains (berth_error_message (e), "1000 bytes");
  ck_assert_contains (berth_error_message (e), "999 bytes");
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, -1, digest, NULL, &e2), BERTH_E_INVALID);
  _cleanup_free_ char *blobs = join ("%s/blobs/sha256", s.root);
  ck_assert_uint_eq (count_entries (blobs), 0);
  ck_assert_uint_eq (adopt_leftovers (&s), 0);
  close (fd);
  store_free (&s);
}
END_TEST

START_TEST (test_adopt_with_the_wrong_digest_stores_nothing_and_leaves_the_file_as_it_was)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/cache", dir);
  char actual[BERTH_DIGEST_MAX], claimed[BERTH_DIGEST_MAX];
  make_file (src, 5000, 7, actual);
  sha256 ("something else", 14, claimed);
  int fd = open_ro (src);
  berth_labels l = { 0 };
  labels_set (&l, "a", "b");
  _cleanup_error_ berth_error *e = NULL;
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, 5000, claimed, &l, &e), BERTH_E_INVALID);
  labels_clear (&l);
  _cleanup_free_ char *want = join ("digest mismatch: the file is %s", actual);
  ck_assert_contains (berth_error_message (e), want);

  _cleanup_free_ char *blobs = join ("%s/blobs/sha256", s.root);
  _cleanup_free_ char *labels = join ("%s/labels/sha256", s.root);
  ck_assert_uint_eq (count_entries (blobs), 0);
  ck_assert_uint_eq (count_entries (labels), 0);
  ck_assert_uint_eq (adopt_leftovers (&s), 0);
  struct stat st;
  ck_assert_int_eq (stat (src, &st), 0);
  ck_assert_int_eq (st.st_mode & 07777, 0644);
  ck_assert_uint_eq (st.st_nlink, 1);
  close (fd);
  store_free (&s);
}
END_TEST

START_TEST (test_adopt_of_a_blob_already_present_is_already_exists)
{
  struct store s = { 0 };
  store_open (&s);
  char digest[BERTH_DIGEST_MAX];
  put_blob (&s, "there", payload, PAYLOAD_LEN, NULL, digest);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/cache", dir);
  int fd = open (src, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ck_assert_int_eq (write (fd, payload, PAYLOAD_LEN), (ssize_t) PAYLOAD_LEN);
  _cleanup_error_ berth_error *e = NULL, *e2 = NULL;
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, PAYLOAD_LEN, digest, NULL, &e), BERTH_E_EXISTS);
  ck_assert_contains (berth_error_message (e), "already exists");
  close (fd);

  /* Twice the same file: the second is EXISTS too. */
  char d2[BERTH_DIGEST_MAX];
  _cleanup_free_ char *src2 = join ("%s/cache2", dir);
  make_file (src2, 70000, 3, d2);
  fd = open_ro (src2);
  ck_ok (content_adopt (s.p, &s.ctx, fd, 70000, d2, NULL, err));
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, 70000, d2, NULL, &e2), BERTH_E_EXISTS);
  ck_assert_uint_eq (adopt_leftovers (&s), 0);
  close (fd);
  store_free (&s);
}
END_TEST

/* The store's directory is on the disk (under /tmp); /dev/shm is a tmpfs. */
START_TEST (test_adopt_of_a_file_on_another_filesystem_copies_it)
{
  struct store s = { 0 };
  store_open (&s);
  struct stat shm, root;
  ck_assert_int_eq (stat (s.root, &root), 0);
  if (stat ("/dev/shm", &shm) < 0 || shm.st_dev == root.st_dev)
    {
      printf ("SKIP test_adopt_of_a_file_on_another_filesystem...: /dev/shm %s\n",
              shm.st_dev == root.st_dev ? "is on the same filesystem as the store" : "is missing");
      store_free (&s);
      return;
    }
  char path[] = "/dev/shm/berth-adopt-test.XXXXXX";
  int wfd = mkstemp (path);
  ck_assert_int_ge (wfd, 0);
  close (wfd);
  char digest[BERTH_DIGEST_MAX];
  size_t len = (2 << 20) + 17;
  make_file (path, len, 11, digest);
  int fd = open_ro (path);
  struct stat src;
  ck_assert_int_eq (fstat (fd, &src), 0);
  berth_error *e = NULL;
  int r = content_adopt (s.p, &s.ctx, fd, (int64_t) len, digest, NULL, &e);
  close (fd);
  _cleanup_free_ char *blob = blob_file (&s, digest);
  struct stat bs;
  bool ok = r == 0 && stat (blob, &bs) == 0 && files_equal (path, blob);
  struct stat after;
  ck_assert_int_eq (stat (path, &after), 0);
  unlink (path);
  ck_assert_msg (r == 0, "adopt: %s", berth_error_message (e));
  berth_error_free (e);
  ck_assert (ok);
  ck_assert_uint_ne (bs.st_dev, src.st_dev);
  ck_assert_int_eq (bs.st_mode & 07777, 0444);
  ck_assert_int_eq (bs.st_size, (off_t) len);
  ck_assert_int_eq (after.st_mode & 07777, src.st_mode & 07777); /* the caller's file is left alone */
  ck_assert_uint_eq (after.st_nlink, 1);
  ck_assert_uint_eq (adopt_leftovers (&s), 0);
  store_free (&s);
}
END_TEST

START_TEST (test_adopt_of_a_file_without_a_name_copies_it)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/gone", dir);
  char digest[BERTH_DIGEST_MAX];
  make_file (src, 123457, 5, digest);
  int fd = open_ro (src);
  ck_assert_int_eq (unlink (src), 0); /* link(2) of it now fails with ENOENT */
  ck_ok (content_adopt (s.p, &s.ctx, fd, 123457, digest, NULL, err));
  close (fd);
  size_t n = 0;
  _cleanup_free_ unsigned char *back = read_blob (&s, digest, &n);
  ck_assert_uint_eq (n, 123457);
  char again[BERTH_DIGEST_MAX];
  sha256 (back, n, again);
  ck_assert_str_eq (again, digest);
  ck_assert_uint_eq (adopt_leftovers (&s), 0);
  store_free (&s);
}
END_TEST

START_TEST (test_adopt_refuses_what_is_not_a_regular_file_and_bad_digests)
{
  struct store s = { 0 };
  store_open (&s);
  int p[2];
  ck_assert_int_eq (pipe (p), 0);
  char digest[BERTH_DIGEST_MAX];
  sha256 ("", 0, digest);
  _cleanup_error_ berth_error *e = NULL, *e2 = NULL, *e3 = NULL;
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, p[0], 0, digest, NULL, &e), BERTH_E_INVALID);
  ck_assert_contains (berth_error_message (e), "not a regular file");
  close (p[0]);
  close (p[1]);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/f", dir);
  make_file (src, 10, 1, NULL);
  int fd = open_ro (src);
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, 10, "sha256:../../etc/passwd", NULL, &e2), BERTH_E_INVALID);
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, 10, "md5:0123", NULL, &e3), BERTH_E_INVALID);
  close (fd);
  store_free (&s);
}
END_TEST

START_TEST (test_adopt_accepts_sha512_digests)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/f", dir);
  make_file (src, 4096, 9, NULL);
  size_t n = 0;
  unsigned char *data = malloc (4096);
  int fd = open_ro (src);
  ck_assert_int_eq (pread (fd, data, 4096, 0), 4096);
  char digest[BERTH_DIGEST_MAX];
  digest_of ("sha512", data, 4096, digest, sizeof digest);
  free (data);
  ck_ok (content_adopt (s.p, &s.ctx, fd, 4096, digest, NULL, err));
  close (fd);
  _cleanup_free_ unsigned char *back = read_blob (&s, digest, &n);
  ck_assert_uint_eq (n, 4096);
  store_free (&s);
}
END_TEST

START_TEST (test_a_temporary_file_of_an_interrupted_adopt_is_removed_at_start_up)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *left = join ("%s/ingest/adopt-sha256-%064d.1.1", s.root, 0);
  make_file (left, 10, 1, NULL);
  berth_content_writer *w = open_writer (&s, "upload", 0, NULL);
  write_bytes (&s, w, payload, 5);
  content_writer_close (s.p, w);
  clear_lines ();
  store_reopen (&s);
  ck_assert_int_eq (access (left, F_OK), -1);
  ck_assert_uint_eq (count_lines ("left by an interrupted adopt"), 1);
  struct berth_content_status st;
  ck_ok (status_of (&s, "upload", &st, err)); /* real ingests are kept */
  ck_assert_int_eq (st.offset, 5);
  store_free (&s);
}
END_TEST

struct adopt_job
{
  struct store *s;
  int fd;
  int64_t size;
  const char *digest;
  int rc;
  berth_error *err;
};

static void *
run_adopt (void *arg)
{
  struct adopt_job *j = arg;
  j->rc = content_adopt (j->s->p, &j->s->ctx, j->fd, j->size, j->digest, NULL, &j->err);
  return NULL;
}

/* A commit of the same digest lands while adopt waits before its rename
 * (failpoint content-adopt-before-rename=sleep): adopt answers EXISTS,
 * removes its temporary name and gives the caller's file its mode back. */
START_TEST (test_adopt_losing_a_race_to_a_commit_is_exists_and_undoes_its_link)
{
  const char *fork_env = getenv ("CK_FORK");
  if (fork_env && strcmp (fork_env, "no") == 0)
    {
      printf ("SKIP test_adopt_losing_a_race...: the failpoint is read once per process (needs CK_FORK)\n");
      return;
    }
  setenv ("BERTH_FAILPOINTS", "content-adopt-before-rename=sleep:1500", 1);
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/cache", dir);
  int fd = open (src, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  ck_assert_int_eq (write (fd, payload, PAYLOAD_LEN), (ssize_t) PAYLOAD_LEN);
  char digest[BERTH_DIGEST_MAX];
  sha256 (payload, PAYLOAD_LEN, digest);
  struct adopt_job j = { .s = &s, .fd = fd, .size = PAYLOAD_LEN, .digest = digest };
  pthread_t t;
  ck_assert_int_eq (pthread_create (&t, NULL, run_adopt, &j), 0);
  for (int i = 0; i < 500 && adopt_leftovers (&s) == 0; i++)
    usleep (10000);
  ck_assert_uint_eq (adopt_leftovers (&s), 1); /* linked and waiting before the rename */
  char d2[BERTH_DIGEST_MAX];
  put_blob (&s, "racer", payload, PAYLOAD_LEN, NULL, d2);
  ck_assert_int_eq (pthread_join (t, NULL), 0);
  unsetenv ("BERTH_FAILPOINTS");
  ck_assert_msg (j.rc == BERTH_E_EXISTS, "adopt = %d: %s", j.rc, berth_error_message (j.err));
  berth_error_free (j.err);
  ck_assert_uint_eq (adopt_leftovers (&s), 0);
  struct stat st;
  ck_assert_int_eq (fstat (fd, &st), 0);
  ck_assert_int_eq (st.st_mode & 07777, 0640);
  ck_assert_uint_eq (st.st_nlink, 1);
  close (fd);
  store_free (&s);
}
END_TEST

/* The core wrapper answers NOTSUP for a store built against 1.2 headers
 * (ops->size ends before adopt) or one that leaves the method NULL. */
START_TEST (test_adopt_is_not_supported_by_a_store_older_than_abi_1_3)
{
  struct store s = { 0 };
  store_open (&s);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *src = join ("%s/f", dir);
  char digest[BERTH_DIGEST_MAX];
  make_file (src, 10, 1, digest);
  int fd = open_ro (src);
  uint32_t size = s.p->ops.content.size;
  s.p->ops.content.size = (uint32_t) offsetof (struct berth_content_ops, adopt);
  _cleanup_error_ berth_error *e = NULL, *e2 = NULL;
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, 10, digest, NULL, &e), BERTH_E_NOTSUP);
  ck_assert_contains (berth_error_message (e), "adopt");
  s.p->ops.content.size = size;
  s.p->ops.content.adopt = NULL;
  ck_assert_int_eq (content_adopt (s.p, &s.ctx, fd, 10, digest, NULL, &e2), BERTH_E_NOTSUP);
  close (fd);
  _cleanup_free_ char *blobs = join ("%s/blobs/sha256", s.root);
  ck_assert_uint_eq (count_entries (blobs), 0);
  store_free (&s);
}
END_TEST

/* ---- disk full -------------------------------------------------------------------------------- */

static char tmpfs_path[128];

START_TEST (test_disk_full_is_exhausted_keeps_the_ingest_and_continues_after_space_is_freed)
{
  if (geteuid () != 0)
    {
      printf ("SKIP test_disk_full...: needs root to mount a small tmpfs\n");
      return;
    }
  ck_assert_int_eq (mkdir (tmpfs_path, 0700), 0);
  if (mount ("tmpfs", tmpfs_path, "tmpfs", 0, "size=1m,mode=0700") < 0)
    {
      printf ("SKIP test_disk_full...: cannot mount tmpfs: %s\n", strerror (errno));
      return;
    }
  struct store s = { 0 };
  _cleanup_free_ char *top = join ("%s/root", tmpfs_path);
  store_open_at (&s, top);

  size_t len = 2 << 20;
  unsigned char *data = malloc (len);
  for (size_t i = 0; i < len; i++)
    data[i] = (unsigned char) (i * 7 + (i >> 12));
  char digest[BERTH_DIGEST_MAX];
  sha256 (data, len, digest);

  berth_content_writer *w = open_writer (&s, "too-big", (int64_t) len, digest);
  size_t off = 0;
  int r = 0;
  _cleanup_error_ berth_error *e = NULL;
  while (off < len && r == 0)
    {
      /* 256 KiB: large enough for the parallel hashing path, whose short
       * write must be re-hashed for the resume below to verify. */
      size_t n = len - off < 262144 ? len - off : 262144;
      r = content_writer_write (s.p, w, data + off, n, &e);
      if (r == 0)
        off += n;
    }
  ck_assert_int_eq (r, BERTH_E_EXHAUSTED);
  ck_assert_contains (berth_error_message (e), "disk full");
  ck_assert_contains (berth_error_message (e), "too-big");
  struct berth_content_status st = { .size = sizeof st };
  ck_ok (content_writer_status (s.p, w, &st, err));
  ck_assert_int_ge (st.offset, (int64_t) off);
  ck_assert_int_lt (st.offset, (int64_t) len);
  int64_t reached = st.offset;
  /* Committing now is a size mismatch; nothing lands in blobs/, and the
   * ingest on disk holds exactly the bytes the writer reports. */
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (content_writer_commit (s.p, w, (int64_t) len, digest, NULL, &e2), BERTH_E_PRECONDITION);
  _cleanup_free_ char *blobs = join ("%s/blobs/sha256", s.root);
  ck_assert_uint_eq (count_entries (blobs), 0);
  struct berth_content_status disk;
  ck_ok (status_of (&s, "too-big", &disk, err));
  ck_assert_int_eq (disk.offset, reached);

  /* Free space and carry on with the same writer from where the disk
   * filled: its running digest must cover exactly the bytes on disk. */
  ck_assert_int_eq (mount ("tmpfs", tmpfs_path, "tmpfs", MS_REMOUNT, "size=8m,mode=0700"), 0);
  write_bytes (&s, w, data + reached, len - (size_t) reached);
  ck_ok (content_writer_commit (s.p, w, (int64_t) len, digest, NULL, err));
  content_writer_close (s.p, w);
  struct berth_content_info info = { .size = sizeof info };
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  ck_assert_int_eq (info.blob_size, (int64_t) len);
  free (data);
  store_free (&s);
  ck_assert_int_eq (umount2 (tmpfs_path, MNT_DETACH), 0);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------------------ */

struct job
{
  struct store *s;
  char ref[32];
  unsigned char *data;
  size_t len;
  char digest[BERTH_DIGEST_MAX];
  int result;
};

static void *
run_job (void *arg)
{
  struct job *j = arg;
  berth_error *e = NULL;
  berth_content_writer *w = NULL;
  j->result = content_writer_open (j->s->p, &j->s->ctx, j->ref, (int64_t) j->len, NULL, &w, &e);
  for (size_t off = 0; j->result == 0 && off < j->len; off += 4096)
    j->result = content_writer_write (j->s->p, w, j->data + off, 4096, &e);
  if (j->result == 0)
    j->result = content_writer_commit (j->s->p, w, (int64_t) j->len, j->digest, NULL, &e);
  if (w)
    content_writer_close (j->s->p, w);
  if (e)
    fprintf (stderr, "  job %s: %s\n", j->ref, berth_error_message (e));
  berth_error_free (e);
  return NULL;
}

START_TEST (test_writers_of_different_refs_run_in_parallel_threads)
{
  struct store s = { 0 };
  store_open (&s);
  enum { N = 8 };
  struct job jobs[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++)
    {
      jobs[i] = (struct job){ .s = &s, .len = 1 << 20 };
      snprintf (jobs[i].ref, sizeof jobs[i].ref, "parallel-%d", i);
      jobs[i].data = malloc (jobs[i].len);
      for (size_t k = 0; k < jobs[i].len; k++)
        jobs[i].data[k] = (unsigned char) (k * (size_t) (i + 3));
      sha256 (jobs[i].data, jobs[i].len, jobs[i].digest);
      ck_assert_int_eq (pthread_create (&t[i], NULL, run_job, &jobs[i]), 0);
    }
  for (int i = 0; i < N; i++)
    {
      pthread_join (t[i], NULL);
      ck_assert_msg (jobs[i].result == 0, "job %d: %d", i, jobs[i].result);
      struct berth_content_info info = { .size = sizeof info };
      ck_ok (content_info (s.p, &s.ctx, jobs[i].digest, &info, err));
      free (jobs[i].data);
    }
  store_free (&s);
}
END_TEST

/* ---- throughput ----------------------------------------------------------------------------------- */

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

START_TEST (test_a_256_mib_blob_is_written_hashed_and_committed)
{
  struct store s = { 0 };
  store_open (&s);
  size_t chunk = 1 << 20, total = (size_t) 256 << 20;
  unsigned char *buf = malloc (chunk);
  for (size_t i = 0; i < chunk; i++)
    buf[i] = (unsigned char) (i ^ (i >> 8));
  /* The expected digest, computed apart from the store. */
  EVP_MD_CTX *md = EVP_MD_CTX_new ();
  EVP_DigestInit_ex (md, EVP_sha256 (), NULL);
  for (size_t off = 0; off < total; off += chunk)
    EVP_DigestUpdate (md, buf, chunk);
  unsigned char raw[32];
  unsigned rl = 0;
  EVP_DigestFinal_ex (md, raw, &rl);
  EVP_MD_CTX_free (md);
  char digest[BERTH_DIGEST_MAX] = "sha256:";
  for (unsigned i = 0; i < rl; i++)
    snprintf (digest + 7 + 2 * i, 3, "%02x", raw[i]);

  double t0 = now_s ();
  berth_content_writer *w = open_writer (&s, "big", (int64_t) total, digest);
  for (size_t off = 0; off < total; off += chunk)
    write_bytes (&s, w, buf, chunk);
  double t1 = now_s ();
  ck_ok (content_writer_commit (s.p, w, (int64_t) total, digest, NULL, err));
  double t2 = now_s ();
  content_writer_close (s.p, w);
  double mib = (double) total / (1 << 20);
  printf ("throughput: 256 MiB written+hashed in %.3f s = %.0f MiB/s; with commit (fsync, rename) %.3f s = %.0f MiB/s\n",
          t1 - t0, mib / (t1 - t0), t2 - t0, mib / (t2 - t0));
  struct berth_content_info info = { .size = sizeof info };
  ck_ok (content_info (s.p, &s.ctx, digest, &info, err));
  ck_assert_int_eq (info.blob_size, (int64_t) total);
  free (buf);
  store_free (&s);
}
END_TEST

static Suite *
content_local_suite (void)
{
  Suite *s = suite_create ("content-local");
  TCase *tc = tcase_create ("store");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_committed_blob_reads_back_with_its_digest_size_and_times);
  tcase_add_test (tc, test_reader_reads_at_any_offset_and_answers_zero_at_the_end);
  tcase_add_test (tc, test_writer_resumes_after_close_at_the_offset_it_reached);
  tcase_add_test (tc, test_resume_survives_a_daemon_restart);
  tcase_add_test (tc, test_reopened_ref_holding_every_byte_commits_without_writing_again);
  tcase_add_test (tc, test_truncate_to_zero_restarts_the_ingest_and_its_digest);
  tcase_add_test (tc, test_digest_mismatch_commits_nothing_and_keeps_the_ingest);
  tcase_add_test (tc, test_expected_digest_given_at_open_is_checked_at_commit);
  tcase_add_test (tc, test_size_mismatch_is_a_failed_precondition_and_commits_nothing);
  tcase_add_test (tc, test_commit_of_an_existing_blob_is_already_exists_and_drops_the_ingest);
  tcase_add_test (tc, test_a_committed_writer_refuses_more_bytes);
  tcase_add_test (tc, test_second_writer_of_a_ref_is_unavailable_until_the_first_closes);
  tcase_add_test (tc, test_abort_removes_the_ingest_and_a_new_writer_starts_at_zero);
  tcase_add_test (tc, test_list_statuses_shows_every_ingest_and_filters_by_ref);
  tcase_add_test (tc, test_walk_filters_on_digest_size_and_labels);
  tcase_add_test (tc, test_walk_stops_with_the_code_its_callback_returns);
  tcase_add_test (tc, test_label_updates_follow_fieldpaths_and_survive_a_restart);
  tcase_add_test (tc, test_delete_removes_the_blob_and_its_labels);
  tcase_add_test (tc, test_sha512_digests_are_accepted_and_other_algorithms_refused);
  tcase_add_test (tc, test_refs_with_slashes_and_dots_stay_inside_the_ingest_directory);
  tcase_add_test (tc, test_malformed_digests_are_refused_before_touching_a_path);
  tcase_add_test (tc, test_stale_ingests_are_removed_at_start_up_with_a_log_line_each);
  tcase_add_test (tc, test_ingest_max_age_comes_from_the_config_and_zero_keeps_everything);
  tcase_add_test (tc, test_plugin_exports_its_root_and_declares_its_config_key);
  tcase_add_test (tc, test_disk_full_is_exhausted_keeps_the_ingest_and_continues_after_space_is_freed);
  tcase_add_test (tc, test_writers_of_different_refs_run_in_parallel_threads);
  tcase_add_test (tc, test_a_256_mib_blob_is_written_hashed_and_committed);
  tcase_add_test (tc, test_adopt_files_a_verified_file_as_a_read_only_link_of_the_same_inode);
  tcase_add_test (tc, test_adopt_with_the_wrong_size_is_invalid_naming_both_sizes);
  tcase_add_test (tc, test_adopt_with_the_wrong_digest_stores_nothing_and_leaves_the_file_as_it_was);
  tcase_add_test (tc, test_adopt_of_a_blob_already_present_is_already_exists);
  tcase_add_test (tc, test_adopt_of_a_file_on_another_filesystem_copies_it);
  tcase_add_test (tc, test_adopt_of_a_file_without_a_name_copies_it);
  tcase_add_test (tc, test_adopt_refuses_what_is_not_a_regular_file_and_bad_digests);
  tcase_add_test (tc, test_adopt_accepts_sha512_digests);
  tcase_add_test (tc, test_a_temporary_file_of_an_interrupted_adopt_is_removed_at_start_up);
  tcase_add_test (tc, test_adopt_is_not_supported_by_a_store_older_than_abi_1_3);
  tcase_add_test (tc, test_adopt_losing_a_race_to_a_commit_is_exists_and_undoes_its_link);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  snprintf (workdir, sizeof workdir, "/tmp/berth-content-local.XXXXXX");
  if (mkdtemp (workdir) == NULL)
    {
      perror ("mkdtemp");
      return EXIT_FAILURE;
    }
  snprintf (tmpfs_path, sizeof tmpfs_path, "%s/enospc", workdir);
  SRunner *sr = srunner_create (content_local_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  /* A failed disk-full test may leave its tmpfs mounted. */
  umount2 (tmpfs_path, MNT_DETACH);
  char *cmd = NULL;
  if (asprintf (&cmd, "rm -rf '%s'", workdir) >= 0)
    {
      if (system (cmd) != 0)
        fprintf (stderr, "could not remove %s\n", workdir);
      free (cmd);
    }
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
