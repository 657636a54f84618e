/* Fixture: a valid shared object without the berth_plugin_entry_v1 symbol
 * (e.g. an ordinary library dropped into plugin_dirs).  It exports another
 * symbol so that the object is not empty. */
#include "fixture.h"

BERTH_PUBLIC int berth_fixture_not_an_entry (void);

BERTH_PUBLIC int
berth_fixture_not_an_entry (void)
{
  return 42;
}
