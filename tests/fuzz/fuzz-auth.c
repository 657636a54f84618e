/* libFuzzer target over the registry auth parsers (hostile server input):
 * WWW-Authenticate challenges, token server answers and base64.  Any input
 * must parse or fail with BERTH_E_INVALID, never crash or read past it. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pull/auth.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  /* exact-size copy so that ASan catches any read past `size` */
  char *buf = malloc (size ? size : 1);
  if (buf == NULL)
    return 0;
  memcpy (buf, data, size);

  struct auth_challenge *c = NULL;
  size_t n = 0;
  berth_error *err = NULL;
  int r = auth_parse_challenges (buf, size, &c, &n, &err);
  if (r == 0)
    {
      if (n == 0 || n > AUTH_MAX_CHALLENGES)
        abort ();
      for (size_t i = 0; i < n; i++)
        if ((c[i].realm && strlen (c[i].realm) > size) || (c[i].scope && strlen (c[i].scope) > size))
          abort ();
      auth_challenges_free (c, n);
    }
  else if (r != BERTH_E_INVALID && r != BERTH_E_NOMEM)
    abort ();
  berth_error_free (err);
  err = NULL;

  char *tok = NULL;
  time_t exp = 0;
  r = auth_parse_token (buf, size, 1000, &tok, &exp, &err);
  if (r == 0)
    {
      if (tok == NULL || tok[0] == '\0' || exp <= 1000)
        abort ();
      free (tok);
    }
  else if (r != BERTH_E_INVALID && r != BERTH_E_NOMEM)
    abort ();
  berth_error_free (err);

  size_t dl = 0;
  unsigned char *d = auth_base64_decode (buf, size, &dl);
  if (d)
    {
      char *e = auth_base64_encode (d, dl);
      if (e == NULL)
        abort ();
      free (e);
      free (d);
    }
  free (buf);
  return 0;
}
