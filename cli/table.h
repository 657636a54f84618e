/* Aligned columns for listings, like Go's text/tabwriter as ctr and
 * nerdctl use it: every column as wide as its widest cell plus a gap of
 * three spaces; the last column is not padded. */
#ifndef BERTH_CLI_TABLE_H
#define BERTH_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct table table;

/* Columns are given as header cells, NULL-terminated. */
table *table_new (const char *header, ...) __attribute__ ((sentinel));
void table_free (table *t);
static inline void
table_freep (table **t)
{
  table_free (*t);
  *t = NULL;
}
/* Add a row of exactly as many cells as the header has (NULL prints "-").
 * Cells are copied.  Returns 0 or -ENOMEM. */
int table_add (table *t, ...);
/* Sort rows (not the header) by column col, with strcmp. */
void table_sort (table *t, size_t col);
int table_print (const table *t, FILE *f);

#endif
