#include <config.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <berth/config.h>

#include "cleanup.h"
#include "core/config/config.h"
#include "core/config/toml.h"

static const char *const modes[] = { "fast", "safe", NULL };
static const struct berth_config_key k_root
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "root_path", "\"/var/lib/x\"", "where snapshots live");
static const struct berth_config_key k_mode = BERTH_CFG_KEY_CHOICES ("mode", "\"safe\"", "how to sync", modes);
static const struct berth_config_key k_workers = BERTH_CFG_KEY_RANGE ("workers", "4", "parallel workers", 1, 64);
static const struct berth_config_key k_opts
    = BERTH_CFG_KEY (BERTH_CFG_STRING_ARRAY, "mount_options", "[\"ro\", \"noatime\"]", "extra mount options");
static const struct berth_config_key k_ratio = BERTH_CFG_KEY (BERTH_CFG_FLOAT, "ratio", "0.5", "fill ratio");
static const struct berth_config_key k_sync = BERTH_CFG_KEY (BERTH_CFG_BOOL, "sync", "true", "fsync each write");
static const struct berth_config_key k_runtimes = BERTH_CFG_KEY (BERTH_CFG_TABLE, "runtimes", NULL, "runtimes by name");
static const struct berth_config_key k_rt_bin
    = BERTH_CFG_KEY (BERTH_CFG_STRING, "runtimes.*.binary", "\"runc\"", "the runtime's binary");
static const struct berth_config_key k_gc = BERTH_CFG_KEY (BERTH_CFG_INT, "gc.interval", "60", "seconds between runs");
static const struct berth_config_key k_labels = BERTH_CFG_KEY (BERTH_CFG_TABLE, "labels", "{}", "free-form labels");
static const struct berth_config_key k_nodef = BERTH_CFG_KEY (BERTH_CFG_STRING, "socket", NULL, "no default");

static const struct berth_config_key *const snap_keys[]
    = { &k_root, &k_mode, &k_workers, &k_opts, &k_ratio, &k_sync, &k_gc, &k_labels, &k_nodef, NULL };
static const struct berth_config_key *const rt_keys[] = { &k_runtimes, &k_rt_bin, NULL };

static const struct config_plugin_schema schemas[] = {
  { "io.berth.snapshotter.v1.test", snap_keys },
  { "io.berth.runtime.v1.oci", rt_keys },
  { "io.berth.content.v1.local", NULL },
};

static struct berth_config *
load_ok (const char *text)
{
  _cleanup_error_ berth_error *err = NULL;
  struct berth_config *cfg = NULL;
  int r = config_load_string (text, "t.toml", &cfg, &err);
  ck_assert_msg (r == 0, "load failed: %s", err ? berth_error_message (err) : "?");
  return cfg;
}

static void
assert_load_fails (const char *text, const char *expected)
{
  _cleanup_error_ berth_error *err = NULL;
  struct berth_config *cfg = NULL;
  int r = config_load_string (text, "t.toml", &cfg, &err);
  ck_assert_int_eq (r, BERTH_E_INVALID);
  ck_assert_ptr_null (cfg);
  ck_assert_str_eq (berth_error_message (err), expected);
}

START_TEST (test_defaults_are_the_documented_ones)
{
  _cleanup_config_ struct berth_config *cfg = NULL;
  ck_assert_int_eq (config_new_default (&cfg, NULL), 0);
  ck_assert_int_eq (cfg->version, 1);
  ck_assert_str_eq (cfg->root, "/var/lib/berth");
  ck_assert_str_eq (cfg->state, "/run/berth");
  ck_assert_str_eq (cfg->plugin_dirs[0], BERTH_CONFIG_DEFAULT_PLUGIN_DIR);
  ck_assert_ptr_null (cfg->plugin_dirs[1]);
  ck_assert_ptr_null (cfg->disabled_plugins[0]);
  ck_assert_ptr_null (cfg->required_plugins[0]);
  ck_assert_str_eq (cfg->grpc.address, "/run/berth/berth.sock");
  ck_assert_int_eq (cfg->grpc.gid, 0);
  ck_assert_int_eq (cfg->grpc.max_recv_message_size, 16 << 20);
  ck_assert_str_eq (cfg->registry.config_path, "/etc/berth/certs.d");
  ck_assert_int_eq (cfg->registry.max_concurrent_downloads, 3);
  ck_assert_str_eq (cfg->debug.level, "info");
  ck_assert_ptr_null (cfg->plugins);
}
END_TEST

START_TEST (test_the_architecture_example_loads)
{
  _cleanup_config_ struct berth_config *cfg = load_ok (
      "version = 1\nroot = \"/srv/berth\"\nstate = \"/run/b\"\nplugin_dirs = [\"/usr/lib/berth/plugins\"]\n"
      "disabled_plugins = []\nrequired_plugins = [\"io.berth.snapshotter.v1.overlayfs\"]\n"
      "[grpc]\n  address = \"/run/b/b.sock\"\n  gid = 42\n"
      "[plugins.\"io.berth.snapshotter.v1.overlayfs\"]\n  mount_options = []\n"
      "[plugins.\"io.berth.runtime.v1.oci\"]\n  default = \"runc\"\n"
      "  [plugins.\"io.berth.runtime.v1.oci\".runtimes.crun]\n    binary = \"/usr/bin/crun\"\n"
      "[registry]\n  config_path = \"/etc/b/certs.d\"\n  max_concurrent_downloads = 5\n[debug]\nlevel = \"debug\"\n");
  ck_assert_str_eq (cfg->path, "t.toml");
  ck_assert_str_eq (cfg->root, "/srv/berth");
  ck_assert_str_eq (cfg->state, "/run/b");
  ck_assert_str_eq (cfg->plugin_dirs[0], "/usr/lib/berth/plugins");
  ck_assert_str_eq (cfg->required_plugins[0], "io.berth.snapshotter.v1.overlayfs");
  ck_assert_str_eq (cfg->grpc.address, "/run/b/b.sock");
  ck_assert_int_eq (cfg->grpc.gid, 42);
  ck_assert_str_eq (cfg->registry.config_path, "/etc/b/certs.d");
  ck_assert_int_eq (cfg->registry.max_concurrent_downloads, 5);
  ck_assert_str_eq (cfg->debug.level, "debug");
  ck_assert_ptr_nonnull (toml_table_get (cfg->plugins, "io.berth.runtime.v1.oci"));
  /* Untouched keys keep their defaults. */
  ck_assert_str_eq (cfg->grpc.address, "/run/b/b.sock");
  ck_assert_int_eq (cfg->grpc.max_recv_message_size, 16 << 20);
}
END_TEST

START_TEST (test_unknown_top_level_keys_are_errors_with_position)
{
  assert_load_fails ("version = 1\n  colour = \"blue\"\n", "t.toml:2:3: unknown key `colour`");
  assert_load_fails ("[grpc]\naddress = \"/x\"\nport = 1\n", "t.toml:3:1: unknown key `grpc.port`");
  assert_load_fails ("[registry]\nmirrors = 1\n", "t.toml:2:1: unknown key `registry.mirrors`");
  assert_load_fails ("[debug]\nlevel = \"info\"\nformat = \"json\"\n", "t.toml:3:1: unknown key `debug.format`");
}
END_TEST

START_TEST (test_wrong_types_are_errors_with_position)
{
  assert_load_fails ("root = 5\n", "t.toml:1:8: wrong type for `root`: expected string, found integer");
  assert_load_fails ("plugin_dirs = \"/x\"\n",
                     "t.toml:1:15: wrong type for `plugin_dirs`: expected array of strings, found string");
  assert_load_fails ("plugin_dirs = [\"/x\", 2]\n",
                     "t.toml:1:22: wrong type for `plugin_dirs[1]`: expected string, found integer");
  assert_load_fails ("grpc = 1\n", "t.toml:1:8: wrong type for `grpc`: expected table, found integer");
  assert_load_fails ("[grpc]\ngid = \"wheel\"\n", "t.toml:2:7: wrong type for `grpc.gid`: expected integer, found string");
  assert_load_fails ("[plugins]\nx = 1\n", "t.toml:2:5: wrong type for `plugins.\"x\"`: expected table, found integer");
}
END_TEST

START_TEST (test_bad_values_are_errors_with_position)
{
  assert_load_fails ("root = \"relative\"\n", "t.toml:1:8: bad value for `root`: must be an absolute path");
  assert_load_fails ("[registry]\nmax_concurrent_downloads = 0\n",
                     "t.toml:2:28: bad value for `registry.max_concurrent_downloads`: must be between 1 and 1024, found 0");
  assert_load_fails ("[debug]\nlevel = \"loud\"\n",
                     "t.toml:2:9: bad value for `debug.level`: must be one of debug, info, warn, error");
}
END_TEST

START_TEST (test_newer_versions_are_refused_clearly)
{
  assert_load_fails ("version = 2\n",
                     "t.toml:1:11: config version 2 is newer than this berthd understands (version 1): upgrade berthd");
  assert_load_fails ("version = 0\n", "t.toml:1:11: bad value for `version`: 0 (this berthd reads version 1)");
  assert_load_fails ("version = \"1\"\n", "t.toml:1:11: wrong type for `version`: expected integer, found string");
}
END_TEST

START_TEST (test_syntax_errors_name_file_line_and_column)
{
  assert_load_fails ("version = 1\nroot = \"/x\"\nstate \"/y\"\n", "t.toml:3:7: expected '=' after key, found '\"'");
  assert_load_fails ("[grpc]\ngid = 1\n[grpc]\n", "t.toml:3:1: table `grpc` is already defined at line 1, column 2");
  assert_load_fails ("[grpc]\nuid = 99999999999999999999\n",
                     "t.toml:2:7: integer `99999999999999999999` does not fit in 64 bits");
}
END_TEST

START_TEST (test_missing_file_is_not_found)
{
  _cleanup_error_ berth_error *err = NULL;
  struct berth_config *cfg = NULL;
  ck_assert_int_eq (config_load_file ("/nonexistent/berth/config.toml", &cfg, &err), BERTH_E_NOTFOUND);
  ck_assert_ptr_null (cfg);
  ck_assert_str_eq (berth_error_message (err), "config file /nonexistent/berth/config.toml does not exist");
}
END_TEST

START_TEST (test_files_load_and_name_themselves_in_errors)
{
  char path[] = "/tmp/test-config-XXXXXX";
  int fd = mkstemp (path);
  ck_assert_int_ge (fd, 0);
  const char text[] = "root = \"/a\"\n[grpc]\nuid = 7\n";
  ck_assert_int_eq (write (fd, text, sizeof text - 1), (ssize_t) sizeof text - 1);
  close (fd);
  _cleanup_config_ struct berth_config *cfg = NULL;
  ck_assert_int_eq (config_load_file (path, &cfg, NULL), 0);
  ck_assert_str_eq (cfg->path, path);
  ck_assert_str_eq (cfg->root, "/a");
  ck_assert_int_eq (cfg->grpc.uid, 7);

  FILE *f = fopen (path, "w");
  fputs ("root = \"/a\"\nroot = \"/b\"\n", f);
  fclose (f);
  _cleanup_error_ berth_error *err = NULL;
  struct berth_config *bad = NULL;
  ck_assert_int_eq (config_load_file (path, &bad, &err), BERTH_E_INVALID);
  _cleanup_free_ char *expected = NULL;
  ck_assert_int_ge (asprintf (&expected, "%s:2:1: duplicate key `root` (first defined at line 1, column 1)", path), 0);
  ck_assert_str_eq (berth_error_message (err), expected);
  unlink (path);
}
END_TEST

static int
check (const char *text, char ***ret_problems)
{
  _cleanup_config_ struct berth_config *cfg = load_ok (text);
  return config_check (cfg, schemas, ARRAY_SIZE (schemas), ret_problems);
}

START_TEST (test_check_accepts_declared_keys)
{
  _cleanup_strv_ char **problems = NULL;
  int n = check ("[plugins.\"io.berth.snapshotter.v1.test\"]\nroot_path = \"/x\"\nmode = \"fast\"\nworkers = 64\n"
                 "mount_options = [\"a\"]\nratio = 1\nsync = false\ngc.interval = 5\nlabels = { any = 1, thing = \"x\" }\n"
                 "[plugins.\"io.berth.runtime.v1.oci\".runtimes.crun]\nbinary = \"/usr/bin/crun\"\n"
                 "[plugins.\"io.berth.runtime.v1.oci\".runtimes.runc]\nbinary = \"/usr/bin/runc\"\n"
                 "[plugins.\"io.berth.content.v1.local\"]\n",
                 &problems);
  ck_assert_msg (n == 0, "%s", problems && problems[0] ? problems[0] : "");
  ck_assert_ptr_nonnull (problems);
  ck_assert_ptr_null (problems[0]);
}
END_TEST

START_TEST (test_check_reports_every_problem_with_position)
{
  _cleanup_strv_ char **p = NULL;
  int n = check ("[plugins.\"io.berth.snapshotter.v1.test\"]\n"
                 "foo = 1\n"
                 "root_path = 5\n"
                 "mode = \"slow\"\n"
                 "workers = 65\n"
                 "mount_options = [\"a\", 1]\n"
                 "gc.period = 1\n"
                 "[plugins.\"io.berth.runtime.v1.oci\".runtimes.crun]\n"
                 "binary = true\n"
                 "path = \"/x\"\n"
                 "[plugins.\"io.berth.nope.v1.x\"]\n"
                 "[plugins.\"io.berth.content.v1.local\"]\n"
                 "anything = 1\n",
                 &p);
  ck_assert_int_eq (n, 10);
  ck_assert_str_eq (p[0], "t.toml:2:1: unknown key `plugins.\"io.berth.snapshotter.v1.test\".foo`");
  ck_assert_str_eq (p[1], "t.toml:3:13: wrong type for `plugins.\"io.berth.snapshotter.v1.test\".root_path`: "
                          "expected string, found integer");
  ck_assert_str_eq (p[2], "t.toml:4:8: bad value for `plugins.\"io.berth.snapshotter.v1.test\".mode`: "
                          "must be one of fast, safe, found \"slow\"");
  ck_assert_str_eq (p[3], "t.toml:5:11: bad value for `plugins.\"io.berth.snapshotter.v1.test\".workers`: "
                          "must be between 1 and 64, found 65");
  ck_assert_str_eq (p[4], "t.toml:6:23: wrong type for `plugins.\"io.berth.snapshotter.v1.test\".mount_options[1]`: "
                          "expected string, found integer");
  ck_assert_str_eq (p[5], "t.toml:7:4: unknown key `plugins.\"io.berth.snapshotter.v1.test\".gc.period`");
  ck_assert_str_eq (p[6], "t.toml:9:10: wrong type for `plugins.\"io.berth.runtime.v1.oci\".runtimes.crun.binary`: "
                          "expected string, found boolean");
  ck_assert_str_eq (p[7], "t.toml:10:1: unknown key `plugins.\"io.berth.runtime.v1.oci\".runtimes.crun.path`");
  ck_assert_str_eq (p[8], "t.toml:11:10: unknown plugin `io.berth.nope.v1.x`");
  ck_assert_str_eq (p[9], "t.toml:13:1: unknown key `plugins.\"io.berth.content.v1.local\".anything`");
  ck_assert_ptr_null (p[10]);
}
END_TEST

START_TEST (test_check_without_problem_list_still_counts)
{
  ck_assert_int_eq (check ("[plugins.\"io.berth.runtime.v1.oci\"]\nruntimes = 1\n", NULL), 1);
  _cleanup_config_ struct berth_config *cfg = NULL;
  ck_assert_int_eq (config_new_default (&cfg, NULL), 0);
  ck_assert_int_eq (config_check (cfg, schemas, ARRAY_SIZE (schemas), NULL), 0);
}
END_TEST

START_TEST (test_plugin_get_returns_values_and_defaults)
{
  _cleanup_config_ struct berth_config *cfg
      = load_ok ("[plugins.\"io.berth.snapshotter.v1.test\"]\nroot_path = \"/x\"\nratio = 2\n"
                 "mount_options = [\"a\", \"b\"]\n"
                 "[plugins.\"io.berth.runtime.v1.oci\".runtimes.crun]\nbinary = \"/usr/bin/crun\"\n"
                 "[plugins.\"io.berth.runtime.v1.oci\".runtimes.kata]\n");
  const char *snap = "io.berth.snapshotter.v1.test", *oci = "io.berth.runtime.v1.oci";
  struct berth_cfg_value v;
  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "root_path", &v), 0);
  ck_assert_uint_eq (v.size, sizeof v);
  ck_assert_int_eq (v.type, BERTH_CFG_STRING);
  ck_assert_str_eq (v.s, "/x");
  ck_assert_int_eq (v.is_default, 0);

  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "ratio", &v), 0);
  ck_assert_int_eq (v.type, BERTH_CFG_FLOAT);
  ck_assert_double_eq (v.f, 2.0);

  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "mount_options", &v), 0);
  ck_assert_uint_eq (v.n, 2);
  ck_assert_str_eq (v.v[0], "a");
  ck_assert_str_eq (v.v[1], "b");
  ck_assert_ptr_null (v.v[2]);

  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "workers", &v), 0);
  ck_assert_int_eq (v.type, BERTH_CFG_INT);
  ck_assert_int_eq (v.i, 4);
  ck_assert_int_eq (v.is_default, 1);

  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "gc.interval", &v), 0);
  ck_assert_int_eq (v.i, 60);
  ck_assert_int_eq (v.is_default, 1);

  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "sync", &v), 0);
  ck_assert_int_eq (v.b, 1);

  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "socket", &v), BERTH_E_NOTFOUND);
  ck_assert_int_eq (config_plugin_get (cfg, snap, snap_keys, "undeclared", &v), BERTH_E_NOTFOUND);

  ck_assert_int_eq (config_plugin_get (cfg, oci, rt_keys, "runtimes", &v), 0);
  ck_assert_int_eq (v.type, BERTH_CFG_TABLE);
  ck_assert_uint_eq (v.n, 2);
  ck_assert_str_eq (v.v[0], "crun");
  ck_assert_str_eq (v.v[1], "kata");

  ck_assert_int_eq (config_plugin_get (cfg, oci, rt_keys, "runtimes.crun.binary", &v), 0);
  ck_assert_str_eq (v.s, "/usr/bin/crun");
  ck_assert_int_eq (config_plugin_get (cfg, oci, rt_keys, "runtimes.kata.binary", &v), 0);
  ck_assert_str_eq (v.s, "runc");
  ck_assert_int_eq (v.is_default, 1);

  /* Defaults of a plugin without a table at all. */
  ck_assert_int_eq (config_plugin_get (cfg, "io.berth.snapshotter.v1.other", snap_keys, "mode", &v), 0);
  ck_assert_str_eq (v.s, "safe");
}
END_TEST

START_TEST (test_plugin_get_refuses_values_of_the_wrong_type)
{
  _cleanup_config_ struct berth_config *cfg = load_ok ("[plugins.\"io.berth.snapshotter.v1.test\"]\nworkers = \"many\"\n");
  struct berth_cfg_value v;
  ck_assert_int_eq (config_plugin_get (cfg, "io.berth.snapshotter.v1.test", snap_keys, "workers", &v),
                    BERTH_E_INVALID);
}
END_TEST

START_TEST (test_plugin_get_pointers_outlive_later_calls)
{
  _cleanup_config_ struct berth_config *cfg = NULL;
  ck_assert_int_eq (config_new_default (&cfg, NULL), 0);
  struct berth_cfg_value a, b;
  ck_assert_int_eq (config_plugin_get (cfg, "p.x", snap_keys, "mount_options", &a), 0);
  ck_assert_int_eq (config_plugin_get (cfg, "p.x", snap_keys, "mount_options", &b), 0);
  ck_assert_int_eq (config_plugin_get (cfg, "p.y", snap_keys, "root_path", &b), 0);
  ck_assert_uint_eq (a.n, 2);
  ck_assert_str_eq (a.v[0], "ro");
  ck_assert_str_eq (a.v[1], "noatime");
  ck_assert_str_eq (b.s, "/var/lib/x");
}
END_TEST

START_TEST (test_default_text_loads_back_and_passes_the_check)
{
  _cleanup_free_ char *text = config_default_text (schemas, ARRAY_SIZE (schemas));
  ck_assert_ptr_nonnull (text);
  ck_assert_ptr_nonnull (strstr (text, "# where snapshots live\n  root_path = \"/var/lib/x\"\n"));
  ck_assert_ptr_nonnull (strstr (text, "[plugins.\"io.berth.runtime.v1.oci\"]\n"));
  ck_assert_ptr_nonnull (strstr (text, "[plugins.\"io.berth.content.v1.local\"]\n"));
  ck_assert_ptr_nonnull (strstr (text, "\nversion = 1\n"));
  ck_assert_ptr_nonnull (strstr (text, "# Layers downloaded in parallel"));

  _cleanup_error_ berth_error *err = NULL;
  _cleanup_config_ struct berth_config *cfg = NULL;
  int r = config_load_string (text, "default.toml", &cfg, &err);
  ck_assert_msg (r == 0, "%s\n%s", err ? berth_error_message (err) : "", text);
  _cleanup_strv_ char **problems = NULL;
  int n = config_check (cfg, schemas, ARRAY_SIZE (schemas), &problems);
  ck_assert_msg (n == 0, "%s\n%s", problems && problems[0] ? problems[0] : "", text);

  /* Written values equal the defaults a plugin would get anyway. */
  struct berth_cfg_value v;
  ck_assert_int_eq (config_plugin_get (cfg, "io.berth.snapshotter.v1.test", snap_keys, "workers", &v), 0);
  ck_assert_int_eq (v.is_default, 0);
  ck_assert_int_eq (v.i, 4);
  ck_assert_int_eq (config_plugin_get (cfg, "io.berth.snapshotter.v1.test", snap_keys, "gc.interval", &v), 0);
  ck_assert_int_eq (v.i, 60);

  _cleanup_config_ struct berth_config *d = NULL;
  ck_assert_int_eq (config_new_default (&d, NULL), 0);
  ck_assert_str_eq (cfg->root, d->root);
  ck_assert_str_eq (cfg->plugin_dirs[0], d->plugin_dirs[0]);
  ck_assert_str_eq (cfg->grpc.address, d->grpc.address);
  ck_assert_int_eq (cfg->grpc.max_recv_message_size, d->grpc.max_recv_message_size);
  ck_assert_str_eq (cfg->debug.level, d->debug.level);
}
END_TEST

START_TEST (test_default_text_without_plugins_loads_back)
{
  _cleanup_free_ char *text = config_default_text (NULL, 0);
  _cleanup_config_ struct berth_config *cfg = load_ok (text);
  ck_assert_int_eq (config_check (cfg, NULL, 0, NULL), 0);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("config");
  TCase *tc = tcase_create ("load");
  tcase_add_test (tc, test_defaults_are_the_documented_ones);
  tcase_add_test (tc, test_the_architecture_example_loads);
  tcase_add_test (tc, test_unknown_top_level_keys_are_errors_with_position);
  tcase_add_test (tc, test_wrong_types_are_errors_with_position);
  tcase_add_test (tc, test_bad_values_are_errors_with_position);
  tcase_add_test (tc, test_newer_versions_are_refused_clearly);
  tcase_add_test (tc, test_syntax_errors_name_file_line_and_column);
  tcase_add_test (tc, test_missing_file_is_not_found);
  tcase_add_test (tc, test_files_load_and_name_themselves_in_errors);
  suite_add_tcase (s, tc);
  TCase *tc2 = tcase_create ("plugins");
  tcase_add_test (tc2, test_check_accepts_declared_keys);
  tcase_add_test (tc2, test_check_reports_every_problem_with_position);
  tcase_add_test (tc2, test_check_without_problem_list_still_counts);
  tcase_add_test (tc2, test_plugin_get_returns_values_and_defaults);
  tcase_add_test (tc2, test_plugin_get_refuses_values_of_the_wrong_type);
  tcase_add_test (tc2, test_plugin_get_pointers_outlive_later_calls);
  tcase_add_test (tc2, test_default_text_loads_back_and_passes_the_check);
  tcase_add_test (tc2, test_default_text_without_plugins_loads_back);
  suite_add_tcase (s, tc2);
  SRunner *sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? 1 : 0;
}
