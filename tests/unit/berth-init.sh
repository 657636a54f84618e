#!/bin/bash
# berth-init (init/berth-init.c): exit status, orphan reaping, signal
# forwarding.  Runs the real binary; outside a pid namespace it reaps as a
# child subreaper, and as root the reaping case is repeated with berth-init as
# pid 1 of a new pid namespace (unshare).  Prints what it runs.
set -u
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/../.." && pwd)}
INIT=${BERTH_INIT:-$top_builddir/berth-init}
[ -x "$INIT" ] || { echo "FAIL: $INIT not built"; exit 1; }
T=$(mktemp -d /tmp/berth-init-test.XXXXXX)
PIDS=()
# kill_tree PID: PID's children first (found through /proc), then PID.
kill_tree () {
  local c
  # shellcheck disable=SC2013 # one line of space-separated pids
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    kill_tree "$c"
  done
  kill -KILL "$1" 2>/dev/null
}
cleanup () {
  local p
  for p in "${PIDS[@]}"; do kill_tree "$p"; done
  rm -rf "$T"
}
trap cleanup EXIT
failures=0
fail () { echo "FAIL: $*"; failures=$((failures + 1)); }
pass () { echo "ok: $*"; }
# expect WANT GOT WHAT
expect () {
  if [ "$2" = "$1" ]; then pass "$3"; else fail "$3: want '$1', got '$2'"; fi
}

# expect_status WANT CMD...: run berth-init with CMD in the foreground.
expect_status () {
  local want=$1 got
  shift
  echo "+ $INIT $*"
  timeout -s KILL 20 "$INIT" "$@"
  got=$?
  expect "$want" "$got" "exit status of: $*"
}

expect_status 7 -- sh -c 'exit 7'
expect_status 0 true
expect_status 137 -- sh -c 'kill -KILL $$'
expect_status 127 -- /nonexistent/program
expect_status 2

# wait_bounded PID: wait for a background berth-init at most 10 s; its exit
# status in $rc (a hang kills it and its children: status "hung").
wait_bounded () {
  local s
  # bash reaps its background jobs itself: exited = zombie or gone.
  for _ in $(seq 200); do
    s=$(state_of "$1")
    [ -z "$s" ] || [ "$s" = Z ] && break
    sleep 0.05
  done
  s=$(state_of "$1")
  if [ -n "$s" ] && [ "$s" != Z ]; then
    kill_tree "$1"
    wait "$1" 2>/dev/null
    rc=hung
    return
  fi
  wait "$1"
  rc=$?
}

# state_of PID: the process state letter from /proc, or "gone".
state_of () { sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true; }
ppid_of () { sed -n 's/^[0-9]* (.*) [A-Z] \([0-9]*\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true; }

# An orphan: the inner sh backgrounds `sleep 0.4` and exits at once, so the
# sleep re-parents to berth-init and dies while the outer command still runs.
echo "+ $INIT -- sh -c 'sh -c \"sleep 0.4 & echo \\\$! > orphan\"; sleep 2; exit 3' &"
"$INIT" -- sh -c "sh -c 'sleep 0.4 & echo \$! > $T/orphan'; sleep 2; exit 3" &
ipid=$!
PIDS+=("$ipid")
for _ in $(seq 50); do [ -s "$T/orphan" ] && break; sleep 0.02; done
orphan=$(cat "$T/orphan" 2>/dev/null)
if [ -z "$orphan" ]; then
  fail "orphan pid not recorded"
else
  sleep 0.1
  p=$(ppid_of "$orphan")
  expect "$ipid" "$p" "orphan $orphan re-parented to berth-init"
  sleep 0.8
  s=$(state_of "$orphan")
  expect "" "$s" "orphan reaped (no zombie; state of pid $orphan)"
fi
wait_bounded "$ipid"
expect 3 "$rc" "exit status of the child after reaping an orphan"

# SIGTERM reaches a child that handles it ...
echo "+ $INIT -- sh -c 'trap \"exit 42\" TERM; ...' & kill -TERM"
"$INIT" -- sh -c "trap 'exit 42' TERM; touch $T/ready; while :; do sleep 0.05; done" &
ipid=$!
PIDS+=("$ipid")
for _ in $(seq 100); do [ -e "$T/ready" ] && break; sleep 0.02; done
kill -TERM "$ipid"
wait_bounded "$ipid"
expect 42 "$rc" "SIGTERM forwarded to a trapping child"

# ... and kills one that does not (128 + 15).
echo "+ $INIT -- sleep 30 & kill -TERM"
"$INIT" -- sleep 30 &
ipid=$!
PIDS+=("$ipid")
sleep 0.2
kill -TERM "$ipid"
wait_bounded "$ipid"
expect 143 "$rc" "SIGTERM forwarded to a default-action child"

# SIGUSR1 (no special meaning) is forwarded too.
"$INIT" -- sh -c "trap 'exit 10' USR1; touch $T/ready2; while :; do sleep 0.05; done" &
ipid=$!
PIDS+=("$ipid")
for _ in $(seq 100); do [ -e "$T/ready2" ] && break; sleep 0.02; done
kill -USR1 "$ipid"
wait_bounded "$ipid"
expect 10 "$rc" "SIGUSR1 forwarded"

# As pid 1 of a real pid namespace (needs root and util-linux unshare): the
# orphan's zombie must not remain; the child counts zombies in its namespace.
if [ "$(id -u)" = 0 ] && command -v unshare > /dev/null; then
  cmd="sh -c 'sleep 0.2 &'; sleep 0.6; n=0; for f in /proc/[0-9]*/stat; do case \$(cat \$f 2>/dev/null) in *') Z '*) n=\$((n+1));; esac; done; exit \$n"
  echo "+ unshare --pid --fork --mount-proc $INIT -- sh -c \"$cmd\""
  timeout -s KILL 20 unshare --pid --fork --kill-child --mount-proc "$INIT" -- sh -c "$cmd"
  rc=$?
  expect 0 "$rc" "as pid 1: zombies in the namespace (count)"
else
  echo "SKIP part: pid-namespace case needs root and unshare"
fi

[ "$failures" = 0 ] || exit 1
