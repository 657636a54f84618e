/* libFuzzer target over the TOML parser and config loader: any input must
 * either parse (and then serialise to JSON and load as a config without
 * crashing) or fail with BERTH_E_INVALID and a positioned message. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config/config.h"
#include "core/config/toml.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct toml_value *doc = NULL;
  struct toml_error terr;
  berth_error *err = NULL;
  int r = toml_parse ((const char *) data, size, &doc, &terr, &err);
  if (r == 0)
    {
      char *json = toml_to_tagged_json (doc);
      if (json == NULL)
        abort ();
      free (json);
      toml_free (doc);
    }
  else
    {
      if (r != BERTH_E_INVALID || doc != NULL || terr.pos.line == 0 || terr.pos.col == 0
          || strncmp (berth_error_message (err), "line ", 5) != 0)
        abort ();
    }
  berth_error_free (err);
  err = NULL;

  /* The config layer on the same bytes (NUL-terminated copy). */
  char *text = malloc (size + 1);
  if (text == NULL)
    return 0;
  memcpy (text, data, size);
  text[size] = '\0';
  struct berth_config *cfg = NULL;
  if (config_load_string (text, "fuzz.toml", &cfg, &err) == 0)
    {
      static const struct berth_config_key k_a = { .size = sizeof (struct berth_config_key),
                                                   .type = BERTH_CFG_STRING, .name = "a", .default_value = "\"x\"" };
      static const struct berth_config_key k_t = { .size = sizeof (struct berth_config_key),
                                                   .type = BERTH_CFG_TABLE, .name = "t" };
      static const struct berth_config_key k_w = { .size = sizeof (struct berth_config_key),
                                                   .type = BERTH_CFG_INT, .name = "t.*.n", .min = 0, .max = 9 };
      static const struct berth_config_key *const keys[] = { &k_a, &k_t, &k_w, NULL };
      static const struct config_plugin_schema schemas[] = { { "p.x", keys } };
      char **problems = NULL;
      if (config_check (cfg, schemas, 1, &problems) >= 0)
        {
          for (char **p = problems; p && *p; p++)
            free (*p);
          free (problems);
        }
      struct berth_cfg_value v;
      config_plugin_get (cfg, "p.x", keys, "a", &v);
      config_plugin_get (cfg, "p.x", keys, "t", &v);
      config_free (cfg);
    }
  berth_error_free (err);
  free (text);
  return 0;
}
