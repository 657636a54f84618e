#!/bin/bash
# Soak: a private berthd, the busybox and multilayer test images from a real
# docker-registry on loopback, and
#   1. CYCLES create/start/stop/rm cycles of one container: berthd's fd count
#      flat and its RSS growth <= 1 MiB per 1000 cycles, both measured after
#      a warm-up (WARMUP cycles) and sampled every SAMPLE cycles (a worker
#      thread that berthd starts after the baseline is allowed 256 KiB once);
#   2. CONCURRENT containers running at once (run -d), all of them seen
#      running, then stopped and removed;
#   3. PULLS pulls of the multilayer image (a 64 MiB layer) interrupted at a
#      random byte offset, in turn by cancelling the client (SIGINT), by a
#      connection cut by tests/integration/throttle-proxy.py and by kill -9
#      of berthd; after each, the next pull completes and the image runs with
#      /data/random.bin intact (sha256 against the layer's own tar).
# After each phase: no mount left under the test root, no cgroup of the
# soak's namespace under /sys/fs/cgroup/*/, no netns held by berthd, no
# shim, container or descendant process alive (by the pids the shims
# recorded, with their start times, and by the containers' unique command
# line).
#
# Environment: CYCLES (150), CONCURRENT (40), PULLS (10), WARMUP (cycles
# before the baseline; default CYCLES/4, at most 100), SAMPLE (50), RUNTIME
# (namespaces; runc, crun, oci: passed as --runtime), RSS_SLACK_KIB (allocator
# noise allowed on top of the scaled bound, default 256), SOAK_OUT (a
# directory that receives curve.tsv, pulls.tsv and summary.txt).
# The defaults are the CI form (about 3 minutes here); the full scale is
# CYCLES=1000 CONCURRENT=200 PULLS=100.
# Exit: 0 pass, 1 fail, 77 skip (not root, a tool missing, no runtime).
. "$(dirname "$0")/../integration/lib.sh"
need_root
for tool in docker-registry skopeo python3 timeout tar sha256sum; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$BERTH" ] || { echo "FAIL: no berth binary at $BERTH"; exit 1; }

CYCLES=${CYCLES:-150}
CONCURRENT=${CONCURRENT:-40}
PULLS=${PULLS:-10}
SAMPLE=${SAMPLE:-50}
WARMUP=${WARMUP:-$((CYCLES / 4 > 100 ? 100 : CYCLES / 4))}
RUNTIME=${RUNTIME:-namespaces}
RSS_SLACK_KIB=${RSS_SLACK_KIB:-256}
OUT=${SOAK_OUT:-$T/out}
mkdir -p "$OUT"
echo "soak: CYCLES=$CYCLES WARMUP=$WARMUP CONCURRENT=$CONCURRENT PULLS=$PULLS RUNTIME=$RUNTIME"
T0=$(date +%s)

export BERTH_FIFO_DIR=$T/fifo
NS=soak$$
MARK=$((100000 + $$))        # the containers sleep this long: unique in ps
CMD=(sh -c "trap 'exit 0' TERM; sleep $MARK & wait")

start_test_registry --only busybox,multilayer

cfg=()
for plug in namespaces oci; do
  cfg+=("[plugins.\"io.berth.runtime.v1.$plug\"]")
  [ "$plug" = namespaces ] && [ -x "$top_builddir/berth-runtime" ] && cfg+=("  binary = \"$top_builddir/berth-runtime\"")
  for s in "$top_builddir/shim/berth-shim" "$top_builddir/berth-shim"; do
    [ -x "$s" ] && { cfg+=("  shim_binary = \"$s\""); break; }
  done
done
start_berthd "$T/d" "${cfg[@]}" || { stop_registry; finish; }
B=(timeout 120 "$BERTH" --address "$SOCK" --namespace "$NS")
IMG=$REG/busybox:latest
BIG_IMG=$REG/multilayer:latest
PROXY=

final_cleanup () {
  local ids id
  [ -n "$PROXY" ] && { kill "$PROXY" 2>/dev/null; wait "$PROXY" 2>/dev/null; }
  ids=$("${B[@]}" containers ls -q 2>/dev/null)
  for id in $ids; do "${B[@]}" rm -f "$id" >/dev/null 2>&1; done
  stop_registry
  cleanup
  for id in /sys/fs/cgroup/*/"$NS"; do [ -d "$id" ] && rmdir "$id" 2>/dev/null; done
  return 0
}
trap final_cleanup EXIT

run "${B[@]}" pull --plain-http "$IMG"
expect_rc 0 "pull $IMG"
[ "$rc" = 0 ] || finish
R=(--runtime "$RUNTIME")
run "${B[@]}" run --rm --pull never "${R[@]}" "$IMG" true
[ "$rc" = 0 ] || skip "runtime $RUNTIME cannot run a container here (output above)"

# --- measuring and leak checks ------------------------------------------------------
fds () { ls "/proc/$BERTHD_PID/fd" 2>/dev/null | wc -l; }
# fds_settled WANT: the fd count once it equals WANT, or after 5 s what it is
# (a connection of the last call may still be closing).
fds_settled () {
  local n
  for _ in $(seq 1 10); do n=$(fds); [ "$n" = "$1" ] && break; sleep 0.5; done
  echo "$n"
}
status_kib () { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$BERTHD_PID/status"; }
rss () { status_kib VmRSS; }
threads () { awk '$1 == "Threads:" { print $2 }' "/proc/$BERTHD_PID/status"; }
pss () { awk '$1 == "Pss:" { print $2 }' "/proc/$BERTHD_PID/smaps_rollup" 2>/dev/null; }
starttime () { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }

# record ID: the pids of its shim and its init (as the shim wrote them)
# with their start times, in $T/pids, to be checked dead later.
record () {
  local f p
  for f in $(find "$T/d/state" -path "*/$NS/$1*/*" \( -name shim.pid -o -name init.pid \) 2>/dev/null); do
    p=$(cat "$f" 2>/dev/null)
    [ -n "$p" ] && echo "$p $(starttime "$p") $f" >>"$T/pids"
  done
}

# leaks WHAT: everything a removed container could leave behind.
leaks () {
  local what=$1 n
  n=$(grep -c " $T/" /proc/self/mountinfo)
  [ "$n" = 0 ] && pass "$what: no mount left under the test root" \
    || { fail "$what: $n mounts left under $T"; grep " $T/" /proc/self/mountinfo | head -5 | sed 's/^/  | /'; }
  n=$(find /sys/fs/cgroup/*/"$NS" -mindepth 1 -type d 2>/dev/null | wc -l)
  [ "$n" = 0 ] && pass "$what: no cgroup left under /sys/fs/cgroup/*/$NS" \
    || { fail "$what: $n cgroups left"; find /sys/fs/cgroup/*/"$NS" -mindepth 1 -type d | head -5 | sed 's/^/  | /'; }
  n=$(find "/proc/$BERTHD_PID/fd" -lname 'net:*' 2>/dev/null | wc -l)
  [ "$n" = 0 ] && pass "$what: berthd holds no netns" || fail "$what: berthd holds $n network namespaces"
  # A zombie whose parent is not berthd has exited: reaping it is its
  # parent's business (here pid 1 may be a sandbox init that reaps late).
  # A shim may still be on its way out just after rm returned: up to 5 s.
  local try
  for try in $(seq 1 10); do
    n=0; z=0
    if [ -s "$T/pids" ]; then
      while read -r p st f; do
        [ -n "$st" ] && [ "$(starttime "$p")" = "$st" ] || continue
        set -- $(awk '{ sub(/.*\) /, ""); print $1, $2 }' "/proc/$p/stat" 2>/dev/null)
        [ -n "${1:-}" ] || continue   # gone between the two reads
        if [ "$1" = Z ] && [ "${2:-}" != "$BERTHD_PID" ]; then z=$((z + 1)); continue; fi
        n=$((n + 1)); [ "$try" = 10 ] && echo "  alive: pid $p, state $1, parent ${2:-?} ($f)"
      done < "$T/pids"
    fi
    [ "$n" = 0 ] && break
    sleep 0.5
  done
  [ "$try" -gt 1 ] && echo "  ($what: some shim or init still exiting; waited $(( (try - 1) * 500 )) ms)"
  [ "$n" = 0 ] && pass "$what: every recorded shim and init pid is gone ($(wc -l < "$T/pids" 2>/dev/null || echo 0); $z exited, not yet reaped by their parent pid 1)" \
    || fail "$what: $n recorded shim/init processes alive (or zombies of berthd)"
  n=$(pgrep -f "^sleep $MARK\$|berth-shim.*$NS" | wc -l)
  [ "$n" = 0 ] && pass "$what: no container or shim process left" \
    || { fail "$what: $n processes left"; pgrep -af "^sleep $MARK\$|berth-shim.*$NS" | head -5 | sed 's/^/  | /'; }
  n=$("${B[@]}" containers ls -q | wc -l)
  [ "$n" = 0 ] && pass "$what: no container record left" || fail "$what: $n container records left"
}

# --- 1. create/start/stop/rm cycles -------------------------------------------------
printf 'cycle\tfds\trss_kib\tpss_kib\tthreads\telapsed_s\n' >"$OUT/curve.tsv"
sample () { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(fds)" "$(rss)" "$(pss)" "$(threads)" $(( $(date +%s) - T0 )) \
  | tee -a "$OUT/curve.tsv" | sed 's/^/  sample /'; }
cycle_fail=0
echo "+ $CYCLES x (berth create; start; stop; rm) ${R[*]} $IMG ${CMD[*]}"
sample 0
for i in $(seq 1 "$CYCLES"); do
  n=soak-c$i
  if ! "${B[@]}" create --pull never "${R[@]}" --name "$n" "$IMG" "${CMD[@]}" >/dev/null 2>"$T/err" \
     || ! "${B[@]}" start "$n" >/dev/null 2>>"$T/err"; then
    cycle_fail=$((cycle_fail + 1)); sed 's/^/  ! /' "$T/err" | head -3
  fi
  record "$("${B[@]}" containers ls -q 2>/dev/null | head -1)"
  "${B[@]}" stop -t 10 "$n" >/dev/null 2>"$T/err" || { cycle_fail=$((cycle_fail + 1)); sed 's/^/  ! /' "$T/err" | head -3; }
  "${B[@]}" rm "$n" >/dev/null 2>"$T/err" || { cycle_fail=$((cycle_fail + 1)); sed 's/^/  ! /' "$T/err" | head -3; }
  [ "$i" = "$WARMUP" ] && { sleep 0.5; sample "$i"; base_fds=$(fds); base_rss=$(rss); base_threads=$(threads); }
  [ "$i" != "$WARMUP" ] && [ $((i % SAMPLE)) = 0 ] && sample "$i"
  [ "$cycle_fail" -gt 20 ] && { fail "more than 20 cycle steps failed; stopping the cycles"; break; }
done
sleep 0.5
end_fds=$(fds_settled "${base_fds:-0}")
sample "$CYCLES"
end_rss=$(rss); end_threads=$(threads)
[ "$cycle_fail" = 0 ] && pass "$CYCLES cycles, every create/start/stop/rm succeeded" || fail "$cycle_fail cycle steps failed"
measured=$((CYCLES - WARMUP))
if [ "$measured" -gt 0 ] && [ -n "${base_rss:-}" ]; then
  [ "$end_fds" = "$base_fds" ] && pass "fd count flat after warm-up ($base_fds -> $end_fds)" \
    || fail "fd count $base_fds after $WARMUP cycles, $end_fds after $CYCLES"
  growth=$((end_rss - base_rss))
  # berthd's worker pool starts its (at most 4) threads on demand and keeps
  # them: a thread started after the baseline brings its stack and malloc
  # arena once, allowed for here; more than 4 new threads is a leak.
  newthr=$((end_threads - base_threads)); [ "$newthr" -gt 0 ] || newthr=0
  [ "$newthr" -le 4 ] && pass "threads $base_threads -> $end_threads" \
    || fail "berthd's threads grew from $base_threads to $end_threads"
  bound=$((measured * 1024 / 1000 + RSS_SLACK_KIB + newthr * 256))
  [ "$growth" -le "$bound" ] \
    && pass "RSS growth $growth KiB over $measured cycles <= $bound KiB (1 MiB/1000 cycles + $RSS_SLACK_KIB KiB + 256 KiB x $newthr new threads)" \
    || fail "RSS grew $growth KiB over $measured cycles (bound $bound KiB; threads $base_threads -> $end_threads)"
  # The slope of a least-squares line through the samples after the warm-up,
  # in KiB per 1000 cycles: the trend without the end points' noise.
  slope=$(awk -v w="$WARMUP" 'NR > 1 && $1 >= w { n++; sx += $1; sy += $3; sxx += $1*$1; sxy += $1*$3 }
    END { d = n*sxx - sx*sx; if (n < 3 || d == 0) print "n/a"; else printf "%.0f", 1000 * (n*sxy - sx*sy) / d }' "$OUT/curve.tsv")
  echo "  RSS trend after warm-up: $slope KiB per 1000 cycles"
fi
leaks "after $CYCLES cycles"

# --- 2. many containers at once ---------------------------------------------------------
if [ "$CONCURRENT" -gt 0 ]; then
  echo "+ $CONCURRENT x berth run -d ${R[*]} $IMG ${CMD[*]}"
  idle_fds=$(fds_settled "${base_fds:-$(fds)}"); idle_threads=$(threads)
  started=0; t1=$(date +%s%N)
  for i in $(seq 1 "$CONCURRENT"); do
    if "${B[@]}" run -d --pull never "${R[@]}" --name "soak-p$i" "$IMG" "${CMD[@]}" >/dev/null 2>"$T/err"; then
      started=$((started + 1))
    else
      echo "  container $i of $CONCURRENT did not start:"; sed 's/^/  ! /' "$T/err" | head -3
      [ $((i - started)) -gt 5 ] && break
    fi
  done
  t2=$(date +%s%N)
  for id in $("${B[@]}" containers ls -q); do record "$id"; done
  # The last ones may still be starting their sleep on a loaded machine: up to 10 s.
  for try in $(seq 1 20); do
    run2_out=$("${B[@]}" tasks ls 2>&1)
    running=$(printf '%s\n' "$run2_out" | grep -c RUNNING)
    procs=$(pgrep -fx "sleep $MARK" | wc -l)
    [ "$running" = "$CONCURRENT" ] && [ "$procs" = "$CONCURRENT" ] && break
    sleep 0.5
  done
  [ "$try" -gt 1 ] && echo "  (all running after $(( (try - 1) * 500 )) ms more)"
  # The leak checks look in the right places: there is something while they run.
  cgs=$(find /sys/fs/cgroup/*/"$NS" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sed 's|.*/||' | sort -u | wc -l)
  [ "$cgs" -ge "$CONCURRENT" ] && pass "each running container has a cgroup under /sys/fs/cgroup/*/$NS ($cgs)" \
    || fail "$cgs container cgroups under /sys/fs/cgroup/*/$NS while $CONCURRENT run: the cgroup check looks in the wrong place"
  alive=$(while read -r p st f; do [ "$(starttime "$p")" = "$st" ] && echo; done < "$T/pids" | wc -l)
  [ "$alive" -ge $((2 * CONCURRENT)) ] && pass "$alive recorded shim and init pids alive while they run" \
    || fail "only $alive recorded shim/init pids alive while $CONCURRENT run"
  peak="fds=$(fds) rss_kib=$(rss) threads=$(threads) (idle: fds=$idle_fds threads=$idle_threads)"
  echo "  with $running running: berthd $peak; $procs container sleeps"
  printf 'concurrent\t%s\trunning=%s\t%s\n' "$CONCURRENT" "$running" "$peak" >>"$OUT/summary.txt"
  [ "$started" = "$CONCURRENT" ] && pass "$CONCURRENT containers started" || fail "only $started of $CONCURRENT containers started"
  if [ "$running" = "$CONCURRENT" ]; then
    pass "tasks ls: $running RUNNING"
  else
    fail "tasks ls: $running RUNNING, expected $CONCURRENT"
    printf '%s\n' "$run2_out" | grep -v RUNNING | head -5 | sed 's/^/  | /'
    down=$("${B[@]}" ps -a --format json 2>/dev/null | python3 -c '
import json, sys
for c in json.load(sys.stdin):
    if not c["Status"].startswith("Up"):
        print(c["Names"], c["Status"].replace(" ", "_"))' | head -3)
    printf '%s\n' "$down" | sed 's/^/  not up: /'
    for id in $(printf '%s\n' "$down" | cut -d' ' -f1); do
      "${B[@]}" logs "$id" 2>&1 | tail -3 | sed 's/^/  log | /'
      full=$("${B[@]}" inspect "$id" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')
      for f in $(find "$T/d/state" -path "*$NS/${full:-none}/shim.log" 2>/dev/null); do
        tail -5 "$f" | sed 's/^/  shim.log | /'
      done
    done
    grep -iE "warn|error" "$BERTHD_LOG" | tail -5 | sed 's/^/  berthd | /'
  fi
  [ "$procs" = "$CONCURRENT" ] && pass "$procs container processes" || fail "$procs container processes, expected $CONCURRENT"
  mapfile -t names < <(seq -f "soak-p%g" 1 "$CONCURRENT")
  t3=$(date +%s%N)
  "${B[@]}" stop -t 10 "${names[@]}" >/dev/null 2>"$T/err"; rc=$?
  sed 's/^/  ! /' "$T/err" | head -5
  expect_rc 0 "stop all $CONCURRENT in one call"
  t4=$(date +%s%N)
  "${B[@]}" rm "${names[@]}" >/dev/null 2>"$T/err"; rc=$?
  sed 's/^/  ! /' "$T/err" | head -5
  expect_rc 0 "rm all $CONCURRENT in one call"
  t5=$(date +%s%N)
  times="run -d x$CONCURRENT: $(( (t2 - t1) / 1000000 )) ms; stop: $(( (t4 - t3) / 1000000 )) ms; rm: $(( (t5 - t4) / 1000000 )) ms"
  echo "  $times"
  printf 'concurrent_times\t%s\n' "$times" >>"$OUT/summary.txt"
  n=$(fds_settled "$idle_fds")
  [ "$n" = "$idle_fds" ] && pass "fd count back to $idle_fds after the $CONCURRENT are gone" \
    || fail "fd count $n after the $CONCURRENT are gone, $idle_fds before"
  leaks "after $CONCURRENT concurrent"
fi

# --- 3. interrupted pulls ---------------------------------------------------------------
big=$(awk -F'\t' '$1=="multilayer"{print $11}' "$IMAGES/images.tsv" | tr ',' '\n' | while read -r d; do
  s=$(stat -c %s "$IMAGES/multilayer/blobs/sha256/${d#sha256:}" 2>/dev/null || echo 0); echo "$s $d"; done | sort -n | tail -1)
big_size=${big% *}; big_digest=${big#* }
want=$(tar -xzOf "$IMAGES/multilayer/blobs/sha256/${big_digest#sha256:}" data/random.bin | sha256sum | cut -d' ' -f1)
echo "largest layer: $big_digest ($big_size bytes); data/random.bin sha256 $want"
INGEST=$T/d/root/io.berth.content.v1.local/ingest
ingest_max () { find "$INGEST" -name data -printf '%s\n' 2>/dev/null | sort -n | tail -1; }

# proxy [--rate B] [--cut-after N]: a fresh throttle-proxy in front of the registry; sets VIA.
proxy () {
  rm -f "$T/proxy.port"
  python3 "$top_srcdir/tests/integration/throttle-proxy.py" --listen-port-file "$T/proxy.port" --target "$REG" "$@" &
  PROXY=$!
  for _ in $(seq 1 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
  VIA=127.0.0.1:$(cat "$T/proxy.port")
}
proxy_stop () { kill "$PROXY" 2>/dev/null; wait "$PROXY" 2>/dev/null; PROXY=; }
# reset: drop the image, the leases that hold partial content, and collect.
reset_image () {
  local l
  "${B[@]}" rmi "$1" >/dev/null 2>&1
  for l in $("${B[@]}" leases ls -q 2>/dev/null); do "${B[@]}" leases rm "$l" >/dev/null 2>&1; done
  "${B[@]}" gc >/dev/null 2>&1
}

printf 'round\tmode\toffset\theld\tresumed\tresult\n' >"$OUT/pulls.tsv"
modes=(cancel cut kill9)
pull_ok=0
for r in $(seq 1 "$PULLS"); do
  mode=${modes[$(( (r - 1) % 3 ))]}
  off=$(python3 -c "import random; print(random.randrange(1, $big_size))")
  held=-
  case $mode in
    cut)
      # The pull itself resumes with a Range request: a 206 in the access log.
      n206=$(awk -v d="blobs/$big_digest" 'index($0, d) && $9 == 206' "$REGDIR/registry.log" | wc -l)
      proxy --cut-after "$off"
      "${B[@]}" pull --plain-http "$VIA/multilayer:latest" >"$T/pull.log" 2>&1
      [ "$(awk -v d="blobs/$big_digest" 'index($0, d) && $9 == 206' "$REGDIR/registry.log" | wc -l)" -gt "$n206" ] \
        && held=range
      ;;
    cancel|kill9)
      proxy --rate $((48 * 1024 * 1024))
      "${B[@]}" pull --plain-http "$VIA/multilayer:latest" >"$T/pull.log" 2>&1 &
      cpid=$!
      # Wait for the largest ingest to pass the offset (or the pull to end).
      for _ in $(seq 1 1000); do
        s=$(ingest_max); [ -n "$s" ] && [ "$s" -ge "$off" ] && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.01
      done
      held=$(ingest_max)
      if [ "$mode" = cancel ]; then
        kill -INT "$cpid" 2>/dev/null
      else
        kill -9 "$BERTHD_PID"; wait "$BERTHD_PID" 2>/dev/null
      fi
      wait "$cpid" 2>/dev/null
      ;;
  esac
  proxy_stop
  if [ "$mode" = kill9 ]; then
    start_berthd_config "$T/d" "$T/d/config.toml" || { fail "round $r: berthd did not restart"; break; }
  fi
  # The next pull, straight from the registry, completes and the image is right.
  "${B[@]}" pull --plain-http "$BIG_IMG" >"$T/pull2.log" 2>&1; prc=$?
  resumed=no; { grep -q "resuming after" "$T/pull2.log" || [ "$held" = range ]; } && resumed=yes
  got=$("${B[@]}" run --rm --pull never "${R[@]}" "$BIG_IMG" busybox sha256sum /data/random.bin 2>"$T/err" | cut -d' ' -f1)
  if [ "$prc" = 0 ] && [ "$got" = "$want" ]; then
    result=ok; pull_ok=$((pull_ok + 1))
  else
    result="pull=$prc sha=${got:-none}"
    echo "  round $r ($mode at $off): $result"; sed 's/^/  | /' "$T/pull2.log" | tail -5; sed 's/^/  ! /' "$T/err" | head -3
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$off" "${held:--}" "$resumed" "$result" | tee -a "$OUT/pulls.tsv" | sed 's/^/  pull /'
  reset_image "$BIG_IMG"; reset_image "$VIA/multilayer:latest"
done
if [ "$PULLS" -gt 0 ]; then
  [ "$pull_ok" = "$PULLS" ] && pass "$PULLS interrupted pulls each followed by a complete, verified pull" \
    || fail "$((PULLS - pull_ok)) of $PULLS interrupted pulls were not followed by a correct image"
  run "${B[@]}" content ls -q
  expect_not_contains "$big_digest" "after the last reset, the large layer is collected"
  n=$(find "$INGEST" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  [ "$n" = 0 ] && pass "no partial ingest left once the leases are gone and gc ran" \
    || fail "$n partial ingests left in $INGEST after leases rm + gc"
  leaks "after $PULLS interrupted pulls"
fi

{
  echo "cycles=$CYCLES warmup=$WARMUP runtime=$RUNTIME failures=$cycle_fail"
  echo "threads: base=${base_threads:-} end=${end_threads:-}; fds: base=${base_fds:-} end=${end_fds:-}; rss_kib: base=${base_rss:-} end=${end_rss:-} growth=${growth:-} bound=${bound:-} trend_per_1000=${slope:-}"
  echo "pulls=$PULLS ok=$pull_ok"
  echo "elapsed_s=$(( $(date +%s) - T0 ))"
} | tee -a "$OUT/summary.txt"
finish
