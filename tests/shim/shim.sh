#!/bin/bash
# berth-shim with real runc and busybox-static: tests/shim/shim-test.py
# drives it over its socket (run to completion, logs and rotation, FIFOs,
# stdin, exec, kill, wait, subscribe, terminal, delete, survival of its
# starter's SIGKILL, bad input).  Needs root; SKIP otherwise.
top_builddir=${top_builddir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_srcdir=${top_srcdir:-$top_builddir}
SHIM=${SHIM:-$top_builddir/shim/berth-shim}
RUNC=${RUNC:-/usr/sbin/runc}
BUSYBOX=${BUSYBOX:-/bin/busybox}

skip () { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (runc creates namespaces and cgroups)"
[ -x "$SHIM" ] || skip "berth-shim is not built ($SHIM)"
[ -x "$RUNC" ] || skip "runc is not installed ($RUNC; apt-get install runc)"
[ -x "$BUSYBOX" ] && "$BUSYBOX" --list >/dev/null 2>&1 || skip "busybox-static is not installed ($BUSYBOX)"
command -v python3 >/dev/null || skip "python3 is not installed"

export SHIM RUNC BUSYBOX
echo "+ SHIM=$SHIM RUNC=$RUNC python3 $top_srcdir/tests/shim/shim-test.py $*"
exec timeout 300 python3 "$top_srcdir/tests/shim/shim-test.py" "$@"
