#!/usr/bin/env bash
# bench/run.sh: the harness benchmark, legacy vs native, back to back.
#
#   bench/run.sh            full run (~4 min with both backends)
#   bench/run.sh --quick    short runs, same scenarios (a smoke test of the pipeline)
#
# Runs bench/harness.lua on every backend that loads, on the same scenarios:
#   steady   default flags at 20 Hz (12,000 players, 100,000 sites, 20 digs/tick),
#            60 s, with a full-GC heap checkpoint at 5 s (the "heap flat" target)
#   burst    12,000 players digging at once, once a second (--digs-per-tick 0 --burst 12000),
#            13 s of which the last 10 (10 bursts, 120,000 digs) are measured; run
#            BENCH_BURST_RUNS (3) times, the report takes the median-p99 run
#   aoi-N    fan-out sweep: the burst scenario plus 20 digs/tick at --aoi 16, 32, 64, 128
#   fast     --fast (ticks back to back) with bursts: sustained throughput, and a
#            --digest of the packet stream that must match across backends
# collects the JSON summaries in bench/results.jsonl, then regenerates the
# harness section of docs/BENCHMARKS.md (bench/report.py; the rest of the file
# is kept) and docs/latency.svg (bench/plot.py).
#
# Environment: LUAJIT (default luajit), BENCH_BACKENDS (default "lua native"),
# BENCH_SEED (default 1), BENCH_WORKERS (default 0 = one per core).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
unset TREASURE_BACKEND
LUAJIT=${LUAJIT:-luajit}
BACKENDS=${BENCH_BACKENDS:-lua native}
SEED=${BENCH_SEED:-1}
WORKERS=${BENCH_WORKERS:-0}

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
# WARM_S: the first simulated seconds of the steady, burst and sweep runs are
# left out of their latency figures (harness --warmup): LuaJIT compiles the
# send loop and the buffers grow during the first bursts, which then take
# ~1.5x as long (measured: 10.5, 8.4, 8.0, then 5-7 ms on native).
if [ "$QUICK" = 1 ]; then
  STEADY_S=6; HEAP_CK=2; BURST_S=3; SWEEP_S=2; FAST_S=3; WARM_S=1; BURST_RUNS=2
else
  STEADY_S=60; HEAP_CK=5; BURST_S=13; SWEEP_S=6; FAST_S=20; WARM_S=3; BURST_RUNS=${BENCH_BURST_RUNS:-3}
fi
AOIS="16 32 64 128"

RESULTS=bench/results.jsonl
TMP=$(mktemp -d "${TMPDIR:-/tmp}/treasure-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
OUT=$TMP/results.jsonl

# Snapshot the Lua sources and the native module: every run of this bench
# uses the same code, and a rebuild during the bench (`cp` over a mapped
# native.so kills the process with SIGBUS) cannot touch it.
mkdir -p "$TMP/lua" "$TMP/cpath/treasure"
cp -R lua/. "$TMP/lua/"
if [ -e build/treasure/native.so ]; then cp build/treasure/native.so "$TMP/cpath/treasure/native.so"; fi
export LUA_PATH="$TMP/lua/?.lua;$TMP/lua/?/init.lua;;"
export LUA_CPATH="$TMP/cpath/?.so;;"

python3 bench/report.py meta --quick "$QUICK" --command "bench/run.sh${1:+ $*}" >"$OUT" || exit 1

failures=0
run() {  # run BACKEND LABEL [harness flags...]
  local b=$1 label=$2; shift 2
  local log=$TMP/$b-$label.log
  echo "bench: $b $label: $LUAJIT bench/harness.lua --backend $b $*" >&2
  "$LUAJIT" bench/harness.lua --backend "$b" --seed "$SEED" --workers "$WORKERS" \
    --label "$label" --json --quiet "$@" >"$log" 2>"$TMP/$b-$label.err"
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
  # BURST_RUNS runs; the report uses each backend's median-p99 run and the
  # plot every burst dig of all of them
  : >"$TMP/lat-$b-burst.txt"
  for k in $(seq 1 "$BURST_RUNS"); do
    run "$b" "burst#$k" --digs-per-tick 0 --burst 12000 --seconds "$BURST_S" --warmup "$WARM_S" --latency-out "$TMP/lat-$b-burst-$k.txt"
    cat "$TMP/lat-$b-burst-$k.txt" >>"$TMP/lat-$b-burst.txt" 2>/dev/null
    rm -f "$TMP/lat-$b-burst-$k.txt"
  done
  for aoi in $AOIS; do
    run "$b" "aoi-$aoi" --aoi "$aoi" --burst 12000 --seconds "$SWEEP_S" --warmup "$WARM_S"
  done
  # as fast as it goes (no 20 Hz pacing): sustained throughput, and a digest
  # of the whole packet stream that must be equal across backends
  run "$b" fast --fast --digest --burst 12000 --seconds "$FAST_S"
done

cp "$OUT" "$RESULTS"
python3 bench/report.py render "$RESULTS" docs/BENCHMARKS.md || exit 1

# the plot needs matplotlib: install it only if missing
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  python3 -m pip install --quiet matplotlib 2>/dev/null || python3 -m pip install --quiet --user matplotlib
fi
if ! python3 bench/plot.py --out docs/latency.svg \
  $(for f in "$TMP"/lat-*.txt; do [ -e "$f" ] && echo "$f"; done); then
  echo "bench: the plot failed (no matplotlib? try: apt-get install python3-matplotlib); docs/latency.svg not updated" >&2
  failures=$((failures + 1))
fi

echo "bench: wrote $RESULTS, docs/BENCHMARKS.md, docs/latency.svg" >&2
if [ "$failures" -gt 0 ]; then
  echo "bench: $failures harness run(s) failed their checks (see above)" >&2
  exit 1
fi
