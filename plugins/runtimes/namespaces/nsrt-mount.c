/* berth-runtime: the container's file system, set up by the init in its
 * new mount namespace before it drops privileges.
 *
 * Mount targets come from a hostile config.json and a hostile image: every
 * target is resolved with openat2(RESOLVE_IN_ROOT) against the rootfs, so a
 * symlink in the image (/etc -> /host/etc, ../../..) stays inside the rootfs,
 * and the mount is made on /proc/self/fd/<fd> of the resolved directory, so
 * nothing can swap the path between the check and the mount. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "nsrt.h"

#define _cleanup_close_ __attribute__ ((cleanup (closep)))
static void
closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v;
  if (o && json_object_object_get_ex (o, key, &v) && json_object_is_type (v, json_type_string))
    return json_object_get_string (v);
  return NULL;
}

static int
open_in_root (int rootfd, const char *path, int flags)
{
  struct open_how how = { .flags = flags | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
  return syscall (SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Resolve (creating what is missing: directories, and the last component
 * as an empty file when `file`) path inside the root; an O_PATH fd. */
static int
mkpath_in_root (int rootfd, const char *path, bool file, struct nsrt_err *err)
{
  int fd = open_in_root (rootfd, path, O_PATH);
  if (fd >= 0 || errno != ENOENT)
    {
      if (fd < 0)
        return nsrt_errf (err, errno, "resolve %s in the rootfs", path);
      return fd;
    }
  char buf[4096];
  if (strlen (path) >= sizeof buf)
    return nsrt_errf (err, 0, "%s: path too long", path);
  strcpy (buf, path);
  int cur = dup (rootfd);
  char *save = NULL;
  char prefix[4096] = "";
  size_t plen = 0;
  for (char *comp = strtok_r (buf, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      bool last = (save == NULL || *save == '\0');
      plen += snprintf (prefix + plen, sizeof prefix - plen, "/%s", comp);
      int next = open_in_root (rootfd, prefix, O_PATH);
      if (next < 0 && errno == ENOENT)
        {
          if (last && file)
            {
              int f = openat (cur, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
              if (f >= 0)
                close (f);
            }
          else
            mkdirat (cur, comp, 0755);
          next = open_in_root (rootfd, prefix, O_PATH);
        }
      if (next < 0)
        {
          int e = errno;
          close (cur);
          return nsrt_errf (err, e, "create %s in the rootfs", prefix);
        }
      close (cur);
      cur = next;
    }
  return cur;
}

static const char *
fdpath (int fd, char buf[static 64])
{
  snprintf (buf, 64, "/proc/self/fd/%d", fd);
  return buf;
}

struct mount_opts
{
  unsigned long flags;     /* applied at mount (and remount for binds) */
  unsigned long clear;     /* flags explicitly turned off (rw, suid, ...) */
  unsigned long propagation;
  bool bind, rbind;
  char data[1024];
};

static const struct
{
  const char *name;
  bool clear;
  unsigned long flag;
} mount_flags[] = {
  { "ro", false, MS_RDONLY },          { "rw", true, MS_RDONLY },
  { "nosuid", false, MS_NOSUID },      { "suid", true, MS_NOSUID },
  { "nodev", false, MS_NODEV },        { "dev", true, MS_NODEV },
  { "noexec", false, MS_NOEXEC },      { "exec", true, MS_NOEXEC },
  { "sync", false, MS_SYNCHRONOUS },   { "async", true, MS_SYNCHRONOUS },
  { "dirsync", false, MS_DIRSYNC },    { "mand", false, MS_MANDLOCK },
  { "nomand", true, MS_MANDLOCK },     { "noatime", false, MS_NOATIME },
  { "atime", true, MS_NOATIME },       { "nodiratime", false, MS_NODIRATIME },
  { "diratime", true, MS_NODIRATIME }, { "relatime", false, MS_RELATIME },
  { "norelatime", true, MS_RELATIME }, { "strictatime", false, MS_STRICTATIME },
  { "nostrictatime", true, MS_STRICTATIME },
};

static const struct
{
  const char *name;
  unsigned long flag;
} propagation_flags[] = {
  { "private", MS_PRIVATE },
  { "rprivate", MS_PRIVATE | MS_REC },
  { "shared", MS_SHARED },
  { "rshared", MS_SHARED | MS_REC },
  { "slave", MS_SLAVE },
  { "rslave", MS_SLAVE | MS_REC },
  { "unbindable", MS_UNBINDABLE },
  { "runbindable", MS_UNBINDABLE | MS_REC },
};

static int
parse_mount_opts (json_object *opts, const char *what, struct mount_opts *mo, struct nsrt_err *err)
{
  memset (mo, 0, sizeof *mo);
  if (opts == NULL)
    return 0;
  if (!json_object_is_type (opts, json_type_array))
    return nsrt_errf (err, 0, "%s.options: not an array", what);
  size_t dlen = 0;
  for (size_t i = 0; i < json_object_array_length (opts); i++)
    {
      json_object *e = json_object_array_get_idx (opts, i);
      if (!json_object_is_type (e, json_type_string))
        return nsrt_errf (err, 0, "%s.options[%zu]: not a string", what, i);
      const char *o = json_object_get_string (e);
      bool done = false;
      if (strcmp (o, "bind") == 0)
        mo->bind = done = true;
      else if (strcmp (o, "rbind") == 0)
        mo->bind = mo->rbind = done = true;
      else if (strcmp (o, "tmpcopyup") == 0 || strcmp (o, "remount") == 0 || strcmp (o, "defaults") == 0)
        done = true; /* not supported / implied: as crun, ignore */
      else if (strcmp (o, "idmap") == 0 || strcmp (o, "ridmap") == 0 || strcmp (o, "rro") == 0)
        return nsrt_errf (err, 0, "%s.options: `%s` is not supported by berth-runtime", what, o);
      for (size_t k = 0; !done && k < sizeof mount_flags / sizeof mount_flags[0]; k++)
        if (strcmp (o, mount_flags[k].name) == 0)
          {
            if (mount_flags[k].clear)
              {
                mo->flags &= ~mount_flags[k].flag;
                mo->clear |= mount_flags[k].flag;
              }
            else
              mo->flags |= mount_flags[k].flag;
            done = true;
          }
      for (size_t k = 0; !done && k < sizeof propagation_flags / sizeof propagation_flags[0]; k++)
        if (strcmp (o, propagation_flags[k].name) == 0)
          {
            mo->propagation = propagation_flags[k].flag;
            done = true;
          }
      if (!done)
        {
          if (strchr (o, ',') || dlen + strlen (o) + 2 >= sizeof mo->data)
            return nsrt_errf (err, 0, "%s.options[%zu]: `%s` is invalid or too long", what, i, o);
          dlen += snprintf (mo->data + dlen, sizeof mo->data - dlen, "%s%s", dlen ? "," : "", o);
        }
    }
  return 0;
}

/* Remount read-only (or with other flags), keeping the flags the kernel
 * locks in a user namespace (nosuid, nodev, noexec, atime). */
static int
remount_bind (const char *path, unsigned long flags, struct nsrt_err *err)
{
  struct statvfs sv;
  if (statvfs (path, &sv) == 0)
    flags |= sv.f_flag & (ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_NODIRATIME | ST_RELATIME);
  if (mount (NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0)
    return nsrt_errf (err, errno, "remount %s", path);
  return 0;
}

/* cgroup mounts: cgroup2 on a v2 host; on v1 and hybrid hosts a tmpfs with
 * one hierarchy per line of /proc/self/cgroup (as runc does), each mounted in
 * the container's cgroup namespace, or bind-mounted from the host's
 * container cgroup when there is no cgroup namespace or the kernel refuses
 * the mount (user namespaces). */
static int
mount_cgroup (const struct nsrt_mount_ctx *m, int rootfd, const char *dest, const struct mount_opts *mo,
              struct nsrt_err *err)
{
  char p[64];
  struct statfs sfs;
  bool v2 = statfs ("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
  const char *lines = m->cgroup_lines ? m->cgroup_lines : "";
  _cleanup_close_ int fd = mkpath_in_root (rootfd, dest, false, err);
  if (fd < 0)
    return -1;
  unsigned long flags = mo->flags & ~MS_RDONLY;
  if (v2)
    {
      if (m->cgroupns && mount ("cgroup2", fdpath (fd, p), "cgroup2", mo->flags, NULL) == 0)
        return 0;
      const char *l = strstr (lines, "0::");
      char src[4096];
      if (l == NULL)
        return nsrt_errf (err, 0, "mount cgroup2 on %s: no cgroup v2 line in /proc/self/cgroup", dest);
      snprintf (src, sizeof src, "/sys/fs/cgroup%.*s", (int) strcspn (l + 3, "\n"), l + 3);
      if (mount (src, p, NULL, MS_BIND | MS_REC, NULL) < 0)
        return nsrt_errf (err, errno, "bind %s on %s", src, dest);
      close (fd);
      fd = open_in_root (rootfd, dest, O_PATH);
      if (fd < 0)
        return nsrt_errf (err, errno, "reopen %s", dest);
      return mo->flags ? remount_bind (fdpath (fd, p), mo->flags, err) : 0;
    }
  if (mount ("cgroup", fdpath (fd, p), "tmpfs", flags, "mode=755") < 0)
    return nsrt_errf (err, errno, "mount tmpfs on %s", dest);
  for (const char *l = lines; *l;)
    {
      size_t len = strcspn (l, "\n");
      char line[1024];
      snprintf (line, sizeof line, "%.*s", (int) (len < sizeof line ? len : sizeof line - 1), l);
      l += len + (l[len] == '\n');
      char *c1 = strchr (line, ':');
      char *c2 = c1 ? strchr (c1 + 1, ':') : NULL;
      if (c2 == NULL)
        continue;
      *c2 = '\0';
      const char *ctrl = c1 + 1, *cpath = c2 + 1;
      char name[256], data[300], hostdir[4096], sub[4096];
      const char *fstype = "cgroup";
      if (*ctrl == '\0')
        {
          snprintf (name, sizeof name, "unified");
          fstype = "cgroup2";
          data[0] = '\0';
        }
      else if (strncmp (ctrl, "name=", 5) == 0)
        {
          snprintf (name, sizeof name, "%s", ctrl + 5);
          snprintf (data, sizeof data, "none,%s", ctrl);
        }
      else
        {
          snprintf (name, sizeof name, "%s", ctrl);
          snprintf (data, sizeof data, "%s", ctrl);
        }
      snprintf (hostdir, sizeof hostdir, "/sys/fs/cgroup/%s", name);
      if (access (hostdir, F_OK) < 0)
        continue; /* a hierarchy the host does not mount (e.g. net_cls) */
      snprintf (sub, sizeof sub, "%s/%s", dest, name);
      _cleanup_close_ int sfd = mkpath_in_root (rootfd, sub, false, err);
      if (sfd < 0)
        return -1;
      char sp[64];
      /* without a cgroup namespace a mount would show the host's whole
       * hierarchy: bind the container's own cgroup instead (runc) */
      fdpath (sfd, sp);
      if (m->cgroupns && mount ("cgroup", sp, fstype, mo->flags, data[0] ? data : NULL) == 0)
        continue;
      char src[4096];
      snprintf (src, sizeof src, "%s%s", hostdir, cpath);
      if (mount (src, sp, NULL, MS_BIND | MS_REC, NULL) < 0)
        return nsrt_errf (err, errno, "bind %s on %s", src, sub);
      /* the fd is the covered directory: reopen to reach the new mount */
      close (sfd);
      sfd = open_in_root (rootfd, sub, O_PATH);
      if (sfd < 0)
        return nsrt_errf (err, errno, "reopen %s", sub);
      if (mo->flags && remount_bind (fdpath (sfd, sp), mo->flags, err) < 0)
        return -1;
    }
  if (mo->flags & MS_RDONLY)
    {
      close (fd);
      fd = open_in_root (rootfd, dest, O_PATH);
      if (fd < 0 || mount (NULL, fdpath (fd, p), NULL, MS_REMOUNT | mo->flags, "mode=755") < 0)
        return nsrt_errf (err, errno, "remount %s read-only", dest);
    }
  return 0;
}

static int
mount_one (const struct nsrt_mount_ctx *m, int rootfd, json_object *mnt, size_t i, struct nsrt_err *err)
{
  char what[64];
  snprintf (what, sizeof what, "mounts[%zu]", i);
  if (!json_object_is_type (mnt, json_type_object))
    return nsrt_errf (err, 0, "%s: not an object", what);
  const char *dest = jstr (mnt, "destination");
  const char *type = jstr (mnt, "type");
  const char *src = jstr (mnt, "source");
  json_object *opts = NULL;
  json_object_object_get_ex (mnt, "options", &opts);
  if (dest == NULL || dest[0] == '\0')
    return nsrt_errf (err, 0, "%s.destination: missing", what);
  struct mount_opts mo;
  if (parse_mount_opts (opts, what, &mo, err) < 0)
    return -1;
  if (type && strcmp (type, "bind") == 0)
    mo.bind = true;
  if (!mo.bind && (type == NULL || type[0] == '\0'))
    return nsrt_errf (err, 0, "%s (%s): no type and no bind option", what, dest);
  char p[64];
  if (type && strcmp (type, "cgroup") == 0 && !mo.bind)
    return mount_cgroup (m, rootfd, dest, &mo, err);
  if (mo.bind)
    {
      if (src == NULL || src[0] == '\0')
        return nsrt_errf (err, 0, "%s (%s): bind mount without a source", what, dest);
      struct stat sst;
      if (stat (src, &sst) < 0)
        return nsrt_errf (err, errno, "%s: bind source %s", what, src);
      _cleanup_close_ int fd = mkpath_in_root (rootfd, dest, !S_ISDIR (sst.st_mode), err);
      if (fd < 0)
        return -1;
      if (mount (src, fdpath (fd, p), NULL, MS_BIND | (mo.rbind ? MS_REC : 0), NULL) < 0)
        return nsrt_errf (err, errno, "%s: bind %s on %s", what, src, dest);
      /* a bind mount takes its flags only at remount; reopen: the fd is
       * the covered directory */
      close (fd);
      fd = open_in_root (rootfd, dest, O_PATH);
      if (fd < 0)
        return nsrt_errf (err, errno, "%s: reopen %s", what, dest);
      if ((mo.flags & ~MS_REC) && remount_bind (fdpath (fd, p), mo.flags, err) < 0)
        return -1;
      if (mo.propagation && mount (NULL, fdpath (fd, p), NULL, mo.propagation, NULL) < 0)
        return nsrt_errf (err, errno, "%s: propagation of %s", what, dest);
      return 0;
    }
  _cleanup_close_ int fd = mkpath_in_root (rootfd, dest, false, err);
  if (fd < 0)
    return -1;
  if (mount (src ? src : type, fdpath (fd, p), type, mo.flags, mo.data[0] ? mo.data : NULL) < 0)
    {
      int e = errno;
      /* sysfs and mqueue belong to the net/ipc namespace's user namespace:
       * when ours does not own them, bind the host's (runc does the same). */
      if (e == EPERM && m->userns && (strcmp (type, "sysfs") == 0 || strcmp (type, "mqueue") == 0))
        {
          const char *hsrc = strcmp (type, "sysfs") == 0 ? "/sys" : "/dev/mqueue";
          if (mount (hsrc, p, NULL, MS_BIND | MS_REC, NULL) == 0)
            {
              close (fd);
              fd = open_in_root (rootfd, dest, O_PATH);
              return fd >= 0 && mo.flags ? remount_bind (fdpath (fd, p), mo.flags, err) : 0;
            }
        }
      return nsrt_errf (err, e, "%s: mount %s (type %s, options \"%s\") on %s", what, src ? src : type, type,
                        mo.data, dest);
    }
  if (mo.propagation)
    {
      close (fd);
      fd = open_in_root (rootfd, dest, O_PATH);
      if (fd < 0 || mount (NULL, fdpath (fd, p), NULL, mo.propagation, NULL) < 0)
        return nsrt_errf (err, errno, "%s: propagation of %s", what, dest);
    }
  return 0;
}

static const struct
{
  const char *name;
  unsigned major, minor;
} default_devices[] = {
  { "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

/* Create a device node at path inside the root; in a user namespace
 * mknod is not allowed: bind the host's node instead (host_path). */
static int
make_device (const struct nsrt_mount_ctx *m, int rootfd, const char *path, mode_t mode, dev_t dev, uid_t uid,
             gid_t gid, const char *host_path, struct nsrt_err *err)
{
  char parent[4096];
  snprintf (parent, sizeof parent, "%s", path);
  char *slash = strrchr (parent, '/');
  const char *name = slash ? slash + 1 : parent;
  if (slash)
    *slash = '\0';
  if (*name == '\0' || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return nsrt_errf (err, 0, "device path `%s` is invalid", path);
  _cleanup_close_ int pfd = mkpath_in_root (rootfd, parent[0] ? parent : "/", false, err);
  if (pfd < 0)
    return -1;
  unlinkat (pfd, name, 0);
  if (m->userns)
    {
      if (host_path == NULL)
        return nsrt_errf (err, 0, "device %s: cannot be created in a user namespace", path);
      int f = openat (pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (f < 0)
        return nsrt_errf (err, errno, "create %s", path);
      close (f);
      _cleanup_close_ int fd = open_in_root (rootfd, path, O_PATH);
      char p[64];
      if (fd < 0 || mount (host_path, fdpath (fd, p), NULL, MS_BIND, NULL) < 0)
        return nsrt_errf (err, errno, "bind %s on %s", host_path, path);
      return 0;
    }
  if (mknodat (pfd, name, mode, dev) < 0)
    return nsrt_errf (err, errno, "mknod %s", path);
  if (fchownat (pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
    return nsrt_errf (err, errno, "chown %s", path);
  return 0;
}

static int
setup_dev (const struct nsrt_mount_ctx *m, int rootfd, struct nsrt_err *err)
{
  for (size_t i = 0; i < sizeof default_devices / sizeof default_devices[0]; i++)
    {
      char path[64], host[64];
      snprintf (path, sizeof path, "/dev/%s", default_devices[i].name);
      snprintf (host, sizeof host, "/dev/%s", default_devices[i].name);
      if (make_device (m, rootfd, path, S_IFCHR | 0666,
                       makedev (default_devices[i].major, default_devices[i].minor), 0, 0, host, err)
          < 0)
        return -1;
    }
  json_object *lnx, *devs;
  if (json_object_object_get_ex (m->config, "linux", &lnx) && json_object_object_get_ex (lnx, "devices", &devs))
    {
      if (!json_object_is_type (devs, json_type_array))
        return nsrt_errf (err, 0, "linux.devices: not an array");
      for (size_t i = 0; i < json_object_array_length (devs); i++)
        {
          json_object *d = json_object_array_get_idx (devs, i), *v;
          const char *path = jstr (d, "path"), *type = jstr (d, "type");
          if (path == NULL || strncmp (path, "/dev/", 5) != 0 || strstr (path, ".."))
            return nsrt_errf (err, 0, "linux.devices[%zu].path: missing or not under /dev", i);
          mode_t fmt;
          if (type == NULL)
            return nsrt_errf (err, 0, "linux.devices[%zu].type: missing", i);
          else if (strcmp (type, "c") == 0 || strcmp (type, "u") == 0)
            fmt = S_IFCHR;
          else if (strcmp (type, "b") == 0)
            fmt = S_IFBLK;
          else if (strcmp (type, "p") == 0)
            fmt = S_IFIFO;
          else
            return nsrt_errf (err, 0, "linux.devices[%zu].type: `%s` is not c, b, u or p", i, type);
          unsigned major = 0, minor = 0, mode = 0666, uid = 0, gid = 0;
          if (json_object_object_get_ex (d, "major", &v))
            major = json_object_get_int64 (v);
          if (json_object_object_get_ex (d, "minor", &v))
            minor = json_object_get_int64 (v);
          if (json_object_object_get_ex (d, "fileMode", &v))
            mode = json_object_get_int (v) & 07777;
          if (json_object_object_get_ex (d, "uid", &v))
            uid = json_object_get_int64 (v);
          if (json_object_object_get_ex (d, "gid", &v))
            gid = json_object_get_int64 (v);
          if (make_device (m, rootfd, path, fmt | mode, makedev (major, minor), uid, gid, path, err) < 0)
            return -1;
        }
    }
  _cleanup_close_ int dev = open_in_root (rootfd, "/dev", O_PATH | O_DIRECTORY);
  if (dev < 0)
    return nsrt_errf (err, errno, "open /dev in the rootfs");
  static const char *const links[][2] = {
    { "/proc/self/fd", "fd" },       { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
    { "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" },
  };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    {
      unlinkat (dev, links[i][1], 0);
      if (symlinkat (links[i][0], dev, links[i][1]) < 0 && errno != EEXIST)
        return nsrt_errf (err, errno, "symlink /dev/%s", links[i][1]);
    }
  return 0;
}

static unsigned long
propagation_of (const char *s, bool *ok)
{
  *ok = true;
  if (s == NULL)
    return MS_SLAVE | MS_REC; /* runc's default */
  for (size_t k = 0; k < sizeof propagation_flags / sizeof propagation_flags[0]; k++)
    if (strcmp (s, propagation_flags[k].name) == 0)
      return propagation_flags[k].flag;
  *ok = false;
  return 0;
}

/* The checks of mount_one and nsrt_rootfs_prepare that need no system
 * call, run by nsrt_spec_check before the clone so that a bad mount list
 * fails create with its message and nothing set up. */
int
nsrt_mounts_check (json_object *config, struct nsrt_err *err)
{
  json_object *lnx = NULL, *mounts = NULL;
  json_object_object_get_ex (config, "linux", &lnx);
  const char *prop_s = jstr (lnx, "rootfsPropagation");
  bool ok;
  propagation_of (prop_s, &ok);
  if (!ok)
    return nsrt_errf (err, 0, "linux.rootfsPropagation: `%s` is not a propagation mode", prop_s);
  if (!json_object_object_get_ex (config, "mounts", &mounts))
    return 0;
  if (!json_object_is_type (mounts, json_type_array))
    return nsrt_errf (err, 0, "mounts: not an array");
  for (size_t i = 0; i < json_object_array_length (mounts); i++)
    {
      json_object *mnt = json_object_array_get_idx (mounts, i);
      char what[64];
      snprintf (what, sizeof what, "mounts[%zu]", i);
      if (!json_object_is_type (mnt, json_type_object))
        return nsrt_errf (err, 0, "%s: not an object", what);
      const char *dest = jstr (mnt, "destination"), *type = jstr (mnt, "type"), *src = jstr (mnt, "source");
      json_object *opts = NULL;
      json_object_object_get_ex (mnt, "options", &opts);
      if (dest == NULL || dest[0] == '\0')
        return nsrt_errf (err, 0, "%s.destination: missing", what);
      struct mount_opts mo;
      if (parse_mount_opts (opts, what, &mo, err) < 0)
        return -1;
      if (type && strcmp (type, "bind") == 0)
        mo.bind = true;
      if (!mo.bind && (type == NULL || type[0] == '\0'))
        return nsrt_errf (err, 0, "%s (%s): no type and no bind option", what, dest);
      if (mo.bind && (src == NULL || src[0] == '\0'))
        return nsrt_errf (err, 0, "%s (%s): bind mount without a source", what, dest);
    }
  return 0;
}

int
nsrt_rootfs_prepare (const struct nsrt_mount_ctx *m, struct nsrt_err *err)
{
  json_object *lnx = NULL;
  json_object_object_get_ex (m->config, "linux", &lnx);
  const char *prop_s = jstr (lnx, "rootfsPropagation");
  bool ok;
  unsigned long prop = propagation_of (prop_s, &ok);
  if (!ok)
    return nsrt_errf (err, 0, "linux.rootfsPropagation: `%s` is not a propagation mode", prop_s);
  if (m->new_mntns)
    {
      /* Nothing mounted in the container may propagate back to the host. */
      if (mount (NULL, "/", NULL, MS_REC | (prop & (MS_SHARED) ? MS_SLAVE : (prop & ~MS_REC)), NULL) < 0)
        return nsrt_errf (err, errno, "make / %s", prop_s ? prop_s : "rslave");
    }
  if (mount (m->rootfs, m->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
    return nsrt_errf (err, errno, "bind rootfs %s", m->rootfs);
  _cleanup_close_ int rootfd = open (m->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return nsrt_errf (err, errno, "open rootfs %s", m->rootfs);

  json_object *mounts;
  bool dev_bound = false;
  if (json_object_object_get_ex (m->config, "mounts", &mounts))
    {
      if (!json_object_is_type (mounts, json_type_array))
        return nsrt_errf (err, 0, "mounts: not an array");
      for (size_t i = 0; i < json_object_array_length (mounts); i++)
        {
          json_object *mnt = json_object_array_get_idx (mounts, i);
          if (mount_one (m, rootfd, mnt, i, err) < 0)
            return -1;
          const char *d = jstr (mnt, "destination"), *t = jstr (mnt, "type");
          if (d && strcmp (d, "/dev") == 0 && t && strcmp (t, "bind") == 0)
            dev_bound = true;
        }
    }
  /* runc leaves /dev alone when the spec binds the host's /dev. */
  if (!dev_bound && setup_dev (m, rootfd, err) < 0)
    return -1;

  if (m->no_pivot)
    {
      if (chdir (m->rootfs) < 0 || mount (m->rootfs, "/", NULL, MS_MOVE, NULL) < 0 || chroot (".") < 0
          || chdir ("/") < 0)
        return nsrt_errf (err, errno, "move rootfs %s to / (--no-pivot)", m->rootfs);
      return 0;
    }
  _cleanup_close_ int oldroot = open ("/", O_DIRECTORY | O_PATH | O_CLOEXEC);
  _cleanup_close_ int newroot = open (m->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (oldroot < 0 || newroot < 0 || fchdir (newroot) < 0)
    return nsrt_errf (err, errno, "open rootfs %s", m->rootfs);
  if (syscall (SYS_pivot_root, ".", ".") < 0)
    return nsrt_errf (err, errno, "pivot_root %s", m->rootfs);
  if (fchdir (oldroot) < 0)
    return nsrt_errf (err, errno, "fchdir old root");
  /* the old root must not take our detach back to the host */
  if (mount (NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return nsrt_errf (err, errno, "make old root rslave");
  if (umount2 (".", MNT_DETACH) < 0)
    return nsrt_errf (err, errno, "detach old root");
  if (chdir ("/") < 0)
    return nsrt_errf (err, errno, "chdir /");
  if (prop_s && mount (NULL, "/", NULL, prop, NULL) < 0)
    return nsrt_errf (err, errno, "linux.rootfsPropagation %s on /", prop_s);
  return 0;
}

static int
mask_path (const char *path, struct nsrt_err *err)
{
  struct stat st;
  if (lstat (path, &st) < 0)
    return 0; /* masking what does not exist is a no-op (runc) */
  if (S_ISDIR (st.st_mode))
    {
      if (mount ("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=0755") < 0)
        return nsrt_errf (err, errno, "linux.maskedPaths: tmpfs over %s", path);
    }
  else if (mount ("/dev/null", path, NULL, MS_BIND, NULL) < 0)
    return nsrt_errf (err, errno, "linux.maskedPaths: bind /dev/null over %s", path);
  return 0;
}

static int
readonly_path (const char *path, struct nsrt_err *err)
{
  if (mount (path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
    {
      if (errno == ENOENT)
        return 0;
      return nsrt_errf (err, errno, "linux.readonlyPaths: bind %s", path);
    }
  return remount_bind (path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, err);
}

static int
str_list (json_object *lnx, const char *key, int (*fn) (const char *, struct nsrt_err *), struct nsrt_err *err)
{
  json_object *a;
  if (!lnx || !json_object_object_get_ex (lnx, key, &a))
    return 0;
  if (!json_object_is_type (a, json_type_array))
    return nsrt_errf (err, 0, "linux.%s: not an array", key);
  for (size_t i = 0; i < json_object_array_length (a); i++)
    {
      json_object *e = json_object_array_get_idx (a, i);
      if (!json_object_is_type (e, json_type_string) || json_object_get_string (e)[0] != '/')
        return nsrt_errf (err, 0, "linux.%s[%zu]: not an absolute path", key, i);
      if (fn (json_object_get_string (e), err) < 0)
        return -1;
    }
  return 0;
}

static int
sysctl_set (json_object *sysctl, struct nsrt_err *err)
{
  if (!json_object_is_type (sysctl, json_type_object))
    return nsrt_errf (err, 0, "linux.sysctl: not an object");
  json_object_object_foreach (sysctl, key, val)
  {
    if (!json_object_is_type (val, json_type_string))
      return nsrt_errf (err, 0, "linux.sysctl.%s: not a string", key);
    if (key[0] == '\0' || strstr (key, "..") || strchr (key, '/'))
      return nsrt_errf (err, 0, "linux.sysctl: invalid key `%s`", key);
    char path[512];
    snprintf (path, sizeof path, "/proc/sys/%s", key);
    for (char *c = path + 10; *c; c++)
      if (*c == '.')
        *c = '/';
    int fd = open (path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
      return nsrt_errf (err, errno, "linux.sysctl.%s: open %s", key, path);
    const char *v = json_object_get_string (val);
    ssize_t w = write (fd, v, strlen (v));
    int e = errno;
    close (fd);
    if (w < 0)
      return nsrt_errf (err, e, "linux.sysctl.%s=%s", key, v);
  }
  return 0;
}

int
nsrt_rootfs_finish (const struct nsrt_mount_ctx *m, struct nsrt_err *err)
{
  json_object *lnx = NULL, *v;
  json_object_object_get_ex (m->config, "linux", &lnx);
  if (lnx && json_object_object_get_ex (lnx, "sysctl", &v) && sysctl_set (v, err) < 0)
    return -1;
  if (str_list (lnx, "readonlyPaths", readonly_path, err) < 0)
    return -1;
  if (str_list (lnx, "maskedPaths", mask_path, err) < 0)
    return -1;
  json_object *root;
  if (json_object_object_get_ex (m->config, "root", &root) && json_object_object_get_ex (root, "readonly", &v)
      && json_object_get_boolean (v))
    {
      struct nsrt_err e2;
      if (remount_bind ("/", MS_RDONLY, &e2) < 0)
        return nsrt_errf (err, 0, "root.readonly: %s", e2.msg);
    }
  return 0;
}
