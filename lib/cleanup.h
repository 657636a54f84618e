/* Scope-bound cleanup (systemd/crun style).  Every x_free() accepts NULL. */
#ifndef BERTH_CLEANUP_H
#define BERTH_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>

#define _cleanup_(f) __attribute__ ((cleanup (f)))

static inline void
freep (void *p)
{
  free (*(void **) p);
}

static inline void
closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
    }
}

static inline void
fclosep (FILE **f)
{
  if (*f)
    fclose (*f);
}

static inline void
strv_free (char **v)
{
  if (v == NULL)
    return;
  for (char **i = v; *i; i++)
    free (*i);
  free (v);
}

static inline void
strv_freep (char ***v)
{
  strv_free (*v);
}

#define _cleanup_free_ _cleanup_ (freep)
#define _cleanup_close_ _cleanup_ (closep)
#define _cleanup_fclose_ _cleanup_ (fclosep)
#define _cleanup_strv_ _cleanup_ (strv_freep)

/* Hand a value on: returns p and sets the variable to NULL. */
#define TAKE_PTR(p)                     \
  ({                                    \
    __typeof__ (p) take_ptr_tmp_ = (p); \
    (p) = NULL;                         \
    take_ptr_tmp_;                      \
  })

#define TAKE_FD(fd)            \
  ({                           \
    int take_fd_tmp_ = (fd);   \
    (fd) = -1;                 \
    take_fd_tmp_;              \
  })

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

#endif
