#!/usr/bin/env bash
# Per-kernel profiles of BuildSparseIndex at 128K tokens (the Timing128K case; ncu, on the GPU
# box, from the directory holding the test binary). Output goes to ${OUT:-.}.
# Usage: profile_index_builder.sh [summary|detail] [test binary]
set -u
MODE=${1:-summary}
BIN=${2:-./kernels_cuda_index_builder_test}
DEST=${OUT:-.}
export SPARSEFILL_TIMING_REPS=1
FILTER=--gtest_filter=*Timing128K*
if [ "$MODE" = summary ]; then
  # Durations, DRAM bytes, SM throughput and tensor instructions of every kernel (raw CSV).
  METRICS=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed,sm__inst_executed_pipe_tensor.sum
  ncu --csv --metrics "$METRICS" "$BIN" "$FILTER" > "$DEST/ncu_summary.csv" 2> "$DEST/ncu_summary.err"
else
  # Stall reasons, pipe utilisation and memory tables of the heavy kernels (text).
  ncu -k 'regex:VsRowStats|VsScores|BlockSelect|RadixSelect' --launch-count 4 \
    --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section SchedulerStats --section Occupancy --section SpeedOfLight \
    "$BIN" "$FILTER" > "$DEST/ncu_detail.txt" 2> "$DEST/ncu_detail.err"
fi
echo "ncu exit $?"
