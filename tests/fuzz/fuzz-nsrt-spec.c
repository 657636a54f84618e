/* libFuzzer target over berth-runtime's reading of a bundle's config.json
 * (plugins/runtimes/namespaces): the input is the file's bytes, read by
 * nsrt_json_read_fd from a memfd as create reads the file, then checked by
 * nsrt_spec_check (process, root, namespaces, id mappings, terminal,
 * mounts) and, when that passes, linux.seccomp is compiled by libseccomp
 * (nsrt_seccomp_prepare; never loaded).  Nothing is cloned, mounted or
 * opened by path.  Any input must pass or fail with a message; never a
 * crash, a leak or a hang. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nsrt.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_error (const struct nsrt_err *err)
{
  if (err->msg[0] == '\0')
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  int fd = memfd_create ("config.json", MFD_CLOEXEC);
  if (fd < 0)
    abort ();
  if (size && write (fd, data, size) != (ssize_t) size)
    abort ();
  if (lseek (fd, 0, SEEK_SET) != 0)
    abort ();
  struct nsrt_err err = { "" };
  json_object *config = nsrt_json_read_fd (fd, "config.json", &err);
  close (fd);
  if (config == NULL)
    {
      check_error (&err);
      return 0;
    }
  if (nsrt_spec_check (config, &err) < 0)
    check_error (&err);
  else
    {
      json_object *lnx = NULL, *sc = NULL;
      if (json_object_object_get_ex (config, "linux", &lnx) && json_object_object_get_ex (lnx, "seccomp", &sc))
        {
          struct nsrt_seccomp *s = NULL;
          if (nsrt_seccomp_prepare (sc, &s, &err) < 0)
            check_error (&err);
          nsrt_seccomp_free (s);
        }
    }
  json_object_put (config);
  return 0;
}
