/* OCI runtime-spec generation; the rules are in ocispec.h. */
#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <json-c/json.h>

#include "cleanup.h"
#include "ocispec.h"

#ifndef SECCOMP_PROFILE
#define SECCOMP_PROFILE "/usr/share/containers/seccomp.json"
#endif
#ifndef BERTH_INIT_PATH
#define BERTH_INIT_PATH "/usr/libexec/berth/berth-init"
#endif

#define PROFILE_MAX (4u << 20)
#define ENV_FILE_MAX (1u << 20)
/* Docker's minimum for --memory (daemon/daemon_unix.go, linuxMinMemory). */
#define MEMORY_MIN (6 * 1024 * 1024)
#define CPU_PERIOD 100000

static inline void
json_putp (json_object **o)
{
  if (*o)
    json_object_put (*o);
}
#define _cleanup_json_ _cleanup_ (json_putp)

/* ---- small json helpers -------------------------------------------------- */

static void
jset (json_object *o, const char *key, json_object *v)
{
  json_object_object_add (o, key, v);
}

static void
jset_str (json_object *o, const char *key, const char *s)
{
  json_object_object_add (o, key, json_object_new_string (s));
}

static json_object *
jstrs (const char *const *v)
{
  json_object *a = json_object_new_array ();
  for (size_t i = 0; v && v[i]; i++)
    json_object_array_add (a, json_object_new_string (v[i]));
  return a;
}

static bool
jarr_has_str (json_object *a, const char *s)
{
  size_t n = a ? json_object_array_length (a) : 0;
  for (size_t i = 0; i < n; i++)
    {
      const char *e = json_object_get_string (json_object_array_get_idx (a, i));
      if (e && strcmp (e, s) == 0)
        return true;
    }
  return false;
}

static void
jarr_remove_str (json_object *a, const char *s)
{
  for (size_t i = 0; i < json_object_array_length (a);)
    {
      if (strcmp (json_object_get_string (json_object_array_get_idx (a, i)), s) == 0)
        json_object_array_del_idx (a, i, 1);
      else
        i++;
    }
}

/* A field that must be null/absent or an array of strings.  *ret is a
 * borrowed reference (NULL when absent or null). */
static int
get_strv (json_object *obj, const char *key, const char *where, json_object **ret, berth_error **err)
{
  json_object *v = NULL;
  *ret = NULL;
  if (!json_object_object_get_ex (obj, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_array))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: expected an array of strings, got %s", where, key,
                            json_type_to_name (json_object_get_type (v)));
  size_t n = json_object_array_length (v);
  for (size_t i = 0; i < n; i++)
    if (!json_object_is_type (json_object_array_get_idx (v, i), json_type_string))
      return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s[%zu]: expected a string, got %s", where, key, i,
                              json_type_to_name (json_object_get_type (json_object_array_get_idx (v, i))));
  *ret = v;
  return 0;
}

/* A field that must be null/absent or a string. */
static int
get_str (json_object *obj, const char *key, const char *where, const char **ret, berth_error **err)
{
  json_object *v = NULL;
  *ret = NULL;
  if (!json_object_object_get_ex (obj, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_string))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: expected a string, got %s", where, key,
                            json_type_to_name (json_object_get_type (v)));
  *ret = json_object_get_string (v);
  return 0;
}

/* A field that must be null/absent or a non-negative integer <= max. */
static int
get_uint (json_object *obj, const char *key, const char *where, uint64_t max, bool *ret_present, uint64_t *ret,
          berth_error **err)
{
  json_object *v = NULL;
  *ret_present = false;
  *ret = 0;
  if (!json_object_object_get_ex (obj, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_int))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: expected an unsigned integer, got %s", where, key,
                            json_type_to_name (json_object_get_type (v)));
  /* json-c keeps values above INT64_MAX as uint64; below 0 as int64. */
  if (json_object_get_int64 (v) < 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: %" PRId64 " is negative", where, key,
                            json_object_get_int64 (v));
  uint64_t u = json_object_get_uint64 (v);
  if (u > max)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: %" PRIu64 " is above %" PRIu64, where, key, u, max);
  *ret_present = true;
  *ret = u;
  return 0;
}

static int
get_obj (json_object *obj, const char *key, const char *where, json_object **ret, berth_error **err)
{
  json_object *v = NULL;
  *ret = NULL;
  if (!json_object_object_get_ex (obj, key, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_object))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: expected an object, got %s", where, key,
                            json_type_to_name (json_object_get_type (v)));
  *ret = v;
  return 0;
}

/* ---- paths ---------------------------------------------------------------- */

/* Clean an absolute path lexically: "//a/./b/" -> "/a/b".  ".." is refused
 * rather than resolved: a mount destination with ".." is a mistake or an
 * attack.  Returns NULL (errno EINVAL) for a relative path or "..". */
static char *
path_clean (const char *p)
{
  if (p == NULL || p[0] != '/')
    {
      errno = EINVAL;
      return NULL;
    }
  size_t n = strlen (p);
  char *out = malloc (n + 1);
  if (out == NULL)
    return NULL;
  size_t o = 0;
  const char *s = p;
  while (*s)
    {
      while (*s == '/')
        s++;
      const char *e = s;
      while (*e && *e != '/')
        e++;
      size_t len = e - s;
      if (len == 0 || (len == 1 && s[0] == '.'))
        {
          s = e;
          continue;
        }
      if (len == 2 && s[0] == '.' && s[1] == '.')
        {
          free (out);
          errno = EINVAL;
          return NULL;
        }
      out[o++] = '/';
      memcpy (out + o, s, len);
      o += len;
      s = e;
    }
  if (o == 0)
    out[o++] = '/';
  out[o] = 0;
  return out;
}

/* ---- parsers for the CLI -------------------------------------------------- */

int
ocispec_parse_bytes (const char *s, int64_t *ret, berth_error **err)
{
  if (s == NULL || *s == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid size \"\": empty");
  const char *p = s;
  if (!isdigit ((unsigned char)*p))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid size \"%s\": expected a number like 512m or 1.5g", s);
  /* Integer and fraction kept apart so that "1.5g" is exact. */
  uint64_t whole = 0;
  while (isdigit ((unsigned char)*p))
    {
      if (whole > (UINT64_MAX - 9) / 10)
        return berth_error_set (err, BERTH_E_INVALID, 0, "invalid size \"%s\": too large", s);
      whole = whole * 10 + (*p++ - '0');
    }
  uint64_t frac = 0, frac_div = 1;
  if (*p == '.')
    {
      p++;
      if (!isdigit ((unsigned char)*p))
        return berth_error_set (err, BERTH_E_INVALID, 0, "invalid size \"%s\": digits expected after '.'", s);
      while (isdigit ((unsigned char)*p))
        {
          if (frac_div < 1000000000ull)
            {
              frac = frac * 10 + (*p - '0');
              frac_div *= 10;
            }
          p++;
        }
    }
  if (*p == ' ')
    p++;
  uint64_t mult = 1;
  switch (tolower ((unsigned char)*p))
    {
    case 'k':
      mult = 1ull << 10;
      p++;
      break;
    case 'm':
      mult = 1ull << 20;
      p++;
      break;
    case 'g':
      mult = 1ull << 30;
      p++;
      break;
    case 't':
      mult = 1ull << 40;
      p++;
      break;
    case 'p':
      mult = 1ull << 50;
      p++;
      break;
    default: break;
    }
  if (mult > 1 && tolower ((unsigned char)*p) == 'i')
    p++;
  if (tolower ((unsigned char)*p) == 'b')
    p++;
  if (*p)
    return berth_error_set (err, BERTH_E_INVALID, 0,
                            "invalid size \"%s\": unknown unit \"%s\" (use b, k, m, g, t or p)", s, p);
  if (whole > (uint64_t)INT64_MAX / mult)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid size \"%s\": too large", s);
  uint64_t v = whole * mult + (uint64_t)((double)frac / (double)frac_div * (double)mult);
  if (v > (uint64_t)INT64_MAX)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid size \"%s\": too large", s);
  if (v == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid size \"%s\": must be greater than 0", s);
  *ret = (int64_t)v;
  return 0;
}

int
ocispec_parse_cpus (const char *s, double *ret, berth_error **err)
{
  if (s == NULL || *s == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid --cpus \"\": empty");
  const char *p = s;
  while (isdigit ((unsigned char)*p))
    p++;
  if (*p == '.')
    {
      p++;
      while (isdigit ((unsigned char)*p))
        p++;
    }
  if (*p || p == s || strcmp (s, ".") == 0 || p - s > 16)
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid --cpus \"%s\": expected a decimal number like 1.5", s);
  double v = strtod (s, NULL);
  if (!(v > 0) || !isfinite (v))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid --cpus \"%s\": must be greater than 0", s);
  *ret = v;
  return 0;
}

static const char *const propagations[] = { "private", "rprivate", "shared", "rshared", "slave", "rslave", NULL };

static bool
in_list (const char *const *l, const char *s)
{
  for (; *l; l++)
    if (strcmp (*l, s) == 0)
      return true;
  return false;
}

json_object *
ocispec_parse_volume (const char *spec, berth_error **err)
{
  if (spec == NULL || *spec == 0)
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "invalid volume specification \"\": empty");
      return NULL;
    }
  _cleanup_free_ char *copy = strdup (spec);
  if (copy == NULL)
    {
      berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "-v \"%s\"", spec);
      return NULL;
    }
  char *parts[4] = { NULL };
  size_t n = 0;
  for (char *save = NULL, *t = strtok_r (copy, ":", &save); t; t = strtok_r (NULL, ":", &save))
    {
      if (n == 3)
        {
          berth_error_set (err, BERTH_E_INVALID, 0,
                           "invalid volume specification \"%s\": expected host-path:container-path[:options]", spec);
          return NULL;
        }
      parts[n++] = t;
    }
  /* strtok_r merges "a::b"; an empty field is a mistake worth naming. */
  if (strstr (spec, "::") || spec[0] == ':' || spec[strlen (spec) - 1] == ':')
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "invalid volume specification \"%s\": empty field", spec);
      return NULL;
    }
  if (n < 2)
    {
      berth_error_set (err, BERTH_E_INVALID, 0,
                       "anonymous volumes are not supported yet: -v \"%s\" (give host-path:container-path)", spec);
      return NULL;
    }
  const char *src = parts[0], *dst = parts[1], *mode = parts[2];
  if (src[0] != '/')
    {
      if (src[0] == '.' || strchr (src, '/'))
        berth_error_set (err, BERTH_E_INVALID, 0, "-v \"%s\": host path \"%s\" is relative: give an absolute path",
                         spec, src);
      else
        berth_error_set (err, BERTH_E_INVALID, 0,
                         "-v \"%s\": named volumes are not supported yet (\"%s\"): give an absolute host path", spec,
                         src);
      return NULL;
    }
  _cleanup_free_ char *csrc = path_clean (src);
  _cleanup_free_ char *cdst = path_clean (dst);
  if (csrc == NULL)
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "-v \"%s\": host path \"%s\" may not contain \"..\"", spec, src);
      return NULL;
    }
  if (cdst == NULL)
    {
      berth_error_set (err, BERTH_E_INVALID, 0,
                       "-v \"%s\": container path \"%s\" must be absolute and may not contain \"..\"", spec, dst);
      return NULL;
    }
  if (strcmp (cdst, "/") == 0)
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "-v \"%s\": the container path cannot be \"/\"", spec);
      return NULL;
    }
  const char *rw = NULL, *prop = NULL;
  if (mode)
    {
      _cleanup_free_ char *m = strdup (mode);
      if (m == NULL)
        {
          berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "-v \"%s\"", spec);
          return NULL;
        }
      for (char *save = NULL, *t = strtok_r (m, ",", &save); t; t = strtok_r (NULL, ",", &save))
        {
          const char *const *hit = NULL;
          if (strcmp (t, "ro") == 0 || strcmp (t, "rw") == 0)
            {
              if (rw)
                {
                  berth_error_set (err, BERTH_E_INVALID, 0, "-v \"%s\": ro/rw given twice", spec);
                  return NULL;
                }
              rw = t[1] == 'o' ? "ro" : "rw";
              continue;
            }
          for (const char *const *pp = propagations; *pp; pp++)
            if (strcmp (t, *pp) == 0)
              hit = pp;
          if (hit)
            {
              if (prop)
                {
                  berth_error_set (err, BERTH_E_INVALID, 0, "-v \"%s\": propagation given twice", spec);
                  return NULL;
                }
              prop = *hit;
              continue;
            }
          /* SELinux relabel and "do not copy image content": nothing to do here. */
          if (strcmp (t, "z") == 0 || strcmp (t, "Z") == 0 || strcmp (t, "nocopy") == 0)
            continue;
          berth_error_set (err, BERTH_E_INVALID, 0,
                           "-v \"%s\": unknown option \"%s\" (ro, rw, [r]private, [r]shared, [r]slave, z, Z, nocopy)",
                           spec, t);
          return NULL;
        }
    }
  json_object *m = json_object_new_object ();
  jset_str (m, "destination", cdst);
  jset_str (m, "type", "bind");
  jset_str (m, "source", csrc);
  const char *opts[] = { "rbind", rw ? rw : "rw", prop ? prop : "rprivate", NULL };
  jset (m, "options", jstrs (opts));
  return m;
}

static const char *const tmpfs_flags[]
    = { "rw",      "ro",       "exec",       "noexec",      "suid",          "nosuid",   "dev",        "nodev", "atime",
        "noatime", "relatime", "norelatime", "strictatime", "nostrictatime", "diratime", "nodiratime", "sync",  "async",
        "dirsync", "lazytime", "nolazytime", NULL };
static const char *const tmpfs_keys[] = { "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", NULL };

json_object *
ocispec_parse_tmpfs (const char *spec, berth_error **err)
{
  if (spec == NULL || *spec == 0)
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "invalid --tmpfs \"\": empty");
      return NULL;
    }
  const char *colon = strchr (spec, ':');
  _cleanup_free_ char *path = colon ? strndup (spec, colon - spec) : strdup (spec);
  if (path == NULL)
    {
      berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "--tmpfs \"%s\"", spec);
      return NULL;
    }
  _cleanup_free_ char *dst = path_clean (path);
  if (dst == NULL || strcmp (dst, "/") == 0)
    {
      berth_error_set (err, BERTH_E_INVALID, 0,
                       "--tmpfs \"%s\": the path must be absolute, not \"/\", and may not contain \"..\"", spec);
      return NULL;
    }
  _cleanup_json_ json_object *opts = json_object_new_array ();
  const char *defaults[] = { "nosuid", "nodev", "noexec" };
  for (size_t i = 0; i < ARRAY_SIZE (defaults); i++)
    json_object_array_add (opts, json_object_new_string (defaults[i]));
  if (colon)
    {
      _cleanup_free_ char *o = strdup (colon + 1);
      if (o == NULL)
        {
          berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "--tmpfs \"%s\"", spec);
          return NULL;
        }
      if (*o == 0 || strstr (colon + 1, ",,") || o[strlen (o) - 1] == ',')
        {
          berth_error_set (err, BERTH_E_INVALID, 0, "--tmpfs \"%s\": empty option", spec);
          return NULL;
        }
      for (char *save = NULL, *t = strtok_r (o, ",", &save); t; t = strtok_r (NULL, ",", &save))
        {
          char *eq = strchr (t, '=');
          if (eq)
            {
              *eq = 0;
              bool known = in_list (tmpfs_keys, t);
              bool ok_val = eq[1] != 0;
              for (const char *c = eq + 1; *c; c++)
                if (!isalnum ((unsigned char)*c) && *c != '%')
                  ok_val = false;
              if (!known || !ok_val)
                {
                  berth_error_set (err, BERTH_E_INVALID, 0,
                                   known ? "--tmpfs \"%s\": bad value for %s" : "--tmpfs \"%s\": unknown option \"%s\"",
                                   spec, t);
                  return NULL;
                }
              *eq = '=';
            }
          else if (!in_list (tmpfs_flags, t))
            {
              berth_error_set (err, BERTH_E_INVALID, 0, "--tmpfs \"%s\": unknown option \"%s\"", spec, t);
              return NULL;
            }
          if (strcmp (t, "exec") == 0 || strcmp (t, "suid") == 0 || strcmp (t, "dev") == 0)
            {
              char neg[16];
              snprintf (neg, sizeof neg, "no%s", t);
              jarr_remove_str (opts, neg);
            }
          else if (strcmp (t, "noexec") == 0 || strcmp (t, "nosuid") == 0 || strcmp (t, "nodev") == 0)
            jarr_remove_str (opts, t);
          json_object_array_add (opts, json_object_new_string (t));
        }
    }
  json_object *m = json_object_new_object ();
  jset_str (m, "destination", dst);
  jset_str (m, "type", "tmpfs");
  jset_str (m, "source", "tmpfs");
  jset (m, "options", TAKE_PTR (opts));
  return m;
}

static bool
utf8_valid (const unsigned char *s, size_t n)
{
  size_t i = 0;
  while (i < n)
    {
      unsigned char c = s[i];
      size_t len;
      uint32_t cp;
      if (c < 0x80)
        {
          i++;
          continue;
        }
      else if ((c & 0xe0) == 0xc0)
        len = 2, cp = c & 0x1f;
      else if ((c & 0xf0) == 0xe0)
        len = 3, cp = c & 0x0f;
      else if ((c & 0xf8) == 0xf0)
        len = 4, cp = c & 0x07;
      else
        return false;
      if (i + len > n)
        return false;
      for (size_t k = 1; k < len; k++)
        {
          if ((s[i + k] & 0xc0) != 0x80)
            return false;
          cp = (cp << 6) | (s[i + k] & 0x3f);
        }
      static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
      if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return false;
      i += len;
    }
  return true;
}

static int
read_file_limited (const char *path, size_t max, char **ret, size_t *ret_len, berth_error **err)
{
  _cleanup_close_ int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "open %s", path);
  struct stat st;
  if (fstat (fd, &st) < 0)
    return berth_error_set (err, BERTH_E_INTERNAL, errno, "stat %s", path);
  if (!S_ISREG (st.st_mode))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: not a regular file", path);
  _cleanup_free_ char *buf = malloc (max + 1);
  if (buf == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "%s", path);
  size_t len = 0;
  for (;;)
    {
      ssize_t r = read (fd, buf + len, max + 1 - len);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return berth_error_set (err, BERTH_E_INTERNAL, errno, "read %s", path);
      if (r == 0)
        break;
      len += r;
      if (len > max)
        return berth_error_set (err, BERTH_E_INVALID, 0, "%s: larger than %zu bytes", path, max);
    }
  buf[len] = 0;
  *ret = TAKE_PTR (buf);
  *ret_len = len;
  return 0;
}

int
ocispec_parse_env_file (const char *path, char ***ret, berth_error **err)
{
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  int r = read_file_limited (path, ENV_FILE_MAX, &buf, &len, err);
  if (r < 0)
    return berth_error_wrap (err, "env file");
  if (memchr (buf, 0, len))
    return berth_error_set (err, BERTH_E_INVALID, 0, "env file %s contains a NUL byte", path);
  _cleanup_strv_ char **out = calloc (1, sizeof (char *));
  size_t n = 0;
  if (out == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "env file %s", path);
  char *line = buf;
  if (len >= 3 && memcmp (line, "\xef\xbb\xbf", 3) == 0)
    line += 3;
  for (unsigned lineno = 1; line && *line; lineno++)
    {
      char *nl = strchr (line, '\n');
      char *next = nl ? nl + 1 : NULL;
      if (nl)
        *nl = 0;
      size_t l = strlen (line);
      if (l && line[l - 1] == '\r')
        line[--l] = 0;
      if (!utf8_valid ((const unsigned char *)line, l))
        return berth_error_set (err, BERTH_E_INVALID, 0, "env file %s contains invalid UTF-8 at line %u", path, lineno);
      while (isspace ((unsigned char)*line))
        line++;
      if (*line == 0 || *line == '#')
        {
          line = next;
          continue;
        }
      char *eq = strchr (line, '=');
      size_t klen = eq ? (size_t)(eq - line) : strlen (line);
      if (klen == 0)
        return berth_error_set (err, BERTH_E_INVALID, 0, "env file %s line %u: no variable name", path, lineno);
      for (size_t i = 0; i < klen; i++)
        if (isspace ((unsigned char)line[i]))
          return berth_error_set (err, BERTH_E_INVALID, 0, "env file %s line %u: variable '%.*s' contains whitespace",
                                  path, lineno, (int)klen, line);
      char *entry;
      if (eq)
        entry = strdup (line);
      else
        {
          const char *v = getenv (line);
          if (v)
            {
              if (asprintf (&entry, "%s=%s", line, v) < 0)
                entry = NULL;
            }
          else
            entry = strdup (line);
        }
      char **grown = entry ? realloc (out, (n + 2) * sizeof (char *)) : NULL;
      if (grown == NULL)
        {
          free (entry);
          return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "env file %s", path);
        }
      out = grown;
      out[n++] = entry;
      out[n] = NULL;
      line = next;
    }
  *ret = TAKE_PTR (out);
  return 0;
}

/* ---- capabilities (libcap knows the names and the kernel's last cap) ----- */

static const char *const docker_default_caps[] = {
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
  NULL,
};

/* "net_admin", "CAP_NET_ADMIN" -> "CAP_NET_ADMIN" if libcap knows it.
 * "ALL" -> "ALL".  Returns NULL with *err set otherwise. */
static char *
cap_normalize (const char *name, berth_error **err)
{
  const char *base = name;
  if (strncasecmp (base, "CAP_", 4) == 0)
    base = name + 4;
  if (*base == 0 || strlen (base) > 64)
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "unknown capability: \"%s\"", name);
      return NULL;
    }
  char up[80];
  size_t i = 0;
  for (; base[i]; i++)
    {
      if (!isalpha ((unsigned char)base[i]) && base[i] != '_')
        {
          berth_error_set (err, BERTH_E_INVALID, 0, "unknown capability: \"%s\"", name);
          return NULL;
        }
      up[i] = toupper ((unsigned char)base[i]);
    }
  up[i] = 0;
  if (strcmp (up, "ALL") == 0 && base == name)
    return strdup ("ALL");
  char lower[80] = "cap_";
  for (i = 0; up[i]; i++)
    lower[4 + i] = tolower ((unsigned char)up[i]);
  lower[4 + i] = 0;
  cap_value_t v;
  if (cap_from_name (lower, &v) < 0)
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "unknown capability: \"%s\"", name);
      return NULL;
    }
  char *out = NULL;
  if (asprintf (&out, "CAP_%s", up) < 0)
    return NULL;
  return out;
}

/* Every capability libcap and the running kernel know and that is in our
 * own bounding set, "CAP_X" (as moby does: a capability the caller cannot
 * pass on would make the runtime fail with EPERM). */
static json_object *
caps_all (void)
{
  json_object *a = json_object_new_array ();
  int max = cap_max_bits ();
  for (int v = 0; v < max; v++)
    {
      if (cap_get_bound ((cap_value_t)v) != 1)
        continue;
      char *n = cap_to_name (v);
      if (n == NULL)
        continue;
      if (strncmp (n, "cap_", 4) == 0)
        {
          char up[80];
          size_t i = 0;
          for (; i < sizeof up - 1 && n[i]; i++)
            up[i] = toupper ((unsigned char)n[i]);
          up[i] = 0;
          json_object_array_add (a, json_object_new_string (up));
        }
      cap_free (n);
    }
  return a;
}

static int
normalize_list (const char *const *in, const char *what, json_object **ret, berth_error **err)
{
  _cleanup_json_ json_object *a = json_object_new_array ();
  for (size_t i = 0; in && in[i]; i++)
    {
      _cleanup_free_ char *c = cap_normalize (in[i], err);
      if (c == NULL)
        return berth_error_wrap (err, "%s", what);
      if (!jarr_has_str (a, c))
        json_object_array_add (a, json_object_new_string (c));
    }
  *ret = TAKE_PTR (a);
  return 0;
}

/* Docker's TweakCapabilities. */
static int
caps_compute (const struct ocispec_opts *o, json_object **ret, berth_error **err)
{
  _cleanup_json_ json_object *add = NULL, *drop = NULL;
  if (normalize_list (o->cap_add, "--cap-add", &add, err) < 0
      || normalize_list (o->cap_drop, "--cap-drop", &drop, err) < 0)
    return BERTH_E_INVALID;
  if (o->privileged)
    {
      *ret = caps_all ();
      return 0;
    }
  json_object *out = json_object_new_array ();
  if (jarr_has_str (add, "ALL"))
    {
      _cleanup_json_ json_object *all = caps_all ();
      for (size_t i = 0; i < json_object_array_length (all); i++)
        {
          const char *c = json_object_get_string (json_object_array_get_idx (all, i));
          if (!jarr_has_str (drop, c))
            json_object_array_add (out, json_object_new_string (c));
        }
    }
  else if (jarr_has_str (drop, "ALL"))
    {
      for (size_t i = 0; i < json_object_array_length (add); i++)
        json_object_array_add (out, json_object_get (json_object_array_get_idx (add, i)));
    }
  else
    {
      for (size_t i = 0; docker_default_caps[i]; i++)
        if (!jarr_has_str (drop, docker_default_caps[i]))
          json_object_array_add (out, json_object_new_string (docker_default_caps[i]));
      for (size_t i = 0; i < json_object_array_length (add); i++)
        {
          const char *c = json_object_get_string (json_object_array_get_idx (add, i));
          if (!jarr_has_str (out, c))
            json_object_array_add (out, json_object_new_string (c));
        }
    }
  *ret = out;
  return 0;
}

/* ---- seccomp --------------------------------------------------------------- */

static const struct
{
  const char *go;      /* libseccomp-golang's name, used by profiles' "arches" */
  const char *machine; /* uname -m prefix */
  const char *scmp;    /* SCMP_ARCH_* of the archMap */
} arches[] = {
  { "amd64", "x86_64", "SCMP_ARCH_X86_64" },
  { "x86", "i686", "SCMP_ARCH_X86" },
  { "x86", "i586", "SCMP_ARCH_X86" },
  { "x86", "i386", "SCMP_ARCH_X86" },
  { "arm64", "aarch64", "SCMP_ARCH_AARCH64" },
  { "arm", "arm", "SCMP_ARCH_ARM" },
  { "ppc64le", "ppc64le", "SCMP_ARCH_PPC64LE" },
  { "ppc64", "ppc64", "SCMP_ARCH_PPC64" },
  { "s390x", "s390x", "SCMP_ARCH_S390X" },
  { "s390", "s390", "SCMP_ARCH_S390" },
  { "mips64", "mips64", "SCMP_ARCH_MIPS64" },
  { "mips", "mips", "SCMP_ARCH_MIPS" },
  { "riscv64", "riscv64", "SCMP_ARCH_RISCV64" },
  { "x32", "", "SCMP_ARCH_X32" },
  { "mipsel64", "", "SCMP_ARCH_MIPSEL64" },
  { "mipsel", "", "SCMP_ARCH_MIPSEL" },
  { "mips64n32", "", "SCMP_ARCH_MIPS64N32" },
  { "mipsel64n32", "", "SCMP_ARCH_MIPSEL64N32" },
};

static const char *
native_arch (void)
{
  static __thread struct utsname u;
  if (uname (&u) < 0)
    return "";
  for (size_t i = 0; i < ARRAY_SIZE (arches); i++)
    if (arches[i].machine[0] && strncmp (u.machine, arches[i].machine, strlen (arches[i].machine)) == 0)
      return arches[i].go;
  return u.machine;
}

static const char *
arch_to_scmp (const char *go)
{
  for (size_t i = 0; i < ARRAY_SIZE (arches); i++)
    if (strcmp (arches[i].go, go) == 0)
      return arches[i].scmp;
  return NULL;
}

static const char *const seccomp_actions[]
    = { "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",   "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",        "SCMP_ACT_LOG",         "SCMP_ACT_NOTIFY", NULL };
static const char *const seccomp_ops[] = { "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",        "SCMP_CMP_EQ",
                                           "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", NULL };

/* "5.8" -> 5, 8.  Trailing text after the minor is allowed for the kernel's
 * release ("6.1.0-18-amd64") but not for a profile's minKernel. */
static bool
parse_kver (const char *s, bool strict, int *ret_major, int *ret_minor)
{
  char *end;
  if (!isdigit ((unsigned char)*s))
    return false;
  long ma = strtol (s, &end, 10);
  if (*end != '.' || !isdigit ((unsigned char)end[1]) || ma > 100000)
    return false;
  long mi = strtol (end + 1, &end, 10);
  if (mi > 100000)
    return false;
  if (strict && *end)
    return false;
  *ret_major = ma;
  *ret_minor = mi;
  return true;
}

/* One includes/excludes filter: validate, and say whether it matches
 * (includes: every condition holds; excludes: any condition holds). */
static int
seccomp_filter (json_object *f, const char *where, bool is_include, json_object *caps, const char *arch, int kmajor,
                int kminor, bool *ret_skip, berth_error **err)
{
  json_object *fcaps = NULL, *farches = NULL;
  const char *mk = NULL;
  if (get_strv (f, "caps", where, &fcaps, err) < 0 || get_strv (f, "arches", where, &farches, err) < 0
      || get_str (f, "minKernel", where, &mk, err) < 0)
    return BERTH_E_INVALID;
  int mj = 0, mn = 0;
  if (mk && !parse_kver (mk, true, &mj, &mn))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%sminKernel: \"%s\" is not \"major.minor\"", where, mk);
  bool kernel_ge = mk && (kmajor > mj || (kmajor == mj && kminor >= mn));
  size_t nc = fcaps ? json_object_array_length (fcaps) : 0;
  size_t na = farches ? json_object_array_length (farches) : 0;
  if (is_include)
    {
      if (na && !jarr_has_str (farches, arch))
        *ret_skip = true;
      for (size_t i = 0; i < nc; i++)
        if (!jarr_has_str (caps, json_object_get_string (json_object_array_get_idx (fcaps, i))))
          *ret_skip = true;
      if (mk && !kernel_ge)
        *ret_skip = true;
    }
  else
    {
      if (na && jarr_has_str (farches, arch))
        *ret_skip = true;
      for (size_t i = 0; i < nc; i++)
        if (jarr_has_str (caps, json_object_get_string (json_object_array_get_idx (fcaps, i))))
          *ret_skip = true;
      if (mk && kernel_ge)
        *ret_skip = true;
    }
  return 0;
}

static int
seccomp_action (json_object *obj, const char *key, const char *where, bool required, const char **ret,
                berth_error **err)
{
  if (get_str (obj, key, where, ret, err) < 0)
    return BERTH_E_INVALID;
  if (*ret == NULL || **ret == 0)
    {
      *ret = NULL;
      if (required)
        return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: missing", where, key);
      return 0;
    }
  if (!in_list (seccomp_actions, *ret))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s%s: unknown action \"%s\"", where, key, *ret);
  return 0;
}

static int
seccomp_args (json_object *rule, const char *where, json_object **ret, berth_error **err)
{
  json_object *args = NULL;
  *ret = NULL;
  if (!json_object_object_get_ex (rule, "args", &args) || args == NULL)
    return 0;
  if (!json_object_is_type (args, json_type_array))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%sargs: expected an array, got %s", where,
                            json_type_to_name (json_object_get_type (args)));
  size_t n = json_object_array_length (args);
  if (n == 0)
    return 0;
  _cleanup_json_ json_object *out = json_object_new_array ();
  for (size_t i = 0; i < n; i++)
    {
      json_object *a = json_object_array_get_idx (args, i);
      char w[96];
      snprintf (w, sizeof w, "%sargs[%zu].", where, i);
      if (!json_object_is_type (a, json_type_object))
        return berth_error_set (err, BERTH_E_INVALID, 0, "%.*s: expected an object", (int)strlen (w) - 1, w);
      bool has_index, has_v, has_v2;
      uint64_t index, value, value2;
      const char *op = NULL;
      if (get_uint (a, "index", w, 5, &has_index, &index, err) < 0
          || get_uint (a, "value", w, UINT64_MAX, &has_v, &value, err) < 0
          || get_uint (a, "valueTwo", w, UINT64_MAX, &has_v2, &value2, err) < 0 || get_str (a, "op", w, &op, err) < 0)
        return BERTH_E_INVALID;
      if (!has_index)
        return berth_error_set (err, BERTH_E_INVALID, 0, "%sindex: missing", w);
      if (op == NULL || !in_list (seccomp_ops, op))
        return berth_error_set (err, BERTH_E_INVALID, 0, "%sop: %s%s%s", w, op ? "unknown operator \"" : "missing",
                                op ? op : "", op ? "\"" : "");
      json_object *o = json_object_new_object ();
      jset (o, "index", json_object_new_uint64 (index));
      jset (o, "value", json_object_new_uint64 (value));
      if (value2)
        jset (o, "valueTwo", json_object_new_uint64 (value2));
      jset_str (o, "op", op);
      json_object_array_add (out, o);
    }
  *ret = TAKE_PTR (out);
  return 0;
}

static int
seccomp_convert (json_object *profile, json_object *caps, const char *arch, const char *kernel, json_object **ret,
                 berth_error **err)
{
  *ret = NULL;
  if (!json_object_is_type (profile, json_type_object))
    return berth_error_set (err, BERTH_E_INVALID, 0, "expected a JSON object");
  if (arch == NULL)
    arch = native_arch ();
  struct utsname u;
  if (kernel == NULL)
    kernel = uname (&u) == 0 ? u.release : "0.0";
  int kmajor = 0, kminor = 0;
  if (!parse_kver (kernel, false, &kmajor, &kminor))
    return berth_error_set (err, BERTH_E_INVALID, 0, "cannot read the kernel version from \"%s\"", kernel);

  const char *def = NULL, *lpath = NULL, *lmeta = NULL;
  json_object *archs = NULL, *flags = NULL, *archmap = NULL, *syscalls = NULL;
  bool has_errno;
  uint64_t def_errno;
  if (seccomp_action (profile, "defaultAction", "", false, &def, err) < 0
      || get_uint (profile, "defaultErrnoRet", "", UINT32_MAX, &has_errno, &def_errno, err) < 0
      || get_strv (profile, "architectures", "", &archs, err) < 0 || get_strv (profile, "flags", "", &flags, err) < 0
      || get_str (profile, "listenerPath", "", &lpath, err) < 0
      || get_str (profile, "listenerMetadata", "", &lmeta, err) < 0)
    return BERTH_E_INVALID;
  if (json_object_object_get_ex (profile, "archMap", &archmap) && archmap
      && !json_object_is_type (archmap, json_type_array))

    return berth_error_set (err, BERTH_E_INVALID, 0, "archMap: expected an array, got %s",
                            json_type_to_name (json_object_get_type (archmap)));
  if (json_object_object_get_ex (profile, "syscalls", &syscalls) && syscalls
      && !json_object_is_type (syscalls, json_type_array))

    return berth_error_set (err, BERTH_E_INVALID, 0, "syscalls: expected an array, got %s",
                            json_type_to_name (json_object_get_type (syscalls)));
  size_t n_archmap = archmap ? json_object_array_length (archmap) : 0;
  size_t n_sys = syscalls ? json_object_array_length (syscalls) : 0;
  if (def == NULL && n_sys == 0)
    return 0; /* Docker: no defaultAction and no syscalls = seccomp disabled */
  if (def == NULL)

    return berth_error_set (err, BERTH_E_INVALID, 0, "defaultAction: missing");
  if (archs && json_object_array_length (archs) && n_archmap)

    return berth_error_set (err, BERTH_E_INVALID, 0, "both 'architectures' and 'archMap' are given: use one");

  _cleanup_json_ json_object *out = json_object_new_object ();
  jset_str (out, "defaultAction", def);
  if (has_errno)
    jset (out, "defaultErrnoRet", json_object_new_uint64 (def_errno));
  _cleanup_json_ json_object *oarch = json_object_new_array ();
  for (size_t i = 0; archs && i < json_object_array_length (archs); i++)
    json_object_array_add (oarch, json_object_get (json_object_array_get_idx (archs, i)));
  const char *native_scmp = arch_to_scmp (arch);
  for (size_t i = 0; i < n_archmap; i++)
    {
      json_object *e = json_object_array_get_idx (archmap, i);
      char w[48];
      snprintf (w, sizeof w, "archMap[%zu].", i);
      const char *a = NULL;
      json_object *subs = NULL;
      if (!json_object_is_type (e, json_type_object))

        return berth_error_set (err, BERTH_E_INVALID, 0, "archMap[%zu]: expected an object", i);
      if (get_str (e, "architecture", w, &a, err) < 0 || get_strv (e, "subArchitectures", w, &subs, err) < 0)
        return BERTH_E_INVALID;
      if (a == NULL)

        return berth_error_set (err, BERTH_E_INVALID, 0, "%sarchitecture: missing", w);
      if (native_scmp && strcmp (a, native_scmp) == 0)
        {
          json_object_array_add (oarch, json_object_new_string (a));
          for (size_t k = 0; subs && k < json_object_array_length (subs); k++)
            json_object_array_add (oarch, json_object_get (json_object_array_get_idx (subs, k)));
        }
    }
  if (json_object_array_length (oarch))
    jset (out, "architectures", TAKE_PTR (oarch));
  if (flags && json_object_array_length (flags))
    jset (out, "flags", json_object_get (flags));
  if (lpath && *lpath)
    jset_str (out, "listenerPath", lpath);
  if (lmeta && *lmeta)
    jset_str (out, "listenerMetadata", lmeta);

  _cleanup_json_ json_object *osys = json_object_new_array ();
  for (size_t i = 0; i < n_sys; i++)
    {
      json_object *rule = json_object_array_get_idx (syscalls, i);
      char w[48];
      snprintf (w, sizeof w, "syscalls[%zu].", i);
      if (!json_object_is_type (rule, json_type_object))

        return berth_error_set (err, BERTH_E_INVALID, 0, "syscalls[%zu]: expected an object", i);
      json_object *names = NULL, *inc = NULL, *exc = NULL;
      _cleanup_json_ json_object *args = NULL;
      const char *name = NULL, *action = NULL, *comment = NULL;
      bool has_ret;
      uint64_t eret;
      if (get_strv (rule, "names", w, &names, err) < 0 || get_str (rule, "name", w, &name, err) < 0
          || seccomp_action (rule, "action", w, true, &action, err) < 0
          || get_uint (rule, "errnoRet", w, UINT32_MAX, &has_ret, &eret, err) < 0
          || get_str (rule, "comment", w, &comment, err) < 0 || get_obj (rule, "includes", w, &inc, err) < 0
          || get_obj (rule, "excludes", w, &exc, err) < 0 || seccomp_args (rule, w, &args, err) < 0)
        return BERTH_E_INVALID;
      size_t nn = names ? json_object_array_length (names) : 0;
      if (name && *name && nn)

        return berth_error_set (err, BERTH_E_INVALID, 0, "syscalls[%zu]: both 'name' and 'names' given: use one", i);
      if (!(name && *name) && nn == 0)

        return berth_error_set (err, BERTH_E_INVALID, 0, "syscalls[%zu]: no syscall names", i);
      bool skip = false;
      char fw[64];
      snprintf (fw, sizeof fw, "%sexcludes.", w);
      if (exc && seccomp_filter (exc, fw, false, caps, arch, kmajor, kminor, &skip, err) < 0)
        return BERTH_E_INVALID;
      snprintf (fw, sizeof fw, "%sincludes.", w);
      if (inc && seccomp_filter (inc, fw, true, caps, arch, kmajor, kminor, &skip, err) < 0)
        return BERTH_E_INVALID;
      if (skip)
        continue;
      json_object *o = json_object_new_object ();
      if (name && *name)
        {
          const char *one[] = { name, NULL };
          jset (o, "names", jstrs (one));
        }
      else
        jset (o, "names", json_object_get (names));
      jset_str (o, "action", action);
      if (has_ret)
        jset (o, "errnoRet", json_object_new_uint64 (eret));
      if (args)
        jset (o, "args", TAKE_PTR (args));
      json_object_array_add (osys, o);
    }
  if (json_object_array_length (osys))
    jset (out, "syscalls", TAKE_PTR (osys));
  *ret = TAKE_PTR (out);
  return 0;
}

json_object *
ocispec_seccomp_convert (json_object *profile, json_object *caps, const char *arch, const char *kernel,
                         berth_error **err)
{
  json_object *out = NULL;
  if (seccomp_convert (profile, caps, arch, kernel, &out, err) < 0)
    berth_error_wrap (err, "seccomp profile");
  return out;
}

const char *
ocispec_default_seccomp_profile (void)
{
  return SECCOMP_PROFILE;
}

int
ocispec_seccomp_load (const char *path, json_object *caps, json_object **ret, berth_error **err)
{
  _cleanup_free_ char *buf = NULL;
  size_t len = 0;
  *ret = NULL;
  int r = read_file_limited (path, PROFILE_MAX, &buf, &len, err);
  if (r < 0)
    return berth_error_wrap (err, "seccomp profile");
  json_tokener *tok = json_tokener_new ();
  if (tok == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "seccomp profile %s", path);
  _cleanup_json_ json_object *doc = json_tokener_parse_ex (tok, buf, (int)len);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  size_t consumed = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (doc == NULL || jerr != json_tokener_success)
    return berth_error_set (err, BERTH_E_INVALID, 0, "seccomp profile %s: not JSON: %s", path,
                            jerr == json_tokener_continue ? "unexpected end of file" : json_tokener_error_desc (jerr));
  for (size_t i = consumed; i < len; i++)
    if (!isspace ((unsigned char)buf[i]))
      return berth_error_set (err, BERTH_E_INVALID, 0, "seccomp profile %s: trailing data after the JSON document",
                              path);
  r = seccomp_convert (doc, caps, NULL, NULL, ret, err);
  if (r < 0)
    return berth_error_wrap (err, "seccomp profile %s", path);
  return 0;
}

/* The default profile is containers-common's (Podman's): it allows every
 * container unshare(2), clone(2) with namespace flags, clone3 and keyctl.
 * Docker's and containerd's defaults allow the first three only with
 * CAP_SYS_ADMIN and the keyring calls never (the keyring is not
 * namespaced; a user namespace opens kernel code meant for root to any
 * process): berth's default follows them.  Rules naming these calls lose
 * them; then keyctl, add_key, request_key (and without CAP_SYS_ADMIN
 * unshare) answer EPERM, clone3 ENOSYS (libc falls back to clone) and clone
 * is allowed only without CLONE_NEW* flags. */
static void
seccomp_harden_default (json_object *sc, json_object *caps)
{
  json_object *rules = NULL;
  if (sc == NULL || !json_object_object_get_ex (sc, "syscalls", &rules) || rules == NULL)
    return;
  bool admin = jarr_has_str (caps, "CAP_SYS_ADMIN");
  static const char *const keyring[] = { "keyctl", "add_key", "request_key", NULL };
  static const char *const ns[] = { "unshare", "clone", "clone3", NULL };
  json_object *out = json_object_new_array ();
  for (size_t i = 0; i < json_object_array_length (rules); i++)
    {
      json_object *rule = json_object_array_get_idx (rules, i), *names = NULL, *action = NULL;
      json_object_object_get_ex (rule, "names", &names);
      json_object_object_get_ex (rule, "action", &action);
      if (names == NULL || action == NULL || strcmp (json_object_get_string (action), "SCMP_ACT_ALLOW") != 0)
        {
          json_object_array_add (out, json_object_get (rule));
          continue;
        }
      json_object *kept = json_object_new_array ();
      for (size_t k = 0; k < json_object_array_length (names); k++)
        {
          json_object *n = json_object_array_get_idx (names, k);
          const char *name = json_object_get_string (n);
          bool drop = false;
          for (size_t j = 0; keyring[j]; j++)
            drop |= strcmp (name, keyring[j]) == 0;
          for (size_t j = 0; !admin && ns[j]; j++)
            drop |= strcmp (name, ns[j]) == 0;
          if (!drop)
            json_object_array_add (kept, json_object_get (n));
        }
      if (json_object_array_length (kept) == 0)
        {
          json_object_put (kept);
          continue;
        }
      json_object *copy = json_object_new_object ();
      json_object_object_foreach (rule, key, val)
        jset (copy, key, strcmp (key, "names") == 0 ? json_object_get (kept) : json_object_get (val));
      json_object_put (kept);
      json_object_array_add (out, copy);
    }

  json_object *deny = json_object_new_object ();
  json_object *dn = jstrs (keyring);
  if (!admin)
    json_object_array_add (dn, json_object_new_string ("unshare"));
  jset (deny, "names", dn);
  jset_str (deny, "action", "SCMP_ACT_ERRNO");
  jset (deny, "errnoRet", json_object_new_uint64 (EPERM));
  json_object_array_add (out, deny);
  if (!admin)
    {
      static const char *const c3[] = { "clone3", NULL }, *const c[] = { "clone", NULL };
      json_object *r3 = json_object_new_object ();
      jset (r3, "names", jstrs (c3));
      jset_str (r3, "action", "SCMP_ACT_ERRNO");
      jset (r3, "errnoRet", json_object_new_uint64 (ENOSYS));
      json_object_array_add (out, r3);
      /* clone's flags are its first argument, except on s390 */
      struct utsname u;
      bool s390 = uname (&u) == 0 && strncmp (u.machine, "s390", 4) == 0;
      json_object *arg = json_object_new_object ();
      jset (arg, "index", json_object_new_uint64 (s390 ? 1 : 0));
      jset (arg, "value", json_object_new_uint64 (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                                                  | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP));
      jset_str (arg, "op", "SCMP_CMP_MASKED_EQ");
      json_object *args = json_object_new_array ();
      json_object_array_add (args, arg);
      json_object *rc = json_object_new_object ();
      jset (rc, "names", jstrs (c));
      jset_str (rc, "action", "SCMP_ACT_ALLOW");
      jset (rc, "args", args);
      json_object_array_add (out, rc);
    }
  jset (sc, "syscalls", out);
}

/* ---- process ----------------------------------------------------------------- */

static bool
env_key_eq (const char *a, const char *b)
{
  size_t la = strcspn (a, "="), lb = strcspn (b, "=");
  return la == lb && memcmp (a, b, la) == 0;
}

/* Docker's ReplaceOrAppendEnvValues: KEY=V replaces in place or appends;
 * "KEY" removes. */
static int
env_apply (json_object *env, const char *e, const char *what, berth_error **err)
{
  if (*e == '=' || *e == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s \"%s\": no variable name", what, e);
  bool set = strchr (e, '=') != NULL;
  for (size_t i = 0; i < json_object_array_length (env); i++)
    if (env_key_eq (json_object_get_string (json_object_array_get_idx (env, i)), e))
      {
        if (set)
          json_object_array_put_idx (env, i, json_object_new_string (e));
        else
          json_object_array_del_idx (env, i, 1);
        return 0;
      }
  if (set)
    json_object_array_add (env, json_object_new_string (e));
  return 0;
}

static bool
all_digits (const char *s, size_t n)
{
  if (n == 0 || n > 10)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit ((unsigned char)s[i]))
      return false;
  return true;
}

static bool
name_ok (const char *s, size_t n)
{
  if (n == 0 || n > 256)
    return false;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '/' || s[i] == ':' || isspace ((unsigned char)s[i]) || iscntrl ((unsigned char)s[i]))
      return false;
  return true;
}

static int
parse_id (const char *s, size_t n, uint32_t *ret)
{
  unsigned long long v = strtoull (s, NULL, 10);
  if (v >= UINT32_MAX) /* (uid_t) -1 is "no change" to the kernel */
    return -1;
  *ret = v;
  return 0;
}

static int
user_set (json_object *process, json_object *annotations, const char *spec, berth_error **err)
{
  const char *colon = strchr (spec, ':');
  size_t ul = colon ? (size_t)(colon - spec) : strlen (spec);
  const char *g = colon ? colon + 1 : NULL;
  size_t gl = g ? strlen (g) : 0;
  uint32_t uid = 0, gid = 0;
  bool unum = all_digits (spec, ul), gnum = g == NULL || all_digits (g, gl);
  if ((!unum && !name_ok (spec, ul)) || (g && !gnum && !name_ok (g, gl)))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid user \"%s\": expected uid[:gid] or name[:group]", spec);
  if ((unum && parse_id (spec, ul, &uid) < 0) || (g && gnum && parse_id (g, gl, &gid) < 0))
    return berth_error_set (err, BERTH_E_INVALID, 0, "invalid user \"%s\": id out of range", spec);
  json_object *u = json_object_new_object ();
  jset (u, "uid", json_object_new_int64 (uid));
  jset (u, "gid", json_object_new_int64 (gid));
  jset (process, "user", u);
  if (!unum || !gnum)
    jset_str (annotations, "io.berth.user", spec);
  return 0;
}

static int
build_process (json_object *cfg, const struct ocispec_opts *o, json_object *caps, json_object *annotations,
               json_object **ret, berth_error **err)
{
  const char *const where = "image config: ";
  json_object *img_ep = NULL, *img_cmd = NULL, *img_env = NULL;
  const char *img_wd = NULL, *img_user = NULL;
  if (cfg
      && (get_strv (cfg, "Entrypoint", where, &img_ep, err) < 0 || get_strv (cfg, "Cmd", where, &img_cmd, err) < 0
          || get_strv (cfg, "Env", where, &img_env, err) < 0 || get_str (cfg, "WorkingDir", where, &img_wd, err) < 0
          || get_str (cfg, "User", where, &img_user, err) < 0))
    return BERTH_E_INVALID;

  _cleanup_json_ json_object *p = json_object_new_object ();
  jset (p, "terminal", json_object_new_boolean (o->tty));

  /* user first: the annotation goes with it */
  const char *user = o->user && *o->user ? o->user : img_user && *img_user ? img_user : NULL;
  if (user)
    {
      if (user_set (p, annotations, user, err) < 0)
        return o->user && *o->user ? BERTH_E_INVALID : berth_error_wrap (err, "image config: User");
    }
  else
    {
      json_object *u = json_object_new_object ();
      jset (u, "uid", json_object_new_int (0));
      jset (u, "gid", json_object_new_int (0));
      jset (p, "user", u);
    }

  _cleanup_json_ json_object *args = json_object_new_array ();
  if (o->init)
    {
      json_object_array_add (args, json_object_new_string (OCISPEC_INIT_DEST));
      json_object_array_add (args, json_object_new_string ("--"));
    }
  size_t first = json_object_array_length (args);
  if (o->entrypoint_set)
    {
      for (size_t i = 0; o->entrypoint && o->entrypoint[i]; i++)
        json_object_array_add (args, json_object_new_string (o->entrypoint[i]));
    }
  else
    for (size_t i = 0; img_ep && i < json_object_array_length (img_ep); i++)
      json_object_array_add (args, json_object_get (json_object_array_get_idx (img_ep, i)));
  if (o->args)
    for (size_t i = 0; o->args[i]; i++)
      json_object_array_add (args, json_object_new_string (o->args[i]));
  else if (!o->entrypoint_set)
    for (size_t i = 0; img_cmd && i < json_object_array_length (img_cmd); i++)
      json_object_array_add (args, json_object_get (json_object_array_get_idx (img_cmd, i)));
  if (json_object_array_length (args) == first)
    return berth_error_set (err, BERTH_E_INVALID, 0, "image has no Cmd or Entrypoint; give a command");
  if (*json_object_get_string (json_object_array_get_idx (args, first)) == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "the command is an empty string");
  jset (p, "args", TAKE_PTR (args));

  _cleanup_json_ json_object *env = json_object_new_array ();
  json_object_array_add (env, json_object_new_string ("PATH=" OCISPEC_DEFAULT_PATH));
  if (o->hostname && *o->hostname)
    {
      _cleanup_free_ char *h = NULL;
      if (asprintf (&h, "HOSTNAME=%s", o->hostname) < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "env");
      json_object_array_add (env, json_object_new_string (h));
    }
  if (o->tty)
    json_object_array_add (env, json_object_new_string ("TERM=xterm"));
  for (size_t i = 0; img_env && i < json_object_array_length (img_env); i++)
    if (env_apply (env, json_object_get_string (json_object_array_get_idx (img_env, i)), "image config: Env", err) < 0)
      return BERTH_E_INVALID;
  for (size_t i = 0; o->env && o->env[i]; i++)
    if (env_apply (env, o->env[i], "env", err) < 0)
      return BERTH_E_INVALID;
  jset (p, "env", TAKE_PTR (env));

  const char *cwd = o->workdir && *o->workdir ? o->workdir : img_wd && *img_wd ? img_wd : "/";
  if (cwd[0] != '/')
    return berth_error_set (err, BERTH_E_INVALID, 0, "%sworking directory \"%s\" is not an absolute path",
                            cwd == o->workdir ? "" : "image config: ", cwd);
  jset_str (p, "cwd", cwd);

  json_object *c = json_object_new_object ();
  jset (c, "bounding", json_object_get (caps));
  jset (c, "effective", json_object_get (caps));
  jset (c, "permitted", json_object_get (caps));
  jset (p, "capabilities", c);

  json_object *rl = json_object_new_object ();
  jset_str (rl, "type", "RLIMIT_NOFILE");
  jset (rl, "hard", json_object_new_int (1024));
  jset (rl, "soft", json_object_new_int (1024));
  json_object *rls = json_object_new_array ();
  json_object_array_add (rls, rl);
  jset (p, "rlimits", rls);
  jset (p, "noNewPrivileges", json_object_new_boolean (o->no_new_privileges));
  *ret = TAKE_PTR (p);
  return 0;
}

/* ---- mounts ------------------------------------------------------------------- */

static json_object *
mount_new (const char *dst, const char *type, const char *src, const char *const *opts)
{
  json_object *m = json_object_new_object ();
  jset_str (m, "destination", dst);
  jset_str (m, "type", type);
  jset_str (m, "source", src);
  jset (m, "options", jstrs (opts));
  return m;
}

static int
build_mounts (const struct ocispec_opts *o, bool host_net, json_object **ret, berth_error **err)
{
  _cleanup_json_ json_object *user = json_object_new_array ();
  for (size_t i = 0; o->volumes && o->volumes[i]; i++)
    {
      json_object *m = ocispec_parse_volume (o->volumes[i], err);
      if (m == NULL)
        return BERTH_E_INVALID;
      json_object_array_add (user, m);
    }
  for (size_t i = 0; o->tmpfs && o->tmpfs[i]; i++)
    {
      json_object *m = ocispec_parse_tmpfs (o->tmpfs[i], err);
      if (m == NULL)
        return BERTH_E_INVALID;
      json_object_array_add (user, m);
    }
  const char *sys_rw = o->privileged ? "rw" : "ro";
  const char *proc[] = { "nosuid", "noexec", "nodev", NULL };
  const char *dev[] = { "nosuid", "strictatime", "mode=755", "size=65536k", NULL };
  const char *pts[] = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5", NULL };
  const char *sys[] = { "nosuid", "noexec", "nodev", sys_rw, NULL };
  const char *mq[] = { "nosuid", "noexec", "nodev", NULL };
  const char *shm[] = { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL };
  const char *host_bind[] = { "rbind", "nosuid", "noexec", "nodev", NULL };
  const char *sys_bind[] = { "rbind", "nosuid", "noexec", "nodev", sys_rw, NULL };
  /* In a user namespace the kernel refuses sysfs without a network namespace
   * it owns, and mqueue without an ipc one: bind the host's (as Docker does). */
  bool userns = o->n_uid_maps > 0;
  _cleanup_json_ json_object *all = json_object_new_array ();
  json_object *defaults[] = {
    mount_new ("/proc", "proc", "proc", proc),
    mount_new ("/dev", "tmpfs", "tmpfs", dev),
    mount_new ("/dev/pts", "devpts", "devpts", pts),
    userns && host_net ? mount_new ("/sys", "bind", "/sys", sys_bind) : mount_new ("/sys", "sysfs", "sysfs", sys),
    mount_new ("/sys/fs/cgroup", "cgroup", "cgroup", sys),
    o->ipc_host ? mount_new ("/dev/mqueue", "bind", "/dev/mqueue", host_bind)
                : mount_new ("/dev/mqueue", "mqueue", "mqueue", mq),
    o->ipc_host ? mount_new ("/dev/shm", "bind", "/dev/shm", host_bind) : mount_new ("/dev/shm", "tmpfs", "shm", shm),
  };
  for (size_t i = 0; i < ARRAY_SIZE (defaults); i++)
    {
      const char *d = json_object_get_string (json_object_object_get (defaults[i], "destination"));
      bool replaced = false;
      for (size_t k = 0; k < json_object_array_length (user); k++)
        if (strcmp (
                d, json_object_get_string (json_object_object_get (json_object_array_get_idx (user, k), "destination")))
            == 0)
          replaced = true;
      if (replaced)
        json_object_put (defaults[i]);
      else
        json_object_array_add (all, defaults[i]);
    }
  if (o->init)
    {
      const char *src = o->init_path && *o->init_path ? o->init_path : BERTH_INIT_PATH;
      if (src[0] != '/')
        return berth_error_set (err, BERTH_E_INVALID, 0, "init binary path \"%s\" is not absolute", src);
      const char *ro[] = { "bind", "ro", "nosuid", "nodev", NULL };
      json_object_array_add (all, mount_new (OCISPEC_INIT_DEST, "bind", src, ro));
    }
  for (size_t k = 0; k < json_object_array_length (user); k++)
    json_object_array_add (all, json_object_get (json_object_array_get_idx (user, k)));
  *ret = TAKE_PTR (all);
  return 0;
}

/* ---- linux ---------------------------------------------------------------------- */

static json_object *
devrule (bool allow, const char *type, int64_t major, int64_t minor, const char *access)
{
  json_object *d = json_object_new_object ();
  jset (d, "allow", json_object_new_boolean (allow));
  if (type)
    jset_str (d, "type", type);
  if (major >= 0)
    jset (d, "major", json_object_new_int64 (major));
  if (minor >= 0)
    jset (d, "minor", json_object_new_int64 (minor));
  jset_str (d, "access", access);
  return d;
}

/* Host device nodes for --privileged (Docker: all of /dev but the
 * directories runtimes mount themselves, and /dev/console). */
static void
host_devices_walk (int dir_fd, const char *path, int depth, json_object *out)
{
  static const char *const skip[] = { "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", NULL };
  if (depth > 8)
    return;
  DIR *d = fdopendir (dir_fd);
  if (d == NULL)
    {
      close (dir_fd);
      return;
    }
  struct dirent *de;
  while ((de = readdir (d)))
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      struct stat st;
      if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      _cleanup_free_ char *p = NULL;
      if (asprintf (&p, "%s/%s", path, de->d_name) < 0)
        break;
      if (S_ISDIR (st.st_mode))
        {
          if (in_list (skip, de->d_name))
            continue;
          int fd = openat (dirfd (d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd >= 0)
            host_devices_walk (fd, p, depth + 1, out);
          continue;
        }
      if (!S_ISCHR (st.st_mode) && !S_ISBLK (st.st_mode))
        continue;
      if (strcmp (p, "/dev/console") == 0)
        continue;
      json_object *e = json_object_new_object ();
      jset_str (e, "path", p);
      jset_str (e, "type", S_ISCHR (st.st_mode) ? "c" : "b");
      jset (e, "major", json_object_new_int64 (major (st.st_rdev)));
      jset (e, "minor", json_object_new_int64 (minor (st.st_rdev)));
      jset (e, "fileMode", json_object_new_int (st.st_mode & 07777));
      jset (e, "uid", json_object_new_int64 (st.st_uid));
      jset (e, "gid", json_object_new_int64 (st.st_gid));
      json_object_array_add (out, e);
    }
  closedir (d);
}

static bool
cpuset_ok (const char *s)
{
  const char *p = s;
  if (*p == 0)
    return false;
  while (*p)
    {
      char *end;
      if (!isdigit ((unsigned char)*p))
        return false;
      unsigned long a = strtoul (p, &end, 10);
      p = end;
      if (*p == '-')
        {
          p++;
          if (!isdigit ((unsigned char)*p))
            return false;
          unsigned long b = strtoul (p, &end, 10);
          p = end;
          if (b < a || b > 65535)
            return false;
        }
      if (a > 65535)
        return false;
      if (*p == ',')
        {
          p++;
          if (*p == 0)
            return false;
        }
      else if (*p)
        return false;
    }
  return true;
}

static int
build_resources (const struct ocispec_opts *o, json_object **ret, berth_error **err)
{
  _cleanup_json_ json_object *r = json_object_new_object ();
  json_object *devs = json_object_new_array ();
  jset (r, "devices", devs);
  if (o->privileged)
    json_object_array_add (devs, devrule (true, NULL, -1, -1, "rwm"));
  else
    {
      /* Docker's (oci/defaults.go) ... */
      json_object_array_add (devs, devrule (false, NULL, -1, -1, "rwm"));
      json_object_array_add (devs, devrule (true, "c", 1, 5, "rwm"));     /* zero */
      json_object_array_add (devs, devrule (true, "c", 1, 3, "rwm"));     /* null */
      json_object_array_add (devs, devrule (true, "c", 1, 9, "rwm"));     /* urandom */
      json_object_array_add (devs, devrule (true, "c", 1, 8, "rwm"));     /* random */
      json_object_array_add (devs, devrule (true, "c", 5, 0, "rwm"));     /* tty */
      json_object_array_add (devs, devrule (true, "c", 5, 1, "rwm"));     /* console */
      json_object_array_add (devs, devrule (false, "c", 10, 229, "rwm")); /* fuse */
      /* ... and what runc adds by itself (libcontainer/specconv AllowedDevices). */
      json_object_array_add (devs, devrule (true, "c", -1, -1, "m"));
      json_object_array_add (devs, devrule (true, "b", -1, -1, "m"));
      json_object_array_add (devs, devrule (true, "c", 1, 7, "rwm"));    /* full */
      json_object_array_add (devs, devrule (true, "c", 136, -1, "rwm")); /* pts */
      json_object_array_add (devs, devrule (true, "c", 5, 2, "rwm"));    /* ptmx */
      json_object_array_add (devs, devrule (true, "c", 10, 200, "rwm")); /* tun */
    }

  if (o->memory < 0 || (o->memory > 0 && o->memory < MEMORY_MIN))
    return berth_error_set (err, BERTH_E_INVALID, 0, "memory limit %" PRId64 " bytes is below the minimum of 6 MiB",
                            o->memory);
  if (o->memory_swap && o->memory == 0)
    return berth_error_set (err, BERTH_E_INVALID, 0, "a memory+swap limit needs a memory limit too (--memory)");
  if (o->memory_swap < -1 || (o->memory_swap > 0 && o->memory_swap < o->memory))
    return berth_error_set (err, BERTH_E_INVALID, 0,
                            "memory+swap limit %" PRId64
                            " must be -1 (unlimited) or at least the memory limit %" PRId64,
                            o->memory_swap, o->memory);
  if (o->memory)
    {
      json_object *m = json_object_new_object ();
      jset (m, "limit", json_object_new_int64 (o->memory));
      if (o->memory_swap)
        jset (m, "swap", json_object_new_int64 (o->memory_swap));
      jset (r, "memory", m);
    }

  json_object *cpu = json_object_new_object ();
  if (o->cpus != 0)
    {
      cpu_set_t set;
      int ncpu = sched_getaffinity (0, sizeof set, &set) == 0 ? CPU_COUNT (&set) : (int)sysconf (_SC_NPROCESSORS_ONLN);
      if (!(o->cpus >= 0.01) || o->cpus > ncpu || !isfinite (o->cpus))
        {
          json_object_put (cpu);
          return berth_error_set (err, BERTH_E_INVALID, 0,
                                  "range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", ncpu,
                                  ncpu);
        }
      jset (cpu, "quota", json_object_new_int64 (llround (o->cpus * CPU_PERIOD)));
      jset (cpu, "period", json_object_new_int64 (CPU_PERIOD));
    }
  if (o->cpu_shares)
    {
      if (o->cpu_shares > 262144)
        {
          json_object_put (cpu);
          return berth_error_set (err, BERTH_E_INVALID, 0, "cpu shares %" PRIu64 " is above 262144", o->cpu_shares);
        }
      jset (cpu, "shares", json_object_new_uint64 (o->cpu_shares));
    }
  if (o->cpuset_cpus && *o->cpuset_cpus)
    {
      if (!cpuset_ok (o->cpuset_cpus))
        {
          json_object_put (cpu);
          return berth_error_set (err, BERTH_E_INVALID, 0, "invalid cpuset \"%s\": expected a list like 0-2,4",
                                  o->cpuset_cpus);
        }
      jset_str (cpu, "cpus", o->cpuset_cpus);
    }
  if (json_object_object_length (cpu))
    jset (r, "cpu", cpu);
  else
    json_object_put (cpu);

  if (o->pids_limit < -1)
    return berth_error_set (err, BERTH_E_INVALID, 0, "pids limit %" PRId64 ": must be > 0, or -1 for unlimited",
                            o->pids_limit);
  if (o->pids_limit)
    {
      json_object *p = json_object_new_object ();
      jset (p, "limit", json_object_new_int64 (o->pids_limit));
      jset (r, "pids", p);
    }
  *ret = TAKE_PTR (r);
  return 0;
}

static const char *const masked_paths[] = { "/proc/asound",
                                            "/proc/acpi",
                                            "/proc/kcore",
                                            "/proc/keys",
                                            "/proc/latency_stats",
                                            "/proc/timer_list",
                                            "/proc/timer_stats",
                                            "/proc/sched_debug",
                                            "/proc/scsi",
                                            "/sys/firmware",
                                            "/sys/devices/virtual/powercap",
                                            NULL };
static const char *const readonly_paths[]
    = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL };

static json_object *
idmaps (const struct ocispec_idmap *m, size_t n)
{
  json_object *a = json_object_new_array ();
  for (size_t i = 0; i < n; i++)
    {
      json_object *e = json_object_new_object ();
      jset (e, "containerID", json_object_new_int64 (m[i].container_id));
      jset (e, "hostID", json_object_new_int64 (m[i].host_id));
      jset (e, "size", json_object_new_int64 (m[i].size));
      json_object_array_add (a, e);
    }
  return a;
}

static int
check_idmaps (const struct ocispec_idmap *m, size_t n, const char *what, berth_error **err)
{
  if (n > 5)
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: %zu entries, at most 5", what, n);
  for (size_t i = 0; i < n; i++)
    if (m[i].size == 0 || (uint64_t)m[i].container_id + m[i].size > UINT32_MAX
        || (uint64_t)m[i].host_id + m[i].size > UINT32_MAX)
      return berth_error_set (err, BERTH_E_INVALID, 0, "%s[%zu]: %u:%u:%u is empty or beyond 2^32-1", what, i,
                              m[i].container_id, m[i].host_id, m[i].size);
  return 0;
}

static int
build_linux (const struct ocispec_opts *o, bool host_net, json_object *caps, json_object **ret, berth_error **err)
{
  _cleanup_json_ json_object *l = json_object_new_object ();

  if ((o->n_uid_maps == 0) != (o->n_gid_maps == 0) || (o->n_uid_maps && (!o->uid_maps || !o->gid_maps)))
    return berth_error_set (err, BERTH_E_INVALID, 0, "user namespace: give both uid and gid mappings");
  if (check_idmaps (o->uid_maps, o->n_uid_maps, "uid mappings", err) < 0
      || check_idmaps (o->gid_maps, o->n_gid_maps, "gid mappings", err) < 0)
    return BERTH_E_INVALID;

  json_object *ns = json_object_new_array ();
  jset (l, "namespaces", ns);
  const char *types[] = { "pid", "ipc", "uts", "mount", "network", "cgroup" };
  for (size_t i = 0; i < ARRAY_SIZE (types); i++)
    {
      if ((host_net && strcmp (types[i], "network") == 0) || (o->pid_host && strcmp (types[i], "pid") == 0)
          || (o->ipc_host && strcmp (types[i], "ipc") == 0))
        continue;
      json_object *e = json_object_new_object ();
      jset_str (e, "type", types[i]);
      json_object_array_add (ns, e);
    }
  if (o->n_uid_maps)
    {
      json_object *e = json_object_new_object ();
      jset_str (e, "type", "user");
      json_object_array_add (ns, e);
      jset (l, "uidMappings", idmaps (o->uid_maps, o->n_uid_maps));
      jset (l, "gidMappings", idmaps (o->gid_maps, o->n_gid_maps));
    }

  json_object *res = NULL;
  if (build_resources (o, &res, err) < 0)
    return BERTH_E_INVALID;
  jset (l, "resources", res);

  if (o->privileged)
    {
      json_object *devs = json_object_new_array ();
      int fd = open ("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd >= 0)
        host_devices_walk (fd, "/dev", 0, devs);
      jset (l, "devices", devs);
    }
  else
    {
      jset (l, "maskedPaths", jstrs (masked_paths));
      jset (l, "readonlyPaths", jstrs (readonly_paths));
    }

  const char *sc = o->seccomp;
  if (!o->privileged && !(sc && strcmp (sc, "unconfined") == 0))
    {
      const char *path = sc && *sc ? sc : SECCOMP_PROFILE;
      json_object *s = NULL;
      int r = ocispec_seccomp_load (path, caps, &s, err);
      if (r == BERTH_E_NOTFOUND && !(sc && *sc))
        return berth_error_wrap (err, "the default seccomp profile is missing (apt-get install "
                                      "golang-github-containers-common, or run with seccomp=unconfined)");
      if (r < 0)
        return r;
      if (!(sc && *sc))
        seccomp_harden_default (s, caps);
      if (s)
        jset (l, "seccomp", s);
    }
  *ret = TAKE_PTR (l);
  return 0;
}

/* ---- the whole spec -------------------------------------------------------------- */

static bool
hostname_ok (const char *h)
{
  size_t n = strlen (h);
  if (n == 0 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum ((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_')
      return false;
  return true;
}

json_object *
ocispec_generate (json_object *image_config, const struct ocispec_opts *o, berth_error **err)
{
  static const struct ocispec_opts none;
  if (o == NULL)
    o = &none;

  json_object *cfg = NULL;
  if (image_config)
    {
      if (!json_object_is_type (image_config, json_type_object))
        {
          berth_error_set (err, BERTH_E_INVALID, 0, "image config: expected a JSON object");
          return NULL;
        }
      if (get_obj (image_config, "config", "image config: ", &cfg, err) < 0)
        return NULL;
    }
  bool host_net = false;
  if (o->net && *o->net && strcmp (o->net, "none") != 0)
    {
      if (strcmp (o->net, "host") != 0)
        {
          berth_error_set (err, BERTH_E_INVALID, 0, "network mode \"%s\" is not supported (none, host)", o->net);
          return NULL;
        }
      host_net = true;
    }
  if (o->hostname && *o->hostname && !hostname_ok (o->hostname))
    {
      berth_error_set (err, BERTH_E_INVALID, 0, "invalid hostname \"%s\": 1 to 64 letters, digits, '-', '.' or '_'",
                       o->hostname);
      return NULL;
    }

  _cleanup_json_ json_object *annotations = json_object_new_object ();
  for (size_t i = 0; o->annotations && o->annotations[i]; i++)
    {
      const char *a = o->annotations[i];
      const char *eq = strchr (a, '=');
      if (eq == NULL || eq == a)
        {
          berth_error_set (err, BERTH_E_INVALID, 0, "invalid annotation \"%s\": expected KEY=VALUE", a);
          return NULL;
        }
      _cleanup_free_ char *k = strndup (a, eq - a);
      if (k == NULL)
        {
          berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "annotation");
          return NULL;
        }
      jset_str (annotations, k, eq + 1);
    }
  jset_str (annotations, "io.berth.etc-files", "1");

  _cleanup_json_ json_object *caps = NULL, *process = NULL, *mounts = NULL, *linux_ = NULL;
  if (caps_compute (o, &caps, err) < 0 || build_process (cfg, o, caps, annotations, &process, err) < 0
      || build_mounts (o, host_net, &mounts, err) < 0 || build_linux (o, host_net, caps, &linux_, err) < 0)
    return NULL;

  json_object *spec = json_object_new_object ();
  jset_str (spec, "ociVersion", OCISPEC_VERSION);
  jset (spec, "process", TAKE_PTR (process));
  json_object *root = json_object_new_object ();
  jset_str (root, "path", "rootfs");
  jset (root, "readonly", json_object_new_boolean (o->read_only));
  jset (spec, "root", root);
  if (o->hostname && *o->hostname)
    jset_str (spec, "hostname", o->hostname);
  jset (spec, "mounts", TAKE_PTR (mounts));
  jset (spec, "linux", TAKE_PTR (linux_));
  jset (spec, "annotations", TAKE_PTR (annotations));
  return spec;
}
