// Tile shapes of the attention mainloop, in one place with the reasons.
#pragma once

namespace sparsefill::kernels::cuda {

template <int kHeadDimT>
struct AttentionTileConfig {
  static constexpr int kHeadDim = kHeadDimT;
  // 64 query rows per CTA: one query block of the sparse patterns (block-sparse blocks and the
  // vertical-slash row blocks are 64 tokens), 16 rows per warp for the m16 MMA.
  static constexpr int kBlockM = 64;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  // 64 keys per tile: a block-sparse key block, and the unit a gathered vertical chunk fills.
  static constexpr int kBlockN = 64;
  // 16-byte chunks per row of Q/K/V in shared memory; rows are XOR-swizzled by chunk so that
  // ldmatrix's 8 rows at one column hit different bank groups (8 of them when rows have 8 or
  // more chunks; head_dim 32 has 4).
  static constexpr int kChunksPerRow = kHeadDim / 8;
  static constexpr int kSwizzleMask = (kChunksPerRow < 8 ? kChunksPerRow : 8) - 1;
  static constexpr int kTileElements = kBlockN * kHeadDim;
  // Shared memory: Q, then two stages of K and V, then per stage the gathered columns and their
  // row masks.
  static constexpr int kSmemQ = kBlockM * kHeadDim * 2;
  static constexpr int kSmemKV = kBlockN * kHeadDim * 2;
  static constexpr int kSmemBytes = kSmemQ + 4 * kSmemKV + 2 * kBlockN * (4 + 8);

  static_assert(kHeadDim == 32 || kHeadDim == 64 || kHeadDim == 128,
                "head_dim must be 32, 64 or 128");
  static_assert(kBlockM == kWarps * 16, "each warp owns 16 query rows");
  static_assert(kBlockN % 16 == 0 && kBlockN <= 64, "row masks are 64-bit: at most 64 rows/keys");
  static_assert(kChunksPerRow >= 4, "the swizzle needs at least 4 chunks per row");
  static_assert((kBlockN * kChunksPerRow) % kThreads == 0, "every thread copies whole chunks");
};

}  // namespace sparsefill::kernels::cuda
