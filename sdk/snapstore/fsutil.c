/* libberth-snapstore: the two filesystem chores every snapshotter has,
 * disk usage (containerd's fs.DiskUsage) and rm -rf of a removed snapshot.
 *
 * Both walk with openat/fdopendir from the directory they were given, never
 * chdir (plugins run on worker threads), never follow symlinks and never
 * leave the filesystem they started on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapstore-private.h"

/* ---- disk usage ---------------------------------------------------------- */

/* (dev, ino) of inodes with more than one link, so each counts once. */
struct ino_set
{
  struct ino_key
  {
    dev_t dev;
    ino_t ino;
  } *slots;
  size_t cap, n;
};

static size_t
ino_hash (dev_t dev, ino_t ino)
{
  uint64_t h = (uint64_t) ino * UINT64_C (0x9e3779b97f4a7c15) ^ (uint64_t) dev;
  return (size_t) (h ^ (h >> 29));
}

/* 1 when added, 0 when already there, -ENOMEM. */
static int
ino_set_add (struct ino_set *set, dev_t dev, ino_t ino)
{
  if ((set->n + 1) * 2 > set->cap)
    {
      size_t ncap = set->cap ? set->cap * 2 : 256;
      struct ino_key *ns = calloc (ncap, sizeof *ns);
      if (ns == NULL)
        return -ENOMEM;
      for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i].ino != 0)
          {
            size_t j = ino_hash (set->slots[i].dev, set->slots[i].ino) & (ncap - 1);
            while (ns[j].ino != 0)
              j = (j + 1) & (ncap - 1);
            ns[j] = set->slots[i];
          }
      free (set->slots);
      set->slots = ns;
      set->cap = ncap;
    }
  size_t j = ino_hash (dev, ino) & (set->cap - 1);
  while (set->slots[j].ino != 0)
    {
      if (set->slots[j].ino == ino && set->slots[j].dev == dev)
        return 0;
      j = (j + 1) & (set->cap - 1);
    }
  set->slots[j] = (struct ino_key){ dev, ino };
  set->n++;
  return 1;
}

struct du
{
  const berth_snapstore *s;
  berth_error *err;
  dev_t dev;
  struct ino_set links;
  int64_t inodes, bytes;
};

static int
du_account (struct du *du, const struct stat *st)
{
  if (st->st_nlink > 1 && !S_ISDIR (st->st_mode))
    {
      int r = ino_set_add (&du->links, st->st_dev, st->st_ino);
      if (r < 0)
        return snapstore_host (du->s)->error_set (du->err, BERTH_E_NOMEM, 0, "out of memory");
      if (r == 0)
        return 0;
    }
  du->inodes++;
  du->bytes += (int64_t) st->st_blocks * 512;
  return 0;
}

/* Account the entries of the open directory fd (consumed). */
static int
du_dir (struct du *du, int fd, const char *path)
{
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int e = errno;
      close (fd);
      return snapstore_host (du->s)->error_set (du->err, BERTH_E_INTERNAL, e, "disk usage of %s", path);
    }
  int r = 0;
  struct dirent *e;
  errno = 0;
  while (r == 0 && (e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      struct stat st;
      if (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          if (errno == ENOENT)
            continue;
          r = snapstore_host (du->s)->error_set (du->err, BERTH_E_INTERNAL, errno, "disk usage of %s/%s", path,
                                                 e->d_name);
          break;
        }
      if (st.st_dev != du->dev)
        continue; /* a mount point: not ours */
      r = du_account (du, &st);
      if (r == 0 && S_ISDIR (st.st_mode))
        {
          int cfd = openat (dirfd (d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (cfd < 0)
            {
              if (errno == ENOENT)
                continue;
              r = snapstore_host (du->s)->error_set (du->err, BERTH_E_INTERNAL, errno, "disk usage of %s/%s",
                                                     path, e->d_name);
              break;
            }
          size_t n = strlen (path) + strlen (e->d_name) + 2;
          char *sub = malloc (n);
          if (sub == NULL)
            {
              close (cfd);
              r = snapstore_host (du->s)->error_set (du->err, BERTH_E_NOMEM, 0, "out of memory");
              break;
            }
          snprintf (sub, n, "%s/%s", path, e->d_name);
          r = du_dir (du, cfd, sub);
          free (sub);
        }
      errno = 0;
    }
  if (r == 0 && errno != 0)
    r = snapstore_host (du->s)->error_set (du->err, BERTH_E_INTERNAL, errno, "disk usage of %s", path);
  closedir (d);
  return r;
}

BERTH_PUBLIC int
berth_snapstore_disk_usage (const berth_snapstore *s, const char *path, struct berth_snapshot_usage *ret_usage,
                            berth_error *err)
{
  const struct berth_host *host = snapstore_host (s);
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return host->error_set (err, errno == ENOENT ? BERTH_E_NOTFOUND : BERTH_E_INTERNAL, errno, "disk usage of %s",
                            path);
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      int e = errno;
      close (fd);
      return host->error_set (err, BERTH_E_INTERNAL, e, "disk usage of %s", path);
    }
  struct du du = { .s = s, .err = err, .dev = st.st_dev };
  int r = du_account (&du, &st);
  if (r == 0)
    r = du_dir (&du, fd, path);
  else
    close (fd);
  free (du.links.slots);
  if (r < 0)
    return r;
  if (BERTH_HAS (struct berth_snapshot_usage, ret_usage, inodes))
    ret_usage->inodes = du.inodes;
  if (BERTH_HAS (struct berth_snapshot_usage, ret_usage, bytes))
    ret_usage->bytes = du.bytes;
  return 0;
}

/* ---- remove tree --------------------------------------------------------- */

struct rm
{
  const berth_snapstore *s;
  berth_error *err;
  dev_t dev;
};

/* Empty the directory fd (consumed); path is for messages. */
static int
rm_dir_contents (struct rm *rm, int fd, const char *path)
{
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      int e = errno;
      close (fd);
      return snapstore_host (rm->s)->error_set (rm->err, BERTH_E_INTERNAL, e, "removing %s", path);
    }
  int r = 0;
  struct dirent *e;
  while (r == 0 && (errno = 0, e = readdir (d)) != NULL)
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN)
        {
          struct stat st;
          if (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            {
              if (errno == ENOENT)
                continue;
              r = snapstore_host (rm->s)->error_set (rm->err, BERTH_E_INTERNAL, errno, "removing %s/%s", path,
                                                     e->d_name);
              break;
            }
          if (S_ISDIR (st.st_mode))
            {
              if (st.st_dev != rm->dev)
                {
                  r = snapstore_host (rm->s)->error_set (rm->err, BERTH_E_PRECONDITION, EXDEV,
                                                         "removing %s/%s: a mount point", path, e->d_name);
                  break;
                }
              /* A read-only directory from an image must still be emptied. */
              if ((st.st_mode & 0700) != 0700)
                fchmodat (dirfd (d), e->d_name, (st.st_mode & 07777) | 0700, 0);
              int cfd = openat (dirfd (d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
              if (cfd < 0)
                {
                  if (errno == ENOENT)
                    continue;
                  r = snapstore_host (rm->s)->error_set (rm->err, BERTH_E_INTERNAL, errno, "removing %s/%s", path,
                                                         e->d_name);
                  break;
                }
              size_t n = strlen (path) + strlen (e->d_name) + 2;
              char *sub = malloc (n);
              if (sub == NULL)
                {
                  close (cfd);
                  r = snapstore_host (rm->s)->error_set (rm->err, BERTH_E_NOMEM, 0, "out of memory");
                  break;
                }
              snprintf (sub, n, "%s/%s", path, e->d_name);
              r = rm_dir_contents (rm, cfd, sub);
              free (sub);
              if (r == 0 && unlinkat (dirfd (d), e->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                r = snapstore_host (rm->s)->error_set (rm->err, BERTH_E_INTERNAL, errno, "removing %s/%s", path,
                                                       e->d_name);
              continue;
            }
        }
      if (unlinkat (dirfd (d), e->d_name, 0) < 0 && errno != ENOENT)
        r = snapstore_host (rm->s)->error_set (rm->err, BERTH_E_INTERNAL, errno, "removing %s/%s", path, e->d_name);
    }
  if (r == 0 && e == NULL && errno != 0)
    r = snapstore_host (rm->s)->error_set (rm->err, BERTH_E_INTERNAL, errno, "removing %s", path);
  closedir (d);
  return r;
}

BERTH_PUBLIC int
berth_snapstore_remove_tree (const berth_snapstore *s, int dirfd, const char *name, berth_error *err)
{
  const struct berth_host *host = snapstore_host (s);
  struct stat st;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : host->error_set (err, BERTH_E_INTERNAL, errno, "removing %s", name);
  if (!S_ISDIR (st.st_mode))
    {
      if (unlinkat (dirfd, name, 0) < 0 && errno != ENOENT)
        return host->error_set (err, BERTH_E_INTERNAL, errno, "removing %s", name);
      return 0;
    }
  if ((st.st_mode & 0700) != 0700)
    fchmodat (dirfd, name, (st.st_mode & 07777) | 0700, 0);
  int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : host->error_set (err, BERTH_E_INTERNAL, errno, "removing %s", name);
  struct rm rm = { .s = s, .err = err, .dev = st.st_dev };
  int r = rm_dir_contents (&rm, fd, name);
  if (r == 0 && unlinkat (dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    r = host->error_set (err, BERTH_E_INTERNAL, errno, "removing %s", name);
  return r;
}
