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

trap 'stop_registry; cleanup' EXIT
start_test_registry
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
  case "$name" in busybox|multiarch|zstd|docker-v2s2|docker-list|multilayer) ;; *) continue ;; esac
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

# --- the real ctr pulls through berthd's Content service ------------------------------
run "$CTR" --address "$SOCK" content fetch --plain-http "$REG/zstd:latest"
expect_rc 0 "ctr content fetch from the registry into berthd"
run "$CTR" --address "$SOCK" leases ls
expect_rc 0 "ctr leases ls"
stop_berthd "$BERTHD_PID"

# --- unpack: snapshots by chainID, discard_unpacked_layers -----------------------------
start_berthd "$T/u" "[registry]" "  discard_unpacked_layers = true" || finish
run "$BERTH" --address "$SOCK" pull --plain-http "$REG/multilayer:latest"
expect_rc 0 "pull with discard_unpacked_layers"
run "$BERTH" --address "$SOCK" snapshots ls
expect_contains "Committed" "the layers are unpacked into committed snapshots"
sleep 1 # the GC that follows the pull is debounced
run "$CTR" --address "$SOCK" content ls -q
expect_not_contains "$big_digest" "the compressed layer is dropped once unpacked"
expect_contains "$(awk -F'\t' '$1=="multilayer"{print $5}' "$IMAGES/images.tsv")" "the manifest stays"
stop_berthd "$BERTHD_PID"

# --- TLS + basic auth, bearer tokens, credentials from berth login -----------------
export DOCKER_CONFIG=$T/docker
for variant in "--tls --htpasswd alice:s3cret" "--token --htpasswd bob:pw"; do
  rdir=$T/reg-$(echo "$variant" | tr -dc 'a-z')
  echo "+ tests/registry/start.sh $rdir $variant"
  # shellcheck disable=SC2086
  R2=$(bash "$top_srcdir/tests/registry/start.sh" "$rdir" $variant) || { fail "starting registry $variant"; continue; }
  trap 'bash "$top_srcdir/tests/registry/stop.sh" "$rdir" >/dev/null 2>&1; stop_registry; cleanup' EXIT
  # shellcheck disable=SC1091
  . "$rdir/registry.env"
  push_args=(--images "$IMAGES" --only busybox --creds "$REGISTRY_USER:$REGISTRY_PASS")
  [ -n "${REGISTRY_CA:-}" ] && push_args+=(--cert-dir "$REGISTRY_CERTS_D/$R2")
  run bash "$top_srcdir/tests/registry/push.sh" "$R2" "${push_args[@]}"
  [ "$rc" = 0 ] || { fail "pushing to $variant"; continue; }
  plain=(); [ "$REGISTRY_SCHEME" = http ] && plain=(--plain-http)
  rm -rf "$T/e"
  start_berthd "$T/e" "[registry]" "  config_path = \"$(dirname "$REGISTRY_CERTS_D/$R2")\"" || finish
  B2=("$BERTH" --address "$SOCK")
  run "${B2[@]}" pull "${plain[@]}" "$R2/busybox:latest"
  expect_rc 1 "$variant: a pull without credentials is refused"
  expect_contains "unauthorized" "$variant: and says unauthorized"
  expect_not_contains "$REGISTRY_PASS" "$variant: no secret in the message"
  run "${B2[@]}" pull "${plain[@]}" --user "$REGISTRY_USER:$REGISTRY_PASS" "$R2/busybox:latest"
  expect_rc 0 "$variant: berth pull --user"
  run "${B2[@]}" rmi "$R2/busybox:latest"
  # The CLI does not read the daemon's certs.d, so it cannot verify a
  # registry whose CA only berthd knows: save without verifying there.
  login_args=(--no-verify); [ "$REGISTRY_SCHEME" = http ] && login_args=(--plain-http)
  run bash -c "printf '%s' '$REGISTRY_PASS' | '$BERTH' login ${login_args[*]} -u '$REGISTRY_USER' --password-stdin '$R2'"
  expect_rc 0 "$variant: berth login"
  run "${B2[@]}" pull "${plain[@]}" "$R2/busybox:latest"
  expect_rc 0 "$variant: berthd uses the credentials berth login saved"
  grep -q "$REGISTRY_PASS" "$BERTHD_LOG" && fail "$variant: the secret is in berthd's log" || pass "$variant: no secret in berthd's log"
  run "$BERTH" logout "$R2"
  stop_berthd "$BERTHD_PID"
  bash "$top_srcdir/tests/registry/stop.sh" "$rdir" >/dev/null 2>&1
done

finish
