#!/bin/bash
# berth-runtime: what the process sees inside — hostname, env, cwd, uid/gid,
# read-only rootfs, masked and read-only paths, capabilities, pids and
# memory limits, user namespace mappings, mount targets that are symlinks.
. "$(dirname "$0")/lib.sh"
B=$T/bundle
make_bundle "$B"
cd "$B" || exit 1
cp config.json config.good

# run_in FILTER CMD: a fresh container with the config edited by FILTER, running sh -c CMD
run_in () {
  new_id "c$((++n))"
  cp "$B/config.good" "$B/config.json"
  edit_config "$B" ".process.args=[\"sh\",\"-c\",$(jq -Rn --arg c "$2" '$c')] | $1"
  rt run "$id"
  last_id=$id
}
n=0
reset='.hostname="runc" | .root.readonly=false'

echo "== hostname, env, cwd, user"
run_in "$reset | .hostname=\"box-$$\" | .process.env+=[\"GREETING=hi there\"] | .process.cwd=\"/tmp\" | .process.user={\"uid\":1234,\"gid\":2345,\"additionalGids\":[3456],\"umask\":63}" \
  'echo host=$(hostname) env=$GREETING cwd=$(pwd) id=$(id -u):$(id -g) groups=$(id -G); umask'
expect_rc 0 "run"
expect_contains "host=box-$$" "hostname"
expect_contains "env=hi there" "env"
expect_contains "cwd=/tmp" "cwd"
expect_contains "id=1234:2345" "uid/gid"
expect_contains "3456" "additional gids"
expect_contains "0077" "umask"
check_clean "$last_id"
run_in "$reset | .process.cwd=\"/does/not/exist\"" 'true'
expect_rc 1 "a missing cwd fails"
expect_contains "/does/not/exist" "the error names the cwd"
check_clean "$last_id"

echo "== read-only rootfs, masked and read-only paths"
run_in "$reset | .root.readonly=true" 'touch /newfile && echo WROTE; touch /tmp/x 2>&1; echo done'
expect_not_contains "WROTE" "writing to a read-only rootfs fails"
expect_contains "Read-only file system" "with EROFS"
[ -e "$B/rootfs/newfile" ] && fail "file created in the rootfs" || pass "rootfs untouched"
masked=""
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do [ -s "$f" ] || [ -r "$f" ] && { masked=$f; break; }; done
run_in "$reset" "cat $masked 2>/dev/null | head -c 10 | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname && echo WROTE-SYS; echo end"
expect_contains "end" "ran"
printf '%s' "$out" | head -1 | grep -qx 0 && pass "masked file $masked reads empty" || fail "$masked readable"
printf '%s' "$out" | sed -n 2p | grep -qx 0 && pass "masked dir /sys/firmware is empty" || fail "/sys/firmware visible"
expect_not_contains "WROTE-SYS" "/proc/sys is read-only"
check_clean "$last_id"

echo "== mounts: tmpfs, bind ro, symlink escape"
mkdir -p "$T/hostdir" && echo host-data > "$T/hostdir/file"
ln -sfn /../../../../tmp "$B/rootfs/escape"
run_in "$reset | .mounts+=[{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"$T/hostdir\",\"options\":[\"rbind\",\"ro\"]},{\"destination\":\"/escape/inside\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"size=1m\"]}]" \
  'cat /data/file; echo x > /data/new 2>/dev/null && echo WROTE-RO; grep -c " /tmp/inside " /proc/self/mountinfo'
expect_contains "host-data" "bind mount visible"
expect_not_contains "WROTE-RO" "ro bind mount is read-only"
[ -e /tmp/inside ] && { fail "a mount target symlink escaped to the host's /tmp"; rmdir /tmp/inside; } || pass "symlinked mount target stays in the rootfs"
printf '%s' "$out" | tail -1 | grep -qx 1 && pass "the tmpfs landed on the rootfs's /tmp/inside" || fail "tmpfs not where the symlink points inside the rootfs"
rm -f "$B/rootfs/escape"
check_clean "$last_id"
mkdir -p "$B/reldir" && echo rel-data > "$B/reldir/file"
new_id rel
cp "$B/config.good" "$B/config.json"
edit_config "$B" "$reset | .process.args=[\"cat\",\"/rel/file\"] | .mounts+=[{\"destination\":\"/rel\",\"type\":\"bind\",\"source\":\"reldir\",\"options\":[\"bind\"]}]"
(cd / && rt run --bundle "$B" "$id" && printf '%s' "$out" | grep -q rel-data && echo REL-OK) > "$T/rel.out"
cat "$T/rel.out"
grep -q REL-OK "$T/rel.out" && pass "a relative bind source is the bundle's" || fail "relative bind source"
cp "$B/config.good" "$B/config.json"

echo "== capabilities"
run_in "$reset" 'grep CapEff /proc/self/status'
# runc spec's default: AUDIT_WRITE(29) KILL(5) NET_BIND_SERVICE(10)
expect_contains "CapEff:	0000000020000420" "CapEff is the spec's set"
check_clean "$last_id"

echo "== seccomp"
run_in "$reset | .linux.seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1}]}" \
  'mkdir /tmp/d && echo MADE; grep Seccomp: /proc/self/status'
expect_not_contains "MADE" "a syscall the filter denies fails"
expect_contains "Seccomp:	2" "the process runs under a seccomp filter"
check_clean "$last_id"
# without noNewPrivileges and as a non-root user (Docker's default)
run_in "$reset | .process.noNewPrivileges=false | .process.user={\"uid\":1000,\"gid\":1000} | .linux.seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1}]}" \
  'mkdir /tmp/d2 && echo MADE; grep -E "Seccomp:|NoNewPrivs:" /proc/self/status'
expect_rc 0 "seccomp without noNewPrivileges as uid 1000"
expect_contains "Seccomp:	2" "the filter is loaded"
expect_contains "NoNewPrivs:	0" "no_new_privs is not set"
check_clean "$last_id"

echo "== pids and memory limits"
# busybox sh dies when fork fails: the bomb runs in a subshell; read and
# echo are builtins, so the count needs no fork
marker="fork-bomb-$$"
run_in "$reset | .linux.resources.pids={\"limit\":20}" "(for i in \$(seq 60); do sleep 5 & done) 2>/dev/null; read n < /sys/fs/cgroup/pids/pids.current; echo procs=\$n; : $marker"
procs=$(printf '%s' "$out" | sed -n 's/.*procs=\([0-9]*\).*/\1/p')
[ -n "$procs" ] && [ "$procs" -le 20 ] && pass "fork bomb contained by pids.limit 20 ($procs processes)" || fail "pids limit: ${procs:-no} processes"
check_clean "$last_id" "$marker"
run_in "$reset | .linux.resources.memory={\"limit\":67108864}" 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; grep -c " /sys/fs/cgroup/pids " /proc/self/mountinfo'
expect_contains "67108864" "memory limit visible in the container's cgroup"
expect_not_contains "9223372036854771712" "the container sees its own cgroup, not the host's root"
check_clean "$last_id"

echo "== user namespace"
run_in "$reset | .linux.namespaces+=[{\"type\":\"user\"}] | .linux.uidMappings=[{\"containerID\":0,\"hostID\":100000,\"size\":65536}] | .linux.gidMappings=[{\"containerID\":0,\"hostID\":100000,\"size\":65536}]" \
  'echo id=$(id -u):$(id -g); cat /proc/self/uid_map; ls -n /proc/self/ | head -0; sleep 0.1'
expect_rc 0 "run in a user namespace"
expect_contains "id=0:0" "root inside"
printf '%s' "$out" | grep -Eq '^ *0 +100000 +65536' && pass "uid_map is 0 -> 100000 x 65536" || fail "uid_map"
check_clean "$last_id"
finish
