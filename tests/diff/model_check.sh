#!/usr/bin/env bash
# tests/diff/model_check.sh [SEQUENCES] [CALLS] [SEED]
# Runs the legacy backend over generated sequences with a trace, then checks
# the trace against the independent Python model (tests/diff/model.py).
# Prints `model: N passed, M failed`; exits 0 only if all passed.
set -u
SEQUENCES=${1:-20}
CALLS=${2:-2000}
SEED=${3:-1}
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;${LUA_PATH:-;}"
export LUA_CPATH="$ROOT/build/?.so;${LUA_CPATH:-;}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/treasure-model.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT
${LUAJIT:-luajit} tests/diff/run.lua --backends lua --sequences "$SEQUENCES" --calls "$CALLS" --seed "$SEED" \
  --trace "$TMP/trace.jsonl" --keep-going >"$TMP/run.out" 2>"$TMP/run.err"
rc=$?
if [ $rc -ne 0 ] || [ ! -s "$TMP/trace.jsonl" ]; then
  cat "$TMP/run.out" "$TMP/run.err" >&2
  [ -s "$TMP/trace.jsonl" ] || { echo "model: 0 passed, $SEQUENCES failed"; exit 1; }
fi
python3 tests/diff/model.py "$TMP/trace.jsonl"
