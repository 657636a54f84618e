#!/bin/bash
# Hostile layers end to end: images whose second layer is bad, pushed to a
# real docker-registry and pulled into berthd by `berth pull` (daemon-side
# unpack) and by `ctr images pull` (client-side: Snapshots.Prepare +
# Diff.Apply + Commit), with each snapshotter.  Images (written here as OCI
# layouts by python3, pushed with skopeo):
#
#   escape      layer 2 holds `good` then `../evil`
#   sparsebomb  layer 2 holds a PAX sparse file declaring 4 EiB, no data
#
# For every pull: it fails naming the entry; no snapshot is left but the
# committed first layer (no active/extract snapshot, no extra directory in
# the snapshotter's root); nothing named `evil`, `big.img` or `good` exists
# under berthd's root and state; and a good image still pulls afterwards.
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in docker-registry skopeo python3; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)

# write_image DIR KIND: an OCI layout with a good first layer and a bad
# second one; prints nothing.
write_image () {
  python3 - "$1" "$2" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile

out, kind = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)

def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)

def add(t, name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1700000000
    ti.mode = 0o644
    for k, v in kw.items():
        setattr(ti, k, v)
    t.addfile(ti, io.BytesIO(data))

def layer(fill):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        fill(t)
    tar = raw.getvalue()
    return tar, gzip.compress(tar, mtime=0)

def good(t):
    add(t, "etc/", type=tarfile.DIRTYPE, mode=0o755)
    add(t, "etc/hostname", b"hostile\n")

def escape(t):
    add(t, "good", b"written before the bad entry\n")
    add(t, "../evil", b"must never exist\n")

def sparsebomb(t):
    # PAX 1.0 sparse: the map block ("1 region at 0, 0 bytes") is the data.
    ti = tarfile.TarInfo("GNUSparseFile.0/big.img")
    ti.size = 512
    ti.mtime = 1700000000
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                      "GNU.sparse.name": "big.img", "GNU.sparse.realsize": str(1 << 62)}
    t.addfile(ti, io.BytesIO(b"1\n0\n0\n".ljust(512, b"\0")))

layers = [layer(good), layer({"escape": escape, "sparsebomb": sparsebomb}[kind])]
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Cmd": ["/bin/true"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest() for tar, _ in layers]},
}).encode()
cd, cs = blob(config)
descs = []
for _, gz in layers:
    d, s = blob(gz)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": descs,
}).encode()
md, ms = blob(manifest)
json.dump({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
    "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, open(os.path.join(out, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(out, "oci-layout"), "w"))
EOF
}

REGDIR=$T/registry
echo "+ tests/registry/start.sh $REGDIR"
REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
stop_registry () { bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1; }
trap 'stop_registry; cleanup' EXIT

# kind -> what the error must name
declare -A NAMES=([escape]='../evil' [sparsebomb]='big.img')
declare -A WHY=([escape]='path escapes the root' [sparsebomb]='exceeds the limit of 1 TiB (unpack max_apparent_size)')
for kind in escape sparsebomb good; do
  k=$kind; [ "$kind" = good ] && k=escape
  echo "+ write_image $T/img-$kind $k"
  write_image "$T/img-$kind" "$k" || { fail "writing the $kind image"; finish; }
done
# `good`: the first layer alone, to pull after the failures.
python3 - "$T/img-good" <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]
path = lambda dg: os.path.join(d, "blobs", "sha256", dg.split(":")[1])
idx = json.load(open(os.path.join(d, "index.json")))
man = json.load(open(path(idx["manifests"][0]["digest"])))
cfg = json.load(open(path(man["config"]["digest"])))
man["layers"] = man["layers"][:1]
cfg["rootfs"]["diff_ids"] = cfg["rootfs"]["diff_ids"][:1]
def put(obj):
    b = json.dumps(obj).encode()
    dg = "sha256:" + hashlib.sha256(b).hexdigest()
    open(path(dg), "wb").write(b)
    return dg, len(b)
man["config"]["digest"], man["config"]["size"] = put(cfg)
idx["manifests"][0]["digest"], idx["manifests"][0]["size"] = put(man)
json.dump(idx, open(os.path.join(d, "index.json"), "w"))
EOF
for kind in escape sparsebomb good; do
  run skopeo copy --dest-tls-verify=false "oci:$T/img-$kind:latest" "docker://$REG/$kind:latest"
  [ "$rc" = 0 ] || { fail "pushing the $kind image"; finish; }
done

start_berthd "$T/d" || finish
C=("$CTR" --address "$SOCK")
B=("$BERTH" --address "$SOCK")

# snapshot_dirs S: directories the plugin holds under its root.
snapshot_dirs () {
  local dir=$T/d/root/io.berth.snapshotter.v1.$1/snapshots
  if [ -d "$dir" ]; then find "$dir" -mindepth 1 -maxdepth 1 | wc -l; else echo 0; fi
}

# check_left S NS WHAT: after a failed pull, only committed snapshots remain,
# one directory each, and nothing the bad layers name exists anywhere.
check_left () {
  local s=$1 ns=$2 what=$3
  run "${C[@]}" -n "$ns" snapshots --snapshotter "$s" ls
  local active committed
  active=$(printf '%s\n' "$out" | awk 'NR > 1 && NF > 0 && $NF != "Committed"' | wc -l)
  committed=$(printf '%s\n' "$out" | awk 'NR > 1 && $NF == "Committed"' | wc -l)
  [ "$active" = 0 ] && pass "$what: no active (extract) snapshot is left" \
    || fail "$what: $active snapshot(s) left that are not committed"
  [ "$committed" = 1 ] && pass "$what: only the good first layer is committed" \
    || fail "$what: $committed committed snapshots, expected only the first layer's"
  run "${B[@]}" -n "$ns" snapshots ls --snapshotter "$s"
  expect_not_contains "Active" "$what: berth snapshots ls shows no active snapshot"
  local left
  left=$(find "$T/d" \( -name evil -o -name big.img -o -name good \) -print 2>/dev/null)
  [ -z "$left" ] && pass "$what: nothing named evil, big.img or good exists in berthd's directories" \
    || fail "$what: left behind: $left"
}

tested=0
for S in overlayfs native; do
  st=$("${B[@]}" plugins ls 2>/dev/null | awk -v id="$S" '$1 == "io.berth.snapshotter.v1" && $2 == id { print $4 }')
  if [ "$st" != ok ]; then
    echo "SKIP: snapshotter $S is ${st:-missing}"
    continue
  fi
  tested=$((tested + 1))
  echo "=== snapshotter $S"
  for kind in escape sparsebomb; do
    ns=b-$S-$kind
    before=$(snapshot_dirs "$S")
    run "${B[@]}" -n "$ns" pull --plain-http --snapshotter "$S" "$REG/$kind:latest"
    [ "$rc" != 0 ] && pass "$S: berth pull $kind fails (exit $rc)" || fail "$S: berth pull $kind succeeded"
    expect_contains "layer entry \`${NAMES[$kind]}\`" "$S: berth pull $kind names the entry"
    expect_contains "${WHY[$kind]}" "$S: berth pull $kind says why"
    check_left "$S" "$ns" "$S: berth pull $kind"
    after=$(snapshot_dirs "$S")
    [ "$after" -le $((before + 1)) ] && pass "$S: berth pull $kind left at most the first layer's directory" \
      || fail "$S: berth pull $kind: $before snapshot directories before, $after after"

    ns=c-$S-$kind
    before=$(snapshot_dirs "$S")
    run "${C[@]}" -n "$ns" images pull --plain-http --snapshotter "$S" "$REG/$kind:latest"
    [ "$rc" != 0 ] && pass "$S: ctr images pull $kind fails (exit $rc)" || fail "$S: ctr images pull $kind succeeded"
    expect_contains "${NAMES[$kind]}" "$S: ctr images pull $kind names the entry"
    check_left "$S" "$ns" "$S: ctr images pull $kind"
    after=$(snapshot_dirs "$S")
    [ "$after" -le $((before + 1)) ] && pass "$S: ctr images pull $kind left at most the first layer's directory" \
      || fail "$S: ctr images pull $kind: $before snapshot directories before, $after after"
  done
  # The daemon still works: the good image pulls both ways.
  run "${B[@]}" -n "b-$S-good" pull --plain-http --snapshotter "$S" "$REG/good:latest"
  expect_rc 0 "$S: berth pull of a good image after the failures"
  run "${C[@]}" -n "c-$S-good" images pull --plain-http --snapshotter "$S" "$REG/good:latest"
  expect_rc 0 "$S: ctr images pull of a good image after the failures"
done
[ "$tested" -gt 0 ] || skip "no snapshotter is usable here"
finish
