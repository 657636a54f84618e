/* Fixture: built against an older major ABI (0) than the host's.  A major
 * change renames the entry symbol, so this can only happen with a hand-made
 * or corrupt descriptor; the host must refuse, naming both versions. */
#include "fixture.h"

FIXTURE_TRACED (older_major, "older-major")

static const struct berth_plugin_desc desc = {
  .magic = BERTH_PLUGIN_MAGIC,
  .abi_major = 0,
  .abi_minor = BERTH_ABI_MINOR,
  .size = sizeof (struct berth_plugin_desc),
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "older-major",
  .version = "1.0.0",
  .init = older_major_init,
  .fini = older_major_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
