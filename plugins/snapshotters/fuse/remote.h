/* remote: a layer blob read from a registry by HTTP Range requests, block
 * by block, into a local sparse cache file (issue 7, part 2: lazy pulling).
 *
 * The cache file (opts.cache_path) is the blob's ingest: every fetched byte
 * is written at its own offset, so once every block is there the file IS
 * the blob, and it is then checked against opts.digest.  A sidecar state
 * file (opts.state_path, default "<cache_path>.state") holds one bit per
 * block, set only after the block's bytes are fdatasync'ed, so a restarted
 * server trusts exactly what it has and refetches the rest.
 *
 * remote_blob_read_at() is a berth_layerindex_read_at_fn: it answers from
 * the cache when the blocks are present and otherwise fetches the missing
 * ones first, one Range request per contiguous run; a block being fetched
 * by another thread is waited for, not fetched twice, and a run's blocks
 * are published one by one as they arrive (a reader of the first block of
 * a long background request does not wait for all of it).  A background
 * thread (remote_blob_start_background) fetches the prefetch ranges, then every
 * missing block in order, one request at a time, and verifies the whole
 * file when it is complete; on a digest mismatch it forgets every block and
 * fetches the blob once more, and if that is wrong too the state stays
 * REMOTE_CORRUPT (reads are still answered: the layerindex caller checks
 * every eStargz chunk against the TOC, and remote_blob_invalidate lets it
 * drop a range that failed that check).
 *
 * Never wrong bytes from the transport: a 206 must carry the Content-Range
 * asked for (a shorter one is accepted, the rest is fetched again), a 200 to
 * a Range request is read only for the bytes wanted and then cut, and the
 * body must be exactly as long as announced.  A stalled registry is an
 * error after opts.low_speed_time seconds below opts.low_speed_limit
 * bytes/s (connecting: opts.connect_timeout), retried opts.retries times
 * with exponential backoff; 404, 401, 403 and 416 are not retried, except
 * that a 401 reads opts.headers_file again if it changed (a fresh token)
 * and retries at once.
 *
 * Errors: 0 or a negative BERTH_E_* code, the message through opts.host
 * into err (may be NULL).  No host symbol is used.
 *
 * Threads: every function may be called from any thread, except that
 * remote_blob_close must be the last call and no read may still run then.
 * Reads block (network I/O); a read returns within about
 * (retries + 1) * (connect_timeout + low_speed_time) + backoff seconds.
 * Fork: open before fork is fine (no thread is started); start the
 * background thread in the process that stays (berth-fuse: in op_init,
 * after daemonize's fork). */
#ifndef BERTH_FUSE_REMOTE_H
#define BERTH_FUSE_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <berth/plugin.h>

struct remote_blob;

/* Zero fields take the default in brackets. */
struct remote_opts
{
  const struct berth_host *host; /* for errors; required */
  const char *url;               /* http[s]://HOST/v2/<repo>/blobs/<digest>; required */
  const char *const *headers;    /* NULL-terminated "Name: value"; copied */
  const char *headers_file;      /* more of them, one a line (Authorization: keep tokens off argv);
                                    read again when a request gets 401 and the file changed */
  const char *ca_file;           /* PEM bundle to verify TLS with [the system's] */
  bool allow_http;               /* accept an http:// URL (and http redirects); refused otherwise */
  bool tls_no_verify;            /* do not verify the server certificate (insecure registries) */
  uint64_t blob_size;            /* from the manifest descriptor; required */
  const char *digest;            /* "sha256:<64 hex>"; required */
  const char *cache_path;        /* sparse cache file, created if missing; required */
  const char *state_path;        /* [<cache_path>.state] the block bitmap */
  uint32_t block_size;           /* [1 MiB] fetch unit, power of two, 4 KiB .. 64 MiB */
  uint32_t background_run;       /* [8] blocks per background request */
  long connect_timeout;          /* [10] seconds */
  long low_speed_limit;          /* [1024] bytes/s ... */
  long low_speed_time;           /* [15] ... for this many seconds is a stall */
  long request_timeout;          /* [0: none] seconds for one whole request */
  int retries;                   /* [3] after the first attempt; -1 for none */
  long backoff_ms;               /* [250] first retry delay, doubled each time */
  uint64_t background_max_speed; /* [0: unlimited] bytes/s of the background thread */
};

enum remote_state
{
  REMOTE_PARTIAL = 0,  /* blocks missing (or complete but not verified yet) */
  REMOTE_COMPLETE = 1, /* every block present and the file matches the digest */
  REMOTE_CORRUPT = 2,  /* complete twice, and twice not the digest */
};

struct remote_range
{
  uint64_t off;
  uint64_t len;
};

struct remote_info
{
  uint64_t fetched_bytes;   /* received from the network by this process */
  uint64_t requests;        /* HTTP requests sent (retries included) */
  uint64_t present_bytes;   /* of the blob, in the cache */
  uint64_t blob_size;
  uint32_t block_size;
  enum remote_state state;
  unsigned verify_failures; /* digest mismatches seen */
  bool background_running;
  char last_error[512];     /* the background thread's last failure, or "" */
};

/* Open (or resume) the cache of one blob.  NOTSUP for a digest other than
 * sha256, INVALID for bad options, CONFLICT when another process has the
 * cache open (the state file is flock'ed). */
int remote_blob_open (const struct remote_opts *o, struct remote_blob **ret, berth_error *err);

/* berth_layerindex_read_at_fn; data is the struct remote_blob.  Short only
 * at the end of the blob.  UNAVAILABLE / DEADLINE after the retries,
 * NOTFOUND, UNAUTHENTICATED, PERMISSION, INVALID for an answer that is not
 * the bytes asked for. */
int remote_blob_read_at (void *data, uint64_t off, void *buf, size_t len, size_t *ret_n, berth_error *err);

/* Make [off, off + len) present without copying it anywhere. */
int remote_blob_fetch (struct remote_blob *b, uint64_t off, uint64_t len, berth_error *err);

/* Queue ranges for the background thread to fetch first, in this order
 * (before or after it starts). */
int remote_blob_prefetch (struct remote_blob *b, const struct remote_range *ranges, size_t n, berth_error *err);

/* Start the background thread (once; again is a no-op).  It stops by itself
 * when the state is COMPLETE or CORRUPT, and at close. */
int remote_blob_start_background (struct remote_blob *b, berth_error *err);

/* Forget the blocks of [off, off + len) (the caller found bytes there that do
 * not match the TOC): the next read fetches them again.  A no-op once the
 * blob is COMPLETE (the bytes are then the blob's). */
int remote_blob_invalidate (struct remote_blob *b, uint64_t off, uint64_t len, berth_error *err);

/* Replace the extra request headers (a refreshed bearer token). */
int remote_blob_set_headers (struct remote_blob *b, const char *const *headers, berth_error *err);

/* Whether every block of [off, off + len) is in the cache (no fetch). */
bool remote_blob_present (struct remote_blob *b, uint64_t off, uint64_t len);

/* Wait up to timeout_ms (-1: forever) for the state to leave PARTIAL or the
 * background thread to stop; returns the state. */
enum remote_state remote_blob_wait (struct remote_blob *b, long timeout_ms);

/* Either pointer may be NULL. */
void remote_blob_stats (struct remote_blob *b, uint64_t *ret_fetched_bytes, bool *ret_complete);
void remote_blob_info (struct remote_blob *b, struct remote_info *ret);

/* Stops the background thread (aborting its transfer), saves the bitmap and
 * frees everything.  Accepts NULL. */
void remote_blob_close (struct remote_blob *b);

#endif
