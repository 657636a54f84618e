#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "fs.h"

int
fs_mkdir_p (const char *path, mode_t mode)
{
  _cleanup_free_ char *copy = strdup (path);
  if (copy == NULL)
    return -ENOMEM;
  for (char *s = copy + 1; *s; s++)
    if (*s == '/')
      {
        *s = '\0';
        if (mkdir (copy, 0711) < 0 && errno != EEXIST)
          return -errno;
        *s = '/';
      }
  if (mkdir (copy, mode) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}
