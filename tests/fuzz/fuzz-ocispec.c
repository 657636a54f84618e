/* libFuzzer target over OCI spec generation (lib/ocispec): the first byte
 * picks the input, the rest is JSON.
 *   even: a Docker-format seccomp profile, converted for Docker's default
 *         capabilities on amd64 and arm64;
 *   odd:  an image config, turned into a spec with the run flags fixed.
 * Any input must give a well-formed result or an error with a message;
 * never a crash, a leak or a hang. */
#include <config.h>

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ocispec.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static json_object *
default_caps (void)
{
  static const char *const caps[] = { "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                                      "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                                      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", NULL };
  json_object *a = json_object_new_array ();
  for (size_t i = 0; caps[i]; i++)
    json_object_array_add (a, json_object_new_string (caps[i]));
  return a;
}

static void
check_error (berth_error *err)
{
  if (err == NULL || berth_error_message (err) == NULL || berth_error_message (err)[0] == '\0')
    abort ();
  berth_error_free (err);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  json_tokener *tok = json_tokener_new_ex (64);
  if (tok == NULL)
    return 0;
  json_object *doc = json_tokener_parse_ex (tok, (const char *)data + 1, (int)(size - 1));
  json_tokener_free (tok);
  if (doc == NULL)
    return 0;
  berth_error *err = NULL;
  if ((data[0] & 1) == 0)
    {
      json_object *caps = default_caps ();
      static const char *const arches[] = { "amd64", "arm64" };
      for (size_t i = 0; i < 2; i++)
        {
          json_object *sc = ocispec_seccomp_convert (doc, caps, arches[i], "6.1", &err);
          if (sc != NULL)
            {
              if (!json_object_is_type (sc, json_type_object))
                abort ();
              json_object_put (sc);
            }
          else if (err != NULL)
            check_error (err);
          err = NULL;
        }
      json_object_put (caps);
    }
  else
    {
      static const char *const env[] = { "A=1", NULL };
      struct ocispec_opts o = { 0 };
      o.seccomp = "unconfined"; /* the profile is the other half's input */
      o.env = env;
      o.user = (data[0] & 2) ? "app:staff" : NULL;
      o.pids_limit = 32;
      json_object *spec = ocispec_generate (doc, &o, &err);
      if (spec != NULL)
        {
          json_object *proc = NULL, *args = NULL;
          if (!json_object_object_get_ex (spec, "process", &proc)
              || !json_object_object_get_ex (proc, "args", &args) || json_object_array_length (args) == 0)
            abort ();
          json_object_put (spec);
        }
      else
        check_error (err);
    }
  json_object_put (doc);
  return 0;
}
