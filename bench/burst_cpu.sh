#!/usr/bin/env bash
# CPU budget of one 12,000-dig burst, per thread (for docs/BENCHMARKS.md).
# Runs the harness twice, with bursts (one a second) and without (--burst 0:
# the same world, moves and send loop, no digs). In each run it reads every
# thread's CPU time from /proc at 2 s and again at 10 s, and prints the
# difference per burst: what the bursts cost the game loop's Lua thread and
# the worker threads. On 2 cores, (Lua + workers) / 2 is a floor for the
# wall time of a burst, whatever the scheduling.
#   bench/burst_cpu.sh        (after make build)
set -euo pipefail
cd "$(dirname "$0")/.."
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/?.so;;"
cpu() { # pid -> "lua_ms workers_ms" (clock ticks are 10 ms)
  cat /proc/"$1"/task/*/stat 2>/dev/null | awk '
    $2 == "(luajit)" {l += ($14 + $15) * 10}
    $2 ~ /^\(treasure-work/ {w += ($14 + $15) * 10}
    END {print l + 0, w + 0}'
}
sample() { # burst size -> "lua_ms workers_ms" over 8 s
  luajit examples/harness.lua --backend native --seed 1 --digs-per-tick 0 --burst "$1" --seconds 12 --quiet >/dev/null 2>&1 &
  local pid=$!
  sleep 2; read -r l1 w1 < <(cpu $pid)
  sleep 8; read -r l2 w2 < <(cpu $pid)
  wait $pid || true
  echo "$((l2 - l1)) $((w2 - w1))"
}
read -r lb wb < <(sample 12000)
read -r l0 w0 < <(sample 0)
python3 - "$lb" "$wb" "$l0" "$w0" <<'PY'
import sys
lb, wb, l0, w0 = map(float, sys.argv[1:])
lua, wk = (lb - l0) / 8, (wb - w0) / 8   # 8 bursts in the 8 s window
print(f"per 12,000-dig burst (8 bursts; clock ticks of 10 ms): Lua thread {lua:.1f} ms CPU, "
      f"workers {wk:.1f} ms CPU, total {lua + wk:.1f} ms; floor on 2 cores {(lua + wk) / 2:.1f} ms")
PY
