# lib-lazy.sh: helpers shared by the fuse snapshotter's end-to-end tests
# (plugin.sh, lazy-plugin.sh, lazy.sh, lazy-auth.sh).  Sourced after
# tests/integration/lib.sh (T, BERTH, SOCK, REG, IMAGES, run, fail, finish).
# Functions that look at the test's berthd use D (its directory), PR (the
# fuse plugin's root) and T/counts, T/want (the lazy tests' files).
FUSE_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# need_fuse [--shim]: skip unless berth-fuse is built and the host has
# /dev/fuse and the fuse file system; sets top_srcdir (if unset), BERTH_FUSE
# and FUSE_CFG (the plugin's config section with `binary`).  --shim: also
# berth-shim (SHIM) and RT_CFG, the runtimes' config sections using it.
need_fuse () {
  [ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$FUSE_TESTS/../../.." && pwd)
  BERTH_FUSE=${BERTH_FUSE:-$top_builddir/plugins/snapshotters/fuse/berth-fuse}
  [ -x "$BERTH_FUSE" ] || skip "berth-fuse not built ($BERTH_FUSE; configure found no libfuse3?)"
  [ -c /dev/fuse ] || skip "no /dev/fuse on this host"
  grep -qw fuse /proc/filesystems || modprobe fuse 2>/dev/null
  grep -qw fuse /proc/filesystems || skip "the kernel has no fuse file system"
  FUSE_CFG=('[plugins."io.berth.snapshotter.v1.fuse"]' "  binary = \"$BERTH_FUSE\"")
  [ "${1:-}" = --shim ] || return 0
  SHIM=$top_builddir/shim/berth-shim
  [ -x "$SHIM" ] || skip "berth-shim not built ($SHIM)"
  RT_CFG=('[plugins."io.berth.runtime.v1.namespaces"]' "  binary = \"$top_builddir/berth-runtime\"" "  shim_binary = \"$SHIM\""
          '[plugins."io.berth.runtime.v1.oci"]' "  shim_binary = \"$SHIM\"")
}

now_ms () { date +%s%3N; }

# fuse_mounts: the fuse.berth mountpoints under the plugin root PR.
fuse_mounts () {
  awk -v p="$PR/" '{ for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } }
                   t == "fuse.berth" && index ($5, p) == 1 { print $5 }' /proc/self/mountinfo
}
# alive PID: running, or a zombie leader whose other threads still run (and
# hold its files: the /dev/fuse connection).
alive () {
  local st n
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)
  n=$(ls "/proc/$1/task" 2>/dev/null | wc -l)
  [ -n "$st" ] && { [ "$st" != Z ] || [ "$n" -gt 1 ]; }
}
# wait_gone PID...: up to 5 s for every PID to exit (a zombie counts as gone).
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
# servers_under DIR: pids of the berth-fuse servers whose mountpoint is under DIR.
servers_under () {
  local p c
  for p in /proc/[0-9]*; do
    c=$({ tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | tail -n 1)
    case $c in "$1"/*) { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q ' mount ' && echo "${p#/proc/}" ;; esac
  done
}
# stop_pid PID: SIGTERM (SIGCONT first), wait, SIGKILL after 5 s.
stop_pid () {
  [ -n "$1" ] || return 0
  kill -CONT "$1" 2>/dev/null; kill -TERM "$1" 2>/dev/null
  for _ in $(seq 50); do alive "$1" || break; sleep 0.1; done
  alive "$1" && kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}
# fuse_final_cleanup: the EXIT trap.  Stops WATCH_PID and PROXY_PID (when
# set), removes the containers of berthd B (when it still listens), stops
# the registry, then lib.sh's cleanup (berthd, then the mounts: the servers
# exit with them); a server still there 2 s later is killed.
fuse_final_cleanup () {
  local id pids p
  stop_pid "${WATCH_PID:-}"
  stop_pid "${PROXY_PID:-}"
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

# read_file PATH SECONDS: sha256 of PATH read within SECONDS, or "error: ..." / "timeout".
read_file () {
  local o
  o=$(timeout -s KILL "$2" sha256sum "$1" 2>&1)
  case $? in
    0) echo "${o%% *}" ;;
    137) echo "timeout" ;;
    *) echo "error: $(printf '%s' "$o" | tail -n 1)" ;;
  esac
}
# want_of NAME: the sha256 of data file NAME of the source image (T/want).
want_of () { awk -v n="$1" '$2 == n { print $1 }' "$T/want"; }
# served DIGEST: the body bytes the pace proxy has sent of that blob.
served () { awk -v d="$1" '$1 == d { print $2; f = 1 } END { if (!f) print 0 }' "$T/counts" 2>/dev/null || echo 0; }

# lazy_make_src GREETING MIB: T/src, an OCI layout of busybox's layer + a
# gzip data layer of MIB MiB (data/greeting holding "GREETING\n",
# data/big.bin MIB - 2 MiB and data/zz-tail.bin 2 MiB of random bytes, last);
# its Cmd prints data/greeting.  T/want: "SHA256 NAME" of each data file.
lazy_make_src () {
  python3 - "$IMAGES/busybox" "$T/src" "$1" "$T/want" "$2" <<'EOF' || { fail "making the source image"; finish; }
import gzip, hashlib, io, json, os, platform, shutil, sys, tarfile
bb, dst, greeting, want, mib = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int (sys.argv[5])
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
files = [("data/greeting", (greeting + "\n").encode ()),
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
}

# lazy_push LAYOUT REF WHAT [SKOPEO-OPTION...]: skopeo copy oci:LAYOUT:latest
# to docker://REF (plain HTTP, digests kept); on an error prints skopeo's
# output, fails WHAT and finishes.
lazy_push () {
  local src=$1 ref=$2 what=$3 o
  shift 3
  echo "+ skopeo copy oci:$src:latest docker://$ref"
  o=$(skopeo copy -q --preserve-digests --dest-tls-verify=false "$@" "oci:$src:latest" "docker://$ref" 2>&1) ||
    { printf '%s\n' "$o" | sed 's/^/  | /'; fail "$what"; finish; }
}

# lazy_export NAME LAYOUT: export image NAME of the build berthd BB from its
# store (berth content get, every blob checked against its digest) as the
# OCI layout LAYOUT (tag latest); every layer must be eStargz (a
# toc.digest annotation).  Fails "exporting the eStargz image" and finishes
# on an error.
lazy_export () {
  echo "+ export $1 from the build berthd's store (berth content get) to $2"
  python3 - "$1" "$2" "${BB[@]}" <<'EOF' || { fail "exporting the eStargz image"; finish; }
import json, hashlib, os, subprocess, sys
name, dst, cli = sys.argv[1], sys.argv[2], sys.argv[3:]
def get (d):
    b = subprocess.run (cli + ["content", "get", d], stdout=subprocess.PIPE, check=True).stdout
    assert "sha256:" + hashlib.sha256 (b).hexdigest () == d, "content get %s: wrong bytes" % d
    os.makedirs (os.path.join (dst, "blobs", "sha256"), exist_ok=True)
    open (os.path.join (dst, "blobs", *d.split (":")), "wb").write (b)
    return b
imgs = json.loads (subprocess.run (cli + ["images", "ls", "--format", "json", "name==" + name],
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
}

# lazy_convert_export: in the build berthd BB (which has pulled
# REG/lazysrc:latest) `berth image convert --estargz` it to "lazy", export
# that as the OCI layout T/esgz (lazy_export), and set BB_LAYER BB_SIZE
# DATA_LAYER DATA_SIZE from its manifest.
lazy_convert_export () {
  run "${BB[@]}" image convert --estargz --skip-unpack "$REG/lazysrc:latest" lazy
  expect_rc 0 "berth image convert --estargz --skip-unpack lazysrc lazy"
  lazy_export lazy "$T/esgz"
  read -r BB_LAYER BB_SIZE DATA_LAYER DATA_SIZE < <(python3 -c '
import json, os, sys
top = sys.argv[1]
i = json.load (open (os.path.join (top, "index.json")))
m = json.load (open (os.path.join (top, "blobs", *i["manifests"][0]["digest"].split (":"))))
print (" ".join ("%s %d" % (l["digest"], l["size"]) for l in m["layers"]))' "$T/esgz")
  [ -n "${DATA_SIZE:-}" ] || { fail "reading the eStargz image's layers"; finish; }
  echo "  layers: busybox $BB_LAYER ($BB_SIZE B), data $DATA_LAYER ($DATA_SIZE B)"
}

# start_pace_proxy UPSTREAM [--strict REALM SERVICE]: pace-proxy.py (which
# see) in front of UPSTREAM at RATE bytes/s, counts in T/counts, log in
# T/proxy.log; sets PROXY_PID, PROXY (host:port) and FULL_MS (the data
# blob's download time through it).
start_pace_proxy () {
  echo "+ python3 $FUSE_TESTS/pace-proxy.py $1 ... $RATE ${2:+$2 $3 $4} &  (blob bodies paced to $RATE B/s; counts in $T/counts)"
  python3 "$FUSE_TESTS/pace-proxy.py" "$1" "$T/proxy.port" "$T/counts" "$T/proxy.log" "$RATE" "${@:2}" 2>>"$T/proxy.err" &
  PROXY_PID=$!
  for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
  [ -s "$T/proxy.port" ] || { fail "the proxy did not start"; finish; }
  PROXY=127.0.0.1:$(cat "$T/proxy.port")
  FULL_MS=$((DATA_SIZE * 1000 / RATE))
}
