#!/bin/bash
# Power-loss style crash (issue 8 part 1): berthd, its shims and their
# containers run in a mount namespace of their own, with berthd's root on
# an ext4 filesystem in a loop device (backing file on tmpfs) and its state
# on a tmpfs that only that namespace sees.  Mid-work (a pull, run -d, rm
# and gc loop), after a random delay, every process of the namespace is
# stopped (SIGSTOP: nothing more is written from user space), the backing
# file is copied — the copy holds what the kernel had written to the
# "disk", not the dirty page cache: what a power cut leaves — and then the
# namespace is killed (SIGKILL) and its mounts go with it.
#
# The copy is then checked as the disk after a reboot:
#   - e2fsck -fn after the journal replay finds the filesystem clean;
#   - PRAGMA integrity_check = ok for meta.db and every snapshotter's
#     metadata.db (SQLite WAL + synchronous=FULL);
#   - berthd starts on it (a fresh, empty state: the tmpfs is gone);
#   - every image whose pull had been reported done before the cut runs
#     (the unpacked files of a committed snapshot reached the disk);
#   - containers created before the cut are still listed (their tasks are
#     gone with the reboot);
#   - the interrupted pull, re-run, completes; after one berth gc no orphan
#     blobs, snapshots, staging trees or ingests (tests/faults/lib-faults.sh).
#
# Approximation: the copy is not atomic with respect to writeback that the
# kernel already started when the processes were stopped (a real disk may
# reorder writes too; writes a flush ordered before are complete, which is
# what SQLite and the stores rely on).  No device-mapper (dm-flakey) here.
#
# Environment: FAULT_PL_ROUNDS (default 2; the documented full run: 20),
# FAULT_SEED.  Exit: 0 pass, 1 fail, 77 skip (not root, no loop device,
# no mkfs.ext4/e2fsck/unshare/sqlite3).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib-faults.sh"
unset BERTH_FAILPOINTS
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
ROUNDS=${FAULT_PL_ROUNDS:-2}
SEED=${FAULT_SEED:-$(date +%s)}
RANDOM=$SEED
need_root
for tool in mkfs.ext4 e2fsck losetup unshare sqlite3; do
  command -v "$tool" >/dev/null || skip "$tool not installed (e2fsprogs, mount, util-linux, sqlite3)"
done
[ -e /dev/loop-control ] || skip "no loop devices (/dev/loop-control)"
faults_setup
echo "power-loss harness: $ROUNDS round(s), seed $SEED"

SHM=$(mktemp -d /dev/shm/berth-pl.XXXXXX)
LOOPS=()
pl_cleanup () {
  local l m
  grep -o " $T[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
  for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
  rm -rf "$SHM"
  faults_cleanup
}
trap pl_cleanup EXIT

# ns_pids NS: every process in the mount namespace NS (readlink of
# /proc/PID/ns/mnt), and the containers (their own namespaces, in the
# harness namespace's cgroups).
ns_pids () {
  local p
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$1" ] || grep -q "/$FAULT_NS/" "$p/cgroup" 2>/dev/null; then
      echo "${p#/proc/}"
    fi
  done
}

# signal_all NS SIG: until no new process shows up (a shim may be forking
# a container while the others are being stopped).
signal_all () {
  local seen="" v p i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    v=$(ns_pids "$1")
    local new=""
    for p in $v; do case " $seen " in *" $p "*) [ "$2" = KILL ] && new="$new $p" ;; *) new="$new $p" ;; esac; done
    [ -n "$new" ] || break
    # shellcheck disable=SC2086
    kill -"$2" $new 2>/dev/null
    seen="$seen $new"
    [ "$2" = KILL ] && sleep 0.1
  done
  echo "$seen" | wc -w
}

integrity () { # DB: prints sqlite's answer
  sqlite3 "$1" 'PRAGMA integrity_check' 2>&1 | tr '\n' ' '
}

for ROUND in $(seq 1 "$ROUNDS"); do
  POINT=powerloss
  round_ok=1
  echo
  echo "--- power loss round $ROUND $(date +%T)"
  D=$T/pl$ROUND
  mkdir -p "$D/mnt" "$D/state"
  img=$SHM/disk$ROUND.img
  truncate -s 768M "$img"
  mkfs.ext4 -q -F "$img" || { fail "mkfs.ext4"; break; }
  loop=$(losetup -f --show "$img") || skip "cannot attach a loop device"
  LOOPS+=("$loop")
  # The daemon's config: root on the ext4, state on the namespace's tmpfs,
  # the socket outside both (the CLI runs in the host's namespace).
  {
    echo 'version = 1'
    echo "root = \"$D/mnt/root\""
    echo "state = \"$D/state\""
    echo 'plugin_dirs = []'
    for line in "${CFG_EXTRA[@]}"; do echo "$line"; done
    echo '[grpc]'
    echo "  address = \"$D/berth.sock\""
  } > "$D/config.toml"
  SOCK=$D/berth.sock
  BERTHD_LOG=$D/berthd.log
  echo "+ unshare -m --propagation private: mount $loop on $D/mnt, tmpfs on $D/state; berthd --config $D/config.toml"
  unshare -m --propagation private sh -c "mount -t ext4 '$loop' '$D/mnt' && mount -t tmpfs berth-pl-state '$D/state' && exec '$BERTHD' --config '$D/config.toml'" \
    > "$BERTHD_LOG" 2>&1 &
  nspid=$!
  for _ in $(seq 1 200); do
    grep -q "serving on" "$BERTHD_LOG" 2>/dev/null && [ -S "$SOCK" ] && break
    sleep 0.05
  done
  grep -q "serving on" "$BERTHD_LOG" || { sed 's/^/  | /' "$BERTHD_LOG"; fail "berthd in its namespace does not start"; break; }
  bcli pull --plain-http "$IMG" >/dev/null 2>&1 || round_fail "pull $IMG before the cut"
  bcli run -d --pull never --name before "$IMG" sleep 100000 >/dev/null 2>&1 || round_fail "run -d before the cut"
  # The loop: every completed step is logged, so that what was reported
  # done before the cut is known.
  (
    i=0
    while :; do
      i=$((i + 1))
      bcli pull --plain-http "$PIMG" >/dev/null 2>&1 && echo "pulled $PIMG"
      bcli run -d --pull never --name "c$i" "$IMG" sleep 100000 >/dev/null 2>&1 && echo "created c$i"
      bcli rm -f "c$((i - 1))" >/dev/null 2>&1 && echo "removed c$((i - 1))"
      echo "removing $PIMG" # from here on it may be gone whatever the answer
      bcli rmi "$PIMG" >/dev/null 2>&1 && echo "removed $PIMG"
      bcli gc >/dev/null 2>&1 && echo "gc"
    done
  ) > "$D/done.log" 2>&1 &
  wl=$!
  delay=$(( RANDOM % 3000 + 300 ))
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  nsid=$(readlink "/proc/$nspid/ns/mnt")
  kill -STOP "$wl" 2>/dev/null
  nstopped=$(signal_all "$nsid" STOP)
  cp --sparse=always "$img" "$img.cut"
  echo "  power cut after $delay ms: stopped $nstopped processes of the namespace, disk copied"
  signal_all "$nsid" KILL >/dev/null
  kill -KILL "$wl" 2>/dev/null
  wait "$wl" 2>/dev/null
  wait "$nspid" 2>/dev/null
  # The reboot: empty cgroups of the containers that died with it go too.
  sleep 0.2
  find /sys/fs/cgroup -mindepth 2 -maxdepth 4 -type d -path "*/$FAULT_NS/*" 2>/dev/null | while read -r cg; do rmdir "$cg" 2>/dev/null; done
  sed 's/^/  done before the cut: /' "$D/done.log" | tail -5
  pulled=0
  # The last event before the cut decides whether $PIMG was there.
  last=$(grep -E "pulled|removing $PIMG" "$D/done.log" | tail -1)
  [ "$last" = "pulled $PIMG" ] && pulled=1
  for _ in $(seq 1 50); do losetup -d "$loop" 2>/dev/null && break; sleep 0.1; done

  # ---- reboot on the copy --------------------------------------------------
  loop2=$(losetup -f --show "$img.cut") || { fail "attaching the copy"; break; }
  LOOPS+=("$loop2")
  mkdir -p "$D/mnt2"
  mount -t ext4 "$loop2" "$D/mnt2" || { round_fail "the disk after the cut does not mount"; continue; }
  umount "$D/mnt2"
  if out=$(e2fsck -fn "$loop2" 2>&1); then
    echo "  ok: e2fsck -fn: clean after the journal replay"
  else
    round_fail "e2fsck -fn after the journal replay: $(printf '%s' "$out" | tail -3 | tr '\n' ' ')"
  fi
  mount -t ext4 "$loop2" "$D/mnt2" || { round_fail "the disk after the cut does not mount"; continue; }
  for db in "$D/mnt2/root/meta.db" "$D"/mnt2/root/io.berth.snapshotter.v1.*/metadata.db; do
    [ -f "$db" ] || continue
    res=$(integrity "$db")
    if [ "$res" = "ok " ]; then echo "  ok: integrity_check ${db#$D/mnt2/}"; else round_fail "integrity_check ${db#$D/mnt2/}: $res"; fi
  done
  # berthd on the surviving disk, a fresh state (the reboot emptied it).
  mkdir -p "$D/r"
  cat > "$D/r/config.toml" <<EOF
version = 1
root = "$D/mnt2/root"
state = "$D/r/state"
plugin_dirs = []
$(printf '%s\n' "${CFG_EXTRA[@]}")
[grpc]
  address = "$D/r/berth.sock"
EOF
  if ! start_berthd_config "$D/r" "$D/r/config.toml"; then
    round_fail "berthd does not start on the disk after the cut"
    continue
  fi
  check_image_runs "$IMG"
  [ "$pulled" = 1 ] && check_image_runs "$PIMG"
  if bcli ps -a --format json 2>/dev/null | grep -q '"Names": *"before"'; then
    echo "  ok: the container created before the cut is listed"
  else
    round_fail "the container created before the cut is no longer listed"
  fi
  # Containers of a boot that is over: remove them all, then the pull again.
  for id in $(bcli containers ls -q 2>/dev/null); do bcli rm -f "$id" >/dev/null 2>&1; done
  if out=$(bcli pull --plain-http "$PIMG" 2>&1); then
    echo "  ok: the pull after the cut completes"
    check_image_runs "$PIMG"
  else
    round_fail "the pull after the cut fails: $out"
  fi
  if out=$(bcli gc 2>&1); then echo "  gc: $(printf '%s' "$out" | tail -1)"; else round_fail "gc: $out"; fi
  # check_store reads <dir>/root and <dir>/state.
  ln -sfn "$D/mnt2/root" "$D/r/root"
  check_store "$D/r"
  stop_berthd "$BERTHD_PID"
  umount "$D/mnt2"
  losetup -d "$loop2"
  rm -f "$img" "$img.cut"
  [ "$round_ok" = 1 ] && pass "power loss round $ROUND survived"
done
echo "leftovers only start-up reconciliation can remove (NEEDS-RECOVERY): $needs_recovery"
finish
