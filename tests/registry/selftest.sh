#!/bin/bash
# tests/registry/selftest.sh: the test registries and test images work.
#
# Builds the test images (tests/images/build.sh into $BERTH_TEST_IMAGES,
# default build/test-images; a no-op when up to date), then for each variant
# of tests/registry/start.sh -- plain HTTP; TLS + htpasswd; bearer token;
# bearer token over TLS -- starts it, pushes with push.sh, pulls back with
# skopeo and curl and compares digests, checks that auth is enforced (401
# without or with wrong credentials, forged or out-of-scope tokens refused,
# TLS verified), stops it and checks that nothing is left.
#
# Every command is printed so that a failure can be repeated by hand.
# Exit: 0 pass, 1 fail, 77 skip (not root, or a tool missing).

set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
images=${BERTH_TEST_IMAGES:-build/test-images}
failures=0

skip () { echo "SKIP: $*"; exit 77; }
fail () { echo "FAIL: $*"; failures=$((failures + 1)); }
pass () { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || skip "needs root"
for t in docker-registry:/usr/bin/docker-registry skopeo:skopeo curl:curl openssl:openssl \
         apache2-utils:htpasswd zstd:zstd python3:python3 busybox-static:/bin/busybox; do
  command -v "${t#*:}" >/dev/null || skip "${t#*:} missing (apt-get install ${t%%:*})"
done

T=$(mktemp -d /tmp/berth-regselftest.XXXXXX)
REGDIRS=()
cleanup () {
  local d
  for d in "${REGDIRS[@]}"; do [ ! -d "$d" ] || "$here/stop.sh" "$d"; done
  rm -rf "$T"
}
trap cleanup EXIT

# run CMD...: print and run; output in $out, status in $rc.
run () {
  echo "+ $*"
  out=$("$@" 2>&1)
  rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | head -n 20 | sed 's/^/  | /'
  return 0
}
expect_rc () { if [ "$rc" = "$1" ]; then pass "$2"; else fail "$2: exit $rc, expected $1"; fi; }
expect_eq () { if [ "$1" = "$2" ]; then pass "$3"; else fail "$3: got \`$1\`, expected \`$2\`"; fi; }
# http_code [curl args...]: the status code only.
http_code () { curl -s -o /dev/null -w '%{http_code}' "$@"; }

run "$here/../images/build.sh" "$images"
expect_rc 0 "test images built in $images"
[ "$rc" = 0 ] || exit 1

ACCEPT="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT+=",application/vnd.docker.distribution.manifest.v2+json"

# start_variant NAME ARGS...: start a registry in $T/NAME; sets $D and loads its env.
start_variant () {
  local name=$1; shift
  D=$T/$name
  REGDIRS+=("$D")
  echo "+ $here/start.sh $D $*"
  if ! addr=$("$here/start.sh" "$D" "$@"); then
    fail "$name: start.sh failed"
    return 1
  fi
  # shellcheck disable=SC1091
  . "$D/registry.env"
  expect_eq "$addr" "$REGISTRY" "$name: start.sh prints the address it wrote to registry.env"
}

stop_variant () {
  local name=$1 pids
  pids="$REGISTRY_PID $TOKEN_PID"
  run "$here/stop.sh" "$D"
  expect_rc 0 "$name: stop.sh"
  local p left=
  # A zombie waiting for its reaper (start.sh's parent is gone) counts as gone.
  for p in $pids; do
    [ ! -d "/proc/$p" ] || [ "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)" = Z ] || left+=" $p"
  done
  expect_eq "${left:-none}" none "$name: no process left"
  [ ! -e "$D" ] && pass "$name: directory removed" || fail "$name: $D still there"
}

# pull_back SKOPEO_ARGS...: every image read back from $REGISTRY with
# skopeo into a dir: layout (oci: cannot hold Docker types), all
# platforms, digest as built.
pull_back () {
  local name repo mt digest flags got fl
  while IFS=$'\t' read -r name _ repo mt digest flags _; do
    case $name in '#'*|'') continue ;; esac
    fl=()
    [ "$flags" = - ] || [ "$flags" = "--format v2s2" ] || fl=(--all)
    run skopeo copy -q --preserve-digests "${fl[@]}" "$@" "docker://$REGISTRY/$repo" "dir:$T/pulled-$name"
    expect_rc 0 "$variant: skopeo pulls $repo"
    got=$(sha256sum < "$T/pulled-$name/manifest.json" | cut -d' ' -f1)
    expect_eq "sha256:$got" "$digest" "$variant: $repo pulled back with the digest built"
    rm -rf "$T/pulled-$name"
  done < "$images/images.tsv"
}

# manifest_digest CURL_ARGS... URL: sha256 of the body curl gets.
manifest_digest () { echo "sha256:$(curl -sf -H "Accept: $ACCEPT" "$@" | sha256sum | cut -d' ' -f1)"; }

big_layer () { # digest and size of multilayer's largest layer
  local m
  m=$(awk -F'\t' '$1 == "multilayer" { print $5 }' "$images/images.tsv")
  python3 -c 'import json, sys
m = json.load (open (sys.argv[1]))
l = max (m["layers"], key=lambda l: l["size"])
print (l["digest"], l["size"])' "$images/multilayer/blobs/sha256/${m#sha256:}"
}

# ---------------------------------------------------------------- plain HTTP
variant=plain
if start_variant plain; then
  expect_eq "$(http_code "$REGISTRY_URL/v2/")" 200 "plain: /v2/ answers 200 without credentials"
  run "$here/push.sh" "$REGISTRY" --images "$images"
  expect_rc 0 "plain: push.sh pushes every image and verifies its digest"
  run curl -sf "$REGISTRY_URL/v2/_catalog"
  expect_eq "$(printf '%s' "$out" | python3 -c 'import json,sys; print (",".join (json.load (sys.stdin)["repositories"]))')" \
    "$(awk -F'\t' '$1 !~ /^#/ && NF {split ($3, r, ":"); print r[1]}' "$images/images.tsv" | sort -u | paste -sd,)" \
    "plain: catalog lists every repository of images.tsv"
  while IFS=$'\t' read -r name _ repo mt digest _ _; do
    case $name in '#'*|'') continue ;; esac
    expect_eq "$(manifest_digest "$REGISTRY_URL/v2/${repo%:*}/manifests/latest")" "$digest" \
      "plain: curl gets $repo's manifest with the digest built"
    run curl -sfI -H "Accept: $ACCEPT" "$REGISTRY_URL/v2/${repo%:*}/manifests/latest"
    printf '%s' "$out" | grep -qi "^content-type: $mt" && pass "plain: $repo served as $mt" \
      || fail "plain: $repo not served as $mt"
  done < "$images/images.tsv"
  read -r bd bs < <(big_layer)
  echo "+ curl -sf $REGISTRY_URL/v2/multilayer/blobs/$bd | sha256sum"
  got=$(curl -sf "$REGISTRY_URL/v2/multilayer/blobs/$bd" | sha256sum | cut -d' ' -f1)
  expect_eq "sha256:$got" "$bd" "plain: the large layer ($bs bytes) comes back intact"
  run curl -s -o "$T/range" -w '%{http_code}' -r 1000-1999 "$REGISTRY_URL/v2/multilayer/blobs/$bd"
  expect_eq "$out $(stat -c %s "$T/range")" "206 1000" "plain: blobs honour HTTP Range (resume needs it)"
  pull_back --src-tls-verify=false
  grep -q '"GET /v2/multilayer/blobs/' "$REGISTRY_LOG" && pass "plain: the access log records blob GETs" \
    || fail "plain: no access log lines in $REGISTRY_LOG"
  stop_variant plain
fi

# ---------------------------------------------------------------- TLS + htpasswd
variant=tls-basic
if start_variant tls-basic --tls --htpasswd alice:s3cret; then
  CA=(--cacert "$REGISTRY_CA")
  expect_eq "$(http_code "${CA[@]}" "$REGISTRY_URL/v2/")" 401 "tls-basic: 401 without credentials"
  run curl -s -o /dev/null -D - "${CA[@]}" "$REGISTRY_URL/v2/"
  printf '%s' "$out" | grep -qi '^www-authenticate: basic' && pass "tls-basic: challenge is Basic" \
    || fail "tls-basic: no Basic challenge"
  expect_eq "$(http_code "${CA[@]}" -u alice:wrong "$REGISTRY_URL/v2/")" 401 "tls-basic: 401 with a wrong password"
  expect_eq "$(http_code "${CA[@]}" -u alice:s3cret "$REGISTRY_URL/v2/")" 200 "tls-basic: 200 with the right one"
  run curl -s -u alice:s3cret "$REGISTRY_URL/v2/"
  expect_rc 60 "tls-basic: curl without the CA refuses the certificate"
  run curl -s -u alice:s3cret --cacert "$REGISTRY_CERTS_D/$REGISTRY/ca.crt" "$REGISTRY_URL/v2/"
  expect_rc 0 "tls-basic: the certs.d tree holds the CA"
  run "$here/push.sh" "$REGISTRY" --images "$images" --creds alice:s3cret --cert-dir "$REGISTRY_CERTS_D/$REGISTRY"
  expect_rc 0 "tls-basic: push.sh with credentials and TLS verified"
  run skopeo inspect --raw --cert-dir "$REGISTRY_CERTS_D/$REGISTRY" "docker://$REGISTRY/busybox:latest"
  [ "$rc" != 0 ] && pass "tls-basic: skopeo without credentials is refused" \
    || fail "tls-basic: skopeo read a manifest without credentials"
  pull_back --src-cert-dir "$REGISTRY_CERTS_D/$REGISTRY" --src-creds alice:s3cret
  stop_variant tls-basic
fi

# ---------------------------------------------------------------- bearer token
token_checks () { # variant, curl TLS args...
  local v=$1; shift
  local tok
  expect_eq "$(http_code "$@" "$REGISTRY_URL/v2/")" 401 "$v: 401 without a token"
  run curl -s -o /dev/null -D - "$@" "$REGISTRY_URL/v2/"
  printf '%s' "$out" | grep -qi "^www-authenticate: bearer realm=\"$TOKEN_REALM\",service=\"berth-test-registry\"" \
    && pass "$v: challenge names the realm and service" || fail "$v: wrong or no Bearer challenge"
  expect_eq "$(http_code "$@" "$TOKEN_REALM?service=berth-test-registry&scope=repository:busybox:pull")" 401 \
    "$v: the token server wants credentials"
  expect_eq "$(http_code "$@" -u bob:nope "$TOKEN_REALM?service=berth-test-registry&scope=repository:busybox:pull")" 401 \
    "$v: the token server refuses a wrong password"
  run "$here/push.sh" "$REGISTRY" --images "$images" --creds bob:pw "${PUSH_TLS[@]}"
  expect_rc 0 "$v: push.sh through the token server"
  tok=$(curl -sf "$@" -u bob:pw "$TOKEN_REALM?service=berth-test-registry&scope=repository:busybox:pull" |
        python3 -c 'import json,sys; print (json.load (sys.stdin)["token"])')
  expect_eq "$(http_code "$@" -H "Authorization: Bearer $tok" -H "Accept: $ACCEPT" "$REGISTRY_URL/v2/busybox/manifests/latest")" 200 \
    "$v: a GET token for busybox:pull reads busybox"
  expect_eq "$(http_code "$@" -H "Authorization: Bearer $tok" -H "Accept: $ACCEPT" "$REGISTRY_URL/v2/multiarch/manifests/latest")" 401 \
    "$v: the same token does not read multiarch (scope enforced)"
  # A forged token: the right header and claims, the signature of another key.
  local forged
  forged="${tok%.*}.$(printf 'x%.0s' $(seq 342))"
  expect_eq "$(http_code "$@" -H "Authorization: Bearer $forged" -H "Accept: $ACCEPT" "$REGISTRY_URL/v2/busybox/manifests/latest")" 401 \
    "$v: a token with a bad signature is refused"
  tok=$(curl -sf "$@" -d grant_type=password -d username=bob -d password=pw -d service=berth-test-registry \
          -d scope=repository:multiarch:pull -d client_id=berth-test "$TOKEN_REALM" |
        python3 -c 'import json,sys; d = json.load (sys.stdin); print (d["access_token"] if d.get ("refresh_token") else "")')
  expect_eq "$(http_code "$@" -H "Authorization: Bearer $tok" -H "Accept: $ACCEPT" "$REGISTRY_URL/v2/multiarch/manifests/latest")" 200 \
    "$v: an OAuth2 POST (password grant, as containerd sends) token works, with a refresh token"
  run skopeo inspect --raw "${PULL_TLS[@]}" "docker://$REGISTRY/busybox:latest"
  [ "$rc" != 0 ] && pass "$v: skopeo without credentials is refused" \
    || fail "$v: skopeo read a manifest without credentials"
  pull_back "${PULL_TLS[@]}" --src-creds bob:pw
  grep -q '"status": 200' "$TOKEN_LOG" && pass "$v: the token log records grants" \
    || fail "$v: nothing in $TOKEN_LOG"
}

variant=token
if start_variant token --token --htpasswd bob:pw; then
  PUSH_TLS=()
  PULL_TLS=(--src-tls-verify=false)
  token_checks token
  stop_variant token
fi

variant=token-tls
if start_variant token-tls --tls --token --htpasswd bob:pw; then
  case $TOKEN_REALM in https://*) pass "token-tls: the realm is https" ;;
                       *) fail "token-tls: realm $TOKEN_REALM is not https" ;; esac
  PUSH_TLS=(--cert-dir "$REGISTRY_CERTS_D/$REGISTRY")
  PULL_TLS=(--src-cert-dir "$REGISTRY_CERTS_D/$REGISTRY")
  token_checks token-tls --cacert "$REGISTRY_CA"
  stop_variant token-tls
fi

echo
if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
exit 0
