/* Tests for plugins/snapshotters/native (io.berth.snapshotter.v1.native).
 *
 * The snapshotter is registered through the registry exactly as berthd does
 * it and called only through the core wrappers of core/plugin-calls.h, like
 * tests/unit/test-content-local.c.  Files are written straight into the
 * directory an active snapshot's bind mount names (that is what the mount
 * shows); the read-only view is really mounted when running as root, in a
 * private mount namespace of the forked test, and unmounted before the test
 * ends (main() also sweeps anything left under the work directory).  Tests
 * that need root say SKIP with the reason otherwise.
 */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "host-objects.h"
#include "plugin-calls.h"
#include "registry.h"

extern const struct berth_plugin_desc *const *berth_snapshotter_native_entry (void);

#define PLUGIN_NAME "io.berth.snapshotter.v1.native"

#define ck_assert_contains(haystack, needle)                                                       \
  do                                                                                               \
    {                                                                                              \
      const char *h_ = (haystack);                                                                 \
      ck_assert_msg (h_ != NULL && strstr (h_, (needle)) != NULL, "`%s` does not contain `%s`",    \
                     h_ ? h_ : "(null)", (needle));                                                \
    }                                                                                              \
  while (0)

#define ck_ok(call)                                                                                \
  do                                                                                               \
    {                                                                                              \
      _cleanup_error_ berth_error *e_ = NULL;                                                      \
      berth_error **err = &e_;                                                                     \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == 0, "%s = %d: %s", #call, r_, berth_error_message (e_));                 \
    }                                                                                              \
  while (0)

#define ck_fails(call, code, needle)                                                               \
  do                                                                                               \
    {                                                                                              \
      _cleanup_error_ berth_error *e_ = NULL;                                                      \
      berth_error **err = &e_;                                                                     \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == (code), "%s = %d, expected %d (%s)", #call, r_, (code),                 \
                     berth_error_message (e_));                                                    \
      ck_assert_contains (berth_error_message (e_), (needle));                                     \
    }                                                                                              \
  while (0)

static char workdir[64];

static char *
join (const char *fmt, ...)
{
  va_list ap;
  char *p = NULL;
  va_start (ap, fmt);
  ck_assert_int_ge (vasprintf (&p, fmt, ap), 0);
  va_end (ap);
  return p;
}

static char *
make_tmpdir (void)
{
  char *dir = join ("%s/t.XXXXXX", workdir);
  ck_assert_ptr_nonnull (mkdtemp (dir));
  return dir;
}

static size_t
count_entries (const char *dir)
{
  DIR *d = opendir (dir);
  if (d == NULL)
    return 0;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    n += strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0;
  closedir (d);
  return n;
}

static void
write_file (const char *path, const char *content)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_msg (fd >= 0, "open %s: %s", path, strerror (errno));
  ck_assert_int_eq (write (fd, content, strlen (content)), (ssize_t) strlen (content));
  close (fd);
}

static char *
read_file (const char *path)
{
  static char buf[4096];
  int fd = open (path, O_RDONLY);
  if (fd < 0)
    return NULL;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  ck_assert_int_ge (n, 0);
  buf[n] = '\0';
  return buf;
}

static bool
exists (const char *path)
{
  struct stat st;
  return lstat (path, &st) == 0;
}

/* ---- the snapshotter through the registry ----------------------------------- */

struct snap
{
  registry *reg;
  plugin *p;
  char *top;
  char *state;
  char *root; /* the plugin's root */
  berth_ctx ctx;
};

static const char *cfg_root_path; /* NULL: the declared default */

static int
cfg_answer (void *data, const plugin *p, const char *key, struct berth_cfg_value *ret)
{
  (void) data;
  (void) p;
  if (strcmp (key, "root_path") == 0 && cfg_root_path)
    {
      ret->type = BERTH_CFG_STRING;
      ret->s = cfg_root_path;
      return 0;
    }
  return BERTH_E_NOTFOUND;
}

static void
snap_open_at (struct snap *s, const char *top)
{
  s->top = strdup (top);
  s->state = join ("%s.state", top);
  s->root = cfg_root_path ? strdup (cfg_root_path) : join ("%s/" PLUGIN_NAME, top);
  struct plugin_registry_options o = { .root = s->top, .state = s->state, .cfg = cfg_answer };
  s->reg = registry_new (&o);
  ck_assert_ptr_nonnull (s->reg);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_add_builtin (s->reg, berth_snapshotter_native_entry, &err);
  ck_assert_msg (r == 0, "registry_add_builtin: %s", berth_error_message (err));
  r = registry_init_all (s->reg, &err);
  ck_assert_msg (r == 0, "registry_init_all: %s", berth_error_message (err));
  s->p = registry_find (s->reg, "io.berth.snapshotter.v1", "native");
  ck_assert_ptr_nonnull (s->p);
  ck_assert_msg (s->p->status == PLUGIN_OK, "plugin status %s: %s", plugin_status_name (s->p->status),
                 s->p->error ? s->p->error : "");
  ctx_init (&s->ctx, "default", NULL);
}

static void
snap_open (struct snap *s)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *top = join ("%s/root", dir);
  snap_open_at (s, top);
}

static void
snap_close (struct snap *s)
{
  registry_free (s->reg);
  s->reg = NULL;
  s->p = NULL;
}

static void
snap_free (struct snap *s)
{
  if (s->reg)
    snap_close (s);
  free (s->top);
  free (s->state);
  free (s->root);
}

static bool
has_option (const struct berth_mount *m, const char *opt)
{
  for (char **o = m->options; o && *o; o++)
    if (strcmp (*o, opt) == 0)
      return true;
  return false;
}

/* Prepare (or view) key on parent; returns the directory the bind mount names. */
static char *
prepare (struct snap *s, const char *key, const char *parent, bool view)
{
  berth_mounts m = { 0 };
  if (view)
    ck_ok (snapshotter_view (s->p, &s->ctx, key, parent, NULL, &m, err));
  else
    ck_ok (snapshotter_prepare (s->p, &s->ctx, key, parent, NULL, &m, err));
  ck_assert_uint_eq (m.n, 1);
  ck_assert_str_eq (m.items[0].type, "bind");
  ck_assert (has_option (&m.items[0], "rbind"));
  ck_assert (has_option (&m.items[0], view ? "ro" : "rw"));
  ck_assert (!has_option (&m.items[0], view ? "rw" : "ro"));
  char *dir = strdup (m.items[0].source);
  mounts_clear (&m);
  struct stat st;
  ck_assert_int_eq (stat (dir, &st), 0);
  ck_assert (S_ISDIR (st.st_mode));
  return dir;
}

static void
commit (struct snap *s, const char *name, const char *key)
{
  ck_ok (snapshotter_commit (s->p, &s->ctx, name, key, NULL, err));
}

static struct berth_snapshot_info
stat_snapshot (struct snap *s, const char *key)
{
  struct berth_snapshot_info info = { .size = sizeof info };
  ck_ok (snapshotter_stat (s->p, &s->ctx, key, &info, err));
  return info;
}

/* l1: a; l2: a, b; l3: b, c (a deleted).  Returns nothing; keys are fixed. */
static void
make_chain (struct snap *s)
{
  _cleanup_free_ char *d1 = prepare (s, "l1-a", NULL, false);
  _cleanup_free_ char *a = join ("%s/a", d1);
  write_file (a, "from l1");
  commit (s, "l1", "l1-a");
  _cleanup_free_ char *d2 = prepare (s, "l2-a", "l1", false);
  _cleanup_free_ char *b = join ("%s/b", d2);
  write_file (b, "from l2");
  commit (s, "l2", "l2-a");
  _cleanup_free_ char *d3 = prepare (s, "l3-a", "l2", false);
  _cleanup_free_ char *c = join ("%s/c", d3), *a3 = join ("%s/a", d3);
  write_file (c, "from l3");
  ck_assert_int_eq (unlink (a3), 0);
  commit (s, "l3", "l3-a");
}

static int
count_cb (const struct berth_snapshot_info *info, void *data)
{
  (void) info;
  (*(size_t *) data)++;
  return 0;
}

static size_t
walk_count (struct snap *s, const char *filter)
{
  const char *const filters[] = { filter, NULL };
  size_t n = 0;
  ck_ok (snapshotter_walk (s->p, &s->ctx, filter ? filters : NULL, count_cb, &n, err));
  return n;
}

/* ---- tests -------------------------------------------------------------------- */

START_TEST (test_prepare_and_commit_build_a_chain_three_deep)
{
  struct snap s = { 0 };
  snap_open (&s);
  make_chain (&s);

  _cleanup_free_ char *d = prepare (&s, "container", "l3", false);
  _cleanup_free_ char *a = join ("%s/a", d), *b = join ("%s/b", d), *c = join ("%s/c", d);
  ck_assert (!exists (a));
  ck_assert_str_eq (read_file (b), "from l2");
  ck_assert_str_eq (read_file (c), "from l3");
  /* The copy is private: writing it does not touch the parents. */
  write_file (b, "changed");
  _cleanup_free_ char *d2 = prepare (&s, "again", "l3", false);
  _cleanup_free_ char *b2 = join ("%s/b", d2);
  ck_assert_str_eq (read_file (b2), "from l2");
  ck_assert_str_ne (d, d2);

  struct berth_snapshot_info i = stat_snapshot (&s, "l3");
  ck_assert_uint_eq (i.kind, BERTH_SNAPSHOT_COMMITTED);
  ck_assert_str_eq (i.name, "l3");
  ck_assert_str_eq (i.parent, "l2");
  i = stat_snapshot (&s, "container");
  ck_assert_uint_eq (i.kind, BERTH_SNAPSHOT_ACTIVE);
  ck_assert_str_eq (i.parent, "l3");
  i = stat_snapshot (&s, "l1");
  ck_assert_str_eq (i.parent, "");

  ck_assert_uint_eq (walk_count (&s, NULL), 5);
  ck_assert_uint_eq (walk_count (&s, "kind==committed"), 3);
  ck_assert_uint_eq (walk_count (&s, "parent==l3"), 2);

  /* mounts answers the same bind mount again. */
  berth_mounts m = { 0 };
  ck_ok (snapshotter_mounts (s.p, &s.ctx, "container", &m, err));
  ck_assert_uint_eq (m.n, 1);
  ck_assert_str_eq (m.items[0].source, d);
  mounts_clear (&m);
  /* Committing moves the key: the old key is gone, the directory stays. */
  ck_fails (snapshotter_stat (s.p, &s.ctx, "l3-a", &i, err), BERTH_E_NOTFOUND, "`l3-a`");
  snap_free (&s);
}
END_TEST

START_TEST (test_prepare_refuses_taken_keys_and_bad_parents)
{
  struct snap s = { 0 };
  snap_open (&s);
  make_chain (&s);
  berth_mounts m = { 0 };
  _cleanup_free_ char *d = prepare (&s, "work", "l1", false);
  ck_fails (snapshotter_prepare (s.p, &s.ctx, "work", "l1", NULL, &m, err), BERTH_E_EXISTS,
            "snapshot `work` already exists");
  ck_fails (snapshotter_prepare (s.p, &s.ctx, "x", "missing", NULL, &m, err), BERTH_E_NOTFOUND,
            "parent snapshot `missing` of `x` does not exist");
  ck_fails (snapshotter_prepare (s.p, &s.ctx, "y", "work", NULL, &m, err), BERTH_E_INVALID,
            "parent `work` of `y` is not a committed snapshot");
  ck_fails (snapshotter_mounts (s.p, &s.ctx, "nope", &m, err), BERTH_E_NOTFOUND, "`nope`");
  ck_fails (snapshotter_commit (s.p, &s.ctx, "l2", "work", NULL, err), BERTH_E_EXISTS, "`l2` already exists");
  ck_assert_uint_eq (m.n, 0);
  /* Nothing half-made is left: one directory per snapshot, tmp/ empty. */
  _cleanup_free_ char *snapdir = join ("%s/snapshots", s.root), *tmp = join ("%s/tmp", s.root);
  ck_assert_uint_eq (count_entries (snapdir), 4);
  ck_assert_uint_eq (count_entries (tmp), 0);
  snap_free (&s);
}
END_TEST

/* Mount `m` at target the way a runtime would (bind, then read-only remount). */
static int
mount_one (const struct berth_mount *m, const char *target)
{
  if (mount (m->source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
    return -errno;
  if (has_option (m, "ro") && mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    {
      int e = errno;
      umount2 (target, MNT_DETACH);
      return -e;
    }
  return 0;
}

START_TEST (test_a_view_mounts_read_only)
{
  struct snap s = { 0 };
  snap_open (&s);
  make_chain (&s);
  berth_mounts m = { 0 };
  ck_ok (snapshotter_view (s.p, &s.ctx, "look", "l2", NULL, &m, err));
  ck_assert_uint_eq (m.n, 1);
  ck_assert (has_option (&m.items[0], "ro"));
  struct berth_snapshot_info i = stat_snapshot (&s, "look");
  ck_assert_uint_eq (i.kind, BERTH_SNAPSHOT_VIEW);
  ck_fails (snapshotter_commit (s.p, &s.ctx, "x", "look", NULL, err), BERTH_E_PRECONDITION, "not active");

  if (geteuid () != 0)
    {
      fprintf (stderr, "SKIP test_a_view_mounts_read_only (mount part): needs root to mount\n");
      mounts_clear (&m);
      snap_free (&s);
      return;
    }
  /* A private mount namespace: whatever happens, the mount dies with this process. */
  ck_assert_int_eq (unshare (CLONE_NEWNS), 0);
  ck_assert_int_eq (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *target = join ("%s/rootfs", dir);
  ck_assert_int_eq (mkdir (target, 0755), 0);
  int r = mount_one (&m.items[0], target);
  ck_assert_msg (r == 0, "mount: %s", strerror (-r));
  _cleanup_free_ char *b = join ("%s/b", target), *n = join ("%s/new", target);
  ck_assert_str_eq (read_file (b), "from l2");
  int fd = open (n, O_WRONLY | O_CREAT, 0644);
  int e = errno;
  if (fd >= 0)
    close (fd);
  ck_assert_int_eq (umount2 (target, 0), 0);
  ck_assert_msg (fd < 0 && e == EROFS, "creating a file in a view: fd %d, %s", fd, strerror (e));
  ck_assert (!exists (n));
  mounts_clear (&m);
  snap_free (&s);
}
END_TEST

START_TEST (test_the_copy_preserves_links_modes_symlinks_xattrs_and_times)
{
  struct snap s = { 0 };
  snap_open (&s);
  _cleanup_free_ char *d = prepare (&s, "base-a", NULL, false);
  _cleanup_free_ char *f = join ("%s/file", d), *sub = join ("%s/sub", d), *link1 = join ("%s/sub/hardlink", d);
  _cleanup_free_ char *suid = join ("%s/suid", d), *sym = join ("%s/sym", d), *dangling = join ("%s/dangling", d);
  _cleanup_free_ char *fifo = join ("%s/fifo", d), *sparse = join ("%s/sparse", d), *ro = join ("%s/ro", d);
  _cleanup_free_ char *symlink_link = join ("%s/sub/symlink-link", d);
  write_file (f, "shared content");
  ck_assert_int_eq (mkdir (sub, 0750), 0);
  ck_assert_int_eq (link (f, link1), 0);
  write_file (suid, "#!/bin/sh\n");
  ck_assert_int_eq (chmod (suid, 04755), 0);
  ck_assert_int_eq (symlink ("file", sym), 0);
  ck_assert_int_eq (symlink ("/does/not/exist", dangling), 0);
  ck_assert_int_eq (link (sym, symlink_link), 0); /* a hard link to a symlink */
  ck_assert_int_eq (mkfifo (fifo, 0640), 0);
  int fd = open (sparse, O_WRONLY | O_CREAT, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (pwrite (fd, "tail", 4, 8 << 20), 4);
  close (fd);
  ck_assert_int_eq (mkdir (ro, 0555), 0);
  bool user_xattrs = setxattr (f, "user.berth.test", "v1", 2, 0) == 0;
  if (!user_xattrs)
    fprintf (stderr, "SKIP user xattr part: %s\n", strerror (errno));
  bool root = geteuid () == 0;
  _cleanup_free_ char *dev = join ("%s/null", d), *owned = join ("%s/owned", d), *capf = join ("%s/cap", d);
  /* VFS v2 capability: permitted+effective CAP_NET_RAW (13). */
  const unsigned char cap[20] = { 0x01, 0, 0, 0x02, 0, 0x20, 0, 0 };
  if (root)
    {
      ck_assert_int_eq (mknod (dev, S_IFCHR | 0666, makedev (1, 3)), 0);
      ck_assert_int_eq (chmod (dev, 0666), 0); /* past the umask */
      write_file (owned, "owned");
      ck_assert_int_eq (chown (owned, 1234, 5678), 0);
      ck_assert_int_eq (lchown (sym, 42, 43), 0);
      write_file (capf, "cap");
      ck_assert_int_eq (setxattr (capf, "security.capability", cap, sizeof cap, 0), 0);
      ck_assert_int_eq (setxattr (sub, "trusted.overlay.opaque", "y", 1, 0), 0);
    }
  else
    fprintf (stderr, "SKIP ownership, device and security/trusted xattr parts: needs root\n");
  /* Fixed times, set last (creating entries touches the directory). */
  struct timespec t1[2] = { { 1000000000, 111 }, { 1200000000, 222 } };
  struct timespec t2[2] = { { 1000000001, 0 }, { 1300000000, 333 } };
  ck_assert_int_eq (utimensat (AT_FDCWD, f, t1, 0), 0);
  ck_assert_int_eq (utimensat (AT_FDCWD, sym, t2, AT_SYMLINK_NOFOLLOW), 0);
  ck_assert_int_eq (utimensat (AT_FDCWD, sub, t2, 0), 0);
  commit (&s, "base", "base-a");

  _cleanup_free_ char *c = prepare (&s, "copy", "base", false);
  _cleanup_free_ char *cf = join ("%s/file", c), *clink = join ("%s/sub/hardlink", c), *csub = join ("%s/sub", c);
  _cleanup_free_ char *csuid = join ("%s/suid", c), *csym = join ("%s/sym", c), *cdang = join ("%s/dangling", c);
  _cleanup_free_ char *cfifo = join ("%s/fifo", c), *csparse = join ("%s/sparse", c), *cro = join ("%s/ro", c);
  _cleanup_free_ char *csymlink_link = join ("%s/sub/symlink-link", c);
  struct stat a, b;
  ck_assert_int_eq (stat (cf, &a), 0);
  ck_assert_int_eq (stat (clink, &b), 0);
  ck_assert_msg (a.st_ino == b.st_ino, "hard link not kept");
  ck_assert_int_eq (a.st_nlink, 2);
  ck_assert_int_eq (a.st_mtim.tv_sec, 1200000000);
  ck_assert_int_eq (a.st_mtim.tv_nsec, 222);
  ck_assert_str_eq (read_file (clink), "shared content");
  ck_assert_int_eq (lstat (csym, &a), 0);
  ck_assert (S_ISLNK (a.st_mode));
  ck_assert_int_eq (a.st_mtim.tv_sec, 1300000000);
  ck_assert_int_eq (lstat (csymlink_link, &b), 0);
  ck_assert_msg (a.st_ino == b.st_ino, "hard link to a symlink not kept");
  char target[64] = { 0 };
  ck_assert_int_gt (readlink (csym, target, sizeof target - 1), 0);
  ck_assert_str_eq (target, "file");
  memset (target, 0, sizeof target);
  ck_assert_int_gt (readlink (cdang, target, sizeof target - 1), 0);
  ck_assert_str_eq (target, "/does/not/exist");
  ck_assert_int_eq (stat (csuid, &a), 0);
  ck_assert_uint_eq (a.st_mode & 07777, 04755);
  ck_assert_int_eq (stat (csub, &a), 0);
  ck_assert_uint_eq (a.st_mode & 07777, 0750);
  ck_assert_int_eq (a.st_mtim.tv_sec, 1300000000);
  ck_assert_int_eq (a.st_mtim.tv_nsec, 333);
  ck_assert_int_eq (stat (cro, &a), 0);
  ck_assert_uint_eq (a.st_mode & 07777, 0555);
  ck_assert_int_eq (lstat (cfifo, &a), 0);
  ck_assert (S_ISFIFO (a.st_mode));
  ck_assert_uint_eq (a.st_mode & 07777, 0640);
  ck_assert_int_eq (stat (csparse, &a), 0);
  ck_assert_int_eq (a.st_size, (8 << 20) + 4);
  ck_assert_msg (a.st_blocks * 512 < (1 << 20), "the hole was filled: %lld blocks", (long long) a.st_blocks);
  if (user_xattrs)
    {
      char v[8] = { 0 };
      ck_assert_int_eq (getxattr (cf, "user.berth.test", v, sizeof v), 2);
      ck_assert_str_eq (v, "v1");
    }
  if (root)
    {
      _cleanup_free_ char *cdev = join ("%s/null", c), *cowned = join ("%s/owned", c), *ccap = join ("%s/cap", c);
      ck_assert_int_eq (lstat (cdev, &a), 0);
      ck_assert (S_ISCHR (a.st_mode));
      ck_assert_uint_eq (major (a.st_rdev), 1);
      ck_assert_uint_eq (minor (a.st_rdev), 3);
      ck_assert_uint_eq (a.st_mode & 07777, 0666);
      ck_assert_int_eq (stat (cowned, &a), 0);
      ck_assert_uint_eq (a.st_uid, 1234);
      ck_assert_uint_eq (a.st_gid, 5678);
      ck_assert_int_eq (lstat (csym, &a), 0);
      ck_assert_uint_eq (a.st_uid, 42);
      ck_assert_uint_eq (a.st_gid, 43);
      unsigned char got[64];
      ck_assert_int_eq (getxattr (ccap, "security.capability", got, sizeof got), (ssize_t) sizeof cap);
      ck_assert (memcmp (got, cap, sizeof cap) == 0);
      char o[4] = { 0 };
      ck_assert_int_eq (getxattr (csub, "trusted.overlay.opaque", o, sizeof o), 1);
      ck_assert_str_eq (o, "y");
    }
  snap_free (&s);
}
END_TEST

START_TEST (test_usage_counts_inodes_and_bytes_with_hard_links_once)
{
  struct snap s = { 0 };
  snap_open (&s);
  _cleanup_free_ char *d = prepare (&s, "a", NULL, false);
  struct berth_snapshot_usage u0 = { .size = sizeof u0 };
  ck_ok (snapshotter_usage (s.p, &s.ctx, "a", &u0, err));
  ck_assert_int_eq (u0.inodes, 1); /* the root directory */

  _cleanup_free_ char *f = join ("%s/f", d), *l = join ("%s/l", d);
  int fd = open (f, O_WRONLY | O_CREAT, 0644);
  ck_assert_int_ge (fd, 0);
  static char buf[64 * 1024];
  memset (buf, 'z', sizeof buf);
  ck_assert_int_eq (write (fd, buf, sizeof buf), (ssize_t) sizeof buf);
  fsync (fd);
  close (fd);
  ck_assert_int_eq (link (f, l), 0);
  struct berth_snapshot_usage u1 = { .size = sizeof u1 };
  ck_ok (snapshotter_usage (s.p, &s.ctx, "a", &u1, err));
  ck_assert_int_eq (u1.inodes, 2);
  struct stat st;
  ck_assert_int_eq (stat (f, &st), 0);
  ck_assert_int_eq (u1.bytes, u0.bytes + (int64_t) st.st_blocks * 512);
  ck_assert_int_ge (u1.bytes - u0.bytes, (int64_t) sizeof buf);

  /* Committed: the numbers recorded at commit, even if the tree changes. */
  commit (&s, "c", "a");
  ck_assert_int_eq (unlink (l), 0);
  struct berth_snapshot_usage u2 = { .size = sizeof u2 };
  ck_ok (snapshotter_usage (s.p, &s.ctx, "c", &u2, err));
  ck_assert_int_eq (u2.inodes, u1.inodes);
  ck_assert_int_eq (u2.bytes, u1.bytes);
  ck_fails (snapshotter_usage (s.p, &s.ctx, "a", &u2, err), BERTH_E_NOTFOUND, "`a`");
  snap_free (&s);
}
END_TEST

START_TEST (test_remove_is_refused_with_children_and_deletes_the_directory)
{
  struct snap s = { 0 };
  snap_open (&s);
  make_chain (&s);
  _cleanup_free_ char *v = prepare (&s, "look", "l3", true);
  ck_fails (snapshotter_remove (s.p, &s.ctx, "l3", err), BERTH_E_PRECONDITION, "cannot remove snapshot with child");
  ck_fails (snapshotter_remove (s.p, &s.ctx, "l1", err), BERTH_E_PRECONDITION, "cannot remove snapshot with child");
  ck_fails (snapshotter_remove (s.p, &s.ctx, "nope", err), BERTH_E_NOTFOUND, "`nope`");
  ck_assert (exists (v));
  ck_ok (snapshotter_remove (s.p, &s.ctx, "look", err));
  ck_assert (!exists (v));
  ck_ok (snapshotter_remove (s.p, &s.ctx, "l3", err));
  ck_ok (snapshotter_remove (s.p, &s.ctx, "l2", err));
  ck_ok (snapshotter_remove (s.p, &s.ctx, "l1", err));
  ck_assert_uint_eq (walk_count (&s, NULL), 0);
  _cleanup_free_ char *snapdir = join ("%s/snapshots", s.root), *removed = join ("%s/removed", s.root);
  ck_assert_uint_eq (count_entries (snapdir), 0);
  ck_assert_uint_eq (count_entries (removed), 0);
  snap_free (&s);
}
END_TEST

START_TEST (test_labels_update_and_records_survive_a_restart)
{
  struct snap s = { 0 };
  snap_open (&s);
  berth_labels l = { 0 };
  labels_set (&l, "keep", "1");
  berth_mounts m = { 0 };
  ck_ok (snapshotter_prepare (s.p, &s.ctx, "k", NULL, &l, &m, err));
  mounts_clear (&m);
  labels_clear (&l);
  labels_set (&l, "new", "2");
  struct berth_snapshot_info in = { .size = sizeof in, .labels = &l };
  snprintf (in.name, sizeof in.name, "k");
  const char *const paths[] = { "labels.new", NULL };
  berth_labels out = { 0 };
  struct berth_snapshot_info ret = { .size = sizeof ret, .labels = &out };
  ck_ok (snapshotter_update (s.p, &s.ctx, &in, paths, &ret, err));
  ck_assert_str_eq (labels_get (&out, "keep"), "1");
  ck_assert_str_eq (labels_get (&out, "new"), "2");
  labels_clear (&out);
  labels_clear (&l);
  const char *const bad[] = { "kind", NULL };
  ck_fails (snapshotter_update (s.p, &s.ctx, &in, bad, &ret, err), BERTH_E_INVALID, "cannot update `kind`");

  _cleanup_free_ char *top = strdup (s.top);
  snap_free (&s);
  struct snap s2 = { 0 };
  snap_open_at (&s2, top);
  struct berth_snapshot_info i = { .size = sizeof i, .labels = &out };
  ck_ok (snapshotter_stat (s2.p, &s2.ctx, "k", &i, err));
  ck_assert_uint_eq (i.kind, BERTH_SNAPSHOT_ACTIVE);
  ck_assert_str_eq (labels_get (&out, "new"), "2");
  labels_clear (&out);
  ck_assert_uint_eq (walk_count (&s2, "labels.keep==1"), 1);
  ck_assert_uint_eq (walk_count (&s2, "labels.keep==2"), 0);
  snap_free (&s2);
}
END_TEST

START_TEST (test_cleanup_removes_directories_no_record_names)
{
  struct snap s = { 0 };
  snap_open (&s);
  make_chain (&s);
  /* What a crash leaves: a directory without a record (between the rename
   * and the commit of a prepare) and a half-deleted removal. */
  _cleanup_free_ char *orphan = join ("%s/snapshots/999999", s.root);
  _cleanup_free_ char *orphan_file = join ("%s/snapshots/999999/data", s.root);
  _cleanup_free_ char *half = join ("%s/removed/77", s.root), *half_sub = join ("%s/removed/77/sub", s.root);
  ck_assert_int_eq (mkdir (orphan, 0755), 0);
  write_file (orphan_file, "nobody's");
  ck_assert_int_eq (mkdir (half, 0755), 0);
  ck_assert_int_eq (mkdir (half_sub, 0500), 0);
  ck_ok (snapshotter_cleanup (s.p, &s.ctx, err));
  ck_assert (!exists (orphan));
  ck_assert (!exists (half));
  _cleanup_free_ char *snapdir = join ("%s/snapshots", s.root);
  ck_assert_uint_eq (count_entries (snapdir), 3);
  /* The snapshots with records are untouched. */
  _cleanup_free_ char *d = prepare (&s, "after", "l3", false);
  _cleanup_free_ char *c = join ("%s/c", d);
  ck_assert_str_eq (read_file (c), "from l3");
  snap_free (&s);
}
END_TEST

START_TEST (test_a_restart_empties_interrupted_prepares)
{
  struct snap s = { 0 };
  snap_open (&s);
  make_chain (&s);
  _cleanup_free_ char *tmp = join ("%s/tmp/new-abcdef", s.root), *tmpf = join ("%s/tmp/new-abcdef/x", s.root);
  ck_assert_int_eq (mkdir (tmp, 0755), 0);
  write_file (tmpf, "half copied");
  _cleanup_free_ char *top = strdup (s.top);
  snap_free (&s);
  struct snap s2 = { 0 };
  snap_open_at (&s2, top);
  ck_assert (!exists (tmp));
  ck_assert_uint_eq (walk_count (&s2, NULL), 3);
  snap_free (&s2);
}
END_TEST

struct racer
{
  struct snap *s;
  int n;
  int rc;
  char msg[256];
  char dir[512];
};

static void *
race (void *data)
{
  struct racer *r = data;
  char key[32];
  snprintf (key, sizeof key, "c%d", r->n);
  berth_mounts m = { 0 };
  berth_error *err = NULL;
  r->rc = snapshotter_prepare (r->s->p, &r->s->ctx, key, "big", NULL, &m, &err);
  if (r->rc < 0)
    snprintf (r->msg, sizeof r->msg, "%s", berth_error_message (err));
  else
    snprintf (r->dir, sizeof r->dir, "%s", m.items[0].source);
  berth_error_free (err);
  mounts_clear (&m);
  return NULL;
}

START_TEST (test_prepares_run_at_the_same_time)
{
  struct snap s = { 0 };
  snap_open (&s);
  _cleanup_free_ char *d = prepare (&s, "big-a", NULL, false);
  for (int i = 0; i < 200; i++)
    {
      _cleanup_free_ char *p = join ("%s/f%03d", d, i);
      char content[64];
      snprintf (content, sizeof content, "file %d", i);
      write_file (p, content);
    }
  commit (&s, "big", "big-a");
  enum { N = 8 };
  pthread_t t[N];
  struct racer rs[N];
  for (int i = 0; i < N; i++)
    {
      rs[i] = (struct racer){ .s = &s, .n = i };
      ck_assert_int_eq (pthread_create (&t[i], NULL, race, &rs[i]), 0);
    }
  for (int i = 0; i < N; i++)
    pthread_join (t[i], NULL);
  for (int i = 0; i < N; i++)
    {
      ck_assert_msg (rs[i].rc == 0, "prepare c%d: %s", i, rs[i].msg);
      ck_assert_uint_eq (count_entries (rs[i].dir), 200);
      _cleanup_free_ char *p = join ("%s/f123", rs[i].dir);
      ck_assert_str_eq (read_file (p), "file 123");
      for (int j = 0; j < i; j++)
        ck_assert_str_ne (rs[i].dir, rs[j].dir);
    }
  ck_assert_uint_eq (walk_count (&s, "parent==big"), N);
  snap_free (&s);
}
END_TEST

START_TEST (test_root_path_moves_the_snapshots_elsewhere)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *elsewhere = join ("%s/elsewhere", dir);
  cfg_root_path = elsewhere;
  struct snap s = { 0 };
  snap_open (&s);
  _cleanup_free_ char *d = prepare (&s, "k", NULL, false);
  ck_assert_msg (strncmp (d, elsewhere, strlen (elsewhere)) == 0, "%s is not under %s", d, elsewhere);
  _cleanup_free_ char *db = join ("%s/metadata.db", elsewhere);
  ck_assert (exists (db));
  snap_free (&s);
  cfg_root_path = NULL;
}
END_TEST

static Suite *
native_suite (void)
{
  Suite *su = suite_create ("snapshotter-native");
  TCase *tc = tcase_create ("native");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_prepare_and_commit_build_a_chain_three_deep);
  tcase_add_test (tc, test_prepare_refuses_taken_keys_and_bad_parents);
  tcase_add_test (tc, test_a_view_mounts_read_only);
  tcase_add_test (tc, test_the_copy_preserves_links_modes_symlinks_xattrs_and_times);
  tcase_add_test (tc, test_usage_counts_inodes_and_bytes_with_hard_links_once);
  tcase_add_test (tc, test_remove_is_refused_with_children_and_deletes_the_directory);
  tcase_add_test (tc, test_labels_update_and_records_survive_a_restart);
  tcase_add_test (tc, test_cleanup_removes_directories_no_record_names);
  tcase_add_test (tc, test_a_restart_empties_interrupted_prepares);
  tcase_add_test (tc, test_prepares_run_at_the_same_time);
  tcase_add_test (tc, test_root_path_moves_the_snapshots_elsewhere);
  suite_add_tcase (su, tc);
  return su;
}

/* Unmount anything a failed test left mounted under the work directory. */
static void
sweep_mounts (void)
{
  FILE *f = fopen ("/proc/self/mountinfo", "r");
  if (f == NULL)
    return;
  char line[4096];
  while (fgets (line, sizeof line, f))
    {
      char mp[4096];
      if (sscanf (line, "%*s %*s %*s %*s %4095s", mp) == 1 && strncmp (mp, workdir, strlen (workdir)) == 0)
        umount2 (mp, MNT_DETACH);
    }
  fclose (f);
}

int
main (void)
{
  snprintf (workdir, sizeof workdir, "/tmp/berth-snap-native.XXXXXX");
  if (mkdtemp (workdir) == NULL)
    {
      perror ("mkdtemp");
      return EXIT_FAILURE;
    }
  SRunner *sr = srunner_create (native_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  sweep_mounts ();
  char *cmd = NULL;
  if (asprintf (&cmd, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", workdir, workdir) >= 0)
    {
      if (system (cmd) != 0)
        fprintf (stderr, "could not remove %s\n", workdir);
      free (cmd);
    }
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
