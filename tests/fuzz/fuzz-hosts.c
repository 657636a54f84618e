/* libFuzzer target over hosts.toml parsing (containerd certs.d layout):
 * any input must give endpoints (each with a scheme, a host and a path,
 * the server last) or fail with BERTH_E_INVALID. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pull/hosts.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *buf = malloc (size ? size : 1);
  if (buf == NULL)
    return 0;
  memcpy (buf, data, size);
  for (int plain = 0; plain < 2; plain++)
    {
      struct registry_hosts *h = NULL;
      berth_error *err = NULL;
      int r = hosts_parse (buf, size, "/etc/berth/certs.d/r.example", plain ? "localhost:5000" : "docker.io",
                           plain, &h, &err);
      if (r == 0)
        {
          if (h == NULL || h->n == 0)
            abort ();
          for (size_t i = 0; i < h->n; i++)
            {
              const struct registry_host *e = &h->items[i];
              if (e->scheme == NULL || e->host == NULL || e->path == NULL || e->host[0] == '\0')
                abort ();
              if (strcmp (e->scheme, "http") != 0 && strcmp (e->scheme, "https") != 0)
                abort ();
              for (char **l = e->headers; l && *l; l++)
                if (strchr (*l, '\n') || strchr (*l, '\r'))
                  abort ();
            }
          hosts_free (h);
        }
      else if ((r != BERTH_E_INVALID && r != BERTH_E_NOMEM) || h != NULL)
        abort ();
      berth_error_free (err);
    }
  free (buf);
  return 0;
}
