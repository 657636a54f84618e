/* containerd's filter syntax (github.com/containerd/containerd/filters):
 *
 *   filter   := selector ("," selector)*        all selectors must match
 *   selector := fieldpath [op value]              no op: the field is present
 *   fieldpath:= field ("." field)*               field: [A-Za-z0-9_]+ or "quoted"
 *   op       := "==" | "!=" | "~="               ~= is a POSIX extended regex
 *   value    := "quoted" | run of characters up to ","
 *
 * A list of filters matches when any of them matches (an empty list matches
 * everything).  The object is reached through an adaptor that answers the
 * value of a fieldpath, or NULL when absent.
 */
#ifndef BERTH_CORE_FILTERS_H
#define BERTH_CORE_FILTERS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct filter_set filter_set;

typedef const char *(*filter_adaptor) (void *obj, const char *const *path, size_t npath);

int filters_parse (const char *const *filters, size_t n, filter_set **ret, berth_error **err);
bool filters_match (const filter_set *f, filter_adaptor adaptor, void *obj);
void filters_free (filter_set *f);
/* True when the set has no filter (it matches everything). */
bool filters_is_empty (const filter_set *f);

#endif
