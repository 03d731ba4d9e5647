#!/usr/bin/env bash
# A/B of two attention_bench builds on one card, rows interleaved so that both see the same
# clocks and neighbours (METHOD: the baseline reruns in the same call):
#
#   tests/bench/ab_attention.sh BASE_BIN NEW_BIN ROWS TOKENS [ROUNDS]
#
#   ROWS    comma-separated exact row names (attention_bench --list)
#   TOKENS  comma-separated lengths
#   ROUNDS  base/new alternations per row (default 2); the table gives each build's best ms
#   AB_ARGS more attention_bench flags for both builds (e.g. "--head-dim=64")
# Prints one line per (row, tokens): ms and TFLOP/s on computed pairs of each build, and new/base.
set -euo pipefail
base=${1:?usage: ab_attention.sh BASE_BIN NEW_BIN ROWS TOKENS [ROUNDS]}
new=${2:?}
rows=${3:?}
tokens=${4:?}
rounds=${5:-2}
cuda_libs=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
export LD_LIBRARY_PATH="$(dirname "$new")/../lib:$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for row in ${rows//,/ }; do
  for ((r = 0; r < rounds; ++r)); do
    for which in base new; do
      bin=$base
      [ "$which" = new ] && bin=$new
      # shellcheck disable=SC2086  # AB_ARGS is a list of flags
      "$bin" --rows "=$row" --tokens "$tokens" --repeats 5 --dense-max-tokens 1099511627776 \
        --json "$tmp/$which.jsonl" ${AB_ARGS:-} >/dev/null
    done
  done
done
python3 - "$tmp/base.jsonl" "$tmp/new.jsonl" <<'EOF'
import json, sys
def best(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        if r.get("status") != "ok":
            continue
        key = (r["pattern"], r["tokens"])
        if key not in out or r["ms"] < out[key]["ms"]:
            out[key] = r
    return out
base, new = best(sys.argv[1]), best(sys.argv[2])
print(f"{'row':34s} {'tokens':>8s} {'base ms':>9s} {'new ms':>9s} {'base TF':>8s} {'new TF':>8s} {'new/base':>8s}")
for key in sorted(set(base) & set(new)):
    b, n = base[key], new[key]
    print(f"{key[0]:34s} {key[1]:8d} {b['ms']:9.3f} {n['ms']:9.3f} {b.get('tflops', 0):8.1f} "
          f"{n.get('tflops', 0):8.1f} {b['ms'] / n['ms']:7.3f}x")
EOF
