/* oci-validate-berth MEDIATYPE FILE: berth's OCI validator with the CLI
 * contract of ../shared/tools/oci-validate, so the two can be compared
 * document by document (tests/unit/oci-corpus.sh).
 * Exit 0 valid, 1 invalid (reason on stderr), 2 usage error or no
 * validator for the media type.  FILE may be - for stdin. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "core/pull/oci.h"

static char *
slurp (FILE *f, size_t *ret_len)
{
  size_t cap = 65536, len = 0;
  char *buf = malloc (cap);
  if (buf == NULL)
    return NULL;
  for (;;)
    {
      size_t n = fread (buf + len, 1, cap - len, f);
      len += n;
      if (n == 0)
        break;
      if (len == cap)
        {
          /* read one byte past the limit so oversize documents are refused */
          if (cap > OCI_DOC_MAX * 2)
            break;
          char *nb = realloc (buf, cap * 2);
          if (nb == NULL)
            {
              free (buf);
              return NULL;
            }
          buf = nb;
          cap *= 2;
        }
    }
  if (ferror (f))
    {
      free (buf);
      return NULL;
    }
  *ret_len = len;
  return buf;
}

int
main (int argc, char **argv)
{
  if (argc != 3)
    {
      fprintf (stderr, "usage: %s MEDIATYPE FILE\n", argv[0]);
      return 2;
    }
  _cleanup_fclose_ FILE *f = strcmp (argv[2], "-") == 0 ? NULL : fopen (argv[2], "rb");
  if (f == NULL && strcmp (argv[2], "-") != 0)
    {
      fprintf (stderr, "oci-validate-berth: %s: %s\n", argv[2], strerror (errno));
      return 2;
    }
  size_t len = 0;
  _cleanup_free_ char *data = slurp (f ? f : stdin, &len);
  if (data == NULL)
    {
      fprintf (stderr, "oci-validate-berth: cannot read %s\n", argv[2]);
      return 2;
    }
  _cleanup_error_ berth_error *err = NULL;
  int r = oci_validate (argv[1], data, len, &err);
  if (r == BERTH_E_NOTSUP && oci_media_type_kind (argv[1]) != OCI_KIND_MANIFEST
      && oci_media_type_kind (argv[1]) != OCI_KIND_INDEX)
    {
      fprintf (stderr, "oci-validate-berth: %s\n", berth_error_message (err));
      return 2;
    }
  if (r < 0)
    {
      fprintf (stderr, "invalid: %s\n", berth_error_message (err));
      return 1;
    }
  return 0;
}
