/* Registry authentication: WWW-Authenticate, bearer tokens, basic.  See
 * auth.h. */
#include <config.h>

#define CURL_DISABLE_TYPECHECK /* lazy-curl.h turns curl_easy_setopt into a pointer */
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "core/pull/auth.h"
#include "core/pull/credentials.h"
#include "lazy-curl.h"

#define AUTH_MAX_PARAMS 64
#define TOKEN_ANSWER_MAX (1024 * 1024)

/* ---- WWW-Authenticate ---------------------------------------------- */

static bool
is_tchar (unsigned char c)
{
  return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strchr ("!#$%&'*+-.^_`|~", c);
}

static bool
is_ws (unsigned char c)
{
  return c == ' ' || c == '\t';
}

void
auth_challenges_free (struct auth_challenge *c, size_t n)
{
  if (c == NULL)
    return;
  for (size_t i = 0; i < n; i++)
    {
      free (c[i].realm);
      free (c[i].service);
      free (c[i].scope);
      free (c[i].error);
    }
  free (c);
}

struct parser
{
  const char *s;
  size_t len, pos;
};

static int
peek (struct parser *p)
{
  return p->pos < p->len ? (unsigned char) p->s[p->pos] : -1;
}

static void
skip_ws (struct parser *p)
{
  while (p->pos < p->len && is_ws ((unsigned char) p->s[p->pos]))
    p->pos++;
}

static size_t
read_token (struct parser *p)
{
  size_t start = p->pos;
  while (p->pos < p->len && is_tchar ((unsigned char) p->s[p->pos]))
    p->pos++;
  return p->pos - start;
}

/* A quoted-string starting at '"'; returns the unescaped value. */
static int
read_quoted (struct parser *p, char **ret, berth_error **err)
{
  p->pos++; /* '"' */
  _cleanup_free_ char *out = malloc (p->len - p->pos + 1);
  size_t o = 0;
  if (out == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "WWW-Authenticate");
  for (;;)
    {
      if (p->pos >= p->len)
        return berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: unterminated quoted string");
      unsigned char c = (unsigned char) p->s[p->pos++];
      if (c == '"')
        break;
      if (c == '\\')
        {
          if (p->pos >= p->len)
            return berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: unterminated quoted string");
          c = (unsigned char) p->s[p->pos++];
        }
      /* qdtext / quoted-pair: HTAB, SP, VCHAR, obs-text; no controls */
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: control character in quoted string");
      out[o++] = (char) c;
    }
  out[o] = '\0';
  *ret = TAKE_PTR (out);
  return 0;
}

int
auth_parse_challenges (const char *header, size_t len, struct auth_challenge **ret, size_t *ret_n,
                       berth_error **err)
{
  if (len > AUTH_HEADER_MAX)
    return berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: header too long (%zu bytes)", len);
  struct parser p = { header, len, 0 };
  struct auth_challenge *cs = calloc (AUTH_MAX_CHALLENGES, sizeof *cs);
  size_t n = 0;
  int r = 0;
  if (cs == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "WWW-Authenticate");

  for (;;)
    {
      while (p.pos < p.len && (is_ws ((unsigned char) p.s[p.pos]) || p.s[p.pos] == ','))
        p.pos++;
      if (p.pos >= p.len)
        break;
      size_t ss = p.pos, sl = read_token (&p);
      if (sl == 0)
        {
          r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: expected an auth scheme at byte %zu", ss);
          goto fail;
        }
      if (n == AUTH_MAX_CHALLENGES)
        {
          r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: too many challenges");
          goto fail;
        }
      struct auth_challenge *c = &cs[n++];
      if (sl == 5 && strncasecmp (p.s + ss, "Basic", 5) == 0)
        c->scheme = AUTH_SCHEME_BASIC;
      else if (sl == 6 && strncasecmp (p.s + ss, "Bearer", 6) == 0)
        c->scheme = AUTH_SCHEME_BEARER;
      else
        c->scheme = AUTH_SCHEME_OTHER;

      if (p.pos < p.len && !is_ws ((unsigned char) p.s[p.pos]) && p.s[p.pos] != ',')
        {
          r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: unexpected character at byte %zu", p.pos);
          goto fail;
        }

      /* auth-params (or one token68) until the next challenge */
      size_t nparams = 0;
      for (;;)
        {
          size_t before = p.pos;
          while (p.pos < p.len && (is_ws ((unsigned char) p.s[p.pos]) || p.s[p.pos] == ','))
            p.pos++;
          if (p.pos >= p.len)
            break;
          size_t ks = p.pos, kl = read_token (&p);
          if (kl == 0)
            {
              r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: expected a parameter at byte %zu",
                                   p.pos);
              goto fail;
            }
          skip_ws (&p);
          if (peek (&p) != '=')
            {
              /* a token followed by neither '=' nor more: the next challenge */
              p.pos = before;
              break;
            }
          p.pos++;
          if (peek (&p) == '=' || peek (&p) == -1 || peek (&p) == ',')
            {
              /* token68 ("abc==") */
              while (peek (&p) == '=')
                p.pos++;
              continue;
            }
          skip_ws (&p);
          _cleanup_free_ char *val = NULL;
          if (peek (&p) == '"')
            {
              r = read_quoted (&p, &val, err);
              if (r < 0)
                goto fail;
            }
          else
            {
              size_t vs = p.pos, vl = read_token (&p);
              if (vl == 0)
                {
                  r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: expected a value at byte %zu",
                                       p.pos);
                  goto fail;
                }
              val = strndup (p.s + vs, vl);
              if (val == NULL)
                {
                  r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "WWW-Authenticate");
                  goto fail;
                }
            }
          if (++nparams > AUTH_MAX_PARAMS)
            {
              r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: too many parameters");
              goto fail;
            }
          char **slot = NULL;
          if (kl == 5 && strncasecmp (p.s + ks, "realm", 5) == 0)
            slot = &c->realm;
          else if (kl == 7 && strncasecmp (p.s + ks, "service", 7) == 0)
            slot = &c->service;
          else if (kl == 5 && strncasecmp (p.s + ks, "scope", 5) == 0)
            slot = &c->scope;
          else if (kl == 5 && strncasecmp (p.s + ks, "error", 5) == 0)
            slot = &c->error;
          if (slot && *slot == NULL)
            *slot = TAKE_PTR (val);
          skip_ws (&p);
          if (p.pos < p.len && p.s[p.pos] != ',')
            {
              r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: expected ',' at byte %zu", p.pos);
              goto fail;
            }
        }
    }
  if (n == 0)
    {
      r = berth_error_set (err, BERTH_E_INVALID, 0, "WWW-Authenticate: no challenge");
      goto fail;
    }
  *ret = cs;
  *ret_n = n;
  return 0;
fail:
  auth_challenges_free (cs, n);
  return r;
}

/* ---- base64 ------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
auth_base64_encode (const void *data, size_t len)
{
  const unsigned char *in = data;
  if (len > (SIZE_MAX - 4) / 4 * 3)
    return NULL;
  char *out = malloc ((len + 2) / 3 * 4 + 1), *o = out;
  if (out == NULL)
    return NULL;
  size_t i = 0;
  for (; i + 2 < len; i += 3)
    {
      uint32_t v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
      *o++ = b64[v >> 18];
      *o++ = b64[(v >> 12) & 63];
      *o++ = b64[(v >> 6) & 63];
      *o++ = b64[v & 63];
    }
  if (i < len)
    {
      uint32_t v = (uint32_t) in[i] << 16 | (i + 1 < len ? (uint32_t) in[i + 1] << 8 : 0);
      *o++ = b64[v >> 18];
      *o++ = b64[(v >> 12) & 63];
      *o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
      *o++ = '=';
    }
  *o = '\0';
  return out;
}

static int
b64_value (unsigned char c)
{
  if ('A' <= c && c <= 'Z')
    return c - 'A';
  if ('a' <= c && c <= 'z')
    return c - 'a' + 26;
  if ('0' <= c && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

unsigned char *
auth_base64_decode (const char *s, size_t len, size_t *ret_len)
{
  while (len > 0 && s[len - 1] == '=')
    len--;
  if (len % 4 == 1)
    return NULL;
  unsigned char *out = malloc (len / 4 * 3 + 3 + 1);
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < len; i++)
    {
      int v = b64_value ((unsigned char) s[i]);
      if (v < 0)
        {
          free (out);
          return NULL;
        }
      acc = acc << 6 | (uint32_t) v;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          out[o++] = (unsigned char) (acc >> bits);
          acc &= (1u << bits) - 1;
        }
    }
  out[o] = '\0';
  *ret_len = o;
  return out;
}

char *
auth_basic_header (const char *user, const char *secret)
{
  _cleanup_free_ char *pair = NULL;
  int l = asprintf (&pair, "%s:%s", user ? user : "", secret ? secret : "");
  if (l < 0)
    return NULL;
  _cleanup_free_ char *enc = auth_base64_encode (pair, (size_t) l);
  explicit_bzero (pair, (size_t) l);
  if (enc == NULL)
    return NULL;
  char *h = NULL;
  if (asprintf (&h, "Authorization: Basic %s", enc) < 0)
    h = NULL;
  explicit_bzero (enc, strlen (enc));
  return h;
}

/* ---- tokens -------------------------------------------------------- */

int
auth_parse_token (const char *json, size_t len, time_t now, char **ret_token, time_t *ret_expires,
                  berth_error **err)
{
  if (len > TOKEN_ANSWER_MAX)
    return berth_error_set (err, BERTH_E_INVALID, 0, "token server answer too large");
  struct json_tokener *tok = json_tokener_new_ex (32);
  if (tok == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "token");
  struct json_object *o = json_tokener_parse_ex (tok, json, (int) len);
  json_tokener_free (tok);
  int r = 0;
  if (o == NULL || !json_object_is_type (o, json_type_object))
    {
      r = berth_error_set (err, BERTH_E_INVALID, 0, "token server answer is not a JSON object");
      goto out;
    }
  struct json_object *v;
  const char *t = NULL;
  if (json_object_object_get_ex (o, "token", &v) && json_object_is_type (v, json_type_string)
      && json_object_get_string_len (v) > 0)
    t = json_object_get_string (v);
  else if (json_object_object_get_ex (o, "access_token", &v) && json_object_is_type (v, json_type_string)
           && json_object_get_string_len (v) > 0)
    t = json_object_get_string (v);
  if (t == NULL)
    {
      r = berth_error_set (err, BERTH_E_INVALID, 0, "token server answer has no token");
      goto out;
    }
  /* A token goes into a header line: no control characters. */
  for (const char *q = t; *q; q++)
    if ((unsigned char) *q < 0x20 || *q == 0x7f)
      {
        r = berth_error_set (err, BERTH_E_INVALID, 0, "token server answer has an invalid token");
        goto out;
      }
  int64_t exp = AUTH_TOKEN_DEFAULT_EXPIRY;
  if (json_object_object_get_ex (o, "expires_in", &v)
      && (json_object_is_type (v, json_type_int) || json_object_is_type (v, json_type_double)))
    {
      int64_t e = json_object_get_int64 (v);
      if (e > 0)
        exp = e > 365 * 24 * 3600 ? 365 * 24 * 3600 : e;
    }
  *ret_token = strdup (t);
  if (*ret_token == NULL)
    {
      r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "token");
      goto out;
    }
  *ret_expires = now + (time_t) exp;
out:
  json_object_put (o);
  return r;
}

struct membuf
{
  char *data;
  size_t len, max;
  bool overflow;
};

static size_t
membuf_write (char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct membuf *m = userdata;
  size_t n = size * nmemb;
  if (m->len + n > m->max)
    {
      m->overflow = true;
      return 0;
    }
  char *d = realloc (m->data, m->len + n + 1);
  if (d == NULL)
    return 0;
  m->data = d;
  memcpy (d + m->len, ptr, n);
  m->len += n;
  d[m->len] = '\0';
  return n;
}

static int
append_param (char **url, char sep, const char *name, const char *value, CURL *c)
{
  if (value == NULL || value[0] == '\0')
    return 0;
  char *esc = curl_easy_escape (c, value, 0);
  if (esc == NULL)
    return -ENOMEM;
  char *n = NULL;
  int l = asprintf (&n, "%s%c%s=%s", *url, sep, name, esc);
  curl_free (esc);
  if (l < 0)
    return -ENOMEM;
  free (*url);
  *url = n;
  return 0;
}

int
auth_fetch_token (const struct auth_fetch *f, char **ret_token, time_t *ret_expires, berth_error **err)
{
  if (f->realm == NULL || (strncmp (f->realm, "https://", 8) != 0 && strncmp (f->realm, "http://", 7) != 0))
    return berth_error_set (err, BERTH_E_INVALID, 0, "bearer challenge without a valid http(s) realm");
  for (const char *q = f->realm; *q; q++)
    if ((unsigned char) *q <= ' ' || *q == 0x7f || *q == '#')
      return berth_error_set (err, BERTH_E_INVALID, 0, "bearer challenge with an invalid realm");
  if (lazy_curl_load (err) < 0)
    return berth_error_wrap (err, "token request");

  CURL *c = curl_easy_init ();
  if (c == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "token request");
  struct membuf body = { NULL, 0, TOKEN_ANSWER_MAX, false };
  struct curl_slist *hdrs = NULL;
  _cleanup_free_ char *url = strdup (f->realm);
  _cleanup_free_ char *form = NULL;
  bool oauth = f->creds && f->creds->identity_token;
  int r = 0;
  long status = 0;

  if (url == NULL)
    {
      r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "token request");
      goto out;
    }
  if (oauth)
    {
      /* OAuth2 refresh-token grant (docker's identity tokens). */
      char *svc = curl_easy_escape (c, f->service ? f->service : "", 0);
      char *scp = curl_easy_escape (c, f->scope ? f->scope : "", 0);
      char *rt = curl_easy_escape (c, f->creds->identity_token, 0);
      if (svc && scp && rt
          && asprintf (&form, "grant_type=refresh_token&client_id=berth&service=%s&scope=%s&refresh_token=%s", svc,
                       scp, rt)
                 < 0)
        form = NULL;
      if (rt)
        explicit_bzero (rt, strlen (rt));
      curl_free (svc);
      curl_free (scp);
      curl_free (rt);
      if (form == NULL)
        {
          r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "token request");
          goto out;
        }
      curl_easy_setopt (c, CURLOPT_POSTFIELDS, form);
    }
  else
    {
      char sep = strchr (url, '?') ? '&' : '?';
      if (append_param (&url, sep, "service", f->service, c) < 0
          || append_param (&url, strchr (url, '?') ? '&' : '?', "scope", f->scope, c) < 0)
        {
          r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "token request");
          goto out;
        }
      if (f->creds && f->creds->username && f->creds->secret)
        {
          curl_easy_setopt (c, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
          curl_easy_setopt (c, CURLOPT_USERNAME, f->creds->username);
          curl_easy_setopt (c, CURLOPT_PASSWORD, f->creds->secret);
        }
    }
  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (c, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt (c, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, (long) (f->timeout_s > 0 ? f->timeout_s : 30));
  curl_easy_setopt (c, CURLOPT_TIMEOUT, (long) (f->timeout_s > 0 ? 2 * f->timeout_s : 60));
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, membuf_write);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, &body);
  if (f->user_agent)
    curl_easy_setopt (c, CURLOPT_USERAGENT, f->user_agent);
  hdrs = curl_slist_append (hdrs, "Accept: application/json");
  curl_easy_setopt (c, CURLOPT_HTTPHEADER, hdrs);
  if (f->setup)
    f->setup (f->data, c, url);

  CURLcode cr = curl_easy_perform (c);
  curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
  if (cr != CURLE_OK)
    {
      if (body.overflow)
        r = berth_error_set (err, BERTH_E_INVALID, 0, "token server answer too large");
      else
        r = berth_error_set (err, cr == CURLE_OPERATION_TIMEDOUT ? BERTH_E_DEADLINE : BERTH_E_UNAVAILABLE, 0,
                             "token request: %s", curl_easy_strerror (cr));
      goto out;
    }
  if (status == 401 || status == 403)
    {
      r = berth_error_set (err, BERTH_E_UNAUTHENTICATED, 0, "token server refused the credentials (HTTP %ld)",
                           status);
      goto out;
    }
  if (status != 200)
    {
      r = berth_error_set (err, status >= 500 ? BERTH_E_UNAVAILABLE : BERTH_E_INVALID, 0,
                           "token server answered HTTP %ld", status);
      goto out;
    }
  r = auth_parse_token (body.data ? body.data : "", body.len, time (NULL), ret_token, ret_expires, err);
out:
  if (body.data)
    {
      explicit_bzero (body.data, body.len);
      free (body.data);
    }
  if (form)
    explicit_bzero (form, strlen (form));
  curl_slist_free_all (hdrs);
  curl_easy_cleanup (c);
  return r;
}

/* ---- token cache --------------------------------------------------- */

struct token_entry
{
  char *host, *scope, *token;
  time_t expires;
};

struct auth_token_cache
{
  struct token_entry *items;
  size_t n;
};

struct auth_token_cache *
auth_token_cache_new (void)
{
  return calloc (1, sizeof (struct auth_token_cache));
}

static void
entry_clear (struct token_entry *e)
{
  free (e->host);
  free (e->scope);
  if (e->token)
    explicit_bzero (e->token, strlen (e->token));
  free (e->token);
  memset (e, 0, sizeof *e);
}

void
auth_token_cache_free (struct auth_token_cache *c)
{
  if (c == NULL)
    return;
  for (size_t i = 0; i < c->n; i++)
    entry_clear (&c->items[i]);
  free (c->items);
  free (c);
}

static struct token_entry *
cache_find (struct auth_token_cache *c, const char *host, const char *scope)
{
  for (size_t i = 0; i < c->n; i++)
    if (strcmp (c->items[i].host, host) == 0 && strcmp (c->items[i].scope, scope ? scope : "") == 0)
      return &c->items[i];
  return NULL;
}

const char *
auth_token_cache_get (struct auth_token_cache *c, const char *host, const char *scope, time_t now)
{
  return auth_token_cache_lookup (c, host, scope, now, NULL);
}

const char *
auth_token_cache_lookup (struct auth_token_cache *c, const char *host, const char *scope, time_t now,
                         time_t *ret_expires)
{
  struct token_entry *e = cache_find (c, host, scope);
  if (e == NULL || now >= e->expires)
    return NULL;
  if (ret_expires)
    *ret_expires = e->expires;
  return e->token;
}

int
auth_token_cache_put (struct auth_token_cache *c, const char *host, const char *scope, const char *token,
                      time_t expires)
{
  struct token_entry *e = cache_find (c, host, scope);
  char *t = strdup (token);
  if (t == NULL)
    return -ENOMEM;
  if (e)
    {
      explicit_bzero (e->token, strlen (e->token));
      free (e->token);
      e->token = t;
      e->expires = expires;
      return 0;
    }
  struct token_entry *n = realloc (c->items, (c->n + 1) * sizeof *n);
  if (n == NULL)
    {
      free (t);
      return -ENOMEM;
    }
  c->items = n;
  e = &n[c->n];
  e->host = strdup (host);
  e->scope = strdup (scope ? scope : "");
  e->token = t;
  e->expires = expires;
  if (e->host == NULL || e->scope == NULL)
    {
      entry_clear (e);
      return -ENOMEM;
    }
  c->n++;
  return 0;
}

void
auth_token_cache_drop (struct auth_token_cache *c, const char *host, const char *scope)
{
  struct token_entry *e = cache_find (c, host, scope);
  if (e == NULL)
    return;
  entry_clear (e);
  *e = c->items[--c->n];
}
