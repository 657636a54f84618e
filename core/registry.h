/* The plugin registry: every plugin berthd knows, built-in or loaded, with
 * its status.  Owned by the event-loop thread; after registry_init_all()
 * returns it is read-only except for exports/capabilities set during init,
 * so worker threads may read it.
 *
 * Flow (ARCHITECTURE.md, ABI rules 9 and 10):
 *   registry_new → registry_add_builtin (each compiled-in descriptor array)
 *   → registry_load_dir (each plugin_dirs entry, *.so in name order)
 *   → registry_init_all (disabled, topological order over requires, init,
 *     required_plugins check) → ... → registry_free (fini in reverse order;
 *     shared objects are never dlclosed).
 *
 * Every refusal or failure is one log line naming the file or plugin and
 * the reason, through the registry's log callback.
 */
#ifndef BERTH_CORE_REGISTRY_H
#define BERTH_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <berth/plugin.h>
#include <berth/content.h>
#include <berth/snapshotter.h>
#include <berth/runtime.h>
#include "error.h"

enum plugin_status
{
  PLUGIN_LOADED = 0, /* accepted, not yet initialised */
  PLUGIN_OK,
  PLUGIN_SKIP,
  PLUGIN_ERROR,
  PLUGIN_DISABLED,
};

const char *plugin_status_name (enum plugin_status s); /* "ok", "skip", "error", "disabled", "loaded" */

/* The host's record of one plugin (opaque to plugins as berth_plugin). */
struct berth_plugin
{
  struct berth_plugin_desc desc;  /* zero-padded copy: min(size, sizeof) of the plugin's */
  union                           /* zero-padded copy of desc.ops, same rule */
  {
    uint32_t size;
    struct berth_content_ops content;
    struct berth_snapshotter_ops snapshotter;
    struct berth_runtime_ops runtime;
  } ops;
  const struct berth_plugin_desc *orig; /* the plugin's own descriptor */
  char *full_name;                /* "<type>.<id>" */
  char *source;                   /* "builtin" or the .so path */
  enum plugin_status status;
  char *error;                    /* reason for skip/error, or NULL */
  void *self;                     /* from init */
  char **exports;                 /* key=value, NULL-terminated */
  char **capabilities;
  char *root, *state;             /* <root>/<full name>, <state>/<full name> */
  struct registry *reg;
  size_t init_order;              /* 1-based position in init order, 0 if never initialised */
};

typedef struct berth_plugin plugin;

/* Where the registry reports: level is enum berth_log_level; plugin may be NULL. */
typedef void (*registry_log_fn) (void *data, int level, const plugin *p, const char *msg);

/* What the host table's cfg_get answers from: set by the daemon from its
 * config (core/config); NULL means every key takes its declared default
 * (as from an empty config). */
typedef int (*registry_cfg_fn) (void *data, const plugin *p, const char *key, struct berth_cfg_value *ret);

/* For host->publish: the daemon forwards to its events exchange. */
typedef int (*registry_publish_fn) (void *data, const plugin *p, const char *ns, const char *topic,
                                    const char *const *fields);

struct plugin_registry_options
{
  const char *root;                   /* daemon root; plugin roots are <root>/<full name> */
  const char *state;                  /* daemon state dir */
  const char *address;                /* gRPC socket, passed to plugins */
  const char *const *disabled;        /* full names, NULL-terminated, may be NULL */
  const char *const *required;        /* full names, NULL-terminated, may be NULL */
  bool check_owner;                   /* refuse .so files not owned by root (true in berthd) */
  registry_log_fn log;
  registry_cfg_fn cfg;
  registry_publish_fn publish;
  void *data;                         /* passed to log/cfg/publish */
};

typedef struct registry registry;

registry *registry_new (const struct plugin_registry_options *opts);
/* fini in reverse init order; never dlclose. */
void registry_free (registry *reg);

/* Add the descriptors of a compiled-in entry point (source "builtin"). */
int registry_add_builtin (registry *reg, berth_plugin_entry_fn entry, berth_error **err);
/* Load one shared object; a refusal is logged and returned, never fatal. */
int registry_load_file (registry *reg, const char *path, berth_error **err);
/* Load every *.so of dir in name order; other files are logged and ignored.
 * A missing dir is logged at info level and is not an error. */
int registry_load_dir (registry *reg, const char *dir, berth_error **err);
/* Mark disabled plugins, order by requires (cycles → error), init each.
 * Returns an error only when a required plugin is not ok (message names it
 * and carries its error); the daemon must then stop. */
int registry_init_all (registry *reg, berth_error **err);

size_t registry_count (const registry *reg);
plugin *registry_at (const registry *reg, size_t i); /* in registration order */
plugin *registry_find (const registry *reg, const char *type, const char *id);
/* First ok plugin of a kind (e.g. the default snapshotter is looked up by id). */
plugin *registry_find_kind (const registry *reg, uint32_t kind, const char *id);
/* Whether p declared `cap` (host->add_capability) during its init. */
bool plugin_has_capability (plugin *p, const char *cap);

/* The host services table given to plugins. */
const struct berth_host *registry_host (void);

#endif
