/* hello-snapshotter: an out-of-tree berth plugin, written as a walk-through
 * for docs/plugin-author-guide.md.  Build it with nothing but
 *   cc $(pkg-config --cflags berth-plugin) -o hello-snapshotter.so hello-snapshotter.c \
 *      $(pkg-config --libs berth-plugin)
 *
 * It is a toy snapshotter: every snapshot is a plain directory under the
 * plugin's root (<root>/io.berth.snapshotter.v1.hello/snapshots/<n>), mounted
 * with a bind mount, and the list of snapshots lives in memory (it is lost
 * when berthd stops).  Parents are not layered: a child starts empty.  That
 * is enough to show every rule of the ABI a real plugin meets:
 *   - the descriptor and the entry symbol;
 *   - config_keys and host->cfg_get;
 *   - init / fini, with a self that fini frees even half-initialised;
 *   - output structs written only where BERTH_HAS says the host has room;
 *   - errors as BERTH_E_* codes with messages through host->error_set;
 *   - host builders (mounts_add) instead of allocations crossing the boundary;
 *   - methods left NULL (update, usage, view, cleanup) answer NOTSUP;
 *   - methods are called from worker threads, so the state is locked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <berth/config.h>
#include <berth/plugin.h>
#include <berth/snapshotter.h>

#define HELLO_MAX 64

struct hello_snapshot
{
  char key[BERTH_NAME_MAX];
  char parent[BERTH_NAME_MAX];
  uint32_t kind; /* enum berth_snapshot_kind */
  unsigned dir;  /* <root>/snapshots/<dir> */
  int64_t created_at;
};

/* The plugin's self: everything init builds, freed by fini. */
struct hello
{
  const struct berth_host *host;
  berth_plugin *plugin;
  char root[4096];
  char greeting[128];
  pthread_mutex_t lock; /* methods run on worker threads */
  struct hello_snapshot snaps[HELLO_MAX];
  size_t n;
  unsigned next_dir;
};

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Callers hold h->lock. */
static struct hello_snapshot *
hello_find (struct hello *h, const char *key)
{
  for (size_t i = 0; i < h->n; i++)
    if (strcmp (h->snaps[i].key, key) == 0)
      return &h->snaps[i];
  return NULL;
}

/* Copy a snapshot into a host-allocated info: only the fields the host's
 * struct has room for (it may be older or newer than ours). */
static void
hello_fill_info (const struct hello_snapshot *s, struct berth_snapshot_info *ret)
{
  if (BERTH_HAS (struct berth_snapshot_info, ret, kind))
    ret->kind = s->kind;
  /* Same BERTH_NAME_MAX arrays on both sides, always NUL-terminated. */
  if (BERTH_HAS (struct berth_snapshot_info, ret, name))
    memcpy (ret->name, s->key, sizeof ret->name);
  if (BERTH_HAS (struct berth_snapshot_info, ret, parent))
    memcpy (ret->parent, s->parent, sizeof ret->parent);
  if (BERTH_HAS (struct berth_snapshot_info, ret, created_at))
    ret->created_at = s->created_at;
  if (BERTH_HAS (struct berth_snapshot_info, ret, updated_at))
    ret->updated_at = s->created_at;
}

static int
hello_stat (void *self, berth_ctx *ctx, const char *key, struct berth_snapshot_info *ret_info, berth_error *err)
{
  struct hello *h = self;
  int r = 0;
  pthread_mutex_lock (&h->lock);
  struct hello_snapshot *s = hello_find (h, key);
  if (s == NULL)
    r = h->host->error_set (err, BERTH_E_NOTFOUND, 0, "snapshot %s does not exist", key);
  else
    hello_fill_info (s, ret_info);
  pthread_mutex_unlock (&h->lock);
  return r;
}

/* Add the bind mount of s to the host's list.  The host copies the strings:
 * nothing we allocate crosses the boundary. */
static int
hello_add_mount (struct hello *h, const struct hello_snapshot *s, berth_mounts *ret_mounts, berth_error *err)
{
  static const char *const rw[] = { "rbind", "rw", NULL };
  static const char *const ro[] = { "rbind", "ro", NULL };
  char source[4200];
  snprintf (source, sizeof source, "%s/snapshots/%u", h->root, s->dir);
  int r = h->host->mounts_add (ret_mounts, "bind", source, NULL, s->kind == BERTH_SNAPSHOT_ACTIVE ? rw : ro);
  if (r < 0)
    return h->host->error_set (err, r, 0, "adding the mount of %s", s->key);
  return 0;
}

static int
hello_mounts (void *self, berth_ctx *ctx, const char *key, berth_mounts *ret_mounts, berth_error *err)
{
  struct hello *h = self;
  int r;
  pthread_mutex_lock (&h->lock);
  struct hello_snapshot *s = hello_find (h, key);
  if (s == NULL)
    r = h->host->error_set (err, BERTH_E_NOTFOUND, 0, "snapshot %s does not exist", key);
  else if (s->kind == BERTH_SNAPSHOT_COMMITTED)
    r = h->host->error_set (err, BERTH_E_PRECONDITION, 0, "snapshot %s is committed: it has no mounts", key);
  else
    r = hello_add_mount (h, s, ret_mounts, err);
  pthread_mutex_unlock (&h->lock);
  return r;
}

/* Callers hold h->lock. */
static int
hello_prepare_locked (struct hello *h, const char *key, const char *parent, berth_mounts *ret_mounts,
                      berth_error *err)
{
  const struct hello_snapshot *p = parent && *parent ? hello_find (h, parent) : NULL;
  if (hello_find (h, key))
    return h->host->error_set (err, BERTH_E_EXISTS, 0, "snapshot %s already exists", key);
  if (parent && *parent && (p == NULL || p->kind != BERTH_SNAPSHOT_COMMITTED))
    return h->host->error_set (err, BERTH_E_NOTFOUND, 0, "parent %s is not a committed snapshot", parent);
  if (h->n == HELLO_MAX)
    return h->host->error_set (err, BERTH_E_EXHAUSTED, 0, "hello keeps at most %d snapshots", HELLO_MAX);

  struct hello_snapshot *s = &h->snaps[h->n];
  memset (s, 0, sizeof *s);
  snprintf (s->key, sizeof s->key, "%s", key);
  snprintf (s->parent, sizeof s->parent, "%s", parent ? parent : "");
  s->kind = BERTH_SNAPSHOT_ACTIVE;
  s->dir = h->next_dir++;
  s->created_at = now_ns ();
  char dir[4200];
  snprintf (dir, sizeof dir, "%s/snapshots/%u", h->root, s->dir);
  if (mkdir (dir, 0755) < 0 && errno != EEXIST)
    return h->host->error_set (err, BERTH_E_INTERNAL, errno, "mkdir %s", dir);
  int r = hello_add_mount (h, s, ret_mounts, err);
  if (r == 0)
    h->n++; /* only now is the new entry part of the list */
  return r;
}

static int
hello_prepare (void *self, berth_ctx *ctx, const char *key, const char *parent, const berth_labels *labels,
               berth_mounts *ret_mounts, berth_error *err)
{
  struct hello *h = self;
  pthread_mutex_lock (&h->lock);
  int r = hello_prepare_locked (h, key, parent, ret_mounts, err);
  pthread_mutex_unlock (&h->lock);
  return r;
}

static int
hello_commit (void *self, berth_ctx *ctx, const char *name, const char *key, const berth_labels *labels,
              berth_error *err)
{
  struct hello *h = self;
  int r = 0;
  pthread_mutex_lock (&h->lock);
  struct hello_snapshot *s = hello_find (h, key);
  if (s == NULL || s->kind != BERTH_SNAPSHOT_ACTIVE)
    r = h->host->error_set (err, BERTH_E_NOTFOUND, 0, "no active snapshot %s", key);
  else if (hello_find (h, name))
    r = h->host->error_set (err, BERTH_E_EXISTS, 0, "snapshot %s already exists", name);
  else
    {
      snprintf (s->key, sizeof s->key, "%s", name);
      s->kind = BERTH_SNAPSHOT_COMMITTED;
    }
  pthread_mutex_unlock (&h->lock);
  return r;
}

static int
hello_remove (void *self, berth_ctx *ctx, const char *key, berth_error *err)
{
  struct hello *h = self;
  int r = 0;
  pthread_mutex_lock (&h->lock);
  struct hello_snapshot *s = hello_find (h, key);
  if (s == NULL)
    r = h->host->error_set (err, BERTH_E_NOTFOUND, 0, "snapshot %s does not exist", key);
  else
    for (size_t i = 0; i < h->n && r == 0; i++)
      if (strcmp (h->snaps[i].parent, key) == 0)
        r = h->host->error_set (err, BERTH_E_PRECONDITION, 0, "snapshot %s has children", key);
  if (r == 0)
    {
      /* The directory stays: a real plugin would remove it here (or in
       * cleanup, to keep remove fast). */
      *s = h->snaps[--h->n];
    }
  pthread_mutex_unlock (&h->lock);
  return r;
}

static int
hello_walk (void *self, berth_ctx *ctx, const char *const *filters, berth_snapshot_info_fn fn, void *data,
            berth_error *err)
{
  struct hello *h = self;
  int r = 0;
  /* A snapshot of the list, so that fn may call back into the plugin. */
  struct hello_snapshot copy[HELLO_MAX];
  pthread_mutex_lock (&h->lock);
  size_t n = h->n;
  memcpy (copy, h->snaps, n * sizeof copy[0]);
  pthread_mutex_unlock (&h->lock);
  for (size_t i = 0; i < n && r == 0; i++)
    {
      struct berth_snapshot_info info = { .size = sizeof info };
      hello_fill_info (&copy[i], &info);
      r = fn (&info, data);
    }
  return r;
}

/* update, usage, view and cleanup stay NULL: the host answers NOTSUP. */
static const struct berth_snapshotter_ops hello_ops = {
  .size = sizeof (struct berth_snapshotter_ops),
  .stat = hello_stat,
  .mounts = hello_mounts,
  .prepare = hello_prepare,
  .commit = hello_commit,
  .remove = hello_remove,
  .walk = hello_walk,
};

/* [plugins."io.berth.snapshotter.v1.hello"] greeting = "..." */
static const struct berth_config_key k_greeting
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "greeting", "\"hello\"", "what the plugin logs when it starts");
static const struct berth_config_key *const hello_keys[] = { &k_greeting, NULL };

static void hello_fini (void *self);

static int
hello_init (const struct berth_host *host, const struct berth_init_ctx *ictx, void **ret_self, berth_error *err)
{
  /* The host table may be older than our header: check what we use. */
  if (!BERTH_HAS (struct berth_host, host, add_capability))
    return BERTH_E_NOTSUP;

  struct hello *h = calloc (1, sizeof *h);
  if (h == NULL)
    return host->error_set (err, BERTH_E_NOMEM, ENOMEM, "hello");
  h->host = host;
  h->plugin = ictx->plugin;
  pthread_mutex_init (&h->lock, NULL);
  /* Hand self over at once: if anything below fails, the host calls fini
   * with this half-initialised self. */
  *ret_self = h;

  struct berth_cfg_value v = { .size = sizeof v };
  int r = host->cfg_get (ictx->plugin, "greeting", &v);
  if (r < 0 && r != BERTH_E_NOTFOUND)
    return host->error_set (err, r, 0, "reading greeting");
  snprintf (h->greeting, sizeof h->greeting, "%s", r == 0 && v.type == BERTH_CFG_STRING && v.s ? v.s : "hello");

  /* ictx->root is <root>/io.berth.snapshotter.v1.hello, made by the host. */
  if (ictx->root == NULL)
    return host->error_set (err, BERTH_E_SKIP, 0, "no root directory given");
  snprintf (h->root, sizeof h->root, "%s", ictx->root);
  char dir[4200];
  snprintf (dir, sizeof dir, "%s/snapshots", h->root);
  if (mkdir (dir, 0700) < 0 && errno != EEXIST)
    return host->error_set (err, BERTH_E_INTERNAL, errno, "mkdir %s", dir);

  host->set_export (ictx->plugin, "root", h->root);
  host->add_capability (ictx->plugin, "bind");
  host->log (ictx->plugin, BERTH_LOG_INFO, "%s from the example snapshotter (ABI %d.%d, host %u.%u)", h->greeting,
             BERTH_ABI_MAJOR, BERTH_ABI_MINOR, host->abi_major, host->abi_minor);
  return 0;
}

static void
hello_fini (void *self)
{
  struct hello *h = self;
  if (h == NULL) /* init may have failed before allocating */
    return;
  pthread_mutex_destroy (&h->lock);
  free (h);
}

static const struct berth_plugin_desc hello_desc = {
  BERTH_PLUGIN_DESC_HEADER,
  .kind = BERTH_KIND_SNAPSHOTTER,
  .type = "io.berth.snapshotter.v1",
  .id = "hello",
  .version = "0.1.0",
  .requires = NULL,
  .config_keys = hello_keys,
  .init = hello_init,
  .fini = hello_fini,
  .ops = &hello_ops,
  .description = "example snapshotter: a bind-mounted directory per snapshot",
};

static const struct berth_plugin_desc *const hello_plugins[] = { &hello_desc, NULL };

/* The only symbol the plugin exports (the rest is hidden by -fvisibility=hidden). */
BERTH_PUBLIC const struct berth_plugin_desc *const *
BERTH_PLUGIN_ENTRY (void)
{
  return hello_plugins;
}
