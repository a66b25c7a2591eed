#!/usr/bin/env bash
# Publish -> delivery latency of the cluster transport (crates/treasure-cluster)
# on loopback: starts a nats-server with JetStream on a free 127.0.0.1 port and
# a temporary store dir, runs the latency example (128 B and 64 KiB records, file
# and memory storage, RUNS times), stops the server by pid.
#   bash bench/cluster_latency.sh [RUNS] [COUNT]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
COUNT=${2:-2000}
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
cargo build --release -q -p treasure-cluster --example latency
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
"$NATS_SERVER" -js -a 127.0.0.1 -p "$PORT" -sd "$DIR" >"$DIR/server.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done
for i in $(seq "$RUNS"); do
  echo "run $i"
  target/release/examples/latency "nats://127.0.0.1:$PORT" "$COUNT"
done
