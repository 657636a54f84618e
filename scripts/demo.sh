#!/bin/bash
# The README's first command: on a fresh Debian 12, as root, install every
# dependency, build, install berth, start berthd (under systemd where systemd
# runs, directly otherwise) and show it working with berth and the real ctr.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
say () { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show () { echo "\$ $*"; "$@"; }

say "installing dependencies (apt)"
bash scripts/deps.sh

say "building"
./autogen.sh >/dev/null
mkdir -p build/release
cd build/release
"$top/configure" -q --prefix=/usr/local --sysconfdir=/etc --localstatedir=/var --runstatedir=/run
make -j"$(nproc)" >/dev/null

say "installing"
make install >/dev/null
cd "$top"
echo "berthd: $(command -v berthd)   berth: $(command -v berth)   config: /etc/berth/config.toml"

say "starting berthd"
SOCK=/run/berth/berth.sock
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now berth.socket berth.service
  systemctl restart berth.service
  systemctl --no-pager status berth.service | head -5
else
  # No systemd here: run it directly, replacing one this script started before.
  if [ -r /run/berth/berthd.lock ]; then
    old=$(cat /run/berth/berthd.lock 2>/dev/null || true)
    if [ -n "$old" ] && [ "$(cat /proc/"$old"/comm 2>/dev/null)" = berthd ]; then
      kill -TERM "$old"; while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
    fi
  fi
  setsid berthd --config /etc/berth/config.toml >>/var/log/berthd.log 2>&1 < /dev/null &
  echo "berthd started (pid $!), log in /var/log/berthd.log; stop it with: kill \$(cat /run/berth/berthd.lock)"
fi
for i in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.05; done

say "berthd at work"
show berth version
show berth plugins ls
show berth namespaces create demo owner=readme
show berth namespaces ls
show ctr --address "$SOCK" version
show ctr --address "$SOCK" namespaces ls
show berth namespaces rm demo
say "done: berthd keeps running; \`berth --help\` lists what it can do"
