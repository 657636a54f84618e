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
show ctr --address "$SOCK" version

say "a local registry as the mirror of docker.io (no internet needed)"
IMAGES=$top/build/test-images
bash tests/images/build.sh "$IMAGES" >/dev/null
REGDIR=$(mktemp -d /tmp/berth-demo-registry.XXXXXX); rmdir "$REGDIR"
REG=$(bash tests/registry/start.sh "$REGDIR")
MIRROR=/etc/berth/certs.d/docker.io
cleanup () {
  berth rm -f berth-demo-redis >/dev/null 2>&1 || true
  rm -f "$MIRROR/hosts.toml"; rmdir "$MIRROR" 2>/dev/null || true
  bash tests/registry/stop.sh "$REGDIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
skopeo copy -q --dest-tls-verify=false "oci:$IMAGES/busybox:latest" "docker://$REG/library/busybox:latest"
# A redis image built offline by tests/images/build.sh: Debian's redis-server
# and its libraries on a busybox base, published as docker.io's redis:alpine.
skopeo copy -q --dest-tls-verify=false "oci:$IMAGES/redis-sized:latest" "docker://$REG/library/redis:alpine"
mkdir -p "$MIRROR"
cat > "$MIRROR/hosts.toml" <<TOML
# written by scripts/demo.sh, removed when it ends
server = "https://registry-1.docker.io"
[host."http://$REG"]
  capabilities = ["pull", "resolve"]
TOML
echo "docker.io is mirrored by http://$REG ($MIRROR/hosts.toml)"

show berth pull docker.io/library/busybox:latest
show berth images ls
show berth snapshots ls
show berth content explain "$(berth images ls --format json | python3 -c 'import json,sys; print([i for i in json.load(sys.stdin) if i["name"].endswith("busybox:latest")][0]["target"]["digest"])' 2>/dev/null || true)"
show berth run --rm docker.io/library/busybox:latest echo "hello from a berth container"

say "redis, pulled through the mirror and run in the background"
show berth pull docker.io/library/redis:alpine
show berth run -d --name berth-demo-redis redis:alpine
for i in $(seq 1 100); do
  berth logs berth-demo-redis 2>/dev/null | grep -q "Ready to accept connections" && break
  sleep 0.1
done
show berth logs berth-demo-redis
show berth ps
show berth exec berth-demo-redis redis-cli ping
show berth rm -f berth-demo-redis
show berth rmi docker.io/library/busybox:latest docker.io/library/redis:alpine
show berth gc
say "done: berthd keeps running; \`berth --help\` lists what it can do"
