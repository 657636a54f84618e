/* Image references: see reference.h.  The grammar is checked piece by piece
 * instead of with one regular expression: '@' splits off the digest, the
 * last ':' after the last '/' the tag, and the first path component is the
 * domain when it parses as host[:port] (the regex's leftmost-first choice). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "core/pull/oci.h"
#include "core/pull/reference.h"

#define REF_ERR "invalid reference format: "

reference *
reference_free (reference *r)
{
  if (r == NULL)
    return NULL;
  free (r->domain);
  free (r->path);
  free (r->tag);
  free (r->digest);
  free (r);
  return NULL;
}

void
reference_freep (reference **r)
{
  *r = reference_free (*r);
}

static bool
lower_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
alnum (char c)
{
  return lower_alnum (c) || (c >= 'A' && c <= 'Z');
}

static bool
hexdigit (char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)* */
static bool
path_component_ok (const char *s, size_t n)
{
  size_t i = 0;
  for (;;)
    {
      size_t st = i;
      while (i < n && lower_alnum (s[i]))
        i++;
      if (i == st)
        return false;
      if (i == n)
        return true;
      if (s[i] == '.')
        i++;
      else if (s[i] == '_')
        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
      else if (s[i] == '-')
        while (i < n && s[i] == '-')
          i++;
      else
        return false;
    }
}

static bool
remote_name_ok (const char *s, size_t n)
{
  size_t st = 0;
  for (size_t i = 0; i <= n; i++)
    if (i == n || s[i] == '/')
      {
        if (!path_component_ok (s + st, i - st))
          return false;
        st = i + 1;
      }
  return true;
}

/* [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool
domain_component_ok (const char *s, size_t n)
{
  if (n == 0 || !alnum (s[0]) || !alnum (s[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!alnum (s[i]) && s[i] != '-')
      return false;
  return true;
}

/* host [":" port], host = domain-name | "[" [a-fA-F0-9:]+ "]" */
static bool
domain_ok (const char *s, size_t n)
{
  size_t hn = n;
  if (n > 0 && s[0] == '[')
    {
      const char *rb = memchr (s, ']', n);
      if (rb == NULL || rb == s + 1)
        return false;
      for (const char *p = s + 1; p < rb; p++)
        if (!hexdigit (*p) && *p != ':')
          return false;
      hn = rb - s + 1;
    }
  else
    {
      const char *colon = memchr (s, ':', n);
      if (colon)
        hn = colon - s;
      size_t st = 0;
      for (size_t i = 0; i <= hn; i++)
        if (i == hn || s[i] == '.')
          {
            if (!domain_component_ok (s + st, i - st))
              return false;
            st = i + 1;
          }
    }
  if (hn == n)
    return true;
  if (s[hn] != ':' || hn + 1 == n)
    return false;
  for (size_t i = hn + 1; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

/* [A-Za-z0-9_][A-Za-z0-9_.-]{0,127} */
static bool
tag_ok (const char *s, size_t n)
{
  if (n < 1 || n > REFERENCE_TAG_MAX || !(alnum (s[0]) || s[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(alnum (s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
      return false;
  return true;
}

/* [A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}, then
 * go-digest's check of a registered algorithm. */
static int
digest_ok (const char *s, size_t n, berth_error **err)
{
  const char *colon = memchr (s, ':', n);
  if (colon == NULL)
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "digest \"%.*s\" has no algorithm", (int) n, s);
  size_t i = 0, alen = colon - s;
  for (;;)
    {
      if (i >= alen || !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
        return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "invalid digest algorithm in \"%.*s\"", (int) n, s);
      while (i < alen && alnum (s[i]))
        i++;
      if (i == alen)
        break;
      if (!strchr ("-_+.", s[i]))
        return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "invalid digest algorithm in \"%.*s\"", (int) n, s);
      i++;
    }
  size_t hn = n - alen - 1;
  if (hn < 32)
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "digest \"%.*s\" is too short", (int) n, s);
  for (const char *p = colon + 1; p < s + n; p++)
    if (!hexdigit (*p))
      return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "digest \"%.*s\" is not hexadecimal", (int) n, s);
  _cleanup_free_ char *d = strndup (s, n);
  if (d == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if (oci_digest_algorithm (d) == OCI_DIGEST_OTHER)
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "unsupported digest algorithm in \"%s\"", d);
  int r = oci_digest_validate (d, n, err);
  if (r < 0)
    return berth_error_wrap (err, REF_ERR "digest \"%s\"", d);
  return 0;
}

/* Parse a full domain/path[:tag][@digest] (no defaults). */
static int
parse_full (const char *s, reference **ret, berth_error **err)
{
  size_t n = strlen (s);
  if (n == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "repository name must have at least one component");
  _cleanup_ (reference_freep) reference *r = calloc (1, sizeof *r);
  if (r == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  const char *at = memchr (s, '@', n);
  size_t namelen = n;
  if (at)
    {
      if (memchr (at + 1, '@', n - (at - s) - 1))
        return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "more than one '@' in \"%s\"", s);
      int rr = digest_ok (at + 1, n - (at - s) - 1, err);
      if (rr < 0)
        return rr;
      if ((r->digest = strdup (at + 1)) == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      namelen = at - s;
    }
  const char *slash = NULL;
  for (size_t i = 0; i < namelen; i++)
    if (s[i] == '/')
      slash = s + i;
  const char *colon = NULL;
  for (const char *p = slash ? slash : s; p < s + namelen; p++)
    if (*p == ':')
      colon = p;
  if (colon)
    {
      size_t tl = s + namelen - colon - 1;
      if (!tag_ok (colon + 1, tl))
        return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "invalid tag \"%.*s\" (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})",
                                (int) (tl > 200 ? 200 : tl), colon + 1);
      if ((r->tag = strndup (colon + 1, tl)) == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      namelen = colon - s;
    }
  if (namelen == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "repository name must have at least one component");
  if (namelen > REFERENCE_NAME_MAX)
    return berth_error_set (err, BERTH_E_INVALID, 0,
                            REF_ERR "repository name must not be more than %d characters", REFERENCE_NAME_MAX);
  const char *first = memchr (s, '/', namelen);
  if (first == NULL)
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "\"%s\" is not a fully qualified name (domain/path)", s);
  if (!domain_ok (s, first - s))
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "invalid domain \"%.*s\"", (int) (first - s), s);
  const char *rest = first + 1;
  size_t rl = namelen - (first - s) - 1;
  if (!remote_name_ok (rest, rl))
    {
      _cleanup_free_ char *lower = strndup (rest, rl);
      if (lower == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
          *p += 32;
      if (remote_name_ok (lower, rl))
        return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "repository name (%.*s) must be lowercase", (int) rl,
                                rest);
      return berth_error_set (err, BERTH_E_INVALID, 0,
                              REF_ERR "invalid repository name \"%.*s\" (path components are [a-z0-9] joined by "
                                      "'.', '_', '__' or '-')",
                              (int) rl, rest);
    }
  r->domain = strndup (s, first - s);
  r->path = strndup (rest, rl);
  if (r->domain == NULL || r->path == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  *ret = TAKE_PTR (r);
  return 0;
}

int
reference_parse_strict (const char *s, reference **ret, berth_error **err)
{
  return parse_full (s, ret, err);
}

int
reference_parse (const char *s, reference **ret, berth_error **err)
{
  size_t n = strlen (s);
  if (n == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "repository name must have at least one component");
  if (n == 64 && strspn (s, "0123456789abcdef") == 64)
    return berth_error_set (err, BERTH_E_INVALID, 0,
                            "invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s);
  /* distribution/reference splitDockerDomain() */
  const char *slash = strchr (s, '/');
  const char *domain = REFERENCE_DEFAULT_DOMAIN;
  _cleanup_free_ char *dom = NULL;
  const char *rem = s;
  if (slash)
    {
      size_t fl = slash - s;
      bool has_dot_colon = memchr (s, '.', fl) || memchr (s, ':', fl);
      bool has_upper = false;
      for (size_t i = 0; i < fl; i++)
        has_upper |= s[i] >= 'A' && s[i] <= 'Z';
      if (has_dot_colon || (fl == 9 && memcmp (s, "localhost", 9) == 0) || has_upper)
        {
          if ((dom = strndup (s, fl)) == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
          domain = dom;
          rem = slash + 1;
        }
    }
  if (strcmp (domain, "index.docker.io") == 0)
    domain = REFERENCE_DEFAULT_DOMAIN;
  bool library = strcmp (domain, REFERENCE_DEFAULT_DOMAIN) == 0 && strchr (rem, '/') == NULL;
  /* The repository (up to the tag or digest) must be lower case. */
  size_t rl = strcspn (rem, ":@");
  for (size_t i = 0; i < rl; i++)
    if (rem[i] >= 'A' && rem[i] <= 'Z')
      return berth_error_set (err, BERTH_E_INVALID, 0, REF_ERR "repository name (%s%.*s) must be lowercase",
                              library ? "library/" : "", (int) rl, rem);
  _cleanup_free_ char *full = NULL;
  if (asprintf (&full, "%s/%s%s", domain, library ? "library/" : "", rem) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  _cleanup_ (reference_freep) reference *r = NULL;
  int rr = parse_full (full, &r, err);
  if (rr < 0)
    return rr;
  if (r->tag == NULL && r->digest == NULL && (r->tag = strdup ("latest")) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  *ret = TAKE_PTR (r);
  return 0;
}

static char *
format_ref (const char *domain, const char *path, const reference *r)
{
  char *out = NULL;
  if (asprintf (&out, "%s%s%s%s%s%s%s", domain, *domain ? "/" : "", path, r->tag ? ":" : "", r->tag ? r->tag : "",
                r->digest ? "@" : "", r->digest ? r->digest : "")
      < 0)
    return NULL;
  return out;
}

char *
reference_string (const reference *r)
{
  return format_ref (r->domain, r->path, r);
}

char *
reference_name (const reference *r)
{
  char *out = NULL;
  if (asprintf (&out, "%s%s%s", r->domain, *r->domain ? "/" : "", r->path) < 0)
    return NULL;
  return out;
}

char *
reference_familiar (const reference *r)
{
  if (strcmp (r->domain, REFERENCE_DEFAULT_DOMAIN) != 0)
    return reference_string (r);
  const char *path = r->path;
  if (strncmp (path, "library/", 8) == 0 && strchr (path + 8, '/') == NULL)
    path += 8;
  return format_ref ("", path, r);
}

const char *
reference_registry_host (const reference *r)
{
  if (strcmp (r->domain, REFERENCE_DEFAULT_DOMAIN) == 0)
    return "registry-1.docker.io";
  return r->domain;
}
