/* berth plugin SDK: the plugin descriptor, the host services table and the
 * rules that keep both stable.  Read docs/plugin-author-guide.md first.
 *
 * ABI rules (ARCHITECTURE.md, "The plugin ABI"):
 *  - The entry symbol BERTH_PLUGIN_ENTRY returns a NULL-terminated array of
 *    descriptors; one shared object may carry several plugins.
 *  - Every struct that crosses the boundary starts with (or carries) its own
 *    `size`.  Growth is append-only and bumps BERTH_ABI_MINOR; anything else
 *    bumps BERTH_ABI_MAJOR and renames the entry symbol.  Retired fields
 *    become reserved_N.
 *  - The host copies min(size, sizeof) of each plugin struct into a zeroed
 *    struct of its own, so fields a plugin does not know about read as 0/NULL,
 *    and a NULL method answers BERTH_E_NOTSUP.
 *  - Output structs are allocated by the host with `size` set; a plugin writes
 *    a field only if BERTH_HAS(T, p, field).
 *  - Inputs are borrowed for the duration of the call.  Anything the host
 *    keeps is built through host builders (mounts, labels, buffers): no
 *    allocator crosses the boundary.  `fini` frees the plugin's self and must
 *    accept a half-initialised one.
 *  - Plugins need no host symbol besides the table they are given; link them
 *    with -Wl,-z,defs and -fvisibility=hidden (berth-plugin.pc does).
 *
 * History:
 *   1.0  initial ABI.
 *   1.1  berth_plugin_desc.description appended.
 *   1.2  berth_content_ops.blob_fd appended.
 *   1.3  berth_content_ops.adopt appended.
 */
#ifndef BERTH_PLUGIN_H
#define BERTH_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <berth/errors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BERTH_PLUGIN_MAGIC UINT64_C (0x4245525448504c47) /* "BERTHPLG" */
#define BERTH_ABI_MAJOR 1
#define BERTH_ABI_MINOR 3

#define BERTH_PLUGIN_ENTRY berth_plugin_entry_v1
#define BERTH_PLUGIN_ENTRY_NAME "berth_plugin_entry_v1"

#if defined(__GNUC__)
#define BERTH_PUBLIC __attribute__ ((visibility ("default")))
#define BERTH_PRINTF(a, b) __attribute__ ((format (printf, a, b)))
#else
#define BERTH_PUBLIC
#define BERTH_PRINTF(a, b)
#endif

/* True when the struct `p` of type T, whose first reachable size is p->size,
 * is large enough to hold `field`. */
#define BERTH_HAS(T, p, field) \
  ((p) != NULL && (size_t) (p)->size >= offsetof (T, field) + sizeof (((T *) 0)->field))

/* Fixed sizes for names written into host-allocated output structs. */
#define BERTH_NAME_MAX 512
#define BERTH_DIGEST_MAX 160

enum berth_plugin_kind
{
  BERTH_KIND_CONTENT = 1,     /* type io.berth.content.v1 */
  BERTH_KIND_SNAPSHOTTER = 2, /* type io.berth.snapshotter.v1 */
  BERTH_KIND_RUNTIME = 3,     /* type io.berth.runtime.v1 */
  BERTH_KIND_GRPC = 4,        /* type io.berth.grpc.v1 (reserved) */
  BERTH_KIND_CRI = 5,         /* type io.berth.cri.v1 (reserved) */
};

enum berth_log_level
{
  BERTH_LOG_ERROR = 3,
  BERTH_LOG_WARNING = 4,
  BERTH_LOG_INFO = 6,
  BERTH_LOG_DEBUG = 7,
};

/* Opaque host objects. */
typedef struct berth_plugin berth_plugin; /* the host's record of one plugin */
typedef struct berth_ctx berth_ctx;       /* one API call: namespace, lease, cancellation */
typedef struct berth_mounts berth_mounts; /* output list of mounts */
typedef struct berth_labels berth_labels; /* string map */
typedef struct berth_buf berth_buf;       /* output byte buffer */

/* Configuration schema: what a plugin accepts under
 * [plugins."<type>.<id>"].  `berthd config check` rejects unknown keys,
 * wrong types and values outside `choices`/[min,max]. */
enum berth_cfg_type
{
  BERTH_CFG_STRING = 1,
  BERTH_CFG_INT = 2,
  BERTH_CFG_BOOL = 3,
  BERTH_CFG_FLOAT = 4,
  BERTH_CFG_STRING_ARRAY = 5,
  BERTH_CFG_TABLE = 6, /* a sub-table; its keys are declared as "name.key" or "name.*.key" */
};

struct berth_config_key
{
  uint32_t size;
  uint32_t type;                  /* enum berth_cfg_type */
  const char *name;               /* dotted, relative to the plugin table; "*" matches any one key */
  const char *default_value;      /* TOML text printed by `berthd config default`, or NULL */
  const char *doc;                /* one line, printed as a comment */
  const char *const *choices;     /* STRING only: NULL-terminated allowed values, or NULL */
  int64_t min, max;               /* INT only: checked when min < max */
};

/* Value returned by host->cfg_get().  Host-owned; valid until the plugin's fini. */
struct berth_cfg_value
{
  uint32_t size;
  uint32_t type;          /* enum berth_cfg_type */
  const char *s;          /* STRING */
  int64_t i;              /* INT */
  double f;               /* FLOAT */
  int b;                  /* BOOL */
  size_t n;               /* STRING_ARRAY: count; TABLE: number of keys */
  const char *const *v;   /* STRING_ARRAY: items; TABLE: key names (NULL-terminated) */
  int is_default;         /* 1 when taken from config_keys' default_value */
};

/* Passed to init.  Host-owned; valid until fini. */
struct berth_init_ctx
{
  uint32_t size;
  berth_plugin *plugin; /* handle to pass to host functions */
  const char *root;     /* <root>/<type>.<id>, created by the host, mode 0700 */
  const char *state;    /* <state>/<type>.<id>, created by the host, mode 0711 */
  const char *address;  /* the daemon's gRPC socket */
};

/* Another plugin, as answered by host->lookup(). */
struct berth_plugin_ref
{
  uint32_t size;
  uint32_t kind;
  const void *ops; /* the host's zero-padded copy of the plugin's ops */
  void *self;
};

struct berth_host
{
  uint32_t size;
  uint32_t abi_major;
  uint32_t abi_minor;

  void (*log) (berth_plugin *p, int level, const char *fmt, ...) BERTH_PRINTF (3, 4);
  /* Fill err (if not NULL) and return code.  errnum (0 for none) is appended as strerror. */
  int (*error_set) (berth_error *err, int code, int errnum, const char *fmt, ...) BERTH_PRINTF (4, 5);
  /* Prefix err's message with "context: " and return its code. */
  int (*error_wrap) (berth_error *err, const char *fmt, ...) BERTH_PRINTF (2, 3);
  /* Look up a key of the plugin's table (dotted path).  Falls back to the
   * declared default; BERTH_E_NOTFOUND when neither exists. */
  int (*cfg_get) (berth_plugin *p, const char *key, struct berth_cfg_value *ret);
  int (*ctx_cancelled) (const berth_ctx *ctx);
  /* "namespace", "lease" or another call metadata key; NULL when absent. */
  const char *(*ctx_get) (const berth_ctx *ctx, const char *key);
  int (*mounts_add) (berth_mounts *m, const char *type, const char *source, const char *target,
                     const char *const *options);
  const char *(*labels_get) (const berth_labels *l, const char *key);
  int (*labels_set) (berth_labels *l, const char *key, const char *value); /* value NULL deletes */
  /* Iterate: *iter starts at 0; returns 0 at the end, 1 with key and value set otherwise. */
  int (*labels_next) (const berth_labels *l, size_t *iter, const char **key, const char **value);
  int (*buf_append) (berth_buf *b, const void *data, size_t len);
  /* Find another plugin that is initialised and ok.  The caller must list it in `requires`. */
  int (*lookup) (berth_plugin *p, const char *type, const char *id, struct berth_plugin_ref *ret);
  int (*set_export) (berth_plugin *p, const char *key, const char *value);
  int (*add_capability) (berth_plugin *p, const char *capability);
  /* Publish an event.  fields are NULL-terminated key, value pairs; the core
   * turns known topics (/tasks/exit, ...) into containerd's event messages. */
  int (*publish) (berth_plugin *p, const char *ns, const char *topic, const char *const *fields);
};

/* init: fill *ret_self (may stay NULL) and return 0, BERTH_E_SKIP with the
 * reason in err when the plugin cannot work on this host, or an error. */
typedef int (*berth_plugin_init_fn) (const struct berth_host *host, const struct berth_init_ctx *ictx,
                                     void **ret_self, berth_error *err);
typedef void (*berth_plugin_fini_fn) (void *self);

enum berth_plugin_flags
{
  BERTH_PLUGIN_F_NONE = 0,
};

struct berth_plugin_desc
{
  uint64_t magic;      /* BERTH_PLUGIN_MAGIC */
  uint32_t abi_major;  /* BERTH_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor;  /* BERTH_ABI_MINOR the plugin was built with */
  uint32_t size;       /* sizeof (struct berth_plugin_desc) as built */
  uint32_t kind;       /* enum berth_plugin_kind */
  const char *type;    /* "io.berth.snapshotter.v1" */
  const char *id;      /* "overlayfs" */
  const char *version; /* the plugin's own version */
  const char *const *requires;                        /* NULL-terminated "type" or "type.id", or NULL */
  const struct berth_config_key *const *config_keys;  /* NULL-terminated, or NULL */
  berth_plugin_init_fn init;
  berth_plugin_fini_fn fini;
  const void *ops;     /* kind's ops struct (struct berth_content_ops, ...), size-first */
  uint64_t flags;
  /* 1.1 */
  const char *description; /* one line for `berth plugins ls -d` */
};

/* Sizes of the 1.0 layouts: the least the host accepts. */
#define BERTH_PLUGIN_DESC_SIZE_1_0 offsetof (struct berth_plugin_desc, description)

/* Fill the version fields of a descriptor. */
#define BERTH_PLUGIN_DESC_HEADER                                                                   \
  .magic = BERTH_PLUGIN_MAGIC, .abi_major = BERTH_ABI_MAJOR, .abi_minor = BERTH_ABI_MINOR,          \
  .size = sizeof (struct berth_plugin_desc)

typedef const struct berth_plugin_desc *const *(*berth_plugin_entry_fn) (void);

#ifdef __cplusplus
}
#endif
#endif
