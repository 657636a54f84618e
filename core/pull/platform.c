/* Platforms: see platform.h.  Behaviour follows containerd's platforms
 * package (parse.go, database.go, compare.go); no code is taken from it. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "core/pull/platform.h"

#define HOST_OS "linux"
#if defined(__x86_64__)
#define HOST_ARCH "amd64"
#define HOST_VARIANT NULL
#elif defined(__aarch64__)
#define HOST_ARCH "arm64"
#define HOST_VARIANT "v8"
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 8
#define HOST_ARCH "arm"
#define HOST_VARIANT "v8"
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH == 6
#define HOST_ARCH "arm"
#define HOST_VARIANT "v6"
#elif defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH == 5
#define HOST_ARCH "arm"
#define HOST_VARIANT "v5"
#elif defined(__arm__)
#define HOST_ARCH "arm"
#define HOST_VARIANT "v7"
#elif defined(__i386__)
#define HOST_ARCH "386"
#define HOST_VARIANT NULL
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ARCH "ppc64le"
#define HOST_VARIANT NULL
#elif defined(__powerpc64__)
#define HOST_ARCH "ppc64"
#define HOST_VARIANT NULL
#elif defined(__s390x__)
#define HOST_ARCH "s390x"
#define HOST_VARIANT NULL
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ARCH "riscv64"
#define HOST_VARIANT NULL
#elif defined(__loongarch64)
#define HOST_ARCH "loong64"
#define HOST_VARIANT NULL
#elif defined(__mips64) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ARCH "mips64le"
#define HOST_VARIANT NULL
#elif defined(__mips64)
#define HOST_ARCH "mips64"
#define HOST_VARIANT NULL
#else
#error "unknown host architecture: add it to core/pull/platform.c"
#endif

static const char *const known_os[] = {
  "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
  "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos", NULL,
};
static const char *const known_arch[] = {
  "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64",
  "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64",
  "s390", "s390x", "sparc", "sparc64", "wasm", NULL,
};

static bool
in_list (const char *const *l, const char *s)
{
  for (; *l; l++)
    if (strcmp (*l, s) == 0)
      return true;
  return false;
}

static bool
streq (const char *a, const char *b)
{
  return strcmp (a ? a : "", b ? b : "") == 0;
}

static void
lower (char *s)
{
  for (; s && *s; s++)
    if (*s >= 'A' && *s <= 'Z')
      *s += 32;
}

static bool
set (char **dst, const char *v)
{
  char *n = NULL;
  if (v && *v && (n = strdup (v)) == NULL)
    return false;
  free (*dst);
  *dst = n;
  return true;
}

/* normalizeOS */
static bool
norm_os (char **os)
{
  lower (*os);
  if (*os && strcmp (*os, "macos") == 0)
    return set (os, "darwin");
  return true;
}

/* normalizeArch: arch and variant, in place (variant NULL = none). */
static bool
norm_arch (char **arch, char **variant)
{
  lower (*arch);
  lower (*variant);
  const char *a = *arch ? *arch : "", *v = *variant ? *variant : "";
  if (strcmp (a, "i386") == 0)
    return set (arch, "386") && set (variant, NULL);
  if (strcmp (a, "x86_64") == 0 || strcmp (a, "x86-64") == 0 || strcmp (a, "amd64") == 0)
    return set (arch, "amd64") && (strcmp (v, "v1") != 0 || set (variant, NULL));
  if (strcmp (a, "aarch64") == 0 || strcmp (a, "arm64") == 0)
    {
      if (!set (arch, "arm64"))
        return false;
      v = *variant ? *variant : "";
      if (strcmp (v, "8") == 0 || strcmp (v, "v8") == 0 || strcmp (v, "v8.0") == 0)
        return set (variant, NULL);
      if (strcmp (v, "9") == 0 || strcmp (v, "9.0") == 0 || strcmp (v, "v9.0") == 0)
        return set (variant, "v9");
      return true;
    }
  if (strcmp (a, "armhf") == 0)
    return set (arch, "arm") && set (variant, "v7");
  if (strcmp (a, "armel") == 0)
    return set (arch, "arm") && set (variant, "v6");
  if (strcmp (a, "arm") == 0)
    {
      if (*v == '\0' || strcmp (v, "7") == 0)
        return set (variant, "v7");
      if (strcmp (v, "5") == 0 || strcmp (v, "6") == 0 || strcmp (v, "8") == 0)
        {
          char b[3] = { 'v', v[0], '\0' };
          return set (variant, b);
        }
    }
  return true;
}

int
platform_normalize (oci_platform *p, berth_error **err)
{
  if (!norm_os (&p->os) || !norm_arch (&p->architecture, &p->variant))
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  if ((p->os == NULL && (p->os = strdup ("")) == NULL)
      || (p->architecture == NULL && (p->architecture = strdup ("")) == NULL))
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  return 0;
}

static oci_platform *
platform_new (const char *os, const char *arch, const char *variant)
{
  _cleanup_ (oci_platform_freep) oci_platform *p = calloc (1, sizeof *p);
  if (p == NULL || (p->os = strdup (os)) == NULL || (p->architecture = strdup (arch)) == NULL
      || (variant && *variant && (p->variant = strdup (variant)) == NULL))
    return NULL;
  return TAKE_PTR (p);
}

oci_platform *
platform_default (void)
{
  return platform_new (HOST_OS, HOST_ARCH, HOST_VARIANT);
}

static bool
component_ok (const char *s, size_t n)
{
  if (n == 0)
    return false;
  for (size_t i = 0; i < n; i++)
    {
      char c = s[i];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
        return false;
    }
  return true;
}

int
platform_parse (const char *spec, oci_platform **ret, berth_error **err)
{
  if (strchr (spec, '*'))
    return berth_error_set (err, BERTH_E_INVALID, 0, "platform \"%s\": wildcards are not supported", spec);
  char *parts[3] = { NULL, NULL, NULL };
  size_t np = 0;
  const char *st = spec;
  _cleanup_ (oci_platform_freep) oci_platform *p = calloc (1, sizeof *p);
  if (p == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  for (const char *c = spec;; c++)
    if (*c == '/' || *c == '\0')
      {
        if (!component_ok (st, c - st))
          {
            for (size_t i = 0; i < np; i++)
              free (parts[i]);
            return berth_error_set (err, BERTH_E_INVALID, 0,
                                    "platform \"%s\": \"%.*s\" is an invalid component (must match [A-Za-z0-9_-]+)",
                                    spec, (int) (c - st), st);
          }
        if (np == 3)
          {
            for (size_t i = 0; i < np; i++)
              free (parts[i]);
            return berth_error_set (err, BERTH_E_INVALID, 0,
                                    "platform \"%s\": too many components (want os/arch[/variant])", spec);
          }
        parts[np++] = strndup (st, c - st);
        if (*c == '\0')
          break;
        st = c + 1;
      }
  for (size_t i = 0; i < np; i++)
    if (parts[i] == NULL)
      {
        for (size_t k = 0; k < np; k++)
          free (parts[k]);
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      }
  bool ok = true;
  if (np == 1)
    {
      p->os = parts[0];
      ok = norm_os (&p->os);
      if (ok && in_list (known_os, p->os))
        {
          ok = set (&p->architecture, HOST_ARCH);
          if (ok && strcmp (HOST_ARCH, "arm") == 0 && !streq (HOST_VARIANT, "v7"))
            ok = set (&p->variant, HOST_VARIANT);
        }
      else if (ok)
        {
          p->architecture = TAKE_PTR (p->os);
          ok = norm_arch (&p->architecture, &p->variant);
          if (ok && streq (p->architecture, "arm") && streq (p->variant, "v7"))
            ok = set (&p->variant, NULL);
          if (ok && !in_list (known_arch, p->architecture))
            return berth_error_set (err, BERTH_E_INVALID, 0, "platform \"%s\": unknown operating system or architecture",
                                    spec);
          if (ok)
            ok = set (&p->os, HOST_OS);
        }
    }
  else
    {
      p->os = parts[0];
      p->architecture = parts[1];
      p->variant = np == 3 ? parts[2] : NULL;
      ok = norm_os (&p->os) && norm_arch (&p->architecture, &p->variant);
      if (ok && np == 2 && streq (p->architecture, "arm") && streq (p->variant, "v7"))
        ok = set (&p->variant, NULL);
      if (ok && np == 3 && streq (p->architecture, "arm64") && p->variant == NULL)
        ok = set (&p->variant, "v8");
    }
  if (!ok)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  *ret = TAKE_PTR (p);
  return 0;
}

char *
platform_format (const oci_platform *p)
{
  char *out = NULL;
  if (asprintf (&out, "%s/%s%s%s", p->os ? p->os : "", p->architecture ? p->architecture : "",
                p->variant && *p->variant ? "/" : "", p->variant && *p->variant ? p->variant : "")
      < 0)
    return NULL;
  return out;
}

/* ---- matchers ----------------------------------------------------------- */

struct platform_matcher
{
  bool all;
  size_t n;
  oci_platform *vector[16]; /* normalised, best first */
};

platform_matcher *
platform_matcher_free (platform_matcher *m)
{
  if (m == NULL)
    return NULL;
  for (size_t i = 0; i < m->n; i++)
    oci_platform_free (m->vector[i]);
  free (m);
  return NULL;
}

void
platform_matcher_freep (platform_matcher **m)
{
  *m = platform_matcher_free (*m);
}

static bool
push (platform_matcher *m, const char *os, const char *arch, const char *variant)
{
  if (m->n == ARRAY_SIZE (m->vector))
    return true;
  oci_platform *p = platform_new (os, arch, variant);
  if (p == NULL)
    return false;
  m->vector[m->n++] = p;
  return true;
}

/* Variant "vN" → N, or -1. */
static int
variant_level (const char *v)
{
  if (v == NULL || v[0] != 'v' || v[1] < '0' || v[1] > '9')
    return -1;
  char *end;
  long n = strtol (v + 1, &end, 10);
  return *end == '\0' && n < 100 ? (int) n : -1;
}

int
platform_matcher_only (const oci_platform *want, platform_matcher **ret, berth_error **err)
{
  _cleanup_ (oci_platform_freep) oci_platform *p = oci_platform_dup (want);
  _cleanup_ (platform_matcher_freep) platform_matcher *m = calloc (1, sizeof *m);
  if (p == NULL || m == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  int r = platform_normalize (p, err);
  if (r < 0)
    return r;
  const char *os = p->os, *arch = p->architecture;
  bool ok = push (m, os, arch, p->variant);
  char v[16];
  if (strcmp (arch, "amd64") == 0)
    {
      int lvl = variant_level (p->variant);
      for (int i = lvl - 1; ok && i >= 1; i--)
        {
          snprintf (v, sizeof v, "v%d", i);
          ok = push (m, os, arch, i == 1 ? NULL : v);
        }
      ok = ok && push (m, os, "386", NULL);
    }
  else if (strcmp (arch, "arm") == 0)
    {
      int lvl = variant_level (p->variant);
      for (int i = lvl - 1; ok && i >= 5; i--)
        {
          snprintf (v, sizeof v, "v%d", i);
          ok = push (m, os, arch, v);
        }
    }
  else if (strcmp (arch, "arm64") == 0)
    {
      /* aarch32: arm64 (v8) runs arm/v8 down to arm/v5 */
      for (int i = 8; ok && i >= 5; i--)
        {
          snprintf (v, sizeof v, "v%d", i);
          ok = push (m, os, "arm", v);
        }
    }
  if (!ok)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  *ret = TAKE_PTR (m);
  return 0;
}

int
platform_matcher_default (platform_matcher **ret, berth_error **err)
{
  _cleanup_ (oci_platform_freep) oci_platform *p = platform_default ();
  if (p == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  return platform_matcher_only (p, ret, err);
}

int
platform_matcher_all (platform_matcher **ret, berth_error **err)
{
  platform_matcher *m = calloc (1, sizeof *m);
  if (m == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  m->all = true;
  *ret = m;
  return 0;
}

int
platform_rank (const platform_matcher *m, const oci_platform *p)
{
  if (m->all)
    return 0;
  _cleanup_ (oci_platform_freep) oci_platform *n = oci_platform_dup (p);
  if (n == NULL || platform_normalize (n, NULL) < 0)
    return -1;
  for (size_t i = 0; i < m->n; i++)
    if (streq (m->vector[i]->os, n->os) && streq (m->vector[i]->architecture, n->architecture)
        && streq (m->vector[i]->variant, n->variant))
      return (int) i;
  return -1;
}

bool
platform_match (const platform_matcher *m, const oci_platform *p)
{
  return platform_rank (m, p) >= 0;
}

struct ranked
{
  const oci_descriptor *d;
  int rank;
  size_t pos;
};

static int
ranked_cmp (const void *a, const void *b)
{
  const struct ranked *x = a, *y = b;
  if (x->rank != y->rank)
    return x->rank < y->rank ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int
platform_select (const oci_index *index, const platform_matcher *m, const oci_descriptor ***ret_descs, size_t *ret_n,
                 berth_error **err)
{
  _cleanup_free_ struct ranked *v = calloc (index->n_manifests + 1, sizeof *v);
  if (v == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  size_t n = 0;
  for (size_t i = 0; i < index->n_manifests; i++)
    {
      const oci_descriptor *d = &index->manifests[i];
      oci_kind k = oci_media_type_kind (d->media_type);
      if (k != OCI_KIND_MANIFEST && k != OCI_KIND_INDEX)
        continue;
      int rank;
      if (m->all)
        rank = 0;
      else if (d->platform == NULL)
        rank = (int) ARRAY_SIZE (m->vector);
      else if ((rank = platform_rank (m, d->platform)) < 0)
        continue;
      v[n++] = (struct ranked){ d, rank, i };
    }
  if (n == 0)
    {
      /* List what the index offers. */
      size_t cap = 256, len = 0;
      _cleanup_free_ char *avail = malloc (cap);
      if (avail == NULL)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
      avail[0] = '\0';
      for (size_t i = 0; i < index->n_manifests; i++)
        {
          const oci_descriptor *d = &index->manifests[i];
          if (d->platform == NULL)
            continue;
          _cleanup_free_ char *f = platform_format (d->platform);
          if (f == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
          size_t fl = strlen (f);
          if (len > 4096)
            {
              strcpy (avail + len, ", ...");
              len += 5;
              break;
            }
          if (len + fl + 8 > cap)
            {
              cap = (len + fl + 8) * 2;
              char *na = realloc (avail, cap);
              if (na == NULL)
                return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
              avail = na;
            }
          len += sprintf (avail + len, "%s%s", len ? ", " : "", f);
        }
      _cleanup_free_ char *want = m->n > 0 ? platform_format (m->vector[0]) : strdup ("any");
      return berth_error_set (err, BERTH_E_NOTFOUND, 0, "no manifest for platform %s in the index (available: %s)",
                              want ? want : "?", len ? avail : "none");
    }
  qsort (v, n, sizeof *v, ranked_cmp);
  const oci_descriptor **out = calloc (n, sizeof *out);
  if (out == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    out[i] = v[i].d;
  *ret_descs = out;
  *ret_n = n;
  return 0;
}
