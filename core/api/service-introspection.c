/* containerd.services.introspection.v1.Introspection
 *
 * Plugin status travels the way containerd and ctr expect: no init_err for
 * ok; init_err "skip plugin: <reason>" (FAILED_PRECONDITION) for skip, which
 * ctr shows as "skip"; "skip plugin: disabled: <reason>" for disabled; any
 * other message for error.  Where a plugin came from and its ABI go into
 * exports under the reserved keys berth.source and berth.abi.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "api/service-util.h"
#include "cleanup.h"
#include "filters.h"
#include "github.com/containerd/containerd/api/services/introspection/v1/introspection.pb-c.h"

typedef Containerd__Services__Introspection__V1__Plugin pb_plugin;
typedef Containerd__Services__Introspection__V1__Plugin__ExportsEntry pb_export;

static const char *
plugin_field (void *obj, const char *const *path, size_t n)
{
  const plugin *p = obj;
  if (n != 1)
    return NULL;
  if (strcmp (path[0], "type") == 0)
    return p->desc.type;
  if (strcmp (path[0], "id") == 0)
    return p->desc.id;
  if (strcmp (path[0], "status") == 0)
    return plugin_status_name (p->status);
  if (strcmp (path[0], "source") == 0)
    return p->source;
  return NULL;
}

static const char *
host_arch (void)
{
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__i386__)
  return "386";
#elif defined(__arm__)
  return "arm";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64le";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

/* Everything a pb_plugin points to lives in this arena, freed after sending. */
struct arena
{
  void **items;
  size_t n;
};

static void *
arena_keep (struct arena *a, void *p)
{
  if (p == NULL)
    return NULL;
  void **items = realloc (a->items, (a->n + 1) * sizeof (void *));
  if (items == NULL)
    {
      free (p);
      return NULL;
    }
  a->items = items;
  a->items[a->n++] = p;
  return p;
}

static void
arena_free (struct arena *a)
{
  for (size_t i = 0; i < a->n; i++)
    free (a->items[i]);
  free (a->items);
}

static char *
arena_printf (struct arena *a, const char *fmt, ...) BERTH_PRINTF (2, 3);

static char *
arena_printf (struct arena *a, const char *fmt, ...)
{
  char *s = NULL;
  va_list ap;
  va_start (ap, fmt);
  int r = vasprintf (&s, fmt, ap);
  va_end (ap);
  return r < 0 ? NULL : arena_keep (a, s);
}

static bool
fill_plugin (struct arena *a, const plugin *p, pb_plugin *out)
{
  pb_plugin init = CONTAINERD__SERVICES__INTROSPECTION__V1__PLUGIN__INIT;
  *out = init;
  out->type = (char *) p->desc.type;
  out->id = (char *) p->desc.id;
  for (const char *const *r = p->desc.requires; r && *r; r++)
    out->n_requires++;
  out->requires = (char **) p->desc.requires;

  if (p->desc.kind == BERTH_KIND_SNAPSHOTTER || p->desc.kind == BERTH_KIND_RUNTIME)
    {
      Containerd__Types__Platform *pl = arena_keep (a, malloc (sizeof *pl));
      Containerd__Types__Platform **pls = arena_keep (a, malloc (sizeof *pls));
      if (pl == NULL || pls == NULL)
        return false;
      Containerd__Types__Platform pinit = CONTAINERD__TYPES__PLATFORM__INIT;
      *pl = pinit;
      pl->os = (char *) "linux";
      pl->architecture = (char *) host_arch ();
      pls[0] = pl;
      out->platforms = pls;
      out->n_platforms = 1;
    }

  size_t nexp = 3;
  for (char **e = p->exports; e && *e; e++)
    nexp++;
  pb_export **exps = arena_keep (a, calloc (nexp, sizeof *exps));
  pb_export *ents = arena_keep (a, calloc (nexp, sizeof *ents));
  if (exps == NULL || ents == NULL)
    return false;
  pb_export einit = CONTAINERD__SERVICES__INTROSPECTION__V1__PLUGIN__EXPORTS_ENTRY__INIT;
  size_t i = 0;
  for (char **e = p->exports; e && *e; e++, i++)
    {
      ents[i] = einit;
      char *kv = arena_keep (a, strdup (*e));
      if (kv == NULL)
        return false;
      char *eq = strchr (kv, '=');
      *eq = '\0';
      ents[i].key = kv;
      ents[i].value = eq + 1;
    }
  ents[i] = einit;
  ents[i].key = (char *) "berth.source";
  ents[i++].value = p->source;
  ents[i] = einit;
  ents[i].key = (char *) "berth.abi";
  ents[i++].value = arena_printf (a, "%u.%u", p->desc.abi_major, p->desc.abi_minor);
  ents[i] = einit;
  ents[i].key = (char *) "berth.version";
  ents[i++].value = (char *) p->desc.version;
  for (size_t j = 0; j < i; j++)
    {
      if (ents[j].value == NULL)
        return false;
      exps[j] = &ents[j];
    }
  out->exports = exps;
  out->n_exports = i;

  for (char **c = p->capabilities; c && *c; c++)
    out->n_capabilities++;
  out->capabilities = p->capabilities;

  if (p->status != PLUGIN_OK)
    {
      Google__Rpc__Status *st = arena_keep (a, malloc (sizeof *st));
      if (st == NULL)
        return false;
      Google__Rpc__Status sinit = GOOGLE__RPC__STATUS__INIT;
      *st = sinit;
      const char *why = p->error ? p->error : plugin_status_name (p->status);
      switch (p->status)
        {
        case PLUGIN_SKIP:
          st->code = berth_errcode_to_grpc (BERTH_E_PRECONDITION);
          st->message = arena_printf (a, "skip plugin: %s", why);
          break;
        case PLUGIN_DISABLED:
          st->code = berth_errcode_to_grpc (BERTH_E_PRECONDITION);
          st->message = arena_printf (a, "skip plugin: disabled: %s", why);
          break;
        default:
          st->code = berth_errcode_to_grpc (BERTH_E_INTERNAL);
          st->message = arena_printf (a, "%s", why);
          break;
        }
      if (st->message == NULL)
        return false;
      out->init_err = st;
    }
  return true;
}

static void
introspection_plugins (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  struct daemon *d = data;
  Containerd__Services__Introspection__V1__PluginsRequest *req
      = svc_unpack (call, &containerd__services__introspection__v1__plugins_request__descriptor, msg, len);
  if (req == NULL)
    return;
  _cleanup_error_ berth_error *err = NULL;
  filter_set *fs = NULL;
  int r = filters_parse ((const char *const *) req->filters, req->n_filters, &fs, &err);
  protobuf_c_message_free_unpacked (&req->base, NULL);
  if (r < 0)
    {
      svc_fail (call, err);
      return;
    }
  size_t n = registry_count (d->reg);
  struct arena a = { 0 };
  _cleanup_free_ pb_plugin *items = calloc (n + 1, sizeof *items);
  _cleanup_free_ pb_plugin **ptrs = calloc (n + 1, sizeof *ptrs);
  Containerd__Services__Introspection__V1__PluginsResponse resp
      = CONTAINERD__SERVICES__INTROSPECTION__V1__PLUGINS_RESPONSE__INIT;
  bool ok = items && ptrs;
  for (size_t i = 0; ok && i < n; i++)
    {
      plugin *p = registry_at (d->reg, i);
      if (!filters_match (fs, plugin_field, p))
        continue;
      ok = fill_plugin (&a, p, &items[resp.n_plugins]);
      ptrs[resp.n_plugins] = &items[resp.n_plugins];
      resp.n_plugins++;
    }
  filters_free (fs);
  resp.plugins = ptrs;
  if (ok)
    {
      grpc_call_send (call, &resp.base);
      grpc_call_finish (call, 0, NULL);
    }
  else
    grpc_call_finish (call, BERTH_E_NOMEM, "out of memory listing plugins");
  arena_free (&a);
}

static void
introspection_server (grpc_call *call, const uint8_t *msg, size_t len, void *data)
{
  struct daemon *d = data;
  Containerd__Services__Introspection__V1__ServerResponse resp
      = CONTAINERD__SERVICES__INTROSPECTION__V1__SERVER_RESPONSE__INIT;
  resp.uuid = d->uuid;
  grpc_call_send (call, &resp.base);
  grpc_call_finish (call, 0, NULL);
}

int
service_introspection_register (struct daemon *d, berth_error **err)
{
  const struct grpc_method methods[] = {
    { .path = "/containerd.services.introspection.v1.Introspection/Plugins", .kind = GRPC_UNARY,
      .on_message = introspection_plugins, .data = d },
    { .path = "/containerd.services.introspection.v1.Introspection/Server", .kind = GRPC_UNARY,
      .on_message = introspection_server, .data = d },
  };
  for (size_t i = 0; i < ARRAY_SIZE (methods); i++)
    {
      int r = grpc_server_register (d->server, &methods[i]);
      if (r < 0)
        return berth_error_set (err, r, 0, "registering %s", methods[i].path);
    }
  return 0;
}
