#!/bin/bash
# Isolation from a bad shim (issue 8, part 3): N running containers
# (BERTH_ISOLATION_N, default 20; 50 for the full-scale run), one shim
# frozen with SIGSTOP.  The shim is found by the pid berthd's runtime plugin
# records (<state>/io.berth.runtime.v1.<plugin>/<ns>/<id>/shim.pid), never
# by name.  While it is frozen:
#   - `berth ps` and real `ctr tasks ls` answer quickly and correctly: every
#     other container Up / RUNNING, the frozen one Unknown / UNKNOWN ("shim
#     not answering for ..." in ps and in inspect's State.Error);
#   - `ctr events` keeps streaming, and run / exec / stop of other
#     containers complete quickly;
#   - kill and exec on the frozen container fail after their deadline
#     with an error naming berth-shim and its pid.
# After SIGCONT the state converges (Up / RUNNING again), and removing
# everything leaves no shim or container process, mount or cgroup.
#
# The time bounds are generous (the correctness is the test; bench/run's
# ps-frozen-shim case measures the latency).  Exit: 0 pass, 1 fail, 77 skip.
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in docker-registry skopeo python3 timeout; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -x "$BERTH" ] || { echo "FAIL: no berth binary at $BERTH"; exit 1; }
N=${BERTH_ISOLATION_N:-20}
case "$N" in '' | *[!0-9]*) skip "BERTH_ISOLATION_N=$N is not a number" ;; esac
[ "$N" -ge 4 ] || skip "BERTH_ISOLATION_N must be at least 4"
CALL_TIMEOUT_MS=3000

export BERTH_FIFO_DIR=$T/fifo
start_test_registry --only busybox

cfg=()
for plug in namespaces oci; do
  cfg+=("[plugins.\"io.berth.runtime.v1.$plug\"]")
  [ "$plug" = namespaces ] && [ -x "$top_builddir/berth-runtime" ] && cfg+=("  binary = \"$top_builddir/berth-runtime\"")
  for s in "$top_builddir/shim/berth-shim" "$top_builddir/berth-shim"; do
    [ -x "$s" ] && { cfg+=("  shim_binary = \"$s\""); break; }
  done
  cfg+=("  call_timeout_ms = $CALL_TIMEOUT_MS")
done
start_berthd "$T/d" "${cfg[@]}" || { stop_registry; finish; }
STATE=$T/d/state
IMG=$REG/busybox:latest
B=("$BERTH" --address "$SOCK")
C=("$CTR" -a "$SOCK" -n default)

SHIM_PID=
EVENTS_PID=
final_cleanup () {
  [ -n "$SHIM_PID" ] && kill -CONT "$SHIM_PID" 2>/dev/null
  [ -n "$EVENTS_PID" ] && kill "$EVENTS_PID" 2>/dev/null && wait "$EVENTS_PID" 2>/dev/null
  local ids
  ids=$("${B[@]}" containers ls -q 2>/dev/null)
  for id in $ids; do timeout 30 "${B[@]}" rm -f "$id" >/dev/null 2>&1; done
  stop_registry
  cleanup
}
trap final_cleanup EXIT

run timeout 120 "${B[@]}" pull --plain-http "$IMG"
expect_rc 0 "pull $IMG"
[ "$rc" = 0 ] || finish

# timed CMD...: run with a 60 s cap; $out, $rc, and $ms (wall time).
timed () {
  local t0 t1
  echo "+ $*"
  t0=$(date +%s%N)
  out=$(timeout 60 "$@" 2>&1)
  rc=$?
  t1=$(date +%s%N)
  ms=$(( (t1 - t0) / 1000000 ))
  [ -z "$out" ] || printf '%s\n' "$out" | head -60 | sed 's/^/  | /'
  echo "  ($ms ms, exit $rc)"
}
expect_fast () { # limit_ms what
  if [ "$ms" -lt "$1" ]; then pass "$2 (${ms} ms < $1 ms)"; else fail "$2: took ${ms} ms (limit $1 ms)"; fi
}

# --- N containers ------------------------------------------------------------
echo "starting $N containers"
for i in $(seq 1 "$N"); do
  out=$(timeout 60 "${B[@]}" run -d --pull never --name "iso$i" "$IMG" sleep 3600 2>&1)
  rc=$?
  [ "$rc" = 0 ] || { fail "run -d iso$i: $out"; finish; }
done
pass "$N containers started"

# Container ids by name, and every container's shim and init pid from what
# the daemon records.
declare -A ID SHIM INIT
while read -r name id; do ID[$name]=$id; done < <("${B[@]}" ps --format json | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    print(c["Names"], c["ID"])')
for i in $(seq 1 "$N"); do
  id=${ID[iso$i]:-none}
  f=$(find "$STATE" -path "*/default/$id/shim.pid" 2>/dev/null | head -1)
  [ -n "$f" ] || { fail "no shim.pid recorded for iso$i ($id) under $STATE"; finish; }
  SHIM[iso$i]=$(cat "$f")
  INIT[iso$i]=$(cat "$(dirname "$f")/init.pid" 2>/dev/null)
done
VICTIM=iso2
VID=${ID[$VICTIM]}
SHIM_PID=${SHIM[$VICTIM]}
exe=$(readlink "/proc/$SHIM_PID/exe" 2>/dev/null)
case "$exe" in
  */berth-shim) pass "$VICTIM's shim is pid $SHIM_PID ($exe), from its shim.pid" ;;
  *) fail "pid $SHIM_PID recorded for $VICTIM's shim runs \`$exe\`, not berth-shim"; finish ;;
esac

timed "${C[@]}" tasks ls
expect_rc 0 "ctr tasks ls before the freeze"
n_running=$(printf '%s\n' "$out" | grep -c ' RUNNING$')
[ "$n_running" = "$N" ] && pass "$N tasks RUNNING" || fail "$n_running of $N tasks RUNNING"

# Events from now on, through the real ctr.
echo "+ ${C[*]} events > $T/events &"
"${C[@]}" events >"$T/events" 2>&1 &
EVENTS_PID=$!

# --- freeze one shim -----------------------------------------------------------
echo "+ kill -STOP $SHIM_PID   # $VICTIM's shim"
kill -STOP "$SHIM_PID"
for k in $(seq 1 50); do grep -q '^State:[[:space:]]*T' "/proc/$SHIM_PID/status" && break; sleep 0.02; done
grep -q '^State:[[:space:]]*T' "/proc/$SHIM_PID/status" && pass "shim $SHIM_PID is stopped" || fail "shim $SHIM_PID is not stopped"

# ps answers at once (from the daemon's cache); the frozen one turns Unknown
# once a background probe misses its deadline (state_timeout_ms, 2 s).
slowest=0
seen=0
for k in $(seq 1 40); do
  t0=$(date +%s%N)
  out=$(timeout 30 "${B[@]}" ps 2>&1); rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$ms" -gt "$slowest" ] && slowest=$ms
  if printf '%s\n' "$out" | grep -E "[[:space:]]$VICTIM\$" | grep -q "Unknown (shim not answering"; then
    seen=1
    break
  fi
  sleep 0.5
done
echo "+ ${B[*]} ps"; printf '%s\n' "$out" | sed 's/^/  | /'
[ "$seen" = 1 ] && pass "berth ps shows $VICTIM as Unknown (shim not answering ...)" \
  || fail "berth ps never showed $VICTIM as not answering"
[ "$slowest" -lt 1000 ] && pass "every berth ps while frozen took < 1 s (slowest ${slowest} ms)" \
  || fail "a berth ps took ${slowest} ms while a shim was frozen"
up=$(printf '%s\n' "$out" | grep -c ' Up ')
[ "$up" = $((N - 1)) ] && pass "the $((N - 1)) other containers are Up" || fail "$up containers Up, expected $((N - 1))"

timed "${B[@]}" ps
expect_fast 1000 "berth ps with a frozen shim"
timed "${C[@]}" tasks ls
expect_rc 0 "ctr tasks ls with a frozen shim"
expect_fast 1000 "ctr tasks ls with a frozen shim"
printf '%s\n' "$out" | grep -E "^$VID[[:space:]]" | grep -q "UNKNOWN$" && pass "ctr shows $VICTIM UNKNOWN" \
  || fail "ctr does not show $VICTIM UNKNOWN"
n_running=$(printf '%s\n' "$out" | grep -c ' RUNNING$')
[ "$n_running" = $((N - 1)) ] && pass "ctr shows the $((N - 1)) others RUNNING" || fail "$n_running RUNNING, expected $((N - 1))"

timed "${B[@]}" inspect "$VICTIM"
expect_fast 1000 "inspect of the frozen container"
err=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"].get("Error",""))' 2>/dev/null)
case "$err" in
  "shim not answering for "*) pass "inspect says: $err" ;;
  *) fail "inspect's State.Error is \`$err\`" ;;
esac
timed "${C[@]}" tasks ps "${ID[iso1]}"
expect_rc 0 "ctr tasks ps of another container"

# --- other containers are unaffected --------------------------------------------
timed "${B[@]}" run --rm --pull never "$IMG" echo isolated
expect_rc 0 "run --rm of a new container"
expect_fast 10000 "run --rm of a new container"
expect_contains isolated "its output"
timed "${B[@]}" exec iso3 echo exec-ok
expect_rc 0 "exec in another container"
expect_fast 5000 "exec in another container"
expect_contains exec-ok "exec's output"
timed "${B[@]}" stop -t 1 iso4
expect_rc 0 "stop of another container"
expect_fast 8000 "stop of another container"
timed "${B[@]}" ps -a
printf '%s\n' "$out" | grep -E "[[:space:]]iso4\$" | grep -q "Exited" && pass "iso4 shows Exited" || fail "iso4 is not Exited"
sleep 0.5
if grep -q "/tasks/exit" "$T/events" && grep -q "/tasks/start" "$T/events"; then
  pass "ctr events streamed /tasks/start and /tasks/exit meanwhile"
else
  fail "ctr events missed events"; sed 's/^/  | /' "$T/events" | tail -20
fi

# --- calls that need the frozen shim fail after their deadline -------------------
# SIGWINCH: the request stays queued in the shim's socket and is carried out
# after SIGCONT; WINCH does nothing to sleep.
timed "${B[@]}" kill -s WINCH "$VICTIM"
[ "$rc" != 0 ] && pass "kill of the frozen container fails (exit $rc)" || fail "kill of the frozen container succeeded"
expect_contains "berth-shim (pid $SHIM_PID)" "the error names berth-shim and its pid"
expect_fast $((CALL_TIMEOUT_MS + 3000)) "kill gives up after its deadline"
# While one call waits for the frozen shim, another is refused at once
# (callers retrying cannot take every worker thread of berthd).
echo "+ ${B[*]} kill -s WINCH $VICTIM &"
"${B[@]}" kill -s WINCH "$VICTIM" >"$T/kill1" 2>&1 &
kill1=$!
sleep 0.5
timed "${B[@]}" kill -s WINCH "$VICTIM"
[ "$rc" != 0 ] && pass "a second kill while one waits fails" || fail "a second kill succeeded"
expect_contains "already waiting" "it says another call is waiting"
expect_fast 1000 "the second kill is refused at once"
wait "$kill1"
timed "${B[@]}" exec "$VICTIM" true
[ "$rc" != 0 ] && pass "exec in the frozen container fails (exit $rc)" || fail "exec in the frozen container succeeded"
expect_contains "berth-shim (pid $SHIM_PID)" "the error names berth-shim and its pid"
expect_fast $((CALL_TIMEOUT_MS + 3000)) "exec gives up after its deadline"
timed "${C[@]}" tasks exec --exec-id late "$VID" true
[ "$rc" != 0 ] && pass "ctr tasks exec in the frozen container fails (exit $rc)" || fail "ctr tasks exec succeeded"
expect_contains "berth-shim (pid $SHIM_PID)" "ctr's error names berth-shim and its pid"
expect_fast $((CALL_TIMEOUT_MS + 3000)) "ctr tasks exec gives up after its deadline"

# --- SIGCONT: the state converges ------------------------------------------------
echo "+ kill -CONT $SHIM_PID"
kill -CONT "$SHIM_PID"
SHIM_PID_FROZEN=$SHIM_PID
SHIM_PID=
ok=0
for k in $(seq 1 60); do
  out=$(timeout 30 "${B[@]}" ps 2>&1)
  if printf '%s\n' "$out" | grep -E "[[:space:]]$VICTIM\$" | grep -q " Up "; then ok=1; break; fi
  sleep 0.5
done
echo "+ ${B[*]} ps"; printf '%s\n' "$out" | sed 's/^/  | /'
[ "$ok" = 1 ] && pass "after SIGCONT berth ps shows $VICTIM Up again" || fail "$VICTIM did not come back Up"
timed "${C[@]}" tasks ls
printf '%s\n' "$out" | grep -E "^$VID[[:space:]]" | grep -q "RUNNING$" && pass "ctr shows $VICTIM RUNNING again" \
  || fail "ctr does not show $VICTIM RUNNING"
timed "${B[@]}" exec "$VICTIM" echo back
expect_rc 0 "exec in the thawed container"
expect_contains back "its output"

# --- cleanup leaves nothing --------------------------------------------------------
kill "$EVENTS_PID" 2>/dev/null; wait "$EVENTS_PID" 2>/dev/null; EVENTS_PID=
# The cgroups the containers' processes are in now (those not shared with
# this shell), to check that they go.
CGS=$(for id in "${!INIT[@]}"; do
  p=${INIT[$id]}
  [ -n "$p" ] && [ -r "/proc/$p/cgroup" ] || continue
  while IFS=: read -r _ ctl path; do
    [ "$path" = / ] && continue
    grep -qF ":$ctl:$path" /proc/self/cgroup && continue
    case "$ctl" in "") d=/sys/fs/cgroup/unified$path ;; name=*) d=/sys/fs/cgroup/${ctl#name=}$path ;; *) d=/sys/fs/cgroup/${ctl%%,*}$path ;; esac
    [ -d "$d" ] && echo "$d"
  done < "/proc/$p/cgroup"
done | sort -u)
echo "container cgroups: $(printf '%s\n' "$CGS" | grep -c .)"
ids=$("${B[@]}" containers ls -q 2>/dev/null)
run timeout 120 "${B[@]}" rm -f $ids
expect_rc 0 "rm -f of every container"
sleep 0.5
left=""
for id in "${!SHIM[@]}"; do
  for p in "${SHIM[$id]}" "${INIT[$id]}"; do
    [ -n "$p" ] && [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && left="$left $id:$p"
  done
done
[ -z "$left" ] && pass "no shim or container process is left" || fail "processes left:$left"
mounts=$(grep -c " $T/" /proc/self/mounts)
[ "$mounts" = 0 ] && pass "no mount left under $T" || { fail "$mounts mounts left under $T"; grep " $T/" /proc/self/mounts | sed 's/^/  | /'; }
cg=$(for d in $CGS; do [ -d "$d" ] && echo "$d"; done | head)
[ -z "$cg" ] && pass "no container cgroup left ($(printf '%s\n' "$CGS" | grep -c .) checked)" || fail "cgroups left: $cg"
left=$(for id in "${ID[@]}"; do find "$STATE" -type d -name "$id" 2>/dev/null; done)
[ -z "$left" ] && pass "no task or bundle directory left" || fail "directories left: $left"
finish
