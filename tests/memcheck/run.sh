#!/usr/bin/env bash
# Memory-error check (issue 12): the native backend's busted specs (FFI fast
# path on, then the mlua path only) and a short legacy-vs-native differential
# run, each under valgrind memcheck. Any invalid read or write, use of freed
# memory or uninitialised value in a branch makes valgrind exit 99 and the
# check fail. Leaks are not checked here (LuaJIT frees its heap at lua_close;
# resolvers leaked on purpose in a forked child are not in these runs).
#
#   bash tests/memcheck/run.sh            # after `make build`
#
# Prints "memcheck: N passed, M failed". Sized to a few minutes on 2 cores
# (valgrind runs LuaJIT about 30x slower).
set -u
cd "$(dirname "$0")/../.."
LUAJIT=${LUAJIT:-luajit}
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/tests/lua/?.lua;;"
export LUA_CPATH="$PWD/build/?.so;;"
VG=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --quiet
    --suppressions=tests/memcheck/luajit.supp)
pass=0; fail=0
check() { # name, timeout (s), [VAR=value ...] command...
  local name=$1 t=$2; shift 2
  local envs=()
  while [[ $1 == *=* ]]; do envs+=("$1"); shift; done
  local log rc
  log=$(mktemp)
  # env before valgrind: valgrind does not follow an `env` child.
  env "${envs[@]}" timeout "$t" "${VG[@]}" "$@" >"$log" 2>&1; rc=$?
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); echo "ok   $name: $(grep -E 'successes|differential:' "$log" | tail -1 | tr -d '+')"
  else
    fail=$((fail+1)); echo "FAIL $name (exit $rc; 99 = valgrind found errors):"
    grep -E '^==[0-9]+==' "$log" | head -60 | sed 's/^/     /'
    tail -5 "$log" | sed 's/^/     /'
  fi
  rm -f "$log"
}
BUSTED=("$LUAJIT" /usr/bin/busted --lpath="$PWD/tests/lua/?.lua" tests/lua)
check "specs[native, ffi]" 900 TREASURE_TEST_BACKENDS=native "${BUSTED[@]}"
check "specs[native, mlua path]" 900 TREASURE_NATIVE_FFI=0 TREASURE_TEST_BACKENDS=native "${BUSTED[@]}"
check "differential[lua,native]" 900 "$LUAJIT" tests/diff/run.lua --backends lua,native \
  --sequences 4 --calls 800 --workers 1,2 --seed 400001
check "differential[lua,native, tiny queues]" 900 "$LUAJIT" tests/diff/run.lua --backends lua,native \
  --sequences 2 --calls 800 --workers 2 --tiny --seed 410001
echo "memcheck: $pass passed, $fail failed"
[ $fail -eq 0 ]
