#!/bin/bash
# A long fuzzing campaign: every libFuzzer target, one after the other,
# each for FUZZ_SECONDS, at low priority, keeping what it finds.
#
#   cd <build dir configured with CC=clang --enable-fuzz>
#   make fuzz-campaign FUZZ_SECONDS=480            # or:
#   FUZZ_SECONDS=480 bash $srcdir/tests/fuzz/campaign.sh [fuzz-toml ...]
#
# Environment:
#   FUZZ_SECONDS   per target (default 480)
#   FUZZ_JOBS      libFuzzer -fork=N workers per target (default 1: one
#                  process; the project's machines have 2 shared cores)
#   FUZZ_NICE      nice level (default 10)
#   FUZZ_WORK      where the growing corpora live (default tests/fuzz/campaign
#                  in the build dir): <work>/<target>/, seeded from the
#                  checked-in tests/fuzz/corpus/<target>/ and kept between runs;
#                  tests/fuzz/dict/<target>.dict, when there, is the dictionary
#   FUZZ_TARGETS   the targets (default: every tests/fuzz/fuzz-* binary)
# Crashes, leaks and timeouts go to tests/fuzz/artifacts/<target>-*; a target
# that finds one stops there and the campaign goes on with the next.  At the
# end a table prints, per target: executions, exec/s, edge coverage (cov),
# features (ft), corpus size, and the artifacts it left; logs stay in
# <work>/<target>.log.  Exit status 1 when any target left an artifact.
set -u
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
secs=${FUZZ_SECONDS:-480}
jobs=${FUZZ_JOBS:-1}
nicelvl=${FUZZ_NICE:-10}
work=${FUZZ_WORK:-tests/fuzz/campaign}
targets=${FUZZ_TARGETS:-}
[ $# -gt 0 ] && targets="$*"
if [ -z "$targets" ]; then
  for t in tests/fuzz/fuzz-*; do
    [ -x "$t" ] && [ -f "$t" ] && targets="$targets $(basename "$t")"
  done
fi
[ -n "$targets" ] || { echo "campaign: no fuzz targets here (configure with CC=clang --enable-fuzz, make)" >&2; exit 2; }
mkdir -p "$work" tests/fuzz/artifacts
work=$(cd "$work" && pwd)
summary=$work/summary.tsv
printf 'target\tseconds\texecs\texec/s\tcov\tft\tcorpus\tartifacts\n' > "$summary"
found=0
for name in $targets; do
  name=$(basename "$name")
  bin=tests/fuzz/$name
  [ -x "$bin" ] || { echo "campaign: $bin not built" >&2; found=1; continue; }
  corpus=$work/$name
  mkdir -p "$corpus"
  seeds=$srcdir/tests/fuzz/corpus/$name
  [ -d "$seeds" ] || seeds=
  before=$(ls tests/fuzz/artifacts/ 2>/dev/null | grep -c "^$name-")
  extra=()
  [ "$jobs" -gt 1 ] && extra=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  [ -f "$srcdir/tests/fuzz/dict/$name.dict" ] && extra+=(-dict="$srcdir/tests/fuzz/dict/$name.dict")
  echo "campaign: $name for ${secs}s (nice $nicelvl, jobs $jobs), corpus $corpus ${seeds:+seeds $seeds}"
  start=$(date +%s)
  nice -n "$nicelvl" "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="tests/fuzz/artifacts/$name-" "${extra[@]}" \
    "$corpus" ${seeds:+"$seeds"} > "$work/$name.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  log=$work/$name.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+:?[[:space:]].*cov: ' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(printf '%s' "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
  [ -n "$eps" ] || eps=$(( ${execs:-0} / (took > 0 ? took : 1) ))
  cov=$(printf '%s' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(printf '%s' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  ncorp=$(ls "$corpus" | wc -l)
  after=$(ls tests/fuzz/artifacts/ 2>/dev/null | grep -c "^$name-")
  new=$(( after - before ))
  [ "$new" -gt 0 ] && found=1
  [ "$rc" -ne 0 ] && [ "$new" -eq 0 ] && { echo "campaign: $name exited $rc without an artifact, see $log" >&2; found=1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$took" "${execs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" \
    "$ncorp" "$new" >> "$summary"
  tail -1 "$summary"
done
echo
column -t -s '	' "$summary" 2>/dev/null || cat "$summary"
exit $found
