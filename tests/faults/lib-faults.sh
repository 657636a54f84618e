# Helpers of the crash-consistency harness (tests/faults/*.sh): a real
# docker-registry with the test images, a private berthd that is killed
# (by a failpoint, see include/berth/failpoint.h, or by SIGKILL at a random
# moment) and restarted on the same root and state, and the checks that
# follow every restart.  Source it after tests/integration/lib.sh.
#
# Every check prints what it compared, so that a failure names the round,
# the failpoint and the leftover (path, id or pid).  A leftover that only
# start-up reconciliation (issue 8 part 2, "recovery") can remove is
# reported as `NEEDS-RECOVERY:` and counted separately (FAULT_STRICT=1
# makes those failures too).

FAULT_STRICT=${FAULT_STRICT:-0}
needs_recovery=0
# One namespace (so one cgroup parent) per daemon: FAULT_NS_BASE-<n>.
FAULT_NS_BASE=${FAULT_NS:-faults$$}
FAULT_NS=$FAULT_NS_BASE
CFG_EXTRA=()
# The lazy workload's daemons also get the fuse snapshotter (faults_lazy_setup).
CFG_FUSE=()
LAZY_SKIP=

# faults_setup: tools, images, registry (busybox + redis-sized), berthd
# config lines for the build tree's runtime plugins.  Sets REG, IMG (busybox),
# PIMG (the image the pull workloads pull: two layers, the lower one shared
# with busybox).
faults_setup () {
  need_root
  for tool in docker-registry skopeo python3 timeout; do
    command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
  done
  [ -x "$BERTH" ] && [ -x "$BERTHD" ] || { echo "FAIL: no berth/berthd in $top_builddir"; exit 1; }
  IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
  run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
  [ "$rc" = 0 ] || { fail "building the test images"; finish; }
  REGDIR=$T/registry
  echo "+ tests/registry/start.sh $REGDIR"
  REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
  trap 'faults_cleanup' EXIT
  trap 'exit 143' TERM INT
  run bash "$top_srcdir/tests/registry/push.sh" "$REG" --images "$IMAGES" --only busybox,redis-sized
  [ "$rc" = 0 ] || { fail "pushing the test images"; finish; }
  IMG=$REG/busybox:latest
  PIMG=$REG/redis-sized:latest
  local plug s
  for plug in namespaces oci; do
    CFG_EXTRA+=("[plugins.\"io.berth.runtime.v1.$plug\"]")
    [ "$plug" = namespaces ] && [ -x "$top_builddir/berth-runtime" ] && CFG_EXTRA+=("  binary = \"$top_builddir/berth-runtime\"")
    for s in "$top_builddir/shim/berth-shim" "$top_builddir/berth-shim"; do
      [ -x "$s" ] && { CFG_EXTRA+=("  shim_binary = \"$s\""); break; }
    done
  done
  export BERTH_FIFO_DIR=$T/fifo
}

# faults_lazy_setup: for the lazy workload, once: an eStargz copy of
# redis-sized (two layers, 1 and 7 MiB) converted by a setup berthd and
# pushed to the registry as LAZYIMG; LAZY_LAYERS its layer digests;
# CFG_FUSE the config lines of the fuse snapshotter.  When this host cannot
# (no /dev/fuse, berth-fuse not built, no ctr to push, the plugin does not
# load), LAZY_SKIP says why and the lazy points are left out.
faults_lazy_setup () {
  FUSE_BIN=$top_builddir/plugins/snapshotters/fuse/berth-fuse
  [ -c /dev/fuse ] || { LAZY_SKIP="/dev/fuse is missing"; return 0; }
  [ -x "$FUSE_BIN" ] || { LAZY_SKIP="$FUSE_BIN is not built"; return 0; }
  [ -n "$CTR" ] || { LAZY_SKIP="ctr (to push the eStargz image) is not installed"; return 0; }
  CFG_FUSE=('[plugins."io.berth.snapshotter.v1.fuse"]' "  binary = \"$FUSE_BIN\"")
  LAZYIMG=$REG/lazy:latest
  local d=$T/lazy-setup ns=${FAULT_NS_BASE}-setup ok=0
  write_config "$d" "${CFG_EXTRA[@]}" "${CFG_FUSE[@]}"
  echo "+ lazy workload: converting $PIMG to eStargz and pushing it as $LAZYIMG"
  if start_berthd_config "$d" "$d/config.toml"; then
    local B=(timeout 120 "$BERTH" --address "$SOCK" -n "$ns")
    if ! "${B[@]}" plugins ls | grep -q 'snapshotter.v1 *fuse .* ok'; then
      LAZY_SKIP="the fuse snapshotter does not load: $("${B[@]}" plugins ls | grep 'snapshotter.v1 *fuse' | tr -s ' ')"
    elif "${B[@]}" pull --plain-http "$PIMG" >"$d/setup.out" 2>&1 \
      && "${B[@]}" image convert --estargz "$PIMG" "$LAZYIMG" >>"$d/setup.out" 2>&1 \
      && timeout 120 "$CTR" -a "$SOCK" -n "$ns" images push --plain-http "$LAZYIMG" >>"$d/setup.out" 2>&1; then
      ok=1
    else
      sed 's/^/  | /' "$d/setup.out"
      fail "setting up the lazy workload: pull, convert --estargz or push of $LAZYIMG failed"
    fi
    stop_berthd "$BERTHD_PID"
  else
    fail "setting up the lazy workload: berthd with the fuse snapshotter does not start"
  fi
  if [ "$ok" = 1 ]; then
    LAZY_LAYERS=$(python3 -c '
import json, sys, urllib.request
req = urllib.request.Request("http://%s/v2/lazy/manifests/latest" % sys.argv[1], headers={"Accept":
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
m = json.load(urllib.request.urlopen(req, timeout=30))
toc = "containerd.io/snapshot/stargz/toc.digest"
for l in m["layers"]:
    if toc not in (l.get("annotations") or {}):
        sys.exit("layer %s has no %s annotation" % (l["digest"], toc))
    print(l["digest"])
' "$REG") || { fail "setting up the lazy workload: reading the manifest of $LAZYIMG"; ok=0; }
  fi
  [ "$ok" = 1 ] || LAZY_SKIP=${LAZY_SKIP:-"its set-up failed"}
  [ -n "$LAZY_SKIP" ] || echo "  lazy image $LAZYIMG: layers $(echo $LAZY_LAYERS)"
  rm -rf "$d"
}

faults_cleanup () {
  # Containers first (their shims hold mounts under $T), then the daemons.
  local d ns
  for d in "$T"/p-*; do
    [ -S "$d/berth.sock" ] || continue
    kill -0 "${BERTHD_PID:-0}" 2>/dev/null || continue
    ns=$(cat "$d/ns" 2>/dev/null) || continue
    local ids
    ids=$("$BERTH" --address "$d/berth.sock" -n "$ns" containers ls -q 2>/dev/null)
    for id in $ids; do timeout 20 "$BERTH" --address "$d/berth.sock" -n "$ns" rm -f "$id" >/dev/null 2>&1; done
  done
  kill_leftover_shims
  kill_leftover_fuse
  bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1
  # Containers of a daemon that was down when the test ended (or was cut
  # short): the processes in this run's namespaces' cgroups (the names are
  # this run's own), then the empty cgroups.
  local cg p
  for cg in /sys/fs/cgroup/pids/"$FAULT_NS_BASE"*/* /sys/fs/cgroup/pids/berth/"$FAULT_NS_BASE"*/*; do
    [ -f "$cg/cgroup.procs" ] || continue
    for p in $(cat "$cg/cgroup.procs"); do kill -KILL "$p" 2>/dev/null; done
  done
  sleep 0.2
  for cg in /sys/fs/cgroup/*/"$FAULT_NS_BASE"*/* /sys/fs/cgroup/*/berth/"$FAULT_NS_BASE"*/* \
    /sys/fs/cgroup/*/"$FAULT_NS_BASE"* /sys/fs/cgroup/*/berth/"$FAULT_NS_BASE"*; do
    [ -d "$cg" ] && rmdir "$cg" 2>/dev/null
  done
  cleanup
}

# Shims and containers of this test only: processes whose command line
# names $T (the shims: --bundle $T/...) — by pid.
test_pids () {
  local p
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -qF -- "$T/" && echo "${p#/proc/}"
  done
}
kill_leftover_shims () {
  local p
  for p in $(test_pids); do
    [ "$p" = $$ ] && continue
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "berth-shim" && kill -KILL "$p" 2>/dev/null
  done
}

# berth-fuse servers of this test's daemons (their mount point, cache and
# log are under $T/), by pid: killed daemons leave them serving.  Their
# mounts go with cleanup's umount -l of everything under $T.
fuse_pids () { # [DIR]: the berth-fuse processes naming DIR/ (default $T/)
  local p dir=${1:-$T}
  for p in $(test_pids); do
    tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline" | grep -q "berth-fuse.* $dir/" && echo "$p"
  done
}
kill_leftover_fuse () {
  local p
  for p in $(fuse_pids); do
    [ "$p" = $$ ] || kill -KILL "$p" 2>/dev/null
  done
}

# B: the CLI against the current daemon, in the harness's namespace.
bcli () { timeout "${BCLI_TIMEOUT:-60}" "$BERTH" --address "$SOCK" -n "$FAULT_NS" "$@"; }

# daemon_up DIR [FAILPOINTS]: (re)start berthd on DIR's root and state.
daemon_up () {
  local d=$1 fp=${2:-}
  [ -f "$d/config.toml" ] || write_config "$d" "${CFG_EXTRA[@]}"
  # Keep each run's log, and never let the old one (which says "serving
  # on") answer start_berthd_config's readiness check for the new daemon.
  [ -f "$d/berthd.log" ] && mv "$d/berthd.log" "$d/berthd.log.$(date +%s%N)"
  if [ -n "$fp" ]; then
    BERTH_FAILPOINTS=$fp start_berthd_config "$d" "$d/config.toml"
  else
    start_berthd_config "$d" "$d/config.toml"
  fi
}

# daemon_down: SIGTERM and wait (a clean stop).
daemon_down () {
  stop_berthd "$BERTHD_PID"
}

# wait_dead PID SECONDS: true once PID is gone (reaped).
wait_dead () {
  local pid=$1 n=$(( $2 * 20 )) i
  for i in $(seq 1 "$n"); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.05
  done
  return 1
}

round_fail () { # what
  fail "[$POINT round $ROUND] $*"
  round_ok=0
}
round_needs_recovery () { # what
  if [ "$FAULT_STRICT" = 1 ]; then
    round_fail "NEEDS-RECOVERY: $*"
  else
    echo "NEEDS-RECOVERY: [$POINT round $ROUND] $*"
    needs_recovery=$((needs_recovery + 1))
  fi
}

# ---- the checks after a restart ------------------------------------------

# check_image_runs REF: a committed image still runs.
check_image_runs () {
  local out
  if out=$(bcli run --rm --pull never "$1" true 2>&1); then
    echo "  ok: $1 runs"
  else
    round_fail "committed image $1 no longer runs: $out"
  fi
}

# check_running NAME...: still listed, and running.  The first answer
# counts (a restarted daemon must not list a live container as stopped or
# not at all); the ps output is shown when it is wrong.
check_running () {
  local n st js
  for n in "$@"; do
    js=$(bcli ps -a --format json 2>&1)
    st=$(printf '%s' "$js" | python3 -c '
import json, sys
name = sys.argv[1]
try:
    cs = json.load(sys.stdin) or []
except Exception:
    print("(ps answered no JSON)")
    sys.exit(0)
for c in cs:
    if name in str(c.get("Names", "")).split(","):
        print(c.get("State") or "?")
        break
' "$n" 2>/dev/null)
    case $st in
      running|Running|RUNNING|Up*) echo "  ok: container $n still listed, $st" ;;
      "") round_fail "container $n (running before the crash) is no longer listed; ps -a: $(printf '%s' "$js" | head -c 600)" ;;
      *) round_fail "container $n (running before the crash) is listed as \`$st\`; ps -a: $(printf '%s' "$js" | head -c 600)" ;;
    esac
  done
}

# check_store DIR: content store, snapshots, staging, bundles, mounts,
# cgroups and processes agree with what the daemon lists.  Call after a gc.
check_store () {
  local d=$1 root=$1/root state=$1/state
  local cs=$root/io.berth.content.v1.local
  # Blobs: every file is a record of some namespace and every record a file.
  local listed files
  listed=$( { for ns in $(bcli namespaces ls -q 2>/dev/null); do
      timeout 60 "$BERTH" --address "$SOCK" -n "$ns" content ls -q 2>/dev/null; done; } | sort -u)
  files=$(find "$cs/blobs" -type f 2>/dev/null | sed -E 's#.*/blobs/([^/]+)/([0-9a-f]+)$#\1:\2#' | sort -u)
  local orphan missing
  orphan=$(comm -23 <(printf '%s\n' "$files" | sed '/^$/d') <(printf '%s\n' "$listed" | sed '/^$/d'))
  missing=$(comm -13 <(printf '%s\n' "$files" | sed '/^$/d') <(printf '%s\n' "$listed" | sed '/^$/d'))
  [ -z "$orphan" ] || round_fail "blobs on disk that no namespace lists after gc: $(echo $orphan)"
  [ -z "$missing" ] || round_fail "content records whose blob is gone (committed data lost): $(echo $missing)"
  [ -n "$orphan$missing" ] || echo "  ok: $(printf '%s\n' "$files" | sed '/^$/d' | wc -l) blobs = content records"
  # Ingests: the re-run resumed and committed every interrupted one.
  local ing
  ing=$(find "$cs/ingest" -mindepth 1 -maxdepth 1 2>/dev/null)
  [ -z "$ing" ] || round_fail "ingests left after the interrupted work was re-run: $(for i in $ing; do printf '%s(%s) ' "${i##*/}" "$(cat "$i/ref" 2>/dev/null)"; done)"
  # Pull staging trees (io.berth.unpack/<daemon instance>/<lease>-<layer>).
  local stg
  stg=$(find "$root/io.berth.unpack" -mindepth 2 -maxdepth 2 2>/dev/null)
  [ -z "$stg" ] || round_fail "pull staging trees left in $root/io.berth.unpack: $(echo ${stg//$root\//})"
  # Snapshots: per snapshotter, the plugin's directories = its records =
  # the daemon's records.
  local sn sdir recs dirs prec
  for sn in overlayfs native fuse; do
    sdir=$root/io.berth.snapshotter.v1.$sn/snapshots
    [ -d "$sdir" ] || continue
    recs=$( { for ns in $(bcli namespaces ls -q 2>/dev/null); do
        timeout 60 "$BERTH" --address "$SOCK" -n "$ns" snapshots ls --snapshotter "$sn" -q 2>/dev/null; done; } | sed '/^$/d' | wc -l)
    dirs=$(find "$sdir" -mindepth 1 -maxdepth 1 2>/dev/null | sed 's#.*/##' | sort)
    prec=""
    if command -v sqlite3 >/dev/null; then
      prec=$(sqlite3 -readonly "file:$root/io.berth.snapshotter.v1.$sn/metadata.db?mode=ro" 'SELECT id FROM snapshots ORDER BY id' 2>/dev/null | sort)
    fi
    local ndirs
    ndirs=$(printf '%s\n' "$dirs" | sed '/^$/d' | wc -l)
    if [ -n "$prec" ] || command -v sqlite3 >/dev/null; then
      local extra gone
      extra=$(comm -23 <(printf '%s\n' "$dirs" | sed '/^$/d') <(printf '%s\n' "$prec" | sed '/^$/d'))
      gone=$(comm -13 <(printf '%s\n' "$dirs" | sed '/^$/d') <(printf '%s\n' "$prec" | sed '/^$/d'))
      [ -z "$extra" ] || round_fail "$sn: snapshot directories no record of the plugin names, after gc: $(echo $extra)"
      [ -z "$gone" ] || round_fail "$sn: plugin records whose directory is gone: $(echo $gone)"
    fi
    local nprec
    nprec=$(printf '%s\n' "$prec" | sed '/^$/d' | wc -l)
    [ -z "$prec" ] && nprec=$ndirs
    if [ "$nprec" != "$recs" ]; then
      round_fail "$sn: the plugin has $nprec snapshots, the daemon lists $recs (after gc)"
    else
      echo "  ok: $sn: $ndirs snapshot dirs = $nprec plugin records = $recs daemon records"
    fi
  done
  # Half-made snapshots of a pull that died with the daemon.
  local ex
  ex=$(bcli snapshots ls -q 2>/dev/null | grep '^extract-' || true)
  [ -z "$ex" ] || round_fail "active extract-* snapshots of a pull that died with the daemon remain after gc: $(echo $ex)"
  # Tasks, bundles, mounts, shims, cgroups.
  local tasks nt bundles nb mnts nm shims ns_
  tasks=$(bcli tasks ls -q 2>/dev/null | sort)
  nt=$(printf '%s\n' "$tasks" | sed '/^$/d' | wc -l)
  bundles=$(find "$state/bundles" -mindepth 2 -maxdepth 2 2>/dev/null | sed 's#.*/##' | sort)
  nb=$(printf '%s\n' "$bundles" | sed '/^$/d' | wc -l)
  local xb
  xb=$(comm -23 <(printf '%s\n' "$bundles" | sed '/^$/d') <(printf '%s\n' "$tasks" | sed '/^$/d'))
  [ -z "$xb" ] || round_fail "bundles without a task: $(echo $xb)"
  mnts=$(grep -F " $d/" /proc/self/mounts | awk '{print $2}')
  nm=$(printf '%s\n' "$mnts" | sed '/^$/d' | wc -l)
  local m id bad=""
  for m in $mnts; do
    case $m in
      "$state"/bundles/*/*/rootfs) id=${m%/rootfs}; id=${id##*/}; printf '%s\n' "$tasks" | grep -qx "$id" || bad="$bad $m" ;;
      "$root"/io.berth.snapshotter.v1.fuse/snapshots/*/fs) ;; # check_fuse
      *) bad="$bad $m" ;;
    esac
  done
  [ -z "$bad" ] || round_fail "mounts under the daemon's directories that no task owns:$bad"
  check_fuse "$d"
  shims=0
  local p
  for p in $(test_pids); do
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "berth-shim.*--bundle $d/" && shims=$((shims + 1))
  done
  [ "$shims" -le "$nt" ] || round_fail "$shims shims run for $nt tasks"
  # Cgroups of this namespace: only those of live tasks.
  local cg xcg=""
  for cg in $(find /sys/fs/cgroup -maxdepth 4 -type d -path "*/$FAULT_NS/*" 2>/dev/null); do
    id=${cg##*/}
    printf '%s\n' "$tasks" | grep -qx "$id" || xcg="$xcg $cg"
  done
  [ -z "$xcg" ] || round_fail "cgroups without a task:$xcg"
  [ -n "$xb$bad$xcg" ] || echo "  ok: $nt tasks, $nb bundles, $nm mounts, $shims shims, no stray cgroup"
}

# check_fuse DIR: the fuse snapshotter's layers: a fuse.berth mount only on
# the fs/ of a snapshot the plugin has a record of, one per snapshot (no
# dead mount stacked under a live one), and a berth-fuse server only for a
# live mount.  A server may be on its way out (its mount was just removed),
# and the plugin runs short `berth-fuse index` helpers: one second's grace.
check_fuse () {
  local d=$1 fdir=$1/root/io.berth.snapshotter.v1.fuse try bad nsrv nfm
  for try in 1 2; do
    bad=""
    local ids="" m t id
    [ -f "$fdir/metadata.db" ] && command -v sqlite3 >/dev/null \
      && ids=$(sqlite3 -readonly "file:$fdir/metadata.db?mode=ro" 'SELECT id FROM snapshots' 2>/dev/null)
    local fmnts
    fmnts=$(awk -v p="$fdir/snapshots/" 'index($2, p) == 1 {print $2, $3}' /proc/self/mounts)
    nfm=$(printf '%s\n' "$fmnts" | sed '/^$/d' | wc -l)
    while read -r m t; do
      [ -n "$m" ] || continue
      id=${m#"$fdir"/snapshots/}; id=${id%/fs}
      [ "$t" = fuse.berth ] || { bad="$bad [a $t mount on $m]"; continue; }
      printf '%s\n' "$ids" | grep -qx "$id" || bad="$bad [fuse.berth mount of snapshot id $id, which the plugin has no record of: $m]"
    done <<< "$fmnts"
    local dup
    dup=$(printf '%s\n' "$fmnts" | awk '{print $1}' | sed '/^$/d' | sort | uniq -d)
    [ -z "$dup" ] || bad="$bad [mounts stacked on $(echo $dup)]"
    local p args last
    nsrv=0
    for p in $(fuse_pids "$d"); do
      args=$(tr '\0' ' ' 2>/dev/null < "/proc/$p/cmdline") || continue
      nsrv=$((nsrv + 1))
      last=${args% }; last=${last##* }
      case $args in
        *" mount "*) printf '%s\n' "$fmnts" | grep -q "^$last fuse.berth\$" \
          || bad="$bad [berth-fuse pid $p serves $last, which is not mounted]" ;;
        *) bad="$bad [berth-fuse pid $p: $(printf '%s' "$args" | head -c 200)]" ;;
      esac
    done
    [ -n "$bad" ] || break
    sleep 1
  done
  # A layer the plugin serves from the store (a `layer` record, no `remote`
  # one: it stopped publishing) needs its blob there, recorded, or nothing
  # can serve it again once its server is gone (a reboot).
  local sd dg listed
  listed=$( { for ns in $(bcli namespaces ls -q 2>/dev/null); do
      timeout 60 "$BERTH" --address "$SOCK" -n "$ns" content ls -q 2>/dev/null; done; } | sort -u)
  for sd in "$fdir"/snapshots/*; do
    [ -f "$sd/layer" ] && [ ! -e "$sd/remote" ] || continue
    dg=$(head -1 "$sd/layer")
    printf '%s\n' "$listed" | grep -qxF "$dg" && [ -f "$1/root/io.berth.content.v1.local/blobs/${dg%%:*}/${dg#*:}" ] \
      || bad="$bad [snapshot ${sd##*/} is served from the store's blob $dg (no remote record, not lazy any more), but no namespace has that blob]"
  done
  if [ -n "$bad" ]; then
    round_fail "fuse snapshotter:$bad"
  elif [ "$nfm$nsrv" != 00 ]; then
    echo "  ok: fuse: $nfm fuse.berth mounts, each of a recorded snapshot; $nsrv berth-fuse servers, each for a live mount"
  fi
}

# check_fuse_reboot DIR IMAGE: what a reboot leaves (no fuse mount, no
# berth-fuse server; the plugin's directories and records stay): berthd
# restarts, IMAGE runs on fuse (each layer served again, from the store's
# blob or lazily from its cache), and check_fuse holds.
check_fuse_reboot () {
  local d=$1 img=$2 m p i out
  daemon_down
  for m in $(awk -v p="$d/root/io.berth.snapshotter.v1.fuse/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null
  done
  for p in $(fuse_pids "$d"); do kill -KILL "$p" 2>/dev/null; done
  for i in $(seq 1 40); do [ -z "$(fuse_pids "$d")" ] && break; sleep 0.05; done
  daemon_up "$d" || { round_fail "berthd does not start after the fuse mounts and servers went (a reboot)"; return; }
  if out=$(bcli run --rm --pull never --snapshotter fuse "$img" true 2>&1); then
    echo "  ok: after a reboot (fuse mounts and servers gone), $img runs on fuse again"
  else
    round_fail "after a reboot (fuse mounts and servers gone), $img does not run on fuse: $out; berthd log: $(grep -E 'io.berth.snapshotter.v1.fuse' "$BERTHD_LOG" | grep -iE 'warn|error' | tail -2 | cut -c1-400)"
  fi
  check_fuse "$d"
}

# check_fuse_gone DIR: after rmi + gc of every image on the fuse
# snapshotter, no snapshot, mount or server of it is left.
check_fuse_gone () {
  local d=$1 fdir=$1/root/io.berth.snapshotter.v1.fuse i left p
  for i in $(seq 1 20); do
    left=$( { find "$fdir/snapshots" -mindepth 1 -maxdepth 1 2>/dev/null
      awk -v p="$fdir/" 'index($2, p) == 1 {print "mount:" $2}' /proc/self/mounts
      for p in $(fuse_pids "$d"); do echo "berth-fuse pid $p"; done; } )
    [ -n "$left" ] || break
    sleep 0.25
  done
  if [ -n "$left" ]; then
    round_fail "after rmi + gc of the lazy image, the fuse snapshotter still has: $(echo $left)"
  else
    echo "  ok: after rmi + gc: no fuse snapshot, fuse.berth mount or berth-fuse server left"
  fi
}

# selftest_checks DIR: the checks can fail.  Plant one leftover of each
# kind in a healthy store and count that check_store reports each; then
# remove them and see it pass again.
selftest_checks () {
  local d=$1 root=$1/root before planted
  local POINT=selftest ROUND=1 round_ok=1
  before=$failures
  planted=$root/io.berth.content.v1.local/blobs/sha256/$(printf 'e%.0s' $(seq 64))
  echo planted > "$planted"
  mkdir -p "$root/io.berth.snapshotter.v1.overlayfs/snapshots/999999/fs" \
    "$root/io.berth.unpack/0000/berth-pull-x-0/etc" "$d/state/bundles/$FAULT_NS/fake/rootfs" \
    "$root/io.berth.content.v1.local/ingest/fake"
  echo "faults/pull/fake" > "$root/io.berth.content.v1.local/ingest/fake/ref"
  mount -t tmpfs selftest "$d/state/bundles/$FAULT_NS/fake/rootfs"
  # The fuse snapshotter's kinds: a snapshot directory no record names, and
  # a berth-fuse server (a stand-in named so) for a mount that is not there.
  local fsn=$root/io.berth.snapshotter.v1.fuse/snapshots own_fsn=0 fake_srv
  [ -d "$fsn" ] || { mkdir -p "$fsn"; own_fsn=1; }
  mkdir -p "$fsn/999999"
  (exec -a berth-fuse bash -c 'trap "kill \$!; exit 0" TERM; sleep 120 & wait' berth-fuse mount "$fsn/999999/fs") &
  fake_srv=$!
  echo "--- selftest: a stray blob, snapshot dir, staging tree, ingest, bundle, mount, fuse snapshot dir and berth-fuse server are planted"
  check_store "$d" 2>&1 | sed 's/^/  (expected) /'
  local caught=0 what
  for what in "blobs on disk that no namespace lists" "snapshot directories no record" "staging trees left" \
    "ingests left" "bundles without a task" "mounts under the daemon" "fuse: snapshot directories no record" \
    "berth-fuse pid $fake_srv serves"; do
    if check_store "$d" 2>&1 | grep -qF "$what"; then caught=$((caught + 1)); else echo "  selftest: not caught: $what"; fi
  done
  umount "$d/state/bundles/$FAULT_NS/fake/rootfs"
  kill -TERM "$fake_srv" 2>/dev/null; wait "$fake_srv" 2>/dev/null
  rm -rf "$fsn/999999"
  [ "$own_fsn" = 0 ] || rm -rf "$root/io.berth.snapshotter.v1.fuse"
  rm -rf "$planted" "$root/io.berth.snapshotter.v1.overlayfs/snapshots/999999" "$root/io.berth.unpack/0000" \
    "$d/state/bundles/$FAULT_NS/fake" "$root/io.berth.content.v1.local/ingest/fake"
  failures=$before
  if [ "$caught" = 8 ]; then pass "selftest: check_store reports each of 8 planted leftovers"; else fail "selftest: check_store caught $caught of 8 planted leftovers"; fi
  round_ok=1
  check_store "$d"
  [ "$round_ok" = 1 ] && pass "selftest: and passes once they are removed" || fail "selftest: check_store fails on a clean store"
}
