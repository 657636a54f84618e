#!/bin/bash
# Security checks as tests (issue 8 part 6), against a real berthd, real
# runtimes (berth-runtime and runc through the oci plugin), real
# docker-registry instances and the berth / ctr clients:
#
#  1. the API socket: 0660 root:<[grpc] gid>; berthd refuses to start when
#     the socket's directory (or one above it) is not root's or is writable
#     by others without the sticky bit, when a file, a symbolic link or a
#     live daemon's socket is at the path; it replaces a stale socket.  The
#     CLI refuses a socket owned by someone else and a server run by someone
#     else (SO_PEERCRED), unless BERTH_SOCKET_TRUST_UID names that uid.
#  2. plugins from a configured plugin_dirs that are world-writable or not
#     root's are refused (log + plugins ls); the same file, root's and 0755,
#     loads (so the check can fail).
#  3. credentials: pulls with basic auth (TLS) and bearer tokens, right and
#     wrong passwords, berth login, a container run from the image; berthd's
#     debug log, `ctr events`, `berth events`, images inspect, inspect and
#     every CLI output are grepped for the password, base64(user:password)
#     and the bearer token (its JWT header, which every token of the test
#     token server shares).
#  4. per runtime (namespaces, oci/runc): only fds 0-2 in the container's
#     processes (run and exec), -w /proc/self/fd/N (N = 3..20) for run and
#     exec either fails or stays inside the container (CVE-2024-21626), masked
#     and read-only paths cannot be written or read, and a static probe
#     (compiled here, bind-mounted) sees EPERM for init_module/finit_module,
#     mount, unshare and keyctl with the default profile; --privileged is
#     shown for comparison.
#
# Environment: BERTH_TEST_IMAGES (test images dir), BERTH_TEST_RUNTIMES
# (default "namespaces oci"), BERTH_TEST_NSRT (the berth-runtime binary;
# default the build tree's: point it at an older build to see part 4 fail).  Exit: 0 pass, 1 fail, 77 skip.
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in python3 timeout curl docker-registry skopeo; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$BERTH" ] || { echo "FAIL: no berth binary at $BERTH"; exit 1; }
export BERTH_FIFO_DIR=$T/fifo
export DOCKER_CONFIG=$T/docker
unset BERTH_SOCKET_TRUST_UID

# run2 CMD...: stdout in $out, stderr in $err, status in $rc (bounded time);
# both are also appended to $T/all-output, which part 3 greps.
run2 () {
  echo "+ $*"
  timeout 60 "$@" >"$T/o" 2>"$T/e"
  rc=$?
  out=$(cat "$T/o"); err=$(cat "$T/e")
  cat "$T/o" "$T/e" >>"$T/all-output"
  [ -z "$out" ] || printf '%s\n' "$out" | head -20 | sed 's/^/  | /'
  [ -z "$err" ] || printf '%s\n' "$err" | head -20 | sed 's/^/  ! /'
}
expect_eq () { # got want what
  if [ "$1" = "$2" ]; then pass "$3"; else fail "$3: got \`$1\`, expected \`$2\`"; fi
}
expect_in () { # haystack needle what
  case "$1" in *"$2"*) pass "$3" ;; *) fail "$3: \`$2\` not in \`$1\`" ;; esac
}

# The runtime plugins from the build tree.
RT_CFG=()
for plug in namespaces oci; do
  RT_CFG+=("[plugins.\"io.berth.runtime.v1.$plug\"]")
  NSRT=${BERTH_TEST_NSRT:-$top_builddir/berth-runtime}
  [ "$plug" = namespaces ] && [ -x "$NSRT" ] && RT_CFG+=("  binary = \"$NSRT\"")
  for s in "$top_builddir/shim/berth-shim" "$top_builddir/berth-shim"; do
    [ -x "$s" ] && { RT_CFG+=("  shim_binary = \"$s\""); break; }
  done
done

# berthd_refuses WHAT NEEDLE DIR: run berthd on DIR/config.toml, which must
# exit non-zero within 10 s and say NEEDLE.
berthd_refuses () {
  echo "+ $BERTHD --config $3/config.toml"
  timeout 10 "$BERTHD" --config "$3/config.toml" >"$3/berthd.log" 2>&1
  rc=$?
  sed 's/^/  | /' "$3/berthd.log" | tail -5
  if [ "$rc" != 0 ] && [ "$rc" != 124 ]; then pass "$1: berthd refuses to start (exit $rc)"; else fail "$1: berthd exit $rc"; fi
  grep -qF -- "$2" "$3/berthd.log" && pass "$1: and says \`$2\`" || fail "$1: its log lacks \`$2\`"
}

# ================================================================== 1. socket
echo "=== 1. the API socket"
write_config "$T/d"
sed -i 's/^\[grpc\]$/[grpc]\n  gid = 4321/' "$T/d/config.toml"
start_berthd_config "$T/d" "$T/d/config.toml" || finish
expect_eq "$(stat -c '%a %u %g %F' "$SOCK")" "660 0 4321 socket" "the socket is 0660 root:<[grpc] gid>"
B=("$BERTH" --address "$SOCK")
run2 "${B[@]}" version
expect_rc 0 "berth talks to a root-owned socket served by root"

# A second daemon on the same path is refused and the first keeps serving.
mkdir -p "$T/second"
sed -e "s|$T/d/root|$T/second/root|" -e "s|$T/d/state|$T/second/state|" "$T/d/config.toml" >"$T/second/config.toml"
berthd_refuses "a live daemon's socket" "another process is already serving on \`$SOCK'" "$T/second"
run2 "${B[@]}" version
expect_rc 0 "the first daemon still serves"
expect_eq "$(stat -c %F "$SOCK")" "socket" "and its socket is still there"

# Directories others could change.
sockdir_case () { # what needle setup-command... (run with $sd = the socket's dir)
  local what=$1 needle=$2; shift 2
  rm -rf "$T/sd"; mkdir -p "$T/sd/a/b"; sd=$T/sd/a/b
  write_config "$sd"
  sed -i "s|address = .*|address = \"$sd/s/berth.sock\"|" "$sd/config.toml"
  mkdir -p "$sd/s"; chmod 0755 "$T/sd" "$T/sd/a" "$sd" "$sd/s"
  "$@"
  berthd_refuses "$what" "$needle" "$sd"
}
sockdir_case "socket directory o+w" "refusing socket \`$T/sd/a/b/s/berth.sock': directory \`$T/sd/a/b/s' (mode 0757) is writable by others" chmod o+w "$T/sd/a/b/s"
sockdir_case "socket directory g+w" "is writable by its group" chmod g+w "$T/sd/a/b/s"
sockdir_case "a directory above it o+w" "directory \`$T/sd/a' (mode 0777)" chmod 0777 "$T/sd/a"
sockdir_case "socket directory owned by uid 1234" "directory \`$T/sd/a/b/s' is owned by uid 1234, not root" chown 1234 "$T/sd/a/b/s"
sockdir_case "a symlink to an unsafe directory" "directory \`$T/sd/a/open' (mode 0777)" \
  eval 'rmdir "$sd/s" && mkdir -m 0777 "$T/sd/a/open" && chmod 0777 "$T/sd/a/open" && ln -s "$T/sd/a/open" "$sd/s"'
sockdir_case "a regular file at the path" "exists and is not a socket (a file)" touch "$T/sd/a/b/s/berth.sock"
sockdir_case "a symbolic link at the path" "exists and is not a socket (a symbolic link)" ln -s /tmp/elsewhere.sock "$T/sd/a/b/s/berth.sock"
# Sticky and world-writable (like /tmp) is fine, and so is a stale socket.
rm -rf "$T/sticky"; mkdir -p "$T/sticky/s"; chmod 1777 "$T/sticky/s"
write_config "$T/sticky"
sed -i "s|address = .*|address = \"$T/sticky/s/berth.sock\"|" "$T/sticky/config.toml"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/sticky/s/berth.sock"
echo "+ $BERTHD --config $T/sticky/config.toml &  (a stale socket in a 1777 directory)"
"$BERTHD" --config "$T/sticky/config.toml" >"$T/sticky/berthd.log" 2>&1 &
spid=$!; BERTHD_PIDS+=("$spid")
for _ in $(seq 200); do grep -q "serving on" "$T/sticky/berthd.log" && break; kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
if grep -q "serving on" "$T/sticky/berthd.log" && "$BERTH" --address "$T/sticky/s/berth.sock" version >/dev/null 2>&1; then
  pass "a sticky world-writable directory (like /tmp) is accepted; a stale socket there is replaced"
else
  sed 's/^/  | /' "$T/sticky/berthd.log" | tail -5; fail "sticky directory with a stale socket"
fi
stop_berthd "$spid"

# The CLI side: a socket file owned by someone else.
chown 1234 "$SOCK"
run2 "${B[@]}" version
expect_rc 1 "berth refuses a socket owned by uid 1234"
expect_in "$err" "refusing to talk to $SOCK: the socket is owned by uid 1234, not root or you (uid 0)" "and says why"
expect_in "$err" "BERTH_SOCKET_TRUST_UID=1234" "and names the escape hatch"
BERTH_SOCKET_TRUST_UID=1234 run2 "${B[@]}" version
expect_rc 0 "BERTH_SOCKET_TRUST_UID=1234 lets it talk to that socket"
BERTH_SOCKET_TRUST_UID=12x4 run2 "${B[@]}" version
expect_rc 1 "a malformed BERTH_SOCKET_TRUST_UID is an error"
expect_in "$err" "BERTH_SOCKET_TRUST_UID=\`12x4' is not a uid" "and says so"
chown 0 "$SOCK"
# A server run by someone else behind a root-owned socket file (bound as
# root, listening after setuid: SO_PEERCRED names the listener's uid).
FAKE=$T/fake/fake.sock; mkdir -p "$T/fake"
python3 - "$FAKE" <<'EOF' &
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666)
os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
s.listen(8)
s.settimeout(30)
try:
    while True:
        c, _ = s.accept(); c.close()
except Exception:
    pass
EOF
fake_pid=$!
for _ in $(seq 100); do [ -S "$FAKE" ] && break; sleep 0.05; done
sleep 0.2
run2 "$BERTH" --address "$FAKE" version
expect_rc 1 "berth refuses a root-owned socket served by uid 65534"
expect_in "$err" "served by pid $fake_pid running as uid 65534, not root or you" "and names the process and uid"
BERTH_SOCKET_TRUST_UID=65534 run2 "$BERTH" --address "$FAKE" version
case "$err" in *refusing*) fail "BERTH_SOCKET_TRUST_UID=65534 still refused" ;; *) pass "BERTH_SOCKET_TRUST_UID=65534 passes the owner check" ;; esac
kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null

# ================================================================= 2. plugins
echo "=== 2. plugin files"
PLUG=$top_builddir/tests/plugins/.libs/ok.so
if [ ! -f "$PLUG" ]; then
  mkdir -p "$T/fixture"
  PLUG=$T/fixture/ok.so
  echo "+ cc -shared -fPIC ... tests/plugins/ok.c -o $PLUG"
  cc -shared -fPIC -fvisibility=hidden -DHAVE_CONFIG_H -I"$top_srcdir/include" -I"$top_srcdir" -I"$top_builddir" \
    -I"$top_builddir/include" "$top_srcdir/tests/plugins/ok.c" -o "$PLUG" 2>"$T/cc.log" || { cat "$T/cc.log"; PLUG=; }
fi
if [ -z "$PLUG" ]; then
  fail "no plugin fixture (tests/plugins/ok.c) could be built"
else
  plugin_case () { # what mode owner needle|ok
    rm -rf "$T/p"; mkdir -p "$T/p/plugins"; cp "$PLUG" "$T/p/plugins/fixture-ok.so"
    chmod "$2" "$T/p/plugins/fixture-ok.so"; chown "$3" "$T/p/plugins/fixture-ok.so"
    start_berthd "$T/p" "plugin_dirs = [\"$T/p/plugins\"]" || return
    run2 "$BERTH" --address "$SOCK" plugins ls --format json
    local intro=$out
    if [ "$4" = ok ]; then
      expect_in "$intro" '"fixture-ok"' "$1: the plugin loads"
    else
      grep -qF -- "$4" "$BERTHD_LOG" && pass "$1: refused, berthd's log says \`$4\`" \
        || { sed 's/^/  | /' "$BERTHD_LOG" | tail -5; fail "$1: berthd's log lacks \`$4\`"; }
      expect_not_contains_in "$intro" '"fixture-ok"' "$1: not loaded (plugins ls does not list it)"
    fi
    stop_berthd "$BERTHD_PID"
  }
  expect_not_contains_in () { case "$1" in *"$2"*) fail "$3" ;; *) pass "$3" ;; esac; }
  plugin_case "a world-writable plugin" 0757 0 "refused: mode 0757 is world-writable"
  plugin_case "a group-writable plugin" 0775 0 "refused: mode 0775 is group-writable"
  plugin_case "a plugin owned by uid 1234" 0755 1234 "refused: owned by uid 1234, not root"
  plugin_case "the same plugin, root's and 0755" 0755 0 ok
fi

# ============================================== test images, registry, runtimes
IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
[ "$rc" = 0 ] || { fail "building the test images"; finish; }
REGS=()
stop_registries () { local r; for r in "${REGS[@]}"; do bash "$top_srcdir/tests/registry/stop.sh" "$r" >/dev/null 2>&1; done; }
final_cleanup () {
  if [ -S "${SOCK:-/nonexistent}" ]; then
    local id
    for id in $("$BERTH" --address "$SOCK" containers ls -q 2>/dev/null); do
      "$BERTH" --address "$SOCK" rm -f "$id" >/dev/null 2>&1
    done
  fi
  stop_registries
  cleanup
}
trap final_cleanup EXIT

# ============================================================= 3. credentials
echo "=== 3. credentials"
b64 () { printf '%s' "$1" | base64 -w0; }
: >"$T/secrets"
for variant in "--tls --htpasswd alice:Pw-basic-7Qx9" "--token --htpasswd bob:Pw-token-4Kz2"; do
  rdir=$T/reg-$(echo "$variant" | tr -dc 'a-z')
  REGS+=("$rdir")
  echo "+ tests/registry/start.sh $rdir $variant"
  # shellcheck disable=SC2086
  R=$(bash "$top_srcdir/tests/registry/start.sh" "$rdir" $variant) || { fail "starting registry $variant"; continue; }
  # shellcheck disable=SC1091
  . "$rdir/registry.env"
  U=$REGISTRY_USER P=$REGISTRY_PASS WRONG=Wrong-$REGISTRY_PASS
  push_args=(--images "$IMAGES" --only busybox --creds "$U:$P")
  [ -n "${REGISTRY_CA:-}" ] && push_args+=(--cert-dir "$REGISTRY_CERTS_D/$R")
  run bash "$top_srcdir/tests/registry/push.sh" "$R" "${push_args[@]}"
  [ "$rc" = 0 ] || { fail "pushing to $variant"; continue; }
  printf '%s\n' "$P" "$WRONG" "$(b64 "$U:$P")" "$(b64 "$U:$WRONG")" >>"$T/secrets"
  if [ "$REGISTRY_AUTH" = token ]; then
    # Every token of this server starts with the same JWT header (alg, x5c).
    tok=$(curl -s -u "$U:$P" "$TOKEN_REALM?service=berth-test-registry&scope=repository:busybox:pull" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    [ -n "$tok" ] && printf '%s\n' "${tok%%.*}" >>"$T/secrets" || fail "token: could not read a token from $TOKEN_REALM"
  fi
  plain=(); [ "$REGISTRY_SCHEME" = http ] && plain=(--plain-http)
  cd_="$T/c-$REGISTRY_AUTH"
  start_berthd "$cd_" "${RT_CFG[@]}" "[debug]" '  level = "debug"' "[registry]" \
    "  config_path = \"$(dirname "$REGISTRY_CERTS_D/$R")\"" || continue
  B=("$BERTH" --address "$SOCK")
  timeout 120 "$CTR" --address "$SOCK" events >"$T/ctr-events-$REGISTRY_AUTH" 2>&1 & ev1=$!
  timeout 120 "${B[@]}" events >"$T/berth-events-$REGISTRY_AUTH" 2>&1 & ev2=$!
  sleep 0.3
  run2 "${B[@]}" pull "${plain[@]}" "$R/busybox:latest"
  expect_rc 1 "$REGISTRY_AUTH: a pull without credentials is refused"
  run2 "${B[@]}" pull "${plain[@]}" --user "$U:$WRONG" "$R/busybox:latest"
  expect_rc 1 "$REGISTRY_AUTH: a pull with a wrong password is refused"
  expect_in "$err$out" "unauthorized" "$REGISTRY_AUTH: and says unauthorized"
  run2 "${B[@]}" pull "${plain[@]}" --user "$U:$P" "$R/busybox:latest"
  expect_rc 0 "$REGISTRY_AUTH: berth pull --user"
  run2 "${B[@]}" rmi "$R/busybox:latest"
  login_args=(--no-verify); [ "$REGISTRY_SCHEME" = http ] && login_args=(--plain-http)
  echo "+ printf ... | berth login ${login_args[*]} -u $U --password-stdin $R   (wrong, then right)"
  printf '%s' "$WRONG" | timeout 60 "$BERTH" login "${login_args[@]}" -u "$U" --password-stdin "$R" >>"$T/all-output" 2>&1
  rc=$?
  # --no-verify (the CLI cannot check a registry whose CA only berthd knows)
  # saves without asking; otherwise the registry refuses the password.
  if [ "${login_args[0]}" != --no-verify ]; then
    [ "$rc" != 0 ] && pass "$REGISTRY_AUTH: berth login with a wrong password fails" || fail "$REGISTRY_AUTH: login with a wrong password succeeded"
  fi
  echo "+ berth login -p <wrong> (the password on the command line)"
  timeout 60 "$BERTH" login "${login_args[@]}" -u "$U" -p "$WRONG" "$R" >>"$T/all-output" 2>&1
  printf '%s' "$P" | timeout 60 "$BERTH" login "${login_args[@]}" -u "$U" --password-stdin "$R" >>"$T/all-output" 2>&1
  rc=$?; expect_rc 0 "$REGISTRY_AUTH: berth login"
  # Control: the search below does find a secret where it is meant to be.
  grep -qF -- "$(b64 "$U:$P")" "$DOCKER_CONFIG/config.json" && pass "$REGISTRY_AUTH: control: base64(user:password) is found in config.json" \
    || fail "$REGISTRY_AUTH: control: base64(user:password) not in $DOCKER_CONFIG/config.json"
  run2 "${B[@]}" pull "${plain[@]}" "$R/busybox:latest"
  expect_rc 0 "$REGISTRY_AUTH: pull with the saved credentials"
  run2 "${B[@]}" images inspect "$R/busybox:latest"
  run2 "${B[@]}" run -d --pull never --name cred-$REGISTRY_AUTH "$R/busybox:latest" sleep 30
  run2 "${B[@]}" inspect "cred-$REGISTRY_AUTH"
  run2 "${B[@]}" rm -f "cred-$REGISTRY_AUTH"
  run2 "$CTR" --address "$SOCK" images ls
  run2 "$CTR" --address "$SOCK" containers ls
  run2 "${B[@]}" logout "$R"
  sleep 0.5
  kill "$ev1" "$ev2" 2>/dev/null; wait "$ev1" "$ev2" 2>/dev/null
  [ -s "$T/berth-events-$REGISTRY_AUTH" ] && pass "$REGISTRY_AUTH: berth events captured something" || fail "$REGISTRY_AUTH: berth events printed nothing"
  cp "$BERTHD_LOG" "$T/berthd-$REGISTRY_AUTH.log"
  stop_berthd "$BERTHD_PID"
  grep -q "Z debug " "$T/berthd-$REGISTRY_AUTH.log" && pass "$REGISTRY_AUTH: berthd's log is at debug level" \
    || fail "$REGISTRY_AUTH: berthd's log has no debug lines"
done
if [ -s "$T/secrets" ]; then
  leaks=0
  while read -r s; do
    [ -n "$s" ] || continue
    hits=$(grep -lF -- "$s" "$T"/berthd-*.log "$T"/ctr-events-* "$T"/berth-events-* "$T/all-output" 2>/dev/null)
    if [ -n "$hits" ]; then
      echo "  secret ${s:0:6}... found in: $hits"; grep -hF -- "$s" $hits | head -3 | sed 's/^/  | /'
      leaks=$((leaks + 1))
    fi
  done <"$T/secrets"
  n=$(grep -c . "$T/secrets")
  [ "$leaks" = 0 ] && pass "none of $n secrets (passwords, base64 user:password, token header) in logs, events, inspect or CLI output" \
    || fail "$leaks of $n secrets leaked"
fi

# ======================================================== 4. container escapes
echo "=== 4. the container and the host"
R0dir=$T/reg-plain; REGS+=("$R0dir")
R0=$(bash "$top_srcdir/tests/registry/start.sh" "$R0dir") || { fail "starting docker-registry"; finish; }
run bash "$top_srcdir/tests/registry/push.sh" "$R0" --images "$IMAGES" --only busybox
[ "$rc" = 0 ] || { fail "pushing the busybox image"; finish; }
IMG=$R0/busybox:latest
start_berthd "$T/r" "${RT_CFG[@]}" || finish
B=("$BERTH" --address "$SOCK")
run2 "${B[@]}" pull --plain-http "$IMG"
[ "$rc" = 0 ] || { fail "pull $IMG"; finish; }
"${B[@]}" plugins ls --format json >"$T/plugins.json" 2>&1

# A static probe: the syscalls a container must not be able to use.
PROBE=
if command -v cc >/dev/null; then
  cat >"$T/probe.c" <<'EOF'
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static void show (const char *what, long r) { printf ("%s=%s\n", what, r < 0 ? strerrorname_np (errno) : "ok"); }
static void *thread (void *arg) { return arg; }
int main (void)
{
  static char img[64];
  int fd = open ("/probe", O_RDONLY | O_CLOEXEC);
  show ("finit_module", syscall (SYS_finit_module, fd, "", 0));
  show ("init_module", syscall (SYS_init_module, img, sizeof img, ""));
  show ("mount", mount ("none", "/tmp", "tmpfs", 0, NULL));
  show ("unshare_mnt", unshare (CLONE_NEWNS));
  show ("unshare_user", unshare (CLONE_NEWUSER));
  show ("keyctl", syscall (SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, "probe"));
  show ("add_key", syscall (SYS_add_key, "user", "probe", "x", 1, -3 /* KEY_SPEC_SESSION_KEYRING */));
  long pid = syscall (SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0)
    _exit (0);
  if (pid > 0)
    waitpid ((pid_t) pid, NULL, 0);
  show ("clone_newuser", pid);
  /* threads still work: glibc's clone3 meets ENOSYS and falls back to clone */
  pthread_t t;
  int e = pthread_create (&t, NULL, thread, NULL);
  if (e == 0)
    pthread_join (t, NULL);
  errno = e;
  show ("thread", e ? -1 : 0);
  return 0;
}
EOF
  cc -static -pthread -O1 -o "$T/probe" "$T/probe.c" 2>"$T/cc.log" && PROBE=$T/probe || sed 's/^/  ! /' "$T/cc.log"
fi

WALK='a=$(stat -c %d:%i /); cd ../../../../../../../../../../../../../../..; b=$(stat -c %d:%i .); [ "$a" = "$b" ] && echo contained || echo ESCAPED'
for RTN in ${BERTH_TEST_RUNTIMES:-namespaces oci}; do
  echo "--- runtime $RTN"
  st=$(python3 -c 'import json,sys
ps=json.load(open(sys.argv[1]))
m=[p for p in ps if p.get("type")=="io.berth.runtime.v1" and p.get("id")==sys.argv[2]] or [p for p in ps if str(p.get("type","")).startswith("io.berth.runtime.v1") and p.get("id")==sys.argv[2]]
print(m[0].get("status","?")+" "+str(m[0].get("error","")) if m else "missing")' "$T/plugins.json" "$RTN" 2>/dev/null)
  case "$st" in ok*) ;; *) echo "SKIP (runtime $RTN): plugin status: $st"; continue ;; esac
  if [ "$RTN" = oci ] && ! command -v runc >/dev/null; then echo "SKIP (runtime oci): runc not installed"; continue; fi
  RUN=("${B[@]}" run --pull never --runtime "$RTN")

  # Only 0, 1, 2 in the container's processes (pid 1 and a child), in a run
  # and in an exec.
  # No pipes or redirections in the shell that lists itself: it would hold
  # their ends (busybox ash keeps a saved stdout on fd 10).
  run2 "${RUN[@]}" --rm "$IMG" sh -c 'ls /proc/1/fd; true'
  expect_eq "$(echo $out)" "0 1 2" "$RTN: run: pid 1 (sh) has only fds 0 1 2"
  run2 "${RUN[@]}" -d --name fds-$RTN "$IMG" sleep 300
  run2 "${B[@]}" exec "fds-$RTN" ls /proc/1/fd
  expect_eq "$(echo $out)" "0 1 2" "$RTN: pid 1 (sleep) of a detached container has only fds 0 1 2"
  run2 "${B[@]}" exec "fds-$RTN" sh -c 'ls /proc/$$/fd; true'
  expect_eq "$(echo $out)" "0 1 2" "$RTN: exec: the exec'd sh has only fds 0 1 2"

  # CVE-2024-21626: a working directory through the runtime's fds.
  # The walk itself: from a directory inside, it ends at the container's /.
  run2 "${RUN[@]}" --rm -w /proc/self "$IMG" sh -c "$WALK"
  expect_eq "$out" "contained" "$RTN: control: the walk up from -w /proc/self ends at the container's root"
  bad=0
  echo "+ for N in 3..20: berth run -w /proc/self/fd/\$N ...; berth exec -w /proc/self/fd/\$N fds-$RTN ... (sh -c '<walk up, compare with />')"
  for N in $(seq 3 20); do
    for how in run exec; do
      if [ $how = run ]; then
        timeout 60 "${RUN[@]}" --rm -w "/proc/self/fd/$N" "$IMG" sh -c "$WALK" >"$T/o" 2>&1
      else
        timeout 60 "${B[@]}" exec -w "/proc/self/fd/$N" "fds-$RTN" sh -c "$WALK" >"$T/o" 2>&1
      fi
      cat "$T/o" >>"$T/all-output"
      grep -q ESCAPED "$T/o" && bad=$((bad + 1))
      printf '  | %-4s N=%-2s %s\n' $how "$N" "$(tail -1 "$T/o" | sed 's/.*failed: //' | cut -c1-150)"
    done
  done
  expect_eq "$bad" 0 "$RTN: -w /proc/self/fd/3..20 (run and exec) fails or stays inside the container"

  # Masked and read-only paths.
  run2 "${RUN[@]}" --rm "$IMG" sh -c '
    for f in /proc/kcore /proc/sysrq-trigger /proc/timer_list /proc/keys /proc/sched_debug; do
      [ -e $f ] || continue
      n=$(head -c 64 $f 2>/dev/null | wc -c); [ "$n" = 0 ] || echo "READ $f $n"
      # masked = /dev/null bound over it (writes go nowhere); else it must refuse writes
      [ "$(stat -c %t:%T $f)" = 1:3 ] && continue
      { echo h > $f; } 2>/dev/null && echo "WROTE $f"
    done
    for d in /sys/firmware /proc/acpi /proc/scsi /sys/devices/virtual/powercap; do
      [ -d $d ] || continue
      [ -z "$(ls -A $d 2>/dev/null)" ] || echo "LISTED $d"
      touch $d/x 2>/dev/null && echo "WROTE $d"
    done
    for f in /proc/sys/kernel/printk_ratelimit /proc/sys/vm/overcommit_ratio; do
      v=$(cat $f); { echo "$v" > $f; } 2>/dev/null && echo "WROTE $f"
    done
    echo checked'
  expect_eq "$out" "checked" "$RTN: masked paths unreadable and unwritable, /proc/sys read-only"

  # Modules, mount, unshare, keyctl.
  if [ -n "$PROBE" ]; then
    run2 "${RUN[@]}" --rm -v "$PROBE:/probe:ro" "$IMG" /probe
    for c in finit_module init_module mount unshare_mnt unshare_user keyctl add_key; do
      expect_in "$out" "$c=EPERM" "$RTN: $c is refused with EPERM"
    done
    # clone with CLONE_NEW* flags matches no allow rule: the profile's
    # default errno (ENOSYS in containers-common's).
    case "$out" in *clone_newuser=E*) pass "$RTN: clone(CLONE_NEWUSER) is refused" ;; *) fail "$RTN: clone(CLONE_NEWUSER) allowed" ;; esac
    expect_in "$out" "thread=ok" "$RTN: pthread_create still works (clone3 ENOSYS, then clone)"
    run2 "${RUN[@]}" --rm --privileged -v "$PROBE:/probe:ro" "$IMG" /probe
    echo "  (--privileged: $(printf '%s' "$out" | tr '\n' ' '))"
    expect_in "$out" "mount=ok" "$RTN: --privileged may mount (so the probe can tell)"
  else
    fail "$RTN: no static probe (cc -static failed)"
  fi
  run2 "${B[@]}" rm -f "fds-$RTN"
done
finish
