#!/usr/bin/env bash
# Issue 6: install the rock with Debian's luarocks into a fresh temporary
# tree, then run the busted suite against the INSTALLED copy, from a
# directory that is not the checkout (the specs and vectors are copied
# there; the modules must come from the tree, which the run asserts).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SPEC=${1:-rockspec/treasure-resolver-scm-1.rockspec}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/treasure-rock.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
TREE=$WORK/tree

luarocks make "$SPEC" --tree "$TREE" >"$WORK/luarocks.log" 2>&1 || { cat "$WORK/luarocks.log"; exit 1; }
luarocks list --tree "$TREE" --porcelain | grep -q '^treasure-resolver' || { echo "rock not listed in $TREE"; exit 1; }

mkdir -p "$WORK/run/tests"
cp -r tests/lua tests/vectors "$WORK/run/tests/"
cd "$WORK/run"
# Only the tree (and the spec helpers): nothing from the checkout.
export LUA_PATH="$TREE/share/lua/5.1/?.lua;$TREE/share/lua/5.1/?/init.lua;$WORK/run/tests/lua/?.lua;;"
export LUA_CPATH="$TREE/lib/lua/5.1/?.so;;"
TREE="$TREE" luajit -e '
  local function from(mod, path)
    local p = package.searchpath(mod, path)
    assert(p and p:find(os.getenv("TREE"), 1, true) == 1, mod .. " resolved outside the tree: " .. tostring(p))
  end
  from("treasure", package.path); from("treasure.legacy", package.path)
  from("treasure.packet", package.path); from("treasure.native", package.cpath)
  assert(require("treasure").backend == "native", "installed rock must load native")
  print("installed rock: every module resolves inside " .. os.getenv("TREE"))
' 
TREASURE_TEST_BACKENDS=lua,native luajit /usr/bin/busted --lpath="$WORK/run/tests/lua/?.lua" tests/lua
