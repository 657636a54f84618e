# Shared helpers for the berth-runtime tests (bash, as root).  Source it,
# then: make_bundle DIR; edit_config DIR 'jq filter'; rt ARGS...
# Every case prints what it runs; the EXIT trap deletes every container the
# test created (by id, through the runtime), unmounts and removes the temp
# tree.  check_clean ID verifies that nothing of a container is left:
# mounts, cgroup directories, processes, state.
set -u
top_builddir=${top_builddir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
RUNTIME=${RUNTIME:-$top_builddir/berth-runtime}
BUSYBOX=${BUSYBOX:-/usr/bin/busybox}
failures=0
skip () { echo "SKIP: $*"; exit 77; }
fail () { echo "FAIL: $*"; failures=$((failures + 1)); }
pass () { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (namespaces, mounts, cgroups)"
[ -x "$RUNTIME" ] || skip "$RUNTIME not built"
command -v jq >/dev/null || skip "jq not installed (apt-get install jq)"
{ [ -x "$BUSYBOX" ] && ldd "$BUSYBOX" 2>&1 | grep -q 'not a dynamic'; } || skip "$BUSYBOX is not busybox-static (apt-get install busybox-static)"
unshare --mount --pid --fork true 2>/dev/null || skip "cannot create mount/pid namespaces here"

T=$(mktemp -d /tmp/nsrt-test.XXXXXX)
chmod 0755 "$T"
ROOT=$T/state
IDS=()
cleanup () {
  local id
  for id in "${IDS[@]}"; do "$RUNTIME" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
  grep -o " $T[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# new_id NAME: sets $id to a new container id, remembered for cleanup
new_id () { id="nsrt-$$-$1"; IDS+=("$id"); }

make_bundle () { # dir
  local d=$1 c
  mkdir -p "$d/rootfs/bin" "$d/rootfs/proc" "$d/rootfs/sys" "$d/rootfs/dev" "$d/rootfs/etc" "$d/rootfs/tmp"
  cp "$BUSYBOX" "$d/rootfs/bin/busybox"
  for c in $("$BUSYBOX" --list); do [ "$c" = busybox ] || ln -sf busybox "$d/rootfs/bin/$c"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$d/rootfs/etc/passwd"
  (cd "$d" && runc spec 2>/dev/null) || "$RUNTIME" spec --bundle "$d"
  edit_config "$d" '.process.terminal=false | .root.readonly=false'
}
edit_config () { # dir filter
  jq "$2" "$1/config.json" > "$1/config.json.new" && mv "$1/config.json.new" "$1/config.json"
}

# rt ARGS...: print and run the runtime; output in $out, status in $rc
rt () {
  echo "+ berth-runtime $*"
  out=$(timeout 20 "$RUNTIME" --root "$ROOT" "$@" 2>&1)
  rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  | /'
  return 0
}
# rtd ARGS...: as rt, for commands that leave a container process holding
# their stdout (create, run -d): output through a file, not a pipe
rtd () {
  echo "+ berth-runtime $*"
  timeout 20 "$RUNTIME" --root "$ROOT" "$@" > "$T/rtd.out" 2>&1 < /dev/null
  rc=$?
  out=$(cat "$T/rtd.out")
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  | /'
  return 0
}
expect_rc () { if [ "$rc" = "$1" ]; then pass "$2 (exit $rc)"; else fail "$2: exit $rc, expected $1"; fi; }
expect_contains () { if printf '%s' "$out" | grep -qF -- "$1"; then pass "$2"; else fail "$2: output lacks \`$1\`"; fi; }
expect_not_contains () { if printf '%s' "$out" | grep -qF -- "$1"; then fail "$2: output has \`$1\`"; else pass "$2"; fi; }
state_field () { # id field
  "$RUNTIME" --root "$ROOT" state "$1" 2>/dev/null | jq -r ".$2"
}

check_clean () { # id [marker]
  local id=$1 what=""
  grep -q "$T" /proc/self/mountinfo && what="$what mounts($(grep -c "$T" /proc/self/mountinfo))"
  [ -z "$(find /sys/fs/cgroup -maxdepth 4 -type d -name "$id" 2>/dev/null)" ] || what="$what cgroups"
  [ -e "$ROOT/$id" ] && what="$what state-dir"
  if [ $# -gt 1 ] && pgrep -f "$2" >/dev/null; then what="$what processes"; fi
  if [ -z "$what" ]; then pass "$id: nothing left behind"; else fail "$id: left behind:$what"; fi
}

finish () {
  if [ "$failures" -gt 0 ]; then echo "$failures failure(s)"; exit 1; fi
  exit 0
}
