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
/* BERTH_E_PRECONDITION while the namespace still holds anything. */
int meta_namespace_delete (meta *m, const char *name, berth_error **err);

#endif
