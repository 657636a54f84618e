#!/bin/bash
# Run every berth test on this machine (as root):
#   dependencies → build (-Werror) → make check (unit suites, plugin-ABI
#   fixtures, toml-test corpus) → make check-integration (real berthd, real
#   ctr) → the same unit suites under ASan+UBSan, and a few integration
#   suites with an ASan berthd → fuzz smoke.
# Ends with the summary lines of all Check suites.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
logs=$top/build/test-logs
status=0

step () { printf '\n=== %s\n' "$*"; current="$*"; }
failed_steps=()
step_failed () { status=1; failed_steps+=("$current"); }

step "dependencies"
bash scripts/deps.sh || exit 1

step "autogen"
./autogen.sh >/dev/null || exit 1

# build DIR CONFIGURE-ARGS...
build () {
  local dir=$1; shift
  mkdir -p "$dir"
  (cd "$dir" && "$top/configure" -q "$@" && make -j"$JOBS" >/dev/null)
}

step "build (-Werror)"
build build/ci --enable-werror || exit 1

step "make check"
(cd build/ci && make -j"$JOBS" check) || step_failed

step "make check-integration"
(cd build/ci && make check-integration) || step_failed

step "make check-faults (crash consistency, bounded)"
(cd build/ci && make check-faults) || step_failed

step "ASan+UBSan build, make check"
if build build/asan --enable-werror --enable-asan; then
  (cd build/asan && ASAN_OPTIONS=detect_leaks=1 make -j"$JOBS" check) || step_failed
else
  echo "ASan build failed"; step_failed
fi

# berthd, the CLI, the shim and the plugins under the sanitizers with real
# clients: a few integration suites that go through most of the daemon
# (pull and unpack, snapshots on all three snapshotters, containers,
# recovery).  The unit suites alone never ran berthd's own code paths.
step "ASan+UBSan berthd: integration smoke"
if [ -x build/asan/berthd ]; then
  (cd build/asan && ASAN_OPTIONS=detect_leaks=1 make check TESTS="tests/integration/daemon.sh \
     tests/integration/pull.sh tests/integration/snapshots.sh tests/integration/cli-run.sh \
     tests/integration/recovery.sh tests/snapshotters/fuse/plugin.sh \
     tests/snapshotters/fuse/lazy-plugin.sh") || step_failed
else
  echo "no ASan berthd"; step_failed
fi

step "fuzz smoke (${FUZZ_SECONDS}s per target)"
if build build/fuzz CC=clang --enable-fuzz; then
  (cd build/fuzz && make fuzz-smoke FUZZ_SECONDS="$FUZZ_SECONDS") || step_failed
else
  echo "fuzz build failed"; step_failed
fi

step "summary"
rm -rf "$logs"; mkdir -p "$logs"
passed=0; failed=0; skipped=0; checks=0; cfail=0; cerr=0
for d in build/ci build/asan; do
  while IFS= read -r trs; do
    res=$(sed -n 's/^:test-result: //p' "$trs" | head -1)
    case "$res" in
      PASS|XFAIL) passed=$((passed + 1)) ;;
      SKIP) skipped=$((skipped + 1)) ;;
      *) failed=$((failed + 1)); echo "failed: ${trs%.trs}"
         # CI shows only this output: say why, not just that.
         grep -E '^(not ok|FAIL|ERROR)|: (F|E):|Sanitizer|runtime error' "${trs%.trs}.log" 2>/dev/null \
           | head -20 | sed 's/^/    | /'
         tail -n 15 "${trs%.trs}.log" 2>/dev/null | sed 's/^/    : /' ;;
    esac
    log=${trs%.trs}.log
    cp "$log" "$logs/$(echo "$log" | tr / _)" 2>/dev/null
    # Check's own per-suite line: "100%: Checks: N, Failures: F, Errors: E"
    line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -1)
    if [ -n "$line" ]; then
      echo "${trs%.trs}: $line"
      n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
      f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
      e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
      checks=$((checks + n)); cfail=$((cfail + f)); cerr=$((cerr + e))
    fi
  done < <(find "$d" -name '*.trs' | sort)
done
[ "$failed" -gt 0 ] && status=1
for s in "${failed_steps[@]}"; do echo "step failed: $s"; done
# A step can fail without leaving a test result (a build error): never
# close with "0 failed" then.
[ "$status" != 0 ] && [ "$failed" = 0 ] && failed=${#failed_steps[@]}
echo "test programs: $passed passed, $failed failed, $skipped skipped (logs in $logs)"
pct=100; [ "$checks" -gt 0 ] && pct=$(( (checks - cfail - cerr) * 100 / checks ))
echo "$passed passed, $failed failed, $skipped skipped"
echo "${pct}%: Checks: $checks, Failures: $cfail, Errors: $cerr"
exit $status
