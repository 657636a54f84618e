/* libarchive, loaded at first use: see lazy-archive.h. */
#include <config.h>

#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/util/lazy-archive.h"

/* configure's; tests/unit/test-lazy-missing.c names a missing one. */
#ifndef LAZY_ARCHIVE_SONAME
#define LAZY_ARCHIVE_SONAME LIBARCHIVE_SONAME
#endif

struct lazy_archive lazy_archive;

/* Each field of struct lazy_archive and the libarchive symbol behind it. */
#define SYMBOL(field) { "archive_" #field, offsetof (struct lazy_archive, field) }
static const struct
{
  const char *name;
  size_t offset;
} symbols[] = {
  SYMBOL (read_new),
  SYMBOL (read_free),
  SYMBOL (read_support_format_tar),
  SYMBOL (read_support_format_empty),
  SYMBOL (read_open),
  SYMBOL (read_next_header),
  SYMBOL (read_data_block),
  SYMBOL (error_string),
  SYMBOL (set_error),
  SYMBOL (entry_pathname),
  SYMBOL (entry_hardlink),
  SYMBOL (entry_symlink),
  SYMBOL (entry_filetype),
  SYMBOL (entry_perm),
  SYMBOL (entry_uid),
  SYMBOL (entry_gid),
  SYMBOL (entry_size),
  SYMBOL (entry_rdevmajor),
  SYMBOL (entry_rdevminor),
  SYMBOL (entry_atime),
  SYMBOL (entry_atime_nsec),
  SYMBOL (entry_atime_is_set),
  SYMBOL (entry_mtime),
  SYMBOL (entry_mtime_nsec),
  SYMBOL (entry_mtime_is_set),
  SYMBOL (entry_xattr_reset),
  SYMBOL (entry_xattr_next),
};
_Static_assert (sizeof symbols / sizeof symbols[0] == sizeof (struct lazy_archive) / sizeof (void (*) (void)),
                "one symbol for each field of struct lazy_archive");

/* Written once by load(), under pthread_once; empty when loading worked. */
static char load_error[512];

/* "cannot load <soname>: <why>"; dlopen's dlerror() starts with the name
 * already ("<soname>: cannot open shared object file: ..."). */
static void
set_load_error (const char *why)
{
  size_t n = strlen (LAZY_ARCHIVE_SONAME);
  if (strncmp (why, LAZY_ARCHIVE_SONAME, n) == 0 && strncmp (why + n, ": ", 2) == 0)
    why += n + 2;
  snprintf (load_error, sizeof load_error, "cannot load %s: %s", LAZY_ARCHIVE_SONAME, why);
}

static void
load (void)
{
  /* The handle is kept for the life of the process: nothing unloads. */
  void *h = dlopen (LAZY_ARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL)
    {
      set_load_error (dlerror ());
      return;
    }
  struct lazy_archive table = { 0 };
  for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++)
    {
      void *p = dlsym (h, symbols[i].name);
      if (p == NULL)
        {
          set_load_error (dlerror ());
          dlclose (h);
          return;
        }
      memcpy ((char *) &table + symbols[i].offset, &p, sizeof p);
    }
  lazy_archive = table;
}

int
lazy_archive_load (berth_error **err)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once (&once, load);
  if (load_error[0])
    return berth_error_set (err, BERTH_E_INTERNAL, 0, "%s", load_error);
  return 0;
}
