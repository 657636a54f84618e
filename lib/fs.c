#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
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

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape_octal (char *p)
{
  char *o = p;
  for (; *p; p++)
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7')
      {
        *o++ = (char) (((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
        p += 3;
      }
    else
      *o++ = *p;
  *o = '\0';
}

/* The mount points at dir or below it, in the order mountinfo lists them
 * (a mount after the one it covers), malloc'ed, NULL-terminated; *n their
 * count.  NULL when out of memory or mountinfo cannot be read. */
static char **
mounts_under (const char *dir, size_t *n)
{
  *n = 0;
  FILE *f = fopen ("/proc/self/mountinfo", "re");
  if (f == NULL)
    return NULL;
  size_t dl = strlen (dir), cap = 0;
  char *line = NULL, **v = calloc (1, sizeof *v);
  while (v && getline (&line, &cap, f) > 0)
    {
      /* id parent major:minor root mountpoint ... */
      char *save = NULL, *tok = strtok_r (line, " ", &save);
      for (int i = 0; tok && i < 4; i++)
        tok = strtok_r (NULL, " ", &save);
      if (tok == NULL)
        continue;
      unescape_octal (tok);
      if (strncmp (tok, dir, dl) != 0 || (tok[dl] != '\0' && tok[dl] != '/'))
        continue;
      char **nv = realloc (v, (*n + 2) * sizeof *v);
      char *c = nv ? strdup (tok) : NULL;
      if (nv)
        v = nv;
      if (c == NULL)
        {
          strv_free (v);
          v = NULL;
          break;
        }
      v[(*n)++] = c;
      v[*n] = NULL;
    }
  free (line);
  fclose (f);
  return v;
}

int
fs_unmount_under (const char *dir)
{
  _cleanup_free_ char *real = realpath (dir, NULL);
  if (real == NULL)
    return errno == ENOENT ? 0 : -errno;
  /* The newest mount first; one that another covers answers EINVAL (its
   * path reaches the cover) and comes off in a later pass. */
  for (int n = 0; n < 256; n++)
    {
      size_t k = 0;
      char **v = mounts_under (real, &k);
      if (v == NULL)
        return -ENOMEM;
      int r = 0;
      for (size_t i = k; i-- > 0;)
        {
          if (umount2 (v[i], 0) == 0 || (errno == EBUSY && umount2 (v[i], MNT_DETACH) == 0))
            {
              r = 1;
              break;
            }
          r = -errno;
        }
      strv_free (v);
      if (r <= 0)
        return r < 0 ? r : n;
    }
  return -EBUSY;
}
