/* berth-runtime: the security and resource half of container set-up
 * (cgroups v1/v2/hybrid, seccomp, capabilities, rlimits, oom_score_adj).
 * Called by the init path in berth-runtime (nsrt-*.c); no globals.
 * Every function returns 0 or -1 with a message in *err ("what: why"). */
#ifndef BERTH_NSRT_SEC_H
#define BERTH_NSRT_SEC_H

#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

struct nsrt_err
{
  char msg[1024];
};
int nsrt_errf (struct nsrt_err *err, int errnum, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* ---- cgroups ----
 * Works on v1 (one hierarchy per controller, incl. co-mounted ones), v2
 * (unified) and hybrid (v1 controllers plus a v2 mount with no controllers
 * at /sys/fs/cgroup/unified: the process is placed in both, limits go to
 * v1).  path is linux.cgroupsPath from the spec (absolute, relative to the
 * hierarchy root) or, when the spec has none, "/berth/<id>".  A
 * "slice:prefix:name" systemd path is refused with a clear error unless
 * systemd_cgroup is set (then mapped to cgroupfs <slice>/<prefix>-<name>.scope).
 */
struct nsrt_cgroup;
int nsrt_cgroup_create (const char *path, const char *id, int systemd_cgroup, struct nsrt_cgroup **ret,
                        struct nsrt_err *err);
/* Apply linux.resources (memory, memorySwap, reservation, kernel*, swappiness,
 * cpu shares/quota/period/cpus/mems, pids.limit, blockIO weight and
 * throttles, hugepage limits ignored with a warning, devices (v1 devices
 * controller; v2 needs eBPF: allow-all with a note)).  A value the kernel
 * refuses (memory below its minimum) fails with the file and the value. */
int nsrt_cgroup_apply (struct nsrt_cgroup *cg, json_object *resources, struct nsrt_err *err);
int nsrt_cgroup_enter (struct nsrt_cgroup *cg, pid_t pid, struct nsrt_err *err);
int nsrt_cgroup_freeze (struct nsrt_cgroup *cg, int frozen, struct nsrt_err *err);
/* pids in the cgroup (all of them, recursively); *ret malloc'ed. */
int nsrt_cgroup_pids (struct nsrt_cgroup *cg, pid_t **ret, size_t *n, struct nsrt_err *err);
/* runc's `events --stats` object: {"type":"stats","id":..,"data":{"cpu":..,"memory":..,"pids":..,"blkio":..}} */
int nsrt_cgroup_stats (struct nsrt_cgroup *cg, const char *id, json_object **ret, struct nsrt_err *err);
/* 1 when the memory controller recorded an OOM kill since creation. */
int nsrt_cgroup_oom_count (struct nsrt_cgroup *cg, unsigned long *ret);
/* Kill everything left (SIGKILL, via cgroup.kill on v2 when present,
 * else freeze + kill each pid + thaw), then rmdir every directory created. */
int nsrt_cgroup_destroy (struct nsrt_cgroup *cg, struct nsrt_err *err);
/* Persist in the runtime state file and load back in later commands. */
json_object *nsrt_cgroup_to_json (const struct nsrt_cgroup *cg);
int nsrt_cgroup_from_json (json_object *o, struct nsrt_cgroup **ret, struct nsrt_err *err);
void nsrt_cgroup_free (struct nsrt_cgroup *cg);

/* ---- in the container's init, after pivot_root, before execve ---- */
/* process.rlimits */
int nsrt_rlimits_apply (json_object *rlimits, struct nsrt_err *err);
/* process.oomScoreAdj: written to /proc/self/oom_score_adj; when the host
 * refuses a value below the current one (EACCES), clamp to the current value
 * and go on (containerd does the same), logging nothing to the container. */
int nsrt_oom_score_adj (int value, struct nsrt_err *err);
/* Prepare the filter (libseccomp) from linux.seccomp while the init still
 * has its capabilities and files; load it with nsrt_seccomp_load as the last
 * step before execve (after no_new_privs and capabilities).  Unknown syscall
 * names are skipped (as runc does); unknown actions/arches are errors. */
struct nsrt_seccomp;
int nsrt_seccomp_prepare (json_object *linux_seccomp, struct nsrt_seccomp **ret, struct nsrt_err *err);
int nsrt_seccomp_load (struct nsrt_seccomp *s, struct nsrt_err *err);
/* The same, through a cache of compiled filters: <cache_dir>/<hash>.bpf
 * holds the BPF program libseccomp made for the same linux.seccomp text,
 * libseccomp version and machine (checked byte for byte on every hit).  A
 * hit skips libseccomp (~30 ms for Docker's default profile); a miss builds
 * and stores.  The cache is an optimisation: a directory or file that is
 * not root's and private is ignored, a failed write only logs nothing.
 * cache_dir NULL = no cache.  Call it before pivot_root. */
int nsrt_seccomp_prepare_cached (json_object *linux_seccomp, const char *cache_dir, struct nsrt_seccomp **ret,
                                 struct nsrt_err *err);
/* NULL is fine; the init need not call it (it execs), a failed create does. */
void nsrt_seccomp_free (struct nsrt_seccomp *s);
/* process.capabilities via libcap: keep caps across the uid change
 * (PR_SET_KEEPCAPS) in nsrt_caps_prepare, then after setuid/setgid
 * nsrt_caps_apply: drop the bounding set to `bounding`, set
 * effective/permitted/inheritable, raise ambient.  Unknown cap names are
 * errors naming the cap; caps the kernel does not know are skipped. */
int nsrt_caps_prepare (struct nsrt_err *err);
int nsrt_caps_apply (json_object *capabilities, struct nsrt_err *err);

#endif
