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

// Cost per tile kind in A-shape tiles. Fitted to the H100 runs in tests/bench/results/ (32 query
// / 8 KV heads, head_dim 128, 128K tokens, attention-2026-11-26-H100-f3901f8.md, with the tile
// counts of this model): A-shape (128, 3968) 18.34 ms for 4.19M tiles = 4.37 ns per tile, the unit.
// Stale for the kernel at ddba74b (two gather warps, attention-2026-11-26-H100-ddba74b.md): there
// a gathered tile costs 1.39 units ((3500, 100) row; 1.93 from the (1000, 6096) row), the dense
// kernel 0.71, a block 1.03, an isolated diagonal window 2.29. The shipped SmolLM2 config was
// searched with the constants below.
struct KernelCostModel {
  // The dense kernel: 220.2 ms for 67.1M causal tiles = 0.75 units (639 vs 472 TFLOP/s).
  double dense = 0.75;
  double range = 1.0;
  // Band windows run at A-shape speed (vertical-slash band (1000, 6096): 6.2M windows + 0.56M
  // gathers fit 37.26 ms to within 1.4% with the gather cost below).
  double diagonal = 1.0;
  // Isolated diagonals: vs_scatter_v100_s800 - vs_band_v100_s800 = 234 ms for 22.9M (head, row
  // block, visible isolated slash) windows = 2.33 units (each reads its K/V from HBM; README).
  double isolated_diagonal = 2.33;
  // Gathered vertical columns: vertical-slash band (3500, 100) 31.88 ms = 0.20M windows + 1.84M
  // gathers gives 3.85 units per gather; the (1000, 6096) row gives 4.13; on computed pairs the
  // (3500, 100) row runs at 126 TFLOP/s against A-shape's 472 (3.75x).
  double gather = 3.9;
  // Block-sparse top-100: 29.23 ms for 6.4M blocks = 1.05 units (457 vs 472 TFLOP/s).
  double block = 1.05;
  // A diagonal window spanning fewer band offsets than this counts as isolated.
  int isolated_below = 32;
};

// The tiles the kernel walks for `set` over a prompt of `tokens`.
TileCounts CountKernelTiles(const kernels::HeadKeySet& set, int64_t tokens,
                            const KernelCostModel& model = {});

// The tiles' modeled cost, in A-shape tiles.
double ModeledTileCost(const TileCounts& tiles, const KernelCostModel& model = {});

// The modeled cost relative to the causal 64 x 64 tiles of the prompt at one unit each (dense
// attention walked as range tiles = 1.0; through the dense kernel 0.75).
double RelativeKernelCost(const kernels::HeadKeySet& set, int64_t tokens,
                          const KernelCostModel& model = {});

}  // namespace sparsefill::accuracy
