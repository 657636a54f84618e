#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/service-pb.h"

struct block
{
  struct block *next;
  max_align_t data[];
};

struct pb_arena
{
  struct block *blocks;
};

/* The generated map entries all start like this. */
struct pb_entry
{
  ProtobufCMessage base;
  char *key;
  char *value;
};

static void *
xcalloc (size_t n)
{
  void *p = calloc (1, n);
  if (p == NULL)
    {
      fputs ("berthd: out of memory building a reply\n", stderr);
      abort ();
    }
  return p;
}

pb_arena *
pb_arena_new (void)
{
  return xcalloc (sizeof (pb_arena));
}

void
pb_arena_free (pb_arena *a)
{
  if (a == NULL)
    return;
  while (a->blocks)
    {
      struct block *b = a->blocks;
      a->blocks = b->next;
      free (b);
    }
  free (a);
}

void *
pb_alloc (pb_arena *a, size_t size)
{
  struct block *b = xcalloc (sizeof *b + size + 1);
  b->next = a->blocks;
  a->blocks = b;
  return b->data;
}

void *
pb_new (pb_arena *a, const ProtobufCMessageDescriptor *desc)
{
  void *m = pb_alloc (a, desc->sizeof_message);
  protobuf_c_message_init (desc, m);
  return m;
}

char *
pb_strdup (pb_arena *a, const char *s)
{
  if (s == NULL)
    s = "";
  size_t n = strlen (s);
  char *d = pb_alloc (a, n + 1);
  memcpy (d, s, n + 1);
  return d;
}

Google__Protobuf__Timestamp *
pb_timestamp (pb_arena *a, int64_t ns)
{
  Google__Protobuf__Timestamp *t = pb_new (a, &google__protobuf__timestamp__descriptor);
  t->seconds = ns / 1000000000;
  t->nanos = (int32_t) (ns % 1000000000);
  return t;
}

void *
pb_map (pb_arena *a, const ProtobufCMessageDescriptor *entry_desc, const berth_labels *l, size_t *ret_n)
{
  size_t n = l ? l->n : 0;
  struct pb_entry **v = pb_alloc (a, (n + 1) * sizeof *v);
  for (size_t i = 0; i < n; i++)
    {
      v[i] = pb_new (a, entry_desc);
      v[i]->key = pb_strdup (a, l->keys[i]);
      v[i]->value = pb_strdup (a, l->values[i]);
    }
  *ret_n = n;
  return v;
}

int
pb_map_read (void *const *entries, size_t n, berth_labels *l)
{
  for (size_t i = 0; i < n; i++)
    {
      const struct pb_entry *e = entries[i];
      int r = labels_set (l, e->key ? e->key : "", e->value ? e->value : "");
      if (r < 0)
        return r;
    }
  return 0;
}

void **
pb_array (pb_arena *a, const ProtobufCMessageDescriptor *desc, size_t n)
{
  void **v = pb_alloc (a, (n + 1) * sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = pb_new (a, desc);
  return v;
}
