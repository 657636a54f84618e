#!/bin/bash
# Recovery that never dies (issue 8 part 2): a stopped berthd's store is
# damaged in each way a crash or a bad disk can damage it, berthd must start
# anyway, say what it put aside and why, keep the healthy image running, and
# `berth fsck` / `berth fsck --repair` / `berth system df` must tell the
# truth (exit codes 0 clean, 1 problems, 2 error; sizes against du).
#
# Damage done, with the daemon stopped:
#   a blob rewritten in place (same size, wrong digest: only fsck's hashing sees it)
#   a blob truncated (size differs from its record: start-up quarantines it)
#   a blob deleted (records and an image point at nothing)
#   a snapshot record deleted from meta.db (the plugin's snapshot has no record)
#   a container's snapshot directory deleted (a record whose data is missing)
#   a task directory with a corrupt `meta`, a bundle with a corrupt config.json,
#   a leftover bundle with no task (removed by task recovery)
#   finally meta.db overwritten with garbage (unreadable metadata)
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in docker-registry skopeo python3 du truncate sqlite3; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)

start_test_registry --only busybox,zstd

cfg=()
for plug in namespaces oci; do
  cfg+=("[plugins.\"io.berth.runtime.v1.$plug\"]")
  [ "$plug" = namespaces ] && [ -x "$top_builddir/berth-runtime" ] && cfg+=("  binary = \"$top_builddir/berth-runtime\"")
  for s in "$top_builddir/shim/berth-shim" "$top_builddir/berth-shim"; do
    [ -x "$s" ] && { cfg+=("  shim_binary = \"$s\""); break; }
  done
done
D=$T/d
ROOT=$D/root
STATE=$D/state
BLOBS=$ROOT/io.berth.content.v1.local/blobs/sha256
start_berthd "$D" "${cfg[@]}" || { stop_registry; finish; }
B=("$BERTH" --address "$SOCK")
final_cleanup () {
  local ids
  ids=$("${B[@]}" containers ls -q 2>/dev/null)
  for id in $ids; do "${B[@]}" rm -f "$id" >/dev/null 2>&1; done
  stop_registry
  cleanup
}
trap final_cleanup EXIT

# restart: SIGTERM, then start on the same config; it must come up.
restart () {
  stop_berthd "$BERTHD_PID"
  [ -n "${1:-}" ] && { echo "+ damage: $1"; eval "$1"; }
  start_berthd_config "$D" "$D/config.toml" || { fail "berthd did not start after: ${1:-restart}"; finish; }
  pass "berthd starts after: ${1:-restart}"
}
expect_log () { # needle, what
  if grep -qF -- "$1" "$BERTHD_LOG"; then pass "$2"; grep -F -- "$1" "$BERTHD_LOG" | head -3 | sed 's/^/  | /'
  else fail "$2: the log lacks \`$1\`"; sed 's/^/  | /' "$BERTHD_LOG" | tail -20; fi
}
runs_true () { # what
  echo "+ ${B[*]} run --rm --pull never $IMG true"
  if timeout 60 "${B[@]}" run --rm --pull never "$IMG" true; then pass "$1"; else fail "$1"; fi
}

IMG=$REG/busybox:latest
IMG2=$REG/zstd:latest
"${B[@]}" plugins ls | grep -q 'io.berth.runtime.v1.* ok' || skip "no runtime plugin loads in berthd"
for i in "$IMG" "$IMG2"; do
  run "${B[@]}" pull --plain-http "$i"
  expect_rc 0 "pull $i"
done
runs_true "the image runs before any damage"

# --- a clean store -----------------------------------------------------------
run "${B[@]}" fsck
expect_rc 0 "fsck of a clean store"
expect_contains "0 problems" "and it says so"

# system df against du: content bytes are the blob files' sizes, quarantine
# and snapshots what du counts.
df_json () {
  "${B[@]}" system df --format json > "$T/df.json" || { fail "system df"; return 1; }
  python3 - "$T/df.json" "$1" "$2" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
v = [r for r in rows if r["type"] == sys.argv[2] and (sys.argv[3] == "" or r["name"] == sys.argv[3])]
print(sum((r.get("size") or 0) for r in v))
EOF
}
near () { # got want tolerance-percent what
  local got=$1 want=$2 pct=$3
  local diff=$(( got > want ? got - want : want - got ))
  if [ "$diff" -le $(( want * pct / 100 + 65536 )) ]; then pass "$4 ($got vs $want)"; else fail "$4: $got, du says $want"; fi
}
run "${B[@]}" system df
expect_contains "build-cache" "system df lists every type"
run "${B[@]}" system df -v
expect_contains "$REG/busybox:latest" "system df -v lists the images"
expect_contains "sha256:" "and the blobs"
content=$(df_json content "")
blob_bytes=$(find "$BLOBS" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
[ "$content" = "$blob_bytes" ] && pass "df content bytes = the blob files' sizes ($content)" \
  || fail "df content bytes $content, the blob files hold $blob_bytes"
for sn in overlayfs native; do
  dir=$ROOT/io.berth.snapshotter.v1.$sn/snapshots
  [ -d "$dir" ] || continue
  got=$(df_json snapshots "$sn")
  want=$(du -sB1 "$dir" | cut -f1)
  near "$got" "$want" 25 "df snapshots ($sn) against du"
done

# --- damage, restart -----------------------------------------------------------
# zstd's blobs are its own: the largest is the layer, then config, manifest.
mapfile -t z < <(awk -F'\t' '$1=="zstd"{print $11}' "$IMAGES/images.tsv" | tr ',' '\n' | sed 's/^sha256://' |
  while read -r h; do echo "$(stat -c %s "$BLOBS/$h") $h"; done | sort -rn | awk '{print $2}')
LAYER=${z[0]}; CONFIG=${z[1]}; MANIFEST=$(awk -F'\t' '$1=="zstd"{print $5}' "$IMAGES/images.tsv" | sed 's/^sha256://')
[ "$CONFIG" = "$MANIFEST" ] && CONFIG=${z[2]}
echo "zstd: layer $LAYER config $CONFIG manifest $MANIFEST"

# A container whose snapshot directory will vanish.
run "${B[@]}" create --name victim --pull never "$IMG" true
expect_rc 0 "create a container"
CID=$(printf '%s\n' "$out" | tail -1)
sn_backend=$(sqlite3 "$ROOT/meta.db" "SELECT s.backend FROM snapshots s JOIN containers c ON s.key = c.snapshot_key AND s.namespace = c.namespace WHERE c.id = '$CID'")
echo "victim's snapshot: $sn_backend"

parent=$(sqlite3 "$ROOT/meta.db" "SELECT parent FROM snapshots s JOIN containers c ON s.key = c.snapshot_key WHERE c.id = '$CID'")
run "$CTR" --address "$SOCK" snapshots prepare fsck-orphan "$parent"
expect_rc 0 "prepare a snapshot that will lose its record"
damage="printf 'XXXX' | dd of=$BLOBS/$LAYER bs=1 seek=100 conv=notrunc status=none"
damage+="; truncate -s -1 $BLOBS/$CONFIG; rm -f $BLOBS/$MANIFEST"
# an active snapshot loses its record
damage+="; sqlite3 $ROOT/meta.db \"DELETE FROM snapshots WHERE key = 'fsck-orphan'\""
# task state and bundles
damage+="; mkdir -p $STATE/io.berth.runtime.v1.namespaces/default/ghost && echo '{\"namespace\": garbage' > $STATE/io.berth.runtime.v1.namespaces/default/ghost/meta"
damage+="; mkdir -p $STATE/bundles/default/broken && echo '{\"ociVersion\":' > $STATE/bundles/default/broken/config.json"
damage+="; mkdir -p $STATE/bundles/default/leftover && echo '{\"ociVersion\":\"1.0.2\"}' > $STATE/bundles/default/leftover/config.json"
restart "$damage"
expect_log "recovery: blob sha256:$CONFIG" "start-up logs the truncated blob"
expect_log "quarantined -> $ROOT/quarantine/" "and where it went"
Q=$(ls -d "$ROOT"/quarantine/*/ | head -1)
[ -f "$Q/blobs/sha256/$CONFIG" ] && pass "the truncated blob is in $Q/blobs/sha256/" || fail "no $Q/blobs/sha256/$CONFIG"
[ -e "$BLOBS/$CONFIG" ] && fail "the truncated blob is still in the store" || pass "and gone from the store"
expect_log "points at a missing blob" "start-up logs the record of the deleted blob"
expect_log "recovery: task-state default/" "start-up logs the corrupt task record"
expect_log "recovery: bundle default/" "start-up logs the corrupt bundle"
ls "$Q"/state/io.berth.runtime.v1.namespaces/default/ghost/meta "$Q"/bundles/default/broken/config.json >/dev/null 2>&1 \
  && pass "task state and bundle are in the quarantine" || { fail "task state / bundle not quarantined"; find "$ROOT/quarantine" "$STATE/quarantine" 2>/dev/null; }
[ -e "$STATE/bundles/default/leftover" ] && fail "the leftover bundle was kept" || pass "the leftover bundle was removed"
expect_log "no namespace has a record for this" "start-up logs the snapshot without a record"
runs_true "the healthy image still runs after recovery"

# --- fsck on demand ---------------------------------------------------------------
run "${B[@]}" fsck
expect_rc 1 "fsck finds what start-up left"
expect_contains "sha256:$LAYER: its content hashes to" "fsck hashes blobs and finds the rewritten one"
expect_contains "points at a missing blob" "fsck reports records that point at nothing"
expect_contains "missing from the content store" "fsck reports the image whose manifest is gone"
if [ -n "$sn_backend" ]; then
  d=$(python3 - "$ROOT/io.berth.snapshotter.v1.overlayfs/metadata.db" "$sn_backend" <<'EOF' 2>/dev/null
import sqlite3, sys
try:
    db = sqlite3.connect(sys.argv[1])
    for t in [r[0] for r in db.execute("select name from sqlite_master where type='table'")]:
        cols = [c[1] for c in db.execute("pragma table_info(%s)" % t)]
        if "key" in cols and "id" in cols:
            r = db.execute("select id from %s where key=?" % t, (sys.argv[2],)).fetchone()
            if r: print(r[0]); break
except Exception:
    pass
EOF
)
  if [ -n "$d" ] && [ -d "$ROOT/io.berth.snapshotter.v1.overlayfs/snapshots/$d" ]; then
    stop_berthd "$BERTHD_PID"
    echo "+ rm -rf $ROOT/io.berth.snapshotter.v1.overlayfs/snapshots/$d  (the container's snapshot data)"
    rm -rf "$ROOT/io.berth.snapshotter.v1.overlayfs/snapshots/$d"
    start_berthd_config "$D" "$D/config.toml" || { fail "berthd did not start without a container's snapshot"; finish; }
    pass "berthd starts without a container's snapshot data"
    run "${B[@]}" fsck --no-digests
    expect_rc 1 "fsck finds the missing snapshot data"
    expect_contains "is missing" "and says which path"
  else
    echo "(overlayfs id of $sn_backend not found; the missing-snapshot-data case is not exercised)"
  fi
fi
run "${B[@]}" fsck --format json
python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["items"] and d["unresolved"] > 0' <<<"$out" \
  && pass "fsck --format json is a report with items" || fail "fsck --format json"
run "${B[@]}" fsck --repair
expect_rc 0 "fsck --repair resolves everything"
expect_contains "record dropped" "and drops the records that point at nothing"
ls "$ROOT"/quarantine/*/blobs/sha256/"$LAYER" >/dev/null 2>&1 && pass "the rewritten blob is quarantined" \
  || fail "the rewritten blob is not in the quarantine"
ls "$ROOT"/quarantine/*/records/content/default/* >/dev/null 2>&1 && pass "dropped records are kept as JSON" \
  || fail "no records under quarantine/*/records/"
run "${B[@]}" fsck
expect_rc 0 "fsck after --repair is clean"
runs_true "the healthy image runs after repair"
run "${B[@]}" pull --plain-http "$IMG2"
expect_rc 0 "the damaged image pulls again"

q=$(df_json quarantine "")
near "$q" "$(du -sB1 "$ROOT/quarantine" | cut -f1)" 1 "df quarantine bytes against du"

# --- an unreadable metadata database ------------------------------------------------
restart "head -c 65536 /dev/urandom > $ROOT/meta.db; rm -f $ROOT/meta.db-wal $ROOT/meta.db-shm"
expect_log "recovery: metadata" "start-up logs the unreadable database"
ls "$ROOT"/quarantine/*/meta/meta.db >/dev/null 2>&1 && pass "meta.db is in the quarantine" || fail "meta.db not quarantined"
run "${B[@]}" images ls -q
expect_rc 0 "the daemon answers with a fresh database"
run "${B[@]}" pull --plain-http "$IMG"
expect_rc 0 "pull into the fresh database"
runs_true "the image runs again"
run "${B[@]}" fsck --no-digests
[ "$rc" = 0 ] || [ "$rc" = 1 ] && pass "fsck answers 0 or 1 (exit $rc)" || fail "fsck exit $rc"

# --- exit status 2 ---------------------------------------------------------------------
run "$BERTH" --address "$T/nowhere.sock" fsck
expect_rc 2 "fsck that cannot reach the daemon exits 2"
finish
