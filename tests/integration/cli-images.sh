#!/bin/bash
# berth images / content / leases / login / logout, driven against a real
# containerd (Debian's package) with ctr as the referee, then against berthd
# when it serves the Content, Images and Leases services (probed with
# `berth content ls`; a daemon that answers Unimplemented is skipped with the
# reason printed).  login/logout run without any daemon, against a
# temporary $DOCKER_CONFIG, a fake docker-credential helper and, when
# Debian's docker-registry and htpasswd are installed, a real registry with
# basic auth (and a tiny Bearer token server when python3 is there).
#
# The test image is built here, offline: an OCI layout tar with
#   berth-test:multi   an index for the host platform (busybox-static as the
#                      one layer) and a second platform whose content ctr
#                      does not import (so it is listed but never read),
#   berth-test:single  the host manifest alone (OCI media types),
#   berth-test:docker  the same as a Docker v2 schema 2 manifest,
# imported with `ctr images import --no-unpack`.
#
# Starts its own containerd/berthd on temporary roots and sockets, kills
# them by pid and removes everything at exit.
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
#
# Environment: BERTH, BERTHD (paths of the binaries; default
# $top_builddir/...), CONTAINERD, CTR, BUSYBOX (/bin/busybox).
set -u

BERTH=${BERTH:-${top_builddir:-.}/berth}
BERTHD=${BERTHD:-$(dirname "$BERTH")/berthd}
CONTAINERD=${CONTAINERD:-$(command -v containerd)}
CTR=${CTR:-$(command -v ctr)}
BUSYBOX=${BUSYBOX:-/bin/busybox}
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
COMPLETION=$srcdir/etc/bash-completion/berth

skip() { echo "SKIP: $*"; exit 77; }
[ -x "$BERTH" ] || { echo "FAIL: berth binary not found at $BERTH (set BERTH=)"; exit 1; }
[ -n "$CONTAINERD" ] && [ -x "$CONTAINERD" ] || skip "containerd is not installed (apt-get install containerd)"
[ -n "$CTR" ] && [ -x "$CTR" ] || skip "ctr is not installed (apt-get install containerd)"
[ "$(id -u)" = 0 ] || skip "containerd needs root"
[ -x "$BUSYBOX" ] || skip "no $BUSYBOX for the test image (apt-get install busybox-static)"

T=$(mktemp -d /tmp/berth-cli-images.XXXXXX)
chmod 0755 "$T"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        echo "+ kill $pid"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        wait "$pid" 2>/dev/null
    done
    awk -v t="$T" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT

FAILED=0
OUT=$T/out
ERR=$T/err

# run EXPECTED_STATUS CMD...: run, show the command and its output, check
# the exit status.
run() {
    local want=$1; shift
    echo "+ $*"
    "$@" >"$OUT" 2>"$ERR" </dev/null
    check_status "$want" $?
}
# run_in EXPECTED_STATUS INPUT CMD...: the same with INPUT on stdin.
run_in() {
    local want=$1 input=$2; shift 2
    echo "+ $* <<< '$input'"
    "$@" >"$OUT" 2>"$ERR" <<<"$input"
    check_status "$want" $?
}
check_status() {
    local want=$1 got=$2
    head -n 30 "$OUT" | sed 's/^/  | /'
    local n; n=$(wc -l <"$OUT")
    [ "$n" -gt 30 ] && echo "  | ... ($((n - 30)) more lines)"
    sed 's/^/  ! /' "$ERR"
    if [ "$got" != "$want" ]; then
        echo "FAIL: exit status $got, expected $want"
        FAILED=1
        return 1
    fi
}
# expect out|err REGEX [what]: the last run's stdout/stderr matches.
expect() {
    local f=$OUT; [ "$1" = err ] && f=$ERR
    if ! grep -Eq -- "$2" "$f"; then
        echo "FAIL: ${3:-output} does not match /$2/"
        FAILED=1
    fi
}
expect_not() {
    local f=$OUT; [ "$1" = err ] && f=$ERR
    if grep -Eq -- "$2" "$f"; then
        echo "FAIL: ${3:-output} matches /$2/ but should not"
        FAILED=1
    fi
}
# re STRING: STRING as an extended regular expression matching itself.
re() { printf '%s' "$1" | sed 's/[][\\.+*?^$(){}|]/\\&/g'; }
# same WHAT GOT WANT
same() {
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1: got '$2', expected '$3'"
        FAILED=1
    else
        echo "  ok: $1 = $3"
    fi
}

# ---- the test image ----

case $(uname -m) in
    x86_64) HOSTARCH=amd64 ;;
    aarch64) HOSTARCH=arm64 ;;
    *) HOSTARCH=$(uname -m) ;;
esac
if [ "$HOSTARCH" = amd64 ]; then OTHERARCH=arm64; else OTHERARCH=amd64; fi

L=$T/layout
mkdir -p "$L/blobs/sha256"
# blob FILE: store FILE as a blob; sets DIGEST and SIZE.
blob() {
    local hex; hex=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$L/blobs/sha256/$hex"
    DIGEST=sha256:$hex
    SIZE=$(stat -c %s "$1")
}
mkdir -p "$T/rootfs/bin" "$T/other/etc"
cp "$BUSYBOX" "$T/rootfs/bin/busybox"
ln -s busybox "$T/rootfs/bin/sh"
echo "not for this host" >"$T/other/etc/motd"
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C "$T/rootfs" -cf "$T/layer.tar" bin
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C "$T/other" -cf "$T/other.tar" etc
DIFF_ID=sha256:$(sha256sum "$T/layer.tar" | cut -d' ' -f1)
OTHER_DIFF_ID=sha256:$(sha256sum "$T/other.tar" | cut -d' ' -f1)
gzip -n -c "$T/layer.tar" >"$T/layer.tgz"
gzip -n -c "$T/other.tar" >"$T/other.tgz"
blob "$T/layer.tgz"; LAYER=$DIGEST; LAYER_SIZE=$SIZE
blob "$T/other.tgz"; OLAYER=$DIGEST; OLAYER_SIZE=$SIZE

printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$HOSTARCH" "$DIFF_ID" >"$T/config.json"
blob "$T/config.json"; CONFIG=$DIGEST; CONFIG_SIZE=$SIZE
printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$OTHERARCH" "$OTHER_DIFF_ID" >"$T/oconfig.json"
blob "$T/oconfig.json"; OCONFIG=$DIGEST; OCONFIG_SIZE=$SIZE

OCI_M=application/vnd.oci.image.manifest.v1+json
OCI_I=application/vnd.oci.image.index.v1+json
DOCKER_M=application/vnd.docker.distribution.manifest.v2+json
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$OCI_M" "$CONFIG" "$CONFIG_SIZE" "$LAYER" "$LAYER_SIZE" >"$T/manifest.json"
blob "$T/manifest.json"; MANIFEST=$DIGEST; MANIFEST_SIZE=$SIZE
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$OCI_M" "$OCONFIG" "$OCONFIG_SIZE" "$OLAYER" "$OLAYER_SIZE" >"$T/omanifest.json"
blob "$T/omanifest.json"; OMANIFEST=$DIGEST; OMANIFEST_SIZE=$SIZE
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"%s","size":%s}]}' \
    "$DOCKER_M" "$CONFIG" "$CONFIG_SIZE" "$LAYER" "$LAYER_SIZE" >"$T/dmanifest.json"
blob "$T/dmanifest.json"; DMANIFEST=$DIGEST; DMANIFEST_SIZE=$SIZE
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}},{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}]}' \
    "$OCI_I" "$OCI_M" "$MANIFEST" "$MANIFEST_SIZE" "$HOSTARCH" "$OCI_M" "$OMANIFEST" "$OMANIFEST_SIZE" "$OTHERARCH" >"$T/index.json"
blob "$T/index.json"; INDEX=$DIGEST; INDEX_SIZE=$SIZE

printf '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
name_ann() { printf '"annotations":{"io.containerd.image.name":"docker.io/library/berth-test:%s","org.opencontainers.image.ref.name":"%s"}' "$1" "$1"; }
printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s,%s},{"mediaType":"%s","digest":"%s","size":%s,%s},{"mediaType":"%s","digest":"%s","size":%s,%s}]}' \
    "$OCI_I" "$INDEX" "$INDEX_SIZE" "$(name_ann multi)" \
    "$OCI_M" "$MANIFEST" "$MANIFEST_SIZE" "$(name_ann single)" \
    "$DOCKER_M" "$DMANIFEST" "$DMANIFEST_SIZE" "$(name_ann docker)" >"$L/index.json"
tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C "$L" -cf "$T/image.tar" oci-layout index.json blobs

MULTI_BYTES=$((INDEX_SIZE + MANIFEST_SIZE + CONFIG_SIZE + LAYER_SIZE))
SINGLE_BYTES=$((MANIFEST_SIZE + CONFIG_SIZE + LAYER_SIZE))
DOCKER_BYTES=$((DMANIFEST_SIZE + CONFIG_SIZE + LAYER_SIZE))
IMG=docker.io/library/berth-test
PLATS=$(printf 'linux/%s\nlinux/%s\n' "$HOSTARCH" "$OTHERARCH" | sort | paste -sd,)
echo "test image: index $INDEX ($MULTI_BYTES bytes for $HOSTARCH), platforms $PLATS"

# ---- the suite, run against one daemon ----

# suite NAME SOCKET
suite() {
    local name=$1 sock=$2
    local B=("$BERTH" --address "$sock" --namespace berth-test)
    local C=("$CTR" --address "$sock" --namespace berth-test)
    echo "==== $name"

    echo "== import (ctr)"
    run 0 "${C[@]}" images import --no-unpack "$T/image.tar" || return

    echo "== images ls"
    run 0 "${B[@]}" images ls
    expect out '^REF +TYPE +DIGEST +SIZE +PLATFORMS +LABELS$' "header"
    expect out "^$(re "$IMG:multi") +$(re "$OCI_I") +$INDEX +[0-9.]+ [KMG]?i?B +$PLATS +-$" "the index row"
    expect out "^$(re "$IMG:single") +$(re "$OCI_M") +$MANIFEST +[0-9.]+ [KMG]?i?B +linux/$HOSTARCH +-$" "the manifest row"
    expect out "^$(re "$IMG:docker") +$(re "$DOCKER_M") +$DMANIFEST +[0-9.]+ [KMG]?i?B +linux/$HOSTARCH +-$" "the docker row"
    # ctr computes SIZE and PLATFORMS on its side from the same content:
    # both must agree (ctr prints "1.9 MiB", berth the same format).
    for tag in multi single docker; do
        local theirs ours
        theirs=$("${C[@]}" images ls "name==$IMG:$tag" | awk 'NR == 2 {print $4, $5, $6}')
        ours=$(awk -v n="$IMG:$tag" '$1 == n {print $4, $5, $6}' "$OUT")
        same "SIZE and PLATFORMS of :$tag against ctr" "$ours" "$theirs"
    done
    run 0 "${B[@]}" images ls --format json
    local sizes
    sizes=$(grep -E '^    "size": [0-9]+,?$' "$OUT" | tr -dc '0-9\n' | paste -sd' ')
    same "exact sizes (docker multi single)" "$sizes" "$DOCKER_BYTES $MULTI_BYTES $SINGLE_BYTES"
    expect out "\"digest\": \"$INDEX\""
    expect out '"complete": true'
    run 0 "${B[@]}" images list -q
    same "images ls -q" "$(paste -sd' ' "$OUT")" "$IMG:docker $IMG:multi $IMG:single"
    run 0 "${B[@]}" images ls "name==$IMG:single"
    expect out "^$IMG:single "
    expect_not out ":multi" "a filtered listing"
    run 0 "${B[@]}" images
    expect out "^REF +TYPE" "berth images alone lists"
    run 0 "${B[@]}" images -q
    expect out "^$IMG:multi$" "berth images -q"

    echo "== images inspect"
    run 1 "${B[@]}" images inspect "$IMG:multi" "$IMG:nosuch"
    expect err "^berth: image \`$IMG:nosuch\`: not found$"
    expect out '"index": \{'
    expect out "\"architecture\": \"$HOSTARCH\"" "the host config"
    expect out "\"missing\": \[ *\"$OMANIFEST\" *\]|\"missing\": \[$" "the other platform's manifest reported missing"
    grep -q "$OMANIFEST" "$OUT" || { echo "FAIL: inspect does not name the missing $OMANIFEST"; FAILED=1; }
    run 0 "${B[@]}" image inspect "$IMG:docker"
    expect out "\"mediaType\": \"$(re "$DOCKER_M")\""
    expect out '"config": \{'
    expect out '"diff_ids": \['

    echo "== tag, label, rm"
    run 0 "${B[@]}" images tag "$IMG:multi" "$IMG:two" "$IMG:three"
    expect out "^$IMG:two$"
    run 0 "${C[@]}" images ls -q
    expect out "^$IMG:three$" "ctr sees the new tag"
    run 0 "${C[@]}" images ls "name==$IMG:two"
    expect out "$INDEX" "the tag's target"
    run 1 "${B[@]}" images tag "$IMG:single" "$IMG:two"
    expect err "image \`$IMG:two\` already exists \(use --force"
    run 0 "${B[@]}" tag --force "$IMG:single" "$IMG:two"
    run 0 "${C[@]}" images ls "name==$IMG:two"
    expect out "$MANIFEST" "the forced tag points at :single's manifest"
    run 1 "${B[@]}" tag "$IMG:nosuch" "$IMG:x"
    expect err "^berth: image \`$IMG:nosuch\`: not found$"
    run 0 "${B[@]}" images label "$IMG:two" owner=berth flag
    expect out '^flag=true,owner=berth$'
    run 0 "${C[@]}" images ls "name==$IMG:two"
    expect out 'flag=true,owner=berth' "ctr sees the labels"
    run 0 "${B[@]}" images label "$IMG:two" flag=
    expect out '^owner=berth$'
    run 0 "${B[@]}" images ls 'labels.owner==berth'
    expect out "^$IMG:two .* owner=berth$"
    run 1 "${B[@]}" images label "$IMG:nosuch" a=b
    expect err "image \`$IMG:nosuch\`: not found"
    run 1 "${B[@]}" images rm "$IMG:three" "$IMG:nosuch" "$IMG:two"
    expect out "^$IMG:three$"
    expect out "^$IMG:two$" "rm goes on after a missing image"
    expect err "^berth: image \`$IMG:nosuch\`: not found$"
    run 0 "${B[@]}" tag "$IMG:single" "$IMG:four"
    run 0 "${B[@]}" rmi --sync "$IMG:four"
    run 0 "${C[@]}" images ls -q
    expect_not out ":(two|three|four)$" "ctr's view after rm"

    echo "== content"
    run 0 "${B[@]}" content ls
    expect out '^DIGEST +SIZE +AGE +LABELS$'
    local hsize
    hsize=$(awk -v s="$LAYER_SIZE" 'BEGIN { u = "B"; split("KiB MiB GiB", us, " "); i = 0;
        while (s >= 1024 && i < 3) { s /= 1024; i++; u = us[i] } printf "%.1f %s", s, u }')
    expect out "^$LAYER +$hsize +(Less than a second|[0-9]+ seconds?|About a minute) ago +" "the layer row"
    run 0 "${B[@]}" content ls -q
    expect out "^$CONFIG$"
    expect_not out "$OMANIFEST" "the other platform was not imported"
    run 0 "${B[@]}" content ls --format json
    expect out "\"digest\": \"$LAYER\","
    expect out "\"size\": $LAYER_SIZE,"
    run 0 "${B[@]}" content label "$LAYER" berth.test/owner=me
    expect out 'berth.test/owner=me'
    run 0 "${C[@]}" content ls
    expect out "^$LAYER.*berth.test/owner=me" "ctr sees the content label"
    run 0 "${B[@]}" content ls 'labels."berth.test/owner"==me'
    same "content ls with a label filter" "$(grep -c '^sha256:' "$OUT")" 1
    run 0 "${B[@]}" content label "$LAYER" berth.test/owner=
    expect_not out 'berth.test/owner'
    echo "+ ${B[*]} content get $LAYER > $T/got"
    "${B[@]}" content get "$LAYER" >"$T/got" || { echo "FAIL: content get"; FAILED=1; }
    cmp "$T/got" "$T/layer.tgz" && echo "  ok: content get returns the layer byte for byte" ||
        { echo "FAIL: content get returned other bytes"; FAILED=1; }
    run 1 "${B[@]}" content get "sha256:$(printf '%064d' 0)"
    expect err "^berth: content \`sha256:0{64}\`: not found$"
    run 2 "${B[@]}" content get
    local extra
    extra=sha256:$(printf 'berth extra blob' | sha256sum | cut -d' ' -f1)
    echo "+ printf 'berth extra blob' | ${C[*]} content ingest extra-ref"
    printf 'berth extra blob' | "${C[@]}" content ingest extra-ref || { echo "FAIL: ctr content ingest"; FAILED=1; }
    run 1 "${B[@]}" content rm "$extra" "sha256:$(printf '%064d' 1)"
    expect out "^$extra$"
    expect err 'not found'
    run 0 "${C[@]}" content ls -q
    expect_not out "$extra" "ctr's view after content rm"

    echo "== content active"
    mkfifo "$T/fifo"
    echo "+ ${C[*]} content ingest active-ref < $T/fifo &"
    "${C[@]}" content ingest active-ref <"$T/fifo" &
    local ingest=$!
    exec 3>"$T/fifo"
    # ctr fills a 1 MiB buffer before each write: give it one and a bit.
    head -c $((1048576 + 100)) /dev/zero >&3
    local seen=0
    for _ in $(seq 50); do
        "${B[@]}" content active >"$OUT" 2>"$ERR"
        # The row appears at open, its size once the first write landed.
        grep -Eq '^active-ref +1\.0 MiB ' "$OUT" && { seen=1; break; }
        sleep 0.1
    done
    cat "$OUT" | sed 's/^/  | /'
    [ $seen = 1 ] || { echo "FAIL: content active does not show active-ref with 1 MiB written"; FAILED=1; }
    expect out '^REF +SIZE +AGE$'
    expect out '^active-ref +1\.0 MiB +(Less than a second|[0-9]+ seconds?) ago$'
    run 0 "${B[@]}" content active --format json
    expect out '"ref": "active-ref"'
    expect out '"offset": 1048576'
    exec 3>&-
    wait $ingest
    rm -f "$T/fifo"

    echo "== content fetch (wired to the daemon-side pull)"
    run 0 "${B[@]}" content fetch --help
    expect out '^Usage: berth content fetch \[OPTIONS\] REF'
    expect out '--all-platforms'
    expect out '--plain-http'
    expect out '--user'
    run 2 "${B[@]}" content fetch

    echo "== leases"
    run 0 "${B[@]}" leases create --id berth-l1 --expires 1h a=b
    expect out '^berth-l1$'
    run 0 "${C[@]}" leases ls
    expect out '^berth-l1 .*a=b,containerd.io/gc.expire=20[0-9-]+T[0-9:]+Z' "ctr's view of the lease"
    run 0 "${B[@]}" leases create --expires 0
    expect out '^[0-9]+-[A-Za-z0-9_-]{4}$' "a random id"
    local rid; rid=$(cat "$OUT")
    run 0 "${B[@]}" leases ls
    expect out '^ID +CREATED +LABELS$'
    expect out "^berth-l1 +(Less than a second|[0-9]+ seconds?) ago +a=b,containerd.io/gc.expire="
    expect out "^$rid +(Less than a second|[0-9]+ seconds?) ago *-?$" "a lease that never expires has no label"
    run 0 "${B[@]}" leases ls -q
    same "leases ls -q" "$(sort "$OUT" | paste -sd' ')" "$(printf '%s\n' berth-l1 "$rid" | sort | paste -sd' ')"
    run 0 "${B[@]}" leases ls --format json
    expect out '"id": "berth-l1"'
    expect out '"createdAt": "20'
    run 0 "${B[@]}" leases ls 'id==berth-l1'
    expect_not out "$rid"
    run 1 "${B[@]}" leases create --id berth-l1
    expect err 'creating lease `berth-l1`: .*already exists'
    run 2 "${B[@]}" leases create --expires soon
    run 1 "${B[@]}" leases rm berth-l1 nosuch-lease "$rid"
    expect out '^berth-l1$'
    expect err "lease \`nosuch-lease\`: not found"
    run 0 "${C[@]}" leases ls -q
    expect_not out "berth-l1|$rid" "ctr's view after rm"

    echo "== completion"
    local got
    got=$(complete_words "$BERTH" --address "$sock" --namespace berth-test images rm "$IMG:s")
    same "complete: berth images rm $IMG:s<TAB>" "$got" "$IMG:single"
    got=$(complete_words "$BERTH" --address "$sock" --namespace berth-test content get "$CONFIG")
    same "complete: berth content get <config digest><TAB>" "$got" "$CONFIG"

    echo "== an image whose manifest is gone"
    run 0 "${C[@]}" content rm "$MANIFEST"
    run 0 "${B[@]}" images ls
    expect out "^$(re "$IMG:multi") +$(re "$OCI_I") +$INDEX +- +$PLATS +-$" "no size without the manifest, platforms from the index"
    expect out "^$(re "$IMG:single") +$(re "$OCI_M") +$MANIFEST +- +- +-$" "neither size nor platform"
    expect out "^$(re "$IMG:docker") +$(re "$DOCKER_M") +$DMANIFEST +[0-9.]+ [KMG]?i?B +linux/$HOSTARCH +-$" "the docker image is whole"
    run 0 "${B[@]}" images ls --format json "name==$IMG:single"
    expect out '"size": null'
    expect out '"complete": false'

    echo "== cleanup"
    run 0 "${B[@]}" images rm --sync "$IMG:multi" "$IMG:single" "$IMG:docker"
}

complete_words() {
    # shellcheck disable=SC1090
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _berth; echo "${COMPREPLY[*]}"' \
        _ "$COMPLETION" "$@"
}

# ---- containerd ----

start_containerd() {
    local d=$T/containerd
    mkdir -p "$d"
    CSOCK=$d/containerd.sock
    cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
    echo "+ $CONTAINERD --config $d/config.toml &"
    "$CONTAINERD" --config "$d/config.toml" >"$d/log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        "$CTR" --address "$CSOCK" version >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "containerd did not come up; its log:"; sed 's/^/  /' "$d/log"
    exit 1
}

start_containerd
suite containerd "$CSOCK"

echo "== errors and usage"
run 1 "$BERTH" --address "$T/missing.sock" images ls
expect err "cannot connect to berthd at $T/missing.sock"
run 2 "$BERTH" images ls --format yaml
expect err 'unknown format'
run 2 "$BERTH" images tag only-one
expect err 'a source image and at least one new name are needed'
run 2 "$BERTH" images inspect
run 2 "$BERTH" leases rm
run 0 "$BERTH" help images
expect out '^  inspect '
expect out '^  ls +List images \(alias: list\)'
run 0 "$BERTH" rmi --help
expect out '^Usage: berth rmi \[OPTIONS\] NAME\.\.\.'

# ---- berthd ----

BERTHD_DONE=skipped
if [ ! -x "$BERTHD" ]; then
    echo "SKIP (berthd half): no berthd at $BERTHD"
else
    d=$T/berthd
    mkdir -p "$d"
    BSOCK=$d/berth.sock
    printf 'version = 1\nroot = "%s/root"\nstate = "%s/state"\nplugin_dirs = []\nrequired_plugins = []\n[grpc]\n  address = "%s"\n' \
        "$d" "$d" "$BSOCK" >"$d/config.toml"
    echo "+ $BERTHD --config $d/config.toml &"
    "$BERTHD" --config "$d/config.toml" >"$d/log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -S "$BSOCK" ] && break; sleep 0.05; done
    probe=$("$BERTH" --address "$BSOCK" content ls 2>&1)
    probe_rc=$?
    echo "+ berth --address $BSOCK content ls -> $probe_rc: $probe"
    if [ ! -S "$BSOCK" ]; then
        echo "FAIL: berthd did not come up; its log:"; sed 's/^/  /' "$d/log"; FAILED=1
    elif [ $probe_rc != 0 ] && grep -Eqi 'unimplemented|not implemented|unknown service' <<<"$probe"; then
        echo "SKIP (berthd half): berthd does not serve Content yet: $probe"
    else
        suite berthd "$BSOCK"
        BERTHD_DONE=run
        if [ "$FAILED" != 0 ]; then echo "berthd log:"; tail -30 "$d/log" | sed 's/^/  /'; fi
    fi
fi

# ---- login / logout (no daemon) ----

echo "==== login / logout"
export DOCKER_CONFIG=$T/docker
CFG=$DOCKER_CONFIG/config.json
b64() { printf '%s' "$1" | base64 -w0; }

run_in 0 s3cret "$BERTH" login --no-verify -u alice --password-stdin registry.example:5000
expect out '^Credentials saved \(not verified\)$'
expect err "stored unencrypted in $CFG"
same "config dir mode" "$(stat -c %a "$DOCKER_CONFIG")" 700
same "config.json mode" "$(stat -c %a "$CFG")" 600
grep -q "\"registry.example:5000\": {" "$CFG" && grep -q "\"auth\": \"$(b64 alice:s3cret)\"" "$CFG" &&
    echo "  ok: auths.\"registry.example:5000\".auth = base64(alice:s3cret)" ||
    { echo "FAIL: config.json lacks the entry:"; cat "$CFG"; FAILED=1; }

# An existing file keeps every key that is not ours.
cat >"$CFG" <<'EOF'
{
	"auths": {
		"other.example": { "auth": "b3RoZXI6cHc=", "email": "o@example" },
		"https://registry.example:5000/v2/": { "auth": "b2xkOm9sZA==" }
	},
	"psFormat": "table {{.ID}}",
	"proxies": { "default": { "httpProxy": "http://proxy:3128" } },
	"credHelpers": { "helper.example": "fake" }
}
EOF
chmod 0644 "$CFG"
run_in 0 'pw with spaces' "$BERTH" login --no-verify --username bob --password-stdin https://registry.example:5000/v2/
for needle in '"psFormat": "table {{.ID}}"' '"httpProxy": "http://proxy:3128"' '"helper.example": "fake"' \
    '"email": "o@example"' "\"auth\": \"$(b64 'bob:pw with spaces')\""; do
    grep -qF "$needle" "$CFG" && echo "  ok: keeps $needle" || { echo "FAIL: config.json lost $needle"; FAILED=1; }
done
grep -q 'https://registry.example:5000/v2/' "$CFG" &&
    { echo "FAIL: the old spelling of the same server is still there"; FAILED=1; }
same "config.json mode after rewrite" "$(stat -c %a "$CFG")" 600
ls "$DOCKER_CONFIG" | grep -v '^config.json$' && { echo "FAIL: temporary files left behind"; FAILED=1; }

run_in 0 pw "$BERTH" login --no-verify -u carol --password-stdin
grep -qF "\"https://index.docker.io/v1/\": {" "$CFG" && echo "  ok: Docker Hub's key" ||
    { echo "FAIL: no https://index.docker.io/v1/ entry"; FAILED=1; }
run_in 0 pw "$BERTH" login --no-verify -u carol --password-stdin docker.io
same "docker.io is Docker Hub" "$(grep -c 'index.docker.io' "$CFG")" 1

run 0 "$BERTH" logout registry.example:5000
expect out '^Removing login credentials for registry.example:5000$'
grep -q 'registry.example:5000' "$CFG" && { echo "FAIL: logout left the entry"; FAILED=1; }
grep -q 'other.example' "$CFG" || { echo "FAIL: logout removed another entry"; FAILED=1; }
run 0 "$BERTH" logout registry.example:5000
expect out '^Not logged in to registry.example:5000$'
run 0 "$BERTH" logout
expect out '^Removing login credentials for https://index.docker.io/v1/$'

echo "== credential helper"
mkdir -p "$T/bin"
cat >"$T/bin/docker-credential-fake" <<EOF
#!/bin/sh
# A credential helper that records what it was asked.
log=$T/helper.log
input=\$(cat)
echo "\$1 \$input" >>"\$log"
case \$1 in
    get) [ -f $T/helper.store ] && cat $T/helper.store || { echo "credentials not found in native keychain"; exit 1; } ;;
    store) printf '%s' "\$input" >$T/helper.store ;;
    erase) [ -f $T/helper.store ] || { echo "credentials not found in native keychain"; exit 1; }; rm $T/helper.store ;;
esac
EOF
chmod +x "$T/bin/docker-credential-fake"
PATH=$T/bin:$PATH run_in 0 hunter2 "$BERTH" login --no-verify -u dave --password-stdin helper.example
expect_not err 'unencrypted' "no plain-text warning with a helper"
grep -qF 'store {"ServerURL":"helper.example","Username":"dave","Secret":"hunter2"}' "$T/helper.log" &&
    echo "  ok: the helper got the credentials" || { echo "FAIL: helper log:"; cat "$T/helper.log"; FAILED=1; }
grep -q 'hunter2' "$CFG" && { echo "FAIL: the secret went into config.json"; FAILED=1; }
PATH=$T/bin:$PATH run 0 "$BERTH" logout helper.example
expect out '^Removing login credentials for helper.example$'
grep -q '^erase helper.example$' "$T/helper.log" || { echo "FAIL: no erase through the helper"; FAILED=1; }
PATH=$T/bin:$PATH run 0 "$BERTH" logout helper.example
expect out '^Not logged in to helper.example$'
run_in 1 pw "$BERTH" login --no-verify -u x --password-stdin helper.example
expect err 'docker-credential-fake not found on PATH'

echo "== usage"
run 2 "$BERTH" login --no-verify registry.example
expect err 'a username is needed'
run 2 "$BERTH" login --no-verify -u x registry.example
expect err 'a password is needed'
run 2 "$BERTH" login --password-stdin registry.example
expect err -- '--password-stdin needs --username'
run 2 "$BERTH" login a b
run_in 0 pw "$BERTH" login --no-verify -u x -p pw registry.example
expect err 'WARNING! Using --password via the CLI is insecure'

# wait_port PORT: until something listens on 127.0.0.1:PORT (5 s at most).
wait_port() {
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1"
}

echo "== verification against a real registry"
REGISTRY=$(command -v docker-registry)
if [ -z "$REGISTRY" ] || ! command -v htpasswd >/dev/null; then
    echo "SKIP (verification): needs docker-registry and htpasswd (apt-get install docker-registry apache2-utils)"
else
    port=$((20000 + RANDOM % 20000))
    htpasswd -Bbc "$T/htpasswd" alice wonderland >/dev/null 2>&1
    cat >"$T/registry.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $T/registry } }
http: { addr: 127.0.0.1:$port }
auth: { htpasswd: { realm: berth-test, path: $T/htpasswd } }
EOF
    "$REGISTRY" serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
    rm -f "$CFG"
    run_in 1 wrong "$BERTH" login --plain-http -u alice --password-stdin "127.0.0.1:$port"
    expect err "^berth: login to 127.0.0.1:$port: unauthorized: incorrect username or password$"
    [ -e "$CFG" ] && { echo "FAIL: a refused login wrote config.json"; FAILED=1; }
    run_in 0 wonderland "$BERTH" login --plain-http -u alice --password-stdin "127.0.0.1:$port"
    expect out '^Login Succeeded$'
    grep -qF "\"auth\": \"$(b64 alice:wonderland)\"" "$CFG" || { echo "FAIL: not saved"; FAILED=1; }
    # A loopback registry without TLS is tried over HTTP (as docker does).
    run_in 0 wonderland "$BERTH" login -u alice --password-stdin "localhost:$port"
    expect out '^Login Succeeded$'
    run_in 1 pw "$BERTH" login --plain-http -u alice --password-stdin "127.0.0.1:1"
    expect err "login to 127.0.0.1:1: GET http://127.0.0.1:1/v2/: "
fi

if ! command -v python3 >/dev/null; then
    echo "SKIP (bearer verification): needs python3 for the token server"
else
    port=$((20000 + RANDOM % 20000))
    cat >"$T/token.py" <<'EOF'
import base64, http.server, json, sys, urllib.parse
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        if u.path == "/v2/":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="http://127.0.0.1:%d/token",service="berth-test"' % port)
            self.end_headers()
        elif u.path == "/token":
            q = urllib.parse.parse_qs(u.query)
            good = "Basic " + base64.b64encode(b"eve:tokenpw").decode()
            if self.headers.get("Authorization") == good and q.get("service") == ["berth-test"] and q.get("account") == ["eve"]:
                body = json.dumps({"token": "t0k3n"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(401)
                self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
    python3 "$T/token.py" "$port" &
    PIDS+=($!)
    wait_port "$port"
    run_in 1 bad "$BERTH" login --plain-http -u eve --password-stdin "127.0.0.1:$port"
    expect err 'unauthorized: incorrect username or password'
    run_in 0 tokenpw "$BERTH" login --plain-http -u eve --password-stdin "127.0.0.1:$port"
    expect out '^Login Succeeded$'
fi

if [ "$FAILED" != 0 ]; then
    echo "containerd log:"; tail -20 "$T/containerd/log" | sed 's/^/  /'
    echo "FAIL"
    exit 1
fi
echo "PASS (berthd half: $BERTHD_DONE)"
