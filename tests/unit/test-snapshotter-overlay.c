/* Tests for plugins/snapshotters/overlay (io.berth.snapshotter.v1.overlayfs).
 *
 * The snapshotter is registered through the registry as berthd does it
 * (registry_add_builtin, registry_init_all) and called only through the
 * core wrappers of core/plugin-calls.h.  The mounts it answers are really
 * mounted (mount(2) with the answered options) and the merged trees are
 * checked, so these tests need root; without it they print SKIP with the
 * reason.  The detection tests of the pure functions run everywhere.
 *
 * Every test checks at its end that nothing stays mounted under the work
 * directory and that no short-link anchor is left; main() unmounts
 * whatever a failed test left and removes the work directory.
 */
#include <config.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "host-objects.h"
#include "overlay.h"
#include "plugin-calls.h"
#include "registry.h"

#define PLUGIN_NAME "io.berth.snapshotter.v1.overlayfs"

/* Assert a call returned 0, showing the error otherwise. */
#define ck_ok(call)                                                                                \
  do                                                                                               \
    {                                                                                              \
      _cleanup_error_ berth_error *e_ = NULL;                                                      \
      berth_error **err = &e_;                                                                     \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == 0, "%s = %d: %s", #call, r_, berth_error_message (e_));                 \
    }                                                                                              \
  while (0)

/* Assert a call failed with code, and that its message contains needle. */
#define ck_fails(code, needle, call)                                                               \
  do                                                                                               \
    {                                                                                              \
      _cleanup_error_ berth_error *e_ = NULL;                                                      \
      berth_error **err = &e_;                                                                     \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == (code), "%s = %d, expected %d: %s", #call, r_, (code),                 \
                     berth_error_message (e_));                                                    \
      ck_assert_msg (strstr (berth_error_message (e_), (needle)) != NULL, "`%s` does not say `%s`", \
                     berth_error_message (e_), (needle));                                          \
    }                                                                                              \
  while (0)

#define NEED_ROOT()                                                                                \
  do                                                                                               \
    {                                                                                              \
      if (geteuid () != 0)                                                                         \
        {                                                                                          \
          printf ("SKIP %s: needs root to mount overlays\n", __func__);                            \
          return;                                                                                  \
        }                                                                                          \
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

static void
write_file (const char *path, const char *content)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ck_assert_msg (fd >= 0, "open %s: %s", path, strerror (errno));
  size_t len = strlen (content);
  ck_assert_int_eq (write (fd, content, len), (ssize_t) len);
  close (fd);
}

/* The content of a small file, or NULL when it does not exist. */
static char *
read_file (const char *path)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      ck_assert_msg (errno == ENOENT, "open %s: %s", path, strerror (errno));
      return NULL;
    }
  char *buf = calloc (1, 4096);
  ssize_t n = read (fd, buf, 4095);
  ck_assert_int_ge (n, 0);
  close (fd);
  return buf;
}

#define ck_file_is(path, expected)                                                                 \
  do                                                                                               \
    {                                                                                              \
      _cleanup_free_ char *c_ = read_file (path);                                                  \
      ck_assert_msg (c_ != NULL, "%s is missing", (path));                                         \
      ck_assert_str_eq (c_, (expected));                                                           \
    }                                                                                              \
  while (0)

#define ck_file_missing(path)                                                                      \
  do                                                                                               \
    {                                                                                              \
      _cleanup_free_ char *c_ = read_file (path);                                                  \
      ck_assert_msg (c_ == NULL, "%s exists", (path));                                             \
    }                                                                                              \
  while (0)

/* ---- leave nothing behind ------------------------------------------------------ */

/* Mount points under workdir, deepest (latest) first, from /proc/self/mounts. */
static size_t
mounts_under (char **ret, size_t max)
{
  FILE *f = fopen ("/proc/self/mounts", "re");
  if (f == NULL)
    return 0; /* no /proc: nothing to check (and main() calls this outside a test) */
  char line[8192];
  size_t n = 0;
  while (fgets (line, sizeof line, f))
    {
      char dev[4096], dir[4096];
      if (sscanf (line, "%4095s %4095s", dev, dir) == 2 && strncmp (dir, workdir, strlen (workdir)) == 0 && n < max)
        ret[n++] = strdup (dir);
    }
  fclose (f);
  return n;
}

/* Symlinks in /run named bo-* that point into workdir (our anchors). */
static size_t
anchors_left (void)
{
  DIR *d = opendir ("/run");
  if (d == NULL)
    return 0;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir (d)) != NULL)
    {
      if (strncmp (e->d_name, "bo-", 3) != 0)
        continue;
      _cleanup_free_ char *p = join ("/run/%s", e->d_name);
      char buf[4096];
      ssize_t len = readlink (p, buf, sizeof buf - 1);
      if (len > 0)
        {
          buf[len] = '\0';
          n += strncmp (buf, workdir, strlen (workdir)) == 0;
        }
    }
  closedir (d);
  return n;
}

static void
ck_nothing_left (void)
{
  char *m[64];
  size_t n = mounts_under (m, 64);
  for (size_t i = 0; i < n; i++)
    {
      fprintf (stderr, "left mounted: %s\n", m[i]);
      free (m[i]);
    }
  ck_assert_uint_eq (n, 0);
  ck_assert_uint_eq (anchors_left (), 0);
}

/* ---- the snapshotter through the registry ---------------------------------------- */

static const char *cfg_mount_options[8];
static size_t cfg_nmount_options;
static int cfg_upperdir_label;
static const char *cfg_short_link_dir; /* NULL: the default */

static int
cfg_answer (void *data, const plugin *p, const char *key, struct berth_cfg_value *ret)
{
  (void) data;
  (void) p;
  if (strcmp (key, "mount_options") == 0)
    {
      ret->type = BERTH_CFG_STRING_ARRAY;
      ret->n = cfg_nmount_options;
      ret->v = cfg_mount_options;
      return 0;
    }
  if (strcmp (key, "upperdir_label") == 0)
    {
      ret->type = BERTH_CFG_BOOL;
      ret->b = cfg_upperdir_label;
      return 0;
    }
  if (strcmp (key, "short_link_dir") == 0 && cfg_short_link_dir)
    {
      ret->type = BERTH_CFG_STRING;
      ret->s = cfg_short_link_dir;
      return 0;
    }
  return BERTH_E_NOTFOUND;
}

static void
quiet_log (void *data, int level, const plugin *p, const char *msg)
{
  (void) data;
  (void) p;
  fprintf (stderr, "  log %d %s\n", level, msg);
}

struct sn
{
  registry *reg;
  plugin *p;
  char *top;
  char *root;
  berth_ctx ctx;
};

/* Register and init the plugin with root top/<plugin>; returns its status. */
static enum plugin_status
sn_open_at (struct sn *s, const char *top)
{
  s->top = strdup (top);
  s->root = join ("%s/" PLUGIN_NAME, top);
  _cleanup_free_ char *state = join ("%s.state", top);
  struct plugin_registry_options o = { .root = s->top, .state = state, .log = quiet_log, .cfg = cfg_answer };
  s->reg = registry_new (&o);
  ck_assert_ptr_nonnull (s->reg);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_add_builtin (s->reg, berth_snapshotter_overlay_entry, &err);
  ck_assert_msg (r == 0, "registry_add_builtin: %s", berth_error_message (err));
  r = registry_init_all (s->reg, &err);
  ck_assert_msg (r == 0, "registry_init_all: %s", berth_error_message (err));
  s->p = registry_find (s->reg, "io.berth.snapshotter.v1", "overlayfs");
  ck_assert_ptr_nonnull (s->p);
  ctx_init (&s->ctx, "default", NULL);
  return s->p->status;
}

static void
sn_open (struct sn *s)
{
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *top = join ("%s/root", dir);
  enum plugin_status st = sn_open_at (s, top);
  ck_assert_msg (st == PLUGIN_OK, "plugin status %s: %s", plugin_status_name (st), s->p->error ? s->p->error : "");
}

static void
sn_free (struct sn *s)
{
  registry_free (s->reg);
  free (s->top);
  free (s->root);
  memset (s, 0, sizeof *s);
}

/* ---- mounts ----------------------------------------------------------------------- */

static bool
has_option (const struct berth_mount *m, const char *opt)
{
  for (char **o = m->options; o && *o; o++)
    if (strcmp (*o, opt) == 0)
      return true;
  return false;
}

/* The value of "key=..." among the options, or NULL. */
static const char *
option_value (const struct berth_mount *m, const char *key)
{
  size_t k = strlen (key);
  for (char **o = m->options; o && *o; o++)
    if (strncmp (*o, key, k) == 0 && (*o)[k] == '=')
      return *o + k + 1;
  return NULL;
}

static size_t
noptions (const struct berth_mount *m)
{
  size_t n = 0;
  for (char **o = m->options; o && *o; o++)
    n++;
  return n;
}

/* The options joined as mount(2)'s data page gets them. */
static char *
mount_data (const struct berth_mount *m)
{
  size_t len = 1;
  for (char **o = m->options; o && *o; o++)
    len += strlen (*o) + 1;
  char *data = calloc (1, len);
  for (char **o = m->options; o && *o; o++)
    {
      if (o != m->options)
        strcat (data, ",");
      strcat (data, *o);
    }
  return data;
}

/* Mount as a runtime would: bind (then read-only remount for "ro"), or overlay. */
static void
mount_at (const struct berth_mount *m, const char *target)
{
  if (strcmp (m->type, "bind") == 0)
    {
      ck_assert_msg (mount (m->source, target, NULL, MS_BIND | MS_REC, NULL) == 0, "bind %s: %s", m->source,
                     strerror (errno));
      if (has_option (m, "ro"))
        ck_assert_msg (mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0, "remount ro: %s",
                       strerror (errno));
      return;
    }
  ck_assert_str_eq (m->type, "overlay");
  _cleanup_free_ char *data = mount_data (m);
  ck_assert_msg (strlen (data) < (size_t) sysconf (_SC_PAGESIZE), "mount data of %zu bytes", strlen (data));
  ck_assert_msg (mount (m->source, target, "overlay", 0, data) == 0, "mount -t overlay -o %s: %s", data,
                 strerror (errno));
}

static void
unmount (const char *target)
{
  ck_assert_msg (umount2 (target, 0) == 0, "umount %s: %s", target, strerror (errno));
}

static void
prepare (struct sn *s, const char *key, const char *parent, berth_mounts *m)
{
  ck_ok (snapshotter_prepare (s->p, &s->ctx, key, parent, NULL, m, err));
  ck_assert_uint_eq (m->n, 1);
}

static void
commit (struct sn *s, const char *name, const char *key)
{
  ck_ok (snapshotter_commit (s->p, &s->ctx, name, key, NULL, err));
}

/* The id of a snapshot: the directory name in its bind source or upperdir. */
static char *
fs_of_mount (const struct berth_mount *m)
{
  const char *upper = option_value (m, "upperdir");
  return strdup (upper ? upper : m->source);
}

/* A committed layer `name` on `parent` holding the given files (name, content pairs). */
static void
layer (struct sn *s, const char *name, const char *parent, const char *const *files)
{
  _cleanup_free_ char *key = join ("%s-active", name);
  berth_mounts m = { 0 };
  prepare (s, key, parent, &m);
  _cleanup_free_ char *fs = fs_of_mount (&m.items[0]);
  for (const char *const *f = files; f && f[0]; f += 2)
    {
      _cleanup_free_ char *p = join ("%s/%s", fs, f[0]);
      write_file (p, f[1]);
    }
  mounts_clear (&m);
  commit (s, name, key);
}

/* ---- tests: layout and mounts ------------------------------------------------------- */

START_TEST (test_snapshot_without_parent_is_a_bind_mount_of_its_fs)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  berth_mounts m = { 0 };
  prepare (&s, "base", NULL, &m);
  struct berth_mount *b = &m.items[0];
  ck_assert_str_eq (b->type, "bind");
  _cleanup_free_ char *prefix = join ("%s/snapshots/", s.root);
  ck_assert_msg (strncmp (b->source, prefix, strlen (prefix)) == 0, "source %s", b->source);
  ck_assert_str_eq (b->source + strlen (b->source) - 3, "/fs");
  ck_assert_uint_eq (noptions (b), 2);
  ck_assert (has_option (b, "rw"));
  ck_assert (has_option (b, "rbind"));

  /* fs/ and work/ exist; writes through the mount land in fs/. */
  _cleanup_free_ char *work = join ("%.*s/work", (int) strlen (b->source) - 3, b->source);
  struct stat st;
  ck_assert_int_eq (stat (work, &st), 0);
  ck_assert (S_ISDIR (st.st_mode));
  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (b, target);
  _cleanup_free_ char *f = join ("%s/hello", target);
  write_file (f, "world");
  unmount (target);
  _cleanup_free_ char *inside = join ("%s/hello", b->source);
  ck_file_is (inside, "world");

  struct berth_snapshot_info info = { .size = sizeof info };
  ck_ok (snapshotter_stat (s.p, &s.ctx, "base", &info, err));
  ck_assert_int_eq (info.kind, BERTH_SNAPSHOT_ACTIVE);
  ck_assert_str_eq (info.name, "base");
  ck_assert_str_eq (info.parent, "");
  mounts_clear (&m);

  /* Committed: the name answers stat, the key is gone, mounts is refused. */
  commit (&s, "base-c", "base");
  ck_ok (snapshotter_stat (s.p, &s.ctx, "base-c", &info, err));
  ck_assert_int_eq (info.kind, BERTH_SNAPSHOT_COMMITTED);
  ck_fails (BERTH_E_NOTFOUND, "base", snapshotter_stat (s.p, &s.ctx, "base", &info, err));
  ck_fails (BERTH_E_PRECONDITION, "base-c", snapshotter_mounts (s.p, &s.ctx, "base-c", &m, err));
  ck_assert_uint_eq (m.n, 0);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_child_is_an_overlay_whose_writes_land_in_its_upper_dir)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, (const char *const[]){ "a", "from base", "b", "also base", NULL });
  berth_mounts m = { 0 };
  prepare (&s, "child", "base", &m);
  struct berth_mount *o = &m.items[0];
  ck_assert_str_eq (o->type, "overlay");
  ck_assert_str_eq (o->source, "overlay");
  const char *upper = option_value (o, "upperdir");
  const char *work = option_value (o, "workdir");
  const char *lower = option_value (o, "lowerdir");
  ck_assert_ptr_nonnull (upper);
  ck_assert_ptr_nonnull (work);
  ck_assert_ptr_nonnull (lower);
  _cleanup_free_ char *prefix = join ("%s/snapshots/", s.root);
  ck_assert_msg (strncmp (upper, prefix, strlen (prefix)) == 0, "upperdir %s", upper);
  ck_assert_str_eq (upper + strlen (upper) - 3, "/fs");
  ck_assert_str_eq (work + strlen (work) - 5, "/work");
  ck_assert_msg (strncmp (lower, prefix, strlen (prefix)) == 0 && strchr (lower, ':') == NULL, "lowerdir %s", lower);
  ck_assert_str_ne (lower, upper);
  /* containerd's order: configured options, workdir, upperdir, lowerdir last. */
  size_t n = noptions (o);
  ck_assert_msg (strncmp (o->options[n - 1], "lowerdir=", 9) == 0, "last option %s", o->options[n - 1]);
  ck_assert_msg (strncmp (o->options[n - 2], "upperdir=", 9) == 0, "option %s", o->options[n - 2]);
  ck_assert_msg (strncmp (o->options[n - 3], "workdir=", 8) == 0, "option %s", o->options[n - 3]);
  if (access ("/sys/module/overlay/parameters/index", F_OK) == 0)
    ck_assert (has_option (o, "index=off"));

  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (o, target);
  _cleanup_free_ char *a = join ("%s/a", target);
  _cleanup_free_ char *b = join ("%s/b", target);
  _cleanup_free_ char *c = join ("%s/c", target);
  ck_file_is (a, "from base");
  write_file (b, "changed");
  write_file (c, "new");
  unmount (target);

  /* The new and the copied-up file are in the upper dir; the lower is untouched. */
  _cleanup_free_ char *ub = join ("%s/b", upper);
  _cleanup_free_ char *uc = join ("%s/c", upper);
  _cleanup_free_ char *ua = join ("%s/a", upper);
  _cleanup_free_ char *lb = join ("%s/b", lower);
  ck_file_is (ub, "changed");
  ck_file_is (uc, "new");
  ck_file_missing (ua);
  ck_file_is (lb, "also base");

  /* mounts() answers the same mount again. */
  berth_mounts again = { 0 };
  ck_ok (snapshotter_mounts (s.p, &s.ctx, "child", &again, err));
  ck_assert_uint_eq (again.n, 1);
  ck_assert_uint_eq (noptions (&again.items[0]), n);
  for (size_t i = 0; i < n; i++)
    ck_assert_str_eq (again.items[0].options[i], o->options[i]);
  mounts_clear (&again);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_lowerdirs_list_the_nearest_parent_first)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "l1", NULL, (const char *const[]){ "f", "one", "only1", "1", NULL });
  layer (&s, "l2", "l1", (const char *const[]){ "f", "two", NULL });
  layer (&s, "l3", "l2", (const char *const[]){ "f", "three", "only3", "3", NULL });
  berth_mounts m = { 0 };
  prepare (&s, "top", "l3", &m);
  const char *lower = option_value (&m.items[0], "lowerdir");
  ck_assert_ptr_nonnull (lower);
  /* Three entries, each with the file that layer wrote. */
  _cleanup_free_ char *copy = strdup (lower);
  const char *want[] = { "three", "two", "one" };
  size_t i = 0;
  for (char *save = NULL, *dir = strtok_r (copy, ":", &save); dir; dir = strtok_r (NULL, ":", &save), i++)
    {
      ck_assert_uint_lt (i, 3);
      _cleanup_free_ char *f = join ("%s/f", dir);
      ck_file_is (f, want[i]);
    }
  ck_assert_uint_eq (i, 3);

  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (&m.items[0], target);
  _cleanup_free_ char *f = join ("%s/f", target);
  _cleanup_free_ char *o1 = join ("%s/only1", target);
  _cleanup_free_ char *o3 = join ("%s/only3", target);
  ck_file_is (f, "three");
  ck_file_is (o1, "1");
  ck_file_is (o3, "3");
  unmount (target);

  struct berth_snapshot_info info = { .size = sizeof info };
  ck_ok (snapshotter_stat (s.p, &s.ctx, "top", &info, err));
  ck_assert_str_eq (info.parent, "l3");
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_whiteout_device_in_a_layer_hides_the_lower_file)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, (const char *const[]){ "gone", "x", "kept", "y", NULL });
  berth_mounts m = { 0 };
  prepare (&s, "wh-active", "base", &m);
  _cleanup_free_ char *upper = fs_of_mount (&m.items[0]);
  _cleanup_free_ char *wh = join ("%s/gone", upper);
  ck_assert_msg (mknod (wh, S_IFCHR | 0, makedev (0, 0)) == 0, "mknod: %s", strerror (errno));
  mounts_clear (&m);
  commit (&s, "whiteout", "wh-active");

  prepare (&s, "top", "whiteout", &m);
  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (&m.items[0], target);
  _cleanup_free_ char *gone = join ("%s/gone", target);
  _cleanup_free_ char *kept = join ("%s/kept", target);
  struct stat st;
  ck_assert_int_eq (lstat (gone, &st), -1);
  ck_assert_int_eq (errno, ENOENT);
  ck_file_is (kept, "y");
  unmount (target);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_views_mount_read_only)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "l1", NULL, (const char *const[]){ "a", "1", NULL });
  layer (&s, "l2", "l1", (const char *const[]){ "b", "2", NULL });
  _cleanup_free_ char *target = make_tmpdir ();
  _cleanup_free_ char *a = join ("%s/a", target);
  _cleanup_free_ char *b = join ("%s/b", target);
  _cleanup_free_ char *w = join ("%s/w", target);

  /* On one parent: a read-only bind of the parent's fs (containerd). */
  berth_mounts m = { 0 };
  ck_ok (snapshotter_view (s.p, &s.ctx, "v1", "l1", NULL, &m, err));
  ck_assert_uint_eq (m.n, 1);
  ck_assert_str_eq (m.items[0].type, "bind");
  ck_assert (has_option (&m.items[0], "ro"));
  mount_at (&m.items[0], target);
  ck_file_is (a, "1");
  ck_assert_int_eq (open (w, O_WRONLY | O_CREAT, 0644), -1);
  ck_assert_int_eq (errno, EROFS);
  unmount (target);
  mounts_clear (&m);

  /* On two: an overlay with lowerdirs only, which the kernel mounts read-only. */
  ck_ok (snapshotter_view (s.p, &s.ctx, "v2", "l2", NULL, &m, err));
  ck_assert_str_eq (m.items[0].type, "overlay");
  ck_assert_ptr_null (option_value (&m.items[0], "upperdir"));
  ck_assert_ptr_null (option_value (&m.items[0], "workdir"));
  ck_assert_ptr_nonnull (strchr (option_value (&m.items[0], "lowerdir"), ':'));
  mount_at (&m.items[0], target);
  ck_file_is (a, "1");
  ck_file_is (b, "2");
  ck_assert_int_eq (open (w, O_WRONLY | O_CREAT, 0644), -1);
  ck_assert_int_eq (errno, EROFS);
  unmount (target);
  mounts_clear (&m);

  /* Without a parent: a read-only bind of its own (empty) fs. */
  ck_ok (snapshotter_view (s.p, &s.ctx, "v0", NULL, NULL, &m, err));
  ck_assert_str_eq (m.items[0].type, "bind");
  ck_assert (has_option (&m.items[0], "ro"));
  mounts_clear (&m);

  struct berth_snapshot_info info = { .size = sizeof info };
  ck_ok (snapshotter_stat (s.p, &s.ctx, "v2", &info, err));
  ck_assert_int_eq (info.kind, BERTH_SNAPSHOT_VIEW);
  /* A view cannot be committed. */
  ck_fails (BERTH_E_PRECONDITION, "v2", snapshotter_commit (s.p, &s.ctx, "v2c", "v2", NULL, err));
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

/* ---- tests: remove, usage, cleanup ------------------------------------------------------ */

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

START_TEST (test_remove_is_refused_while_children_exist_then_deletes_the_directory)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, (const char *const[]){ "a", "1", NULL });
  berth_mounts m = { 0 };
  prepare (&s, "child", "base", &m);
  mounts_clear (&m);
  _cleanup_free_ char *snaps = join ("%s/snapshots", s.root);
  _cleanup_free_ char *links = join ("%s/l", s.root);
  ck_assert_uint_eq (count_entries (snaps), 2);
  ck_assert_uint_eq (count_entries (links), 2);

  ck_fails (BERTH_E_PRECONDITION, "child", snapshotter_remove (s.p, &s.ctx, "base", err));
  struct berth_snapshot_info info = { .size = sizeof info };
  ck_ok (snapshotter_stat (s.p, &s.ctx, "base", &info, err));
  ck_assert_uint_eq (count_entries (snaps), 2);

  ck_ok (snapshotter_remove (s.p, &s.ctx, "child", err));
  ck_assert_uint_eq (count_entries (snaps), 1);
  ck_ok (snapshotter_remove (s.p, &s.ctx, "base", err));
  ck_assert_uint_eq (count_entries (snaps), 0);
  ck_assert_uint_eq (count_entries (links), 0);
  ck_fails (BERTH_E_NOTFOUND, "base", snapshotter_stat (s.p, &s.ctx, "base", &info, err));
  ck_fails (BERTH_E_NOTFOUND, "base", snapshotter_remove (s.p, &s.ctx, "base", err));
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_prepare_refuses_taken_keys_and_uncommitted_parents_leaving_no_directory)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  berth_mounts m = { 0 };
  prepare (&s, "active", NULL, &m);
  mounts_clear (&m);
  _cleanup_free_ char *snaps = join ("%s/snapshots", s.root);
  ck_assert_uint_eq (count_entries (snaps), 1);
  ck_fails (BERTH_E_EXISTS, "active", snapshotter_prepare (s.p, &s.ctx, "active", NULL, NULL, &m, err));
  ck_fails (BERTH_E_INVALID, "active", snapshotter_prepare (s.p, &s.ctx, "child", "active", NULL, &m, err));
  ck_fails (BERTH_E_NOTFOUND, "nothing", snapshotter_view (s.p, &s.ctx, "v", "nothing", NULL, &m, err));
  ck_fails (BERTH_E_NOTFOUND, "nothing", snapshotter_commit (s.p, &s.ctx, "c", "nothing", NULL, err));
  ck_assert_uint_eq (m.n, 0);
  ck_assert_uint_eq (count_entries (snaps), 1);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

static int64_t
blocks_of (const char *path)
{
  struct stat st;
  ck_assert_int_eq (lstat (path, &st), 0);
  return (int64_t) st.st_blocks * 512;
}

START_TEST (test_usage_counts_the_upper_dir_only_and_hard_links_once)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, (const char *const[]){ "big", "base data that is not counted in the child", NULL });
  berth_mounts m = { 0 };
  prepare (&s, "child", "base", &m);
  _cleanup_free_ char *upper = fs_of_mount (&m.items[0]);
  mounts_clear (&m);
  _cleanup_free_ char *f = join ("%s/file", upper);
  _cleanup_free_ char *l = join ("%s/link", upper);
  _cleanup_free_ char *d = join ("%s/dir", upper);
  char data[10000];
  memset (data, 'x', sizeof data - 1);
  data[sizeof data - 1] = '\0';
  write_file (f, data);
  ck_assert_int_eq (link (f, l), 0);
  ck_assert_int_eq (mkdir (d, 0755), 0);
  int64_t expect_bytes = blocks_of (upper) + blocks_of (f) + blocks_of (d);

  struct berth_snapshot_usage u = { .size = sizeof u };
  ck_ok (snapshotter_usage (s.p, &s.ctx, "child", &u, err));
  ck_assert_int_eq (u.inodes, 3); /* fs/, file (and its link), dir */
  ck_assert_int_eq (u.bytes, expect_bytes);
  ck_assert_int_ge (u.bytes, 10000);

  /* Committed: the usage recorded at commit answers. */
  commit (&s, "child-c", "child");
  struct berth_snapshot_usage c = { .size = sizeof c };
  ck_ok (snapshotter_usage (s.p, &s.ctx, "child-c", &c, err));
  ck_assert_int_eq (c.inodes, 3);
  ck_assert_int_eq (c.bytes, expect_bytes);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_cleanup_removes_directories_and_links_no_record_owns)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, (const char *const[]){ "a", "1", NULL });
  _cleanup_free_ char *snaps = join ("%s/snapshots", s.root);
  _cleanup_free_ char *links = join ("%s/l", s.root);
  /* Leftovers of a crash: a half-made snapshot, an interrupted removal, a stale link. */
  _cleanup_free_ char *orphan = join ("%s/999/fs/deep/er", snaps);
  _cleanup_free_ char *cmd = join ("mkdir -p %s %s/new-abcdef/fs %s/rm-998/fs && chmod 0555 %s/999/fs/deep", orphan,
                                   snaps, snaps, snaps);
  ck_assert_int_eq (system (cmd), 0);
  _cleanup_free_ char *file = join ("%s/rm-998/fs/f", snaps);
  write_file (file, "x");
  _cleanup_free_ char *stale = join ("%s/999", links);
  ck_assert_int_eq (symlink ("../snapshots/999/fs", stale), 0);
  ck_assert_uint_eq (count_entries (snaps), 4);

  ck_ok (snapshotter_cleanup (s.p, &s.ctx, err));
  ck_assert_uint_eq (count_entries (snaps), 1);
  ck_assert_uint_eq (count_entries (links), 1);
  struct berth_snapshot_info info = { .size = sizeof info };
  ck_ok (snapshotter_stat (s.p, &s.ctx, "base", &info, err));
  berth_mounts m = { 0 };
  prepare (&s, "child", "base", &m);
  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (&m.items[0], target);
  _cleanup_free_ char *a = join ("%s/a", target);
  ck_file_is (a, "1");
  unmount (target);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

/* ---- tests: long chains ------------------------------------------------------------------ */

#define DEEP 150

/* DEEP committed layers, layer i holding file "f<i>" and "top" = i. */
static void
deep_chain (struct sn *s)
{
  char parent[32] = "";
  for (int i = 0; i < DEEP; i++)
    {
      char name[32], fname[32], val[32];
      snprintf (name, sizeof name, "layer-%d", i);
      snprintf (fname, sizeof fname, "f%d", i);
      snprintf (val, sizeof val, "%d", i);
      layer (s, name, *parent ? parent : NULL, (const char *const[]){ fname, val, "top", val, NULL });
      snprintf (parent, sizeof parent, "%s", name);
    }
}

START_TEST (test_chain_of_150_layers_fits_in_a_page_through_short_links_and_mounts)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  deep_chain (&s);
  char parent[32];
  snprintf (parent, sizeof parent, "layer-%d", DEEP - 1);
  berth_mounts m = { 0 };
  prepare (&s, "deep", parent, &m);
  struct berth_mount *o = &m.items[0];
  _cleanup_free_ char *data = mount_data (o);
  ck_assert_uint_lt (strlen (data), (size_t) sysconf (_SC_PAGESIZE));
  const char *lower = option_value (o, "lowerdir");
  size_t entries = 1;
  for (const char *p = lower; *p; p++)
    entries += *p == ':';
  ck_assert_uint_eq (entries, DEEP);
  ck_assert_msg (strncmp (lower, "/run/bo-", 8) == 0, "lowerdir starts %.40s", lower);

  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (o, target);
  for (int i = 0; i < DEEP; i++)
    {
      char val[32];
      snprintf (val, sizeof val, "%d", i);
      _cleanup_free_ char *f = join ("%s/f%d", target, i);
      ck_file_is (f, val);
    }
  _cleanup_free_ char *top = join ("%s/top", target);
  char want[32];
  snprintf (want, sizeof want, "%d", DEEP - 1);
  ck_file_is (top, want);
  write_file (top, "mine");
  unmount (target);
  const char *upper = option_value (o, "upperdir");
  _cleanup_free_ char *utop = join ("%s/top", upper);
  ck_file_is (utop, "mine");
  mounts_clear (&m);

  /* A view on the chain: lowerdirs only, also short. */
  ck_ok (snapshotter_view (s.p, &s.ctx, "deep-view", parent, NULL, &m, err));
  mount_at (&m.items[0], target);
  ck_file_is (top, want);
  unmount (target);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_chain_too_long_without_an_anchor_is_refused_and_leaves_no_snapshot)
{
  NEED_ROOT ();
  /* Build the chain with the anchor, then reopen the same root without one. */
  struct sn s = { 0 };
  sn_open (&s);
  deep_chain (&s);
  _cleanup_free_ char *top = strdup (s.top);
  sn_free (&s);
  cfg_short_link_dir = "";
  ck_assert_int_eq (sn_open_at (&s, top), PLUGIN_OK);
  char parent[32];
  snprintf (parent, sizeof parent, "layer-%d", DEEP - 1);
  _cleanup_free_ char *snaps = join ("%s/snapshots", s.root);
  size_t before = count_entries (snaps);
  berth_mounts m = { 0 };
  ck_fails (BERTH_E_INVALID, "150 layers", snapshotter_prepare (s.p, &s.ctx, "deep", parent, NULL, &m, err));
  ck_assert_uint_eq (m.n, 0);
  ck_assert_uint_eq (count_entries (snaps), before);
  struct berth_snapshot_info info = { .size = sizeof info };
  ck_fails (BERTH_E_NOTFOUND, "deep", snapshotter_stat (s.p, &s.ctx, "deep", &info, err));
  /* Snapshots on shorter chains still work. */
  prepare (&s, "shallow", "layer-3", &m);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_medium_chain_uses_the_l_links_under_the_root)
{
  NEED_ROOT ();
  cfg_short_link_dir = "";
  struct sn s = { 0 };
  sn_open (&s);
  /* Enough layers that full paths overflow the page but <root>/l/<id> fits. */
  size_t full = strlen (s.root) + strlen ("/snapshots/") + 2 + strlen ("/fs:");
  size_t shortl = strlen (s.root) + strlen ("/l/") + 2 + 1;
  size_t layers = 4096 / full + 1;
  ck_assert_uint_lt (layers * shortl + 2 * (strlen (s.root) + 30) + 40, 4095);
  char parent[32] = "";
  for (size_t i = 0; i < layers; i++)
    {
      char name[32];
      snprintf (name, sizeof name, "m-%zu", i);
      layer (&s, name, *parent ? parent : NULL, (const char *const[]){ "f", name, NULL });
      snprintf (parent, sizeof parent, "%s", name);
    }
  berth_mounts m = { 0 };
  prepare (&s, "medium", parent, &m);
  const char *lower = option_value (&m.items[0], "lowerdir");
  _cleanup_free_ char *prefix = join ("%s/l/", s.root);
  ck_assert_msg (strncmp (lower, prefix, strlen (prefix)) == 0, "lowerdir starts %.80s", lower);
  /* The links resolve to the layers. */
  _cleanup_free_ char *first = strndup (lower, strcspn (lower, ":"));
  _cleanup_free_ char *f = join ("%s/f", first);
  ck_file_is (f, parent);
  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (&m.items[0], target);
  _cleanup_free_ char *mf = join ("%s/f", target);
  ck_file_is (mf, parent);
  unmount (target);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

/* ---- tests: labels, walk, config --------------------------------------------------------- */

static int
collect_names (const struct berth_snapshot_info *info, void *data)
{
  char *buf = data;
  strcat (buf, info->name);
  strcat (buf, " ");
  return 0;
}

START_TEST (test_walk_filters_and_labels_update)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, NULL);
  berth_labels labels = { 0 };
  labels_set (&labels, "team", "blue");
  berth_mounts m = { 0 };
  ck_ok (snapshotter_prepare (s.p, &s.ctx, "work", "base", &labels, &m, err));
  mounts_clear (&m);
  labels_clear (&labels);

  char names[256] = "";
  const char *committed[] = { "kind==committed", NULL };
  ck_ok (snapshotter_walk (s.p, &s.ctx, committed, collect_names, names, err));
  ck_assert_str_eq (names, "base ");
  names[0] = '\0';
  const char *blue[] = { "labels.team==blue", NULL };
  ck_ok (snapshotter_walk (s.p, &s.ctx, blue, collect_names, names, err));
  ck_assert_str_eq (names, "work ");
  names[0] = '\0';
  ck_ok (snapshotter_walk (s.p, &s.ctx, NULL, collect_names, names, err));
  ck_assert_msg (strstr (names, "base ") && strstr (names, "work "), "walk saw `%s`", names);

  struct berth_snapshot_info info = { .size = sizeof info };
  berth_labels in = { 0 }, out = { 0 };
  snprintf (info.name, sizeof info.name, "work");
  info.labels = &in;
  labels_set (&in, "team", "red");
  struct berth_snapshot_info ret = { .size = sizeof ret, .labels = &out };
  const char *paths[] = { "labels.team", NULL };
  ck_ok (snapshotter_update (s.p, &s.ctx, &info, paths, &ret, err));
  ck_assert_str_eq (labels_get (&out, "team"), "red");
  labels_clear (&in);
  labels_clear (&out);
  struct berth_snapshot_info st = { .size = sizeof st, .labels = &out };
  ck_ok (snapshotter_stat (s.p, &s.ctx, "work", &st, err));
  ck_assert_str_eq (labels_get (&out, "team"), "red");
  ck_assert_ptr_null (labels_get (&out, OVL_UPPERDIR_LABEL));
  labels_clear (&out);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_upperdir_label_names_the_upper_dir_when_configured)
{
  NEED_ROOT ();
  cfg_upperdir_label = 1;
  struct sn s = { 0 };
  sn_open (&s);
  berth_mounts m = { 0 };
  prepare (&s, "k", NULL, &m);
  berth_labels out = { 0 };
  struct berth_snapshot_info st = { .size = sizeof st, .labels = &out };
  ck_ok (snapshotter_stat (s.p, &s.ctx, "k", &st, err));
  ck_assert_str_eq (labels_get (&out, OVL_UPPERDIR_LABEL), m.items[0].source);
  labels_clear (&out);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_configured_mount_options_come_first_and_are_not_doubled)
{
  NEED_ROOT ();
  cfg_mount_options[0] = "index=off";
  cfg_mount_options[1] = "xino=off";
  cfg_nmount_options = 2;
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, (const char *const[]){ "a", "1", NULL });
  berth_mounts m = { 0 };
  prepare (&s, "child", "base", &m);
  struct berth_mount *o = &m.items[0];
  ck_assert_str_eq (o->options[0], "index=off");
  ck_assert_str_eq (o->options[1], "xino=off");
  size_t index = 0;
  for (char **p = o->options; *p; p++)
    index += strncmp (*p, "index=", 6) == 0;
  ck_assert_uint_eq (index, 1);
  _cleanup_free_ char *target = make_tmpdir ();
  mount_at (o, target);
  unmount (target);
  mounts_clear (&m);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_mount_option_the_kernel_refuses_fails_init_naming_it)
{
  NEED_ROOT ();
  cfg_mount_options[0] = "no_such_overlay_option";
  cfg_nmount_options = 1;
  struct sn s = { 0 };
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *top = join ("%s/root", dir);
  enum plugin_status st = sn_open_at (&s, top);
  ck_assert_int_eq (st, PLUGIN_ERROR);
  ck_assert_msg (strstr (s.p->error, "no_such_overlay_option") != NULL, "error: %s", s.p->error);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

/* ---- tests: detection ------------------------------------------------------------------- */

START_TEST (test_proc_filesystems_parser_finds_overlay_only_as_a_whole_name)
{
  ck_assert (ovl_proc_lists_overlay ("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n"));
  ck_assert (ovl_proc_lists_overlay ("nodev\toverlay"));
  ck_assert (!ovl_proc_lists_overlay ("nodev\tsysfs\nnodev\ttmpfs\n\text4\n"));
  ck_assert (!ovl_proc_lists_overlay ("nodev\toverlayfs\nnodev\tfuse.overlay\n"));
  ck_assert (!ovl_proc_lists_overlay (""));
}
END_TEST

START_TEST (test_detection_reasons_name_the_cause)
{
  struct ovl_facts f = { .root = "/var/lib/berth/x", .proc_lists_overlay = true, .dtype = 1 };
  snprintf (f.fstype, sizeof f.fstype, "ext4");
  ck_assert_ptr_null (ovl_detect_reason (&f));

  /* Not listed but the probe (which loads the module) worked: usable. */
  f.proc_lists_overlay = false;
  ck_assert_ptr_null (ovl_detect_reason (&f));

  f.probe_errno = ENODEV;
  _cleanup_free_ char *r1 = ovl_detect_reason (&f);
  ck_assert_str_eq (r1, "overlayfs not available: /proc/filesystems lists no overlay (mounting one: No such device)");

  f.proc_lists_overlay = true;
  f.probe_errno = 0;
  f.dtype = 0;
  snprintf (f.fstype, sizeof f.fstype, "xfs");
  _cleanup_free_ char *r2 = ovl_detect_reason (&f);
  ck_assert_str_eq (r2, "backing filesystem xfs without d_type at /var/lib/berth/x (xfs: reformat with ftype=1)");

  f.dtype = 1;
  f.probe_errno = EINVAL;
  snprintf (f.fstype, sizeof f.fstype, "overlay");
  _cleanup_free_ char *r3 = ovl_detect_reason (&f);
  ck_assert_str_eq (r3,
                    "backing filesystem overlay at /var/lib/berth/x does not support an overlay upperdir (Invalid argument)");

  f.probe_errno = EPERM;
  _cleanup_free_ char *r4 = ovl_detect_reason (&f);
  ck_assert_msg (strstr (r4, "CAP_SYS_ADMIN") != NULL, "%s", r4);

  char buf[32];
  ck_assert_str_eq (ovl_fs_name (0x58465342, buf, sizeof buf), "xfs");
  ck_assert_str_eq (ovl_fs_name (0x12345, buf, sizeof buf), "0x12345");
}
END_TEST

START_TEST (test_uid_map_of_the_initial_namespace_is_recognised)
{
  ck_assert (ovl_uid_map_is_initial ("         0          0 4294967295\n"));
  ck_assert (!ovl_uid_map_is_initial ("         0       1000          1\n"));
  ck_assert (!ovl_uid_map_is_initial ("0 100000 65536\n"));
  ck_assert (!ovl_uid_map_is_initial (""));
}
END_TEST

START_TEST (test_plugin_skips_with_the_reason_on_an_overlay_backed_root)
{
  NEED_ROOT ();
  /* An overlay cannot be the upper filesystem of another overlay. */
  _cleanup_free_ char *dir = make_tmpdir ();
  _cleanup_free_ char *cmd = join ("mkdir -p %s/l %s/u %s/w %s/m", dir, dir, dir, dir);
  ck_assert_int_eq (system (cmd), 0);
  _cleanup_free_ char *data = join ("lowerdir=%s/l,upperdir=%s/u,workdir=%s/w", dir, dir, dir);
  _cleanup_free_ char *merged = join ("%s/m", dir);
  ck_assert_int_eq (mount ("overlay", merged, "overlay", 0, data), 0);
  _cleanup_free_ char *top = join ("%s/root", merged);
  struct sn s = { 0 };
  enum plugin_status st = sn_open_at (&s, top);
  ck_assert_int_eq (st, PLUGIN_SKIP);
  ck_assert_ptr_nonnull (s.p->error);
  ck_assert_msg (strstr (s.p->error, "backing filesystem overlay") != NULL, "reason: %s", s.p->error);
  ck_assert_msg (strstr (s.p->error, "upperdir") != NULL, "reason: %s", s.p->error);
  /* The probe leaves nothing in the root. */
  _cleanup_free_ char *root = join ("%s/" PLUGIN_NAME, top);
  ck_assert_uint_eq (count_entries (root), 0);
  sn_free (&s);
  unmount (merged);
  ck_nothing_left ();
}
END_TEST

START_TEST (test_plugin_skips_with_the_reason_without_the_right_to_mount)
{
  /* This test runs in its own process (fork mode): as root, it gives up
   * root for good to see what an unprivileged daemon gets. */
  _cleanup_free_ char *dir = make_tmpdir ();
  if (geteuid () == 0)
    {
      ck_assert_int_eq (chmod (workdir, 0711), 0);
      ck_assert_int_eq (chmod (dir, 0777), 0);
      ck_assert_int_eq (setgroups (0, NULL), 0);
      ck_assert_int_eq (setresgid (65534, 65534, 65534), 0);
      ck_assert_int_eq (setresuid (65534, 65534, 65534), 0);
    }
  _cleanup_free_ char *top = join ("%s/root", dir);
  struct sn s = { 0 };
  enum plugin_status st = sn_open_at (&s, top);
  ck_assert_int_eq (st, PLUGIN_SKIP);
  ck_assert_msg (strstr (s.p->error, "overlayfs cannot be mounted here") != NULL
                     && strstr (s.p->error, "CAP_SYS_ADMIN") != NULL,
                 "reason: %s", s.p->error);
  sn_free (&s);
}
END_TEST

/* ---- tests: concurrency ------------------------------------------------------------------- */

struct worker
{
  struct sn *s;
  int n;
  int failures;
};

static void *
work (void *arg)
{
  struct worker *w = arg;
  for (int i = 0; i < 15; i++)
    {
      char key[64], name[64];
      snprintf (key, sizeof key, "w%d-k%d", w->n, i);
      snprintf (name, sizeof name, "w%d-c%d", w->n, i);
      berth_mounts m = { 0 };
      berth_error *e = NULL;
      int r = snapshotter_prepare (w->s->p, &w->s->ctx, key, "base", NULL, &m, &e);
      mounts_clear (&m);
      if (r == 0)
        r = snapshotter_commit (w->s->p, &w->s->ctx, name, key, NULL, &e);
      if (r == 0 && i % 2 == 0)
        r = snapshotter_remove (w->s->p, &w->s->ctx, name, &e);
      if (r == 0 && i % 5 == 0)
        r = snapshotter_cleanup (w->s->p, &w->s->ctx, &e);
      if (r != 0)
        {
          fprintf (stderr, "worker %d step %d: %s\n", w->n, i, berth_error_message (e));
          w->failures++;
        }
      berth_error_free (e);
    }
  return NULL;
}

START_TEST (test_concurrent_prepare_commit_remove_and_cleanup_agree)
{
  NEED_ROOT ();
  struct sn s = { 0 };
  sn_open (&s);
  layer (&s, "base", NULL, (const char *const[]){ "a", "1", NULL });
  pthread_t t[6];
  struct worker w[6];
  for (int i = 0; i < 6; i++)
    {
      w[i] = (struct worker){ .s = &s, .n = i };
      ck_assert_int_eq (pthread_create (&t[i], NULL, work, &w[i]), 0);
    }
  for (int i = 0; i < 6; i++)
    {
      pthread_join (t[i], NULL);
      ck_assert_int_eq (w[i].failures, 0);
    }
  /* 7 of 15 per worker stay committed, plus base; each has its directory and link. */
  _cleanup_free_ char *snaps = join ("%s/snapshots", s.root);
  _cleanup_free_ char *links = join ("%s/l", s.root);
  ck_assert_uint_eq (count_entries (snaps), 6 * 7 + 1);
  ck_assert_uint_eq (count_entries (links), 6 * 7 + 1);
  sn_free (&s);
  ck_nothing_left ();
}
END_TEST

/* Unmount what a failed test left (its assertion ended it before its
 * unmount), deepest first, and drop its anchors, so that one failure does
 * not fail the rest. */
static void
unmount_leftovers (void)
{
  char *m[256];
  size_t n = mounts_under (m, 256);
  while (n-- > 0)
    {
      fprintf (stderr, "unmounting %s, left by a failed test\n", m[n]);
      if (umount2 (m[n], MNT_DETACH) < 0)
        fprintf (stderr, "could not unmount %s: %s\n", m[n], strerror (errno));
      free (m[n]);
    }
  /* And the anchors of plugins whose fini did not run. */
  DIR *d = opendir ("/run");
  struct dirent *e;
  while (d && (e = readdir (d)) != NULL)
    {
      char path[512], buf[4096];
      snprintf (path, sizeof path, "/run/%s", e->d_name);
      ssize_t len = strncmp (e->d_name, "bo-", 3) == 0 ? readlink (path, buf, sizeof buf - 1) : -1;
      if (len > 0 && (buf[len] = '\0', strncmp (buf, workdir, strlen (workdir)) == 0))
        unlink (path);
    }
  if (d)
    closedir (d);
}

static void
reset_config (void)
{
  unmount_leftovers ();
  cfg_nmount_options = 0;
  cfg_upperdir_label = 0;
  cfg_short_link_dir = NULL;
}

static Suite *
overlay_suite (void)
{
  Suite *s = suite_create ("snapshotter-overlay");
  TCase *tc = tcase_create ("overlay");
  tcase_set_timeout (tc, 120);
  tcase_add_checked_fixture (tc, reset_config, NULL);
  tcase_add_test (tc, test_snapshot_without_parent_is_a_bind_mount_of_its_fs);
  tcase_add_test (tc, test_child_is_an_overlay_whose_writes_land_in_its_upper_dir);
  tcase_add_test (tc, test_lowerdirs_list_the_nearest_parent_first);
  tcase_add_test (tc, test_whiteout_device_in_a_layer_hides_the_lower_file);
  tcase_add_test (tc, test_views_mount_read_only);
  tcase_add_test (tc, test_remove_is_refused_while_children_exist_then_deletes_the_directory);
  tcase_add_test (tc, test_prepare_refuses_taken_keys_and_uncommitted_parents_leaving_no_directory);
  tcase_add_test (tc, test_usage_counts_the_upper_dir_only_and_hard_links_once);
  tcase_add_test (tc, test_cleanup_removes_directories_and_links_no_record_owns);
  tcase_add_test (tc, test_chain_of_150_layers_fits_in_a_page_through_short_links_and_mounts);
  tcase_add_test (tc, test_chain_too_long_without_an_anchor_is_refused_and_leaves_no_snapshot);
  tcase_add_test (tc, test_medium_chain_uses_the_l_links_under_the_root);
  tcase_add_test (tc, test_walk_filters_and_labels_update);
  tcase_add_test (tc, test_upperdir_label_names_the_upper_dir_when_configured);
  tcase_add_test (tc, test_configured_mount_options_come_first_and_are_not_doubled);
  tcase_add_test (tc, test_mount_option_the_kernel_refuses_fails_init_naming_it);
  tcase_add_test (tc, test_proc_filesystems_parser_finds_overlay_only_as_a_whole_name);
  tcase_add_test (tc, test_detection_reasons_name_the_cause);
  tcase_add_test (tc, test_uid_map_of_the_initial_namespace_is_recognised);
  tcase_add_test (tc, test_plugin_skips_with_the_reason_on_an_overlay_backed_root);
  tcase_add_test (tc, test_plugin_skips_with_the_reason_without_the_right_to_mount);
  tcase_add_test (tc, test_concurrent_prepare_commit_remove_and_cleanup_agree);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  snprintf (workdir, sizeof workdir, "/tmp/berth-overlay.XXXXXX");
  if (mkdtemp (workdir) == NULL)
    {
      perror ("mkdtemp");
      return EXIT_FAILURE;
    }
  SRunner *sr = srunner_create (overlay_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  unmount_leftovers ();
  char *cmd = NULL;
  if (asprintf (&cmd, "rm -rf '%s'", workdir) >= 0)
    {
      if (system (cmd) != 0)
        fprintf (stderr, "could not remove %s\n", workdir);
      free (cmd);
    }
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
