/* berth image convert: what both binaries share.
 *
 * `berth` keeps the command's options and help (for parsing, --help and
 * completion) but not its code: converting links libberth-layerindex,
 * libarchive, zlib and libzstd, whose loading would cost every other berth
 * command (2.5 -> 4.0 ms to start, measured).  berth's image_convert_run
 * (convert-exec.c) runs `berth-convert` (the same CLI with cmd-convert.c,
 * in $(libexecdir)/berth) with the very same command line.
 */
#ifndef BERTH_CLI_CONVERT_H
#define BERTH_CLI_CONVERT_H

enum
{
  OPT_ESTARGZ = 0x100,
  OPT_PREFETCH,
  OPT_CHUNK_SIZE,
  OPT_UNCOMPRESSED,
  OPT_ZSTD,
  OPT_ZSTD_LEVEL,
  OPT_ZSTD_FRAME_SIZE,
  OPT_PLATFORM,
  OPT_ALL_PLATFORMS,
  OPT_SNAPSHOTTER,
  OPT_SKIP_UNPACK,
  OPT_FORMAT,
};

#endif
