#!/bin/bash
# Bad input to the container half of berth, on the namespaces runtime and on
# runc (io.berth.runtime.v1.oci): each case must end in a clear error that
# names what failed, or in a correct state, and leave nothing behind.
#
#  1. an image with no Cmd and no Entrypoint (made here from busybox's layer)
#  2. -u nosuchuser / -u 0:nosuchgroup
#  3. a missing binary (127, path named), a file that is not executable (126)
#  4. a spec with a namespace of type "bogus" through the real ctr
#     (containers create --config + tasks start): Tasks.Create fails clearly,
#     the container can be removed
#  5. --memory 1m (below Docker's 6 MiB minimum), and via ctr a spec with a
#     4096-byte memory limit (OOM during set-up or the runtime's refusal)
#  6. a container that ignores SIGTERM: stop -t 1 kills it, exit 137
#  7. a fork bomb under --pids-limit 20: pids.current (host side) stays <= 20,
#     rm -f cleans up
#  8. the container's berth-shim killed with SIGKILL: ps -a no longer says
#     Up, rm -f works, no zombie, no mount, no cgroup, no container process
#  9. a client killed (SIGKILL) while attached (a foreground run -i): logs and exec still work, the
#     container still runs
#
# After every case: no mount under the daemon's state dir, no cgroup under
# /sys/fs/cgroup/*/<ns>/, no `sleep <marker>` process, no zombie child of a
# berth-shim (or of berthd), no berth-shim of this daemon, no task or bundle
# directory left.  A runtime that does not load is skipped with its reason;
# the whole test SKIPs when none loads.
# BERTH_BAD_RUNTIMES="namespaces runc" restricts the runtimes (debugging).
. "$(dirname "$0")/lib.sh"
need_root
need_ctr
for tool in docker-registry skopeo python3 timeout tar; do
  command -v "$tool" >/dev/null || skip "$tool not installed (scripts/deps.sh installs it)"
done
[ -n "${top_srcdir:-}" ] || top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
SHIM=$top_builddir/shim/berth-shim
[ -x "$SHIM" ] || skip "berth-shim not built ($SHIM)"
export BERTH_FIFO_DIR=$T/fifo

IMAGES=${BERTH_TEST_IMAGES:-$top_builddir/build/test-images}
run bash "$top_srcdir/tests/images/build.sh" "$IMAGES"
[ "$rc" = 0 ] || { fail "building the test images"; finish; }
REGDIR=$T/registry
REG=$(bash "$top_srcdir/tests/registry/start.sh" "$REGDIR") || { fail "starting docker-registry"; finish; }
stop_registry () { bash "$top_srcdir/tests/registry/stop.sh" "$REGDIR" >/dev/null 2>&1; }
NS=bad-$$
B=()
final_cleanup () {
  local id
  if [ ${#B[@]} -gt 0 ]; then
    for id in $(timeout 20 "${B[@]}" containers ls -q 2>/dev/null); do
      timeout 20 "${B[@]}" rm -f "$id" >/dev/null 2>&1
    done
  fi
  [ -z "${ATTACH_PID:-}" ] || kill -9 "$ATTACH_PID" 2>/dev/null
  stop_registry
  find /sys/fs/cgroup/*/"$NS" -depth -type d -exec rmdir {} \; 2>/dev/null
  cleanup
}
trap final_cleanup EXIT
run bash "$top_srcdir/tests/registry/push.sh" "$REG" --images "$IMAGES" --only busybox
[ "$rc" = 0 ] || { fail "pushing busybox"; finish; }
IMG=$REG/busybox:latest

# --- an image without Cmd and Entrypoint, and a rootfs for ctr's specs --------------
echo "+ python3 (nocmd: busybox's layer, a config without Cmd) && skopeo copy"
python3 - "$IMAGES/busybox" "$T/nocmd" "$T/busybox-layer" <<'EOF' || { fail "making the nocmd image"; finish; }
import hashlib, json, os, shutil, sys
src, dst, layer_out = sys.argv[1:4]
blob = lambda d: os.path.join(src, "blobs", "sha256", d.split(":")[1])
os.makedirs(os.path.join(dst, "blobs", "sha256"))
idx = json.load(open(os.path.join(src, "index.json")))
man = json.load(open(blob(idx["manifests"][0]["digest"])))
cfg = json.load(open(blob(man["config"]["digest"])))
cfg["config"].pop("Cmd", None)
cfg["config"].pop("Entrypoint", None)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(dst, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)
for l in man["layers"]:
    shutil.copyfile(blob(l["digest"]), os.path.join(dst, "blobs", "sha256", l["digest"].split(":")[1]))
shutil.copyfile(blob(man["layers"][0]["digest"]), layer_out)
man["config"]["digest"], man["config"]["size"] = put(json.dumps(cfg, sort_keys=True).encode())
md, ms = put(json.dumps(man, sort_keys=True).encode())
with open(os.path.join(dst, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{"mediaType": man["mediaType"], "digest": md, "size": ms,
                              "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, f)
with open(os.path.join(dst, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
EOF
run skopeo copy -q --dest-tls-verify=false "oci:$T/nocmd:latest" "docker://$REG/nocmd:latest"
[ "$rc" = 0 ] || { fail "pushing the nocmd image"; finish; }
mkdir -p "$T/rootfs" && tar -xzf "$T/busybox-layer" -C "$T/rootfs" || { fail "unpacking busybox's layer"; finish; }

start_berthd "$T/d" \
  '[plugins."io.berth.runtime.v1.namespaces"]' "  binary = \"$top_builddir/berth-runtime\"" "  shim_binary = \"$SHIM\"" \
  '[plugins."io.berth.runtime.v1.oci"]' "  shim_binary = \"$SHIM\"" || finish
B=("$BERTH" --address "$SOCK" --namespace "$NS")
C=("$CTR" --address "$SOCK" --namespace "$NS")
STATE=$T/d/state

# Which runtime plugins load (the reason when one does not).
"${B[@]}" plugins ls --format json >"$T/plugins.json" 2>&1
loaded=$(python3 - "$T/plugins.json" <<'EOF'
import json, sys
try:
    ps = json.load(open(sys.argv[1]))
except Exception:
    ps = []
for p in ps:
    if str(p.get("type", "")).startswith("io.berth.runtime.v1"):
        if p.get("status") == "ok":
            print(p.get("id", "?"))
        else:
            print("  | %s.%s: %s" % (p.get("type"), p.get("id"), p.get("error", p.get("status"))), file=sys.stderr)
EOF
)
RUNTIMES=()
SKIPPED=()
for rt in ${BERTH_BAD_RUNTIMES:-namespaces runc}; do
  plug=$rt; [ "$rt" = runc ] && plug=oci
  if printf '%s\n' "$loaded" | grep -qx "$plug"; then RUNTIMES+=("$rt"); else SKIPPED+=("$rt: plugin $plug does not load"); fi
done
[ ${#RUNTIMES[@]} -gt 0 ] || skip "no runtime plugin loads in berthd (${SKIPPED[*]}; see $BERTHD_LOG)"
echo "runtimes: ${RUNTIMES[*]}"
run timeout 60 "${B[@]}" pull --plain-http "$IMG"
[ "$rc" = 0 ] || { fail "pull $IMG"; finish; }
run timeout 60 "${B[@]}" pull --plain-http "$REG/nocmd:latest"
[ "$rc" = 0 ] || { fail "pull $REG/nocmd:latest"; finish; }

# `sleep $MARK`: the container processes of this run, and nobody else's.
MARK=$((200000 + $$ % 50000))$RANDOM

# run2 CMD...: stdout in $out, stderr in $err, status in $rc (bounded time).
run2 () {
  echo "+ $*"
  timeout 60 "$@" >"$T/o" 2>"$T/e"
  rc=$?
  out=$(cat "$T/o"); err=$(cat "$T/e")
  [ -z "$out" ] || printf '%s\n' "$out" | head -20 | sed 's/^/  | /'
  [ -z "$err" ] || printf '%s\n' "$err" | head -20 | sed 's/^/  ! /'
}
err_has () { # needle what: the error output names what failed
  if printf '%s' "$err" | grep -qiF -- "$1"; then pass "$2"; else fail "$2: the error lacks \`$1\`"; fi
}
wait_for () { # CMD...: up to 5 s for CMD to succeed
  local i
  for i in $(seq 1 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
logs_have () { "${B[@]}" logs "$1" 2>/dev/null | grep -q "$2"; }
# Our shims: berth-shim processes started for this daemon (their task dir is under $T).
our_shims () { pgrep -f "berth-shim .*--task-dir $STATE/" || true; }
# (functions, not sh -c: pgrep -f would find the sh -c itself)
no_marker () { ! pgrep -f "sleep $MARK" >/dev/null; }
ns_cgroups () { find /sys/fs/cgroup/*/"$NS" -mindepth 1 -type d 2>/dev/null; }
no_cgroup () { [ -z "$(ns_cgroups)" ]; }
no_shim () { [ -z "$(our_shims)" ]; }
zombies () { # zombie children of berthd or of one of our shims
  local p
  for p in "$BERTHD_PID" $(our_shims); do
    ps -o pid=,stat=,args= --ppid "$p" 2>/dev/null | awk '$2 ~ /^Z/'
  done
}

leaks () { # what: fail when anything of ours is left
  local m p c z s d
  m=$(grep -c " $STATE/" /proc/self/mounts || true)
  [ "$m" = 0 ] && pass "$1: no mount left under the state dir" ||
    { fail "$1: $m mount(s) left under $STATE"; grep " $STATE/" /proc/self/mounts | sed 's/^/  | /'; }
  wait_for no_marker
  p=$(pgrep -af "sleep $MARK" || true)
  [ -z "$p" ] && pass "$1: no container process left" || fail "$1: container processes left: $p"
  wait_for no_cgroup
  c=$(ns_cgroups | head -5)
  [ -z "$c" ] && pass "$1: no container cgroup left" ||
    { fail "$1: cgroups left: $c"; ns_cgroups | sort -r | xargs -r rmdir 2>/dev/null; }
  wait_for no_shim
  s=$(our_shims | tr '\n' ' ')
  z=$(zombies)
  [ -z "$s$z" ] && pass "$1: no shim, no zombie left" || fail "$1: shims left: $s; zombies: $z"
  d=$(find "$STATE"/io.berth.runtime.v1.*/"$NS" "$STATE/bundles/$NS" -mindepth 1 -maxdepth 1 2>/dev/null | head -5)
  [ -z "$d" ] && pass "$1: no task or bundle directory left" ||
    { fail "$1: directories left: $d"; find $d | sed 's/^/  | /'
      # Gone, so that the next case is judged on its own.
      find "$STATE"/io.berth.runtime.v1.*/"$NS" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; }
}

# spec_file NAME ID [python statements on s]: ctr's default spec, with the
# busybox rootfs, `sleep $MARK`, and the cgroup /<ns>/<id>.
spec_file () {
  local name=$1 id=$2; shift 2
  ctr oci spec >"$T/spec-base.json" || return 1
  python3 - "$T/spec-base.json" "$T/$name.json" "$T/rootfs" "$MARK" "/$NS/$id" "$@" <<'EOF'
import json, sys
src, dst, rootfs, mark, cg = sys.argv[1:6]
s = json.load(open(src))
s["root"] = {"path": rootfs, "readonly": True}
s["process"]["args"] = ["sleep", mark]
s["process"]["terminal"] = False
s["linux"]["cgroupsPath"] = cg
for stmt in sys.argv[6:]:
    exec(stmt)
json.dump(s, open(dst, "w"), indent=1)
EOF
}

cases () { # runtime
  local rt=$1 plug tag R n id sp i st pc pmax pf f a z ev
  plug=io.berth.runtime.v1.namespaces; [ "$rt" = runc ] && plug=io.berth.runtime.v1.oci
  R=("${B[@]}" run --pull never --runtime "$rt")
  n=bad-$rt

  # 1. No Cmd, no Entrypoint.
  tag="$rt/1 no command"
  run2 "${R[@]}" --rm "$REG/nocmd:latest"
  expect_rc 125 "$tag: run fails"
  err_has "no Cmd or Entrypoint" "$tag: the error says there is no command"
  leaks "$tag"

  # 2. A user and a group the image does not have.
  tag="$rt/2 unknown user"
  run2 "${R[@]}" --rm -u nosuchuser "$IMG" sleep "$MARK"
  case $rc in 125|126) pass "$tag: run fails (exit $rc)" ;; *) fail "$tag: exit $rc, expected 125 (or Docker's 126)" ;; esac
  err_has "nosuchuser" "$tag: the error names the user"
  run2 "${R[@]}" --rm -u 0:nosuchgroup "$IMG" sleep "$MARK"
  case $rc in 125|126) pass "$tag: unknown group fails (exit $rc)" ;; *) fail "$tag: unknown group: exit $rc" ;; esac
  err_has "nosuchgroup" "$tag: the error names the group"
  run2 "${B[@]}" containers ls -q
  [ -z "$out" ] && pass "$tag: no container record left" || fail "$tag: containers left: $out"
  leaks "$tag"

  # 3. Missing and non-executable binaries.
  tag="$rt/3 bad binary"
  run2 "${R[@]}" --rm "$IMG" /no/such/binary
  expect_rc 127 "$tag: a missing binary"
  err_has "/no/such/binary" "$tag: the error names the path"
  run2 "${R[@]}" --rm "$IMG" no-such-command
  expect_rc 127 "$tag: a command not in \$PATH"
  err_has "no-such-command" "$tag: the error names the command"
  run2 "${R[@]}" --rm "$IMG" /etc/passwd
  expect_rc 126 "$tag: a file that is not executable"
  err_has "/etc/passwd" "$tag: the error names the file"
  err_has "permission denied" "$tag: and says why"
  leaks "$tag"

  # 4. A spec with an unknown namespace type, through ctr.
  tag="$rt/4 bogus namespace"
  id=bogus-$rt
  spec_file "$id" "$id" 's["linux"]["namespaces"].append({"type": "bogus"})' || fail "$tag: writing the spec"
  run timeout 30 "${C[@]}" containers create --runtime "$plug" --config "$T/$id.json" "$id"
  expect_rc 0 "$tag: ctr containers create (the record only)"
  run timeout 30 "${C[@]}" tasks start --null-io "$id"
  [ "$rc" != 0 ] && pass "$tag: Tasks.Create fails (exit $rc)" || fail "$tag: the task started"
  expect_contains "bogus" "$tag: the error names the namespace type"
  run timeout 30 "${C[@]}" tasks ls -q
  expect_not_contains "$id" "$tag: no task left"
  run timeout 30 "${C[@]}" containers rm "$id"
  expect_rc 0 "$tag: the container can be removed"
  leaks "$tag"

  # 5. A memory limit too small.
  tag="$rt/5 tiny memory"
  run2 "${R[@]}" --rm --memory 1m "$IMG" sleep "$MARK"
  expect_rc 125 "$tag: --memory 1m refused"
  err_has "memory" "$tag: the error is about the memory limit"
  err_has "minimum" "$tag: and gives the minimum"
  id=mem-$rt
  spec_file "$id" "$id" 's["linux"].setdefault("resources", {})["memory"] = {"limit": 4096}' || fail "$tag: writing the spec"
  run timeout 30 "${C[@]}" run --rm --null-io --runtime "$plug" --config "$T/$id.json" "$id"
  [ "$rc" != 0 ] && pass "$tag: a 4096-byte limit fails (exit $rc)" || fail "$tag: the task ran"
  printf '%s' "$out" | grep -qiE "memory limit|memory.limit|oom" && pass "$tag: the error names the memory limit" ||
    fail "$tag: the error does not say the memory limit failed"
  run timeout 30 "${C[@]}" containers rm "$id"
  run timeout 30 "${C[@]}" containers ls -q
  expect_not_contains "$id" "$tag: no container left"
  leaks "$tag"

  # 6. SIGTERM ignored: stop -t 1 kills.
  tag="$rt/6 ignores SIGTERM"
  run2 "${R[@]}" -d --name "$n-ign" "$IMG" sh -c "trap '' TERM; echo ready; while true; do sleep $MARK; done"
  expect_rc 0 "$tag: run -d"
  wait_for logs_have "$n-ign" ready
  run2 "${B[@]}" stop -t 1 "$n-ign"
  expect_rc 0 "$tag: stop -t 1"
  run2 "${B[@]}" inspect "$n-ign"
  st=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]["State"]; print(d["Status"], d["ExitCode"])' 2>&1)
  [ "$st" = "exited 137" ] && pass "$tag: inspect: exited 137" || fail "$tag: inspect state \`$st\`, expected \`exited 137\`"
  run2 "${B[@]}" rm "$n-ign"
  expect_rc 0 "$tag: rm"
  leaks "$tag"

  # 7. A fork bomb under --pids-limit 20.
  tag="$rt/7 fork bomb"
  run2 "${R[@]}" -d --name "$n-bomb" --pids-limit 20 "$IMG" \
    sh -c "sh -c 'f() { f | f & }; f; while :; do sleep $MARK & done' 2>/dev/null & exec sleep $MARK"
  expect_rc 0 "$tag: run -d"
  id=$out
  pf=
  for f in "/sys/fs/cgroup/pids/$NS/$id/pids.current" "/sys/fs/cgroup/unified/$NS/$id/pids.current" \
           "/sys/fs/cgroup/$NS/$id/pids.current"; do
    [ -f "$f" ] && { pf=$f; break; }
  done
  if [ -z "$pf" ]; then
    fail "$tag: no pids.current for $NS/$id on the host"
  else
    pmax=0
    for i in $(seq 1 20); do
      pc=$(cat "$pf" 2>/dev/null || echo 0)
      [ "$pc" -gt "$pmax" ] && pmax=$pc
      sleep 0.1
    done
    echo "  $pf: at most $pmax over 2 s; pids.events: $(cat "${pf%/*}/pids.events" 2>/dev/null)"
    [ "$pmax" -le 20 ] && [ "$pmax" -ge 15 ] && pass "$tag: contained (pids.current max $pmax <= 20)" ||
      fail "$tag: pids.current reached $pmax (expected 15..20: at the limit, not above)"
    ev=$(awk '$1 == "max" { print $2 }' "${pf%/*}/pids.events" 2>/dev/null)
    [ "${ev:-0}" -gt 0 ] && pass "$tag: the kernel refused forks ($ev times)" || fail "$tag: pids.events shows no refused fork"
  fi
  run2 "${B[@]}" ps
  expect_contains "$n-bomb" "$tag: berth still answers, ps lists it"
  run2 "${B[@]}" rm -f "$n-bomb"
  expect_rc 0 "$tag: rm -f"
  leaks "$tag"

  # 8. The shim killed with SIGKILL.
  tag="$rt/8 shim killed"
  run2 "${R[@]}" -d --name "$n-shim" "$IMG" sleep "$MARK"
  expect_rc 0 "$tag: run -d"
  id=$out
  sp=$(pgrep -f "berth-shim .*$id" | head -1)
  if [ -z "$sp" ]; then
    fail "$tag: no berth-shim with $id in its command line"
  else
    echo "+ kill -9 $sp (berth-shim of $id)"
    kill -9 "$sp"
    st=
    for i in $(seq 1 50); do
      st=$("${B[@]}" ps -a 2>/dev/null | grep "$n-shim")
      printf '%s' "$st" | grep -q " Up " || break
      sleep 0.1
    done
    echo "  | $st"
    printf '%s' "$st" | grep -qE "Exited|Unknown|Dead" && pass "$tag: ps -a says exited/unknown within 5 s" ||
      fail "$tag: ps -a still says \`$st\`"
    wait_for no_marker && pass "$tag: the container process is gone" ||
      fail "$tag: the container process outlives its shim"
    z=$(zombies); [ -z "$z" ] && pass "$tag: no zombie" || fail "$tag: zombies: $z"
  fi
  run2 "${B[@]}" rm -f "$n-shim"
  expect_rc 0 "$tag: rm -f"
  leaks "$tag"

  # 9. A client killed while attached.
  tag="$rt/9 attach client killed"
  # The attached client is a foreground `run -i` (stdio through FIFOs the
  # shim holds); `berth attach` to a -d container is refused (no FIFOs).
  rm -f "$T/att-in"; mkfifo "$T/att-in"
  exec 9<>"$T/att-in"   # stdin that stays open: the client does not end on EOF
  echo "+ ${R[*]} -i --name $n-att $IMG sh -c 'loop' <fifo & ... kill -9"
  "${R[@]}" -i --name "$n-att" "$IMG" sh -c "i=0; while true; do i=\$((i+1)); echo tick \$i; sleep 0.2; done" \
    <"$T/att-in" >"$T/att-out" 2>&1 &
  ATTACH_PID=$!
  sleep 1.5
  kill -0 "$ATTACH_PID" 2>/dev/null && pass "$tag: attach is running" || fail "$tag: attach ended early: $(head -3 "$T/att-out")"
  grep -q "^tick" "$T/att-out" && pass "$tag: attach shows the container's output" ||
    fail "$tag: attach showed no output in 1.5 s ($(wc -c <"$T/att-out") bytes)"
  kill -9 "$ATTACH_PID" 2>/dev/null; wait "$ATTACH_PID" 2>/dev/null; ATTACH_PID=
  exec 9>&-
  sleep 0.5
  run2 "${B[@]}" ps
  printf '%s\n' "$out" | grep "$n-att" | grep -q " Up " && pass "$tag: still Up" || fail "$tag: not Up after the client died"
  run2 "${B[@]}" logs --tail 1 "$n-att"
  a=$out
  sleep 0.5
  run2 "${B[@]}" logs --tail 1 "$n-att"
  [ -n "$a" ] && [ "$out" != "$a" ] && pass "$tag: logs work and the output goes on" || fail "$tag: logs \`$a\` then \`$out\`"
  run2 "${B[@]}" exec "$n-att" sh -c 'echo exec-ok $((6*7))'
  [ "$out" = "exec-ok 42" ] && pass "$tag: exec works" || fail "$tag: exec: exit $rc, \`$out\`"
  run2 "${B[@]}" stop -t 1 "$n-att"
  expect_rc 0 "$tag: stop"
  run2 "${B[@]}" rm "$n-att"
  expect_rc 0 "$tag: rm"
  leaks "$tag"
}

start=$(date +%s)
for rt in "${RUNTIMES[@]}"; do
  echo "=== runtime $rt"
  before=$failures
  cases "$rt"
  [ "$failures" = "$before" ] || echo "=== $rt: $((failures - before)) failure(s)"
done
echo "=== summary ($(( $(date +%s) - start )) s for the cases)"
for s in "${SKIPPED[@]}"; do echo "SKIP $s"; done
finish
