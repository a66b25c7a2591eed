#!/bin/bash
# Unpack Debian 12's nginx + lua-nginx-module (and OpenResty's LuaJIT, which
# that module links) into build/runtimes/root WITHOUT installing them: the
# system luajit stays Debian's (see GUIDE.md's machine rules). Idempotent:
# does nothing when the tree is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=build/runtimes/root
[ -x "$ROOT/usr/sbin/nginx" ] && [ -f "$ROOT/usr/lib/nginx/modules/ngx_http_lua_module.so" ] && exit 0
PKGS="nginx nginx-common libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core lua-resty-lrucache libluajit2-5.1-2 libluajit2-5.1-common libpcre3"
mkdir -p build/runtimes/debs "$ROOT"
( cd build/runtimes/debs && apt-get download $PKGS )
for d in build/runtimes/debs/*.deb; do dpkg -x "$d" "$ROOT"; done
test -x "$ROOT/usr/sbin/nginx"
