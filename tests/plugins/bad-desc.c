/* Fixture: one shared object with four descriptors, each breaking one of the
 * structural load checks (ABI rule 3): a descriptor smaller than the 1.0
 * layout, an ops struct of size 0, an unknown kind and a NULL id.  Each is
 * refused with its own line; none is inited. */
#include <stddef.h>

#include "fixture.h"

FIXTURE_TRACED (bad_desc, "bad-desc")

static const struct berth_content_ops tiny_ops = { .size = 0 };

static const struct berth_plugin_desc too_small = {
  .magic = BERTH_PLUGIN_MAGIC,
  .abi_major = BERTH_ABI_MAJOR,
  .abi_minor = BERTH_ABI_MINOR,
  .size = offsetof (struct berth_plugin_desc, init),
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "desc-too-small",
  .version = "1.0.0",
};

static const struct berth_plugin_desc ops_too_small = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "ops-too-small",
  .version = "1.0.0",
  .init = bad_desc_init,
  .fini = bad_desc_fini,
  .ops = &tiny_ops,
};

static const struct berth_plugin_desc unknown_kind = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = 99,
  .type = "io.berth.teleporter.v1",
  .id = "unknown-kind",
  .version = "1.0.0",
  .init = bad_desc_init,
  .fini = bad_desc_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc null_id = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = NULL,
  .version = "1.0.0",
  .init = bad_desc_init,
  .fini = bad_desc_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[]
    = { &too_small, &ops_too_small, &unknown_kind, &null_id, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
