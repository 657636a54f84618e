#!/bin/bash
# berth-runtime lifecycle: run with exit code, create/start/state/kill/delete
# with the state JSON checked, exec into a running container, a terminal
# through --console-socket, pause/resume, ps, list, hooks.
. "$(dirname "$0")/lib.sh"
B=$T/bundle
make_bundle "$B"
cd "$B" || exit 1

echo "== run: exit code"
new_id run
edit_config "$B" '.process.args=["sh","-c","echo hello from $(hostname); exit 7"]'
rt run "$id"
expect_rc 7 "run returns the container's exit code"
expect_contains "hello from runc" "run prints the container's output and hostname"
check_clean "$id"

echo "== create/start/state/kill/delete"
new_id life
marker="marker-life-$$"
edit_config "$B" ".process.args=[\"sh\",\"-c\",\"sleep 1000; : $marker\"] | .annotations={\"a.b\":\"c\"}"
rtd create --pid-file "$T/init.pid" "$id"
expect_rc 0 "create"
pid=$(cat "$T/init.pid" 2>/dev/null)
rt state "$id"
[ "$(printf '%s' "$out" | jq -r .status)" = created ] && pass "state: created" || fail "state is not created"
[ -n "$pid" ] && [ "$(printf "%s" "$out" | jq -r .pid)" = "$pid" ] && pass "state: pid matches --pid-file" || fail "state pid != pid file"
[ "$(printf '%s' "$out" | jq -r .bundle)" = "$B" ] && pass "state: bundle" || fail "state bundle"
[ "$(printf '%s' "$out" | jq -r '.annotations["a.b"]')" = c ] && pass "state: annotations" || fail "state annotations"
[ "$(printf '%s' "$out" | jq -r .ociVersion)" != null ] && pass "state: ociVersion" || fail "no ociVersion"
[ -p "$ROOT/$id/exec.fifo" ] && pass "exec.fifo exists before start" || fail "no exec.fifo"
grep -q "sleep" "/proc/$pid/cmdline" && fail "init ran the process before start" || pass "init waits for start"
# CVE-2019-5736: the waiting init runs from a sealed memfd, not the host binary
exe=$(readlink "/proc/$pid/exe")
case $exe in /memfd:berth-runtime*) pass "the init runs from a memfd ($exe)";; *) fail "the init runs from $exe";; esac
( echo x >> "/proc/$pid/exe" ) 2>/dev/null && fail "the init's /proc/<pid>/exe is writable" || pass "the init's /proc/<pid>/exe is not writable (sealed)"
rtd start "$id"
expect_rc 0 "start"
[ "$(state_field "$id" status)" = running ] && pass "state: running" || fail "not running after start"
[ -e "$ROOT/$id/exec.fifo" ] && fail "exec.fifo left after start" || pass "exec.fifo removed by start"
rt start "$id"
expect_rc 1 "start twice fails"
rt delete "$id"
expect_rc 1 "delete of a running container without --force fails"
expect_contains "not stopped" "delete error says why"

echo "== exec"
rt exec "$id" sh -c 'echo exec-ok $$; cat /proc/1/cmdline | tr "\0" " "'
expect_rc 0 "exec"
expect_contains "exec-ok" "exec output"
expect_contains "sleep 1000" "exec sees the container's pid 1"
rt exec --env FOO=bar --cwd /tmp --user 1000:1000 "$id" sh -c 'echo $FOO $(pwd) $(id -u):$(id -g)'
expect_contains "bar /tmp 1000:1000" "exec --env --cwd --user"
rt exec "$id" sh -c 'exit 5'
expect_rc 5 "exec returns the process's exit code"
printf '{"args":["sh","-c","echo from-process-json"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}}' > "$T/p.json"
rt exec --process "$T/p.json" "$id"
expect_contains "from-process-json" "exec --process FILE"
printf '{"args":["grep","CapEff","/proc/self/status"],"cwd":"/","user":{"uid":0,"gid":0}}' > "$T/p.json"
rt exec --process "$T/p.json" "$id"
expect_contains "CapEff:	0000000020000420" "an exec process without capabilities gets the container's"
rtd exec -d --pid-file "$T/exec.pid" "$id" sleep 30
expect_rc 0 "exec --detach"
epid=$(cat "$T/exec.pid" 2>/dev/null)
[ -n "$epid" ] && [ -d "/proc/$epid" ] && pass "detached exec runs (pid $epid)" || fail "detached exec pid"
rt ps --format json "$id"
printf '%s' "$out" | jq -e "index($pid) != null and index($epid) != null" >/dev/null && pass "ps --format json lists init and exec" || fail "ps json"
rt exec "$id" /bin/nonexistent
expect_rc 127 "exec of a missing binary"
expect_contains "/bin/nonexistent" "exec error names the path"
rt exec "$id" ls -l /proc/self/fd/
expect_not_contains "socket:" "no runtime fd reaches an exec'd process"
rt exec "$id" sh -c 'ls /proc/1/fd | tr "\n" " "'
[ "$(printf '%s' "$out" | tr -d ' ')" = "012" ] && pass "the init holds only fds 0 1 2" || fail "the init holds other fds: $out"


echo "== pause/resume/events/list"
rt pause "$id"
expect_rc 0 "pause"
[ "$(state_field "$id" status)" = paused ] && pass "state: paused" || fail "not paused"
grep -q '^State:.*T\|frozen' "/proc/$pid/status" 2>/dev/null; # informative only
rt resume "$id"
[ "$(state_field "$id" status)" = running ] && pass "state: running after resume" || fail "not running after resume"
rt events --stats "$id"
printf '%s' "$out" | jq -e '.type == "stats"' >/dev/null && pass "events --stats prints a stats object" || fail "events --stats"
rt list --format json
printf '%s' "$out" | jq -e "map(select(.id == \"$id\")) | length == 1" >/dev/null && pass "list shows the container" || fail "list"

echo "== kill"
rt kill "$id" KILL
expect_rc 0 "kill KILL"
for _ in $(seq 50); do [ "$(state_field "$id" status)" = stopped ] && break; sleep 0.1; done
[ "$(state_field "$id" status)" = stopped ] && pass "state: stopped" || fail "not stopped after kill"
rt delete "$id"
expect_rc 0 "delete a stopped container"
rt state "$id"
expect_rc 1 "state after delete fails"
expect_contains "does not exist" "state error says why"
check_clean "$id" "$marker"

echo "== kill --all, delete --force"
new_id all
# A duration of this test's own (pgrep -x): other tests' `sleep 100000`
# containers may run on the machine at the same time.
nap=$((1000000 + $$))
edit_config "$B" ".process.args=[\"sh\",\"-c\",\"sleep $nap & sleep $nap; : $marker\"] | .linux.namespaces -= [{\"type\":\"pid\"}]"
rtd run -d "$id"
expect_rc 0 "run -d without a pid namespace"
for _ in $(seq 50); do [ "$(pgrep -fx "sleep $nap" | wc -l)" = 2 ] && break; sleep 0.1; done
[ "$(pgrep -fx "sleep $nap" | wc -l)" = 2 ] || fail "the container's two sleeps did not start"
rt kill --all "$id" KILL
for _ in $(seq 50); do pgrep -fx "sleep $nap" >/dev/null || break; sleep 0.1; done
pgrep -fx "sleep $nap" >/dev/null && fail "kill --all left processes" || pass "kill --all reached every process"
rt delete --force "$id"
expect_rc 0 "delete --force"
check_clean "$id" "$marker"
new_id force
edit_config "$B" ".process.args=[\"sh\",\"-c\",\"sleep 1000; : $marker\"] | .linux.namespaces += [{\"type\":\"pid\"}]"
rtd run -d "$id"
rt delete --force "$id"
expect_rc 0 "delete --force of a running container"
check_clean "$id" "$marker"
rt delete --force "never-created-$$"
expect_rc 0 "delete --force of an unknown container succeeds (runc)"

echo "== create then delete without start"
new_id created
rtd create "$id"
rt delete "$id"
expect_rc 0 "delete of a created container"
check_clean "$id" "$marker"

echo "== terminal via --console-socket"
new_id tty
edit_config "$B" '.process.terminal=true | .process.args=["sh","-c","tty; test -t 0 && test -t 1 && echo STDIO_IS_TTY; read line; echo GOT $line"]'
python3 "$(dirname "$0")/console.py" "$T/console.sock" "$T/console.out" $'hello-tty\n' &
cpid=$!
for _ in $(seq 50); do [ -S "$T/console.sock" ] && break; sleep 0.05; done
rt run --console-socket "$T/console.sock" "$id"
expect_rc 0 "run with a terminal"
timeout 10 tail --pid=$cpid -f /dev/null
out=$(cat "$T/console.out" 2>/dev/null); echo "$out" | sed 's/^/  | /'
expect_contains "/dev/pts/0" "the process's tty is the container's /dev/pts/0"
expect_contains "STDIO_IS_TTY" "stdin and stdout are the terminal"
expect_contains "GOT hello-tty" "input typed on the master reaches the process"
check_clean "$id"
rt run "$id"
expect_rc 1 "terminal without --console-socket is refused"
expect_contains "console-socket" "the error names --console-socket"

echo "== hooks"
new_id hooks
cat > "$T/hook.sh" <<EOT
#!/bin/sh
cat > "$T/hook-\$1.json"
EOT
chmod +x "$T/hook.sh"
edit_config "$B" ".process.terminal=false | .process.args=[\"true\"] | .hooks={\"prestart\":[{\"path\":\"$T/hook.sh\",\"args\":[\"hook\",\"prestart\"]}],\"poststart\":[{\"path\":\"$T/hook.sh\",\"args\":[\"hook\",\"poststart\"]}],\"poststop\":[{\"path\":\"$T/hook.sh\",\"args\":[\"hook\",\"poststop\"],\"timeout\":5}]}"
rt run "$id"
expect_rc 0 "run with hooks"
for h in prestart poststart poststop; do
  jq -e ".id == \"$id\"" "$T/hook-$h.json" >/dev/null 2>&1 && pass "$h hook got the state on stdin" || fail "$h hook"
done
printf '#!/bin/sh\ncat > /tmp/start-hook.json\n' > "$B/rootfs/bin/start-hook"
chmod +x "$B/rootfs/bin/start-hook"
edit_config "$B" ".hooks={\"createContainer\":[{\"path\":\"$T/hook.sh\",\"args\":[\"hook\",\"createContainer\"]}],\"startContainer\":[{\"path\":\"/bin/start-hook\"}]}"
rt run "$id"
expect_rc 0 "run with createContainer/startContainer hooks"
jq -e ".id == \"$id\"" "$T/hook-createContainer.json" >/dev/null 2>&1 && pass "createContainer hook ran" || fail "createContainer hook"
jq -e ".id == \"$id\"" "$B/rootfs/tmp/start-hook.json" >/dev/null 2>&1 && pass "startContainer hook ran inside the container" || fail "startContainer hook"
rm -f "$B/rootfs/bin/start-hook" "$B/rootfs/tmp/start-hook.json"
edit_config "$B" ".hooks={\"prestart\":[{\"path\":\"/bin/sleep\",\"args\":[\"sleep\",\"30\"],\"timeout\":1}]}"
rt run "$id"
expect_rc 1 "a hook past its timeout fails create"
expect_contains "timed out" "the error says the hook timed out"
check_clean "$id"
finish
