#!/bin/bash
# The pluggable matrix: every {snapshotter} x {runtime} combination runs the
# same container lifecycle suite through the berth CLI against one real
# berthd: run to completion with exit codes, detached + logs + exec + stop,
# a TTY, resource limits visible inside, a seccomp denial, capabilities
# dropped, a read-only rootfs, and kill -9 of berthd while containers run
# (a restarted berthd lists them with the right states and exit codes).
# After each combination nothing may remain: no mount under the daemon's
# state, no container cgroup, no container process.
#
# A combination the host cannot run SKIPs with the runtime's own reason;
# the test fails if any combination fails.  BERTH_MATRIX="overlayfs:namespaces
# native:runc" restricts the combinations (for debugging).
. "$(dirname "$0")/lib.sh"
need_root
for tool in docker-registry skopeo python3 script; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)

trap 'stop_registry; rmdir /sys/fs/cgroup/*/"${NS:-no-such-ns}" 2>/dev/null; cleanup' EXIT
start_test_registry --only busybox

# The runtime plugins, pointed at this build's berth-runtime and berth-shim.
SHIM=$top_builddir/shim/berth-shim
[ -x "$SHIM" ] || skip "berth-shim not built ($SHIM)"
# The fuse snapshotter serves layers with this build's berth-fuse (it SKIPs
# without one, or without /dev/fuse: so do its combinations then).
start_berthd "$T/d" \
  '[plugins."io.berth.runtime.v1.namespaces"]' "  binary = \"$top_builddir/berth-runtime\"" "  shim_binary = \"$SHIM\"" \
  '[plugins."io.berth.runtime.v1.oci"]' "  shim_binary = \"$SHIM\"" \
  '[plugins."io.berth.snapshotter.v1.fuse"]' "  binary = \"$top_builddir/plugins/snapshotters/fuse/berth-fuse\"" || finish
# A namespace of our own: the containers' cgroups are /<ns>/<id>.
NS=matrix-$$
# The CLI's stdio FIFOs go under the test's directory, not /run/berth/fifo.
export BERTH_FIFO_DIR=$T/fifo
B=("$BERTH" --address "$SOCK" --namespace "$NS")
IMG=$REG/busybox:latest
STATE=$T/d/state
run "${B[@]}" pull --plain-http "$IMG"
[ "$rc" = 0 ] || { fail "pull $IMG"; finish; }

# A profile that denies mkdir(2) and nothing else: the denial must come from
# the seccomp filter, not from capabilities or a read-only mount.
cat > "$T/deny-mkdir.json" <<'EOF'
{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
EOF

# Every container of this test runs `sleep` with a marker argument so that
# leftovers can be found without touching anyone else's processes.
MARK=$((100000 + $$ % 50000))$RANDOM

leaks () { # what: fail when anything of ours is left
  local m p c
  m=$(grep -c " $STATE/" /proc/self/mounts || true)
  [ "$m" = 0 ] && pass "$1: no mount left under the state dir" ||
    { fail "$1: $m mount(s) left under $STATE"; grep " $STATE/" /proc/self/mounts | sed 's/^/  | /'; }
  wait_for sh -c "! pgrep -f 'sleep $MARK'"
  p=$(pgrep -af "sleep $MARK" || true)
  [ -z "$p" ] && pass "$1: no container process left" || fail "$1: container processes left: $p"
  c=$(find /sys/fs/cgroup/*/"$NS" -mindepth 1 -type d 2>/dev/null | head -5)
  [ -z "$c" ] && pass "$1: no container cgroup left" || fail "$1: cgroups left: $c"
}
logs_have () { "${B[@]}" logs "$1" 2>/dev/null | grep -q "$2"; }

# wait_for CMD...: up to 5 s for CMD to succeed.
wait_for () {
  local i
  for i in $(seq 1 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

lifecycle () { # snapshotter runtime
  local sn=$1 rt=$2 tag="$1×$2" R
  R=("${B[@]}" run --snapshotter "$sn" --runtime "$rt")
  local n="mx-$sn-$rt"

  # The combination may not work on this host at all: the runtime says why.
  echo "+ ${R[*]} --rm $IMG true"
  out=$("${R[@]}" --rm "$IMG" true 2>&1); rc=$?
  if [ "$rc" != 0 ]; then
    if printf '%s' "$out" | grep -qiE 'not installed|not supported|unsupported|skip|not available|cannot run'; then
      echo "SKIP $tag: $out"; SKIPPED+=("$tag: $(printf '%s' "$out" | head -1)"); return 0
    fi
    fail "$tag: run true: exit $rc: $out"; return 0
  fi
  pass "$tag: run --rm true"
  if [ "$sn" = fuse ]; then
    # Served, not unpacked: the image's layer is a FUSE mount in fuse's root.
    grep -q " $T/d/root/io.berth.snapshotter.v1.fuse/snapshots/[0-9]*/fs .* - fuse.berth " /proc/self/mountinfo &&
      pass "$tag: the layer is served over FUSE (fuse.berth mount)" || fail "$tag: no fuse.berth layer mount"
  fi

  run "${R[@]}" --rm "$IMG" sh -c 'exit 3'
  expect_rc 3 "$tag: the container's exit status is berth run's"
  run "${R[@]}" --rm "$IMG" /nonexistent
  expect_rc 127 "$tag: a missing command exits 127"
  run "${R[@]}" --rm -e FOO=bar -w /tmp --hostname hx "$IMG" sh -c 'echo "$FOO $(pwd) $(hostname)"'
  expect_contains "bar /tmp hx" "$tag: env, cwd and hostname"

  # The default network: a namespace of its own with loopback up.
  run "${R[@]}" --rm "$IMG" sh -c 'cat /sys/class/net/lo/flags; ls /sys/class/net'
  expect_contains "0x9" "$tag: lo is up in the container's network namespace"
  expect_not_contains "eth" "$tag: and it is the only interface"

  # Detached + logs + exec + stop.
  run "${R[@]}" -d --name "$n" "$IMG" sh -c "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep $MARK & wait \$!; done"
  expect_rc 0 "$tag: run -d"
  wait_for logs_have "$n" started && pass "$tag: logs show output" ||
    fail "$tag: logs lack 'started'"
  run "${B[@]}" exec "$n" sh -c 'echo inside $((6*7))'
  expect_contains "inside 42" "$tag: exec"
  run "${B[@]}" ps
  expect_contains "$n" "$tag: ps lists the running container"
  run "${B[@]}" stop -t 5 "$n"
  expect_rc 0 "$tag: stop"
  run "${B[@]}" logs "$n"
  expect_contains "bye" "$tag: the container saw SIGTERM"
  run "${B[@]}" ps -a
  expect_contains "Exited (0)" "$tag: ps -a shows the exit"
  run "${B[@]}" rm "$n"
  expect_rc 0 "$tag: rm"

  # A container that ignores SIGTERM is killed after the timeout.
  run "${R[@]}" -d --name "$n-ign" "$IMG" sh -c "trap '' TERM; while true; do sleep $MARK; done"
  run "${B[@]}" stop -t 1 "$n-ign"
  expect_rc 0 "$tag: stop of a container ignoring SIGTERM"
  run "${B[@]}" inspect "$n-ign"
  expect_contains "137" "$tag: it was killed (137)"
  run "${B[@]}" rm -f "$n-ign"

  # TTY.
  echo "+ script -qec '${R[*]} --rm -t $IMG sh -c ...' /dev/null"
  out=$(script -qec "$(printf '%q ' "${R[@]}") --rm -t $IMG sh -c '[ -t 0 ] && [ -t 1 ] && echo is-a-tty'" /dev/null </dev/null 2>&1)
  expect_contains "is-a-tty" "$tag: -t gives a terminal"

  # Resource limits visible inside (v1 hierarchies, or v2 files).
  run "${R[@]}" --rm --memory 64m --pids-limit 32 "$IMG" sh -c \
    'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null'
  expect_contains "67108864" "$tag: --memory visible in the container's cgroup"
  expect_contains "32" "$tag: --pids-limit visible in the container's cgroup"

  # seccomp: the profile denies mkdir; the default profile does not.
  run "${R[@]}" --rm --security-opt "seccomp=$T/deny-mkdir.json" "$IMG" mkdir /tmp/x
  [ "$rc" != 0 ] && printf '%s' "$out" | grep -q "Operation not permitted" &&
    pass "$tag: seccomp denies a forbidden syscall" || fail "$tag: mkdir under deny-mkdir: exit $rc"
  run "${R[@]}" --rm "$IMG" mkdir /tmp/x
  expect_rc 0 "$tag: mkdir allowed by the default profile"

  # Capabilities: Docker's default set, or none.
  run "${R[@]}" --rm "$IMG" grep CapEff /proc/self/status
  expect_contains "00000000a80425fb" "$tag: default capability set"
  run "${R[@]}" --rm --cap-drop ALL "$IMG" grep CapEff /proc/self/status
  expect_contains "0000000000000000" "$tag: --cap-drop ALL leaves none"

  # Read-only rootfs.
  run "${R[@]}" --rm --read-only "$IMG" touch /x
  [ "$rc" != 0 ] && printf '%s' "$out" | grep -qi "read-only" && pass "$tag: --read-only rootfs" ||
    fail "$tag: touch on a read-only rootfs: exit $rc"

  # kill -9 berthd while containers run; one exits while it is down.
  run "${R[@]}" -d --name "$n-up" "$IMG" sh -c "while true; do sleep $MARK; done"
  run "${R[@]}" -d --name "$n-ex" "$IMG" sh -c "sleep 1; exit 7"
  echo "+ kill -9 $BERTHD_PID (berthd)"
  kill -9 "$BERTHD_PID"; wait "$BERTHD_PID" 2>/dev/null
  sleep 2
  pgrep -f "sleep $MARK" >/dev/null && pass "$tag: the container outlives berthd" ||
    fail "$tag: the container died with berthd"
  start_berthd_config "$T/d" "$T/d/config.toml" || return 0
  run "${B[@]}" ps -a
  printf '%s\n' "$out" | grep "$n-up" | grep -q "Up" && pass "$tag: restarted berthd lists the running one as Up" ||
    fail "$tag: $n-up not Up after restart"
  printf '%s\n' "$out" | grep "$n-ex" | grep -q "Exited (7)" && pass "$tag: and the one that exited meanwhile as Exited (7)" ||
    fail "$tag: $n-ex not Exited (7) after restart"
  run "${B[@]}" exec "$n-up" cat /etc/passwd
  expect_contains "root:x:0:0" "$tag: the running container's rootfs still reads after the restart"
  run "${B[@]}" rm -f "$n-up" "$n-ex"
  expect_rc 0 "$tag: rm -f after restart"
  leaks "$tag"
}

SKIPPED=()
COMBOS=${BERTH_MATRIX:-"overlayfs:namespaces overlayfs:runc overlayfs:crun native:namespaces native:runc native:crun
  fuse:namespaces fuse:runc"}
for combo in $COMBOS; do
  echo "=== ${combo%%:*} × ${combo##*:}"
  before=$failures
  lifecycle "${combo%%:*}" "${combo##*:}"
  [ "$failures" = "$before" ] || echo "=== ${combo%%:*} × ${combo##*:}: $((failures - before)) failure(s)"
done
echo "=== matrix summary"
for s in "${SKIPPED[@]}"; do echo "SKIP $s"; done
finish
