/* libFuzzer target over diff apply: the input (a tar, or gzip/zstd of one:
 * sniffed) is applied into a fresh temporary root, which is removed after
 * each run.  The first byte picks overlay or native mode and whether the
 * openat2 fallback walker is used.  Any input must apply or fail with an
 * error message; nothing may appear outside the root (the root sits alone
 * in its own directory, which is checked after every run). */
#include <config.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/unpack/tree.h"
#include "core/unpack/unpack-testing.h"
#include "core/unpack/unpack.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

struct mem
{
  const uint8_t *p;
  size_t len, pos;
};

static ssize_t
mem_read (void *d, void *buf, size_t len)
{
  struct mem *m = d;
  size_t n = m->len - m->pos;
  if (n > len)
    n = len;
  if (n > 3000)
    n = 3000; /* small reads: headers straddle callbacks */
  memcpy (buf, m->p + m->pos, n);
  m->pos += n;
  return (ssize_t) n;
}

static void
check_only_root (const char *parent)
{
  DIR *d = opendir (parent);
  if (d == NULL)
    abort ();
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0 && strcmp (de->d_name, "root") != 0)
      {
        fprintf (stderr, "fuzz-unpack: %s/%s written outside the root\n", parent, de->d_name);
        abort ();
      }
  closedir (d);
}

/* Without root, a 0000 directory from the layer cannot be emptied: open
 * everything up first (nftw visits a directory before its contents). */
static int
open_up (const char *path, const struct stat *st, int type, struct FTW *ftw)
{
  if (type == FTW_D || type == FTW_DNR)
    chmod (path, 0700);
  return 0;
}

static void
remove_tree (const char *parent)
{
  int pfd = open ("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0)
    abort ();
  if (tree_remove_all (pfd, parent + 5) < 0)
    {
      nftw (parent, open_up, 64, FTW_PHYS);
      if (tree_remove_all (pfd, parent + 5) < 0)
        abort ();
    }
  close (pfd);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  char parent[] = "/tmp/fuzz-unpack.XXXXXX";
  if (mkdtemp (parent) == NULL)
    abort ();
  char root[64];
  snprintf (root, sizeof root, "%s/root", parent);
  if (mkdir (root, 0755) < 0)
    abort ();

  unpack_testing_flags = (data[0] & 2) ? UNPACK_TESTING_NO_OPENAT2 : 0;
  struct unpack_options o = {
    .mode = (data[0] & 1) ? UNPACK_NATIVE : UNPACK_OVERLAY,
    .same_owner = false,
  };
  struct mem m = { data + 1, size - 1, 0 };
  struct unpack_result res;
  berth_error *err = NULL;
  int r = unpack_apply (root, mem_read, &m, &o, &res, &err);
  if (r < 0 && (err == NULL || berth_error_message (err) == NULL || berth_error_message (err)[0] == '\0'))
    abort ();
  if (r == 0 && strncmp (res.diff_id, "sha256:", 7) != 0)
    abort ();
  berth_error_free (err);

  check_only_root (parent);
  remove_tree (parent);
  return 0;
}
