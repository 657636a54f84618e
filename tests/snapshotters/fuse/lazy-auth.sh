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
# content get` and pushed again (lib-lazy.sh does these steps).  pace-proxy.py
# (stdlib Python) in front of the registry paces blob bodies to RATE bytes/s in
# all (the data blob takes >= 20 s) and counts the bytes sent per blob.  It is
# also *strict about expiry* (its --strict): a request whose Bearer JWT has
# passed its exp gets the registry's 401 challenge
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
source "$(dirname "$0")/lib-lazy.sh"
need_root
for tool in docker-registry skopeo python3 openssl curl find timeout sha256sum; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
need_fuse --shim
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

trap 'stop_registry; cleanup' EXIT # until fuse_final_cleanup below
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
lazy_make_src "lazy-auth: hello $MARK" "$DATA_MIB"
CREDS=(--dest-creds "$AUTH_USER:$AUTH_PASS")
lazy_push "$T/src" "$REG/lazysrc:latest" "pushing lazysrc with the token server's credentials" "${CREDS[@]}"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/lazysrc/manifests/latest")
[ "$code" = 401 ] && pass "the registry refuses a request without a token (401)" ||
  fail "GET /v2/lazysrc/manifests/latest without a token answers $code, not 401"

# RT_CFG, FUSE_CFG: need_fuse (lib-lazy.sh).
FUSE_CFG+=("  remote_timeout = 3" "  remote_retries = 1")

echo "=== 0. berth image convert --estargz, push"
start_berthd "$T/b" "${RT_CFG[@]}" || finish
BB=("$BERTH" --address "$SOCK")
run timeout 60 "${BB[@]}" pull -q --plain-http --skip-unpack "$REG/lazysrc:latest"
[ "$rc" != 0 ] && pass "pull without credentials fails (exit $rc)" || fail "pull without credentials succeeded"
echo "+ ${BB[*]} pull -q --plain-http --skip-unpack --user $AUTH_USER:... $REG/lazysrc:latest"
out=$(timeout 60 "${BB[@]}" pull -q --plain-http --skip-unpack --user "$AUTH_USER:$AUTH_PASS" "$REG/lazysrc:latest" 2>&1)
rc=$?
expect_rc 0 "build berthd: pull --user lazysrc"
lazy_convert_export
lazy_push "$T/esgz" "$REG/lazy:latest" "pushing lazy (eStargz)" "${CREDS[@]}"
pass "eStargz image pushed as $REG/lazy:latest"
stop_berthd "$BERTHD_PID"

# --- the proxy ------------------------------------------------------------------
# pace-proxy.py (lib-lazy.sh's start_pace_proxy): blob bodies paced to RATE
# bytes/s over all connections, per-blob byte counts (served DIGEST); with
# STRICT=1 (--strict) a request whose Bearer JWT has exp <= now is answered 401
# with the registry's challenge, and logged "strict-401".  The log names
# tokens by their jti only.
if [ "$STRICT" = 1 ]; then
  start_pace_proxy "$REG" --strict "$TOKEN_REALM" berth-test-registry
else
  start_pace_proxy "$REG"
fi
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

# --- the test's paths; the helpers are lib-lazy.sh's ------------------------------
D=$T/d
ROOT=$D/root
STATE=$D/state
RDIR=$STATE/io.berth.remote
PR=$ROOT/io.berth.snapshotter.v1.fuse
BLOBS=$ROOT/io.berth.content.v1.local/blobs/sha256
NS=lz
DATA_HDR=$RDIR/$NS-sha256-${DATA_LAYER#sha256:}.headers
trap fuse_final_cleanup EXIT
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
