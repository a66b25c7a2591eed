#!/usr/bin/env bash
# PUC Lua gets one clear line (issue 14), not a parse error of LuaJIT code:
#   require("treasure")         -> treasure: needs LuaJIT 2.1 (FFI); this is Lua 5.x
#   require("treasure.native")  -> treasure.native: needs LuaJIT 2.1 (FFI); this is Lua 5.1
#     (PUC 5.1 exports the same C API, so native.so loads and refuses itself;
#     Lua 5.2+ lack the 5.1 symbols and their dynamic loader refuses it first)
# Runs with the Makefile's LUA_PATH/LUA_CPATH (the checkout and build/).
set -euo pipefail
fail=0
expect() { # name got want
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1"; echo "  got:  $2"; echo "  want: $3"; fail=1; fi
}
for lua in lua5.1 lua5.4; do
  command -v $lua >/dev/null || { echo "FAIL $lua is not installed (make deps-test)"; fail=1; continue; }
  ver=$($lua -e 'io.write(_VERSION)')
  got=$($lua -e 'local ok, e = pcall(require, "treasure") io.write(tostring(ok), " ", type(e), " ", tostring(e))')
  expect "$lua: require('treasure') raises a string" "$got" "false string treasure: needs LuaJIT 2.1 (FFI); this is $ver"
  # uncaught, the interpreter prints it as the first line (then its traceback)
  got=$($lua -e 'require("treasure")' 2>&1 | head -1 || true)
  expect "$lua: uncaught, one line" "$got" "$lua: treasure: needs LuaJIT 2.1 (FFI); this is $ver"
done
got=$(lua5.1 -e 'local ok, e = pcall(require, "treasure.native") io.write(tostring(ok), " ", type(e), " ", tostring(e))')
expect "lua5.1: native.so refuses the state" "$got" "false string treasure.native: needs LuaJIT 2.1 (FFI); this is Lua 5.1"
got=$(lua5.4 -e 'local ok, e = pcall(require, "treasure.native") io.write(tostring(ok), " ", e:match("undefined symbol") or e)')
expect "lua5.4: the dynamic loader refuses native.so" "$got" "false undefined symbol"
exit $fail
