// Tile scheduler of the dense wgmma kernel: which (query head, query block) a CTA computes and
// which key tiles that block needs. One CTA per work tile (not persistent, see the notes below).
#pragma once

#include <cstdint>

#include "kernels/attention/cuda/dense_sm90_params.cuh"

namespace sparsefill::kernels::cuda {

struct DenseWorkTile {
  int32_t head;        // query head
  int32_t kv_head;     // head / group_size
  int32_t row_begin;   // first query row of the block (a multiple of kBlockM)
  int32_t first_tile;  // first key tile (of kBlockN keys) the block needs
  int32_t tiles;       // key tiles [first_tile, first_tile + tiles), >= 1
};

template <int kBlockM, int kBlockN>
struct DenseTileScheduler {
  static int64_t GridSize(const DenseSm90Params& p) {
    return static_cast<int64_t>(p.query_blocks) * p.q_heads;
  }

  // Longest work first: the causal blocks at the end of the prompt go first, so the grid's tail
  // is short blocks. All query heads of one block are adjacent, so the heads of a GQA group
  // (adjacent heads) read the same K/V tiles at about the same time and L2 serves the repeats:
  // HBM reads each K/V tile about once per query block instead of once per query head.
  // (Persistent CTAs with this order would also overlap one tile's epilogue with the next
  // tile's first loads; not done yet.)
  __device__ static DenseWorkTile Get(const DenseSm90Params& p, uint32_t cta) {
    DenseWorkTile w;
    w.head = static_cast<int32_t>(cta % static_cast<uint32_t>(p.q_heads));
    const int32_t block =
        p.query_blocks - 1 - static_cast<int32_t>(cta / static_cast<uint32_t>(p.q_heads));
    w.kv_head = w.head / p.group_size;
    w.row_begin = block * kBlockM;
    // Keys the block's rows can see: causal up to its last row, and with a sliding window down
    // to row_begin - max_offset (max_offset = INT32_MAX: no window; no overflow, row_begin >= 0).
    const int32_t last_row = min(w.row_begin + kBlockM, p.tokens) - 1;
    const int32_t lowest_key = max(0, w.row_begin - p.max_offset);
    w.first_tile = lowest_key / kBlockN;
    w.tiles = last_row / kBlockN - w.first_tile + 1;
    return w;
  }
};

}  // namespace sparsefill::kernels::cuda
