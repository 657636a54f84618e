/* Building protobuf-c replies from metadata without per-field bookkeeping:
 * every allocation of one reply comes from an arena freed at once after the
 * reply was packed.  Allocation failure aborts (as crun's xmalloc does):
 * replies are small, and a daemon that cannot allocate a few hundred bytes
 * cannot answer anyway. */
#ifndef BERTH_CORE_SERVICE_PB_H
#define BERTH_CORE_SERVICE_PB_H

#include <protobuf-c/protobuf-c.h>

#include "google/protobuf/timestamp.pb-c.h"
#include "host-objects.h"

typedef struct pb_arena pb_arena;

pb_arena *pb_arena_new (void);
void pb_arena_free (pb_arena *a);
static inline void
pb_arena_freep (pb_arena **a)
{
  pb_arena_free (*a);
  *a = NULL;
}
#define _cleanup_arena_ __attribute__ ((cleanup (pb_arena_freep)))

void *pb_alloc (pb_arena *a, size_t size); /* zeroed */
/* A message of type desc, initialised. */
void *pb_new (pb_arena *a, const ProtobufCMessageDescriptor *desc);
char *pb_strdup (pb_arena *a, const char *s); /* NULL → "" */
Google__Protobuf__Timestamp *pb_timestamp (pb_arena *a, int64_t ns);
/* A map<string,string> field: entries of type entry_desc (any generated
 * *__LabelsEntry / *__AnnotationsEntry); returns the pointer array. */
void *pb_map (pb_arena *a, const ProtobufCMessageDescriptor *entry_desc, const berth_labels *l, size_t *ret_n);
/* Read a map field of a request into l; entries is the pointer array. */
int pb_map_read (void *const *entries, size_t n, berth_labels *l);
/* A pointer array of n messages of type desc (each initialised). */
void **pb_array (pb_arena *a, const ProtobufCMessageDescriptor *desc, size_t n);

#endif
