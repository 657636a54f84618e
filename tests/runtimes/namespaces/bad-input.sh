#!/bin/bash
# berth-runtime: hostile and broken configs fail at create with an error
# naming the field or path, exit 127/126 for a process that cannot run, and
# leave nothing behind.
. "$(dirname "$0")/lib.sh"
B=$T/bundle
make_bundle "$B"
cd "$B" || exit 1
cp config.json config.good
n=0

bad () { # filter expected-rc expected-text what
  new_id "bad$((++n))"
  cp config.good config.json
  edit_config "$B" "$1"
  rtd create "$id"
  expect_rc "$2" "$4"
  expect_contains "$3" "$4: the error names it"
  check_clean "$id"
}

bad '.linux.namespaces+=[{"type":"bogus"}]' 1 'unknown namespace type `bogus`' "unknown namespace"
bad '.linux.namespaces+=[{"type":"cgroup","path":"/nonexistent/ns"}]' 1 '/nonexistent/ns' "duplicate/missing namespace path"
bad '.process.args=["/bin/nope"]' 127 '/bin/nope' "missing binary (absolute)"
bad '.process.args=["nope-nope"]' 127 'executable file not found in $PATH' "missing binary (PATH lookup)"
chmod 0644 "$B/rootfs/etc/passwd"
bad '.process.args=["/etc/passwd"]' 126 '/etc/passwd' "non-executable file"
bad '.process.args=[]' 1 'process.args' "empty args"
bad '.process.args=[1,2]' 1 'process.args[0]' "args not strings"
bad '.root.path="nowhere"' 1 'root.path' "missing rootfs"
bad '.mounts+=[{"destination":"/x","type":"bind","source":"/nonexistent/src"}]' 1 '/nonexistent/src' "bind source missing"
bad '.mounts+=[{"destination":"/x","type":"tmpfs","source":"tmpfs","options":["size=banana"]}]' 1 'mounts[' "bad tmpfs option"
bad '.linux.namespaces+=[{"type":"user"}]' 1 'uidMappings' "user namespace without mappings"
bad '.process.env=["NOEQUALS"]' 1 'process.env[' "env entry without ="
bad '.linux.sysctl={"../../etc/x":"1"}' 1 'linux.sysctl' "sysctl path traversal"
bad '.linux.devices=[{"path":"/etc/evil","type":"c","major":1,"minor":3}]' 1 'linux.devices[0].path' "device outside /dev"

new_id json
printf '{"ociVersion": "1.0.2", "process": {' > config.json
rtd create "$id"
expect_rc 1 "malformed JSON"
expect_contains "config.json" "the error names config.json"
check_clean "$id"

cp config.good config.json
new_id dup
rtd create "$id"
expect_rc 0 "create"
rtd create "$id"
expect_rc 1 "the same id twice"
expect_contains "already exists" "the error says so"
rt delete "$id"
check_clean "$id"

rtd create "../escape"
expect_rc 1 "an id with a slash"
expect_contains "invalid container id" "the error says so"
[ -e "$T/escape" ] && fail "state written outside --root" || pass "nothing written outside --root"

cp config.good config.json
edit_config "$B" '.process.args=["/bin/nope"]'
new_id run127
rt run "$id"
expect_rc 127 "run of a missing binary exits 127"
finish
