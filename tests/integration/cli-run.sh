#!/bin/bash
# berth's container verbs end to end: real berthd (its runtime plugins and
# berth-shim), a real docker-registry serving the busybox test image, and
# the berth CLI: run to completion with exit codes (125/126/127 included),
# stdout and stderr kept apart, -e/-w/-u/--hostname seen inside, -v bind
# mounts, --read-only, --memory in the container's cgroup, -d + ps + logs
# (+ -f) + exec + stop (a TERM trap, and one that ignores TERM: stop -t 1
# kills it) + rm, --rm leaving nothing (containers, snapshots, FIFOs), a
# terminal through script(1), inspect / --format json parsed by python3, and
# wait returning the code.
#
# Environment: BERTH_TEST_RUNTIME (namespaces, oci, runc, crun: passed as
# --runtime; default: the daemon's), BERTH_TEST_SNAPSHOTTER.
# BERTH_TEST_ADDRESS + BERTH_TEST_IMAGE run the same checks against an
# already running daemon that has the image (e.g. containerd, for
# comparison); the log checks need berthd's log files and are left out then.
# Exit: 0 pass, 1 fail, 77 skip (no runtime plugin loads, not root, a tool
# is missing).
. "$(dirname "$0")/lib.sh"
need_root
for tool in python3 script timeout; do
  command -v "$tool" >/dev/null || skip "$tool not installed"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$BERTH" ] || { echo "FAIL: no berth binary at $BERTH"; exit 1; }

export BERTH_FIFO_DIR=$T/fifo
EXTERNAL=${BERTH_TEST_ADDRESS:-}
if [ -n "$EXTERNAL" ]; then
  SOCK=$EXTERNAL
  IMG=${BERTH_TEST_IMAGE:?BERTH_TEST_IMAGE is needed with BERTH_TEST_ADDRESS}
else
  for tool in docker-registry skopeo; do
    command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
  done
  IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
  run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
  [ "$rc" = 0 ] || { fail "building the test images"; finish; }
  REGDIR=$T/registry
  echo "+ tests/registry/start.sh $REGDIR"
  REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
  stop_registry () { bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1; }
  run bash "$top_srcdir/tests/registry/push.sh" "$REG" --images "$IMAGES" --only busybox
  [ "$rc" = 0 ] || { stop_registry; fail "pushing the busybox image"; finish; }
  # The runtime plugins from the build tree; small logs so that rotation
  # happens within the test.
  cfg=()
  for plug in namespaces oci; do
    cfg+=("[plugins.\"io.berth.runtime.v1.$plug\"]")
    [ "$plug" = namespaces ] && [ -x "$top_builddir/berth-runtime" ] && cfg+=("  binary = \"$top_builddir/berth-runtime\"")
    for s in "$top_builddir/shim/berth-shim" "$top_builddir/berth-shim"; do
      [ -x "$s" ] && { cfg+=("  shim_binary = \"$s\""); break; }
    done
    cfg+=("  log_max_size = 4096" "  log_max_files = 3")
  done
  start_berthd "$T/d" "${cfg[@]}" || { stop_registry; finish; }
  IMG=$REG/busybox:latest
fi
B=("$BERTH" --address "$SOCK")

# Every container this test made goes at the end, whatever happened.
final_cleanup () {
  local ids
  ids=$("${B[@]}" containers ls -q 2>/dev/null)
  for id in $ids; do "${B[@]}" rm -f "$id" >/dev/null 2>&1; done
  [ -n "$EXTERNAL" ] || stop_registry
  cleanup
}
trap final_cleanup EXIT

if [ -z "$EXTERNAL" ]; then
  # SKIP only when no runtime plugin loads (say why from plugins ls).
  "${B[@]}" plugins ls --format json >"$T/plugins.json" 2>&1
  loaded=$(python3 - "$T/plugins.json" <<'EOF'
import json, sys
try:
    ps = json.load(open(sys.argv[1]))
except Exception:
    ps = []
rt = [p for p in ps if str(p.get("type", "")).startswith("io.berth.runtime.v1")]
ok = [p for p in rt if p.get("status") == "ok"]
for p in rt:
    if p.get("status") != "ok":
        print("  | %s.%s: %s" % (p.get("type"), p.get("id"), p.get("error", p.get("status"))), file=sys.stderr)
print(" ".join(p.get("id", "?") for p in ok))
EOF
)
  [ -n "$loaded" ] || skip "no runtime plugin loads in berthd (reasons above)"
  echo "runtime plugins loaded: $loaded"
  run "${B[@]}" pull --plain-http ${BERTH_TEST_SNAPSHOTTER:+--snapshotter "$BERTH_TEST_SNAPSHOTTER"} "$IMG"
  expect_rc 0 "pull $IMG"
  [ "$rc" = 0 ] || finish
fi

R=()
[ -n "${BERTH_TEST_RUNTIME:-}" ] && R+=(--runtime "$BERTH_TEST_RUNTIME")
[ -n "${BERTH_TEST_SNAPSHOTTER:-}" ] && R+=(--snapshotter "$BERTH_TEST_SNAPSHOTTER")
RUN=("${B[@]}" run --pull never "${R[@]}")

# run2 CMD...: stdout in $out, stderr in $err, status in $rc (bounded time).
run2 () {
  echo "+ $*"
  timeout 60 "$@" >"$T/o" 2>"$T/e"
  rc=$?
  out=$(cat "$T/o"); err=$(cat "$T/e")
  [ -z "$out" ] || printf '%s\n' "$out" | head -20 | sed 's/^/  | /'
  [ -z "$err" ] || printf '%s\n' "$err" | head -20 | sed 's/^/  ! /'
}
expect_eq () { # got want what
  if [ "$1" = "$2" ]; then pass "$3"; else fail "$3: got \`$1\`, expected \`$2\`"; fi
}

# --- run to completion ---------------------------------------------------------
run2 "${RUN[@]}" --rm "$IMG" true
expect_rc 0 "run --rm true"
run2 "${RUN[@]}" --rm "$IMG" sh -c 'exit 3'
expect_rc 3 "the exit status is the container's"
run2 "${RUN[@]}" --rm "$IMG" sh -c 'exit 2'
expect_rc 2 "exit status 2 is the container's too (not a usage error)"
run2 "${RUN[@]}" --rm "$IMG" sh -c 'echo to-out; echo to-err >&2'
expect_eq "$out" "to-out" "stdout carries only stdout"
expect_eq "$err" "to-err" "stderr carries only stderr"
run2 "${RUN[@]}" --rm "$IMG" no-such-command
expect_rc 127 "a missing command exits 127"
case "$err" in *no-such-command*) pass "and the error names it" ;; *) fail "the error does not name the command" ;; esac
run2 "${RUN[@]}" --rm "$IMG" /etc/passwd
expect_rc 126 "a command that is not executable exits 126"
run2 "${RUN[@]}" --rm "$IMG"x
expect_rc 125 "an unknown image exits 125"
run2 "${RUN[@]}" --rm --memory nonsense "$IMG" true
expect_rc 125 "a bad flag value exits 125"

# --- flags visible inside --------------------------------------------------------
run2 "${RUN[@]}" --rm -e FOO=bar -w /tmp -u 1000:1000 --hostname box1 "$IMG" \
  sh -c 'echo "$FOO $(pwd) $(id -u):$(id -g) $(hostname)"'
expect_eq "$out" "bar /tmp 1000:1000 box1" "-e -w -u --hostname seen inside"
mkdir -p "$T/vol" && echo from-host >"$T/vol/f"
run2 "${RUN[@]}" --rm -v "$T/vol:/mnt" "$IMG" sh -c 'cat /mnt/f; echo from-ctr > /mnt/g'
expect_eq "$out" "from-host" "-v bind mount readable"
expect_eq "$(cat "$T/vol/g" 2>/dev/null)" "from-ctr" "-v bind mount writable"
run2 "${RUN[@]}" --rm -v "$T/vol:/mnt:ro" "$IMG" sh -c 'touch /mnt/h'
expect_rc 1 "-v :ro is read-only"
run2 "${RUN[@]}" --rm --read-only "$IMG" sh -c 'touch /x'
expect_rc 1 "--read-only root"
case "$err" in *"Read-only file system"*) pass "and says so" ;; *) fail "no EROFS message" ;; esac
run2 "${RUN[@]}" --rm --memory 64m "$IMG" \
  sh -c 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes'
expect_eq "$out" "67108864" "--memory 64m visible in the container's cgroup"
run2 "${RUN[@]}" --rm --pids-limit 20 "$IMG" \
  sh -c 'cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max'
expect_eq "$out" "20" "--pids-limit visible in the container's cgroup"
echo "in-data" | timeout 60 "${RUN[@]}" --rm -i "$IMG" sh -c 'cat; echo end' >"$T/o" 2>&1
expect_eq "$(cat "$T/o")" "$(printf 'in-data\nend')" "-i copies stdin, then EOF"

printf 'A=1\n# comment\nB=two words\n' >"$T/envfile"
run2 "${RUN[@]}" --rm --env-file "$T/envfile" "$IMG" sh -c 'echo "$A/$B"'
expect_eq "$out" "1/two words" "--env-file"
if [ -x "$top_builddir/berth-init" ]; then
  BERTH_INIT_PATH=$top_builddir/berth-init run2 "${RUN[@]}" --rm --init "$IMG" sh -c 'tr "\0" " " </proc/1/cmdline; exit 9'
  expect_rc 9 "--init: the exit status passes through berth-init"
  case "$out" in /sbin/berth-init*) pass "--init: berth-init is pid 1" ;; *) fail "--init: pid 1 is \`$out\`" ;; esac
fi

# Signals to a foreground run reach the container (sig-proxy).
echo "+ berth run ... (trap TERM) & kill -TERM"
"${RUN[@]}" --rm "$IMG" sh -c 'trap "echo trapped; exit 42" TERM; echo ready; while true; do sleep 0.1; done' \
  >"$T/sig" 2>&1 &
bpid=$!
for _ in $(seq 100); do grep -q ready "$T/sig" && break; sleep 0.1; done
kill -TERM "$bpid"
wait "$bpid"; rc=$?
sed 's/^/  | /' "$T/sig"
expect_rc 42 "SIGTERM to berth run is forwarded; its exit status comes back"

# --- a terminal ------------------------------------------------------------------
echo "+ script -qec '${RUN[*]} --rm -t $IMG sh -c ...'"
timeout 60 script -qec "$(printf '%q ' "${RUN[@]}") --rm -t $IMG sh -c 'test -t 0 && test -t 1 && echo is-a-tty; exit 5'" \
  /dev/null </dev/null >"$T/o" 2>&1
rc=$?
sed 's/^/  | /' "$T/o"
expect_rc 5 "run -t exit status"
grep -q "is-a-tty" "$T/o" && pass "run -t gives a terminal" || fail "run -t: no terminal inside"

# --- --rm leaves nothing ---------------------------------------------------------
run2 "${RUN[@]}" --rm --name gone "$IMG" true
run2 "${B[@]}" containers ls -q
expect_eq "$out" "" "--rm: no container left"
sn=${BERTH_TEST_SNAPSHOTTER:-}
[ -n "$sn" ] || sn=$(python3 -c 'import os; print(os.environ.get("BERTH_SNAPSHOTTER","overlayfs"))')
run2 "${B[@]}" snapshots ls --snapshotter "$sn" --format json
left=$(printf '%s' "$out" | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s["kind"]=="Active"))')
expect_eq "$left" "0" "--rm: no active snapshot left"
left=$(find "$T/fifo" -type p 2>/dev/null | wc -l)
expect_eq "$left" "0" "--rm: no FIFO left"

run2 "${RUN[@]}" -d --rm "$IMG" sleep 0.5
expect_rc 0 "run -d --rm"
for _ in $(seq 50); do [ -z "$("${B[@]}" containers ls -q)" ] && break; sleep 0.2; done
run2 "${B[@]}" containers ls -q
expect_eq "$out" "" "run -d --rm: removed after its exit"

# --- detached: ps, logs, exec, stop, rm --------------------------------------------
run2 "${RUN[@]}" -d --name web "$IMG" \
  sh -c 'trap "echo got-term; exit 7" TERM; echo started; echo warn >&2; while true; do sleep 0.1; done'
expect_rc 0 "run -d"
id=$out
[ "${#id}" = 64 ] && pass "run -d prints the 64-hex id" || fail "run -d printed \`$id\`"
run2 "${RUN[@]}" -d --name web "$IMG" true
expect_rc 125 "a taken name is refused"
run2 "${RUN[@]}" -d --name stubborn "$IMG" sh -c 'trap "" TERM; while true; do sleep 0.1; done'
expect_rc 0 "run -d (ignores TERM)"
run2 "${B[@]}" ps
case "$out" in *"${id:0:12}"*web*) pass "ps lists web by short id and name" ;; *) fail "ps lacks web" ;; esac
echo "$out" | grep -q "Up " && pass "ps says Up" || fail "ps has no Up status"
run2 "${B[@]}" ps --format json
names=$(printf '%s' "$out" | python3 -c 'import json,sys; print(" ".join(sorted(c["Names"] for c in json.load(sys.stdin))))')
expect_eq "$names" "stubborn web" "ps --format json parses"
run2 "${B[@]}" exec web sh -c 'echo "in $(hostname)"; exit 4'
expect_rc 4 "exec exit status"
expect_eq "$out" "in ${id:0:12}" "exec runs inside (hostname = short id)"
run2 "${B[@]}" exec -e X=1 -u 1000 -w /tmp "${id:0:8}" sh -c 'echo "$X $(id -u) $(pwd)"'
expect_eq "$out" "1 1000 /tmp" "exec -e -u -w, by id prefix"
run2 "${B[@]}" exec web no-such-command
expect_rc 127 "exec of a missing command exits 127"
run2 "${B[@]}" top web
case "$out" in *PID*sh*) pass "top lists the processes" ;; *) fail "top output" ;; esac
if [ -z "$EXTERNAL" ]; then
  sleep 0.5
  run2 "${B[@]}" logs web
  expect_eq "$out" "started" "logs: stdout to stdout"
  expect_eq "$err" "warn" "logs: stderr to stderr"
  run2 "${B[@]}" logs --tail 2 -t web
  echo "$out" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T.* started$' && pass "logs -t prefixes the time" \
    || fail "logs -t: \`$out\`"
  # -f follows until the container stops.
  echo "+ berth logs -f web & berth stop web"
  timeout 30 "${B[@]}" logs -f web >"$T/follow" 2>/dev/null &
  fpid=$!
fi
t0=$(date +%s%N)
run2 "${B[@]}" stop -t 10 web
t1=$(date +%s%N)
expect_rc 0 "stop (TERM trapped)"
[ $(( (t1 - t0) / 1000000 )) -lt 5000 ] && pass "stop returned when the trap exited" || fail "stop waited for the timeout"
if [ -z "$EXTERNAL" ]; then
  wait "$fpid"; frc=$?
  expect_eq "$frc" "0" "logs -f ends when the container stops"
  grep -q got-term "$T/follow" && pass "logs -f saw the output after TERM" || fail "logs -f missed got-term"
fi
run2 "${B[@]}" wait web
expect_eq "$out" "7" "wait prints the exit code"
t0=$(date +%s%N)
run2 "${B[@]}" stop -t 1 stubborn
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
expect_rc 0 "stop -t 1 of a container that ignores TERM"
[ "$ms" -ge 900 ] && [ "$ms" -lt 10000 ] && pass "killed after the 1 s timeout (${ms} ms)" || fail "stop took ${ms} ms"
run2 "${B[@]}" ps -a --format json
st=$(printf '%s' "$out" | python3 -c '
import json, re, sys
cs = sorted(json.load(sys.stdin), key=lambda c: c["Names"])
print(" ".join("%s=%s" % (c["Names"], re.sub(r" \d+ seconds? ago| Less than a second ago", "", c["Status"])) for c in cs))')
expect_eq "$st" "stubborn=Exited (137) web=Exited (7)" "ps -a: Exited (137) and Exited (7)"
run2 "${B[@]}" inspect web
state=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; print(d["State"]["Status"], d["State"]["ExitCode"], d["Name"], d["Id"]==sys.argv[1])' "$id")
expect_eq "$state" "exited 7 web True" "inspect parses: state, exit code, name, id"
run2 "${B[@]}" start web
expect_rc 0 "start a stopped container"
run2 "${B[@]}" rm web
expect_rc 1 "rm of a running container is refused"
case "$err" in *running*) pass "and says it is running" ;; *) fail "rm refusal message" ;; esac
run2 "${B[@]}" rm -f web stubborn
expect_rc 0 "rm -f"
run2 "${B[@]}" containers ls -q
expect_eq "$out" "" "rm: no container left"
run2 "${B[@]}" snapshots ls --snapshotter "$sn" --format json
left=$(printf '%s' "$out" | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s["kind"]=="Active"))')
expect_eq "$left" "0" "rm: no active snapshot left"
if [ -z "$EXTERNAL" ]; then
  left=$(grep -c " $T/d/state/bundles" /proc/self/mountinfo)
  expect_eq "$left" "0" "rm: no bundle rootfs left mounted"
  left=$(pgrep -f "berth-shim.*$T/d" | wc -l)
  expect_eq "$left" "0" "rm: no berth-shim left"
fi
run2 "${B[@]}" inspect web
expect_rc 1 "inspect of a removed container fails"
case "$err" in *"no such container"*) pass "and says so" ;; *) fail "no 'no such container'" ;; esac

# --- logs across rotated files ------------------------------------------------------
if [ -z "$EXTERNAL" ]; then
  run2 "${RUN[@]}" -d --name chatty "$IMG" sh -c 'i=1; while [ $i -le 2000 ]; do echo "line $i"; i=$((i+1)); done'
  run2 "${B[@]}" wait chatty
  ls "$T/d/root/logs/default/"*/ 2>/dev/null | sed 's/^/  | /'
  timeout 30 "${B[@]}" logs chatty >"$T/chatty" 2>&1
  python3 - "$T/chatty" <<'EOF2'
import sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
nums = [int(l.split()[1]) for l in lines]
ok = nums and nums[-1] == 2000 and nums == list(range(nums[0], 2001))
print("  logs: %d lines, %s .. %s" % (len(nums), nums[0] if nums else "-", nums[-1] if nums else "-"))
sys.exit(0 if ok else 1)
EOF2
  [ $? = 0 ] && pass "logs reads the rotated files oldest first, in order" || fail "logs across rotation"
  run2 "${B[@]}" logs --tail 3 chatty
  expect_eq "$out" "$(printf 'line 1998\nline 1999\nline 2000')" "logs --tail 3"
  run2 "${B[@]}" rm chatty
  expect_rc 0 "rm of an exited container"
fi

# --- create + start -a, ctr-style groups --------------------------------------------
run2 "${B[@]}" create --pull never "${R[@]}" --name made "$IMG" sh -c 'echo made-run; exit 2'
expect_rc 0 "create"
run2 "${B[@]}" ps -a
echo "$out" | grep made | grep -q Created && pass "ps -a: Created" || fail "created container not listed as Created"
run2 "${B[@]}" start -a made
expect_rc 2 "start -a returns the exit status"
expect_eq "$out" "made-run" "start -a copies the output"
run2 "${B[@]}" tasks ls
echo "$out" | grep -q STOPPED && pass "tasks ls shows the stopped task" || fail "tasks ls"
run2 "${B[@]}" containers info made
printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["Spec"]["process"]["args"][0]=="sh"' \
  && pass "containers info: JSON with the spec" || fail "containers info"
run2 "${B[@]}" containers rm made
expect_rc 0 "containers rm"

finish
