/* Knobs for tests and benchmarks only: they change process-wide behaviour
 * of core/unpack and are not thread-safe.  Never set them in berthd. */
#ifndef BERTH_CORE_UNPACK_TESTING_H
#define BERTH_CORE_UNPACK_TESTING_H

enum
{
  UNPACK_TESTING_NO_OPENAT2 = 1 << 0, /* resolve paths with the O_NOFOLLOW walker, as without openat2 */
  UNPACK_TESTING_ZLIB = 1 << 1,       /* inflate gzip with zlib even where ISA-L is built in */
};

extern unsigned unpack_testing_flags;

#endif
