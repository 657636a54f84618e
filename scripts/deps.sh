#!/bin/bash
# Install every Debian 12 package berth needs to build, test and benchmark.
# Idempotent; safe to run again.  Needs root.
set -euo pipefail

PACKAGES=(
  # build
  build-essential autoconf automake libtool pkg-config
  # libraries the design names (ARCHITECTURE.md)
  libnghttp2-dev protobuf-c-compiler libprotobuf-c-dev libsqlite3-dev libjson-c-dev
  libcurl4-openssl-dev libssl-dev
  # diff apply: tar parsing, gzip (ISA-L, zlib fallback), zstd
  libarchive-dev libisal-dev libzstd-dev zlib1g-dev
  # running containers: seccomp filters, capabilities, Docker's default
  # seccomp profile (/usr/share/containers/seccomp.json), crun as a second
  # external OCI runtime beside runc, iproute2 for network namespaces
  libseccomp-dev libcap-dev golang-github-containers-common crun iproute2
  # the fuse snapshotter (libfuse3, fusermount3)
  libfuse3-dev fuse3
  # the containerd API .proto files, compiled at build time
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev golang-github-gogo-googleapis-dev
  # tests: Check, the real ctr (and containerd + runc as the benchmark anchor),
  # curl for raw h2c requests, python3 for the shared runners, systemd's tools
  check containerd runc curl python3 systemd procps sqlite3
  # a real registry, test images built offline (redis-server: the files of
  # the redis-sized image), and the tools that push them
  docker-registry skopeo busybox-static zstd apache2-utils openssl redis-server
  # sanitizers and fuzzing
  clang libclang-rt-14-dev llvm
)

if [ "$(id -u)" != 0 ]; then
  echo "scripts/deps.sh: needs root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian's containerd must not start its own daemon: tests and benchmarks run
# their own instances on private sockets.  policy-rc.d stops invoke-rc.d from
# starting services during this install; systemd (where it runs) gets a mask.
policy=/usr/sbin/policy-rc.d
had_policy=0; [ -e $policy ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod 755 $policy; fi
if [ -d /run/systemd/system ]; then systemctl mask containerd.service >/dev/null 2>&1 || true; fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [ $had_policy = 0 ]; then rm -f $policy; fi
