#!/bin/bash
# Unpack parity: berth's unpacked trees are what Debian's containerd makes
# of the same images.  One docker-registry with the test images
# (tests/images/build.sh), one berthd, one containerd (on a temporary root,
# never the system's).  For each snapshotter (overlayfs, native) and each
# test image, three unpacks, each in a namespace of its own so that every
# layer is really unpacked (snapshots are per namespace):
#
#   reference  `ctr images pull --snapshotter S` into containerd
#   berth      `berth pull --snapshotter S` into berthd (daemon-side unpack)
#   ctr        `ctr images pull --snapshotter S` into berthd (client-side
#              unpack: Snapshots.Prepare + Diff.Apply + Commit)
#
# Then, for berth and ctr against the reference:
#   - the snapshot chains have the same keys (chainIDs) and parents;
#   - every level of the chain, viewed (`ctr snapshots view`) and mounted
#     read-only, lists identically with tests/integration/tree-manifest.py:
#     path, type, mode with setuid/setgid/sticky, uid, gid, size, mtime in
#     ns, nlink, hard-link groups, symlink target, device numbers, every
#     xattr and the sha256 of file contents;
#   - overlayfs: every layer's own directory (the lowerdirs of the top
#     view, in order) lists identically too, so the whiteout encoding
#     (0/0 character devices, trusted.overlay.opaque) is compared as well.
# A mismatch prints the unified diff of the two listings.
#
# mtimes that containerd sets to the moment of the unpack (see
# tree-manifest.py: the snapshot directory, overlay whiteouts, directories
# its native snapshotter copies) cannot be reproduced by anyone, containerd
# included; they are listed as mtime=unpack and the count is printed.
#
# Environment: PARITY_IMAGES (comma-separated image names from images.tsv;
# default all), BERTH_TEST_IMAGES, CONTAINERD, CTR, BERTHD, BERTH.
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
CONTAINERD=${CONTAINERD:-$(command -v containerd || true)}
[ -n "$CONTAINERD" ] || skip "containerd not installed (apt-get install containerd)"
for tool in docker-registry skopeo python3; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
MANIFEST=$top_srcdir/tests/integration/tree-manifest.py

# Anything set from now on is the unpack's doing, not the image's (the
# test images' mtimes are in 2023).
SINCE=$(date +%s)

IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
[ "$rc" = 0 ] || { fail "building the test images"; finish; }

CTRD_PID=
REGDIR=$T/registry
stop_containerd () {
  [ -n "$CTRD_PID" ] || return 0
  if kill -0 "$CTRD_PID" 2>/dev/null; then
    echo "+ kill $CTRD_PID  (containerd)"
    kill -TERM "$CTRD_PID"
    for _ in $(seq 50); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$CTRD_PID" 2>/dev/null && kill -KILL "$CTRD_PID"
  fi
  wait "$CTRD_PID" 2>/dev/null
  CTRD_PID=
}
stop_registry () { bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1; }
# Views first (so that nothing stays mounted below the daemons' roots),
# then the daemons, the registry and lib.sh's cleanup (berthd, mounts, $T).
unmount_all () {
  grep -o " $T/mnt[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | while read -r m; do umount "$m" || umount -l "$m"; done
}
trap 'unmount_all; stop_containerd; stop_registry; cleanup' EXIT

echo "+ tests/registry/start.sh $REGDIR"
REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
run bash "$top_srcdir/tests/registry/push.sh" "$REG" --images "$IMAGES"
[ "$rc" = 0 ] || { fail "pushing the test images"; finish; }

# The edge-case images (tests/integration/edge-image.py): modes, owners,
# xattrs, capabilities, devices, type changes across layers...; edge-xlink
# adds a hard link to a lower layer's file, which overlayfs cannot unpack.
EDGE_NAMES=()
for e in edge edge-xlink; do
  if [ -n "${PARITY_IMAGES:-}" ] && [[ ",$PARITY_IMAGES," != *",$e,"* ]]; then continue; fi
  flag=; [ "$e" = edge-xlink ] && flag=--cross-layer-link
  run python3 "$top_srcdir/tests/integration/edge-image.py" $flag "$T/$e"
  [ "$rc" = 0 ] || { fail "writing the $e image"; finish; }
  run skopeo copy --dest-tls-verify=false "oci:$T/$e:latest" "docker://$REG/$e:latest"
  [ "$rc" = 0 ] || { fail "pushing the $e image"; finish; }
  EDGE_NAMES+=("$e")
done

start_berthd "$T/d" || finish
BSOCK=$SOCK

# containerd on a temporary root; CRI off (it is not what is compared).
CD=$T/ctrd
CSOCK=$CD/containerd.sock
mkdir -p "$CD"
cat >"$CD/config.toml" <<EOF
version = 2
root = "$CD/root"
state = "$CD/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/root/opt"
EOF
echo "+ $CONTAINERD --config $CD/config.toml &  (log: $CD/containerd.log)"
"$CONTAINERD" --config "$CD/config.toml" >"$CD/containerd.log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 150); do
  [ -S "$CSOCK" ] && "$CTR" --address "$CSOCK" version >/dev/null 2>&1 && break
  kill -0 "$CTRD_PID" 2>/dev/null || break
  sleep 0.1
done
if ! "$CTR" --address "$CSOCK" version >/dev/null 2>&1; then
  echo "containerd did not come up; its log:"; sed 's/^/  | /' "$CD/containerd.log" | tail -30
  fail "containerd start"
  finish
fi
pass "containerd (pid $CTRD_PID) and berthd (pid $BERTHD_PID) are up"

# The images to compare: every one in images.tsv, or $PARITY_IMAGES.
NAMES=()
while IFS=$'\t' read -r name _ repo _; do
  case $name in '#'*|'') continue ;; esac
  if [ -n "${PARITY_IMAGES:-}" ] && [[ ",$PARITY_IMAGES," != *",$name,"* ]]; then continue; fi
  NAMES+=("$name")
  declare "REPO_${name//-/_}=$repo"
done < "$IMAGES/images.tsv"
for e in "${EDGE_NAMES[@]}"; do NAMES+=("$e"); declare "REPO_${e//-/_}=$e:latest"; done
[ "${#NAMES[@]}" -gt 0 ] || { fail "no image selected (PARITY_IMAGES=${PARITY_IMAGES:-})"; finish; }
echo "images: ${NAMES[*]}"

# plugin_ok SOCK TYPE ID: the status column of `ctr plugins ls` says ok.
plugin_ok () {
  [ "$("$CTR" --address "$1" plugins ls 2>/dev/null | awk -v t="$2" -v id="$3" '$1 == t && $2 == id { print $NF }')" = ok ]
}

# chain SOCK NS S: the snapshot keys of namespace NS, leaf last, one per
# line, as "KEY PARENT" (PARENT "-" for the base layer); the namespace must
# hold one image's chain (one leaf).
chain () {
  "$CTR" --address "$1" -n "$2" snapshots --snapshotter "$3" ls 2>/dev/null | python3 -c '
import sys
parent = {}
for line in sys.stdin.read ().splitlines ()[1:]:
    c = line.split ()
    if not c:
        continue
    parent[c[0]] = c[1] if len (c) == 3 else "-"
leaves = set (parent) - set (parent.values ())
if len (leaves) != 1:
    sys.exit ("%d leaves: %s" % (len (leaves), " ".join (sorted (leaves))))
out = []
k = leaves.pop ()
while k != "-":
    out.append ("%s %s" % (k, parent.get (k, "?")))
    k = parent.get (k, "-")
print ("\n".join (reversed (out)))
'
}

# listing SOCK NS S KEY OUT [REFERENCE]: view KEY, mount the view
# read-only, list it into OUT (tree-manifest.py, with REFERENCE as its
# --reference), unmount.  Sets MOUNTCMD (ctr's mount command for the view);
# the view stays until remove_views: a removal sets off berthd's garbage
# collector, which would take the next view before it is labelled.
NVIEW=0
VIEWS=()
remove_views () {
  local v sock ns s view
  for v in "${VIEWS[@]}"; do
    read -r sock ns s view <<<"$v"
    "$CTR" --address "$sock" -n "$ns" snapshots --snapshotter "$s" rm "$view" >/dev/null 2>"$T/err" ||
      { sed 's/^/  ! /' "$T/err"; fail "$s: removing view $view in $ns"; }
  done
  VIEWS=()
}
listing () {
  local sock=$1 ns=$2 s=$3 key=$4 out=$5 ref=${6:-}
  NVIEW=$((NVIEW + 1))
  local view=parity-view-$NVIEW mnt=$T/mnt-$NVIEW
  local c=("$CTR" --address "$sock" -n "$ns" snapshots --snapshotter "$s")
  mkdir -p "$mnt"
  # ctr holds no lease on a view, so either daemon's garbage collector may
  # take it at any moment (containerd's after every 100 changes, berthd's
  # after a removal): label it a GC root at once, and start over in the
  # rare case the collector came between the two calls.
  local ok=0
  for _ in 1 2 3; do
    if ! "${c[@]}" view "$view" "$key" >/dev/null 2>"$T/err"; then
      sed 's/^/  ! /' "$T/err"; fail "$s: view of ${key:7:12} in $ns"; return 1
    fi
    if "${c[@]}" label "$view" containerd.io/gc.root=unpack-parity >/dev/null 2>"$T/err" &&
       MOUNTCMD=$("${c[@]}" mounts "$mnt" "$view" 2>"$T/err"); then
      ok=1; break
    fi
    echo "  (view $view of ${key:7:12} was collected before it was labelled; again)"
    "${c[@]}" rm "$view" >/dev/null 2>&1
  done
  [ "$ok" = 1 ] || { sed 's/^/  ! /' "$T/err"; fail "$s: keeping a view of ${key:7:12} in $ns"; return 1; }
  local typ src opts
  read -r _ _ typ src _ _ opts <<<"$MOUNTCMD"
  if ! mount -t "$typ" "$src" "$mnt" -o "$opts"; then
    echo "  ! $MOUNTCMD"; fail "$s: mounting the view of ${key:7:12} in $ns"
    "${c[@]}" rm "$view" >/dev/null 2>&1; return 1
  fi
  local st=0
  python3 "$MANIFEST" --unpack-since "$SINCE" ${ref:+--reference "$ref"} "$mnt" >"$out" || st=1
  umount "$mnt" || { umount -l "$mnt"; fail "$s: unmounting $mnt"; }
  rmdir "$mnt"
  VIEWS+=("$sock $ns $s $view")
  [ "$st" = 0 ] || { fail "$s: listing the view of ${key:7:12} in $ns"; return 1; }
}

# layer_dirs MOUNTCMD: the directories of a view's mount, top layer first
# (overlay lowerdirs, or a bind mount's source).
layer_dirs () {
  local typ src opts
  read -r _ _ typ src _ _ opts <<<"$1"
  if [ "$typ" = overlay ]; then
    tr ',' '\n' <<<"$opts" | sed -n 's/^lowerdir=//p' | tr ':' '\n'
  else
    echo "$src"
  fi
}

# compare REF MINE WHAT: identical listings, or the diff.
compare () {
  local n
  n=$(grep -c . "$1")
  if diff -u --label "containerd: $3" --label "${4:-berth}: $3" "$1" "$2" >"$T/diff"; then
    pass "$3: identical ($n entries)"
  else
    echo "  diff (- containerd, + ${4:-berth}), first 80 lines of $(wc -l <"$T/diff"):"
    head -n 80 "$T/diff" | sed 's/^/  | /'
    fail "$3: the trees differ"
  fi
}

ROUTES="berth ctr"
tested=0
for S in overlayfs native; do
  if ! plugin_ok "$BSOCK" io.berth.snapshotter.v1 "$S"; then
    st=$("$BERTH" --address "$BSOCK" plugins ls 2>/dev/null | awk -v id="$S" '$1 == "io.berth.snapshotter.v1" && $2 == id { print $NF }')
    why=$("$BERTH" --address "$BSOCK" plugins ls -d 2>/dev/null | grep -A8 "snapshotter.v1.*$S" | grep -i -m1 -E "error|reason" || true)
    echo "SKIP: berth's $S snapshotter is ${st:-missing}${why:+: $why}"
    continue
  fi
  if ! plugin_ok "$CSOCK" io.containerd.snapshotter.v1 "$S"; then
    echo "SKIP: containerd's $S snapshotter is not ok here; nothing to compare with"
    continue
  fi
  tested=$((tested + 1))
  for I in "${NAMES[@]}"; do
    repo_var=REPO_${I//-/_}
    IMG=$REG/${!repo_var}
    echo "=== $S: $I ($IMG)"
    ns=p-$S-$I
    case "$I" in
      edge-xlink) xlink_entry=b/link-from-upper ;;
      edgecase) xlink_entry=links/from-upper ;;  # tests/images: edgecase-overlay is its overlay twin
      *) xlink_entry= ;;
    esac
    if [ -n "$xlink_entry" ] && [ "$S" = overlayfs ]; then
      # An overlay layer directory cannot hold a hard link to a lower
      # layer's file: containerd refuses the layer, and so must berth,
      # leaving no active (half-unpacked) snapshot behind.
      run "$CTR" --address "$CSOCK" -n "$ns-ref" images pull --plain-http --snapshotter "$S" "$IMG"
      [ "$rc" != 0 ] && pass "$S/$I: containerd refuses the cross-layer hard link" \
        || fail "$S/$I: containerd unpacked a cross-layer hard link into overlayfs"
      run "$BERTH" --address "$BSOCK" -n "$ns-berth" pull --plain-http --snapshotter "$S" "$IMG"
      [ "$rc" != 0 ] && pass "$S/$I: berth pull refuses it too" || fail "$S/$I: berth pull succeeded"
      expect_contains "$xlink_entry" "$S/$I: ... naming the entry"
      run "$CTR" --address "$BSOCK" -n "$ns-ctr" images pull --plain-http --snapshotter "$S" "$IMG"
      [ "$rc" != 0 ] && pass "$S/$I: so does Diff.Apply under ctr" || fail "$S/$I: ctr images pull into berthd succeeded"
      for R in $ROUTES; do
        run "$CTR" --address "$BSOCK" -n "$ns-$R" snapshots --snapshotter "$S" ls
        expect_not_contains "Active" "$S/$I/$R: no active snapshot is left"
      done
      continue
    fi
    run "$CTR" --address "$CSOCK" -n "$ns-ref" images pull --plain-http --snapshotter "$S" "$IMG"
    [ "$rc" = 0 ] || { fail "$S/$I: ctr images pull into containerd"; continue; }
    run "$BERTH" --address "$BSOCK" -n "$ns-berth" pull --plain-http --snapshotter "$S" "$IMG"
    expect_rc 0 "$S/$I: berth pull (daemon-side unpack)"
    run "$CTR" --address "$BSOCK" -n "$ns-ctr" images pull --plain-http --snapshotter "$S" "$IMG"
    expect_rc 0 "$S/$I: ctr images pull into berthd (client-side unpack)"

    if ! chain "$CSOCK" "$ns-ref" "$S" >"$T/chain-ref"; then
      fail "$S/$I: containerd's snapshot chain"; continue
    fi
    mapfile -t KEYS < <(cut -d' ' -f1 "$T/chain-ref")
    echo "  chain: ${#KEYS[@]} layer(s), top ${KEYS[-1]}"

    # Reference listings: every level of the chain, then the layer dirs.
    for k in "${!KEYS[@]}"; do
      listing "$CSOCK" "$ns-ref" "$S" "${KEYS[$k]}" "$T/ref-$k" || continue
    done
    REFDIRS=()
    [ "$S" = overlayfs ] && mapfile -t REFDIRS < <(layer_dirs "$MOUNTCMD" | tac)
    for j in "${!REFDIRS[@]}"; do
      python3 "$MANIFEST" --unpack-since "$SINCE" "${REFDIRS[$j]}" >"$T/refdir-$j" \
        || fail "$S/$I: listing containerd's layer dir ${REFDIRS[$j]}"
    done

    for R in $ROUTES; do
      what="$S/$I/$R"
      if ! chain "$BSOCK" "$ns-$R" "$S" >"$T/chain-$R"; then
        fail "$what: berthd's snapshot chain"; continue
      fi
      if diff -u --label containerd --label "$R" "$T/chain-ref" "$T/chain-$R" >"$T/diff"; then
        pass "$what: the same chain of snapshots (keys and parents)"
      else
        sed 's/^/  | /' "$T/diff"; fail "$what: the snapshot chains differ"; continue
      fi
      for k in "${!KEYS[@]}"; do
        [ -f "$T/ref-$k" ] || continue
        listing "$BSOCK" "$ns-$R" "$S" "${KEYS[$k]}" "$T/$R-$k" "$T/ref-$k" || continue
        compare "$T/ref-$k" "$T/$R-$k" "$what: level $((k + 1))/${#KEYS[@]} mounted (${KEYS[$k]:7:12})" "$R"
      done
      [ "$S" = overlayfs ] || continue
      mapfile -t DIRS < <(layer_dirs "$MOUNTCMD" | tac)
      if [ "${#DIRS[@]}" != "${#REFDIRS[@]}" ]; then
        fail "$what: ${#DIRS[@]} layer dirs in berthd's top view, ${#REFDIRS[@]} in containerd's"; continue
      fi
      for j in "${!DIRS[@]}"; do
        python3 "$MANIFEST" --unpack-since "$SINCE" --reference "$T/refdir-$j" "${DIRS[$j]}" >"$T/$R-dir-$j" \
          || { fail "$what: listing ${DIRS[$j]}"; continue; }
        compare "$T/refdir-$j" "$T/$R-dir-$j" "$what: layer $((j + 1)) directory (whiteouts as stored)" "$R"
      done
    done
    remove_views
    rm -f "$T"/ref-* "$T"/refdir-* "$T"/berth-* "$T"/ctr-*
  done
done

[ "$tested" -gt 0 ] || skip "no snapshotter is ok in both berthd and containerd"
left=$(grep -c " $T/mnt" /proc/self/mounts)
[ "$left" = 0 ] && pass "no view is left mounted" || fail "$left view mount(s) left"
grep -E "level=(error|warn)|panic|ERROR" "$BERTHD_LOG" | sed 's/^/  berthd: /' || true
finish
