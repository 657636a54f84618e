#!/bin/bash
# tests/images/build.sh [--force] [OUTDIR]: build berth's test images as OCI
# image layouts under OUTDIR (default build/test-images), offline and
# reproducibly, then validate every JSON document with oci-validate and every
# tagged reference with skopeo.  See tests/images/README.md.
#
# Idempotent: OUTDIR/.stamp holds a hash of the inputs (these scripts, the
# busybox binary, zstd's and Python's versions, and the path, size and mtime
# of every host file debian-sized and redis-sized copy: mkimages.py
# --inputs); when it matches, nothing is rebuilt (--force rebuilds anyway).
# The build goes to OUTDIR.tmp.PID and is renamed into place only once it
# validated, so OUTDIR is either complete or the previous one.
#
# Tools: python3 (stdlib), busybox-static, zstd, skopeo, redis-server (its
# binary and libraries go into redis-sized; installed with apt-get when
# missing and run as root); oci-validate from $OCI_VALIDATE or
# ../shared/tools next to the source tree (schema checks are skipped with a
# warning when it is not there).
# Exit: 0 built or up to date, 1 build or validation failed, 2 bad usage or
# missing tools.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
force=0
out=
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build.sh: unknown option $a" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "build.sh: one OUTDIR only" >&2; exit 2; }; out=$a ;;
  esac
done
out=${out:-build/test-images}
out=${out%/}

BUSYBOX=${BUSYBOX:-/bin/busybox}
export BUSYBOX
missing=()
command -v python3 >/dev/null || missing+=(python3)
command -v zstd >/dev/null || missing+=(zstd)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v sha256sum >/dev/null || missing+=(coreutils)
[ -x "$BUSYBOX" ] || missing+=(busybox-static)
if [ ! -x /usr/bin/redis-server ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # Only the files are wanted: policy-rc.d keeps the package from starting
  # the service.
  echo "build.sh: installing redis-server (apt-get) for the redis-sized image" >&2
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod 755 $policy; own_policy=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >&2 || true
  [ $own_policy = 0 ] || rm -f $policy
fi
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "build.sh: missing: ${missing[*]} (apt-get install ${missing[*]})" >&2
  exit 2
fi
OCI_VALIDATE=${OCI_VALIDATE:-$here/../../../shared/tools/oci-validate}

inputs=$(python3 "$here/mkimages.py" --inputs) || {
  echo "build.sh: mkimages.py --inputs failed" >&2; exit 1; }
key=$( { cat "$here/build.sh" "$here/mkimages.py" "$BUSYBOX"
         zstd --version; python3 --version; printf '%s\n' "$inputs"; } | sha256sum | cut -d' ' -f1)
if [ $force = 0 ] && [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$key" ]; then
  echo "build.sh: $out is up to date"
  exit 0
fi

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
echo "build.sh: building into $tmp"
python3 "$here/mkimages.py" "$tmp"

fail=0
bad () { echo "build.sh: INVALID: $*" >&2; fail=1; }

# Every blob is named by its digest (OCI: blobs/sha256/HEX; dir: HEX and
# HEX.manifest.json).
nblobs=0
while read -r f; do
  sum=$(sha256sum "$f" | cut -d' ' -f1)
  name=$(basename "$f" .manifest.json)
  [ "$sum" = "$name" ] || bad "$f has sha256 $sum"
  nblobs=$((nblobs + 1))
done < <(find "$tmp" -type f -regextype posix-extended \
           -regex '.*/[0-9a-f]{64}(\.manifest\.json)?' | sort)
echo "build.sh: $nblobs blobs match their digests"

# Every JSON document against the OCI schemas (Docker types as aliases).
if [ -x "$OCI_VALIDATE" ] || [ -f "$OCI_VALIDATE" ]; then
  n=0
  while IFS=$'\t' read -r name mt path; do
    if ! msg=$(python3 "$OCI_VALIDATE" --strict "$mt" "$tmp/$path" 2>&1); then
      bad "$name: $path ($mt): $msg"
    fi
    n=$((n + 1))
  done < "$tmp/documents.tsv"
  echo "build.sh: oci-validate --strict: $n documents checked"
else
  echo "build.sh: warning: $OCI_VALIDATE not found; JSON schema validation skipped" >&2
fi

# Every tag resolves in skopeo to the digest we wrote, and skopeo can read
# the image behind it (for an index: the host platform's).
while IFS=$'\t' read -r name source _ _ digest _ _; do
  case $name in '#'*) continue ;; esac
  ref="${source%%:*}:$tmp/${source#*:}"
  if ! raw=$(skopeo inspect --raw "$ref" 2>&1); then
    bad "skopeo inspect --raw $ref: $raw"; continue
  fi
  got="sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)"
  [ "$got" = "$digest" ] || bad "$ref: manifest digest $got, expected $digest"
  if ! msg=$(skopeo inspect "$ref" 2>&1 >/dev/null); then
    bad "skopeo inspect $ref: $msg"
  fi
  if ! msg=$(skopeo inspect --config "$ref" 2>&1 >/dev/null); then
    bad "skopeo inspect --config $ref: $msg"
  fi
done < "$tmp/images.tsv"
[ $fail = 0 ] || { echo "build.sh: validation failed; $tmp removed" >&2; exit 1; }
echo "build.sh: skopeo inspect: every reference resolves to its digest"

echo "$key" > "$tmp/.stamp"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
cat "$out/sizes.txt"
echo "build.sh: images in $out (images.tsv lists them)"
