/* libberth-snapstore internals.  Only include/berth/snapstore.h is public. */
#ifndef BERTH_SNAPSTORE_PRIVATE_H
#define BERTH_SNAPSTORE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <berth/snapstore.h>

/* The host table of a store, for errors from helpers that only see the store. */
const struct berth_host *snapstore_host (const berth_snapstore *s);

/* ---- filter.c ------------------------------------------------------- */

/* containerd's filter syntax, matched against an adaptor that answers a
 * fieldpath's value (NULL when absent). */
typedef struct snapstore_filter snapstore_filter;
typedef const char *(*snapstore_filter_field) (void *obj, const char *const *path, size_t npath);

/* NULL or an empty list gives *ret = NULL, which matches everything. */
int snapstore_filter_parse (const struct berth_host *host, const char *const *filters, snapstore_filter **ret,
                            berth_error *err);
bool snapstore_filter_match (const snapstore_filter *f, snapstore_filter_field field, void *obj);
/* Whether any selector's fieldpath starts with `field` (to skip loading labels). */
bool snapstore_filter_uses (const snapstore_filter *f, const char *field);
void snapstore_filter_free (snapstore_filter *f);

#endif
