# Shared helpers for the integration tests (bash).  Source it; then:
#   need_root; start_berthd [extra config lines]; run ctr ... ; expect_contains ...
# Every test prints the commands it runs so that a failure can be repeated by
# hand, starts its own berthd in a temporary root/state/socket, and cleans up
# by pid in an EXIT trap.  Exit 77 = SKIP (automake), with the reason printed.

set -u
top_builddir=${top_builddir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
top_srcdir=${top_srcdir:-$top_builddir}
BERTHD=${BERTHD:-$top_builddir/berthd}
BERTH=${BERTH:-$top_builddir/berth}
CTR=${CTR:-$(command -v ctr || true)}

T=$(mktemp -d /tmp/berth-it.XXXXXX)
chmod 0755 "$T"
BERTHD_PIDS=()
failures=0

cleanup () {
  local pid
  for pid in "${BERTHD_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  stop_registry
  # Anything a test mounted under its temporary tree.
  grep -o " $T[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$T"
}
trap cleanup EXIT

skip () { echo "SKIP: $*"; exit 77; }

# start_test_registry [push.sh options]: build the test images (once per
# build tree, tests/images/build.sh), start Debian's docker-registry under
# $T/registry and push them (all, or --only a,b).  Sets IMAGES, REGDIR and
# REG (127.0.0.1:PORT).  cleanup stops the registry; a test with its own
# EXIT trap calls stop_registry or cleanup in it.  A failed step fails the
# test and finishes it.
REGDIR=
start_test_registry () {
  IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
  run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
  [ "$rc" = 0 ] || { fail "building the test images"; finish; }
  REGDIR=$T/registry
  echo "+ tests/registry/start.sh $REGDIR"
  REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
  run bash "$top_srcdir/tests/registry/push.sh" "$REG" --images "$IMAGES" "$@"
  [ "$rc" = 0 ] || { fail "pushing the test images"; finish; }
}
stop_registry () {
  [ -n "${REGDIR:-}" ] && [ -d "$REGDIR" ] || return 0
  bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1
}
fail () { echo "FAIL: $*"; failures=$((failures + 1)); }
pass () { echo "ok: $*"; }
need_root () { [ "$(id -u)" = 0 ] || skip "needs root"; }
need_ctr () { [ -n "$CTR" ] || skip "ctr not installed (apt-get install containerd)"; }

# run CMD...: print and run; output in $out, status in $rc.
run () {
  echo "+ $*"
  out=$("$@" 2>&1)
  rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  | /'
  return 0
}

expect_rc () { # expected, what
  if [ "$rc" = "$1" ]; then pass "$2 (exit $rc)"; else fail "$2: exit $rc, expected $1"; fi
}
expect_contains () { # needle, what
  if printf '%s' "$out" | grep -qF -- "$1"; then pass "$2"; else fail "$2: output lacks \`$1\`"; fi
}
expect_not_contains () {
  if printf '%s' "$out" | grep -qF -- "$1"; then fail "$2: output has \`$1\`"; else pass "$2"; fi
}

# write_config DIR [extra TOML lines...]: a config for a private berthd under DIR.
write_config () {
  local d=$1; shift
  mkdir -p "$d"
  {
    echo 'version = 1'
    echo "root = \"$d/root\""
    echo "state = \"$d/state\""
    case "$*" in *plugin_dirs*) ;; *) echo 'plugin_dirs = []' ;; esac
    for line in "$@"; do echo "$line"; done
    echo '[grpc]'
    echo "  address = \"$d/berth.sock\""
  } > "$d/config.toml"
}

# start_berthd DIR [extra TOML lines...]: start, wait for the socket; sets
# SOCK, BERTHD_PID, BERTHD_LOG.  Fails the test if it does not come up.
start_berthd () {
  local d=$1; shift
  write_config "$d" "$@"
  start_berthd_config "$d" "$d/config.toml"
}

start_berthd_config () {
  local d=$1 cfg=$2
  SOCK=$d/berth.sock
  BERTHD_LOG=$d/berthd.log
  echo "+ $BERTHD --config $cfg &  (log: $BERTHD_LOG)"
  # Emptied here, not only by the child's redirection: a restart in the
  # same directory must not see the previous daemon's "serving on".
  : >"$BERTHD_LOG"
  "$BERTHD" --config "$cfg" >"$BERTHD_LOG" 2>&1 &
  BERTHD_PID=$!
  BERTHD_PIDS+=("$BERTHD_PID")
  local i
  # Ready when it says it serves: a socket file alone may be a stale one
  # left by a daemon that was killed.
  for i in $(seq 1 200); do
    grep -q "serving on" "$BERTHD_LOG" 2>/dev/null && [ -S "$SOCK" ] && return 0
    kill -0 "$BERTHD_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "berthd did not come up; its log:"; sed 's/^/  | /' "$BERTHD_LOG"
  fail "berthd start"
  return 1
}

stop_berthd () { # pid: SIGTERM and wait; sets rc to its exit status
  kill -TERM "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  rc=$?
}

finish () {
  if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
  fi
  echo "all checks passed"
  exit 0
}
