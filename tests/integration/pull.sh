#!/bin/bash
# berth's daemon-side pull against a real docker-registry on loopback:
# every test image (OCI manifest, index, zstd layer, Docker v2s2, manifest
# list, a 64 MiB layer), content-only fetch, platform selection, errors,
# resume after a killed daemon and after a cut connection (server-side byte
# counts from the registry's access log), and GC after rmi.
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in docker-registry skopeo python3; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)

IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
[ "$rc" = 0 ] || { fail "building the test images"; finish; }
REGDIR=$T/registry
echo "+ tests/registry/start.sh $REGDIR"
REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
stop_registry () { bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1; }
trap 'stop_registry; cleanup' EXIT
run bash "$top_srcdir/tests/registry/push.sh" "$REG" --images "$IMAGES"
[ "$rc" = 0 ] || { fail "pushing the test images"; finish; }
ACCESS=$REGDIR/registry.log

start_berthd "$T/d" || finish
B=("$BERTH" --address "$SOCK")

# --- every image --------------------------------------------------------------
for img in busybox multiarch zstd docker-v2s2 docker-list multilayer; do
  run "${B[@]}" pull --plain-http "$REG/$img:latest"
  expect_rc 0 "berth pull $img"
  expect_contains "$REG/$img:latest: sha256:" "pull $img prints the image digest"
done
run "${B[@]}" images ls -q
for img in busybox multiarch zstd docker-v2s2 docker-list multilayer; do
  expect_contains "$REG/$img:latest" "images ls lists $img"
done
run "$CTR" --address "$SOCK" images ls
expect_contains "$REG/multiarch:latest" "ctr sees the images berth pulled"

# Every blob the host's platform needs is in the store, visible to ctr.
run "$CTR" --address "$SOCK" content ls -q
stored=$out
missing=0
# images.tsv: name ... column 11 = the blobs a pull for this host needs.
while IFS=$'\t' read -r name blobs; do
  case "$name" in '#'*|'') continue ;; esac
  for d in ${blobs//,/ }; do
    printf '%s\n' "$stored" | grep -qx "$d" || { echo "  missing $d of $name"; missing=$((missing + 1)); }
  done
done < <(cut -f1,11 "$IMAGES/images.tsv")
[ "$missing" = 0 ] && pass "every blob of every image is in the content store" || fail "$missing blobs missing"

# Progress: a plain (non-tty) pull prints a line per phase change.
run "${B[@]}" pull --plain-http "$REG/busybox:latest"
expect_contains ": exists" "a second pull reports the layers as existing"

# --- platforms and content-only fetch ----------------------------------------------
run "${B[@]}" content fetch --plain-http --all-platforms "$REG/docker-list:latest"
expect_rc 0 "content fetch --all-platforms"
run "${B[@]}" pull --plain-http --platform linux/s390x "$REG/multiarch:latest"
expect_rc 1 "no manifest for the asked platform"
expect_contains "linux/arm64" "the error lists the platforms the index has"

# --- errors ------------------------------------------------------------------------------
run "${B[@]}" pull --plain-http "$REG/busybox:no-such-tag"
expect_rc 1 "an unknown tag fails"
expect_contains "not found" "and says not found"
run "${B[@]}" pull --plain-http "127.0.0.1:1/busybox:latest"
expect_rc 1 "an unreachable registry fails"
run "${B[@]}" pull "Bad Reference"
expect_rc 1 "a malformed reference fails"
expect_contains "invalid reference" "and says why"

# --- resume after a killed daemon ----------------------------------------------------
big=$(awk -F'\t' '$1=="multilayer"{print $11}' "$IMAGES/images.tsv" | tr ',' '\n' | while read -r d; do
  s=$(stat -c %s "$IMAGES/multilayer/blobs/sha256/${d#sha256:}" 2>/dev/null || echo 0); echo "$s $d"; done | sort -n | tail -1)
big_size=${big% *}; big_digest=${big#* }
echo "largest layer: $big_digest ($big_size bytes)"
run "${B[@]}" rmi "$REG/multilayer:latest"
run "${B[@]}" gc
run "$CTR" --address "$SOCK" content ls -q
expect_not_contains "$big_digest" "the large layer is gone after rmi + gc"

python3 "$top_srcdir/tests/integration/throttle-proxy.py" --listen-port-file "$T/proxy.port" \
  --target "$REG" --rate $((16 * 1024 * 1024)) &
proxy=$!
for i in $(seq 1 50); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
SLOW=127.0.0.1:$(cat "$T/proxy.port")
echo "+ berth pull --plain-http $SLOW/multilayer:latest &  (16 MiB/s through a proxy), then kill -9 berthd mid-layer"
"${B[@]}" pull --plain-http "$SLOW/multilayer:latest" > "$T/pull1.log" 2>&1 &
cpid=$!
ingest=""
for i in $(seq 1 200); do
  ingest=$(find "$T/d/root/io.berth.content.v1.local/ingest" -name data -size +16M 2>/dev/null | head -1)
  [ -n "$ingest" ] && break
  sleep 0.05
done
kill -9 "$BERTHD_PID"; wait "$BERTHD_PID" 2>/dev/null; wait "$cpid" 2>/dev/null
kill "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null
if [ -z "$ingest" ]; then
  fail "the layer never reached 16 MiB before the kill"
else
  held=$(stat -c %s "$ingest")
  echo "  ingest held $held bytes when berthd was killed"
  before=$(grep -c "blobs/$big_digest" "$ACCESS")
  start_berthd_config "$T/d" "$T/d/config.toml" || finish
  run "${B[@]}" pull --plain-http "$REG/multilayer:latest"
  expect_rc 0 "the pull after the kill completes"
  expect_contains "resuming after" "it says it resumes"
  line=$(grep "blobs/$big_digest" "$ACCESS" | tail -1)
  echo "  access log: $line"
  sent=$(printf '%s' "$line" | awk '{print $10}')
  status=$(printf '%s' "$line" | awk '{print $9}')
  if [ "$status" = 206 ] && [ "$sent" -le $((big_size - held + 1048576)) ] && [ "$sent" -lt "$big_size" ]; then
    pass "the second pull fetched only the remainder ($sent of $big_size bytes, status 206)"
  else
    fail "the second pull fetched $sent bytes (status $status) of $big_size; $held were on disk"
  fi
  [ "$(grep -c "blobs/$big_digest" "$ACCESS")" -gt "$before" ] || fail "no request for the layer after restart"
  run "$CTR" --address "$SOCK" content ls -q
  expect_contains "$big_digest" "the resumed layer is committed (its digest verified)"
fi

# --- resume after a cut connection, within one pull -------------------------------------
# The killed pull's lease still holds what it fetched (it expires in an
# hour); explain says so, and removing it lets GC take the layer.
run "${B[@]}" rmi "$REG/multilayer:latest"
run "${B[@]}" content explain "$big_digest"
expect_contains "lease berth-pull-" "explain names the killed pull's lease"
run "${B[@]}" leases ls -q
for l in $out; do run "${B[@]}" leases rm "$l"; done
run "${B[@]}" gc
run "$CTR" --address "$SOCK" content ls -q
expect_not_contains "$big_digest" "without the lease, gc removes the layer"
python3 "$top_srcdir/tests/integration/throttle-proxy.py" --listen-port-file "$T/proxy2.port" \
  --target "$REG" --cut-after $((20 * 1024 * 1024)) &
proxy=$!
for i in $(seq 1 50); do [ -s "$T/proxy2.port" ] && break; sleep 0.05; done
CUT=127.0.0.1:$(cat "$T/proxy2.port")
n0=$(grep -c "blobs/$big_digest" "$ACCESS")
run "${B[@]}" pull --plain-http "$CUT/multilayer:latest"
expect_rc 0 "a pull whose connection is cut at 20 MiB completes"
kill "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null
echo "  access log:"; grep "blobs/$big_digest" "$ACCESS" | tail -n +$((n0 + 1)) | sed 's/^/  | /'
ranged=$(grep "blobs/$big_digest" "$ACCESS" | tail -n +$((n0 + 1)) | awk '$9 == 206' | wc -l)
[ "$ranged" -ge 1 ] && pass "the rest came with a Range request (206)" || fail "no Range request after the cut"

# --- GC and explain --------------------------------------------------------------------
run "${B[@]}" content explain "$big_digest"
expect_contains "image $CUT/multilayer:latest" "explain names the image that keeps the layer"
run "${B[@]}" rmi "$CUT/multilayer:latest"
run "${B[@]}" gc --dry-run
expect_contains "$big_digest" "gc --dry-run lists the unreferenced layer"
run "${B[@]}" gc
run "$CTR" --address "$SOCK" content ls -q
expect_not_contains "$big_digest" "gc removed it"
[ -e "$T/d/root/io.berth.content.v1.local/blobs/sha256/${big_digest#sha256:}" ] \
  && fail "the blob file is still on disk" || pass "the blob file is gone from disk"

stop_berthd "$BERTHD_PID"
finish
