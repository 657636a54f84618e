/* libFuzzer target over containerd-style filters (core/filters.c), the
 * strings an API client sends with every List call.  The input is split at
 * newlines into up to 8 filters; a parsed set is matched against fixed
 * objects and against one whose fields are the input's own lines (so that
 * regular expressions meet text that can match them).  Any input must parse
 * or fail with BERTH_E_INVALID and a message; matching must never crash,
 * and an empty set must match everything. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/filters.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define MAX_FILTERS 8

struct obj
{
  const char *id, *type, *name, *label_key, *label_value;
};

static const char *
adapt (void *p, const char *const *path, size_t npath)
{
  const struct obj *o = p;
  if (npath == 1 && strcmp (path[0], "id") == 0)
    return o->id;
  if (npath == 1 && strcmp (path[0], "type") == 0)
    return o->type;
  if (npath == 1 && strcmp (path[0], "name") == 0)
    return o->name;
  if (npath == 2 && strcmp (path[0], "labels") == 0 && o->label_key && strcmp (path[1], o->label_key) == 0)
    return o->label_value;
  return NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *buf = malloc (size + 1);
  if (buf == NULL)
    return 0;
  memcpy (buf, data, size);
  buf[size] = '\0';
  const char *filters[MAX_FILTERS];
  size_t n = 0;
  for (char *s = buf, *nl; n < MAX_FILTERS && s; s = nl)
    {
      nl = strchr (s, '\n');
      if (nl)
        *nl++ = '\0';
      filters[n++] = s;
    }
  filter_set *f = NULL;
  berth_error *err = NULL;
  int r = filters_parse (filters, n, &f, &err);
  if (r < 0)
    {
      if (f != NULL || err == NULL || berth_error_message (err) == NULL || berth_error_message (err)[0] == '\0')
        abort ();
      if (r != BERTH_E_INVALID && r != BERTH_E_NOMEM)
        abort ();
      berth_error_free (err);
      free (buf);
      return 0;
    }
  if (f == NULL || err != NULL)
    abort ();
  struct obj objs[] = {
    { "overlayfs", "io.berth.snapshotter.v1", "docker.io/library/busybox:latest", "a.b/c", "v" },
    { "", "", "", "", "" },
    { filters[0], n > 1 ? filters[1] : NULL, filters[n - 1], filters[0], n > 2 ? filters[2] : filters[0] },
  };
  bool any = false;
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
    any |= filters_match (f, adapt, &objs[i]);
  if (filters_is_empty (f) && !any)
    abort ();
  filters_free (f);
  free (buf);
  return 0;
}
