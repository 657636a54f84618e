/* lib/ocispec.c: spec generation rules (Docker's defaults), the seccomp
 * profile conversion (the real Debian profile and hand-written Docker-format
 * ones), the CLI flag parsers, hostile inputs; and, as root with runc and
 * busybox-static installed, a generated spec run by the real runc (seccomp,
 * capabilities, limits and masked paths checked from inside). */
#include <config.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-c/json.h>

#include "check-main.h"
#include "cleanup.h"
#include "ocispec.h"

static char tmpdir[64];

static inline void
json_putp (json_object **o)
{
  if (*o)
    json_object_put (*o);
}
#define _cleanup_json_ _cleanup_ (json_putp)

static void
setup (void)
{
  snprintf (tmpdir, sizeof tmpdir, "/tmp/berth-ocispec.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (tmpdir));
}

static void
teardown (void)
{
  char cmd[128];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", tmpdir);
}

static char *
path_in (const char *name)
{
  char *p = NULL;
  ck_assert_int_ge (asprintf (&p, "%s/%s", tmpdir, name), 0);
  return p;
}

static void
write_file (const char *path, const char *content)
{
  FILE *f = fopen (path, "w");
  ck_assert_ptr_nonnull (f);
  fputs (content, f);
  ck_assert_int_eq (fclose (f), 0);
}

static json_object *
parse (const char *text)
{
  json_object *o = json_tokener_parse (text);
  ck_assert_msg (o != NULL, "fixture is not JSON: %s", text);
  return o;
}

/* Fixtures: image config documents as registries serve them. */
static const char IMG_BUSYBOX[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{"
                                  "\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],"
                                  "\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
static const char IMG_REDIS[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{"
                                "\"User\":\"redis\",\"Env\":[\"REDIS_VERSION=7.0\",\"GOSU=1.16\"],"
                                "\"Entrypoint\":[\"docker-entrypoint.sh\"],\"Cmd\":[\"redis-server\"],"
                                "\"WorkingDir\":\"/data\",\"ExposedPorts\":{\"6379/tcp\":{}}}}";
static const char IMG_EMPTY[] = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":null,"
                                "\"Entrypoint\":null,\"Env\":null}}";

/* Generate with the default profile unless the test says otherwise. */
static json_object *
gen (const char *img, const struct ocispec_opts *o)
{
  _cleanup_error_ berth_error *err = NULL;
  json_object *ic = img ? parse (img) : NULL;
  json_object *spec = ocispec_generate (ic, o, &err);
  ck_assert_msg (spec != NULL, "generate failed: %s", err ? err->msg : "?");
  if (ic)
    json_object_put (ic);
  return spec;
}

/* Expect failure; returns the message (static buffer). */
static const char *
gen_fail (const char *img, const struct ocispec_opts *o, int code)
{
  static char msg[1024];
  _cleanup_error_ berth_error *err = NULL;
  json_object *ic = img ? parse (img) : NULL;
  json_object *spec = ocispec_generate (ic, o, &err);
  ck_assert_msg (spec == NULL, "generate succeeded: %s", spec ? json_object_to_json_string (spec) : "");
  ck_assert_ptr_nonnull (err);
  ck_assert_int_eq (err->code, code);
  snprintf (msg, sizeof msg, "%s", err->msg);
  if (ic)
    json_object_put (ic);
  return msg;
}

/* at (spec, "process.args") */
static json_object *
at (json_object *o, const char *path)
{
  char buf[256];
  snprintf (buf, sizeof buf, "%s", path);
  for (char *save = NULL, *t = strtok_r (buf, ".", &save); t; t = strtok_r (NULL, ".", &save))
    {
      if (o == NULL)
        return NULL;
      json_object *next = NULL;
      if (json_object_is_type (o, json_type_array))
        next = json_object_array_get_idx (o, atoi (t));
      else if (!json_object_object_get_ex (o, t, &next))
        return NULL;
      o = next;
    }
  return o;
}

static const char *
str_at (json_object *o, const char *path)
{
  json_object *v = at (o, path);
  return v ? json_object_get_string (v) : NULL;
}

/* The array at path, joined with ' '. */
static const char *
joined (json_object *o, const char *path)
{
  static char buf[8192];
  json_object *a = at (o, path);
  buf[0] = 0;
  if (a == NULL)
    return "(none)";
  for (size_t i = 0; i < json_object_array_length (a); i++)
    {
      if (i)
        strncat (buf, " ", sizeof buf - strlen (buf) - 1);
      strncat (buf, json_object_get_string (json_object_array_get_idx (a, i)), sizeof buf - strlen (buf) - 1);
    }
  return buf;
}

static bool
has_str (json_object *a, const char *s)
{
  for (size_t i = 0; a && i < json_object_array_length (a); i++)
    if (strcmp (json_object_get_string (json_object_array_get_idx (a, i)), s) == 0)
      return true;
  return false;
}

static json_object *
mount_at (json_object *spec, const char *dest)
{
  json_object *m = at (spec, "mounts");
  json_object *found = NULL;
  int count = 0;
  for (size_t i = 0; i < json_object_array_length (m); i++)
    if (strcmp (str_at (json_object_array_get_idx (m, i), "destination"), dest) == 0)
      {
        found = json_object_array_get_idx (m, i);
        count++;
      }
  ck_assert_int_le (count, 1);
  return found;
}

static bool
has_ns (json_object *spec, const char *type)
{
  json_object *ns = at (spec, "linux.namespaces");
  for (size_t i = 0; i < json_object_array_length (ns); i++)
    if (strcmp (str_at (json_object_array_get_idx (ns, i), "type"), type) == 0)
      return true;
  return false;
}

/* The action of the first argument-free rule naming syscall, NULL if none;
 * *n_rules counts every rule naming it. */
static const char *
sc_action (json_object *seccomp, const char *syscall, int *n_rules)
{
  json_object *rules = at (seccomp, "syscalls");
  const char *first = NULL;
  int n = 0;
  for (size_t i = 0; rules && i < json_object_array_length (rules); i++)
    {
      json_object *r = json_object_array_get_idx (rules, i);
      if (!has_str (at (r, "names"), syscall))
        continue;
      n++;
      if (first == NULL && at (r, "args") == NULL)
        first = str_at (r, "action");
    }
  if (n_rules)
    *n_rules = n;
  return first;
}

/* ---- process ---- */

START_TEST (test_cmd_and_entrypoint_resolve_as_docker_does)
{
  json_object *s = gen (IMG_REDIS, NULL);
  ck_assert_str_eq (joined (s, "process.args"), "docker-entrypoint.sh redis-server");
  json_object_put (s);

  const char *args[] = { "redis-cli", "ping", NULL };
  struct ocispec_opts o = { .args = args };
  s = gen (IMG_REDIS, &o);
  ck_assert_str_eq (joined (s, "process.args"), "docker-entrypoint.sh redis-cli ping");
  json_object_put (s);

  /* --entrypoint drops the image's Cmd */
  const char *ep[] = { "/bin/true", NULL };
  struct ocispec_opts o2 = { .entrypoint = ep, .entrypoint_set = true };
  s = gen (IMG_REDIS, &o2);
  ck_assert_str_eq (joined (s, "process.args"), "/bin/true");
  json_object_put (s);

  /* --entrypoint "" with a command: the command alone */
  const char *cmd[] = { "sh", "-c", "echo hi", NULL };
  struct ocispec_opts o3 = { .entrypoint_set = true, .args = cmd };
  s = gen (IMG_REDIS, &o3);
  ck_assert_str_eq (joined (s, "process.args"), "sh -c echo hi");
  json_object_put (s);

  s = gen (IMG_BUSYBOX, NULL);
  ck_assert_str_eq (joined (s, "process.args"), "sh");
  json_object_put (s);
}
END_TEST

START_TEST (test_no_cmd_and_no_entrypoint_is_a_clear_error)
{
  ck_assert_str_eq (gen_fail (IMG_EMPTY, NULL, BERTH_E_INVALID), "image has no Cmd or Entrypoint; give a command");
  ck_assert_str_eq (gen_fail (NULL, NULL, BERTH_E_INVALID), "image has no Cmd or Entrypoint; give a command");
  struct ocispec_opts o = { .entrypoint_set = true };
  ck_assert_str_eq (gen_fail (IMG_REDIS, &o, BERTH_E_INVALID), "image has no Cmd or Entrypoint; give a command");
  const char *empty[] = { "", NULL };
  struct ocispec_opts o2 = { .args = empty };
  ck_assert_str_eq (gen_fail (IMG_EMPTY, &o2, BERTH_E_INVALID), "the command is an empty string");
}
END_TEST

START_TEST (test_env_merges_in_docker_order_with_a_default_path)
{
  const char *args[] = { "x", NULL };
  const char *env[] = { "GOSU=override", "NEW=1", "REDIS_VERSION", NULL };
  struct ocispec_opts o = { .args = args, .env = env, .hostname = "web1", .tty = true };
  json_object *s = gen (IMG_REDIS, &o);
  ck_assert_str_eq (joined (s, "process.env"),
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=web1 TERM=xterm "
                    "GOSU=override NEW=1");
  json_object_put (s);

  /* the image's PATH replaces the default in place */
  const char *img = "{\"config\":{\"Env\":[\"A=1\",\"PATH=/opt/bin\"],\"Cmd\":[\"x\"]}}";
  s = gen (img, NULL);
  ck_assert_str_eq (joined (s, "process.env"), "PATH=/opt/bin A=1");
  json_object_put (s);

  const char *bad[] = { "=oops", NULL };
  struct ocispec_opts o2 = { .args = args, .env = bad };
  ck_assert_str_eq (gen_fail (IMG_REDIS, &o2, BERTH_E_INVALID), "env \"=oops\": no variable name");
}
END_TEST

START_TEST (test_workdir_defaults_to_root_and_must_be_absolute)
{
  json_object *s = gen (IMG_BUSYBOX, NULL);
  ck_assert_str_eq (str_at (s, "process.cwd"), "/");
  json_object_put (s);
  s = gen (IMG_REDIS, NULL);
  ck_assert_str_eq (str_at (s, "process.cwd"), "/data");
  json_object_put (s);
  struct ocispec_opts o = { .workdir = "/srv" };
  s = gen (IMG_REDIS, &o);
  ck_assert_str_eq (str_at (s, "process.cwd"), "/srv");
  json_object_put (s);
  struct ocispec_opts o2 = { .workdir = "srv" };
  ck_assert_str_eq (gen_fail (IMG_REDIS, &o2, BERTH_E_INVALID), "working directory \"srv\" is not an absolute path");
  ck_assert_str_eq (gen_fail ("{\"config\":{\"Cmd\":[\"x\"],\"WorkingDir\":\"rel\"}}", NULL, BERTH_E_INVALID),
                    "image config: working directory \"rel\" is not an absolute path");
}
END_TEST

START_TEST (test_numeric_user_is_direct_and_a_name_becomes_an_annotation)
{
  struct ocispec_opts o = { .user = "1000:100" };
  json_object *s = gen (IMG_BUSYBOX, &o);
  ck_assert_int_eq (json_object_get_int (at (s, "process.user.uid")), 1000);
  ck_assert_int_eq (json_object_get_int (at (s, "process.user.gid")), 100);
  ck_assert_ptr_null (at (s, "annotations.io.berth.user"));
  ck_assert_ptr_null (json_object_object_get (at (s, "annotations"), "io.berth.user"));
  json_object_put (s);

  o.user = "1000";
  s = gen (IMG_BUSYBOX, &o);
  ck_assert_int_eq (json_object_get_int (at (s, "process.user.uid")), 1000);
  ck_assert_int_eq (json_object_get_int (at (s, "process.user.gid")), 0);
  json_object_put (s);

  /* the image's User, a name */
  s = gen (IMG_REDIS, NULL);
  ck_assert_str_eq (json_object_get_string (json_object_object_get (at (s, "annotations"), "io.berth.user")), "redis");
  json_object_put (s);

  o.user = "nobody:100";
  s = gen (IMG_REDIS, &o);
  ck_assert_str_eq (json_object_get_string (json_object_object_get (at (s, "annotations"), "io.berth.user")),
                    "nobody:100");
  ck_assert_int_eq (json_object_get_int (at (s, "process.user.gid")), 100);
  json_object_put (s);

  o.user = "a b";
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &o, BERTH_E_INVALID),
                    "invalid user \"a b\": expected uid[:gid] or name[:group]");
  o.user = "4294967295";
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &o, BERTH_E_INVALID), "invalid user \"4294967295\": id out of range");
  o.user = "1000:";
  gen_fail (IMG_BUSYBOX, &o, BERTH_E_INVALID);
  ck_assert_str_eq (gen_fail ("{\"config\":{\"Cmd\":[\"x\"],\"User\":\"a/b\"}}", NULL, BERTH_E_INVALID),
                    "image config: User: invalid user \"a/b\": expected uid[:gid] or name[:group]");
}
END_TEST

START_TEST (test_default_capabilities_are_dockers_without_inheritable)
{
  json_object *s = gen (IMG_BUSYBOX, NULL);
  const char *want = "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID "
                     "CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL "
                     "CAP_AUDIT_WRITE";
  ck_assert_str_eq (joined (s, "process.capabilities.bounding"), want);
  ck_assert_str_eq (joined (s, "process.capabilities.effective"), want);
  ck_assert_str_eq (joined (s, "process.capabilities.permitted"), want);
  ck_assert_ptr_null (at (s, "process.capabilities.inheritable"));
  ck_assert_ptr_null (at (s, "process.capabilities.ambient"));
  ck_assert (!json_object_get_boolean (at (s, "process.noNewPrivileges")));
  ck_assert_str_eq (str_at (s, "process.rlimits.0.type"), "RLIMIT_NOFILE");
  ck_assert_int_eq (json_object_get_int (at (s, "process.rlimits.0.hard")), 1024);
  ck_assert_int_eq (json_object_get_int (at (s, "process.rlimits.0.soft")), 1024);
  ck_assert_str_eq (str_at (s, "ociVersion"), "1.0.2");
  ck_assert_str_eq (str_at (s, "root.path"), "rootfs");
  json_object_put (s);
}
END_TEST

START_TEST (test_cap_add_and_drop_follow_tweakcapabilities)
{
  const char *add[] = { "net_admin", "CAP_SYS_ADMIN", NULL };
  const char *drop[] = { "chown", "CAP_NET_RAW", "KILL", NULL };
  struct ocispec_opts o = { .cap_add = add, .cap_drop = drop };
  json_object *s = gen (IMG_BUSYBOX, &o);
  ck_assert_str_eq (joined (s, "process.capabilities.bounding"),
                    "CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_SETGID CAP_SETUID CAP_SETFCAP CAP_SETPCAP "
                    "CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_AUDIT_WRITE CAP_NET_ADMIN CAP_SYS_ADMIN");
  json_object_put (s);

  const char *all[] = { "ALL", NULL };
  const char *kill[] = { "KILL", NULL };
  struct ocispec_opts o2 = { .cap_drop = all, .cap_add = kill };
  s = gen (IMG_BUSYBOX, &o2);
  ck_assert_str_eq (joined (s, "process.capabilities.bounding"), "CAP_KILL");
  json_object_put (s);

  const char *drop_admin[] = { "sys_admin", NULL };
  struct ocispec_opts o3 = { .cap_add = all, .cap_drop = drop_admin };
  s = gen (IMG_BUSYBOX, &o3);
  json_object *b = at (s, "process.capabilities.bounding");
  ck_assert (!has_str (b, "CAP_SYS_ADMIN"));
  ck_assert (has_str (b, "CAP_SYS_MODULE"));
  ck_assert_int_ge (json_object_array_length (b), 36);
  json_object_put (s);

  const char *bogus[] = { "CAP_FLY", NULL };
  struct ocispec_opts o4 = { .cap_add = bogus };
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &o4, BERTH_E_INVALID), "--cap-add: unknown capability: \"CAP_FLY\"");
  const char *numeric[] = { "12", NULL };
  struct ocispec_opts o5 = { .cap_drop = numeric };
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &o5, BERTH_E_INVALID), "--cap-drop: unknown capability: \"12\"");
}
END_TEST

/* ---- mounts, namespaces, linux ---- */

START_TEST (test_default_mounts_masked_and_readonly_paths)
{
  json_object *s = gen (IMG_BUSYBOX, NULL);
  ck_assert_str_eq (str_at (mount_at (s, "/proc"), "type"), "proc");
  ck_assert_str_eq (str_at (mount_at (s, "/dev"), "type"), "tmpfs");
  ck_assert_str_eq (str_at (mount_at (s, "/dev/pts"), "type"), "devpts");
  ck_assert_str_eq (joined (mount_at (s, "/dev/shm"), "options"), "nosuid noexec nodev mode=1777 size=65536k");
  ck_assert_str_eq (str_at (mount_at (s, "/dev/mqueue"), "type"), "mqueue");
  ck_assert (has_str (at (mount_at (s, "/sys"), "options"), "ro"));
  ck_assert_str_eq (str_at (mount_at (s, "/sys/fs/cgroup"), "type"), "cgroup");
  ck_assert (has_str (at (mount_at (s, "/sys/fs/cgroup"), "options"), "ro"));
  ck_assert_int_eq (json_object_array_length (at (s, "mounts")), 7);
  ck_assert (has_str (at (s, "linux.maskedPaths"), "/proc/kcore"));
  ck_assert (has_str (at (s, "linux.maskedPaths"), "/sys/firmware"));
  ck_assert_str_eq (joined (s, "linux.readonlyPaths"), "/proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger");
  ck_assert_str_eq (json_object_get_string (json_object_object_get (at (s, "annotations"), "io.berth.etc-files")), "1");
  ck_assert (!json_object_get_boolean (at (s, "root.readonly")));
  /* devices: deny all first, then allows */
  ck_assert (!json_object_get_boolean (at (s, "linux.resources.devices.0.allow")));
  ck_assert_str_eq (str_at (s, "linux.resources.devices.0.access"), "rwm");
  ck_assert_ptr_null (at (s, "linux.resources.devices.0.type"));
  ck_assert (json_object_get_boolean (at (s, "linux.resources.devices.1.allow")));
  ck_assert_ptr_null (at (s, "linux.devices"));
  json_object_put (s);
}
END_TEST

START_TEST (test_volumes_tmpfs_and_init_mounts)
{
  const char *vols[] = { "/srv/data:/data:ro", "/tmp:/dev/shm", NULL };
  const char *tmpfs[] = { "/run:size=64m,exec", NULL };
  const char *args[] = { "sleep", "1", NULL };
  struct ocispec_opts o
      = { .volumes = vols, .tmpfs = tmpfs, .init = true, .init_path = "/opt/berth-init", .args = args };
  json_object *s = gen (IMG_BUSYBOX, &o);
  json_object *d = mount_at (s, "/data");
  ck_assert_str_eq (str_at (d, "type"), "bind");
  ck_assert_str_eq (str_at (d, "source"), "/srv/data");
  ck_assert_str_eq (joined (d, "options"), "rbind ro rprivate");
  /* the user's /dev/shm replaces the default one */
  ck_assert_str_eq (str_at (mount_at (s, "/dev/shm"), "source"), "/tmp");
  ck_assert_str_eq (joined (mount_at (s, "/run"), "options"), "nosuid nodev size=64m exec");
  json_object *i = mount_at (s, OCISPEC_INIT_DEST);
  ck_assert_str_eq (str_at (i, "source"), "/opt/berth-init");
  ck_assert (has_str (at (i, "options"), "ro"));
  ck_assert_str_eq (joined (s, "process.args"), "/sbin/berth-init -- sleep 1");
  json_object_put (s);

  const char *bad[] = { "data:/data", NULL };
  struct ocispec_opts o2 = { .volumes = bad };
  ck_assert_ptr_nonnull (strstr (gen_fail (IMG_BUSYBOX, &o2, BERTH_E_INVALID), "named volumes are not supported yet"));
}
END_TEST

START_TEST (test_namespaces_net_host_and_user_namespace)
{
  json_object *s = gen (IMG_BUSYBOX, NULL);
  const char *want[] = { "pid", "ipc", "uts", "mount", "network", "cgroup" };
  for (size_t i = 0; i < ARRAY_SIZE (want); i++)
    ck_assert_msg (has_ns (s, want[i]), "no %s namespace", want[i]);
  ck_assert (!has_ns (s, "user"));
  ck_assert_int_eq (json_object_array_length (at (s, "linux.namespaces")), 6);
  json_object_put (s);

  struct ocispec_idmap u[] = { { 0, 100000, 65536 } }, g[] = { { 0, 200000, 65536 } };
  struct ocispec_opts o = {
    .net = "host", .pid_host = true, .ipc_host = true, .uid_maps = u, .n_uid_maps = 1, .gid_maps = g, .n_gid_maps = 1
  };
  s = gen (IMG_BUSYBOX, &o);
  ck_assert (!has_ns (s, "network"));
  ck_assert (!has_ns (s, "pid"));
  ck_assert (!has_ns (s, "ipc"));
  ck_assert (has_ns (s, "user"));
  ck_assert_int_eq (json_object_get_int (at (s, "linux.uidMappings.0.hostID")), 100000);
  ck_assert_int_eq (json_object_get_int (at (s, "linux.gidMappings.0.hostID")), 200000);
  ck_assert_int_eq (json_object_get_int (at (s, "linux.gidMappings.0.size")), 65536);
  ck_assert_str_eq (str_at (mount_at (s, "/dev/shm"), "source"), "/dev/shm");
  ck_assert_str_eq (str_at (mount_at (s, "/dev/mqueue"), "type"), "bind");
  /* sysfs cannot be mounted in a user namespace without its own netns */
  ck_assert_str_eq (str_at (mount_at (s, "/sys"), "type"), "bind");
  ck_assert_str_eq (joined (mount_at (s, "/sys"), "options"), "rbind nosuid noexec nodev ro");
  ck_assert_str_eq (json_object_get_string (json_object_object_get (at (s, "annotations"), "io.berth.etc-files")), "1");
  json_object_put (s);

  struct ocispec_opts o2 = { .net = "bridge" };
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &o2, BERTH_E_INVALID),
                    "network mode \"bridge\" is not supported (none, host)");
  struct ocispec_opts o3 = { .uid_maps = u, .n_uid_maps = 1 };
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &o3, BERTH_E_INVALID), "user namespace: give both uid and gid mappings");
  struct ocispec_idmap huge[] = { { 0, 4294967000u, 65536 } };
  struct ocispec_opts o4 = { .uid_maps = huge, .n_uid_maps = 1, .gid_maps = g, .n_gid_maps = 1 };
  gen_fail (IMG_BUSYBOX, &o4, BERTH_E_INVALID);
}
END_TEST

START_TEST (test_resources_from_flags)
{
  _cleanup_error_ berth_error *err = NULL;
  int64_t mem;
  double cpus;
  ck_assert_int_eq (ocispec_parse_bytes ("512m", &mem, &err), 0);
  ck_assert_int_eq (ocispec_parse_cpus ("1.5", &cpus, &err), 0);
  struct ocispec_opts o
      = { .memory = mem, .memory_swap = -1, .cpus = cpus, .cpu_shares = 512, .cpuset_cpus = "0-1", .pids_limit = 64 };
  json_object *s = gen (IMG_BUSYBOX, &o);
  ck_assert_int_eq (json_object_get_int64 (at (s, "linux.resources.memory.limit")), 536870912);
  ck_assert_int_eq (json_object_get_int64 (at (s, "linux.resources.memory.swap")), -1);
  ck_assert_int_eq (json_object_get_int64 (at (s, "linux.resources.cpu.quota")), 150000);
  ck_assert_int_eq (json_object_get_int64 (at (s, "linux.resources.cpu.period")), 100000);
  ck_assert_int_eq (json_object_get_int64 (at (s, "linux.resources.cpu.shares")), 512);
  ck_assert_str_eq (str_at (s, "linux.resources.cpu.cpus"), "0-1");
  ck_assert_int_eq (json_object_get_int64 (at (s, "linux.resources.pids.limit")), 64);
  json_object_put (s);

  s = gen (IMG_BUSYBOX, NULL);
  ck_assert_ptr_null (at (s, "linux.resources.memory"));
  ck_assert_ptr_null (at (s, "linux.resources.cpu"));
  ck_assert_ptr_null (at (s, "linux.resources.pids"));
  json_object_put (s);

  struct ocispec_opts small = { .memory = 1 << 20 };
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &small, BERTH_E_INVALID),
                    "memory limit 1048576 bytes is below the minimum of 6 MiB");
  struct ocispec_opts swap_only = { .memory_swap = 1 << 30 };
  gen_fail (IMG_BUSYBOX, &swap_only, BERTH_E_INVALID);
  struct ocispec_opts swap_small = { .memory = 64 << 20, .memory_swap = 32 << 20 };
  gen_fail (IMG_BUSYBOX, &swap_small, BERTH_E_INVALID);
  struct ocispec_opts many_cpus = { .cpus = 100000 };
  ck_assert_ptr_nonnull (strstr (gen_fail (IMG_BUSYBOX, &many_cpus, BERTH_E_INVALID), "range of CPUs is from 0.01"));
  struct ocispec_opts bad_set = { .cpuset_cpus = "0-" };
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &bad_set, BERTH_E_INVALID),
                    "invalid cpuset \"0-\": expected a list like 0-2,4");
  struct ocispec_opts bad_pids = { .pids_limit = -5 };
  gen_fail (IMG_BUSYBOX, &bad_pids, BERTH_E_INVALID);
}
END_TEST

START_TEST (test_privileged_gets_all_caps_devices_and_no_confinement)
{
  struct ocispec_opts o = { .privileged = true, .read_only = true, .no_new_privileges = true };
  json_object *s = gen (IMG_BUSYBOX, &o);
  json_object *b = at (s, "process.capabilities.bounding");
  ck_assert (has_str (b, "CAP_SYS_ADMIN"));
  ck_assert (has_str (b, "CAP_NET_ADMIN"));
  ck_assert_int_ge (json_object_array_length (b), 38);
  ck_assert_ptr_null (at (s, "linux.seccomp"));
  ck_assert_ptr_null (at (s, "linux.maskedPaths"));
  ck_assert_ptr_null (at (s, "linux.readonlyPaths"));
  ck_assert_int_eq (json_object_array_length (at (s, "linux.resources.devices")), 1);
  ck_assert (json_object_get_boolean (at (s, "linux.resources.devices.0.allow")));
  /* the host's device nodes */
  json_object *devs = at (s, "linux.devices");
  bool null_found = false;
  for (size_t i = 0; i < json_object_array_length (devs); i++)
    if (strcmp (str_at (json_object_array_get_idx (devs, i), "path"), "/dev/null") == 0)
      {
        null_found = true;
        ck_assert_int_eq (json_object_get_int (at (json_object_array_get_idx (devs, i), "major")), 1);
        ck_assert_int_eq (json_object_get_int (at (json_object_array_get_idx (devs, i), "minor")), 3);
      }
  ck_assert (null_found);
  ck_assert (has_str (at (mount_at (s, "/sys"), "options"), "rw"));
  ck_assert (json_object_get_boolean (at (s, "root.readonly")));
  ck_assert (json_object_get_boolean (at (s, "process.noNewPrivileges")));
  json_object_put (s);
}
END_TEST

START_TEST (test_annotations_and_hostname)
{
  const char *ann[] = { "org.example.a=1", "b=x=y", NULL };
  struct ocispec_opts o = { .annotations = ann, .hostname = "db-1" };
  json_object *s = gen (IMG_BUSYBOX, &o);
  json_object *a = at (s, "annotations");
  ck_assert_str_eq (json_object_get_string (json_object_object_get (a, "org.example.a")), "1");
  ck_assert_str_eq (json_object_get_string (json_object_object_get (a, "b")), "x=y");
  ck_assert_str_eq (str_at (s, "hostname"), "db-1");
  json_object_put (s);
  const char *bad[] = { "novalue", NULL };
  struct ocispec_opts o2 = { .annotations = bad };
  ck_assert_str_eq (gen_fail (IMG_BUSYBOX, &o2, BERTH_E_INVALID), "invalid annotation \"novalue\": expected KEY=VALUE");
  struct ocispec_opts o3 = { .hostname = "a/b" };
  gen_fail (IMG_BUSYBOX, &o3, BERTH_E_INVALID);
}
END_TEST

START_TEST (test_image_config_with_wrong_types_names_the_field)
{
  ck_assert_str_eq (gen_fail ("{\"config\":{\"Cmd\":\"sh\"}}", NULL, BERTH_E_INVALID),
                    "image config: Cmd: expected an array of strings, got string");
  ck_assert_str_eq (gen_fail ("{\"config\":{\"Cmd\":[\"sh\",1]}}", NULL, BERTH_E_INVALID),
                    "image config: Cmd[1]: expected a string, got int");
  ck_assert_str_eq (gen_fail ("{\"config\":{\"Cmd\":[\"sh\"],\"Env\":{}}}", NULL, BERTH_E_INVALID),
                    "image config: Env: expected an array of strings, got object");
  ck_assert_str_eq (gen_fail ("{\"config\":{\"Cmd\":[\"sh\"],\"User\":7}}", NULL, BERTH_E_INVALID),
                    "image config: User: expected a string, got int");
  ck_assert_str_eq (gen_fail ("{\"config\":[]}", NULL, BERTH_E_INVALID),
                    "image config: config: expected an object, got array");
  ck_assert_str_eq (gen_fail ("[1]", NULL, BERTH_E_INVALID), "image config: expected a JSON object");
}
END_TEST

/* ---- seccomp ---- */

static bool
have_default_profile (void)
{
  if (access (ocispec_default_seccomp_profile (), R_OK) == 0)
    return true;
  printf ("SKIP default-profile part: %s missing (apt-get install golang-github-containers-common)\n",
          ocispec_default_seccomp_profile ());
  return false;
}

START_TEST (test_default_profile_converts_for_this_arch_and_caps)
{
  if (!have_default_profile ())
    return;
  struct utsname u;
  ck_assert_int_eq (uname (&u), 0);
  json_object *s = gen (IMG_BUSYBOX, NULL);
  json_object *sc = at (s, "linux.seccomp");
  ck_assert_ptr_nonnull (sc);
  ck_assert_str_eq (str_at (sc, "defaultAction"), "SCMP_ACT_ERRNO");
  ck_assert_int_eq (json_object_get_int (at (sc, "defaultErrnoRet")), 38); /* ENOSYS */
  if (strcmp (u.machine, "x86_64") == 0)
    {
      ck_assert_str_eq (joined (sc, "architectures"), "SCMP_ARCH_X86_64 SCMP_ARCH_X86 SCMP_ARCH_X32");
      /* includes.arches [amd64, x32] */
      ck_assert_str_eq (sc_action (sc, "arch_prctl", NULL), "SCMP_ACT_ALLOW");
      /* includes.arches [arm, arm64]: not here */
      ck_assert_ptr_null (sc_action (sc, "breakpoint", NULL));
    }
  ck_assert_str_eq (sc_action (sc, "read", NULL), "SCMP_ACT_ALLOW");
  /* bpf: allowed only with CAP_SYS_ADMIN (includes), EPERM otherwise (excludes) */
  int n;
  ck_assert_str_eq (sc_action (sc, "bpf", &n), "SCMP_ACT_ERRNO");
  ck_assert_int_eq (n, 1);
  ck_assert_int_eq (json_object_get_int (at (sc, "syscalls.0.errnoRet")), 1);
  /* chroot: CAP_SYS_CHROOT is a default cap */
  ck_assert_str_eq (sc_action (sc, "chroot", &n), "SCMP_ACT_ALLOW");
  ck_assert_int_eq (n, 1);
  /* no profile-only keys leak into the OCI form */
  ck_assert_ptr_null (at (sc, "archMap"));
  ck_assert_ptr_null (at (sc, "syscalls.0.comment"));
  ck_assert_ptr_null (at (sc, "syscalls.0.includes"));
  json_object_put (s);

  const char *add[] = { "SYS_ADMIN", NULL };
  const char *drop[] = { "SYS_CHROOT", NULL };
  struct ocispec_opts o = { .cap_add = add, .cap_drop = drop };
  s = gen (IMG_BUSYBOX, &o);
  sc = at (s, "linux.seccomp");
  ck_assert_str_eq (sc_action (sc, "bpf", &n), "SCMP_ACT_ALLOW");
  ck_assert_int_eq (n, 1);
  ck_assert_str_eq (sc_action (sc, "chroot", &n), "SCMP_ACT_ERRNO");
  json_object_put (s);
}
END_TEST

START_TEST (test_unconfined_and_custom_profile_paths)
{
  struct ocispec_opts o = { .seccomp = "unconfined" };
  json_object *s = gen (IMG_BUSYBOX, &o);
  ck_assert_ptr_null (at (s, "linux.seccomp"));
  json_object_put (s);

  _cleanup_free_ char *p = path_in ("profile.json");
  write_file (p, "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],"
                 "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1}]}");
  struct ocispec_opts o2 = { .seccomp = p };
  s = gen (IMG_BUSYBOX, &o2);
  ck_assert_str_eq (str_at (s, "linux.seccomp.defaultAction"), "SCMP_ACT_ALLOW");
  ck_assert_str_eq (sc_action (at (s, "linux.seccomp"), "mkdir", NULL), "SCMP_ACT_ERRNO");
  ck_assert_ptr_null (at (s, "linux.seccomp.architectures"));
  json_object_put (s);

  /* Docker: an empty profile means no seccomp */
  write_file (p, "{}");
  s = gen (IMG_BUSYBOX, &o2);
  ck_assert_ptr_null (at (s, "linux.seccomp"));
  json_object_put (s);

  _cleanup_free_ char *missing = path_in ("nope.json");
  struct ocispec_opts o3 = { .seccomp = missing };
  const char *msg = gen_fail (IMG_BUSYBOX, &o3, BERTH_E_NOTFOUND);
  ck_assert_ptr_nonnull (strstr (msg, missing));
  ck_assert_ptr_nonnull (strstr (msg, "No such file or directory"));

  write_file (p, "{\"defaultAction\": ");
  ck_assert_ptr_nonnull (strstr (gen_fail (IMG_BUSYBOX, &o2, BERTH_E_INVALID), "not JSON"));
  write_file (p, "{} {}");
  ck_assert_ptr_nonnull (strstr (gen_fail (IMG_BUSYBOX, &o2, BERTH_E_INVALID), "trailing data"));
}
END_TEST

/* A hand-written profile in Docker's format exercising every filter.  The
 * clone rules mirror Docker's own default profile (moby's), which restricts
 * clone's flags for containers without CAP_SYS_ADMIN. */
static const char PROFILE_DOCKER[]
    = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":1,"
      "\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\",\"subArchitectures\":[\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"]},"
      "{\"architecture\":\"SCMP_ARCH_AARCH64\",\"subArchitectures\":[\"SCMP_ARCH_ARM\"]}],"
      "\"syscalls\":["
      "{\"names\":[\"read\",\"write\"],\"action\":\"SCMP_ACT_ALLOW\",\"comment\":\"basic\"},"
      "{\"names\":[\"clone\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":2114060288,"
      "\"valueTwo\":0,\"op\":\"SCMP_CMP_MASKED_EQ\"}],\"excludes\":{\"caps\":[\"CAP_SYS_ADMIN\"],"
      "\"arches\":[\"s390\",\"s390x\"]}},"
      "{\"names\":[\"clone\",\"unshare\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}},"
      "{\"name\":\"arch_prctl\",\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"amd64\",\"x32\"]}},"
      "{\"names\":[\"breakpoint\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"arm\",\"arm64\"]}},"
      "{\"names\":[\"new_in_5_9\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":\"5.9\"}},"
      "{\"names\":[\"old_kernels_only\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38,"
      "\"excludes\":{\"minKernel\":\"5.9\"}}]}";

static json_object *
convert (const char *profile, const char *const *caps, const char *arch, const char *kernel, berth_error **err)
{
  _cleanup_json_ json_object *p = parse (profile);
  json_object *c = json_object_new_array ();
  for (size_t i = 0; caps && caps[i]; i++)
    json_object_array_add (c, json_object_new_string (caps[i]));
  json_object *out = ocispec_seccomp_convert (p, c, arch, kernel, err);
  json_object_put (c);
  return out;
}

START_TEST (test_seccomp_conversion_filters_by_caps_arch_and_kernel)
{
  _cleanup_error_ berth_error *err = NULL;
  const char *dflt[] = { "CAP_CHOWN", "CAP_KILL", NULL };
  json_object *s = convert (PROFILE_DOCKER, dflt, "amd64", "6.1.0-18-amd64", &err);
  ck_assert_msg (s != NULL, "%s", err ? err->msg : "");
  ck_assert_str_eq (joined (s, "architectures"), "SCMP_ARCH_X86_64 SCMP_ARCH_X86 SCMP_ARCH_X32");
  ck_assert_int_eq (json_object_get_int (at (s, "defaultErrnoRet")), 1);
  /* without CAP_SYS_ADMIN: clone only with the flag mask, no unshare */
  int n;
  ck_assert_ptr_null (sc_action (s, "clone", &n));
  ck_assert_int_eq (n, 1);
  ck_assert_str_eq (str_at (s, "syscalls.1.args.0.op"), "SCMP_CMP_MASKED_EQ");
  ck_assert_int_eq (json_object_get_int64 (at (s, "syscalls.1.args.0.value")), 2114060288);
  ck_assert_ptr_null (sc_action (s, "unshare", NULL));
  ck_assert_str_eq (sc_action (s, "arch_prctl", NULL), "SCMP_ACT_ALLOW"); /* "name" form */
  ck_assert_ptr_null (sc_action (s, "breakpoint", NULL));
  ck_assert_str_eq (sc_action (s, "new_in_5_9", NULL), "SCMP_ACT_ALLOW");
  ck_assert_ptr_null (sc_action (s, "old_kernels_only", NULL));
  ck_assert_ptr_null (at (s, "syscalls.0.comment"));
  json_object_put (s);

  /* with CAP_SYS_ADMIN: clone and unshare unrestricted */
  const char *admin[] = { "CAP_CHOWN", "CAP_SYS_ADMIN", NULL };
  s = convert (PROFILE_DOCKER, admin, "amd64", "6.1", &err);
  ck_assert_str_eq (sc_action (s, "clone", &n), "SCMP_ACT_ALLOW");
  ck_assert_int_eq (n, 1);
  ck_assert_str_eq (sc_action (s, "unshare", NULL), "SCMP_ACT_ALLOW");
  json_object_put (s);

  /* another machine, an old kernel */
  s = convert (PROFILE_DOCKER, dflt, "arm64", "5.4.0", &err);
  ck_assert_str_eq (joined (s, "architectures"), "SCMP_ARCH_AARCH64 SCMP_ARCH_ARM");
  ck_assert_ptr_null (sc_action (s, "arch_prctl", NULL));
  ck_assert_str_eq (sc_action (s, "breakpoint", NULL), "SCMP_ACT_ALLOW");
  ck_assert_ptr_null (sc_action (s, "new_in_5_9", NULL));
  ck_assert_str_eq (sc_action (s, "old_kernels_only", NULL), "SCMP_ACT_ERRNO");
  json_object_put (s);

  /* s390x: clone excluded by arch, and no archMap entry */
  s = convert (PROFILE_DOCKER, dflt, "s390x", "6.1", &err);
  ck_assert_ptr_null (at (s, "architectures"));
  sc_action (s, "clone", &n);
  ck_assert_int_eq (n, 0);
  json_object_put (s);
}
END_TEST

START_TEST (test_hostile_profiles_name_the_bad_field)
{
  static const struct
  {
    const char *profile;
    const char *msg;
  } cases[] = {
    { "[]", "seccomp profile: expected a JSON object" },
    { "{\"defaultAction\":1}", "seccomp profile: defaultAction: expected a string, got int" },
    { "{\"defaultAction\":\"SCMP_ACT_NOPE\"}", "seccomp profile: defaultAction: unknown action \"SCMP_ACT_NOPE\"" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":-1}",
      "seccomp profile: defaultErrnoRet: -1 is negative" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":{}}",
      "seccomp profile: syscalls: expected an array, got object" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":\"read\",\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[0].names: expected an array of strings, got string" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\",7],\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[0].names[1]: expected a string, got int" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"]}]}",
      "seccomp profile: syscalls[0].action: missing" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[0]: no syscall names" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"name\":\"a\",\"names\":[\"b\"],"
      "\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[0]: both 'name' and 'names' given: use one" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\","
      "\"args\":[{\"index\":9,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
      "seccomp profile: syscalls[0].args[0].index: 9 is above 5" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\","
      "\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_SORTA\"}]}]}",
      "seccomp profile: syscalls[0].args[0].op: unknown operator \"SCMP_CMP_SORTA\"" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\","
      "\"args\":[{\"index\":0,\"value\":\"1\",\"op\":\"SCMP_CMP_EQ\"}]}]}",
      "seccomp profile: syscalls[0].args[0].value: expected an unsigned integer, got string" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\","
      "\"includes\":{\"caps\":\"CAP_SYS_ADMIN\"}}]}",
      "seccomp profile: syscalls[0].includes.caps: expected an array of strings, got string" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\","
      "\"excludes\":{\"minKernel\":\"five\"}}]}",
      "seccomp profile: syscalls[0].excludes.minKernel: \"five\" is not \"major.minor\"" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\","
      "\"includes\":[]}]}",
      "seccomp profile: syscalls[0].includes: expected an object, got array" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"archMap\":[{\"subArchitectures\":[]}]}",
      "seccomp profile: archMap[0].architecture: missing" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_X86\"],"
      "\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\"}]}",
      "seccomp profile: both 'architectures' and 'archMap' are given: use one" },
    { "{\"syscalls\":[{\"names\":[\"a\"],\"action\":\"SCMP_ACT_ALLOW\"}]}", "seccomp profile: defaultAction: missing" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      json_object *s = convert (cases[i].profile, NULL, "amd64", "6.1", &err);
      ck_assert_msg (s == NULL, "case %zu accepted", i);
      ck_assert_ptr_nonnull (err);
      ck_assert_int_eq (err->code, BERTH_E_INVALID);
      ck_assert_str_eq (err->msg, cases[i].msg);
    }
}
END_TEST

/* ---- flag parsers ---- */

START_TEST (test_parse_bytes_like_docker)
{
  static const struct
  {
    const char *in;
    int64_t want;
  } good[] = {
    { "512m", 536870912 }, { "1.5g", 1610612736 }, { "100kb", 102400 },     { "2GiB", 2147483648 },
    { "1024", 1024 },      { "64 M", 67108864 },   { "1t", 1099511627776 }, { "7b", 7 },
  };
  for (size_t i = 0; i < ARRAY_SIZE (good); i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      int64_t v = 0;
      ck_assert_msg (ocispec_parse_bytes (good[i].in, &v, &err) == 0, "%s: %s", good[i].in, err ? err->msg : "");
      ck_assert_msg (v == good[i].want, "%s: %lld", good[i].in, (long long)v);
    }
  const char *bad[] = { "", "abc", "-1", "12x", "1.", "99999999999999999999", "0", "1.5.2m", "8192p", "5mm" };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      _cleanup_error_ berth_error *err = NULL;
      int64_t v = 0;
      ck_assert_msg (ocispec_parse_bytes (bad[i], &v, &err) == BERTH_E_INVALID, "%s accepted", bad[i]);
      ck_assert_ptr_nonnull (strstr (err->msg, "invalid size"));
    }
  _cleanup_error_ berth_error *err = NULL;
  int64_t v;
  ocispec_parse_bytes ("12x", &v, &err);
  ck_assert_str_eq (err->msg, "invalid size \"12x\": unknown unit \"x\" (use b, k, m, g, t or p)");
}
END_TEST

START_TEST (test_parse_cpus)
{
  _cleanup_error_ berth_error *err = NULL;
  double v;
  ck_assert_int_eq (ocispec_parse_cpus ("0.25", &v, &err), 0);
  ck_assert (v == 0.25);
  ck_assert_int_eq (ocispec_parse_cpus ("2", &v, &err), 0);
  ck_assert (v == 2);
  const char *bad[] = { "", "-1", "0", "abc", "1e3", ".", "nan", "inf", "1,5" };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      _cleanup_error_ berth_error *e = NULL;
      ck_assert_msg (ocispec_parse_cpus (bad[i], &v, &e) == BERTH_E_INVALID, "%s accepted", bad[i]);
    }
}
END_TEST

START_TEST (test_parse_volume)
{
  _cleanup_error_ berth_error *err = NULL;
  json_object *m = ocispec_parse_volume ("/host//dir/:/ctr/./x:ro,rshared", &err);
  ck_assert_ptr_nonnull (m);
  ck_assert_str_eq (str_at (m, "source"), "/host/dir");
  ck_assert_str_eq (str_at (m, "destination"), "/ctr/x");
  ck_assert_str_eq (joined (m, "options"), "rbind ro rshared");
  json_object_put (m);
  m = ocispec_parse_volume ("/a:/b:z", &err);
  ck_assert_str_eq (joined (m, "options"), "rbind rw rprivate");
  json_object_put (m);

  static const struct
  {
    const char *in, *msg;
  } bad[] = {
    { "data:/data", "-v \"data:/data\": named volumes are not supported yet (\"data\"): give an absolute host path" },
    { "./x:/y", "-v \"./x:/y\": host path \"./x\" is relative: give an absolute path" },
    { "/data", "anonymous volumes are not supported yet: -v \"/data\" (give host-path:container-path)" },
    { "/a:/", "-v \"/a:/\": the container path cannot be \"/\"" },
    { "/a:b", "-v \"/a:b\": container path \"b\" must be absolute and may not contain \"..\"" },
    { "/a:/b/../../etc", "-v \"/a:/b/../../etc\": container path \"/b/../../etc\" must be absolute and may not "
                         "contain \"..\"" },
    { "/a:/b:bogus", "-v \"/a:/b:bogus\": unknown option \"bogus\" (ro, rw, [r]private, [r]shared, [r]slave, z, Z, "
                     "nocopy)" },
    { "/a:/b:ro,rw", "-v \"/a:/b:ro,rw\": ro/rw given twice" },
    { "/a:/b:ro:x", "invalid volume specification \"/a:/b:ro:x\": expected host-path:container-path[:options]" },
    { "/a::/b", "invalid volume specification \"/a::/b\": empty field" },
    { "", "invalid volume specification \"\": empty" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      _cleanup_error_ berth_error *e = NULL;
      ck_assert_ptr_null (ocispec_parse_volume (bad[i].in, &e));
      ck_assert_ptr_nonnull (e);
      ck_assert_str_eq (e->msg, bad[i].msg);
    }
}
END_TEST

START_TEST (test_parse_tmpfs)
{
  _cleanup_error_ berth_error *err = NULL;
  json_object *m = ocispec_parse_tmpfs ("/tmp", &err);
  ck_assert_str_eq (joined (m, "options"), "nosuid nodev noexec");
  json_object_put (m);
  m = ocispec_parse_tmpfs ("/cache:size=10%,mode=1777,uid=1000,suid", &err);
  ck_assert_str_eq (joined (m, "options"), "nodev noexec size=10% mode=1777 uid=1000 suid");
  json_object_put (m);
  const char *bad[] = { "tmp", "/", "/x:", "/x:bogus", "/x:size=", "/x:size=1;rm", "/x:ro,,rw", "/x:colour=red" };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      _cleanup_error_ berth_error *e = NULL;
      ck_assert_msg (ocispec_parse_tmpfs (bad[i], &e) == NULL, "%s accepted", bad[i]);
      ck_assert_ptr_nonnull (strstr (e->msg, "--tmpfs"));
    }
}
END_TEST

START_TEST (test_parse_env_file)
{
  _cleanup_free_ char *p = path_in ("env");
  write_file (p, "\xef\xbb\xbf# comment\n\n  A=1\nB= spaced value \r\nFROM_HOST\nNOT_SET_ANYWHERE_XYZ\nC=x=y\n");
  setenv ("FROM_HOST", "hostval", 1);
  unsetenv ("NOT_SET_ANYWHERE_XYZ");
  _cleanup_error_ berth_error *err = NULL;
  _cleanup_strv_ char **env = NULL;
  ck_assert_msg (ocispec_parse_env_file (p, &env, &err) == 0, "%s", err ? err->msg : "");
  const char *want[] = { "A=1", "B= spaced value ", "FROM_HOST=hostval", "NOT_SET_ANYWHERE_XYZ", "C=x=y", NULL };
  for (size_t i = 0; want[i]; i++)
    {
      ck_assert_ptr_nonnull (env[i]);
      ck_assert_str_eq (env[i], want[i]);
    }
  ck_assert_ptr_null (env[5]);

  static const struct
  {
    const char *content, *msg_part;
  } bad[] = {
    { "A=1\n=x\n", "line 2: no variable name" },
    { "MY VAR=1\n", "line 1: variable 'MY VAR' contains whitespace" },
    { "A=\xff\xfe\n", "invalid UTF-8 at line 1" },
    { "A=\xc0\xaf\n", "invalid UTF-8 at line 1" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      _cleanup_error_ berth_error *e = NULL;
      _cleanup_strv_ char **v = NULL;
      write_file (p, bad[i].content);
      ck_assert_int_eq (ocispec_parse_env_file (p, &v, &e), BERTH_E_INVALID);
      ck_assert_msg (strstr (e->msg, bad[i].msg_part), "%s", e->msg);
    }
  _cleanup_error_ berth_error *e = NULL;
  _cleanup_strv_ char **v = NULL;
  _cleanup_free_ char *missing = path_in ("missing");
  ck_assert_int_eq (ocispec_parse_env_file (missing, &v, &e), BERTH_E_NOTFOUND);
  ck_assert_ptr_nonnull (strstr (e->msg, "No such file"));
  _cleanup_error_ berth_error *e2 = NULL;
  ck_assert_int_eq (ocispec_parse_env_file (tmpdir, &v, &e2), BERTH_E_INVALID);
}
END_TEST

/* ---- the real runc ---- */

static const char *
runc_skip_reason (void)
{
  if (geteuid () != 0)
    return "needs root";
  if (access ("/usr/sbin/runc", X_OK) != 0)
    return "/usr/sbin/runc missing (apt-get install runc)";
  if (access ("/bin/busybox", X_OK) != 0)
    return "/bin/busybox missing (apt-get install busybox-static)";
  if (access (ocispec_default_seccomp_profile (), R_OK) != 0)
    return "default seccomp profile missing (apt-get install golang-github-containers-common)";
  return NULL;
}

/* Write a bundle (busybox-static rootfs + config.json) for spec; run
 * `runc run` with the output in <tmpdir>/out; returns runc's exit status. */
static int
runc_run (json_object *spec, const char *id, char **ret_out)
{
  char cmd[2048];
  snprintf (cmd, sizeof cmd,
            "set -e; chmod 0755 %1$s; mkdir -p %1$s/bundle/rootfs/bin %1$s/bundle/rootfs/proc %1$s/bundle/rootfs/sys "
            "%1$s/bundle/rootfs/dev %1$s/bundle/rootfs/etc %1$s/bundle/rootfs/tmp %1$s/runc;"
            "cp /bin/busybox %1$s/bundle/rootfs/bin/busybox;"
            "for a in sh true cat grep id mkdir ls wc; do ln -sf busybox %1$s/bundle/rootfs/bin/$a; done",
            tmpdir);
  ck_assert_int_eq (system (cmd), 0);
  _cleanup_free_ char *cfg = NULL;
  ck_assert_int_ge (asprintf (&cfg, "%s/bundle/config.json", tmpdir), 0);
  ck_assert_int_eq (json_object_to_file_ext (cfg, spec, JSON_C_TO_STRING_PRETTY), 0);
  snprintf (cmd, sizeof cmd,
            "cd %1$s/bundle && timeout 60 /usr/sbin/runc --root %1$s/runc run %2$s </dev/null >%1$s/out 2>&1; rc=$?;"
            "/usr/sbin/runc --root %1$s/runc delete -f %2$s >/dev/null 2>&1; exit $rc",
            tmpdir, id);
  int st = system (cmd);
  ck_assert (WIFEXITED (st));
  _cleanup_free_ char *outp = NULL;
  ck_assert_int_ge (asprintf (&outp, "%s/out", tmpdir), 0);
  FILE *f = fopen (outp, "r");
  ck_assert_ptr_nonnull (f);
  char buf[8192];
  size_t n = fread (buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose (f);
  *ret_out = strdup (buf);
  return WEXITSTATUS (st);
}

START_TEST (test_runc_runs_a_generated_spec)
{
  const char *why = runc_skip_reason ();
  if (why)
    {
      printf ("SKIP test_runc_runs_a_generated_spec: %s\n", why);
      return;
    }
  char id[64];
  snprintf (id, sizeof id, "berth-ocispec-%d", (int)getpid ());

  /* 1: `true` under the default spec, seccomp included */
  const char *t[] = { "true", NULL };
  struct ocispec_opts o = { .args = t, .hostname = "ocispec" };
  json_object *s = gen (IMG_BUSYBOX, &o);
  ck_assert_ptr_nonnull (at (s, "linux.seccomp"));
  _cleanup_free_ char *out = NULL;
  int rc = runc_run (s, id, &out);
  ck_assert_msg (rc == 0, "runc run true: exit %d: %s", rc, out);
  json_object_put (s);

  /* 2: as root under the default spec: masked and read-only paths, the
   * hostname, no_new_privs off by default. */
  const char *root_script = "echo timer_list=$(wc -c < /proc/timer_list);"
                            "grep -Eq '^[^ ]+ /proc/sys [^ ]+ ro[, ]' /proc/self/mounts && echo proc-sys-ro;"
                            "cat /proc/sys/kernel/hostname; grep '^NoNewPrivs:' /proc/self/status";
  const char *rsh[] = { "sh", "-c", root_script, NULL };
  struct ocispec_opts orr = { .args = rsh, .hostname = "ocispec" };
  s = gen (IMG_BUSYBOX, &orr);
  free (out);
  out = NULL;
  rc = runc_run (s, id, &out);
  ck_assert_msg (rc == 0, "runc run sh as root: exit %d: %s", rc, out);
  ck_assert_msg (strstr (out, "timer_list=0\n"), "%s", out);
  ck_assert_msg (strstr (out, "proc-sys-ro\n"), "%s", out);
  ck_assert_msg (strstr (out, "\nocispec\n"), "%s", out);
  ck_assert_msg (strstr (out, "NoNewPrivs:\t0"), "%s", out);
  json_object_put (s);

  /* 3: as a user: seccomp mode 2 (filter), Docker's bounding
   * set, the pids limit in its cgroup, a read-only
   * rootfs, user 1000, no_new_privs. */
  const char *script
      = "grep '^Seccomp:' /proc/self/status; grep '^CapBnd:' /proc/self/status;"
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null ||"
        " cat /sys/fs/cgroup/pids.max; grep -Eq '^[^ ]+ / [^ ]+ ro[, ]' /proc/self/mounts && echo ro || echo rw; id -u;"
        "grep -q '^NoNewPrivs:.*1' /proc/self/status && echo nnp";
  const char *sh[] = { "sh", "-c", script, NULL };
  struct ocispec_opts o2 = { .args = sh,
                             .pids_limit = 32,
                             .read_only = true,
                             .user = "1000:1000",
                             .memory = 64 << 20,
                             .cpus = 0.5,
                             .no_new_privileges = true };
  s = gen (IMG_BUSYBOX, &o2);
  free (out);
  out = NULL;
  rc = runc_run (s, id, &out);
  ck_assert_msg (rc == 0, "runc run sh: exit %d: %s", rc, out);
  ck_assert_msg (strstr (out, "Seccomp:\t2"), "%s", out);
  /* Docker's 14 default caps = 0x00000000a80425fb */
  ck_assert_msg (strstr (out, "CapBnd:\t00000000a80425fb"), "%s", out);
  ck_assert_msg (strstr (out, "\n32\n"), "%s", out);
  ck_assert_msg (strstr (out, "\nro\n"), "%s", out);
  ck_assert_msg (strstr (out, "\n1000\n"), "%s", out);
  ck_assert_msg (strstr (out, "nnp"), "%s", out);
  json_object_put (s);

  /* 4: a custom profile that denies mkdir with EPERM is enforced by runc */
  _cleanup_free_ char *prof = path_in ("deny-mkdir.json");
  write_file (prof, "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],"
                    "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1}]}");
  const char *mk[] = { "sh", "-c", "mkdir /tmp/x && echo made || echo denied", NULL };
  struct ocispec_opts o3 = { .args = mk, .seccomp = prof };
  s = gen (IMG_BUSYBOX, &o3);
  free (out);
  out = NULL;
  rc = runc_run (s, id, &out);
  ck_assert_msg (rc == 0 && strstr (out, "denied"), "exit %d: %s", rc, out);
  json_object_put (s);

  /* 5: a user namespace: root inside is 100000 outside */
  struct ocispec_idmap map[] = { { 0, 100000, 65536 } };
  const char *um[] = { "sh", "-c", "id -u; cat /proc/self/uid_map", NULL };
  struct ocispec_opts o5 = { .args = um, .uid_maps = map, .n_uid_maps = 1, .gid_maps = map, .n_gid_maps = 1 };
  s = gen (IMG_BUSYBOX, &o5);
  free (out);
  out = NULL;
  rc = runc_run (s, id, &out);
  ck_assert_msg (rc == 0 && strstr (out, "0\n") == out && strstr (out, "100000"), "exit %d: %s", rc, out);
  json_object_put (s);

  /* 6: the exit status comes through (--init with berth-init when built) */
  _cleanup_free_ char *init = NULL;
  ck_assert_int_ge (asprintf (&init, "%s/berth-init", ABS_TOP_BUILDDIR), 0);
  const char *ex[] = { "sh", "-c", "echo pid1=$(cat /proc/1/comm); exit 7", NULL };
  struct ocispec_opts o4 = { .args = ex, .init = access (init, X_OK) == 0, .init_path = init };
  s = gen (IMG_BUSYBOX, &o4);
  free (out);
  out = NULL;
  rc = runc_run (s, id, &out);
  ck_assert_msg (rc == 7, "exit %d (init %d): %s", rc, o4.init, out);
  /* with --init, berth-init is pid 1 and the command its child */
  ck_assert_msg (strstr (out, o4.init ? "pid1=berth-init" : "pid1=sh"), "%s", out);
  if (!o4.init)
    printf ("SKIP --init part: %s not built\n", init);
  json_object_put (s);
}
END_TEST

static Suite *
make_suite (void)
{
  Suite *s = suite_create ("ocispec");
  TCase *tc = tcase_create ("generate");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_cmd_and_entrypoint_resolve_as_docker_does);
  tcase_add_test (tc, test_no_cmd_and_no_entrypoint_is_a_clear_error);
  tcase_add_test (tc, test_env_merges_in_docker_order_with_a_default_path);
  tcase_add_test (tc, test_workdir_defaults_to_root_and_must_be_absolute);
  tcase_add_test (tc, test_numeric_user_is_direct_and_a_name_becomes_an_annotation);
  tcase_add_test (tc, test_default_capabilities_are_dockers_without_inheritable);
  tcase_add_test (tc, test_cap_add_and_drop_follow_tweakcapabilities);
  tcase_add_test (tc, test_default_mounts_masked_and_readonly_paths);
  tcase_add_test (tc, test_volumes_tmpfs_and_init_mounts);
  tcase_add_test (tc, test_namespaces_net_host_and_user_namespace);
  tcase_add_test (tc, test_resources_from_flags);
  tcase_add_test (tc, test_privileged_gets_all_caps_devices_and_no_confinement);
  tcase_add_test (tc, test_annotations_and_hostname);
  tcase_add_test (tc, test_image_config_with_wrong_types_names_the_field);
  suite_add_tcase (s, tc);

  TCase *sc = tcase_create ("seccomp");
  tcase_add_checked_fixture (sc, setup, teardown);
  tcase_add_test (sc, test_default_profile_converts_for_this_arch_and_caps);
  tcase_add_test (sc, test_unconfined_and_custom_profile_paths);
  tcase_add_test (sc, test_seccomp_conversion_filters_by_caps_arch_and_kernel);
  tcase_add_test (sc, test_hostile_profiles_name_the_bad_field);
  suite_add_tcase (s, sc);

  TCase *pc = tcase_create ("parsers");
  tcase_add_checked_fixture (pc, setup, teardown);
  tcase_add_test (pc, test_parse_bytes_like_docker);
  tcase_add_test (pc, test_parse_cpus);
  tcase_add_test (pc, test_parse_volume);
  tcase_add_test (pc, test_parse_tmpfs);
  tcase_add_test (pc, test_parse_env_file);
  suite_add_tcase (s, pc);

  TCase *rc = tcase_create ("runc");
  tcase_add_checked_fixture (rc, setup, teardown);
  tcase_set_timeout (rc, 120);
  tcase_add_test (rc, test_runc_runs_a_generated_spec);
  suite_add_tcase (s, rc);
  return s;
}

CHECK_MAIN (make_suite)
