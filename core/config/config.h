/* berthd's configuration: config.toml read into struct berth_config, the
 * [plugins."<type>.<id>"] tables checked against each plugin's config_keys
 * schema, and the commented default file.
 *
 * Include as "core/config/config.h" (<config.h> is autoconf's).
 *
 * Ownership: a struct berth_config is allocated by config_new_default /
 * config_load_file / config_load_string and freed by config_free; every
 * string and array in it belongs to it.  Values handed out by
 * config_plugin_get stay valid until config_free.  Reading a loaded config
 * from several threads is safe (config_plugin_get serialises its lazily
 * built caches internally).
 */
#ifndef BERTH_CORE_CONFIG_H
#define BERTH_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <berth/plugin.h>

#include "error.h"

/* The schema version this berthd reads and writes. */
#define BERTH_CONFIG_VERSION 1

#ifdef SYSCONFDIR
#define BERTH_CONFIG_DEFAULT_PATH SYSCONFDIR "/berth/config.toml"
#else
#define BERTH_CONFIG_DEFAULT_PATH "/etc/berth/config.toml"
#endif

#ifdef PLUGINDIR
#define BERTH_CONFIG_DEFAULT_PLUGIN_DIR PLUGINDIR
#else
#define BERTH_CONFIG_DEFAULT_PLUGIN_DIR "/usr/local/lib/berth/plugins"
#endif

struct toml_value; /* core/config/toml.h */
struct config_cache;

struct berth_config
{
  char *path;                /* file (or name) it was read from; NULL for pure defaults */
  int64_t version;           /* BERTH_CONFIG_VERSION */
  char *root;                /* "/var/lib/berth": persistent data */
  char *state;               /* "/run/berth": runtime state */
  char **plugin_dirs;        /* NULL-terminated; [BERTH_CONFIG_DEFAULT_PLUGIN_DIR] */
  char **disabled_plugins;   /* NULL-terminated full names ("io.berth.snapshotter.v1.native"); empty */
  char **required_plugins;   /* NULL-terminated full names; empty */
  struct
  {
    char *address;                 /* "/run/berth/berth.sock" */
    int64_t uid, gid;              /* socket owner: 0, 0 */
    int64_t max_recv_message_size; /* bytes: 16 MiB */
    int64_t max_connections;       /* 1024 */
    int64_t max_concurrent_streams; /* per connection: 128 */
    int64_t max_connection_buffer; /* bytes of unfinished requests per connection: 32 MiB */
    int64_t request_timeout;       /* seconds to receive a request, frame or header list: 30 */
    int64_t idle_timeout;          /* seconds before a connection without calls is closed: 300; 0 never */
  } grpc;
  struct
  {
    char *config_path;                /* "/etc/berth/certs.d": hosts.toml per registry */
    int64_t max_concurrent_downloads; /* 3 */
    int discard_unpacked_layers;      /* 0: keep layer blobs after unpacking (push/export need them) */
  } registry;
  struct
  {
    char *level; /* "debug", "info", "warn", "error": "info" */
  } debug;
  struct
  {
    /* The runtime plugin ("<type>.<id>") that containerd's runtime names
     * (io.containerd.runc.v2, .runc.v1, .runtime.v1.linux) map to:
     * "io.berth.runtime.v1.namespaces". */
    char *default_runtime;
    /* Deadline of the state calls behind Tasks.List/Get, in ms: 2000.  A
     * shim that does not answer in time is reported UNKNOWN. */
    int64_t state_timeout_ms;
  } runtime;

  /* The parsed document (NULL for pure defaults) and its [plugins] table
   * (NULL when absent).  Read-only; see core/config/toml.h. */
  struct toml_value *doc;
  const struct toml_value *plugins;

  struct config_cache *cache; /* private to config.c */
};

/* One loaded plugin's schema, for config_check and config_default_text. */
struct config_plugin_schema
{
  const char *full_name;                    /* "<type>.<id>", e.g. "io.berth.snapshotter.v1.overlayfs" */
  const struct berth_config_key *const *keys; /* NULL-terminated, or NULL for "accepts no keys" */
};

/* A config holding only the defaults above. */
int config_new_default (struct berth_config **ret, berth_error **err);

/* Read and parse `path`, check the top-level keys and their types, and fill
 * *ret (defaults for whatever the file leaves out).  A file that does not
 * exist answers BERTH_E_NOTFOUND (*ret untouched: the daemon then uses
 * config_new_default and says so).  A syntax error, an unknown top-level key,
 * a wrong type or a version > BERTH_CONFIG_VERSION answers BERTH_E_INVALID
 * with "FILE:LINE:COL: ..." in err. */
int config_load_file (const char *path, struct berth_config **ret, berth_error **err);

/* The same on text in memory; `name` stands for the file name in messages
 * and in cfg->path (NULL: "<string>"). */
int config_load_string (const char *text, const char *name, struct berth_config **ret, berth_error **err);

void config_free (struct berth_config *cfg);
static inline void
config_freep (struct berth_config **cfg)
{
  config_free (*cfg);
  *cfg = NULL;
}
#define _cleanup_config_ __attribute__ ((cleanup (config_freep)))

/* Validate every [plugins."X"] table against the schemas of the known
 * plugins.  Each problem is one line in *ret_problems (NULL-terminated,
 * free with strv_free; may be NULL when not wanted), such as
 *   config.toml:12:3: unknown key `plugins."io.berth.runtime.v1.oci".foo`
 *   config.toml:9:15: wrong type for `plugins."io.berth.x.y".size`: expected integer, found string
 *   config.toml:9:15: bad value for `plugins."io.berth.x.y".mode`: must be one of a, b
 *   config.toml:7:1: unknown plugin `io.berth.x.z`
 * Returns the number of problems (0: all good), or BERTH_E_NOMEM. */
int config_check (const struct berth_config *cfg, const struct config_plugin_schema *schemas, size_t n,
                  char ***ret_problems);

/* The value of `key` (dotted, relative to the plugin table) in
 * [plugins."full_name"], or else the declared default from `keys` (parsed as
 * TOML) with is_default = 1, or BERTH_E_NOTFOUND.  ret->type is the declared
 * type when the key is declared (an INT value is accepted for FLOAT), else
 * the value's own; a value of another type answers BERTH_E_INVALID.  TABLE
 * values give their key names in v/n.  ret->size is set; pointers stay valid
 * until config_free (cfg). */
int config_plugin_get (const struct berth_config *cfg, const char *full_name,
                       const struct berth_config_key *const *keys, const char *key,
                       struct berth_cfg_value *ret);

/* A complete, commented config.toml: every top-level key with what it does,
 * then one [plugins."<full_name>"] table per schema with each key's doc and
 * default.  It loads back with config_load_string and passes config_check
 * with no problems.  Returns a malloc'd string, NULL when out of memory. */
char *config_default_text (const struct config_plugin_schema *schemas, size_t n);

#endif
