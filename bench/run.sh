#!/usr/bin/env bash
# bench/run.sh: the harness benchmark, legacy vs native, back to back.
#
#   bench/run.sh                 full run (~7 min with both backends on 2 cores: an estimate)
#   bench/run.sh --quick         short runs, same scenarios (a smoke test of the pipeline)
#   bench/run.sh --small         a small world (2,000 players, 10,000 sites, 2,000-dig
#                                bursts): for validating on a shared machine
#   bench/run.sh --runs N        burst runs per backend (default 5)
#
# Runs bench/harness.lua on every backend that loads, on the same scenarios:
#   steady     default flags at 20 Hz (12,000 players, 100,000 sites, 20 digs/tick),
#              60 s, with a full-GC heap checkpoint at 5 s (the "heap flat" target)
#   burst#k    12,000 players digging at once, once a second (--digs-per-tick 0 --burst 12000),
#              13 s of which the last 10 (10 bursts, 120,000 digs) are measured; run
#              --runs (5) times; the report judges the targets on the WORST run
#   view#k     native only: the burst drained with --drain view (r:poll_view, issue 16)
#   burst-load the burst once more beside a competing CPU load: one busy process
#              (a shell loop at the same nice value as this script), started before
#              the run and killed by its pid after it; the report gives how far p99 moved
#   workers-N  native only: the burst with --workers 1 .. the core count (nproc);
#              the report fits serial ms + parallel ms / workers and predicts 8/16/32
#   aoi-N      fan-out sweep: the burst scenario plus 20 digs/tick at --aoi 16, 32, 64, 128
#   fast       --fast (ticks back to back) with bursts: sustained throughput, and a
#              --digest of the packet stream that must match across backends
# collects the JSON summaries in bench/results.jsonl, then regenerates the
# harness section of docs/BENCHMARKS.md (bench/report.py; the rest of the file
# is kept) and docs/latency.svg (bench/plot.py).
#
# Environment: LUAJIT (default luajit), BENCH_BACKENDS (default "lua native"),
# BENCH_SEED (default 1), BENCH_WORKERS (default 0 = one per core),
# BENCH_PLAYERS / BENCH_SITES / BENCH_BURST (world and burst size; --small sets
# 2000 / 10000 / 2000), BENCH_SWEEP_MAX (default nproc), BENCH_LOAD=0 (no
# competing-load run), BENCH_PLOT=0 (no plot), BENCH_RESULTS / BENCH_DOC / BENCH_SVG
# (outputs; default bench/results.jsonl, docs/BENCHMARKS.md, docs/latency.svg).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
unset TREASURE_BACKEND
LUAJIT=${LUAJIT:-luajit}
BACKENDS=${BENCH_BACKENDS:-lua native}
SEED=${BENCH_SEED:-1}
WORKERS=${BENCH_WORKERS:-0}

QUICK=0
SMALL=0
BURST_RUNS=${BENCH_BURST_RUNS:-5}
ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --small) SMALL=1 ;;
    --runs) shift; BURST_RUNS=${1:?--runs needs a count} ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$BURST_RUNS" in ''|*[!0-9]*|0) echo "bench/run.sh: --runs must be a positive integer" >&2; exit 2 ;; esac
if [ "$SMALL" = 1 ]; then
  PLAYERS=${BENCH_PLAYERS:-2000}; SITES=${BENCH_SITES:-10000}; BURST=${BENCH_BURST:-2000}
else
  PLAYERS=${BENCH_PLAYERS:-12000}; SITES=${BENCH_SITES:-100000}; BURST=${BENCH_BURST:-12000}
fi
NPROC=$(nproc 2>/dev/null || echo 1)
SWEEP_MAX=${BENCH_SWEEP_MAX:-$NPROC}
# WARM_S: the first simulated seconds of the steady, burst and sweep runs are
# left out of their latency figures (harness --warmup): LuaJIT compiles the
# send loop and the buffers grow during the first bursts, which then take
# ~1.5x as long (measured: 10.5, 8.4, 8.0, then 5-7 ms on native).
if [ "$QUICK" = 1 ]; then
  STEADY_S=6; HEAP_CK=2; BURST_S=3; SWEEP_S=2; FAST_S=3; WARM_S=1
else
  STEADY_S=60; HEAP_CK=5; BURST_S=13; SWEEP_S=6; FAST_S=20; WARM_S=3
fi
AOIS="16 32 64 128"

# where the results go (a validation run can write elsewhere, e.g. build/)
RESULTS=${BENCH_RESULTS:-bench/results.jsonl}
DOC=${BENCH_DOC:-docs/BENCHMARKS.md}
SVG=${BENCH_SVG:-docs/latency.svg}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/treasure-bench.XXXXXX")
OUT=$TMP/results.jsonl

# the competing load of burst-load: one busy process, killed by its pid
LOAD_PID=""
stop_load() {
  if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; LOAD_PID=""; fi
}
trap 'stop_load; rm -rf "$TMP"' EXIT

# Snapshot the Lua sources, the harness and the native module: every run of
# this bench uses the same code, and a rebuild during the bench (`cp` over a
# mapped native.so kills the process with SIGBUS) cannot touch it.
mkdir -p "$TMP/lua" "$TMP/cpath/treasure" "$TMP/bench"
cp -R lua/. "$TMP/lua/"
cp -R bench/harness.lua bench/harness "$TMP/bench/"
HARNESS=$TMP/bench/harness.lua
if [ -e build/treasure/native.so ]; then cp build/treasure/native.so "$TMP/cpath/treasure/native.so"; fi
export LUA_PATH="$TMP/lua/?.lua;$TMP/lua/?/init.lua;;"
export LUA_CPATH="$TMP/cpath/?.so;;"

python3 bench/report.py meta --quick "$QUICK" --small "$SMALL" --command "bench/run.sh${ARGS:+ $ARGS}" >"$OUT" || exit 1

failures=0
run() {  # run BACKEND LABEL [harness flags...]
  local b=$1 label=$2; shift 2
  local log=$TMP/$b-$label.log
  echo "bench: $(date -u +%H:%M:%S) $b $label: $LUAJIT bench/harness.lua --backend $b $*" >&2
  "$LUAJIT" "$HARNESS" --backend "$b" --seed "$SEED" --workers "$WORKERS" \
    --players "$PLAYERS" --sites "$SITES" --label "$label" --json --quiet "$@" >"$log" 2>"$TMP/$b-$label.err"
  local rc=$?
  grep -v '^{' "$log" | sed 's/^/    /' >&2
  if [ $rc -ne 0 ]; then
    failures=$((failures + 1))
    echo "bench: $b $label FAILED (exit $rc)" >&2
    sed 's/^/    /' "$TMP/$b-$label.err" >&2
  fi
  local last
  last=$(tail -n1 "$log")
  if [ "${last:0:1}" = "{" ]; then
    echo "$last" >>"$OUT"
  else
    python3 -c 'import json,sys; print(json.dumps({"label": sys.argv[1], "backend": sys.argv[2], "failed": True, "exit": int(sys.argv[4]), "error": open(sys.argv[3]).read()[-2000:]}))' \
      "$label" "$b" "$TMP/$b-$label.err" "$rc" >>"$OUT"
  fi
}

for b in $BACKENDS; do
  case "$b" in
    lua) mod=treasure.legacy ;;
    native) mod=treasure.native ;;
    *) echo "bench/run.sh: unknown backend $b" >&2; exit 2 ;;
  esac
  if ! "$LUAJIT" -e "require('$mod')" 2>"$TMP/load-$b.err"; then
    echo "bench: backend $b does not load; skipped:" >&2
    sed 's/^/    /' "$TMP/load-$b.err" >&2
    python3 -c 'import json,sys; print(json.dumps({"missing": sys.argv[1], "error": open(sys.argv[2]).read().strip()[:600]}))' \
      "$b" "$TMP/load-$b.err" >>"$OUT"
    continue
  fi
  run "$b" steady --seconds "$STEADY_S" --heap-checkpoint "$HEAP_CK" --warmup "$WARM_S" --latency-out "$TMP/lat-$b-steady.txt"
  # BURST_RUNS runs; the report judges each backend on its worst run and the
  # plot shows every burst dig of all of them
  BURST_FLAGS=(--digs-per-tick 0 --burst "$BURST" --seconds "$BURST_S" --warmup "$WARM_S")
  : >"$TMP/lat-$b-burst.txt"
  for k in $(seq 1 "$BURST_RUNS"); do
    run "$b" "burst#$k" "${BURST_FLAGS[@]}" --latency-out "$TMP/lat-$b-burst-$k.txt"
    cat "$TMP/lat-$b-burst-$k.txt" >>"$TMP/lat-$b-burst.txt" 2>/dev/null
    rm -f "$TMP/lat-$b-burst-$k.txt"
  done
  # issue 16 item 1, native: the same burst drained with r:poll_view (the
  # workers write the packets in full, the send loop reads them in place),
  # as many runs, so the report can set its burst_lua_ms and p99 beside
  # poll_into's (BENCH_VIEW_RUNS=0: skipped)
  if [ "$b" = native ]; then
    for k in $(seq 1 "${BENCH_VIEW_RUNS:-$BURST_RUNS}"); do
      run "$b" "view#$k" "${BURST_FLAGS[@]}" --drain view
    done
  fi
  # once more beside one busy process at the same priority (started 1 s
  # before, so that the scheduler has settled; stopped by its pid)
  if [ "${BENCH_LOAD:-1}" != 0 ]; then
    bash -c 'while :; do :; done' &
    LOAD_PID=$!
    echo "bench: competing load: pid $LOAD_PID (a busy shell loop)" >&2
    sleep 1
    run "$b" burst-load "${BURST_FLAGS[@]}"
    stop_load
  fi
  # the workers sweep (native only: legacy has no workers)
  if [ "$b" = native ]; then
    for w in $(seq 1 "$SWEEP_MAX"); do
      WORKERS=$w run "$b" "workers-$w" "${BURST_FLAGS[@]}"
    done
  fi
  for aoi in $AOIS; do
    run "$b" "aoi-$aoi" --aoi "$aoi" --burst "$BURST" --seconds "$SWEEP_S" --warmup "$WARM_S"
  done
  # as fast as it goes (no 20 Hz pacing): sustained throughput, and a digest
  # of the whole packet stream that must be equal across backends
  run "$b" fast --fast --digest --burst "$BURST" --seconds "$FAST_S"
done

cp "$OUT" "$RESULTS"
python3 bench/report.py render "$RESULTS" "$DOC" || exit 1

# the plot needs matplotlib: install it only if missing
if [ "${BENCH_PLOT:-1}" = 0 ]; then
  echo "bench: BENCH_PLOT=0: $SVG not updated" >&2
else
  if ! python3 -c 'import matplotlib' 2>/dev/null; then
    python3 -m pip install --quiet matplotlib 2>/dev/null || python3 -m pip install --quiet --user matplotlib
  fi
  if ! python3 bench/plot.py --out "$SVG" \
    $(for f in "$TMP"/lat-*.txt; do [ -e "$f" ] && echo "$f"; done); then
    echo "bench: the plot failed (no matplotlib? try: apt-get install python3-matplotlib); $SVG not updated" >&2
    failures=$((failures + 1))
  fi
fi

echo "bench: wrote $RESULTS, $DOC, $SVG" >&2
if [ "$failures" -gt 0 ]; then
  echo "bench: $failures harness run(s) failed their checks (see above)" >&2
  exit 1
fi
