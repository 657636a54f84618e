/* Fixture: built against a newer minor ABI than the host's (as if compiled
 * with berth 1.(N+1) headers and loaded by a 1.N daemon).  The host cannot
 * know what the newer fields mean, so it must refuse, naming both versions. */
#include "fixture.h"

FIXTURE_TRACED (newer_minor, "newer-minor")

static const struct berth_plugin_desc desc = {
  .magic = BERTH_PLUGIN_MAGIC,
  .abi_major = BERTH_ABI_MAJOR,
  .abi_minor = BERTH_ABI_MINOR + 1,
  .size = sizeof (struct berth_plugin_desc),
  .kind = BERTH_KIND_CONTENT,
  .type = FIXTURE_CONTENT,
  .id = "newer-minor",
  .version = "1.0.0",
  .init = newer_minor_init,
  .fini = newer_minor_fini,
  .ops = &fixture_content_ops,
};

static const struct berth_plugin_desc *const plugins[] = { &desc, NULL };

BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return plugins;
}
