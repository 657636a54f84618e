#!/bin/bash
# The fuse snapshotter's remote blob reader (plugins/snapshotters/fuse/remote.c)
# against the real docker-registry, through tests/snapshotters/fuse/remote-driver:
#  - a small read fetches one block, not the blob (the registry's access log
#    counts the bytes it sent); random reads match the blob byte for byte;
#  - 16 threads reading the same block cause one request;
#  - a restarted reader trusts the blocks it has (state file) and no others;
#  - the background thread (prefetch range first) completes the cache, which
#    then is the blob (cmp) and verified against the digest;
#  - a registry stopped mid-run (SIGSTOP) makes a read fail within the
#    timeout, not hang; after SIGCONT the same process reads again;
#  - through a proxy that answers wrong: a corrupted body ends "corrupt"
#    after one refetch; a 200 to a Range request still gives the right
#    bytes; a lying Content-Range is refused; a short 206 is completed;
#  - a missing blob fails at once (404 is not retried);
#  - an eStargz layer served through libberth-layerindex on top of it (what
#    berth-fuse does lazily): opening costs the footer + TOC, a small file
#    its chunk; a chunk that arrives wrong is an error, never bytes, and its
#    range is fetched again once; the landmark's files are prefetched;
#  - HTTPS verified with a CA file, basic auth from a headers file that is
#    read again after a 401 when it changed; plain http only when allowed;
#  - (root, /dev/fuse, a berth-fuse with --remote-url) the layer mounted
#    lazily: served before complete, EIO when the registry stops, complete.
# About 20 s (35 s with the FUSE part).  Root only for the FUSE part.
source "$(dirname "$0")/../../integration/lib.sh"
DRIVER=${REMOTE_DRIVER:-$top_builddir/tests/snapshotters/fuse/remote-driver}
[ -x "$DRIVER" ] || skip "remote-driver not built (make check builds it; see tests/snapshotters/fuse/remote.am)"
for tool in curl python3 cmp; do
  command -v $tool >/dev/null || skip "$tool not installed"
done
[ -x "${DOCKER_REGISTRY:-/usr/bin/docker-registry}" ] || skip "docker-registry not installed (apt-get install docker-registry)"

REGDIR=$T/registry
PROXY_PIDS=()
MOUNTED=
stop_all () {
  local p
  [ -n "${REGISTRY_PID:-}" ] && kill -CONT "$REGISTRY_PID" 2>/dev/null
  [ -z "$MOUNTED" ] || umount -l "$MOUNTED" 2>/dev/null
  for p in "${PROXY_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1
  [ -z "${REGDIR2:-}" ] || bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR2" >/dev/null 2>&1
}
trap 'stop_all; cleanup' EXIT

echo "+ tests/registry/start.sh $REGDIR"
bash "$top_srcdir/tests/registry/start.sh" "$REGDIR" >/dev/null || { fail "starting docker-registry"; finish; }
source "$REGDIR/registry.env"

# The blob: 6 MiB + 12345 random bytes, pushed raw (monolithic upload:
# POST .../blobs/uploads/, then PUT <location>&digest=...).
head -c $((6 * 1024 * 1024 + 12345)) /dev/urandom > "$T/blob"
SIZE=$(stat -c %s "$T/blob")
DIGEST=sha256:$(sha256sum "$T/blob" | cut -d' ' -f1)
REPO=lazy/blob
push_blob () { # [FILE DIGEST [REGISTRY_URL CURL_ARGS...]]: the blob, to $REGISTRY_URL by default
  local loc sep file=${1:-$T/blob} digest=${2:-$DIGEST} base=${3:-$REGISTRY_URL}
  shift $(($# < 3 ? $# : 3))
  loc=$(curl -sf "$@" -D - -o /dev/null -X POST "$base/v2/$REPO/blobs/uploads/" | tr -d '\r' |
    sed -n 's/^[Ll]ocation: //p')
  [ -n "$loc" ] || return 1
  case $loc in http*) ;; *) loc=$base$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -sf "$@" -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$file" \
    "$loc${sep}digest=$digest"
}
echo "+ push $SIZE bytes as $REPO@$DIGEST"
push_blob || { fail "pushing the blob"; finish; }
URL=$REGISTRY_URL/v2/$REPO/blobs/$DIGEST
URL0=$URL
BS=262144 # 25 blocks

# drv CACHE ARGS...: the driver on cache file CACHE; output in $out, status in $rc.
drv () {
  local cache=$1; shift
  run "$DRIVER" --url "${DRV_URL:-$URL}" --allow-http --size "$SIZE" --digest "$DIGEST" --cache "$cache" \
    --block-size $BS --low-speed-time 2 --connect-timeout 2 --retries 2 --backoff-ms 100 "$@"
}
# The registry's access log: lines so far, and bytes of blob GETs after line $1.
log_mark () { sleep 0.2; wc -l < "$REGISTRY_LOG"; }
served_since () {
  sleep 0.3
  tail -n +$(($1 + 1)) "$REGISTRY_LOG" | awk '$6 == "\"GET" && $7 ~ /\/blobs\/sha256:/ { n++; s += $10 } END { printf "%d %d\n", n, s }'
}
slice () { dd if="$T/blob" bs=1 skip="$1" count="$2" status=none; }

# 1. One small read: one block from the server, the right bytes.
m=$(log_mark)
drv "$T/c1" read 3000000 100 "$T/out1" stats
read -r reqs bytes < <(served_since "$m")
if [ "$rc" = 0 ] && cmp -s "$T/out1" <(slice 3000000 100); then pass "a 100-byte read gives the blob's bytes"; else fail "small read (exit $rc)"; fi
echo "  registry sent $bytes bytes in $reqs request(s) for it; the blob is $SIZE"
if [ "$reqs" = 1 ] && [ "$bytes" -le $BS ] && [ "$bytes" -gt 0 ]; then
  pass "only the block was fetched ($bytes of $SIZE bytes)"
else
  fail "a small read made $reqs request(s), $bytes bytes (want 1, <= $BS)"
fi

# 2. Random reads, byte for byte (some straddle blocks and the end).
drv "$T/c1" compare "$T/blob" 60 7 300000 stats
expect_rc 0 "60 random reads match the blob"

# 3. A restarted reader keeps what it has: the same block is not fetched again.
m=$(log_mark)
drv "$T/c1" read 3000000 100 "$T/out3" stats
read -r reqs bytes < <(served_since "$m")
if [ "$rc" = 0 ] && [ "$reqs" = 0 ] && cmp -s "$T/out3" "$T/out1"; then
  pass "after a restart the cached block is served without a request"
else
  fail "restart: exit $rc, $reqs request(s)"
fi
# ... and a cache file changed behind its back (other length) is not trusted.
truncate -s 100 "$T/c1"
drv "$T/c1" read 3000000 100 "$T/out3b" stats
if [ "$rc" = 0 ] && cmp -s "$T/out3b" "$T/out1" && printf '%s' "$out" | grep -q "requests=1 "; then
  pass "a cache file of another length is refetched, not trusted"
else
  fail "truncated cache: exit $rc"
fi

# 4. Sixteen readers of one block at the same moment: one request.
m=$(log_mark)
drv "$T/c4" same 1000000 4096 16 stats
read -r reqs bytes < <(served_since "$m")
if [ "$rc" = 0 ] && printf '%s' "$out" | grep -q "same: 16 threads, 1 requests" && [ "$reqs" = 1 ]; then
  pass "16 concurrent readers of a block: 1 request (registry log: $reqs)"
else
  fail "concurrent readers: exit $rc, registry saw $reqs request(s)"
fi

# 5. Background completion after a prefetch range; the cache is the blob.
m=$(log_mark)
drv "$T/c5" read 0 10 /dev/null prefetch 5000000 300000 background wait 60 stats
read -r reqs bytes < <(served_since "$m")
expect_contains "wait: complete" "background completion verifies the digest"
if cmp -s "$T/c5" "$T/blob"; then pass "the complete cache is the blob (cmp)"; else fail "the complete cache differs from the blob"; fi
echo "  background: $reqs requests, $bytes bytes served for a $SIZE-byte blob"
[ "$bytes" = "$SIZE" ] && pass "every byte was fetched once" || fail "fetched $bytes bytes for $SIZE"
drv "$T/c5" stats
expect_contains "state=complete" "a restarted reader knows the cache is complete"
expect_contains "fetched=0 " "and fetches nothing"

# A reader of a block inside a long background run waits for that block,
# not for the run: through tests/integration/throttle-proxy.py at 2 MB/s
# the one 25-block request takes about 3 s; block 2 is there much sooner,
# and the reader sends no request of its own (one request in all).
rm -f "$T/throttle.port"
python3 "$top_srcdir/tests/integration/throttle-proxy.py" --listen-port-file "$T/throttle.port" \
  --target "$REGISTRY" --rate 2000000 2>>"$T/proxy.log" &
PROXY_PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/throttle.port" ] && break; sleep 0.05; done
DRV_URL=http://127.0.0.1:$(cat "$T/throttle.port")/v2/$REPO/blobs/$DIGEST \
  drv "$T/c5c" --bg-run 25 background wait-present 0 1 read 600000 10 "$T/out5c" stats wait 60 stats
t=$(printf '%s' "$out" | sed -n 's/^  *| *//; s/^read 600000+10: 10 bytes in \([0-9.]*\) s$/\1/p')
if [ "$rc" = 0 ] && cmp -s "$T/out5c" <(slice 600000 10) &&
  printf '%s' "$out" | grep -q "requests=1 .*state=complete" && [ -n "$t" ] && awk "BEGIN { exit !($t < 1.5) }"; then
  pass "a block of a running background request is served when it arrives (${t} s, no second request)"
else
  fail "a block inside a background run (exit $rc, ${t:-?} s)"
fi
expect_contains "wait: complete" "and the throttled background completes"

# 6. A registry that stops answering: the read fails within the timeout
# (connect 2 s, below 1 KiB/s for 2 s, 2 retries), and the same process
# reads again once it answers.
rm -f "$T/stopped" "$T/go"
echo "+ $DRIVER ... read, expect-fail while the registry is SIGSTOPped, read after SIGCONT"
"$DRIVER" --url "$URL" --allow-http --size "$SIZE" --digest "$DIGEST" --cache "$T/c6" --block-size $BS \
  --low-speed-time 2 --connect-timeout 2 --retries 2 --backoff-ms 100 \
  read 0 10 /dev/null wait-file "$T/stopped" expect-fail 4000000 10 wait-file "$T/go" \
  read 4000000 10 "$T/out6" stats > "$T/drv6.out" 2>&1 &
dpid=$!
for _ in $(seq 100); do grep -q "^read 0+10" "$T/drv6.out" && break; sleep 0.1; done
kill -STOP "$REGISTRY_PID"
touch "$T/stopped"
for _ in $(seq 300); do grep -q "^expect-fail" "$T/drv6.out" && break; sleep 0.1; done
kill -CONT "$REGISTRY_PID"
touch "$T/go"
wait "$dpid"
rc=$?
sed 's/^/  | /' "$T/drv6.out"
secs=$(sed -n 's/^expect-fail: failed after \([0-9]*\)\..*/\1/p' "$T/drv6.out")
if [ -n "$secs" ] && [ "$secs" -lt 15 ]; then
  pass "a read from a stopped registry fails in ${secs}.x s (no hang)"
else
  fail "a read from a stopped registry did not fail within 15 s"
fi
if [ "$rc" = 0 ] && cmp -s "$T/out6" <(slice 4000000 10); then
  pass "after SIGCONT the same process reads the block"
else
  fail "read after SIGCONT (exit $rc)"
fi

# 7. A proxy that answers wrong.  MODE: pass (answers right; every proxy
# logs the Range headers to $T/proxy.port.ranges), corrupt (flip one byte at
# blob offset 1000000 in every body; corrupt1: in the first only), norange (drop the Range header: the
# registry answers 200 with the whole blob), badrange (the body and its
# Content-Range start one byte later than asked), short (ask the registry
# for half the range, answer a correct shorter 206).
cat > "$T/proxy.py" <<'EOF'
import http.client, http.server, re, sys
mode, upstream, portfile = sys.argv[1], sys.argv[2], sys.argv[3]
FLIP = 1000000
flipped = False
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        rng = self.headers.get("Range")
        with open(portfile + ".ranges", "a") as f:
            f.write("%s\n" % rng)
        if mode == "norange":
            hdrs.pop("Range", None)
        if mode == "short" and rng:
            a, b = map(int, re.match(r"bytes=(\d+)-(\d+)", rng).groups())
            hdrs["Range"] = "bytes=%d-%d" % (a, a + max(0, (b - a) // 2))
        c = http.client.HTTPConnection(upstream, timeout=30)
        c.request("GET", self.path, headers=hdrs)
        r = c.getresponse()
        body = r.read()
        start = 0
        cr = r.getheader("Content-Range")
        if cr:
            start = int(re.match(r"bytes (\d+)-", cr).group(1))
        if mode == "badrange" and r.status == 206:
            body = body[1:]  # the answer starts one byte late, and says so
        global flipped
        if mode in ("corrupt", "corrupt1") and r.status in (200, 206) and start <= FLIP < start + len(body) \
                and not (mode == "corrupt1" and flipped):
            body = bytearray(body); body[FLIP - start] ^= 0xFF; body = bytes(body)
            flipped = True
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            if k.lower() == "content-range" and mode == "badrange":
                a, b, t = map(int, re.match(r"bytes (\d+)-(\d+)/(\d+)", v).groups())
                v = "bytes %d-%d/%d" % (a + 1, b, t)
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
class S(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address): pass  # a client that hangs up
s = S(("127.0.0.1", 0), H)
open(portfile, "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
# start_proxy MODE: sets PROXY_URL
start_proxy () {
  rm -f "$T/proxy.port" "$T/proxy.port.ranges"
  python3 "$T/proxy.py" "$1" "$REGISTRY" "$T/proxy.port" 2>>"$T/proxy.log" &
  PROXY_PIDS+=($!)
  for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
  PROXY_URL=http://127.0.0.1:$(cat "$T/proxy.port")/v2/$REPO/blobs/$DIGEST
}

# The prefetch range comes first, then the blob from its start (blocks 19-20
# in one request, then 0-7, 8-15, ...), paced to 4 MB/s.
start_proxy pass
t0=$(date +%s%N)
DRV_URL=$PROXY_URL drv "$T/c5b" --bg-max-speed 4000000 prefetch 5000000 300000 background wait 60 stats
ms=$((($(date +%s%N) - t0) / 1000000))
expect_contains "wait: complete" "prefetch + paced background completes"
first_ranges=$(head -n 2 "$T/proxy.port.ranges" | tr '\n' ' ')
echo "  first requests: $first_ranges"
if [ "$first_ranges" = "bytes=$((19 * BS))-$((21 * BS - 1)) bytes=0-$((8 * BS - 1)) " ]; then
  pass "the background thread fetches the prefetch range first, then from the start"
else
  fail "background order: $first_ranges"
fi
# 6303801 bytes at 4 MB/s: 1.5 s at least (the last run is not waited for).
if [ "$ms" -ge 1300 ]; then pass "background pacing held ($ms ms)"; else fail "background pacing: $ms ms"; fi

start_proxy corrupt
DRV_URL=$PROXY_URL drv "$T/c7" background wait 60 stats
expect_contains "wait: corrupt" "a registry that sends wrong bytes: background verification says corrupt"
expect_contains "verify_failures=2" "after refetching the blob once"

start_proxy norange
DRV_URL=$PROXY_URL drv "$T/c8" read 5000000 1000 "$T/out8" stats
if [ "$rc" = 0 ] && cmp -s "$T/out8" <(slice 5000000 1000); then
  pass "a 200 answer to a Range request gives only the right bytes"
else
  fail "200 to a Range request (exit $rc)"
fi

start_proxy badrange
DRV_URL=$PROXY_URL drv "$T/c9" expect-fail 2000000 10
expect_rc 0 "a Content-Range other than the one asked for is refused"
expect_contains "refused" "the error says the answer was refused"

start_proxy short
DRV_URL=$PROXY_URL drv "$T/c10" read 100000 600000 "$T/out10" stats
if [ "$rc" = 0 ] && cmp -s "$T/out10" <(slice 100000 600000); then
  pass "short 206 answers are completed with further requests"
else
  fail "short 206 answers (exit $rc)"
fi

# 8. No such blob: an error at once (404 is not retried).
DRV_URL=$REGISTRY_URL/v2/$REPO/blobs/sha256:$(printf '%064d' 0) drv "$T/c11" expect-fail 0 10
expect_rc 0 "a missing blob is an error"
expect_contains "404" "naming the 404"
expect_contains "failed after 0." "without retries"

# 9. An eStargz layer on top of the reader, as berth-fuse serves it lazily:
# opening fetches the footer and the TOC only; a file costs its chunks; the
# landmark's files are prefetched; a chunk that comes wrong is an error
# (EIO in berth-fuse), never its bytes, and is fetched again once.
python3 - "$T" <<'EOF'
import io, random, sys, tarfile
t = sys.argv[1]
rnd = random.Random(9)
files = [("etc/app.conf", b"threads=4\n" * 300), ("bin/big", rnd.randbytes(3 * 1024 * 1024)),
         ("etc/hello", b"hello from a lazy layer\n"), ("data/words", b"lorem ipsum dolor " * 60000)]
with tarfile.open(t + "/layer.tar", "w", format=tarfile.PAX_FORMAT) as tf:
    for d in ("bin", "data", "etc"):
        i = tarfile.TarInfo(d); i.type = tarfile.DIRTYPE; i.mode = 0o755; tf.addfile(i)
    for name, data in files:
        i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644; tf.addfile(i, io.BytesIO(data))
        open(t + "/ref-" + name.replace("/", "-"), "wb").write(data)
EOF
run "$DRIVER" estargz-write "$T/layer.tar" "$T/layer.esgz" 262144 etc/app.conf
expect_rc 0 "eStargz blob written (prefetch: etc/app.conf)"
SIZE=$(stat -c %s "$T/layer.esgz")
DIGEST=sha256:$(sha256sum "$T/layer.esgz" | cut -d' ' -f1)
URL=$REGISTRY_URL/v2/$REPO/blobs/$DIGEST
ESGZ_SIZE=$SIZE ESGZ_DIGEST=$DIGEST
push_blob "$T/layer.esgz" "$DIGEST" || fail "pushing the eStargz blob"

m=$(log_mark)
drv "$T/e1" estargz-open estargz-cat etc/hello "$T/got-hello" stats
read -r reqs bytes < <(served_since "$m")
echo "  registry sent $bytes bytes in $reqs requests for open + etc/hello; the blob is $SIZE"
if [ "$rc" = 0 ] && cmp -s "$T/got-hello" "$T/ref-etc-hello"; then
  pass "eStargz: etc/hello read through the TOC"
else
  fail "eStargz open + cat (exit $rc)"
fi
if [ "$bytes" -le $((3 * BS)) ]; then
  pass "eStargz: open + a small file fetched $bytes of $SIZE bytes"
else
  fail "eStargz: open + a small file fetched $bytes bytes"
fi
drv "$T/e1" estargz-open estargz-cat bin/big "$T/got-big" estargz-prefetch background wait 60 stats
if [ "$rc" = 0 ] && cmp -s "$T/got-big" "$T/ref-bin-big"; then
  pass "eStargz: bin/big (3 MiB in 12 chunks) matches"
else
  fail "eStargz: bin/big (exit $rc)"
fi
expect_contains "estargz-prefetch: 1 files, 1 ranges" "eStargz: the landmark's file is one prefetch range"
expect_contains "wait: complete" "eStargz: the background completes and verifies the blob"
cmp -s "$T/e1" "$T/layer.esgz" && pass "eStargz: the cache is the blob" || fail "eStargz: the cache differs"

start_proxy corrupt
DRV_URL=$PROXY_URL drv "$T/e2" estargz-open estargz-cat bin/big "$T/got-big2"
expect_rc 1 "eStargz: a chunk the registry always sends wrong is an error"
# (gzip's own CRC usually sees a flipped byte before the chunk digest does)
if printf '%s' "$out" | grep -qE "bin/big. chunk [0-9]+ .*(digest mismatch|corrupt gzip data)"; then
  pass "the error names the chunk"
else
  fail "the error does not name the chunk"
fi
[ -s "$T/got-big2" ] && fail "eStargz: bytes were returned for a wrong chunk" || pass "eStargz: no bytes for a wrong chunk"

start_proxy corrupt1
DRV_URL=$PROXY_URL drv "$T/e3" estargz-open estargz-cat bin/big "$T/got-big3" stats
expect_contains "reading again" "eStargz: a wrong chunk once: its range is forgotten"
if [ "$rc" = 0 ] && cmp -s "$T/got-big3" "$T/ref-bin-big"; then
  pass "eStargz: and the second fetch gives the right bytes"
else
  fail "eStargz: refetch after a wrong chunk (exit $rc)"
fi

# 10. HTTPS with basic auth: the CA file verifies the registry; the token
# sits in a headers file (not on the command line), and when a request gets
# 401 the file is read again if berthd rewrote it.
if command -v htpasswd >/dev/null && command -v openssl >/dev/null; then
  REGDIR2=$T/registry-tls
  echo "+ tests/registry/start.sh $REGDIR2 --tls --htpasswd alice:s3cret"
  if bash "$top_srcdir/tests/registry/start.sh" "$REGDIR2" --tls --htpasswd alice:s3cret >/dev/null; then
    TLS_URL=$(. "$REGDIR2/registry.env" && echo "$REGISTRY_URL")
    TLS_CA=$(. "$REGDIR2/registry.env" && echo "$REGISTRY_CA")
    SIZE=$(stat -c %s "$T/blob")
    DIGEST=sha256:$(sha256sum "$T/blob" | cut -d' ' -f1)
    push_blob "$T/blob" "$DIGEST" "$TLS_URL" --cacert "$TLS_CA" -u alice:s3cret || fail "pushing to the TLS registry"
    TURL=$TLS_URL/v2/$REPO/blobs/$DIGEST
    printf 'Authorization: Basic %s\n' "$(printf 'alice:wrong' | base64)" > "$T/hdr"
    rm -f "$T/fixed"
    echo "+ $DRIVER --url $TURL --ca-file $TLS_CA --headers-file $T/hdr ... expect-fail, (fix the file), read"
    "$DRIVER" --url "$TURL" --ca-file "$TLS_CA" --headers-file "$T/hdr" --size "$SIZE" --digest "$DIGEST" \
      --cache "$T/c12" --block-size $BS --low-speed-time 2 --retries 2 --backoff-ms 100 \
      expect-fail 0 10 wait-file "$T/fixed" read 3000000 100 "$T/out12" stats > "$T/drv12.out" 2>&1 &
    dpid=$!
    for _ in $(seq 100); do grep -q "^expect-fail" "$T/drv12.out" && break; sleep 0.1; done
    printf 'Authorization: Basic %s\n' "$(printf 'alice:s3cret' | base64)" > "$T/hdr.new"
    mv "$T/hdr.new" "$T/hdr"
    touch "$T/fixed"
    wait "$dpid"
    rc=$?
    sed 's/^/  | /' "$T/drv12.out"
    grep -q "^expect-fail: failed after .*401" "$T/drv12.out" && pass "https + wrong credentials: 401, not retried" ||
      fail "wrong credentials did not fail with 401"
    if [ "$rc" = 0 ] && cmp -s "$T/out12" <(slice 3000000 100); then
      pass "after the headers file is rewritten, the next 401 reloads it and the read succeeds"
    else
      fail "reloading the headers file (exit $rc)"
    fi
    run "$DRIVER" --url "$TURL" --headers-file "$T/hdr" --size "$SIZE" --digest "$DIGEST" --cache "$T/c13" \
      --block-size $BS --retries 2 expect-fail 0 10
    expect_contains "failed after 0." "a certificate the CA file does not vouch for: an error at once"
    run "$DRIVER" --url "$URL0" --size "$SIZE" --digest "$DIGEST" --cache "$T/c14" stats
    expect_rc 1 "plain http is refused unless allowed"
    expect_contains "plain http is not allowed" "saying so"
  else
    fail "starting the TLS registry"
  fi
else
  echo "skipped: HTTPS + basic auth (htpasswd or openssl missing)"
fi

# 11. berth-fuse in lazy mode (when it has --remote-url: the hook of
# /work/notes/lazyblob-hook.md), root and /dev/fuse only: the eStargz layer of
# section 9 mounted from the registry through a 500 KB/s proxy; a file is
# served while the blob is incomplete; with the registry stopped a read of a
# missing chunk is EIO within the timeout, and works after SIGCONT; the
# background completes the cache, which is then the blob.
BERTH_FUSE=${BERTH_FUSE:-$top_builddir/plugins/snapshotters/fuse/berth-fuse}
if [ "$(id -u)" != 0 ] || [ ! -c /dev/fuse ] || [ ! -x "$BERTH_FUSE" ]; then
  echo "skipped: berth-fuse lazy mode (needs root, /dev/fuse and berth-fuse)"
elif ! "$BERTH_FUSE" --help 2>&1 | grep -q -- --remote-url; then
  echo "skipped: berth-fuse lazy mode (this berth-fuse has no --remote-url yet)"
else
  SIZE=$ESGZ_SIZE DIGEST=$ESGZ_DIGEST
  rm -f "$T/slow.port"
  python3 "$top_srcdir/tests/integration/throttle-proxy.py" --listen-port-file "$T/slow.port" \
    --target "$REGISTRY" --rate 500000 2>>"$T/proxy.log" &
  PROXY_PIDS+=($!)
  for _ in $(seq 100); do [ -s "$T/slow.port" ] && break; sleep 0.05; done
  mkdir -p "$T/mnt"
  MOUNTED=$T/mnt
  m=$(log_mark)
  run "$BERTH_FUSE" mount --estargz --remote-url "http://127.0.0.1:$(cat "$T/slow.port")/v2/$REPO/blobs/$DIGEST" \
    --remote-plain-http --blob-size "$SIZE" --blob-digest "$DIGEST" --remote-cache "$T/f1" \
    --remote-timeout 2 --remote-retries 1 --log "$T/fuse.log" "$T/mnt"
  expect_rc 0 "lazy mount from the registry"
  kill -STOP "$REGISTRY_PID"
  if cmp -s "$T/mnt/etc/hello" "$T/ref-etc-hello"; then pass "lazy: etc/hello served"; else fail "lazy: etc/hello"; fi
  read -r reqs bytes < <(served_since "$m")
  st=$(od -An -tu4 -j24 -N4 "$T/f1.state" | tr -d ' ')
  echo "  registry sent $bytes bytes (completed requests) of $SIZE; cache state $st (0: partial)"
  [ "$st" = 0 ] && [ "$bytes" -lt "$SIZE" ] && pass "lazy: served before the blob is complete" ||
    fail "lazy: the blob was complete before the first read"
  t0=$(date +%s)
  echo "+ dd if=$T/mnt/bin/big bs=64k skip=40 count=1 (registry stopped)"
  if dd if="$T/mnt/bin/big" of=/dev/null bs=64k skip=40 count=1 2>"$T/dd.err"; then
    fail "lazy: a read with the registry stopped succeeded"
  else
    secs=$(($(date +%s) - t0))
    grep -q "Input/output error" "$T/dd.err" && [ $secs -lt 20 ] &&
      pass "lazy: registry stopped: EIO after $secs s" || fail "lazy: registry stopped: $(cat "$T/dd.err") after $secs s"
  fi
  grep -q "fetching blob bytes" "$T/fuse.log" && pass "lazy: the failed fetch is logged" || fail "lazy: no log line"
  kill -CONT "$REGISTRY_PID"
  if cmp -s "$T/mnt/bin/big" "$T/ref-bin-big"; then pass "lazy: after SIGCONT bin/big reads right"; else fail "lazy: bin/big after SIGCONT"; fi
  for _ in $(seq 120); do [ "$(od -An -tu4 -j24 -N4 "$T/f1.state" | tr -d ' ')" = 1 ] && break; sleep 0.5; done
  [ "$(od -An -tu4 -j24 -N4 "$T/f1.state" | tr -d ' ')" = 1 ] && pass "lazy: background completion verified" ||
    fail "lazy: not complete after 60 s"
  cmp -s "$T/f1" "$T/layer.esgz" && pass "lazy: the cache is the blob" || fail "lazy: the cache differs"
  umount "$T/mnt" && MOUNTED=
  for _ in $(seq 50); do pgrep -f -- "--remote-cache $T/f1" >/dev/null || break; sleep 0.1; done
  pgrep -f -- "--remote-cache $T/f1" >/dev/null && fail "lazy: berth-fuse still runs after umount" ||
    pass "lazy: berth-fuse exits after umount"
fi

finish
