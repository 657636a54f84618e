#!/bin/bash
# tests/registry/start.sh DIR [--tls] [--htpasswd USER:PASS] [--token]
#                             [--token-ttl SECONDS] [--port N]
#
# Start Debian's docker-registry (2.8, /usr/bin/docker-registry) on
# 127.0.0.1 with a temporary config under DIR (created; must not exist or
# be empty), wait until /v2/ answers, print its address (127.0.0.1:PORT) on
# stdout and write DIR/registry.env for tests to source:
#
#   REGISTRY=127.0.0.1:PORT  REGISTRY_URL=http[s]://127.0.0.1:PORT
#   REGISTRY_SCHEME          http or https
#   REGISTRY_AUTH            none, basic or token
#   REGISTRY_USER REGISTRY_PASS   the --htpasswd credentials (if any)
#   REGISTRY_CA              the CA that signed the TLS certificate (--tls)
#   REGISTRY_CERTS_D         certs.d tree with 127.0.0.1:PORT/{ca.crt,hosts.toml}
#                            (containerd's layout; skopeo --cert-dir takes
#                            $REGISTRY_CERTS_D/$REGISTRY)
#   REGISTRY_LOG             the registry's log, access log included (combined
#                            format: status and bytes sent per request)
#   TOKEN_REALM TOKEN_LOG    (--token) the token server's URL and JSON-lines log
#   REGISTRY_PID TOKEN_PID
#
# Variants:
#   (none)       plain HTTP, no auth
#   --tls        HTTPS with a certificate for 127.0.0.1/localhost from a
#                self-signed CA made here with the openssl CLI
#   --htpasswd U:P   basic auth (htpasswd -B); with --token the credentials go
#                to the token server instead
#   --token      bearer-token auth: tests/registry/token-server.py on another
#                loopback port issues RS256 JWTs (x5c chain to a CA in the
#                registry's rootcertbundle); --token-ttl sets their lifetime
#                (default 300 s; the registry adds 60 s of leeway)
#
# Stop with tests/registry/stop.sh DIR.  On failure everything started is
# stopped again and the exit status is 1 (2: bad usage, missing tools).

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage () { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

dir=
tls=0
token=0
creds=
ttl=300
port=
while [ $# -gt 0 ]; do
  case $1 in
    --tls) tls=1 ;;
    --token) token=1 ;;
    --htpasswd) [ $# -ge 2 ] || usage; creds=$2; shift ;;
    --htpasswd=*) creds=${1#*=} ;;
    --token-ttl) [ $# -ge 2 ] || usage; ttl=$2; shift ;;
    --port) [ $# -ge 2 ] || usage; port=$2; shift ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "start.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$dir" ] || usage; dir=$1 ;;
  esac
  shift
done
[ -n "$dir" ] || usage
case $creds in ''|?*:*) ;; *) echo "start.sh: --htpasswd wants USER:PASS" >&2; exit 2 ;; esac

REGISTRY_BIN=${DOCKER_REGISTRY:-/usr/bin/docker-registry}
need=()
[ -x "$REGISTRY_BIN" ] || need+=(docker-registry)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
{ [ $tls = 1 ] || [ $token = 1 ]; } && ! command -v openssl >/dev/null && need+=(openssl)
[ -n "$creds" ] && [ $token = 0 ] && ! command -v htpasswd >/dev/null && need+=(apache2-utils)
if [ ${#need[@]} -gt 0 ]; then
  echo "start.sh: missing: ${need[*]} (apt-get install ${need[*]})" >&2
  exit 2
fi

if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  echo "start.sh: $dir exists and is not empty" >&2
  exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# stop.sh removes DIR only when this marker is there.
echo "berth test registry; stop with tests/registry/stop.sh $dir" > "$dir/.berth-test-registry"

started=0
on_exit () {
  if [ $started = 0 ]; then
    echo "start.sh: failed; logs:" >&2
    tail -n 20 "$dir"/*.log >&2 2>/dev/null || true
    "$here/stop.sh" --keep "$dir" >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT

free_port () {
  python3 -c 'import socket; s = socket.socket (); s.bind (("127.0.0.1", 0)); print (s.getsockname ()[1])'
}
[ -n "$port" ] || port=$(free_port)
addr="127.0.0.1:$port"
scheme=http
[ $tls = 1 ] && scheme=https
auth=none

ossl () { openssl "$@" 2>>"$dir/openssl.log"; }
# ca NAME: a self-signed CA certificate NAME.crt and key NAME.key.
ca () {
  ossl req -x509 -newkey rsa:2048 -nodes -days 30 -sha256 \
    -subj "/CN=berth test $1" -keyout "$dir/$1.key" -out "$dir/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
# leaf NAME CA EXTFILE: a key and certificate NAME signed by CA.
leaf () {
  ossl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=berth test $1" \
    -keyout "$dir/$1.key" -out "$dir/$1.csr"
  ossl x509 -req -in "$dir/$1.csr" -CA "$dir/$2.crt" -CAkey "$dir/$2.key" \
    -CAcreateserial -days 30 -sha256 -extfile "$3" -out "$dir/$1.crt"
  rm -f "$dir/$1.csr"
}

{
  echo "version: 0.1"
  echo "log:"
  echo "  level: info"
  echo "  formatter: text"
  echo "  accesslog:"
  echo "    disabled: false"
  echo "storage:"
  echo "  filesystem:"
  echo "    rootdirectory: $dir/data"
  echo "  delete:"
  echo "    enabled: true"
  echo "  maintenance:"
  echo "    uploadpurging:"
  echo "      enabled: false"
  echo "http:"
  echo "  addr: $addr"
  echo "  secret: berth-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  echo "  headers:"
  echo "    X-Content-Type-Options: [nosniff]"
} > "$dir/config.yml"

if [ $tls = 1 ]; then
  ca ca
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" > "$dir/server.ext"
  leaf server ca "$dir/server.ext"
  cat >> "$dir/config.yml" <<EOF
  tls:
    certificate: $dir/server.crt
    key: $dir/server.key
EOF
fi

mkdir -p "$dir/certs.d/$addr"
{
  echo "server = \"$scheme://$addr\""
  echo
  echo "[host.\"$scheme://$addr\"]"
  echo "  capabilities = [\"pull\", \"resolve\", \"push\"]"
  [ $tls = 1 ] && echo "  ca = \"$dir/certs.d/$addr/ca.crt\""
} > "$dir/certs.d/$addr/hosts.toml"
[ $tls = 1 ] && cp "$dir/ca.crt" "$dir/certs.d/$addr/ca.crt"

token_realm=
if [ $token = 1 ]; then
  auth=token
  # The token signing certificate, signed by its own CA: the registry trusts
  # the CA (rootcertbundle) and finds the signing certificate in each
  # token's x5c header.  No extendedKeyUsage: Go's x509 verification, as
  # the registry calls it, would then demand serverAuth.
  ca token-ca
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" > "$dir/token.ext"
  leaf token token-ca "$dir/token.ext"
  users=()
  if [ -n "$creds" ]; then
    printf '%s\n' "$creds" > "$dir/token-users"
    chmod 600 "$dir/token-users"
    users=(--users "$dir/token-users")
  fi
  tls_args=()
  tscheme=http
  if [ $tls = 1 ]; then
    tls_args=(--tls-cert "$dir/server.crt" --tls-key "$dir/server.key")
    tscheme=https
  fi
  python3 "$here/token-server.py" --port-file "$dir/token.port" \
    --key "$dir/token.key" --cert "$dir/token.crt" \
    --issuer berth-test-issuer --service berth-test-registry --ttl "$ttl" \
    --log "$dir/token.log" "${users[@]}" "${tls_args[@]}" \
    </dev/null >"$dir/token-server.log" 2>&1 &
  echo $! > "$dir/token.pid"
  for _ in $(seq 100); do
    [ -s "$dir/token.port" ] && break
    kill -0 "$(cat "$dir/token.pid")" 2>/dev/null || { echo "start.sh: token server died" >&2; exit 1; }
    sleep 0.05
  done
  [ -s "$dir/token.port" ] || { echo "start.sh: token server did not start" >&2; exit 1; }
  token_realm="$tscheme://127.0.0.1:$(cat "$dir/token.port")/token"
  cat >> "$dir/config.yml" <<EOF
auth:
  token:
    realm: $token_realm
    service: berth-test-registry
    issuer: berth-test-issuer
    rootcertbundle: $dir/token-ca.crt
EOF
elif [ -n "$creds" ]; then
  auth=basic
  htpasswd -B -b -c "$dir/htpasswd" "${creds%%:*}" "${creds#*:}" 2>>"$dir/openssl.log"
  cat >> "$dir/config.yml" <<EOF
auth:
  htpasswd:
    realm: berth-test-registry
    path: $dir/htpasswd
EOF
fi

# No setsid -f: the registry must be our direct child so that $! is its pid.
"$REGISTRY_BIN" serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
echo $! > "$dir/registry.pid"

curl_tls=()
[ $tls = 1 ] && curl_tls=(--cacert "$dir/ca.crt")
code=000
for _ in $(seq 200); do
  kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || { echo "start.sh: docker-registry exited" >&2; exit 1; }
  code=$(curl -s -o /dev/null -w '%{http_code}' "${curl_tls[@]}" "$scheme://$addr/v2/" || true)
  case $code in 200|401) break ;; esac
  sleep 0.05
done
case $code in 200|401) ;; *) echo "start.sh: $scheme://$addr/v2/ answers $code" >&2; exit 1 ;; esac

kv () { printf '%s=%q\n' "$1" "$2"; }
{
  kv REGISTRY "$addr"
  kv REGISTRY_URL "$scheme://$addr"
  kv REGISTRY_SCHEME "$scheme"
  kv REGISTRY_AUTH "$auth"
  kv REGISTRY_USER "${creds%%:*}"
  kv REGISTRY_PASS "${creds#*:}"
  kv REGISTRY_CA "$([ $tls = 1 ] && echo "$dir/ca.crt")"
  kv REGISTRY_CERTS_D "$dir/certs.d"
  kv REGISTRY_LOG "$dir/registry.log"
  kv REGISTRY_PID "$(cat "$dir/registry.pid")"
  kv TOKEN_REALM "$token_realm"
  kv TOKEN_LOG "$([ $token = 1 ] && echo "$dir/token.log")"
  kv TOKEN_PID "$([ $token = 1 ] && cat "$dir/token.pid")"
} > "$dir/registry.env"
started=1
echo "$addr"
