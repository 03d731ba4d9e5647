#!/usr/bin/env bash
# Issue 7's accuracy harness in one command, on the CPU: fetches SmolLM2-135M if it is not in the
# model cache (deploy/fetch_models.sh), builds sparsefill-accuracy, runs it, and records the
# report under tests/accuracy/results/ with the command, commit, date and machine.
#   BUILD_DIR  build folder (default: build)
#   TOKENS     prompt length (default: 2048)
#   ARGS       more sparsefill-accuracy flags (e.g. --configs=a_shape:64:448,my_patterns.json)
#   SEARCH     where the per-head pattern search writes its config (default:
#              tests/accuracy/results/smollm2-searched-patterns-cost.json; empty skips the search)
#   OUT        report file (default: tests/accuracy/results/accuracy-DATE-smollm2-cpu.md)
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD_DIR=${BUILD_DIR:-build}
TOKENS=${TOKENS:-2048}
ARGS=${ARGS:-}
SEARCH=${SEARCH-tests/accuracy/results/smollm2-searched-patterns-cost.json}
CACHE=${SPARSEFILL_MODEL_CACHE:-$HOME/.cache/sparsefill/models}
MODEL=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
OUT=${OUT:-tests/accuracy/results/accuracy-$(date -u +%F)-smollm2-cpu.md}

[ -s "$MODEL" ] || deploy/fetch_models.sh smollm2
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARSEFILL_BUILD_TESTS=ON
fi
cmake --build "$BUILD_DIR" --target sparsefill-accuracy >/dev/null

cmd=("$BUILD_DIR/bin/sparsefill-accuracy" "--model=gguf:$MODEL" "--tokens=$TOKENS"
     "--json=${OUT%.md}.jsonl")
[ -n "$SEARCH" ] && cmd+=("--search_out=$SEARCH")
# shellcheck disable=SC2206
[ -n "$ARGS" ] && cmd+=($ARGS)
# The commit and date of the binary's sources, taken before the run (it can take an hour);
# CUDA sources are not in this CPU binary.
stamp="$(date -u '+%F %T') UTC, commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- worker kernels tests/accuracy ':(exclude)kernels/attention/cuda' || echo '+uncommitted'), $(nproc) CPU cores, $(uname -m)"
start=$(date +%s)
report=$("${cmd[@]}")
{
  echo "<!-- $stamp -->"
  echo "<!-- command: TOKENS=$TOKENS ARGS='$ARGS' SEARCH='$SEARCH' tests/accuracy/run_accuracy.sh ($(( $(date +%s) - start )) s) -->"
  echo
  echo "$report"
} > "$OUT"
echo "run_accuracy: wrote $OUT"
