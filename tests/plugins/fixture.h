/* Shared by the plugin-ABI fixtures in tests/plugins/ (all but frozen-1.0.c,
 * which must see only the frozen 1.0 headers).
 *
 * Each fixture is a tiny shared object that breaks exactly one load or init
 * rule of the ABI (ARCHITECTURE.md, "The plugin ABI"); tests/unit/
 * test-registry.c loads them and checks the one log line and the status the
 * registry gives each.  Plugins that init successfully log "init <id>" and,
 * from fini, "fini <id>", so the test can check the order of both.
 */
#ifndef BERTH_TEST_FIXTURE_H
#define BERTH_TEST_FIXTURE_H

#include <stdlib.h>

#include <berth/content.h>
#include <berth/plugin.h>
#include <berth/runtime.h>
#include <berth/snapshotter.h>

#define FIXTURE_CONTENT "io.berth.content.v1"
#define FIXTURE_SNAPSHOTTER "io.berth.snapshotter.v1"
#define FIXTURE_RUNTIME "io.berth.runtime.v1"

/* An ops struct of each kind with no methods: every call answers NOTSUP. */
static const struct berth_content_ops fixture_content_ops __attribute__ ((unused))
= { .size = sizeof (struct berth_content_ops) };
static const struct berth_snapshotter_ops fixture_snapshotter_ops __attribute__ ((unused))
= { .size = sizeof (struct berth_snapshotter_ops) };
static const struct berth_runtime_ops fixture_runtime_ops __attribute__ ((unused))
= { .size = sizeof (struct berth_runtime_ops) };

/* What a traced plugin keeps as self, so that fini can log too. */
struct fixture_self
{
  const struct berth_host *host;
  berth_plugin *plugin;
  const char *id;
};

/* init for plugins that must succeed: logs "init <id>". */
static inline int
fixture_traced_init (const struct berth_host *host, const struct berth_init_ctx *ictx, const char *id,
                     void **ret_self)
{
  struct fixture_self *s = calloc (1, sizeof *s);
  if (s == NULL)
    return BERTH_E_NOMEM;
  s->host = host;
  s->plugin = ictx->plugin;
  s->id = id;
  host->log (ictx->plugin, BERTH_LOG_INFO, "init %s", id);
  *ret_self = s;
  return 0;
}

/* fini for traced plugins: logs "fini <id>"; accepts a NULL self. */
static inline void
fixture_traced_fini (void *self)
{
  struct fixture_self *s = self;
  if (s == NULL)
    return;
  s->host->log (s->plugin, BERTH_LOG_INFO, "fini %s", s->id);
  free (s);
}

/* Declare a traced plugin: FIXTURE_TRACED (name, id) defines name_init and
 * name_fini for use in a descriptor. */
#define FIXTURE_TRACED(name, id_)                                                                  \
  static int name##_init (const struct berth_host *host, const struct berth_init_ctx *ictx,        \
                          void **ret_self, berth_error *err)                                       \
  {                                                                                                \
    (void) err;                                                                                    \
    return fixture_traced_init (host, ictx, id_, ret_self);                                        \
  }                                                                                                \
  static void name##_fini (void *self) { fixture_traced_fini (self); }

#endif
