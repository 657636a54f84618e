/* The registry client: OCI distribution API requests over one curl multi
 * handle per session.  See registry.h for the contract.
 *
 * Every request is a `struct xfer`, a small state machine driven by
 * run_xfers(): it walks the endpoints that have the needed capability,
 * answers 401 challenges (basic or bearer), follows redirects by hand (so
 * that neither Authorization nor the hosts.toml headers reach another
 * origin), retries transient failures with backoff and, for blobs, resumes
 * from the bytes already handed to the sink with a Range request.
 */
#include <config.h>

#define CURL_DISABLE_TYPECHECK /* lazy-curl.h turns curl_easy_setopt into a pointer */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "core/pull/auth.h"
#include "core/pull/credentials.h"
#include "core/pull/hosts.h"
#include "core/pull/registry.h"
#include "lazy-curl.h"

#define TRIES_PER_ENDPOINT 3
#define MAX_RESUMES 10
#define BACKOFF_FIRST_MS 200
#define RETRY_AFTER_MAX_MS 10000
#define MAX_REDIRECTS 5
#define ERROR_BODY_MAX (64 * 1024)
#define POLL_MS 100

struct endpoint
{
  const struct registry_host *h;
  bool use_http;       /* after an HTTP fallback */
  char *ca_pem;        /* system roots + hosts.toml CAs, NULL when none configured */
  size_t ca_len;
  enum auth_scheme auth; /* learnt from the last challenge */
  char *realm, *service;
  struct registry_credentials creds; /* loaded at the first challenge */
  bool creds_loaded;
};

struct registry_session
{
  char *host;
  struct registry_hosts *hosts;
  struct endpoint *eps;
  size_t n_eps;
  struct registry_credentials creds;
  bool creds_loaded;
  char *docker_config_dir;
  struct auth_token_cache *tokens;
  unsigned token_gen;
  CURLM *multi;
  int max_parallel, timeout_s;
  char *user_agent;
};

enum xfer_kind
{
  XFER_HEAD,
  XFER_GET_BYTES, /* manifest or small blob into memory */
  XFER_BLOB,      /* streamed to a registry_blob */
};

struct xfer
{
  registry_session *s;
  enum xfer_kind kind;
  const char *repo;
  const char *ref;   /* tag or digest (for messages) */
  const char *what;  /* "manifests" or "blobs" */
  unsigned cap;
  size_t max_len;    /* XFER_GET_BYTES bound */

  /* endpoint walk */
  size_t ep;         /* index in s->eps (only those with cap are used) */
  int tries, resumes, auth_tries, redirects;
  char *url;         /* a redirect target, NULL for the endpoint's own URL */
  unsigned token_gen;
  bool sent_auth;
  int64_t not_before_ms;
  bool active, finished;

  CURL *easy;
  struct curl_slist *hdrs;

  /* the current response */
  long status;
  bool headers_done;
  char *content_type, *docker_digest, *content_range, *www_auth, *retry_after;
  int64_t content_length;

  /* bodies */
  unsigned char *buf;
  size_t len;
  char *errbody;
  size_t errlen;

  /* blobs */
  struct registry_blob *blob;
  int64_t have;        /* bytes of the blob held by the sink, offset included */
  int64_t skip;        /* body bytes to drop (200 answer to a Range request) */
  int64_t expect_end;  /* have must reach this at the end of this response */
  int64_t attempt_bytes;
  bool no_range;

  /* outcome */
  int fatal;           /* set by a callback: fail without retry */
  berth_error *fatal_err;
  int result;
  berth_error *err;
  int first_code;      /* first non-404 endpoint failure, kept for the message */
  berth_error *first_err;
};

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- validation ----------------------------------------------------- */

static bool
valid_repository (const char *r)
{
  size_t l = strlen (r);
  if (l == 0 || l > 255 || r[0] == '/' || r[l - 1] == '/')
    return false;
  for (const char *p = r; *p; p++)
    if (!(('a' <= *p && *p <= 'z') || ('0' <= *p && *p <= '9') || *p == '.' || *p == '_' || *p == '-' || *p == '/'))
      return false;
  return strstr (r, "//") == NULL && strstr (r, "..") == NULL;
}

static const EVP_MD *
digest_algo (const char *d, size_t *ret_hexlen)
{
  if (strncmp (d, "sha256:", 7) == 0)
    {
      *ret_hexlen = 64;
      return EVP_sha256 ();
    }
  if (strncmp (d, "sha512:", 7) == 0)
    {
      *ret_hexlen = 128;
      return EVP_sha512 ();
    }
  return NULL;
}

static bool
valid_digest (const char *d)
{
  size_t hl;
  if (digest_algo (d, &hl) == NULL || strlen (d) != 7 + hl)
    return false;
  for (const char *p = d + 7; *p; p++)
    if (!(('0' <= *p && *p <= '9') || ('a' <= *p && *p <= 'f')))
      return false;
  return true;
}

static bool
valid_tag (const char *t)
{
  size_t l = strlen (t);
  if (l == 0 || l > 128 || t[0] == '.' || t[0] == '-')
    return false;
  for (const char *p = t; *p; p++)
    if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') || *p == '_' || *p == '.'
          || *p == '-'))
      return false;
  return true;
}

/* "sha256:<hex>" of data, malloc'd, in the algorithm of `like`. */
static char *
digest_of (const char *like, const void *data, size_t len)
{
  size_t hl;
  const EVP_MD *md = digest_algo (like, &hl);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int ol = 0;
  if (md == NULL)
    md = EVP_sha256 ();
  if (!EVP_Digest (data, len, out, &ol, md, NULL))
    return NULL;
  char *s = malloc (7 + 2 * ol + 1);
  if (s == NULL)
    return NULL;
  memcpy (s, md == EVP_sha512 () ? "sha512:" : "sha256:", 7);
  for (unsigned i = 0; i < ol; i++)
    sprintf (s + 7 + 2 * i, "%02x", out[i]);
  return s;
}

/* ---- session -------------------------------------------------------- */

const char *
registry_session_host (const registry_session *s)
{
  return s->host;
}

static int
read_whole (const char *path, size_t max, char **ret, size_t *ret_len)
{
  _cleanup_fclose_ FILE *f = fopen (path, "re");
  if (f == NULL)
    return -errno;
  _cleanup_free_ char *b = malloc (max + 1);
  if (b == NULL)
    return -ENOMEM;
  size_t n = fread (b, 1, max + 1, f);
  if (ferror (f))
    return -EIO;
  if (n > max)
    return -EFBIG;
  b[n] = '\0';
  *ret = TAKE_PTR (b);
  *ret_len = n;
  return 0;
}

static const char *
system_ca_bundle (void)
{
  static const char *const cands[] = { "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                                       "/etc/ssl/cert.pem", NULL };
  for (size_t i = 0; cands[i]; i++)
    if (access (cands[i], R_OK) == 0)
      return cands[i];
  return NULL;
}

/* hosts.toml `ca` adds to the system roots (as containerd does), while curl's
 * CAINFO replaces them: hand curl the concatenation. */
static int
endpoint_load_ca (struct endpoint *e, berth_error **err)
{
  if (e->h->ca == NULL || e->h->ca[0] == NULL)
    return 0;
  size_t total = 0;
  char *all = NULL;
  const char *sys = system_ca_bundle ();
  for (ssize_t i = sys ? -1 : 0; e->h->ca[i < 0 ? 0 : i] || i < 0; i++)
    {
      const char *p = i < 0 ? sys : e->h->ca[i];
      _cleanup_free_ char *b = NULL;
      size_t l = 0;
      int r = read_whole (p, 16 * 1024 * 1024, &b, &l);
      if (r < 0)
        {
          free (all);
          return berth_error_set (err, berth_errcode_from_errno (-r), -r, "reading CA certificate %s", p);
        }
      char *n = realloc (all, total + l + 2);
      if (n == NULL)
        {
          free (all);
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "CA certificates");
        }
      all = n;
      memcpy (all + total, b, l);
      total += l;
      all[total++] = '\n';
      all[total] = '\0';
    }
  e->ca_pem = all;
  e->ca_len = total;
  return 0;
}

void
registry_session_free (registry_session *s)
{
  if (s == NULL)
    return;
  for (size_t i = 0; i < s->n_eps; i++)
    {
      free (s->eps[i].ca_pem);
      free (s->eps[i].realm);
      free (s->eps[i].service);
      credentials_clear (&s->eps[i].creds);
    }
  free (s->eps);
  hosts_free (s->hosts);
  credentials_clear (&s->creds);
  auth_token_cache_free (s->tokens);
  if (s->multi)
    curl_multi_cleanup (s->multi);
  free (s->docker_config_dir);
  free (s->user_agent);
  free (s->host);
  free (s);
}

static char *
strdup_or_null (const char *s)
{
  return s ? strdup (s) : NULL;
}

int
registry_session_new (const char *host, const struct registry_options *o, registry_session **ret, berth_error **err)
{
  static const struct registry_options defaults = { 0 };
  if (o == NULL)
    o = &defaults;
  int r = lazy_curl_load (err); /* also runs curl_global_init, once */
  if (r < 0)
    return berth_error_wrap (err, "registry %s", host);

  _cleanup_(registry_session_freep) registry_session *s = calloc (1, sizeof *s);
  if (s == NULL || (s->host = strdup (host)) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "registry session");
  r = hosts_load (o->config_path, host, o->plain_http, &s->hosts, err);
  if (r < 0)
    return berth_error_wrap (err, "registry %s", host);
  s->eps = calloc (s->hosts->n, sizeof *s->eps);
  if (s->eps == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "registry session");
  s->n_eps = s->hosts->n;
  for (size_t i = 0; i < s->n_eps; i++)
    {
      s->eps[i].h = &s->hosts->items[i];
      r = endpoint_load_ca (&s->eps[i], err);
      if (r < 0)
        return berth_error_wrap (err, "registry %s", host);
    }
  if (o->username || o->secret)
    {
      if (o->username && o->username[0])
        {
          s->creds.username = strdup (o->username);
          s->creds.secret = strdup (o->secret ? o->secret : "");
          if (s->creds.username == NULL || s->creds.secret == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "registry session");
        }
      else if (o->secret && o->secret[0])
        {
          s->creds.identity_token = strdup (o->secret);
          if (s->creds.identity_token == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "registry session");
        }
      s->creds_loaded = true;
    }
  s->docker_config_dir = strdup_or_null (o->docker_config_dir);
  s->tokens = auth_token_cache_new ();
  s->multi = curl_multi_init ();
  s->user_agent = strdup (o->user_agent ? o->user_agent : "berth/" PACKAGE_VERSION);
  if ((o->docker_config_dir && s->docker_config_dir == NULL) || s->tokens == NULL || s->multi == NULL
      || s->user_agent == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "registry session");
  curl_multi_setopt (s->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
  s->max_parallel = o->max_parallel > 0 ? o->max_parallel : 3;
  s->timeout_s = o->timeout_s > 0 ? o->timeout_s : 30;
  *ret = TAKE_PTR (s);
  return 0;
}

/* The credentials for endpoint e: those of the request (--user) for every
 * endpoint, as ctr does; else config.json's for the endpoint's own host (a
 * mirror never gets the namespace's credentials from config.json). */
static int
endpoint_credentials (registry_session *s, struct endpoint *e, berth_error **err)
{
  if (e->creds_loaded)
    return 0;
  if (s->creds_loaded)
    {
      struct registry_credentials *c = &e->creds;
      c->username = strdup_or_null (s->creds.username);
      c->secret = strdup_or_null (s->creds.secret);
      c->identity_token = strdup_or_null (s->creds.identity_token);
      if ((s->creds.username && c->username == NULL) || (s->creds.secret && c->secret == NULL)
          || (s->creds.identity_token && c->identity_token == NULL))
        {
          credentials_clear (c);
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "credentials");
        }
    }
  else
    {
      const char *who = e->h->mirror ? e->h->host : s->host;
      int r = credentials_lookup (s->docker_config_dir, who, &e->creds, err);
      if (r < 0)
        return berth_error_wrap (err, "credentials for %s", who);
    }
  e->creds_loaded = true;
  return 0;
}

/* ---- URLs and origins ----------------------------------------------- */

static const char *
ep_scheme (const struct endpoint *e)
{
  return e->use_http ? "http" : e->h->scheme;
}

/* The length of "scheme://authority" at the start of url. */
static size_t
origin_len (const char *url)
{
  const char *p = strstr (url, "://");
  if (p == NULL)
    return 0;
  p += 3;
  return (size_t) (p - url) + strcspn (p, "/?#");
}

static bool
same_origin (const struct endpoint *e, const char *url)
{
  _cleanup_free_ char *o = NULL;
  if (asprintf (&o, "%s://%s", ep_scheme (e), e->h->host) < 0)
    return false;
  size_t l = origin_len (url);
  /* an explicit default port is the same origin */
  if (l == strlen (o) && strncasecmp (url, o, l) == 0)
    return true;
  _cleanup_free_ char *o2 = NULL;
  if (asprintf (&o2, "%s:%s", o, strcmp (ep_scheme (e), "https") == 0 ? "443" : "80") < 0)
    return false;
  return l == strlen (o2) && strncasecmp (url, o2, l) == 0;
}

static char *
endpoint_url (registry_session *s, const struct endpoint *e, const char *repo, const char *what, const char *ref)
{
  char *u = NULL;
  _cleanup_free_ char *ns = NULL;
  if (e->h->mirror)
    {
      char *esc = curl_easy_escape (NULL, s->host, 0);
      if (esc == NULL || asprintf (&ns, "?ns=%s", esc) < 0)
        ns = NULL;
      curl_free (esc);
      if (ns == NULL)
        return NULL;
    }
  if (asprintf (&u, "%s://%s%s/%s/%s/%s%s", ep_scheme (e), e->h->host, e->h->path, repo, what, ref, ns ? ns : "")
      < 0)
    return NULL;
  return u;
}

/* ---- response parsing ----------------------------------------------- */

static void
xfer_reset_response (struct xfer *x)
{
  x->status = 0;
  x->headers_done = false;
  free (x->content_type);
  free (x->docker_digest);
  free (x->content_range);
  free (x->www_auth);
  free (x->retry_after);
  x->content_type = x->docker_digest = x->content_range = x->www_auth = x->retry_after = NULL;
  x->content_length = -1;
  free (x->errbody);
  x->errbody = NULL;
  x->errlen = 0;
  x->skip = 0;
  x->expect_end = -1;
  x->attempt_bytes = 0;
  if (x->kind != XFER_BLOB)
    {
      free (x->buf);
      x->buf = NULL;
      x->len = 0;
    }
}

static int
xfer_fail_fatal (struct xfer *x, int code, const char *fmt, ...) BERTH_PRINTF (3, 4);

static int
xfer_fail_fatal (struct xfer *x, int code, const char *fmt, ...)
{
  if (x->fatal)
    return x->fatal;
  va_list ap;
  va_start (ap, fmt);
  _cleanup_free_ char *m = NULL;
  if (vasprintf (&m, fmt, ap) < 0)
    m = NULL;
  va_end (ap);
  x->fatal = berth_error_set (&x->fatal_err, code, 0, "%s", m ? m : "error");
  return x->fatal;
}

static char *
trim_value (const char *v, size_t l)
{
  while (l > 0 && (*v == ' ' || *v == '\t'))
    v++, l--;
  while (l > 0 && (v[l - 1] == '\r' || v[l - 1] == '\n' || v[l - 1] == ' ' || v[l - 1] == '\t'))
    l--;
  return strndup (v, l);
}

static bool
header_is (const char *line, size_t len, const char *name, const char **ret_value, size_t *ret_vlen)
{
  size_t nl = strlen (name);
  if (len <= nl || line[nl] != ':' || strncasecmp (line, name, nl) != 0)
    return false;
  *ret_value = line + nl + 1;
  *ret_vlen = len - nl - 1;
  return true;
}

static bool
parse_int64 (const char *s, int64_t *ret)
{
  if (*s < '0' || *s > '9')
    return false;
  int64_t v = 0;
  for (; *s >= '0' && *s <= '9'; s++)
    {
      if (v > (INT64_MAX - 9) / 10)
        return false;
      v = v * 10 + (*s - '0');
    }
  if (*s != '\0')
    return false;
  *ret = v;
  return true;
}

/* Checks a 2xx blob answer against what was asked; runs once the headers
 * are complete, before any body byte reaches the sink. */
static int
blob_check_headers (struct xfer *x)
{
  struct registry_blob *b = x->blob;
  if (x->status == 206)
    {
      int64_t a, e, total = -1;
      char tot[32] = "";
      if (x->content_range == NULL
          || sscanf (x->content_range, "bytes %" SCNd64 "-%" SCNd64 "/%31s", &a, &e, tot) != 3 || a < 0 || e < a
          || (strcmp (tot, "*") != 0 && !parse_int64 (tot, &total)))
        return xfer_fail_fatal (x, BERTH_E_INVALID, "partial answer without a valid Content-Range");
      if (a != x->have)
        return xfer_fail_fatal (x, BERTH_E_INVALID, "Content-Range starts at %" PRId64 ", asked for %" PRId64, a,
                                x->have);
      if ((total >= 0 && total != b->size) || e >= b->size)
        return xfer_fail_fatal (x, BERTH_E_INVALID,
                                "registry sent more than the descriptor's %" PRId64 " bytes (Content-Range %s)",
                                b->size, x->content_range);
      if (x->content_length >= 0 && x->content_length != e - a + 1)
        return xfer_fail_fatal (x, BERTH_E_INVALID, "Content-Length %" PRId64 " does not match Content-Range %s",
                                x->content_length, x->content_range);
      x->expect_end = e + 1;
      return 0;
    }
  /* 200: the whole blob */
  if (x->content_length >= 0 && x->content_length != b->size)
    return xfer_fail_fatal (x, BERTH_E_INVALID,
                            "registry announced %" PRId64 " bytes (Content-Length) for a blob of %" PRId64,
                            x->content_length, b->size);
  if (x->have > 0)
    {
      if (b->reset)
        {
          int r = b->reset (b->data, 0);
          if (r < 0)
            return xfer_fail_fatal (x, r < BERTH_E_MIN ? BERTH_E_CANCELLED : r, "restarting the blob failed");
          x->have = 0;
        }
      else
        x->skip = x->have;
    }
  x->expect_end = b->size;
  return 0;
}

static size_t
on_header (char *line, size_t size, size_t nmemb, void *data)
{
  struct xfer *x = data;
  size_t len = size * nmemb;
  const char *v;
  size_t vl;

  if (len >= 5 && strncmp (line, "HTTP/", 5) == 0)
    {
      xfer_reset_response (x);
      const char *sp = memchr (line, ' ', len);
      if (sp && (size_t) (sp - line) + 4 <= len)
        x->status = strtol (sp + 1, NULL, 10);
      return len;
    }
  if (len <= 2 && (line[0] == '\r' || line[0] == '\n'))
    {
      if (x->status >= 200)
        {
          x->headers_done = true;
          if (x->kind == XFER_BLOB && x->status >= 200 && x->status < 300 && blob_check_headers (x) < 0)
            return 0;
          if (x->kind == XFER_GET_BYTES && x->status >= 200 && x->status < 300 && x->content_length >= 0
              && (uint64_t) x->content_length > x->max_len)
            {
              xfer_fail_fatal (x, BERTH_E_INVALID, "%s %s is too large (%" PRId64 " bytes, at most %zu)",
                               x->what[0] == 'm' ? "manifest" : "blob", x->ref, x->content_length, x->max_len);
              return 0;
            }
        }
      return len;
    }
  char **slot = NULL;
  if (header_is (line, len, "Content-Type", &v, &vl))
    slot = &x->content_type;
  else if (header_is (line, len, "Docker-Content-Digest", &v, &vl))
    slot = &x->docker_digest;
  else if (header_is (line, len, "Content-Range", &v, &vl))
    slot = &x->content_range;
  else if (header_is (line, len, "Retry-After", &v, &vl))
    slot = &x->retry_after;
  else if (header_is (line, len, "Content-Length", &v, &vl))
    {
      _cleanup_free_ char *t = trim_value (v, vl);
      int64_t n;
      if (t && parse_int64 (t, &n))
        x->content_length = n;
      return len;
    }
  else if (header_is (line, len, "WWW-Authenticate", &v, &vl))
    {
      _cleanup_free_ char *t = trim_value (v, vl);
      if (t == NULL)
        return 0;
      size_t cur = x->www_auth ? strlen (x->www_auth) : 0;
      if (cur + strlen (t) + 2 > AUTH_HEADER_MAX)
        return len; /* ignore the excess; the parser bounds it anyway */
      char *n = NULL;
      if (asprintf (&n, "%s%s%s", x->www_auth ? x->www_auth : "", x->www_auth ? ", " : "", t) < 0)
        return 0;
      free (x->www_auth);
      x->www_auth = n;
      return len;
    }
  if (slot)
    {
      free (*slot);
      *slot = trim_value (v, vl);
    }
  return len;
}

static size_t
on_body (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct xfer *x = data;
  size_t n = size * nmemb;
  if (x->fatal)
    return 0;
  if (x->status < 200 || x->status >= 300)
    {
      /* an error document (or a redirect's body): keep the start of it */
      size_t keep = x->errlen + n > ERROR_BODY_MAX ? ERROR_BODY_MAX - x->errlen : n;
      if (keep)
        {
          char *b = realloc (x->errbody, x->errlen + keep + 1);
          if (b == NULL)
            return 0;
          x->errbody = b;
          memcpy (b + x->errlen, ptr, keep);
          x->errlen += keep;
          b[x->errlen] = '\0';
        }
      return n;
    }
  if (x->kind == XFER_GET_BYTES)
    {
      if (x->len + n > x->max_len)
        {
          xfer_fail_fatal (x, BERTH_E_INVALID, "%s %s is larger than %zu bytes", x->what[0] == 'm' ? "manifest" : "blob",
                           x->ref, x->max_len);
          return 0;
        }
      unsigned char *b = realloc (x->buf, x->len + n + 1);
      if (b == NULL)
        return 0;
      x->buf = b;
      memcpy (b + x->len, ptr, n);
      x->len += n;
      b[x->len] = '\0';
      return n;
    }
  if (x->kind != XFER_BLOB)
    return n;

  struct registry_blob *b = x->blob;
  const char *p = ptr;
  size_t left = n;
  x->attempt_bytes += (int64_t) n;
  if (x->skip > 0)
    {
      size_t k = (int64_t) left < x->skip ? left : (size_t) x->skip;
      x->skip -= (int64_t) k;
      p += k;
      left -= k;
    }
  if (left == 0)
    return n;
  int64_t room = (x->expect_end >= 0 ? x->expect_end : b->size) - x->have;
  bool over = (int64_t) left > room;
  size_t give = over ? (size_t) (room > 0 ? room : 0) : left;
  if (give > 0)
    {
      int r = b->sink (b->data, p, give);
      if (r < 0)
        {
          xfer_fail_fatal (x, r < BERTH_E_MIN ? BERTH_E_CANCELLED : r, "writing the blob failed");
          return 0;
        }
      x->have += (int64_t) give;
      if (b->progress)
        b->progress (b->data, x->have, b->size);
    }
  if (over)
    {
      xfer_fail_fatal (x, BERTH_E_INVALID, "registry sent more than the descriptor's %" PRId64 " bytes", b->size);
      return 0;
    }
  return n;
}

/* "CODE: message; CODE: message" from a distribution error document. */
static char *
registry_errors (const char *body, size_t len)
{
  if (body == NULL || len == 0)
    return NULL;
  struct json_tokener *tok = json_tokener_new_ex (16);
  if (tok == NULL)
    return NULL;
  struct json_object *o = json_tokener_parse_ex (tok, body, (int) len);
  json_tokener_free (tok);
  struct json_object *errs;
  char *out = NULL;
  if (o && json_object_is_type (o, json_type_object) && json_object_object_get_ex (o, "errors", &errs)
      && json_object_is_type (errs, json_type_array))
    {
      size_t n = json_object_array_length (errs);
      for (size_t i = 0; i < n && i < 3; i++)
        {
          struct json_object *e = json_object_array_get_idx (errs, i), *c = NULL, *m = NULL;
          if (!json_object_is_type (e, json_type_object))
            continue;
          json_object_object_get_ex (e, "code", &c);
          json_object_object_get_ex (e, "message", &m);
          char piece[300];
          snprintf (piece, sizeof piece, "%.60s%s%.200s",
                    c && json_object_is_type (c, json_type_string) ? json_object_get_string (c) : "",
                    c && m ? ": " : "",
                    m && json_object_is_type (m, json_type_string) ? json_object_get_string (m) : "");
          for (char *q = piece; *q; q++)
            if ((unsigned char) *q < 0x20 || *q == 0x7f)
              *q = '?';
          char *n2 = NULL;
          if (asprintf (&n2, "%s%s%s", out ? out : "", out ? "; " : "", piece) < 0)
            break;
          free (out);
          out = n2;
        }
    }
  json_object_put (o);
  return out;
}

/* ---- transfer state machine ----------------------------------------- */

static struct endpoint *
xfer_endpoint (struct xfer *x)
{
  return x->ep < x->s->n_eps ? &x->s->eps[x->ep] : NULL;
}

/* Move x->ep to the first endpoint >= from with the capability. */
static bool
xfer_seek_endpoint (struct xfer *x, size_t from)
{
  for (size_t i = from; i < x->s->n_eps; i++)
    if (x->s->eps[i].h->caps & x->cap)
      {
        x->ep = i;
        return true;
      }
  x->ep = x->s->n_eps;
  return false;
}

static char *
scope_for (const struct xfer *x)
{
  char *sc = NULL;
  if (asprintf (&sc, "repository:%s:pull", x->repo) < 0)
    return NULL;
  return sc;
}

static void
apply_tls (CURL *c, const struct endpoint *e)
{
  if (e->h->skip_verify)
    {
      curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
  if (e->ca_pem)
    {
      struct curl_blob blob = { .data = e->ca_pem, .len = e->ca_len, .flags = CURL_BLOB_NOCOPY };
      curl_easy_setopt (c, CURLOPT_CAINFO_BLOB, &blob);
    }
  if (e->h->client_cert && e->h->client_cert[0])
    {
      curl_easy_setopt (c, CURLOPT_SSLCERT, e->h->client_cert[0]);
      curl_easy_setopt (c, CURLOPT_SSLKEY,
                        e->h->client_key[0][0] ? e->h->client_key[0] : e->h->client_cert[0]);
    }
}

static int
xfer_setup (struct xfer *x, berth_error **err)
{
  registry_session *s = x->s;
  struct endpoint *e = xfer_endpoint (x);
  _cleanup_free_ char *own_url = NULL;
  const char *url = x->url;
  if (url == NULL)
    {
      own_url = endpoint_url (s, e, x->repo, x->what, x->ref);
      if (own_url == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "request");
      url = own_url;
    }
  bool same = same_origin (e, url);

  if (x->easy == NULL && (x->easy = curl_easy_init ()) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "request");
  CURL *c = x->easy;
  curl_easy_reset (c);
  curl_slist_free_all (x->hdrs);
  x->hdrs = NULL;
  xfer_reset_response (x);

  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_PRIVATE, x);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt (c, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt (c, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, (long) s->timeout_s);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, (long) s->timeout_s);
  curl_easy_setopt (c, CURLOPT_USERAGENT, s->user_agent);
  curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt (c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, x);
  if (x->kind == XFER_HEAD)
    curl_easy_setopt (c, CURLOPT_NOBODY, 1L);

  struct curl_slist *h = NULL;
#define ADD_HEADER(line)                                                 \
  do                                                                     \
    {                                                                    \
      struct curl_slist *n_ = curl_slist_append (h, (line));             \
      if (n_ == NULL)                                                    \
        {                                                                \
          curl_slist_free_all (h);                                       \
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "request"); \
        }                                                                \
      h = n_;                                                            \
    }                                                                    \
  while (0)

  if (strcmp (x->what, "manifests") == 0)
    ADD_HEADER ("Accept: " REGISTRY_MT_OCI_MANIFEST ", " REGISTRY_MT_OCI_INDEX ", " REGISTRY_MT_DOCKER_MANIFEST
                ", " REGISTRY_MT_DOCKER_LIST);
  if (x->kind == XFER_BLOB && x->have > 0 && !x->no_range)
    {
      char range[64];
      snprintf (range, sizeof range, "Range: bytes=%" PRId64 "-", x->have);
      ADD_HEADER (range);
    }
  x->sent_auth = false;
  if (same)
    {
      apply_tls (c, e);
      for (char **l = e->h->headers; l && *l; l++)
        ADD_HEADER (*l);
      if (e->auth == AUTH_SCHEME_BEARER)
        {
          _cleanup_free_ char *scope = scope_for (x);
          const char *tok = scope ? auth_token_cache_get (s->tokens, e->h->host, scope, time (NULL)) : NULL;
          if (tok)
            {
              _cleanup_free_ char *line = NULL;
              if (asprintf (&line, "Authorization: Bearer %s", tok) < 0)
                line = NULL;
              if (line)
                {
                  struct curl_slist *n_ = curl_slist_append (h, line);
                  explicit_bzero (line, strlen (line));
                  if (n_ == NULL)
                    {
                      curl_slist_free_all (h);
                      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "request");
                    }
                  h = n_;
                }
              x->sent_auth = true;
              x->token_gen = s->token_gen;
            }
        }
      else if (e->auth == AUTH_SCHEME_BASIC && e->creds.username)
        {
          /* curl's own basic auth: never sent to another host on redirects */
          curl_easy_setopt (c, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
          curl_easy_setopt (c, CURLOPT_USERNAME, e->creds.username);
          curl_easy_setopt (c, CURLOPT_PASSWORD, e->creds.secret);
          x->sent_auth = true;
        }
    }
#undef ADD_HEADER
  x->hdrs = h;
  curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
  return 0;
}

static void
xfer_finish (struct xfer *x, int code, berth_error **e)
{
  x->finished = true;
  x->result = code;
  berth_error_free (x->err);
  x->err = e ? *e : NULL;
  if (e)
    *e = NULL;
}

static const char *
xfer_subject (struct xfer *x, char *buf, size_t sz)
{
  if (x->kind == XFER_BLOB || strcmp (x->what, "blobs") == 0)
    snprintf (buf, sz, "blob %s of %s", x->ref, x->repo);
  else
    snprintf (buf, sz, "%s%s%s", x->repo, strchr (x->ref, ':') ? "@" : ":", x->ref);
  return buf;
}

/* An endpoint gave a definite error: try the next one, or give up with the
 * most telling error seen. */
static void
xfer_endpoint_failed (struct xfer *x, int code, berth_error *e)
{
  if (code != BERTH_E_NOTFOUND && x->first_err == NULL)
    {
      x->first_code = code;
      x->first_err = e;
      e = NULL;
    }
  free (x->url);
  x->url = NULL;
  x->tries = 0;
  x->auth_tries = 0;
  x->redirects = 0;
  if (xfer_seek_endpoint (x, x->ep + 1))
    {
      berth_error_free (e);
      x->not_before_ms = 0;
      return;
    }
  if (x->first_err)
    {
      berth_error_free (e);
      xfer_finish (x, x->first_code, &x->first_err);
    }
  else
    xfer_finish (x, code, &e);
}

static void
xfer_http_error (struct xfer *x)
{
  registry_session *s = x->s;
  char subj[512];
  _cleanup_free_ char *reg = registry_errors (x->errbody, x->errlen);
  berth_error *e = NULL;
  int code;
  xfer_subject (x, subj, sizeof subj);
  switch (x->status)
    {
    case 401:
      code = berth_error_set (&e, BERTH_E_UNAUTHENTICATED, 0,
                              "unauthorized: authentication required for %s/%s (berth login %s)%s%s", s->host, x->repo,
                              s->host, reg ? "; registry: " : "", reg ? reg : "");
      break;
    case 403:
      code = berth_error_set (&e, BERTH_E_PERMISSION, 0, "denied: access to %s on %s is denied%s%s", subj, s->host,
                              reg ? "; registry: " : "", reg ? reg : "");
      break;
    case 404:
      code = berth_error_set (&e, BERTH_E_NOTFOUND, 0, "not found: %s on %s%s%s", subj, s->host,
                              reg ? "; registry: " : "", reg ? reg : "");
      break;
    default:
      code = berth_error_set (&e, x->status >= 500 ? BERTH_E_UNAVAILABLE : BERTH_E_INVALID, 0,
                              "%s answered HTTP %ld for %s%s%s", s->host, x->status, subj, reg ? "; registry: " : "",
                              reg ? reg : "");
      break;
    }
  xfer_endpoint_failed (x, code, e);
}

static void
token_setup (void *data, void *curl, const char *url)
{
  registry_session *s = data;
  for (size_t i = 0; i < s->n_eps; i++)
    if (same_origin (&s->eps[i], url))
      {
        apply_tls (curl, &s->eps[i]);
        return;
      }
}

/* A 401 from the endpoint itself.  Returns true when the request should be
 * sent again (with credentials); otherwise x is failed or moved on. */
static bool
xfer_answer_challenge (struct xfer *x)
{
  registry_session *s = x->s;
  struct endpoint *e = xfer_endpoint (x);
  berth_error *aerr = NULL;
  struct auth_challenge *cs = NULL;
  size_t n = 0;

  if (x->auth_tries >= 2 || x->www_auth == NULL
      || auth_parse_challenges (x->www_auth, strlen (x->www_auth), &cs, &n, &aerr) < 0)
    {
      berth_error_free (aerr);
      xfer_http_error (x);
      return false;
    }
  const struct auth_challenge *bearer = NULL, *basic = NULL;
  for (size_t i = 0; i < n; i++)
    {
      if (cs[i].scheme == AUTH_SCHEME_BEARER && bearer == NULL)
        bearer = &cs[i];
      if (cs[i].scheme == AUTH_SCHEME_BASIC && basic == NULL)
        basic = &cs[i];
    }
  x->auth_tries++;
  bool again = false;
  if (bearer)
    {
      _cleanup_free_ char *scope = scope_for (x);
      const char *cached = scope ? auth_token_cache_get (s->tokens, e->h->host, scope, time (NULL)) : NULL;
      free (e->realm);
      free (e->service);
      e->realm = strdup_or_null (bearer->realm);
      e->service = strdup_or_null (bearer->service);
      e->auth = AUTH_SCHEME_BEARER;
      if (cached && (!x->sent_auth || x->token_gen != s->token_gen))
        again = true; /* another transfer fetched a newer token meanwhile */
      else if (scope)
        {
          /* the token we sent was refused (expired): fetch a new one */
          auth_token_cache_drop (s->tokens, e->h->host, scope);
          if (endpoint_credentials (s, e, &aerr) < 0)
            goto failed;
          char *tok = NULL;
          time_t exp = 0;
          struct auth_fetch f = { .realm = e->realm, .service = e->service, .scope = scope,
                                  .creds = e->creds.username || e->creds.identity_token ? &e->creds : NULL,
                                  .setup = token_setup, .data = s, .timeout_s = s->timeout_s,
                                  .user_agent = s->user_agent };
          if (auth_fetch_token (&f, &tok, &exp, &aerr) < 0)
            goto failed;
          int r = auth_token_cache_put (s->tokens, e->h->host, scope, tok, exp);
          explicit_bzero (tok, strlen (tok));
          free (tok);
          if (r < 0)
            {
              berth_error_set (&aerr, BERTH_E_NOMEM, ENOMEM, "token cache");
              goto failed;
            }
          s->token_gen++;
          again = true;
        }
    }
  else if (basic)
    {
      if (endpoint_credentials (s, e, &aerr) < 0)
        goto failed;
      e->auth = AUTH_SCHEME_BASIC;
      again = e->creds.username != NULL && !(x->sent_auth && x->auth_tries > 1);
      if (!again)
        {
          auth_challenges_free (cs, n);
          xfer_http_error (x);
          return false;
        }
    }
  else
    {
      auth_challenges_free (cs, n);
      xfer_http_error (x);
      return false;
    }
  auth_challenges_free (cs, n);
  return again;

failed:
  auth_challenges_free (cs, n);
  {
    int code = aerr ? aerr->code : BERTH_E_UNAUTHENTICATED;
    berth_error_wrap (&aerr, "unauthorized: authentication for %s/%s failed (berth login %s)", s->host, x->repo,
                      s->host);
    xfer_endpoint_failed (x, code, aerr);
  }
  return false;
}

static bool
curl_transient (CURLcode cc)
{
  switch (cc)
    {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
      return true;
    default:
      return false;
    }
}

static bool
curl_tls_failure (CURLcode cc)
{
  return cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_RECV_ERROR
         || cc == CURLE_GOT_NOTHING || cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_WEIRD_SERVER_REPLY;
}

/* A failure worth another try: resume the same endpoint when bytes came
 * (a cut connection), else move to the next endpoint, else back off. */
static void
xfer_transient (struct xfer *x, int code, const char *why, int64_t min_delay_ms)
{
  registry_session *s = x->s;
  char subj[512];
  bool progressed = x->kind == XFER_BLOB && x->attempt_bytes > 0;
  free (x->url);
  x->url = NULL;
  x->redirects = 0;
  if (progressed && x->resumes < MAX_RESUMES)
    {
      x->resumes++;
      x->tries = 0;
      x->not_before_ms = now_ms () + (min_delay_ms > 0 ? min_delay_ms : BACKOFF_FIRST_MS / 2);
      return;
    }
  x->tries++;
  size_t save = x->ep;
  if (x->tries >= TRIES_PER_ENDPOINT || (!progressed && xfer_seek_endpoint (x, x->ep + 1)))
    {
      if (x->ep != save && x->ep < s->n_eps)
        {
          x->tries = 0;
          x->auth_tries = 0;
          x->not_before_ms = 0;
          return;
        }
      x->ep = save;
      if (x->tries >= TRIES_PER_ENDPOINT)
        {
          berth_error *e = NULL;
          int c = berth_error_set (&e, code, 0, "%s: %s (after %d tries)", xfer_subject (x, subj, sizeof subj), why,
                                   x->tries);
          berth_error_wrap (&e, "%s", s->host);
          xfer_endpoint_failed (x, c, e);
          return;
        }
    }
  x->ep = save;
  int64_t delay = (int64_t) BACKOFF_FIRST_MS << (x->tries - 1);
  if (min_delay_ms > delay)
    delay = min_delay_ms;
  x->not_before_ms = now_ms () + delay;
}

static void
xfer_done (struct xfer *x, CURLcode cc)
{
  registry_session *s = x->s;
  struct endpoint *e = xfer_endpoint (x);
  char subj[512];

  if (x->fatal)
    {
      berth_error *fe = TAKE_PTR (x->fatal_err);
      berth_error_wrap (&fe, "%s on %s", xfer_subject (x, subj, sizeof subj), s->host);
      xfer_finish (x, x->fatal, &fe);
      return;
    }
  if (cc != CURLE_OK)
    {
      if (e->h->http_fallback && !e->use_http && x->url == NULL && curl_tls_failure (cc))
        {
          e->use_http = true; /* containerd's HTTPFallback: the server speaks plain HTTP */
          x->not_before_ms = 0;
          return;
        }
      if (curl_transient (cc) || cc == CURLE_PEER_FAILED_VERIFICATION)
        {
          xfer_transient (x, cc == CURLE_OPERATION_TIMEDOUT ? BERTH_E_DEADLINE : BERTH_E_UNAVAILABLE,
                          curl_easy_strerror (cc), 0);
          return;
        }
      berth_error *fe = NULL;
      int c = berth_error_set (&fe, BERTH_E_UNAVAILABLE, 0, "%s on %s: %s", xfer_subject (x, subj, sizeof subj),
                               s->host, curl_easy_strerror (cc));
      xfer_endpoint_failed (x, c, fe);
      return;
    }

  long st = x->status;
  if (st >= 200 && st < 300)
    {
      if (x->kind == XFER_BLOB && x->have < x->blob->size)
        {
          xfer_transient (x, BERTH_E_UNAVAILABLE, "the body ended early", 0);
          return;
        }
      xfer_finish (x, 0, NULL);
      return;
    }
  if (st == 301 || st == 302 || st == 303 || st == 307 || st == 308)
    {
      char *loc = NULL;
      curl_easy_getinfo (x->easy, CURLINFO_REDIRECT_URL, &loc);
      if (loc == NULL || ++x->redirects > MAX_REDIRECTS
          || (strncmp (loc, "http://", 7) != 0 && strncmp (loc, "https://", 8) != 0))
        {
          berth_error *fe = NULL;
          int c = berth_error_set (&fe, BERTH_E_UNAVAILABLE, 0, "%s on %s: %s", xfer_subject (x, subj, sizeof subj),
                                   s->host, loc ? "too many redirects" : "redirect without a Location");
          xfer_endpoint_failed (x, c, fe);
          return;
        }
      /* kept in the xfer (the easy handle's copy dies with the next setup) */
      char *copy = strdup (loc);
      if (copy == NULL)
        {
          berth_error *fe = NULL;
          xfer_finish (x, berth_error_set (&fe, BERTH_E_NOMEM, ENOMEM, "redirect"), &fe);
          return;
        }
      free (x->url);
      x->url = copy;
      x->not_before_ms = 0;
      return;
    }
  if (st == 401 && (x->url == NULL || same_origin (e, x->url)))
    {
      if (xfer_answer_challenge (x))
        {
          free (x->url);
          x->url = NULL;
          x->not_before_ms = 0;
        }
      return;
    }
  if (st == 416 && x->kind == XFER_BLOB && x->have > 0 && !x->no_range)
    {
      x->no_range = true; /* the server cannot serve ranges: take it whole */
      free (x->url);
      x->url = NULL;
      x->not_before_ms = 0;
      return;
    }
  if (st == 429 || st >= 500)
    {
      int64_t ra = 0;
      int64_t secs;
      if (x->retry_after && parse_int64 (x->retry_after, &secs))
        ra = secs * 1000 > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : secs * 1000;
      char why[64];
      snprintf (why, sizeof why, "HTTP %ld", st);
      xfer_transient (x, BERTH_E_UNAVAILABLE, why, ra);
      return;
    }
  xfer_http_error (x);
}

static void
xfer_clear (struct xfer *x)
{
  if (x->easy)
    curl_easy_cleanup (x->easy);
  curl_slist_free_all (x->hdrs);
  xfer_reset_response (x);
  free (x->buf);
  free (x->url);
  berth_error_free (x->fatal_err);
  berth_error_free (x->err);
  berth_error_free (x->first_err);
  memset (x, 0, sizeof *x);
}

/* Drive xfers to completion, at most s->max_parallel at a time. */
static void
run_xfers (registry_session *s, struct xfer *xs, size_t n, const volatile int *cancelled)
{
  size_t active = 0;
  for (;;)
    {
      bool cancel = cancelled && *cancelled;
      int64_t now = now_ms ();
      int64_t next_start = -1;
      size_t pending = 0;

      for (size_t i = 0; i < n; i++)
        {
          struct xfer *x = &xs[i];
          if (x->finished || x->active)
            continue;
          if (cancel)
            {
              berth_error *e = NULL;
              xfer_finish (x, berth_error_set (&e, BERTH_E_CANCELLED, 0, "cancelled"), &e);
              continue;
            }
          pending++;
          if (x->not_before_ms > now)
            {
              if (next_start < 0 || x->not_before_ms < next_start)
                next_start = x->not_before_ms;
              continue;
            }
          if (active >= (size_t) s->max_parallel)
            continue;
          berth_error *e = NULL;
          if (xfer_setup (x, &e) < 0)
            {
              xfer_finish (x, e->code, &e);
              pending--;
              continue;
            }
          if (curl_multi_add_handle (s->multi, x->easy) != CURLM_OK)
            {
              xfer_finish (x, berth_error_set (&e, BERTH_E_INTERNAL, 0, "curl_multi_add_handle failed"), &e);
              pending--;
              continue;
            }
          x->active = true;
          active++;
          pending--;
        }
      if (cancel)
        {
          for (size_t i = 0; i < n; i++)
            if (xs[i].active)
              {
                curl_multi_remove_handle (s->multi, xs[i].easy);
                xs[i].active = false;
                berth_error *e = NULL;
                xfer_finish (&xs[i], berth_error_set (&e, BERTH_E_CANCELLED, 0, "cancelled"), &e);
              }
          return;
        }
      if (active == 0 && pending == 0)
        return;

      int running = 0;
      curl_multi_perform (s->multi, &running);
      CURLMsg *m;
      int left;
      bool finished_some = false;
      while ((m = curl_multi_info_read (s->multi, &left)))
        {
          if (m->msg != CURLMSG_DONE)
            continue;
          finished_some = true;
          struct xfer *x = NULL;
          CURLcode cc = m->data.result;
          CURL *easy = m->easy_handle;
          curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &x);
          curl_multi_remove_handle (s->multi, easy);
          x->active = false;
          active--;
          xfer_done (x, cc);
        }

      int timeout = POLL_MS;
      if (active == 0 && next_start >= 0)
        {
          int64_t d = next_start - now_ms ();
          timeout = d < 0 ? 0 : d > POLL_MS ? POLL_MS : (int) d;
        }
      bool startable = false;
      for (size_t i = 0; i < n && !startable; i++)
        startable = !xs[i].finished && !xs[i].active && xs[i].not_before_ms <= now_ms ()
                    && active < (size_t) s->max_parallel;
      /* A transfer that just finished may be the last, or may free a slot:
       * look again at once instead of waiting out the poll. */
      if (!startable && !finished_some)
        curl_multi_poll (s->multi, NULL, 0, timeout, NULL);
    }
}

static void
xfer_init (struct xfer *x, registry_session *s, enum xfer_kind kind, const char *repo, const char *what,
           const char *ref, unsigned cap)
{
  memset (x, 0, sizeof *x);
  x->s = s;
  x->kind = kind;
  x->repo = repo;
  x->what = what;
  x->ref = ref;
  x->cap = cap;
  x->content_length = -1;
  x->expect_end = -1;
  x->max_len = REGISTRY_MANIFEST_MAX;
}

static int
xfer_start_check (struct xfer *x, berth_error **err)
{
  if (!xfer_seek_endpoint (x, 0))
    return berth_error_set (err, BERTH_E_NOTFOUND, 0, "no host configured for %s has the %s capability", x->s->host,
                            x->cap == HOST_CAP_RESOLVE ? "resolve" : "pull");
  return 0;
}

static int
xfer_take_result (struct xfer *x, berth_error **err)
{
  if (x->result < 0)
    {
      int code = x->result;
      if (err && *err == NULL)
        *err = TAKE_PTR (x->err);
      return code;
    }
  return 0;
}

/* One request to completion (resolve, manifests, small blobs). */
static int
run_one (registry_session *s, struct xfer *x, berth_error **err)
{
  int r = xfer_start_check (x, err);
  if (r < 0)
    return r;
  run_xfers (s, x, 1, NULL);
  return xfer_take_result (x, err);
}

/* ---- public calls --------------------------------------------------- */

static int
check_repo_ref (const char *repository, const char *ref, bool digest_only, berth_error **err)
{
  if (repository == NULL || !valid_repository (repository))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid repository name \"%s\"",
                            repository ? repository : "");
  if (ref == NULL || (!valid_digest (ref) && (digest_only || !valid_tag (ref))))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid %s \"%s\"", digest_only ? "digest" : "tag or digest",
                            ref ? ref : "");
  return 0;
}

static char *
media_type_of (const char *content_type, const unsigned char *body, size_t len)
{
  if (content_type && content_type[0])
    {
      size_t l = strcspn (content_type, "; \t");
      if (l > 0)
        return strndup (content_type, l);
    }
  if (body == NULL)
    return NULL;
  /* no Content-Type: the document's own mediaType */
  struct json_tokener *tok = json_tokener_new_ex (8);
  if (tok == NULL)
    return NULL;
  struct json_object *o = json_tokener_parse_ex (tok, (const char *) body, (int) len), *v;
  json_tokener_free (tok);
  char *r = NULL;
  if (o && json_object_is_type (o, json_type_object) && json_object_object_get_ex (o, "mediaType", &v)
      && json_object_is_type (v, json_type_string))
    r = strdup (json_object_get_string (v));
  json_object_put (o);
  return r;
}

int
registry_resolve (registry_session *s, const char *repository, const char *tag_or_digest, char **ret_media_type,
                  char **ret_digest, int64_t *ret_size, berth_error **err)
{
  int r = check_repo_ref (repository, tag_or_digest, false, err);
  if (r < 0)
    return r;
  bool by_digest = valid_digest (tag_or_digest);
  _cleanup_free_ char *mt = NULL, *dg = NULL;
  int64_t size = -1;

  struct xfer x;
  xfer_init (&x, s, XFER_HEAD, repository, "manifests", tag_or_digest, HOST_CAP_RESOLVE);
  berth_error *herr = NULL;
  r = run_one (s, &x, &herr);
  if (r == 0)
    {
      mt = media_type_of (x.content_type, NULL, 0);
      if (x.docker_digest && valid_digest (x.docker_digest))
        dg = strdup (x.docker_digest);
      size = x.content_length;
    }
  xfer_clear (&x);
  if (r < 0 && r != BERTH_E_INVALID)
    {
      /* 401, 403, 404, unreachable: GET would say the same */
      if (err && *err == NULL)
        *err = herr;
      else
        berth_error_free (herr);
      return berth_error_wrap (err, "resolving %s/%s%s%s", s->host, repository, by_digest ? "@" : ":",
                               tag_or_digest);
    }
  berth_error_free (herr);
  if (by_digest && dg && strcmp (dg, tag_or_digest) != 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "resolving %s/%s@%s: registry answered digest %s", s->host,
                            repository, tag_or_digest, dg);

  if (r < 0 || (dg == NULL && !by_digest) || size < 0 || mt == NULL)
    {
      /* HEAD not enough: GET the manifest and compute what is missing */
      xfer_init (&x, s, XFER_GET_BYTES, repository, "manifests", tag_or_digest, HOST_CAP_RESOLVE);
      r = run_one (s, &x, err);
      if (r < 0)
        {
          xfer_clear (&x);
          return berth_error_wrap (err, "resolving %s/%s%s%s", s->host, repository, by_digest ? "@" : ":",
                                   tag_or_digest);
        }
      _cleanup_free_ char *computed = digest_of (by_digest ? tag_or_digest : "sha256:", x.buf, x.len);
      if (computed == NULL)
        {
          xfer_clear (&x);
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "digest");
        }
      if (by_digest && strcmp (computed, tag_or_digest) != 0)
        {
          xfer_clear (&x);
          return berth_error_set (err, BERTH_E_INVALID, 0,
                                  "resolving %s/%s@%s: manifest digest mismatch (got %s)", s->host, repository,
                                  tag_or_digest, computed);
        }
      free (mt);
      mt = media_type_of (x.content_type, x.buf, x.len);
      free (dg);
      dg = TAKE_PTR (computed);
      size = (int64_t) x.len;
      xfer_clear (&x);
    }
  if (by_digest && dg == NULL)
    dg = strdup (tag_or_digest);
  if (dg == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "resolve");
  if (ret_media_type)
    *ret_media_type = TAKE_PTR (mt);
  if (ret_digest)
    *ret_digest = TAKE_PTR (dg);
  if (ret_size)
    *ret_size = size;
  return 0;
}

static int
fetch_bytes (registry_session *s, const char *repository, const char *what, const char *digest, int64_t size,
             size_t max_len, unsigned char **ret_data, size_t *ret_len, char **ret_media_type, berth_error **err)
{
  int r = check_repo_ref (repository, digest, true, err);
  if (r < 0)
    return r;
  const char *kind = what[0] == 'm' ? "manifest" : "blob";
  if (size >= 0 && (uint64_t) size > max_len)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s %s is too large (%" PRId64 " bytes, at most %zu)", kind,
                            digest, size, max_len);
  struct xfer x;
  xfer_init (&x, s, XFER_GET_BYTES, repository, what, digest, HOST_CAP_PULL);
  x.max_len = max_len;
  r = run_one (s, &x, err);
  if (r < 0)
    {
      xfer_clear (&x);
      return berth_error_wrap (err, "fetching %s %s", kind, digest);
    }
  if (size >= 0 && (int64_t) x.len != size)
    {
      r = berth_error_set (err, BERTH_E_INVALID, 0, "%s %s of %s: size mismatch (got %zu bytes, expected %" PRId64 ")",
                           kind, digest, repository, x.len, size);
      xfer_clear (&x);
      return r;
    }
  _cleanup_free_ char *computed = digest_of (digest, x.buf ? x.buf : (unsigned char *) "", x.len);
  if (computed == NULL || strcmp (computed, digest) != 0)
    {
      r = computed == NULL ? berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "digest")
                           : berth_error_set (err, BERTH_E_INVALID, 0, "%s %s of %s: digest mismatch (got %s)", kind,
                                              digest, repository, computed);
      xfer_clear (&x);
      return r;
    }
  if (ret_media_type)
    *ret_media_type = what[0] == 'm' ? media_type_of (x.content_type, x.buf, x.len) : NULL;
  if (x.buf == NULL)
    x.buf = calloc (1, 1);
  if (x.buf == NULL)
    {
      xfer_clear (&x);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "fetch");
    }
  *ret_len = x.len;
  *ret_data = TAKE_PTR (x.buf);
  xfer_clear (&x);
  return 0;
}

int
registry_fetch_manifest (registry_session *s, const char *repository, const char *digest, int64_t size,
                         unsigned char **ret_data, size_t *ret_len, char **ret_media_type, berth_error **err)
{
  return fetch_bytes (s, repository, "manifests", digest, size, REGISTRY_MANIFEST_MAX, ret_data, ret_len,
                      ret_media_type, err);
}

int
registry_fetch_blob_bytes (registry_session *s, const char *repository, const char *digest, int64_t size,
                           size_t max_len, unsigned char **ret_data, size_t *ret_len, berth_error **err)
{
  return fetch_bytes (s, repository, "blobs", digest, size, max_len ? max_len : REGISTRY_MANIFEST_MAX, ret_data,
                      ret_len, NULL, err);
}

int
registry_fetch_blobs (registry_session *s, const char *repository, struct registry_blob *blobs, size_t n,
                      const volatile int *cancelled, berth_error **err)
{
  if (repository == NULL || !valid_repository (repository))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid repository name \"%s\"",
                            repository ? repository : "");
  if (n == 0)
    return 0;
  _cleanup_free_ struct xfer *xs = calloc (n, sizeof *xs);
  if (xs == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "fetching blobs");
  for (size_t i = 0; i < n; i++)
    {
      struct registry_blob *b = &blobs[i];
      struct xfer *x = &xs[i];
      b->result = 0;
      b->err = NULL;
      xfer_init (x, s, XFER_BLOB, repository, "blobs", b->digest ? b->digest : "", HOST_CAP_PULL);
      x->blob = b;
      x->have = b->offset;
      berth_error *e = NULL;
      if (b->digest == NULL || !valid_digest (b->digest))
        xfer_finish (x, berth_error_set (&e, BERTH_E_INVALID, 0, "invalid blob digest \"%s\"",
                                         b->digest ? b->digest : ""), &e);
      else if (b->sink == NULL || b->size < 0 || b->offset < 0 || b->offset > b->size)
        xfer_finish (x, berth_error_set (&e, BERTH_E_INVALID, 0, "blob %s: invalid size %" PRId64 " / offset %" PRId64,
                                         b->digest, b->size, b->offset), &e);
      else if (b->offset == b->size)
        {
          if (b->progress)
            b->progress (b->data, b->size, b->size);
          xfer_finish (x, 0, NULL);
        }
      else if (xfer_start_check (x, &e) < 0)
        xfer_finish (x, e->code, &e);
    }
  run_xfers (s, xs, n, cancelled);

  int first = 0;
  for (size_t i = 0; i < n; i++)
    {
      struct registry_blob *b = &blobs[i];
      struct xfer *x = &xs[i];
      b->result = x->result;
      b->err = TAKE_PTR (x->err);
      if (b->result == 0 && b->progress && b->offset != b->size)
        b->progress (b->data, x->have, b->size);
      if (b->result < 0 && first == 0)
        {
          first = b->result;
          berth_error_set (err, first, 0, "%s", b->err ? berth_error_message (b->err) : "blob fetch failed");
        }
      xfer_clear (x);
    }
  return first;
}

/* ---- access for another process --------------------------------------- */

void
registry_blob_access_clear (struct registry_blob_access *a)
{
  free (a->url);
  if (a->headers)
    explicit_bzero (a->headers, strlen (a->headers));
  free (a->headers);
  free (a->ca_pem);
  *a = (struct registry_blob_access){ .size = -1 };
}

/* Append "Name: value\n" to *buf (the value may be a secret). */
static int
append_header (char **buf, const char *name, const char *value)
{
  char *n = NULL;
  if (asprintf (&n, "%s%s: %s\n", *buf ? *buf : "", name, value) < 0)
    return BERTH_E_NOMEM;
  if (*buf)
    {
      explicit_bzero (*buf, strlen (*buf));
      free (*buf);
    }
  *buf = n;
  return 0;
}

int
registry_blob_access (registry_session *s, const char *repository, const char *digest,
                      struct registry_blob_access *ret, berth_error **err)
{
  *ret = (struct registry_blob_access){ .size = -1 };
  int r = check_repo_ref (repository, digest, true, err);
  if (r < 0)
    return r;
  struct xfer x;
  xfer_init (&x, s, XFER_HEAD, repository, "blobs", digest, HOST_CAP_PULL);
  r = run_one (s, &x, err);
  struct endpoint *e = r == 0 ? xfer_endpoint (&x) : NULL;
  int64_t size = x.content_length;
  xfer_clear (&x);
  if (r < 0)
    return berth_error_wrap (err, "looking up blob %s of %s on %s", digest, repository, s->host);
  if (e == NULL)
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "blob %s: no endpoint answered", digest);
  bool plain = strcmp (ep_scheme (e), "http") == 0;
  /* (localhost's default endpoint has skip_verify, and is used over http) */
  if (!plain && (e->h->skip_verify || (e->h->client_cert && e->h->client_cert[0])))
    return berth_error_set (err, BERTH_E_NOTSUP, 0,
                            "endpoint %s uses %s, which the layer server is not given", e->h->host,
                            e->h->skip_verify ? "skip_verify" : "client certificates");
  struct registry_blob_access a = { .size = size, .plain_http = plain };
  a.url = endpoint_url (s, e, repository, "blobs", digest);
  r = a.url ? 0 : BERTH_E_NOMEM;
  for (char **l = e->h->headers; r == 0 && l && *l; l++)
    {
      const char *colon = strchr (*l, ':');
      if (colon == NULL)
        continue;
      _cleanup_free_ char *name = strndup (*l, (size_t) (colon - *l));
      r = name ? append_header (&a.headers, name, colon + 1 + strspn (colon + 1, " \t")) : BERTH_E_NOMEM;
    }
  if (r == 0 && e->auth == AUTH_SCHEME_BEARER)
    {
      _cleanup_free_ char *scope = NULL;
      if (asprintf (&scope, "repository:%s:pull", repository) < 0)
        scope = NULL;
      const char *tok
          = scope ? auth_token_cache_lookup (s->tokens, e->h->host, scope, time (NULL), &a.token_expires) : NULL;
      if (scope == NULL)
        r = BERTH_E_NOMEM;
      else if (tok)
        {
          _cleanup_free_ char *v = NULL;
          if (asprintf (&v, "Bearer %s", tok) < 0)
            v = NULL;
          r = v ? append_header (&a.headers, "Authorization", v) : BERTH_E_NOMEM;
          if (v)
            explicit_bzero (v, strlen (v));
        }
    }
  else if (r == 0 && e->auth == AUTH_SCHEME_BASIC && e->creds.username)
    {
      _cleanup_free_ char *pair = NULL;
      if (asprintf (&pair, "%s:%s", e->creds.username, e->creds.secret ? e->creds.secret : "") < 0)
        pair = NULL;
      _cleanup_free_ char *b64 = pair ? auth_base64_encode (pair, strlen (pair)) : NULL;
      _cleanup_free_ char *v = NULL;
      if (b64 == NULL || asprintf (&v, "Basic %s", b64) < 0)
        v = NULL;
      r = v ? append_header (&a.headers, "Authorization", v) : BERTH_E_NOMEM;
      if (pair)
        explicit_bzero (pair, strlen (pair));
      if (b64)
        explicit_bzero (b64, strlen (b64));
      if (v)
        explicit_bzero (v, strlen (v));
    }
  if (r == 0 && e->ca_pem)
    {
      a.ca_pem = malloc (e->ca_len + 1);
      if (a.ca_pem)
        {
          memcpy (a.ca_pem, e->ca_pem, e->ca_len);
          a.ca_pem[e->ca_len] = '\0';
          a.ca_len = e->ca_len;
        }
      else
        r = BERTH_E_NOMEM;
    }
  if (r < 0)
    {
      registry_blob_access_clear (&a);
      return berth_error_set (err, r, ENOMEM, "blob %s: out of memory", digest);
    }
  *ret = a;
  return 0;
}
