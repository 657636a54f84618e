#!/bin/bash
# bench/fuse-read.sh [SIZE_MIB]: cold sequential read of one big file through
# berth-fuse (gzip, zstd and uncompressed layers) against the same file on
# the local file system (ext4 here; what overlayfs reads from), medians of 5.
# Not a timed test: it prints the numbers and the ratios, and exits 0 unless
# something fails to run.  Needs root and /dev/fuse.
#
# Cold = the file's pages and the blob's pages dropped with
# posix_fadvise(POSIX_FADV_DONTNEED) before each read (nothing else on the
# machine loses its cache), and for FUSE a fresh mount each time (so the
# server's blocks are cold too).  The file: of each 64 KiB, 16 KiB random
# and 48 KiB word-like text, as bench/mkfuseimage.py's big.bin (gzip about
# 2.6x, as real layers go).
#   BERTH_FUSE=path  top_builddir=dir  RUNS=5  KEEP=1 (keep the work dir)
set -u
size_mib=${1:-150}
RUNS=${RUNS:-5}
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
BERTH_FUSE=${BERTH_FUSE:-$top_builddir/plugins/snapshotters/fuse/berth-fuse}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 0; }
[ -x "$BERTH_FUSE" ] || { echo "SKIP: no berth-fuse at $BERTH_FUSE"; exit 0; }
[ -c /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 0; }
command -v zstd >/dev/null || { echo "SKIP: zstd not installed"; exit 0; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/fuse-read.XXXXXX")
MNT=$W/mnt
mkdir -p "$MNT"
cleanup () {
  mountpoint -q "$MNT" && umount "$MNT"
  [ -n "${KEEP:-}" ] && { echo "kept $W"; return; }
  rm -rf "$W"
}
trap cleanup EXIT
die () { echo "fuse-read: $*" >&2; exit 1; }

# uncache FILE...: drop the files' pages from the page cache.
uncache () {
  python3 - "$@" <<'PY'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd) if os.access(p, os.W_OK) and not p.startswith("/proc") else None
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY
}

# timed_read FILE: seconds to read it all with 1 MiB reads (as cat does with large files).
timed_read () {
  python3 - "$1" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
t = time.monotonic(); n = 0
while True:
    b = os.read(fd, 1 << 20)
    if not b: break
    n += len(b)
print("%.4f" % (time.monotonic() - t))
PY
}

median () { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "+ generating a ${size_mib} MiB file and its layers in $W"
python3 - "$W" "$size_mib" <<'PY' || die "generating the data failed"
import io, os, random, sys, tarfile
w, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
# bench/mkfuseimage.py's words and lines
words = ("container layer snapshot overlay fuse blob index digest manifest config "
         "registry pull push mount unmount read write cache page kernel daemon shim "
         "runtime image tar gzip zstd chunk checkpoint window inflate deflate the a of "
         "and to in is it for on with as by at from this that be are was").split()
lines, size = [], 0
while size < 4 << 20:
    l = " ".join(rnd.choice(words) for _ in range(rnd.randint(6, 14))) + "\n"
    lines.append(l); size += len(l)
text = "".join(lines).encode()
with open(os.path.join(w, "big.bin"), "wb") as f:
    for i in range(mib * 16):
        f.write(rnd.randbytes(16384))
        o = (i * 7919) % (len(text) - 65536)
        f.write(text[o:o + 49152])
with tarfile.open(os.path.join(w, "layer.tar"), "w", format=tarfile.PAX_FORMAT) as t:
    i = t.gettarinfo(os.path.join(w, "big.bin"), "data/big.bin"); i.uid = i.gid = 0; i.uname = i.gname = ""
    with open(os.path.join(w, "big.bin"), "rb") as f:
        t.addfile(i, f)
PY
gzip -6 -c "$W/layer.tar" > "$W/layer.tar.gz" || die "gzip failed"
zstd -q -3 -c "$W/layer.tar" > "$W/layer.tar.zst" || die "zstd failed"
ls -l "$W"/layer.* | awk '{print "  " $5 "  " $9}'

declare -A MT=([gzip]=application/vnd.oci.image.layer.v1.tar+gzip [zstd]=application/vnd.oci.image.layer.v1.tar+zstd
               [none]=application/vnd.oci.image.layer.v1.tar)
declare -A BLOB=([gzip]=$W/layer.tar.gz [zstd]=$W/layer.tar.zst [none]=$W/layer.tar)
for k in gzip zstd none; do
  "$BERTH_FUSE" index --blob "${BLOB[$k]}" --media-type "${MT[$k]}" --out "$W/$k.idx" >/dev/null \
    || die "indexing the $k layer failed"
done

declare -A T
for run in $(seq 1 "$RUNS"); do
  uncache "$W/big.bin"
  T[ext4]+="$(timed_read "$W/big.bin") "
  for k in gzip zstd none; do
    "$BERTH_FUSE" mount --blob "${BLOB[$k]}" --index "$W/$k.idx" --log "$W/fuse-$k.log" "$MNT" \
      || die "mounting the $k layer failed"
    uncache "${BLOB[$k]}"
    T[$k]+="$(timed_read "$MNT/data/big.bin") "
    cmp -s "$MNT/data/big.bin" "$W/big.bin" || die "$k: the file read through FUSE differs"
    umount "$MNT" || die "umount failed"
  done
done
base=$(echo "${T[ext4]}" | tr ' ' '\n' | grep . | median)
printf '%-5s %8s %9s %7s   %s\n' case median MB/s ratio "runs (s)"
for k in ext4 gzip zstd none; do
  m=$(echo "${T[$k]}" | tr ' ' '\n' | grep . | median)
  awk -v k="$k" -v m="$m" -v b="$base" -v s="$size_mib" -v runs="${T[$k]}" \
    'BEGIN { printf "%-5s %8.3f %9.0f %6.2fx   %s\n", k, m, s * 1.048576 / m, b / m, runs }'
done
echo "(ratio = ext4 median / case median: >= 0.5 is the fuse snapshotter's goal)"
