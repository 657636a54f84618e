/* Fixture: a descriptor whose magic is not BERTH_PLUGIN_MAGIC (e.g. a
 * stray .so or memory that is not a descriptor).  Must be refused at load. */
#include "fixture.h"

FIXTURE_TRACED (bad_magic, "bad-magic")

static const struct berth_plugin_desc desc = {
  .magic = UINT64_C (0x4e4f54415045474c), /* "NOTAPEGL" */
  .abi_major = BERTH_ABI_MAJOR,
  .abi_minor = BERTH_ABI_MINOR,
  .size = sizeof (struct berth_plugin_desc),
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "bad-magic",
  .version = "1.0.0",
  .init = bad_magic_init,
  .fini = bad_magic_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
