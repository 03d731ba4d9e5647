#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a real prefill through the service:
# installs dependencies with apt, builds the server and the CLI, starts sparsefill-server on the
# embedded default model (no download), prefills a 2048-token prompt through gRPC with
# `sparsefill prefill`, shows the result and a few metrics, then stops the server with SIGTERM.
#   BUILD_DIR  build folder (default: build)
#   TOKENS     prompt length (default: 2048)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${TOKENS:-2048}
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "installing dependencies"
tests/install_deps.sh

step "building sparsefill-server and sparsefill"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target sparsefill-server sparsefill

step "starting sparsefill-server (embedded model, CPU backend)"
"$BUILD_DIR/bin/sparsefill-server" --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 \
  --port_file "$work/port" --metrics_port_file "$work/metrics_port" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "server exited" >&2; exit 1; }
  sleep 0.1
done
port=$(cat "$work/port")
metrics_port=$(cat "$work/metrics_port")
echo "listening on 127.0.0.1:$port (metrics on :$metrics_port)"

"$BUILD_DIR/bin/sparsefill" info --server "127.0.0.1:$port"

step "prefilling a $TOKENS-token prompt through gRPC"
python3 -c "import random; random.seed(1); print(' '.join(str(random.randrange(8192)) for _ in range($TOKENS)))" >"$work/prompt.txt" 2>/dev/null \
  || awk -v n="$TOKENS" 'BEGIN { srand(1); for (i = 0; i < n; i++) printf "%d ", int(rand() * 8192); print "" }' >"$work/prompt.txt"
"$BUILD_DIR/bin/sparsefill" prefill --server "127.0.0.1:$port" --tokens "$work/prompt.txt" \
  --save-kv "$work/kv.safetensors"
ls -l "$work/kv.safetensors"

step "a few metrics from /metrics"
curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -E '^sparsefill_(requests_total|prefill_seconds_(sum|count)|prompt_tokens_total|kv_bytes_sent_total)' | grep -vE '\} 0$' || true

step "stopping the server (SIGTERM)"
kill -TERM "$server_pid"
wait "$server_pid"
echo "server exited with status $?"
server_pid=""
