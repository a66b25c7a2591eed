#!/usr/bin/env bash
# CPU budget of one 12,000-dig burst (for docs/BENCHMARKS.md): runs the
# harness's burst scenario on native for 12 s (2 s warm-up) and reports
#   * the worker threads' CPU per burst, from /proc/<pid>/task/*/schedstat
#     (nanoseconds on CPU), read at 2.5 s and 10.5 s: the 8 bursts at
#     3..10 s; the workers do nothing else in this scenario, and
#   * the game loop's Lua-thread CPU per burst that the harness measures with
#     the thread CPU clock: the burst's dig_batch call, poll_into and its own
#     send loop (burst_dig_batch_cpu_ms, poll_ns_per_packet,
#     harness_ns_per_packet in its JSON).
#   * how long the game loop's thread and the workers were runnable but
#     waiting for a CPU (schedstat's second field), per burst.
# On 2 cores, (Lua thread + workers) / 2 is a floor for a burst's wall time,
# whatever the scheduling.
#   bench/burst_cpu.sh [harness flags, e.g. --workers 1]     (after make build)
set -euo pipefail
cd "$(dirname "$0")/.."
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/?.so;;"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# "<cpu ns> <run-queue wait ns>" summed over the worker threads or (main)
# the game loop's thread, from schedstat: on CPU, and runnable but waiting
threads_ns() {
  local t c w sum_c=0 sum_w=0
  for t in /proc/"$1"/task/*; do
    if [ "$2" = main ] && [ "$(basename "$t")" != "$1" ]; then continue; fi
    if [ "$2" = workers ] && ! grep -q '^treasure-work' "$t/comm" 2>/dev/null; then continue; fi
    read -r c w _ <"$t/schedstat" || continue
    sum_c=$((sum_c + c)); sum_w=$((sum_w + w))
  done
  echo "$sum_c $sum_w"
}
luajit bench/harness.lua --backend native --seed 1 --digs-per-tick 0 --burst 12000 \
  --seconds 12 --warmup 2 --json --quiet "$@" >"$out" 2>/dev/null &
pid=$!
sleep 2.5; w1=$(threads_ns $pid workers); m1=$(threads_ns $pid main)
sleep 8; w2=$(threads_ns $pid workers); m2=$(threads_ns $pid main)
wait $pid
python3 - "$w1" "$w2" "$m1" "$m2" "$out" <<'PY'
import json, sys
w1, w2, m1, m2 = ([float(x) for x in a.split()] for a in sys.argv[1:5])
d = json.loads(open(sys.argv[5]).read().strip().splitlines()[-1])
packets = d["burst_packets"] / d["bursts"]
workers = (w2[0] - w1[0]) / 8 / 1e6
wait_workers = (w2[1] - w1[1]) / 8 / 1e6
wait_main = (m2[1] - m1[1]) / 8 / 1e6
send = packets * (d["poll_ns_per_packet"] + d["harness_ns_per_packet"]) / 1e6
call = d["burst_dig_batch_cpu_ms"]
digs = d["burst"]
print(f"per {digs:,}-dig burst ({packets:,.0f} packets): workers {workers:.2f} ms CPU "
      f"({workers / digs * 1e6:.0f} ns per dig); Lua thread: dig_batch {call:.2f} ms CPU "
      f"({d['burst_dig_batch_wall_ms']:.2f} ms wall), send loop {send:.2f} ms CPU "
      f"(poll_into {d['poll_ns_per_packet']:.1f} + harness {d['harness_ns_per_packet']:.1f} ns/packet); "
      f"floor on 2 cores {(workers + send + call) / 2:.2f} ms; "
      f"measured burst mean {d['burst_ms_mean']:.2f} ms, max {d['burst_ms_max']:.2f} ms, p99 {d['p99_ms']:.2f} ms; "
      f"runnable but waiting for a CPU, per burst: game loop {wait_main:.2f} ms, workers {wait_workers:.2f} ms")
PY
