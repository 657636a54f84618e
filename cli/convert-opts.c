/* The options and help of `berth image convert` (convert.h). */
#include <config.h>

#include <getopt.h>
#include <stddef.h>

#include "cli.h"
#include "convert.h"
#include "images.h"

const struct option image_convert_options[] = {
  { "estargz", no_argument, NULL, OPT_ESTARGZ },
  { "estargz-prefetch", required_argument, NULL, OPT_PREFETCH },
  { "estargz-chunk-size", required_argument, NULL, OPT_CHUNK_SIZE },
  { "uncompressed", no_argument, NULL, OPT_UNCOMPRESSED },
  { "zstd", no_argument, NULL, OPT_ZSTD },
  { "zstd-level", required_argument, NULL, OPT_ZSTD_LEVEL },
  { "zstd-frame-size", required_argument, NULL, OPT_ZSTD_FRAME_SIZE },
  { "platform", required_argument, NULL, OPT_PLATFORM },
  { "all-platforms", no_argument, NULL, OPT_ALL_PLATFORMS },
  { "snapshotter", required_argument, NULL, OPT_SNAPSHOTTER },
  { "skip-unpack", no_argument, NULL, OPT_SKIP_UNPACK },
  { "format", required_argument, NULL, OPT_FORMAT },
  { "quiet", no_argument, NULL, 'q' },
  { NULL, 0, NULL, 0 },
};

const char image_convert_help[]
    = "  One format:\n"
      "      --estargz                   eStargz (gzip, seekable, with a TOC; runs as an ordinary gzip image)\n"
      "      --estargz-prefetch PATH,... files to put first, before the prefetch landmark (repeatable)\n"
      "      --estargz-chunk-size N      bytes per gzip member of a file (K/M/G suffixes; default 4M)\n"
      "      --uncompressed              plain tar\n"
      "      --zstd                      tar+zstd\n"
      "      --zstd-level N              zstd compression level (1-19, default 3)\n"
      "      --zstd-frame-size N         end a zstd frame once it holds N bytes of tar (K/M/G; default 4M;\n"
      "                                  0: one frame): the fuse snapshotter decodes frames in parallel\n"
      "  Which manifests of an index (default: the host's platform):\n"
      "      --platform OS/ARCH[/VARIANT]  this platform (repeatable)\n"
      "      --all-platforms             every platform (attestations are left out)\n"
      "  Unpacking (so that `berth run TARGET` finds the layers):\n"
      "      --snapshotter NAME          unpack for this snapshotter (repeatable; default $BERTH_SNAPSHOTTER\n"
      "                                  or overlayfs)\n"
      "      --skip-unpack               unpack nothing\n"
      "  Output:\n"
      "      --format FORMAT             table (default: the new digest) or json\n"
      "  -q, --quiet                     no progress on stderr\n"
      "  SOURCE must be pulled; TARGET is created, or replaced when it exists (it may be SOURCE).\n"
      "  The output uses OCI media types.  Prints the new manifest (or index) digest.\n";
