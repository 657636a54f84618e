/* io.berth.snapshotter.v1.overlayfs: can overlayfs work here?
 *
 * init runs ovl_detect(): it gathers the facts (does /proc/filesystems list
 * overlay, does the backing filesystem of the root fill in d_type, can an
 * overlay with two lowers, an upper and a work dir be mounted under the
 * root) and ovl_detect_reason() turns them into the one-line reason of a
 * SKIP.  The reason is a pure function of the facts so that the tests can
 * feed it a fake /proc/filesystems and fake probe results.
 *
 * Also here: whether "userxattr" and "index=off" belong in the mount
 * options (containerd's overlayutils.NeedsUserXAttr and supportsIndex).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "overlay.h"

/* statfs f_type values (linux/magic.h), for the names in SKIP reasons. */
static const struct
{
  unsigned long magic;
  const char *name;
} fs_names[] = {
  { 0xEF53, "ext4" },          { 0x58465342, "xfs" },      { 0x9123683E, "btrfs" },
  { 0x01021994, "tmpfs" },     { 0x794c7630, "overlay" },  { 0x6969, "nfs" },
  { 0x65735546, "fuse" },      { 0x2fc12fc1, "zfs" },      { 0x4d44, "vfat" },
  { 0x5346544e, "ntfs" },      { 0xFF534D42, "cifs" },     { 0x858458f6, "ramfs" },
  { 0x73717368, "squashfs" },  { 0x01021997, "9p" },       { 0xF2F52010, "f2fs" },
  { 0x28cd3d45, "cramfs" },    { 0x9660, "iso9660" },      { 0xE0F5E1E2, "erofs" },
  { 0x52654973, "reiserfs" },  { 0x62656572, "sysfs" },    { 0x9fa0, "proc" },
};

const char *
ovl_fs_name (unsigned long magic, char *buf, size_t len)
{
  for (size_t i = 0; i < sizeof fs_names / sizeof fs_names[0]; i++)
    if ((fs_names[i].magic & 0xffffffffUL) == (magic & 0xffffffffUL))
      return fs_names[i].name;
  snprintf (buf, len, "0x%lx", magic);
  return buf;
}

bool
ovl_proc_lists_overlay (const char *text)
{
  /* Lines are "[nodev]\t<name>\n". */
  for (const char *line = text; line && *line;)
    {
      const char *end = strchr (line, '\n');
      size_t len = end ? (size_t) (end - line) : strlen (line);
      const char *tab = memchr (line, '\t', len);
      const char *name = tab ? tab + 1 : line;
      size_t nlen = len - (size_t) (name - line);
      while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\r'))
        nlen--;
      while (nlen > 0 && *name == ' ')
        name++, nlen--;
      if (nlen == 7 && memcmp (name, "overlay", 7) == 0)
        return true;
      line = end ? end + 1 : NULL;
    }
  return false;
}

bool
ovl_uid_map_is_initial (const char *text)
{
  /* The initial user namespace maps the whole range onto itself:
   * "0 0 4294967295" (the format of /proc/self/uid_map, columns padded). */
  unsigned long long inside, outside, count;
  char extra;
  if (text == NULL || sscanf (text, "%llu %llu %llu %c", &inside, &outside, &count, &extra) != 3)
    return false;
  return inside == 0 && outside == 0 && count == 4294967295ULL;
}

/* The whole of a small /proc file; NULL on error with errno set. */
static char *
read_small_file (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc (cap);
  while (buf)
    {
      if (len + 1 >= cap)
        {
          char *n = realloc (buf, cap * 2);
          if (n == NULL)
            {
              free (buf);
              buf = NULL;
              errno = ENOMEM;
              break;
            }
          buf = n;
          cap *= 2;
        }
      ssize_t n = read (fd, buf + len, cap - len - 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved = errno;
          free (buf);
          buf = NULL;
          errno = saved;
          break;
        }
      if (n == 0)
        {
          buf[len] = '\0';
          break;
        }
      len += (size_t) n;
    }
  int saved = errno;
  close (fd);
  errno = saved;
  return buf;
}

/* 1 when readdir of a fresh directory under dir fills in d_type, 0 when it
 * answers DT_UNKNOWN (xfs with ftype=0), -errno on error.  Like
 * continuity's fs.SupportsDType: create a file, list, look. */
static int
check_dtype (const char *dir)
{
  char *tmp = ovl_path ("%s/d_type-check.XXXXXX", dir);
  if (tmp == NULL)
    return -ENOMEM;
  if (mkdtemp (tmp) == NULL)
    {
      int r = -errno;
      free (tmp);
      return r;
    }
  int r = -ENOENT;
  char *file = ovl_path ("%s/f", tmp);
  int fd = file ? open (file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600) : -1;
  if (fd >= 0)
    {
      close (fd);
      DIR *d = opendir (tmp);
      if (d == NULL)
        r = -errno;
      else
        {
          struct dirent *e;
          while ((e = readdir (d)) != NULL)
            if (strcmp (e->d_name, "f") == 0)
              {
                r = e->d_type == DT_UNKNOWN ? 0 : 1;
                break;
              }
          closedir (d);
        }
      unlink (file);
    }
  else
    r = file ? -errno : -ENOMEM;
  free (file);
  rmdir (tmp);
  free (tmp);
  return r;
}

/* Remove the probe directory: its five subdirectories (the work dir may
 * hold an empty "work" subdirectory made by the kernel), then itself. */
static void
remove_probe_dir (const char *td)
{
  static const char *const subs[] = { "work/work", "work/index", "lower1", "lower2", "upper", "work", "merged" };
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
    {
      char *p = ovl_path ("%s/%s", td, subs[i]);
      if (p)
        rmdir (p);
      free (p);
    }
  rmdir (td);
}

int
ovl_probe_mount (const char *dir, const char *const *extra, size_t nextra)
{
  char *td = ovl_path ("%s/overlay-check.XXXXXX", dir);
  if (td == NULL)
    return -ENOMEM;
  if (mkdtemp (td) == NULL)
    {
      int r = -errno;
      free (td);
      return r;
    }
  static const char *const subs[] = { "lower1", "lower2", "upper", "work", "merged" };
  int r = 0;
  for (size_t i = 0; r == 0 && i < sizeof subs / sizeof subs[0]; i++)
    {
      char *p = ovl_path ("%s/%s", td, subs[i]);
      if (p == NULL)
        r = -ENOMEM;
      else if (mkdir (p, 0755) < 0)
        r = -errno;
      free (p);
    }
  char *data = NULL, *merged = NULL;
  if (r == 0)
    {
      size_t n = 0;
      for (size_t i = 0; i < nextra; i++)
        n += strlen (extra[i]) + 1;
      char *ex = malloc (n + 1);
      if (ex)
        {
          ex[0] = '\0';
          for (size_t i = 0; i < nextra; i++)
            {
              strcat (ex, extra[i]);
              strcat (ex, ",");
            }
          data = ovl_path ("%slowerdir=%s/lower2:%s/lower1,upperdir=%s/upper,workdir=%s/work", ex, td, td, td, td);
        }
      free (ex);
      merged = ovl_path ("%s/merged", td);
      if (data == NULL || merged == NULL)
        r = -ENOMEM;
    }
  if (r == 0)
    {
      if (mount ("overlay", merged, "overlay", 0, data) < 0)
        r = -errno;
      else if (umount2 (merged, MNT_DETACH) < 0)
        r = -errno;
    }
  free (data);
  free (merged);
  remove_probe_dir (td);
  free (td);
  return r;
}

char *
ovl_detect_reason (const struct ovl_facts *f)
{
  char *msg = NULL;
  if (f->probe_errno == ENODEV || (!f->proc_lists_overlay && f->probe_errno != 0))
    {
      if (f->probe_errno != 0)
        msg = ovl_path ("overlayfs not available: /proc/filesystems lists no overlay (mounting one: %s)",
                        strerror (f->probe_errno));
      else
        msg = ovl_path ("overlayfs not available: /proc/filesystems lists no overlay");
    }
  else if (f->dtype == 0)
    msg = ovl_path ("backing filesystem %s without d_type at %s (xfs: reformat with ftype=1)", f->fstype, f->root);
  else if (f->dtype < 0)
    msg = ovl_path ("cannot check d_type support of the backing filesystem %s at %s: %s", f->fstype, f->root,
                    strerror (-f->dtype));
  else if (f->probe_errno == EPERM || f->probe_errno == EACCES)
    msg = ovl_path ("overlayfs cannot be mounted here: %s (mounting needs CAP_SYS_ADMIN)",
                    strerror (f->probe_errno));
  else if (f->probe_errno != 0)
    msg = ovl_path ("backing filesystem %s at %s does not support an overlay upperdir (%s)", f->fstype, f->root,
                    strerror (f->probe_errno));
  return msg;
}

int
ovl_detect (struct ovl *s, struct ovl_facts *f)
{
  memset (f, 0, sizeof *f);
  f->root = s->root;
  f->dtype = 1;

  char *procfs = read_small_file ("/proc/filesystems");
  /* Without /proc, rely on the probe mount (which also loads the module). */
  f->proc_lists_overlay = procfs ? ovl_proc_lists_overlay (procfs) : true;
  free (procfs);

  struct statfs sfs;
  if (statfs (s->root, &sfs) == 0)
    snprintf (f->fstype, sizeof f->fstype, "%s", ovl_fs_name ((unsigned long) sfs.f_type, f->fsbuf, sizeof f->fsbuf));
  else
    snprintf (f->fstype, sizeof f->fstype, "unknown");

  f->dtype = check_dtype (s->root);
  if (f->dtype <= 0)
    return 0;

  /* The probe mounts with the options the snapshots will get, so that a
   * bad mount_options entry is caught here rather than at run time. */
  int r = ovl_probe_mount (s->root, (const char *const *) s->options, s->noptions);
  f->probe_errno = r < 0 ? -r : 0;
  if (r == -EINVAL && s->noptions > 0 && ovl_probe_mount (s->root, NULL, 0) == 0)
    {
      /* The filesystem is fine; an option is not. */
      f->options_errno = EINVAL;
      f->probe_errno = 0;
    }
  return 0;
}

bool
ovl_supports_index (void)
{
  return access ("/sys/module/overlay/parameters/index", F_OK) == 0;
}

/* containerd's NeedsUserXAttr: never in the initial user namespace; not on
 * tmpfs; on kernels from 5.11 always; otherwise when a probe mount with
 * "userxattr" succeeds. */
bool
ovl_needs_userxattr (const char *root)
{
  char *map = read_small_file ("/proc/self/uid_map");
  bool initial = map == NULL || ovl_uid_map_is_initial (map);
  free (map);
  if (initial)
    return false;
  struct statfs sfs;
  if (statfs (root, &sfs) == 0 && (unsigned long) sfs.f_type == 0x01021994UL)
    return false;
  struct utsname u;
  unsigned major = 0, minor = 0;
  if (uname (&u) == 0 && sscanf (u.release, "%u.%u", &major, &minor) == 2
      && (major > 5 || (major == 5 && minor >= 11)))
    return true;
  const char *opt[] = { "userxattr" };
  return ovl_probe_mount (root, opt, 1) == 0;
}
