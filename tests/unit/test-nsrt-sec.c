/* Tests for berth-runtime's security/resource half (nsrt-sec.h): real
 * cgroups on this host's layout (v1, v2 or hybrid, read from mountinfo),
 * real seccomp filters, capabilities, rlimits and oom_score_adj, each
 * applied in a forked child so the test process keeps its privileges.
 * Needs root; a missing controller prints SKIP with the reason.  Every
 * cgroup is made under /berth-test-<pid> and removed by the test. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-main.h"
#include "nsrt-sec.h"

#define NEED_ROOT()                                                                                \
  do                                                                                               \
    {                                                                                              \
      if (geteuid () != 0)                                                                         \
        {                                                                                          \
          printf ("SKIP %s: needs root (cgroups, capabilities)\n", __func__);                      \
          return;                                                                                  \
        }                                                                                          \
    }                                                                                              \
  while (0)

#define OK(call)                                                                                   \
  do                                                                                               \
    {                                                                                              \
      struct nsrt_err e_ = { "" };                                                                 \
      struct nsrt_err *err = &e_;                                                                  \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == 0, "%s failed: %s", #call, e_.msg);                                     \
    }                                                                                              \
  while (0)

/* the call fails and its message contains every needle */
#define FAILS(call, ...)                                                                           \
  do                                                                                               \
    {                                                                                              \
      struct nsrt_err e_ = { "" };                                                                 \
      struct nsrt_err *err = &e_;                                                                  \
      int r_ = (call);                                                                             \
      ck_assert_msg (r_ == -1, "%s succeeded, expected an error", #call);                          \
      const char *needles_[] = { __VA_ARGS__, NULL };                                              \
      for (int i_ = 0; needles_[i_]; i_++)                                                         \
        ck_assert_msg (strstr (e_.msg, needles_[i_]), "`%s` does not say `%s`", e_.msg, needles_[i_]); \
    }                                                                                              \
  while (0)

/* Every J() document lives until the end of its test (pool_free, the
 * tcases' teardown), so that calls can take J(...) inline. */
static json_object *pool[512];
static size_t npool;

static void
pool_free (void)
{
  while (npool > 0)
    json_object_put (pool[--npool]);
}

static json_object *
J (const char *fmt, ...)
{
  char buf[8192];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  json_object *o = json_tokener_parse (buf);
  ck_assert_msg (o != NULL, "bad test JSON: %s", buf);
  ck_assert (npool < sizeof pool / sizeof pool[0]);
  pool[npool++] = json_object_get (o);
  return o;
}

/* ---- running a step in a child ---- */

static int child_pipe = -1;

/* in the child: report a failure text and exit 1 */
static void __attribute__ ((noreturn, format (printf, 1, 2))) child_fail (const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (write (child_pipe, buf, n > 0 && (size_t) n < sizeof buf ? (size_t) n : strlen (buf)) < 0)
    _exit (2);
  _exit (1);
}

/* fork, run fn in the child (it _exits 0 or calls child_fail), assert
 * success and show the child's words otherwise */
static void
in_child (void (*fn) (void *), void *arg)
{
  int p[2];
  ck_assert_int_eq (pipe (p), 0);
  pid_t pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      close (p[0]);
      child_pipe = p[1];
      fn (arg);
      _exit (0);
    }
  close (p[1]);
  char msg[1024] = "";
  ssize_t n = read (p[0], msg, sizeof msg - 1);
  msg[n > 0 ? n : 0] = '\0';
  close (p[0]);
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  ck_assert_msg (WIFEXITED (st) && WEXITSTATUS (st) == 0, "child failed (status 0x%x): %s", st, msg);
}

/* ---- cgroup helpers ---- */

static char base[64];

static const char *
test_path (const char *leaf)
{
  static char p[128];
  snprintf (base, sizeof base, "/berth-test-%d", (int) getpid ());
  snprintf (p, sizeof p, "%s/%s", base, leaf);
  return p;
}

static const char *
layout_of (struct nsrt_cgroup *cg)
{
  static char l[16];
  json_object *j = nsrt_cgroup_to_json (cg), *v;
  ck_assert (json_object_object_get_ex (j, "layout", &v));
  snprintf (l, sizeof l, "%s", json_object_get_string (v));
  json_object_put (j);
  return l;
}

/* the directory of `path` in the hierarchy with controller c ("" = the
 * cgroup2 one), or NULL */
static const char *
dir_of (struct nsrt_cgroup *cg, const char *c)
{
  static char d[1024];
  json_object *j = nsrt_cgroup_to_json (cg), *a, *p;
  json_object_object_get_ex (j, "hierarchies", &a);
  json_object_object_get_ex (j, "path", &p);
  const char *found = NULL;
  for (size_t i = 0; i < json_object_array_length (a) && !found; i++)
    {
      json_object *h = json_object_array_get_idx (a, i), *m, *cs, *v2;
      json_object_object_get_ex (h, "mount", &m);
      json_object_object_get_ex (h, "controllers", &cs);
      json_object_object_get_ex (h, "v2", &v2);
      char list[300];
      snprintf (list, sizeof list, ",%s,", json_object_get_string (cs));
      char tok[64];
      snprintf (tok, sizeof tok, ",%s,", c);
      int match = c[0] == '\0' ? json_object_get_boolean (v2) : (strstr (list, tok) != NULL);
      if (match)
        {
          snprintf (d, sizeof d, "%s%s", json_object_get_string (m), json_object_get_string (p));
          found = d;
        }
    }
  json_object_put (j);
  return found;
}

static void
read_in (const char *dir, const char *file, char *buf, size_t size)
{
  char p[1200];
  snprintf (p, sizeof p, "%s/%s", dir, file);
  FILE *f = fopen (p, "r");
  ck_assert_msg (f != NULL, "open %s: %s", p, strerror (errno));
  size_t n = fread (buf, 1, size - 1, f);
  buf[n] = '\0';
  buf[strcspn (buf, "\n")] = '\0';
  fclose (f);
}

static int
is_dir (const char *p)
{
  struct stat st;
  return stat (p, &st) == 0 && S_ISDIR (st.st_mode);
}

/* every hierarchy of the host, from mountinfo, each with the test path */
static int
count_present (const char *path)
{
  FILE *f = fopen ("/proc/self/mountinfo", "r");
  char line[4096];
  int n = 0;
  while (fgets (line, sizeof line, f))
    {
      char mnt[1024];
      if (sscanf (line, "%*s %*s %*s %*s %1023s", mnt) != 1)
        continue;
      if (!strstr (line, " - cgroup ") && !strstr (line, " - cgroup2 "))
        continue;
      char p[2048];
      snprintf (p, sizeof p, "%s%s", mnt, path);
      n += is_dir (p);
    }
  fclose (f);
  return n;
}

static int
count_mounts (void)
{
  FILE *f = fopen ("/proc/self/mountinfo", "r");
  char line[4096];
  int n = 0;
  while (fgets (line, sizeof line, f))
    n += strstr (line, " - cgroup ") != NULL || strstr (line, " - cgroup2 ") != NULL;
  fclose (f);
  return n;
}

static pid_t
sleeper (void)
{
  pid_t pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      for (;;)
        pause ();
    }
  return pid;
}

/* ---- cgroups ---- */

START_TEST (test_cgroup_is_made_in_every_hierarchy_and_removed_with_what_it_created)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  OK (nsrt_cgroup_create (test_path ("c1"), "c1", 0, &cg, err));
  const char *layout = layout_of (cg);
  printf ("%s: layout %s\n", __func__, layout);
  int mounts = count_mounts ();
  ck_assert_int_gt (mounts, 0);
  ck_assert_int_eq (count_present (test_path ("c1")), mounts);
  if (strcmp (layout, "v1") != 0 && strcmp (layout, "v2") != 0)
    ck_assert_str_eq (layout, "hybrid");
  /* v1 cpuset: the new cgroup can hold tasks (cpus and mems copied) */
  const char *cs = dir_of (cg, "cpuset");
  if (cs && strcmp (layout, "v2") != 0)
    {
      char buf[256];
      read_in (cs, "cpuset.cpus", buf, sizeof buf);
      ck_assert_msg (buf[0] != '\0', "cpuset.cpus of %s is empty", cs);
      read_in (cs, "cpuset.mems", buf, sizeof buf);
      ck_assert_msg (buf[0] != '\0', "cpuset.mems of %s is empty", cs);
    }
  pid_t pid = sleeper ();
  OK (nsrt_cgroup_enter (cg, pid, err));
  char self[4096];
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/cgroup", (int) pid);
  FILE *f = fopen (p, "r");
  size_t n = fread (self, 1, sizeof self - 1, f);
  self[n] = '\0';
  fclose (f);
  /* the process sits in the path of every hierarchy, the unified one too */
  int lines = 0, in = 0;
  for (char *l = strtok (self, "\n"); l; l = strtok (NULL, "\n"), lines++)
    in += strstr (l, test_path ("c1")) != NULL;
  ck_assert_int_eq (in, lines);
  OK (nsrt_cgroup_destroy (cg, err));
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  ck_assert (WIFSIGNALED (st) && WTERMSIG (st) == SIGKILL);
  ck_assert_int_eq (count_present (test_path ("c1")), 0);
  ck_assert_int_eq (count_present (base), 0); /* the parent was ours too */
  nsrt_cgroup_free (cg);
}
END_TEST

START_TEST (test_cgroup_destroy_never_removes_a_path_it_did_not_create)
{
  NEED_ROOT ();
  struct nsrt_cgroup *a, *b;
  OK (nsrt_cgroup_create (test_path ("shared"), "x", 0, &a, err));
  pid_t pid = sleeper ();
  OK (nsrt_cgroup_enter (a, pid, err));
  /* b joins the existing one: it made nothing, so it kills and removes nothing */
  OK (nsrt_cgroup_create (test_path ("shared"), "x", 0, &b, err));
  OK (nsrt_cgroup_destroy (b, err));
  ck_assert_int_eq (count_present (test_path ("shared")), count_mounts ());
  ck_assert_int_eq (kill (pid, 0), 0);
  /* a goes through the state file and back, then removes everything */
  json_object *j = nsrt_cgroup_to_json (a);
  struct nsrt_cgroup *a2;
  OK (nsrt_cgroup_from_json (j, &a2, err));
  json_object_put (j);
  OK (nsrt_cgroup_destroy (a2, err));
  ck_assert_int_eq (count_present (base), 0);
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  nsrt_cgroup_free (a);
  nsrt_cgroup_free (a2);
  nsrt_cgroup_free (b);
}
END_TEST

START_TEST (test_cgroup_state_from_a_tampered_file_is_refused)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  FAILS (nsrt_cgroup_from_json (J ("{\"path\":\"/a/../..\",\"hierarchies\":[]}"), &cg, err), "not a cgroup path");
  FAILS (nsrt_cgroup_from_json (J ("{\"path\":\"/a\",\"hierarchies\":[{\"mount\":\"/tmp\",\"created\":1}]}"), &cg, err),
         "/tmp is no longer a cgroup mount");
  FAILS (nsrt_cgroup_from_json (J ("{\"path\":\"/a\",\"hierarchies\":[{\"mount\":\"/tmp\"}]}"), &cg, err),
         "needs mount and created");
  FAILS (nsrt_cgroup_from_json (J ("[]"), &cg, err), "needs path");
}
END_TEST

START_TEST (test_cgroup_paths_are_checked)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  FAILS (nsrt_cgroup_create ("/a/../../etc", "x", 0, &cg, err), "`.` and `..` are not allowed");
  FAILS (nsrt_cgroup_create ("/", "x", 0, &cg, err), "root cgroup");
  FAILS (nsrt_cgroup_create ("system.slice:berth:x", "x", 0, &cg, err), "systemd path", "--systemd-cgroup");
  FAILS (nsrt_cgroup_create ("bad:x", "x", 1, &cg, err), "not slice:prefix:name");
  FAILS (nsrt_cgroup_create (NULL, "../x", 0, &cg, err), "cannot name a cgroup");
  /* systemd form with --systemd-cgroup: the slice expanded as systemd does */
  char slice[64];
  snprintf (slice, sizeof slice, "berthtest-%d.slice:pre:ctr", (int) getpid ());
  OK (nsrt_cgroup_create (slice, "x", 1, &cg, err));
  json_object *j = nsrt_cgroup_to_json (cg), *p;
  json_object_object_get_ex (j, "path", &p);
  char want[128];
  snprintf (want, sizeof want, "/berthtest.slice/berthtest-%d.slice/pre-ctr.scope", (int) getpid ());
  ck_assert_str_eq (json_object_get_string (p), want);
  json_object_put (j);
  OK (nsrt_cgroup_destroy (cg, err));
  ck_assert_int_eq (count_present (want), 0);
  nsrt_cgroup_free (cg);
  /* the default path */
  OK (nsrt_cgroup_create (NULL, "berth-test-default", 0, &cg, err));
  ck_assert (count_present ("/berth/berth-test-default") > 0);
  OK (nsrt_cgroup_destroy (cg, err));
  ck_assert_int_eq (count_present ("/berth/berth-test-default"), 0);
  nsrt_cgroup_free (cg);
}
END_TEST

START_TEST (test_cgroup_limits_land_in_the_controller_files)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  OK (nsrt_cgroup_create (test_path ("lim"), "lim", 0, &cg, err));
  int v2 = strcmp (layout_of (cg), "v2") == 0;
  json_object *res = J ("{\"memory\":{\"limit\":67108864,\"reservation\":33554432%s},"
                        "\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000,\"cpus\":\"0\",\"mems\":\"0\"},"
                        "\"pids\":{\"limit\":42},"
                        "\"devices\":[{\"allow\":false,\"access\":\"rwm\"},"
                        "{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":3,\"access\":\"rwm\"},"
                        "{\"allow\":true,\"type\":\"c\",\"major\":136,\"access\":\"rw\"}]}",
                        v2 ? "" : ",\"swappiness\":10");
  struct
  {
    const char *ctrl, *file, *want;
  } v1[] = {
    { "memory", "memory.limit_in_bytes", "67108864" },
    { "memory", "memory.soft_limit_in_bytes", "33554432" },
    { "memory", "memory.swappiness", "10" },
    { "cpu", "cpu.shares", "512" },
    { "cpu", "cpu.cfs_quota_us", "50000" },
    { "cpu", "cpu.cfs_period_us", "100000" },
    { "cpuset", "cpuset.cpus", "0" },
    { "cpuset", "cpuset.mems", "0" },
    { "pids", "pids.max", "42" },
    { "devices", "devices.list", "c 1:3 rwm" },
  },
    v2f[] = {
      { "", "memory.max", "67108864" }, { "", "memory.low", "33554432" }, { "", "cpu.weight", "20" },
      { "", "cpu.max", "50000 100000" }, { "", "cpuset.cpus", "0" },      { "", "pids.max", "42" },
    };
  /* skip, with the reason, what this host does not have */
  const char *need[] = { "memory", "cpu", "cpuset", "pids", "devices" };
  for (size_t i = 0; i < 5; i++)
    if (!v2 && dir_of (cg, need[i]) == NULL)
      {
        printf ("SKIP %s: no %s cgroup controller mounted\n", __func__, need[i]);
        OK (nsrt_cgroup_destroy (cg, err));
        nsrt_cgroup_free (cg);
        return;
      }
  OK (nsrt_cgroup_apply (cg, res, err));
  size_t n = v2 ? sizeof v2f / sizeof *v2f : sizeof v1 / sizeof *v1;
  for (size_t i = 0; i < n; i++)
    {
      char buf[4096];
      const char *dir = dir_of (cg, v2 ? v2f[i].ctrl : v1[i].ctrl);
      read_in (dir, v2 ? v2f[i].file : v1[i].file, buf, sizeof buf);
      if (strcmp (v1[i].file, "devices.list") == 0 && !v2)
        {
          char all[4096];
          char p[1200];
          snprintf (p, sizeof p, "%s/devices.list", dir);
          FILE *f = fopen (p, "r");
          size_t k = fread (all, 1, sizeof all - 1, f);
          all[k] = '\0';
          fclose (f);
          ck_assert_msg (strstr (all, "c 1:3 rwm") && strstr (all, "c 136:* rw") && !strstr (all, "a *:*")
                             && strstr (all, "c *:* m") && strstr (all, "c 5:2 rwm"),
                         "devices.list: %s", all);
          continue;
        }
      ck_assert_msg (strcmp (buf, v2 ? v2f[i].want : v1[i].want) == 0, "%s/%s = %s, want %s", dir,
                     v2 ? v2f[i].file : v1[i].file, buf, v2 ? v2f[i].want : v1[i].want);
    }
  /* update: unlimited again */
  OK (nsrt_cgroup_apply (cg, J ("{\"pids\":{\"limit\":-1},\"memory\":{\"limit\":-1}}"), err));
  char buf[64];
  read_in (dir_of (cg, v2 ? "" : "pids"), "pids.max", buf, sizeof buf);
  ck_assert_str_eq (buf, "max");
  json_object_put (res);
  OK (nsrt_cgroup_destroy (cg, err));
  ck_assert_int_eq (count_present (base), 0);
  nsrt_cgroup_free (cg);
}
END_TEST

START_TEST (test_cgroup_block_io_throttles_and_weight_land_in_blkio_or_io)
{
  NEED_ROOT ();
  /* any block device: throttles are per device */
  unsigned maj = 0, min = 0;
  FILE *f = fopen ("/sys/block/loop0/dev", "r");
  if (f == NULL)
    f = fopen ("/sys/block/vda/dev", "r");
  if (f == NULL || fscanf (f, "%u:%u", &maj, &min) != 2)
    {
      if (f)
        fclose (f);
      printf ("SKIP %s: no loop0 or vda block device to throttle\n", __func__);
      return;
    }
  fclose (f);
  struct nsrt_cgroup *cg;
  OK (nsrt_cgroup_create (test_path ("io"), "io", 0, &cg, err));
  int v2 = strcmp (layout_of (cg), "v2") == 0;
  const char *dir = dir_of (cg, v2 ? "" : "blkio");
  char ctrls[256] = "";
  if (v2 && dir)
    read_in (dir, "cgroup.controllers", ctrls, sizeof ctrls);
  if (dir == NULL || (v2 && !strstr (ctrls, "io")))
    {
      printf ("SKIP %s: no blkio/io controller\n", __func__);
      OK (nsrt_cgroup_destroy (cg, err));
      nsrt_cgroup_free (cg);
      return;
    }
  char d[256];
  snprintf (d, sizeof d, "%s", dir);
  OK (nsrt_cgroup_apply (cg,
                         J ("{\"blockIO\":{\"throttleReadBpsDevice\":[{\"major\":%u,\"minor\":%u,\"rate\":1048576}],"
                            "\"throttleWriteIOPSDevice\":[{\"major\":%u,\"minor\":%u,\"rate\":100}]}}",
                            maj, min, maj, min),
                         err));
  char buf[512], want[64];
  if (!v2)
    {
      read_in (d, "blkio.throttle.read_bps_device", buf, sizeof buf);
      snprintf (want, sizeof want, "%u:%u 1048576", maj, min);
      ck_assert_str_eq (buf, want);
      read_in (d, "blkio.throttle.write_iops_device", buf, sizeof buf);
      snprintf (want, sizeof want, "%u:%u 100", maj, min);
      ck_assert_str_eq (buf, want);
      char p[512];
      snprintf (p, sizeof p, "%s/blkio.bfq.weight", d);
      if (access (p, F_OK) == 0 || (snprintf (p, sizeof p, "%s/blkio.weight", d), access (p, F_OK) == 0))
        {
          OK (nsrt_cgroup_apply (cg, J ("{\"blockIO\":{\"weight\":300}}"), err));
          read_in (d, strrchr (p, '/') + 1, buf, sizeof buf);
          ck_assert_msg (strstr (buf, "300"), "%s = %s", p, buf);
        }
      else
        FAILS (nsrt_cgroup_apply (cg, J ("{\"blockIO\":{\"weight\":300}}"), err), "blockIO.weight",
               "neither blkio.weight nor");
    }
  else
    {
      read_in (d, "io.max", buf, sizeof buf);
      snprintf (want, sizeof want, "%u:%u rbps=1048576", maj, min);
      ck_assert_msg (strstr (buf, want), "io.max = %s", buf);
    }
  OK (nsrt_cgroup_destroy (cg, err));
  ck_assert_int_eq (count_present (base), 0);
  nsrt_cgroup_free (cg);
}
END_TEST

START_TEST (test_cgroup_bad_resources_are_named)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  OK (nsrt_cgroup_create (test_path ("bad"), "bad", 0, &cg, err));
  FAILS (nsrt_cgroup_apply (cg, J ("{\"memory\":{\"limit\":\"1g\"}}"), err), "linux.resources.memory.limit",
         "not an integer");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"memory\":[]}"), err), "linux.resources.memory: not an object");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"memory\":{\"limit\":1048576,\"swappiness\":101}}"), err), "swappiness",
         "101");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"pids\":{\"limit\":1.5}}"), err), "pids.limit");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"cpu\":{\"shares\":-5}}"), err), "cpu.shares", "negative");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"cpu\":{\"cpus\":\"0\\n1\"}}"), err), "cpu.cpus", "newline");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"devices\":[{\"allow\":true,\"type\":\"x\"}]}"), err), "devices[0].type",
         "`x`");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"devices\":[{\"allow\":true,\"access\":\"rwx\"}]}"), err), "devices[0].access");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"devices\":[{\"type\":\"c\"}]}"), err), "devices[0].allow");
  FAILS (nsrt_cgroup_apply (cg, J ("{\"cpu\":{\"cpus\":\"99999\"}}"), err), "cpuset.cpus", "99999");
  if (strcmp (layout_of (cg), "v2") != 0)
    FAILS (nsrt_cgroup_apply (cg, J ("{\"unified\":{\"memory.high\":\"1M\"}}"), err), "needs cgroup v2");
  OK (nsrt_cgroup_destroy (cg, err));
  nsrt_cgroup_free (cg);
}
END_TEST

/* the child enters the cgroup and uses memory before the limit comes */
START_TEST (test_cgroup_memory_below_usage_names_the_file_and_value_and_rolls_back)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  OK (nsrt_cgroup_create (test_path ("mem"), "mem", 0, &cg, err));
  if (strcmp (layout_of (cg), "v2") == 0 || dir_of (cg, "memory") == NULL)
    {
      /* cgroup v2 accepts memory.max below usage and OOM-kills instead */
      printf ("SKIP %s: needs the v1 memory controller (v2 OOM-kills rather than refuse)\n", __func__);
      OK (nsrt_cgroup_destroy (cg, err));
      nsrt_cgroup_free (cg);
      return;
    }
  int p[2];
  ck_assert_int_eq (pipe (p), 0);
  pid_t pid = fork ();
  if (pid == 0)
    {
      char c;
      close (p[1]);
      if (read (p[0], &c, 1) != 1)
        _exit (1);
      /* locked: reclaim (or swap) cannot make room under the new limit */
      size_t sz = 8 << 20;
      char *m = mmap (NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      memset (m, 1, sz);
      mlock (m, sz);
      for (;;)
        pause ();
    }
  close (p[0]);
  OK (nsrt_cgroup_enter (cg, pid, err));
  ck_assert_int_eq (write (p[1], "g", 1), 1);
  /* wait until the child has touched its pages */
  char buf[64];
  for (int t = 0; t < 500; t++)
    {
      read_in (dir_of (cg, "memory"), "memory.usage_in_bytes", buf, sizeof buf);
      if (atoll (buf) >= 8 << 20)
        break;
      usleep (10000);
    }
  ck_assert_msg (atoll (buf) >= 8 << 20, "the child's memory is not charged to the cgroup: %s", buf);
  FAILS (nsrt_cgroup_apply (cg, J ("{\"memory\":{\"limit\":4096}}"), err), "memory.limit_in_bytes", "\"4096\"");
  OK (nsrt_cgroup_destroy (cg, err));
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  ck_assert (WIFSIGNALED (st));
  ck_assert_int_eq (count_present (base), 0);
  close (p[1]);
  nsrt_cgroup_free (cg);
}
END_TEST

START_TEST (test_cgroup_pids_freeze_stats_and_destroy_kills_leftovers)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  OK (nsrt_cgroup_create (test_path ("life"), "life", 0, &cg, err));
  int p[2];
  ck_assert_int_eq (pipe (p), 0);
  pid_t pid = fork ();
  if (pid == 0)
    {
      char c;
      close (p[1]);
      if (read (p[0], &c, 1) != 1)
        _exit (1);
      /* in the cgroup now: a grandchild that burns a little cpu */
      if (fork () == 0)
        {
          for (volatile unsigned long i = 0; i < 20000000UL; i++)
            ;
          for (;;)
            pause ();
        }
      for (;;)
        pause ();
    }
  close (p[0]);
  OK (nsrt_cgroup_enter (cg, pid, err));
  ck_assert_int_eq (write (p[1], "g", 1), 1);
  pid_t *pids = NULL;
  size_t n = 0;
  for (int t = 0; t < 200 && n < 2; t++)
    {
      free (pids);
      OK (nsrt_cgroup_pids (cg, &pids, &n, err));
      usleep (5000);
    }
  ck_assert_int_eq (n, 2);
  ck_assert (pids[0] == pid || pids[1] == pid);
  free (pids);
  OK (nsrt_cgroup_freeze (cg, 1, err));
  char stat[512], path[64];
  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  FILE *f = fopen (path, "r");
  ck_assert (fgets (stat, sizeof stat, f));
  fclose (f);
  OK (nsrt_cgroup_freeze (cg, 0, err));
  usleep (300000);
  json_object *s;
  OK (nsrt_cgroup_stats (cg, "life", &s, err));
  printf ("%s: %s\n", __func__, json_object_to_json_string (s));
  json_object *data, *cpu, *usage, *total, *mem, *pidso, *cur, *blk;
  ck_assert (json_object_object_get_ex (s, "data", &data));
  ck_assert_str_eq (json_object_get_string (json_object_object_get (s, "type")), "stats");
  ck_assert_str_eq (json_object_get_string (json_object_object_get (s, "id")), "life");
  ck_assert (json_object_object_get_ex (data, "cpu", &cpu) && json_object_object_get_ex (cpu, "usage", &usage));
  ck_assert (json_object_object_get_ex (usage, "total", &total));
  ck_assert_msg (json_object_get_uint64 (total) > 0, "no cpu usage");
  ck_assert (json_object_object_get_ex (cpu, "throttling", &total));
  ck_assert (json_object_object_get_ex (data, "memory", &mem) && json_object_object_get_ex (mem, "usage", &usage));
  ck_assert (json_object_object_get_ex (usage, "limit", &total));
  ck_assert (json_object_object_get_ex (data, "pids", &pidso) && json_object_object_get_ex (pidso, "current", &cur));
  ck_assert_int_eq (json_object_get_int (cur), 2);
  ck_assert (json_object_object_get_ex (data, "blkio", &blk));
  json_object_put (s);
  unsigned long ooms = 99;
  ck_assert_int_eq (nsrt_cgroup_oom_count (cg, &ooms), 0);
  ck_assert_int_eq (ooms, 0);
  OK (nsrt_cgroup_destroy (cg, err));
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  ck_assert (WIFSIGNALED (st) && WTERMSIG (st) == SIGKILL);
  ck_assert_int_eq (count_present (base), 0);
  close (p[1]);
  nsrt_cgroup_free (cg);
  /* the frozen child was in state D/S/T as the kernel shows it: just that it read */
  ck_assert (strchr (stat, ')') != NULL);
}
END_TEST

START_TEST (test_cgroup_oom_kill_is_counted)
{
  NEED_ROOT ();
  struct nsrt_cgroup *cg;
  OK (nsrt_cgroup_create (test_path ("oom"), "oom", 0, &cg, err));
  if (dir_of (cg, strcmp (layout_of (cg), "v2") == 0 ? "" : "memory") == NULL)
    {
      printf ("SKIP %s: no memory cgroup controller\n", __func__);
      OK (nsrt_cgroup_destroy (cg, err));
      nsrt_cgroup_free (cg);
      return;
    }
  /* memory+swap equal to memory: no swap to escape to */
  OK (nsrt_cgroup_apply (cg, J ("{\"memory\":{\"limit\":33554432,\"swap\":33554432}}"), err));
  int p[2];
  ck_assert_int_eq (pipe (p), 0);
  pid_t pid = fork ();
  if (pid == 0)
    {
      char c;
      close (p[1]);
      if (read (p[0], &c, 1) != 1)
        _exit (1);
      size_t sz = 256 << 20;
      char *m = mmap (NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      memset (m, 1, sz);
      _exit (0);
    }
  close (p[0]);
  OK (nsrt_cgroup_enter (cg, pid, err));
  ck_assert_int_eq (write (p[1], "g", 1), 1);
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  ck_assert_msg (WIFSIGNALED (st) && WTERMSIG (st) == SIGKILL, "status 0x%x: not OOM-killed", st);
  unsigned long ooms = 0;
  ck_assert_int_eq (nsrt_cgroup_oom_count (cg, &ooms), 0);
  ck_assert_int_ge (ooms, 1);
  OK (nsrt_cgroup_destroy (cg, err));
  ck_assert_int_eq (count_present (base), 0);
  close (p[1]);
  nsrt_cgroup_free (cg);
}
END_TEST

/* Pure v2 and pure v1 hosts, made from this one in a private mount
 * namespace by unmounting the other kind: the layout must come from
 * mountinfo.  `keep` is "cgroup2" or "cgroup". */
static int
hide_other_hierarchies (const char *keep)
{
  if (unshare (CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return -1;
  char mnts[32][512];
  int n = 0, kept = 0;
  FILE *f = fopen ("/proc/self/mountinfo", "r");
  char line[4096];
  while (fgets (line, sizeof line, f))
    {
      char mnt[512];
      if (sscanf (line, "%*s %*s %*s %*s %511s", mnt) != 1)
        continue;
      int v1 = strstr (line, " - cgroup ") != NULL, v2 = strstr (line, " - cgroup2 ") != NULL;
      if ((v1 || v2) && strcmp (keep, v2 ? "cgroup2" : "cgroup") != 0 && n < 32)
        snprintf (mnts[n++], sizeof mnts[0], "%s", mnt);
      else if (v1 || v2)
        kept++;
    }
  fclose (f);
  for (int i = 0; i < n; i++)
    if (umount2 (mnts[i], MNT_DETACH) < 0)
      return -1;
  return kept;
}

static void
v2_only (void *arg)
{
  (void) arg;
  struct nsrt_err e = { "" };
  int kept = hide_other_hierarchies ("cgroup2");
  if (kept < 0)
    child_fail ("mount namespace: %s", strerror (errno));
  if (kept == 0)
    _exit (77);
  struct nsrt_cgroup *cg;
  if (nsrt_cgroup_create (test_path ("v2"), "v2", 0, &cg, &e) < 0)
    child_fail ("create: %s", e.msg);
  if (strcmp (layout_of (cg), "v2") != 0)
    child_fail ("layout %s, want v2", layout_of (cg));
  pid_t pid = fork ();
  if (pid == 0)
    for (;;)
      pause ();
  if (nsrt_cgroup_enter (cg, pid, &e) < 0)
    child_fail ("enter: %s", e.msg);
  pid_t *pids;
  size_t n;
  if (nsrt_cgroup_pids (cg, &pids, &n, &e) < 0 || n != 1 || pids[0] != pid)
    child_fail ("pids: %s (%zu)", e.msg, n);
  free (pids);
  char buf[256];
  const char *dir = dir_of (cg, "");
  if (nsrt_cgroup_freeze (cg, 1, &e) < 0)
    child_fail ("freeze: %s", e.msg);
  char p[1100];
  snprintf (p, sizeof p, "%s/cgroup.events", dir);
  FILE *f = fopen (p, "r");
  size_t k = fread (buf, 1, sizeof buf - 1, f);
  buf[k] = '\0';
  fclose (f);
  if (!strstr (buf, "frozen 1"))
    child_fail ("cgroup.events after freeze: %s", buf);
  if (nsrt_cgroup_freeze (cg, 0, &e) < 0)
    child_fail ("thaw: %s", e.msg);
  json_object *st;
  if (nsrt_cgroup_stats (cg, "v2", &st, &e) < 0 || !json_object_object_get (st, "data"))
    child_fail ("stats: %s", e.msg);
  json_object_put (st);
  /* a controller this cgroup2 does not have: named, not a bare ENOENT */
  snprintf (p, sizeof p, "%s/cgroup.controllers", dir);
  f = fopen (p, "r");
  k = fread (buf, 1, sizeof buf - 1, f);
  buf[k] = '\0';
  fclose (f);
  json_object *r = json_tokener_parse ("{\"pids\":{\"limit\":10}}");
  int ok = nsrt_cgroup_apply (cg, r, &e);
  json_object_put (r);
  if (!strstr (buf, "pids") && (ok == 0 || !strstr (e.msg, "pids controller is not enabled")))
    child_fail ("pids.limit without the controller: %s", ok == 0 ? "accepted" : e.msg);
  /* destroy uses cgroup.kill */
  if (nsrt_cgroup_destroy (cg, &e) < 0)
    child_fail ("destroy: %s", e.msg);
  int status;
  if (waitpid (pid, &status, 0) != pid || !WIFSIGNALED (status))
    child_fail ("the process in the cgroup was not killed");
  if (count_present (base) != 0)
    child_fail ("%s left behind", base);
  nsrt_cgroup_free (cg);
}

static void
v1_only (void *arg)
{
  (void) arg;
  struct nsrt_err e = { "" };
  int kept = hide_other_hierarchies ("cgroup");
  if (kept < 0)
    child_fail ("mount namespace: %s", strerror (errno));
  if (kept == 0)
    _exit (77);
  struct nsrt_cgroup *cg;
  if (nsrt_cgroup_create (test_path ("v1"), "v1", 0, &cg, &e) < 0)
    child_fail ("create: %s", e.msg);
  if (strcmp (layout_of (cg), "v1") != 0)
    child_fail ("layout %s, want v1", layout_of (cg));
  if (dir_of (cg, "") != NULL)
    child_fail ("a cgroup2 hierarchy on a v1 host");
  if (count_present (test_path ("v1")) != kept)
    child_fail ("made in %d of %d hierarchies", count_present (test_path ("v1")), kept);
  if (nsrt_cgroup_destroy (cg, &e) < 0)
    child_fail ("destroy: %s", e.msg);
  if (count_present (base) != 0)
    child_fail ("%s left behind", base);
  nsrt_cgroup_free (cg);
}

/* fn in a child (its own mount namespace dies with it): 0 when it passed,
 * 77 when it could not run here; fails the test otherwise */
static int
run_isolated (void (*fn) (void *))
{
  int p[2];
  ck_assert_int_eq (pipe (p), 0);
  pid_t pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    {
      close (p[0]);
      child_pipe = p[1];
      fn (NULL);
      _exit (0);
    }
  close (p[1]);
  char msg[1024] = "";
  ssize_t n = read (p[0], msg, sizeof msg - 1);
  msg[n > 0 ? n : 0] = '\0';
  close (p[0]);
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  if (WIFEXITED (st) && WEXITSTATUS (st) == 77)
    return 77;
  ck_assert_msg (WIFEXITED (st) && WEXITSTATUS (st) == 0, "child failed (0x%x): %s", st, msg);
  return 0;
}

START_TEST (test_cgroup_pure_v2_layout_freezes_and_kills_through_cgroup2)
{
  NEED_ROOT ();
  if (run_isolated (v2_only) == 77)
    printf ("SKIP %s: no cgroup2 mount on this host\n", __func__);
  ck_assert_int_eq (count_present (test_path ("v2")), 0);
}
END_TEST

START_TEST (test_cgroup_pure_v1_layout_makes_no_cgroup2_directory)
{
  NEED_ROOT ();
  if (run_isolated (v1_only) == 77)
    printf ("SKIP %s: no cgroup v1 hierarchy on this host\n", __func__);
  ck_assert_int_eq (count_present (test_path ("v1")), 0);
}
END_TEST

/* ---- seccomp ---- */

/* When set, load_then_mkdir goes through the cache of compiled filters. */
static const char *seccomp_cache;

static void
load_then_mkdir (void *arg)
{
  struct nsrt_seccomp *s;
  struct nsrt_err e = { "" };
  int r = seccomp_cache ? nsrt_seccomp_prepare_cached (arg, seccomp_cache, &s, &e) : nsrt_seccomp_prepare (arg, &s, &e);
  if (r < 0 || nsrt_seccomp_load (s, &e) < 0)
    child_fail ("%s", e.msg);
  char d[64];
  snprintf (d, sizeof d, "/tmp/berth-test-seccomp-%d", (int) getpid ());
  if (mkdir (d, 0700) == 0)
    {
      rmdir (d);
      child_fail ("mkdir succeeded under the filter");
    }
  if (errno != EACCES)
    child_fail ("mkdir: errno %d, want EACCES from errnoRet", errno);
  /* MASKED_EQ on unshare's flags: CLONE_NEWUTS passes, CLONE_NEWNS does not */
  if (unshare (CLONE_NEWUTS) < 0)
    child_fail ("unshare(CLONE_NEWUTS): %s", strerror (errno));
  if (unshare (CLONE_NEWNS) == 0 || errno != EPERM)
    child_fail ("unshare(CLONE_NEWNS) was not refused with EPERM (errno %d)", errno);
  /* two comparisons on different arguments: both must hold (AND) */
  int fd = socket (AF_NETLINK, SOCK_RAW, 9);
  if (fd >= 0 || errno != EINVAL)
    child_fail ("socket(AF_NETLINK, SOCK_RAW, 9) was not refused with EINVAL (errno %d)", errno);
  fd = socket (AF_NETLINK, SOCK_RAW, 0);
  if (fd < 0)
    child_fail ("socket(AF_NETLINK, SOCK_RAW, 0): %s", strerror (errno));
  close (fd);
  /* two comparisons on the same argument: either one matches (OR) */
  if (personality (0x0008) != -1 || errno != ENOTTY || personality (0x20000) != -1 || errno != ENOTTY)
    child_fail ("personality with either value was not refused with ENOTTY (errno %d)", errno);
  if (personality (0xffffffff) < 0)
    child_fail ("personality(query) refused: %s", strerror (errno));
  if (getpid () <= 0)
    child_fail ("getpid");
  nsrt_seccomp_free (s);
}

START_TEST (test_seccomp_errno_rule_makes_the_syscall_fail_after_load)
{
  NEED_ROOT ();
  json_object *sec
      = J ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\","
           "\"SCMP_ARCH_X32\",\"SCMP_ARCH_AARCH64\"],\"flags\":[\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"],"
           "\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\",\"no_such_syscall_at_all\"],\"action\":\"SCMP_ACT_ERRNO\","
           "\"errnoRet\":13},"
           "{\"names\":[\"unshare\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":%d,"
           "\"valueTwo\":%d,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},"
           "{\"names\":[\"socket\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":22,\"args\":["
           "{\"index\":0,\"value\":16,\"op\":\"SCMP_CMP_EQ\"},{\"index\":2,\"value\":9,\"op\":\"SCMP_CMP_EQ\"}]},"
           "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":25,\"args\":["
           "{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"},{\"index\":0,\"value\":131072,\"op\":\"SCMP_CMP_EQ\"}]},"
           "{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
           CLONE_NEWNS, CLONE_NEWNS);
  in_child (load_then_mkdir, sec);
  json_object_put (sec);
}
END_TEST

static int
count_bpf (const char *dir, mode_t *ret_mode)
{
  char cmd[256];
  snprintf (cmd, sizeof cmd, "ls %s/*.bpf 2>/dev/null | wc -l", dir);
  FILE *p = popen (cmd, "r");
  int n = -1;
  if (p == NULL || fscanf (p, "%d", &n) != 1)
    n = -1;
  if (p)
    pclose (p);
  snprintf (cmd, sizeof cmd, "stat -c %%a %s/*.bpf 2>/dev/null | head -1", dir);
  p = popen (cmd, "r");
  unsigned m = 0;
  if (p && fscanf (p, "%o", &m) == 1)
    *ret_mode = (mode_t) m;
  if (p)
    pclose (p);
  return n;
}

/* The compiled-filter cache: a miss stores the program, a hit loads the
 * same filter (the same denials hold), a file others could have written is
 * not used (and is replaced). */
START_TEST (test_seccomp_cache_hit_loads_the_same_filter)
{
  NEED_ROOT ();
  char dir[] = "/tmp/berth-test-seccache-XXXXXX";
  ck_assert_ptr_nonnull (mkdtemp (dir));
  char cache[sizeof dir + 16];
  snprintf (cache, sizeof cache, "%s/cache", dir);
  json_object *sec
      = J ("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],"
           "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":13},"
           "{\"names\":[\"unshare\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":%d,"
           "\"valueTwo\":%d,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},"
           "{\"names\":[\"socket\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":22,\"args\":["
           "{\"index\":0,\"value\":16,\"op\":\"SCMP_CMP_EQ\"},{\"index\":2,\"value\":9,\"op\":\"SCMP_CMP_EQ\"}]},"
           "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":25,\"args\":["
           "{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"},{\"index\":0,\"value\":131072,\"op\":\"SCMP_CMP_EQ\"}]}]}",
           CLONE_NEWNS, CLONE_NEWNS);
  seccomp_cache = cache;
  mode_t mode = 0;
  in_child (load_then_mkdir, sec); /* miss: built and stored */
  ck_assert_int_eq (count_bpf (cache, &mode), 1);
  ck_assert_uint_eq (mode, 0600);
  in_child (load_then_mkdir, sec); /* hit */
  ck_assert_int_eq (count_bpf (cache, &mode), 1);
  char cmd[256];
  snprintf (cmd, sizeof cmd, "chmod 0666 %s/*.bpf", cache);
  ck_assert_int_eq (system (cmd), 0);
  in_child (load_then_mkdir, sec); /* not trusted: rebuilt, replaced */
  ck_assert_int_eq (count_bpf (cache, &mode), 1);
  ck_assert_uint_eq (mode, 0600);
  seccomp_cache = NULL;
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  ck_assert_int_eq (system (cmd), 0);
}
END_TEST

/* Docker's default profile format -> OCI linux.seccomp, the way Docker and
 * berth's spec generator do it: the arch map of this machine, and the
 * entries whose includes/excludes match Docker's default capabilities. */
static const char *const docker_caps[] = { "CAP_CHOWN",  "CAP_DAC_OVERRIDE",     "CAP_FSETID",  "CAP_FOWNER",
                                           "CAP_MKNOD",  "CAP_NET_RAW",          "CAP_SETGID",  "CAP_SETUID",
                                           "CAP_SETFCAP", "CAP_SETPCAP",         "CAP_NET_BIND_SERVICE",
                                           "CAP_SYS_CHROOT", "CAP_KILL",         "CAP_AUDIT_WRITE", NULL };

static int
has_cap (const char *c)
{
  for (int i = 0; docker_caps[i]; i++)
    if (strcmp (docker_caps[i], c) == 0)
      return 1;
  return 0;
}

static int
strv_has (json_object *a, const char *s)
{
  for (size_t i = 0; a && i < json_object_array_length (a); i++)
    if (strcmp (json_object_get_string (json_object_array_get_idx (a, i)), s) == 0)
      return 1;
  return 0;
}

static json_object *
docker_to_oci (json_object *prof)
{
  json_object *o = json_object_new_object (), *v, *archs = json_object_new_array (), *calls = json_object_new_array ();
  json_object_object_add (o, "defaultAction", json_object_get (json_object_object_get (prof, "defaultAction")));
  if (json_object_object_get_ex (prof, "defaultErrnoRet", &v))
    json_object_object_add (o, "defaultErrnoRet", json_object_get (v));
#if defined(__x86_64__)
  const char *native = "SCMP_ARCH_X86_64", *goarch = "amd64";
#elif defined(__aarch64__)
  const char *native = "SCMP_ARCH_AARCH64", *goarch = "arm64";
#else
  const char *native = "", *goarch = "";
#endif
  json_object *map = json_object_object_get (prof, "archMap");
  for (size_t i = 0; map && i < json_object_array_length (map); i++)
    {
      json_object *m = json_object_array_get_idx (map, i);
      if (strcmp (json_object_get_string (json_object_object_get (m, "architecture")), native) != 0)
        continue;
      json_object_array_add (archs, json_object_new_string (native));
      json_object *subs = json_object_object_get (m, "subArchitectures");
      for (size_t k = 0; subs && k < json_object_array_length (subs); k++)
        json_object_array_add (archs, json_object_get (json_object_array_get_idx (subs, k)));
    }
  json_object_object_add (o, "architectures", archs);
  json_object *sys = json_object_object_get (prof, "syscalls");
  for (size_t i = 0; i < json_object_array_length (sys); i++)
    {
      json_object *s = json_object_array_get_idx (sys, i), *inc = NULL, *exc = NULL, *a;
      json_object_object_get_ex (s, "includes", &inc);
      json_object_object_get_ex (s, "excludes", &exc);
      int keep = 1;
      if (exc && (a = json_object_object_get (exc, "arches")) && strv_has (a, goarch))
        keep = 0;
      if (exc && (a = json_object_object_get (exc, "caps")))
        for (size_t k = 0; k < json_object_array_length (a); k++)
          keep &= !has_cap (json_object_get_string (json_object_array_get_idx (a, k)));
      if (inc && (a = json_object_object_get (inc, "arches")) && json_object_array_length (a) > 0
          && !strv_has (a, goarch))
        keep = 0;
      if (inc && (a = json_object_object_get (inc, "caps")))
        for (size_t k = 0; k < json_object_array_length (a); k++)
          keep &= has_cap (json_object_get_string (json_object_array_get_idx (a, k)));
      if (!keep)
        continue;
      json_object *c = json_object_new_object ();
      json_object_object_add (c, "names", json_object_get (json_object_object_get (s, "names")));
      json_object_object_add (c, "action", json_object_get (json_object_object_get (s, "action")));
      if (json_object_object_get_ex (s, "errnoRet", &v))
        json_object_object_add (c, "errnoRet", json_object_get (v));
      if (json_object_object_get_ex (s, "args", &v) && v)
        json_object_object_add (c, "args", json_object_get (v));
      json_object_array_add (calls, c);
    }
  json_object_object_add (o, "syscalls", calls);
  return o;
}

static void
load_docker_profile (void *arg)
{
  struct nsrt_seccomp *s;
  struct nsrt_err e = { "" };
  if (nsrt_seccomp_prepare (arg, &s, &e) < 0 || nsrt_seccomp_load (s, &e) < 0)
    child_fail ("%s", e.msg);
  char d[64];
  snprintf (d, sizeof d, "/tmp/berth-test-seccomp-%d", (int) getpid ());
  if (mkdir (d, 0700) < 0 || rmdir (d) < 0)
    child_fail ("mkdir/rmdir are allowed by the profile but failed: %s", strerror (errno));
  /* acct needs CAP_SYS_PACCT, not a default capability: errnoRet 1 */
  if (syscall (SYS_acct, NULL) == 0 || errno != EPERM)
    child_fail ("acct was not refused with EPERM (errno %d)", errno);
  /* personality is allowed for a few values only (args with EQ) */
  if (personality (0xffffffff) < 0)
    child_fail ("personality(query) refused: %s", strerror (errno));
  if (personality (0x1234) != -1)
    child_fail ("personality(0x1234) was allowed");
  /* and what the profile does not list gets the default errno */
  if (syscall (SYS_add_key, "user", "x", "y", 1, 0) != -1 || errno != ENOSYS)
    child_fail ("add_key did not fail with ENOSYS (errno %d)", errno);
  nsrt_seccomp_free (s);
}

START_TEST (test_seccomp_docker_default_profile_converted_to_oci_loads)
{
  NEED_ROOT ();
  json_object *prof = json_object_from_file (SECCOMP_PROFILE);
  if (prof == NULL)
    {
      printf ("SKIP %s: no profile at %s (golang-github-containers-common)\n", __func__, SECCOMP_PROFILE);
      return;
    }
  json_object *oci = docker_to_oci (prof);
  ck_assert_int_gt (json_object_array_length (json_object_object_get (oci, "syscalls")), 5);
  in_child (load_docker_profile, oci);
  json_object_put (oci);
  json_object_put (prof);
}
END_TEST

START_TEST (test_seccomp_hostile_input_is_refused_naming_the_entry)
{
  struct nsrt_seccomp *s;
  const char *head = "\"defaultAction\":\"SCMP_ACT_ALLOW\"";
  FAILS (nsrt_seccomp_prepare (J ("{\"syscalls\":[]}"), &s, err), "defaultAction");
  FAILS (nsrt_seccomp_prepare (J ("{\"defaultAction\":\"SCMP_ACT_NOPE\"}"), &s, err), "unknown action",
         "SCMP_ACT_NOPE");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"architectures\":[\"SCMP_ARCH_VAX\"]}", head), &s, err),
         "architectures[0]", "SCMP_ARCH_VAX");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"flags\":[\"SECCOMP_FILTER_FLAG_NOPE\"]}", head), &s, err), "flags[0]");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}", head),
                               &s, err),
         "syscalls[0]", "not supported");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
                                  "\"args\":[{\"index\":7,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                                  head),
                               &s, err),
         "syscalls[0].args[0].index", "out of range");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\"},"
                                  "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,"
                                  "\"value\":\"1\",\"op\":\"SCMP_CMP_EQ\"}]}]}",
                                  head),
                               &s, err),
         "syscalls[1].args[0].value", "not an integer");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
                                  "\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_LIKE\"}]}]}",
                                  head),
                               &s, err),
         "syscalls[0].args[0].op", "SCMP_CMP_LIKE");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":\"read\",\"action\":\"SCMP_ACT_ERRNO\"}]}", head), &s,
                               err),
         "syscalls[0].names");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":[5],\"action\":\"SCMP_ACT_ERRNO\"}]}", head), &s, err),
         "syscalls[0].names[0]");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[7]}", head), &s, err), "syscalls[0]: not an object");
  FAILS (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\","
                                  "\"errnoRet\":-1}]}",
                                  head),
                               &s, err),
         "errnoRet");
  /* an unknown name is skipped, a missing seccomp is no filter */
  OK (nsrt_seccomp_prepare (J ("{%s,\"syscalls\":[{\"names\":[\"no_such_call\"],\"action\":\"SCMP_ACT_KILL\"}]}", head),
                            &s, err));
  ck_assert_ptr_nonnull (s);
  nsrt_seccomp_free (s);
  OK (nsrt_seccomp_prepare (NULL, &s, err));
  ck_assert_ptr_null (s);
  OK (nsrt_seccomp_load (NULL, err));
}
END_TEST

/* ---- capabilities ---- */

static unsigned long long
status_mask (const char *key)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  unsigned long long v = ~0ULL;
  size_t len = strlen (key);
  while (fgets (line, sizeof line, f))
    if (strncmp (line, key, len) == 0 && line[len] == ':')
      v = strtoull (line + len + 1, NULL, 16);
  fclose (f);
  return v;
}

static void
caps_then_check (void *arg)
{
  int as_nobody = *(int *) arg;
  struct nsrt_err e = { "" };
  json_object *caps = json_tokener_parse (
      "{\"bounding\":[\"CAP_NET_BIND_SERVICE\",\"CAP_CHOWN\",\"CAP_KILL\"],"
      "\"effective\":[\"CAP_NET_BIND_SERVICE\",\"CAP_CHOWN\"],"
      "\"permitted\":[\"CAP_NET_BIND_SERVICE\",\"CAP_CHOWN\",\"CAP_KILL\"],"
      "\"inheritable\":[\"CAP_NET_BIND_SERVICE\"],\"ambient\":[\"CAP_NET_BIND_SERVICE\",\"CAP_KILL\"]}");
  if (nsrt_caps_prepare (&e) < 0)
    child_fail ("%s", e.msg);
  if (as_nobody && (setresgid (65534, 65534, 65534) < 0 || setresuid (65534, 65534, 65534) < 0))
    child_fail ("setresuid: %s", strerror (errno));
  if (nsrt_caps_apply (caps, &e) < 0)
    child_fail ("%s", e.msg);
  /* CAP_KILL is not inheritable: not raised in ambient (runc warns and goes on) */
  unsigned long long nbs = 1ULL << CAP_NET_BIND_SERVICE, ch = 1ULL << CAP_CHOWN, k = 1ULL << CAP_KILL;
  struct
  {
    const char *key;
    unsigned long long want;
  } checks[] = { { "CapBnd", nbs | ch | k }, { "CapEff", nbs | ch }, { "CapPrm", nbs | ch | k },
                 { "CapInh", nbs },          { "CapAmb", nbs } };
  for (size_t i = 0; i < 5; i++)
    if (status_mask (checks[i].key) != checks[i].want)
      child_fail ("%s = %llx, want %llx", checks[i].key, status_mask (checks[i].key), checks[i].want);
  if (as_nobody && getuid () != 65534)
    child_fail ("uid %d", (int) getuid ());
  json_object_put (caps);
}

START_TEST (test_caps_apply_sets_every_set_as_root)
{
  NEED_ROOT ();
  int as_nobody = 0;
  in_child (caps_then_check, &as_nobody);
}
END_TEST

START_TEST (test_caps_survive_the_uid_change)
{
  NEED_ROOT ();
  int as_nobody = 1;
  in_child (caps_then_check, &as_nobody);
}
END_TEST

static void
caps_bad (void *arg)
{
  (void) arg;
  struct nsrt_err e = { "" };
  json_object *caps = json_tokener_parse ("{\"bounding\":[\"CAP_CHOWN\",\"CAP_NOPE\"],\"effective\":[]}");
  if (nsrt_caps_apply (caps, &e) == 0)
    child_fail ("CAP_NOPE was accepted");
  if (!strstr (e.msg, "CAP_NOPE") || !strstr (e.msg, "bounding[1]"))
    child_fail ("message does not name the cap: %s", e.msg);
  /* nothing was dropped before the error */
  if (status_mask ("CapBnd") == (1ULL << CAP_CHOWN))
    child_fail ("the bounding set changed");
  json_object_put (caps);
  caps = json_tokener_parse ("{\"bounding\":[\"cap_chown\"]}");
  if (nsrt_caps_apply (caps, &e) == 0 || !strstr (e.msg, "cap_chown"))
    child_fail ("lower case name: %s", e.msg);
  json_object_put (caps);
  caps = json_tokener_parse ("{\"bounding\":\"CAP_CHOWN\"}");
  if (nsrt_caps_apply (caps, &e) == 0 || !strstr (e.msg, "bounding: not an array"))
    child_fail ("bounding as a string: %s", e.msg);
  json_object_put (caps);
}

START_TEST (test_caps_unknown_name_is_an_error_naming_it)
{
  NEED_ROOT ();
  in_child (caps_bad, NULL);
}
END_TEST

/* ---- rlimits, oom_score_adj ---- */

static void
rlimits_child (void *arg)
{
  (void) arg;
  struct nsrt_err e = { "" };
  /* lower than today's hard limit: raising it needs CAP_SYS_RESOURCE */
  struct rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  unsigned long long hard = rl.rlim_max < 1024 ? rl.rlim_max : 1024, soft = hard / 2;
  char text[256];
  snprintf (text, sizeof text,
            "[{\"type\":\"RLIMIT_NOFILE\",\"soft\":%llu,\"hard\":%llu},"
            "{\"type\":\"RLIMIT_CORE\",\"soft\":0,\"hard\":0}]",
            soft, hard);
  json_object *r = json_tokener_parse (text);
  if (nsrt_rlimits_apply (r, &e) < 0)
    child_fail ("%s", e.msg);
  getrlimit (RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur != soft || rl.rlim_max != hard)
    child_fail ("RLIMIT_NOFILE %llu/%llu", (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
  getrlimit (RLIMIT_CORE, &rl);
  if (rl.rlim_cur != 0 || rl.rlim_max != 0)
    child_fail ("RLIMIT_CORE %llu/%llu", (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
  json_object_put (r);
  /* values above INT64_MAX (RLIM_INFINITY) parse as unsigned */
  r = json_tokener_parse ("[{\"type\":\"RLIMIT_CORE\",\"soft\":0,\"hard\":18446744073709551615}]");
  /* allowed with CAP_SYS_RESOURCE; without it the error shows the value */
  if (nsrt_rlimits_apply (r, &e) == 0)
    {
      getrlimit (RLIMIT_CORE, &rl);
      if (rl.rlim_max != RLIM_INFINITY)
        child_fail ("RLIMIT_CORE hard %llu, want infinity", (unsigned long long) rl.rlim_max);
    }
  else if (!strstr (e.msg, "RLIMIT_CORE") || !strstr (e.msg, "18446744073709551615"))
    child_fail ("the error does not name the limit and value: %s", e.msg);
  json_object_put (r);
}

START_TEST (test_rlimits_are_set_and_unknown_ones_named)
{
  in_child (rlimits_child, NULL);
  FAILS (nsrt_rlimits_apply (J ("[{\"type\":\"RLIMIT_BOGUS\",\"soft\":1,\"hard\":1}]"), err), "RLIMIT_BOGUS");
  FAILS (nsrt_rlimits_apply (J ("[{\"type\":\"RLIMIT_NOFILE\",\"soft\":\"1\",\"hard\":1}]"), err), "rlimits[0].soft");
  FAILS (nsrt_rlimits_apply (J ("[{\"type\":\"RLIMIT_NOFILE\",\"soft\":10,\"hard\":1}]"), err), "above the hard");
  FAILS (nsrt_rlimits_apply (J ("[{\"type\":\"RLIMIT_NOFILE\",\"soft\":-1,\"hard\":1}]"), err), "negative");
  FAILS (nsrt_rlimits_apply (J ("{}"), err), "not an array");
  FAILS (nsrt_rlimits_apply (J ("[{\"soft\":1,\"hard\":1}]"), err), "rlimits[0].type");
}
END_TEST

static int
oom_now (void)
{
  char buf[32] = "";
  int fd = open ("/proc/self/oom_score_adj", O_RDONLY);
  if (read (fd, buf, sizeof buf - 1) < 0)
    buf[0] = '\0';
  close (fd);
  return atoi (buf);
}

static void
oom_child (void *arg)
{
  (void) arg;
  struct nsrt_err e = { "" };
  /* without CAP_SYS_RESOURCE the kernel refuses to go below the lowest
   * value set with it (oom_score_adj_min, 0 unless someone lowered it) */
  cap_t c = cap_get_proc ();
  cap_value_t v = CAP_SYS_RESOURCE;
  cap_set_flag (c, CAP_EFFECTIVE, 1, &v, CAP_CLEAR);
  if (cap_set_proc (c) < 0)
    child_fail ("drop CAP_SYS_RESOURCE: %s", strerror (errno));
  cap_free (c);
  if (nsrt_oom_score_adj (500, &e) < 0 || oom_now () != 500)
    child_fail ("raise to 500: %s (now %d)", e.msg, oom_now ());
  int fd = open ("/proc/self/oom_score_adj", O_WRONLY);
  int refused = write (fd, "-1000", 5) < 0 && errno == EACCES;
  close (fd);
  if (!refused)
    child_fail ("SKIP: the kernel let -1000 through without CAP_SYS_RESOURCE");
  if (nsrt_oom_score_adj (-1000, &e) < 0)
    child_fail ("lowering failed instead of clamping: %s", e.msg);
  if (oom_now () != 500)
    child_fail ("after clamping: %d, want 500", oom_now ());
  if (nsrt_oom_score_adj (700, &e) < 0 || oom_now () != 700)
    child_fail ("raise to 700: %s (now %d)", e.msg, oom_now ());
  if (nsrt_oom_score_adj (1001, &e) == 0 || !strstr (e.msg, "1001"))
    child_fail ("1001 accepted: %s", e.msg);
}

START_TEST (test_oom_score_adj_raises_and_clamps_when_lowering_is_refused)
{
  NEED_ROOT ();
  in_child (oom_child, NULL);
}
END_TEST

/* After a tcase, in the runner: whatever a failed test left under our
 * prefixes (a failing ck_assert ends the test before its destroy) is
 * killed and removed, so that a failure does not leak cgroups. */
static void
sweep (const char *dir, int depth)
{
  char p[2048];
  snprintf (p, sizeof p, "%s/cgroup.procs", dir);
  FILE *f = fopen (p, "r");
  long pid;
  while (f && fscanf (f, "%ld", &pid) == 1)
    kill ((pid_t) pid, SIGKILL);
  if (f)
    fclose (f);
  DIR *d = opendir (dir);
  struct dirent *de;
  while (d && depth < 8 && (de = readdir (d)))
    if (de->d_type == DT_DIR && de->d_name[0] != '.')
      {
        snprintf (p, sizeof p, "%s/%s", dir, de->d_name);
        sweep (p, depth + 1);
      }
  if (d)
    closedir (d);
  for (int t = 0; t < 100 && rmdir (dir) < 0 && errno == EBUSY; t++)
    usleep (10000);
}

static void
sweep_test_cgroups (void)
{
  FILE *f = fopen ("/proc/self/mountinfo", "r");
  char line[4096];
  while (f && fgets (line, sizeof line, f))
    {
      char mnt[1024];
      if (sscanf (line, "%*s %*s %*s %*s %1023s", mnt) != 1
          || (!strstr (line, " - cgroup ") && !strstr (line, " - cgroup2 ")))
        continue;
      DIR *d = opendir (mnt);
      struct dirent *de;
      while (d && (de = readdir (d)))
        if (de->d_type == DT_DIR
            && (strncmp (de->d_name, "berth-test-", 11) == 0 || strcmp (de->d_name, "berthtest.slice") == 0))
          {
            char p[1300];
            snprintf (p, sizeof p, "%s/%s", mnt, de->d_name);
            sweep (p, 0);
          }
      if (d)
        closedir (d);
      char p[1200];
      snprintf (p, sizeof p, "%s/berth/berth-test-default", mnt);
      if (is_dir (p))
        sweep (p, 0);
    }
  if (f)
    fclose (f);
}

static Suite *
nsrt_sec_suite (void)
{
  Suite *su = suite_create ("nsrt-sec");
  TCase *tc = tcase_create ("cgroup");
  tcase_add_checked_fixture (tc, NULL, pool_free);
  tcase_set_timeout (tc, 60);
  tcase_add_unchecked_fixture (tc, NULL, sweep_test_cgroups);
  tcase_add_test (tc, test_cgroup_is_made_in_every_hierarchy_and_removed_with_what_it_created);
  tcase_add_test (tc, test_cgroup_destroy_never_removes_a_path_it_did_not_create);
  tcase_add_test (tc, test_cgroup_state_from_a_tampered_file_is_refused);
  tcase_add_test (tc, test_cgroup_paths_are_checked);
  tcase_add_test (tc, test_cgroup_limits_land_in_the_controller_files);
  tcase_add_test (tc, test_cgroup_block_io_throttles_and_weight_land_in_blkio_or_io);
  tcase_add_test (tc, test_cgroup_bad_resources_are_named);
  tcase_add_test (tc, test_cgroup_memory_below_usage_names_the_file_and_value_and_rolls_back);
  tcase_add_test (tc, test_cgroup_pids_freeze_stats_and_destroy_kills_leftovers);
  tcase_add_test (tc, test_cgroup_oom_kill_is_counted);
  tcase_add_test (tc, test_cgroup_pure_v2_layout_freezes_and_kills_through_cgroup2);
  tcase_add_test (tc, test_cgroup_pure_v1_layout_makes_no_cgroup2_directory);
  suite_add_tcase (su, tc);
  tc = tcase_create ("process");
  tcase_add_checked_fixture (tc, NULL, pool_free);
  tcase_add_test (tc, test_seccomp_errno_rule_makes_the_syscall_fail_after_load);
  tcase_add_test (tc, test_seccomp_cache_hit_loads_the_same_filter);
  tcase_add_test (tc, test_seccomp_docker_default_profile_converted_to_oci_loads);
  tcase_add_test (tc, test_seccomp_hostile_input_is_refused_naming_the_entry);
  tcase_add_test (tc, test_caps_apply_sets_every_set_as_root);
  tcase_add_test (tc, test_caps_survive_the_uid_change);
  tcase_add_test (tc, test_caps_unknown_name_is_an_error_naming_it);
  tcase_add_test (tc, test_rlimits_are_set_and_unknown_ones_named);
  tcase_add_test (tc, test_oom_score_adj_raises_and_clamps_when_lowering_is_refused);
  suite_add_tcase (su, tc);
  return su;
}

CHECK_MAIN (nsrt_sec_suite)
