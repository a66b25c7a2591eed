#!/usr/bin/env bash
# CPU budget of one 12,000-dig burst (for docs/BENCHMARKS.md): runs the
# harness's burst scenario on native for 12 s and reports
#   * the worker threads' CPU per burst, from /proc (read at 2 s and 10 s:
#     8 bursts; the workers do nothing else in this scenario), and
#   * the game loop's Lua-thread CPU per burst that the harness measures with
#     the thread CPU clock around poll_into and around its own send loop
#     (poll_ns_per_packet, harness_ns_per_packet in its JSON), plus the
#     dig_batch call.
# On 2 cores, (Lua thread + workers) / 2 is a floor for a burst's wall time,
# whatever the scheduling.
#   bench/burst_cpu.sh        (after make build)
set -euo pipefail
cd "$(dirname "$0")/.."
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/?.so;;"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
workers_ms() {
  cat /proc/"$1"/task/*/stat 2>/dev/null |
    awk '$2 ~ /^\(treasure-work/ {w += ($14 + $15) * 10} END {print w + 0}'
}
luajit examples/harness.lua --backend native --seed 1 --digs-per-tick 0 --burst 12000 \
  --seconds 12 --json --quiet >"$out" 2>/dev/null &
pid=$!
sleep 2; w1=$(workers_ms $pid)
sleep 8; w2=$(workers_ms $pid)
wait $pid
python3 - "$w1" "$w2" "$out" <<'PY'
import json, sys
w1, w2 = float(sys.argv[1]), float(sys.argv[2])
d = json.loads(open(sys.argv[3]).read().strip().splitlines()[-1])
per_burst_packets = d["burst_packets"] / d["bursts"]
workers = (w2 - w1) / 8
lua_send = per_burst_packets * (d["poll_ns_per_packet"] + d["harness_ns_per_packet"]) / 1e6
print(f"per 12,000-dig burst ({per_burst_packets:,.0f} packets): workers {workers:.1f} ms CPU "
      f"(clock ticks of 10 ms over 8 bursts); Lua thread send loop {lua_send:.1f} ms CPU "
      f"(poll_into {d['poll_ns_per_packet']:.1f} + harness {d['harness_ns_per_packet']:.1f} ns/packet); "
      f"floor on 2 cores {(workers + lua_send) / 2:.1f} ms without the dig_batch call; "
      f"measured burst mean {d['burst_ms_mean']:.1f} ms, max {d['burst_ms_max']:.1f} ms")
PY
