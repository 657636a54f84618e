#!/bin/bash
# berth-fuse: a layer blob served read-only over FUSE through its index,
# compared entry by entry with what the tar says, read at random offsets,
# and used as an overlayfs lowerdir (whiteouts and opaque directories must
# take effect there).  gzip, zstd and uncompressed layers.  Real /dev/fuse,
# real kernel overlayfs.
source "$(dirname "$0")/../../integration/lib.sh"
need_root
BERTH_FUSE=${BERTH_FUSE:-$top_builddir/plugins/snapshotters/fuse/berth-fuse}
[ -x "$BERTH_FUSE" ] || skip "berth-fuse not built (configure found no libfuse3?)"
[ -c /dev/fuse ] || skip "no /dev/fuse on this host"
grep -qw fuse /proc/filesystems || modprobe fuse 2>/dev/null
grep -qw fuse /proc/filesystems || skip "the kernel has no fuse file system"
command -v zstd >/dev/null || skip "zstd not installed"

MOUNTS=()
declare -A SERVER
# server_pid MOUNTPOINT: the pid of the berth-fuse serving it (pgrep never
# matches itself, unlike a grep over /proc/*/cmdline).
server_pid () { pgrep -f -- "berth-fuse mount .* $1\$" | head -1; }
# gone PID: the process has exited (a zombie waiting for its reaper counts).
gone () { [ ! -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
fuse_cleanup () {
  local m
  for m in "${MOUNTS[@]}"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
}
trap 'fuse_cleanup; cleanup' EXIT

# The layer: every kind of entry, a file big enough to cross several
# checkpoints, a whiteout and an opaque directory.  expected.json records
# what a reader must see (whiteouts already in overlay form).
python3 - "$T" <<'EOF'
import io, json, os, random, sys, tarfile
t = sys.argv[1]
rnd = random.Random(7)
big = bytes(rnd.getrandbits(8) for _ in range(3 * 1024 * 1024 + 12345))
small = b"hello from a layer\n"
entries, exp = [], {}
def add(info, data=None):
    entries.append((info, data))
def d(name, mode=0o755, uid=0, gid=0):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = mode; i.uid = uid; i.gid = gid; i.mtime = 1700000000
    add(i); exp[name] = {"type": "dir", "mode": mode, "uid": uid, "gid": gid}
def f(name, data, mode=0o644, uid=0, gid=0, pax=None):
    i = tarfile.TarInfo(name); i.size = len(data); i.mode = mode; i.uid = uid; i.gid = gid; i.mtime = 1700000001
    if pax: i.pax_headers = pax
    add(i, data); exp[name] = {"type": "reg", "mode": mode, "uid": uid, "gid": gid, "size": len(data)}
d("etc"); d("bin"); d("odir"); d("srv", 0o750, 1000, 1000)
f("etc/hello", small)
f("bin/big", big, 0o755)
f("bin/suid", b"#!/bin/sh\n", 0o4755)
f("srv/owned", b"data\n", 0o600, 1000, 1000)
f("etc/xattr", b"x\n", pax={"SCHILY.xattr.user.berth": "yes"})
exp["etc/xattr"]["xattr"] = {"user.berth": "yes"}
i = tarfile.TarInfo("etc/link"); i.type = tarfile.SYMTYPE; i.linkname = "hello"; add(i)
exp["etc/link"] = {"type": "symlink", "target": "hello"}
i = tarfile.TarInfo("bin/hard"); i.type = tarfile.LNKTYPE; i.linkname = "bin/big"; add(i)
exp["bin/hard"] = dict(exp["bin/big"]); exp["bin/hard"]["nlink"] = 2; exp["bin/big"]["nlink"] = 2
i = tarfile.TarInfo("etc/fifo"); i.type = tarfile.FIFOTYPE; i.mode = 0o644; add(i)
exp["etc/fifo"] = {"type": "fifo", "mode": 0o644}
i = tarfile.TarInfo("etc/null"); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; i.mode = 0o666; add(i)
exp["etc/null"] = {"type": "char", "rdev": [1, 3], "mode": 0o666}
f("etc/.wh.gone", b"")                      # deletes etc/gone of the lower layers
exp.pop("etc/.wh.gone"); exp["etc/gone"] = {"type": "char", "rdev": [0, 0]}
f("odir/.wh..wh..opq", b"")                 # hides odir's lower contents
exp.pop("odir/.wh..wh..opq"); exp["odir"]["opaque"] = True
f("odir/mine", b"only mine\n")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for info, data in entries:
        tf.addfile(info, io.BytesIO(data) if data is not None else None)
open(os.path.join(t, "layer.tar"), "wb").write(buf.getvalue())
open(os.path.join(t, "big"), "wb").write(big)
json.dump(exp, open(os.path.join(t, "expected.json"), "w"))
EOF
gzip -9 -c "$T/layer.tar" > "$T/layer.tar.gz"
zstd -q -19 -c "$T/layer.tar" > "$T/layer.tar.zst"

# check_tree MNT: every expected entry as expected, nothing else listed.
check_tree () {
  python3 - "$1" "$T/expected.json" <<'EOF'
import json, os, stat, sys
mnt, exp = sys.argv[1], json.load(open(sys.argv[2]))
bad = []
seen = set()
for root, dirs, files in os.walk(mnt):
    for n in dirs + files:
        seen.add(os.path.relpath(os.path.join(root, n), mnt))
for extra in sorted(seen - set(exp)):
    bad.append("unexpected entry %s" % extra)
for path, e in sorted(exp.items()):
    p = os.path.join(mnt, path)
    try:
        st = os.lstat(p)
    except OSError as x:
        bad.append("%s: %s" % (path, x)); continue
    kind = {stat.S_IFREG: "reg", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
            stat.S_IFCHR: "char"}.get(stat.S_IFMT(st.st_mode), "?")
    if kind != e["type"]: bad.append("%s: type %s, want %s" % (path, kind, e["type"])); continue
    if "mode" in e and stat.S_IMODE(st.st_mode) != e["mode"]:
        bad.append("%s: mode %o, want %o" % (path, stat.S_IMODE(st.st_mode), e["mode"]))
    for k in ("uid", "gid", "size", "nlink"):
        if k in e and getattr(st, "st_" + k) != e[k]:
            bad.append("%s: %s %d, want %d" % (path, k, getattr(st, "st_" + k), e[k]))
    if "rdev" in e and [os.major(st.st_rdev), os.minor(st.st_rdev)] != e["rdev"]:
        bad.append("%s: rdev %d:%d" % (path, os.major(st.st_rdev), os.minor(st.st_rdev)))
    if "target" in e and os.readlink(p) != e["target"]: bad.append("%s: link target" % path)
    for k, v in e.get("xattr", {}).items():
        try:
            if os.getxattr(p, k, follow_symlinks=False) != v.encode(): bad.append("%s: xattr %s" % (path, k))
        except OSError as x: bad.append("%s: xattr %s: %s" % (path, k, x))
    if e.get("opaque"):
        try:
            if os.getxattr(p, "trusted.overlay.opaque") != b"y": bad.append("%s: opaque xattr value" % path)
        except OSError as x: bad.append("%s: no opaque xattr: %s" % (path, x))
for b in bad: print(b)
sys.exit(1 if bad else 0)
EOF
}

# parallel_reads MNT: the kernel's copy of bin/big dropped, then 4 readers
# at once (several FUSE threads on one file, the decoding pool shared).
parallel_reads () {
  python3 - "$1/bin/big" "$T/big" <<'EOF'
import os, sys, threading
path, want = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(path, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
bad = []
def reader(i):
    with open(path, "rb", buffering=0) as f:
        start = len(want) // 2 if i % 2 else 0
        f.seek(start)
        got = b""
        while True:
            b = f.read(1 << 20)
            if not b: break
            got += b
        if got != want[start:]: bad.append(i)
ts = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
if bad: print("readers that saw wrong bytes:", bad)
sys.exit(1 if bad else 0)
EOF
}

# random_reads MNT: 300 reads at random offsets of bin/big, byte for byte.
random_reads () {
  python3 - "$1/bin/big" "$T/big" <<'EOF'
import os, random, sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb").read()
r = random.Random(11)
for _ in range(300):
    off = r.randrange(0, len(b)); n = r.choice([1, 100, 4096, 65536, 300000])
    a.seek(off)
    if a.read(n) != b[off:off + n]:
        print("mismatch at", off, n); sys.exit(1)
a.seek(0)
sys.exit(0 if a.read() == b else 1)
EOF
}

for kind in gzip zstd none; do
  case $kind in
    gzip) blob=$T/layer.tar.gz; mt=application/vnd.oci.image.layer.v1.tar+gzip ;;
    zstd) blob=$T/layer.tar.zst; mt=application/vnd.oci.image.layer.v1.tar+zstd ;;
    none) blob=$T/layer.tar; mt=application/vnd.oci.image.layer.v1.tar ;;
  esac
  mnt=$T/mnt-$kind; mkdir -p "$mnt"
  run "$BERTH_FUSE" index --blob "$blob" --media-type "$mt" --out "$T/$kind.idx"
  expect_rc 0 "$kind: index built"
  run "$BERTH_FUSE" mount --blob "$blob" --index "$T/$kind.idx" --log "$T/fuse-$kind.log" "$mnt"
  expect_rc 0 "$kind: mounted (the parent returns once it serves)"
  MOUNTS+=("$mnt")
  SERVER[$kind]=$(server_pid "$mnt")
  [ -n "${SERVER[$kind]}" ] && pass "$kind: server ${SERVER[$kind]} runs" || fail "$kind: no berth-fuse process for $mnt"
  if grep -q " $mnt .*- fuse.berth " /proc/self/mountinfo; then pass "$kind: fuse.berth mount listed"; else fail "$kind: no mount"; fi
  run check_tree "$mnt"
  expect_rc 0 "$kind: tree matches the tar (types, modes, owners, sizes, links, devices, xattrs, whiteouts)"
  run random_reads "$mnt"
  expect_rc 0 "$kind: 300 random reads and a full read match the file"
  run parallel_reads "$mnt"
  expect_rc 0 "$kind: 4 readers at once, cold, match the file"
  run cat "$mnt/etc/hello"
  expect_contains "hello from a layer" "$kind: small file content"
  run touch "$mnt/etc/new"
  [ "$rc" != 0 ] && pass "$kind: read-only (touch fails)" || fail "$kind: touch succeeded on a layer"
done

# As an overlayfs lowerdir above a plain lower layer.
lower=$T/lower; mkdir -p "$lower/etc" "$lower/odir" "$T/upper" "$T/work" "$T/merged"
echo old > "$lower/etc/gone"; echo kept > "$lower/etc/kept"; echo hidden > "$lower/odir/theirs"
run mount -t overlay overlay -o "lowerdir=$T/mnt-gzip:$lower,upperdir=$T/upper,workdir=$T/work" "$T/merged"
expect_rc 0 "overlay mount with the FUSE layer as the upper lowerdir"
MOUNTS=("$T/merged" "${MOUNTS[@]}")
[ ! -e "$T/merged/etc/gone" ] && pass "whiteout hides etc/gone" || fail "etc/gone visible through the whiteout"
[ -f "$T/merged/etc/kept" ] && pass "lower file kept" || fail "etc/kept missing"
[ ! -e "$T/merged/odir/theirs" ] && [ -f "$T/merged/odir/mine" ] && pass "opaque directory hides the lower one" \
  || fail "opaque directory not honoured: $(ls "$T/merged/odir")"
cmp -s "$T/merged/bin/big" "$T/big" && pass "big file read through overlay" || fail "big file differs through overlay"
run sh -c "echo new > '$T/merged/etc/hello' && cat '$T/upper/etc/hello'"
expect_contains "new" "a write copies up into the upper dir"
run umount "$T/merged"
expect_rc 0 "overlay unmounted"

# Bad input: an index of another blob, a missing blob, a missing mountpoint.
run "$BERTH_FUSE" mount --blob "$T/layer.tar.zst" --index "$T/gzip.idx" "$T/mnt-none"
[ "$rc" != 0 ] && pass "index of another blob refused (exit $rc)" || fail "index of another blob accepted"
run "$BERTH_FUSE" mount --blob "$T/nope" --index "$T/gzip.idx" "$T/mnt-none"
expect_contains "cannot open blob" "missing blob named"
head -c 1000 /dev/urandom > "$T/junk.idx"
run "$BERTH_FUSE" check --blob "$T/layer.tar.gz" --index "$T/junk.idx"
[ "$rc" = 1 ] && pass "corrupt index file refused: $out" || fail "corrupt index: exit $rc"
run "$BERTH_FUSE" index --blob "$T/layer.tar" --media-type application/vnd.oci.image.layer.v1.tar+gzip --out "$T/x.idx"
[ "$rc" = 1 ] && pass "a plain tar claimed as gzip refused" || fail "wrong media type: exit $rc"
run "$BERTH_FUSE" mount --blob "$T/layer.tar.gz" --index "$T/gzip.idx" "$T/no/such/dir"
[ "$rc" = 1 ] && pass "missing mountpoint: exit 1" || fail "missing mountpoint: exit $rc"

# Small blocks: with a checkpoint every 64 KiB a 1 MiB read spans 16 of
# them, more than one reply pins; 4 cold readers at different places of a
# 24 MiB file must not wait for each other's blocks (bounded: a deadlock
# fails instead of hanging).
python3 - "$T" <<'EOF'
import io, os, random, sys, tarfile
rnd = random.Random(3)
data = b"".join(rnd.randbytes(16384) + b"berth fuse layer " * 2900 for _ in range(384))
open(os.path.join(sys.argv[1], "big2"), "wb").write(data)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tf:
    i = tarfile.TarInfo("big2"); i.size = len(data); tf.addfile(i, io.BytesIO(data))
open(os.path.join(sys.argv[1], "layer2.tar"), "wb").write(buf.getvalue())
EOF
gzip -1 -c "$T/layer2.tar" > "$T/layer2.tar.gz"
run "$BERTH_FUSE" index --blob "$T/layer2.tar.gz" --media-type application/vnd.oci.image.layer.v1.tar+gzip \
  --checkpoint-span 65536 --out "$T/small.idx"
expect_rc 0 "index with a checkpoint every 64 KiB"
mkdir -p "$T/mnt-small"
run "$BERTH_FUSE" mount --blob "$T/layer2.tar.gz" --index "$T/small.idx" --threads 8 --log "$T/fuse-small.log" \
  "$T/mnt-small"
expect_rc 0 "small blocks: mounted"
MOUNTS+=("$T/mnt-small")
SERVER[small]=$(server_pid "$T/mnt-small")
spread_reads () {
  timeout 120 python3 - "$1/big2" "$T/big2" <<'EOF'
import os, sys, threading
path, want = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(path, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
bad = []
def reader(i):
    start = i * len(want) // 8
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        got = b""
        while True:
            b = f.read(1 << 20)
            if not b: break
            got += b
    if got != want[start:]: bad.append(i)
ts = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
if bad: print("readers that saw wrong bytes:", bad)
sys.exit(1 if bad else 0)
EOF
}
for i in 1 2 3; do
  run spread_reads "$T/mnt-small"
  expect_rc 0 "small blocks: 8 cold readers at different places match the file (round $i)"
done

# SIGTERM ends the server, which unmounts (its decoding threads must not
# swallow the signal).
mkdir -p "$T/mnt-term"
run "$BERTH_FUSE" mount --blob "$T/layer.tar.gz" --index "$T/gzip.idx" --log "$T/fuse-term.log" "$T/mnt-term"
expect_rc 0 "term: mounted"
MOUNTS+=("$T/mnt-term")
pid=$(server_pid "$T/mnt-term")
cmp -s "$T/mnt-term/bin/big" "$T/big" && pass "term: big file reads back" || fail "term: big file differs"
if [ -n "$pid" ]; then
  kill -TERM "$pid"
  start=$SECONDS
  while ! gone "$pid" && [ $((SECONDS - start)) -lt 60 ]; do sleep 0.1; done
  gone "$pid" && pass "term: server $pid exited on SIGTERM" || fail "term: server $pid still running 60 s after SIGTERM"
  grep -q " $T/mnt-term " /proc/self/mountinfo && fail "term: still mounted after SIGTERM" || pass "term: unmounted"
  grep -qE 'Sanitizer|runtime error' "$T/fuse-term.log" && fail "term: server log: $(cat "$T/fuse-term.log")"
else
  fail "term: no server pid"
fi

# diffID: the sha256 of the uncompressed tar is checked when given.
diff_id=sha256:$(sha256sum "$T/layer.tar" | cut -d' ' -f1)
run "$BERTH_FUSE" index --blob "$T/layer.tar.gz" --media-type application/vnd.oci.image.layer.v1.tar+gzip \
  --diff-id "$diff_id" --out "$T/ok.idx"
expect_rc 0 "index with the right --diff-id"
expect_contains "$diff_id" "the diffID is printed"
bad_id=sha256:$(printf '%064d' 0)
for kind in gzip zstd none; do
  case $kind in
    gzip) blob=$T/layer.tar.gz; mt=application/vnd.oci.image.layer.v1.tar+gzip ;;
    zstd) blob=$T/layer.tar.zst; mt=application/vnd.oci.image.layer.v1.tar+zstd ;;
    none) blob=$T/layer.tar; mt=application/vnd.oci.image.layer.v1.tar ;;
  esac
  run "$BERTH_FUSE" index --blob "$blob" --media-type "$mt" --diff-id "$bad_id" --out "$T/bad-$kind.idx"
  if [ "$rc" = 1 ] && printf '%s' "$out" | grep -qF "$diff_id" && printf '%s' "$out" | grep -qF "$bad_id" \
     && [ ! -e "$T/bad-$kind.idx" ]; then pass "$kind: a wrong --diff-id is refused, naming both, no index left"
  else fail "$kind: wrong --diff-id: exit $rc, index file $(ls "$T/bad-$kind.idx" 2>&1)"; fi
done

# The blob as an inherited descriptor, as the fuse snapshotter hands it over.
run "$BERTH_FUSE" index --blob /dev/fd/3 --media-type application/vnd.oci.image.layer.v1.tar+gzip \
  --diff-id "$diff_id" --out "$T/fd.idx" 3<"$T/layer.tar.gz"
expect_rc 0 "index --blob /dev/fd/3"
mkdir -p "$T/mnt-fd"
run "$BERTH_FUSE" mount --blob /proc/self/fd/3 --index "$T/fd.idx" --log "$T/fuse-fd.log" "$T/mnt-fd" 3<"$T/layer.tar.gz"
expect_rc 0 "mount --blob /proc/self/fd/3"
MOUNTS+=("$T/mnt-fd")
SERVER[fd]=$(server_pid "$T/mnt-fd")
cmp -s "$T/mnt-fd/bin/big" "$T/big" && pass "fd: big file reads back" || fail "fd: big file differs"

# Unmounting ends the server process.  An ASan build's server checks for
# leaks on the way out, which takes seconds on a loaded machine: wait for
# up to 60 s, and then look at what it reported (its log is its stderr).
for kind in gzip zstd none fd small; do
  pid=${SERVER[$kind]:-}
  umount "$T/mnt-$kind" || fail "$kind: umount failed"
  start=$SECONDS
  while [ -n "$pid" ] && ! gone "$pid" && [ $((SECONDS - start)) -lt 60 ]; do sleep 0.1; done
  if [ -z "$pid" ]; then fail "$kind: no server pid to watch"
  elif gone "$pid"; then pass "$kind: server $pid exited after umount (in about $((SECONDS - start)) s)"
  else fail "$kind: server $pid still running 60 s after umount"; fi
  if grep -qE 'Sanitizer|runtime error' "$T/fuse-$kind.log" 2>/dev/null; then
    fail "$kind: the server reported errors:"; sed 's/^/  | /' "$T/fuse-$kind.log" | head -40
  else pass "$kind: server log clean"; fi
done
if grep -q " $T/" /proc/self/mountinfo; then fail "mounts left under $T"; else pass "no mount left"; fi
finish
