#!/usr/bin/env bash
# tests/swap/dropin.sh: issue 6 part 2, "drop-in at require time".
#
# Runs the unchanged legacy-using game script tests/swap/dropin_game.lua
# three ways and requires byte-identical packet streams and transcripts:
#   1. as written (treasure.legacy, the pure-Lua reference);
#   2. with package.loaded["treasure.legacy"] = require("treasure.native")
#      set before the script is loaded;
#   3. with package.loaded["treasure.legacy"] = require("treasure") (the
#      backend picker, native when it loads).
# Run from the repository root after `make build`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/?.so;;"
unset TREASURE_BACKEND
LUAJIT=${LUAJIT:-luajit}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
game=tests/swap/dropin_game.lua

"$LUAJIT" "$game" "$tmp/legacy.bin" > "$tmp/legacy.txt"
"$LUAJIT" -e 'package.loaded["treasure.legacy"] = require("treasure.native")' \
  "$game" "$tmp/native.bin" > "$tmp/native.txt"
"$LUAJIT" -e 'package.loaded["treasure.legacy"] = require("treasure")' \
  "$game" "$tmp/picker.bin" > "$tmp/picker.txt"

fail=0
check_backend() { # file, expected backend
  local got
  got=$(sed -n 's/^# backend //p' "$1")
  if [ "$got" != "$2" ]; then echo "dropin: $1 ran on backend '$got', want '$2'"; fail=1; fi
}
check_backend "$tmp/legacy.txt" lua
check_backend "$tmp/native.txt" native
check_backend "$tmp/picker.txt" native

packets=$(( $(stat -c %s "$tmp/legacy.bin") / 128 ))
busy=$(grep -c '^tick .* batch nil busy' "$tmp/legacy.txt" || true)
if [ "$packets" -lt 5000 ] || [ "$busy" -lt 1 ]; then
  echo "dropin: the game is too tame ($packets packets, $busy busy batches)"; fail=1
fi
for way in native picker; do
  if ! cmp -s "$tmp/legacy.bin" "$tmp/$way.bin"; then
    echo "dropin: packet stream differs ($way vs legacy): $(cmp "$tmp/legacy.bin" "$tmp/$way.bin" 2>&1 || true)"; fail=1
  fi
  if ! diff <(grep -v '^#' "$tmp/legacy.txt") <(grep -v '^#' "$tmp/$way.txt") > "$tmp/diff.txt"; then
    echo "dropin: transcript differs ($way vs legacy):"; head -20 "$tmp/diff.txt"; fail=1
  fi
done
if [ "$fail" = 0 ]; then
  echo "dropin: ok ($packets packets, $busy busy batches, $(wc -l < "$tmp/legacy.txt") transcript lines; legacy = native = picker)"
fi
exit "$fail"
