#!/bin/bash
# Lazy eStargz pulls through berthd (issue 7, "Done when"): an eStargz image
# starts before its blob is complete, and berthd's restart keeps the
# container's rootfs.  /work/notes/lazy-contract.md is the design.
#
# Set-up: the real docker-registry (start_test_registry, busybox); an image
# of two layers, busybox's and a data layer of 50 MiB of random bytes
# (data/big.bin 48 MiB, data/zz-tail.bin 2 MiB last, data/greeting, which
# the command prints) is made in Python, pushed, pulled into a build berthd,
# converted with `berth image convert --estargz`, taken out of its store
# with `berth content get` as an OCI layout and pushed again with skopeo
# (lib-lazy.sh's lazy_make_src, lazy_convert_export, lazy_push).  In front of
# the registry pace-proxy.py (stdlib Python) paces every blob body to
# RATE bytes/s in all (so the data blob takes >= 18 s) and keeps, in a file,
# the body bytes it has sent per blob digest.  A fresh berthd (fuse plugin)
# pulls through the proxy (127.0.0.1:PORT, --plain-http):
#
#  1. pull --snapshotter fuse returns in < 1/4 of the data blob's download
#     time; run --rm prints the greeting while the proxy has sent less than
#     the blob (both numbers printed: the count is read after the run exits,
#     so it bounds the count at the moment of the line from above).
#  2. run -d; the proxy SIGSTOPped: data/greeting (read before) still
#     reads; reading data/zz-tail.bin (not fetched yet) through the
#     container's root fails with an error within 45 s (the plugin's
#     remote_timeout = 3, remote_retries = 1), no hang; after SIGCONT the
#     same read gives the right bytes.
#  3. kill -9 berthd while the container runs and the blob is incomplete,
#     start it again: exec in the container reads its rootfs; its files'
#     bytes are right.
#  4. (bounded) the blob completes and the core adopts it: `berth content
#     ls` lists the data layer, berth fsck exits 0, du -sx of berthd's root
#     <= 1.10 x the layers' compressed size (no second copy).
#  5. rm + rmi + gc: no fuse mount, no berth-fuse process, no layer blob.
#  6. the same eStargz image under overlayfs (pulled straight from the
#     registry) downloads normally and runs.
#
# About 70 s.  Environment: top_builddir, top_srcdir, BERTH_TEST_IMAGES,
# BERTH_FUSE, LAZY_RATE (bytes/s, default 2500000).
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
source "$(dirname "$0")/../../integration/lib.sh"
source "$(dirname "$0")/lib-lazy.sh"
need_root
for tool in docker-registry skopeo python3 du find timeout sha256sum; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
need_fuse --shim
RATE=${LAZY_RATE:-2500000}
MARK=$((100000 + $$ % 50000))$RANDOM
PROXY_PID=

trap 'stop_registry; cleanup' EXIT # until fuse_final_cleanup below
start_test_registry --only busybox

# --- the image ------------------------------------------------------------------
# lazysrc: busybox's layer + a gzip data layer; Cmd prints data/greeting.
echo "+ making $T/src (busybox + 50 MiB data layer) and pushing it as $REG/lazysrc:latest"
lazy_make_src "lazy-estargz: hello $MARK" 50
lazy_push "$T/src" "$REG/lazysrc:latest" "pushing lazysrc"

# RT_CFG, FUSE_CFG: need_fuse (lib-lazy.sh).
# remote_timeout/remote_retries: a stalled registry fails a read within
# ~2 x (1 + 1) x 3 s plus back-off (berth-fuse's defaults: ~100 s).
FUSE_CFG+=("  remote_timeout = 3" "  remote_retries = 1")

# Converted in a berthd of its own (its store must not hold the blobs the
# test's berthd is to fetch lazily), then exported from its store.
echo "=== 0. berth image convert --estargz, push"
start_berthd "$T/b" "${RT_CFG[@]}" || finish
BB=("$BERTH" --address "$SOCK")
run "${BB[@]}" pull -q --plain-http --skip-unpack "$REG/lazysrc:latest"
expect_rc 0 "build berthd: pull lazysrc"
lazy_convert_export
lazy_push "$T/esgz" "$REG/lazy:latest" "pushing lazy (eStargz)"
pass "eStargz image pushed as $REG/lazy:latest"
stop_berthd "$BERTHD_PID"

# --- the proxy ------------------------------------------------------------------
# pace-proxy.py (lib-lazy.sh's start_pace_proxy): blob bodies paced to RATE
# bytes/s over all connections; served DIGEST: the bytes sent of that blob.
start_pace_proxy "$REG"
echo "  proxy $PROXY (pid $PROXY_PID); the data blob takes $FULL_MS ms through it"

# --- the test's paths; the helpers are lib-lazy.sh's ----------------------------------
D=$T/d
ROOT=$D/root
PR=$ROOT/io.berth.snapshotter.v1.fuse
BLOBS=$ROOT/io.berth.content.v1.local/blobs/sha256
trap fuse_final_cleanup EXIT

# --- the test's berthd ----------------------------------------------------------------
start_berthd "$D" "${RT_CFG[@]}" "${FUSE_CFG[@]}" || finish
export BERTH_FIFO_DIR=$T/fifo
B=("$BERTH" --address "$SOCK" -n lz)
run "$BERTH" --address "$SOCK" plugins ls
st=$(printf '%s\n' "$out" | awk '$1 == "io.berth.snapshotter.v1" && $2 == "fuse" { print $NF }')
[ "$st" = ok ] || { fail "fuse is '${st:-absent}' in berthd with $BERTH_FUSE, not ok"; finish; }
IMG=$PROXY/lazy:latest

echo "=== 1. pull, run: served before the blob is complete"
t0=$(now_ms)
run timeout 120 "${B[@]}" pull -q --plain-http --snapshotter fuse "$IMG"
pull_ms=$(($(now_ms) - t0))
expect_rc 0 "pull --snapshotter fuse $IMG"
echo "  pull took $pull_ms ms; the data blob alone takes $FULL_MS ms through the proxy; sent so far $(served "$DATA_LAYER") of $DATA_SIZE B"
[ "$pull_ms" -lt $((FULL_MS / 4)) ] && pass "pull returned in $pull_ms ms < 1/4 of the blob's download ($FULL_MS ms)" ||
  fail "pull took $pull_ms ms, not < 1/4 of the blob's download time $FULL_MS ms (was the blob downloaded?)"
n=$(fuse_mounts | wc -l)
[ "$n" = 2 ] && pass "two fuse.berth layer mounts" || fail "$n fuse.berth mounts under $PR, not 2"
t0=$(now_ms)
run timeout 120 "${B[@]}" run --rm --snapshotter fuse --pull never "$IMG"
run_ms=$(($(now_ms) - t0))
got=$(served "$DATA_LAYER")
expect_rc 0 "run --rm --snapshotter fuse (took $run_ms ms)"
expect_contains "lazy-estargz: hello $MARK" "the container prints its greeting"
echo "  proxy has sent $got of the data blob's $DATA_SIZE bytes (read after the run exited)"
if [ "$rc" = 0 ] && [ "$got" -lt "$DATA_SIZE" ]; then
  pass "the container's output came while the blob was incomplete ($got < $DATA_SIZE B)"
else
  fail "the greeting was not printed before the blob completed ($got of $DATA_SIZE B sent)"
fi
[ -s "$T/counts" ] && sed 's/^/  counts | /' "$T/counts"

echo "=== 2. the registry stops answering"
run timeout 60 "${B[@]}" run -d --name c1 --snapshotter fuse --pull never "$IMG" sh -c "while true; do sleep $MARK; done"
expect_rc 0 "run -d c1"
CPID=
for _ in $(seq 1 50); do
  CPID=$(pgrep -f "sleep $MARK" | head -n 1)
  [ -n "$CPID" ] && break
  sleep 0.1
done
[ -n "$CPID" ] || { fail "c1's process (sleep $MARK) not found"; finish; }
CR=/proc/$CPID/root
got=$(served "$DATA_LAYER")
echo "  sent so far: $got of $DATA_SIZE B"
[ "$got" -lt "$DATA_SIZE" ] || echo "NOTE: the blob is complete already: the stopped registry cannot be tested on it"
echo "+ kill -STOP $PROXY_PID (the proxy)"
kill -STOP "$PROXY_PID"
r=$(read_file "$CR/data/greeting" 10)
[ "$r" = "$(want_of data/greeting)" ] && pass "a file read before still reads while the registry is stopped" ||
  fail "data/greeting while the registry is stopped: $r"
# remote_timeout = 3: a stall is 3 s below 1 KiB/s, 1 retry (remote.c);
# the read may first wait for a stalled background request.
t0=$(now_ms)
r=$(read_file "$CR/data/zz-tail.bin" 200)
stop_ms=$(($(now_ms) - t0))
echo "  read of data/zz-tail.bin with the registry stopped: $r after $stop_ms ms"
case $r in
  error:*) [ "$stop_ms" -le 45000 ] && pass "a read of a file not yet fetched fails (not hangs) after $stop_ms ms" ||
             fail "the read failed, but only after $stop_ms ms (> 45 s)" ;;
  timeout) fail "a read of a file not yet fetched hangs (> 200 s) while the registry is stopped" ;;
  *) fail "a read of data/zz-tail.bin succeeded while the registry is stopped (fetched already?)" ;;
esac
alive "$CPID" && pass "c1 still runs" || fail "c1 died while the registry was stopped"
DATA_DIR=$(dirname "$(grep -lx "$DATA_LAYER" "$PR"/snapshots/*/layer 2>/dev/null | head -n 1)")
echo "  the data layer's berth-fuse log ($DATA_DIR/server.log), last lines:"
tail -n 6 "$DATA_DIR/server.log" 2>/dev/null | sed 's/^/  | /'
echo "+ kill -CONT $PROXY_PID"
kill -CONT "$PROXY_PID"
r=$(read_file "$CR/data/zz-tail.bin" 120)
[ "$r" = "$(want_of data/zz-tail.bin)" ] && pass "after SIGCONT data/zz-tail.bin reads right" ||
  fail "after SIGCONT data/zz-tail.bin: $r"
echo "  sent so far: $(served "$DATA_LAYER") of $DATA_SIZE B"

echo "=== 3. kill -9 berthd, start it again"
got=$(served "$DATA_LAYER")
echo "  sent at the kill: $got of $DATA_SIZE B"
[ "$got" -lt "$DATA_SIZE" ] && pass "berthd is killed while the blob is still incomplete" ||
  fail "the blob was complete before berthd was killed (LAZY_RATE too high?)"
echo "+ kill -9 $BERTHD_PID (berthd)"
kill -9 "$BERTHD_PID"; wait "$BERTHD_PID" 2>/dev/null
sleep 0.5
alive "$CPID" && pass "c1 outlives berthd" || fail "c1 died with berthd"
start_berthd_config "$D" "$D/config.toml" || { fail "berthd did not start after kill -9"; finish; }
run timeout 30 "${B[@]}" exec c1 cat /data/greeting
expect_contains "lazy-estargz: hello $MARK" "exec c1 cat /data/greeting after the restart"
run timeout 30 "${B[@]}" exec c1 ls /bin/busybox
expect_rc 0 "exec c1 ls /bin/busybox (the busybox layer) after the restart"
for f in data/big.bin data/zz-tail.bin; do
  r=$(read_file "$CR/$f" 120)
  [ "$r" = "$(want_of $f)" ] && pass "$f through c1's root has the right bytes" || fail "$f through c1's root: $r"
done

echo "=== 4. complete: adopted into the content store"
t0=$(now_ms)
done_=0
while [ $(($(now_ms) - t0)) -lt 120000 ]; do
  if "${B[@]}" content ls -q 2>/dev/null | grep -qx "$DATA_LAYER"; then done_=1; break; fi
  sleep 0.5
done
echo "  sent: $(served "$DATA_LAYER") of $DATA_SIZE B (data), $(served "$BB_LAYER") of $BB_SIZE B (busybox)"
if [ "$done_" = 1 ]; then
  pass "berth content ls lists the data layer after $(($(now_ms) - t0)) ms more"
else
  fail "the data layer $DATA_LAYER is not in berth content ls within 120 s"
fi
run "${B[@]}" content ls
for _ in $(seq 1 20); do "${B[@]}" content ls -q 2>/dev/null | grep -qx "$BB_LAYER" && break; sleep 0.5; done
"${B[@]}" content ls -q 2>/dev/null | grep -qx "$BB_LAYER" && pass "and the busybox layer" || fail "the busybox layer $BB_LAYER is not in the store"
[ -f "$BLOBS/${DATA_LAYER#sha256:}" ] && [ "$(sha256sum < "$BLOBS/${DATA_LAYER#sha256:}" | cut -d' ' -f1)" = "${DATA_LAYER#sha256:}" ] &&
  pass "the store's blob file hashes to its digest" || fail "no blob file with the right bytes at $BLOBS/${DATA_LAYER#sha256:}"
run "${B[@]}" content ls --format json
python3 -c '
import json, sys
d, want = sys.argv[1], sys.argv[2]
for c in json.loads (sys.stdin.read ()):
    if c.get ("digest") == d:
        sys.exit (0 if (c.get ("labels") or {}).get ("containerd.io/uncompressed") else 1)
sys.exit (1)' "$DATA_LAYER" x <<<"$out" && pass "its record has containerd.io/uncompressed" ||
  fail "the data layer's content record lacks containerd.io/uncompressed"
run "$BERTH" --address "$SOCK" fsck
expect_rc 0 "berth fsck"
sync
root_b=$(du -sxB1 "$ROOT" | cut -f1)
layers_b=$((DATA_SIZE + BB_SIZE))
limit=$((layers_b * 110 / 100))
echo "  du -sx $ROOT: $root_b B; compressed layers $layers_b B; limit 1.10 x = $limit B"
[ "$root_b" -le "$limit" ] && pass "disk: $root_b B <= 1.10 x the layers (no second copy)" ||
  { fail "disk: $root_b B > $limit B (a second copy of the blob?)"; find "$ROOT" -xdev -type f -size +1M -printf '  | %s %p (links %n)\n'; }
run timeout 30 "${B[@]}" exec c1 cat /data/greeting
expect_contains "lazy-estargz: hello $MARK" "c1 still reads its rootfs after the adoption"
r=$(read_file "$CR/data/zz-tail.bin" 60)
[ "$r" = "$(want_of data/zz-tail.bin)" ] && pass "and data/zz-tail.bin is right" || fail "data/zz-tail.bin after the adoption: $r"
stop_berthd "$BERTHD_PID"
start_berthd_config "$D" "$D/config.toml" || { fail "berthd did not start again"; finish; }
run timeout 60 "${B[@]}" run --rm --snapshotter fuse --pull never "$IMG"
expect_contains "lazy-estargz: hello $MARK" "after the adoption and a restart, run --rm prints the greeting"

echo "=== 5. rm, rmi, gc"
mapfile -t MPS < <(fuse_mounts)
PIDS=($(servers_under "$PR"))
echo "  ${#MPS[@]} mounts, servers: ${PIDS[*]}"
run "${B[@]}" rm -f c1
expect_rc 0 "rm -f c1"
run "${B[@]}" rmi "$IMG"
expect_rc 0 "rmi"
run "${B[@]}" gc
expect_rc 0 "gc"
left=$(fuse_mounts)
[ -z "$left" ] && pass "no layer mount left" || { fail "layer mounts left:"; printf '  | %s\n' $left; }
[ "${#PIDS[@]}" -gt 0 ] && wait_gone "${PIDS[@]}" && [ -z "$(servers_under "$PR")" ] &&
  pass "no berth-fuse process left (${PIDS[*]} exited)" || fail "berth-fuse processes left: $(servers_under "$PR")"
left=$(for d in $DATA_LAYER $BB_LAYER; do [ -e "$BLOBS/${d#sha256:}" ] && echo "$d"; done)
[ -z "$left" ] && pass "the layer blobs are gone" || fail "layer blobs left: $(echo $left)"
left=$(find "$PR" -xdev -type f ! -name 'metadata.db*' 2>/dev/null | head -n 5)
[ -z "$left" ] && pass "nothing left under $PR but metadata.db" || { fail "files left under $PR:"; printf '  | %s\n' $left; }

echo "=== 6. the eStargz image under overlayfs"
run timeout 120 "$BERTH" --address "$SOCK" -n ov pull -q --plain-http --snapshotter overlayfs "$REG/lazy:latest"
expect_rc 0 "pull --snapshotter overlayfs $REG/lazy:latest"
"$BERTH" --address "$SOCK" -n ov content ls -q 2>/dev/null | grep -qx "$DATA_LAYER" && pass "the data blob was downloaded into the store" ||
  fail "the data blob is not in the store after an overlayfs pull"
run timeout 60 "$BERTH" --address "$SOCK" -n ov run --rm --snapshotter overlayfs --pull never "$REG/lazy:latest"
expect_contains "lazy-estargz: hello $MARK" "run --rm under overlayfs prints the greeting"
finish
