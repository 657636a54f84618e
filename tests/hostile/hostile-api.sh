#!/bin/bash
# Hostile input over the API socket (issue 8, part 5): hostile-grpc sends
# malformed and wrong-type protobuf to every method, 4 GiB length prefixes,
# compressed messages, unknown methods, bad content-types, resets and GOAWAY
# mid-message, garbage prefaces, byte-by-byte trickles, thousands of streams
# on one and on many connections, partial messages up to the buffer caps and
# connections past max_connections.  Meanwhile a well-behaved client (real
# ctr version, berth images ls) must keep working, and berthd's RSS, sampled
# every 200 ms, must stay under HOSTILE_RSS_MAX_KIB (64 MiB).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"

need_root
need_ctr
HOSTILE=${HOSTILE:-$top_builddir/tests/hostile/hostile-grpc}
RSS_MAX_KIB=${HOSTILE_RSS_MAX_KIB:-65536}
if [ ! -x "$HOSTILE" ]; then
  # Not built by make (yet): build it here, it needs only nghttp2.
  HOSTILE=$T/hostile-grpc
  run ${CC:-cc} -I"$top_builddir" -I"$top_srcdir" -O2 -o "$HOSTILE" "$top_srcdir/tests/hostile/hostile-grpc.c" -lnghttp2
  [ "$rc" = 0 ] || skip "cannot build hostile-grpc (libnghttp2-dev missing?)"
fi

# Limits tuned down so that the test is quick and the caps are reached:
# 4 MiB per connection (16 MiB in all), 2 s to send a request, 6 s idle.
write_config "$T/d"
cat >> "$T/d/config.toml" <<'EOF'
  max_recv_message_size = 2097152
  max_connection_buffer = 4194304
  max_concurrent_streams = 128
  max_connections = 200
  request_timeout = 2
  idle_timeout = 6
EOF
start_berthd_config "$T/d" "$T/d/config.toml" || finish
sleep 0.5
fds_before=$(ls /proc/"$BERTHD_PID"/fd | wc -l)
rss_of () { awk '/^VmRSS:/ { print $2 }' /proc/"$1"/status 2>/dev/null; }
rss_before=$(rss_of "$BERTHD_PID")

# The well-behaved client, in the background for the whole attack.
good_log=$T/good.log
(
  while [ ! -e "$T/stop" ]; do
    t0=$(date +%s%N)
    if "$CTR" --address "$SOCK" --timeout 10s version >/dev/null 2>&1; then r=ok; else r=FAIL; fi
    t1=$(date +%s%N)
    if "$BERTH" --address "$SOCK" --timeout 10s images ls >/dev/null 2>&1; then r2=ok; else r2=FAIL; fi
    t2=$(date +%s%N)
    echo "ctr-version $r $(((t1 - t0) / 1000000)) berth-images-ls $r2 $(((t2 - t1) / 1000000))"
    sleep 0.2
  done
) >"$good_log" 2>&1 &
good_pid=$!
# RSS sampler.
rss_log=$T/rss.log
(
  while [ ! -e "$T/stop" ]; do rss_of "$BERTHD_PID"; sleep 0.2; done
) >"$rss_log" 2>&1 &
rss_pid=$!

attack () { # name [arg]: run one attack, its answers are the test's output
  echo "+ hostile-grpc \$SOCK $*"
  local start=$(date +%s%N)
  timeout 300 "$HOSTILE" "$SOCK" "$@" | sed 's/^/  | /'
  local r=${PIPESTATUS[0]}
  local ms=$((($(date +%s%N) - start) / 1000000))
  if [ "$r" = 0 ]; then pass "attack $* ($ms ms)"; else fail "attack $*: exit $r"; fi
  kill -0 "$BERTHD_PID" 2>/dev/null || { fail "berthd died during attack $*"; finish; }
}

attack malformed
attack huge
attack compressed
attack unknown
attack content-type
attack reset
attack garbage
attack slowloris 2
attack idle 6
attack streams 40
attack buffer 4096
HOSTILE_HOLD_MS=2000 attack flood 40
attack conns 200

# Everything at once: the caps hold together and the good client still works.
echo "+ concurrent: flood 40, streams 20, slowloris 2, malformed"
pids=()
HOSTILE_HOLD_MS=3000 timeout 300 "$HOSTILE" "$SOCK" flood 40 >"$T/c1.log" 2>&1 & pids+=($!)
timeout 300 "$HOSTILE" "$SOCK" streams 20 >"$T/c2.log" 2>&1 & pids+=($!)
timeout 300 "$HOSTILE" "$SOCK" slowloris 2 >"$T/c3.log" 2>&1 & pids+=($!)
timeout 300 "$HOSTILE" "$SOCK" malformed >"$T/c4.log" 2>&1 & pids+=($!)
i=0
for p in "${pids[@]}"; do
  i=$((i + 1))
  if wait "$p"; then pass "concurrent attack $i"; else fail "concurrent attack $i"; sed 's/^/  | /' "$T/c$i.log"; fi
done
grep -h '^answer:' "$T"/c[1-4].log | sed 's/^/  | concurrent /' | grep -E 'connections x|trickled|protobuf:' || true

touch "$T/stop"
wait "$good_pid" "$rss_pid" 2>/dev/null
kill -0 "$BERTHD_PID" 2>/dev/null && pass "berthd alive after every attack" || fail "berthd died"

good_total=$(grep -c . "$good_log")
good_fail=$(grep -c FAIL "$good_log")
median_max () { # column: "median max" of the good client's latencies
  awk -v c="$1" '{ print $c }' "$good_log" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[NR] }'
}
read -r ctr_med ctr_max < <(median_max 3)
read -r berth_med berth_max < <(median_max 6)
echo "well-behaved client: $good_total rounds, $good_fail failed; ctr version median ${ctr_med} ms (max ${ctr_max}), berth images ls median ${berth_med} ms (max ${berth_max})"
if [ "$good_total" -gt 10 ] && [ "$good_fail" = 0 ]; then
  pass "ctr version and berth images ls kept working during the attacks"
else
  fail "well-behaved client failed $good_fail of $good_total rounds"
  grep FAIL "$good_log" | head -5 | sed 's/^/  | /'
fi

rss_max=$(sort -n "$rss_log" | tail -1)
rss_n=$(grep -c . "$rss_log")
sleep 1
rss_after=$(rss_of "$BERTHD_PID")
echo "berthd RSS: ${rss_before} KiB before, max ${rss_max} KiB over $rss_n samples, ${rss_after} KiB after"
if [ -n "$rss_max" ] && [ "$rss_max" -lt "$RSS_MAX_KIB" ]; then
  pass "RSS stayed under $RSS_MAX_KIB KiB"
else
  fail "RSS peak ${rss_max} KiB >= $RSS_MAX_KIB KiB"
fi

# Every connection of the attack is gone: no fd left behind.
for i in $(seq 1 50); do
  fds_after=$(ls /proc/"$BERTHD_PID"/fd | wc -l)
  [ "$fds_after" -le "$fds_before" ] && break
  sleep 0.2
done
echo "berthd fds: $fds_before before, $fds_after after"
[ "$fds_after" -le "$fds_before" ] && pass "no fd leaked" || fail "berthd holds $fds_after fds, had $fds_before"

run grep -E "grpc: (closing a connection|.*max_connections)" "$BERTHD_LOG"
[ -n "$out" ] || fail "no log line about slow clients or the connection cap"
expect_contains "max_connections = 200" "connection cap named in the log"
expect_contains "within request_timeout" "slow client named in the log"
finish
