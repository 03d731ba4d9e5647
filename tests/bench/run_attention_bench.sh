#!/usr/bin/env bash
# Issue 4's attention benchmark, side by side in one run on one card: PyTorch SDPA (cuDNN and
# flash backends) and our attention_bench, merged into one markdown table by format_results.py.
# Run on the GPU box from anywhere in the repository, after attention_bench is built:
#
#   tests/bench/run_attention_bench.sh [BUILD_DIR [OUT_DIR]]
#
#   BUILD_DIR  where attention_bench was built (default build; the binary is BUILD_DIR/bin)
#   OUT_DIR    where the results go (default $OUT if set, else tests/bench/results):
#              attention-<date>-<card>.md and attention-<date>-<card>.jsonl (the raw rows).
#              Nothing else is written there (the device tool brings back at most 8 files).
# Environment:
#   SPARSEFILL_BIN_DIR   folder holding attention_bench (overrides BUILD_DIR/bin)
#   SPARSEFILL_COMMIT    commit to record where `git rev-parse HEAD` does not work
#   BENCH_DENSE_TOKENS   dense and SDPA lengths (default 32768,131072,262144)
#   BENCH_SPARSE_TOKENS  sparse lengths (default 32768,131072,262144,524288,1048576)
#   BENCH_ROWS           attention_bench --rows filter (default: every row)
#   BENCH_REPEATS        timed runs per row (default 10)
#   BENCH_BUDGET_S       wall-clock budget for the whole script (default 420): rows left when
#                        it is spent are reported as skipped; a hung process is killed
#   PYTHON               python with torch (default python3)
# Each row pattern runs in its own attention_bench process, so a kernel fault in one pattern
# (a lost CUDA context) costs only that pattern's rows.
set -uo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$script_dir/../.." && pwd)
cd "$repo" || exit 2

BUILD_DIR=${1:-build}
OUT_DIR=${2:-${OUT:-tests/bench/results}}
BIN_DIR=${SPARSEFILL_BIN_DIR:-$BUILD_DIR/bin}
BENCH="$BIN_DIR/attention_bench"
PYTHON=${PYTHON:-python3}
DENSE_TOKENS=${BENCH_DENSE_TOKENS:-32768,131072,262144}
SPARSE_TOKENS=${BENCH_SPARSE_TOKENS:-32768,131072,262144,524288,1048576}
REPEATS=${BENCH_REPEATS:-10}

# 32K -> 32768, 1M -> 1048576 (the rows carry plain integers).
expand_tokens() {
  local out="" t
  for t in ${1//,/ }; do
    case "$t" in
      *[kK]) t=$(( ${t%?} * 1024 )) ;;
      *[mM]) t=$(( ${t%?} * 1048576 )) ;;
    esac
    out="${out:+$out,}$t"
  done
  echo "$out"
}
DENSE_TOKENS=$(expand_tokens "$DENSE_TOKENS")
SPARSE_TOKENS=$(expand_tokens "$SPARSE_TOKENS")
BUDGET_S=${BENCH_BUDGET_S:-420}
ROWS=${BENCH_ROWS:-}

# The exact command, with the settings that change what runs.
command_line="tests/bench/run_attention_bench.sh $*"
for var in SPARSEFILL_BIN_DIR BENCH_DENSE_TOKENS BENCH_SPARSE_TOKENS BENCH_ROWS BENCH_REPEATS \
           BENCH_BUDGET_S; do
  if [ -n "${!var:-}" ]; then command_line="$var=${!var} $command_line"; fi
done

if [ ! -x "$BENCH" ]; then
  echo "run_attention_bench: no executable $BENCH (build the attention_bench target, or set" \
       "SPARSEFILL_BIN_DIR)" >&2
  exit 2
fi
cuda_libs=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
export LD_LIBRARY_PATH="$BIN_DIR/../lib:$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$OUT_DIR" || exit 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
remaining() { echo $(( BUDGET_S - ($(date +%s) - start) )); }

# What was measured, where and when.
# shellcheck source=tests/bench/bench_env.sh
. "$script_dir/bench_env.sh"
print_bench_header attention

# 1. The workload generators, checked on the CPU.
"$BENCH" --self-check || echo "run_attention_bench: WARNING: workload self-check failed"

# 2. PyTorch SDPA, cuDNN and flash, at the dense lengths.
echo "== PyTorch SDPA"
sdpa_budget=$(( $(remaining) < 200 ? $(remaining) : 200 ))
sdpa_max_s=$(( sdpa_budget > 40 ? sdpa_budget - 30 : 10 ))
if [ "$sdpa_budget" -gt 10 ]; then
  PYTHONUNBUFFERED=1 timeout -k 10 "$sdpa_budget" "$PYTHON" "$script_dir/sdpa_baseline.py" \
    --tokens "$DENSE_TOKENS" --repeats "$REPEATS" --max-seconds "$sdpa_max_s" \
    --json "$tmp/sdpa.jsonl" >/dev/null
  rc=$?
  [ "$rc" -eq 0 ] || echo "run_attention_bench: sdpa_baseline.py exited with $rc"
else
  echo "run_attention_bench: no time left for SDPA"
fi

# 3. Our kernels, one process per row pattern.
echo "== attention_bench"
list_args=()
[ -n "$ROWS" ] && list_args=(--rows "$ROWS")
patterns=$("$BENCH" --list "${list_args[@]}" | awk '{print $1}')
for pattern in $patterns; do
  tokens=$SPARSE_TOKENS
  [ "$pattern" = dense ] && tokens=$DENSE_TOKENS
  left=$(remaining)
  max_s=$(( left > 5 ? left - 5 : 1 ))
  out_file="$tmp/bench-$pattern.jsonl"
  : >"$out_file"
  err_file="$tmp/bench-$pattern.err"
  timeout -k 10 $(( max_s + 60 )) "$BENCH" --rows "=$pattern" --tokens "$tokens" \
    --dense-max-tokens 1099511627776 --repeats "$REPEATS" --max-seconds "$max_s" \
    --json "$out_file" >/dev/null 2>"$err_file"
  rc=$?
  cat "$err_file" >&2
  if [ "$rc" -ne 0 ]; then
    echo "run_attention_bench: attention_bench --rows =$pattern exited with $rc"
    # Rows the process never printed (a crash, or killed by the timeout: 124/137) become error
    # rows carrying the process's last message.
    # shellcheck disable=SC1003  # tr deletes quotes and backslashes: the text goes into JSON
    why=$(grep -v '^ *$' "$err_file" | tail -n 1 | tr -d '"\\' | tr '\t' ' ' | cut -c1-300)
    for t in ${tokens//,/ }; do
      if ! grep -q "\"tokens\":$t,\"pattern\":\"$pattern\"" "$out_file"; then
        printf '{"bench":"sparsefill_attention","tokens":%s,"pattern":"%s","status":"error",%s}\n' \
          "$t" "$pattern" "\"error\":\"attention_bench exited with status $rc before this row: $why\"" \
          >>"$out_file"
      fi
    done
  fi
  cat "$out_file" >>"$tmp/attention.jsonl"
done

# 4. One table.
echo "== results ($(( $(date +%s) - start )) s)"
inputs=()
[ -s "$tmp/sdpa.jsonl" ] && inputs+=("$tmp/sdpa.jsonl")
[ -s "$tmp/attention.jsonl" ] && inputs+=("$tmp/attention.jsonl")
if [ "${#inputs[@]}" -eq 0 ]; then
  echo "run_attention_bench: no rows at all" >&2
  exit 1
fi
"$PYTHON" "$script_dir/format_results.py" "${inputs[@]}" --out-dir "$OUT_DIR" \
  --card "$card" --driver "$driver" --commit "$commit" --command "$command_line" \
  --date "$date_day" --time "$date_time"
