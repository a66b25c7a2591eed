#!/usr/bin/env bash
# bench/compare.sh OLD_TREE [RUNS]: this build against another build, side by
# side in one sitting (the only fair comparison on a machine whose speed
# drifts 2x between days).
#
# OLD_TREE is a built checkout of another version (e.g. `git worktree add
# /tmp/old v1.1.0 && make -C /tmp/old build`); its harness is found at
# bench/harness.lua or, before 1.2, examples/harness.lua. Each round runs the
# native burst (12,000 players, a 12,000-dig burst once a second, 13 s of
# which the last 10 count) and the native steady 20 Hz run (20 s) on the old
# build, then on this one, RUNS times (default 3), and prints one line per
# run and the medians. Both builds' Lua files and native.so are copied first,
# so a rebuild during the run cannot touch them.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/compare.sh OLD_TREE [RUNS]}
RUNS=${2:-3}
LUAJIT=${LUAJIT:-luajit}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/treasure-compare.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

stage() { # stage NAME TREE: copy a build's Lua files, harness and native.so
  local name=$1 tree=$2 d=$TMP/$1
  mkdir -p "$d/cpath/treasure"
  cp -R "$tree/lua" "$d/lua"
  cp "$tree/build/treasure/native.so" "$d/cpath/treasure/native.so"
  if [ -e "$tree/bench/harness.lua" ]; then
    mkdir -p "$d/bench"; cp -R "$tree/bench/harness.lua" "$tree/bench/harness" "$d/bench/"
    echo "$d/bench/harness.lua" >"$d/harness"
  else
    cp "$tree/examples/harness.lua" "$d/harness.lua"; echo "$d/harness.lua" >"$d/harness"
  fi
}
stage old "$OLD"
stage new "$PWD"

run() { # run NAME LABEL flags...: prints the summary JSON line
  local name=$1 label=$2; shift 2
  local d=$TMP/$name
  LUA_PATH="$d/lua/?.lua;$d/lua/?/init.lua;;" LUA_CPATH="$d/cpath/?.so;;" \
    "$LUAJIT" "$(cat "$d/harness")" --backend native --seed 1 --players 12000 --sites 100000 \
    --label "$label" --json --quiet "$@" | tail -n1
}

: >"$TMP/results.jsonl"
for k in $(seq 1 "$RUNS"); do
  for name in old new; do
    echo "compare: $(date -u +%H:%M:%S) round $k $name" >&2
    run "$name" "$name-burst" --digs-per-tick 0 --burst 12000 --seconds 13 --warmup 3 >>"$TMP/results.jsonl"
    run "$name" "$name-steady" --seconds 20 --warmup 3 >>"$TMP/results.jsonl"
  done
done
python3 - "$TMP/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = ["p50_ms", "p99_ms", "max_ms", "mean_ms"]
print("%-12s %s" % ("run", "  ".join("%8s" % k for k in keys)))
by = {}
for r in rows:
    vals = [r.get(k) for k in keys]
    by.setdefault(r["label"], []).append(vals)
    print("%-12s %s" % (r["label"], "  ".join("%8.3f" % v if isinstance(v, (int, float)) else "%8s" % v for v in vals)))
print()
for label, vs in sorted(by.items()):
    med = [statistics.median(v[i] for v in vs if isinstance(v[i], (int, float))) for i in range(len(keys))]
    print("median %-12s %s  (%d runs)" % (label, "  ".join("%8.3f" % m for m in med), len(vs)))
EOF
