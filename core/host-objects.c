#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "host-objects.h"

void
ctx_init (berth_ctx *ctx, const char *ns, const char *lease)
{
  memset (ctx, 0, sizeof *ctx);
  ctx->namespace = ns;
  ctx->lease = lease;
  atomic_init (&ctx->cancelled, 0);
}

bool
ctx_is_cancelled (const berth_ctx *ctx)
{
  return ctx != NULL && atomic_load (&((berth_ctx *) ctx)->cancelled) != 0;
}

const char *
ctx_get (const berth_ctx *ctx, const char *key)
{
  if (ctx == NULL || key == NULL)
    return NULL;
  if (strcmp (key, "namespace") == 0)
    return ctx->namespace;
  if (strcmp (key, "lease") == 0)
    return ctx->lease;
  if (ctx->metadata)
    return ctx->metadata (ctx->metadata_data, key);
  return NULL;
}

static void
mount_clear (struct berth_mount *m)
{
  free (m->type);
  free (m->source);
  free (m->target);
  strv_free (m->options);
}

void
mounts_clear (berth_mounts *m)
{
  if (m == NULL)
    return;
  for (size_t i = 0; i < m->n; i++)
    mount_clear (&m->items[i]);
  free (m->items);
  m->items = NULL;
  m->n = 0;
}

static char *
strdup_or_empty (const char *s)
{
  return strdup (s ? s : "");
}

int
mounts_add (berth_mounts *m, const char *type, const char *source, const char *target,
            const char *const *options)
{
  if (m == NULL || type == NULL || *type == '\0')
    return BERTH_E_INVALID;
  size_t nopt = 0;
  for (const char *const *o = options; o && *o; o++)
    nopt++;
  struct berth_mount mt = { 0 };
  mt.type = strdup (type);
  mt.source = strdup_or_empty (source);
  mt.target = strdup_or_empty (target);
  mt.options = calloc (nopt + 1, sizeof (char *));
  bool ok = mt.type && mt.source && mt.target && mt.options;
  for (size_t i = 0; ok && i < nopt; i++)
    ok = (mt.options[i] = strdup (options[i])) != NULL;
  struct berth_mount *items = ok ? realloc (m->items, (m->n + 1) * sizeof *items) : NULL;
  if (items == NULL)
    {
      mount_clear (&mt);
      return BERTH_E_NOMEM;
    }
  m->items = items;
  m->items[m->n++] = mt;
  return 0;
}

void
labels_clear (berth_labels *l)
{
  if (l == NULL)
    return;
  for (size_t i = 0; i < l->n; i++)
    {
      free (l->keys[i]);
      free (l->values[i]);
    }
  free (l->keys);
  free (l->values);
  l->keys = l->values = NULL;
  l->n = 0;
}

static ssize_t
labels_index (const berth_labels *l, const char *key)
{
  for (size_t i = 0; l && i < l->n; i++)
    if (strcmp (l->keys[i], key) == 0)
      return (ssize_t) i;
  return -1;
}

const char *
labels_get (const berth_labels *l, const char *key)
{
  if (key == NULL)
    return NULL;
  ssize_t i = labels_index (l, key);
  return i < 0 ? NULL : l->values[i];
}

int
labels_set (berth_labels *l, const char *key, const char *value)
{
  if (l == NULL || key == NULL || *key == '\0')
    return BERTH_E_INVALID;
  ssize_t i = labels_index (l, key);
  if (value == NULL)
    {
      if (i < 0)
        return 0;
      free (l->keys[i]);
      free (l->values[i]);
      memmove (&l->keys[i], &l->keys[i + 1], (l->n - i - 1) * sizeof (char *));
      memmove (&l->values[i], &l->values[i + 1], (l->n - i - 1) * sizeof (char *));
      l->n--;
      return 0;
    }
  char *v = strdup (value);
  if (v == NULL)
    return BERTH_E_NOMEM;
  if (i >= 0)
    {
      free (l->values[i]);
      l->values[i] = v;
      return 0;
    }
  _cleanup_free_ char *k = strdup (key);
  char **keys = k ? realloc (l->keys, (l->n + 1) * sizeof (char *)) : NULL;
  if (keys)
    l->keys = keys;
  char **values = keys ? realloc (l->values, (l->n + 1) * sizeof (char *)) : NULL;
  if (values == NULL)
    {
      free (v);
      return BERTH_E_NOMEM;
    }
  l->values = values;
  l->keys[l->n] = TAKE_PTR (k);
  l->values[l->n] = v;
  l->n++;
  return 0;
}

int
labels_next (const berth_labels *l, size_t *iter, const char **key, const char **value)
{
  if (l == NULL || iter == NULL || *iter >= l->n)
    return 0;
  if (key)
    *key = l->keys[*iter];
  if (value)
    *value = l->values[*iter];
  (*iter)++;
  return 1;
}

void
buf_clear (berth_buf *b)
{
  if (b == NULL)
    return;
  free (b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int
buf_append (berth_buf *b, const void *data, size_t len)
{
  if (b == NULL || (data == NULL && len > 0))
    return BERTH_E_INVALID;
  size_t max = b->max ? b->max : (64u << 20);
  if (len > max - b->len)
    return BERTH_E_EXHAUSTED;
  if (b->len + len + 1 > b->cap)
    {
      size_t cap = b->cap ? b->cap : 256;
      while (cap < b->len + len + 1)
        cap *= 2;
      unsigned char *d = realloc (b->data, cap);
      if (d == NULL)
        return BERTH_E_NOMEM;
      b->data = d;
      b->cap = cap;
    }
  if (len)
    memcpy (b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0'; /* text outputs (JSON) read as C strings */
  return 0;
}
