# Sourced by the run_*_bench.sh scripts: what was measured, where and when. Sets commit, card,
# driver, date_day, date_time (needs $repo and $PYTHON).
# SPARSEFILL_COMMIT wins: a GPU box gets a copy of the tree whose .git may be partial, where
# `git rev-parse HEAD` can print "HEAD" itself.
commit=${SPARSEFILL_COMMIT:-$(git -C "$repo" rev-parse --verify -q HEAD 2>/dev/null || true)}
if [ -n "$commit" ] && [ -z "${SPARSEFILL_COMMIT:-}" ]; then
  if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit (with uncommitted changes)"
  fi
elif [ -z "$commit" ]; then
  commit=unknown
fi
gpu_line=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
card=$(echo "$gpu_line" | cut -d, -f1 | sed 's/^ *//; s/ *$//')
driver=$(echo "$gpu_line" | cut -d, -f2 | sed 's/^ *//; s/ *$//')
if [ -z "$card" ]; then
  card=$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name())' 2>/dev/null || echo "")
fi
date_day=$(date -u +%Y-%m-%d)
date_time=$(date -u '+%Y-%m-%d %H:%M UTC')

# Prints the run's header lines and the card's state.
print_bench_header() {  # $1: benchmark name
  echo "== $1 benchmark: ${card:-unknown card}, driver ${driver:-?}, $date_time"
  echo "== commit $commit"
  echo "== command: $command_line"
  nvidia-smi --format=csv \
    --query-gpu=name,temperature.gpu,clocks.sm,clocks.max.sm,power.draw,memory.used,memory.total \
    2>/dev/null || true
}
