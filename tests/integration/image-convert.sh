#!/bin/bash
# berth image convert: busybox (and the zstd and multiarch test images) from
# a local docker-registry, pulled into a private berthd, converted to
# eStargz, plain tar and zstd; every result is checked byte by byte with
# Python (eStargz: gzip members, the 51-byte footer and its TOC offset, the
# TOC naming bin/busybox and hashing to the annotation; every format: the
# config's diff_ids are the sha256 of the uncompressed layers, media types
# and annotations as containerd's converters write them) and run under
# overlayfs and native.  Then what must fail does, with exit 1 (or 2 for
# usage) and a message saying what and why: an unknown image, layer blobs
# missing from the store, a layer that is not gzip, one that is not a tar,
# one whose tar does not match its diff_id, a platform the index has not
# pulled, unknown flags, two formats.  A failed convert leaves no lease;
# `berth gc` after the conversions keeps everything the new images need.
# When containerd and ctr are installed, the same conversions against
# containerd must give the same digests, and ctr must run the results.
#
# Tools: docker-registry, skopeo, python3, zstd (scripts/deps.sh installs them).
. "$(dirname "$0")/lib.sh"
need_root
for tool in docker-registry skopeo python3 zstd; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)

start_test_registry --only busybox,zstd,multiarch

cfg=()
for plug in namespaces oci; do
  cfg+=("[plugins.\"io.berth.runtime.v1.$plug\"]")
  [ "$plug" = namespaces ] && [ -x "$top_builddir/berth-runtime" ] && cfg+=("  binary = \"$top_builddir/berth-runtime\"")
  for s in "$top_builddir/shim/berth-shim" "$top_builddir/berth-shim"; do
    [ -x "$s" ] && { cfg+=("  shim_binary = \"$s\""); break; }
  done
done
FUSE_BIN=$top_builddir/plugins/snapshotters/fuse/berth-fuse
cfg+=('[plugins."io.berth.snapshotter.v1.fuse"]' "  binary = \"$FUSE_BIN\"")
D=$T/d
start_berthd "$D" "${cfg[@]}" || { stop_registry; finish; }
BLOBS=$D/root/io.berth.content.v1.local/blobs/sha256
B=("$BERTH" --address "$SOCK")
final_cleanup () {
  local ids
  ids=$("${B[@]}" containers ls -q 2>/dev/null)
  for id in $ids; do "${B[@]}" rm -f "$id" >/dev/null 2>&1; done
  stop_registry
  cleanup
}
trap final_cleanup EXIT
"${B[@]}" plugins ls | grep -q 'io.berth.runtime.v1.* ok' || skip "no runtime plugin loads in berthd"

IMG=$REG/busybox:latest
HAVE_FUSE=
"${B[@]}" plugins ls | grep -q 'snapshotter.v1 *fuse .* ok' && HAVE_FUSE=1
for i in "$IMG" "$REG/zstd:latest" "$REG/multiarch:latest"; do
  run "${B[@]}" pull --plain-http "$i"
  expect_rc 0 "pull $i"
done

# runs IMAGE SNAPSHOTTER: `berth run` prints hi.
runs () {
  echo "+ ${B[*]} run --rm --pull never --snapshotter $2 $1 echo hi"
  out=$(timeout 60 "${B[@]}" run --rm --pull never --snapshotter "$2" "$1" echo hi 2>&1)
  rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  | /'
  if [ "$rc" = 0 ] && [ "$out" = hi ]; then pass "$1 runs under $2"; else fail "$1 under $2: exit $rc"; fi
}

# check_image NAME FORMAT [SOURCE]: the image's documents and blobs, read
# from the store, are what FORMAT says (see check.py).
cat > "$T/check.py" <<'EOF'
import gzip, hashlib, io, json, os, struct, subprocess, sys, tarfile, zlib
blobs, name, fmt, target = sys.argv[1:5]  # argv[5]: the source, for the record
def blob(d):
    return open(os.path.join(blobs, d.split(':', 1)[1]), 'rb').read()
def sha(b):
    return 'sha256:' + hashlib.sha256(b).hexdigest()
errors = []
def check(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what)
    if not cond:
        errors.append(what)
def manifest_of(digest, doc):
    if doc.get('mediaType') == 'application/vnd.oci.image.index.v1+json':
        return [(m['digest'], json.loads(blob(m['digest']))) for m in doc['manifests']]
    return [(digest, doc)]
top = json.loads(blob(target))
for mdigest, man in manifest_of(target, top):
    check(man.get('mediaType') == 'application/vnd.oci.image.manifest.v1+json', name + ': an OCI manifest')
    check(man['config']['mediaType'] == 'application/vnd.oci.image.config.v1+json', name + ': an OCI config')
    cfg_bytes = blob(man['config']['digest'])
    check(sha(cfg_bytes) == man['config']['digest'] and len(cfg_bytes) == man['config']['size'],
          name + ': the config blob matches its descriptor')
    cfg = json.loads(cfg_bytes)
    diff_ids = cfg['rootfs']['diff_ids']
    check(len(diff_ids) == len(man['layers']), name + ': one diff_id per layer')
    for i, l in enumerate(man['layers']):
        b = blob(l['digest'])
        what = '%s layer %d (%s)' % (name, i + 1, l['digest'][:19])
        check(sha(b) == l['digest'] and len(b) == l['size'], what + ': blob matches its descriptor')
        ann = l.get('annotations') or {}
        if fmt == 'estargz':
            check(l['mediaType'] == 'application/vnd.oci.image.layer.v1.tar+gzip', what + ': tar+gzip')
            f = b[-51:]
            check(f[:4] == b'\x1f\x8b\x08\x04', what + ': the footer is a gzip member with FEXTRA')
            check(struct.unpack('<H', f[10:12])[0] == 26 and f[12:14] == b'SG'
                  and struct.unpack('<H', f[14:16])[0] == 22 and f[32:38] == b'STARGZ',
                  what + ": the footer's extra field is SG, %016x + STARGZ")
            toc_off = int(f[16:32], 16)
            check(0 < toc_off < len(b) - 51, what + ': the TOC offset %d lies in the blob' % toc_off)
            z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            toc_tar = z.decompress(b[toc_off:])
            check(z.eof and len(z.unused_data) == 51, what + ': the TOC is one gzip member before the footer')
            tf = tarfile.open(fileobj=io.BytesIO(toc_tar))
            toc_bytes = tf.extractfile('stargz.index.json').read()
            toc = json.loads(toc_bytes)
            names = [e['name'] for e in toc['entries']]
            check('bin/busybox' in names, what + ': the TOC lists bin/busybox')
            check(ann.get('containerd.io/snapshot/stargz/toc.digest') == sha(toc_bytes),
                  what + ': toc.digest annotation = sha256 of the TOC')
            tar = gzip.decompress(b)
            check(ann.get('io.containers.estargz.uncompressed-size') == str(len(tar)),
                  what + ': uncompressed-size annotation = %d' % len(tar))
            members = tarfile.open(fileobj=io.BytesIO(tar)).getnames()
            check('bin/busybox' in members and members[-1] == 'stargz.index.json',
                  what + ': an ordinary tar.gz with bin/busybox, the TOC last')
            prefetch = os.environ.get('PREFETCH')
            if prefetch:
                check(names.index(prefetch) < names.index('.prefetch.landmark'),
                      what + ': %s comes before .prefetch.landmark' % prefetch)
        elif fmt == 'uncompressed':
            check(l['mediaType'] == 'application/vnd.oci.image.layer.v1.tar', what + ': tar')
            tar = b
            check(l['digest'] == diff_ids[i], what + ': its digest is its diff_id')
        else:
            check(l['mediaType'] == 'application/vnd.oci.image.layer.v1.tar+zstd', what + ': tar+zstd')
            check(b[:4] == b'\x28\xb5\x2f\xfd', what + ': zstd magic')
            tar = subprocess.run(['zstd', '-dc'], input=b, stdout=subprocess.PIPE, check=True).stdout
        if fmt != 'estargz':
            check(not any(k.startswith('containerd.io/snapshot/stargz') for k in ann), what + ': no eStargz annotation')
            check('bin/busybox' in tarfile.open(fileobj=io.BytesIO(tar)).getnames(), what + ': a tar with bin/busybox')
        check(sha(tar) == diff_ids[i], what + ': diff_id = sha256 of the uncompressed layer (%s)' % diff_ids[i][:19])
print('%d error(s)' % len(errors))
sys.exit(1 if errors else 0)
EOF
target_of () { "${B[@]}" images ls --format json "name==$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["target"]["digest"])'; }
check_image () { # NAME FORMAT SOURCE
  local t s
  t=$(target_of "$1"); s=$(target_of "$3")
  run python3 "$T/check.py" "$BLOBS" "$1" "$2" "$t" "$s"
  expect_rc 0 "$1 is a $2 image, checked by Python"
}

# --- eStargz ------------------------------------------------------------------
run "${B[@]}" image convert --estargz --snapshotter overlayfs --snapshotter native "$IMG" bb-estargz
expect_rc 0 "convert --estargz"
expect_contains "layer 1/1" "progress names the layer"
digest=$(printf '%s\n' "$out" | tail -1)
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] && pass "the last line is the new digest" || fail "last line: $digest"
[ "$(target_of bb-estargz)" = "$digest" ] && pass "bb-estargz's target is that digest" || fail "target differs"
check_image bb-estargz estargz "$IMG"
runs bb-estargz overlayfs
runs bb-estargz native
# The fuse snapshotter serves the converted layer from its blob (the unpack
# passes the remote-snapshotter labels and accepts AlreadyExists).
if [ -n "$HAVE_FUSE" ]; then
  run "${B[@]}" image convert --estargz --snapshotter fuse "$IMG" bb-estargz
  expect_rc 0 "convert --estargz --snapshotter fuse"
  grep -q " $D/root/io.berth.snapshotter.v1.fuse/snapshots/[0-9]*/fs .* - fuse.berth " /proc/self/mountinfo &&
    pass "the converted layer is served over FUSE" || fail "no fuse.berth mount for the converted layer"
  runs bb-estargz fuse
else
  echo "note: the fuse snapshotter is not ok here; its conversion checks are left out"
fi

echo "+ ${B[*]} images convert --estargz --estargz-prefetch bin/busybox,etc/passwd --estargz-chunk-size 64K --format json -q $IMG bb-prefetch"
"${B[@]}" images convert --estargz --estargz-prefetch bin/busybox,etc/passwd --estargz-chunk-size 64K \
  --format json -q "$IMG" bb-prefetch > "$T/prefetch.json" 2> "$T/prefetch.err"
rc=$?
expect_rc 0 "images convert with prefetch, chunk size, --format json, -q"
[ -s "$T/prefetch.err" ] && fail "-q printed on stderr: $(cat "$T/prefetch.err")" || pass "-q prints no progress"
run python3 - "$T/prefetch.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
l = r['manifests'][0]['layers'][0]
assert r['format'] == 'estargz' and r['image'] == 'bb-prefetch', r
assert l['converted'] and l['tocDigest'].startswith('sha256:') and l['diffID'].startswith('sha256:'), l
assert r['unpacked'] == ['overlayfs'], r['unpacked']
print('json ok:', r['target']['digest'])
EOF
expect_rc 0 "the JSON report has the target, layers and what was unpacked"
PREFETCH=bin/busybox check_image bb-prefetch estargz "$IMG"
runs bb-prefetch overlayfs

# --- uncompressed, zstd -----------------------------------------------------------
run "${B[@]}" images convert --uncompressed --snapshotter overlayfs --snapshotter native "$IMG" bb-tar
expect_rc 0 "convert --uncompressed"
check_image bb-tar uncompressed "$IMG"
cfg_src=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$BLOBS/$(target_of "$IMG" | cut -d: -f2)")
cfg_tar=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$BLOBS/$(target_of bb-tar | cut -d: -f2)")
[ "$cfg_src" = "$cfg_tar" ] && pass "uncompressed keeps the config (same diff_ids)" || fail "config changed: $cfg_src -> $cfg_tar"
runs bb-tar overlayfs
runs bb-tar native

run "${B[@]}" images convert --zstd --zstd-level 9 --snapshotter overlayfs --snapshotter native "$IMG" bb-zstd
expect_rc 0 "convert --zstd"
check_image bb-zstd zstd "$IMG"
runs bb-zstd overlayfs
runs bb-zstd native
# Framed zstd (the default: a frame per 4 MiB of tar; here 256K so that
# busybox's layer has several): every frame a reader can start at.
run "${B[@]}" images convert --zstd --zstd-frame-size 256K --snapshotter overlayfs ${HAVE_FUSE:+--snapshotter fuse} \
  "$IMG" bb-zstd-frames
expect_rc 0 "convert --zstd --zstd-frame-size 256K"
check_image bb-zstd-frames zstd "$IMG"
zlayer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"].split(":")[1])' \
  "$BLOBS/$(target_of bb-zstd-frames | cut -d: -f2)")
zsize=$(zstd -dc "$BLOBS/$zlayer" | wc -c)
frames=$(zstd -l "$BLOBS/$zlayer" 2>/dev/null | awk 'NR == 2 { print $1 }')
# A frame ends at the first read of the tar that reaches 256K: between
# size/256K and ceil(size/256K) frames.
lo=$((zsize / 262144)) hi=$(((zsize + 262143) / 262144))
echo "  layer $zlayer: $frames frame(s) for $zsize bytes of tar"
[ "${frames:-0}" -ge "$lo" ] && [ "${frames:-0}" -le "$hi" ] && [ "$lo" -ge 2 ] \
  && pass "--zstd-frame-size 256K: $frames frames for $zsize bytes of tar" \
  || fail "--zstd-frame-size 256K: ${frames:-?} frames for $zsize bytes of tar, expected $lo to $hi"
runs bb-zstd-frames overlayfs
[ -n "$HAVE_FUSE" ] && runs bb-zstd-frames fuse
run "${B[@]}" images convert --zstd --zstd-frame-size 1K "$IMG" bb-zstd-bad
expect_rc 2 "--zstd-frame-size 1K is refused"
expect_contains "at least 64K" "the error says the least frame size"

# Between formats: a zstd source to eStargz, eStargz back to plain tar.
run "${B[@]}" images convert --estargz "$REG/zstd:latest" zstd-estargz
expect_rc 0 "convert a zstd image to eStargz"
check_image zstd-estargz estargz "$REG/zstd:latest"
runs zstd-estargz overlayfs
run "${B[@]}" images convert --uncompressed bb-estargz estargz-tar
expect_rc 0 "convert eStargz to uncompressed"
check_image estargz-tar uncompressed bb-estargz
run "${B[@]}" images convert --estargz bb-estargz estargz-again
expect_rc 0 "convert eStargz to eStargz"
expect_contains "already estargz, kept" "an eStargz layer is kept as it is"
run "${B[@]}" images convert --zstd bb-zstd zstd-again
expect_contains "already zstd, kept" "a zstd layer is kept as it is"

# An index: the host's manifest only; a platform it has not pulled fails.
run "${B[@]}" images convert --estargz "$REG/multiarch:latest" multi-estargz
expect_rc 0 "convert an index"
python3 - "$BLOBS" "$(target_of multi-estargz)" <<'EOF' && pass "the new index holds the host manifest only" || fail "the new index"
import json, os, sys
idx = json.load(open(os.path.join(sys.argv[1], sys.argv[2].split(':')[1])))
assert idx['mediaType'] == 'application/vnd.oci.image.index.v1+json', idx
assert len(idx['manifests']) == 1 and idx['manifests'][0]['platform']['os'] == 'linux', idx
EOF
check_image multi-estargz estargz "$REG/multiarch:latest"
runs multi-estargz overlayfs
run "${B[@]}" images convert --estargz --all-platforms "$REG/multiarch:latest" multi-all
expect_rc 1 "--all-platforms over platforms not pulled"
expect_contains "not in the content store" "and says which document is missing"
run "${B[@]}" images convert --zstd --platform linux/s390x "$REG/multiarch:latest" multi-none
expect_rc 1 "a platform the index does not have"
expect_contains "no manifest for the platforms asked for" "and says so"

# TARGET = SOURCE: allowed (containerd's converter overwrites too).
run "${B[@]}" tag "$IMG" bb-self
run "${B[@]}" images convert --zstd bb-self bb-self
expect_rc 0 "convert an image onto itself"
[ "$(target_of bb-self)" = "$(printf '%s\n' "$out" | tail -1)" ] && pass "bb-self now has the new target" || fail "bb-self target"
check_image bb-self zstd "$IMG"
runs bb-self overlayfs

# --- bad input --------------------------------------------------------------------
run "${B[@]}" images convert --estargz "$REG/nothere:latest" x
expect_rc 1 "an unknown source"
expect_contains "image \`$REG/nothere:latest\`: not found" "says the image is not found"
run "${B[@]}" images convert --estargz --zstd "$IMG" x
expect_rc 2 "two formats"
expect_contains "choose one format" "says to choose one"
run "${B[@]}" images convert "$IMG" x
expect_rc 2 "no format"
run "${B[@]}" images convert --estargz --frobnicate "$IMG" x
expect_rc 2 "an unknown flag"
expect_contains "unknown option --frobnicate" "names the flag"
run "${B[@]}" images convert --zstd --estargz-prefetch bin/sh "$IMG" x
expect_rc 2 "--estargz-prefetch without --estargz"
run "${B[@]}" images convert --estargz --estargz-chunk-size 12Q "$IMG" x
expect_rc 2 "a malformed chunk size"
run "${B[@]}" images convert --estargz "$IMG"
expect_rc 2 "one operand"
run "${B[@]}" images convert --estargz --platform linux//x "$IMG" x
expect_rc 2 "a malformed platform"

# Layer blobs missing: pulled in another namespace, then its layer record removed.
run "${B[@]}" -n partial pull --plain-http --skip-unpack "$IMG"
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$BLOBS/$(target_of "$IMG" | cut -d: -f2)")
run "${B[@]}" -n partial content rm "$layer"
run "${B[@]}" -n partial images convert --estargz "$IMG" x
expect_rc 1 "a source whose layer blob is missing"
expect_contains "not in the content store" "says the layer is not in the store"
expect_contains "$layer" "and names it"

# Layers that are not what they claim: an OCI layout pushed as it is.
python3 - "$T/bad" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(out + '/blobs/sha256')
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open('%s/blobs/sha256/%s' % (out, d), 'wb').write(b)
    return 'sha256:' + d, len(b)
def tar_of(files):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.PAX_FORMAT) as tf:
        for n, data in files:
            ti = tarfile.TarInfo(n); ti.size = len(data); ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return bio.getvalue()
good = tar_of([('hello.txt', b'hello\n')])
cases = {
    'notgzip': (os.urandom(4096), hashlib.sha256(b'x').hexdigest()),
    'nottar': (gzip.compress(b'this is not a tar archive\n' * 50), None),
    'wrongdiff': (gzip.compress(good), hashlib.sha256(b'something else').hexdigest()),
}
index = {'schemaVersion': 2, 'manifests': []}
for tag, (layer, diff) in cases.items():
    if diff is None:
        diff = hashlib.sha256(gzip.decompress(layer)).hexdigest()
    ld, ls = put(layer)
    cfg = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {},
                      'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + diff]}}).encode()
    cd, cs = put(cfg)
    man = json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
                      'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': cd, 'size': cs},
                      'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar+gzip', 'digest': ld, 'size': ls}]}).encode()
    md, ms = put(man)
    index['manifests'].append({'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': md, 'size': ms,
                               'annotations': {'org.opencontainers.image.ref.name': tag}})
open(out + '/index.json', 'w').write(json.dumps(index))
open(out + '/oci-layout', 'w').write('{"imageLayoutVersion": "1.0.0"}')
EOF
for tag in notgzip nottar wrongdiff; do
  echo "+ skopeo copy oci:$T/bad:$tag docker://$REG/bad-$tag:latest"
  skopeo copy --preserve-digests --dest-tls-verify=false "oci:$T/bad:$tag" "docker://$REG/bad-$tag:latest" >/dev/null 2>&1 \
    || fail "pushing bad-$tag"
  run "${B[@]}" pull --plain-http --skip-unpack "$REG/bad-$tag:latest"
done
for fmt in estargz zstd; do
  run "${B[@]}" images convert --$fmt "$REG/bad-notgzip:latest" x
  expect_rc 1 "--$fmt: a layer that is not gzip"
  expect_contains "not a valid gzip stream" "says it is not gzip"
  run "${B[@]}" images convert --$fmt "$REG/bad-nottar:latest" x
  expect_rc 1 "--$fmt: a layer that is not a tar"
  expect_contains "tar" "says it is not a tar"
  run "${B[@]}" images convert --$fmt "$REG/bad-wrongdiff:latest" x
  expect_rc 1 "--$fmt: a layer whose tar does not match its diff_id"
  expect_contains "diff_id" "says the diff_id does not match"
done
run "${B[@]}" images ls -q
if printf '%s\n' "$out" | grep -qx x; then fail "a failed convert created image x"; else pass "no image was created by a failed convert"; fi
run "${B[@]}" leases ls
expect_not_contains "berth-convert-" "no convert lease is left behind"

# --- GC keeps what the new images need ---------------------------------------------
run "${B[@]}" gc
expect_rc 0 "berth gc"
run python3 "$T/check.py" "$BLOBS" bb-estargz estargz "$(target_of bb-estargz)" "$(target_of "$IMG")"
expect_rc 0 "after gc, bb-estargz's blobs are all there"
runs bb-estargz native
runs bb-zstd overlayfs

# --- containerd as the referee (when installed) ---------------------------------------
# The same client against containerd 1.6: the conversions give the same
# digests as under berthd (they are reproducible) and ctr runs the results.
CTRD=$(command -v containerd || true)
if [ -n "$CTRD" ] && [ -n "$CTR" ]; then
  cd_dir=$T/containerd
  mkdir -p "$cd_dir"
  CSOCK=$cd_dir/containerd.sock
  printf '%s\n' 'version = 2' "root = \"$cd_dir/root\"" "state = \"$cd_dir/state\"" \
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "  address = \"$CSOCK\"" \
    '[ttrpc]' "  address = \"$CSOCK.ttrpc\"" '[debug]' '  address = ""' '[metrics]' '  address = ""' \
    > "$cd_dir/config.toml"
  echo "+ $CTRD --config $cd_dir/config.toml &"
  "$CTRD" --config "$cd_dir/config.toml" > "$cd_dir/log" 2>&1 &
  CTRD_PID=$!
  BERTHD_PIDS+=("$CTRD_PID") # stopped by lib.sh's cleanup, by pid
  for _ in $(seq 100); do "$CTR" --address "$CSOCK" version >/dev/null 2>&1 && break; sleep 0.1; done
  run "$CTR" --address "$CSOCK" images pull --plain-http "$IMG"
  expect_rc 0 "containerd: ctr pull busybox"
  for fmt in estargz zstd uncompressed; do
    want=$(target_of "bb-$([ $fmt = uncompressed ] && echo tar || echo $fmt)")
    [ $fmt = zstd ] && want=$(target_of bb-self) # bb-zstd used --zstd-level 9
    run "$BERTH" --address "$CSOCK" images convert --$fmt "$IMG" "c-$fmt"
    expect_rc 0 "containerd: convert --$fmt"
    got=$(printf '%s\n' "$out" | tail -1)
    [ "$got" = "$want" ] && pass "containerd: --$fmt gives the digest berthd gave ($got)" \
      || fail "containerd: --$fmt gives $got, berthd gave $want"
    run timeout 60 "$CTR" --address "$CSOCK" run --rm "c-$fmt" "t-$fmt" echo hi
    [ "$rc" = 0 ] && [ "$out" = hi ] && pass "containerd: ctr runs c-$fmt" || fail "containerd: ctr run c-$fmt: exit $rc"
  done
  run "$CTR" --address "$CSOCK" leases ls -q
  [ -z "$out" ] && pass "containerd: no lease left" || fail "containerd: leases left: $out"
else
  echo "containerd/ctr not installed: the containerd cross-check is not run"
fi

# --- completion ----------------------------------------------------------------------
run "$BERTH" __complete images ""
expect_contains "convert" "completion offers images convert"
run "$BERTH" __complete image convert --est
expect_contains "--estargz-prefetch" "and its flags"

finish
