/* berthd's configuration; see config.h for the contract.
 *
 * Loading checks only what berthd itself reads (the top-level keys and the
 * [grpc], [registry] and [debug] tables) and stops at the first problem: a
 * daemon must not start on a config it misreads.  The [plugins] tables are
 * checked separately by config_check, which needs the plugins' schemas and
 * reports every problem, one per line, for `berthd config check`.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "core/config/config.h"
#include "core/config/toml.h"

/* Refuse config files larger than this: a config is a few KiB. */
#define CONFIG_MAX_SIZE (16u << 20)

/* Built lazily by config_plugin_get: parsed defaults and the string
 * arrays handed out in berth_cfg_value.v. */
struct cache_entry
{
  struct cache_entry *next;
  const void *owner;        /* the toml_value the strv was made for, or NULL */
  char *id;                 /* "full_name\nkey" for a parsed default */
  struct toml_value *doc;   /* parsed default: { v = <default> } */
  const char **strv;
};

struct config_cache
{
  pthread_mutex_t lock;
  struct cache_entry *entries;
};

static const char *const log_levels[] = { "debug", "info", "warn", "warning", "error", NULL };

/* ------------------------------------------------------------------ */

static char **
strv_new (const char *const *items)
{
  size_t n = 0;
  while (items && items[n])
    n++;
  char **v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++)
    if ((v[i] = strdup (items[i])) == NULL)
      {
        strv_free (v);
        return NULL;
      }
  return v;
}

static void
cache_free (struct config_cache *c)
{
  if (c == NULL)
    return;
  for (struct cache_entry *e = c->entries, *next; e; e = next)
    {
      next = e->next;
      free (e->id);
      toml_free (e->doc);
      free (e->strv);
      free (e);
    }
  pthread_mutex_destroy (&c->lock);
  free (c);
}

void
config_free (struct berth_config *cfg)
{
  if (cfg == NULL)
    return;
  free (cfg->path);
  free (cfg->root);
  free (cfg->state);
  strv_free (cfg->plugin_dirs);
  strv_free (cfg->disabled_plugins);
  strv_free (cfg->required_plugins);
  free (cfg->grpc.address);
  free (cfg->registry.config_path);
  free (cfg->debug.level);
  free (cfg->runtime.default_runtime);
  toml_free (cfg->doc);
  cache_free (cfg->cache);
  free (cfg);
}

int
config_new_default (struct berth_config **ret, berth_error **err)
{
  _cleanup_config_ struct berth_config *cfg = calloc (1, sizeof *cfg);
  if (cfg == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "config");
  cfg->cache = calloc (1, sizeof *cfg->cache);
  if (cfg->cache == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "config");
  pthread_mutex_init (&cfg->cache->lock, NULL);

  const char *const dirs[] = { BERTH_CONFIG_DEFAULT_PLUGIN_DIR, NULL };
  cfg->version = BERTH_CONFIG_VERSION;
  cfg->root = strdup ("/var/lib/berth");
  cfg->state = strdup ("/run/berth");
  cfg->plugin_dirs = strv_new (dirs);
  cfg->disabled_plugins = strv_new (NULL);
  cfg->required_plugins = strv_new (NULL);
  cfg->grpc.address = strdup ("/run/berth/berth.sock");
  cfg->grpc.uid = 0;
  cfg->grpc.gid = 0;
  cfg->grpc.max_recv_message_size = 16 << 20;
  cfg->grpc.max_connections = 1024;
  cfg->grpc.max_concurrent_streams = 128;
  cfg->grpc.max_connection_buffer = 32 << 20;
  cfg->grpc.request_timeout = 30;
  cfg->grpc.idle_timeout = 300;
  cfg->registry.config_path = strdup ("/etc/berth/certs.d");
  cfg->registry.max_concurrent_downloads = 3;
  cfg->debug.level = strdup ("info");
  cfg->runtime.default_runtime = strdup ("io.berth.runtime.v1.namespaces");
  cfg->runtime.state_timeout_ms = 2000;
  if (!cfg->runtime.default_runtime || !cfg->root || !cfg->state || !cfg->plugin_dirs || !cfg->disabled_plugins || !cfg->required_plugins
      || !cfg->grpc.address || !cfg->registry.config_path || !cfg->debug.level)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "config");
  *ret = TAKE_PTR (cfg);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Loading: berthd's own keys */

struct loader
{
  const char *name;
  struct berth_config *cfg;
  berth_error **err;
};

static int BERTH_PRINTF (3, 4)
load_fail (struct loader *l, struct toml_pos pos, const char *fmt, ...)
{
  _cleanup_free_ char *msg = NULL;
  va_list ap;
  va_start (ap, fmt);
  int r = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (r < 0)
    return berth_error_set (l->err, BERTH_E_NOMEM, ENOMEM, "%s", l->name);
  return berth_error_set (l->err, BERTH_E_INVALID, 0, "%s:%u:%u: %s", l->name, pos.line, pos.col, msg);
}

static int
want_type (struct loader *l, const char *path, const struct toml_value *v, enum toml_type type,
           const char *type_name)
{
  if (v->type == type)
    return 0;
  return load_fail (l, v->pos, "wrong type for `%s`: expected %s, found %s", path, type_name, toml_type_name (v));
}

static int
load_string (struct loader *l, const char *path, const struct toml_value *v, bool absolute, char **dst)
{
  int r = want_type (l, path, v, TOML_STRING, "string");
  if (r < 0)
    return r;
  if (strlen (v->u.str.s) != v->u.str.len)
    return load_fail (l, v->pos, "bad value for `%s`: contains a NUL character", path);
  if (absolute && v->u.str.s[0] != '/')
    return load_fail (l, v->pos, "bad value for `%s`: must be an absolute path", path);
  if (v->u.str.len == 0)
    return load_fail (l, v->pos, "bad value for `%s`: must not be empty", path);
  char *s = strdup (v->u.str.s);
  if (s == NULL)
    return berth_error_set (l->err, BERTH_E_NOMEM, ENOMEM, "%s", l->name);
  free (*dst);
  *dst = s;
  return 0;
}

static int
load_strv (struct loader *l, const char *path, const struct toml_value *v, char ***dst)
{
  int r = want_type (l, path, v, TOML_ARRAY, "array of strings");
  if (r < 0)
    return r;
  _cleanup_strv_ char **out = calloc (v->u.arr.n + 1, sizeof *out);
  if (out == NULL)
    return berth_error_set (l->err, BERTH_E_NOMEM, ENOMEM, "%s", l->name);
  for (size_t i = 0; i < v->u.arr.n; i++)
    {
      const struct toml_value *item = v->u.arr.items[i];
      if (item->type != TOML_STRING)
        return load_fail (l, item->pos, "wrong type for `%s[%zu]`: expected string, found %s", path, i,
                          toml_type_name (item));
      if (strlen (item->u.str.s) != item->u.str.len || item->u.str.len == 0)
        return load_fail (l, item->pos, "bad value for `%s[%zu]`: must be a non-empty string without NUL", path, i);
      if ((out[i] = strdup (item->u.str.s)) == NULL)
        return berth_error_set (l->err, BERTH_E_NOMEM, ENOMEM, "%s", l->name);
    }
  strv_free (*dst);
  *dst = TAKE_PTR (out);
  return 0;
}

static int
load_int (struct loader *l, const char *path, const struct toml_value *v, int64_t min, int64_t max, int64_t *dst)
{
  int r = want_type (l, path, v, TOML_INTEGER, "integer");
  if (r < 0)
    return r;
  if (v->u.i < min || v->u.i > max)
    return load_fail (l, v->pos, "bad value for `%s`: must be between %lld and %lld, found %lld", path,
                      (long long) min, (long long) max, (long long) v->u.i);
  *dst = v->u.i;
  return 0;
}

static int
load_grpc (struct loader *l, const struct toml_value *t)
{
  for (size_t i = 0; i < t->u.tab.n; i++)
    {
      const struct toml_kv *kv = &t->u.tab.items[i];
      const char *k = kv->key;
      int r;
      if (strcmp (k, "address") == 0)
        r = load_string (l, "grpc.address", kv->value, true, &l->cfg->grpc.address);
      else if (strcmp (k, "uid") == 0)
        r = load_int (l, "grpc.uid", kv->value, 0, UINT32_MAX - 1, &l->cfg->grpc.uid);
      else if (strcmp (k, "gid") == 0)
        r = load_int (l, "grpc.gid", kv->value, 0, UINT32_MAX - 1, &l->cfg->grpc.gid);
      else if (strcmp (k, "max_recv_message_size") == 0)
        r = load_int (l, "grpc.max_recv_message_size", kv->value, 1024, INT32_MAX,
                      &l->cfg->grpc.max_recv_message_size);
      else if (strcmp (k, "max_connections") == 0)
        r = load_int (l, "grpc.max_connections", kv->value, 1, 1 << 20, &l->cfg->grpc.max_connections);
      else if (strcmp (k, "max_concurrent_streams") == 0)
        r = load_int (l, "grpc.max_concurrent_streams", kv->value, 1, 1 << 16,
                      &l->cfg->grpc.max_concurrent_streams);
      else if (strcmp (k, "max_connection_buffer") == 0)
        r = load_int (l, "grpc.max_connection_buffer", kv->value, 64 << 10, INT64_C (1) << 40,
                      &l->cfg->grpc.max_connection_buffer);
      else if (strcmp (k, "request_timeout") == 0)
        r = load_int (l, "grpc.request_timeout", kv->value, 1, 86400, &l->cfg->grpc.request_timeout);
      else if (strcmp (k, "idle_timeout") == 0)
        r = load_int (l, "grpc.idle_timeout", kv->value, 0, 86400 * 30, &l->cfg->grpc.idle_timeout);
      else
        r = load_fail (l, kv->pos, "unknown key `grpc.%s`", k);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
load_registry (struct loader *l, const struct toml_value *t)
{
  for (size_t i = 0; i < t->u.tab.n; i++)
    {
      const struct toml_kv *kv = &t->u.tab.items[i];
      int r;
      if (strcmp (kv->key, "config_path") == 0)
        r = load_string (l, "registry.config_path", kv->value, true, &l->cfg->registry.config_path);
      else if (strcmp (kv->key, "max_concurrent_downloads") == 0)
        r = load_int (l, "registry.max_concurrent_downloads", kv->value, 1, 1024,
                      &l->cfg->registry.max_concurrent_downloads);
      else if (strcmp (kv->key, "discard_unpacked_layers") == 0)
        {
          if (kv->value->type != TOML_BOOL)
            r = load_fail (l, kv->value->pos, "wrong type for `registry.discard_unpacked_layers`: expected boolean");
          else
            {
              l->cfg->registry.discard_unpacked_layers = kv->value->u.b;
              r = 0;
            }
        }
      else
        r = load_fail (l, kv->pos, "unknown key `registry.%s`", kv->key);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
load_debug (struct loader *l, const struct toml_value *t)
{
  for (size_t i = 0; i < t->u.tab.n; i++)
    {
      const struct toml_kv *kv = &t->u.tab.items[i];
      if (strcmp (kv->key, "level") != 0)
        return load_fail (l, kv->pos, "unknown key `debug.%s`", kv->key);
      int r = load_string (l, "debug.level", kv->value, false, &l->cfg->debug.level);
      if (r < 0)
        return r;
      bool ok = false;
      for (size_t j = 0; log_levels[j]; j++)
        ok = ok || strcmp (l->cfg->debug.level, log_levels[j]) == 0;
      if (!ok)
        return load_fail (l, kv->value->pos, "bad value for `debug.level`: must be one of debug, info, warn, error");
    }
  return 0;
}

static int
load_runtime (struct loader *l, const struct toml_value *t)
{
  for (size_t i = 0; i < t->u.tab.n; i++)
    {
      const struct toml_kv *kv = &t->u.tab.items[i];
      int r;
      if (strcmp (kv->key, "default") == 0)
        {
          r = load_string (l, "runtime.default", kv->value, false, &l->cfg->runtime.default_runtime);
          if (r == 0 && strncmp (l->cfg->runtime.default_runtime, "io.berth.runtime.v1.", 20) != 0)
            r = load_fail (l, kv->value->pos,
                           "bad value for `runtime.default`: must name a runtime plugin "
                           "(\"io.berth.runtime.v1.<id>\", e.g. io.berth.runtime.v1.namespaces)");
        }
      else if (strcmp (kv->key, "state_timeout_ms") == 0)
        r = load_int (l, "runtime.state_timeout_ms", kv->value, 10, 600000, &l->cfg->runtime.state_timeout_ms);
      else
        r = load_fail (l, kv->pos, "unknown key `runtime.%s`", kv->key);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
load_doc (struct loader *l, const struct toml_value *root)
{
  const struct toml_value *version = toml_table_get (root, "version");
  if (version != NULL)
    {
      int r = want_type (l, "version", version, TOML_INTEGER, "integer");
      if (r < 0)
        return r;
      if (version->u.i > BERTH_CONFIG_VERSION)
        return load_fail (l, version->pos,
                          "config version %lld is newer than this berthd understands (version %d): upgrade berthd",
                          (long long) version->u.i, BERTH_CONFIG_VERSION);
      if (version->u.i < 1)
        return load_fail (l, version->pos, "bad value for `version`: %lld (this berthd reads version %d)",
                          (long long) version->u.i, BERTH_CONFIG_VERSION);
      l->cfg->version = version->u.i;
    }
  for (size_t i = 0; i < root->u.tab.n; i++)
    {
      const struct toml_kv *kv = &root->u.tab.items[i];
      const char *k = kv->key;
      const struct toml_value *v = kv->value;
      int r = 0;
      if (strlen (k) != kv->key_len)
        r = load_fail (l, kv->pos, "unknown key with a NUL character");
      else if (strcmp (k, "version") == 0)
        r = 0;
      else if (strcmp (k, "root") == 0)
        r = load_string (l, k, v, true, &l->cfg->root);
      else if (strcmp (k, "state") == 0)
        r = load_string (l, k, v, true, &l->cfg->state);
      else if (strcmp (k, "plugin_dirs") == 0)
        r = load_strv (l, k, v, &l->cfg->plugin_dirs);
      else if (strcmp (k, "disabled_plugins") == 0)
        r = load_strv (l, k, v, &l->cfg->disabled_plugins);
      else if (strcmp (k, "required_plugins") == 0)
        r = load_strv (l, k, v, &l->cfg->required_plugins);
      else if (strcmp (k, "grpc") == 0)
        {
          r = want_type (l, k, v, TOML_TABLE, "table");
          if (r >= 0)
            r = load_grpc (l, v);
        }
      else if (strcmp (k, "registry") == 0)
        {
          r = want_type (l, k, v, TOML_TABLE, "table");
          if (r >= 0)
            r = load_registry (l, v);
        }
      else if (strcmp (k, "runtime") == 0)
        {
          r = want_type (l, k, v, TOML_TABLE, "table");
          if (r >= 0)
            r = load_runtime (l, v);
        }
      else if (strcmp (k, "debug") == 0)
        {
          r = want_type (l, k, v, TOML_TABLE, "table");
          if (r >= 0)
            r = load_debug (l, v);
        }
      else if (strcmp (k, "plugins") == 0)
        {
          r = want_type (l, k, v, TOML_TABLE, "table");
          for (size_t j = 0; r >= 0 && j < v->u.tab.n; j++)
            {
              const struct toml_kv *p = &v->u.tab.items[j];
              if (p->value->type != TOML_TABLE)
                r = load_fail (l, p->value->pos, "wrong type for `plugins.\"%s\"`: expected table, found %s",
                               p->key, toml_type_name (p->value));
            }
          if (r >= 0)
            l->cfg->plugins = v;
        }
      else
        r = load_fail (l, kv->pos, "unknown key `%s`", k);
      if (r < 0)
        return r;
    }
  return 0;
}

static int
load_buffer (const char *text, size_t len, const char *name, struct berth_config **ret, berth_error **err)
{
  _cleanup_config_ struct berth_config *cfg = NULL;
  int r = config_new_default (&cfg, err);
  if (r < 0)
    return r;
  cfg->path = strdup (name);
  if (cfg->path == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "%s", name);
  struct toml_error terr;
  r = toml_parse (text, len, &cfg->doc, &terr, NULL);
  if (r < 0)
    return berth_error_set (err, r, 0, "%s:%u:%u: %s", name, terr.pos.line, terr.pos.col, terr.msg);
  struct loader l = { .name = name, .cfg = cfg, .err = err };
  r = load_doc (&l, cfg->doc);
  if (r < 0)
    return r;
  *ret = TAKE_PTR (cfg);
  return 0;
}

int
config_load_string (const char *text, const char *name, struct berth_config **ret, berth_error **err)
{
  return load_buffer (text, strlen (text), name ? name : "<string>", ret, err);
}

int
config_load_file (const char *path, struct berth_config **ret, berth_error **err)
{
  _cleanup_close_ int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return berth_error_set (err, BERTH_E_NOTFOUND, 0, "config file %s does not exist", path);
      return berth_error_set (err, berth_errcode_from_errno (errno), errno, "open %s", path);
    }
  struct stat st;
  if (fstat (fd, &st) < 0)
    return berth_error_set (err, berth_errcode_from_errno (errno), errno, "stat %s", path);
  if (!S_ISREG (st.st_mode))
    return berth_error_set (err, BERTH_E_INVALID, 0, "%s: not a regular file", path);
  _cleanup_free_ char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;)
    {
      if (len == cap)
        {
          if (cap >= CONFIG_MAX_SIZE)
            return berth_error_set (err, BERTH_E_INVALID, 0, "%s: larger than %u bytes", path, CONFIG_MAX_SIZE);
          cap = cap ? cap * 2 : 16384;
          char *nb = realloc (buf, cap + 1);
          if (nb == NULL)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "%s", path);
          buf = nb;
        }
      ssize_t n = read (fd, buf + len, cap - len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return berth_error_set (err, berth_errcode_from_errno (errno), errno, "read %s", path);
      if (n == 0)
        break;
      len += (size_t) n;
    }
  return load_buffer (buf ? buf : "", len, path, ret, err);
}

/* ------------------------------------------------------------------ */
/* Plugin schemas */

/* Does the declared dotted `name` match the path's components? "*" matches
 * any one component.  With prefix, `name` may be longer than the path. */
static bool
name_matches (const char *name, const char *const *path, size_t n, bool prefix)
{
  const char *p = name;
  for (size_t i = 0; i < n; i++)
    {
      if (*p == '\0')
        return false;
      const char *dot = strchr (p, '.');
      size_t len = dot ? (size_t) (dot - p) : strlen (p);
      if (!(len == 1 && p[0] == '*') && (strlen (path[i]) != len || memcmp (p, path[i], len) != 0))
        return false;
      p += len;
      if (*p == '.')
        p++;
      else if (i + 1 < n)
        return false;
    }
  return prefix ? *p != '\0' : *p == '\0';
}

static const struct berth_config_key *
find_key (const struct berth_config_key *const *keys, const char *const *path, size_t n)
{
  if (keys == NULL)
    return NULL;
  for (size_t i = 0; keys[i]; i++)
    if (keys[i]->name && name_matches (keys[i]->name, path, n, false))
      return keys[i];
  return NULL;
}

static bool
has_keys_under (const struct berth_config_key *const *keys, const char *const *path, size_t n)
{
  if (keys == NULL)
    return false;
  for (size_t i = 0; keys[i]; i++)
    if (keys[i]->name && name_matches (keys[i]->name, path, n, true))
      return true;
  return false;
}

static const char *
cfg_type_name (uint32_t type)
{
  switch (type)
    {
    case BERTH_CFG_STRING:
      return "string";
    case BERTH_CFG_INT:
      return "integer";
    case BERTH_CFG_BOOL:
      return "boolean";
    case BERTH_CFG_FLOAT:
      return "float";
    case BERTH_CFG_STRING_ARRAY:
      return "array of strings";
    case BERTH_CFG_TABLE:
      return "table";
    }
  return "unknown type";
}

static bool
type_ok (uint32_t type, const struct toml_value *v)
{
  switch (type)
    {
    case BERTH_CFG_STRING:
      return v->type == TOML_STRING;
    case BERTH_CFG_INT:
      return v->type == TOML_INTEGER;
    case BERTH_CFG_BOOL:
      return v->type == TOML_BOOL;
    case BERTH_CFG_FLOAT:
      return v->type == TOML_FLOAT || v->type == TOML_INTEGER;
    case BERTH_CFG_STRING_ARRAY:
      if (v->type != TOML_ARRAY)
        return false;
      for (size_t i = 0; i < v->u.arr.n; i++)
        if (v->u.arr.items[i]->type != TOML_STRING)
          return false;
      return true;
    case BERTH_CFG_TABLE:
      return v->type == TOML_TABLE;
    }
  return false;
}

struct checker
{
  const char *file;
  char **problems;
  size_t n, cap;
  int oom;
};

static void BERTH_PRINTF (3, 4)
problem (struct checker *c, struct toml_pos pos, const char *fmt, ...)
{
  if (c->oom)
    return;
  _cleanup_free_ char *msg = NULL, *line = NULL;
  va_list ap;
  va_start (ap, fmt);
  int r = vasprintf (&msg, fmt, ap);
  va_end (ap);
  if (r < 0 || asprintf (&line, "%s:%u:%u: %s", c->file, pos.line, pos.col, msg) < 0)
    {
      c->oom = 1;
      return;
    }
  if (c->n + 1 >= c->cap)
    {
      size_t cap = c->cap ? c->cap * 2 : 8;
      char **p = realloc (c->problems, cap * sizeof *p);
      if (p == NULL)
        {
          c->oom = 1;
          return;
        }
      c->problems = p;
      c->cap = cap;
    }
  c->problems[c->n++] = TAKE_PTR (line);
  c->problems[c->n] = NULL;
}

/* `plugins."full".a.b` for messages; a malloc'd string or NULL. */
static char *
render_path (const char *full_name, const char *const *path, size_t n)
{
  _cleanup_free_ char *q = toml_quote (full_name, strlen (full_name));
  if (q == NULL)
    return NULL;
  char *out = NULL;
  if (asprintf (&out, "plugins.%s", q) < 0)
    return NULL;
  for (size_t i = 0; i < n; i++)
    {
      _cleanup_free_ char *k = toml_quote_key (path[i]);
      char *next = NULL;
      if (k == NULL || asprintf (&next, "%s.%s", out, k) < 0)
        {
          free (out);
          return NULL;
        }
      free (out);
      out = next;
    }
  return out;
}

static void
check_value (struct checker *c, const char *full_name, const struct berth_config_key *key, const char *const *path,
             size_t n, const struct toml_value *v)
{
  _cleanup_free_ char *where = render_path (full_name, path, n);
  if (where == NULL)
    {
      c->oom = 1;
      return;
    }
  if (!type_ok (key->type, v))
    {
      if (key->type == BERTH_CFG_STRING_ARRAY && v->type == TOML_ARRAY)
        for (size_t i = 0; i < v->u.arr.n; i++)
          {
            const struct toml_value *item = v->u.arr.items[i];
            if (item->type != TOML_STRING)
              {
                problem (c, item->pos, "wrong type for `%s[%zu]`: expected string, found %s", where, i,
                         toml_type_name (item));
                return;
              }
          }
      problem (c, v->pos, "wrong type for `%s`: expected %s, found %s", where, cfg_type_name (key->type),
               toml_type_name (v));
      return;
    }
  if (key->type == BERTH_CFG_STRING && key->choices)
    {
      for (size_t i = 0; key->choices[i]; i++)
        if (strlen (key->choices[i]) == v->u.str.len && strcmp (key->choices[i], v->u.str.s) == 0)
          return;
      size_t len = 1;
      for (size_t i = 0; key->choices[i]; i++)
        len += strlen (key->choices[i]) + 2;
      _cleanup_free_ char *list = calloc (1, len);
      if (list == NULL)
        {
          c->oom = 1;
          return;
        }
      for (size_t i = 0; key->choices[i]; i++)
        {
          if (i)
            strcat (list, ", ");
          strcat (list, key->choices[i]);
        }
      _cleanup_free_ char *found = toml_quote (v->u.str.s, v->u.str.len);
      problem (c, v->pos, "bad value for `%s`: must be one of %s, found %s", where, list, found ? found : "?");
    }
  if (key->type == BERTH_CFG_INT && key->min < key->max && (v->u.i < key->min || v->u.i > key->max))
    problem (c, v->pos, "bad value for `%s`: must be between %lld and %lld, found %lld", where,
             (long long) key->min, (long long) key->max, (long long) v->u.i);
}

/* Check table t found at path[0..n) inside plugin `full_name`. */
static void
check_table (struct checker *c, const char *full_name, const struct berth_config_key *const *keys,
             const char **path, size_t n, const struct toml_value *t)
{
  for (size_t i = 0; i < t->u.tab.n && !c->oom; i++)
    {
      const struct toml_kv *kv = &t->u.tab.items[i];
      path[n] = kv->key;
      const struct berth_config_key *key = find_key (keys, path, n + 1);
      bool under = has_keys_under (keys, path, n + 1);
      if (key != NULL)
        {
          check_value (c, full_name, key, path, n + 1, kv->value);
          /* A declared table with declared keys inside is checked further;
           * one without is free-form. */
          if (key->type == BERTH_CFG_TABLE && kv->value->type == TOML_TABLE && under)
            check_table (c, full_name, keys, path, n + 1, kv->value);
        }
      else if (under && kv->value->type == TOML_TABLE)
        check_table (c, full_name, keys, path, n + 1, kv->value);
      else
        {
          _cleanup_free_ char *where = render_path (full_name, path, n + 1);
          if (where == NULL)
            c->oom = 1;
          else if (under)
            problem (c, kv->value->pos, "wrong type for `%s`: expected table, found %s", where,
                     toml_type_name (kv->value));
          else
            problem (c, kv->pos, "unknown key `%s`", where);
        }
    }
}

int
config_check (const struct berth_config *cfg, const struct config_plugin_schema *schemas, size_t n,
              char ***ret_problems)
{
  struct checker c = { .file = cfg->path ? cfg->path : "<defaults>" };
  const char *path[TOML_MAX_DEPTH + 2];
  const struct toml_value *plugins = cfg->plugins;
  for (size_t i = 0; plugins && i < plugins->u.tab.n && !c.oom; i++)
    {
      const struct toml_kv *kv = &plugins->u.tab.items[i];
      const struct config_plugin_schema *schema = NULL;
      for (size_t j = 0; j < n && !schema; j++)
        if (schemas[j].full_name && strcmp (schemas[j].full_name, kv->key) == 0)
          schema = &schemas[j];
      _cleanup_free_ char *q = toml_quote (kv->key, kv->key_len);
      if (q == NULL)
        c.oom = 1;
      else if (schema == NULL)
        problem (&c, kv->pos, "unknown plugin `%s`", kv->key);
      else if (kv->value->type != TOML_TABLE)
        problem (&c, kv->value->pos, "wrong type for `plugins.%s`: expected table, found %s", q,
                 toml_type_name (kv->value));
      else
        check_table (&c, schema->full_name, schema->keys, path, 0, kv->value);
    }
  if (c.oom)
    {
      strv_free (c.problems);
      return BERTH_E_NOMEM;
    }
  int count = (int) c.n;
  if (ret_problems)
    {
      if (c.problems == NULL && (c.problems = calloc (1, sizeof (char *))) == NULL)
        return BERTH_E_NOMEM;
      *ret_problems = c.problems;
    }
  else
    strv_free (c.problems);
  return count;
}

/* ------------------------------------------------------------------ */
/* Lookup */

/* The NUL-terminated strv for an array of strings or a table's keys; cached. */
static const char *const *
cached_strv (struct config_cache *cache, const struct toml_value *v)
{
  for (struct cache_entry *e = cache->entries; e; e = e->next)
    if (e->owner == v)
      return e->strv;
  size_t n = v->type == TOML_ARRAY ? v->u.arr.n : v->u.tab.n;
  struct cache_entry *e = calloc (1, sizeof *e);
  if (e == NULL)
    return NULL;
  e->strv = calloc (n + 1, sizeof *e->strv);
  if (e->strv == NULL)
    {
      free (e);
      return NULL;
    }
  for (size_t i = 0; i < n; i++)
    e->strv[i] = v->type == TOML_ARRAY ? v->u.arr.items[i]->u.str.s : v->u.tab.items[i].key;
  e->owner = v;
  e->next = cache->entries;
  cache->entries = e;
  return e->strv;
}

static const struct toml_value *
cached_default (struct config_cache *cache, const char *full_name, const struct berth_config_key *key, int *ret_r)
{
  _cleanup_free_ char *id = NULL;
  if (asprintf (&id, "%s\n%s", full_name, key->name) < 0)
    {
      *ret_r = BERTH_E_NOMEM;
      return NULL;
    }
  for (struct cache_entry *e = cache->entries; e; e = e->next)
    if (e->id && strcmp (e->id, id) == 0)
      return toml_table_get (e->doc, "v");
  _cleanup_free_ char *text = NULL;
  if (asprintf (&text, "v = %s\n", key->default_value) < 0)
    {
      *ret_r = BERTH_E_NOMEM;
      return NULL;
    }
  struct toml_value *doc = NULL;
  int r = toml_parse (text, strlen (text), &doc, NULL, NULL);
  if (r < 0)
    {
      *ret_r = r;
      return NULL;
    }
  struct cache_entry *e = calloc (1, sizeof *e);
  if (e == NULL)
    {
      toml_free (doc);
      *ret_r = BERTH_E_NOMEM;
      return NULL;
    }
  e->id = TAKE_PTR (id);
  e->doc = doc;
  e->next = cache->entries;
  cache->entries = e;
  return toml_table_get (doc, "v");
}

static int
fill_value (struct config_cache *cache, uint32_t type, const struct toml_value *v, struct berth_cfg_value *ret)
{
  *ret = (struct berth_cfg_value){ .size = sizeof *ret, .type = type };
  if (!type_ok (type, v))
    return BERTH_E_INVALID;
  switch (type)
    {
    case BERTH_CFG_STRING:
      ret->s = v->u.str.s;
      break;
    case BERTH_CFG_INT:
      ret->i = v->u.i;
      break;
    case BERTH_CFG_BOOL:
      ret->b = v->u.b;
      break;
    case BERTH_CFG_FLOAT:
      ret->f = v->type == TOML_INTEGER ? (double) v->u.i : v->u.f;
      break;
    case BERTH_CFG_STRING_ARRAY:
    case BERTH_CFG_TABLE:
      ret->v = cached_strv (cache, v);
      if (ret->v == NULL)
        return BERTH_E_NOMEM;
      ret->n = v->type == TOML_ARRAY ? v->u.arr.n : v->u.tab.n;
      break;
    default:
      return BERTH_E_INVALID;
    }
  return 0;
}

static uint32_t
natural_type (const struct toml_value *v)
{
  switch (v->type)
    {
    case TOML_STRING:
      return BERTH_CFG_STRING;
    case TOML_INTEGER:
      return BERTH_CFG_INT;
    case TOML_FLOAT:
      return BERTH_CFG_FLOAT;
    case TOML_BOOL:
      return BERTH_CFG_BOOL;
    case TOML_ARRAY:
      return BERTH_CFG_STRING_ARRAY;
    case TOML_TABLE:
      return BERTH_CFG_TABLE;
    default:
      return 0;
    }
}

int
config_plugin_get (const struct berth_config *cfg, const char *full_name, const struct berth_config_key *const *keys,
                   const char *key, struct berth_cfg_value *ret)
{
  if (cfg == NULL || full_name == NULL || key == NULL || ret == NULL || cfg->cache == NULL)
    return BERTH_E_INVALID;
  /* Split the dotted key. */
  _cleanup_free_ char *copy = strdup (key);
  if (copy == NULL)
    return BERTH_E_NOMEM;
  const char *path[TOML_MAX_DEPTH + 1];
  size_t n = 0;
  for (char *p = copy, *save = NULL, *tok; (tok = strtok_r (p, ".", &save)); p = NULL)
    {
      if (n == TOML_MAX_DEPTH)
        return BERTH_E_INVALID;
      path[n++] = tok;
    }
  if (n == 0)
    return BERTH_E_INVALID;

  const struct berth_config_key *decl = NULL;
  if (keys)
    for (size_t i = 0; keys[i] && !decl; i++)
      if (keys[i]->name && strcmp (keys[i]->name, key) == 0)
        decl = keys[i];
  if (decl == NULL)
    decl = find_key (keys, path, n);

  const struct toml_value *v = toml_table_get (cfg->plugins, full_name);
  for (size_t i = 0; v && i < n; i++)
    v = v->type == TOML_TABLE ? toml_table_get (v, path[i]) : NULL;

  pthread_mutex_lock (&cfg->cache->lock);
  int r;
  if (v != NULL)
    r = fill_value (cfg->cache, decl ? decl->type : natural_type (v), v, ret);
  else if (decl && decl->default_value)
    {
      r = 0;
      const struct toml_value *d = cached_default (cfg->cache, full_name, decl, &r);
      if (d != NULL)
        {
          r = fill_value (cfg->cache, decl->type, d, ret);
          ret->is_default = 1;
        }
      else if (r == 0)
        r = BERTH_E_INVALID;
    }
  else
    r = BERTH_E_NOTFOUND;
  pthread_mutex_unlock (&cfg->cache->lock);
  return r;
}

/* ------------------------------------------------------------------ */
/* The default file */

struct out
{
  char *s;
  size_t len;
  int oom;
};

static void BERTH_PRINTF (2, 3)
out_printf (struct out *o, const char *fmt, ...)
{
  if (o->oom)
    return;
  _cleanup_free_ char *chunk = NULL;
  va_list ap;
  va_start (ap, fmt);
  int n = vasprintf (&chunk, fmt, ap);
  va_end (ap);
  if (n < 0)
    {
      o->oom = 1;
      return;
    }
  char *s = realloc (o->s, o->len + (size_t) n + 1);
  if (s == NULL)
    {
      o->oom = 1;
      return;
    }
  memcpy (s + o->len, chunk, (size_t) n + 1);
  o->s = s;
  o->len += (size_t) n;
}

/* "# doc" lines; the doc is one line, but do not trust that. */
static void
out_comment (struct out *o, const char *indent, const char *doc)
{
  if (doc == NULL || *doc == '\0')
    return;
  while (*doc)
    {
      size_t len = strcspn (doc, "\r\n");
      out_printf (o, "%s# %.*s\n", indent, (int) len, doc);
      doc += len;
      doc += strspn (doc, "\r\n");
    }
}

static void
out_quoted (struct out *o, const char *s)
{
  _cleanup_free_ char *q = toml_quote (s, strlen (s));
  if (q == NULL)
    o->oom = 1;
  else
    out_printf (o, "%s", q);
}

static void
out_strv (struct out *o, char **v)
{
  out_printf (o, "[");
  for (size_t i = 0; v && v[i]; i++)
    {
      if (i)
        out_printf (o, ", ");
      out_quoted (o, v[i]);
    }
  out_printf (o, "]");
}

/* A declared key name as TOML key text: each component bare or quoted. */
static char *
key_text (const char *name)
{
  struct out o = { 0 };
  _cleanup_free_ char *copy = strdup (name);
  if (copy == NULL)
    return NULL;
  bool first = true;
  for (char *p = copy, *save = NULL, *tok; (tok = strtok_r (p, ".", &save)); p = NULL)
    {
      _cleanup_free_ char *k = toml_quote_key (tok);
      if (k == NULL)
        o.oom = 1;
      else
        out_printf (&o, "%s%s", first ? "" : ".", k);
      first = false;
    }
  if (o.oom || o.s == NULL)
    {
      free (o.s);
      return NULL;
    }
  return o.s;
}

static void
out_plugin (struct out *o, const struct config_plugin_schema *schema)
{
  out_printf (o, "\n[plugins.");
  out_quoted (o, schema->full_name);
  out_printf (o, "]\n");
  for (size_t i = 0; schema->keys && schema->keys[i]; i++)
    {
      const struct berth_config_key *k = schema->keys[i];
      if (k->name == NULL)
        continue;
      out_comment (o, "  ", k->doc);
      if (k->type == BERTH_CFG_STRING && k->choices)
        {
          out_printf (o, "  # one of:");
          for (size_t j = 0; k->choices[j]; j++)
            out_printf (o, " %s", k->choices[j]);
          out_printf (o, "\n");
        }
      if (k->type == BERTH_CFG_INT && k->min < k->max)
        out_printf (o, "  # from %lld to %lld\n", (long long) k->min, (long long) k->max);
      _cleanup_free_ char *kt = key_text (k->name);
      if (kt == NULL)
        {
          o->oom = 1;
          return;
        }
      /* Keys under a wildcard and tables (whose contents are listed as
       * their own keys) are shown, not set. */
      bool wildcard = strcmp (k->name, "*") == 0 || strstr (k->name, ".*") || strncmp (k->name, "*.", 2) == 0;
      if (wildcard)
        out_printf (o, "  # %s = %s  (\"*\" stands for any name)\n", k->name,
                    k->default_value ? k->default_value : "...");
      else if (k->type == BERTH_CFG_TABLE || k->default_value == NULL)
        out_printf (o, "  # %s = %s\n", kt, k->default_value ? k->default_value : "(no default)");
      else
        out_printf (o, "  %s = %s\n", kt, k->default_value);
    }
}

char *
config_default_text (const struct config_plugin_schema *schemas, size_t n)
{
  _cleanup_config_ struct berth_config *d = NULL;
  if (config_new_default (&d, NULL) < 0)
    return NULL;
  struct out o = { 0 };
  out_printf (&o, "# berthd configuration, as printed by `berthd config default`.\n"
                  "# Every key is shown with its default value; `berthd config check` validates a file.\n\n");
  out_printf (&o, "# Schema version of this file.\nversion = %d\n\n", BERTH_CONFIG_VERSION);
  out_printf (&o, "# Persistent data: metadata database and one folder per plugin.\nroot = ");
  out_quoted (&o, d->root);
  out_printf (&o, "\n\n# Runtime state (sockets, mounts, shim state), lost at reboot.\nstate = ");
  out_quoted (&o, d->state);
  out_printf (&o, "\n\n# Folders searched for plugin shared objects; built-in plugins need no entry.\n"
                  "plugin_dirs = ");
  out_strv (&o, d->plugin_dirs);
  out_printf (&o, "\n\n# Plugins (\"<type>.<id>\") that are not loaded.\ndisabled_plugins = ");
  out_strv (&o, d->disabled_plugins);
  out_printf (&o, "\n\n# Plugins that must initialise, or berthd does not start.\nrequired_plugins = ");
  out_strv (&o, d->required_plugins);
  out_printf (&o, "\n\n[grpc]\n  # Unix socket serving the containerd API.\n  address = ");
  out_quoted (&o, d->grpc.address);
  out_printf (&o,
              "\n  # Owner and group of the socket.\n  uid = %lld\n  gid = %lld\n"
              "  # Largest gRPC message accepted, in bytes.\n  max_recv_message_size = %lld\n",
              (long long) d->grpc.uid, (long long) d->grpc.gid, (long long) d->grpc.max_recv_message_size);
  out_printf (&o,
              "  # Connections served at once; past it the longest idle one is closed.\n"
              "  max_connections = %lld\n"
              "  # Open streams (calls) per connection.\n  max_concurrent_streams = %lld\n"
              "  # Bytes of unfinished requests one connection may hold (4 times this in all).\n"
              "  max_connection_buffer = %lld\n"
              "  # Seconds a client has to send a whole request message, header list or frame.\n"
              "  request_timeout = %lld\n"
              "  # Seconds before a connection without calls is closed (0: never).\n"
              "  idle_timeout = %lld\n",
              (long long) d->grpc.max_connections, (long long) d->grpc.max_concurrent_streams,
              (long long) d->grpc.max_connection_buffer, (long long) d->grpc.request_timeout,
              (long long) d->grpc.idle_timeout);
  out_printf (&o, "\n[registry]\n  # Folder with a hosts.toml per registry host (containerd's certs.d layout).\n"
                  "  config_path = ");
  out_quoted (&o, d->registry.config_path);
  out_printf (&o, "\n  # Layers downloaded in parallel by one pull.\n  max_concurrent_downloads = %lld\n",
              (long long) d->registry.max_concurrent_downloads);
  out_printf (&o, "  # Drop a layer's compressed blob once it is unpacked (saves disk; push and export\n"
                  "  # then need a new pull).\n  discard_unpacked_layers = %s\n",
              d->registry.discard_unpacked_layers ? "true" : "false");
  out_printf (&o, "\n[runtime]\n  # Runtime plugin that containerd's runtime names (io.containerd.runc.v2, ...)\n"
                  "  # run on; io.berth.runtime.v1.oci when this one is not loaded.\n  default = ");
  out_quoted (&o, d->runtime.default_runtime);
  out_printf (&o, "\n  # Deadline of a task state query (Tasks.List/Get), in ms; a shim that does not\n"
                  "  # answer in time is reported UNKNOWN.\n  state_timeout_ms = %lld\n",
              (long long) d->runtime.state_timeout_ms);
  out_printf (&o, "\n[debug]\n  # Log level: debug, info, warn or error.\n  level = ");
  out_quoted (&o, d->debug.level);
  out_printf (&o, "\n\n# One table per plugin, named by its full name \"<type>.<id>\".\n[plugins]\n");
  for (size_t i = 0; i < n; i++)
    if (schemas[i].full_name)
      out_plugin (&o, &schemas[i]);
  if (o.oom)
    {
      free (o.s);
      return NULL;
    }
  return o.s;
}
