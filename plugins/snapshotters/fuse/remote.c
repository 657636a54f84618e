/* remote: a registry blob fetched lazily by Range requests into a sparse
 * cache file; see remote.h for the contract.
 *
 * Locking: one mutex (b->lock) guards the bitmap, the per-block in-flight
 * table, the state, the prefetch queue and the header list.  Network I/O,
 * pwrite of fetched bytes, fdatasync and hashing run without it.  A block is
 * written only by the fetch that owns it (b->fetching[i]), so no two writers
 * ever meet; its bit is set only after fdatasync, so a reader that sees the
 * bit reads durable bytes.  Other readers of an owned block wait on that
 * fetch's condition variable; b->cond wakes the background thread and
 * remote_blob_wait (fetch done, state changed, prefetch queued, closing).
 *
 * Errors are built in a `struct rerr` of our own first and handed to the
 * host's berth_error at the API boundary: a failed fetch's message is also
 * given to every reader that waited for it, and berth_error is opaque. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include <berth/errors.h>

#include "remote.h"

#define DEFAULT_BLOCK_SIZE (UINT32_C (1) << 20)
#define MIN_BLOCK_SIZE (UINT32_C (4) << 10)
#define MAX_BLOCK_SIZE (UINT32_C (64) << 20)
#define READ_MAX_RUN 64       /* blocks per request on the read path */
#define POOL_MAX 8            /* idle curl handles kept (their connections stay open) */
#define BG_BACKOFF_MIN_MS 1000 /* the background thread's wait after a failed run ... */
#define BG_BACKOFF_MAX_MS 60000 /* ... doubled up to this */
#define RETRY_BACKOFF_MAX_MS 8000

#define STATE_MAGIC "BRTHRB\0\1"
#define STATE_VERSION 1

/* The state file: this header, then one bit per block (bit i % 8 of byte
 * i / 8).  Host byte order: the file never leaves the machine. */
struct state_header
{
  char magic[8];
  uint32_t version;
  uint32_t block_size;
  uint64_t blob_size;
  uint32_t state;           /* enum remote_state */
  uint32_t verify_failures;
  char digest[96];          /* NUL-padded */
};
_Static_assert (sizeof (struct state_header) == 128, "state header layout");

static inline void
freep (void *p)
{
  free (*(void **) p);
}
static inline void
closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
static inline void
slist_freep (struct curl_slist **l)
{
  curl_slist_free_all (*l);
}
static inline void
md_ctx_freep (EVP_MD_CTX **c)
{
  EVP_MD_CTX_free (*c);
}
#define _cleanup_(f) __attribute__ ((cleanup (f)))
#define _cleanup_free_ _cleanup_ (freep)
#define _cleanup_close_ _cleanup_ (closep)
#define TAKE_PTR(p)                                                                                                    \
  ({                                                                                                                   \
    __typeof__ (p) _p = (p);                                                                                           \
    (p) = NULL;                                                                                                        \
    _p;                                                                                                                \
  })

/* ---- errors ------------------------------------------------------------- */

struct rerr
{
  int code;
  bool retryable;
  char msg[512];
};

__attribute__ ((format (printf, 4, 5))) static int
rerr_set (struct rerr *e, int code, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (e->msg, sizeof e->msg, fmt, ap);
  va_end (ap);
  if (errnum != 0)
    {
      size_t n = strlen (e->msg);
      snprintf (e->msg + n, sizeof e->msg - n, ": %s", strerror (errnum));
    }
  e->code = code;
  e->retryable = false;
  return code;
}

/* ---- the blob ----------------------------------------------------------- */

/* One run of blocks [first, last] being fetched; readers of those blocks
 * wait on `cond`, which is signalled as each block arrives (a reader of the
 * first block of a long background run does not wait for the whole run)
 * and at the end.  Freed by whoever of the fetcher and the waiters is last
 * (under b->lock). */
struct fetch
{
  uint64_t first, last;
  uint64_t published; /* blocks [first, published) are in the cache and no longer owned */
  pthread_cond_t cond;
  bool done;
  unsigned waiters;
  struct rerr err;
};

struct remote_blob
{
  const struct berth_host *host;
  char *url;
  char **headers;      /* NULL-terminated; guarded by lock */
  char *headers_file;  /* or NULL */
  char **file_headers; /* its lines; guarded by lock */
  struct stat headers_st; /* of the file as last read (for reload) */
  char *ca_file;
  bool allow_http, tls_no_verify;
  uint64_t size;
  uint32_t bs;
  uint64_t nblocks;
  char digest[96];
  uint32_t background_run;
  long connect_timeout, low_speed_limit, low_speed_time, request_timeout, backoff_ms;
  int retries;
  uint64_t background_max_speed;
  int cache_fd, state_fd;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool lock_ready;
  uint8_t *bitmap;
  size_t bitmap_len;
  struct fetch **fetching; /* per block: the fetch that owns it, or NULL */
  uint64_t present;        /* blocks */
  uint64_t generation;     /* bumped whenever bits are cleared */
  enum remote_state state;
  unsigned verify_failures;
  struct remote_range *queue;
  size_t queue_head, queue_n, queue_cap;
  pthread_t bg;
  bool bg_started, bg_running;
  bool closing; /* also read without the lock (transfer callback) */
  char last_error[512];
  CURL *pool[POOL_MAX];
  size_t pool_n;

  uint64_t fetched_bytes, requests; /* atomics */
};

static bool
bit_get (const struct remote_blob *b, uint64_t i)
{
  return (b->bitmap[i / 8] >> (i % 8)) & 1;
}

static void
bit_put (struct remote_blob *b, uint64_t i, bool v)
{
  if (v)
    b->bitmap[i / 8] |= (uint8_t) (1u << (i % 8));
  else
    b->bitmap[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

static uint64_t
block_end (const struct remote_blob *b, uint64_t i) /* one past the block's last byte */
{
  uint64_t e = (i + 1) * b->bs;
  return e < b->size ? e : b->size;
}

static struct timespec
deadline_in (long ms)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L)
    {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
  return ts;
}

/* Sleep ms on b->cond (lock held); close wakes it early. */
static void
nap_locked (struct remote_blob *b, long ms)
{
  struct timespec ts = deadline_in (ms);
  while (!b->closing && pthread_cond_timedwait (&b->cond, &b->lock, &ts) != ETIMEDOUT)
    ;
}

/* ---- state file ---------------------------------------------------------- */

static int
pwrite_all (int fd, const void *buf, size_t len, uint64_t off)
{
  const char *p = buf;
  while (len > 0)
    {
      ssize_t n = pwrite (fd, p, len, (off_t) off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -errno;
      p += n;
      len -= (size_t) n;
      off += (uint64_t) n;
    }
  return 0;
}

static int
pread_all (int fd, void *buf, size_t len, uint64_t off, size_t *ret_n)
{
  char *p = buf;
  size_t done = 0;
  while (done < len)
    {
      ssize_t n = pread (fd, p + done, len - done, (off_t) (off + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -errno;
      if (n == 0)
        break;
      done += (size_t) n;
    }
  *ret_n = done;
  return 0;
}

/* Write the header (and with `all` the whole bitmap), then fdatasync. */
static int
state_save (struct remote_blob *b, bool all, struct rerr *e)
{
  struct state_header h;
  memset (&h, 0, sizeof h);
  memcpy (h.magic, STATE_MAGIC, sizeof h.magic);
  h.version = STATE_VERSION;
  h.block_size = b->bs;
  h.blob_size = b->size;
  h.state = b->state;
  h.verify_failures = b->verify_failures;
  memcpy (h.digest, b->digest, sizeof h.digest);
  int r = pwrite_all (b->state_fd, &h, sizeof h, 0);
  if (r == 0 && all)
    r = pwrite_all (b->state_fd, b->bitmap, b->bitmap_len, sizeof h);
  if (r == 0 && fdatasync (b->state_fd) < 0)
    r = -errno;
  if (r < 0)
    return rerr_set (e, BERTH_E_INTERNAL, -r, "writing the state file");
  return 0;
}

/* The bitmap bytes of blocks [first, last], no sync: a bit lost in a crash
 * only costs a refetch; a bit is never on disk before its data. */
static void
state_save_bits (struct remote_blob *b, uint64_t first, uint64_t last)
{
  (void) pwrite_all (b->state_fd, b->bitmap + first / 8, (size_t) (last / 8 - first / 8 + 1),
                     sizeof (struct state_header) + first / 8);
}

static int
state_load (struct remote_blob *b, const char *path, struct rerr *e)
{
  b->state_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (b->state_fd < 0)
    return rerr_set (e, BERTH_E_INTERNAL, errno, "opening the state file `%s'", path);
  if (flock (b->state_fd, LOCK_EX | LOCK_NB) < 0)
    return rerr_set (e, errno == EWOULDBLOCK ? BERTH_E_CONFLICT : BERTH_E_INTERNAL, errno,
                     "locking the state file `%s' (another server has this blob open?)", path);

  struct state_header h;
  size_t n = 0;
  int r = pread_all (b->state_fd, &h, sizeof h, 0, &n);
  if (r < 0)
    return rerr_set (e, BERTH_E_INTERNAL, -r, "reading the state file `%s'", path);
  bool ours = n == sizeof h && memcmp (h.magic, STATE_MAGIC, sizeof h.magic) == 0 && h.version == STATE_VERSION
              && h.block_size == b->bs && h.blob_size == b->size && h.state <= REMOTE_CORRUPT
              && strncmp (h.digest, b->digest, sizeof h.digest) == 0;
  if (ours)
    {
      r = pread_all (b->state_fd, b->bitmap, b->bitmap_len, sizeof h, &n);
      if (r < 0)
        return rerr_set (e, BERTH_E_INTERNAL, -r, "reading the state file `%s'", path);
      ours = n == b->bitmap_len;
    }

  struct stat st;
  if (fstat (b->cache_fd, &st) < 0)
    return rerr_set (e, BERTH_E_INTERNAL, errno, "stat of the cache file");
  /* A cache of another length is not the file this bitmap describes. */
  if (!ours || (uint64_t) st.st_size != b->size)
    {
      memset (b->bitmap, 0, b->bitmap_len);
      b->state = REMOTE_PARTIAL;
      b->verify_failures = 0;
      if (ftruncate (b->cache_fd, 0) < 0 || ftruncate (b->cache_fd, (off_t) b->size) < 0)
        return rerr_set (e, BERTH_E_INTERNAL, errno, "sizing the cache file to %" PRIu64 " bytes", b->size);
      if (ftruncate (b->state_fd, (off_t) (sizeof h + b->bitmap_len)) < 0)
        return rerr_set (e, BERTH_E_INTERNAL, errno, "sizing the state file");
      return state_save (b, true, e);
    }
  b->state = (enum remote_state) h.state;
  b->verify_failures = h.verify_failures;
  for (uint64_t i = 0; i < b->nblocks; i++)
    if (bit_get (b, i))
      b->present++;
  if (b->state == REMOTE_COMPLETE && b->present != b->nblocks)
    b->state = REMOTE_PARTIAL;
  return 0;
}

/* Blob bytes [f->first * bs, done_end) of run f are written: fdatasync and
 * publish the whole blocks among them that are not yet (set their bits,
 * give up their ownership, wake their readers).  0 or -errno. */
static int
publish_upto (struct remote_blob *b, struct fetch *f, uint64_t done_end)
{
  uint64_t upto = done_end >= b->size ? b->nblocks : done_end / b->bs;
  if (upto > f->last + 1)
    upto = f->last + 1;
  if (upto <= f->published)
    return 0;
  if (fdatasync (b->cache_fd) < 0)
    return -errno;
  pthread_mutex_lock (&b->lock);
  for (uint64_t i = f->published; i < upto; i++)
    {
      if (!bit_get (b, i))
        {
          bit_put (b, i, true);
          b->present++;
        }
      b->fetching[i] = NULL;
    }
  state_save_bits (b, f->published, upto - 1);
  f->published = upto;
  pthread_cond_broadcast (&f->cond);
  pthread_cond_broadcast (&b->cond);
  pthread_mutex_unlock (&b->lock);
  return 0;
}

/* ---- HTTP ----------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void
curl_init_once (void)
{
  curl_init_result = curl_global_init (CURL_GLOBAL_DEFAULT);
}

/* One transfer of bytes [start, end] (inclusive). */
struct xfer
{
  struct remote_blob *b;
  struct fetch *f;
  CURL *h;
  uint64_t start, end;
  uint64_t pos;  /* blob offset of the next body byte */
  uint64_t stop; /* last blob offset the answer announced */
  uint64_t got;  /* bytes of [start, end] written to the cache */
  long status;
  bool range_seen, total_known, multipart, begun, discard, enough;
  uint64_t cr_first, cr_last, cr_total;
  int werrno;
  char refused[200];
};

static bool
parse_u64 (const char **p, uint64_t *ret)
{
  const char *s = *p;
  uint64_t v = 0;
  if (*s < '0' || *s > '9')
    return false;
  for (; *s >= '0' && *s <= '9'; s++)
    {
      if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
        return false;
      v = v * 10 + (uint64_t) (*s - '0');
    }
  *p = s;
  *ret = v;
  return true;
}

/* "bytes A-B/T" or "bytes A-B/<star>" (RFC 9110 14.4).  "bytes <star>/T" (416) is not
 * a range: range_seen stays false. */
static void
parse_content_range (struct xfer *x, const char *v)
{
  while (*v == ' ' || *v == '\t')
    v++;
  if (strncasecmp (v, "bytes ", 6) != 0)
    return;
  v += 6;
  while (*v == ' ')
    v++;
  if (!parse_u64 (&v, &x->cr_first) || *v++ != '-' || !parse_u64 (&v, &x->cr_last) || *v++ != '/')
    return;
  if (*v == '*')
    x->total_known = false;
  else if (parse_u64 (&v, &x->cr_total))
    x->total_known = true;
  else
    return;
  x->range_seen = true;
}

static size_t
on_header (char *buf, size_t size, size_t n, void *data)
{
  struct xfer *x = data;
  size_t len = size * n;
  char line[512];
  size_t l = len < sizeof line - 1 ? len : sizeof line - 1;
  memcpy (line, buf, l);
  line[l] = '\0';
  line[strcspn (line, "\r\n")] = '\0';
  if (strncmp (line, "HTTP/", 5) == 0)
    {
      /* A new response (after a redirect or a 100): forget the last one. */
      const char *sp = strchr (line, ' ');
      x->status = sp != NULL ? strtol (sp + 1, NULL, 10) : 0;
      x->range_seen = x->total_known = x->multipart = false;
    }
  else if (strncasecmp (line, "content-range:", 14) == 0)
    parse_content_range (x, line + 14);
  else if (strncasecmp (line, "content-type:", 13) == 0)
    x->multipart = strcasestr (line + 13, "multipart/byteranges") != NULL;
  return len;
}

__attribute__ ((format (printf, 2, 3))) static size_t
refuse (struct xfer *x, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (x->refused, sizeof x->refused, fmt, ap);
  va_end (ap);
  return 0; /* curl aborts the transfer: CURLE_WRITE_ERROR */
}

/* Decide on the answer from its headers, once, at the first body byte. */
static size_t
begin_body (struct xfer *x)
{
  struct remote_blob *b = x->b;
  x->begun = true;
  if (x->status == 206)
    {
      if (x->multipart)
        return refuse (x, "206 with a multipart body to a single range");
      if (!x->range_seen)
        return refuse (x, "206 without a Content-Range");
      if (x->total_known && x->cr_total != b->size)
        return refuse (x, "Content-Range says the blob has %" PRIu64 " bytes, not %" PRIu64, x->cr_total, b->size);
      if (x->cr_first != x->start || x->cr_last < x->cr_first || x->cr_last > x->end)
        return refuse (x, "Content-Range %" PRIu64 "-%" PRIu64 " to a request for %" PRIu64 "-%" PRIu64,
                       x->cr_first, x->cr_last, x->start, x->end);
      x->pos = x->cr_first;
      x->stop = x->cr_last;
    }
  else if (x->status == 200)
    {
      /* The server ignored Range: the body is the whole blob; keep only
       * [start, end] and cut the transfer there. */
      curl_off_t cl = -1;
      if (curl_easy_getinfo (x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0
          && (uint64_t) cl != b->size)
        return refuse (x, "200 with %" PRIu64 " bytes, the blob has %" PRIu64, (uint64_t) cl, b->size);
      x->pos = 0;
      x->stop = b->size - 1;
    }
  else
    x->discard = true; /* an error page */
  return 1;
}

static size_t
on_body (char *buf, size_t size, size_t n, void *data)
{
  struct xfer *x = data;
  size_t len = size * n;
  if (len == 0)
    return 0;
  if (!x->begun && begin_body (x) == 0)
    return 0;
  if (x->discard)
    return len;
  if (x->pos > x->stop || len - 1 > x->stop - x->pos)
    return refuse (x, "more body than announced (past byte %" PRIu64 ")", x->stop);
  uint64_t lo = x->pos > x->start ? x->pos : x->start;
  uint64_t hi = x->pos + len - 1 < x->end ? x->pos + len - 1 : x->end;
  if (lo <= hi)
    {
      int r = pwrite_all (x->b->cache_fd, buf + (lo - x->pos), (size_t) (hi - lo + 1), lo);
      if (r < 0)
        {
          x->werrno = -r;
          return 0;
        }
      x->got += hi - lo + 1;
      r = publish_upto (x->b, x->f, x->start + x->got);
      if (r < 0)
        {
          x->werrno = -r;
          return 0;
        }
    }
  x->pos += len;
  if (x->status == 200 && x->pos > x->end)
    {
      x->enough = true;
      return 0;
    }
  return len;
}

static int
on_progress (void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
  (void) dltotal, (void) dlnow, (void) ultotal, (void) ulnow;
  struct remote_blob *b = data;
  return __atomic_load_n (&b->closing, __ATOMIC_RELAXED) ? 1 : 0;
}

static CURL *
handle_get (struct remote_blob *b)
{
  pthread_mutex_lock (&b->lock);
  CURL *h = b->pool_n > 0 ? b->pool[--b->pool_n] : NULL;
  pthread_mutex_unlock (&b->lock);
  if (h != NULL)
    return h;
  h = curl_easy_init ();
  if (h == NULL)
    return NULL;
  curl_easy_setopt (h, CURLOPT_URL, b->url);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_FOLLOWLOCATION, 1L); /* registries redirect blobs to storage */
  curl_easy_setopt (h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, b->allow_http ? "http,https" : "https");
  curl_easy_setopt (h, CURLOPT_REDIR_PROTOCOLS_STR, b->allow_http ? "http,https" : "https");
  curl_easy_setopt (h, CURLOPT_USERAGENT, "berth-fuse");
  curl_easy_setopt (h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt (h, CURLOPT_CONNECTTIMEOUT, b->connect_timeout);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_LIMIT, b->low_speed_limit);
  curl_easy_setopt (h, CURLOPT_LOW_SPEED_TIME, b->low_speed_time);
  curl_easy_setopt (h, CURLOPT_TIMEOUT, b->request_timeout);
  curl_easy_setopt (h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt (h, CURLOPT_XFERINFODATA, b);
  if (b->ca_file != NULL)
    curl_easy_setopt (h, CURLOPT_CAINFO, b->ca_file);
  if (b->tls_no_verify)
    {
      curl_easy_setopt (h, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt (h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
  return h;
}

static void
handle_put (struct remote_blob *b, CURL *h)
{
  pthread_mutex_lock (&b->lock);
  if (b->pool_n < POOL_MAX)
    {
      b->pool[b->pool_n++] = h;
      h = NULL;
    }
  pthread_mutex_unlock (&b->lock);
  curl_easy_cleanup (h);
}

static struct curl_slist *
headers_copy (struct remote_blob *b)
{
  struct curl_slist *l = NULL;
  pthread_mutex_lock (&b->lock);
  for (int k = 0; k < 2; k++)
    for (char **p = k == 0 ? b->headers : b->file_headers; p != NULL && *p != NULL; p++)
      {
        struct curl_slist *n = curl_slist_append (l, *p);
        if (n == NULL)
          {
            curl_slist_free_all (l);
            pthread_mutex_unlock (&b->lock);
            return NULL;
          }
        l = n;
      }
  pthread_mutex_unlock (&b->lock);
  return l;
}

/* One GET of bytes [start, end].  *ret_got: bytes from start written to the
 * cache (kept even on failure: they are good bytes, the caller goes on from
 * there).  0 when got > 0 (maybe less than asked: a shorter 206), or an
 * error in e with e->retryable set for what may pass. */
static int
http_range (struct remote_blob *b, struct fetch *f, uint64_t start, uint64_t end, uint64_t *ret_got, struct rerr *e)
{
  *ret_got = 0;
  CURL *h = handle_get (b);
  if (h == NULL)
    return rerr_set (e, BERTH_E_NOMEM, 0, "curl_easy_init");
  _cleanup_ (slist_freep) struct curl_slist *hdrs = headers_copy (b);
  char range[64], errbuf[CURL_ERROR_SIZE] = "";
  snprintf (range, sizeof range, "%" PRIu64 "-%" PRIu64, start, end);
  struct xfer x = { .b = b, .f = f, .h = h, .start = start, .end = end };
  curl_easy_setopt (h, CURLOPT_RANGE, range);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt (h, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode c = curl_easy_perform (h);
  curl_off_t dl = 0;
  curl_easy_getinfo (h, CURLINFO_SIZE_DOWNLOAD_T, &dl);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, NULL);
  handle_put (b, h);
  __atomic_add_fetch (&b->requests, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch (&b->fetched_bytes, (uint64_t) (dl > 0 ? dl : 0), __ATOMIC_RELAXED);
  *ret_got = x.got;

  const char *what = "GET";
  if (x.werrno != 0)
    return rerr_set (e, x.werrno == ENOSPC || x.werrno == EDQUOT ? BERTH_E_EXHAUSTED : BERTH_E_INTERNAL,
                     x.werrno, "%s bytes %s: writing the cache file", what, range);
  if (x.refused[0] != '\0')
    {
      rerr_set (e, BERTH_E_INVALID, 0, "%s bytes %s: the registry's answer is refused: %s", what, range, x.refused);
      e->retryable = true; /* a proxy's hiccup, maybe; never its bytes */
      return e->code;
    }
  if (c == CURLE_WRITE_ERROR && x.enough)
    c = CURLE_OK;
  if (c != CURLE_OK)
    {
      const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror (c);
      switch (c)
        {
        case CURLE_ABORTED_BY_CALLBACK: return rerr_set (e, BERTH_E_CANCELLED, 0, "%s bytes %s: closing", what, range);
        case CURLE_OPERATION_TIMEDOUT:
          rerr_set (e, BERTH_E_DEADLINE, 0, "%s bytes %s: %s (stalled registry?)", what, range, why);
          e->retryable = true;
          return e->code;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_TOO_MANY_REDIRECTS:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM: return rerr_set (e, BERTH_E_INVALID, 0, "%s bytes %s: %s", what, range, why);
        default:
          rerr_set (e, BERTH_E_UNAVAILABLE, 0, "%s bytes %s: %s", what, range, why);
          e->retryable = true;
          return e->code;
        }
    }
  switch (x.status)
    {
    case 200:
    case 206:
      if (x.got == 0)
        {
          rerr_set (e, BERTH_E_UNAVAILABLE, 0, "%s bytes %s: empty answer (%ld)", what, range, x.status);
          e->retryable = true;
          return e->code;
        }
      if (x.status == 200 && x.got < end - start + 1)
        return rerr_set (e, BERTH_E_INVALID, 0, "%s bytes %s: the blob ends at %" PRIu64 ", not at %" PRIu64, what,
                         range, start + x.got, b->size);
      return 0;
    case 401: return rerr_set (e, BERTH_E_UNAUTHENTICATED, 0, "%s bytes %s: 401 (token expired?)", what, range);
    case 403: return rerr_set (e, BERTH_E_PERMISSION, 0, "%s bytes %s: 403", what, range);
    case 404: return rerr_set (e, BERTH_E_NOTFOUND, 0, "%s bytes %s: 404, no such blob", what, range);
    case 416: return rerr_set (e, BERTH_E_INVALID, 0, "%s bytes %s: 416, the blob is shorter", what, range);
    default:
      rerr_set (e, x.status == 429 || x.status >= 500 ? BERTH_E_UNAVAILABLE : BERTH_E_INVALID, 0,
                "%s bytes %s: HTTP %ld", what, range, x.status);
      e->retryable = x.status == 429 || x.status >= 500;
      return e->code;
    }
}

/* ---- fetching ------------------------------------------------------------- */

static bool headers_reload (struct remote_blob *b);

static struct fetch *
fetch_claim (struct remote_blob *b, uint64_t first, uint64_t last) /* lock held */
{
  struct fetch *f = calloc (1, sizeof *f);
  if (f == NULL)
    return NULL;
  f->first = first;
  f->last = last;
  f->published = first;
  pthread_cond_init (&f->cond, NULL);
  for (uint64_t i = first; i <= last; i++)
    b->fetching[i] = f;
  return f;
}

static void
fetch_free (struct fetch *f)
{
  pthread_cond_destroy (&f->cond);
  free (f);
}

/* Fetch the run f owns, with retries (blocks are published as they arrive,
 * see publish_upto); then give up the blocks that did not come and wake
 * the waiters.  f is gone on return. */
static int
fetch_run (struct remote_blob *b, struct fetch *f, struct rerr *e)
{
  uint64_t start = f->first * b->bs, end = block_end (b, f->last) - 1, cur = start;
  int tries = 0, r = 0;
  bool reloaded = false;
  long delay = b->backoff_ms;
  while (cur <= end)
    {
      uint64_t got = 0;
      r = http_range (b, f, cur, end, &got, e);
      cur += got;
      if (r == 0)
        continue;
      if (cur > end)
        {
          r = 0; /* the error came after the last byte (a connection cut at the end) */
          break;
        }
      /* An expired token: berthd may have written a fresh one. */
      if (r == BERTH_E_UNAUTHENTICATED && !reloaded && headers_reload (b))
        {
          reloaded = true;
          continue;
        }
      if (!e->retryable || __atomic_load_n (&b->closing, __ATOMIC_RELAXED))
        break;
      if (got > 0)
        tries = 0, delay = b->backoff_ms; /* progress: not a failed attempt */
      else if (tries++ >= b->retries)
        break;
      pthread_mutex_lock (&b->lock);
      nap_locked (b, delay);
      pthread_mutex_unlock (&b->lock);
      delay = delay * 2 < RETRY_BACKOFF_MAX_MS ? delay * 2 : RETRY_BACKOFF_MAX_MS;
    }
  if (r < 0 && tries > 0)
    {
      size_t n = strlen (e->msg);
      snprintf (e->msg + n, sizeof e->msg - n, " (after %d attempts)", tries);
    }

  int pr = publish_upto (b, f, cur);
  if (pr < 0 && r == 0)
    r = rerr_set (e, BERTH_E_INTERNAL, -pr, "fdatasync of the cache file");

  pthread_mutex_lock (&b->lock);
  for (uint64_t i = f->published; i <= f->last; i++)
    b->fetching[i] = NULL;
  f->done = true;
  if (r < 0)
    f->err = *e;
  pthread_cond_broadcast (&f->cond);
  pthread_cond_broadcast (&b->cond);
  if (f->waiters == 0)
    fetch_free (f);
  pthread_mutex_unlock (&b->lock);
  return r;
}

/* Make blocks [first, last] present: fetch the missing runs nobody fetches
 * (one request each), wait for the ones others fetch. */
static int
ensure (struct remote_blob *b, uint64_t first, uint64_t last, struct rerr *e)
{
  pthread_mutex_lock (&b->lock);
  for (;;)
    {
      struct fetch *wait_for = NULL;
      uint64_t wait_block = 0, i;
      for (i = first; i <= last; i++)
        {
          if (bit_get (b, i))
            continue;
          if (b->fetching[i] == NULL)
            break;
          if (wait_for == NULL)
            {
              wait_for = b->fetching[i];
              wait_block = i;
            }
        }
      if (i <= last)
        {
          uint64_t j = i;
          while (j < last && j + 1 - i < READ_MAX_RUN && !bit_get (b, j + 1) && b->fetching[j + 1] == NULL)
            j++;
          struct fetch *f = fetch_claim (b, i, j);
          pthread_mutex_unlock (&b->lock);
          if (f == NULL)
            return rerr_set (e, BERTH_E_NOMEM, 0, "allocating a fetch");
          int r = fetch_run (b, f, e);
          if (r < 0)
            return r;
          pthread_mutex_lock (&b->lock);
          continue;
        }
      if (wait_for == NULL)
        break;
      wait_for->waiters++;
      while (!wait_for->done && !bit_get (b, wait_block))
        pthread_cond_wait (&wait_for->cond, &b->lock);
      bool failed = wait_for->done && wait_for->err.code < 0;
      if (failed)
        *e = wait_for->err;
      if (--wait_for->waiters == 0 && wait_for->done)
        fetch_free (wait_for);
      /* The fetcher failed and our block did not come: its error is ours
       * (we do not start the same doomed retries again). */
      if (failed && !bit_get (b, wait_block))
        {
          pthread_mutex_unlock (&b->lock);
          return e->code;
        }
    }
  pthread_mutex_unlock (&b->lock);
  return 0;
}

static int
fail (struct remote_blob *b, berth_error *err, const struct rerr *e)
{
  return b->host->error_set (err, e->code, 0, "%s", e->msg);
}

int
remote_blob_fetch (struct remote_blob *b, uint64_t off, uint64_t len, berth_error *err)
{
  struct rerr e = { 0 };
  if (off >= b->size || len == 0)
    return 0;
  if (len > b->size - off)
    len = b->size - off;
  if (ensure (b, off / b->bs, (off + len - 1) / b->bs, &e) < 0)
    return fail (b, err, &e);
  return 0;
}

int
remote_blob_read_at (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err)
{
  struct remote_blob *b = data;
  *ret_n = 0;
  if (off >= b->size || len == 0)
    return 0;
  if (len > b->size - off)
    len = (size_t) (b->size - off);
  int r = remote_blob_fetch (b, off, len, err);
  if (r < 0)
    return r;
  size_t n = 0;
  r = pread_all (b->cache_fd, buf, len, off, &n);
  if (r < 0)
    return b->host->error_set (err, BERTH_E_INTERNAL, -r, "reading the cache file at %" PRIu64, off);
  if (n != len)
    return b->host->error_set (err, BERTH_E_INTERNAL, 0, "the cache file ends at %" PRIu64, off + n);
  *ret_n = n;
  return 0;
}

/* ---- background ------------------------------------------------------------ */

/* sha256 of the cache file as "sha256:<hex>" into out (lock not held). */
static int
hash_cache (struct remote_blob *b, char out[72], struct rerr *e)
{
  _cleanup_ (md_ctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new ();
  _cleanup_free_ char *buf = malloc (1 << 20);
  if (ctx == NULL || buf == NULL || EVP_DigestInit_ex (ctx, EVP_sha256 (), NULL) != 1)
    return rerr_set (e, BERTH_E_NOMEM, 0, "sha256 context");
  for (uint64_t off = 0; off < b->size;)
    {
      size_t n = 0;
      int r = pread_all (b->cache_fd, buf, 1 << 20, off, &n);
      if (r < 0)
        return rerr_set (e, BERTH_E_INTERNAL, -r, "reading the cache file to verify it");
      if (n == 0)
        return rerr_set (e, BERTH_E_INTERNAL, 0, "the cache file ends at %" PRIu64, off);
      EVP_DigestUpdate (ctx, buf, n);
      off += n;
    }
  unsigned char md[32];
  unsigned mdlen = 0;
  EVP_DigestFinal_ex (ctx, md, &mdlen);
  strcpy (out, "sha256:");
  for (unsigned i = 0; i < 32; i++)
    snprintf (out + 7 + 2 * i, 3, "%02x", md[i]);
  return 0;
}

/* Every block present: hash, then COMPLETE, or forget everything once
 * (refetch), or CORRUPT.  Lock held on entry and exit. */
static void
verify_locked (struct remote_blob *b)
{
  uint64_t gen = b->generation;
  char got[72];
  struct rerr e = { 0 };
  pthread_mutex_unlock (&b->lock);
  int r = hash_cache (b, got, &e);
  if (r == 0 && strcmp (got, b->digest) == 0 && fdatasync (b->cache_fd) < 0)
    r = rerr_set (&e, BERTH_E_INTERNAL, errno, "fdatasync of the cache file");
  pthread_mutex_lock (&b->lock);
  if (b->generation != gen)
    return; /* blocks were dropped meanwhile: not complete any more */
  if (r < 0)
    {
      snprintf (b->last_error, sizeof b->last_error, "%s", e.msg);
      nap_locked (b, BG_BACKOFF_MAX_MS);
      return;
    }
  if (strcmp (got, b->digest) == 0)
    b->state = REMOTE_COMPLETE;
  else
    {
      b->verify_failures++;
      snprintf (b->last_error, sizeof b->last_error, "the fetched blob is %s, not %s%s", got, b->digest,
                b->verify_failures < 2 ? ": fetching it again" : "");
      if (b->verify_failures >= 2)
        b->state = REMOTE_CORRUPT;
      else
        {
          memset (b->bitmap, 0, b->bitmap_len);
          b->present = 0;
          b->generation++;
        }
    }
  if (state_save (b, true, &e) < 0)
    snprintf (b->last_error, sizeof b->last_error, "%s", e.msg);
  pthread_cond_broadcast (&b->cond);
}

/* The next run for the background thread: the first missing, unowned block
 * of the prefetch queue, else from cursor on (wrapping once).  Lock held. */
static bool
next_run (struct remote_blob *b, uint64_t cursor, uint64_t *ret_first, uint64_t *ret_last, bool *ret_queued)
{
  *ret_queued = true;
  while (b->queue_head < b->queue_n)
    {
      struct remote_range *q = &b->queue[b->queue_head];
      if (q->off < b->size && q->len > 0)
        {
          uint64_t last = (q->off + (q->len < b->size - q->off ? q->len : b->size - q->off) - 1) / b->bs;
          for (uint64_t i = q->off / b->bs; i <= last; i++)
            if (!bit_get (b, i) && b->fetching[i] == NULL)
              {
                *ret_first = i;
                *ret_last = last;
                return true;
              }
        }
      b->queue_head++;
    }
  *ret_queued = false;
  for (uint64_t k = 0; k < b->nblocks; k++)
    {
      uint64_t i = (cursor + k) % b->nblocks;
      if (!bit_get (b, i) && b->fetching[i] == NULL)
        {
          *ret_first = i;
          *ret_last = b->nblocks - 1;
          return true;
        }
    }
  return false;
}

static void *
background_main (void *data)
{
  struct remote_blob *b = data;
  uint64_t cursor = 0;
  long delay = BG_BACKOFF_MIN_MS;
  pthread_mutex_lock (&b->lock);
  while (!b->closing && b->state == REMOTE_PARTIAL)
    {
      uint64_t first, last;
      bool queued;
      if (!next_run (b, cursor, &first, &last, &queued))
        {
          if (b->present == b->nblocks)
            verify_locked (b);
          else
            pthread_cond_wait (&b->cond, &b->lock); /* readers own the rest */
          continue;
        }
      uint64_t j = first;
      while (j < last && j + 1 - first < b->background_run && !bit_get (b, j + 1) && b->fetching[j + 1] == NULL)
        j++;
      struct fetch *f = fetch_claim (b, first, j);
      if (f == NULL)
        {
          nap_locked (b, delay);
          continue;
        }
      pthread_mutex_unlock (&b->lock);
      struct rerr e = { 0 };
      struct timespec t0, t1;
      clock_gettime (CLOCK_MONOTONIC, &t0);
      int r = fetch_run (b, f, &e);
      clock_gettime (CLOCK_MONOTONIC, &t1);
      pthread_mutex_lock (&b->lock);
      if (r == 0)
        {
          if (!queued)
            cursor = (j + 1) % b->nblocks;
          delay = BG_BACKOFF_MIN_MS;
          b->last_error[0] = '\0';
          if (b->background_max_speed > 0)
            {
              /* Pace by whole runs: curl's own limit lets a short transfer
               * through at full speed. */
              long spent = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
              long due = (long) ((block_end (b, j) - first * b->bs) * 1000 / b->background_max_speed);
              if (due > spent)
                nap_locked (b, due - spent);
            }
          continue;
        }
      if (b->closing)
        break;
      snprintf (b->last_error, sizeof b->last_error, "%s", e.msg);
      nap_locked (b, delay);
      delay = delay * 2 < BG_BACKOFF_MAX_MS ? delay * 2 : BG_BACKOFF_MAX_MS;
    }
  b->bg_running = false;
  pthread_cond_broadcast (&b->cond);
  pthread_mutex_unlock (&b->lock);
  return NULL;
}

int
remote_blob_start_background (struct remote_blob *b, berth_error *err)
{
  pthread_mutex_lock (&b->lock);
  int r = 0;
  if (!b->bg_started)
    {
      b->bg_running = true;
      r = pthread_create (&b->bg, NULL, background_main, b);
      if (r == 0)
        b->bg_started = true;
      else
        b->bg_running = false;
    }
  pthread_mutex_unlock (&b->lock);
  if (r != 0)
    return b->host->error_set (err, BERTH_E_INTERNAL, r, "starting the background fetch thread");
  return 0;
}

int
remote_blob_prefetch (struct remote_blob *b, const struct remote_range *ranges, size_t n, berth_error *err)
{
  pthread_mutex_lock (&b->lock);
  if (b->queue_n + n > b->queue_cap)
    {
      size_t cap = (b->queue_n + n) * 2;
      struct remote_range *q = reallocarray (b->queue, cap, sizeof *q);
      if (q == NULL)
        {
          pthread_mutex_unlock (&b->lock);
          return b->host->error_set (err, BERTH_E_NOMEM, ENOMEM, "queueing %zu prefetch ranges", n);
        }
      b->queue = q;
      b->queue_cap = cap;
    }
  memcpy (b->queue + b->queue_n, ranges, n * sizeof *ranges);
  b->queue_n += n;
  pthread_cond_broadcast (&b->cond);
  pthread_mutex_unlock (&b->lock);
  return 0;
}

int
remote_blob_invalidate (struct remote_blob *b, uint64_t off, uint64_t len, berth_error *err)
{
  (void) err;
  if (off >= b->size || len == 0)
    return 0;
  if (len > b->size - off)
    len = b->size - off;
  uint64_t first = off / b->bs, last = (off + len - 1) / b->bs;
  pthread_mutex_lock (&b->lock);
  if (b->state != REMOTE_COMPLETE)
    {
      for (uint64_t i = first; i <= last; i++)
        if (bit_get (b, i) && b->fetching[i] == NULL)
          {
            bit_put (b, i, false);
            b->present--;
          }
      b->generation++;
      state_save_bits (b, first, last);
      pthread_cond_broadcast (&b->cond);
    }
  pthread_mutex_unlock (&b->lock);
  return 0;
}

/* ---- options, open, close ---------------------------------------------- */

static void
strv_free (char **v)
{
  for (char **p = v; p != NULL && *p != NULL; p++)
    free (*p);
  free (v);
}

/* A copy of headers, each "Name: value" without CR/LF (no header
 * injection); NULL with e set on failure, an empty list for NULL. */
static char **
headers_dup (const char *const *headers, struct rerr *e)
{
  size_t n = 0;
  while (headers != NULL && headers[n] != NULL)
    n++;
  char **v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    {
      rerr_set (e, BERTH_E_NOMEM, ENOMEM, "copying headers");
      return NULL;
    }
  for (size_t i = 0; i < n; i++)
    {
      const char *h = headers[i], *colon = strchr (h, ':');
      if (colon == NULL || colon == h || strpbrk (h, "\r\n") != NULL)
        {
          rerr_set (e, BERTH_E_INVALID, 0, "header %zu is not one `Name: value' line", i + 1);
          strv_free (v);
          return NULL;
        }
      v[i] = strdup (h);
      if (v[i] == NULL)
        {
          rerr_set (e, BERTH_E_NOMEM, ENOMEM, "copying headers");
          strv_free (v);
          return NULL;
        }
    }
  return v;
}

/* opts.headers_file: one "Name: value" per line; empty lines and lines
 * starting with '#' are skipped.  Tokens stay off the command line (and
 * out of /proc/PID/cmdline). */
static int
headers_file_read (const char *path, char ***ret, struct stat *ret_st, struct rerr *e)
{
  _cleanup_close_ int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    return rerr_set (e, BERTH_E_INVALID, errno, "headers file `%s'", path);
  if (st.st_size > 65536)
    return rerr_set (e, BERTH_E_INVALID, 0, "headers file `%s': larger than 64 KiB", path);
  _cleanup_free_ char *buf = malloc ((size_t) st.st_size + 1);
  _cleanup_free_ const char **lines = calloc ((size_t) st.st_size / 2 + 2, sizeof *lines);
  size_t n = 0, k = 0;
  if (buf == NULL || lines == NULL)
    return rerr_set (e, BERTH_E_NOMEM, ENOMEM, "reading headers file `%s'", path);
  int r = pread_all (fd, buf, (size_t) st.st_size, 0, &n);
  if (r < 0)
    return rerr_set (e, BERTH_E_INVALID, -r, "reading headers file `%s'", path);
  buf[n] = '\0';
  char *save = NULL;
  for (char *line = strtok_r (buf, "\n", &save); line != NULL; line = strtok_r (NULL, "\n", &save))
    {
      line[strcspn (line, "\r")] = '\0';
      if (line[0] != '\0' && line[0] != '#')
        lines[k++] = line;
    }
  struct rerr e2 = { 0 };
  char **v = headers_dup (lines, &e2);
  if (v == NULL)
    return rerr_set (e, e2.code, 0, "headers file `%s': %s", path, e2.msg);
  *ret = v;
  *ret_st = st;
  return 0;
}

/* Read the headers file again if it changed since last time (another inode,
 * size or mtime).  true when new headers are in place. */
static bool
headers_reload (struct remote_blob *b)
{
  struct stat st;
  if (b->headers_file == NULL || stat (b->headers_file, &st) < 0)
    return false;
  pthread_mutex_lock (&b->lock);
  bool same = st.st_ino == b->headers_st.st_ino && st.st_dev == b->headers_st.st_dev
              && st.st_size == b->headers_st.st_size && st.st_mtim.tv_sec == b->headers_st.st_mtim.tv_sec
              && st.st_mtim.tv_nsec == b->headers_st.st_mtim.tv_nsec;
  pthread_mutex_unlock (&b->lock);
  if (same)
    return false;
  char **v = NULL;
  struct rerr e = { 0 };
  if (headers_file_read (b->headers_file, &v, &st, &e) < 0)
    return false;
  pthread_mutex_lock (&b->lock);
  char **old = b->file_headers;
  b->file_headers = v;
  b->headers_st = st;
  pthread_mutex_unlock (&b->lock);
  strv_free (old);
  return true;
}

int
remote_blob_set_headers (struct remote_blob *b, const char *const *headers, berth_error *err)
{
  struct rerr e = { 0 };
  char **v = headers_dup (headers, &e);
  if (v == NULL)
    return fail (b, err, &e);
  pthread_mutex_lock (&b->lock);
  char **old = b->headers;
  b->headers = v;
  pthread_cond_broadcast (&b->cond); /* a background thread waiting out a 401 tries again */
  pthread_mutex_unlock (&b->lock);
  strv_free (old);
  return 0;
}

static bool
is_sha256_digest (const char *d)
{
  if (strncmp (d, "sha256:", 7) != 0 || strlen (d) != 7 + 64)
    return false;
  return strspn (d + 7, "0123456789abcdef") == 64;
}

static int
opts_check (const struct remote_opts *o, struct rerr *e)
{
  if (o->url == NULL || o->digest == NULL || o->cache_path == NULL)
    return rerr_set (e, BERTH_E_INVALID, 0, "url, digest and cache_path are required");
  bool https = strncmp (o->url, "https://", 8) == 0, http = strncmp (o->url, "http://", 7) == 0;
  if (!https && !(http && o->allow_http))
    return rerr_set (e, BERTH_E_INVALID, 0, "blob URL `%s': %s", o->url,
                     http ? "plain http is not allowed for this registry" : "not an http(s) URL");
  if (strpbrk (o->url, " \t\r\n") != NULL)
    return rerr_set (e, BERTH_E_INVALID, 0, "blob URL `%s': contains white space", o->url);
  if (strncmp (o->digest, "sha256:", 7) != 0)
    return rerr_set (e, BERTH_E_NOTSUP, 0, "digest `%s': only sha256 is supported", o->digest);
  if (!is_sha256_digest (o->digest))
    return rerr_set (e, BERTH_E_INVALID, 0, "digest `%s': not sha256:<64 lowercase hex>", o->digest);
  uint32_t bs = o->block_size != 0 ? o->block_size : DEFAULT_BLOCK_SIZE;
  if (bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) != 0)
    return rerr_set (e, BERTH_E_INVALID, 0, "block size %" PRIu32 ": want a power of two, 4 KiB .. 64 MiB", bs);
  if (o->blob_size > (UINT64_C (1) << 46))
    return rerr_set (e, BERTH_E_INVALID, 0, "blob size %" PRIu64 " is absurd", o->blob_size);
  if (o->connect_timeout < 0 || o->low_speed_limit < 0 || o->low_speed_time < 0 || o->request_timeout < 0
      || o->backoff_ms < 0 || o->retries < -1)
    return rerr_set (e, BERTH_E_INVALID, 0, "negative timeout, speed or retry count");
  return 0;
}

static void
remote_blob_closep (struct remote_blob **b)
{
  remote_blob_close (*b);
}

int
remote_blob_open (const struct remote_opts *o, struct remote_blob **ret, berth_error *err)
{
  struct rerr e = { 0 };
  if (o->host == NULL)
    return BERTH_E_INVALID;
  if (opts_check (o, &e) < 0)
    return o->host->error_set (err, e.code, 0, "%s", e.msg);
  pthread_once (&curl_once, curl_init_once);
  if (curl_init_result != CURLE_OK)
    return o->host->error_set (err, BERTH_E_INTERNAL, 0, "curl_global_init: %s",
                               curl_easy_strerror (curl_init_result));

  struct remote_blob *b = calloc (1, sizeof *b);
  if (b == NULL)
    return o->host->error_set (err, BERTH_E_NOMEM, ENOMEM, "allocating the remote blob");
  b->host = o->host;
  b->cache_fd = b->state_fd = -1;
  pthread_condattr_t ca;
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_mutex_init (&b->lock, NULL);
  pthread_cond_init (&b->cond, &ca);
  pthread_condattr_destroy (&ca);
  b->lock_ready = true;
  _cleanup_ (remote_blob_closep) struct remote_blob *owned = b;

  b->size = o->blob_size;
  b->bs = o->block_size != 0 ? o->block_size : DEFAULT_BLOCK_SIZE;
  b->nblocks = (b->size + b->bs - 1) / b->bs;
  snprintf (b->digest, sizeof b->digest, "%s", o->digest);
  b->allow_http = o->allow_http;
  b->tls_no_verify = o->tls_no_verify;
  b->background_run = o->background_run != 0 ? o->background_run : 8;
  b->connect_timeout = o->connect_timeout != 0 ? o->connect_timeout : 10;
  b->low_speed_limit = o->low_speed_limit != 0 ? o->low_speed_limit : 1024;
  b->low_speed_time = o->low_speed_time != 0 ? o->low_speed_time : 15;
  b->request_timeout = o->request_timeout;
  b->retries = o->retries == 0 ? 3 : o->retries < 0 ? 0 : o->retries;
  b->backoff_ms = o->backoff_ms != 0 ? o->backoff_ms : 250;
  b->background_max_speed = o->background_max_speed;
  b->url = strdup (o->url);
  b->ca_file = o->ca_file != NULL ? strdup (o->ca_file) : NULL;
  if (b->url == NULL || (o->ca_file != NULL && b->ca_file == NULL))
    return b->host->error_set (err, BERTH_E_NOMEM, ENOMEM, "copying options");
  b->headers = headers_dup (o->headers, &e);
  if (b->headers == NULL)
    return fail (b, err, &e);
  if (o->headers_file != NULL)
    {
      b->headers_file = strdup (o->headers_file);
      if (b->headers_file == NULL)
        return b->host->error_set (err, BERTH_E_NOMEM, ENOMEM, "copying options");
      if (headers_file_read (b->headers_file, &b->file_headers, &b->headers_st, &e) < 0)
        return fail (b, err, &e);
    }

  b->bitmap_len = (size_t) ((b->nblocks + 7) / 8);
  b->bitmap = calloc (b->bitmap_len + 1, 1);
  b->fetching = calloc (b->nblocks + 1, sizeof *b->fetching);
  if (b->bitmap == NULL || b->fetching == NULL)
    return b->host->error_set (err, BERTH_E_NOMEM, ENOMEM, "allocating the block table");

  b->cache_fd = open (o->cache_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (b->cache_fd < 0)
    return b->host->error_set (err, BERTH_E_INTERNAL, errno, "opening the cache file `%s'", o->cache_path);
  _cleanup_free_ char *state_path = NULL;
  if (o->state_path == NULL && asprintf (&state_path, "%s.state", o->cache_path) < 0)
    return b->host->error_set (err, BERTH_E_NOMEM, ENOMEM, "state path");
  if (state_load (b, o->state_path != NULL ? o->state_path : state_path, &e) < 0)
    return fail (b, err, &e);
  if (b->size == 0 && b->state == REMOTE_PARTIAL)
    b->state = strcmp (b->digest, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0
                   ? REMOTE_COMPLETE
                   : REMOTE_CORRUPT;
  *ret = TAKE_PTR (owned);
  return 0;
}

void
remote_blob_close (struct remote_blob *b)
{
  if (b == NULL)
    return;
  if (b->lock_ready)
    {
      pthread_mutex_lock (&b->lock);
      __atomic_store_n (&b->closing, true, __ATOMIC_RELAXED);
      pthread_cond_broadcast (&b->cond);
      pthread_mutex_unlock (&b->lock);
      if (b->bg_started)
        pthread_join (b->bg, NULL);
    }
  if (b->state_fd >= 0)
    {
      (void) fdatasync (b->state_fd);
      close (b->state_fd);
    }
  if (b->cache_fd >= 0)
    close (b->cache_fd);
  for (size_t i = 0; i < b->pool_n; i++)
    curl_easy_cleanup (b->pool[i]);
  strv_free (b->headers);
  strv_free (b->file_headers);
  free (b->headers_file);
  free (b->url);
  free (b->ca_file);
  free (b->bitmap);
  free (b->fetching);
  free (b->queue);
  if (b->lock_ready)
    {
      pthread_cond_destroy (&b->cond);
      pthread_mutex_destroy (&b->lock);
    }
  free (b);
}

enum remote_state
remote_blob_wait (struct remote_blob *b, long timeout_ms)
{
  struct timespec ts = deadline_in (timeout_ms > 0 ? timeout_ms : 0);
  pthread_mutex_lock (&b->lock);
  while (b->state == REMOTE_PARTIAL && b->bg_running)
    {
      if (timeout_ms < 0)
        pthread_cond_wait (&b->cond, &b->lock);
      else if (pthread_cond_timedwait (&b->cond, &b->lock, &ts) == ETIMEDOUT)
        break;
    }
  enum remote_state s = b->state;
  pthread_mutex_unlock (&b->lock);
  return s;
}

bool
remote_blob_present (struct remote_blob *b, uint64_t off, uint64_t len)
{
  if (off >= b->size || len == 0)
    return true;
  if (len > b->size - off)
    len = b->size - off;
  bool all = true;
  pthread_mutex_lock (&b->lock);
  for (uint64_t i = off / b->bs; i <= (off + len - 1) / b->bs && all; i++)
    all = bit_get (b, i);
  pthread_mutex_unlock (&b->lock);
  return all;
}

void
remote_blob_info (struct remote_blob *b, struct remote_info *ret)
{
  memset (ret, 0, sizeof *ret);
  pthread_mutex_lock (&b->lock);
  ret->fetched_bytes = __atomic_load_n (&b->fetched_bytes, __ATOMIC_RELAXED);
  ret->requests = __atomic_load_n (&b->requests, __ATOMIC_RELAXED);
  ret->present_bytes = b->present * b->bs;
  if (b->nblocks > 0 && bit_get (b, b->nblocks - 1))
    ret->present_bytes -= (uint64_t) b->nblocks * b->bs - b->size; /* the short last block */
  ret->blob_size = b->size;
  ret->block_size = b->bs;
  ret->state = b->state;
  ret->verify_failures = b->verify_failures;
  ret->background_running = b->bg_running;
  snprintf (ret->last_error, sizeof ret->last_error, "%s", b->last_error);
  pthread_mutex_unlock (&b->lock);
}

void
remote_blob_stats (struct remote_blob *b, uint64_t *ret_fetched_bytes, bool *ret_complete)
{
  struct remote_info i;
  remote_blob_info (b, &i);
  if (ret_fetched_bytes != NULL)
    *ret_fetched_bytes = i.fetched_bytes;
  if (ret_complete != NULL)
    *ret_complete = i.state == REMOTE_COMPLETE;
}
