/* remote-driver: drives plugins/snapshotters/fuse/remote.c against a real
 * registry for tests/snapshotters/fuse/remote.sh.
 *
 *   remote-driver OPTIONS COMMAND ARGS [COMMAND ARGS]...
 *
 * Options (see struct remote_opts): --url U --size N --digest D --cache F
 * [--state F] [--header "Name: value"]... [--headers-file F] [--ca-file F] [--allow-http]
 * [--block-size N] [--connect-timeout S] [--low-speed-limit B]
 * [--low-speed-time S] [--retries N] [--backoff-ms N] [--bg-run N]
 * [--bg-max-speed B]
 *
 * Commands run in order in one process (so one cache, one set of counters):
 *   read OFF LEN FILE         read_at into FILE ("-": stdout)
 *   compare REF N SEED MAX    N random reads of 1..MAX bytes, each compared
 *                             with the same bytes of the local file REF
 *   same OFF LEN THREADS      THREADS threads read [OFF, OFF+LEN) at once
 *                             (barrier); prints the requests it took
 *   expect-fail OFF LEN       the read must fail; prints the error and time
 *   wait-file PATH            wait (30 s at most) until PATH exists
 *   prefetch OFF LEN          queue a prefetch range
 *   background                start the background thread
 *   wait SECONDS              wait for the state to leave "partial"
 *   invalidate OFF LEN        forget the blocks of a range
 *   present OFF LEN           fails unless the range is in the cache
 *   absent OFF LEN            fails if any block of the range is there
 *   wait-present OFF LEN      wait (30 s at most) until the range is there
 *   stats                     one line: fetched= requests= present= state= ...
 * and, for an eStargz blob, what berth-fuse does on top of the reader
 * (the code that /work/notes/lazyblob-hook.md adds there):
 *   estargz-open              index the blob from its footer and TOC
 *   estargz-cat PATH FILE     a file's content through the index into FILE;
 *                             a chunk that fails its digest has its blob
 *                             range forgotten and is read once more
 *   estargz-prefetch          queue the blob ranges of the files before
 *                             `.prefetch.landmark`
 *
 *   remote-driver estargz-write IN.tar OUT CHUNK_SIZE [PREFETCH_PATH]...
 * converts a tar into an eStargz blob (berth_estargz_write) and prints
 * "digest=... size=...".
 * Exit 0 when every command did what it says, 1 otherwise, 2 bad usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <berth/errors.h>
#include <berth/layerindex.h>
#include <berth/plugin.h>

#include "plugins/snapshotters/fuse/remote.h"

/* The module reports errors through a host table. */
#include "plugins/snapshotters/fuse/standalone-host.h"

static const char *
state_name (enum remote_state s)
{
  switch (s)
    {
    case REMOTE_PARTIAL: return "partial";
    case REMOTE_COMPLETE: return "complete";
    case REMOTE_CORRUPT: return "corrupt";
    default: return "?";
    }
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static bool
num (const char *s, uint64_t *ret)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull (s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
    return false;
  *ret = v;
  return true;
}

static void
usage (void)
{
  fprintf (stderr, "usage: remote-driver --url U --size N --digest D --cache F [options] COMMAND ARGS...\n"
                   "(see the head of tests/snapshotters/fuse/remote-driver.c)\n");
  exit (2);
}

/* ---- commands ------------------------------------------------------------ */

static int
cmd_read (struct remote_blob *b, uint64_t off, uint64_t len, const char *path)
{
  berth_error err = { 0 };
  char *buf = malloc (len > 0 ? len : 1);
  size_t n = 0;
  if (buf == NULL)
    return 1;
  double t0 = now_s ();
  int r = remote_blob_read_at (b, off, buf, len, &n, &err);
  double dt = now_s () - t0;
  if (r < 0)
    {
      fprintf (stderr, "read %" PRIu64 "+%" PRIu64 ": %s\n", off, len, err.msg);
      free (buf);
      return 1;
    }
  FILE *f = strcmp (path, "-") == 0 ? stdout : fopen (path, "wb");
  if (f == NULL || fwrite (buf, 1, n, f) != n || (f != stdout && fclose (f) != 0))
    {
      fprintf (stderr, "read: writing %s: %s\n", path, strerror (errno));
      free (buf);
      return 1;
    }
  fflush (stdout);
  free (buf);
  fprintf (stderr, "read %" PRIu64 "+%" PRIu64 ": %zu bytes in %.3f s\n", off, len, n, dt);
  return 0;
}

static int
cmd_compare (struct remote_blob *b, const char *ref, uint64_t count, uint64_t seed, uint64_t max)
{
  FILE *f = fopen (ref, "rb");
  if (f == NULL || fseeko (f, 0, SEEK_END) != 0)
    {
      fprintf (stderr, "compare: %s: %s\n", ref, strerror (errno));
      return 1;
    }
  uint64_t size = (uint64_t) ftello (f);
  char *want = malloc (max + 1), *got = malloc (max + 1);
  int bad = 0;
  srandom ((unsigned) seed);
  for (uint64_t i = 0; i < count && bad == 0; i++)
    {
      uint64_t off = ((uint64_t) random () << 31 | (uint64_t) random ()) % (size + 1);
      uint64_t len = 1 + (uint64_t) random () % max;
      size_t n = 0, m;
      berth_error err = { 0 };
      if (remote_blob_read_at (b, off, got, len, &n, &err) < 0)
        {
          fprintf (stderr, "compare: read %" PRIu64 "+%" PRIu64 ": %s\n", off, len, err.msg);
          bad = 1;
          break;
        }
      fseeko (f, (off_t) off, SEEK_SET);
      m = fread (want, 1, len, f);
      if (n != m || memcmp (want, got, n) != 0)
        {
          fprintf (stderr, "compare: read %" PRIu64 "+%" PRIu64 ": %zu bytes differ from %s (%zu bytes there)\n",
                   off, len, n, ref, m);
          bad = 1;
        }
    }
  fclose (f);
  free (want);
  free (got);
  if (bad == 0)
    printf ("compare: %" PRIu64 " reads match\n", count);
  return bad;
}

struct same
{
  struct remote_blob *b;
  pthread_barrier_t *bar;
  uint64_t off, len;
  char *buf;
  int r;
  char msg[1024];
};

static void *
same_main (void *data)
{
  struct same *s = data;
  berth_error err = { 0 };
  size_t n;
  pthread_barrier_wait (s->bar);
  s->r = remote_blob_read_at (s->b, s->off, s->buf, s->len, &n, &err);
  if (s->r == 0 && n != s->len)
    s->r = -1;
  snprintf (s->msg, sizeof s->msg, "%s", err.msg);
  return NULL;
}

static int
cmd_same (struct remote_blob *b, uint64_t off, uint64_t len, uint64_t threads)
{
  struct remote_info before, after;
  pthread_barrier_t bar;
  struct same s[64];
  pthread_t t[64];
  if (threads == 0 || threads > 64)
    return 1;
  remote_blob_info (b, &before);
  pthread_barrier_init (&bar, NULL, (unsigned) threads);
  for (uint64_t i = 0; i < threads; i++)
    {
      s[i] = (struct same){ .b = b, .bar = &bar, .off = off, .len = len, .buf = malloc (len) };
      pthread_create (&t[i], NULL, same_main, &s[i]);
    }
  int bad = 0;
  for (uint64_t i = 0; i < threads; i++)
    {
      pthread_join (t[i], NULL);
      if (s[i].r != 0)
        {
          fprintf (stderr, "same: thread %" PRIu64 ": %s\n", i, s[i].msg);
          bad = 1;
        }
      else if (i > 0 && memcmp (s[i].buf, s[0].buf, len) != 0)
        {
          fprintf (stderr, "same: thread %" PRIu64 " read other bytes than thread 0\n", i);
          bad = 1;
        }
    }
  for (uint64_t i = 0; i < threads; i++)
    free (s[i].buf);
  pthread_barrier_destroy (&bar);
  remote_blob_info (b, &after);
  printf ("same: %" PRIu64 " threads, %" PRIu64 " requests, %" PRIu64 " bytes fetched\n", threads,
          after.requests - before.requests, after.fetched_bytes - before.fetched_bytes);
  return bad;
}

static int
cmd_expect_fail (struct remote_blob *b, uint64_t off, uint64_t len)
{
  berth_error err = { 0 };
  char *buf = malloc (len > 0 ? len : 1);
  size_t n = 0;
  double t0 = now_s ();
  int r = remote_blob_read_at (b, off, buf, len, &n, &err);
  double dt = now_s () - t0;
  free (buf);
  if (r == 0)
    {
      printf ("expect-fail: the read of %" PRIu64 "+%" PRIu64 " succeeded after %.1f s\n", off, len, dt);
      fflush (stdout);
      return 1;
    }
  printf ("expect-fail: failed after %.1f s (code %d): %s\n", dt, r, err.msg);
  fflush (stdout);
  return 0;
}

/* ---- eStargz through the reader: what berth-fuse does -------------------- */

static berth_layerindex *idx;

static int
cmd_estargz_open (struct remote_blob *b, uint64_t size)
{
  berth_error err = { 0 };
  if (idx != NULL)
    return 0;
  if (berth_layerindex_open_estargz (&host, remote_blob_read_at, b, size, NULL, &idx, &err) < 0)
    {
      fprintf (stderr, "estargz-open: %s\n", err.msg);
      return 1;
    }
  printf ("estargz-open: %zu entries\n", berth_layerindex_count (idx));
  fflush (stdout);
  return 0;
}

/* berth-fuse's remote_forget (lazyblob-hook.md): forget the blob ranges of
 * the chunks of e that hold file bytes [start, end); false when the blob is
 * complete and verified (then the TOC is wrong, and fetching again would
 * not help). */
static bool
forget_chunks (struct remote_blob *b, const struct berth_layerindex_entry *e, uint64_t start, uint64_t end)
{
  bool complete = false;
  remote_blob_stats (b, NULL, &complete);
  if (complete)
    return false;
  for (size_t i = 0; i < e->n_chunks; i++)
    {
      const struct berth_layerindex_chunk *c = &e->chunks[i];
      if (c->chunk_offset < end && c->chunk_offset + c->chunk_size > start)
        remote_blob_invalidate (b, c->offset, c->compressed_end - c->offset, NULL);
    }
  return true;
}

static int
cmd_estargz_cat (struct remote_blob *b, const char *path, const char *out)
{
  const struct berth_layerindex_entry *e = berth_layerindex_lookup (idx, path);
  if (e != NULL && e->data_ino != e->ino)
    e = berth_layerindex_get (idx, e->data_ino);
  if (e == NULL || e->type != BERTH_LAYERINDEX_REG)
    {
      fprintf (stderr, "estargz-cat: %s: no such regular file in the layer\n", path);
      return 1;
    }
  char *buf = malloc (e->size > 0 ? e->size : 1);
  berth_error err = { 0 };
  size_t n = 0;
  int r = berth_layerindex_read (idx, e, 0, buf, e->size, &n, &err);
  if (r == BERTH_E_INVALID && forget_chunks (b, e, 0, e->size))
    {
      printf ("estargz-cat: %s: %s; reading again\n", path, err.msg);
      err = (berth_error) { 0 };
      r = berth_layerindex_read (idx, e, 0, buf, e->size, &n, &err);
    }
  if (r < 0)
    {
      printf ("estargz-cat: %s: failed (code %d): %s\n", path, r, err.msg);
      fflush (stdout);
      free (buf);
      return 1;
    }
  FILE *f = fopen (out, "wb");
  int bad = f == NULL || fwrite (buf, 1, n, f) != n || fclose (f) != 0;
  free (buf);
  printf ("estargz-cat: %s: %zu bytes\n", path, n);
  fflush (stdout);
  return bad;
}

/* berth-fuse's prefetch_landmark (lazyblob-hook.md): the blob ranges of the
 * files before `.prefetch.landmark`, adjacent ones merged, queued for the
 * background thread. */
static int
cmd_estargz_prefetch (struct remote_blob *b)
{
  const struct berth_layerindex_entry *const *ents;
  size_t n = berth_layerindex_prefetch (idx, &ents), nr = 0;
  struct remote_range *rg = NULL;
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < ents[i]->n_chunks; k++)
      {
        const struct berth_layerindex_chunk *c = &ents[i]->chunks[k];
        if (nr > 0 && rg[nr - 1].off + rg[nr - 1].len == c->offset)
          {
            rg[nr - 1].len += c->compressed_end - c->offset;
            continue;
          }
        struct remote_range *m = reallocarray (rg, nr + 1, sizeof *rg);
        if (m == NULL)
          {
            free (rg);
            return 1;
          }
        rg = m;
        rg[nr++] = (struct remote_range) { c->offset, c->compressed_end - c->offset };
      }
  berth_error err = { 0 };
  int r = nr > 0 ? remote_blob_prefetch (b, rg, nr, &err) : 0;
  printf ("estargz-prefetch: %zu files, %zu ranges", n, nr);
  for (size_t i = 0; i < nr; i++)
    printf (" %" PRIu64 "+%" PRIu64, rg[i].off, rg[i].len);
  printf ("\n");
  fflush (stdout);
  free (rg);
  return r < 0;
}

static int
file_read (void *data, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  *ret_n = fread (buf, 1, len, data);
  return ferror ((FILE *) data) ? host_error_set (err, BERTH_E_INTERNAL, errno, "reading the tar") : 0;
}

static int
file_write (void *data, const void *buf, size_t len, berth_error *err)
{
  return fwrite (buf, 1, len, data) == len ? 0 : host_error_set (err, BERTH_E_INTERNAL, errno, "writing");
}

static int
estargz_write_main (int argc, char **argv)
{
  uint64_t chunk;
  if (argc < 5 || !num (argv[4], &chunk))
    usage ();
  FILE *in = fopen (argv[2], "rb"), *out = fopen (argv[3], "wb");
  if (in == NULL || out == NULL)
    {
      fprintf (stderr, "estargz-write: %s\n", strerror (errno));
      return 1;
    }
  struct berth_estargz_opts o = { .size = sizeof o, .chunk_size = chunk,
                                  .prefetch = argc > 5 ? (const char *const *) argv + 5 : NULL };
  struct berth_estargz_result res;
  berth_error err = { 0 };
  int r = berth_estargz_write (&host, file_read, in, file_write, out, &o, &res, &err);
  fclose (in);
  if (fclose (out) != 0 && r == 0)
    r = host_error_set (&err, BERTH_E_INTERNAL, errno, "closing %s", argv[3]);
  if (r < 0)
    {
      fprintf (stderr, "estargz-write: %s\n", err.msg);
      return 1;
    }
  printf ("digest=%s size=%" PRIu64 "\n", res.digest, res.size);
  return 0;
}

static int
cmd_wait_file (const char *path)
{
  for (int i = 0; i < 300; i++)
    {
      if (access (path, F_OK) == 0)
        return 0;
      usleep (100000);
    }
  fprintf (stderr, "wait-file: %s did not appear\n", path);
  return 1;
}

static void
print_stats (struct remote_blob *b)
{
  struct remote_info i;
  remote_blob_info (b, &i);
  printf ("stats: fetched=%" PRIu64 " requests=%" PRIu64 " present=%" PRIu64 " size=%" PRIu64
          " state=%s verify_failures=%u background=%d last_error=%s\n",
          i.fetched_bytes, i.requests, i.present_bytes, i.blob_size, state_name (i.state), i.verify_failures,
          i.background_running, i.last_error[0] != '\0' ? i.last_error : "-");
  fflush (stdout);
}

int
main (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "url", required_argument, NULL, 'u' },
    { "size", required_argument, NULL, 's' },
    { "digest", required_argument, NULL, 'd' },
    { "cache", required_argument, NULL, 'c' },
    { "state", required_argument, NULL, 'S' },
    { "header", required_argument, NULL, 'H' },
    { "headers-file", required_argument, NULL, 'F' },
    { "ca-file", required_argument, NULL, 'C' },
    { "allow-http", no_argument, NULL, 'p' },
    { "block-size", required_argument, NULL, 'b' },
    { "connect-timeout", required_argument, NULL, 'T' },
    { "low-speed-limit", required_argument, NULL, 'l' },
    { "low-speed-time", required_argument, NULL, 't' },
    { "retries", required_argument, NULL, 'r' },
    { "backoff-ms", required_argument, NULL, 'k' },
    { "bg-run", required_argument, NULL, 'R' },
    { "bg-max-speed", required_argument, NULL, 'M' },
    { NULL, 0, NULL, 0 },
  };
  struct remote_opts o = { .host = &host };
  const char *headers[17] = { NULL };
  size_t n_headers = 0;
  uint64_t v;
  int c;
  if (argc > 1 && strcmp (argv[1], "estargz-write") == 0)
    return estargz_write_main (argc, argv);
  while ((c = getopt_long (argc, argv, "+", longopts, NULL)) != -1)
    {
      if (c == '?')
        usage ();
      if (strchr ("sbTltrkRM", c) != NULL && !num (optarg, &v))
        usage ();
      switch (c)
        {
        case 'u': o.url = optarg; break;
        case 's': o.blob_size = v; break;
        case 'd': o.digest = optarg; break;
        case 'c': o.cache_path = optarg; break;
        case 'S': o.state_path = optarg; break;
        case 'H':
          if (n_headers == 16)
            usage ();
          headers[n_headers++] = optarg;
          break;
        case 'C': o.ca_file = optarg; break;
        case 'F': o.headers_file = optarg; break;
        case 'p': o.allow_http = true; break;
        case 'b': o.block_size = (uint32_t) v; break;
        case 'T': o.connect_timeout = (long) v; break;
        case 'l': o.low_speed_limit = (long) v; break;
        case 't': o.low_speed_time = (long) v; break;
        case 'r': o.retries = v == 0 ? -1 : (int) v; break;
        case 'k': o.backoff_ms = (long) v; break;
        case 'R': o.background_run = (uint32_t) v; break;
        case 'M': o.background_max_speed = v; break;
        }
    }
  o.headers = headers;

  berth_error err = { 0 };
  struct remote_blob *b = NULL;
  if (remote_blob_open (&o, &b, &err) < 0)
    {
      fprintf (stderr, "remote-driver: open: %s\n", err.msg);
      return 1;
    }
  int status = 0;
  char **a = argv + optind;
  int left = argc - optind;
#define NEED(k)                                                                                                        \
  do                                                                                                                   \
    if (left < (k) + 1)                                                                                                \
      usage ();                                                                                                        \
  while (0)
#define NUM(i, var)                                                                                                    \
  do                                                                                                                   \
    if (!num (a[i], &(var)))                                                                                           \
      usage ();                                                                                                        \
  while (0)
  while (left > 0)
    {
      uint64_t x = 0, y = 0, z = 0, w = 0;
      int used = 1, r = 0;
      if (strcmp (a[0], "read") == 0)
        {
          NEED (3);
          NUM (1, x);
          NUM (2, y);
          r = cmd_read (b, x, y, a[3]);
          used = 4;
        }
      else if (strcmp (a[0], "compare") == 0)
        {
          NEED (4);
          NUM (2, x);
          NUM (3, y);
          NUM (4, z);
          r = cmd_compare (b, a[1], x, y, z > 0 ? z : 1);
          used = 5;
        }
      else if (strcmp (a[0], "same") == 0)
        {
          NEED (3);
          NUM (1, x);
          NUM (2, y);
          NUM (3, w);
          r = cmd_same (b, x, y, w);
          used = 4;
        }
      else if (strcmp (a[0], "expect-fail") == 0)
        {
          NEED (2);
          NUM (1, x);
          NUM (2, y);
          r = cmd_expect_fail (b, x, y);
          used = 3;
        }
      else if (strcmp (a[0], "wait-file") == 0)
        {
          NEED (1);
          r = cmd_wait_file (a[1]);
          used = 2;
        }
      else if (strcmp (a[0], "prefetch") == 0)
        {
          NEED (2);
          NUM (1, x);
          NUM (2, y);
          struct remote_range rg = { x, y };
          r = remote_blob_prefetch (b, &rg, 1, &err) < 0;
          used = 3;
        }
      else if (strcmp (a[0], "background") == 0)
        r = remote_blob_start_background (b, &err) < 0;
      else if (strcmp (a[0], "wait") == 0)
        {
          NEED (1);
          NUM (1, x);
          enum remote_state s = remote_blob_wait (b, (long) x * 1000);
          printf ("wait: %s\n", state_name (s));
          fflush (stdout);
          used = 2;
        }
      else if (strcmp (a[0], "invalidate") == 0)
        {
          NEED (2);
          NUM (1, x);
          NUM (2, y);
          r = remote_blob_invalidate (b, x, y, &err) < 0;
          used = 3;
        }
      else if (strcmp (a[0], "present") == 0 || strcmp (a[0], "absent") == 0)
        {
          NEED (2);
          NUM (1, x);
          NUM (2, y);
          bool want = strcmp (a[0], "present") == 0, any = false;
          for (uint64_t p = x; p < x + y && !any; p += 4096)
            any = remote_blob_present (b, p, 1);
          bool ok = want ? remote_blob_present (b, x, y) : !any;
          printf ("%s %" PRIu64 "+%" PRIu64 ": %s\n", a[0], x, y, ok ? "yes" : "no");
          fflush (stdout);
          r = !ok;
          used = 3;
        }
      else if (strcmp (a[0], "wait-present") == 0)
        {
          NEED (2);
          NUM (1, x);
          NUM (2, y);
          r = 1;
          for (int i = 0; i < 300 && r != 0; i++)
            if (remote_blob_present (b, x, y))
              r = 0;
            else
              usleep (100000);
          if (r != 0)
            fprintf (stderr, "wait-present: %" PRIu64 "+%" PRIu64 " did not arrive\n", x, y);
          used = 3;
        }
      else if (strcmp (a[0], "stats") == 0)
        print_stats (b);
      else if (strcmp (a[0], "estargz-open") == 0)
        r = cmd_estargz_open (b, o.blob_size);
      else if (strcmp (a[0], "estargz-cat") == 0)
        {
          NEED (2);
          r = idx == NULL ? 1 : cmd_estargz_cat (b, a[1], a[2]);
          used = 3;
        }
      else if (strcmp (a[0], "estargz-prefetch") == 0)
        r = idx == NULL ? 1 : cmd_estargz_prefetch (b);
      else
        usage ();
      if (r != 0)
        {
          if (err.msg[0] != '\0')
            fprintf (stderr, "remote-driver: %s: %s\n", a[0], err.msg);
          status = 1;
        }
      a += used;
      left -= used;
    }
  berth_layerindex_free (idx);
  remote_blob_close (b);
  return status;
}
