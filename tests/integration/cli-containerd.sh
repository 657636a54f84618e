#!/bin/bash
# The berth CLI against a real containerd (Debian's package), with ctr as
# the referee: version, plugins ls, namespaces create/label/ls/rm, error
# messages and exit codes, and the bash completion.
#
# Starts its own containerd on a temporary root/state/socket (never the
# system one), kills it by pid and removes everything at exit.
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
#
# Environment: BERTH (path of the berth binary; default $top_builddir/berth
# or ./berth), CONTAINERD, CTR.
set -u

BERTH=${BERTH:-${top_builddir:-.}/berth}
CONTAINERD=${CONTAINERD:-$(command -v containerd)}
CTR=${CTR:-$(command -v ctr)}
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
COMPLETION=$srcdir/etc/bash-completion/berth

skip() { echo "SKIP: $*"; exit 77; }
[ -x "$BERTH" ] || { echo "FAIL: berth binary not found at $BERTH (set BERTH=)"; exit 1; }
[ -n "$CONTAINERD" ] && [ -x "$CONTAINERD" ] || skip "containerd is not installed (apt-get install containerd)"
[ -n "$CTR" ] && [ -x "$CTR" ] || skip "ctr is not installed (apt-get install containerd)"
[ "$(id -u)" = 0 ] || skip "containerd needs root"

T=$(mktemp -d /tmp/berth-cli-test.XXXXXX)
SOCK=$T/containerd.sock
CTRD_PID=

cleanup() {
    if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
        echo "+ kill $CTRD_PID"
        kill "$CTRD_PID"
        for _ in $(seq 50); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$CTRD_PID" 2>/dev/null && kill -9 "$CTRD_PID"
        wait "$CTRD_PID" 2>/dev/null
    fi
    # Anything containerd mounted under its root, deepest first.
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
    "$@" >"$OUT" 2>"$ERR"
    local got=$?
    # Show the output, abridged: enough to see what a failure was about.
    head -n 25 "$OUT" | sed 's/^/  | /'
    local n; n=$(wc -l <"$OUT")
    [ "$n" -gt 25 ] && echo "  | ... ($((n - 25)) more lines)"
    sed 's/^/  ! /' "$ERR"
    if [ "$got" != "$want" ]; then
        echo "FAIL: exit status $got, expected $want"
        FAILED=1
        return 1
    fi
}
# expect FILE REGEX [what]: FILE (out or err of the last run) matches.
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

cat >"$T/config.toml" <<EOF
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
echo "+ $CONTAINERD --config $T/config.toml &"
"$CONTAINERD" --config "$T/config.toml" >"$T/containerd.log" 2>&1 &
CTRD_PID=$!
for _ in $(seq 100); do
    [ -S "$SOCK" ] && "$CTR" --address "$SOCK" version >/dev/null 2>&1 && break
    kill -0 "$CTRD_PID" 2>/dev/null || break
    sleep 0.1
done
if ! "$CTR" --address "$SOCK" version >/dev/null 2>&1; then
    echo "containerd did not come up; its log:"
    sed 's/^/  /' "$T/containerd.log"
    exit 1
fi

B=("$BERTH" --address "$SOCK")
C=("$CTR" --address "$SOCK")

echo "== version"
server_version=$("${C[@]}" version | awk '/^Server:/ {s=1} s && /Version:/ {print $2; exit}')
run 0 "${B[@]}" version
expect out "^Client:"
expect out "^  Version: +[0-9]"
expect out "^Server:"
grep -Fq "$server_version" "$OUT" || { echo "FAIL: server version $server_version not shown"; FAILED=1; }
run 0 "${B[@]}" version --format json
expect out '"server": \{'
expect out "\"version\": \"$server_version\""
expect out '"uuid": "[0-9a-f-]{36}"'

echo "== plugins"
run 0 "${B[@]}" plugins ls
expect out '^TYPE +ID +SOURCE +STATUS$' "header"
expect out '^io\.containerd\.grpc\.v1 +version +- +ok$' "the version service row"
expect out '^io\.containerd\.snapshotter\.v1 +native +- +ok$' "the native snapshotter row"
ours=$(grep -c '^io\.' "$OUT")
theirs=$("${C[@]}" plugins ls | grep -c '^io\.')
[ "$ours" = "$theirs" ] || { echo "FAIL: berth lists $ours plugins, ctr $theirs"; FAILED=1; }
# Every status ctr prints as ok/skip/error, berth prints the same.
"${C[@]}" plugins ls | awk 'NR > 1 {print $1, $2, $NF}' | sort >"$T/ctr-status"
awk 'NR > 1 {print $1, $2, $NF}' "$OUT" | sort >"$T/berth-status"
if ! diff -u "$T/ctr-status" "$T/berth-status"; then echo "FAIL: statuses differ from ctr's"; FAILED=1; fi
run 0 "${B[@]}" plugin ls type==io.containerd.snapshotter.v1
expect out 'overlayfs'
expect_not out 'grpc\.v1'
run 0 "${B[@]}" plugins ls -d
expect out '^Type: +io\.containerd\.content\.v1$'
expect out '^Status: +ok$'
expect out '^  root = '
run 0 "${B[@]}" plugins ls --format json
expect out '^\['
expect out '"type": "io.containerd.grpc.v1"'
expect out '"status": "ok"'
run 2 "${B[@]}" plugins ls --format yaml
expect err 'unknown format'

echo "== namespaces"
run 0 "${B[@]}" namespaces create berth-test a=1 flag
run 0 "${C[@]}" namespaces ls
expect out '^berth-test +a=1,flag=true' "ctr's view of the created namespace"
run 1 "${B[@]}" namespaces create berth-test
expect err '^berth: creating namespace `berth-test`: .*already exists'
run 0 "${B[@]}" namespaces label berth-test b=2 a=
run 0 "${C[@]}" namespaces ls
expect out '^berth-test +b=2,flag=true' "ctr's view after label"
run 0 "${C[@]}" namespaces create from-ctr
run 0 "${C[@]}" namespaces label from-ctr x=y
run 0 "${B[@]}" namespaces ls
expect out '^NAME +LABELS$'
expect out '^berth-test +b=2,flag=true$'
expect out '^from-ctr +x=y$'
run 0 "${B[@]}" ns list -q
expect out '^berth-test$'
expect out '^from-ctr$'
run 0 "${B[@]}" namespaces ls --format json
expect out '"name": "berth-test"'
expect out '"b": "2"'
run 1 "${B[@]}" namespaces create 'bad/name'
expect err '^berth: creating namespace `bad/name`: .*invalid argument'
run 0 "${B[@]}" namespaces rm berth-test from-ctr no-such-namespace
expect out '^berth-test$'
run 0 "${C[@]}" namespaces ls -q
expect_not out '^(berth-test|from-ctr)$'

echo "== errors and usage"
run 1 "$BERTH" --address "$T/missing.sock" version
expect err "^berth: cannot connect to berthd at $T/missing.sock: No such file or directory \(is berthd running\?\)$"
BERTH_ADDRESS=$T/missing.sock run 1 "$BERTH" namespaces ls
expect err "cannot connect to berthd at $T/missing.sock"
run 2 "$BERTH"
expect err '^Usage: berth'
run 2 "$BERTH" no-such-command
expect err 'unknown command `no-such-command`'
run 2 "$BERTH" namespaces frobnicate
run 2 "$BERTH" namespaces ls --bogus
expect err 'unknown option --bogus'
run 0 "$BERTH" namespaces create --help
expect out '^Usage: berth namespaces create NAME \[KEY=VALUE\.\.\.\]'
run 0 "$BERTH" help plugins ls
expect out '--detailed'
run 0 "$BERTH" --version
expect out '^berth version '

echo "== bash completion"
complete_words() {
    # shellcheck disable=SC1090
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _berth; echo "${COMPREPLY[*]}"' \
        _ "$COMPLETION" "$@"
}
check_completion() {
    local want=$1; shift
    local got
    got=$(complete_words "$BERTH" --address "$SOCK" "$@")
    echo "+ complete: berth $*<TAB> -> $got"
    [ "$got" = "$want" ] || { echo "FAIL: expected: $want"; FAILED=1; }
}
check_completion "attach containers content create exec fsck gc images inspect kill leases login logout logs namespaces pause plugins ps pull restart rm rmi run snapshots start stats stop system tag tasks top unpause version wait help" ""
check_completion "create label ls rm" namespaces ""
check_completion "label ls" ns l
check_completion "--detailed --format --help" plugins ls --
check_completion "table json" plugins ls --format ""
check_completion "--address --namespace --timeout --connect-timeout --help --version" --
"${C[@]}" namespaces create compl-ns
got=$(complete_words "$BERTH" --address "$SOCK" namespaces rm comp)
echo "+ complete: berth namespaces rm comp<TAB> -> $got"
[ "$got" = "compl-ns" ] || { echo "FAIL: expected compl-ns"; FAILED=1; }

if [ "$FAILED" != 0 ]; then
    echo "containerd log:"; sed 's/^/  /' "$T/containerd.log" | tail -20
    echo "FAIL"
    exit 1
fi
echo "PASS"
