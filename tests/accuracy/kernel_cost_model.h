// A cost model of the GPU sparse attention kernel (kernels/attention/cuda/key_tiles.cuh), for the
// kernel-aware pattern search: a head's work is counted in 64-key tiles per 64-row query block,
// by the kind of tile the kernel's cursor walks, and each kind is weighed by its measured cost on
// an H100 relative to a contiguous range tile (an A-shape tile).
//
// Tiles per 64-row block [r0, r0 + 64), as KeyTileCursor walks them (no sliding window):
//   dense           ceil((r0 + 64) / 64) tiles of the dense kernel
//   a_shape         sinks [0, min(n_init, r0 + 64 - n_local)) and the local range
//                   [max(0, r0 - n_local + 1), r0 + 64), each ceil(len / 64) range tiles
//   vertical_slash  diagonal windows: a greedy cover of the union of the bands' key ranges
//                   [r0 - hi, r0 + 63 - lo] by 64-key windows (each window masks the <= 127
//                   offsets it spans); a window with fewer than `isolated_below` band offsets in
//                   its span is an isolated-diagonal window; plus ceil(visible verticals / 64)
//                   gathered tiles (columns < r0 + 64)
//   block_sparse    one tile per listed key block
#pragma once

#include <cstdint>

#include "kernels/attention/head_key_set.h"

namespace sparsefill::accuracy {

struct TileCounts {
  int64_t dense = 0;              // tiles of the dense kernel
  int64_t range = 0;              // A-shape sink and local tiles
  int64_t diagonal = 0;           // vertical-slash windows over a band
  int64_t isolated_diagonal = 0;  // vertical-slash windows over a few scattered diagonals
  int64_t gather = 0;             // vertical-slash gathered column tiles
  int64_t block = 0;              // block-sparse key blocks
};

// Cost per tile kind in A-shape tiles. Fitted to the H100 run of the kernel at ed1835d (per-row
// key masks; 32 query / 8 KV heads, head_dim 128, 128K tokens,
// tests/bench/results/attention-2026-11-26-H100-ed1835d.md), with the tile counts of this model:
// A-shape (128, 3968) 18.09 ms for 4.19M tiles = 4.32 ns per tile, the unit. (At ddba74b, before
// the per-row masks, an isolated window cost 2.29 units and a gathered tile 1.45.)
struct KernelCostModel {
  // The dense kernel: 221.5 ms for 67.1M causal tiles = 0.76 units (635 vs 486 TFLOP/s).
  double dense = 0.76;
  double range = 1.0;
  // Band windows run at A-shape speed.
  double diagonal = 1.0;
  // Isolated diagonals: vs_scatter_v100_s800 - vs_band_v100_s800 = 110.7 ms for 22.9M (head,
  // row block, visible isolated slash) windows = 1.12 units (each masked window's K/V is its
  // own; at 512K and beyond they miss L2 and cost more).
  double isolated_diagonal = 1.12;
  // Gathered vertical columns: the least-squares fit of the vertical-slash band rows with band
  // windows at 1 unit: (3500, 100) 10.99 ms = 0.20M windows + 1.84M gathers (1.27 units alone),
  // (1000, 6096) 32.36 ms = 6.2M windows + 0.56M gathers (2.31 alone).
  double gather = 1.36;
  // Block-sparse top-100: 29.21 ms for 6.4M blocks = 1.06 units (459 vs 486 TFLOP/s).
  double block = 1.06;
  // A diagonal window spanning fewer band offsets than this counts as isolated.
  int isolated_below = 32;
};

// The tiles the kernel walks for `set` over a prompt of `tokens`.
TileCounts CountKernelTiles(const kernels::HeadKeySet& set, int64_t tokens,
                            const KernelCostModel& model = {});

// The tiles' modeled cost, in A-shape tiles.
double ModeledTileCost(const TileCounts& tiles, const KernelCostModel& model = {});

// The modeled cost relative to the causal 64 x 64 tiles of the prompt at one unit each (dense
// attention walked as range tiles = 1.0; through the dense kernel KernelCostModel::dense).
double RelativeKernelCost(const kernels::HeadKeySet& set, int64_t tokens,
                          const KernelCostModel& model = {});

}  // namespace sparsefill::accuracy
