/* Mark-and-sweep GC of content (see gc.h for the rules and the contract). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <berth/failpoint.h>

#include "cleanup.h"
#include "gc.h"
#include "log.h"
#include "plugin-calls.h"
#include "snapshots.h"

#define LABEL_ROOT "containerd.io/gc.root"
#define LABEL_REF_CONTENT "containerd.io/gc.ref.content"
#define LABEL_REF_SNAPSHOT "containerd.io/gc.ref.snapshot."

#define WHY_CONTENT "unreferenced: no image, lease or gc.ref label points at it"
#define WHY_BLOB "no namespace has a content record for it"
#define WHY_SNAPSHOT "unreferenced: no lease, gc.root label, gc.ref.snapshot label or child snapshot points at it"

static char instance[33];
static pthread_once_t instance_once = PTHREAD_ONCE_INIT;

static void
instance_init (void)
{
  unsigned char rnd[16] = { 0 };
  FILE *f = fopen ("/dev/urandom", "re");
  size_t n = f ? fread (rnd, 1, sizeof rnd, f) : 0;
  if (f)
    fclose (f);
  if (n != sizeof rnd)
    {
      /* No urandom: the time and pid still differ from any earlier daemon's. */
      struct timespec ts;
      clock_gettime (CLOCK_REALTIME, &ts);
      snprintf (instance, sizeof instance, "%016llx%08x%08x", (unsigned long long) ts.tv_sec, (unsigned) ts.tv_nsec,
                (unsigned) getpid ());
      return;
    }
  for (size_t i = 0; i < sizeof rnd; i++)
    snprintf (instance + 2 * i, 3, "%02x", rnd[i]);
}

const char *
gc_instance (void)
{
  pthread_once (&instance_once, instance_init);
  return instance;
}

const char *
gc_kind_name (enum gc_kind k)
{
  switch (k)
    {
    case GC_CONTENT: return "content";
    case GC_LEASE: return "lease";
    case GC_BLOB: return "blob";
    case GC_SNAPSHOT: return "snapshot";
    }
  return "?";
}

void
gc_report_clear (struct gc_report *r)
{
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->n; i++)
    {
      free (r->items[i].ns);
      free (r->items[i].id);
      free (r->items[i].reason);
    }
  free (r->items);
  memset (r, 0, sizeof *r);
}

static int64_t
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
report_add (struct gc_report *rep, enum gc_kind kind, const char *ns, const char *id, int64_t size,
            const char *reason, berth_error **err)
{
  struct gc_item *v = realloc (rep->items, (rep->n + 1) * sizeof *v);
  if (v == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc report");
  rep->items = v;
  struct gc_item *it = &v[rep->n];
  *it = (struct gc_item){ .kind = kind, .size = size };
  it->ns = ns ? strdup (ns) : NULL;
  it->id = strdup (id);
  it->reason = strdup (reason);
  rep->n++;
  if ((ns && it->ns == NULL) || it->id == NULL || it->reason == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc report");
  return 0;
}

/* ---- a sorted set of strings ---------------------------------------- */

struct strset
{
  char **v;
  size_t n, cap;
  bool sorted;
};

static void
strset_clear (struct strset *s)
{
  for (size_t i = 0; i < s->n; i++)
    free (s->v[i]);
  free (s->v);
  memset (s, 0, sizeof *s);
}

static int
strset_add (struct strset *s, const char *str)
{
  if (s->n == s->cap)
    {
      size_t cap = s->cap ? 2 * s->cap : 64;
      char **v = realloc (s->v, cap * sizeof *v);
      if (v == NULL)
        return BERTH_E_NOMEM;
      s->v = v;
      s->cap = cap;
    }
  if ((s->v[s->n] = strdup (str)) == NULL)
    return BERTH_E_NOMEM;
  s->n++;
  s->sorted = false;
  return 0;
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static bool
strset_has (struct strset *s, const char *str)
{
  if (!s->sorted)
    {
      if (s->n)
        qsort (s->v, s->n, sizeof *s->v, cmp_str);
      s->sorted = true;
    }
  return s->n && bsearch (&str, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

/* ---- one namespace's graph ------------------------------------------ */

struct root
{
  char *desc;          /* "image docker.io/library/busybox:latest" */
  const char *digest;  /* first node */
  char *edge;          /* how the root reaches it: "index", "label ...", NULL */
  char *snapshotter;   /* non-NULL: the root is snapshot (snapshotter, digest) */
};

struct ns_graph
{
  const char *ns;
  struct meta_content *recs; /* sorted by digest (meta_content_list) */
  size_t nrecs;
  struct meta_image *imgs;
  size_t nimgs;
  struct meta_lease *leases;
  size_t nleases;
  bool *expired; /* per lease */
  struct meta_lease_resource **res;
  size_t *nres;
  struct root *roots;
  size_t nroots;
  /* Snapshot nodes follow the content nodes: node nrecs + i is snaps[i]. */
  struct meta_snapshot *snaps; /* sorted by snapshotter, key */
  size_t nsnaps;
  char **snap_names; /* "snapshot <snapshotter>/<key>" */
  /* Containers are roots: their snapshot and gc.ref labels. */
  struct meta_container *ctrs;
  size_t nctrs;
};

static void
graph_clear (struct ns_graph *g)
{
  meta_contents_free (g->recs, g->nrecs);
  meta_images_free (g->imgs, g->nimgs);
  for (size_t i = 0; g->res && i < g->nleases; i++)
    meta_lease_resources_free (g->res[i], g->nres[i]);
  meta_leases_free (g->leases, g->nleases);
  free (g->res);
  free (g->nres);
  free (g->expired);
  for (size_t i = 0; i < g->nroots; i++)
    {
      free (g->roots[i].desc);
      free (g->roots[i].edge);
      free (g->roots[i].snapshotter);
    }
  free (g->roots);
  for (size_t i = 0; g->snap_names && i < g->nsnaps; i++)
    free (g->snap_names[i]);
  free (g->snap_names);
  meta_snapshots_free (g->snaps, g->nsnaps);
  meta_containers_free (g->ctrs, g->nctrs);
  memset (g, 0, sizeof *g);
}

static ssize_t
graph_find (const struct ns_graph *g, const char *digest)
{
  size_t lo = 0, hi = g->nrecs;
  while (lo < hi)
    {
      size_t mid = (lo + hi) / 2;
      int c = strcmp (g->recs[mid].digest, digest);
      if (c == 0)
        return (ssize_t) mid;
      if (c < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return -1;
}

/* Snapshot node of (snapshotter[0..snlen), key), or -1. */
static ssize_t
graph_find_snap (const struct ns_graph *g, const char *sn, size_t snlen, const char *key)
{
  size_t lo = 0, hi = g->nsnaps;
  while (lo < hi)
    {
      size_t mid = (lo + hi) / 2;
      const char *msn = g->snaps[mid].snapshotter;
      int c = strncmp (msn, sn, snlen);
      if (c == 0)
        c = msn[snlen] == '\0' ? 0 : 1;
      if (c == 0)
        c = strcmp (g->snaps[mid].key, key);
      if (c == 0)
        return (ssize_t) (g->nrecs + mid);
      if (c < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  return -1;
}

/* containerd.io/gc.ref.snapshot.<snapshotter>[/<name>]: the snapshotter's
 * name and length, or NULL. */
static const char *
snap_ref_label (const char *key, size_t *ret_len)
{
  size_t n = strlen (LABEL_REF_SNAPSHOT);
  if (strncmp (key, LABEL_REF_SNAPSHOT, n) != 0 || key[n] == '\0' || key[n] == '/')
    return NULL;
  const char *sn = key + n;
  const char *slash = strchr (sn, '/');
  *ret_len = slash ? (size_t) (slash - sn) : strlen (sn);
  return sn;
}

/* The name of node i for reports. */
static const char *
node_name (const struct ns_graph *g, size_t i)
{
  return i < g->nrecs ? g->recs[i].digest : g->snap_names[i - g->nrecs];
}

static const berth_labels *
node_labels (const struct ns_graph *g, size_t i)
{
  return i < g->nrecs ? &g->recs[i].labels : &g->snaps[i - g->nrecs].labels;
}

static bool
is_ref_label (const char *key)
{
  size_t n = strlen (LABEL_REF_CONTENT);
  return strncmp (key, LABEL_REF_CONTENT, n) == 0 && (key[n] == '\0' || key[n] == '.');
}

static const char *
media_kind (const char *mt)
{
  if (mt == NULL)
    return NULL;
  if (strstr (mt, "index") || strstr (mt, "manifest.list"))
    return "index";
  if (strstr (mt, "manifest"))
    return "manifest";
  if (strstr (mt, "config"))
    return "config";
  if (strstr (mt, "layer") || strstr (mt, "rootfs"))
    return "layer";
  return NULL;
}

static int
graph_add_root (struct ns_graph *g, const char *digest, const char *edge, const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static int
graph_add_root (struct ns_graph *g, const char *digest, const char *edge, const char *fmt, ...)
{
  struct root *v = realloc (g->roots, (g->nroots + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  g->roots = v;
  struct root *rt = &v[g->nroots];
  *rt = (struct root){ .digest = digest };
  va_list ap;
  va_start (ap, fmt);
  int n = vasprintf (&rt->desc, fmt, ap);
  va_end (ap);
  if (n < 0)
    return BERTH_E_NOMEM;
  g->nroots++;
  if (edge && (rt->edge = strdup (edge)) == NULL)
    return BERTH_E_NOMEM;
  return 0;
}

/* A root that is a snapshot; edge is the label that names it, or NULL. */
static int
graph_add_snap_root (struct ns_graph *g, const char *sn, size_t snlen, const char *key, const char *label,
                     const char *fmt, ...) __attribute__ ((format (printf, 6, 7)));

static int
graph_add_snap_root (struct ns_graph *g, const char *sn, size_t snlen, const char *key, const char *label,
                     const char *fmt, ...)
{
  _cleanup_free_ char *desc = NULL;
  va_list ap;
  va_start (ap, fmt);
  int n = vasprintf (&desc, fmt, ap);
  va_end (ap);
  if (n < 0)
    return BERTH_E_NOMEM;
  _cleanup_free_ char *edge = NULL;
  if (label && asprintf (&edge, "label %s", label) < 0)
    return BERTH_E_NOMEM;
  int r = graph_add_root (g, key, edge, "%s", desc);
  if (r < 0)
    return r;
  g->roots[g->nroots - 1].snapshotter = strndup (sn, snlen);
  return g->roots[g->nroots - 1].snapshotter ? 0 : BERTH_E_NOMEM;
}

/* A snapshot that a pull of an earlier daemon process prepared and never
 * committed (see GC_LABEL_PULL_INSTANCE): nobody will finish it. */
static bool
dead_pull_extract (const struct meta_lease *l, const char *key)
{
  const char *inst = labels_get (&l->labels, GC_LABEL_PULL_INSTANCE);
  return inst && strcmp (inst, gc_instance ()) != 0 && strncmp (key, "extract-", 8) == 0;
}

static int
graph_load (meta *m, const char *ns, int64_t now, struct ns_graph *g, berth_error **err)
{
  memset (g, 0, sizeof *g);
  g->ns = ns;
  int r = meta_content_list (m, ns, NULL, 0, &g->recs, &g->nrecs, err);
  if (r == 0)
    r = meta_image_list (m, ns, NULL, 0, &g->imgs, &g->nimgs, err);
  if (r == 0)
    r = meta_lease_list (m, ns, NULL, 0, &g->leases, &g->nleases, err);
  if (r == 0)
    r = meta_snapshot_list (m, ns, NULL, NULL, 0, &g->snaps, &g->nsnaps, err);
  if (r == 0)
    r = meta_container_list (m, ns, NULL, 0, &g->ctrs, &g->nctrs, err);
  if (r < 0)
    return r;
  g->snap_names = calloc (g->nsnaps + 1, sizeof *g->snap_names);
  if (g->snap_names == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
  for (size_t i = 0; i < g->nsnaps; i++)
    if (asprintf (&g->snap_names[i], "snapshot %s/%s", g->snaps[i].snapshotter, g->snaps[i].key) < 0)
      {
        g->snap_names[i] = NULL;
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
      }
  g->res = calloc (g->nleases + 1, sizeof *g->res);
  g->nres = calloc (g->nleases + 1, sizeof *g->nres);
  g->expired = calloc (g->nleases + 1, sizeof *g->expired);
  if (g->res == NULL || g->nres == NULL || g->expired == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
  for (size_t i = 0; r == 0 && i < g->nleases; i++)
    {
      int64_t exp = meta_lease_expiry (&g->leases[i]);
      g->expired[i] = exp != 0 && exp <= now;
      r = meta_lease_list_resources (m, ns, g->leases[i].id, &g->res[i], &g->nres[i], err);
    }
  if (r < 0)
    return r;

  /* Roots. */
  for (size_t i = 0; r == 0 && i < g->nimgs; i++)
    {
      const struct meta_image *img = &g->imgs[i];
      r = graph_add_root (g, img->target.digest, media_kind (img->target.media_type), "image %s", img->name);
      size_t it = 0;
      const char *k, *v;
      while (r == 0 && labels_next (&img->labels, &it, &k, &v))
        if (is_ref_label (k))
          {
            _cleanup_free_ char *edge = NULL;
            if (asprintf (&edge, "label %s", k) < 0)
              return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
            r = graph_add_root (g, v, edge, "image %s", img->name);
          }
    }
  for (size_t i = 0; r == 0 && i < g->nimgs; i++)
    {
      size_t it = 0, snlen;
      const char *k, *v, *sn;
      while (r == 0 && labels_next (&g->imgs[i].labels, &it, &k, &v))
        if ((sn = snap_ref_label (k, &snlen)) != NULL)
          r = graph_add_snap_root (g, sn, snlen, v, k, "image %s", g->imgs[i].name);
    }
  /* A container holds its snapshot (containerd's gc: container → snapshot)
   * and whatever its gc.ref labels name; its image is a root of its own. */
  for (size_t i = 0; r == 0 && i < g->nctrs; i++)
    {
      const struct meta_container *c = &g->ctrs[i];
      if (c->snapshot_key[0] && c->snapshotter[0])
        r = graph_add_snap_root (g, c->snapshotter, strlen (c->snapshotter), c->snapshot_key, NULL, "container %s",
                                 c->id);
      size_t it = 0, snlen;
      const char *k, *v, *sn;
      while (r == 0 && labels_next (&c->labels, &it, &k, &v))
        if (is_ref_label (k))
          {
            _cleanup_free_ char *edge = NULL;
            if (asprintf (&edge, "label %s", k) < 0)
              return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
            r = graph_add_root (g, v, edge, "container %s", c->id);
          }
        else if ((sn = snap_ref_label (k, &snlen)) != NULL)
          r = graph_add_snap_root (g, sn, snlen, v, k, "container %s", c->id);
    }
  for (size_t i = 0; r == 0 && i < g->nleases; i++)
    for (size_t j = 0; r == 0 && !g->expired[i] && j < g->nres[i]; j++)
      if (strcmp (g->res[i][j].type, "content") == 0)
        r = graph_add_root (g, g->res[i][j].id, NULL, "lease %s", g->leases[i].id);
      else if (strncmp (g->res[i][j].type, "snapshots/", 10) == 0 && dead_pull_extract (&g->leases[i], g->res[i][j].id))
        continue; /* half made by a pull that died with an earlier daemon */
      else if (strncmp (g->res[i][j].type, "snapshots/", 10) == 0)
        r = graph_add_snap_root (g, g->res[i][j].type + 10, strlen (g->res[i][j].type + 10), g->res[i][j].id, NULL,
                                 "lease %s", g->leases[i].id);
  for (size_t i = 0; r == 0 && i < g->nsnaps; i++)
    if (labels_get (&g->snaps[i].labels, LABEL_ROOT))
      r = graph_add_snap_root (g, g->snaps[i].snapshotter, strlen (g->snaps[i].snapshotter), g->snaps[i].key,
                               NULL, "snapshot labelled " LABEL_ROOT);
  for (size_t i = 0; r == 0 && i < g->nrecs; i++)
    if (labels_get (&g->recs[i].labels, LABEL_ROOT))
      r = graph_add_root (g, g->recs[i].digest, "label " LABEL_ROOT, "content");
  if (r < 0)
    return berth_error_set (err, r, 0, "gc: building the reference graph of namespace `%s`", ns);
  return 0;
}

/* Breadth-first walk from the given roots (all when only < 0); marks
 * reachable records; parent[i]/edge[i] tell how i was reached (parent -1:
 * straight from root root_of[i]). */
struct walk
{
  bool *marked;
  ssize_t *parent;
  const char **edge;
  size_t *root_of;
};

static void
walk_free (struct walk *w)
{
  free (w->marked);
  free (w->parent);
  free (w->edge);
  free (w->root_of);
}

static int
graph_walk (const struct ns_graph *g, ssize_t only, struct walk *w)
{
  size_t n = g->nrecs + g->nsnaps + 1;
  w->marked = calloc (n, sizeof *w->marked);
  w->parent = calloc (n, sizeof *w->parent);
  w->edge = calloc (n, sizeof *w->edge);
  w->root_of = calloc (n, sizeof *w->root_of);
  _cleanup_free_ size_t *queue = calloc (n, sizeof *queue);
  if (w->marked == NULL || w->parent == NULL || w->edge == NULL || w->root_of == NULL || queue == NULL)
    return BERTH_E_NOMEM;
  size_t head = 0, tail = 0;
  for (size_t ri = 0; ri < g->nroots; ri++)
    {
      if (only >= 0 && (size_t) only != ri)
        continue;
      const struct root *rt = &g->roots[ri];
      ssize_t i = rt->snapshotter ? graph_find_snap (g, rt->snapshotter, strlen (rt->snapshotter), rt->digest)
                                  : graph_find (g, rt->digest);
      if (i < 0 || w->marked[i])
        continue;
      w->marked[i] = true;
      w->parent[i] = -1;
      w->edge[i] = g->roots[ri].edge;
      w->root_of[i] = ri;
      queue[tail++] = (size_t) i;
    }
  while (head < tail)
    {
      size_t i = queue[head++];
      size_t it = 0;
      const char *k, *v;
      if (i >= g->nrecs && *g->snaps[i - g->nrecs].parent)
        {
          const struct meta_snapshot *sp = &g->snaps[i - g->nrecs];
          ssize_t j = graph_find_snap (g, sp->snapshotter, strlen (sp->snapshotter), sp->parent);
          if (j >= 0 && !w->marked[j])
            {
              w->marked[j] = true;
              w->parent[j] = (ssize_t) i;
              w->edge[j] = "parent";
              w->root_of[j] = w->root_of[i];
              queue[tail++] = (size_t) j;
            }
        }
      while (labels_next (node_labels (g, i), &it, &k, &v))
        {
          size_t snlen;
          const char *sn;
          ssize_t j = -1;
          if (is_ref_label (k))
            j = graph_find (g, v);
          else if ((sn = snap_ref_label (k, &snlen)) != NULL)
            j = graph_find_snap (g, sn, snlen, v);
          if (j < 0 || w->marked[j])
            continue;
          w->marked[j] = true;
          w->parent[j] = (ssize_t) i;
          w->edge[j] = k;
          w->root_of[j] = w->root_of[i];
          queue[tail++] = (size_t) j;
        }
    }
  return 0;
}

/* ---- collect ----------------------------------------------------------- */

struct blob
{
  char digest[BERTH_DIGEST_MAX];
  int64_t size;
};

struct blob_list
{
  struct blob *v;
  size_t n;
};

static int
collect_blob (const struct berth_content_info *info, void *data)
{
  struct blob_list *bl = data;
  struct blob *v = realloc (bl->v, (bl->n + 1) * sizeof *v);
  if (v == NULL)
    return BERTH_E_NOMEM;
  bl->v = v;
  snprintf (v[bl->n].digest, sizeof v[bl->n].digest, "%s", info->digest);
  v[bl->n].size = info->blob_size;
  bl->n++;
  return 0;
}

/* Remove the unmarked snapshot records, children first (every descendant of
 * an unmarked snapshot is unmarked too: a marked child marks its parent). */
static int
sweep_snapshots (meta *m, const struct ns_graph *g, const struct walk *w, bool dry_run, struct gc_report *rep,
                 berth_error **err)
{
  _cleanup_free_ bool *gone = calloc (g->nsnaps + 1, sizeof *gone);
  if (gone == NULL)
    return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
  int r = 0;
  for (bool progress = true; r == 0 && progress;)
    {
      progress = false;
      for (size_t i = 0; r == 0 && i < g->nsnaps; i++)
        {
          const struct meta_snapshot *s = &g->snaps[i];
          if (w->marked[g->nrecs + i] || gone[i])
            continue;
          bool children = false;
          for (size_t c = 0; !children && c < g->nsnaps; c++)
            children = !gone[c] && strcmp (g->snaps[c].parent, s->key) == 0
                       && strcmp (g->snaps[c].snapshotter, s->snapshotter) == 0;
          if (children)
            continue;
          if (!dry_run)
            {
              BERTH_FAILPOINT ("gc-sweep-snapshot");
              _cleanup_error_ berth_error *e = NULL;
              int rr = meta_snapshot_remove (m, g->ns, s->snapshotter, s->key, NULL, &e);
              if (rr < 0 && rr != BERTH_E_NOTFOUND)
                {
                  r = berth_error_take (err, TAKE_PTR (e));
                  break;
                }
            }
          gone[i] = true;
          progress = true;
          _cleanup_free_ char *id = NULL;
          if (asprintf (&id, "%s/%s", s->snapshotter, s->key) < 0)
            return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
          r = report_add (rep, GC_SNAPSHOT, g->ns, id, 0, WHY_SNAPSHOT, err);
        }
    }
  return r;
}

static int
collect_ns (meta *m, const char *ns, bool sweep, bool dry_run, int64_t now, struct strset *survivors,
            struct gc_report *rep, berth_error **err)
{
  struct ns_graph g;
  struct walk w = { 0 };
  int r = graph_load (m, ns, now, &g, err);
  if (r == 0 && (r = graph_walk (&g, -1, &w)) < 0)
    r = berth_error_set (err, r, 0, "gc: marking namespace `%s`", ns);
  for (size_t i = 0; r == 0 && sweep && i < g.nleases; i++)
    if (g.expired[i])
      {
        _cleanup_free_ char *why = NULL;
        if (asprintf (&why, "expired at %s", labels_get (&g.leases[i].labels, "containerd.io/gc.expire")) < 0)
          r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
        if (r == 0 && !dry_run)
          r = meta_lease_delete (m, ns, g.leases[i].id, err);
        if (r == 0)
          r = report_add (rep, GC_LEASE, ns, g.leases[i].id, 0, why, err);
      }
  for (size_t i = 0; r == 0 && i < g.nrecs; i++)
    {
      if (w.marked[i] || !sweep)
        {
          if (strset_add (survivors, g.recs[i].digest) < 0)
            r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc");
          continue;
        }
      if (!dry_run)
        BERTH_FAILPOINT ("gc-sweep-content");
      if (!dry_run)
        r = meta_content_delete (m, ns, g.recs[i].digest, err);
      if (r == 0)
        r = report_add (rep, GC_CONTENT, ns, g.recs[i].digest, g.recs[i].size, WHY_CONTENT, err);
    }
  if (r == 0 && sweep)
    r = sweep_snapshots (m, &g, &w, dry_run, rep, err);
  walk_free (&w);
  graph_clear (&g);
  return r;
}

int
gc_collect (meta *m, plugin *store, const char *ns, bool dry_run, int64_t now, struct gc_report *ret,
            berth_error **err)
{
  int64_t t0 = now_ns ();
  memset (ret, 0, sizeof *ret);
  ret->dry_run = dry_run;
  struct meta_namespace *nss = NULL;
  size_t nns = 0;
  struct strset survivors = { 0 };
  struct blob_list blobs = { 0 };
  meta_lock (m);
  int r = meta_namespace_list (m, &nss, &nns, err);
  for (size_t i = 0; r == 0 && i < nns; i++)
    r = collect_ns (m, nss[i].name, ns == NULL || strcmp (ns, nss[i].name) == 0, dry_run, now, &survivors, ret, err);
  if (r == 0 && store)
    {
      berth_ctx ctx;
      ctx_init (&ctx, NULL, NULL);
      r = content_walk (store, &ctx, NULL, collect_blob, &blobs, err);
      for (size_t i = 0; r == 0 && i < blobs.n; i++)
        {
          if (strset_has (&survivors, blobs.v[i].digest))
            continue;
          if (!dry_run)
            {
              BERTH_FAILPOINT ("gc-sweep-blob");
              _cleanup_error_ berth_error *e = NULL;
              int rd = content_delete (store, &ctx, blobs.v[i].digest, &e);
              if (rd == BERTH_E_NOTFOUND)
                continue; /* gone meanwhile */
              if (rd < 0)
                {
                  r = berth_error_take (err, TAKE_PTR (e));
                  break;
                }
            }
          ret->bytes += blobs.v[i].size;
          r = report_add (ret, GC_BLOB, NULL, blobs.v[i].digest, blobs.v[i].size, WHY_BLOB, err);
        }
    }
  meta_unlock (m);
  free (blobs.v);
  strset_clear (&survivors);
  meta_namespaces_free (nss, nns);
  ret->duration_ns = now_ns () - t0;
  if (r < 0)
    return berth_error_wrap (err, "garbage collection");
  return 0;
}

/* ---- explain ----------------------------------------------------------- */

static int
append (char **text, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
append (char **text, const char *fmt, ...)
{
  _cleanup_free_ char *add = NULL;
  va_list ap;
  va_start (ap, fmt);
  int n = vasprintf (&add, fmt, ap);
  va_end (ap);
  if (n < 0)
    return BERTH_E_NOMEM;
  size_t old = *text ? strlen (*text) : 0;
  char *t = realloc (*text, old + (size_t) n + 1);
  if (t == NULL)
    return BERTH_E_NOMEM;
  memcpy (t + old, add, (size_t) n + 1);
  *text = t;
  return 0;
}

/* One line per root that reaches digest in g; *found counts them. */
static int
explain_ns (const struct ns_graph *g, ssize_t target, bool prefix_ns, char **text, size_t *found)
{
  for (size_t ri = 0; ri < g->nroots; ri++)
    {
      struct walk w = { 0 };
      int r = graph_walk (g, (ssize_t) ri, &w);
      if (r < 0 || !w.marked[target])
        {
          walk_free (&w);
          if (r < 0)
            return r;
          continue;
        }
      /* Path from the root to target, reversed. */
      size_t len = 0;
      for (ssize_t i = target; i >= 0; i = w.parent[i])
        len++;
      _cleanup_free_ ssize_t *path = calloc (len, sizeof *path);
      if (path == NULL)
        {
          walk_free (&w);
          return BERTH_E_NOMEM;
        }
      size_t k = len;
      for (ssize_t i = target; i >= 0; i = w.parent[i])
        path[--k] = i;
      if (prefix_ns)
        r = append (text, "namespace %s: ", g->ns);
      if (r == 0)
        r = append (text, "%s", g->roots[ri].desc);
      for (size_t p = 0; r == 0 && p < len; p++)
        {
          const char *edge = w.edge[path[p]];
          const char *digest = node_name (g, (size_t) path[p]);
          if (p == 0 && edge && strncmp (edge, "label ", 6) != 0)
            r = append (text, " -> %s %s", edge, digest); /* "index sha256:..." */
          else if (p == 0 && edge)
            r = append (text, " -> %s (%s)", digest, edge);
          else if (p == 0)
            r = append (text, " -> %s", digest);
          else if (strcmp (edge, "parent") == 0)
            r = append (text, " -> %s (parent)", digest);
          else
            r = append (text, " -> %s (label %s)", digest, edge);
        }
      if (r == 0)
        r = append (text, "\n");
      walk_free (&w);
      if (r < 0)
        return r;
      (*found)++;
    }
  return 0;
}

int
gc_explain_in (meta *m, plugin *store, const char *ns, const char *digest, int64_t now, char **ret_text,
               berth_error **err)
{
  _cleanup_free_ char *text = NULL;
  struct meta_namespace *nss = NULL;
  size_t nns = 0;
  size_t records = 0, found = 0;
  meta_lock (m);
  int r = meta_namespace_list (m, &nss, &nns, err);
  for (size_t i = 0; r == 0 && i < nns; i++)
    {
      if (ns && strcmp (ns, nss[i].name) != 0)
        continue;
      struct ns_graph g;
      r = graph_load (m, nss[i].name, now, &g, err);
      ssize_t target = r == 0 ? graph_find (&g, digest) : -1;
      if (target >= 0)
        {
          records++;
          size_t before = found;
          r = explain_ns (&g, target, ns == NULL, &text, &found);
          if (r == 0 && found == before)
            r = append (&text, "%s%s%s%s: not referenced (would be collected): " WHY_CONTENT "\n",
                        ns ? "" : "namespace ", ns ? "" : nss[i].name, ns ? "" : ": ", digest);
          if (r < 0)
            r = berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc explain");
        }
      graph_clear (&g);
    }
  bool blob = false;
  if (r == 0 && records == 0 && store)
    {
      struct berth_content_info info = { .size = sizeof info };
      berth_labels labels = { 0 };
      info.labels = &labels;
      berth_ctx ctx;
      ctx_init (&ctx, NULL, NULL);
      _cleanup_error_ berth_error *e = NULL;
      int ri = content_info (store, &ctx, digest, &info, &e);
      labels_clear (&labels);
      blob = ri == 0;
      if (ri < 0 && ri != BERTH_E_NOTFOUND)
        r = berth_error_take (err, TAKE_PTR (e));
    }
  bool elsewhere = false;
  if (r == 0 && records == 0 && ns)
    r = meta_content_referenced (m, digest, &elsewhere, err);
  meta_unlock (m);
  meta_namespaces_free (nss, nns);
  if (r < 0)
    return r;
  if (records == 0)
    {
      if (elsewhere)
        r = append (&text, "%s: no content record in namespace `%s` (other namespaces reference it)\n", digest, ns);
      else if (blob)
        r = append (&text, "%s: not referenced (would be collected): " WHY_BLOB "\n", digest);
      else
        return berth_error_set (err, BERTH_E_NOTFOUND, 0, "content %s: not found%s%s", digest,
                                ns ? " in namespace " : "", ns ? ns : "");
      if (r < 0)
        return berth_error_set (err, BERTH_E_NOMEM, ENOMEM, "gc explain");
    }
  *ret_text = TAKE_PTR (text);
  return 0;
}

/* ---- the daemon's side --------------------------------------------- */

int
gc_content_store (struct daemon *d, plugin **ret, berth_error **err)
{
  static const char type[] = "io.berth.content.v1", id[] = "local";
  plugin *p = d->reg ? registry_find (d->reg, type, id) : NULL;
  if (p == NULL)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "content store %s.%s is not loaded", type, id);
  if (p->status != PLUGIN_OK)
    return berth_error_set (err, BERTH_E_UNAVAILABLE, 0, "content store %s is %s%s%s", p->full_name,
                            plugin_status_name (p->status), p->error ? ": " : "", p->error ? p->error : "");
  *ret = p;
  return 0;
}

static int
rm_entry (const char *path, const struct stat *st, int type, struct FTW *f)
{
  (void) st;
  (void) f;
  return (type == FTW_DP ? rmdir (path) : unlink (path)) < 0 && errno != ENOENT ? -1 : 0;
}

/* Remove the pull staging trees of earlier daemon processes
 * (<root>/io.berth.unpack/<instance>/<lease>-<layer>); ours are removed by
 * the pulls themselves.  Best effort: a failure is logged and retried at
 * the next run. */
static void
sweep_staging (const char *root)
{
  _cleanup_free_ char *dir = NULL;
  if (root == NULL || asprintf (&dir, "%s/" GC_STAGING_DIR, root) < 0)
    return;
  DIR *dp = opendir (dir);
  if (dp == NULL)
    return;
  struct dirent *e;
  while ((e = readdir (dp)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0 || strcmp (e->d_name, gc_instance ()) == 0)
        continue;
      _cleanup_free_ char *path = NULL;
      if (asprintf (&path, "%s/%s", dir, e->d_name) < 0)
        break;
      if (nftw (path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
        log_warning ("gc: removing the staging tree %s of an earlier daemon: %s", path, strerror (errno));
      else
        log_info ("gc: removed the staging tree %s of a pull that died with an earlier daemon", path);
    }
  closedir (dp);
}

int
gc_run (struct daemon *d, const char *ns, bool dry_run, struct gc_report *ret, berth_error **err)
{
  plugin *store = NULL;
  _cleanup_error_ berth_error *e = NULL;
  /* Without a store GC still sweeps the metadata; blobs wait for a run
   * with the store present. */
  gc_content_store (d, &store, &e);
  /* Mutations of snapshots hold the shared side: none is half-done while
   * records are swept and the plugins' orphans removed. */
  snaps_lock_exclusive ();
  int r = gc_collect (d->meta, store, ns, dry_run, now_ns (), ret, err);
  for (size_t i = 0; r == 0 && d->reg && i < registry_count (d->reg); i++)
    {
      plugin *p = registry_at (d->reg, i);
      if (p->desc.kind != BERTH_KIND_SNAPSHOTTER || p->status != PLUGIN_OK)
        continue;
      r = snaps_sweep_backend (d->meta, p, dry_run, NULL, err);
    }
  snaps_unlock_exclusive ();
  if (r == 0 && !dry_run && d->cfg)
    sweep_staging (d->cfg->root);
  return r;
}

int
gc_explain (struct daemon *d, const char *ns, const char *digest, char **ret_text, berth_error **err)
{
  plugin *store = NULL;
  _cleanup_error_ berth_error *e = NULL;
  gc_content_store (d, &store, &e);
  return gc_explain_in (d->meta, store, ns, digest, now_ns (), ret_text, err);
}

/* Scheduling state: one daemon per process. */
static struct
{
  struct daemon *d;
  int64_t debounce_timer;
  int64_t period_timer;
  bool running;
  bool again;
  bool stopped;
  struct gc_report rep;
  berth_error *err;
} sched;

static void sched_fire (void *data);

static void
sched_work (void *data)
{
  struct daemon *d = data;
  gc_report_clear (&sched.rep);
  berth_error_free (sched.err);
  sched.err = NULL;
  gc_run (d, NULL, false, &sched.rep, &sched.err);
}

static void
sched_done (void *data)
{
  sched.running = false;
  if (sched.err)
    log_warning ("gc: %s", berth_error_message (sched.err));
  else if (sched.rep.n > 0)
    log_info ("gc: removed %zu item%s (%lld blob bytes) in %lld ms", sched.rep.n, sched.rep.n == 1 ? "" : "s",
              (long long) sched.rep.bytes, (long long) (sched.rep.duration_ns / 1000000));
  gc_report_clear (&sched.rep);
  berth_error_free (sched.err);
  sched.err = NULL;
  if (sched.again && !sched.stopped)
    {
      sched.again = false;
      sched_fire (data);
    }
}

static void
sched_fire (void *data)
{
  struct daemon *d = data;
  sched.debounce_timer = 0;
  if (sched.stopped)
    return;
  if (sched.running)
    {
      sched.again = true;
      return;
    }
  if (workers_submit (d->workers, sched_work, sched_done, d) == 0)
    sched.running = true;
}

void
gc_schedule (struct daemon *d)
{
  if (sched.stopped || d->loop == NULL || d->workers == NULL)
    return;
  sched.d = d;
  if (sched.running)
    {
      sched.again = true;
      return;
    }
  if (sched.debounce_timer > 0)
    return;
  int64_t t = loop_add_timer (d->loop, GC_DEBOUNCE_MS, sched_fire, d);
  if (t > 0)
    sched.debounce_timer = t;
}

static void
sched_period (void *data)
{
  struct daemon *d = data;
  sched.period_timer = 0;
  if (sched.stopped)
    return;
  gc_schedule (d);
  int64_t t = loop_add_timer (d->loop, GC_PERIOD_MS, sched_period, d);
  if (t > 0)
    sched.period_timer = t;
}

int
gc_start (struct daemon *d, berth_error **err)
{
  sched.d = d;
  sched.stopped = false;
  int64_t t = loop_add_timer (d->loop, GC_PERIOD_MS, sched_period, d);
  if (t < 0)
    return berth_error_set (err, (int) t, 0, "gc: cannot arm the periodic timer");
  sched.period_timer = t;
  return 0;
}

void
gc_stop (struct daemon *d)
{
  sched.stopped = true;
  if (sched.debounce_timer > 0)
    loop_cancel_timer (d->loop, sched.debounce_timer);
  if (sched.period_timer > 0)
    loop_cancel_timer (d->loop, sched.period_timer);
  sched.debounce_timer = sched.period_timer = 0;
}
