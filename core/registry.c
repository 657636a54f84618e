/* Plugin loader and registry: ABI checks, load order, init, the host table.
 * See core/registry.h for the contract and ARCHITECTURE.md for the rules. */
#include <config.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"
#include "config/config.h"
#include "error.h"
#include "host-objects.h"
#include "registry.h"

struct registry
{
  struct plugin_registry_options opts;
  plugin **items;
  size_t n;
  size_t ninit; /* how many inits ran; init_order counts up to it */
  pthread_mutex_t lock; /* exports/capabilities may be set from worker threads */
};

static const struct
{
  uint32_t kind;
  const char *name;
  size_t ops_min;  /* 1.0 size of the kind's ops struct */
  size_t ops_host; /* the host's size of it */
} kinds[] = {
  { BERTH_KIND_CONTENT, "content", BERTH_CONTENT_OPS_SIZE_1_0, sizeof (struct berth_content_ops) },
  { BERTH_KIND_SNAPSHOTTER, "snapshotter", BERTH_SNAPSHOTTER_OPS_SIZE_1_0, sizeof (struct berth_snapshotter_ops) },
  { BERTH_KIND_RUNTIME, "runtime", BERTH_RUNTIME_OPS_SIZE_1_0, sizeof (struct berth_runtime_ops) },
  { BERTH_KIND_GRPC, "grpc", 0, 0 },
  { BERTH_KIND_CRI, "cri", 0, 0 },
};

const char *
plugin_status_name (enum plugin_status s)
{
  switch (s)
    {
    case PLUGIN_LOADED: return "loaded";
    case PLUGIN_OK: return "ok";
    case PLUGIN_SKIP: return "skip";
    case PLUGIN_ERROR: return "error";
    case PLUGIN_DISABLED: return "disabled";
    }
  return "unknown";
}

static void
reg_log (registry *reg, int level, const plugin *p, const char *fmt, ...) BERTH_PRINTF (4, 5);

static void reg_vlog (registry *reg, int level, const plugin *p, const char *fmt, va_list ap) BERTH_PRINTF (4, 0);

static void
reg_vlog (registry *reg, int level, const plugin *p, const char *fmt, va_list ap)
{
  if (reg == NULL || reg->opts.log == NULL)
    return;
  _cleanup_free_ char *msg = NULL;
  if (vasprintf (&msg, fmt, ap) >= 0)
    reg->opts.log (reg->opts.data, level, p, msg);
}

static void
reg_log (registry *reg, int level, const plugin *p, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  reg_vlog (reg, level, p, fmt, ap);
  va_end (ap);
}

registry *
registry_new (const struct plugin_registry_options *opts)
{
  registry *reg = calloc (1, sizeof *reg);
  if (reg == NULL)
    return NULL;
  reg->opts = *opts;
  pthread_mutex_init (&reg->lock, NULL);
  return reg;
}

static void
plugin_free (plugin *p)
{
  if (p == NULL)
    return;
  free (p->full_name);
  free (p->source);
  free (p->error);
  strv_free (p->exports);
  strv_free (p->capabilities);
  free (p->root);
  free (p->state);
  free (p);
}

void
registry_free (registry *reg)
{
  if (reg == NULL)
    return;
  /* fini in reverse init order, for every plugin whose init ran (it may
   * have failed half-way: fini must accept a half-initialised self). */
  for (size_t order = reg->ninit; order > 0; order--)
    for (size_t i = 0; i < reg->n; i++)
      {
        plugin *p = reg->items[i];
        if (p->init_order == order && p->desc.fini)
          p->desc.fini (p->self);
      }
  for (size_t i = 0; i < reg->n; i++)
    plugin_free (reg->items[i]);
  free (reg->items);
  pthread_mutex_destroy (&reg->lock);
  free (reg);
}

size_t
registry_count (const registry *reg)
{
  return reg->n;
}

plugin *
registry_at (const registry *reg, size_t i)
{
  return i < reg->n ? reg->items[i] : NULL;
}

plugin *
registry_find (const registry *reg, const char *type, const char *id)
{
  for (size_t i = 0; i < reg->n; i++)
    {
      plugin *p = reg->items[i];
      if (strcmp (p->desc.type, type) == 0 && (id == NULL || strcmp (p->desc.id, id) == 0))
        return p;
    }
  return NULL;
}

static plugin *
registry_find_full (const registry *reg, const char *full_name)
{
  for (size_t i = 0; i < reg->n; i++)
    if (strcmp (reg->items[i]->full_name, full_name) == 0)
      return reg->items[i];
  return NULL;
}

plugin *
registry_find_kind (const registry *reg, uint32_t kind, const char *id)
{
  for (size_t i = 0; i < reg->n; i++)
    {
      plugin *p = reg->items[i];
      if (p->desc.kind == kind && p->status == PLUGIN_OK && (id == NULL || strcmp (p->desc.id, id) == 0))
        return p;
    }
  return NULL;
}

static const char *
kind_name (uint32_t kind)
{
  for (size_t i = 0; i < ARRAY_SIZE (kinds); i++)
    if (kinds[i].kind == kind)
      return kinds[i].name;
  return NULL;
}

static size_t
kind_index (uint32_t kind)
{
  for (size_t i = 0; i < ARRAY_SIZE (kinds); i++)
    if (kinds[i].kind == kind)
      return i;
  return (size_t) -1;
}

static int
registry_append (registry *reg, plugin *p)
{
  plugin **items = realloc (reg->items, (reg->n + 1) * sizeof *items);
  if (items == NULL)
    return BERTH_E_NOMEM;
  reg->items = items;
  reg->items[reg->n++] = p;
  p->reg = reg;
  return 0;
}

/* Log a refusal as one line and pass its code on. */
static int
refuse (registry *reg, berth_error **err, int code)
{
  reg_log (reg, BERTH_LOG_ERROR, NULL, "%s", berth_error_message (err ? *err : NULL));
  return code;
}

/* Check one descriptor against ABI rule 3 and add it.  `source` is
 * "builtin" or the file it came from.  A refusal is logged as one line and
 * returned in err. */
static int
registry_add_desc (registry *reg, const struct berth_plugin_desc *d, const char *source, berth_error **err)
{
  if (d->magic != BERTH_PLUGIN_MAGIC)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                           "plugin %s refused: bad magic 0x%016llx (expected 0x%016llx): not a berth plugin descriptor",
                           source, (unsigned long long) d->magic, (unsigned long long) BERTH_PLUGIN_MAGIC));
    }
  if (d->abi_major != BERTH_ABI_MAJOR)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                           "plugin %s refused: built for ABI %u.%u, host ABI is %u.%u (major versions differ: rebuild the plugin against this berth)",
                           source, d->abi_major, d->abi_minor, BERTH_ABI_MAJOR, BERTH_ABI_MINOR));
    }
  if (d->size < BERTH_PLUGIN_DESC_SIZE_1_0)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                           "plugin %s refused: descriptor size %u is smaller than the ABI 1.0 size %zu", source,
                           d->size, (size_t) BERTH_PLUGIN_DESC_SIZE_1_0));
    }

  /* From here on the 1.0 fields are trustworthy enough to name the plugin. */
  _cleanup_free_ plugin *p = calloc (1, sizeof *p);
  if (p == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "plugin %s", source);
  memcpy (&p->desc, d, d->size < sizeof p->desc ? d->size : sizeof p->desc);
  p->orig = d;
  const char *type = p->desc.type ? p->desc.type : "(null)";
  const char *id = p->desc.id ? p->desc.id : "(null)";

  if (d->abi_minor > BERTH_ABI_MINOR)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                           "plugin %s.%s from %s refused: built for ABI %u.%u, newer than the host's %u.%u (upgrade berth or rebuild the plugin)",
                           type, id, source, d->abi_major, d->abi_minor, BERTH_ABI_MAJOR, BERTH_ABI_MINOR));
    }
  if (p->desc.type == NULL || p->desc.id == NULL || p->desc.version == NULL || p->desc.init == NULL
      || *p->desc.type == '\0' || *p->desc.id == '\0')
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                           "plugin %s.%s from %s refused: type, id, version and init are required", type, id, source));
    }
  const char *kname = kind_name (p->desc.kind);
  if (kname == NULL)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0, "plugin %s.%s from %s refused: unknown kind %u", type, id,
                           source, p->desc.kind));
    }
  _cleanup_free_ char *prefix = NULL;
  if (asprintf (&prefix, "io.berth.%s.", kname) < 0)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "plugin %s", source);
  if (strncmp (p->desc.type, prefix, strlen (prefix)) != 0)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                           "plugin %s.%s from %s refused: kind %s needs a type starting with `%s`", type, id, source,
                           kname, prefix));
    }
  size_t k = kind_index (p->desc.kind);
  if (kinds[k].ops_min > 0)
    {
      const uint32_t *ops_size = p->desc.ops;
      if (ops_size == NULL || *ops_size < kinds[k].ops_min)
        {
          return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                               "plugin %s.%s from %s refused: %s ops size %u is smaller than the ABI 1.0 size %zu",
                               type, id, source, kname, ops_size ? *ops_size : 0, kinds[k].ops_min));
        }
      memcpy (&p->ops, p->desc.ops, *ops_size < kinds[k].ops_host ? *ops_size : kinds[k].ops_host);
    }

  if (asprintf (&p->full_name, "%s.%s", p->desc.type, p->desc.id) < 0 || (p->source = strdup (source)) == NULL)
    {
      free (p->full_name);
      return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "plugin %s", source);
    }
  plugin *other = registry_find_full (reg, p->full_name);
  if (other)
    {
      int r = berth_error_set (err, BERTH_E_EXISTS, 0,
                               "plugin %s from %s refused: duplicate id, already registered from %s", p->full_name,
                               source, other->source);
      free (p->full_name);
      free (p->source);
      return refuse (reg, err, r);
    }
  p->status = PLUGIN_LOADED;
  int r = registry_append (reg, p);
  if (r < 0)
    {
      free (p->full_name);
      free (p->source);
      return berth_error_set (err, r, ENOMEM, "plugin %s", source);
    }
  TAKE_PTR (p);
  return 0;
}

static int
registry_add_entry (registry *reg, berth_plugin_entry_fn entry, const char *source, berth_error **err)
{
  const struct berth_plugin_desc *const *list = entry ();
  if (list == NULL || list[0] == NULL)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0, "plugin file %s refused: %s returned no plugin",
                                                source, BERTH_PLUGIN_ENTRY_NAME));
    }
  int ret = 0;
  for (size_t i = 0; list[i]; i++)
    {
      _cleanup_error_ berth_error *e = NULL;
      int r = registry_add_desc (reg, list[i], source, &e);
      if (r < 0 && ret == 0)
        {
          ret = r;
          berth_error_take (err, TAKE_PTR (e));
        }
    }
  return ret;
}

int
registry_add_builtin (registry *reg, berth_plugin_entry_fn entry, berth_error **err)
{
  return registry_add_entry (reg, entry, "builtin", err);
}

int
registry_load_file (registry *reg, const char *path, berth_error **err)
{
  _cleanup_close_ int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      return refuse (reg, err, berth_error_set (err, berth_errcode_from_errno (errno), errno, "plugin file %s refused: cannot open", path));
    }
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INTERNAL, errno, "plugin file %s refused: stat", path));
    }
  if (!S_ISREG (st.st_mode))
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0, "plugin file %s refused: not a regular file", path));
    }
  if (reg->opts.check_owner && st.st_uid != 0)
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_PERMISSION, 0, "plugin file %s refused: owned by uid %u, not root", path,
                           (unsigned) st.st_uid));
    }
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    {
      return refuse (reg, err, berth_error_set (err, BERTH_E_PERMISSION, 0,
                           "plugin file %s refused: mode %04o is %s-writable (chmod go-w)", path,
                           (unsigned) (st.st_mode & 07777), (st.st_mode & S_IWOTH) ? "world" : "group"));
    }
  /* Load through the descriptor we checked, so that the file cannot be
   * swapped between the check and dlopen. */
  char fdpath[64];
  snprintf (fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
  void *h = dlopen (fdpath, RTLD_NOW | RTLD_LOCAL);
  if (h)
    /* Keep the fd open for the life of the process (like the mapping: never
     * dlclosed).  glibc matches dlopen by name first, so a closed and reused
     * /proc/self/fd/N would answer the next plugin file with this object. */
    (void) TAKE_FD (fd);
  if (h == NULL)
    {
      const char *why = dlerror ();
      /* dlerror names /proc/self/fd/N; the operator wants the file. */
      const char *colon = why ? strstr (why, ": ") : NULL;
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0, "plugin file %s refused: cannot load: %s", path,
                           colon ? colon + 2 : (why ? why : "unknown dlopen error")));
    }
  berth_plugin_entry_fn entry = (berth_plugin_entry_fn) dlsym (h, BERTH_PLUGIN_ENTRY_NAME);
  if (entry == NULL)
    {
      /* Never dlclose (ABI rule 9): constructors may have run. */
      return refuse (reg, err, berth_error_set (err, BERTH_E_INVALID, 0,
                           "plugin file %s refused: no entry symbol %s (not a berth plugin, or built for another ABI major)",
                           path, BERTH_PLUGIN_ENTRY_NAME));
    }
  return registry_add_entry (reg, entry, path, err);
}

static bool
has_suffix (const char *s, const char *suffix)
{
  size_t a = strlen (s), b = strlen (suffix);
  return a >= b && strcmp (s + a - b, suffix) == 0;
}

int
registry_load_dir (registry *reg, const char *dir, berth_error **err)
{
  struct dirent **names = NULL;
  int n = scandir (dir, &names, NULL, alphasort);
  if (n < 0)
    {
      if (errno == ENOENT)
        {
          reg_log (reg, BERTH_LOG_INFO, NULL, "plugin directory %s does not exist; no plugins loaded from it", dir);
          return 0;
        }
      int r = berth_error_set (err, berth_errcode_from_errno (errno), errno, "plugin directory %s", dir);
      reg_log (reg, BERTH_LOG_ERROR, NULL, "%s", berth_error_message (*err));
      return r;
    }
  int ret = 0;
  for (int i = 0; i < n; i++)
    {
      const char *name = names[i]->d_name;
      if (name[0] == '.')
        ;
      else if (has_suffix (name, ".la"))
        ; /* libtool's description files, installed beside every plugin */
      else if (!has_suffix (name, ".so"))
        reg_log (reg, BERTH_LOG_WARNING, NULL, "plugin directory %s: ignoring %s: not a .so file", dir, name);
      else
        {
          _cleanup_free_ char *path = NULL;
          if (asprintf (&path, "%s/%s", dir, name) < 0)
            ret = BERTH_E_NOMEM;
          else
            {
              _cleanup_error_ berth_error *e = NULL;
              int r = registry_load_file (reg, path, &e);
              if (r < 0 && ret == 0)
                {
                  ret = r;
                  berth_error_take (err, TAKE_PTR (e));
                }
            }
        }
      free (names[i]);
    }
  free (names);
  return ret;
}

static bool
strv_contains (const char *const *v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp (*v, s) == 0)
      return true;
  return false;
}

static int
plugin_fail (plugin *p, enum plugin_status status, const char *fmt, ...) BERTH_PRINTF (3, 4);

static int
plugin_fail (plugin *p, enum plugin_status status, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  free (p->error);
  if (vasprintf (&p->error, fmt, ap) < 0)
    p->error = NULL;
  va_end (ap);
  p->status = status;
  reg_log (p->reg, status == PLUGIN_ERROR ? BERTH_LOG_ERROR : BERTH_LOG_INFO, p, "plugin %s (%s): %s: %s",
           p->full_name, p->source, plugin_status_name (status), p->error ? p->error : "");
  return 0;
}

/* Does requirement `req` (a full name, a type, or "type.*") name q? */
static bool
req_matches (const char *req, const plugin *q, bool *exact)
{
  *exact = strcmp (req, q->full_name) == 0;
  if (*exact)
    return true;
  size_t tl = strlen (q->desc.type);
  if (strcmp (req, q->desc.type) == 0)
    return true;
  return strncmp (req, q->desc.type, tl) == 0 && strcmp (req + tl, ".*") == 0;
}

static bool
req_matches_any (const registry *reg, const char *req)
{
  bool exact;
  for (size_t j = 0; j < reg->n; j++)
    if (req_matches (req, reg->items[j], &exact))
      return true;
  return false;
}

static void
plugin_init (registry *reg, plugin *p)
{
  /* Exact requirements must be ok; type requirements only order. */
  for (const char *const *r = p->desc.requires; r && *r; r++)
    for (size_t j = 0; j < reg->n; j++)
      {
        plugin *q = reg->items[j];
        bool exact;
        if (q == p || !req_matches (*r, q, &exact) || !exact || q->status == PLUGIN_OK)
          continue;
        plugin_fail (p, q->status == PLUGIN_ERROR ? PLUGIN_ERROR : PLUGIN_SKIP, "required plugin %s is %s",
                     q->full_name, plugin_status_name (q->status));
        return;
      }

  if (reg->opts.root && asprintf (&p->root, "%s/%s", reg->opts.root, p->full_name) < 0)
    p->root = NULL;
  if (reg->opts.state && asprintf (&p->state, "%s/%s", reg->opts.state, p->full_name) < 0)
    p->state = NULL;
  int r;
  if (p->root && (r = fs_mkdir_p (p->root, 0700)) < 0)
    {
      plugin_fail (p, PLUGIN_ERROR, "cannot create %s: %s", p->root, strerror (-r));
      return;
    }
  if (p->state && (r = fs_mkdir_p (p->state, 0711)) < 0)
    {
      plugin_fail (p, PLUGIN_ERROR, "cannot create %s: %s", p->state, strerror (-r));
      return;
    }

  struct berth_init_ctx ictx = {
    .size = sizeof ictx, .plugin = p, .root = p->root, .state = p->state, .address = reg->opts.address,
  };
  _cleanup_error_ berth_error *e = berth_error_new ();
  void *self = NULL;
  p->init_order = ++reg->ninit;
  r = p->desc.init (registry_host (), &ictx, &self, e);
  p->self = self;
  if (r == 0)
    {
      p->status = PLUGIN_OK;
      reg_log (reg, BERTH_LOG_DEBUG, p, "plugin %s (%s): ok", p->full_name, p->source);
    }
  else if (r == BERTH_E_SKIP)
    plugin_fail (p, PLUGIN_SKIP, "%s", e->msg ? e->msg : "skipped by its init");
  else
    plugin_fail (p, PLUGIN_ERROR, "init failed: %s", e->msg ? e->msg : berth_errcode_name (r));
}

/* Find one cycle through p among the not-yet-ordered plugins and describe it. */
static bool
cycle_from (registry *reg, const bool *done, plugin *start, plugin *p, bool *seen, char **path)
{
  size_t pi = 0;
  for (; pi < reg->n && reg->items[pi] != p; pi++)
    ;
  if (seen[pi])
    return p == start;
  seen[pi] = true;
  for (const char *const *r = p->desc.requires; r && *r; r++)
    for (size_t j = 0; j < reg->n; j++)
      {
        bool exact;
        plugin *q = reg->items[j];
        if (done[j] || q == p || !req_matches (*r, q, &exact))
          continue;
        if (cycle_from (reg, done, start, q, seen, path))
          {
            char *np = NULL;
            if (asprintf (&np, "%s -> %s", p->full_name, *path ? *path : start->full_name) >= 0)
              {
                free (*path);
                *path = np;
              }
            return true;
          }
      }
  return false;
}

int
registry_init_all (registry *reg, berth_error **err)
{
  size_t n = reg->n;
  _cleanup_free_ bool *done = calloc (n + 1, sizeof (bool));
  _cleanup_free_ bool *seen = calloc (n + 1, sizeof (bool));
  if (done == NULL || seen == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "plugin registry");

  for (size_t i = 0; i < n; i++)
    {
      plugin *p = reg->items[i];
      if (p->status != PLUGIN_LOADED)
        continue;
      if (strv_contains (reg->opts.disabled, p->full_name))
        {
          p->status = PLUGIN_DISABLED;
          free (p->error);
          p->error = strdup ("listed in disabled_plugins");
          reg_log (reg, BERTH_LOG_INFO, p, "plugin %s (%s): disabled by config", p->full_name, p->source);
          continue;
        }
      for (const char *const *r = p->desc.requires; r && *r; r++)
        if (!req_matches_any (reg, *r))
          {
            plugin_fail (p, PLUGIN_ERROR, "requires %s, which is not loaded (not built in and not in plugin_dirs)", *r);
            break;
          }
    }

  /* Kahn's algorithm, stable in registration order: repeatedly take the first
   * plugin all of whose dependencies are decided. */
  for (;;)
    {
      bool progress = false;
      for (size_t i = 0; i < n; i++)
        {
          if (done[i])
            continue;
          plugin *p = reg->items[i];
          bool ready = true;
          for (const char *const *r = p->desc.requires; ready && r && *r; r++)
            for (size_t j = 0; ready && j < n; j++)
              {
                bool exact;
                if (j != i && !done[j] && req_matches (*r, reg->items[j], &exact))
                  ready = false;
              }
          if (!ready)
            continue;
          if (p->status == PLUGIN_LOADED)
            plugin_init (reg, p);
          done[i] = true;
          progress = true;
          break;
        }
      if (!progress)
        break;
    }

  /* What is left is in a cycle or depends on one. */
  for (size_t i = 0; i < n; i++)
    {
      if (done[i])
        continue;
      plugin *p = reg->items[i];
      _cleanup_free_ char *path = NULL;
      memset (seen, 0, n * sizeof (bool));
      if (cycle_from (reg, done, p, p, seen, &path))
        plugin_fail (p, PLUGIN_ERROR, "dependency cycle: %s", path ? path : p->full_name);
      else
        plugin_fail (p, PLUGIN_ERROR, "depends on a plugin in a dependency cycle");
    }

  for (const char *const *r = reg->opts.required; r && *r; r++)
    {
      plugin *p = registry_find_full (reg, *r);
      if (p == NULL)
        return berth_error_set (err, BERTH_E_PRECONDITION, 0,
                                "required plugin %s is not loaded (not built in, not in plugin_dirs, or its file was refused: see above)", *r);
      if (p->status != PLUGIN_OK)
        return berth_error_set (err, BERTH_E_PRECONDITION, 0, "required plugin %s (%s) is %s: %s", *r, p->source,
                                plugin_status_name (p->status), p->error ? p->error : "no reason given");
    }
  return 0;
}

/* ---- the host table ---------------------------------------------------- */

static void
host_log (berth_plugin *p, int level, const char *fmt, ...)
{
  if (p == NULL)
    return;
  va_list ap;
  va_start (ap, fmt);
  reg_vlog (p->reg, level, p, fmt, ap);
  va_end (ap);
}

static struct berth_config *defaults;
static pthread_once_t defaults_once = PTHREAD_ONCE_INIT;

static void
defaults_init (void)
{
  berth_error *err = NULL;
  if (config_new_default (&defaults, &err) < 0)
    defaults = NULL;
  berth_error_free (err);
}

static int
host_cfg_get (berth_plugin *p, const char *key, struct berth_cfg_value *ret)
{
  if (p == NULL || key == NULL || ret == NULL || ret->size < offsetof (struct berth_cfg_value, is_default))
    return BERTH_E_INVALID;
  struct berth_cfg_value v = { .size = sizeof v };
  int r;
  if (p->reg->opts.cfg)
    r = p->reg->opts.cfg (p->reg->opts.data, p, key, &v);
  else
    {
      /* No daemon config: every key takes its declared default. */
      pthread_once (&defaults_once, defaults_init);
      if (defaults == NULL)
        return BERTH_E_NOMEM;
      r = config_plugin_get (defaults, p->full_name, p->desc.config_keys, key, &v);
    }
  if (r < 0)
    return r;
  uint32_t size = ret->size;
  memcpy (ret, &v, size < sizeof v ? size : sizeof v);
  ret->size = size;
  return 0;
}

static int
host_ctx_cancelled (const berth_ctx *ctx)
{
  return ctx_is_cancelled (ctx);
}

static int
host_lookup (berth_plugin *p, const char *type, const char *id, struct berth_plugin_ref *ret)
{
  if (p == NULL || type == NULL || ret == NULL || ret->size < sizeof (uint32_t))
    return BERTH_E_INVALID;
  plugin *q = registry_find (p->reg, type, id);
  if (q == NULL || q->status != PLUGIN_OK)
    return BERTH_E_NOTFOUND;
  bool listed = false, exact;
  for (const char *const *r = p->desc.requires; !listed && r && *r; r++)
    listed = req_matches (*r, q, &exact);
  if (!listed)
    return BERTH_E_PRECONDITION; /* init order is only guaranteed for what requires names */
  struct berth_plugin_ref v = { .size = sizeof v, .kind = q->desc.kind, .ops = &q->ops, .self = q->self };
  uint32_t size = ret->size;
  memcpy (ret, &v, size < sizeof v ? size : sizeof v);
  ret->size = size;
  return 0;
}

static int
strv_push (char ***v, const char *s)
{
  size_t n = 0;
  for (char **i = *v; i && *i; i++)
    n++;
  char *copy = strdup (s);
  char **nv = copy ? realloc (*v, (n + 2) * sizeof (char *)) : NULL;
  if (nv == NULL)
    {
      free (copy);
      return BERTH_E_NOMEM;
    }
  nv[n] = copy;
  nv[n + 1] = NULL;
  *v = nv;
  return 0;
}

static int
host_set_export (berth_plugin *p, const char *key, const char *value)
{
  if (p == NULL || key == NULL || *key == '\0' || strchr (key, '=') || value == NULL)
    return BERTH_E_INVALID;
  _cleanup_free_ char *kv = NULL;
  if (asprintf (&kv, "%s=%s", key, value) < 0)
    return BERTH_E_NOMEM;
  pthread_mutex_lock (&p->reg->lock);
  size_t kl = strlen (key);
  int r = 1;
  for (char **i = p->exports; i && *i; i++)
    if (strncmp (*i, key, kl) == 0 && (*i)[kl] == '=')
      {
        free (*i);
        *i = TAKE_PTR (kv);
        r = 0;
        break;
      }
  if (r)
    r = strv_push (&p->exports, kv);
  pthread_mutex_unlock (&p->reg->lock);
  return r;
}

bool
plugin_has_capability (plugin *p, const char *cap)
{
  pthread_mutex_lock (&p->reg->lock);
  bool r = strv_contains ((const char *const *) p->capabilities, cap);
  pthread_mutex_unlock (&p->reg->lock);
  return r;
}

static int
host_add_capability (berth_plugin *p, const char *cap)
{
  if (p == NULL || cap == NULL || *cap == '\0')
    return BERTH_E_INVALID;
  pthread_mutex_lock (&p->reg->lock);
  int r = strv_contains ((const char *const *) p->capabilities, cap) ? 0 : strv_push (&p->capabilities, cap);
  pthread_mutex_unlock (&p->reg->lock);
  return r;
}

static int
host_publish (berth_plugin *p, const char *ns, const char *topic, const char *const *fields)
{
  if (p == NULL || topic == NULL || topic[0] != '/')
    return BERTH_E_INVALID;
  if (p->reg->opts.publish == NULL)
    return 0;
  return p->reg->opts.publish (p->reg->opts.data, p, ns, topic, fields);
}

static const struct berth_host host_table = {
  .size = sizeof (struct berth_host),
  .abi_major = BERTH_ABI_MAJOR,
  .abi_minor = BERTH_ABI_MINOR,
  .log = host_log,
  .error_set = berth_error_set_into,
  .error_wrap = berth_error_wrap_into,
  .cfg_get = host_cfg_get,
  .ctx_cancelled = host_ctx_cancelled,
  .ctx_get = ctx_get,
  .mounts_add = mounts_add,
  .labels_get = labels_get,
  .labels_set = labels_set,
  .labels_next = labels_next,
  .buf_append = buf_append,
  .lookup = host_lookup,
  .set_export = host_set_export,
  .add_capability = host_add_capability,
  .publish = host_publish,
};

const struct berth_host *
registry_host (void)
{
  return &host_table;
}
