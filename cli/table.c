#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "table.h"

#define TABLE_GAP 3

struct table
{
  size_t ncols;
  size_t nrows; /* including the header */
  size_t cap;
  char **cells; /* nrows * ncols */
};

static int
table_push (table *t, va_list ap)
{
  if (t->nrows == t->cap)
    {
      size_t cap = t->cap ? t->cap * 2 : 16;
      char **n = realloc (t->cells, cap * t->ncols * sizeof *n);
      if (n == NULL)
        return -ENOMEM;
      t->cells = n;
      t->cap = cap;
    }
  char **row = t->cells + t->nrows * t->ncols;
  for (size_t i = 0; i < t->ncols; i++)
    {
      const char *s = va_arg (ap, const char *);
      row[i] = strdup (s ? s : "-");
      if (row[i] == NULL)
        {
          while (i-- > 0)
            free (row[i]);
          return -ENOMEM;
        }
    }
  t->nrows++;
  return 0;
}

table *
table_new (const char *header, ...)
{
  table *t = calloc (1, sizeof *t);
  if (t == NULL)
    return NULL;
  va_list ap;
  va_start (ap, header);
  t->ncols = 1;
  while (va_arg (ap, const char *))
    t->ncols++;
  va_end (ap);

  /* Push the header: header, then the rest. */
  char **cells = calloc (t->ncols, sizeof *cells);
  if (cells == NULL)
    {
      free (t);
      return NULL;
    }
  t->cells = cells;
  t->cap = 1;
  va_start (ap, header);
  cells[0] = strdup (header);
  for (size_t i = 1; i < t->ncols; i++)
    cells[i] = strdup (va_arg (ap, const char *));
  va_end (ap);
  t->nrows = 1;
  for (size_t i = 0; i < t->ncols; i++)
    if (cells[i] == NULL)
      {
        table_free (t);
        return NULL;
      }
  return t;
}

void
table_free (table *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free (t->cells[i]);
  free (t->cells);
  free (t);
}

int
table_add (table *t, ...)
{
  va_list ap;
  va_start (ap, t);
  int r = table_push (t, ap);
  va_end (ap);
  return r;
}

static size_t sort_col; /* qsort has no context argument */

static int
row_cmp (const void *a, const void *b)
{
  const char *const *ra = a, *const *rb = b;
  return strcmp (ra[sort_col], rb[sort_col]);
}

void
table_sort (table *t, size_t col)
{
  if (t->nrows < 3 || col >= t->ncols)
    return;
  sort_col = col;
  qsort (t->cells + t->ncols, t->nrows - 1, t->ncols * sizeof (char *), row_cmp);
}

/* Display width: count UTF-8 code points (good enough for names and
 * labels; no wide characters expected). */
static size_t
width (const char *s)
{
  size_t w = 0;
  for (; *s; s++)
    if (((unsigned char) *s & 0xC0) != 0x80)
      w++;
  return w;
}

int
table_print (const table *t, FILE *f)
{
  size_t *w = calloc (t->ncols, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++)
      {
        size_t cw = width (t->cells[r * t->ncols + c]);
        if (cw > w[c])
          w[c] = cw;
      }
  for (size_t r = 0; r < t->nrows; r++)
    {
      /* No trailing blanks when the last cells are empty. */
      size_t last = t->ncols;
      while (last > 1 && *t->cells[r * t->ncols + last - 1] == 0)
        last--;
      for (size_t c = 0; c < last; c++)
        {
          const char *cell = t->cells[r * t->ncols + c];
          fputs (cell, f);
          if (c + 1 < last)
            fprintf (f, "%*s", (int) (w[c] - width (cell) + TABLE_GAP), "");
        }
      fputc ('\n', f);
    }
  free (w);
  return 0;
}
