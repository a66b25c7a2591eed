#!/usr/bin/env bash
# Runs "the other" LuaJIT 2.1 with the given arguments, without touching the
# system: if Debian's luajit is installed, OpenResty's (Debian package
# luajit2), else Debian's. Its .debs are fetched with `apt-get download`
# and unpacked with `dpkg -x` under build/other-luajit/ once (the two
# packages conflict, so installing one would remove the other, and with it
# e.g. nginx's Lua module). Package paths stay the binary's defaults, which
# reach /usr/share/lua/5.1 (busted), plus LUA_PATH/LUA_CPATH as set.
#
#   tools/other-luajit.sh -v           # which one
#   tools/other-luajit.sh /usr/bin/busted tests/lua
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if dpkg -s luajit2 >/dev/null 2>&1; then
  debs="luajit libluajit-5.1-2 libluajit-5.1-common" name=debian
else
  debs="luajit2 libluajit2-5.1-2 libluajit2-5.1-common" name=openresty
fi
dir=$root/build/other-luajit/$name
if [ ! -x "$dir/usr/bin/luajit" ]; then
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp/debs"
  if ! (cd "$dir.tmp/debs" && apt-get download $debs >"$dir.tmp/download.log" 2>&1); then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    (cd "$dir.tmp/debs" && apt-get download $debs >"$dir.tmp/download.log" 2>&1) || { cat "$dir.tmp/download.log" >&2; exit 1; }
  fi
  for d in "$dir.tmp"/debs/*.deb; do dpkg -x "$d" "$dir.tmp"; done
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
export LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$dir/usr/bin/luajit" "$@"
