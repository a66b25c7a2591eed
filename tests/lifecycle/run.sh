#!/usr/bin/env bash
# Lifecycle and fault scripts (issues 4 and 7), each in its own LuaJIT
# process so a crash or hang shows up as a failure, never takes the runner
# down. Run from the repo root after `make build`. Prints "lifecycle: N passed, M failed".
set -u
cd "$(dirname "$0")/../.."
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/tests/lifecycle/?.lua;;"
export LUA_CPATH="$PWD/build/?.so;;"
pass=0; fail=0
check() { # name, timeout, command...
  local name=$1 t=$2; shift 2
  local out rc
  out=$(timeout "$t" "$@" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "ok   $name: ${out##*$'\n'}"
  else fail=$((fail+1)); echo "FAIL $name (exit $rc):"; echo "$out" | sed 's/^/     /'; fi
}
L=tests/lifecycle
# The module must never be unmapped under live worker threads (dlclose at
# lua_close): it is linked with -z nodelete (build.rs).
check "nodelete-flag" 10 bash -c 'readelf -d build/treasure/native.so | grep -q NODELETE && echo "native.so has DF_1_NODELETE"'
for b in native lua; do
  check "heap_flat[$b]" 300 luajit $L/heap_flat.lua $b
  check "close_inflight[$b]" 120 luajit $L/close_inflight.lua $b
done
# Issue 12 item 1/5: stale handles, finalized and resurrected resolvers, fork
# and lua_close (the lead's valgrind run uses the same script).
for f in 1 0; do
  check "finalized_cases[ffi=$f]" 120 env TREASURE_NATIVE_FFI=$f luajit $L/finalized_cases.lua
done
check "many_resolvers[native]" 300 luajit $L/many_resolvers.lua native
check "threads[native]" 120 luajit $L/threads.lua native
check "worker_panic[native]" 60 luajit $L/worker_panic.lua
for how in end exit exit-close; do
  for i in 1 2 3; do check "exit_inflight[$how#$i]" 60 luajit $L/exit_inflight.lua native $how; done
done
check "exit_inflight[-e]" 60 luajit -e 'package.path="tests/lifecycle/?.lua;"..package.path; arg={[1]="native",[2]="end"}; dofile("tests/lifecycle/exit_inflight.lua")'
# Issue 16: views held to the end of the process, read by a shutdown guard.
for b in native lua; do
  for how in end exit-close; do check "view_exit[$b,$how]" 60 luajit $L/view_exit.lua $b $how; done
done
echo "lifecycle: $pass passed, $fail failed"
[ $fail -eq 0 ]
