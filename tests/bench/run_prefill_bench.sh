#!/usr/bin/env bash
# Issue 5's end-to-end prefill benchmark, side by side in one run on one card: our prefill_bench
# (random:llama3-8b on the CUDA backend, sparse and dense) and the Hugging Face transformers
# baseline (LlamaForCausalLM, SDPA with the cuDNN backend), merged into one markdown table by
# format_prefill.py. Run on the GPU box from anywhere in the repository, after prefill_bench is
# built:
#
#   tests/bench/run_prefill_bench.sh [BUILD_DIR [OUT_DIR]]
#
#   BUILD_DIR  where prefill_bench was built (default build; the binary is BUILD_DIR/bin)
#   OUT_DIR    where the results go (default $OUT if set, else tests/bench/results):
#              prefill-<date>-<card>.md and prefill-<date>-<card>.jsonl (every row). Nothing
#              else is written there (the device tool brings back at most 8 files).
# Environment:
#   SPARSEFILL_BIN_DIR   folder holding prefill_bench (overrides BUILD_DIR/bin)
#   SPARSEFILL_COMMIT    commit to record where `git rev-parse HEAD` does not work
#   BENCH_BUDGET_S       wall-clock budget for the whole script (default 540, so that it fits a
#                        10-minute call): each step gets what is left minus a reserve for the
#                        steps after it; lengths that do not fit are reported as skipped, and a
#                        process still running at its step's limit is killed
#   BENCH_TOKENS         sparse lengths (default 32768,131072,524288,1048576)
#   BENCH_DENSE_TOKENS   lengths where our dense path runs (default 32768,131072); at the other
#                        sparse lengths it is extrapolated (see tests/bench/README.md)
#   BENCH_TF_TOKENS      transformers baseline lengths (default 32768,131072; empty: skip it)
#   BENCH_REPEATS        our runs per length below 512K (default 2; one run at 512K and up)
#   BENCH_TF_REPEATS     baseline runs below 128K (default 3; one run at 128K and up)
#   BENCH_ARGS           extra prefill_bench flags (e.g. --export-slots=3)
#   BENCH_TF_ARGS        extra transformers_baseline.py flags (e.g. --sdpa-backend flash)
#   PYTHON               python with torch and transformers (default python3)
# Steps, each its own process (a crash costs only that step's rows): (1) prefill_bench --modes
# sparse, (2) prefill_bench --modes dense, (3) transformers_baseline.py, (4) format_prefill.py.
set -uo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$script_dir/../.." && pwd)
cd "$repo" || exit 2

BUILD_DIR=${1:-build}
OUT_DIR=${2:-${OUT:-tests/bench/results}}
BIN_DIR=${SPARSEFILL_BIN_DIR:-$BUILD_DIR/bin}
BENCH="$BIN_DIR/prefill_bench"
PYTHON=${PYTHON:-python3}
BUDGET_S=${BENCH_BUDGET_S:-540}
REPEATS=${BENCH_REPEATS:-2}
TF_REPEATS=${BENCH_TF_REPEATS:-3}
EXTRA_ARGS=${BENCH_ARGS:-}
TF_EXTRA_ARGS=${BENCH_TF_ARGS:-}
export PYTHONUNBUFFERED=1
PATTERNS=${BENCH_PATTERNS:-tests/bench/configs/llama3-8b-vs-mix.json}

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
SPARSE_TOKENS=$(expand_tokens "${BENCH_TOKENS:-32768,131072,524288,1048576}")
DENSE_TOKENS=$(expand_tokens "${BENCH_DENSE_TOKENS:-32768,131072}")
TF_TOKENS=$(expand_tokens "${BENCH_TF_TOKENS-32768,131072}")
# Dense lengths above the longest dense length are extrapolated by the formatter; prefill_bench
# runs dense only where asked.
dense_max=0
for t in ${DENSE_TOKENS//,/ }; do [ "$t" -gt "$dense_max" ] && dense_max=$t; done

# The exact command, with the settings that change what runs.
command_line="tests/bench/run_prefill_bench.sh $*"
for var in SPARSEFILL_BIN_DIR BENCH_BUDGET_S BENCH_TOKENS BENCH_DENSE_TOKENS BENCH_TF_TOKENS \
           BENCH_REPEATS BENCH_TF_REPEATS BENCH_ARGS BENCH_TF_ARGS; do
  if [ -n "${!var+x}" ]; then command_line="$var=${!var} $command_line"; fi
done

if [ ! -x "$BENCH" ]; then
  echo "run_prefill_bench: no executable $BENCH (build the prefill_bench target, or set" \
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
budget_notes=()

# What was measured, where and when.
# shellcheck source=tests/bench/bench_env.sh
. "$script_dir/bench_env.sh"
print_bench_header prefill
free -g 2>/dev/null | head -n 2 || true

# The pattern config must be the mix it claims to be.
[ -n "${BENCH_PATTERNS:-}" ] || "$PYTHON" "$script_dir/configs/make_vs_mix.py" --check "$PATTERNS" ||
  echo "run_prefill_bench: WARNING: $PATTERNS is not the documented mix (see make_vs_mix.py)"

# run_step NAME LIMIT_S OUT_JSONL BENCH_NAME MODE TOKENS -- COMMAND...
# Runs COMMAND (which appends rows to OUT_JSONL) under a hard limit of LIMIT_S seconds, its
# stderr shown as it comes; lengths of MODE it printed no row for become error rows carrying
# its exit status and last message.
run_step() {
  local name=$1 limit=$2 out=$3 bench=$4 mode=$5 tokens=$6
  shift 7
  local err="$tmp/$name.err"
  : >"$err"
  echo "== $name (limit ${limit} s): $*"
  timeout -k 10 "$limit" "$@" 2> >(tee "$err" >&2) >/dev/null
  local rc=$?
  sleep 0.2  # let tee finish
  if [ "$rc" -ne 0 ]; then
    local killed=""
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then killed=" (killed at its ${limit} s limit)"; fi
    echo "run_prefill_bench: $name exited with status $rc$killed"
  fi
  local why
  # shellcheck disable=SC1003  # tr deletes quotes and backslashes from the message
  why=$(grep -v '^ *$' "$err" | tail -n 1 | tr -d '"\\' | tr '\t' ' ' | cut -c1-300)
  "$PYTHON" "$script_dir/format_prefill.py" --fill-missing "$out" --bench "$bench" \
    --mode "$mode" --tokens "$tokens" --status error \
    --why "$name exited with status $rc before this row: $why"
}

skipped_files=" "
skip_step() {  # skip_step OUT BENCH MODE TOKENS WHY
  "$PYTHON" "$script_dir/format_prefill.py" --fill-missing "$1" --bench "$2" --mode "$3" \
    --tokens "$4" --status skipped --why "$5"
  budget_notes+=("$3 not run: $5")
  skipped_files="$skipped_files$1 "
}

# Each step's limit: what is left minus a reserve for the steps after it (seconds).
RESERVE_DENSE=80
RESERVE_TF=$([ -n "$TF_TOKENS" ] && echo 120 || echo 0)
RESERVE_FORMAT=10

# 1. Our sparse path at every length.
limit=$(( $(remaining) - RESERVE_DENSE - RESERVE_TF - RESERVE_FORMAT ))
if [ "$limit" -ge 60 ]; then
  # shellcheck disable=SC2086  # EXTRA_ARGS is a list of flags
  run_step prefill_bench_sparse "$limit" "$tmp/sparse.jsonl" sparsefill_prefill sparse \
    "$SPARSE_TOKENS" -- "$BENCH" --modes sparse --tokens "$SPARSE_TOKENS" --repeats "$REPEATS" \
    --patterns "$PATTERNS" --max-seconds $(( limit - 20 )) --json "$tmp/sparse.jsonl" $EXTRA_ARGS
else
  skip_step "$tmp/sparse.jsonl" sparsefill_prefill sparse "$SPARSE_TOKENS" \
    "only ${limit} s of BENCH_BUDGET_S=$BUDGET_S left for it"
fi

# 2. Our dense path where it runs in seconds (the formatter extrapolates the rest).
limit=$(( $(remaining) - RESERVE_TF - RESERVE_FORMAT ))
if [ -z "$DENSE_TOKENS" ]; then
  budget_notes+=("our dense path not run (BENCH_DENSE_TOKENS empty)")
elif [ "$limit" -ge 40 ]; then
  # shellcheck disable=SC2086
  run_step prefill_bench_dense "$limit" "$tmp/dense.jsonl" sparsefill_prefill dense \
    "$DENSE_TOKENS" -- "$BENCH" --modes dense --tokens "$DENSE_TOKENS" --repeats "$REPEATS" \
    --dense-max-tokens "$dense_max" --max-seconds $(( limit - 20 )) --json "$tmp/dense.jsonl" \
    $EXTRA_ARGS
else
  skip_step "$tmp/dense.jsonl" sparsefill_prefill dense "$DENSE_TOKENS" \
    "only ${limit} s of BENCH_BUDGET_S=$BUDGET_S left for it"
fi

# 3. The transformers baseline.
limit=$(( $(remaining) - RESERVE_FORMAT ))
if [ -z "$TF_TOKENS" ]; then
  budget_notes+=("transformers baseline not run (BENCH_TF_TOKENS empty)")
elif [ "$limit" -ge 60 ]; then
  # shellcheck disable=SC2086  # TF_EXTRA_ARGS is a list of flags
  run_step transformers_baseline "$limit" "$tmp/tf.jsonl" \
    transformers_baseline transformers_sdpa_cudnn "$TF_TOKENS" -- \
    "$PYTHON" "$script_dir/transformers_baseline.py" --tokens "$TF_TOKENS" \
    --repeats "$TF_REPEATS" --max-seconds $(( limit - 20 )) --json "$tmp/tf.jsonl" $TF_EXTRA_ARGS
else
  skip_step "$tmp/tf.jsonl" transformers_baseline transformers_sdpa_cudnn "$TF_TOKENS" \
    "only ${limit} s of BENCH_BUDGET_S=$BUDGET_S left for it"
fi

# Lengths a step skipped for its budget, for the header.
for f in "$tmp/sparse.jsonl" "$tmp/dense.jsonl" "$tmp/tf.jsonl"; do
  [ -s "$f" ] || continue
  case "$skipped_files" in *" $f "*) continue ;; esac
  n=$(grep -c '"status": *"\(skipped\|stopped\)"' "$f" || true)
  [ "$n" -gt 0 ] &&
    budget_notes+=("$n row(s) of $(basename "$f" .jsonl) skipped or stopped (see the rows)")
done
[ "${#budget_notes[@]}" -eq 0 ] &&
  budget_notes+=("everything asked for ran within BENCH_BUDGET_S=$BUDGET_S")

# 4. One table.
echo "== results ($(( $(date +%s) - start )) s)"
inputs=()
for f in "$tmp/tf.jsonl" "$tmp/dense.jsonl" "$tmp/sparse.jsonl"; do
  [ -s "$f" ] && inputs+=("$f")
done
if [ "${#inputs[@]}" -eq 0 ]; then
  echo "run_prefill_bench: no rows at all" >&2
  exit 1
fi
note_args=()
for n in "${budget_notes[@]}"; do note_args+=(--budget-note "$n"); done
"$PYTHON" "$script_dir/format_prefill.py" "${inputs[@]}" --out-dir "$OUT_DIR" \
  --card "$card" --driver "$driver" --commit "$commit" --command "$command_line" \
  --date "$date_day" --time "$date_time" "${note_args[@]}"
