/* OCI image-spec / Docker v2.2 documents: see oci.h for the contract.
 *
 * The pipeline for every document:
 *   1. json_scan(): a strict RFC 8259 syntax check of our own, because json-c
 *      accepts NaN, Infinity, "1." and raw control characters that Go (and
 *      so every other registry client) rejects; it also bounds size and depth,
 *      validates UTF-8 and counts object members.
 *   2. json-c builds the tree; fewer members than counted means a duplicate
 *      key (json-c keeps the last), which we refuse.
 *   3. go_decode(): the Go typed decoding that image-spec's validator and
 *      containerd perform (specs-go v1 structs, encoding/json rules: keys
 *      fold case, later keys win, nested structs merge, null leaves scalars
 *      alone).  Its output is a canonical tree with the Go field names,
 *      which the typed parsers read.
 *   4. The checks upstream does in Go (descriptor digest, config Env), the
 *      strict MUSTs (all digests, sizes >= 0), then the draft-04 JSON schemas
 *      of image-spec, hand-written below against the raw tree (exact keys,
 *      as a schema validator sees them).
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "core/pull/oci.h"

static inline void
json_putp (json_object **o)
{
  if (*o)
    json_object_put (*o);
}
#define _cleanup_json_ _cleanup_ (json_putp)

/* ---- media types -------------------------------------------------------- */

static const struct
{
  const char *mt;
  oci_kind kind;
  bool docker;
} media_types[] = {
  { OCI_MT_DESCRIPTOR, OCI_KIND_DESCRIPTOR, false },
  { OCI_MT_MANIFEST, OCI_KIND_MANIFEST, false },
  { OCI_MT_INDEX, OCI_KIND_INDEX, false },
  { OCI_MT_CONFIG, OCI_KIND_CONFIG, false },
  { OCI_MT_LAYOUT, OCI_KIND_LAYOUT, false },
  { OCI_MT_LAYER, OCI_KIND_LAYER, false },
  { OCI_MT_LAYER_GZIP, OCI_KIND_LAYER, false },
  { OCI_MT_LAYER_ZSTD, OCI_KIND_LAYER, false },
  { OCI_MT_LAYER_NONDIST, OCI_KIND_LAYER, false },
  { OCI_MT_LAYER_NONDIST_GZIP, OCI_KIND_LAYER, false },
  { OCI_MT_LAYER_NONDIST_ZSTD, OCI_KIND_LAYER, false },
  { DOCKER_MT_MANIFEST, OCI_KIND_MANIFEST, true },
  { DOCKER_MT_MANIFEST_LIST, OCI_KIND_INDEX, true },
  { DOCKER_MT_CONFIG, OCI_KIND_CONFIG, true },
  { DOCKER_MT_LAYER_GZIP, OCI_KIND_LAYER, true },
  { DOCKER_MT_LAYER_FOREIGN_GZIP, OCI_KIND_LAYER, true },
  { "application/vnd.docker.image.rootfs.diff.tar", OCI_KIND_LAYER, true },
  { DOCKER_MT_MANIFEST_V1, OCI_KIND_SCHEMA1, true },
  { DOCKER_MT_MANIFEST_V1_SIGNED, OCI_KIND_SCHEMA1, true },
};

static int
media_type_find (const char *mt)
{
  if (mt == NULL)
    return -1;
  for (size_t i = 0; i < ARRAY_SIZE (media_types); i++)
    if (strcmp (media_types[i].mt, mt) == 0)
      return (int) i;
  return -1;
}

oci_kind
oci_media_type_kind (const char *media_type)
{
  int i = media_type_find (media_type);
  return i < 0 ? OCI_KIND_UNKNOWN : media_types[i].kind;
}

bool
oci_media_type_is_docker (const char *media_type)
{
  int i = media_type_find (media_type);
  return i >= 0 && media_types[i].docker;
}

static const char *
kind_name (oci_kind k)
{
  switch (k)
    {
    case OCI_KIND_DESCRIPTOR:
      return "descriptor";
    case OCI_KIND_MANIFEST:
      return "image manifest";
    case OCI_KIND_INDEX:
      return "image index";
    case OCI_KIND_CONFIG:
      return "image config";
    case OCI_KIND_LAYOUT:
      return "oci-layout";
    case OCI_KIND_LAYER:
      return "layer";
    case OCI_KIND_SCHEMA1:
      return "schema 1 manifest";
    default:
      return "unknown";
    }
}

/* ---- small matchers ----------------------------------------------------- */

static bool
is_lower_alnum (char c)
{
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum (char c)
{
  return is_lower_alnum (c) || (c >= 'A' && c <= 'Z');
}

static bool
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

static bool
is_hex (char c)
{
  return is_digit (c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* [a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+ over the whole string. */
static bool
digest_grammar_ok (const char *s, size_t n)
{
  size_t i = 0;
  for (;;)
    {
      size_t start = i;
      while (i < n && is_lower_alnum (s[i]))
        i++;
      if (i == start)
        return false;
      if (i < n && (s[i] == '+' || s[i] == '.' || s[i] == '_' || s[i] == '-'))
        {
          i++;
          continue;
        }
      break;
    }
  if (i >= n || s[i] != ':')
    return false;
  i++;
  if (i >= n)
    return false;
  for (; i < n; i++)
    if (!(is_alnum (s[i]) || s[i] == '=' || s[i] == '_' || s[i] == '-'))
      return false;
  return true;
}

int
oci_digest_validate (const char *d, size_t n, berth_error **err)
{
  const char *colon = memchr (d, ':', n);
  if (colon == NULL || colon == d || (size_t) (colon - d) + 1 == n)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid digest format");
  size_t alen = colon - d, elen = n - alen - 1;
  size_t want = 0;
  if (alen == 6 && memcmp (d, "sha256", 6) == 0)
    want = 64;
  else if (alen == 6 && memcmp (d, "sha384", 6) == 0)
    want = 96;
  else if (alen == 6 && memcmp (d, "sha512", 6) == 0)
    want = 128;
  if (want == 0)
    {
      if (!digest_grammar_ok (d, n))
        return berth_error_set (err, BERTH_E_INVALID, 0, "invalid digest format");
      return 0;
    }
  if (elen != want)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid %.*s digest length %zu (want %zu hex chars)",
                            (int) alen, d, elen, want);
  for (const char *p = colon + 1; p < d + n; p++)
    if (!(is_digit (*p) || (*p >= 'a' && *p <= 'f')))
      return berth_error_set (err, BERTH_E_INVALID, 0,
                              "invalid %.*s digest: encoded part must be lowercase hex", (int) alen, d);
  return 0;
}

oci_digest_alg
oci_digest_algorithm (const char *digest)
{
  if (strncmp (digest, "sha256:", 7) == 0)
    return OCI_DIGEST_SHA256;
  if (strncmp (digest, "sha384:", 7) == 0)
    return OCI_DIGEST_SHA384;
  if (strncmp (digest, "sha512:", 7) == 0)
    return OCI_DIGEST_SHA512;
  return OCI_DIGEST_OTHER;
}

const char *
oci_digest_encoded (const char *digest)
{
  const char *c = strchr (digest, ':');
  return c ? c + 1 : NULL;
}

/* ^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$ */
static bool
media_type_part_ok (const char *s, size_t n)
{
  if (n < 1 || n > 127 || !is_alnum (s[0]))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!is_alnum (s[i]) && (s[i] == '\0' || !strchr ("!#$&^_.+-", s[i])))
      return false;
  return true;
}

static bool
media_type_pattern_ok (const char *s, size_t n)
{
  const char *slash = memchr (s, '/', n);
  if (slash == NULL)
    return false;
  size_t a = slash - s;
  return media_type_part_ok (s, a) && media_type_part_ok (slash + 1, n - a - 1);
}

/* Go base64.StdEncoding as encoding/json uses it for []byte: padded, CR/LF
 * ignored.  With out != NULL, decodes into out (capacity >= n * 3 / 4). */
static int
b64_value (char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (is_digit (c))
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

static bool
base64_decode (const char *s, size_t n, uint8_t *out, size_t *ret_len)
{
  char quad[4];
  size_t q = 0, o = 0, total = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] != '\r' && s[i] != '\n')
      total++;
  if (total % 4 != 0)
    return false;
  size_t seen = 0;
  for (size_t i = 0; i < n; i++)
    {
      if (s[i] == '\r' || s[i] == '\n')
        continue;
      quad[q++] = s[i];
      seen++;
      if (q < 4)
        continue;
      q = 0;
      bool last = seen == total;
      int v[4], pad = 0;
      for (int k = 0; k < 4; k++)
        {
          v[k] = b64_value (quad[k]);
          if (v[k] < 0)
            {
              if (!last || quad[k] != '=' || k < 2)
                return false;
              v[k] = 0;
              pad++;
            }
          else if (pad > 0)
            return false;
        }
      uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
      if (out)
        {
          out[o] = w >> 16;
          if (pad < 2)
            out[o + 1] = w >> 8;
          if (pad < 1)
            out[o + 2] = w;
        }
      o += 3 - pad;
    }
  if (ret_len)
    *ret_len = o;
  return true;
}

/* RFC 3339 as both santhosh-tekuri/jsonschema "date-time" and Go's
 * time.Time accept it: upper-case T and Z, seconds 00-59, real dates. */
static bool
digits (const char *s, size_t n, int *ret)
{
  int v = 0;
  for (size_t i = 0; i < n; i++)
    {
      if (!is_digit (s[i]))
        return false;
      v = v * 10 + (s[i] - '0');
    }
  *ret = v;
  return true;
}

static bool
rfc3339_ok (const char *s, size_t n)
{
  int y, mo, d, h, mi, sec;
  if (n < 20 || !digits (s, 4, &y) || s[4] != '-' || !digits (s + 5, 2, &mo) || s[7] != '-'
      || !digits (s + 8, 2, &d) || s[10] != 'T' || !digits (s + 11, 2, &h) || s[13] != ':'
      || !digits (s + 14, 2, &mi) || s[16] != ':' || !digits (s + 17, 2, &sec))
    return false;
  size_t i = 19;
  if (s[i] == '.')
    {
      size_t st = ++i;
      while (i < n && is_digit (s[i]))
        i++;
      if (i == st)
        return false;
    }
  if (i >= n)
    return false;
  if (s[i] == 'Z')
    {
      if (i + 1 != n)
        return false;
    }
  else if (s[i] == '+' || s[i] == '-')
    {
      int oh, om;
      if (n - i != 6 || !digits (s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits (s + i + 4, 2, &om))
        return false;
      if (oh > 23 || om > 59)
        return false;
    }
  else
    return false;
  if (mo < 1 || mo > 12)
    return false;
  bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
  static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  int md = mdays[mo - 1] + (mo == 2 && leap);
  return d >= 1 && d <= md && h <= 23 && mi <= 59 && sec <= 59;
}

/* net/url unescape(): well-formed %XX; in a host only %25 or an escape of
 * a byte >= 0x80 may appear, and ASCII outside the host set is refused. */
static bool
unescape_ok (const char *s, size_t n, bool host)
{
  for (size_t i = 0; i < n;)
    {
      unsigned char c = s[i];
      if (c == '%')
        {
          if (i + 2 >= n || !is_hex (s[i + 1]) || !is_hex (s[i + 2]))
            return false;
          if (host && is_digit (s[i + 1]) && s[i + 1] < '8' && !(s[i + 1] == '2' && s[i + 2] == '5'))
            return false;
          i += 3;
          continue;
        }
      if (host && c < 0x80 && !is_alnum (c) && (c == 0 || !strchr ("-_.~!$&'()*+,;=:[]<>\"", c)))
        return false;
      i++;
    }
  return true;
}

static const char *
memrchr_ (const char *s, char c, size_t n)
{
  while (n-- > 0)
    if (s[n] == c)
      return s + n;
  return NULL;
}

/* ":[0-9]*" over the whole string */
static bool
port_ok (const char *s, size_t n)
{
  if (n < 1 || s[0] != ':')
    return false;
  for (size_t i = 1; i < n; i++)
    if (!is_digit (s[i]))
      return false;
  return true;
}

/* format "uri" as santhosh-tekuri/jsonschema v6 asserts it: Go's url.Parse()
 * succeeds, the URL is absolute, and an IPv6 host is bracketed and valid. */
static bool
uri_ok (const char *s, size_t n)
{
  const char *hash = memchr (s, '#', n);
  size_t un = hash ? (size_t) (hash - s) : n;
  for (size_t i = 0; i < un; i++)
    if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
      return false;
  if (un == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
    return false;
  size_t i = 1;
  while (i < un && (is_alnum (s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-'))
    i++;
  if (i >= un || s[i] != ':')
    return false;
  const char *rest = s + i + 1;
  size_t rn = un - i - 1;
  if (hash && n - un - 1 > 0 && !unescape_ok (hash + 1, n - un - 1, false))
    return false;
  const char *q = memchr (rest, '?', rn);
  if (q)
    rn = q - rest;
  if (rn == 0 || rest[0] != '/')
    return true; /* opaque, e.g. urn:x */
  const char *hostport = NULL;
  size_t hn = 0;
  if (rn >= 2 && rest[1] == '/')
    {
      const char *auth = rest + 2;
      const char *slash = memchr (auth, '/', rn - 2);
      size_t an = slash ? (size_t) (slash - auth) : rn - 2;
      const char *at = memrchr_ (auth, '@', an);
      if (at)
        {
          for (const char *p = auth; p < at; p++)
            if (!(is_alnum (*p) || strchr ("-._:~!$&'()*+,;=%@", *p)) || *p == '\0')
              return false;
          if (!unescape_ok (auth, at - auth, false))
            return false;
          hostport = at + 1;
          hn = an - (at - auth) - 1;
        }
      else
        {
          hostport = auth;
          hn = an;
        }
      if (hn > 0 && hostport[0] == '[')
        {
          const char *rb = memrchr_ (hostport, ']', hn);
          if (rb == NULL)
            return false;
          size_t tail = hn - (rb - hostport) - 1;
          if (tail > 0 && !port_ok (rb + 1, tail))
            return false;
        }
      else
        {
          const char *c = memrchr_ (hostport, ':', hn);
          if (c && !port_ok (c, hn - (c - hostport)))
            return false;
        }
      if (!unescape_ok (hostport, hn, true))
        return false;
      rest = slash ? slash : auth + an;
      rn = slash ? (size_t) ((s + i + 1 + rn) - slash) : 0;
    }
  if (!unescape_ok (rest, rn, false))
    return false;
  if (hostport && hn > 0)
    {
      const char *h = hostport;
      size_t len = hn;
      const char *c = memrchr_ (h, ':', len);
      if (c && port_ok (c, len - (c - h)))
        len = c - h;
      if (len >= 2 && h[0] == '[' && h[len - 1] == ']')
        {
          h++;
          len -= 2;
        }
      if (memchr (h, ':', len))
        {
          if (!memchr (hostport, '[', hn) || !memchr (hostport, ']', hn) || memchr (h, '%', len) || len >= 64)
            return false;
          char buf[64];
          memcpy (buf, h, len);
          buf[len] = '\0';
          unsigned char a6[16];
          if (inet_pton (AF_INET6, buf, a6) != 1)
            return false;
        }
    }
  return true;
}

/* ---- 1. strict JSON scan ------------------------------------------------ */

struct scan
{
  const char *s;
  size_t n, i;
  size_t members; /* object members seen */
  const char *error;
};

static void
scan_ws (struct scan *sc)
{
  while (sc->i < sc->n && (sc->s[sc->i] == ' ' || sc->s[sc->i] == '\t' || sc->s[sc->i] == '\n'
                           || sc->s[sc->i] == '\r'))
    sc->i++;
}

static bool
scan_fail (struct scan *sc, const char *what)
{
  if (sc->error == NULL)
    sc->error = what;
  return false;
}

/* One UTF-8 sequence at s[i] (first byte >= 0x80); returns its length or 0. */
static size_t
utf8_seq (const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (n < len)
    return 0;
  for (size_t k = 1; k < len; k++)
    {
      if ((s[k] & 0xc0) != 0x80)
        return 0;
      cp = cp << 6 | (s[k] & 0x3f);
    }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

static bool
scan_string (struct scan *sc, bool key)
{
  sc->i++; /* opening quote */
  while (sc->i < sc->n)
    {
      unsigned char c = sc->s[sc->i];
      if (c == '"')
        {
          sc->i++;
          return true;
        }
      if (c < 0x20)
        return scan_fail (sc, "control character in string");
      if (c == '\\')
        {
          if (sc->i + 1 >= sc->n)
            break;
          char e = sc->s[sc->i + 1];
          if (e == 'u')
            {
              if (sc->i + 6 > sc->n)
                break;
              for (int k = 2; k < 6; k++)
                if (!is_hex (sc->s[sc->i + k]))
                  return scan_fail (sc, "invalid \\u escape in string");
              if (key && memcmp (sc->s + sc->i + 2, "0000", 4) == 0)
                return scan_fail (sc, "object key contains NUL (\\u0000)");
              sc->i += 6;
              continue;
            }
          if (!strchr ("\"\\/bfnrt", e) || e == '\0')
            return scan_fail (sc, "invalid escape in string");
          sc->i += 2;
          continue;
        }
      if (c >= 0x80)
        {
          size_t l = utf8_seq ((const unsigned char *) sc->s + sc->i, sc->n - sc->i);
          if (l == 0)
            return scan_fail (sc, "invalid UTF-8 in string");
          sc->i += l;
          continue;
        }
      sc->i++;
    }
  return scan_fail (sc, "unexpected end of JSON input in string");
}

static bool
scan_number (struct scan *sc)
{
  const char *s = sc->s;
  size_t n = sc->n;
  if (sc->i < n && s[sc->i] == '-')
    sc->i++;
  if (sc->i >= n || !is_digit (s[sc->i]))
    return scan_fail (sc, "invalid number");
  if (s[sc->i] == '0')
    sc->i++;
  else
    while (sc->i < n && is_digit (s[sc->i]))
      sc->i++;
  if (sc->i < n && s[sc->i] == '.')
    {
      sc->i++;
      if (sc->i >= n || !is_digit (s[sc->i]))
        return scan_fail (sc, "invalid number: digit expected after '.'");
      while (sc->i < n && is_digit (s[sc->i]))
        sc->i++;
    }
  if (sc->i < n && (s[sc->i] == 'e' || s[sc->i] == 'E'))
    {
      sc->i++;
      if (sc->i < n && (s[sc->i] == '+' || s[sc->i] == '-'))
        sc->i++;
      if (sc->i >= n || !is_digit (s[sc->i]))
        return scan_fail (sc, "invalid number: digit expected in exponent");
      while (sc->i < n && is_digit (s[sc->i]))
        sc->i++;
    }
  return true;
}

static bool
scan_value (struct scan *sc, int depth)
{
  scan_ws (sc);
  if (sc->i >= sc->n)
    return scan_fail (sc, "unexpected end of JSON input");
  char c = sc->s[sc->i];
  if (c == '{' || c == '[')
    {
      if (depth >= OCI_DEPTH_MAX)
        return scan_fail (sc, "nesting too deep");
      char close = c == '{' ? '}' : ']';
      sc->i++;
      scan_ws (sc);
      if (sc->i < sc->n && sc->s[sc->i] == close)
        {
          sc->i++;
          return true;
        }
      for (;;)
        {
          if (c == '{')
            {
              scan_ws (sc);
              if (sc->i >= sc->n || sc->s[sc->i] != '"')
                return scan_fail (sc, "object key (a string) expected");
              if (!scan_string (sc, true))
                return false;
              sc->members++;
              scan_ws (sc);
              if (sc->i >= sc->n || sc->s[sc->i] != ':')
                return scan_fail (sc, "':' expected after object key");
              sc->i++;
            }
          if (!scan_value (sc, depth + 1))
            return false;
          scan_ws (sc);
          if (sc->i >= sc->n)
            return scan_fail (sc, "unexpected end of JSON input");
          if (sc->s[sc->i] == ',')
            {
              sc->i++;
              continue;
            }
          if (sc->s[sc->i] == close)
            {
              sc->i++;
              return true;
            }
          return scan_fail (sc, c == '{' ? "',' or '}' expected in object" : "',' or ']' expected in array");
        }
    }
  if (c == '"')
    return scan_string (sc, false);
  if (c == '-' || is_digit (c))
    return scan_number (sc);
  static const char *const lits[] = { "true", "false", "null" };
  for (size_t k = 0; k < 3; k++)
    {
      size_t l = strlen (lits[k]);
      if (sc->n - sc->i >= l && memcmp (sc->s + sc->i, lits[k], l) == 0)
        {
          sc->i += l;
          return true;
        }
    }
  return scan_fail (sc, "invalid character looking for beginning of value");
}

static size_t
count_members (json_object *o)
{
  size_t n = 0;
  if (json_object_is_type (o, json_type_object))
    {
      json_object_object_foreach (o, k, v)
      {
        (void) k;
        n += 1 + count_members (v);
      }
    }
  else if (json_object_is_type (o, json_type_array))
    {
      size_t len = json_object_array_length (o);
      for (size_t i = 0; i < len; i++)
        n += count_members (json_object_array_get_idx (o, i));
    }
  return n;
}

/* Parse hostile bytes into a json-c tree (NULL for a top-level null). */
static int
json_parse_strict (const char *json, size_t len, size_t limit, json_object **ret, berth_error **err)
{
  *ret = NULL;
  if (len > limit)
    return berth_error_set (err, BERTH_E_INVALID, 0, "document too large: %zu bytes (limit %zu)", len, limit);
  struct scan sc = { .s = json, .n = len };
  if (!scan_value (&sc, 0))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid JSON at offset %zu: %s", sc.i, sc.error);
  scan_ws (&sc);
  if (sc.i != len)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid JSON at offset %zu: invalid character after top-level value",
                            sc.i);
  struct json_tokener *tok = json_tokener_new_ex (OCI_DEPTH_MAX + 2);
  if (tok == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "json tokener");
  json_object *o = json_tokener_parse_ex (tok, json, (int) len);
  enum json_tokener_error je = json_tokener_get_error (tok);
  if (je == json_tokener_continue)
    {
      /* a top-level scalar: terminate it */
      o = json_tokener_parse_ex (tok, "", 1);
      je = json_tokener_get_error (tok);
    }
  json_tokener_free (tok);
  if (je != json_tokener_success)
    {
      json_object_put (o);
      return berth_error_set (err, BERTH_E_INVALID, 0, "invalid JSON: %s", json_tokener_error_desc (je));
    }
  if (count_members (o) != sc.members)
    {
      json_object_put (o);
      return berth_error_set (err, BERTH_E_INVALID, 0, "invalid JSON: duplicate key in an object");
    }
  *ret = o;
  return 0;
}

/* ---- 2. Go typed decoding ---------------------------------------------- */

enum gt_kind
{
  GT_STRING,
  GT_BOOL,
  GT_INT64,
  GT_BYTES,
  GT_TIME,
  GT_EMPTY,
  GT_SLICE,
  GT_MAP,
  GT_STRUCT,
  GT_PSTRUCT,
};

struct gfield;
struct gtype
{
  enum gt_kind kind;
  const char *name;
  const struct gtype *elem;
  const struct gfield *fields; /* NULL-name terminated */
};
struct gfield
{
  const char *name;
  const struct gtype *type;
};

static const struct gtype gt_string = { GT_STRING, "string", NULL, NULL };
static const struct gtype gt_bool = { GT_BOOL, "bool", NULL, NULL };
static const struct gtype gt_int64 = { GT_INT64, "int64", NULL, NULL };
static const struct gtype gt_bytes = { GT_BYTES, "[]uint8", NULL, NULL };
static const struct gtype gt_time = { GT_TIME, "*time.Time", NULL, NULL };
static const struct gtype gt_empty = { GT_EMPTY, "struct {}", NULL, NULL };
static const struct gtype gt_strings = { GT_SLICE, "[]string", &gt_string, NULL };
static const struct gtype gt_map_string = { GT_MAP, "map[string]string", &gt_string, NULL };
static const struct gtype gt_map_empty = { GT_MAP, "map[string]struct {}", &gt_empty, NULL };

#define PLATFORM_FIELDS                                                                                 \
  { "architecture", &gt_string }, { "os", &gt_string }, { "os.version", &gt_string },                   \
      { "os.features", &gt_strings }, { "variant", &gt_string }

static const struct gfield platform_fields[] = { PLATFORM_FIELDS, { NULL, NULL } };
static const struct gtype gt_platform = { GT_PSTRUCT, "*v1.Platform", NULL, platform_fields };

static const struct gfield descriptor_fields[] = {
  { "mediaType", &gt_string }, { "digest", &gt_string },     { "size", &gt_int64 },
  { "urls", &gt_strings },     { "annotations", &gt_map_string }, { "data", &gt_bytes },
  { "platform", &gt_platform }, { "artifactType", &gt_string }, { NULL, NULL },
};
static const struct gtype gt_descriptor = { GT_STRUCT, "v1.Descriptor", NULL, descriptor_fields };
static const struct gtype gt_pdescriptor = { GT_PSTRUCT, "*v1.Descriptor", NULL, descriptor_fields };
static const struct gtype gt_descriptors = { GT_SLICE, "[]v1.Descriptor", &gt_descriptor, NULL };

static const struct gfield manifest_fields[] = {
  { "schemaVersion", &gt_int64 }, { "mediaType", &gt_string }, { "artifactType", &gt_string },
  { "config", &gt_descriptor },   { "layers", &gt_descriptors }, { "subject", &gt_pdescriptor },
  { "annotations", &gt_map_string }, { NULL, NULL },
};
static const struct gtype gt_manifest = { GT_STRUCT, "v1.Manifest", NULL, manifest_fields };

static const struct gfield index_fields[] = {
  { "schemaVersion", &gt_int64 }, { "mediaType", &gt_string }, { "artifactType", &gt_string },
  { "manifests", &gt_descriptors }, { "subject", &gt_pdescriptor }, { "annotations", &gt_map_string },
  { NULL, NULL },
};
static const struct gtype gt_index = { GT_STRUCT, "v1.Index", NULL, index_fields };

static const struct gfield image_config_fields[] = {
  { "User", &gt_string },        { "ExposedPorts", &gt_map_empty }, { "Env", &gt_strings },
  { "Entrypoint", &gt_strings }, { "Cmd", &gt_strings },           { "Volumes", &gt_map_empty },
  { "WorkingDir", &gt_string },  { "Labels", &gt_map_string },     { "StopSignal", &gt_string },
  { "ArgsEscaped", &gt_bool },   { NULL, NULL },
};
static const struct gtype gt_image_config = { GT_STRUCT, "v1.ImageConfig", NULL, image_config_fields };
static const struct gfield rootfs_fields[] = { { "type", &gt_string }, { "diff_ids", &gt_strings }, { NULL, NULL } };
static const struct gtype gt_rootfs = { GT_STRUCT, "v1.RootFS", NULL, rootfs_fields };
static const struct gfield history_fields[] = {
  { "created", &gt_time }, { "created_by", &gt_string }, { "author", &gt_string },
  { "comment", &gt_string }, { "empty_layer", &gt_bool }, { NULL, NULL },
};
static const struct gtype gt_history = { GT_STRUCT, "v1.History", NULL, history_fields };
static const struct gtype gt_histories = { GT_SLICE, "[]v1.History", &gt_history, NULL };
static const struct gfield image_fields[] = {
  { "created", &gt_time }, { "author", &gt_string }, PLATFORM_FIELDS,
  { "config", &gt_image_config }, { "rootfs", &gt_rootfs }, { "history", &gt_histories },
  { NULL, NULL },
};
static const struct gtype gt_image = { GT_STRUCT, "v1.Image", NULL, image_fields };

/* encoding/json's key folding: ASCII upper case, and the three non-ASCII
 * letters whose simple fold is ASCII (K sign, long s, dotless i).  Returns
 * the folded character of s at *i and advances *i. */
static int
fold_next (const char *s, size_t n, size_t *i)
{
  unsigned char c = s[*i];
  if (c < 0x80)
    {
      (*i)++;
      return (c >= 'a' && c <= 'z') ? c - 32 : c;
    }
  if (*i + 3 <= n && memcmp (s + *i, "\xe2\x84\xaa", 3) == 0)
    {
      *i += 3;
      return 'K';
    }
  if (*i + 2 <= n && memcmp (s + *i, "\xc5\xbf", 2) == 0)
    {
      *i += 2;
      return 'S';
    }
  if (*i + 2 <= n && memcmp (s + *i, "\xc4\xb1", 2) == 0)
    {
      *i += 2;
      return 'I';
    }
  (*i)++;
  return 0x100 + c; /* never equal to an ASCII letter */
}

static bool
fold_eq (const char *key, const char *field)
{
  size_t kn = strlen (key), fn = strlen (field), i = 0, j = 0;
  while (i < kn && j < fn)
    if (fold_next (key, kn, &i) != fold_next (field, fn, &j))
      return false;
  return i == kn && j == fn;
}

static const struct gfield *
field_lookup (const struct gfield *fields, const char *key)
{
  for (const struct gfield *f = fields; f->name; f++)
    if (strcmp (f->name, key) == 0)
      return f;
  for (const struct gfield *f = fields; f->name; f++)
    if (fold_eq (key, f->name))
      return f;
  return NULL;
}

static const char *
jtype_name (json_object *v)
{
  switch (json_object_get_type (v))
    {
    case json_type_null:
      return "null";
    case json_type_boolean:
      return "bool";
    case json_type_int:
    case json_type_double:
      return "number";
    case json_type_string:
      return "string";
    case json_type_object:
      return "object";
    default:
      return "array";
    }
}

struct path
{
  char buf[256];
  size_t len;
};

static size_t
path_push (struct path *p, const char *fmt, ...) BERTH_PRINTF (2, 3);
static size_t
path_push (struct path *p, const char *fmt, ...)
{
  size_t old = p->len;
  if (p->len < sizeof p->buf - 1)
    {
      va_list ap;
      va_start (ap, fmt);
      int r = vsnprintf (p->buf + p->len, sizeof p->buf - p->len, fmt, ap);
      va_end (ap);
      if (r > 0)
        p->len = p->len + (size_t) r >= sizeof p->buf ? sizeof p->buf - 1 : p->len + (size_t) r;
    }
  return old;
}

static void
path_pop (struct path *p, size_t old)
{
  p->len = old;
  p->buf[old] = '\0';
}

/* Is an integer json-c value within int64 (json-c saturates beyond uint64)? */
static bool
json_int64_ok (json_object *v, int64_t *ret)
{
  int64_t x = json_object_get_int64 (v);
  if (x == INT64_MAX && json_object_get_uint64 (v) > (uint64_t) INT64_MAX)
    return false;
  if (ret)
    *ret = x;
  return true;
}

static json_object *
go_zero (const struct gtype *t)
{
  switch (t->kind)
    {
    case GT_STRING:
      return json_object_new_string ("");
    case GT_BOOL:
      return json_object_new_boolean (0);
    case GT_INT64:
      return json_object_new_int64 (0);
    case GT_STRUCT:
    case GT_EMPTY:
      return json_object_new_object ();
    default:
      return NULL;
    }
}

static int
go_type_error (struct path *p, json_object *v, const struct gtype *t, berth_error **err)
{
  return berth_error_set (err, BERTH_E_INVALID, 0, "%s: cannot unmarshal %s into Go value of type %s",
                          p->buf, jtype_name (v), t->name);
}

/* Decode v into Go type t whose current value is *cur (owned, replaced).
 * Mirrors encoding/json; the first type error ends it. */
static int
go_decode (const struct gtype *t, json_object *v, json_object **cur, struct path *p, berth_error **err)
{
  if (v == NULL)
    {
      if (t->kind == GT_SLICE || t->kind == GT_MAP || t->kind == GT_PSTRUCT || t->kind == GT_TIME
          || t->kind == GT_BYTES)
        {
          json_object_put (*cur);
          *cur = NULL;
        }
      return 0;
    }
  enum json_type jt = json_object_get_type (v);
  switch (t->kind)
    {
    case GT_STRING:
      if (jt != json_type_string)
        return go_type_error (p, v, t, err);
      json_object_put (*cur);
      *cur = json_object_get (v);
      return 0;
    case GT_BOOL:
      if (jt != json_type_boolean)
        return go_type_error (p, v, t, err);
      json_object_put (*cur);
      *cur = json_object_get (v);
      return 0;
    case GT_INT64:
      if (jt != json_type_int)
        {
          if (jt == json_type_double)
            return berth_error_set (err, BERTH_E_INVALID, 0, "%s: cannot unmarshal number %s into Go value of type int64",
                                    p->buf, json_object_to_json_string (v));
          return go_type_error (p, v, t, err);
        }
      if (!json_int64_ok (v, NULL))
        return berth_error_set (err, BERTH_E_INVALID, 0, "%s: number %s overflows int64", p->buf,
                                json_object_to_json_string (v));
      json_object_put (*cur);
      *cur = json_object_get (v);
      return 0;
    case GT_BYTES:
      if (jt == json_type_string)
        {
          if (!base64_decode (json_object_get_string (v), json_object_get_string_len (v), NULL, NULL))
            return berth_error_set (err, BERTH_E_INVALID, 0, "%s: illegal base64 data (must be padded standard base64)",
                                    p->buf);
        }
      else if (jt == json_type_array)
        {
          size_t len = json_object_array_length (v);
          for (size_t i = 0; i < len; i++)
            {
              json_object *e = json_object_array_get_idx (v, i);
              int64_t x;
              if (e != NULL && (!json_object_is_type (e, json_type_int) || !json_int64_ok (e, &x) || x < 0 || x > 255))
                return berth_error_set (err, BERTH_E_INVALID, 0, "%s[%zu]: cannot unmarshal %s into Go value of type uint8",
                                        p->buf, i, jtype_name (e));
            }
        }
      else
        return go_type_error (p, v, t, err);
      json_object_put (*cur);
      *cur = json_object_get (v);
      return 0;
    case GT_TIME:
      if (jt != json_type_string)
        return berth_error_set (err, BERTH_E_INVALID, 0, "%s: Time.UnmarshalJSON: input is not a JSON string", p->buf);
      if (!rfc3339_ok (json_object_get_string (v), json_object_get_string_len (v)))
        return berth_error_set (err, BERTH_E_INVALID, 0, "%s: parsing time \"%.80s\" as RFC 3339 failed", p->buf,
                                json_object_get_string (v));
      json_object_put (*cur);
      *cur = json_object_get (v);
      return 0;
    case GT_EMPTY:
      if (jt != json_type_object)
        return go_type_error (p, v, t, err);
      return 0; /* *cur is already {} */
    case GT_SLICE:
      {
        if (jt != json_type_array)
          return go_type_error (p, v, t, err);
        _cleanup_json_ json_object *out = json_object_new_array ();
        size_t len = json_object_array_length (v);
        for (size_t i = 0; i < len; i++)
          {
            json_object *e = go_zero (t->elem);
            size_t old = path_push (p, "[%zu]", i);
            int r = go_decode (t->elem, json_object_array_get_idx (v, i), &e, p, err);
            path_pop (p, old);
            if (r < 0)
              {
                json_object_put (e);
                return r;
              }
            json_object_array_add (out, e);
          }
        json_object_put (*cur);
        *cur = TAKE_PTR (out);
        return 0;
      }
    case GT_MAP:
      if (jt != json_type_object)
        return go_type_error (p, v, t, err);
      if (*cur == NULL)
        *cur = json_object_new_object ();
      {
        json_object_object_foreach (v, k, e)
        {
          json_object *x = go_zero (t->elem);
          size_t old = path_push (p, "[\"%s\"]", k);
          int r = go_decode (t->elem, e, &x, p, err);
          path_pop (p, old);
          if (r < 0)
            {
              json_object_put (x);
              return r;
            }
          json_object_object_add (*cur, k, x);
        }
      }
      return 0;
    case GT_STRUCT:
    case GT_PSTRUCT:
      if (jt != json_type_object)
        return go_type_error (p, v, t, err);
      if (*cur == NULL)
        *cur = json_object_new_object ();
      {
        json_object_object_foreach (v, k, e)
        {
          const struct gfield *f = field_lookup (t->fields, k);
          if (f == NULL)
            continue; /* unknown keys are ignored */
          json_object *x = NULL;
          if (json_object_object_get_ex (*cur, f->name, &x))
            json_object_get (x);
          else
            x = go_zero (f->type);
          size_t old = path_push (p, ".%s", k);
          int r = go_decode (f->type, e, &x, p, err);
          path_pop (p, old);
          if (r < 0)
            {
              json_object_put (x);
              return r;
            }
          json_object_object_add (*cur, f->name, x);
        }
      }
      return 0;
    }
  return BERTH_E_INTERNAL;
}

/* ---- canonical-tree getters (after go_decode) --------------------------- */

static json_object *
cget (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (o && json_object_is_type (o, json_type_object) && json_object_object_get_ex (o, key, &v))
    return v;
  return NULL;
}

static const char *
cget_str (json_object *o, const char *key, size_t *ret_len)
{
  json_object *v = cget (o, key);
  if (v == NULL || !json_object_is_type (v, json_type_string))
    {
      if (ret_len)
        *ret_len = 0;
      return NULL;
    }
  if (ret_len)
    *ret_len = json_object_get_string_len (v);
  return json_object_get_string (v);
}

static int64_t
cget_int (json_object *o, const char *key)
{
  json_object *v = cget (o, key);
  return v && json_object_is_type (v, json_type_int) ? json_object_get_int64 (v) : 0;
}

/* ---- 3. checks done in Go and the strict MUSTs -------------------------- */

static int
check_desc_digest_size (json_object *d, const char *where, berth_error **err)
{
  if (d == NULL)
    return 0;
  size_t n;
  const char *dg = cget_str (d, "digest", &n);
  if (oci_digest_validate (dg ? dg : "", n, err) < 0)
    return berth_error_wrap (err, "%s.digest \"%.80s\"", where, dg ? dg : "");
  if (cget_int (d, "size") < 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s.size is negative", where);
  return 0;
}

static int
go_checks (oci_kind kind, json_object *val, berth_error **err)
{
  char where[64];
  switch (kind)
    {
    case OCI_KIND_DESCRIPTOR:
      return check_desc_digest_size (val, "$", err);
    case OCI_KIND_MANIFEST:
      {
        int r = check_desc_digest_size (cget (val, "config"), "$.config", err);
        if (r < 0)
          return r;
        json_object *layers = cget (val, "layers");
        size_t n = layers ? json_object_array_length (layers) : 0;
        for (size_t i = 0; i < n; i++)
          {
            snprintf (where, sizeof where, "$.layers[%zu]", i);
            if ((r = check_desc_digest_size (json_object_array_get_idx (layers, i), where, err)) < 0)
              return r;
          }
        return check_desc_digest_size (cget (val, "subject"), "$.subject", err);
      }
    case OCI_KIND_INDEX:
      {
        int r;
        json_object *m = cget (val, "manifests");
        size_t n = m ? json_object_array_length (m) : 0;
        for (size_t i = 0; i < n; i++)
          {
            snprintf (where, sizeof where, "$.manifests[%zu]", i);
            if ((r = check_desc_digest_size (json_object_array_get_idx (m, i), where, err)) < 0)
              return r;
          }
        return check_desc_digest_size (cget (val, "subject"), "$.subject", err);
      }
    case OCI_KIND_CONFIG:
      {
        json_object *env = cget (cget (val, "config"), "Env");
        size_t n = env ? json_object_array_length (env) : 0;
        for (size_t i = 0; i < n; i++)
          {
            json_object *e = json_object_array_get_idx (env, i);
            const char *s = json_object_get_string (e);
            size_t len = json_object_get_string_len (e);
            /* ^[^=]+=.*$ where '.' excludes '\n' */
            const char *eq = memchr (s, '=', len);
            if (eq == NULL || eq == s || memchr (eq, '\n', len - (eq - s)))
              return berth_error_set (err, BERTH_E_INVALID, 0, "config.Env: unexpected env \"%.80s\" (want NAME=value)", s);
          }
        json_object *ids = cget (cget (val, "rootfs"), "diff_ids");
        n = ids ? json_object_array_length (ids) : 0;
        for (size_t i = 0; i < n; i++)
          {
            json_object *e = json_object_array_get_idx (ids, i);
            if (oci_digest_validate (json_object_get_string (e), json_object_get_string_len (e), err) < 0)
              return berth_error_wrap (err, "rootfs.diff_ids[%zu] \"%.80s\"", i, json_object_get_string (e));
          }
        return 0;
      }
    default:
      return 0;
    }
}

/* ---- 4. the image-spec JSON schemas (draft-04), on the raw tree --------- */

static int
schema_fail (berth_error **err, const char *where, const char *fmt, ...) BERTH_PRINTF (3, 4);
static int
schema_fail (berth_error **err, const char *where, const char *fmt, ...)
{
  char msg[256];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return berth_error_set (err, BERTH_E_INVALID, 0, "schema: %s: %s", where, msg);
}

static bool
raw_has (json_object *o, const char *key, json_object **ret)
{
  return json_object_object_get_ex (o, key, ret);
}

static int
s_type (json_object *v, enum json_type t, const char *where, const char *tname, berth_error **err)
{
  if (v == NULL || json_object_get_type (v) != t)
    return schema_fail (err, where, "expected %s, got %s", tname, jtype_name (v));
  return 0;
}

static int
s_media_type (json_object *o, const char *key, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, key, &v))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.%s", where, key);
  int r = s_type (v, json_type_string, w, "string", err);
  if (r < 0)
    return r;
  if (!media_type_pattern_ok (json_object_get_string (v), json_object_get_string_len (v)))
    return schema_fail (err, w, "\"%.80s\" is not a media type (type/subtype)", json_object_get_string (v));
  return 0;
}

/* mapStringString / mapStringObject: values of keys matching ".{1,}" (any
 * character but '\n') must be strings / objects. */
static bool
key_matches_dot (const char *k)
{
  for (; *k; k++)
    if (*k != '\n')
      return true;
  return false;
}

static int
s_map (json_object *v, enum json_type vt, const char *where, berth_error **err)
{
  int r = s_type (v, json_type_object, where, "object", err);
  if (r < 0)
    return r;
  json_object_object_foreach (v, k, e)
  {
    if (key_matches_dot (k) && (e == NULL || json_object_get_type (e) != vt))
      return schema_fail (err, where, "value of \"%.80s\" must be %s", k, vt == json_type_string ? "a string" : "an object");
  }
  return 0;
}

static int
s_opt_map (json_object *o, const char *key, enum json_type vt, bool nullable, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, key, &v) || (nullable && v == NULL))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.%s", where, key);
  return s_map (v, vt, w, err);
}

static int
s_opt_string (json_object *o, const char *key, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, key, &v))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.%s", where, key);
  return s_type (v, json_type_string, w, "string", err);
}

static int
s_opt_bool (json_object *o, const char *key, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, key, &v))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.%s", where, key);
  return s_type (v, json_type_boolean, w, "boolean", err);
}

static int
s_string_array (json_object *v, const char *where, bool uri, berth_error **err)
{
  int r = s_type (v, json_type_array, where, "array", err);
  if (r < 0)
    return r;
  size_t n = json_object_array_length (v);
  for (size_t i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (v, i);
      char w[160];
      snprintf (w, sizeof w, "%s[%zu]", where, i);
      if ((r = s_type (e, json_type_string, w, "string", err)) < 0)
        return r;
      if (uri && !uri_ok (json_object_get_string (e), json_object_get_string_len (e)))
        return schema_fail (err, w, "\"%.80s\" is not an absolute URI", json_object_get_string (e));
    }
  return 0;
}

static int
s_opt_string_array (json_object *o, const char *key, bool nullable, bool uri, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, key, &v) || (nullable && v == NULL))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.%s", where, key);
  return s_string_array (v, w, uri, err);
}

static int
s_required (json_object *o, const char *const *keys, const char *where, berth_error **err)
{
  for (; *keys; keys++)
    if (!json_object_object_get_ex (o, *keys, NULL))
      return schema_fail (err, where, "\"%s\" is required", *keys);
  return 0;
}

static int
s_integer (json_object *o, const char *key, bool nonneg, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, key, &v))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.%s", where, key);
  int r = s_type (v, json_type_int, w, "integer", err);
  if (r < 0)
    return r;
  if (nonneg && json_object_get_int64 (v) < 0)
    return schema_fail (err, w, "must be >= 0");
  return 0;
}

static int
s_digest (json_object *o, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, "digest", &v))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.digest", where);
  int r = s_type (v, json_type_string, w, "string", err);
  if (r < 0)
    return r;
  if (!digest_grammar_ok (json_object_get_string (v), json_object_get_string_len (v)))
    return schema_fail (err, w, "\"%.80s\" does not match the digest grammar", json_object_get_string (v));
  return 0;
}

/* content-descriptor.json */
static int
s_descriptor (json_object *d, const char *where, berth_error **err)
{
  static const char *const req[] = { "mediaType", "size", "digest", NULL };
  int r;
  if ((r = s_type (d, json_type_object, where, "object", err)) < 0 || (r = s_media_type (d, "mediaType", where, err)) < 0
      || (r = s_integer (d, "size", true, where, err)) < 0 || (r = s_digest (d, where, err)) < 0
      || (r = s_opt_string_array (d, "urls", false, true, where, err)) < 0
      || (r = s_opt_string (d, "data", where, err)) < 0 || (r = s_media_type (d, "artifactType", where, err)) < 0
      || (r = s_opt_map (d, "annotations", json_type_string, false, where, err)) < 0
      || (r = s_required (d, req, where, err)) < 0)
    return r;
  return 0;
}

static int
s_opt_descriptor (json_object *o, const char *key, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, key, &v))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.%s", where, key);
  return s_descriptor (v, w, err);
}

static int
s_schema_version (json_object *o, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, "schemaVersion", &v))
    return 0;
  int r = s_type (v, json_type_int, "$.schemaVersion", "integer", err);
  if (r < 0)
    return r;
  if (json_object_get_int64 (v) != 2 || !json_int64_ok (v, NULL))
    return schema_fail (err, "$.schemaVersion", "must be 2");
  return 0;
}

static int
s_manifest (json_object *m, berth_error **err)
{
  static const char *const req[] = { "schemaVersion", "config", "layers", NULL };
  int r;
  json_object *layers;
  if ((r = s_type (m, json_type_object, "$", "object", err)) < 0 || (r = s_schema_version (m, err)) < 0
      || (r = s_media_type (m, "mediaType", "$", err)) < 0 || (r = s_media_type (m, "artifactType", "$", err)) < 0
      || (r = s_opt_descriptor (m, "config", "$", err)) < 0 || (r = s_opt_descriptor (m, "subject", "$", err)) < 0
      || (r = s_opt_map (m, "annotations", json_type_string, false, "$", err)) < 0)
    return r;
  if (raw_has (m, "layers", &layers))
    {
      if ((r = s_type (layers, json_type_array, "$.layers", "array", err)) < 0)
        return r;
      size_t n = json_object_array_length (layers);
      if (n < 1)
        return schema_fail (err, "$.layers", "at least one layer is required");
      for (size_t i = 0; i < n; i++)
        {
          char w[64];
          snprintf (w, sizeof w, "$.layers[%zu]", i);
          if ((r = s_descriptor (json_object_array_get_idx (layers, i), w, err)) < 0)
            return r;
        }
    }
  return s_required (m, req, "$", err);
}

static int
s_platform (json_object *p, const char *where, berth_error **err)
{
  static const char *const req[] = { "architecture", "os", NULL };
  int r;
  if ((r = s_type (p, json_type_object, where, "object", err)) < 0
      || (r = s_opt_string (p, "architecture", where, err)) < 0 || (r = s_opt_string (p, "os", where, err)) < 0
      || (r = s_opt_string (p, "os.version", where, err)) < 0
      || (r = s_opt_string_array (p, "os.features", false, false, where, err)) < 0
      || (r = s_opt_string (p, "variant", where, err)) < 0 || (r = s_required (p, req, where, err)) < 0)
    return r;
  return 0;
}

static int
s_index (json_object *x, berth_error **err)
{
  static const char *const req[] = { "schemaVersion", "manifests", NULL };
  static const char *const mreq[] = { "mediaType", "size", "digest", NULL };
  int r;
  json_object *ms;
  if ((r = s_type (x, json_type_object, "$", "object", err)) < 0 || (r = s_schema_version (x, err)) < 0
      || (r = s_media_type (x, "mediaType", "$", err)) < 0 || (r = s_media_type (x, "artifactType", "$", err)) < 0
      || (r = s_opt_descriptor (x, "subject", "$", err)) < 0
      || (r = s_opt_map (x, "annotations", json_type_string, false, "$", err)) < 0)
    return r;
  if (raw_has (x, "manifests", &ms))
    {
      if ((r = s_type (ms, json_type_array, "$.manifests", "array", err)) < 0)
        return r;
      size_t n = json_object_array_length (ms);
      for (size_t i = 0; i < n; i++)
        {
          json_object *d = json_object_array_get_idx (ms, i), *p;
          char w[64];
          snprintf (w, sizeof w, "$.manifests[%zu]", i);
          if ((r = s_type (d, json_type_object, w, "object", err)) < 0 || (r = s_media_type (d, "mediaType", w, err)) < 0
              || (r = s_integer (d, "size", false, w, err)) < 0 || (r = s_digest (d, w, err)) < 0
              || (r = s_opt_string_array (d, "urls", false, true, w, err)) < 0
              || (r = s_opt_map (d, "annotations", json_type_string, false, w, err)) < 0)
            return r;
          if (raw_has (d, "platform", &p))
            {
              char pw[80];
              snprintf (pw, sizeof pw, "%s.platform", w);
              if ((r = s_platform (p, pw, err)) < 0)
                return r;
            }
          if ((r = s_required (d, mreq, w, err)) < 0)
            return r;
        }
    }
  return s_required (x, req, "$", err);
}

static int
s_created (json_object *o, const char *where, berth_error **err)
{
  json_object *v;
  if (!raw_has (o, "created", &v))
    return 0;
  char w[128];
  snprintf (w, sizeof w, "%s.created", where);
  int r = s_type (v, json_type_string, w, "string", err);
  if (r < 0)
    return r;
  if (!rfc3339_ok (json_object_get_string (v), json_object_get_string_len (v)))
    return schema_fail (err, w, "\"%.80s\" is not an RFC 3339 date-time", json_object_get_string (v));
  return 0;
}

static int
s_config (json_object *c, berth_error **err)
{
  static const char *const req[] = { "architecture", "os", "rootfs", NULL };
  static const char *const rreq[] = { "diff_ids", "type", NULL };
  int r;
  json_object *v;
  if ((r = s_type (c, json_type_object, "$", "object", err)) < 0 || (r = s_created (c, "$", err)) < 0
      || (r = s_opt_string (c, "author", "$", err)) < 0 || (r = s_opt_string (c, "architecture", "$", err)) < 0
      || (r = s_opt_string (c, "variant", "$", err)) < 0 || (r = s_opt_string (c, "os", "$", err)) < 0
      || (r = s_opt_string (c, "os.version", "$", err)) < 0
      || (r = s_opt_string_array (c, "os.features", false, false, "$", err)) < 0)
    return r;
  if (raw_has (c, "config", &v))
    {
      const char *w = "$.config";
      if ((r = s_type (v, json_type_object, w, "object", err)) < 0 || (r = s_opt_string (v, "User", w, err)) < 0
          || (r = s_opt_map (v, "ExposedPorts", json_type_object, false, w, err)) < 0
          || (r = s_opt_string_array (v, "Env", false, false, w, err)) < 0
          || (r = s_opt_string_array (v, "Entrypoint", true, false, w, err)) < 0
          || (r = s_opt_string_array (v, "Cmd", true, false, w, err)) < 0
          || (r = s_opt_map (v, "Volumes", json_type_object, true, w, err)) < 0
          || (r = s_opt_string (v, "WorkingDir", w, err)) < 0
          || (r = s_opt_map (v, "Labels", json_type_string, true, w, err)) < 0
          || (r = s_opt_string (v, "StopSignal", w, err)) < 0 || (r = s_opt_bool (v, "ArgsEscaped", w, err)) < 0)
        return r;
    }
  if (raw_has (c, "rootfs", &v))
    {
      const char *w = "$.rootfs";
      json_object *t;
      if ((r = s_type (v, json_type_object, w, "object", err)) < 0
          || (r = s_opt_string_array (v, "diff_ids", false, false, w, err)) < 0)
        return r;
      if (raw_has (v, "type", &t))
        {
          if ((r = s_type (t, json_type_string, "$.rootfs.type", "string", err)) < 0)
            return r;
          if (json_object_get_string_len (t) != 6 || memcmp (json_object_get_string (t), "layers", 6) != 0)
            return schema_fail (err, "$.rootfs.type", "must be \"layers\"");
        }
      if ((r = s_required (v, rreq, w, err)) < 0)
        return r;
    }
  if (raw_has (c, "history", &v))
    {
      if ((r = s_type (v, json_type_array, "$.history", "array", err)) < 0)
        return r;
      size_t n = json_object_array_length (v);
      for (size_t i = 0; i < n; i++)
        {
          json_object *h = json_object_array_get_idx (v, i);
          char w[64];
          snprintf (w, sizeof w, "$.history[%zu]", i);
          if ((r = s_type (h, json_type_object, w, "object", err)) < 0 || (r = s_created (h, w, err)) < 0
              || (r = s_opt_string (h, "author", w, err)) < 0 || (r = s_opt_string (h, "created_by", w, err)) < 0
              || (r = s_opt_string (h, "comment", w, err)) < 0 || (r = s_opt_bool (h, "empty_layer", w, err)) < 0)
            return r;
        }
    }
  return s_required (c, req, "$", err);
}

static int
s_layout (json_object *l, berth_error **err)
{
  static const char *const req[] = { "imageLayoutVersion", NULL };
  int r;
  json_object *v;
  if ((r = s_type (l, json_type_object, "$", "object", err)) < 0)
    return r;
  if (raw_has (l, "imageLayoutVersion", &v))
    {
      if ((r = s_type (v, json_type_string, "$.imageLayoutVersion", "string", err)) < 0)
        return r;
      if (json_object_get_string_len (v) != 5 || memcmp (json_object_get_string (v), "1.0.0", 5) != 0)
        return schema_fail (err, "$.imageLayoutVersion", "must be \"1.0.0\"");
    }
  return s_required (l, req, "$", err);
}

/* ---- the validator ------------------------------------------------------ */

static const struct gtype *
kind_gtype (oci_kind k)
{
  switch (k)
    {
    case OCI_KIND_DESCRIPTOR:
      return &gt_descriptor;
    case OCI_KIND_MANIFEST:
      return &gt_manifest;
    case OCI_KIND_INDEX:
      return &gt_index;
    case OCI_KIND_CONFIG:
      return &gt_image;
    default:
      return NULL;
    }
}

/* A raw top-level key folding to `field` whose value is the integer 1. */
static bool
says_schema1 (json_object *raw)
{
  if (!json_object_is_type (raw, json_type_object))
    return false;
  bool one = false;
  json_object_object_foreach (raw, k, v)
  {
    if (fold_eq (k, "schemaVersion") && json_object_is_type (v, json_type_int))
      one = json_object_get_int64 (v) == 1;
  }
  return one;
}

/* Validate a parsed tree; on success hand back the canonical (Go) tree. */
static int
validate_tree (oci_kind kind, json_object *raw, json_object **ret_val, berth_error **err)
{
  _cleanup_json_ json_object *val = NULL;
  int r;
  if ((kind == OCI_KIND_MANIFEST || kind == OCI_KIND_INDEX) && says_schema1 (raw))
    return berth_error_set (err, BERTH_E_INVALID, 0, OCI_SCHEMA1_MESSAGE);
  const struct gtype *gt = kind_gtype (kind);
  if (gt)
    {
      struct path p = { "$", 1 };
      val = go_zero (gt);
      if ((r = go_decode (gt, raw, &val, &p, err)) < 0)
        return berth_error_wrap (err, "Go decode (%s)", gt->name);
      if ((r = go_checks (kind, val, err)) < 0)
        return r;
    }
  switch (kind)
    {
    case OCI_KIND_DESCRIPTOR:
      r = s_descriptor (raw, "$", err);
      break;
    case OCI_KIND_MANIFEST:
      r = s_manifest (raw, err);
      break;
    case OCI_KIND_INDEX:
      r = s_index (raw, err);
      break;
    case OCI_KIND_CONFIG:
      r = s_config (raw, err);
      break;
    case OCI_KIND_LAYOUT:
      r = s_layout (raw, err);
      break;
    default:
      r = BERTH_E_INTERNAL;
    }
  if (r < 0)
    return r;
  if (ret_val)
    *ret_val = TAKE_PTR (val);
  return 0;
}

static int
validate_kind (oci_kind kind, const char *json, size_t len, json_object **ret_raw, json_object **ret_val,
               berth_error **err)
{
  _cleanup_json_ json_object *raw = NULL;
  int r = json_parse_strict (json, len, OCI_DOC_MAX, &raw, err);
  if (r < 0)
    return r;
  if ((r = validate_tree (kind, raw, ret_val, err)) < 0)
    return r;
  if (ret_raw)
    *ret_raw = TAKE_PTR (raw);
  return 0;
}

static int
kind_for_validation (const char *media_type, oci_kind *ret, berth_error **err)
{
  oci_kind k = oci_media_type_kind (media_type);
  if (k == OCI_KIND_SCHEMA1)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "%s: " OCI_SCHEMA1_MESSAGE, media_type);
  if (k == OCI_KIND_UNKNOWN || k == OCI_KIND_LAYER)
    return berth_error_set (err, BERTH_E_NOTSUP, 0, "no validator available for media type %s",
                            media_type ? media_type : "(none)");
  *ret = k;
  return 0;
}

int
oci_validate (const char *media_type, const char *json, size_t len, berth_error **err)
{
  oci_kind k = OCI_KIND_UNKNOWN;
  int r = kind_for_validation (media_type, &k, err);
  if (r < 0)
    return r;
  return validate_kind (k, json, len, NULL, NULL, err);
}

/* ---- typed parsing ------------------------------------------------------ */

static void
strv_freep_ (char ***v)
{
  strv_free (*v);
  *v = NULL;
}

static void
map_clear (oci_map *m)
{
  for (size_t i = 0; i < m->n; i++)
    {
      free (m->keys[i]);
      free (m->values[i]);
    }
  free (m->keys);
  free (m->values);
  *m = (oci_map){ 0 };
}

const char *
oci_map_get (const oci_map *m, const char *key)
{
  for (size_t i = 0; m && i < m->n; i++)
    if (strcmp (m->keys[i], key) == 0)
      return m->values[i];
  return NULL;
}

oci_platform *
oci_platform_free (oci_platform *p)
{
  if (p == NULL)
    return NULL;
  free (p->architecture);
  free (p->os);
  free (p->os_version);
  strv_free (p->os_features);
  free (p->variant);
  free (p);
  return NULL;
}

void
oci_platform_freep (oci_platform **p)
{
  *p = oci_platform_free (*p);
}

static char **
strv_dup (char *const *v)
{
  if (v == NULL)
    return NULL;
  size_t n = 0;
  while (v[n])
    n++;
  char **out = calloc (n + 1, sizeof *out);
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if ((out[i] = strdup (v[i])) == NULL)
      {
        strv_free (out);
        return NULL;
      }
  return out;
}

static bool
dup_opt (char **dst, const char *src)
{
  *dst = NULL;
  if (src == NULL)
    return true;
  return (*dst = strdup (src)) != NULL;
}

oci_platform *
oci_platform_dup (const oci_platform *p)
{
  if (p == NULL)
    return NULL;
  _cleanup_ (oci_platform_freep) oci_platform *c = calloc (1, sizeof *c);
  if (c == NULL || !dup_opt (&c->architecture, p->architecture) || !dup_opt (&c->os, p->os)
      || !dup_opt (&c->os_version, p->os_version) || !dup_opt (&c->variant, p->variant))
    return NULL;
  if (p->os_features && (c->os_features = strv_dup (p->os_features)) == NULL)
    return NULL;
  return TAKE_PTR (c);
}

void
oci_descriptor_clear (oci_descriptor *d)
{
  if (d == NULL)
    return;
  free (d->media_type);
  strv_free (d->urls);
  map_clear (&d->annotations);
  oci_platform_free (d->platform);
  free (d->artifact_type);
  free (d->data);
  *d = (oci_descriptor){ 0 };
}

static bool
map_copy (oci_map *dst, const oci_map *src)
{
  *dst = (oci_map){ 0 };
  if (src->n == 0)
    return true;
  dst->keys = calloc (src->n, sizeof (char *));
  dst->values = calloc (src->n, sizeof (char *));
  if (dst->keys == NULL || dst->values == NULL)
    {
      map_clear (dst);
      return false;
    }
  for (size_t i = 0; i < src->n; i++)
    {
      dst->keys[i] = strdup (src->keys[i]);
      dst->values[i] = strdup (src->values[i]);
      dst->n++;
      if (dst->keys[i] == NULL || dst->values[i] == NULL)
        {
          map_clear (dst);
          return false;
        }
    }
  return true;
}

int
oci_descriptor_copy (oci_descriptor *ret, const oci_descriptor *src, berth_error **err)
{
  oci_descriptor d = { 0 };
  memcpy (d.digest, src->digest, sizeof d.digest);
  d.size = src->size;
  d.data_len = src->data_len;
  bool ok = dup_opt (&d.media_type, src->media_type) && dup_opt (&d.artifact_type, src->artifact_type)
            && map_copy (&d.annotations, &src->annotations);
  if (ok && src->urls)
    ok = (d.urls = strv_dup (src->urls)) != NULL;
  if (ok && src->platform)
    ok = (d.platform = oci_platform_dup (src->platform)) != NULL;
  if (ok && src->data)
    {
      d.data = malloc (src->data_len ? src->data_len : 1);
      ok = d.data != NULL;
      if (ok)
        memcpy (d.data, src->data, src->data_len);
    }
  if (!ok)
    {
      oci_descriptor_clear (&d);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "copying a descriptor");
    }
  *ret = d;
  return 0;
}

/* Extraction from the canonical tree.  Every string is refused if it holds
 * a NUL, which C would silently truncate. */
struct ex
{
  berth_error **err;
  int r;
};

static bool
ex_fail (struct ex *x, int code, const char *fmt, ...) BERTH_PRINTF (3, 4);
static bool
ex_fail (struct ex *x, int code, const char *fmt, ...)
{
  if (x->r < 0)
    return false;
  char msg[256];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  x->r = berth_error_set (x->err, code, 0, "%s", msg);
  return false;
}

static bool
ex_str_of (struct ex *x, json_object *v, const char *what, char **ret)
{
  *ret = NULL;
  if (v == NULL || !json_object_is_type (v, json_type_string))
    return true;
  size_t n = json_object_get_string_len (v);
  const char *s = json_object_get_string (v);
  if (memchr (s, '\0', n))
    return ex_fail (x, BERTH_E_INVALID, "%s contains a NUL character", what);
  if ((*ret = strndup (s, n)) == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  return true;
}

static bool
ex_str (struct ex *x, json_object *o, const char *key, char **ret)
{
  return ex_str_of (x, cget (o, key), key, ret);
}

static bool
ex_strv (struct ex *x, json_object *o, const char *key, char ***ret, size_t *ret_n)
{
  *ret = NULL;
  if (ret_n)
    *ret_n = 0;
  json_object *a = cget (o, key);
  if (a == NULL)
    return true;
  size_t n = json_object_array_length (a);
  _cleanup_ (strv_freep_) char **v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    if (!ex_str_of (x, json_object_array_get_idx (a, i), key, &v[i]))
      return false;
  if (ret_n)
    *ret_n = n;
  *ret = TAKE_PTR (v);
  return true;
}

static bool
ex_keys (struct ex *x, json_object *o, const char *key, char ***ret)
{
  *ret = NULL;
  json_object *m = cget (o, key);
  if (m == NULL)
    return true;
  size_t n = json_object_object_length (m), i = 0;
  _cleanup_ (strv_freep_) char **v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  json_object_object_foreach (m, k, e)
  {
    (void) e;
    if ((v[i++] = strdup (k)) == NULL)
      return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  }
  *ret = TAKE_PTR (v);
  return true;
}

static bool
ex_map (struct ex *x, json_object *o, const char *key, oci_map *ret)
{
  *ret = (oci_map){ 0 };
  json_object *m = cget (o, key);
  if (m == NULL)
    return true;
  size_t n = json_object_object_length (m);
  if (n == 0)
    return true;
  ret->keys = calloc (n, sizeof (char *));
  ret->values = calloc (n, sizeof (char *));
  if (ret->keys == NULL || ret->values == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  json_object_object_foreach (m, k, e)
  {
    ret->keys[ret->n] = strdup (k);
    ret->n++;
    if (ret->keys[ret->n - 1] == NULL)
      return ex_fail (x, BERTH_E_NOMEM, "out of memory");
    if (!ex_str_of (x, e, key, &ret->values[ret->n - 1]))
      return false;
    if (ret->values[ret->n - 1] == NULL && (ret->values[ret->n - 1] = strdup ("")) == NULL)
      return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  }
  return true;
}

static bool
ex_platform (struct ex *x, json_object *p, oci_platform **ret)
{
  *ret = NULL;
  if (p == NULL)
    return true;
  _cleanup_ (oci_platform_freep) oci_platform *pl = calloc (1, sizeof *pl);
  if (pl == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  if (!ex_str (x, p, "architecture", &pl->architecture) || !ex_str (x, p, "os", &pl->os)
      || !ex_str (x, p, "os.version", &pl->os_version) || !ex_str (x, p, "variant", &pl->variant)
      || !ex_strv (x, p, "os.features", &pl->os_features, NULL))
    return false;
  if ((pl->architecture == NULL && (pl->architecture = strdup ("")) == NULL)
      || (pl->os == NULL && (pl->os = strdup ("")) == NULL))
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  *ret = TAKE_PTR (pl);
  return true;
}

static bool
ex_descriptor (struct ex *x, json_object *o, const char *where, oci_descriptor *d)
{
  *d = (oci_descriptor){ 0 };
  size_t n;
  const char *dg = cget_str (o, "digest", &n);
  if (dg == NULL || n >= OCI_DIGEST_MAX)
    return ex_fail (x, BERTH_E_NOTSUP, "%s: digest too long (%zu bytes, limit %d)", where, n, OCI_DIGEST_MAX - 1);
  memcpy (d->digest, dg, n);
  d->digest[n] = '\0';
  d->size = cget_int (o, "size");
  if (!ex_str (x, o, "mediaType", &d->media_type) || !ex_str (x, o, "artifactType", &d->artifact_type)
      || !ex_strv (x, o, "urls", &d->urls, NULL) || !ex_map (x, o, "annotations", &d->annotations)
      || !ex_platform (x, cget (o, "platform"), &d->platform))
    return false;
  if (d->media_type == NULL && (d->media_type = strdup ("")) == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  json_object *data = cget (o, "data");
  if (data)
    {
      if (json_object_is_type (data, json_type_string))
        {
          size_t sn = json_object_get_string_len (data);
          d->data = malloc (sn / 4 * 3 + 3);
          if (d->data == NULL)
            return ex_fail (x, BERTH_E_NOMEM, "out of memory");
          base64_decode (json_object_get_string (data), sn, d->data, &d->data_len);
        }
      else
        {
          size_t an = json_object_array_length (data);
          d->data = malloc (an ? an : 1);
          if (d->data == NULL)
            return ex_fail (x, BERTH_E_NOMEM, "out of memory");
          for (size_t i = 0; i < an; i++)
            d->data[i] = (uint8_t) json_object_get_int64 (json_object_array_get_idx (data, i));
          d->data_len = an;
        }
    }
  return true;
}

static bool
ex_descriptors (struct ex *x, json_object *o, const char *key, oci_descriptor **ret, size_t *ret_n)
{
  *ret = NULL;
  *ret_n = 0;
  json_object *a = cget (o, key);
  size_t n = a ? json_object_array_length (a) : 0;
  if (n == 0)
    return true;
  oci_descriptor *v = calloc (n, sizeof *v);
  if (v == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  *ret = v;
  for (size_t i = 0; i < n; i++)
    {
      char where[64];
      snprintf (where, sizeof where, "%s[%zu]", key, i);
      (*ret_n)++;
      if (!ex_descriptor (x, json_object_array_get_idx (a, i), where, &v[i]))
        return false;
    }
  return true;
}

static bool
ex_subject (struct ex *x, json_object *o, oci_descriptor **ret)
{
  *ret = NULL;
  json_object *s = cget (o, "subject");
  if (s == NULL)
    return true;
  if ((*ret = calloc (1, sizeof **ret)) == NULL)
    return ex_fail (x, BERTH_E_NOMEM, "out of memory");
  return ex_descriptor (x, s, "subject", *ret);
}

static void
descriptors_free (oci_descriptor *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    oci_descriptor_clear (&v[i]);
  free (v);
}

oci_manifest *
oci_manifest_free (oci_manifest *m)
{
  if (m == NULL)
    return NULL;
  free (m->media_type);
  free (m->artifact_type);
  oci_descriptor_clear (&m->config);
  descriptors_free (m->layers, m->n_layers);
  if (m->subject)
    {
      oci_descriptor_clear (m->subject);
      free (m->subject);
    }
  map_clear (&m->annotations);
  free (m);
  return NULL;
}

oci_index *
oci_index_free (oci_index *i)
{
  if (i == NULL)
    return NULL;
  free (i->media_type);
  free (i->artifact_type);
  descriptors_free (i->manifests, i->n_manifests);
  if (i->subject)
    {
      oci_descriptor_clear (i->subject);
      free (i->subject);
    }
  map_clear (&i->annotations);
  free (i);
  return NULL;
}

oci_config *
oci_config_free (oci_config *c)
{
  if (c == NULL)
    return NULL;
  free (c->architecture);
  free (c->os);
  free (c->variant);
  free (c->os_version);
  strv_free (c->os_features);
  free (c->created);
  free (c->author);
  free (c->config.user);
  strv_free (c->config.env);
  strv_free (c->config.entrypoint);
  strv_free (c->config.cmd);
  free (c->config.working_dir);
  strv_free (c->config.exposed_ports);
  strv_free (c->config.volumes);
  map_clear (&c->config.labels);
  free (c->config.stop_signal);
  free (c->rootfs_type);
  strv_free (c->diff_ids);
  for (size_t i = 0; i < c->n_history; i++)
    {
      free (c->history[i].created);
      free (c->history[i].created_by);
      free (c->history[i].author);
      free (c->history[i].comment);
    }
  free (c->history);
  free (c);
  return NULL;
}

oci_layout *
oci_layout_free (oci_layout *l)
{
  if (l == NULL)
    return NULL;
  free (l->image_layout_version);
  free (l);
  return NULL;
}

void
oci_manifest_freep (oci_manifest **m)
{
  *m = oci_manifest_free (*m);
}
void
oci_index_freep (oci_index **i)
{
  *i = oci_index_free (*i);
}
void
oci_config_freep (oci_config **c)
{
  *c = oci_config_free (*c);
}
void
oci_layout_freep (oci_layout **l)
{
  *l = oci_layout_free (*l);
}

/* A raw top-level key that folds to `field` (Go would read it). */
static bool
raw_has_fold (json_object *raw, const char *field)
{
  json_object_object_foreach (raw, k, v)
  {
    (void) v;
    if (fold_eq (k, field))
      return true;
  }
  return false;
}

/* Common front of the typed parsers: check the declared type, refuse
 * schema 1, validate, and refuse a mediaType field of another kind. */
static int
parse_front (oci_kind want, const char *media_type, const char *json, size_t len, json_object **ret_raw,
             json_object **ret_val, char **ret_mt, berth_error **err)
{
  if (media_type)
    {
      oci_kind k = oci_media_type_kind (media_type);
      if (k == OCI_KIND_SCHEMA1)
        return berth_error_set (err, BERTH_E_NOTSUP, 0, OCI_SCHEMA1_MESSAGE);
      if (k != want)
        return berth_error_set (err, BERTH_E_INVALID, 0, "media type %.80s is not an %s", media_type, kind_name (want));
    }
  _cleanup_json_ json_object *raw = NULL;
  _cleanup_json_ json_object *val = NULL;
  int r = json_parse_strict (json, len, OCI_DOC_MAX, &raw, err);
  if (r < 0)
    return r;
  if ((want == OCI_KIND_MANIFEST || want == OCI_KIND_INDEX) && says_schema1 (raw))
    return berth_error_set (err, BERTH_E_NOTSUP, 0, OCI_SCHEMA1_MESSAGE);
  if ((r = validate_tree (want, raw, &val, err)) < 0)
    return r;
  size_t n;
  const char *field = cget_str (val, "mediaType", &n);
  if (field && n > 0)
    {
      oci_kind fk = oci_media_type_kind (field);
      if (fk == OCI_KIND_SCHEMA1)
        return berth_error_set (err, BERTH_E_NOTSUP, 0, OCI_SCHEMA1_MESSAGE);
      if (fk != OCI_KIND_UNKNOWN && fk != want)
        return berth_error_set (err, BERTH_E_INVALID, 0, "document says mediaType %.80s, expected an %s", field,
                                kind_name (want));
      if (memchr (field, '\0', n))
        return berth_error_set (err, BERTH_E_INVALID, 0, "mediaType contains a NUL character");
    }
  /* CVE-2021-41190: a document must not be readable as both kinds. */
  if (want == OCI_KIND_MANIFEST && raw_has_fold (raw, "manifests"))
    return berth_error_set (err, BERTH_E_INVALID, 0, "image manifest has a \"manifests\" field: ambiguous document");
  if (want == OCI_KIND_INDEX && (raw_has_fold (raw, "layers") || raw_has_fold (raw, "config")))
    return berth_error_set (err, BERTH_E_INVALID, 0,
                            "image index has a \"layers\" or \"config\" field: ambiguous document");
  const char *mt = field && n > 0 ? field : media_type;
  if (mt == NULL)
    mt = want == OCI_KIND_MANIFEST ? OCI_MT_MANIFEST : want == OCI_KIND_INDEX ? OCI_MT_INDEX : OCI_MT_CONFIG;
  if (ret_mt && (*ret_mt = strdup (mt)) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  *ret_raw = TAKE_PTR (raw);
  *ret_val = TAKE_PTR (val);
  return 0;
}

int
oci_manifest_parse (const char *media_type, const char *json, size_t len, oci_manifest **ret, berth_error **err)
{
  _cleanup_json_ json_object *raw = NULL;
  _cleanup_json_ json_object *val = NULL;
  _cleanup_ (oci_manifest_freep) oci_manifest *m = calloc (1, sizeof *m);
  if (m == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = parse_front (OCI_KIND_MANIFEST, media_type, json, len, &raw, &val, &m->media_type, err);
  if (r < 0)
    return r;
  struct ex x = { err, 0 };
  if (!ex_str (&x, val, "artifactType", &m->artifact_type)
      || !ex_descriptor (&x, cget (val, "config"), "config", &m->config)
      || !ex_descriptors (&x, val, "layers", &m->layers, &m->n_layers) || !ex_subject (&x, val, &m->subject)
      || !ex_map (&x, val, "annotations", &m->annotations))
    return x.r;
  *ret = TAKE_PTR (m);
  return 0;
}

int
oci_index_parse (const char *media_type, const char *json, size_t len, oci_index **ret, berth_error **err)
{
  _cleanup_json_ json_object *raw = NULL;
  _cleanup_json_ json_object *val = NULL;
  _cleanup_ (oci_index_freep) oci_index *i = calloc (1, sizeof *i);
  if (i == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = parse_front (OCI_KIND_INDEX, media_type, json, len, &raw, &val, &i->media_type, err);
  if (r < 0)
    return r;
  struct ex x = { err, 0 };
  if (!ex_str (&x, val, "artifactType", &i->artifact_type)
      || !ex_descriptors (&x, val, "manifests", &i->manifests, &i->n_manifests) || !ex_subject (&x, val, &i->subject)
      || !ex_map (&x, val, "annotations", &i->annotations))
    return x.r;
  *ret = TAKE_PTR (i);
  return 0;
}

int
oci_config_parse (const char *media_type, const char *json, size_t len, oci_config **ret, berth_error **err)
{
  _cleanup_json_ json_object *raw = NULL;
  _cleanup_json_ json_object *val = NULL;
  _cleanup_ (oci_config_freep) oci_config *c = calloc (1, sizeof *c);
  if (c == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = parse_front (OCI_KIND_CONFIG, media_type, json, len, &raw, &val, NULL, err);
  if (r < 0)
    return r;
  struct ex x = { err, 0 };
  json_object *cc = cget (val, "config"), *rootfs = cget (val, "rootfs");
  if (!ex_str (&x, val, "architecture", &c->architecture) || !ex_str (&x, val, "os", &c->os)
      || !ex_str (&x, val, "variant", &c->variant) || !ex_str (&x, val, "os.version", &c->os_version)
      || !ex_strv (&x, val, "os.features", &c->os_features, NULL) || !ex_str (&x, val, "created", &c->created)
      || !ex_str (&x, val, "author", &c->author) || !ex_str (&x, cc, "User", &c->config.user)
      || !ex_strv (&x, cc, "Env", &c->config.env, NULL) || !ex_strv (&x, cc, "Entrypoint", &c->config.entrypoint, NULL)
      || !ex_strv (&x, cc, "Cmd", &c->config.cmd, NULL) || !ex_str (&x, cc, "WorkingDir", &c->config.working_dir)
      || !ex_keys (&x, cc, "ExposedPorts", &c->config.exposed_ports)
      || !ex_keys (&x, cc, "Volumes", &c->config.volumes) || !ex_map (&x, cc, "Labels", &c->config.labels)
      || !ex_str (&x, cc, "StopSignal", &c->config.stop_signal) || !ex_str (&x, rootfs, "type", &c->rootfs_type)
      || !ex_strv (&x, rootfs, "diff_ids", &c->diff_ids, &c->n_diff_ids))
    return x.r;
  json_object *ae = cget (cc, "ArgsEscaped");
  c->config.args_escaped = ae && json_object_get_boolean (ae);
  if (c->diff_ids == NULL && (c->diff_ids = calloc (1, sizeof (char *))) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  json_object *h = cget (val, "history");
  size_t n = h ? json_object_array_length (h) : 0;
  if (n > 0)
    {
      if ((c->history = calloc (n, sizeof *c->history)) == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      for (size_t i = 0; i < n; i++)
        {
          json_object *e = json_object_array_get_idx (h, i);
          oci_history *hi = &c->history[i];
          c->n_history++;
          if (!ex_str (&x, e, "created", &hi->created) || !ex_str (&x, e, "created_by", &hi->created_by)
              || !ex_str (&x, e, "author", &hi->author) || !ex_str (&x, e, "comment", &hi->comment))
            return x.r;
          json_object *el = cget (e, "empty_layer");
          hi->empty_layer = el && json_object_get_boolean (el);
        }
    }
  *ret = TAKE_PTR (c);
  return 0;
}

int
oci_descriptor_parse (const char *json, size_t len, oci_descriptor *ret, berth_error **err)
{
  _cleanup_json_ json_object *val = NULL;
  int r = validate_kind (OCI_KIND_DESCRIPTOR, json, len, NULL, &val, err);
  if (r < 0)
    return r;
  struct ex x = { err, 0 };
  oci_descriptor d;
  if (!ex_descriptor (&x, val, "descriptor", &d))
    {
      oci_descriptor_clear (&d);
      return x.r;
    }
  *ret = d;
  return 0;
}

int
oci_layout_parse (const char *json, size_t len, oci_layout **ret, berth_error **err)
{
  _cleanup_json_ json_object *raw = NULL;
  int r = validate_kind (OCI_KIND_LAYOUT, json, len, &raw, NULL, err);
  if (r < 0)
    return r;
  _cleanup_ (oci_layout_freep) oci_layout *l = calloc (1, sizeof *l);
  if (l == NULL || (l->image_layout_version = strdup ("1.0.0")) == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  *ret = TAKE_PTR (l);
  return 0;
}

const char *
oci_detect_media_type (const char *json, size_t len)
{
  _cleanup_json_ json_object *raw = NULL;
  if (json_parse_strict (json, len, OCI_DOC_MAX, &raw, NULL) < 0 || !json_object_is_type (raw, json_type_object))
    return NULL;
  json_object *mt = NULL, *sv = NULL;
  bool has_manifests = false, has_config = false, has_layers = false, has_rootfs = false, has_layout = false;
  json_object_object_foreach (raw, k, v)
  {
    if (fold_eq (k, "mediaType"))
      mt = v;
    else if (fold_eq (k, "schemaVersion"))
      sv = v;
    else if (fold_eq (k, "manifests"))
      has_manifests = true;
    else if (fold_eq (k, "config"))
      has_config = true;
    else if (fold_eq (k, "layers"))
      has_layers = true;
    else if (fold_eq (k, "rootfs"))
      has_rootfs = true;
    else if (strcmp (k, "imageLayoutVersion") == 0)
      has_layout = true;
  }
  if (mt && json_object_is_type (mt, json_type_string))
    {
      int i = media_type_find (json_object_get_string (mt));
      if (i >= 0 && media_types[i].kind != OCI_KIND_LAYER)
        return media_types[i].mt;
    }
  if (sv && json_object_is_type (sv, json_type_int))
    {
      int64_t ver = json_object_get_int64 (sv);
      if (ver == 1)
        return DOCKER_MT_MANIFEST_V1;
      if (ver == 2)
        {
          if (has_manifests && !has_layers && !has_config)
            return OCI_MT_INDEX;
          if (has_config && has_layers && !has_manifests)
            return OCI_MT_MANIFEST;
          return NULL;
        }
    }
  if (has_rootfs)
    return OCI_MT_CONFIG;
  if (has_layout)
    return OCI_MT_LAYOUT;
  return NULL;
}
