#!/bin/bash
# The fuse snapshotter's side of lazy eStargz pulls (/work/notes/lazy-contract.md),
# driven straight through the snapshots API of a real berthd: a Prepare with
# the remote-snapshotter labels the core's pull sends (here written by hand,
# sent by curl as a gRPC call over berthd's socket: ctr cannot set labels),
# real docker-registry, real /dev/fuse.  busybox converted to eStargz by a
# build berthd (berth image convert --estargz) is the lazy layer; its blob
# reaches the test's berthd through tests/integration/throttle-proxy.py
# (RATE bytes/s per connection) so that it is still arriving while the
# test looks.
#
#  1. plugins ls -d: fuse has the capability remote-snapshot; with
#     `lazy = false` it has not.
#  2. fallbacks, each an ordinary active snapshot (gRPC OK, no fuse mount)
#     and a log line saying why: a blob that is not eStargz (busybox's
#     plain gzip layer), a registry that does not answer (a closed port), a
#     TOC that does not hash to the manifest's toc.digest annotation.
#  3. the eStargz layer: Prepare answers ALREADY_EXISTS in < 5 s while the
#     blob needs >= 6 s; the target is committed; it is a fuse.berth mount;
#     snapshots/<id>/remote holds no header value; files read through the
#     mount equal the layer's tar.
#  4. its server SIGKILLed before the blob is complete: the plugin's watcher
#     serves it again within 15 s without a mount asking (log); a View of
#     the target works and the files are right.
#  5. kill -9 berthd and the server, start berthd: the layer is served again
#     lazily at init.
#  6. (bounded) the blob completes: the plugin publishes, the core adopts it
#     (ctr content ls lists it), the plugin indexes it and drops `remote`
#     and its cache; a killed server is then served again from the store's
#     blob.
#  7. a second berthd: a layer whose diffID label lies completes; the
#     plugin's index of the cache refuses it (log names both digests), so it
#     is not published (the store does not get it) and stays served from
#     its cache, also after its server is killed with the registry gone.
#  8. remove: no mount, no server, no snapshot directory left.
#
# About 40-60 s.  Environment: top_builddir, top_srcdir, BERTH_TEST_IMAGES,
# BERTH_FUSE, LAZY_PLUGIN_RATE (bytes/s, default: the blob in ~8 s).
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
source "$(dirname "$0")/../../integration/lib.sh"
source "$(dirname "$0")/lib-lazy.sh" # need_fuse, servers_under, fuse_mounts, fuse_final_cleanup
need_root
need_ctr
for tool in docker-registry skopeo python3 curl tar sha256sum; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
need_fuse
curl --version | grep -qw HTTP2 || skip "curl has no HTTP/2 (the gRPC calls need it)"
PROXY_PID=

trap fuse_final_cleanup EXIT
start_test_registry --only busybox

# FUSE_CFG: need_fuse (lib-lazy.sh), the plugin with binary = BERTH_FUSE.

echo "=== 0. a data layer (16 MiB) as eStargz (berth image convert in a build berthd), pushed as $REG/esgz:latest"
python3 - "$T/src" <<'EOF' || { fail "making the source image"; finish; }
import gzip, hashlib, io, json, os, platform, sys, tarfile
dst = sys.argv[1]
os.makedirs (os.path.join (dst, "blobs", "sha256"))
def put (b):
    d = "sha256:" + hashlib.sha256 (b).hexdigest ()
    open (os.path.join (dst, "blobs", *d.split (":")), "wb").write (b)
    return d, len (b)
files = [("data/greeting", b"lazy-plugin: hello\n"), ("data/big.bin", os.urandom (16 << 20))]
files += [("data/small/%02d" % i, os.urandom (1000 + 997 * i)) for i in range (20)]
tbuf = io.BytesIO ()
with tarfile.open (fileobj=tbuf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for d in ("data", "data/small"):
        ti = tarfile.TarInfo (d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1700000000
        tf.addfile (ti)
    for name, data in files:
        ti = tarfile.TarInfo (name); ti.size = len (data); ti.mode = 0o644; ti.mtime = 1700000000
        tf.addfile (ti, io.BytesIO (data))
tar = tbuf.getvalue ()
ld, ls = put (gzip.compress (tar, compresslevel=1, mtime=0))
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get (platform.machine (), platform.machine ())
cfg = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256 (tar).hexdigest ()]}}
cd, cs = put (json.dumps (cfg, sort_keys=True).encode ())
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]}
md, ms = put (json.dumps (man, sort_keys=True).encode ())
json.dump ({"schemaVersion": 2, "manifests": [{"mediaType": man["mediaType"], "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]},
           open (os.path.join (dst, "index.json"), "w"))
open (os.path.join (dst, "oci-layout"), "w").write ('{"imageLayoutVersion":"1.0.0"}')
EOF
run skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$T/src:latest" "docker://$REG/src:latest"
[ "$rc" = 0 ] || { fail "pushing src"; finish; }
start_berthd "$T/b" || finish
BB=("$BERTH" --address "$SOCK")
run "${BB[@]}" pull -q --plain-http --skip-unpack "$REG/src:latest"
expect_rc 0 "build berthd: pull src"
run "${BB[@]}" image convert --estargz "$REG/src:latest" esgz
expect_rc 0 "build berthd: berth image convert --estargz"
# Export esgz as a layout (lib-lazy.sh); print "DIGEST SIZE TOC DIFFID
# MEDIATYPE" of its layer and "DIGEST SIZE" of busybox's (plain gzip) layer.
lazy_export esgz "$T/esgz"
facts=$(python3 - "$T/esgz" "$IMAGES/busybox" <<'EOF'
import json, os, sys
dst, plain = sys.argv[1], sys.argv[2]
def blob (top, d): return os.path.join (top, "blobs", *d.split (":"))
def manifest (top): return json.load (open (blob (top, json.load (open (os.path.join (top, "index.json")))["manifests"][0]["digest"])))
m = manifest (dst)
c = json.load (open (blob (dst, m["config"]["digest"])))
l = m["layers"][0]
pm = manifest (plain)
print (l["digest"], l["size"], l["annotations"]["containerd.io/snapshot/stargz/toc.digest"], c["rootfs"]["diff_ids"][0],
       l["mediaType"], pm["layers"][0]["digest"], pm["layers"][0]["size"])
EOF
)
read -r LAYER SIZE TOC DIFF_ID MT PLAIN PLAIN_SIZE <<<"$facts"
[ -n "${PLAIN_SIZE:-}" ] || { fail "exporting the eStargz image"; finish; }
echo "  eStargz layer $LAYER ($SIZE B, $MT), TOC $TOC, diffID $DIFF_ID; plain layer $PLAIN"
run skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$T/esgz:latest" "docker://$REG/esgz:latest"
[ "$rc" = 0 ] || { fail "pushing esgz"; finish; }
stop_berthd "$BERTHD_PID"
# What the layer holds, from its tar; the small files are read while the blob is still arriving.
mkdir -p "$T/want"
tar -xzf "$T/esgz/blobs/sha256/${LAYER#sha256:}" -C "$T/want" 2>/dev/null
ALL_FILES=$(cd "$T/want" && find data -type f | sort)
SMALL_FILES=$(cd "$T/want" && find data -type f -size -1000k | sort)
[ -n "$SMALL_FILES" ] || { fail "extracting the layer's tar"; finish; }

RATE=${LAZY_PLUGIN_RATE:-$((SIZE / 12 + 1))}
echo "+ throttle-proxy.py --target $REG --rate $RATE &"
python3 "$top_srcdir/tests/integration/throttle-proxy.py" --listen-port-file "$T/proxy.port" --target "$REG" \
  --rate "$RATE" &
PROXY_PID=$!
for _ in $(seq 1 50); do [ -s "$T/proxy.port" ] && break; sleep 0.1; done
SLOW=127.0.0.1:$(cat "$T/proxy.port")

D=$T/d
PR=$D/root/io.berth.snapshotter.v1.fuse
# prepare KEY PARENT TARGET DIGEST SIZE URLHOST [DIFFID]: Prepare on the fuse
# snapshotter with the core's lazy labels; sets out (gRPC status and message) and rc.
prepare () {
  local key=$1 parent=$2 target=$3 digest=$4 size=$5 host=$6 diff=${7:-$DIFF_ID}
  local labels=("containerd.io/snapshot.ref=$target" "containerd.io/snapshot/cri.layer-digest=$digest"
                "containerd.io/snapshot/io.berth.layer.media-type=$MT" "containerd.io/snapshot/io.berth.layer.diff-id=$diff"
                "containerd.io/snapshot/io.berth.remote.url=http://$host/v2/esgz/blobs/$digest"
                "containerd.io/snapshot/io.berth.remote.size=$size" "containerd.io/snapshot/io.berth.remote.toc-digest=$TOC"
                "containerd.io/snapshot/io.berth.remote.plain-http=true")
  [ "$digest" = "$PLAIN" ] && labels[4]="containerd.io/snapshot/io.berth.remote.url=http://$host/v2/busybox/blobs/$digest"
  echo "+ gRPC Snapshots/Prepare fuse $key parent='$parent' ${labels[*]}"
  python3 - fuse "$key" "$parent" "${labels[@]}" >"$T/req" <<'EOF'
import struct, sys
def varint (n):
    out = b""
    while True:
        b = n & 0x7f; n >>= 7
        if not n: return out + bytes ([b])
        out += bytes ([b | 0x80])
def field (num, data):
    data = data.encode () if isinstance (data, str) else data
    return varint (num << 3 | 2) + varint (len (data)) + data
snap, key, parent = sys.argv[1:4]
msg = field (1, snap) + field (2, key) + (field (3, parent) if parent else b"")
for kv in sys.argv[4:]:
    k, v = kv.split ("=", 1)
    msg += field (4, field (1, k) + field (2, v))
sys.stdout.buffer.write (b"\0" + struct.pack (">I", len (msg)) + msg)
EOF
  local t0; t0=$(date +%s%N)
  curl -s --max-time 120 --unix-socket "$SOCK" --http2-prior-knowledge -H 'content-type: application/grpc' \
       -H 'te: trailers' -H 'containerd-namespace: default' --data-binary @"$T/req" -D "$T/hdr" -o /dev/null \
       http://localhost/containerd.services.snapshots.v1.Snapshots/Prepare
  rc=$?
  ELAPSED_MS=$((($(date +%s%N) - t0) / 1000000))
  out="status $(tr -d '\r' <"$T/hdr" | awk -F': ' '$1 == "grpc-status" { print $2 }') $(tr -d '\r' <"$T/hdr" | awk -F': ' '$1 == "grpc-message" { print $2 }')"
  echo "  | $out (${ELAPSED_MS} ms)"
}
# mount_of DIGEST: the mountpoint serving it.
mount_of () { local m; for m in $(fuse_mounts); do [ "$(head -n 1 "${m%/fs}/layer" 2>/dev/null)" = "$1" ] && echo "$m"; done; }
# server_of MOUNTPOINT: the berth-fuse serving it (its last argument).
server_of () {
  local p c
  for p in /proc/[0-9]*; do
    c=$({ tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | tail -n 1)
    [ "$c" = "$1" ] && { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q ' mount ' && { echo "${p#/proc/}"; return; }
  done
}
# kill_server MOUNTPOINT: SIGKILL its berth-fuse and wait for it.
kill_server () {
  local pid; pid=$(server_of "$1")
  [ -n "$pid" ] || { fail "no berth-fuse serves $1"; return; }
  echo "+ kill -9 $pid  (berth-fuse on $1)"; kill -9 "$pid"
  for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
}
# same_files DIR FILES: the files read through DIR equal the tar's.
same_files () {
  local f bad=0
  for f in $2; do
    cmp -s "$T/want/$f" "$1/$f" || { echo "  differs: $f"; bad=1; }
  done
  [ -n "$2" ] && [ "$bad" = 0 ]
}
LOGS=$T/berthd-logs # every berthd log of the test (a restart empties BERTHD_LOG)
keep_log () { cat "$BERTHD_LOG" >>"$LOGS"; }
complete_byte () { od -An -tu1 -j24 -N1 "$1/blob.state" 2>/dev/null | tr -d ' '; }
C=(ctr --address "$D/berth.sock")

echo "=== 1. the capability"
start_berthd "$D" "${FUSE_CFG[@]}" || finish
run "${C[@]}" plugins ls -d
printf '%s\n' "$out" | awk '/^Type:/ { t = $2 } /^ID:/ { id = $2 } /remote-snapshot/ && t == "io.berth.snapshotter.v1" && id == "fuse" { f = 1 } END { exit !f }' \
  && pass "fuse has the capability remote-snapshot" || fail "fuse lacks the capability remote-snapshot"
stop_berthd "$BERTHD_PID"
write_config "$T/nolazy" "${FUSE_CFG[@]}" '  lazy = false'
start_berthd_config "$T/nolazy" "$T/nolazy/config.toml" || finish
run ctr --address "$SOCK" plugins ls -d
printf '%s\n' "$out" | awk '/^Type:/ { t = $2 } /^ID:/ { id = $2 } /remote-snapshot/ && t == "io.berth.snapshotter.v1" && id == "fuse" { f = 1 } END { exit !f }' \
  && fail "lazy = false: fuse still has the capability remote-snapshot" || pass "lazy = false: no capability"
stop_berthd "$BERTHD_PID"

start_berthd "$D" "${FUSE_CFG[@]}" || finish
echo "=== 2. fallbacks"
prepare extract-plain "" plain-target "$PLAIN" "$PLAIN_SIZE" "$REG"
case $out in "status 0 "*) pass "not eStargz: an ordinary snapshot (OK)" ;; *) fail "not eStargz: $out" ;; esac
grep -q "layer $PLAIN: cannot serve it lazily" "$BERTHD_LOG" && pass "not eStargz: logged" || fail "not eStargz: no log line"
grep "layer $PLAIN: cannot serve it lazily" "$BERTHD_LOG" | sed 's/^/  | /'
[ -z "$(mount_of "$PLAIN")" ] && pass "not eStargz: no fuse mount" || fail "not eStargz: a fuse mount stayed"
run "${C[@]}" snapshots --snapshotter fuse rm extract-plain
expect_rc 0 "remove the fallback snapshot"
prepare extract-closed "" closed-target "$LAYER" "$SIZE" 127.0.0.1:9
case $out in "status 0 "*) pass "closed port: an ordinary snapshot (OK) in ${ELAPSED_MS} ms" ;; *) fail "closed port: $out" ;; esac
grep -q "layer $LAYER: cannot serve it lazily from http://127.0.0.1:9/" "$BERTHD_LOG" && pass "closed port: logged" \
  || fail "closed port: no log line"
run "${C[@]}" snapshots --snapshotter fuse rm extract-closed
expect_rc 0 "remove the fallback snapshot"
# A TOC that is not the one the manifest names (a registry that serves
# another TOC for the blob): refused before any file is served.
GOOD_TOC=$TOC
TOC=sha256:0000000000000000000000000000000000000000000000000000000000000000
prepare extract-toc "" toc-target "$LAYER" "$SIZE" "$REG"
TOC=$GOOD_TOC
case $out in "status 0 "*) pass "wrong TOC digest: an ordinary snapshot (OK)" ;; *) fail "wrong TOC digest: $out" ;; esac
grep -q "layer $LAYER: cannot serve it lazily.*TOC digest is $GOOD_TOC, the annotation says sha256:0000" "$BERTHD_LOG" \
  && pass "wrong TOC digest: logged with both digests" || fail "wrong TOC digest: no log line naming both digests"
[ -z "$(mount_of "$LAYER")" ] && pass "wrong TOC digest: no fuse mount" || fail "wrong TOC digest: a fuse mount stayed"
run "${C[@]}" snapshots --snapshotter fuse rm extract-toc
expect_rc 0 "remove the fallback snapshot"

echo "=== 3. the eStargz layer, served lazily"
prepare extract-1 "" lazy-target "$LAYER" "$SIZE" "$SLOW"
case $out in "status 6 "*) pass "Prepare: ALREADY_EXISTS" ;; *) fail "Prepare: $out, not ALREADY_EXISTS" ;; esac
[ "$ELAPSED_MS" -lt 5000 ] && pass "Prepare took ${ELAPSED_MS} ms (the blob needs >= 12 s at $RATE B/s)" \
  || fail "Prepare took ${ELAPSED_MS} ms"
run "${C[@]}" snapshots --snapshotter fuse ls
printf '%s\n' "$out" | awk '$1 == "lazy-target" && $NF == "Committed" { f = 1 } END { exit !f }' \
  && pass "lazy-target committed" || fail "lazy-target is not committed"
printf '%s\n' "$out" | grep -q extract-1 && fail "extract-1 still listed" || pass "extract-1 gone (committed as the target)"
MNT=$(mount_of "$LAYER")
[ -n "$MNT" ] && pass "served on $MNT" || { fail "no fuse.berth mount serves $LAYER"; finish; }
DIR=${MNT%/fs}
echo "+ cat $DIR/remote"; sed 's/^/  | /' "$DIR/remote"
grep -q "^ns default$" "$DIR/remote" && grep -q "^url http://$SLOW/" "$DIR/remote" && pass "remote record" \
  || fail "remote record lacks ns or url"
c=$(complete_byte "$DIR")
[ "$c" != 1 ] && pass "the cache is not complete yet (state byte $c)" \
  || fail "the cache was complete already: the proxy does not slow it"

echo "=== 4. its server killed before completion: served again lazily, without a mount asking"
kill_server "$MNT"
ok=
for _ in $(seq 1 150); do
  grep -q "layer $LAYER on $DIR/fs was dead (its server had gone); served again (lazily" "$BERTHD_LOG" && { ok=1; break; }
  sleep 0.1
done
[ -n "$ok" ] && pass "the plugin's watcher served it again lazily within 15 s (log)" \
  || fail "no log line 'served again (lazily' within 15 s of the kill"
run "${C[@]}" snapshots --snapshotter fuse view v1 lazy-target
expect_rc 0 "View of lazy-target"
c=$(complete_byte "$DIR")
same_files "$MNT" "$SMALL_FILES" && pass "small files equal the tar's (state byte: $c)" || fail "files differ"

echo "=== 5. kill -9 berthd and the server: init serves it again lazily"
PID=$(server_of "$MNT")
echo "+ kill -9 $BERTHD_PID $PID"; kill -9 "$BERTHD_PID" "$PID"; wait "$BERTHD_PID" 2>/dev/null
for _ in $(seq 1 50); do [ -d "/proc/$PID" ] || break; sleep 0.1; done
c=$(complete_byte "$DIR")
keep_log
start_berthd_config "$D" "$D/config.toml" || finish
grep -q "layer $LAYER on $DIR/fs was dead.*served again (lazily" "$BERTHD_LOG" \
  && pass "init served it again lazily (state byte before: $c)" || fail "init did not serve it again lazily"
same_files "$MNT" "$SMALL_FILES" && pass "small files equal the tar's" || fail "files differ after the restart"

echo "=== 6. completion: published, adopted by the core, store-backed"
ok=
for _ in $(seq 1 120); do
  [ ! -e "$DIR/remote" ] && [ -e "$DIR/index" ] && { ok=1; break; }
  sleep 0.5
done
[ -n "$ok" ] && pass "remote record gone, index built (within 60 s)" \
  || fail "not adopted in 60 s (state byte $(complete_byte "$DIR"); $(ls "$DIR" | tr '\n' ' '))"
grep "lazily pulled layer $LAYER" "$BERTHD_LOG" | sed 's/^/  | /'
grep -q "lazily pulled layer $LAYER is complete in $DIR/blob: published" "$BERTHD_LOG" && pass "published (log)" \
  || fail "no 'published' log line"
grep -q "lazily pulled layer $LAYER is in the content store: served from there" "$BERTHD_LOG" \
  && pass "adopted (log)" || fail "no adoption log line"
run "${C[@]}" content ls
expect_contains "$LAYER" "the content store has the layer's blob"
[ ! -e "$DIR/blob" ] && [ ! -e "$DIR/blob.state" ] && pass "the plugin's cache names are gone" \
  || fail "cache names left: $(ls "$DIR" | tr '\n' ' ')"
same_files "$MNT" "$ALL_FILES" && pass "all files equal the tar's (the lazy server, cache unlinked)" \
  || fail "files differ (lazy server after adoption)"
kill_server "$MNT"
run "${C[@]}" snapshots --snapshotter fuse view v2 lazy-target
expect_rc 0 "View of lazy-target"
grep "layer $LAYER on $DIR/fs was dead" "$BERTHD_LOG" | tail -n 1 | grep -q "served again$" \
  && pass "served again from the store's blob (log)" || fail "not served again from the store (log)"
same_files "$MNT" "$ALL_FILES" && pass "all files equal the tar's (store-backed)" || fail "files differ (store-backed)"

echo "=== 8. remove"
for k in v1 v2 lazy-target; do run "${C[@]}" snapshots --snapshotter fuse rm "$k"; expect_rc 0 "rm $k"; done
[ -z "$(fuse_mounts)" ] && pass "no fuse mount left" || fail "mounts left: $(fuse_mounts)"
gone=
for _ in $(seq 1 50); do [ -z "$(servers_under "$PR")" ] && { gone=1; break; }; sleep 0.1; done
[ -n "$gone" ] && pass "no server left" || fail "servers left: $(servers_under "$PR")"
[ ! -e "$DIR" ] && pass "$DIR gone" || fail "$DIR left"
stop_berthd "$BERTHD_PID"
keep_log

echo "=== 7. a lying diffID: not published, served from its cache"
D=$T/d3
PR=$D/root/io.berth.snapshotter.v1.fuse
C=(ctr --address "$D/berth.sock")
start_berthd "$D" "${FUSE_CFG[@]}" || finish
LIE=sha256:$(printf 'not this layer' | sha256sum | cut -d' ' -f1)
prepare extract-lie "" lie-target "$LAYER" "$SIZE" "$REG" "$LIE"
case $out in "status 6 "*) pass "Prepare: ALREADY_EXISTS" ;; *) fail "Prepare: $out, not ALREADY_EXISTS" ;; esac
MNT=$(mount_of "$LAYER"); DIR=${MNT%/fs}
ok=
for _ in $(seq 1 60); do
  grep -q "lazily pulled layer $LAYER is complete, but indexing it failed" "$BERTHD_LOG" && { ok=1; break; }
  sleep 0.5
done
[ -n "$ok" ] && pass "indexing refused (log)" || fail "no 'indexing it failed' log line in 30 s"
grep "indexing it failed" "$BERTHD_LOG" | head -n 1 | sed 's/^/  | /'
grep -q "lazily pulled layer $LAYER is complete in .*: published" "$BERTHD_LOG" && fail "published all the same" \
  || pass "not published"
run "${C[@]}" content ls
expect_not_contains "$LAYER" "the content store has not got the blob"
[ -e "$DIR/remote" ] && [ -e "$DIR/blob" ] && pass "still lazy, its cache kept" || fail "the layer lost its cache: $(ls "$DIR")"
echo "+ stop the registry"; stop_registry
kill_server "$MNT"
run "${C[@]}" snapshots --snapshotter fuse view v3 lie-target
expect_rc 0 "View of lie-target"
same_files "$MNT" "$ALL_FILES" && pass "served from its complete cache, the registry gone" || fail "files differ (from the cache)"
for k in v3 lie-target; do run "${C[@]}" snapshots --snapshotter fuse rm "$k"; expect_rc 0 "rm $k"; done
[ -z "$(fuse_mounts)" ] && pass "no fuse mount left" || fail "mounts left: $(fuse_mounts)"
stop_berthd "$BERTHD_PID"
keep_log
if [ "$failures" -gt 0 ]; then
  echo "+ the plugin's lines of every berthd log:"; grep -i "fuse\|lazily\|lazy" "$LOGS" | tail -n 40 | sed 's/^/  | /'
fi
finish
