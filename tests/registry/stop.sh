#!/bin/bash
# tests/registry/stop.sh [--keep] DIR: stop what tests/registry/start.sh DIR
# started (docker-registry and the token server, by the pids in DIR/*.pid:
# SIGTERM, SIGKILL after 5 s) and remove DIR (not with --keep).
#
# A pid is signalled only while /proc/PID/cmdline still names DIR, so a
# recycled pid is never hit; DIR is removed only when it holds start.sh's
# marker file.  Stopping something already stopped is not an error.
# Exit: 0, 1 when a process would not die or DIR could not be removed,
# 2 on bad usage.

set -uo pipefail

keep=0
dir=
for a in "$@"; do
  case $a in
    --keep) keep=1 ;;
    -*) echo "stop.sh: unknown option $a" >&2; exit 2 ;;
    *) [ -z "$dir" ] || { echo "usage: stop.sh [--keep] DIR" >&2; exit 2; }; dir=$a ;;
  esac
done
[ -n "$dir" ] || { echo "usage: stop.sh [--keep] DIR" >&2; exit 2; }
[ -d "$dir" ] || exit 0
dir=$(cd "$dir" && pwd)
if [ ! -f "$dir/.berth-test-registry" ]; then
  echo "stop.sh: $dir was not made by start.sh (no .berth-test-registry); not touching it" >&2
  exit 2
fi

status=0
ours () { # pid: alive and started with DIR on its command line
  [ -r "/proc/$1/cmdline" ] && tr '\0' '\n' < "/proc/$1/cmdline" | grep -qF -- "$dir/"
}
for name in registry token; do
  f="$dir/$name.pid"
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  case $pid in ''|*[!0-9]*) continue ;; esac
  ours "$pid" || { rm -f "$f"; continue; }
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do
    ours "$pid" || break
    sleep 0.1
  done
  if ours "$pid"; then
    kill -KILL "$pid" 2>/dev/null
    sleep 0.2
    if ours "$pid"; then
      echo "stop.sh: $name (pid $pid) does not die" >&2
      status=1
      continue
    fi
  fi
  rm -f "$f"
done

if [ $keep = 0 ]; then
  rm -rf "$dir"
  [ ! -e "$dir" ] || { echo "stop.sh: could not remove $dir" >&2; status=1; }
fi
exit $status
