#!/bin/bash
# Containers and tasks through the real ctr (Debian's containerd 1.6) against
# berthd, on each runtime plugin that loads here (io.berth.runtime.v1.namespaces,
# io.berth.runtime.v1.oci) and on containerd's own runtime name
# (io.containerd.runc.v2 → [runtime] default), with busybox from a local
# registry: run --rm exit codes, run -d + tasks ls/exec/ps/pause/resume/kill/rm,
# containers info/ls/label/rm, /tasks/* events, Tasks.Wait (and a client that
# goes away during it), kill -9 of berthd while a container runs and recovery,
# and after every case no mount left under the state dir and no container
# process left.
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in docker-registry skopeo runc python3; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)

# --- runtimes: the real plugins, pointed at the binaries of this build -------------
SHIM=
for s in "$top_builddir/berth-shim" "$top_builddir/shim/berth-shim"; do [ -x "$s" ] && SHIM=$s && break; done
extra=()
if [ -n "$SHIM" ]; then
  extra+=("[plugins.\"io.berth.runtime.v1.namespaces\"]" "  binary = \"$top_builddir/berth-runtime\""
          "  shim_binary = \"$SHIM\"" "[plugins.\"io.berth.runtime.v1.oci\"]" "  shim_binary = \"$SHIM\"")
fi
IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
[ "$rc" = 0 ] || { fail "building the test images"; finish; }
REGDIR=$T/registry
REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
stop_registry () { bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1; }
EVPID=
stop_events () { [ -n "$EVPID" ] && kill "$EVPID" 2>/dev/null && wait "$EVPID" 2>/dev/null; EVPID=; }
# On the way out (also after a failure), the tasks go before berthd does:
# their processes would outlive it.
C=()
kill_tasks () {
  [ ${#C[@]} -gt 0 ] || return 0
  local id
  for id in $(timeout 10 "${C[@]}" tasks ls -q 2>/dev/null); do
    timeout 10 "${C[@]}" tasks kill -s KILL "$id" >/dev/null 2>&1; sleep 0.2
    timeout 10 "${C[@]}" tasks rm -f "$id" >/dev/null 2>&1
  done
}
trap 'stop_events; kill_tasks; stop_registry; cleanup' EXIT
run bash "$top_srcdir/tests/registry/push.sh" "$REG" --images "$IMAGES" --only busybox
[ "$rc" = 0 ] || { fail "pushing busybox"; finish; }
IMG=$REG/busybox:latest

D=$T/d
start_berthd "$D" "${extra[@]}" || finish
C=("$CTR" --address "$SOCK")

RUNTIMES=()
for id in namespaces oci; do
  if "${C[@]}" plugins ls 2>/dev/null | awk -v id="$id" '$1=="io.berth.runtime.v1" && $2==id && $4=="ok"' | grep -q .; then
    RUNTIMES+=("io.berth.runtime.v1.$id")
  fi
done
if [ ${#RUNTIMES[@]} = 0 ]; then
  why=$(grep -o 'plugin io.berth.runtime.v1.[a-z-]* ([a-z]*): skip: .*' "$BERTHD_LOG" | tr '\n' ';')
  skip "no runtime plugin loads: ${why:-see $BERTHD_LOG}"
fi
echo "runtimes: ${RUNTIMES[*]}"
# containerd's name goes to [runtime] default (namespaces), or oci when that is not loaded.
case " ${RUNTIMES[*]} " in
  *" io.berth.runtime.v1.namespaces "* | *" io.berth.runtime.v1.oci "*) RUNTIMES+=("io.containerd.runc.v2") ;;
esac

run "${C[@]}" images pull --plain-http "$IMG"
expect_rc 0 "ctr images pull (unpacked for the snapshotter)"

MARK=9$$$RANDOM # `sleep $MARK`: the container processes this test run starts (unique per run)
no_leaks () { # what
  local m p
  m=$(grep -c " $D/state/bundles" /proc/self/mounts)
  p=$(pgrep -f "^sleep $MARK\$" | wc -l)
  if [ "$m" = 0 ] && [ "$p" = 0 ]; then pass "$1: no mount under the state dir, no container process left"
  else fail "$1: $m mount(s) under $D/state/bundles, $p container process(es) left"; grep " $D/state" /proc/self/mounts; fi
}
start_events () { "${C[@]}" events > "$1" 2>&1 & EVPID=$!; sleep 0.3; }

n=0
for RT in "${RUNTIMES[@]}"; do
  n=$((n + 1))
  echo "=== runtime $RT"
  R=(--runtime "$RT")

  # --- run --rm: output and exit status -----------------------------------------------
  start_events "$T/ev-$n.txt"
  run timeout 60 "${C[@]}" run --rm "${R[@]}" "$IMG" rm-$n sh -c 'echo hello-from-busybox; exit 3'
  expect_rc 3 "$RT: ctr run --rm propagates the exit status"
  expect_contains "hello-from-busybox" "$RT: the container's stdout reaches ctr"
  sleep 0.5
  stop_events
  run cat "$T/ev-$n.txt"
  expect_contains "/tasks/create" "$RT: /tasks/create published"
  expect_contains "/tasks/start" "$RT: /tasks/start published"
  expect_contains '"exit_status":3' "$RT: /tasks/exit carries the exit status"
  expect_contains "/tasks/delete" "$RT: /tasks/delete published"
  run "${C[@]}" containers ls -q
  expect_not_contains "rm-$n" "$RT: --rm removed the container"
  no_leaks "$RT run --rm"

  # --- run -t: a terminal (script(1) gives ctr one) -------------------------------------------
  if command -v script >/dev/null; then
    run timeout -s KILL 60 script -qec "$CTR --address $SOCK run --rm -t --runtime $RT $IMG tty-$n sh -c 'tty; exit 4'" /dev/null
    expect_rc 4 "$RT: ctr run -t propagates the exit status"
    expect_contains "/dev/pts/" "$RT: the process has a terminal"
    no_leaks "$RT run -t"
  fi

  # --- run -d, tasks ls/exec/ps/pause/resume/kill/rm -----------------------------------------
  run timeout 60 "${C[@]}" run -d "${R[@]}" "$IMG" d-$n sleep $MARK
  expect_rc 0 "$RT: ctr run -d"
  run "${C[@]}" tasks ls
  printf '%s\n' "$out" | grep -q "^d-$n .*RUNNING" && pass "$RT: tasks ls shows it RUNNING" || fail "$RT: tasks ls"
  run timeout 30 "${C[@]}" tasks exec --exec-id ex1 d-$n sh -c 'echo exec-out; exit 7'
  expect_rc 7 "$RT: tasks exec propagates the exec's exit status"
  expect_contains "exec-out" "$RT: the exec's stdout reaches ctr"
  run "${C[@]}" tasks ps d-$n
  expect_rc 0 "$RT: tasks ps"
  run "${C[@]}" tasks pause d-$n
  expect_rc 0 "$RT: tasks pause"
  run "${C[@]}" tasks ls
  printf '%s\n' "$out" | grep -q "^d-$n .*PAUSED" && pass "$RT: paused" || fail "$RT: not PAUSED"
  run "${C[@]}" tasks resume d-$n
  expect_rc 0 "$RT: tasks resume"
  run timeout 30 "${C[@]}" tasks metrics d-$n
  expect_rc 0 "$RT: tasks metrics"
  expect_contains "pids.current" "$RT: tasks metrics shows the pids table"
  run timeout 30 "${C[@]}" tasks metrics --format json d-$n
  expect_rc 0 "$RT: tasks metrics --format json"
  printf '%s\n' "$out" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["memory"]["usage"]["usage"] > 0 else 1)' \
    && pass "$RT: tasks metrics reports a memory usage > 0" || fail "$RT: no memory usage in the metrics"
  run "${C[@]}" containers info d-$n
  expect_contains "io.berth.log.path" "$RT: the container has its log path label"
  run "${C[@]}" containers label d-$n tier=web
  run "${C[@]}" containers ls 'labels.tier==web'
  expect_contains "d-$n" "$RT: containers ls with a label filter"
  run "${C[@]}" containers rm d-$n
  expect_rc 1 "$RT: a container with a running task is not deleted"
  run "${C[@]}" tasks rm d-$n
  expect_rc 1 "$RT: a running task is not deleted"
  start_events "$T/evk-$n.txt"
  run "${C[@]}" tasks kill -s KILL d-$n
  expect_rc 0 "$RT: tasks kill -s KILL"
  for i in $(seq 50); do "${C[@]}" tasks ls | grep -q "^d-$n .*STOPPED" && break; sleep 0.1; done
  run "${C[@]}" tasks ls
  printf '%s\n' "$out" | grep -q "^d-$n .*STOPPED" && pass "$RT: STOPPED after the kill" || fail "$RT: not STOPPED"
  run "${C[@]}" tasks rm d-$n
  expect_rc 0 "$RT: tasks rm"
  run "${C[@]}" containers rm d-$n
  expect_rc 0 "$RT: containers rm"
  sleep 0.3
  stop_events
  run cat "$T/evk-$n.txt"
  expect_contains '"exit_status":137' "$RT: /tasks/exit of the killed task (137)"
  no_leaks "$RT run -d"

  # --- Wait, and a client that goes away during it -------------------------------------------
  run "${C[@]}" containers create "${R[@]}" "$IMG" w-$n sleep $MARK
  expect_rc 0 "$RT: containers create"
  # ctr forwards SIGTERM to the task (sleep as pid 1 ignores it): kill ctr itself.
  run timeout -s KILL 2 "${C[@]}" tasks start w-$n
  expect_rc 137 "$RT: tasks start waits (Tasks.Wait) until ctr is killed"
  run "${C[@]}" version
  expect_rc 0 "$RT: berthd serves after a client left during Wait"
  run "${C[@]}" tasks ls
  printf '%s\n' "$out" | grep -q "^w-$n .*RUNNING" && pass "$RT: the task runs on" || fail "$RT: w-$n not RUNNING"
  run "${C[@]}" tasks kill -s KILL w-$n
  sleep 0.5
  run "${C[@]}" tasks rm w-$n
  expect_rc 0 "$RT: tasks rm after the kill"
  run "${C[@]}" containers rm w-$n
  no_leaks "$RT Wait"
done

# --- kill -9 berthd while a container runs ----------------------------------------------------
RT=${RUNTIMES[0]}
run timeout 60 "${C[@]}" run -d --runtime "$RT" "$IMG" survivor sleep $MARK
expect_rc 0 "run -d survivor ($RT)"
echo "+ kill -9 $BERTHD_PID"
kill -9 "$BERTHD_PID"; wait "$BERTHD_PID" 2>/dev/null
pgrep -f "^sleep $MARK\$" >/dev/null && pass "the container outlives berthd" || fail "the container died with berthd"
start_berthd_config "$D" "$D/config.toml" || finish
run "${C[@]}" tasks ls
printf '%s\n' "$out" | grep -q "^survivor .*RUNNING" && pass "a restarted berthd lists it RUNNING" \
  || { fail "survivor not RUNNING after the restart"; sed 's/^/  log| /' "$BERTHD_LOG"; }
start_events "$T/ev-restart.txt"
run "${C[@]}" tasks kill -s KILL survivor
expect_rc 0 "kill after the restart"
for i in $(seq 50); do "${C[@]}" tasks ls | grep -q "^survivor .*STOPPED" && break; sleep 0.1; done
run "${C[@]}" tasks ls
printf '%s\n' "$out" | grep -q "^survivor .*STOPPED" && pass "its exit is seen after the restart" || fail "survivor not STOPPED"
run "${C[@]}" tasks rm survivor
expect_rc 0 "tasks rm survivor"
expect_contains "137" "the exit status of the reconnected task"
run "${C[@]}" containers rm survivor
sleep 0.3
stop_events
run cat "$T/ev-restart.txt"
expect_contains "/tasks/exit" "/tasks/exit published for the reconnected task"
no_leaks "kill -9 berthd and restart"

# --- bad input ------------------------------------------------------------------------------------
run timeout 30 "${C[@]}" run --rm --runtime io.example.nope "$IMG" bad1 true
expect_rc 1 "an unknown runtime is refused"
expect_contains "not supported" "and the error says so"
run "${C[@]}" containers rm bad1
run "${C[@]}" tasks kill nosuchtask
expect_rc 1 "kill of a missing task fails"
expect_contains "not found" "with not found"
run "${C[@]}" containers create "$IMG" dup true
run "${C[@]}" containers create "$IMG" dup true
expect_rc 1 "a taken container id is refused"
expect_contains "already exists" "with already exists"
run "${C[@]}" containers rm dup
no_leaks "bad input"
run find "$D/state/bundles" -mindepth 2
[ -z "$out" ] && pass "no bundle left" || fail "bundles left: $out"

finish
