/* OCI runtime-spec (config.json) generation from an OCI image config and
 * `berth run`-style flags, with Docker's defaults.  Used by the CLI and
 * (later) by the CRI service in the core.  Pure computation on json-c
 * values: nothing here mounts, resolves users or touches the rootfs; the only
 * files read are the seccomp profile and, for --privileged, the host's /dev.
 *
 * What the generated spec holds (each rule as Docker 24 / nerdctl do it,
 * differences said where they are):
 *  - ociVersion "1.0.2"; root {"path": "rootfs", "readonly": read_only}.
 *  - process.args: Entrypoint + Cmd.  args (when non-NULL) replace the
 *    image's Cmd; entrypoint_set replaces the image's Entrypoint with
 *    `entrypoint` (NULL or empty = none) AND drops the image's Cmd, as
 *    `docker run --entrypoint` does.  Nothing left => BERTH_E_INVALID
 *    "image has no Cmd or Entrypoint; give a command".
 *  - process.env: Docker's order: PATH (default
 *    /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin),
 *    HOSTNAME=<hostname> when given, TERM=xterm with tty; then the image's Env,
 *    then opts env, each replacing an earlier entry with the same key in
 *    place.  An opts entry "KEY" without '=' removes KEY (the CLI turns
 *    `-e KEY` into KEY=<host value> first, as docker does).
 *  - process.cwd: workdir, else the image's WorkingDir, else "/"; must be
 *    absolute.
 *  - process.user: user, else the image's User.  "uid[:gid]" all numeric =>
 *    uid/gid directly (gid 0 when absent).  A name in either part => the
 *    numeric parts that are known, and annotation "io.berth.user" = the whole
 *    string: the core resolves it in the rootfs at Tasks.Create (contract).
 *  - process.capabilities: Docker's default set (14 caps) in bounding,
 *    effective and permitted (not inheritable/ambient: Docker >= 20.10.14),
 *    then cap_drop/cap_add as Docker's TweakCapabilities (cap_add ALL = all
 *    but cap_drop; cap_drop ALL = only cap_add); names with or without CAP_,
 *    any case; unknown => error.  privileged (and cap_add ALL) => every cap
 *    the kernel and libcap know that is in the caller's bounding set.
 *  - process.rlimits: RLIMIT_NOFILE 1024:1024 (containerd's default spec;
 *    Docker sets none and inherits dockerd's).
 *  - process.noNewPrivileges = no_new_privileges (Docker: off by default).
 *  - mounts: Docker's defaults (/proc, /dev tmpfs, /dev/pts, /sys ro,
 *    /sys/fs/cgroup ro, /dev/mqueue, /dev/shm size=65536k); privileged makes
 *    /sys and /sys/fs/cgroup rw; ipc_host bind-mounts the host's /dev/shm
 *    and /dev/mqueue; a user namespace with net "host" bind-mounts /sys (the
 *    kernel refuses sysfs there).
 *    Then `volumes` (-v) and `tmpfs` (--tmpfs) in order; a user mount at the
 *    same destination as a default replaces it.  init adds the berth-init
 *    bind mount (below).
 *  - linux.namespaces: pid, ipc, uts, mount, network, cgroup (network omitted
 *    for net "host", pid for pid_host, ipc for ipc_host), user when uid_maps
 *    and gid_maps are given (with linux.uidMappings/gidMappings).
 *  - linux.maskedPaths / readonlyPaths: Docker's lists; none when privileged.
 *  - linux.resources.devices: deny all, then Docker's allows (null, zero,
 *    urandom, random, tty, console; fuse denied) plus the ones runc adds on its
 *    own (mknod of any, full, pts 136:*, ptmx, tun) so that runtimes which do
 *    not add them (berth-runtime) behave like runc; privileged => allow all and
 *    the host's device nodes in linux.devices (as Docker does).
 *  - linux.resources memory/cpu/pids from the opts (below).
 *  - linux.seccomp: the Docker-format profile (default SECCOMP_PROFILE from
 *    configure) converted as Docker does (ocispec_seccomp_convert), for the
 *    final bounding set; none for "unconfined" or privileged.
 *  - annotations: opts annotations, "io.berth.etc-files" = "1" (the core
 *    writes and bind-mounts /etc/hosts, hostname, resolv.conf), and
 *    "io.berth.user" as above.
 * Not done: image ExposedPorts and Volumes are ignored; labels are container
 * metadata, not spec; no AppArmor/SELinux.
 */
#ifndef BERTH_LIB_OCISPEC_H
#define BERTH_LIB_OCISPEC_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "error.h"

#define OCISPEC_VERSION "1.0.2"
#define OCISPEC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Where --init puts berth-init inside the container (a read-only bind mount
 * of the host's binary) and runs it as `/sbin/berth-init -- <args>`. */
#define OCISPEC_INIT_DEST "/sbin/berth-init"

struct ocispec_idmap
{
  uint32_t container_id;
  uint32_t host_id;
  uint32_t size;
};

/* Every pointer may be NULL (= not given).  Lists are NULL-terminated arrays
 * of strings.  The caller owns everything; ocispec_generate copies. */
struct ocispec_opts
{
  const char *const *args;       /* replaces the image's Cmd */
  const char *const *entrypoint; /* with entrypoint_set: replaces Entrypoint, drops the image's Cmd */
  bool entrypoint_set;
  const char *const *env; /* "KEY=VAL" (set/replace) or "KEY" (remove) */
  const char *workdir;    /* absolute */
  const char *user;       /* "uid[:gid]" or "name[:group]" */
  const char *hostname;   /* spec.hostname and HOSTNAME=; NULL/"" = none */
  bool tty;               /* process.terminal, TERM=xterm */
  bool read_only;         /* root.readonly */
  bool privileged;
  const char *const *cap_add; /* "NET_ADMIN", "CAP_NET_ADMIN", "all", ... */
  const char *const *cap_drop;
  /* NULL or "" = the default profile (SECCOMP_PROFILE), "unconfined" = none,
   * else the path of a Docker-format profile. */
  const char *seccomp;
  bool no_new_privileges;
  int64_t memory;             /* bytes; 0 = no limit; else >= 6 MiB (Docker's minimum) */
  int64_t memory_swap;        /* bytes of memory+swap; 0 = not set (no swap limit); -1 = unlimited */
  double cpus;                /* 0 = no limit; else quota = cpus * 100000 per 100000 us period */
  uint64_t cpu_shares;        /* 0 = not set */
  const char *cpuset_cpus;    /* "0-2,4" */
  int64_t pids_limit;         /* 0 = not set; -1 = unlimited; else > 0 */
  const char *const *volumes; /* -v "host:ctr[:opts]", see ocispec_parse_volume */
  const char *const *tmpfs;   /* --tmpfs "path[:opts]", see ocispec_parse_tmpfs */
  /* NULL, "" or "none" = a new network namespace (loopback only until CNI);
   * "host" = the host's.  Anything else is refused. */
  const char *net;
  bool pid_host;
  bool ipc_host;
  /* --init: run berth-init as pid 1.  init_path is the host binary to
   * bind-mount at OCISPEC_INIT_DEST; NULL = the installed one
   * ($(libexecdir)/berth/berth-init). */
  bool init;
  const char *init_path;
  const char *const *annotations; /* "KEY=VAL" */
  /* User namespace (adds the "user" namespace): both or neither; up to 5
   * entries each (the limit of kernels before 4.15). */
  const struct ocispec_idmap *uid_maps;
  size_t n_uid_maps;
  const struct ocispec_idmap *gid_maps;
  size_t n_gid_maps;
};

/* image_config: the whole OCI image config document ({"config": {...}, ...});
 * may be NULL (then a command must be given).  Returns a new spec object
 * (json_object_put it) or NULL with *err set: BERTH_E_INVALID for bad opts or
 * a malformed image config / seccomp profile (the message names the field),
 * BERTH_E_NOTFOUND for a missing profile file. */
json_object *ocispec_generate (json_object *image_config, const struct ocispec_opts *o, berth_error **err);

/* Convert a Docker-format seccomp profile to OCI linux.seccomp the way
 * Docker's setupSeccomp does: defaultAction/defaultErrnoRet/flags/
 * listenerPath copied; "architectures" copied, or from "archMap" the entry
 * for the native arch with its subArchitectures; each syscall rule kept only
 * if its includes/excludes match: arches (Go names: amd64, arm64, ...),
 * caps (against `caps`, the bounding set, a JSON array of "CAP_X"),
 * minKernel ("major.minor" against the running kernel).  "name" is the
 * one-name form of "names".  Unknown keys are ignored (podman's "errno");
 * wrong types are errors naming the field ("syscalls[3].names[1]: ...").
 * arch: Go arch name, NULL = this machine's (uname); kernel: "5.10", NULL =
 * uname's release.  Returns NULL for a profile with neither defaultAction nor
 * syscalls (Docker: seccomp disabled) with *err untouched. */
json_object *ocispec_seccomp_convert (json_object *profile, json_object *caps, const char *arch, const char *kernel,
                                      berth_error **err);
/* Read a profile file (at most 4 MiB) and convert it; BERTH_E_NOTFOUND when
 * the file does not exist.  *ret may be set to NULL as above. */
int ocispec_seccomp_load (const char *path, json_object *caps, json_object **ret, berth_error **err);
/* The default profile's path (configure's --with-seccomp-profile). */
const char *ocispec_default_seccomp_profile (void);

/* ---- flag parsers for the CLI (all return 0 or BERTH_E_INVALID) ---- */

/* "512m", "1.5g", "1024", "100kb", "2GiB": Docker's RAMInBytes (binary
 * units b k m g t p, optional i and b, case-insensitive); > 0. */
int ocispec_parse_bytes (const char *s, int64_t *ret, berth_error **err);
/* "1.5", "0.25", "2": > 0, at most 3 decimals' worth of precision kept as
 * Docker's NanoCPUs; the quota is computed at generation. */
int ocispec_parse_cpus (const char *s, double *ret, berth_error **err);
/* -v "host:ctr[:opts]" => an OCI mount {"destination","type":"bind","source",
 * "options":["rbind","ro"|"rw", propagation]}; opts: ro, rw, one of
 * [r]private/[r]shared/[r]slave (default rprivate), z/Z and nocopy accepted
 * and ignored.  host must be an absolute path: named volumes and relative
 * paths are refused ("named volumes are not supported yet"); ctr absolute
 * and not "/". */
json_object *ocispec_parse_volume (const char *spec, berth_error **err);
/* --tmpfs "path[:opts]" => {"destination","type":"tmpfs","source":"tmpfs",
 * "options":["nosuid","nodev","noexec", opts...]}; opts are mount(8) tmpfs
 * options (rw ro exec noexec suid nosuid dev nodev size= mode= uid= gid=
 * nr_inodes= nr_blocks= atime flavours); exec/suid/dev remove the default
 * negation. */
json_object *ocispec_parse_tmpfs (const char *spec, berth_error **err);
/* --env-file: docker's format: one "KEY=VAL" per line taken verbatim, blank
 * lines and lines starting with '#' skipped, leading whitespace trimmed, "KEY"
 * alone becomes KEY=<value in our environment> (or stays "KEY" when unset,
 * which removes it).  Keys with whitespace, empty keys, NUL bytes or invalid
 * UTF-8 are errors naming the line.  At most 1 MiB.  *ret: NULL-terminated,
 * free with strv_free. */
int ocispec_parse_env_file (const char *path, char ***ret, berth_error **err);

#endif
