#!/usr/bin/env bash
# On a GPU box (the device tool), from the repository root, after tests/gpu_bundle.sh ran on the
# build machine and .carry was carried: runs every GPU test binary, then (with --bench) the
# attention benchmark. Logs go to $OUT (or ./gpu-out), few files (the device tool returns at most
# 8): gpu.txt, tests.log, bench.log and the benchmark's results; a summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/.carry/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export SPARSEFILL_TEST_DATA_DIR="$PWD/tests/data"  # the binaries were built in another checkout
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"

summary=()
for t in ${TESTS:-.carry/gpu/bin/*_test}; do
  name=$(basename "$t")
  start=$(date +%s%N)
  timeout "${TEST_TIMEOUT:-300}" "$t" --gtest_color=no >"$OUT/current.log" 2>&1
  rc=$?
  { echo "===== $name (rc=$rc)"; cat "$OUT/current.log"; } >>"$OUT/tests.log"
  secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  passed=$(grep -c '^\[       OK \]' "$OUT/current.log")
  failed=$(grep -c '^\[  FAILED  \].*(' "$OUT/current.log")
  skipped=$(grep -c '^\[  SKIPPED \]' "$OUT/current.log")
  summary+=("$(printf '%-40s rc=%d ok=%d failed=%d skipped=%d %ss' "$name" "$rc" "$passed" "$failed" "$skipped" "$secs")")
  # Failures and printed timings, for the reply's tail.
  grep -E 'Failure|error|Expected|Which is|actual|FAILED|TFLOP|ms,|median|rel err|GB/s' "$OUT/current.log" | head -60
done
rm -f "$OUT/current.log"

# --bench: the attention benchmark; --prefill-bench: the end-to-end prefill benchmark.
for arg in "$@"; do
  case "$arg" in
    --bench) script=tests/bench/run_attention_bench.sh ;;
    --prefill-bench) script=tests/bench/run_prefill_bench.sh ;;
    *) continue ;;
  esac
  SPARSEFILL_BIN_DIR=.carry/gpu/bin "$script" build "$OUT" >>"$OUT/bench.log" 2>&1
  echo "$script rc=$?"
  tail -45 "$OUT/bench.log"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
