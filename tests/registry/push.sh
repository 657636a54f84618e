#!/bin/bash
# tests/registry/push.sh REGISTRY [--images DIR] [--creds USER:PASS]
#                        [--cert-dir DIR] [--only NAME,...]
#
# Push the test images built by tests/images/build.sh (DIR, default
# $BERTH_TEST_IMAGES or build/test-images; DIR/images.tsv lists them) to
# REGISTRY (HOST:PORT) with skopeo, each to REGISTRY/NAME:latest:
#
#   skopeo copy --preserve-digests [flags from images.tsv] \
#     --dest-tls-verify=false SOURCE docker://REGISTRY/NAME:latest
#
# (flags: --all for the OCI index and the Docker manifest list, --format
# v2s2 for the Docker v2s2 manifest).  With --cert-dir, TLS is verified
# against the CA in that directory (start.sh's $REGISTRY_CERTS_D/$REGISTRY)
# instead of --dest-tls-verify=false.  After each push the manifest is read
# back and its digest compared with the one the build recorded, so the
# registry serves exactly the bytes built.
# Exit: 0 all pushed and verified, 1 otherwise, 2 bad usage.

set -uo pipefail

reg=
images=${BERTH_TEST_IMAGES:-build/test-images}
creds=
certdir=
only=
while [ $# -gt 0 ]; do
  case $1 in
    --images) images=$2; shift ;;
    --creds) creds=$2; shift ;;
    --cert-dir) certdir=$2; shift ;;
    --only) only=,$2,; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "push.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -z "$reg" ] || { echo "push.sh: one REGISTRY only" >&2; exit 2; }; reg=$1 ;;
  esac
  shift
done
[ -n "$reg" ] || { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ -f "$images/images.tsv" ] || {
  echo "push.sh: $images/images.tsv missing; run tests/images/build.sh $images" >&2; exit 2; }
command -v skopeo >/dev/null || { echo "push.sh: skopeo missing (apt-get install skopeo)" >&2; exit 2; }

dest=(--dest-tls-verify=false)
src=(--tls-verify=false)
if [ -n "$certdir" ]; then
  dest=(--dest-cert-dir "$certdir")
  src=(--cert-dir "$certdir")
fi
if [ -n "$creds" ]; then
  dest+=(--dest-creds "$creds")
  src+=(--creds "$creds")
fi

status=0
n=0
while IFS=$'\t' read -r name source repo _ digest flags _; do
  case $name in '#'*|'') continue ;; esac
  [ -z "$only" ] || [[ $only == *",$name,"* ]] || continue
  ref="${source%%:*}:$images/${source#*:}"
  fl=()
  [ "$flags" = - ] || read -ra fl <<< "$flags"
  echo "+ skopeo copy -q --preserve-digests ${fl[*]} ${dest[*]} $ref docker://$reg/$repo" >&2
  if ! out=$(skopeo copy -q --preserve-digests "${fl[@]}" "${dest[@]}" "$ref" "docker://$reg/$repo" 2>&1); then
    echo "push.sh: pushing $name failed: $out" >&2
    status=1
    continue
  fi
  if ! raw=$(skopeo inspect --raw "${src[@]}" "docker://$reg/$repo" 2>&1); then
    echo "push.sh: reading back $reg/$repo failed: $raw" >&2
    status=1
    continue
  fi
  got=$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)
  if [ "sha256:$got" != "$digest" ]; then
    echo "push.sh: $reg/$repo serves manifest sha256:$got, built $digest" >&2
    status=1
    continue
  fi
  n=$((n + 1))
done < "$images/images.tsv"
echo "push.sh: $n image(s) pushed to $reg and verified" >&2
exit $status
