#!/bin/bash
# Score berth's OCI validator on the image-spec conformance corpus: every
# document of ../shared/testdata/oci-image-spec/index.tsv must get the
# corpus verdict from tests/oci-validate-berth; the Docker originals under
# raw/ must get the same verdict under their Docker media types.  Prints
# "N passed, M failed".  SKIP (77) when ../shared is absent.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
corpus="$top_srcdir/../shared/testdata/oci-image-spec"
validator="$top_builddir/tests/oci-validate-berth"

if [ ! -f "$corpus/index.tsv" ]; then
  echo "SKIP: OCI image-spec corpus not found at $corpus"
  exit 77
fi
if [ ! -x "$validator" ]; then
  echo "FAIL: $validator not built"
  exit 1
fi

docker_type () {
  case "$1" in
    application/vnd.oci.image.manifest.v1+json) echo application/vnd.docker.distribution.manifest.v2+json ;;
    application/vnd.oci.image.index.v1+json) echo application/vnd.docker.distribution.manifest.list.v2+json ;;
    application/vnd.oci.image.config.v1+json) echo application/vnd.docker.container.image.v1+json ;;
  esac
}

verdict () { # MEDIATYPE FILE -> valid|invalid|error, reason in $reason
  reason=$("$validator" "$1" "$2" 2>&1 >/dev/null)
  case $? in
    0) echo valid ;;
    1) echo invalid ;;
    *) echo error ;;
  esac
}

echo "running: $validator MEDIATYPE FILE over $corpus/index.tsv"
passed=0 failed=0
while IFS=$'\t' read -r path mt expect pinned _rest; do
  [ "$path" = path ] && continue
  [ -n "$path" ] || continue
  got=$(verdict "$mt" "$corpus/$path")
  if [ "$got" != "$expect" ]; then
    failed=$((failed + 1))
    echo "FAIL $path [$mt]: expected $expect, got $got ($("$validator" "$mt" "$corpus/$path" 2>&1))"
    continue
  fi
  if [ "$pinned" != "-" ]; then
    raw=$(echo "$path" | sed -E 's#^cases/(.+)-(valid|invalid)\.json$#raw/\1.json#')
    dt=$(docker_type "$mt")
    rgot=$(verdict "$mt" "$corpus/$raw")
    dgot=$(verdict "$dt" "$corpus/$raw")
    if [ "$rgot" != "$expect" ] || [ "$dgot" != "$expect" ]; then
      failed=$((failed + 1))
      echo "FAIL $raw: expected $expect, got $rgot as $mt and $dgot as $dt"
      continue
    fi
  fi
  passed=$((passed + 1))
done < "$corpus/index.tsv"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
