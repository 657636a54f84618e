/* berthd's metadata: SQLite in WAL mode at <root>/meta.db.
 *
 * Thread safety: one connection opened in serialized mode; every mutation
 * runs in its own IMMEDIATE transaction, so SQLite's lock makes writers
 * take turns (one writer at a time).  Mutations fsync (synchronous=FULL):
 * call them from worker threads, not the event loop.  Reads are cheap and
 * may run anywhere.
 *
 * The schema is versioned through PRAGMA user_version; meta_open() applies
 * the missing migrations in order, each in a transaction, and refuses a
 * database written by a newer berthd (it never rewrites what it does not
 * understand).
 */
#ifndef BERTH_CORE_META_H
#define BERTH_CORE_META_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "host-objects.h"

typedef struct meta meta;

/* The schema version this berthd writes. */
int meta_schema_version (void);

int meta_open (const char *path, meta **ret, berth_error **err);
void meta_close (meta *m);
/* PRAGMA user_version of the open database. */
int meta_version (meta *m);

struct meta_namespace
{
  char *name;
  berth_labels labels;
  int64_t created_at; /* ns since the epoch */
  int64_t updated_at;
};

void meta_namespace_clear (struct meta_namespace *ns);
void meta_namespaces_free (struct meta_namespace *v, size_t n);

/* containerd's rules: [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, at most 76 characters. */
int meta_validate_namespace (const char *name, berth_error **err);
/* containerd's rules: key non-empty, key + value at most 4096 bytes. */
int meta_validate_labels (const berth_labels *labels, berth_error **err);

int meta_namespace_get (meta *m, const char *name, struct meta_namespace *ret, berth_error **err);
int meta_namespace_list (meta *m, struct meta_namespace **ret, size_t *ret_n, berth_error **err);
int meta_namespace_create (meta *m, const char *name, const berth_labels *labels, berth_error **err);
/* Create the namespace if it does not exist (calls made "in" a namespace create it, as containerd does). */
int meta_namespace_ensure (meta *m, const char *name, berth_error **err);
/* paths: NULL/empty replaces all labels; otherwise "labels" or "labels.<key>"
 * (a key absent from labels is deleted).  Fills ret (may be NULL). */
int meta_namespace_update (meta *m, const char *name, const berth_labels *labels, const char *const *paths,
                           size_t npaths, struct meta_namespace *ret, berth_error **err);
/* BERTH_E_PRECONDITION while the namespace still holds images, content
 * records or leases. */
int meta_namespace_delete (meta *m, const char *name, berth_error **err);

/* ---- Schema 2: content records, images, leases (all namespaced) ----------
 *
 * Every call below takes the namespace first; a missing namespace record is
 * created implicitly by the mutations (as containerd does), so callers need
 * not meta_namespace_ensure() first.  Returned structs are owned by the
 * caller: release them with the matching *_clear / *_free.
 */

/* An OCI descriptor (image targets). */
struct meta_descriptor
{
  char *media_type;
  char *digest; /* "sha256:<hex>" */
  int64_t size;
  berth_labels annotations;
};

struct meta_image
{
  char *name;
  struct meta_descriptor target;
  berth_labels labels;
  int64_t created_at; /* ns since the epoch */
  int64_t updated_at;
};

/* A blob is visible in a namespace when it has a content record there. */
struct meta_content
{
  char *digest;
  int64_t size;
  berth_labels labels;
  int64_t created_at;
  int64_t updated_at;
};

struct meta_lease
{
  char *id;
  berth_labels labels; /* containerd.io/gc.expire = RFC 3339 time: expiry */
  int64_t created_at;
};

/* type: "content", "ingests", "snapshots/<snapshotter>" (containerd's names). */
struct meta_lease_resource
{
  char *id;
  char *type;
};

void meta_descriptor_clear (struct meta_descriptor *d);
void meta_image_clear (struct meta_image *img);
void meta_images_free (struct meta_image *v, size_t n);
void meta_content_clear (struct meta_content *c);
void meta_contents_free (struct meta_content *v, size_t n);
void meta_lease_clear (struct meta_lease *l);
void meta_leases_free (struct meta_lease *v, size_t n);
void meta_lease_resources_free (struct meta_lease_resource *v, size_t n);

/* Hold the metadata lock (recursive) across several calls, so that they see
 * and leave a consistent state: GC holds it from mark to sweep, and a
 * writer committing a blob to the store holds it across the commit and
 * meta_content_add() so that GC never sweeps a blob between the two. */
void meta_lock (meta *m);
void meta_unlock (meta *m);

/* Filters: containerd's filter syntax (core/filters.h); NULL/0 matches all.
 * Images answer name, target.mediatype, target.digest, target.size and
 * labels.<k>; content answers digest, size, labels.<k>; leases answer id,
 * labels.<k>. */

/* ---- images ---- */
int meta_image_get (meta *m, const char *ns, const char *name, struct meta_image *ret, berth_error **err);
int meta_image_list (meta *m, const char *ns, const char *const *filters, size_t nfilters, struct meta_image **ret,
                     size_t *ret_n, berth_error **err);
/* BERTH_E_EXISTS when the name is taken; name, target digest and media type
 * are required (BERTH_E_INVALID).  Fills ret (may be NULL). */
int meta_image_create (meta *m, const char *ns, const struct meta_image *img, struct meta_image *ret,
                       berth_error **err);
/* paths: NULL/0 replaces labels, target and annotations; otherwise any of
 * "labels", "labels.<k>", "target", "annotations", "annotations.<k>"
 * (annotations are the target's).  "name" must match.  BERTH_E_NOTFOUND. */
int meta_image_update (meta *m, const char *ns, const struct meta_image *img, const char *const *paths,
                       size_t npaths, struct meta_image *ret, berth_error **err);
/* For the daemon-side pull: create the image, or point an existing one at
 * target and replace its labels (labels may be NULL: keep them). */
int meta_image_create_or_update (meta *m, const char *ns, const char *name, const struct meta_descriptor *target,
                                 const berth_labels *labels, berth_error **err);
/* BERTH_E_NOTFOUND.  Does not run GC (see core/gc.h). */
int meta_image_delete (meta *m, const char *ns, const char *name, berth_error **err);

/* ---- content records ---- */
int meta_content_get (meta *m, const char *ns, const char *digest, struct meta_content *ret, berth_error **err);
int meta_content_list (meta *m, const char *ns, const char *const *filters, size_t nfilters,
                       struct meta_content **ret, size_t *ret_n, berth_error **err);
/* Idempotent: creates the record, or keeps the existing one; labels (may be
 * NULL) are merged into it either way. */
int meta_content_add (meta *m, const char *ns, const char *digest, int64_t size, const berth_labels *labels,
                      berth_error **err);
/* paths as for namespaces: NULL/0 or "labels" replace all, "labels.<k>" set
 * or delete one.  BERTH_E_NOTFOUND. */
int meta_content_update (meta *m, const char *ns, const char *digest, const berth_labels *labels,
                         const char *const *paths, size_t npaths, struct meta_content *ret, berth_error **err);
/* Removes the record only; the blob goes at the next GC if no namespace
 * references it.  BERTH_E_NOTFOUND. */
int meta_content_delete (meta *m, const char *ns, const char *digest, berth_error **err);
/* Whether any namespace holds a record for digest. */
int meta_content_referenced (meta *m, const char *digest, bool *ret, berth_error **err);

/* ---- leases ---- */
int meta_lease_get (meta *m, const char *ns, const char *id, struct meta_lease *ret, berth_error **err);
int meta_lease_list (meta *m, const char *ns, const char *const *filters, size_t nfilters, struct meta_lease **ret,
                     size_t *ret_n, berth_error **err);
/* BERTH_E_EXISTS; ret may be NULL. */
int meta_lease_create (meta *m, const char *ns, const char *id, const berth_labels *labels, struct meta_lease *ret,
                       berth_error **err);
/* BERTH_E_NOTFOUND; its resources go with it. */
int meta_lease_delete (meta *m, const char *ns, const char *id, berth_error **err);
/* Idempotent; BERTH_E_NOTFOUND when the lease does not exist, BERTH_E_INVALID
 * for an unknown type. */
int meta_lease_add_resource (meta *m, const char *ns, const char *lease, const char *type, const char *id,
                             berth_error **err);
int meta_lease_delete_resource (meta *m, const char *ns, const char *lease, const char *type, const char *id,
                                berth_error **err);
int meta_lease_list_resources (meta *m, const char *ns, const char *lease, struct meta_lease_resource **ret,
                               size_t *ret_n, berth_error **err);
/* Expiry of a lease from its containerd.io/gc.expire label (ns since the
 * epoch), 0 when it has none or the value does not parse. */
int64_t meta_lease_expiry (const struct meta_lease *l);


/* ---- Schema 3: snapshots (namespaced; core/metadata/meta-snapshots.c) ----
 *
 * The namespaced view of the snapshotter plugins (containerd's
 * metadata/snapshot.go): a record maps (namespace, snapshotter, key) to the
 * plugin's key `backend`.  These calls touch the metadata only; core/snapshots.c
 * pairs them with the plugin calls.  kind is enum berth_snapshot_kind.
 */
struct meta_snapshot
{
  char *snapshotter;
  char *key;     /* name in the namespace */
  char *backend; /* the plugin's key */
  char *parent;  /* key of the parent in the namespace, "" for none */
  int kind;
  berth_labels labels;
  int64_t created_at;
  int64_t updated_at;
};

void meta_snapshot_clear (struct meta_snapshot *s);
void meta_snapshots_free (struct meta_snapshot *v, size_t n);

/* The plugin's key for a new snapshot: "<ns>/<seq>/<key>", seq never reused. */
int meta_snapshot_backend_key (meta *m, const char *ns, const char *key, char **ret, berth_error **err);
/* BERTH_E_NOTFOUND "snapshot `k` does not exist". */
int meta_snapshot_get (meta *m, const char *ns, const char *snapshotter, const char *key, struct meta_snapshot *ret,
                       berth_error **err);
/* ns and snapshotter may be NULL (all).  Filters answer name, parent, kind
 * (view, active, committed), snapshotter and labels.<k>.  Sorted by key. */
int meta_snapshot_list (meta *m, const char *ns, const char *snapshotter, const char *const *filters,
                        size_t nfilters, struct meta_snapshot **ret, size_t *ret_n, berth_error **err);
/* Record a snapshot the plugin has just created (s: snapshotter, key,
 * backend, parent, kind, labels; times are set here).  BERTH_E_EXISTS when
 * the key is taken, BERTH_E_NOTFOUND when the parent does not exist, and
 * BERTH_E_INVALID when it is not committed.  lease (may be NULL) gets the
 * resource "snapshots/<snapshotter>" key. */
int meta_snapshot_add (meta *m, const char *ns, const struct meta_snapshot *s, const char *lease, berth_error **err);
/* Turn the record of active `key` into committed `name` (plugin key
 * backend_name, the commit's labels), in one transaction: BERTH_E_EXISTS
 * when name is taken, BERTH_E_NOTFOUND when key does not exist.  Children
 * of key (none can exist) are not moved; lease references to key move to
 * name in every lease of ns, and lease (may be NULL) gets name. */
int meta_snapshot_commit (meta *m, const char *ns, const char *snapshotter, const char *name, const char *key,
                          const char *backend_name, const berth_labels *labels, const char *lease, berth_error **err);
/* Delete the record, its labels and lease references.  BERTH_E_NOTFOUND;
 * BERTH_E_PRECONDITION while children exist.  *ret_backend (may be NULL):
 * the plugin key, malloc'ed. */
int meta_snapshot_remove (meta *m, const char *ns, const char *snapshotter, const char *key, char **ret_backend,
                          berth_error **err);
/* paths: NULL/0 or "labels" replace all labels, "labels.<k>" one; other
 * fields (name, parent, kind) are refused with BERTH_E_INVALID.  Fills ret
 * (may be NULL). */
int meta_snapshot_update (meta *m, const char *ns, const char *snapshotter, const char *key,
                          const berth_labels *labels, const char *const *paths, size_t npaths,
                          struct meta_snapshot *ret, berth_error **err);
/* Whether any namespace has a record with this plugin key. */
int meta_snapshot_backend_known (meta *m, const char *snapshotter, const char *backend, bool *ret, berth_error **err);

/* ---- Schema 4: containers (namespaced; core/metadata/meta-containers.c) ----
 *
 * containerd's metadata/containers.go model.  Any values (runtime options,
 * spec, extensions) are kept as the client sent them: type URL and bytes.
 */
struct meta_any
{
  char *type_url; /* "" when unset */
  uint8_t *value;
  size_t len;
};

struct meta_extension
{
  char *name;
  struct meta_any value;
};

struct meta_container
{
  char *id;
  berth_labels labels;
  char *image;
  char *runtime_name;
  struct meta_any runtime_options;
  struct meta_any spec;
  char *snapshotter;
  char *snapshot_key;
  char *sandbox_id;
  struct meta_extension *extensions;
  size_t n_extensions;
  int64_t created_at;
  int64_t updated_at;
};

void meta_any_clear (struct meta_any *a);
void meta_container_clear (struct meta_container *c);
void meta_containers_free (struct meta_container *v, size_t n);

/* BERTH_E_NOTFOUND "container `id`: not found". */
int meta_container_get (meta *m, const char *ns, const char *id, struct meta_container *ret, berth_error **err);
/* Filters answer id, image, runtime.name, snapshotter, snapshotkey and
 * labels.<k>.  Sorted by id. */
int meta_container_list (meta *m, const char *ns, const char *const *filters, size_t nfilters,
                         struct meta_container **ret, size_t *ret_n, berth_error **err);
/* containerd's validation: id (identifier rules), runtime name, spec, and a
 * snapshotter when a snapshot key is set (BERTH_E_INVALID); BERTH_E_EXISTS
 * when the id is taken.  Fills ret (may be NULL). */
int meta_container_create (meta *m, const char *ns, const struct meta_container *c, struct meta_container *ret,
                           berth_error **err);
/* paths: NULL/0 replaces everything mutable (runtime and snapshotter must
 * not change); otherwise any of "labels", "labels.<k>", "spec",
 * "extensions", "extensions.<k>", "image", "snapshotkey" (BERTH_E_INVALID
 * for others).  BERTH_E_NOTFOUND.  Fills ret (may be NULL). */
int meta_container_update (meta *m, const char *ns, const struct meta_container *c, const char *const *paths,
                           size_t npaths, struct meta_container *ret, berth_error **err);
/* BERTH_E_NOTFOUND. */
int meta_container_delete (meta *m, const char *ns, const char *id, berth_error **err);
/* Set or delete (value NULL or "") one label, for the core's own labels. */
int meta_container_set_label (meta *m, const char *ns, const char *id, const char *key, const char *value,
                              berth_error **err);

#endif
