#!/usr/bin/env bash
# Nsight Compute profile of one attention_bench row's attention kernel, on the GPU box:
#
#   tests/bench/profile_attention.sh ROW TOKENS [KERNEL_REGEX]
#
#   ROW           an attention_bench row name (attention_bench --list)
#   TOKENS        prompt length (e.g. 65536)
#   KERNEL_REGEX  which kernel to profile (default: Sparse|Dense, the attention mainloops)
# Environment: SPARSEFILL_BIN_DIR (default build/bin), OUT (default /tmp), NCU_SET (default full),
# NCU_SOURCE=0 skips the per-instruction (SASS) table.
# Writes OUT/ncu-ROW-TOKENS.txt (every section's details) and, unless NCU_SOURCE=0,
# OUT/ncu-ROW-TOKENS-sass.csv (per SASS instruction: executed count and warp stall samples by
# reason), the table that says which instruction a warp waits on. Clocks stay as the card runs
# them (--clock-control none), so throughput matches the benchmark's.
set -euo pipefail
row=${1:?usage: profile_attention.sh ROW TOKENS [KERNEL_REGEX]}
tokens=${2:?usage: profile_attention.sh ROW TOKENS [KERNEL_REGEX]}
regex=${3:-Sparse|Dense}
bin_dir=${SPARSEFILL_BIN_DIR:-build/bin}
out=${OUT:-/tmp}
ncu_bin=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
cuda_libs=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
export LD_LIBRARY_PATH="$bin_dir/../lib:$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

name="ncu-$row-$tokens"
rep=$(mktemp -d)/$name
"$ncu_bin" --clock-control none --set "${NCU_SET:-full}" --import-source no \
  -k "regex:$regex" --launch-skip 1 --launch-count 1 -o "$rep" \
  "$bin_dir/attention_bench" --rows "=$row" --tokens "$tokens" --repeats 2 --min-repeats 1 \
  --dense-max-tokens 1099511627776 >/dev/null
"$ncu_bin" -i "$rep.ncu-rep" --page details --print-details all >"$out/$name.txt"
if [ "${NCU_SOURCE:-1}" != 0 ]; then
  "$ncu_bin" -i "$rep.ncu-rep" --page source --csv --print-source sass >"$out/$name-sass.csv" ||
    echo "profile_attention: this ncu cannot print the source page" >&2
fi
echo "profile_attention: $out/$name.txt"
