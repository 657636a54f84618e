/* libFuzzer target over the image parsing layer.  The first byte picks what
 * the rest is fed to: low nibble 0-7 oci_validate for one of the media types
 * (bit 0x80: also the typed parser of that kind, then platform_select on an
 * index; bit 0x40: oci_detect_media_type), 8-11 reference_parse, 12-15
 * platform_parse.  Invariants checked (abort on breach):
 * every refusal carries a message and one of the documented codes, the
 * typed parsers accept nothing the validator refuses, parsed structs hold
 * what the API promises, and a normalised reference parses to itself. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pull/oci.h"
#include "core/pull/platform.h"
#include "core/pull/reference.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const types[] = {
  OCI_MT_DESCRIPTOR, OCI_MT_MANIFEST, OCI_MT_INDEX,     OCI_MT_CONFIG,
  OCI_MT_LAYOUT,     DOCKER_MT_MANIFEST, DOCKER_MT_MANIFEST_LIST, DOCKER_MT_CONFIG,
};

static void
check_refusal (int r, berth_error *err)
{
  if (r >= 0)
    return;
  if (err == NULL || berth_error_message (err) == NULL || berth_error_message (err)[0] == '\0')
    abort ();
  if (r != BERTH_E_INVALID && r != BERTH_E_NOTSUP && r != BERTH_E_NOMEM && r != BERTH_E_NOTFOUND)
    abort ();
}

static void
check_descriptor (const oci_descriptor *d)
{
  if (d->media_type == NULL || d->size < 0 || oci_digest_validate (d->digest, strlen (d->digest), NULL) < 0)
    abort ();
  if (d->platform && (d->platform->os == NULL || d->platform->architecture == NULL))
    abort ();
}

static void
fuzz_typed (const char *mt, const char *json, size_t len, int vr)
{
  berth_error *err = NULL;
  oci_kind k = oci_media_type_kind (mt);
  int r = 0;
  if (k == OCI_KIND_MANIFEST)
    {
      oci_manifest *m = NULL;
      r = oci_manifest_parse (mt, json, len, &m, &err);
      if (r == 0)
        {
          if (m->n_layers < 1 || m->media_type == NULL)
            abort ();
          check_descriptor (&m->config);
          for (size_t i = 0; i < m->n_layers; i++)
            check_descriptor (&m->layers[i]);
        }
      oci_manifest_free (m);
    }
  else if (k == OCI_KIND_INDEX)
    {
      oci_index *x = NULL;
      r = oci_index_parse (mt, json, len, &x, &err);
      if (r == 0)
        {
          for (size_t i = 0; i < x->n_manifests; i++)
            check_descriptor (&x->manifests[i]);
          platform_matcher *m = NULL;
          if (platform_matcher_default (&m, NULL) == 0)
            {
              const oci_descriptor **d = NULL;
              size_t n = 0;
              berth_error *e2 = NULL;
              int sr = platform_select (x, m, &d, &n, &e2);
              check_refusal (sr, e2);
              if (sr == 0 && n == 0)
                abort ();
              free (d);
              berth_error_free (e2);
              platform_matcher_free (m);
            }
        }
      oci_index_free (x);
    }
  else if (k == OCI_KIND_CONFIG)
    {
      oci_config *c = NULL;
      r = oci_config_parse (mt, json, len, &c, &err);
      if (r == 0 && (c->diff_ids == NULL || c->architecture == NULL || c->os == NULL))
        abort ();
      oci_config_free (c);
    }
  else if (k == OCI_KIND_DESCRIPTOR)
    {
      oci_descriptor d;
      r = oci_descriptor_parse (json, len, &d, &err);
      if (r == 0)
        {
          check_descriptor (&d);
          oci_descriptor_clear (&d);
        }
    }
  else
    {
      oci_layout *l = NULL;
      r = oci_layout_parse (json, len, &l, &err);
      oci_layout_free (l);
    }
  check_refusal (r, err);
  /* The typed parsers accept only valid documents. */
  if (r == 0 && vr != 0)
    abort ();
  berth_error_free (err);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  unsigned sel = data[0], what = sel & 0x0f;
  const char *body = (const char *) data + 1;
  size_t len = size - 1;
  berth_error *err = NULL;
  if (what < 8)
    {
      const char *mt = types[what];
      int r = oci_validate (mt, body, len, &err);
      check_refusal (r, err);
      berth_error_free (err);
      if (sel & 0x80)
        fuzz_typed (mt, body, len, r);
      if (sel & 0x40)
        (void) oci_detect_media_type (body, len);
      return 0;
    }
  /* NUL-terminated copy for the string parsers. */
  char *s = malloc (len + 1);
  if (s == NULL)
    return 0;
  memcpy (s, body, len);
  s[len] = '\0';
  if (what < 12)
    {
      reference *ref = NULL;
      int r = reference_parse (s, &ref, &err);
      check_refusal (r, err);
      if (r == 0)
        {
          char *full = reference_string (ref);
          reference *again = NULL;
          /* the normalised form parses to itself */
          if (full == NULL || reference_parse_strict (full, &again, NULL) < 0)
            abort ();
          char *full2 = reference_string (again);
          if (full2 == NULL || strcmp (full, full2) != 0)
            abort ();
          free (full2);
          free (full);
          free (reference_familiar (ref));
          reference_free (again);
        }
      reference_free (ref);
    }
  else
    {
      oci_platform *p = NULL;
      int r = platform_parse (s, &p, &err);
      check_refusal (r, err);
      if (r == 0)
        {
          platform_matcher *m = NULL;
          if (platform_matcher_only (p, &m, NULL) == 0 && !platform_match (m, p))
            abort (); /* a platform matches itself */
          platform_matcher_free (m);
          free (platform_format (p));
        }
      oci_platform_free (p);
    }
  berth_error_free (err);
  free (s);
  return 0;
}
