#!/bin/sh
# The rockspecs' `test` section: `luarocks test <rockspec>` runs this in the
# source directory (an unpacked source rock or a checkout). It runs the busted
# suite on LuaJIT against the INSTALLED copy of treasure-resolver, so point
# Lua at the tree first:
#
#   eval "$(luarocks path --tree T)"; luarocks test treasure-resolver-<v>-1.rockspec
#
# It fails unless every module resolves outside this directory (from the
# tree, not the sources next to it) and the native backend loads.
# LUAJIT and BUSTED may name other interpreters/runners (default: PATH).
set -eu
LUAJIT=${LUAJIT:-luajit}
BUSTED=${BUSTED:-$(command -v busted || true)}
[ -n "$BUSTED" ] || { echo "luarocks test: busted not found (Debian: apt-get install lua-busted)" >&2; exit 1; }
HERE=$(pwd) "$LUAJIT" -e '
  local here = os.getenv("HERE") .. "/"
  for _, m in ipairs({ { "treasure", package.path }, { "treasure.legacy", package.path },
                       { "treasure.packet", package.path }, { "treasure.native", package.cpath } }) do
    local p = package.searchpath(m[1], m[2])
    assert(p, m[1] .. " is not installed where package.path/cpath look (eval \"$(luarocks path --tree T)\" first)")
    assert(p:sub(1, #here) ~= here and p:sub(1, 2) ~= "./", m[1] .. " resolves to the sources, not an installed copy: " .. p)
  end
  local t = require("treasure")
  assert(t.backend == "native", "the installed rock must load native: " .. tostring(t.native_error))
  print("luarocks test: " .. t._VERSION .. " from " .. package.searchpath("treasure.native", package.cpath))
'
TREASURE_TEST_BACKENDS=lua,native "$LUAJIT" "$BUSTED" --lpath="$PWD/tests/lua/?.lua" tests/lua
TREASURE_NATIVE_FFI=0 TREASURE_TEST_BACKENDS=native "$LUAJIT" "$BUSTED" --lpath="$PWD/tests/lua/?.lua" tests/lua
