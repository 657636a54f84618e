/* toml-test decoder: TOML on stdin, toml-test tagged JSON on stdout.
 * Exit 0 on success, 1 on invalid TOML (message on stderr), 2 on I/O errors.
 * Driven by tests/unit/toml-test.sh through ../shared/tools/toml-test-run. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "core/config/toml.h"

int
main (void)
{
  _cleanup_free_ char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;)
    {
      if (cap - len < 65536)
        {
          cap = cap ? cap * 2 : 65536;
          char *nb = realloc (buf, cap);
          if (nb == NULL)
            {
              fputs ("out of memory\n", stderr);
              return 2;
            }
          buf = nb;
        }
      size_t n = fread (buf + len, 1, cap - len, stdin);
      len += n;
      if (n == 0)
        break;
    }
  if (ferror (stdin))
    {
      perror ("stdin");
      return 2;
    }

  _cleanup_error_ berth_error *err = NULL;
  _cleanup_toml_ struct toml_value *doc = NULL;
  if (toml_parse (buf, len, &doc, NULL, &err) < 0)
    {
      fprintf (stderr, "%s\n", berth_error_message (err));
      return 1;
    }
  _cleanup_free_ char *json = toml_to_tagged_json (doc);
  if (json == NULL)
    {
      fputs ("out of memory\n", stderr);
      return 2;
    }
  if (puts (json) == EOF || fflush (stdout) != 0)
    return 2;
  return 0;
}
