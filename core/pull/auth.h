/* core/pull: registry authentication pieces.
 *
 *  - WWW-Authenticate parsing (RFC 9110 §11.6.1 challenges: several per
 *    header, auth-params with tokens or quoted strings with \-escapes,
 *    token68), written for hostile input: bounded, never reads past `len`.
 *  - Bearer tokens (the distribution token spec, "docker token auth"): GET
 *    <realm>?service=&scope= with Basic credentials (or none), or the OAuth2
 *    POST (grant_type=refresh_token) when an identity token is known; the
 *    answer {token | access_token, expires_in (default 60), issued_at}.
 *  - A per-(host, scope) token cache, valid until expiry.
 *  - Basic: "Authorization: Basic base64(user:secret)".
 *
 * Nothing here logs; no error message carries a credential or a token.
 */
#ifndef BERTH_CORE_PULL_AUTH_H
#define BERTH_CORE_PULL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "error.h"

struct registry_credentials; /* credentials.h */

#define AUTH_HEADER_MAX 8192 /* longest WWW-Authenticate value accepted */
#define AUTH_MAX_CHALLENGES 16
#define AUTH_TOKEN_DEFAULT_EXPIRY 60 /* seconds, when the server gives none */

enum auth_scheme
{
  AUTH_SCHEME_OTHER = 0,
  AUTH_SCHEME_BASIC,
  AUTH_SCHEME_BEARER,
};

struct auth_challenge
{
  enum auth_scheme scheme;
  char *realm;   /* NULL when absent */
  char *service;
  char *scope;
  char *error;   /* Bearer error="insufficient_scope" / "invalid_token" */
};

/* Parse a WWW-Authenticate value (several headers may be joined with ", ").
 * Unknown schemes are kept as AUTH_SCHEME_OTHER; unknown params ignored; a
 * parameter given twice keeps the first.  Syntax errors → BERTH_E_INVALID. */
int auth_parse_challenges (const char *header, size_t len, struct auth_challenge **ret, size_t *ret_n,
                           berth_error **err);
void auth_challenges_free (struct auth_challenge *c, size_t n);

/* RFC 4648 base64 with padding.  decode accepts missing padding, rejects
 * anything else; the result is NUL-terminated (not counted).  NULL on
 * invalid input or ENOMEM. */
char *auth_base64_encode (const void *data, size_t len);
unsigned char *auth_base64_decode (const char *s, size_t len, size_t *ret_len);

/* "Authorization: Basic …" (malloc'd; wipe it with explicit_bzero). */
char *auth_basic_header (const char *user, const char *secret);

/* Parse a token server answer; *ret_expires = now + expires_in (issued_at
 * is not trusted against the local clock).  Missing token → BERTH_E_INVALID. */
int auth_parse_token (const char *json, size_t len, time_t now, char **ret_token, time_t *ret_expires,
                      berth_error **err);

/* Fetch a bearer token.  `setup` (may be NULL) lets the caller apply TLS
 * options for the realm's host to the easy handle (a void * that is a CURL *).
 * 401/403 from the token server → BERTH_E_UNAUTHENTICATED. */
struct auth_fetch
{
  const char *realm, *service, *scope;
  const struct registry_credentials *creds; /* may be NULL: anonymous */
  void (*setup) (void *data, void *curl_easy, const char *url);
  void *data;
  int timeout_s;
  const char *user_agent;
};
int auth_fetch_token (const struct auth_fetch *f, char **ret_token, time_t *ret_expires, berth_error **err);

/* Token cache keyed by (host, scope). */
struct auth_token_cache;
struct auth_token_cache *auth_token_cache_new (void);
void auth_token_cache_free (struct auth_token_cache *c);
/* The cached token, or NULL when none or expired at `now`. */
const char *auth_token_cache_get (struct auth_token_cache *c, const char *host, const char *scope, time_t now);
/* The same, and when it expires (ret_expires may be NULL). */
const char *auth_token_cache_lookup (struct auth_token_cache *c, const char *host, const char *scope, time_t now,
                                     time_t *ret_expires);
int auth_token_cache_put (struct auth_token_cache *c, const char *host, const char *scope, const char *token,
                          time_t expires);
void auth_token_cache_drop (struct auth_token_cache *c, const char *host, const char *scope);

#endif
