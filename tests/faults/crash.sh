#!/bin/bash
# Crash consistency (issue 8 part 1): kill berthd with SIGKILL at chosen
# points and at random moments, restart it on the same root and state, and
# check that nothing committed was lost and nothing was leaked.
#
# For every failpoint (include/berth/failpoint.h; BERTH_FAILPOINTS) a
# workload runs against a private berthd started with that failpoint armed:
#   pull   berth pull of a two-layer image (redis-sized; its lower layer is
#          busybox's) from a real docker-registry on loopback
#   run    berth run -d (snapshot prepare, container create, task create,
#          shim start)
#   rm     berth rm -f of a running container (task delete, container
#          delete, snapshot remove)
#   gc     berth gc after rmi and rm left garbage (content records, blobs,
#          snapshots, the snapshotters' directories)
#   lazy   berth pull --snapshotter fuse of an eStargz image (redis-sized
#          converted at set-up, pushed as lazy:latest): the fuse snapshotter
#          serves its layers from the registry, then publishes each complete
#          blob and berthd adopts it into the content store; the workload
#          waits (bounded) until `berth content ls` lists every layer.
#          Points table key NAME:lazy = failpoint NAME with this workload.
#          Skipped (with the reason) without /dev/fuse, berth-fuse or ctr.
# The daemon dies at the point (its log says "berth failpoint NAME fired"),
# is restarted on the same root/state without failpoints, and then:
#   - berthd starts;
#   - busybox (committed before) still runs: berth run --rm IMG true;
#   - a container that ran before the crash (`sentinel`) is listed, running;
#   - the interrupted work re-run completes (pull, run -d, rm -f, gc);
#     lazy: the pull again (only if the image is not listed), the image
#     runs on fuse, every layer blob ends up adopted (listed by content ls)
#     within LAZY_ADOPT_WAIT s of the restart, no adopt-* temporary in the
#     store's ingest/, berth fsck exits 0; after the store checks, a
#     simulated reboot (fuse mounts and servers gone) after which the image
#     runs again, then rmi + gc leave no fuse snapshot, fuse.berth mount or
#     berth-fuse server;
#   - after one berth gc: blobs on disk = content records, no ingest, no
#     pull staging tree, snapshot directories = plugin records = daemon
#     records, no extract-* snapshot of a dead pull, bundles/mounts/shims/
#     cgroups only for live tasks, fuse.berth mounts and berth-fuse
#     servers only for the fuse snapshotter's recorded snapshots, and the
#     blob of every layer it serves from the store recorded.
# Rounds cycle @N over each point's hits (e.g. the config, manifest and
# layer commits), so different moments of one code path are hit.
#
# "random" mode: a loop of pull/run/rm/rmi/gc runs and berthd gets SIGKILL
# after a random delay (FAULT_SEED makes it repeatable); same checks.
#
# Environment:
#   FAULT_ROUNDS   rounds per point (default 3: the CI form, about 2.5 minutes
#                  on 2 shared cores; the documented full run is 50)
#   FAULT_POINTS   comma-separated subset of points (default: all, + random)
#   FAULT_SEED     seed of the random delays (default: the time)
#   FAULT_DEADLINE stop starting rounds after this many seconds (rounds run
#                  over all points in turn, so all have the same count)
#   LAZY_ADOPT_WAIT seconds the lazy re-run waits for the layers to be
#                  adopted after the restart (default 40: the fuse plugin
#                  publishes a complete blob again every 30 s)
#   FAULT_STRICT   1: leftovers that only start-up reconciliation can remove
#                  (NEEDS-RECOVERY lines) fail too
# Exit: 0 pass, 1 a check failed, 77 skip (not root, tools missing).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib-faults.sh"
unset BERTH_FAILPOINTS
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${FAULT_ROUNDS:-3}
SEED=${FAULT_SEED:-$(date +%s)}
RANDOM=$SEED
faults_setup

# name  workload  hits to cycle through (@N)  [failpoints of the restarted daemon]
# The optional fourth column widens a window of the restart (sleep only:
# the restarted daemon must not die): gc-late delays start-up GC's first
# blob sweep past the fuse plugin's first look at its lazy layers.
POINTS_TABLE="
content-commit-before-rename   pull 1,2,3
content-commit-after-rename    pull 1,2,3
pull-blob-before-record        pull 1
unpack-entry                   pull 1,8,40
pull-after-snapshot-commit     pull 1
snapshot-commit-before-record  pull 1
pull-before-image-record       pull 1
snapshot-prepare-before-record run  1
container-create-in-tx         run  1
container-create-after-record  run  1
task-create-before-config      run  1
task-create-after-mount        run  1
shim-start-before-spawn        run  1
shim-start-after-spawn         run  1
task-delete-before-bundle      rm   1
container-delete-in-tx         rm   1
snapshot-remove-before-plugin  rm   1
gc-sweep-content               gc   1,2
gc-sweep-blob                  gc   1,2
gc-sweep-snapshot              gc   1
gc-sweep-backend               gc   1
content-adopt-after-link       lazy 1,2
content-adopt-before-rename    lazy 1,2
content-adopt-after-rename     lazy 1,2
content-adopt-after-rename:gc-late lazy 1,2 gc-sweep-blob@1=sleep:2500
pull-before-image-record:lazy  lazy 1
random                         mixed 0
"
want=${FAULT_POINTS:-}
echo "fault harness: $ROUNDS round(s) per point, seed $SEED"
LAZY_ADOPT_WAIT=${LAZY_ADOPT_WAIT:-40}

# The lazy workload's image, once, when a lazy point is selected.
selected () { [ -z "$want" ] || [[ ",$want," == *",$1,"* ]]; }
while read -r POINT WL HITS _; do
  if [ "$WL" = lazy ] && selected "$POINT"; then
    faults_lazy_setup
    [ -z "$LAZY_SKIP" ] || echo "SKIP: the lazy points: $LAZY_SKIP"
    break
  fi
done <<< "$POINTS_TABLE"

# lazy_adopted SECONDS [DIR]: true once every layer of LAZYIMG is listed by
# content ls and its blob is in the store (recorded and adopted), within
# SECONDS.  With
# DIR, false early when for 2 s every missing layer is one the fuse plugin
# of DIR serves from the store already (no `remote` record): it does not
# publish that layer again, so it will never be recorded.
lazy_adopted () {
  local end=$(( $(date +%s) + $1 )) listed l missing sd given stuck=0
  while :; do
    listed=$(bcli content ls -q 2>/dev/null)
    missing=""
    # Listed and its blob on disk: berthd records a layer before it files
    # the blob (core/pull/lazy.c), so a crash in between leaves a record
    # alone until the plugin publishes the layer again.
    for l in $LAZY_LAYERS; do
      printf '%s\n' "$listed" | grep -qx "$l" && [ -f "$D/root/io.berth.content.v1.local/blobs/sha256/${l#sha256:}" ] \
        || missing="$missing $l"
    done
    [ -n "$missing" ] || return 0
    if [ -n "${2:-}" ]; then
      given=0
      for l in $missing; do
        for sd in "$2"/root/io.berth.snapshotter.v1.fuse/snapshots/*; do
          [ -f "$sd/layer" ] && [ ! -e "$sd/remote" ] && [ "$(head -1 "$sd/layer" 2>/dev/null)" = "$l" ] && { given=$((given + 1)); break; }
        done
      done
      if [ "$given" = "$(echo $missing | wc -w)" ]; then stuck=$((stuck + 1)); else stuck=0; fi
      [ "$stuck" -lt 8 ] || { LAZY_MISSING="$missing (the fuse plugin serves them from the store and publishes them no more)"; return 1; }
    fi
    [ "$(date +%s)" -lt "$end" ] || { LAZY_MISSING=$missing; return 1; }
    kill -0 "$BERTHD_PID" 2>/dev/null || { LAZY_MISSING="$missing (berthd died)"; return 1; }
    sleep 0.25
  done
}

# prepare WORKLOAD: what the round's workload needs, with a clean daemon.
prepare () {
  case $1 in
    pull)
      # A dead pull's lease holds what it fetched for its TTL (1 h, by
      # design: the next try need not fetch it again); drop those leases,
      # as their expiry would, so that this round fetches and commits.
      bcli rmi "$PIMG" >/dev/null 2>&1
      for l in $(bcli leases ls -q 2>/dev/null | grep '^berth-pull-'); do bcli leases rm "$l" >/dev/null 2>&1; done
      bcli gc >/dev/null 2>&1 ;;
    lazy)
      bcli rmi "$LAZYIMG" >/dev/null 2>&1
      for l in $(bcli leases ls -q 2>/dev/null | grep '^berth-pull-'); do bcli leases rm "$l" >/dev/null 2>&1; done
      bcli gc >/dev/null 2>&1 ;;
    rm) bcli run -d --pull never --name victim "$IMG" sleep 100000 >/dev/null 2>&1 \
          || round_fail "setting up: run -d victim failed" ;;
    gc)
      bcli pull --plain-http "$PIMG" >/dev/null 2>&1 || round_fail "setting up: pull $PIMG failed"
      bcli run --rm --pull never "$PIMG" true >/dev/null 2>&1 ;;
  esac
}

# workload WORKLOAD: the command the failpoint interrupts (in the background).
workload () {
  case $1 in
    pull) bcli pull --plain-http "$PIMG" ;;
    run) bcli run -d --pull never --name "victim" "$IMG" sleep 100000 ;;
    rm) bcli rm -f victim ;;
    gc) bcli rmi "$PIMG"; bcli gc ;; # rmi schedules a GC too: either run may hit the point
    lazy) bcli pull --plain-http --snapshotter fuse "$LAZYIMG" && { lazy_adopted 25 || echo "not adopted:$LAZY_MISSING"; } ;;
  esac
}

# rerun WORKLOAD: the interrupted work again, on the restarted daemon.
rerun () {
  local out
  case $1 in
    pull)
      if out=$(bcli pull --plain-http "$PIMG" 2>&1); then
        echo "  ok: the interrupted pull, re-run, completes"
        check_image_runs "$PIMG"
      else
        round_fail "the interrupted pull, re-run, fails: $out"
      fi ;;
    run)
      # The crash may have left the container record (never started): it
      # must be listed and removable, then the same run must work.
      bcli rm -f victim >/dev/null 2>&1
      if out=$(bcli run -d --pull never --name victim "$IMG" sleep 100000 2>&1); then
        echo "  ok: run -d, re-run, starts"
        check_running victim
      else
        round_fail "run -d, re-run after rm -f, fails: $out"
      fi
      bcli rm -f victim >/dev/null 2>&1 ;;
    rm)
      bcli rm -f victim >/dev/null 2>&1
      if bcli ps -a --format json 2>/dev/null | grep -q '"Names": *"victim"'; then
        round_fail "container victim is still listed after rm -f was re-run"
      else
        echo "  ok: rm -f, re-run, removes the container"
      fi ;;
    gc) ;;
    lazy)
      # Pulled before the crash: not again (a pull records a blob it finds
      # in the store, which would hide an adoption that never recorded it).
      if bcli images ls -q 2>/dev/null | grep -qxF "$LAZYIMG"; then
        echo "  ok: $LAZYIMG was pulled before the crash and is listed"
      elif out=$(bcli pull --plain-http --snapshotter fuse "$LAZYIMG" 2>&1); then
        echo "  ok: the lazy pull, re-run, completes"
      else
        round_fail "the lazy pull, re-run, fails: $out"
      fi
      if out=$(bcli run --rm --pull never --snapshotter fuse "$LAZYIMG" true 2>&1); then
        echo "  ok: $LAZYIMG runs on the fuse snapshotter"
      else
        round_fail "$LAZYIMG does not run on the fuse snapshotter: $out"
      fi
      local waited=$(( LAZY_ADOPT_WAIT - ( $(date +%s) - RESTARTED ) ))
      [ "$waited" -gt 0 ] || waited=1
      if lazy_adopted "$waited" "$D"; then
        echo "  ok: every layer of $LAZYIMG adopted into the content store, $(( $(date +%s) - RESTARTED )) s after the restart"
      else
        round_fail "layers of $LAZYIMG not in the content store $(( $(date +%s) - RESTARTED )) s after the restart:$LAZY_MISSING; berthd log: $(grep -E 'lazily pulled layer|blob-complete|adopt' "$BERTHD_LOG" | tail -6 | cut -c1-300)"
      fi
      local ad
      ad=$(find "$D/root/io.berth.content.v1.local/ingest" -maxdepth 1 -name 'adopt-*' 2>/dev/null)
      [ -z "$ad" ] || round_fail "adopt temporaries left in the store's ingest/: $(printf '%s\n' "$ad" | sed 's#.*/##' | tr '\n' ' ')"
      if out=$(bcli fsck 2>&1); then
        echo "  ok: berth fsck: $(printf '%s' "$out" | tail -1)"
      else
        round_fail "berth fsck fails (exit $?): $(printf '%s' "$out" | tail -5)"
      fi ;;
    mixed)
      bcli rm -f victim >/dev/null 2>&1
      if out=$(bcli pull --plain-http "$PIMG" 2>&1); then
        echo "  ok: pull after the crash completes"
      else
        round_fail "pull after the crash fails: $out"
      fi ;;
  esac
}

# The random-time workload: loops until killed.
random_loop () {
  while kill -0 "$BERTHD_PID" 2>/dev/null; do
    bcli pull --plain-http "$PIMG"
    bcli run -d --pull never --name victim "$IMG" sleep 100000
    bcli run --rm --pull never "$PIMG" true
    bcli rm -f victim
    bcli rmi "$PIMG"
    bcli gc
  done >/dev/null 2>&1
  return 0
}

# The checks themselves can fail (a planted leftover of each kind is seen).
if [ -z "$want" ] || [[ ",$want," == *",selftest,"* ]]; then
  D=$T/p-selftest
  FAULT_NS=$FAULT_NS_BASE-0
  mkdir -p "$D"
  echo "$FAULT_NS" > "$D/ns"
  echo; echo "=== selftest ==="
  if daemon_up "$D" && bcli pull --plain-http "$IMG" >/dev/null 2>&1; then
    selftest_checks "$D"
  else
    fail "selftest: berthd or the pull of $IMG failed"
  fi
  daemon_down
fi

# one_round: POINT, WL, HITS, D, ROUND set; the daemon of D runs (clean).
one_round () {
  local hitv nth wpid out delay loop FP=${POINT%%:*}
  round_ok=1
  wrc=1
  IFS=, read -ra hitv <<< "$HITS"
  nth=${hitv[$(( (ROUND - 1) % ${#hitv[@]} ))]}
  echo "--- $POINT round $ROUND${nth:+ (hit $nth)} $(date +%T)"
  if [ "$WL" = mixed ]; then
    random_loop &
    loop=$!
    delay=$(( RANDOM % 2500 + 200 ))
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    echo "  SIGKILL berthd after ${delay} ms of the pull/run/rm/rmi/gc loop"
    kill -KILL "$BERTHD_PID"
    wait_dead "$BERTHD_PID" 10
    wait "$loop" 2>/dev/null
  else
    prepare "$WL"
    daemon_down
    daemon_up "$D" "$FP@$nth" || { round_fail "berthd with the failpoint does not start"; return; }
    workload "$WL" > "$D/workload.out" 2>&1 &
    wpid=$!
    if ! wait_dead "$BERTHD_PID" 30; then
      round_fail "the failpoint $FP@$nth never fired (berthd still runs 30 s after the workload began)"
      daemon_down
    elif ! grep -q "berth failpoint $FP fired" "$BERTHD_LOG"; then
      round_fail "berthd died, but not at the failpoint; its log:"
      tail -20 "$BERTHD_LOG" | sed 's/^/  | /'
    else
      echo "  berthd killed at $FP (hit $nth)"
    fi
    wait "$wpid" 2>/dev/null
    wrc=$?
    echo "  workload exit $wrc: $(head -c 300 "$D/workload.out" | tail -2 | tr '\n' ' ')"
  fi
  # Restart on the same root and state, no failpoints (but RFP's sleeps).
  RESTARTED=$(date +%s)
  [ -z "$RFP" ] || echo "  restart with $RFP"
  if ! daemon_up "$D" "$RFP"; then
    round_fail "berthd does not start after the crash"
    return
  fi
  check_running sentinel
  check_image_runs "$IMG"
  if [ "$WL" = pull ] && [ "$wrc" = 0 ]; then
    check_image_runs "$PIMG" # reported as pulled: must be there
  fi
  rerun "$WL"
  if out=$(bcli gc 2>&1); then
    echo "  gc: $(printf '%s' "$out" | tail -1)"
  else
    round_fail "berth gc fails after the restart: $out"
  fi
  check_store "$D"
  if [ "$WL" = lazy ]; then
    check_fuse_reboot "$D" "$LAZYIMG"
    # The image, and the leases of pulls that died (they hold what they
    # fetched for an hour, by design).
    bcli rmi "$LAZYIMG" >/dev/null 2>&1
    for l in $(bcli leases ls -q 2>/dev/null | grep '^berth-pull-'); do bcli leases rm "$l" >/dev/null 2>&1; done
    bcli gc >/dev/null 2>&1 || round_fail "berth gc after rmi $LAZYIMG fails"
    check_fuse_gone "$D"
  fi
}

# Rounds outer, points inner: when FAULT_DEADLINE (seconds) cuts a long run
# short, every point has had the same number of rounds.
declare -A survived done_rounds secs wl_of hits_of dead ns_of rfp_of
points=()
while read -r POINT WL HITS RFP; do
  [ -n "$POINT" ] || continue
  selected "$POINT" || continue
  [ "$WL" != lazy ] || [ -z "$LAZY_SKIP" ] || continue
  points+=("$POINT"); wl_of[$POINT]=$WL; hits_of[$POINT]=$HITS; ns_of[$POINT]=${#points[@]}; rfp_of[$POINT]=$RFP
  survived[$POINT]=0; done_rounds[$POINT]=0; secs[$POINT]=0; dead[$POINT]=0
done <<< "$POINTS_TABLE"
[ ${#points[@]} -gt 0 ] || [ -z "$LAZY_SKIP" ] || skip "every point asked for is a lazy one: $LAZY_SKIP"
deadline=$(( $(date +%s) + ${FAULT_DEADLINE:-1000000} ))
BCLI_TIMEOUT=60
for ROUND in $(seq 1 "$ROUNDS"); do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "FAULT_DEADLINE reached before round $ROUND"; break; }
  for POINT in "${points[@]}"; do
    [ "${dead[$POINT]}" = 0 ] || continue
    WL=${wl_of[$POINT]}; HITS=${hits_of[$POINT]}; RFP=${rfp_of[$POINT]}
    D=$T/p-${POINT//:/-} # no colon: overlayfs's lowerdir separator
    FAULT_NS=$FAULT_NS_BASE-${ns_of[$POINT]}
    t0=$(date +%s.%N)
    if [ "$ROUND" = 1 ]; then
      mkdir -p "$D"
      echo "$FAULT_NS" > "$D/ns"
      [ "$WL" != lazy ] || write_config "$D" "${CFG_EXTRA[@]}" "${CFG_FUSE[@]}"
      echo
      echo "=== $POINT ($WL) ==="
      daemon_up "$D" || { fail "[$POINT] berthd does not start on a fresh root"; dead[$POINT]=1; continue; }
      bcli pull --plain-http "$IMG" >/dev/null 2>&1 || { fail "[$POINT] pull $IMG"; dead[$POINT]=1; daemon_down; continue; }
      run bcli run -d --pull never --name sentinel "$IMG" sleep 100000
      [ "$rc" = 0 ] || { fail "[$POINT] starting the sentinel container"; dead[$POINT]=1; daemon_down; continue; }
    else
      daemon_up "$D" || { fail "[$POINT round $ROUND] berthd does not start"; dead[$POINT]=1; continue; }
    fi
    one_round
    [ "$round_ok" = 1 ] && survived[$POINT]=$(( ${survived[$POINT]} + 1 ))
    done_rounds[$POINT]=$(( ${done_rounds[$POINT]} + 1 ))
    kill -0 "$BERTHD_PID" 2>/dev/null && daemon_down
    secs[$POINT]=$(python3 -c "print('%.1f' % (${secs[$POINT]} + $(date +%s.%N) - $t0))")
  done
done
# Every container goes with its daemon (the sentinels, and any a crash left).
for POINT in "${points[@]}"; do
  D=$T/p-${POINT//:/-}
  FAULT_NS=$FAULT_NS_BASE-${ns_of[$POINT]}
  [ -f "$D/config.toml" ] || continue
  daemon_up "$D" >/dev/null 2>&1 || continue
  for id in $(bcli containers ls -q 2>/dev/null); do bcli rm -f "$id" >/dev/null 2>&1; done
  # The lazy image's fuse mounts and servers go with it.
  if [ "${wl_of[$POINT]}" = lazy ]; then
    bcli rmi "$LAZYIMG" >/dev/null 2>&1
    for l in $(bcli leases ls -q 2>/dev/null | grep '^berth-pull-'); do bcli leases rm "$l" >/dev/null 2>&1; done
    bcli gc >/dev/null 2>&1
  fi
  daemon_down
done

echo
echo "=== summary (seed $SEED, $ROUNDS rounds per point asked) ==="
total=0; ok=0; tsecs=0
for POINT in "${points[@]}"; do
  printf '%-31s %-5s %3d/%-3d rounds survived  %7s s\n' "$POINT" "${wl_of[$POINT]}" "${survived[$POINT]}" \
    "${done_rounds[$POINT]}" "${secs[$POINT]}"
  total=$((total + ${done_rounds[$POINT]})); ok=$((ok + ${survived[$POINT]}))
done
echo "total: $ok/$total rounds survived"
echo "leftovers only start-up reconciliation can remove (NEEDS-RECOVERY): $needs_recovery"
finish
