/* Internals shared by the metadata files (meta.c, meta-content.c,
 * meta-images.c, meta-leases.c).  Not for use outside core/metadata/.
 *
 * Locking: one SQLite connection is shared by every thread, and a
 * transaction belongs to the connection, not to a thread; so every
 * transaction (and every read that must not see another thread's open
 * transaction) runs under m->lock, a recursive mutex.  meta_begin() takes
 * the lock and opens an IMMEDIATE transaction; meta_tx_end() commits (or
 * rolls back when r < 0) and releases it.
 */
#ifndef BERTH_CORE_META_PRIVATE_H
#define BERTH_CORE_META_PRIVATE_H

#include <pthread.h>
#include <sqlite3.h>

#include "filters.h"
#include "metadata/meta.h"

struct meta
{
  sqlite3 *db;
  char *path;
  pthread_mutex_t lock; /* recursive */
};

int64_t meta_now_ns (void);
int meta_sql_error (meta *m, int rc, berth_error **err, const char *what);
int meta_exec (meta *m, const char *sql, berth_error **err);
/* Lock and BEGIN IMMEDIATE; on failure the lock is released. */
int meta_begin (meta *m, berth_error **err);
/* COMMIT when r >= 0 (returns 0 or the commit's error), else ROLLBACK
 * (returns r); releases the lock taken by meta_begin(). */
int meta_tx_end (meta *m, int r, berth_error **err);
/* INSERT OR IGNORE the namespace record (inside the caller's transaction). */
int meta_ns_touch (meta *m, const char *ns, berth_error **err);

/* Prepare sql or fill err. */
int meta_prepare (meta *m, const char *sql, sqlite3_stmt **ret, berth_error **err);
/* Bind the text arguments (NULL-terminated list) from index 1 and step once
 * to completion; returns the number of changed rows or a negative code. */
int meta_run (meta *m, const char *sql, berth_error **err, ...) __attribute__ ((sentinel));

/* Labels of one object in object_labels. */
int meta_labels_load (meta *m, const char *ns, const char *kind, const char *object, berth_labels *out,
                      berth_error **err);
/* Insert or replace each label of labels. */
int meta_labels_put (meta *m, const char *ns, const char *kind, const char *object, const berth_labels *labels,
                     berth_error **err);
int meta_labels_delete_all (meta *m, const char *ns, const char *kind, const char *object, berth_error **err);
/* Apply the update mask for one label map named `field` ("labels" or
 * "annotations"): path == field replaces all, "field.<k>" sets or deletes
 * k.  Returns 1 when path named this field, 0 when it did not. */
int meta_labels_apply_path (meta *m, const char *ns, const char *kind, const char *object, const char *field,
                            const char *path, const berth_labels *labels, berth_error **err);

/* NULL-safe strdup that reports NOMEM through err. */
int meta_strdup (const char *s, char **ret, berth_error **err);

/* Compile filters (NULL when there are none). */
int meta_filters (const char *const *filters, size_t n, filter_set **ret, berth_error **err);

#endif
