#!/bin/bash
# Lazy eStargz pulls from a registry that wants Bearer tokens: berthd hands
# berth-fuse the token in a 0600 headers file (never in a label, argv or the
# log) and rewrites that file with a fresh token before the old one expires,
# for as long as the layer is still arriving; the file goes once the blob is
# adopted.  /work/notes/lazy-contract.md is the design; tests/snapshotters/
# fuse/lazy.sh the test without auth that this one follows.
#
# Set-up: tests/registry/start.sh --token --htpasswd USER:PASS --token-ttl TTL
# (docker-registry with `auth: token:`, tests/registry/token-server.py issuing
# RS256 JWTs whose exp is iat + TTL, TTL = 6 s, only to USER:PASS).  An image of
# busybox + a data layer (DATA_MIB MiB of random bytes, data/greeting printed by
# its Cmd) is pushed with skopeo --dest-creds, pulled with --user into a build
# berthd, converted with `berth image convert --estargz`, exported with `berth
# content get` and pushed again.  A Python proxy (stdlib) in front of the
# registry paces blob bodies to RATE bytes/s in all (the data blob takes >= 20 s)
# and counts the bytes sent per blob.  It is also *strict about expiry*: a
# request whose Bearer JWT has passed its exp gets the registry's 401 challenge
# (docker-registry itself accepts a token up to 60 s after its exp, longer than
# this test), so a berth-fuse that keeps sending a stale token fails, and one
# that re-reads the rewritten headers file on the 401 goes on.  A fresh berthd
# (fuse plugin) pulls through the proxy with `berth pull --user USER:PASS`
# (LAZY_AUTH_VIA=config: a docker config.json in berthd's DOCKER_CONFIG instead).
#
#  1. pull --snapshotter fuse returns in < 1/4 of the data blob's download time;
#     run --rm prints the greeting while the blob is incomplete.
#  2. <state>/io.berth.remote/<ns>-sha256-<hex>.headers exists, mode 0600,
#     holds `Authorization: Bearer`, and the snapshot's headers-file label names
#     it; no token (nor the password) is in any snapshot label (`berth snapshots
#     ls --format json`, `ctr snapshots info`), any berth-fuse process's cmdline
#     or environment, or berthd's log.
#  3. while the blob arrives, a watcher (100 ms polls) sees the data layer's
#     headers file rewritten with a different token at least twice, each
#     rewrite (its mtime) before the previous token's exp, mode 0600 each time;
#     the token server issued >= 2 more tokens meanwhile.  berthd killed (-9)
#     and started again half a token lifetime later: pulling the image again
#     writes a new token into the file (renewals are in memory; with the
#     strict proxy the blob would not complete otherwise).
#  4. the blob completes and is adopted within 2 x its download time + 30 s
#     (berth content ls, the store's file hashes to its digest, berth fsck
#     exits 0); every headers file of the image is gone within 10 s; no token
#     seen is anywhere under berthd's root and state or in berthd's or
#     berth-fuse's logs.  With the strict proxy, a berth-fuse that kept an
#     expired token would never complete the blob: this fails too without
#     the refresher.
#  5. rm + rmi + gc, berthd stopped: no fuse mount, no berth-fuse process; the
#     proxy, the registry and the token server stopped (pids gone).
#
# About 60-70 s.  Environment: top_builddir, top_srcdir, BERTH_TEST_IMAGES,
# BERTH_FUSE, LAZY_RATE (bytes/s, default 1200000), LAZY_DATA_MIB (default 26),
# LAZY_TOKEN_TTL (s, default 6), LAZY_AUTH_VIA (user|config, default user),
# LAZY_STRICT (1: the proxy refuses expired tokens, default 1).
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
source "$(dirname "$0")/../../integration/lib.sh"
need_root
for tool in docker-registry skopeo python3 openssl curl find timeout sha256sum; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../../.." && pwd)
BERTH_FUSE=${BERTH_FUSE:-$top_builddir/plugins/snapshotters/fuse/berth-fuse}
[ -x "$BERTH_FUSE" ] || skip "berth-fuse not built ($BERTH_FUSE; configure found no libfuse3?)"
[ -c /dev/fuse ] || skip "no /dev/fuse on this host"
grep -qw fuse /proc/filesystems || modprobe fuse 2>/dev/null
grep -qw fuse /proc/filesystems || skip "the kernel has no fuse file system"
SHIM=$top_builddir/shim/berth-shim
[ -x "$SHIM" ] || skip "berth-shim not built ($SHIM)"
RATE=${LAZY_RATE:-1200000}
DATA_MIB=${LAZY_DATA_MIB:-26}
TTL=${LAZY_TOKEN_TTL:-6}
VIA=${LAZY_AUTH_VIA:-user}
STRICT=${LAZY_STRICT:-1}
case $VIA in user|config) ;; *) echo "LAZY_AUTH_VIA=$VIA: user or config"; exit 2 ;; esac
MARK=$((100000 + $$ % 50000))$RANDOM
AUTH_USER=lazyuser
AUTH_PASS=pw-$MARK-secret
PROXY_PID=
WATCH_PID=
now_ms () { date +%s%3N; }

trap 'stop_registry; cleanup' EXIT # until final_cleanup below
IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
[ "$rc" = 0 ] || { fail "building the test images"; finish; }

# --- the token registry -------------------------------------------------------------
REGDIR=$T/registry
echo "+ tests/registry/start.sh $REGDIR --token --htpasswd $AUTH_USER:... --token-ttl $TTL"
REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR" --token --htpasswd "$AUTH_USER:$AUTH_PASS" \
        --token-ttl "$TTL") || { fail "starting docker-registry with token auth"; finish; }
# shellcheck disable=SC1091
source "$REGDIR/registry.env"
echo "  registry $REG (pid $REGISTRY_PID), token server $TOKEN_REALM (pid $TOKEN_PID, log $TOKEN_LOG)"
issued () { local n; n=$(grep -c '"status": 200' "$TOKEN_LOG" 2>/dev/null); echo "${n:-0}"; }

# lazysrc: busybox's layer + a gzip data layer; Cmd prints data/greeting.
echo "+ making $T/src (busybox + $DATA_MIB MiB data layer) and pushing it as $REG/lazysrc:latest"
python3 - "$IMAGES/busybox" "$T/src" "$MARK" "$T/want" "$DATA_MIB" <<'EOF' || { fail "making the source image"; finish; }
import gzip, hashlib, io, json, os, platform, shutil, sys, tarfile
bb, dst, mark, want, mib = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int (sys.argv[5])
os.makedirs (os.path.join (dst, "blobs", "sha256"))
def bpath (top, d): return os.path.join (top, "blobs", *d.split (":"))
def put (b):
    d = "sha256:" + hashlib.sha256 (b).hexdigest ()
    open (bpath (dst, d), "wb").write (b)
    return d, len (b)
idx = json.load (open (os.path.join (bb, "index.json")))
m = json.load (open (bpath (bb, idx["manifests"][0]["digest"])))
c = json.load (open (bpath (bb, m["config"]["digest"])))
assert len (m["layers"]) == 1, "busybox has one layer"
l1 = m["layers"][0]
shutil.copyfile (bpath (bb, l1["digest"]), bpath (dst, l1["digest"]))
files = [("data/greeting", ("lazy-auth: hello %s\n" % mark).encode ()),
         ("data/big.bin", os.urandom ((mib - 2) << 20)),
         ("data/zz-tail.bin", os.urandom (2 << 20))]
tbuf = io.BytesIO ()
with tarfile.open (fileobj=tbuf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    ti = tarfile.TarInfo ("data"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1700000000
    tf.addfile (ti)
    for name, data in files:
        ti = tarfile.TarInfo (name); ti.size = len (data); ti.mode = 0o644; ti.mtime = 1700000000
        tf.addfile (ti, io.BytesIO (data))
tar = tbuf.getvalue ()
gz = gzip.compress (tar, compresslevel=1, mtime=0)
ld, ls = put (gz)
with open (want, "w") as f:
    for name, data in files:
        f.write ("%s %s\n" % (hashlib.sha256 (data).hexdigest (), name))
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get (platform.machine (), platform.machine ())
cfg = {"architecture": arch, "os": "linux",
       "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                  "Cmd": ["sh", "-c", "cat /data/greeting"]},
       "rootfs": {"type": "layers",
                  "diff_ids": [c["rootfs"]["diff_ids"][0], "sha256:" + hashlib.sha256 (tar).hexdigest ()]}}
cd, cs = put (json.dumps (cfg, sort_keys=True).encode ())
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1["digest"], "size": l1["size"]},
                  {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]}
md, ms = put (json.dumps (man, sort_keys=True).encode ())
json.dump ({"schemaVersion": 2, "manifests": [{"mediaType": man["mediaType"], "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]},
           open (os.path.join (dst, "index.json"), "w"))
open (os.path.join (dst, "oci-layout"), "w").write ('{"imageLayoutVersion":"1.0.0"}')
EOF
CREDS=(--dest-creds "$AUTH_USER:$AUTH_PASS")
echo "+ skopeo copy --dest-creds $AUTH_USER:... oci:$T/src:latest docker://$REG/lazysrc:latest"
out=$(skopeo copy -q --preserve-digests --dest-tls-verify=false "${CREDS[@]}" "oci:$T/src:latest" \
        "docker://$REG/lazysrc:latest" 2>&1)
[ $? = 0 ] || { printf '%s\n' "$out" | sed 's/^/  | /'; fail "pushing lazysrc with the token server's credentials"; finish; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/lazysrc/manifests/latest")
[ "$code" = 401 ] && pass "the registry refuses a request without a token (401)" ||
  fail "GET /v2/lazysrc/manifests/latest without a token answers $code, not 401"

RT_CFG=('[plugins."io.berth.runtime.v1.namespaces"]' "  binary = \"$top_builddir/berth-runtime\"" "  shim_binary = \"$SHIM\""
        '[plugins."io.berth.runtime.v1.oci"]' "  shim_binary = \"$SHIM\"")
FUSE_CFG=('[plugins."io.berth.snapshotter.v1.fuse"]' "  binary = \"$BERTH_FUSE\"" "  remote_timeout = 3"
          "  remote_retries = 1")

echo "=== 0. berth image convert --estargz, push"
start_berthd "$T/b" "${RT_CFG[@]}" || finish
BB=("$BERTH" --address "$SOCK")
run timeout 60 "${BB[@]}" pull -q --plain-http --skip-unpack "$REG/lazysrc:latest"
[ "$rc" != 0 ] && pass "pull without credentials fails (exit $rc)" || fail "pull without credentials succeeded"
echo "+ ${BB[*]} pull -q --plain-http --skip-unpack --user $AUTH_USER:... $REG/lazysrc:latest"
out=$(timeout 60 "${BB[@]}" pull -q --plain-http --skip-unpack --user "$AUTH_USER:$AUTH_PASS" "$REG/lazysrc:latest" 2>&1)
rc=$?
expect_rc 0 "build berthd: pull --user lazysrc"
run "${BB[@]}" image convert --estargz --skip-unpack "$REG/lazysrc:latest" lazy
expect_rc 0 "berth image convert --estargz --skip-unpack lazysrc lazy"
echo "+ export lazy from the build berthd's store (berth content get) to $T/esgz"
python3 - "$T/esgz" "${BB[@]}" <<'EOF' || { fail "exporting the eStargz image"; finish; }
import json, hashlib, os, subprocess, sys
dst, cli = sys.argv[1], sys.argv[2:]
def get (d):
    b = subprocess.run (cli + ["content", "get", d], stdout=subprocess.PIPE, check=True).stdout
    assert "sha256:" + hashlib.sha256 (b).hexdigest () == d, "content get %s: wrong bytes" % d
    os.makedirs (os.path.join (dst, "blobs", "sha256"), exist_ok=True)
    open (os.path.join (dst, "blobs", *d.split (":")), "wb").write (b)
    return b
imgs = json.loads (subprocess.run (cli + ["images", "ls", "--format", "json", "name==lazy"],
                                   stdout=subprocess.PIPE, check=True).stdout)
t = imgs[0]["target"]
m = json.loads (get (t["digest"]))
get (m["config"]["digest"])
for l in m["layers"]:
    get (l["digest"])
    assert "containerd.io/snapshot/stargz/toc.digest" in (l.get ("annotations") or {}), "layer not eStargz"
json.dump ({"schemaVersion": 2, "manifests": [{"mediaType": t["mediaType"], "digest": t["digest"], "size": t["size"],
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]},
           open (os.path.join (dst, "index.json"), "w"))
open (os.path.join (dst, "oci-layout"), "w").write ('{"imageLayoutVersion":"1.0.0"}')
EOF
read -r BB_LAYER BB_SIZE DATA_LAYER DATA_SIZE < <(python3 -c '
import json, os, sys
top = sys.argv[1]
i = json.load (open (os.path.join (top, "index.json")))
m = json.load (open (os.path.join (top, "blobs", *i["manifests"][0]["digest"].split (":"))))
print (" ".join ("%s %d" % (l["digest"], l["size"]) for l in m["layers"]))' "$T/esgz")
[ -n "${DATA_SIZE:-}" ] || { fail "reading the eStargz image's layers"; finish; }
echo "  layers: busybox $BB_LAYER ($BB_SIZE B), data $DATA_LAYER ($DATA_SIZE B)"
echo "+ skopeo copy --dest-creds $AUTH_USER:... oci:$T/esgz:latest docker://$REG/lazy:latest"
out=$(skopeo copy -q --preserve-digests --dest-tls-verify=false "${CREDS[@]}" "oci:$T/esgz:latest" \
        "docker://$REG/lazy:latest" 2>&1)
[ $? = 0 ] || { printf '%s\n' "$out" | sed 's/^/  | /'; fail "pushing lazy (eStargz)"; finish; }
pass "eStargz image pushed as $REG/lazy:latest"
stop_berthd "$BERTHD_PID"

# --- the proxy ------------------------------------------------------------------
# proxy.py UPSTREAM PORTFILE COUNTFILE LOG RATE REALM SERVICE STRICT: as
# lazy.sh's (blob bodies paced to RATE bytes/s over all connections, per-blob
# byte counts in COUNTFILE), and with STRICT=1 a request whose Bearer JWT has
# exp <= now is answered 401 with the registry's challenge, and logged
# "strict-401".  The log names tokens by their jti only.
cat > "$T/proxy.py" <<'EOF'
import base64, http.client, http.server, json, os, re, sys, threading, time
upstream, portfile, countfile, logfile, rate = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int (sys.argv[5])
realm, service, strict = sys.argv[6], sys.argv[7], sys.argv[8] == "1"
SLICE = 32768
lock = threading.Lock ()
counts = {}
slot = [0.0]
def pace (n):
    with lock:
        start = max (time.monotonic (), slot[0])
        slot[0] = start + n / rate
        until = slot[0]
    d = until - time.monotonic ()
    if d > 0:
        time.sleep (d)
def account (key, n):
    with lock:
        counts[key] = counts.get (key, 0) + n
        with open (countfile + ".tmp", "w") as f:
            for k, v in sorted (counts.items ()):
                f.write ("%s %d\n" % (k, v))
        os.rename (countfile + ".tmp", countfile)
def log (line):
    with lock:
        with open (logfile, "a") as f:
            f.write ("%.3f %s\n" % (time.time (), line))
def claims (auth):
    if not auth or not auth.startswith ("Bearer "):
        return None
    try:
        p = auth[7:].split (".")[1]
        return json.loads (base64.urlsafe_b64decode (p + "=" * (-len (p) % 4)))
    except Exception:
        return None
class H (http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message (self, *a): pass
    def do_GET (self): self.proxy ("GET")
    def do_HEAD (self): self.proxy ("HEAD")
    def proxy (self, method):
        c = claims (self.headers.get ("Authorization"))
        tok = "jti=%s exp=%s" % (c.get ("jti", "?")[:8], c.get ("exp")) if c else "no-bearer"
        if strict and c and int (c.get ("exp", 0)) <= time.time ():
            m = re.match (r"/v2/(.+)/(blobs|manifests|tags)/", self.path)
            scope = ',scope="repository:%s:pull"' % m.group (1) if m else ""
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"token expired (strict proxy)"}]}'
            log ("%s %s %s -> strict-401 (now %.1f)" % (method, self.path, tok, time.time ()))
            self.send_response_only (401)
            self.send_header ("WWW-Authenticate", 'Bearer realm="%s",service="%s"%s,error="invalid_token"'
                              % (realm, service, scope))
            self.send_header ("Content-Type", "application/json")
            self.send_header ("Content-Length", str (len (body)))
            self.end_headers ()
            if method != "HEAD":
                self.wfile.write (body)
            return
        hdrs = {k: v for k, v in self.headers.items () if k.lower () not in ("host", "connection", "keep-alive")}
        up = http.client.HTTPConnection (upstream, timeout=60)
        try:
            up.request (method, self.path, headers=hdrs)
            r = up.getresponse ()
        except OSError as e:
            log ("%s %s: upstream: %s" % (method, self.path, e))
            self.send_error (502)
            return
        m = re.search (r"/blobs/(sha256:[0-9a-f]{64})", self.path)
        key = m.group (1) if m else None
        log ("%s %s range=%s %s -> %d" % (method, self.path, self.headers.get ("Range"), tok, r.status))
        body = None
        if r.getheader ("Content-Length") is None and method == "GET":
            body = r.read ()
        self.send_response_only (r.status)
        for k, v in r.getheaders ():
            if k.lower () not in ("connection", "keep-alive", "transfer-encoding"):
                self.send_header (k, v)
        if body is not None:
            self.send_header ("Content-Length", str (len (body)))
        self.end_headers ()
        sent = 0
        try:
            if body is not None:
                self.wfile.write (body)
            elif method == "GET":
                while True:
                    d = r.read (SLICE)
                    if not d:
                        break
                    if key and r.status in (200, 206):
                        pace (len (d))
                    self.wfile.write (d)
                    sent += len (d)
                    if key and r.status in (200, 206):
                        account (key, len (d))
        except OSError as e:
            log ("%s %s: client gone after %d bytes: %s" % (method, self.path, sent, e))
            self.close_connection = True
        finally:
            up.close ()
class S (http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error (self, request, client_address): pass
s = S (("127.0.0.1", 0), H)
open (portfile + ".tmp", "w").write (str (s.server_address[1]))
os.rename (portfile + ".tmp", portfile)
s.serve_forever ()
EOF
echo "+ python3 $T/proxy.py $REG ... $RATE $TOKEN_REALM berth-test-registry $STRICT &"
python3 "$T/proxy.py" "$REG" "$T/proxy.port" "$T/counts" "$T/proxy.log" "$RATE" "$TOKEN_REALM" \
  berth-test-registry "$STRICT" 2>>"$T/proxy.err" &
PROXY_PID=$!
for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
[ -s "$T/proxy.port" ] || { fail "the proxy did not start"; finish; }
PROXY=127.0.0.1:$(cat "$T/proxy.port")
served () { awk -v d="$1" '$1 == d { print $2; f = 1 } END { if (!f) print 0 }' "$T/counts" 2>/dev/null || echo 0; }
FULL_MS=$((DATA_SIZE * 1000 / RATE))
echo "  proxy $PROXY (pid $PROXY_PID, strict expiry: $STRICT); the data blob takes $FULL_MS ms through it"

# --- the watcher of the headers files ---------------------------------------------------
# watch.py DIR OUT: every 100 ms, each DIR/*.headers whose bytes changed since
# the last poll gives a JSON line in OUT (file, seen and mtime in ns, mode,
# the Bearer token's iat/exp/jti, and the token itself, so that the test can
# look for it elsewhere), a file gone gives {"file", "gone", "seen"}.
cat > "$T/watch.py" <<'EOF'
import base64, json, os, signal, sys, time
d, out = sys.argv[1], sys.argv[2]
signal.signal (signal.SIGTERM, lambda *a: sys.exit (0))
last = {}
def emit (o):
    with open (out, "a") as f:
        f.write (json.dumps (o) + "\n")
while True:
    now = time.time_ns ()
    try:
        names = [n for n in os.listdir (d) if n.endswith (".headers")]
    except FileNotFoundError:
        names = []
    for n in names:
        p = os.path.join (d, n)
        try:
            st = os.stat (p)
            data = open (p, "rb").read ()
        except OSError:
            continue
        if last.get (n) == data:
            continue
        last[n] = data
        tok, cl = None, {}
        for line in data.decode (errors="replace").splitlines ():
            k, _, v = line.partition (":")
            if k.strip ().lower () == "authorization" and v.strip ().startswith ("Bearer "):
                tok = v.strip ()[7:].strip ()
        if tok:
            try:
                pl = tok.split (".")[1]
                cl = json.loads (base64.urlsafe_b64decode (pl + "=" * (-len (pl) % 4)))
            except Exception:
                cl = {}
        emit ({"file": n, "seen": now, "mtime": st.st_mtime_ns, "mode": st.st_mode & 0o7777,
               "bearer": tok is not None, "token": tok, "iat": cl.get ("iat"), "exp": cl.get ("exp"),
               "jti": (cl.get ("jti") or "")[:8]})
    for n in list (last):
        if n not in names and last[n] is not None:
            last[n] = None
            emit ({"file": n, "gone": True, "seen": now})
    time.sleep (0.1)
EOF

# --- helpers (as lazy.sh) -------------------------------------------------------------
D=$T/d
ROOT=$D/root
STATE=$D/state
RDIR=$STATE/io.berth.remote
PR=$ROOT/io.berth.snapshotter.v1.fuse
BLOBS=$ROOT/io.berth.content.v1.local/blobs/sha256
NS=lz
DATA_HDR=$RDIR/$NS-sha256-${DATA_LAYER#sha256:}.headers
fuse_mounts () {
  awk -v p="$PR/" '{ for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } }
                   t == "fuse.berth" && index ($5, p) == 1 { print $5 }' /proc/self/mountinfo
}
alive () {
  local st n
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)
  n=$(ls "/proc/$1/task" 2>/dev/null | wc -l)
  [ -n "$st" ] && { [ "$st" != Z ] || [ "$n" -gt 1 ]; }
}
wait_gone () {
  local p left
  for _ in $(seq 1 50); do
    left=
    for p in "$@"; do alive "$p" && left="$left $p"; done
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  echo "  still running:$left"
  return 1
}
servers_under () {
  local p c
  for p in /proc/[0-9]*; do
    c=$({ tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | tail -n 1)
    case $c in "$1"/*) { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q ' mount ' && echo "${p#/proc/}" ;; esac
  done
}
stop_pid () { # pid: SIGTERM (SIGCONT first), wait, SIGKILL after 5 s
  [ -n "$1" ] || return 0
  kill -CONT "$1" 2>/dev/null; kill -TERM "$1" 2>/dev/null
  for _ in $(seq 50); do alive "$1" || break; sleep 0.1; done
  alive "$1" && kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
final_cleanup () {
  local id pids p
  stop_pid "$WATCH_PID"
  stop_pid "$PROXY_PID"
  if [ -n "${B+set}" ] && [ -S "$D/berth.sock" ]; then
    for id in $("${B[@]}" containers ls -q 2>/dev/null); do "${B[@]}" rm -f "$id" >/dev/null 2>&1; done
  fi
  stop_registry
  pids=$(servers_under "$T")
  cleanup
  for p in $pids; do
    for _ in $(seq 1 20); do alive "$p" || break; sleep 0.1; done
    alive "$p" && { echo "cleanup: berth-fuse $p did not exit after its unmount; kill -9"; kill -9 "$p"; }
  done
}
trap final_cleanup EXIT
# tokens: every token the watcher saw, one a line.
tokens () { python3 -c '
import json, sys
seen = set ()
for l in open (sys.argv[1]):
    o = json.loads (l)
    if o.get ("token") and o["token"] not in seen:
        seen.add (o["token"]); print (o["token"])' "$T/watch.jsonl" 2>/dev/null; }
# leaks WHAT FILE...: fail when a token seen (or the password) is in one of the files.
leaks () {
  local what=$1 f hit=; shift
  [ -s "$T/tokens" ] || { fail "$what: no token known to look for"; return; }
  for f in "$@"; do
    [ -e "$f" ] || continue
    grep -qF -f "$T/tokens" -- "$f" 2>/dev/null && hit="$hit $f (a token)"
    grep -qF -- "$AUTH_PASS" "$f" 2>/dev/null && hit="$hit $f (the password)"
  done
  [ -z "$hit" ] && pass "$what: no token ($(wc -l <"$T/tokens") known) and no password" || fail "$what:$hit"
}

# --- the test's berthd ----------------------------------------------------------------
if [ "$VIA" = config ]; then
  mkdir -p "$T/docker"
  printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$PROXY" "$(printf '%s:%s' "$AUTH_USER" "$AUTH_PASS" | base64 -w0)" \
    >"$T/docker/config.json"
  chmod 600 "$T/docker/config.json"
  export DOCKER_CONFIG=$T/docker
  USER_ARGS=()
  echo "  credentials: $DOCKER_CONFIG/config.json in berthd's environment"
else
  USER_ARGS=(--user "$AUTH_USER:$AUTH_PASS")
  echo "  credentials: berth pull --user $AUTH_USER:..."
fi
start_berthd "$D" "${RT_CFG[@]}" "${FUSE_CFG[@]}" || finish
unset DOCKER_CONFIG
export BERTH_FIFO_DIR=$T/fifo
B=("$BERTH" --address "$SOCK" -n "$NS")
run "$BERTH" --address "$SOCK" plugins ls
st=$(printf '%s\n' "$out" | awk '$1 == "io.berth.snapshotter.v1" && $2 == "fuse" { print $NF }')
[ "$st" = ok ] || { fail "fuse is '${st:-absent}' in berthd with $BERTH_FUSE, not ok"; finish; }
IMG=$PROXY/lazy:latest

echo "+ python3 $T/watch.py $RDIR $T/watch.jsonl &"
python3 "$T/watch.py" "$RDIR" "$T/watch.jsonl" 2>>"$T/watch.err" &
WATCH_PID=$!

echo "=== 1. pull with credentials, run: served before the blob is complete"
issued0=$(issued)
t0=$(now_ms)
echo "+ ${B[*]} pull -q --plain-http --snapshotter fuse ${USER_ARGS[*]:+--user $AUTH_USER:...} $IMG"
out=$(timeout 120 "${B[@]}" pull -q --plain-http --snapshotter fuse "${USER_ARGS[@]}" "$IMG" 2>&1)
rc=$?
pull_ms=$(($(now_ms) - t0))
T_PULL=$(date +%s)
[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  | /'
expect_rc 0 "pull --snapshotter fuse $IMG"
echo "  pull took $pull_ms ms; the data blob alone takes $FULL_MS ms; sent so far $(served "$DATA_LAYER") of $DATA_SIZE B"
[ "$pull_ms" -lt $((FULL_MS / 4)) ] && pass "pull returned in $pull_ms ms < 1/4 of the blob's download ($FULL_MS ms)" ||
  fail "pull took $pull_ms ms, not < 1/4 of the blob's download time $FULL_MS ms (was the blob downloaded?)"
issued1=$(issued)
n=$(fuse_mounts | wc -l)
[ "$n" = 2 ] && pass "two fuse.berth layer mounts (both layers served lazily)" || fail "$n fuse.berth mounts under $PR, not 2"
run timeout 120 "${B[@]}" run --rm --snapshotter fuse --pull never "$IMG"
got=$(served "$DATA_LAYER")
expect_rc 0 "run --rm --snapshotter fuse"
expect_contains "lazy-auth: hello $MARK" "the container prints its greeting"
[ "$rc" = 0 ] && [ "$got" -lt "$DATA_SIZE" ] && pass "the greeting came while the blob was incomplete ($got < $DATA_SIZE B)" ||
  fail "the greeting was not printed before the blob completed ($got of $DATA_SIZE B sent)"

echo "=== 2. the headers file: 0600, a Bearer token, and the token nowhere else"
ls -l "$RDIR" 2>&1 | sed 's/^/  | /'
if [ -f "$DATA_HDR" ]; then
  mode=$(stat -c %a "$DATA_HDR")
  [ "$mode" = 600 ] && pass "$DATA_HDR is mode 0600" || fail "$DATA_HDR is mode $mode, not 0600"
  grep -q '^Authorization: Bearer ' "$DATA_HDR" && pass "it holds Authorization: Bearer" ||
    fail "$DATA_HDR holds no 'Authorization: Bearer' line: $(sed 's/ .*/ .../' "$DATA_HDR")"
  d=$(stat -c %a "$RDIR")
  [ "$d" = 700 ] && pass "$RDIR is mode 0700" || fail "$RDIR is mode $d, not 0700"
else
  fail "no headers file $DATA_HDR for the data layer"
fi
sleep 0.3 # the watcher's next poll
tokens >"$T/tokens"
run "${B[@]}" snapshots ls --snapshotter fuse --format json
printf '%s' "$out" >"$T/snapshots.json"
grep -qF "\"$DATA_HDR\"" "$T/snapshots.json" && pass "a snapshot's headers-file label names $DATA_HDR" ||
  fail "no snapshot label names $DATA_HDR"
leaks "berth snapshots ls --format json (every label)" "$T/snapshots.json"
if [ -n "$CTR" ]; then
  : >"$T/ctr-info"
  for k in $("${B[@]}" snapshots ls --snapshotter fuse -q 2>/dev/null); do
    "$CTR" -a "$SOCK" -n "$NS" snapshots --snapshotter fuse info "$k" >>"$T/ctr-info" 2>&1
  done
  echo "  ctr snapshots info of $(grep -c '"Name"' "$T/ctr-info") snapshots"
  grep -qF "$DATA_HDR" "$T/ctr-info" && pass "ctr snapshots info shows the headers-file path" ||
    fail "ctr snapshots info does not show $DATA_HDR"
  leaks "ctr snapshots info" "$T/ctr-info"
fi
mapfile -t PIDS < <(servers_under "$PR")
: >"$T/procs"
for p in "${PIDS[@]}"; do
  { tr '\0' ' ' <"/proc/$p/cmdline"; echo; tr '\0' '\n' <"/proc/$p/environ"; } >>"$T/procs" 2>/dev/null
done
echo "  berth-fuse servers: ${PIDS[*]}"
[ "${#PIDS[@]}" = 2 ] && grep -qF -- "--remote-headers-file $DATA_HDR" "$T/procs" &&
  pass "two berth-fuse servers; the data layer's gets --remote-headers-file $DATA_HDR" ||
  fail "berth-fuse servers ${PIDS[*]}: no --remote-headers-file $DATA_HDR on a command line"
leaks "berth-fuse /proc/PID/cmdline and environ" "$T/procs"
leaks "berthd's log" "$BERTHD_LOG"

echo "=== 3. the token is renewed in the file while the blob arrives (token lifetime $TTL s)"
# A berthd restart loses the renewals (they are in memory); pulling the
# image again writes the file anew and renews it from then on.  With the
# strict proxy, a file left with an expired token would stop the blob.
sleep "$((TTL / 2 + 1))"
bearer_of () { sed -n 's/^Authorization: Bearer //p' "$1" 2>/dev/null; }
before=$(bearer_of "$DATA_HDR")
cp "$BERTHD_LOG" "$T/berthd-before-restart.log"
echo "+ kill -9 $BERTHD_PID (berthd), start it again, pull again"
kill -9 "$BERTHD_PID"; wait "$BERTHD_PID" 2>/dev/null
[ "$VIA" = config ] && export DOCKER_CONFIG=$T/docker
start_berthd_config "$D" "$D/config.toml" || finish
unset DOCKER_CONFIG
if [ "$(served "$DATA_LAYER")" -lt "$DATA_SIZE" ]; then
  out=$(timeout 60 "${B[@]}" pull -q --plain-http --snapshotter fuse "${USER_ARGS[@]}" "$IMG" 2>&1)
  rc=$?
  expect_rc 0 "pull again after the restart (the lazy chain exists)"
  after=$(bearer_of "$DATA_HDR")
  [ -n "$after" ] && [ "$after" != "$before" ] && pass "the pull after the restart wrote a new token into the headers file" ||
    fail "the headers file has no new token after the pull that followed the restart"
else
  echo "NOTE: the data blob was complete before the restart: the renewal after a restart is not tested"
fi
# The blob arrives; adoption ends the renewals (bounded: the blob's time x 2 + 30 s).
t0=$(now_ms)
limit=$((FULL_MS * 2 + 30000))
done_=0
while [ $(($(now_ms) - t0)) -lt "$limit" ]; do
  if "${B[@]}" content ls -q 2>/dev/null | grep -qx "$DATA_LAYER"; then done_=1; break; fi
  sleep 0.5
done
T_ADOPT_NS=$(date +%s%N)
adopt_ms=$(($(now_ms) - t0))
issued2=$(issued)
# After the adoption: the files go (bounded 10 s).
for _ in $(seq 100); do ls "$RDIR"/*.headers >/dev/null 2>&1 || break; sleep 0.1; done
sleep 0.3
tokens >"$T/tokens"
python3 - "$T/watch.jsonl" "$(basename "$DATA_HDR")" "$T_ADOPT_NS" "$T_PULL" <<'EOF' >"$T/renewals" 2>&1
import json, sys
path, name, t_adopt, t_pull = sys.argv[1], sys.argv[2], int (sys.argv[3]), int (sys.argv[4])
ev = [json.loads (l) for l in open (path)]
mine = [e for e in ev if e["file"] == name and not e.get ("gone")]
rewrites = bad_time = bad_mode = same = 0
for i, e in enumerate (mine):
    note = ""
    if e["mode"] != 0o600:
        bad_mode += 1; note += " MODE %o" % e["mode"]
    if not e["bearer"]:
        note += " NO-BEARER"
    if i > 0:
        p = mine[i - 1]
        if e["token"] == p["token"]:
            same += 1; note += " SAME-TOKEN"
        elif p.get ("exp") is not None and e["mtime"] < p["exp"] * 10**9 and e["mtime"] < t_adopt:
            rewrites += 1
            note += " renewed %.2f s before the previous token's exp" % (p["exp"] - e["mtime"] / 1e9)
        elif e["mtime"] >= t_adopt:
            note += " after the adoption"
        else:
            bad_time += 1; note += " LATE: %.2f s after the previous token's exp" % (e["mtime"] / 1e9 - p["exp"])
    print ("  t=%+6.2fs  jti %s  iat %+.0f  exp %+.0f  mode %o%s"
           % (e["mtime"] / 1e9 - t_pull, e["jti"], (e["iat"] or 0) - t_pull, (e["exp"] or 0) - t_pull, e["mode"], note))
for e in ev:
    if e.get ("gone"):
        print ("  t=%+6.2fs  %s removed" % (e["seen"] / 1e9 - t_pull, e["file"]))
print ("RESULT %d %d %d %d %d" % (len (mine), rewrites, bad_time, bad_mode, same))
EOF
grep -v '^RESULT' "$T/renewals"
read -r _ versions rewrites late badmode same < <(grep '^RESULT' "$T/renewals")
echo "  token server: $((issued1 - issued0)) tokens issued during the pull, $((issued2 - issued1)) more until the adoption"
[ "${rewrites:-0}" -ge 2 ] && pass "the data layer's headers file was rewritten with a new token $rewrites times while the blob arrived" ||
  fail "the data layer's headers file was rewritten with a new token ${rewrites:-0} times before its adoption, not >= 2 (no refresher?)"
[ "${late:-1}" = 0 ] && pass "every rewrite came before the previous token's exp" ||
  fail "${late:-?} rewrite(s) came after the previous token had expired"
[ "${badmode:-1}" = 0 ] && [ "${versions:-0}" -ge 1 ] && pass "mode 0600 at each of the ${versions:-0} versions seen" ||
  fail "${badmode:-?} of ${versions:-0} versions of the headers file were not mode 0600"
[ "${same:-0}" = 0 ] || echo "NOTE: $same rewrite(s) wrote the same token again"
[ $((issued2 - issued1)) -ge 2 ] && pass "the token server issued $((issued2 - issued1)) tokens while the blob arrived" ||
  fail "the token server issued $((issued2 - issued1)) tokens while the blob arrived, not >= 2"
strict=$(grep -c 'strict-401' "$T/proxy.log" 2>/dev/null)
echo "  the proxy refused ${strict:-0} request(s) bearing an expired token:"
grep 'strict-401' "$T/proxy.log" 2>/dev/null | head -n 5 | sed 's/^/  | /'
if [ "$STRICT" = 1 ] && [ "${strict:-0}" -gt 0 ] && [ "$done_" = 1 ]; then
  pass "berth-fuse went on after the proxy refused its expired token (it re-read the rewritten file)"
elif [ "$STRICT" = 1 ] && [ "${strict:-0}" = 0 ]; then
  echo "NOTE: no request of berth-fuse outlived its token: the re-read on a 401 was not exercised"
fi

echo "=== 4. complete, adopted, the headers files gone"
echo "  sent: $(served "$DATA_LAYER") of $DATA_SIZE B (data), $(served "$BB_LAYER") of $BB_SIZE B (busybox)"
[ "$done_" = 1 ] && pass "berth content ls lists the data layer $adopt_ms ms after the checks of 2" ||
  { fail "the data layer $DATA_LAYER is not in berth content ls within $limit ms";
    DD=$(dirname "$(grep -lx "$DATA_LAYER" "$PR"/snapshots/*/layer 2>/dev/null | head -n 1)")
    echo "  the data layer's berth-fuse log ($DD/server.log), last lines:"; tail -n 8 "$DD/server.log" 2>/dev/null | sed 's/^/  | /'
    echo "  the proxy's last requests:"; tail -n 6 "$T/proxy.log" | sed 's/^/  | /'; }
for _ in $(seq 20); do "${B[@]}" content ls -q 2>/dev/null | grep -qx "$BB_LAYER" && break; sleep 0.5; done
"${B[@]}" content ls -q 2>/dev/null | grep -qx "$BB_LAYER" && pass "and the busybox layer" || fail "the busybox layer $BB_LAYER is not in the store"
[ -f "$BLOBS/${DATA_LAYER#sha256:}" ] && [ "$(sha256sum < "$BLOBS/${DATA_LAYER#sha256:}" | cut -d' ' -f1)" = "${DATA_LAYER#sha256:}" ] &&
  pass "the store's blob file hashes to its digest" || fail "no blob file with the right bytes at $BLOBS/${DATA_LAYER#sha256:}"
run "$BERTH" --address "$SOCK" fsck
expect_rc 0 "berth fsck"
for _ in $(seq 100); do ls "$RDIR"/*.headers >/dev/null 2>&1 || break; sleep 0.1; done
left=$(ls "$RDIR" 2>/dev/null)
[ ! -e "$DATA_HDR" ] && pass "the data layer's headers file is gone after the adoption" || fail "$DATA_HDR is still there after the adoption"
[ -z "$left" ] && pass "nothing left in $RDIR" || fail "left in $RDIR: $(echo $left)"
leaks "berthd's logs (after the renewals)" "$T/berthd-before-restart.log" "$BERTHD_LOG"
leaks "berth-fuse's server.log files" "$PR"/snapshots/*/server.log
: >"$T/rootfiles"
# (the headers files themselves are checked above: gone)
find "$ROOT" "$STATE" -xdev -path "$RDIR" -prune -o -type f -size -64M -print 2>/dev/null >"$T/rootfiles"
mapfile -t RF <"$T/rootfiles"
leaks "every file under berthd's root and state ($(wc -l <"$T/rootfiles") files)" "${RF[@]}"
run timeout 60 "${B[@]}" run --rm --snapshotter fuse --pull never "$IMG" sh -c 'cat /data/greeting; sha256sum /data/zz-tail.bin'
expect_contains "lazy-auth: hello $MARK" "run --rm after the adoption prints the greeting"
expect_contains "$(awk '$2 == "data/zz-tail.bin" { print $1 }' "$T/want")" "and data/zz-tail.bin has the right bytes"

echo "=== 5. rm, rmi, gc; stop everything"
mapfile -t PIDS < <(servers_under "$PR")
run "${B[@]}" rmi "$IMG"
expect_rc 0 "rmi"
run "${B[@]}" gc
expect_rc 0 "gc"
stop_berthd "$BERTHD_PID"
[ "$rc" = 0 ] && pass "berthd stopped (exit 0)" || fail "berthd exited $rc on SIGTERM"
left=$(fuse_mounts)
[ -z "$left" ] && pass "no layer mount left" || { fail "layer mounts left:"; printf '  | %s\n' $left; }
[ "${#PIDS[@]}" -gt 0 ] && wait_gone "${PIDS[@]}" && [ -z "$(servers_under "$T")" ] &&
  pass "no berth-fuse process left (${PIDS[*]} exited)" || fail "berth-fuse processes left: $(servers_under "$T")"
stop_pid "$WATCH_PID"; WATCH_PID=
stop_pid "$PROXY_PID"
alive "$PROXY_PID" && fail "the proxy $PROXY_PID still runs" || pass "the proxy stopped"
PROXY_PID=
bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR"
wait_gone "$REGISTRY_PID" "$TOKEN_PID" && pass "docker-registry $REGISTRY_PID and the token server $TOKEN_PID stopped" ||
  fail "docker-registry or the token server still runs"
left=$(grep -o " ${T}[^ ]*" /proc/self/mounts 2>/dev/null)
[ -z "$left" ] && pass "no mount left under $T" || fail "mounts left: $(echo $left)"
finish
