/* Tests for core/registry.c: the loader and registry, driven by the fixture
 * plugins of tests/plugins/ (one shared object per ABI rule they break).
 *
 * Each refusal or failure must produce exactly one log line naming the file
 * or plugin and the reason, leave the registry usable for the plugins that
 * follow (the daemon keeps running), and only stop start-up when the plugin
 * is listed in required_plugins.
 *
 * The fixtures are found in $top_builddir/tests/plugins/.libs/ (exported by
 * `make check`; set it by hand to run this binary alone).
 */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"
#include "plugin-calls.h"
#include "registry.h"

#define STR_(x) #x
#define STR(x) STR_ (x)
#define HOST_ABI STR (BERTH_ABI_MAJOR) "." STR (BERTH_ABI_MINOR)

/* ---- log capture ------------------------------------------------------- */

struct logline
{
  int level;
  char *plugin; /* full name, or NULL */
  char *msg;
};

static struct logline lines[256];
static size_t nlines;

static void
capture_log (void *data, int level, const plugin *p, const char *msg)
{
  (void) data;
  ck_assert_uint_lt (nlines, sizeof lines / sizeof lines[0]);
  lines[nlines].level = level;
  lines[nlines].plugin = p && p->full_name ? strdup (p->full_name) : NULL;
  lines[nlines].msg = strdup (msg);
  /* Shown when a test fails, so the reader sees what the registry said. */
  fprintf (stderr, "  log[%zu] %d %s\n", nlines, level, msg);
  nlines++;
}

/* How many captured lines contain every one of the NULL-terminated needles. */
static size_t
count_lines (const char *needle, ...)
{
  size_t count = 0;
  for (size_t i = 0; i < nlines; i++)
    {
      va_list ap;
      bool all = true;
      va_start (ap, needle);
      for (const char *n = needle; n; n = va_arg (ap, const char *))
        if (strstr (lines[i].msg, n) == NULL)
          all = false;
      va_end (ap);
      if (all)
        count++;
    }
  return count;
}

/* The only line containing `needle`; fails the test unless there is exactly one. */
static const struct logline *
the_line (const char *needle)
{
  const struct logline *found = NULL;
  size_t count = 0;
  for (size_t i = 0; i < nlines; i++)
    if (strstr (lines[i].msg, needle))
      {
        found = &lines[i];
        count++;
      }
  ck_assert_msg (count == 1, "expected exactly one log line containing `%s`, got %zu", needle, count);
  return found;
}

/* Position of the first line equal to msg, or -1. */
static ssize_t
line_index (const char *msg)
{
  for (size_t i = 0; i < nlines; i++)
    if (strcmp (lines[i].msg, msg) == 0)
      return (ssize_t) i;
  return -1;
}

#define ck_assert_contains(haystack, needle)                                                       \
  do                                                                                               \
    {                                                                                              \
      const char *h_ = (haystack);                                                                 \
      ck_assert_msg (h_ != NULL && strstr (h_, (needle)) != NULL, "`%s` does not contain `%s`",    \
                     h_ ? h_ : "(null)", (needle));                                                \
    }                                                                                              \
  while (0)

/* ---- fixtures and registries ------------------------------------------- */

static char *
fixture (const char *name)
{
  const char *top = getenv ("top_builddir");
  char *path = NULL;
  ck_assert_msg (top != NULL, "top_builddir is not set (run through `make check`)");
  ck_assert_int_ge (asprintf (&path, "%s/tests/plugins/.libs/%s.so", top, name), 0);
  ck_assert_msg (access (path, R_OK) == 0, "fixture %s missing: %s", path, strerror (errno));
  return path;
}

/* Copies of fixtures go to a directory per test, under one work directory
 * that main() makes before the (forked) tests run and removes after them,
 * whether they passed or not. */
static char workdir[64];
static char tmpdir[128];

static const char *
make_tmpdir (void)
{
  ck_assert_msg (workdir[0] != '\0', "no work directory");
  snprintf (tmpdir, sizeof tmpdir, "%s/t.XXXXXX", workdir);
  ck_assert_ptr_nonnull (mkdtemp (tmpdir));
  return tmpdir;
}

/* Copy fixture `name` to tmpdir/<as>, with the given mode; returns the path. */
static char *
copy_fixture (const char *name, const char *as, mode_t mode)
{
  _cleanup_free_ char *src = fixture (name);
  char *dst = NULL;
  if (tmpdir[0] == '\0')
    make_tmpdir ();
  ck_assert_int_ge (asprintf (&dst, "%s/%s", tmpdir, as), 0);
  _cleanup_close_ int in = open (src, O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge (in, 0);
  struct stat st;
  ck_assert_int_eq (fstat (in, &st), 0);
  _cleanup_close_ int out = open (dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ck_assert_int_ge (out, 0);
  ck_assert_int_eq (sendfile (out, in, NULL, st.st_size), st.st_size);
  ck_assert_int_eq (fchmod (out, mode), 0); /* fchmod: not subject to the umask */
  return dst;
}

/* Answers cfg_get for the frozen plugin's "greeting" like a config file that
 * sets it; everything else is absent. */
static int
cfg_greeting (void *data, const plugin *p, const char *key, struct berth_cfg_value *ret)
{
  (void) data;
  if (strcmp (p->desc.id, "frozen-1.0") == 0 && strcmp (key, "greeting") == 0)
    {
      ret->type = BERTH_CFG_STRING;
      ret->s = "ahoy";
      ret->is_default = 0;
      return 0;
    }
  return BERTH_E_NOTFOUND;
}

static struct plugin_registry_options
default_options (void)
{
  /* berthd refuses files not owned by root; when the tests do not run as
   * root the build tree is not owned by root either. */
  return (struct plugin_registry_options){
    .check_owner = geteuid () == 0,
    .log = capture_log,
  };
}

static registry *
new_registry_with (const struct plugin_registry_options *opts)
{
  registry *reg = registry_new (opts);
  ck_assert_ptr_nonnull (reg);
  return reg;
}

static registry *
new_registry (void)
{
  struct plugin_registry_options o = default_options ();
  return new_registry_with (&o);
}

/* Load a fixture that must be accepted. */
static void
load_ok (registry *reg, const char *name)
{
  _cleanup_free_ char *path = fixture (name);
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_load_file (reg, path, &err);
  ck_assert_msg (r == 0, "loading %s: %s", path, berth_error_message (err));
}

/* Load a fixture that must be refused; returns the error message. */
static char *
load_refused (registry *reg, const char *path, int code)
{
  _cleanup_error_ berth_error *err = NULL;
  size_t before = registry_count (reg);
  int r = registry_load_file (reg, path, &err);
  ck_assert_int_eq (r, code);
  ck_assert_ptr_nonnull (err);
  ck_assert_uint_eq (registry_count (reg), before);
  return strdup (berth_error_message (err));
}

static plugin *
find (registry *reg, const char *type, const char *id)
{
  plugin *p = registry_find (reg, type, id);
  ck_assert_msg (p != NULL, "plugin %s.%s not registered", type, id);
  return p;
}

static bool
strv_has (char **v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp (*v, s) == 0)
      return true;
  return false;
}

static void
init_all_ok (registry *reg)
{
  _cleanup_error_ berth_error *err = NULL;
  int r = registry_init_all (reg, &err);
  ck_assert_msg (r == 0, "registry_init_all: %s", berth_error_message (err));
}

/* ---- ABI 1.0 ------------------------------------------------------------ */

START_TEST (test_frozen_abi_1_0_plugin_loads_inits_and_uses_the_host_table)
{
  struct plugin_registry_options o = default_options ();
  o.cfg = cfg_greeting;
  registry *reg = new_registry_with (&o);
  load_ok (reg, "frozen-1.0");
  init_all_ok (reg);

  plugin *p = find (reg, "io.berth.snapshotter.v1", "frozen-1.0");
  ck_assert_str_eq (plugin_status_name (p->status), "ok");
  ck_assert_uint_eq (p->desc.abi_minor, 0);
  ck_assert_uint_eq (p->desc.size, BERTH_PLUGIN_DESC_SIZE_1_0);
  /* The host copied only the 1.0 bytes: the trap after them is not read. */
  ck_assert_ptr_null (p->desc.description);
  ck_assert_ptr_eq (p->orig->init, p->desc.init);

  ck_assert_int_eq (count_lines ("init frozen-1.0 (built for ABI 1.0, host " HOST_ABI ")", NULL), 1);
  ck_assert_msg (strv_has (p->exports, "greeting=ahoy"), "greeting export missing");
  ck_assert_msg (strv_has (p->exports, "greeting.default=no"), "greeting.default export missing");
  ck_assert_msg (strv_has (p->exports, "undeclared=notfound"), "cfg_get of an undeclared key was not NOTFOUND");
  ck_assert_msg (strv_has (p->capabilities, "frozen-abi-1.0"), "capability missing");
  for (size_t i = 0; i < nlines; i++)
    ck_assert_int_gt (lines[i].level, BERTH_LOG_WARNING);
  registry_free (reg);
  ck_assert_int_eq (count_lines ("fini frozen-1.0", NULL), 1);
}
END_TEST

START_TEST (test_frozen_abi_1_0_methods_are_called_through_the_host_copy)
{
  struct plugin_registry_options o = default_options ();
  o.cfg = cfg_greeting;
  registry *reg = new_registry_with (&o);
  load_ok (reg, "frozen-1.0");
  init_all_ok (reg);
  plugin *p = find (reg, "io.berth.snapshotter.v1", "frozen-1.0");

  struct berth_snapshot_info info = { .size = sizeof info };
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (snapshotter_stat (p, NULL, "hello", &info, &err), 0);
  ck_assert_uint_eq (info.kind, BERTH_SNAPSHOT_COMMITTED);
  ck_assert_str_eq (info.name, "ahoy");

  /* The plugin's error, set through host->error_set, with the plugin as context. */
  ck_assert_int_eq (snapshotter_stat (p, NULL, "nope", &info, &err), BERTH_E_NOTFOUND);
  ck_assert_contains (berth_error_message (err), "snapshot nope does not exist");
  ck_assert_contains (berth_error_message (err), "io.berth.snapshotter.v1.frozen-1.0");
  berth_error_freep (&err);

  /* A NULL method answers NOTSUP without calling the plugin. */
  ck_assert_int_eq (snapshotter_remove (p, NULL, "hello", &err), BERTH_E_NOTSUP);
  berth_error_freep (&err);
  ck_assert_int_eq (snapshotter_cleanup (p, NULL, &err), BERTH_E_NOTSUP);
  registry_free (reg);
}
END_TEST

START_TEST (test_declared_default_is_used_when_the_config_does_not_set_the_key)
{
  /* registry.h: "NULL means every key takes its declared default";
   * plugin.h cfg_get: "Falls back to the declared default". */
  registry *reg = new_registry ();
  load_ok (reg, "frozen-1.0");
  init_all_ok (reg);
  plugin *p = find (reg, "io.berth.snapshotter.v1", "frozen-1.0");
  ck_assert_str_eq (plugin_status_name (p->status), "ok");
  ck_assert_msg (strv_has (p->exports, "greeting=hello"), "declared default \"hello\" not answered");
  ck_assert_msg (strv_has (p->exports, "greeting.default=yes"), "is_default not set for a default");
  registry_free (reg);
}
END_TEST

/* ---- load refusals -------------------------------------------------------- */

START_TEST (test_wrong_magic_is_refused_with_one_line_naming_the_file)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = fixture ("bad-magic");
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_INVALID);
  const struct logline *l = the_line ("bad-magic.so");
  ck_assert_int_eq (l->level, BERTH_LOG_ERROR);
  ck_assert_contains (l->msg, path);
  ck_assert_contains (l->msg, "magic");
  ck_assert_contains (l->msg, "0x4e4f54415045474c");
  ck_assert_str_eq (msg, l->msg);
  ck_assert_uint_eq (nlines, 1);
  registry_free (reg);
}
END_TEST

START_TEST (test_newer_minor_is_refused_naming_both_versions)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = fixture ("newer-minor");
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_INVALID);
  const struct logline *l = the_line ("newer-minor");
  ck_assert_int_eq (l->level, BERTH_LOG_ERROR);
  ck_assert_contains (l->msg, path);
  ck_assert_contains (l->msg, "io.berth.content.v1.newer-minor");
  char built[32];
  snprintf (built, sizeof built, "built for ABI %d.%d", BERTH_ABI_MAJOR, BERTH_ABI_MINOR + 1);
  ck_assert_contains (l->msg, built);
  ck_assert_contains (l->msg, "newer than the host's " HOST_ABI);
  ck_assert_uint_eq (nlines, 1);
  registry_free (reg);
}
END_TEST

START_TEST (test_older_major_is_refused_naming_both_versions)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = fixture ("older-major");
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_INVALID);
  const struct logline *l = the_line ("older-major.so");
  ck_assert_int_eq (l->level, BERTH_LOG_ERROR);
  ck_assert_contains (l->msg, "ABI 0." STR (BERTH_ABI_MINOR));
  ck_assert_contains (l->msg, "host ABI is " HOST_ABI);
  ck_assert_uint_eq (nlines, 1);
  registry_free (reg);
}
END_TEST

START_TEST (test_missing_entry_symbol_is_refused_naming_the_symbol)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = fixture ("no-entry");
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_INVALID);
  const struct logline *l = the_line ("no-entry.so");
  ck_assert_contains (l->msg, path);
  ck_assert_contains (l->msg, "no entry symbol " BERTH_PLUGIN_ENTRY_NAME);
  ck_assert_uint_eq (nlines, 1);
  registry_free (reg);
}
END_TEST

START_TEST (test_undefined_symbol_fails_at_dlopen_naming_file_and_symbol)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = fixture ("undefined-symbol");
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_INVALID);
  const struct logline *l = the_line ("undefined-symbol.so");
  ck_assert_contains (l->msg, path);
  ck_assert_contains (l->msg, "undefined symbol: berth_fixture_does_not_exist");
  /* The operator's path, not /proc/self/fd/N. */
  ck_assert_msg (strstr (l->msg, "/proc/self/fd") == NULL, "line names the fd path: %s", l->msg);
  ck_assert_uint_eq (nlines, 1);
  registry_free (reg);
}
END_TEST

START_TEST (test_group_writable_file_is_refused_before_dlopen)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = copy_fixture ("ok", "ok-gw.so", 0664);
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_PERMISSION);
  const struct logline *l = the_line ("ok-gw.so");
  ck_assert_contains (l->msg, path);
  ck_assert_contains (l->msg, "group-writable");
  ck_assert_contains (l->msg, "0664");

  /* Same bytes, safe mode: accepted, so the refusal was the mode alone. */
  ck_assert_int_eq (chmod (path, 0644), 0);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (registry_load_file (reg, path, &err), 0);
  ck_assert_ptr_nonnull (registry_find (reg, "io.berth.content.v1", "fixture-ok"));
  registry_free (reg);
}
END_TEST

START_TEST (test_world_writable_file_is_refused_before_dlopen)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = copy_fixture ("ok", "ok-ww.so", 0646);
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_PERMISSION);
  const struct logline *l = the_line ("ok-ww.so");
  ck_assert_contains (l->msg, "world-writable");
  ck_assert_uint_eq (nlines, 1);
  registry_free (reg);
}
END_TEST

/* Root only (added to the suite when euid is 0). */
START_TEST (test_file_not_owned_by_root_is_refused_when_checking_owner)
{
  ck_assert_int_eq (geteuid (), 0);
  registry *reg = new_registry ();
  _cleanup_free_ char *path = copy_fixture ("ok", "ok-nobody.so", 0644);
  ck_assert_int_eq (chown (path, 65534, 65534), 0);
  _cleanup_free_ char *msg = load_refused (reg, path, BERTH_E_PERMISSION);
  const struct logline *l = the_line ("ok-nobody.so");
  ck_assert_contains (l->msg, "owned by uid 65534, not root");

  ck_assert_int_eq (chown (path, 0, 0), 0);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (registry_load_file (reg, path, &err), 0);
  registry_free (reg);
}
END_TEST

START_TEST (test_each_bad_descriptor_of_a_file_is_refused_with_its_own_line)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = fixture ("bad-desc");
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_lt (registry_load_file (reg, path, &err), 0);
  ck_assert_uint_eq (registry_count (reg), 0);
  ck_assert_uint_eq (nlines, 4);
  ck_assert_int_eq (count_lines (path, "descriptor size", "smaller than the ABI 1.0 size", NULL), 1);
  ck_assert_int_eq (count_lines ("ops-too-small", "ops size 0", NULL), 1);
  ck_assert_int_eq (count_lines ("unknown-kind", "unknown kind 99", NULL), 1);
  ck_assert_int_eq (count_lines (path, "(null)", "required", NULL), 1);
  registry_free (reg);
}
END_TEST

START_TEST (test_duplicate_id_in_one_file_keeps_the_first)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *path = fixture ("duplicate-id");
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (registry_load_file (reg, path, &err), BERTH_E_EXISTS);
  ck_assert_uint_eq (registry_count (reg), 1);
  plugin *p = find (reg, "io.berth.content.v1", "dup");
  ck_assert_str_eq (p->desc.version, "1.0.0");
  const struct logline *l = the_line ("duplicate");
  ck_assert_contains (l->msg, "io.berth.content.v1.dup");
  ck_assert_contains (l->msg, path);

  init_all_ok (reg);
  ck_assert_int_eq (count_lines ("init dup", NULL), 1);
  ck_assert_int_eq (count_lines ("init dup (second)", NULL), 0);
  registry_free (reg);
}
END_TEST

START_TEST (test_duplicate_id_across_files_names_both_files)
{
  registry *reg = new_registry ();
  _cleanup_free_ char *first = fixture ("ok");
  _cleanup_free_ char *second = copy_fixture ("ok", "ok-again.so", 0644);
  load_ok (reg, "ok");
  _cleanup_free_ char *msg = load_refused (reg, second, BERTH_E_EXISTS);
  const struct logline *l = the_line ("duplicate");
  ck_assert_contains (l->msg, "io.berth.content.v1.fixture-ok");
  ck_assert_contains (l->msg, first);
  ck_assert_contains (l->msg, second);
  registry_free (reg);
}
END_TEST

/* ---- init ---------------------------------------------------------------- */

START_TEST (test_init_error_marks_the_plugin_error_and_others_still_init)
{
  registry *reg = new_registry ();
  load_ok (reg, "init-error");
  load_ok (reg, "ok");
  init_all_ok (reg);

  plugin *p = find (reg, "io.berth.content.v1", "init-error");
  ck_assert_str_eq (plugin_status_name (p->status), "error");
  ck_assert_contains (p->error, "cannot open /dev/berth-fixture");
  ck_assert_contains (p->error, strerror (ENODEV));
  const struct logline *l = the_line ("init-error");
  ck_assert_int_eq (l->level, BERTH_LOG_ERROR);
  ck_assert_contains (l->msg, "io.berth.content.v1.init-error");
  ck_assert_contains (l->msg, "cannot open /dev/berth-fixture");

  ck_assert_str_eq (plugin_status_name (find (reg, "io.berth.content.v1", "fixture-ok")->status), "ok");
  ck_assert_int_eq (count_lines ("init fixture-ok", NULL), 1);
  registry_free (reg);
}
END_TEST

START_TEST (test_init_skip_is_a_skip_with_its_reason_not_an_error)
{
  registry *reg = new_registry ();
  load_ok (reg, "init-skip");
  load_ok (reg, "ok");
  init_all_ok (reg);

  plugin *p = find (reg, "io.berth.snapshotter.v1", "init-skip");
  ck_assert_str_eq (plugin_status_name (p->status), "skip");
  ck_assert_str_eq (p->error, "no /dev/berth-fixture on this host");
  const struct logline *l = the_line ("init-skip");
  ck_assert_int_gt (l->level, BERTH_LOG_ERROR);
  ck_assert_contains (l->msg, "skip");
  ck_assert_contains (l->msg, "no /dev/berth-fixture on this host");
  ck_assert_str_eq (plugin_status_name (find (reg, "io.berth.content.v1", "fixture-ok")->status), "ok");

  /* A skipped plugin is not callable. */
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_eq (snapshotter_cleanup (p, NULL, &err), BERTH_E_UNAVAILABLE);
  registry_free (reg);
}
END_TEST

START_TEST (test_init_follows_requires_and_fini_runs_in_reverse)
{
  registry *reg = new_registry ();
  load_ok (reg, "order"); /* declares c, b, a: the reverse of their needs */
  init_all_ok (reg);

  plugin *a = find (reg, "io.berth.content.v1", "order-a");
  plugin *b = find (reg, "io.berth.snapshotter.v1", "order-b");
  plugin *c = find (reg, "io.berth.runtime.v1", "order-c");
  ck_assert_str_eq (plugin_status_name (c->status), "ok"); /* its lookup of b worked */
  ck_assert_uint_gt (a->init_order, 0);
  ck_assert_uint_lt (a->init_order, b->init_order);
  ck_assert_uint_lt (b->init_order, c->init_order);
  ck_assert_int_lt (line_index ("init order-a"), line_index ("init order-b"));
  ck_assert_int_lt (line_index ("init order-b"), line_index ("init order-c"));
  ck_assert_int_ge (line_index ("init order-a"), 0);

  registry_free (reg);
  ck_assert_int_gt (line_index ("fini order-c"), line_index ("init order-c"));
  ck_assert_int_lt (line_index ("fini order-c"), line_index ("fini order-b"));
  ck_assert_int_lt (line_index ("fini order-b"), line_index ("fini order-a"));
}
END_TEST

START_TEST (test_dependency_cycle_marks_its_members_error)
{
  registry *reg = new_registry ();
  load_ok (reg, "cycle");
  load_ok (reg, "ok");
  init_all_ok (reg);

  plugin *a = find (reg, "io.berth.content.v1", "cycle-a");
  plugin *b = find (reg, "io.berth.content.v1", "cycle-b");
  plugin *c = find (reg, "io.berth.snapshotter.v1", "cycle-c");
  ck_assert_str_eq (plugin_status_name (a->status), "error");
  ck_assert_str_eq (plugin_status_name (b->status), "error");
  ck_assert_str_eq (plugin_status_name (c->status), "error");
  ck_assert_contains (a->error, "dependency cycle");
  ck_assert_contains (a->error, "io.berth.content.v1.cycle-a -> io.berth.content.v1.cycle-b -> io.berth.content.v1.cycle-a");
  ck_assert_contains (b->error, "dependency cycle");
  ck_assert_contains (c->error, "cycle");
  ck_assert_int_eq (count_lines ("init cycle-", NULL), 0);
  ck_assert_int_eq (count_lines ("plugin io.berth.content.v1.cycle-a ", NULL), 1);
  ck_assert_int_eq (count_lines ("plugin io.berth.content.v1.cycle-b ", NULL), 1);
  ck_assert_int_eq (count_lines ("plugin io.berth.snapshotter.v1.cycle-c ", NULL), 1);
  ck_assert_str_eq (plugin_status_name (find (reg, "io.berth.content.v1", "fixture-ok")->status), "ok");
  registry_free (reg);
}
END_TEST

START_TEST (test_missing_dependency_is_an_error_naming_it)
{
  registry *reg = new_registry ();
  load_ok (reg, "missing-dep");
  init_all_ok (reg);
  plugin *p = find (reg, "io.berth.runtime.v1", "missing-dep");
  ck_assert_str_eq (plugin_status_name (p->status), "error");
  ck_assert_contains (p->error, "io.berth.content.v1.does-not-exist");
  const struct logline *l = the_line ("missing-dep");
  ck_assert_int_eq (l->level, BERTH_LOG_ERROR);
  ck_assert_contains (l->msg, "io.berth.content.v1.does-not-exist");
  ck_assert_int_eq (count_lines ("init missing-dep", NULL), 0);
  registry_free (reg);
}
END_TEST

START_TEST (test_disabled_plugin_is_listed_disabled_and_never_inited)
{
  static const char *const disabled[] = { "io.berth.content.v1.fixture-ok", NULL };
  struct plugin_registry_options o = default_options ();
  o.disabled = disabled;
  registry *reg = new_registry_with (&o);
  load_ok (reg, "ok");
  init_all_ok (reg);
  plugin *p = find (reg, "io.berth.content.v1", "fixture-ok");
  ck_assert_str_eq (plugin_status_name (p->status), "disabled");
  ck_assert_int_eq (count_lines ("init fixture-ok", NULL), 0);
  ck_assert_contains (the_line ("fixture-ok")->msg, "disabled");
  registry_free (reg);
  ck_assert_int_eq (count_lines ("fini fixture-ok", NULL), 0);
}
END_TEST

/* ---- required_plugins ----------------------------------------------------- */

START_TEST (test_required_plugin_failure_stops_start_up_with_its_reason)
{
  static const char *const required[] = { "io.berth.content.v1.init-error", NULL };
  struct plugin_registry_options o = default_options ();
  o.required = required;
  registry *reg = new_registry_with (&o);
  load_ok (reg, "ok");
  load_ok (reg, "init-error");
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_lt (registry_init_all (reg, &err), 0);
  ck_assert_ptr_nonnull (err);
  ck_assert_contains (berth_error_message (err), "io.berth.content.v1.init-error");
  ck_assert_contains (berth_error_message (err), "cannot open /dev/berth-fixture");
  /* The others were still inited (and are fini'ed on the way out). */
  ck_assert_str_eq (plugin_status_name (find (reg, "io.berth.content.v1", "fixture-ok")->status), "ok");
  registry_free (reg);
  ck_assert_int_eq (count_lines ("fini fixture-ok", NULL), 1);
}
END_TEST

START_TEST (test_required_plugin_that_is_skipped_also_stops_start_up)
{
  static const char *const required[] = { "io.berth.snapshotter.v1.init-skip", NULL };
  struct plugin_registry_options o = default_options ();
  o.required = required;
  registry *reg = new_registry_with (&o);
  load_ok (reg, "init-skip");
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_lt (registry_init_all (reg, &err), 0);
  ck_assert_contains (berth_error_message (err), "io.berth.snapshotter.v1.init-skip");
  ck_assert_contains (berth_error_message (err), "no /dev/berth-fixture on this host");
  registry_free (reg);
}
END_TEST

START_TEST (test_required_plugin_that_is_not_loaded_stops_start_up)
{
  static const char *const required[] = { "io.berth.content.v1.nowhere", NULL };
  struct plugin_registry_options o = default_options ();
  o.required = required;
  registry *reg = new_registry_with (&o);
  load_ok (reg, "ok");
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_lt (registry_init_all (reg, &err), 0);
  ck_assert_contains (berth_error_message (err), "io.berth.content.v1.nowhere");
  ck_assert_contains (berth_error_message (err), "not loaded");
  registry_free (reg);
}
END_TEST

START_TEST (test_required_plugin_that_is_ok_lets_start_up_continue)
{
  static const char *const required[] = { "io.berth.content.v1.fixture-ok", NULL };
  struct plugin_registry_options o = default_options ();
  o.required = required;
  registry *reg = new_registry_with (&o);
  load_ok (reg, "ok");
  load_ok (reg, "init-error"); /* not required: does not matter */
  init_all_ok (reg);
  registry_free (reg);
}
END_TEST

/* ---- a whole plugin directory -------------------------------------------- */

static const struct
{
  const char *type, *id, *status;
} expected_in_dir[] = {
  { "io.berth.content.v1", "fixture-ok", "ok" },
  { "io.berth.snapshotter.v1", "frozen-1.0", "ok" },
  { "io.berth.content.v1", "order-a", "ok" },
  { "io.berth.snapshotter.v1", "order-b", "ok" },
  { "io.berth.runtime.v1", "order-c", "ok" },
  { "io.berth.content.v1", "dup", "ok" },
  { "io.berth.content.v1", "init-error", "error" },
  { "io.berth.snapshotter.v1", "init-skip", "skip" },
  { "io.berth.content.v1", "cycle-a", "error" },
  { "io.berth.content.v1", "cycle-b", "error" },
  { "io.berth.snapshotter.v1", "cycle-c", "error" },
  { "io.berth.runtime.v1", "missing-dep", "error" },
};

START_TEST (test_a_directory_of_every_fixture_loads_what_it_can_and_keeps_going)
{
  static const char *const names[] = { "bad-desc", "bad-magic", "cycle", "duplicate-id", "frozen-1.0",
                                       "init-error", "init-skip", "missing-dep", "newer-minor", "no-entry",
                                       "ok", "older-major", "order", "undefined-symbol" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    {
      _cleanup_free_ char *as = NULL;
      ck_assert_int_ge (asprintf (&as, "%s.so", names[i]), 0);
      free (copy_fixture (names[i], as, 0644));
    }
  free (copy_fixture ("ok", "README", 0644));   /* junk: ignored with a warning */
  free (copy_fixture ("ok", "ok.la", 0644));    /* libtool's file beside each plugin: ignored */

  struct plugin_registry_options o = default_options ();
  o.cfg = cfg_greeting;
  registry *reg = new_registry_with (&o);
  _cleanup_error_ berth_error *err = NULL;
  ck_assert_int_lt (registry_load_dir (reg, tmpdir, &err), 0); /* the first refusal, for the caller */
  ck_assert_contains (berth_error_message (err), "bad-desc.so");
  init_all_ok (reg);

  ck_assert_uint_eq (registry_count (reg), sizeof expected_in_dir / sizeof expected_in_dir[0]);
  for (size_t i = 0; i < sizeof expected_in_dir / sizeof expected_in_dir[0]; i++)
    {
      plugin *p = find (reg, expected_in_dir[i].type, expected_in_dir[i].id);
      ck_assert_msg (strcmp (plugin_status_name (p->status), expected_in_dir[i].status) == 0,
                     "%s is %s (%s), expected %s", p->full_name, plugin_status_name (p->status),
                     p->error ? p->error : "", expected_in_dir[i].status);
    }
  /* Each refused file said so once; the junk once, as a warning. */
  const char *refused[] = { "bad-magic.so", "newer-minor.so", "older-major.so", "no-entry.so",
                            "undefined-symbol.so" };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    ck_assert_msg (count_lines (refused[i], NULL) == 1, "%s: %zu lines", refused[i], count_lines (refused[i], NULL));
  ck_assert_int_eq (count_lines ("bad-desc.so", NULL), 4);
  ck_assert_int_eq (the_line ("README")->level, BERTH_LOG_WARNING);
  ck_assert_int_eq (count_lines ("ok.la", NULL), 0);
  /* Name order: a, b, c of order.so still init in dependency order. */
  ck_assert_int_lt (line_index ("init order-a"), line_index ("init order-c"));
  registry_free (reg);
}
END_TEST

static Suite *
registry_suite (void)
{
  Suite *s = suite_create ("registry");
  TCase *tc = tcase_create ("abi-1.0");
  tcase_add_test (tc, test_frozen_abi_1_0_plugin_loads_inits_and_uses_the_host_table);
  tcase_add_test (tc, test_frozen_abi_1_0_methods_are_called_through_the_host_copy);
  tcase_add_test (tc, test_declared_default_is_used_when_the_config_does_not_set_the_key);
  suite_add_tcase (s, tc);

  tc = tcase_create ("load");
  tcase_add_test (tc, test_wrong_magic_is_refused_with_one_line_naming_the_file);
  tcase_add_test (tc, test_newer_minor_is_refused_naming_both_versions);
  tcase_add_test (tc, test_older_major_is_refused_naming_both_versions);
  tcase_add_test (tc, test_missing_entry_symbol_is_refused_naming_the_symbol);
  tcase_add_test (tc, test_undefined_symbol_fails_at_dlopen_naming_file_and_symbol);
  tcase_add_test (tc, test_group_writable_file_is_refused_before_dlopen);
  tcase_add_test (tc, test_world_writable_file_is_refused_before_dlopen);
  if (geteuid () == 0)
    tcase_add_test (tc, test_file_not_owned_by_root_is_refused_when_checking_owner);
  else
    fprintf (stderr, "SKIP test_file_not_owned_by_root_is_refused_when_checking_owner: needs root to chown\n");
  tcase_add_test (tc, test_each_bad_descriptor_of_a_file_is_refused_with_its_own_line);
  tcase_add_test (tc, test_duplicate_id_in_one_file_keeps_the_first);
  tcase_add_test (tc, test_duplicate_id_across_files_names_both_files);
  suite_add_tcase (s, tc);

  tc = tcase_create ("init");
  tcase_add_test (tc, test_init_error_marks_the_plugin_error_and_others_still_init);
  tcase_add_test (tc, test_init_skip_is_a_skip_with_its_reason_not_an_error);
  tcase_add_test (tc, test_init_follows_requires_and_fini_runs_in_reverse);
  tcase_add_test (tc, test_dependency_cycle_marks_its_members_error);
  tcase_add_test (tc, test_missing_dependency_is_an_error_naming_it);
  tcase_add_test (tc, test_disabled_plugin_is_listed_disabled_and_never_inited);
  suite_add_tcase (s, tc);

  tc = tcase_create ("required");
  tcase_add_test (tc, test_required_plugin_failure_stops_start_up_with_its_reason);
  tcase_add_test (tc, test_required_plugin_that_is_skipped_also_stops_start_up);
  tcase_add_test (tc, test_required_plugin_that_is_not_loaded_stops_start_up);
  tcase_add_test (tc, test_required_plugin_that_is_ok_lets_start_up_continue);
  suite_add_tcase (s, tc);

  tc = tcase_create ("dir");
  tcase_add_test (tc, test_a_directory_of_every_fixture_loads_what_it_can_and_keeps_going);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  snprintf (workdir, sizeof workdir, "/tmp/berth-test-registry.XXXXXX");
  if (mkdtemp (workdir) == NULL)
    {
      perror ("mkdtemp");
      return EXIT_FAILURE;
    }
  SRunner *sr = srunner_create (registry_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  _cleanup_free_ char *cmd = NULL;
  if (asprintf (&cmd, "rm -rf '%s'", workdir) < 0 || system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", workdir);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
