#!/bin/bash
# The Snapshots and Diff services with the real ctr: `ctr images pull`
# unpacks client-side (Snapshots.Prepare + Diff.Apply + Snapshots.Commit)
# into berthd's overlayfs, native and fuse snapshotters; the unpacked multilayer
# image is mounted and checked (whiteout, opaque directory, hard link,
# symlink, the 64 MiB file's sha256); ctr snapshots ls/info/usage/prepare/
# mounts/commit/rm and the berth CLI; removal refused while children exist;
# GC removes the snapshots once the image is gone.
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in docker-registry skopeo python3; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)

trap 'stop_registry; cleanup' EXIT
start_test_registry

# fuse: ctr's client-side unpack gives no layer digest, so its layers are
# ordinary directories there (the served ones: tests/snapshotters/fuse/).
start_berthd "$T/d" '[plugins."io.berth.snapshotter.v1.fuse"]' \
  "  binary = \"$top_builddir/plugins/snapshotters/fuse/berth-fuse\"" || finish
C=("$CTR" --address "$SOCK")
B=("$BERTH" --address "$SOCK")
IMG=$REG/multilayer:latest

# The chain ids of multilayer (image-spec config.md: ChainID(L0) = DiffID(L0),
# ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))) and the sha256 of
# /data/random.bin (mkimages.py: shake_256 of a fixed seed).
read -r -a CHAIN < <(python3 - "$IMAGES/multilayer" <<'EOF'
import hashlib, json, os, sys
d = sys.argv[1]
blob = lambda dg: open(os.path.join(d, "blobs", "sha256", dg.split(":")[1]), "rb").read()
idx = json.load(open(os.path.join(d, "index.json")))
man = json.loads(blob(idx["manifests"][0]["digest"]))
cfg = json.loads(blob(man["config"]["digest"]))
chain = []
for diff in cfg["rootfs"]["diff_ids"]:
    chain.append(diff if not chain else "sha256:" + hashlib.sha256((chain[-1] + " " + diff).encode()).hexdigest())
print(" ".join(chain))
EOF
)
RANDOM_SHA=$(python3 -c 'import hashlib; print(hashlib.sha256(hashlib.shake_256(b"berth test images: multilayer/data/random.bin v1").digest(64 * 1024 * 1024)).hexdigest())')
echo "chain ids: ${CHAIN[*]}"
[ "${#CHAIN[@]}" = 4 ] && pass "multilayer has 4 layers" || fail "expected 4 chain ids, got ${#CHAIN[@]}"
TOP=${CHAIN[3]}

# plugin_status ID: ok, skip, error... from `berth plugins ls`.
plugin_status () {
  "${B[@]}" plugins ls 2>/dev/null | awk -v id="$1" '$1 == "io.berth.snapshotter.v1" && $2 == id { print $4 }'
}

# count_snapshots ID: directories the plugin holds under its root.
count_snapshots () {
  local dir=$T/d/root/io.berth.snapshotter.v1.$1/snapshots
  if [ -d "$dir" ]; then find "$dir" -mindepth 1 -maxdepth 1 | wc -l; else echo 0; fi
}

check_tree () { # dir, snapshotter
  local r=$1 s=$2
  [ -x "$r/bin/busybox" ] && pass "$s: /bin/busybox is there" || fail "$s: /bin/busybox missing"
  [ -L "$r/bin/sh" ] && pass "$s: /bin/sh is a symlink" || fail "$s: /bin/sh is not a symlink"
  local got
  got=$(sha256sum "$r/data/random.bin" 2>/dev/null | cut -d' ' -f1)
  [ "$got" = "$RANDOM_SHA" ] && pass "$s: /data/random.bin has the right sha256" \
    || fail "$s: /data/random.bin sha256 $got, expected $RANDOM_SHA"
  [ ! -e "$r/etc/removed-later.txt" ] && pass "$s: the whiteout removed etc/removed-later.txt" \
    || fail "$s: etc/removed-later.txt survived its whiteout"
  [ "$(cat "$r/etc/berth-release" 2>/dev/null)" = "layer=upper" ] && pass "$s: etc/berth-release is the upper layer's" \
    || fail "$s: etc/berth-release is not the upper layer's"
  [ "$(ls -A "$r/opt/app" 2>/dev/null)" = "new.txt" ] && pass "$s: the opaque opt/app holds only new.txt" \
    || fail "$s: opt/app holds: $(ls -A "$r/opt/app" 2>&1 | tr '\n' ' ')"
  [ -e "$r/usr/share/berth/hardlink.txt" ] && [ "$(stat -c %i "$r/usr/share/berth/hardlink.txt")" = "$(stat -c %i "$r/usr/share/berth/files/000.txt")" ] \
    && pass "$s: the hard link shares its inode" || fail "$s: the hard link is broken"
  [ "$(readlink "$r/usr/share/berth/symlink.txt")" = "files/001.txt" ] && pass "$s: the symlink points at files/001.txt" \
    || fail "$s: the symlink is wrong"
  [ "$(stat -c %a "$r/usr/share/berth/private")" = 700 ] && pass "$s: the 0700 directory kept its mode" \
    || fail "$s: usr/share/berth/private has mode $(stat -c %a "$r/usr/share/berth/private")"
  find "$r" -name '.wh.*' | grep -q . && fail "$s: whiteout files are visible in the mounted tree" \
    || pass "$s: no .wh.* file is visible"
}

tested=0
for S in overlayfs native fuse; do
  st=$(plugin_status "$S")
  if [ "$st" != ok ]; then
    reason=$("${B[@]}" plugins ls -d 2>/dev/null | grep -A8 "snapshotter.v1.*$S" | grep -i -m1 "error" || true)
    echo "SKIP: snapshotter $S is ${st:-missing}${reason:+ ($reason)}"
    continue
  fi
  tested=$((tested + 1))
  echo "=== snapshotter $S"
  CS=("${C[@]}" snapshots --snapshotter "$S")

  run "${C[@]}" images pull --plain-http --snapshotter "$S" "$IMG"
  expect_rc 0 "$S: ctr images pull (client-side unpack through Prepare/Apply/Commit)"

  run "${C[@]}" images pull --plain-http --snapshotter "$S" "$IMG"
  expect_rc 0 "$S: a second pull finds the snapshots unpacked"
  run "${C[@]}" -n other snapshots --snapshotter "$S" ls
  expect_not_contains "sha256:" "$S: another namespace does not see them"

  # Diff.Apply mounts bind mounts in <root>/tmpmounts and must leave nothing.
  left=$(find "$T/d/root/tmpmounts" -mindepth 1 2>/dev/null | wc -l)
  [ "$left" = 0 ] && pass "$S: Diff.Apply left no temporary mount point" || fail "$S: $left entries left in tmpmounts"
  grep -q " $T/d/root/tmpmounts" /proc/self/mounts && fail "$S: a Diff.Apply mount is still mounted" \
    || pass "$S: no Diff.Apply mount is left mounted"

  run "${CS[@]}" ls
  for c in "${CHAIN[@]}"; do expect_contains "$c" "$S: ctr snapshots ls lists ${c:7:12}"; done
  expect_contains "Committed" "$S: the chain is committed"
  run "${B[@]}" snapshots ls --snapshotter "$S"
  expect_contains "$TOP" "$S: berth snapshots ls lists the top layer"
  expect_contains "KEY" "$S: berth snapshots ls prints a header"
  run "${B[@]}" snapshots ls --snapshotter "$S" --format json
  expect_contains "\"parent\": \"${CHAIN[2]}\"" "$S: berth snapshots ls --format json shows parents"

  run "${CS[@]}" info "$TOP"
  expect_contains "\"Parent\": \"${CHAIN[2]}\"" "$S: ctr snapshots info shows the parent"
  run "${B[@]}" snapshots info --snapshotter "$S" "$TOP"
  expect_contains "Committed" "$S: berth snapshots info shows the kind"
  run "${CS[@]}" usage "${CHAIN[1]}"
  expect_rc 0 "$S: ctr snapshots usage"
  run "${B[@]}" snapshots usage --snapshotter "$S" --format json "${CHAIN[1]}"
  size=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["size"])' 2>/dev/null || echo 0)
  [ "${size:-0}" -ge $((64 * 1024 * 1024)) ] && pass "$S: the data layer uses at least 64 MiB ($size)" \
    || fail "$S: usage of the data layer is $size"

  # A container-style rootfs on the top layer, mounted by hand.
  run "${CS[@]}" prepare test-rootfs "$TOP"
  expect_rc 0 "$S: ctr snapshots prepare"
  run "${CS[@]}" prepare test-rootfs "$TOP"
  expect_rc 1 "$S: preparing the same key again fails"
  expect_contains "already exists" "$S: ... as AlreadyExists"
  MNT=$T/mnt-$S
  mkdir -p "$MNT"
  run "${CS[@]}" mounts "$MNT" test-rootfs
  expect_contains "mount -t" "$S: ctr snapshots mounts prints a mount command"
  mountcmd=$out
  run "${B[@]}" snapshots mounts --snapshotter "$S" "$MNT" test-rootfs
  [ "$out" = "$mountcmd" ] && pass "$S: berth snapshots mounts prints the same command" \
    || fail "$S: berth snapshots mounts differs from ctr's"
  echo "+ $mountcmd"
  if eval "$mountcmd"; then
    check_tree "$MNT" "$S"
    echo "written by the container" > "$MNT/etc/container.txt"
    run umount "$MNT"
    expect_rc 0 "$S: unmount"
  else
    fail "$S: mounting test-rootfs"
  fi

  run "${CS[@]}" rm "$TOP"
  expect_rc 1 "$S: removing a snapshot with a child fails"
  expect_contains "child" "$S: ... and says why"

  run "${CS[@]}" commit test-committed test-rootfs
  expect_rc 0 "$S: ctr snapshots commit"
  run "${CS[@]}" view test-view test-committed
  expect_rc 0 "$S: ctr snapshots view"
  run "${CS[@]}" ls
  expect_contains "test-view" "$S: the view is listed"
  expect_not_contains "test-rootfs" "$S: the committed key is gone"
  run "${CS[@]}" tree
  expect_contains "test-committed" "$S: ctr snapshots tree"
  run "${CS[@]}" rm test-view
  expect_rc 0 "$S: ctr snapshots rm a view"
  run "${B[@]}" snapshots rm --snapshotter "$S" test-committed
  expect_rc 0 "$S: berth snapshots rm"
  run "${CS[@]}" info test-committed
  expect_rc 1 "$S: a removed snapshot is gone"
  expect_contains "not found" "$S: ... NotFound"

  before=$(count_snapshots "$S")
  [ "$before" -ge 4 ] && pass "$S: the plugin holds the chain ($before)" || fail "$S: the plugin holds $before snapshots"
  run "${C[@]}" images rm --sync "$IMG"
  expect_rc 0 "$S: ctr images rm --sync"
  run "${CS[@]}" ls
  expect_not_contains "sha256:" "$S: GC removed the image's snapshots"
  after=$(count_snapshots "$S")
  [ "$after" = 0 ] && pass "$S: and the plugin's directories ($before -> 0)" \
    || fail "$S: $after snapshot directories left"
done

# Errors that name the snapshotter.
run "${C[@]}" snapshots --snapshotter no-such ls
expect_rc 1 "an unknown snapshotter fails"
expect_contains "no-such" "... naming it"

[ "$tested" -gt 0 ] || skip "no snapshotter plugin is ok"
grep -E "level=(error|warn)|panic|ERROR" "$BERTHD_LOG" | sed 's/^/  berthd: /' || true
finish
