#!/bin/bash
# make test-runtimes: the example servers, started from Debian's packages, on
# 127.0.0.1, driven by real clients in another process (clients.py).
#   1. OpenResty (nginx + lua-nginx-module, OpenResty's LuaJIT, unpacked by
#      fetch.sh; the system luajit is not touched), 2 workers, native backend,
#      then the legacy backend; /metrics parsed by prometheus_client.
#   2. luv (lua-luv on Debian's luajit), native then legacy.
# Every run is bounded (timeout); servers are stopped by their pid.
# Env: RT_CLIENTS (200), RT_RATE digs/s (100), RT_SECONDS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
R=$REPO/build/runtimes/root
CLIENTS=${RT_CLIENTS:-200} RATE=${RT_RATE:-100} SECONDS_=${RT_SECONDS:-5}
bash tests/runtimes/fetch.sh
python3 -c 'import prometheus_client' 2>/dev/null || pip install --quiet --break-system-packages prometheus_client 2>/dev/null || pip install --quiet prometheus_client
[ -f build/treasure/native.so ] || { echo "run make build first"; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0; sleep 0.1; done; echo "server on port $1 did not start"; return 1; }

run_nginx() { # backend
  local run=$REPO/build/runtimes/nginx-$1 port; port=$(free_port)
  rm -rf "$run"; mkdir -p "$run"
  sed -e "s|@ROOT@|$R|g" -e "s|@REPO@|$REPO|g" -e "s|@RUN@|$run|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|2|g" \
    examples/openresty/nginx.conf > "$run/nginx.conf"
  TREASURE_BACKEND=$1 TREASURE_EXAMPLE_PLAYERS=$CLIENTS LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu:$R/lib/x86_64-linux-gnu \
    "$R/usr/sbin/nginx" -p "$run" -c "$run/nginx.conf" &
  local pid=$!; PIDS+=("$pid")
  wait_port "$port"
  timeout 60 python3 tests/runtimes/clients.py --port "$port" --clients "$CLIENTS" --rate "$RATE" --seconds "$SECONDS_" --label "openresty/$1:"
  timeout 20 python3 tests/runtimes/metrics_check.py "$port" "$1"
  kill "$pid"; wait "$pid" || true
  if grep -E '\[(error|alert|crit|emerg)\]' "$run/error.log"; then echo "nginx error log has errors"; exit 1; fi
  grep -q 'treasure example: packet for disconnected' "$run/error.log" && { echo "undeliverable packets"; exit 1; }
  true
}

run_luv() { # backend send
  local port; port=$(free_port)
  LUA_PATH="$REPO/lua/?.lua;$REPO/lua/?/init.lua;;" LUA_CPATH="$REPO/build/?.so;;" TREASURE_BACKEND=$1 luajit examples/luv_server.lua --port "$port" --players "$CLIENTS" --send "$2" --stats build/runtimes/luv-$1-$2.txt &
  local pid=$!; PIDS+=("$pid")
  wait_port "$port"
  timeout 60 python3 tests/runtimes/clients.py --port "$port" --clients "$CLIENTS" --rate "$RATE" --seconds "$SECONDS_" --label "luv/$1/$2:"
  kill -INT "$pid"; wait "$pid"
  cat build/runtimes/luv-$1-$2.txt
  # issue 15: the drain was woken through r:fd() and no timer exists
  grep -Eq 'drain woken by r:fd\(\) [1-9][0-9]* times' build/runtimes/luv-$1-$2.txt || { echo "luv: the fd never woke the drain"; exit 1; }
  grep -q 'timers 0;' build/runtimes/luv-$1-$2.txt || { echo "luv: a timer exists"; exit 1; }
  grep -q 'handles .*timer' build/runtimes/luv-$1-$2.txt && { echo "luv: a timer handle exists"; exit 1; }
  true
}

[ -n "${RT_ONLY_LUV:-}" ] || run_nginx native
[ -n "${RT_ONLY_LUV:-}" ] || run_nginx lua
run_luv native ffi
run_luv native string
run_luv lua ffi
echo "test-runtimes: ok"
