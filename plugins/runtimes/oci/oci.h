/* io.berth.runtime.v1.oci: runc, crun or another runc-compatible binary
 * under berth-shim (libberth-shimrt).  The plugin adds the choice of the
 * runtime per task to the library:
 *
 *   [plugins."io.berth.runtime.v1.oci"]
 *   default = "runc"
 *   [plugins."io.berth.runtime.v1.oci".runtimes.myrunc]
 *   binary = "/opt/runc/runc"        # absolute, or a name looked up in PATH
 *   options = ["--debug"]            # global args before the verb
 *   systemd_cgroup = false           # adds --systemd-cgroup
 *
 * Built-in entries: runc (/usr/sbin/runc, else PATH) and crun
 * (/usr/bin/crun, else PATH); a configured entry of the same name replaces
 * the built-in one.
 *
 * crun 1.8 and this host's hybrid cgroup layout: crun refuses a hybrid host
 * ("cgroups in hybrid mode not supported, drop all controllers from
 * cgroupv2") as soon as /sys/fs/cgroup/unified/cgroup.controllers is not
 * empty, with or without a cgroup namespace and even with
 * --cgroup-manager=disabled.  Here the v2 hierarchy holds `hugetlb`, the one
 * controller no v1 hierarchy is mounted for.  With `crun_hide_cgroup2`
 * (default true) such tasks run their shim and crun in a private mount
 * namespace without /sys/fs/cgroup/unified, where crun sees a cgroup v1
 * host and works (limits through the v1 controllers); with it false, crun
 * tasks are refused with that explanation and the operator's fix (mount
 * hugetlb on v1 so that cgroup v2 has no controllers).
 */
#ifndef BERTH_OCI_H
#define BERTH_OCI_H

#include <stdbool.h>

#include <berth/shimrt.h>

struct oci_runtime
{
  char *name;
  char *binary;   /* absolute path, or NULL when not found */
  char *wanted;   /* what the config (or the built-in entry) asked for */
  char **options; /* global args, NULL-terminated (with --systemd-cgroup when asked) */
  bool crun_like; /* needs the hybrid-cgroup treatment */
};

struct oci
{
  const struct berth_host *host;
  berth_plugin *plugin;
  void *rt; /* libberth-shimrt */
  struct oci_runtime *runtimes;
  size_t n_runtimes;
  char *default_name;
  bool hide_cgroup2;         /* crun_hide_cgroup2 */
  bool hybrid_blocks_crun;   /* this host: hybrid, cgroup v2 with controllers */
  char *cgroup2_controllers; /* what cgroup v2 holds, for messages */
};

#endif
