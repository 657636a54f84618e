/* io.berth.runtime.v1.oci: see oci.h. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <berth/config.h>

#include "oci.h"

#ifndef BERTH_SHIM_BINARY
#define BERTH_SHIM_BINARY "/usr/local/libexec/berth/berth-shim"
#endif

#define OCI_PLUGIN_NAME "io.berth.runtime.v1.oci"

static void
strv_free (char **v)
{
  for (char **i = v; v && *i; i++)
    free (*i);
  free (v);
}

/* An executable: `wanted` itself when absolute, else the first match in PATH. */
static char *
resolve_binary (const char *wanted)
{
  if (wanted == NULL || *wanted == '\0')
    return NULL;
  if (strchr (wanted, '/'))
    return wanted[0] == '/' && access (wanted, X_OK) == 0 ? strdup (wanted) : NULL;
  const char *path = getenv ("PATH");
  if (path == NULL || *path == '\0')
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const char *p = path; *p;)
    {
      size_t len = strcspn (p, ":");
      char *cand = NULL;
      if (len > 0 && p[0] == '/' && asprintf (&cand, "%.*s/%s", (int)len, p, wanted) > 0)
        {
          if (access (cand, X_OK) == 0)
            return cand;
        }
      free (cand);
      p += len;
      if (*p == ':')
        p++;
    }
  return NULL;
}

static bool
is_crun (const char *binary)
{
  const char *base = strrchr (binary, '/');
  base = base ? base + 1 : binary;
  return strncmp (base, "crun", 4) == 0;
}

/* crun's check (libcrun cgroup.c): hybrid when /sys/fs/cgroup is a tmpfs
 * and /sys/fs/cgroup/unified a cgroup2; refused when that cgroup2 has
 * controllers. */
static void
detect_hybrid (struct oci *o)
{
  struct statfs fs;
  if (statfs ("/sys/fs/cgroup", &fs) < 0 || fs.f_type != TMPFS_MAGIC)
    return;
  if (statfs ("/sys/fs/cgroup/unified", &fs) < 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
    return;
  int fd = open ("/sys/fs/cgroup/unified/cgroup.controllers", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char buf[256];
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return;
  buf[n] = '\0';
  buf[strcspn (buf, "\n")] = '\0';
  if (buf[0] == '\0')
    return;
  o->hybrid_blocks_crun = true;
  o->cgroup2_controllers = strdup (buf);
}

static struct oci_runtime *
find_runtime (struct oci *o, const char *name)
{
  for (size_t i = 0; i < o->n_runtimes; i++)
    if (strcmp (o->runtimes[i].name, name) == 0)
      return &o->runtimes[i];
  return NULL;
}

static int
add_runtime (struct oci *o, const char *name, const char *wanted, const char *const *options, size_t n_options,
             bool systemd, berth_error *err)
{
  struct oci_runtime *rt = find_runtime (o, name);
  if (rt == NULL)
    {
      struct oci_runtime *v = realloc (o->runtimes, (o->n_runtimes + 1) * sizeof *v);
      if (v == NULL)
        return o->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
      o->runtimes = v;
      rt = &v[o->n_runtimes++];
      memset (rt, 0, sizeof *rt);
      rt->name = strdup (name);
    }
  else
    {
      free (rt->binary);
      free (rt->wanted);
      strv_free (rt->options);
    }
  rt->wanted = strdup (wanted);
  rt->binary = resolve_binary (wanted);
  rt->options = calloc (n_options + 2, sizeof *rt->options);
  if (rt->name == NULL || rt->wanted == NULL || rt->options == NULL)
    return o->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n_options; i++)
    if ((rt->options[k++] = strdup (options[i])) == NULL)
      return o->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  if (systemd && (rt->options[k++] = strdup ("--systemd-cgroup")) == NULL)
    return o->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  rt->crun_like = rt->binary ? is_crun (rt->binary) : is_crun (wanted);
  return 0;
}

static int
cfg_get (struct oci *o, const char *key, uint32_t type, struct berth_cfg_value *v)
{
  memset (v, 0, sizeof *v);
  v->size = sizeof *v;
  int r = o->host->cfg_get (o->plugin, key, v);
  if (r < 0)
    return r;
  return v->type == type ? 0 : BERTH_E_INVALID;
}

/* [runtimes.<name>]: binary (required), options, systemd_cgroup. */
static int
load_configured (struct oci *o, berth_error *err)
{
  struct berth_cfg_value t;
  if (cfg_get (o, "runtimes", BERTH_CFG_TABLE, &t) < 0 || t.v == NULL)
    return 0;
  for (size_t i = 0; t.v[i]; i++)
    {
      const char *name = t.v[i];
      char key[512];
      struct berth_cfg_value b, opts, sd;
      snprintf (key, sizeof key, "runtimes.%s.binary", name);
      if (cfg_get (o, key, BERTH_CFG_STRING, &b) < 0 || b.s == NULL || *b.s == '\0')
        return o->host->error_set (err, BERTH_E_INVALID, 0, "runtimes.%s needs `binary`", name);
      snprintf (key, sizeof key, "runtimes.%s.options", name);
      bool have_opts = cfg_get (o, key, BERTH_CFG_STRING_ARRAY, &opts) == 0;
      snprintf (key, sizeof key, "runtimes.%s.systemd_cgroup", name);
      bool systemd = cfg_get (o, key, BERTH_CFG_BOOL, &sd) == 0 && sd.b;
      int r = add_runtime (o, name, b.s, have_opts ? opts.v : NULL, have_opts ? opts.n : 0, systemd, err);
      if (r < 0)
        return r;
    }
  return 0;
}

static void
oci_fini (void *self)
{
  struct oci *o = self;
  if (o == NULL)
    return;
  berth_shimrt_free (o->rt);
  for (size_t i = 0; i < o->n_runtimes; i++)
    {
      free (o->runtimes[i].name);
      free (o->runtimes[i].binary);
      free (o->runtimes[i].wanted);
      strv_free (o->runtimes[i].options);
    }
  free (o->runtimes);
  free (o->default_name);
  free (o->cgroup2_controllers);
  free (o);
}

static int
oci_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self, berth_error *err)
{
  struct oci *o = calloc (1, sizeof *o);
  if (o == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  *ret_self = o;
  o->host = host;
  o->plugin = ictx->plugin;
  int r
      = add_runtime (o, "runc", access ("/usr/sbin/runc", X_OK) == 0 ? "/usr/sbin/runc" : "runc", NULL, 0, false, err);
  if (r == 0)
    r = add_runtime (o, "crun", access ("/usr/bin/crun", X_OK) == 0 ? "/usr/bin/crun" : "crun", NULL, 0, false, err);
  if (r == 0)
    r = load_configured (o, err);
  if (r < 0)
    return r;

  struct berth_cfg_value v;
  o->default_name = strdup (cfg_get (o, "default", BERTH_CFG_STRING, &v) == 0 && v.s && *v.s ? v.s : "runc");
  o->hide_cgroup2 = !(cfg_get (o, "crun_hide_cgroup2", BERTH_CFG_BOOL, &v) == 0 && !v.b);
  if (o->default_name == NULL)
    return host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
  if (find_runtime (o, o->default_name) == NULL)
    return host->error_set (err, BERTH_E_INVALID, 0, "default runtime `%s` is neither runc, crun nor in [runtimes]",
                            o->default_name);
  detect_hybrid (o);

  /* Report what is missing; refuse to start only when nothing is there. */
  const struct oci_runtime *first = NULL;
  char missing[1024] = "";
  for (size_t i = 0; i < o->n_runtimes; i++)
    {
      const struct oci_runtime *rt = &o->runtimes[i];
      if (rt->binary && first == NULL)
        first = rt;
      if (rt->binary == NULL)
        snprintf (missing + strlen (missing), sizeof missing - strlen (missing), "%s%s (%s)", *missing ? ", " : "",
                  rt->name, rt->wanted);
    }
  if (first == NULL)
    return host->error_set (err, BERTH_E_SKIP, 0, "no OCI runtime binary found: %s", missing);
  if (*missing)
    host->log (o->plugin, BERTH_LOG_WARNING, OCI_PLUGIN_NAME ": runtimes without a binary (refused at create): %s",
               missing);
  const struct oci_runtime *def = find_runtime (o, o->default_name);
  if (def->binary)
    first = def;
  if (o->hybrid_blocks_crun)
    host->log (o->plugin, BERTH_LOG_INFO, OCI_PLUGIN_NAME ": hybrid cgroups with `%s` on cgroup v2: crun %s",
               o->cgroup2_controllers,
               o->hide_cgroup2 ? "runs in a mount namespace without /sys/fs/cgroup/unified"
                               : "tasks are refused (crun_hide_cgroup2 = false)");

  struct berth_cfg_value shim, size, files;
  const char *shim_binary
      = cfg_get (o, "shim_binary", BERTH_CFG_STRING, &shim) == 0 && shim.s && *shim.s ? shim.s : BERTH_SHIM_BINARY;
  if (shim_binary[0] != '/')
    return host->error_set (err, BERTH_E_INVALID, 0, "shim_binary `%s` is not an absolute path", shim_binary);
  if (access (shim_binary, X_OK) < 0)
    return host->error_set (err, BERTH_E_SKIP, errno, "berth-shim is not installed at %s (set `shim_binary`)",
                            shim_binary);
  int64_t max_size = cfg_get (o, "log_max_size", BERTH_CFG_INT, &size) == 0 ? size.i : 10 << 20;
  int64_t max_files = cfg_get (o, "log_max_files", BERTH_CFG_INT, &files) == 0 ? files.i : 3;
  struct berth_cfg_value tmo;
  int64_t timeout = cfg_get (o, "call_timeout_ms", BERTH_CFG_INT, &tmo) == 0 ? tmo.i : 10000;
  struct berth_shimrt_config c = {
    .size = sizeof c,
    .plugin = ictx->plugin,
    .plugin_name = OCI_PLUGIN_NAME,
    .runtime_binary = first->binary,
    .runtime_args = (const char *const *)first->options,
    .shim_binary = shim_binary,
    .state_dir = ictx->state,
    .log_max_size = max_size > 0 ? (uint64_t)max_size : 0,
    .log_max_files = max_files > 0 ? (uint32_t)max_files : 0,
    .call_timeout_ms = timeout > 0 ? (uint32_t)timeout : 0,
  };
  o->rt = berth_shimrt_new (&c, host, err);
  if (o->rt == NULL)
    return BERTH_E_INTERNAL;
  host->set_export (ictx->plugin, "default", o->default_name);
  return 0;
}

/* The task's runtime from the core's options: "runtime" names an entry
 * (empty: the default; containerd's "io.containerd.runc.v2" too), and
 * "binary_name" (containerd's runc options BinaryName) overrides the binary. */
struct oci_choice
{
  struct berth_shimrt_runtime rt;
  char *binary; /* owned: from binary_name */
  char **args;  /* owned: the entry's options plus --systemd-cgroup */
};

static int
pick_runtime (struct oci *o, const char *options_json, struct oci_choice *ret, berth_error *err)
{
  char **ret_owned = &ret->binary;
  const char *name = NULL, *binary_name = NULL;
  bool systemd = false;
  json_object *j = NULL;
  if (options_json && *options_json)
    {
      j = json_tokener_parse (options_json);
      if (!json_object_is_type (j, json_type_object))
        {
          json_object_put (j);
          return o->host->error_set (err, BERTH_E_INVALID, 0, "the task options are not a JSON object");
        }
      json_object *v;
      if (json_object_object_get_ex (j, "runtime", &v) && json_object_is_type (v, json_type_string))
        name = json_object_get_string (v);
      if (json_object_object_get_ex (j, "binary_name", &v) && json_object_is_type (v, json_type_string))
        binary_name = json_object_get_string (v);
      if (json_object_object_get_ex (j, "systemd_cgroup", &v) && json_object_is_type (v, json_type_boolean))
        systemd = json_object_get_boolean (v);
    }
  int r = 0;
  if (name == NULL || *name == '\0' || strncmp (name, "io.containerd.runc.", 19) == 0
      || strcmp (name, OCI_PLUGIN_NAME) == 0 || strcmp (name, "oci") == 0)
    name = o->default_name;
  const struct oci_runtime *rt = find_runtime (o, name);
  if (rt == NULL)
    {
      char known[512] = "";
      for (size_t i = 0; i < o->n_runtimes; i++)
        snprintf (known + strlen (known), sizeof known - strlen (known), "%s%s", i ? ", " : "", o->runtimes[i].name);
      r = o->host->error_set (err, BERTH_E_INVALID, 0, "unknown OCI runtime `%s` (known: %s)", name, known);
    }
  const char *binary = rt ? rt->binary : NULL;
  if (r == 0 && binary_name && *binary_name)
    {
      *ret_owned = resolve_binary (binary_name);
      if (*ret_owned == NULL)
        r = o->host->error_set (err, BERTH_E_PRECONDITION, 0,
                                "runtime binary `%s` (binary_name) is not an executable %s", binary_name,
                                strchr (binary_name, '/') ? "file" : "in PATH");
      binary = *ret_owned;
    }
  else if (r == 0 && binary == NULL)
    r = o->host->error_set (err, BERTH_E_PRECONDITION, 0,
                            "OCI runtime `%s` is not available on this host: %s is not an executable%s", rt->name,
                            rt->wanted, strchr (rt->wanted, '/') ? "" : " in PATH");
  if (r == 0)
    {
      ret->rt.size = sizeof ret->rt;
      ret->rt.binary = binary;
      ret->rt.args = (const char *const *)rt->options;
      ret->rt.flags = 0;
      bool has = false;
      size_t n = 0;
      for (; rt->options[n]; n++)
        has |= strcmp (rt->options[n], "--systemd-cgroup") == 0;
      if (systemd && !has)
        {
          ret->args = calloc (n + 2, sizeof *ret->args);
          for (size_t i = 0; ret->args && i < n; i++)
            ret->args[i] = strdup (rt->options[i]);
          if (ret->args)
            ret->args[n] = strdup ("--systemd-cgroup");
          if (ret->args == NULL || ret->args[n] == NULL)
            r = o->host->error_set (err, BERTH_E_NOMEM, 0, "out of memory");
          ret->rt.args = (const char *const *)ret->args;
        }
      if (r == 0 && is_crun (binary) && o->hybrid_blocks_crun)
        {
          if (o->hide_cgroup2)
            ret->rt.flags |= BERTH_SHIMRT_HIDE_CGROUP2;
          else
            r = o->host->error_set (
                err, BERTH_E_PRECONDITION, 0,
                "crun refuses this host's hybrid cgroup layout: cgroup v2 (/sys/fs/cgroup/unified) has the "
                "controllers `%s`, and crun 1.8 only accepts a hybrid host whose cgroup v2 has none; mount them on "
                "cgroup v1 (e.g. mkdir /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup "
                "/sys/fs/cgroup/hugetlb), set crun_hide_cgroup2 = true, or use runc",
                o->cgroup2_controllers ? o->cgroup2_controllers : "?");
        }
    }
  json_object_put (j);
  return r;
}

static int
oci_create (void *self, berth_ctx *ctx, const struct berth_task_create *req, struct berth_process_state *ret_state,
            berth_error *err)
{
  struct oci *o = self;
  struct oci_choice c = { 0 };
  int r = pick_runtime (o, req ? req->options_json : NULL, &c, err);
  if (r == 0)
    r = berth_shimrt_create_with (o->rt, ctx, req, &c.rt, ret_state, err);
  free (c.binary);
  strv_free (c.args);
  return r;
}

/* The other methods are the library's, on the library's instance. */
#define RT(o) (((struct oci *)(o))->rt)

static int
oci_start (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int32_t *ret_pid, berth_error *err)
{
  return berth_shimrt_ops.start (RT (self), ctx, id, exec_id, ret_pid, err);
}

static int
oci_state (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_process_state *ret_state,
           berth_error *err)
{
  return berth_shimrt_ops.state (RT (self), ctx, id, exec_id, ret_state, err);
}

static int
oci_kill (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int signal, int all, berth_error *err)
{
  return berth_shimrt_ops.kill (RT (self), ctx, id, exec_id, signal, all, err);
}

static int
oci_pids (void *self, berth_ctx *ctx, const char *id, berth_pid_fn fn, void *data, berth_error *err)
{
  return berth_shimrt_ops.pids (RT (self), ctx, id, fn, data, err);
}

static int
oci_exec (void *self, berth_ctx *ctx, const char *id, const char *exec_id, const char *spec_json,
          const struct berth_task_io *io, berth_error *err)
{
  return berth_shimrt_ops.exec (RT (self), ctx, id, exec_id, spec_json, io, err);
}

static int
oci_pause (void *self, berth_ctx *ctx, const char *id, berth_error *err)
{
  return berth_shimrt_ops.pause (RT (self), ctx, id, err);
}

static int
oci_resume (void *self, berth_ctx *ctx, const char *id, berth_error *err)
{
  return berth_shimrt_ops.resume (RT (self), ctx, id, err);
}

static int
oci_wait (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
          berth_error *err)
{
  return berth_shimrt_ops.wait (RT (self), ctx, id, exec_id, ret_exit, err);
}

static int
oci_resize_pty (void *self, berth_ctx *ctx, const char *id, const char *exec_id, uint32_t width, uint32_t height,
                berth_error *err)
{
  return berth_shimrt_ops.resize_pty (RT (self), ctx, id, exec_id, width, height, err);
}

static int
oci_close_io (void *self, berth_ctx *ctx, const char *id, const char *exec_id, int close_stdin, berth_error *err)
{
  return berth_shimrt_ops.close_io (RT (self), ctx, id, exec_id, close_stdin, err);
}

static int
oci_update (void *self, berth_ctx *ctx, const char *id, const char *resources_json, berth_error *err)
{
  return berth_shimrt_ops.update (RT (self), ctx, id, resources_json, err);
}

static int
oci_stats (void *self, berth_ctx *ctx, const char *id, berth_buf *ret_json, berth_error *err)
{
  return berth_shimrt_ops.stats (RT (self), ctx, id, ret_json, err);
}

static int
oci_delete (void *self, berth_ctx *ctx, const char *id, const char *exec_id, struct berth_task_exit *ret_exit,
            berth_error *err)
{
  return berth_shimrt_ops.delete(RT (self), ctx, id, exec_id, ret_exit, err);
}

static int
oci_list (void *self, berth_ctx *ctx, berth_task_fn fn, void *data, berth_error *err)
{
  return berth_shimrt_ops.list (RT (self), ctx, fn, data, err);
}

static const struct berth_runtime_ops oci_ops = {
  .size = sizeof (struct berth_runtime_ops),
  .create = oci_create,
  .start = oci_start,
  .state = oci_state,
  .kill = oci_kill,
  .pids = oci_pids,
  .exec = oci_exec,
  .pause = oci_pause,
  .resume = oci_resume,
  .wait = oci_wait,
  .resize_pty = oci_resize_pty,
  .close_io = oci_close_io,
  .update = oci_update,
  .stats = oci_stats,
  .delete = oci_delete,
  .list = oci_list,
};

static const struct berth_config_key k_default = BERTH_CFG_KEY (
    BERTH_CFG_STRING, "default", "\"runc\"", "runtime used when a task names none (runc, crun or a [runtimes] entry)");
static const struct berth_config_key k_runtimes
    = BERTH_CFG_KEY (BERTH_CFG_TABLE, "runtimes", NULL, "named runtimes; runc and crun are built in");
static const struct berth_config_key k_rt_binary = BERTH_CFG_KEY (
    BERTH_CFG_STRING, "runtimes.*.binary", NULL, "the runc-compatible binary: an absolute path or a name in PATH");
static const struct berth_config_key k_rt_options
    = BERTH_CFG_KEY (BERTH_CFG_STRING_ARRAY, "runtimes.*.options", NULL, "global arguments placed before the command");
static const struct berth_config_key k_rt_systemd
    = BERTH_CFG_KEY (BERTH_CFG_BOOL, "runtimes.*.systemd_cgroup", NULL, "pass --systemd-cgroup");
static const struct berth_config_key k_hide = BERTH_CFG_KEY (
    BERTH_CFG_BOOL, "crun_hide_cgroup2", "true",
    "on hybrid hosts whose cgroup v2 has controllers (crun 1.8 refuses them), run crun without /sys/fs/cgroup/unified");
static const struct berth_config_key k_shim
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "shim_binary", "\"" BERTH_SHIM_BINARY "\"", "berth-shim, started once per task");
static const struct berth_config_key k_log_size = BERTH_CFG_KEY_RANGE (
    "log_max_size", "10485760", "bytes of container.log before it rotates (0: never)", 0, INT64_MAX);
static const struct berth_config_key k_log_files
    = BERTH_CFG_KEY_RANGE ("log_max_files", "3", "rotated container logs kept (container.log.1 ... .N)", 0, 1000);
static const struct berth_config_key k_timeout = BERTH_CFG_KEY_RANGE (
    "call_timeout_ms", "10000",
    "deadline of one call to a shim (not Wait); a stuck shim answers UNKNOWN / deadline exceeded", 100, 3600000);
static const struct berth_config_key *const oci_keys[]
    = { &k_default, &k_runtimes, &k_rt_binary, &k_rt_options, &k_rt_systemd, &k_hide,
        &k_shim,    &k_log_size, &k_log_files, &k_timeout,    NULL };

static const struct berth_plugin_desc oci_desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_RUNTIME,
  .type = "io.berth.runtime.v1",
  .id = "oci",
  .version = "0.1.0",
  .requires = NULL,
  .config_keys = oci_keys,
  .init = oci_init,
  .fini = oci_fini,
  .ops = &oci_ops,
  .description = "runc, crun or another runc-compatible binary under berth-shim",
};

static const struct berth_plugin_desc *const oci_plugins[] = { &oci_desc, NULL };

/* Built into berthd (core/builtins.c), like plugins/snapshotters/native. */
const struct berth_plugin_desc *const *
berth_runtime_oci_entry (void)
{
  return oci_plugins;
}
