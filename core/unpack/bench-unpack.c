/* bench-unpack: apply one layer file and print the rates.
 *
 *   bench-unpack [--zlib] [--no-openat2] [--native] [--decompress-only] LAYER [ROOT]
 *
 * ROOT (default: a fresh directory under $TMPDIR, removed afterwards) is
 * created when missing; layers applied one after the other stack up there.  --decompress-only inflates and hashes without applying.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "core/unpack/stream.h"
#include "core/unpack/tree.h"
#include "core/unpack/unpack-testing.h"
#include "core/unpack/unpack.h"

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static ssize_t
fd_read (void *data, void *buf, size_t len)
{
  ssize_t n = read (*(int *) data, buf, len);
  return n < 0 ? BERTH_E_INTERNAL : n;
}

int
main (int argc, char **argv)
{
  bool native = false, decompress_only = false;
  int i = 1;
  for (; i < argc && strncmp (argv[i], "--", 2) == 0; i++)
    if (strcmp (argv[i], "--zlib") == 0)
      unpack_testing_flags |= UNPACK_TESTING_ZLIB;
    else if (strcmp (argv[i], "--no-openat2") == 0)
      unpack_testing_flags |= UNPACK_TESTING_NO_OPENAT2;
    else if (strcmp (argv[i], "--native") == 0)
      native = true;
    else if (strcmp (argv[i], "--decompress-only") == 0)
      decompress_only = true;
    else
      {
        fprintf (stderr, "bench-unpack: unknown option %s\n", argv[i]);
        return 2;
      }
  if (i >= argc)
    {
      fprintf (stderr, "usage: bench-unpack [--zlib] [--no-openat2] [--native] [--decompress-only] LAYER [ROOT]\n");
      return 2;
    }
  const char *layer = argv[i];
  int fd = open (layer, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    {
      perror (layer);
      return 1;
    }
  _cleanup_error_ berth_error *err = NULL;
  double t0 = now ();
  if (decompress_only)
    {
      struct unpack_stream *s = NULL;
      char digest[80];
      int64_t size = 0;
      if (unpack_stream_new (fd_read, &fd, UNPACK_AUTO, NULL, NULL, &s, &err) < 0
          || unpack_stream_finish (s, digest, &size, &err) < 0)
        {
          fprintf (stderr, "bench-unpack: %s\n", berth_error_message (err));
          return 1;
        }
      double dt = now () - t0;
      printf ("decoder=%s compressed=%lld uncompressed=%lld seconds=%.3f MiB/s(uncompressed)=%.1f %s\n",
              unpack_stream_decoder (s), (long long) st.st_size, (long long) size, dt,
              (double) size / dt / 1048576.0, digest);
      unpack_stream_free (s);
      return 0;
    }

  char tmp[4096];
  const char *root = argv[i + 1];
  if (root == NULL)
    {
      snprintf (tmp, sizeof tmp, "%s/bench-unpack.XXXXXX", getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp");
      if (mkdtemp (tmp) == NULL)
        {
          perror ("mkdtemp");
          return 1;
        }
      root = tmp;
    }
  else if (mkdir (root, 0755) < 0 && errno != EEXIST)
    {
      perror (root);
      return 1;
    }
  struct unpack_options o = { .mode = native ? UNPACK_NATIVE : UNPACK_OVERLAY, .same_owner = geteuid () == 0 };
  struct unpack_result res;
  int r = unpack_apply_fd (root, fd, &o, &res, &err);
  double dt = now () - t0;
  if (r < 0)
    fprintf (stderr, "bench-unpack: %s\n", berth_error_message (err));
  else
    printf ("openat2=%s compressed=%lld uncompressed=%lld entries=%lld seconds=%.3f MiB/s(uncompressed)=%.1f "
            "entries/s=%.0f %s\n",
            tree_have_openat2 () ? "yes" : "no", (long long) st.st_size, (long long) res.uncompressed,
            (long long) res.entries, dt, (double) res.uncompressed / dt / 1048576.0, (double) res.entries / dt,
            res.diff_id);
  if (argv[i + 1] == NULL)
    {
      int dfd = open ("/", O_PATH | O_DIRECTORY);
      tree_remove_all (dfd, root + 1);
      close (dfd);
    }
  return r < 0 ? 1 : 0;
}
