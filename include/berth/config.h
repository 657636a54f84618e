/* berth plugin SDK: helpers to declare a plugin's config_keys schema.
 *
 *   static const struct berth_config_key k_root =
 *     BERTH_CFG_KEY (BERTH_CFG_STRING, "root_path", "\"\"", "where snapshots live");
 *   static const struct berth_config_key *const keys[] = { &k_root, NULL };
 */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <berth/plugin.h>

#define BERTH_CFG_KEY(type_, name_, default_, doc_)                                              \
  { .size = sizeof (struct berth_config_key), .type = (type_), .name = (name_),                  \
    .default_value = (default_), .doc = (doc_) }

#define BERTH_CFG_KEY_CHOICES(name_, default_, doc_, choices_)                                    \
  { .size = sizeof (struct berth_config_key), .type = BERTH_CFG_STRING, .name = (name_),         \
    .default_value = (default_), .doc = (doc_), .choices = (choices_) }

#define BERTH_CFG_KEY_RANGE(name_, default_, doc_, min_, max_)                                    \
  { .size = sizeof (struct berth_config_key), .type = BERTH_CFG_INT, .name = (name_),            \
    .default_value = (default_), .doc = (doc_), .min = (min_), .max = (max_) }

#endif
