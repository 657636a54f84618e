#!/bin/bash
# bench/fuse-read.sh [SIZE_MIB]: cold sequential read of one big file through
# berth-fuse (gzip, eStargz, zstd and uncompressed layers) against the same
# file on the local file system (ext4 here; what overlayfs reads from),
# medians of 5.  Not a timed test: it prints the numbers and the ratios, and
# exits 0 unless something fails to run.  Needs root and /dev/fuse.
#
# Cold = the file's pages and the blob's pages dropped with
# posix_fadvise(POSIX_FADV_DONTNEED) before each read (nothing else on the
# machine loses its cache), and for FUSE a fresh mount each time (so the
# server's blocks are cold too).  The file: of each 64 KiB, 16 KiB random
# and 48 KiB word-like text, as bench/mkfuseimage.py's big.bin (gzip about
# 2.6x, as real layers go).
#
# Per case: the median time, MB/s, the ratio of medians (ext4 / case), the
# median of the per-round ratios (each read against the ext4 read of the
# same round: steadier when the machine's load changes during the runs) and
# the median CPU time of the berth-fuse server (utime + stime: what the
# decoding costs, which the load of other work changes much less than the
# time).  The load average is printed before and after: on a busy 2-CPU
# machine the compressed cases are CPU-bound and the ext4 read is not.
#
# The eStargz layer (4 MiB chunks, one gzip member each) is written with
# tests/snapshotters/fuse/remote-driver's estargz-write (libberth-layerindex's
# writer): `make tests/snapshotters/fuse/remote-driver` first, else that case
# is left out (said so).
#   BERTH_FUSE=path  ESTARGZ_WRITER=path  top_builddir=dir  RUNS=5
#   BS=bytes per read (1048576)  KEEP=1 (keep the work dir)
set -u
size_mib=${1:-150}
RUNS=${RUNS:-5}
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
BERTH_FUSE=${BERTH_FUSE:-$top_builddir/plugins/snapshotters/fuse/berth-fuse}
ESTARGZ_WRITER=${ESTARGZ_WRITER:-$top_builddir/tests/snapshotters/fuse/remote-driver}
BS=${BS:-1048576}
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

# timed_read FILE: seconds to read it all with BS-byte reads (1 MiB: as cat does with large files).
timed_read () {
  python3 - "$1" "$BS" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
bs = int(sys.argv[2])
t = time.monotonic(); n = 0
while True:
    b = os.read(fd, bs)
    if not b: break
    n += len(b)
print("%.4f" % (time.monotonic() - t))
PY
}

# server_cpu MOUNTPOINT: CPU seconds (user + system) of the berth-fuse serving it.
server_cpu () {
  local pid
  # (by name: BERTH_FUSE may be libtool's wrapper, which runs .libs/berth-fuse)
  pid=$(pgrep -n -f -- "berth-fuse mount .* $1\$") || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$pid/stat"
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

CASES="gzip estargz zstd none"
if [ -x "$ESTARGZ_WRITER" ]; then
  "$ESTARGZ_WRITER" estargz-write "$W/layer.tar" "$W/layer.esgz" 4194304 >/dev/null \
    || die "writing the eStargz layer failed"
  stat -c '  %s  %n' "$W/layer.esgz"
else
  echo "  (no eStargz case: no $ESTARGZ_WRITER; make tests/snapshotters/fuse/remote-driver)"
  CASES="gzip zstd none"
fi

declare -A MT=([gzip]="--media-type application/vnd.oci.image.layer.v1.tar+gzip" [estargz]=--estargz
               [zstd]="--media-type application/vnd.oci.image.layer.v1.tar+zstd"
               [none]="--media-type application/vnd.oci.image.layer.v1.tar")
declare -A BLOB=([gzip]=$W/layer.tar.gz [estargz]=$W/layer.esgz [zstd]=$W/layer.tar.zst [none]=$W/layer.tar)
for k in $CASES; do
  # shellcheck disable=SC2086 # MT holds an option and its value
  "$BERTH_FUSE" index --blob "${BLOB[$k]}" ${MT[$k]} --out "$W/$k.idx" >/dev/null \
    || die "indexing the $k layer failed"
done

echo "+ load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A T C R
for run in $(seq 1 "$RUNS"); do
  uncache "$W/big.bin"
  t0=$(timed_read "$W/big.bin")
  T[ext4]+="$t0 "
  for k in $CASES; do
    "$BERTH_FUSE" mount --blob "${BLOB[$k]}" --index "$W/$k.idx" --log "$W/fuse-$k.log" "$MNT" \
      || die "mounting the $k layer failed"
    uncache "${BLOB[$k]}"
    t=$(timed_read "$MNT/data/big.bin")
    T[$k]+="$t "
    C[$k]+="$(server_cpu "$MNT") "
    R[$k]+="$(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.3f", a / b }') "
    cmp -s "$MNT/data/big.bin" "$W/big.bin" || die "$k: the file read through FUSE differs"
    umount "$MNT" || die "umount failed"
  done
done
echo "+ load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
med () { echo "$1" | tr ' ' '\n' | grep . | median; }
base=$(med "${T[ext4]}")
printf '%-7s %8s %7s %7s %8s %8s   %s\n' case median MB/s ratio "r/round" "cpu (s)" "runs (s)"
for k in ext4 $CASES; do
  awk -v k="$k" -v m="$(med "${T[$k]}")" -v b="$base" -v s="$size_mib" -v runs="${T[$k]}" \
      -v rr="$(med "${R[$k]:-1}")" -v c="$(med "${C[$k]:-0}")" \
    'BEGIN { printf "%-7s %8.3f %7.0f %6.2fx %7.2fx %8.3f   %s\n", k, m, s * 1.048576 / m, b / m, rr, c, runs }'
done
echo "(ratio = ext4 median / case median; r/round = median of ext4/case in each round: >= 0.5 is the"
echo " fuse snapshotter's goal; cpu = the berth-fuse server's user+system time for the read)"
