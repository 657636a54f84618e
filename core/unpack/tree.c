/* Path operations confined to a root directory: see tree.h. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "core/unpack/tree.h"
#include "core/unpack/unpack-testing.h"

#define MAX_LINKS 40 /* the kernel's MAXSYMLINKS, which RESOLVE_IN_ROOT obeys */

static int openat2_missing; /* set once openat2 answered ENOSYS */

bool
tree_have_openat2 (void)
{
  return !openat2_missing && !(unpack_testing_flags & UNPACK_TESTING_NO_OPENAT2);
}

/* A stack of directory fds along the resolved path, with the path itself
 * (for the mkdir hook).  fds[0] is the root and not owned. */
struct walk
{
  int fds[PATH_MAX / 2 + 2];
  size_t depth;
  char path[PATH_MAX + 1];
  size_t path_len;
};

static void
walk_pop (struct walk *w)
{
  if (w->depth == 0)
    return; /* `..` at the root stays at the root */
  close (w->fds[w->depth--]);
  while (w->path_len > 0 && w->path[w->path_len - 1] != '/')
    w->path_len--;
  if (w->path_len > 0)
    w->path_len--;
  w->path[w->path_len] = '\0';
}

static int
walk_push (struct walk *w, int fd, const char *name, size_t len)
{
  if (w->depth + 1 >= ARRAY_SIZE (w->fds) || w->path_len + 1 + len > PATH_MAX)
    {
      close (fd);
      return -ENAMETOOLONG;
    }
  w->fds[++w->depth] = fd;
  if (w->path_len > 0)
    w->path[w->path_len++] = '/';
  memcpy (w->path + w->path_len, name, len);
  w->path_len += len;
  w->path[w->path_len] = '\0';
  return 0;
}

static void
walk_free (struct walk *w)
{
  while (w->depth > 0)
    close (w->fds[w->depth--]);
}

/* Resolve in user space, component by component (the fallback, and the
 * way missing parents get created). */
static int
walk_open (int rootfd, const char *path, int flags, bool create, tree_mkdir_hook hook, void *hook_data, int *ret_fd)
{
  _cleanup_free_ struct walk *w = calloc (1, sizeof *w);
  _cleanup_free_ char *todo = strdup (path);
  if (w == NULL || todo == NULL)
    return -ENOMEM;
  w->fds[0] = rootfd;
  int links = 0, r = 0;
  char *p = todo;

  for (;;)
    {
      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      char *end = strchrnul (p, '/');
      size_t len = (size_t) (end - p);
      char save = *end;
      *end = '\0';
      if (len == 1 && p[0] == '.')
        {
          *end = save;
          p = end;
          continue;
        }
      if (len == 2 && p[0] == '.' && p[1] == '.')
        {
          walk_pop (w);
          *end = save;
          p = end;
          continue;
        }
      int top = w->fds[w->depth];
      int fd = openat (top, p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create)
        {
          if (mkdirat (top, p, 0755) < 0 && errno != EEXIST)
            {
              r = -errno;
              break;
            }
          fd = openat (top, p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
          if (fd >= 0)
            {
              /* 0755 whatever the umask, as containerd's mkdir does. */
              if (fchmodat (top, p, 0755, 0) < 0)
                {
                  r = -errno;
                  close (fd);
                  break;
                }
              if (hook)
                {
                  char full[PATH_MAX + 1];
                  int n = snprintf (full, sizeof full, "%s%s%s", w->path, w->path_len ? "/" : "", p);
                  if (n < 0 || (size_t) n >= sizeof full)
                    r = -ENAMETOOLONG;
                  else
                    r = hook (hook_data, fd, full);
                  if (r < 0)
                    {
                      close (fd);
                      break;
                    }
                }
            }
        }
      if (fd < 0)
        {
          r = -errno;
          break;
        }
      struct stat st;
      if (fstat (fd, &st) < 0)
        {
          r = -errno;
          close (fd);
          break;
        }
      if (S_ISLNK (st.st_mode))
        {
          char target[PATH_MAX + 1];
          ssize_t n = readlinkat (fd, "", target, sizeof target);
          close (fd);
          if (n < 0)
            {
              r = -errno;
              break;
            }
          if ((size_t) n >= sizeof target)
            {
              r = -ENAMETOOLONG;
              break;
            }
          target[n] = '\0';
          if (++links > MAX_LINKS)
            {
              r = -ELOOP;
              break;
            }
          if (target[0] == '/')
            while (w->depth > 0)
              walk_pop (w);
          /* New work list: the target, then what followed the link. */
          *end = save;
          size_t rest = strlen (end);
          char *next = malloc ((size_t) n + rest + 2);
          if (next == NULL)
            {
              r = -ENOMEM;
              break;
            }
          memcpy (next, target, (size_t) n);
          next[n] = '/';
          memcpy (next + n + 1, end, rest + 1);
          free (todo);
          todo = p = next;
          continue;
        }
      if (!S_ISDIR (st.st_mode))
        {
          close (fd);
          r = -ENOTDIR;
          break;
        }
      r = walk_push (w, fd, p, len);
      if (r < 0)
        break;
      *end = save;
      p = end;
    }

  if (r == 0)
    {
      /* Reopen the result with the flags asked for. */
      int fd = openat (w->fds[w->depth], ".", flags | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        r = -errno;
      else
        *ret_fd = fd;
    }
  walk_free (w);
  return r;
}

int
tree_open_dir (int rootfd, const char *path, int flags, bool create, tree_mkdir_hook hook, void *hook_data,
               int *ret_fd)
{
  if (tree_have_openat2 ())
    {
      struct open_how how = {
        .flags = (uint64_t) (flags | O_DIRECTORY | O_CLOEXEC),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
      };
      for (int tries = 0; tries < 8; tries++)
        {
          int fd = (int) syscall (SYS_openat2, rootfd, *path ? path : ".", &how, sizeof how);
          if (fd >= 0)
            {
              *ret_fd = fd;
              return 0;
            }
          if (errno == EAGAIN || errno == EINTR)
            continue; /* a concurrent rename somewhere; try again */
          if (errno == ENOSYS)
            {
              openat2_missing = 1;
              break;
            }
          if (errno == ENOENT && create)
            break; /* the walker makes what is missing */
          if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == ENAMETOOLONG || errno == EACCES)
            return -errno;
          break;
        }
    }
  return walk_open (rootfd, path, flags, create, hook, hook_data, ret_fd);
}

int
tree_remove_all (int parent, const char *name)
{
  if (unlinkat (parent, name, 0) == 0 || errno == ENOENT)
    return 0;
  if (errno != EISDIR)
    return -errno;
  int fd = openat (parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int e = errno;
      close (fd);
      return -e;
    }
  int r = 0;
  struct dirent *de;
  errno = 0;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      r = tree_remove_all (dirfd (d), de->d_name);
      if (r < 0)
        break;
      errno = 0;
    }
  if (r == 0 && errno != 0)
    r = -errno;
  closedir (d);
  if (r < 0)
    return r;
  if (unlinkat (parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return -errno;
  return 0;
}
