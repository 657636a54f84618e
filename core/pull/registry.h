/* core/pull: the registry client (OCI distribution API over libcurl).
 *
 * A registry_session talks to one registry host ("docker.io",
 * "localhost:5000", "ghcr.io") through the endpoints its hosts.toml lists
 * (<config_path>/<host>/hosts.toml, else <config_path>/_default/hosts.toml,
 * else the host itself; docker.io defaults to https://registry-1.docker.io).
 * Mirrors are tried in order; the next one is tried on a connection error,
 * a timeout or a 5xx.  Only endpoints with the "resolve" capability are used
 * by registry_resolve, only those with "pull" by the fetch calls.
 *
 * Authentication is handled inside: credentials come from the options
 * (--user: username + secret, sent to every endpoint that challenges, as
 * ctr does) first, else from the docker config.json (auths, credHelpers,
 * credsStore), looked up at the first challenge for the registry host, or
 * for a mirror's own host (a mirror never gets the registry's config.json
 * credentials); a 401 challenge is answered with Basic
 * or with a Bearer token fetched from the challenge's realm (scope
 * repository:<repo>:pull), cached per (host, scope) until it expires, and
 * refreshed once when a request with a cached token gets a 401.
 * Credentials never appear in error messages.
 *
 * Redirects (blob GETs that go to object storage) are followed; the
 * Authorization header is sent only to the registry's own host, never to
 * the redirect target.
 *
 * Transient failures (5xx, 429, timeouts, connection resets) are retried
 * 3 times with exponential backoff from 200 ms (429's Retry-After honoured
 * up to 10 s).  Errors map to codes:
 *   401 → BERTH_E_UNAUTHENTICATED ("unauthorized: authentication required
 *         for <host>/<repo> (berth login <host>)")
 *   403 → BERTH_E_PERMISSION ("denied: ...")
 *   404 → BERTH_E_NOTFOUND ("not found: <repo>:<ref> on <host>")
 *   other 4xx → BERTH_E_INVALID; 5xx / network → BERTH_E_UNAVAILABLE;
 *   a stalled transfer → BERTH_E_DEADLINE; *cancelled set → BERTH_E_CANCELLED;
 *   digest / size mismatch, a body longer than announced → BERTH_E_INVALID.
 * The registry's JSON error body ({"errors":[{"code","message"}]}) is quoted
 * in the message where present.
 *
 * Threads: a session is not thread-safe; use it from one thread at a time
 * (one session per pull).  Calls block; registry_fetch_blobs runs its own
 * curl multi loop on the calling thread and polls *cancelled at least every
 * 100 ms.  Connections (and HTTP/2 streams, where the server offers h2 over
 * TLS) are reused across all calls of one session.
 */
#ifndef BERTH_CORE_PULL_REGISTRY_H
#define BERTH_CORE_PULL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

/* Largest manifest / index registry_fetch_manifest accepts (and the default
 * bound of registry_fetch_blob_bytes). */
#define REGISTRY_MANIFEST_MAX (4 * 1024 * 1024)

/* The media types sent in Accept for manifests (never schema 1). */
#define REGISTRY_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define REGISTRY_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define REGISTRY_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REGISTRY_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

typedef struct registry_session registry_session;

/* All fields optional (zero = default).  Strings are copied by
 * registry_session_new; the struct need not outlive the call. */
struct registry_options
{
  const char *config_path;       /* [registry].config_path (certs.d layout); NULL: no hosts.toml */
  const char *docker_config_dir; /* NULL: $DOCKER_CONFIG, else ~/.docker */
  const char *username;          /* from the API request (--user); NULL: config.json */
  const char *secret;            /* password or token for username; an empty username
                                    with a secret is an identity token */
  bool plain_http;               /* --plain-http: every endpoint of this host over http:// */
  int max_parallel;              /* max_concurrent_downloads; <= 0: 3 */
  int timeout_s;                 /* connect timeout and stall limit (no byte for this
                                    long → BERTH_E_DEADLINE); <= 0: 30 */
  const char *user_agent;        /* NULL: "berth/<version>" */
};

/* Open a session for `host` (a registry host name with optional port, as
 * the reference parser normalises it: "docker.io", "localhost:5000").
 * Reads hosts.toml and docker config.json (credential helpers run lazily,
 * at the first 401).  Fails with BERTH_E_INVALID on a malformed hosts.toml. */
int registry_session_new (const char *host, const struct registry_options *o, registry_session **ret,
                          berth_error **err);
void registry_session_free (registry_session *s);
static inline void
registry_session_freep (registry_session **s)
{
  registry_session_free (*s);
  *s = NULL;
}

/* Resolve a tag or a digest ("sha256:…") of `repository` ("library/busybox")
 * to the top-level descriptor: HEAD /v2/<repo>/manifests/<ref>, then GET
 * when the HEAD answer has no Docker-Content-Digest (the digest is then
 * computed from the body).  When tag_or_digest is a digest, the returned
 * digest is always that digest.  Returns malloc'd strings; *ret_size is the
 * manifest's length in bytes.  Any out-parameter may be NULL. */
int registry_resolve (registry_session *s, const char *repository, const char *tag_or_digest,
                      char **ret_media_type, char **ret_digest, int64_t *ret_size, berth_error **err);

/* GET a manifest or index by digest; the body is verified against `digest`
 * (sha256 only) and against `size` (when size >= 0) and bounded by
 * REGISTRY_MANIFEST_MAX.  *ret_data is malloc'd and NUL-terminated (not
 * counted in *ret_len); *ret_media_type is the Content-Type (may be NULL on
 * return if the server sent none).  ret_media_type may be NULL. */
int registry_fetch_manifest (registry_session *s, const char *repository, const char *digest, int64_t size,
                             unsigned char **ret_data, size_t *ret_len, char **ret_media_type,
                             berth_error **err);

/* GET a small blob (an image config) whole into memory, verified against
 * digest and size; max_len 0 means REGISTRY_MANIFEST_MAX. */
int registry_fetch_blob_bytes (registry_session *s, const char *repository, const char *digest, int64_t size,
                               size_t max_len, unsigned char **ret_data, size_t *ret_len, berth_error **err);

/* One blob for registry_fetch_blobs.
 *
 * In: digest, size (the descriptor's; > 0 or 0), offset (bytes the caller
 * already holds, 0 <= offset <= size; when offset > 0 a Range request asks
 * for the rest), sink, optional reset and progress, data.
 *
 * Contract for the callbacks (all called on the calling thread):
 *  - sink(data, buf, len) receives the bytes after `offset`, in order, at
 *    most size - offset of them in total.  Return 0 to go on, < 0 to abort
 *    this blob (its result is then BERTH_E_CANCELLED unless the sink returns
 *    another BERTH_E_* code, which is kept; other blobs go on).
 *  - When the server ignores the Range and answers 200 with the whole blob:
 *    if reset is non-NULL, reset(data, 0) is called first and must drop the
 *    bytes held so far (truncate the ingest); the sink then receives the blob
 *    from byte 0.  If reset is NULL, the first `offset` bytes of the body are
 *    discarded and the sink sees only the rest, as if the Range had worked.
 *    A reset returning < 0 aborts the blob like a sink error.
 *  - A transfer cut mid-body and retried resumes from the bytes already
 *    given to the sink (another Range request); the sink is not reset.
 *  - progress(data, done, total): done counts the offset too (bytes held of
 *    total = size); called at least once per received chunk, and once at
 *    the end.
 *  - Content-Length / Content-Range are checked against size and offset; a
 *    body longer than size - offset is cut and the blob fails with
 *    BERTH_E_INVALID ("… sent more than …"); a body shorter than announced
 *    is retried (resumed), and fails with BERTH_E_UNAVAILABLE after the last
 *    try.  The digest of the content is the caller's to verify (the content
 *    writer hashes everything, resumed bytes included, at commit).
 *
 * Out: result (0 or BERTH_E_*) and err (owned by the caller afterwards; free
 * it with berth_error_free) per blob. */
struct registry_blob
{
  const char *digest;
  int64_t size;
  int64_t offset;
  int (*sink) (void *data, const void *buf, size_t len);
  int (*reset) (void *data, int64_t offset);
  void (*progress) (void *data, int64_t done, int64_t total);
  void *data;
  int result;
  berth_error *err;
};

/* Fetch `n` blobs of `repository`, at most max_parallel transfers at a time
 * in one curl multi (connections and h2 streams shared).  Returns 0 when
 * every blob succeeded; otherwise the code of the first failed blob (in
 * array order) with *err describing it, the per-blob results telling the
 * rest.  *cancelled (may be NULL) is polled: once non-zero, every transfer
 * still running stops, and those blobs get BERTH_E_CANCELLED. */
int registry_fetch_blobs (registry_session *s, const char *repository, struct registry_blob *blobs, size_t n,
                          const volatile int *cancelled, berth_error **err);

/* How another process reaches one blob on its own (the fuse snapshotter's
 * lazy reader): the blob's URL on the first endpoint with the pull
 * capability that answers a HEAD for it (mirrors first, as for fetches;
 * authentication done, so a Bearer token is fresh), and what to send with
 * it.  headers: "Name: value\n" lines (hosts.toml header lines and the
 * Authorization the endpoint wants), NULL when none — a secret: write it
 * only to a 0600 file.  ca_pem: the CAs to trust (system roots + the
 * endpoint's hosts.toml CAs), NULL for the system's.  NOTSUP for an
 * endpoint another process could not use as configured (skip_verify,
 * client certificates): the caller then downloads the blob itself. */
struct registry_blob_access
{
  char *url;
  char *headers;
  char *ca_pem;
  size_t ca_len;
  bool plain_http;
  int64_t size;         /* Content-Length of the HEAD answer, -1 when absent */
  time_t token_expires; /* headers hold a Bearer token valid until then; 0: nothing expires */
};
int registry_blob_access (registry_session *s, const char *repository, const char *digest,
                          struct registry_blob_access *ret, berth_error **err);
void registry_blob_access_clear (struct registry_blob_access *a);

/* The host the session was opened for ("docker.io"). */
const char *registry_session_host (const registry_session *s);

#endif
