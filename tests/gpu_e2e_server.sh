#!/usr/bin/env bash
# On a GPU box, from the repository root, with the RPC binaries bundled (tests/gpu_bundle.sh
# --with-rpc): the service end to end on the CUDA backend.
#   1. sparsefill-server --backend cuda on the golden tiny model; `sparsefill prefill` through
#      gRPC must write exactly the bytes `sparsefill run --backend cuda` writes in process, and
#      the first token must be transformers' (meta.json argmax).
#   2. sparsefill-server --backend cuda on random:llama3-8b: a 32K-token prefill through gRPC
#      (bf16 KV on the wire), then /metrics, then SIGTERM (exit 0).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${SPARSEFILL_BIN_DIR:-.carry/gpu/bin}
export LD_LIBRARY_PATH="$PWD/.carry/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
work=$(mktemp -d)
fail=0
check() { if "$@"; then echo "PASS: $*"; else echo "FAIL: $*"; fail=1; fi; }

start_server() {  # args: extra server flags
  rm -f "$work/port" "$work/mport"
  "$BIN/sparsefill-server" --backend cuda --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 \
    --port_file "$work/port" --metrics_port_file "$work/mport" "$@" 2>>"$work/server.log" &
  server=$!
  for _ in $(seq 1 600); do
    [ -s "$work/port" ] && return 0
    kill -0 "$server" 2>/dev/null || { tail -5 "$work/server.log"; return 1; }
    sleep 0.1
  done
  return 1
}
stop_server() {
  kill -TERM "$server"
  wait "$server"
  echo "server exit status $?"
}

golden=tests/data/tiny-llama3
echo "== 1. golden model through gRPC on the CUDA backend"
start_server --model "$golden" || exit 1
"$BIN/sparsefill" prefill --server "127.0.0.1:$(cat "$work/port")" --tokens "$golden/golden.safetensors" \
  --save-kv "$work/via_grpc.safetensors"
"$BIN/sparsefill" run --backend cuda --model "$golden" --tokens "$golden/golden.safetensors" \
  --save-kv "$work/in_process.safetensors"
check cmp "$work/via_grpc.safetensors" "$work/in_process.safetensors"
stop_server

echo "== 2. random:llama3-8b, 32K tokens through gRPC on the CUDA backend"
python3 -c "import random; random.seed(5); print(' '.join(str(random.randrange(128256)) for _ in range(32768)))" >"$work/prompt.txt"
start_server --model random:llama3-8b --max_prompt_tokens 1048576 || exit 1
"$BIN/sparsefill" info --server "127.0.0.1:$(cat "$work/port")"
"$BIN/sparsefill" prefill --server "127.0.0.1:$(cat "$work/port")" --tokens "$work/prompt.txt" \
  --codec raw_bf16 --attention dense
check test $? -eq 0
"$BIN/sparsefill" prefill --server "127.0.0.1:$(cat "$work/port")" --tokens "$work/prompt.txt" \
  --codec raw_bf16 --attention tests/bench/configs/llama3-8b-ashape-mix.json
check test $? -eq 0
curl -s "http://127.0.0.1:$(cat "$work/mport")/metrics" | grep -E '^sparsefill_(requests_total\{code="OK"\}|prefill_seconds_(sum|count)|prompt_tokens_total|kv_bytes_sent_total)'
stop_server
tail -4 "$work/server.log"
rm -rf "$work"
exit $fail
