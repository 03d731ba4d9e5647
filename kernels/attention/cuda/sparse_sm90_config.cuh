// Tile shapes, warp roles and the shared-memory plan of the sparse wgmma kernel (sm_90a), in one
// place with the reasons. The mainloop is the dense wgmma kernel's (dense_sm90_config.cuh); what
// differs follows from the sparse work lists (key_tiles.cuh): one 64-row query block per work
// item, 64-key tiles that start anywhere (ranges) or are gathered (vertical columns).
#pragma once

#include <cstdint>

#include "kernels/attention/cuda/key_tiles.cuh"

namespace sparsefill::kernels::cuda {

// What the walking producer warp hands the publishing one (shared memory, a small ring): the
// next tile of the block and whether it is the last.
struct WalkedTile {
  KeyTile tile;
  int32_t last;  // 1: no tile follows
};

// What the producer publishes with each K tile (shared memory, per stage): the KeyTile and
// whether it is the last of the block; for a gathered tile the stage also holds its columns and
// the rows each must skip (already covered by a diagonal tile).
struct SparseTileMeta {
  KeyTile tile;
  int32_t last;         // 1: no tile follows
  int32_t full;  // 1: every row of the block computes every key of the tile (no mask); set by
                 // the producer, so the consumer's test is one shared-memory read
};

template <int kHeadDimT>
struct SparseSm90Config {
  static constexpr int kHeadDim = kHeadDimT;

  // --- Warp roles. One consumer warpgroup (threads 0-127: 64 query rows, the wgmma M) and a
  // producer warpgroup (threads 128-255): warp 0 of it publishes each tile's meta and loads key
  // ranges by TMA, warp kWalkerWarp walks the work list for it; for vertical-slash heads,
  // kGatherWarps more warps gather the vertical columns' K and V rows with cp.async (32 rows
  // each). One warp issuing a gathered tile's 2 x 1024 16-byte copies as well was the whole
  // cost of a gathered tile (ncu: the consumer waited on the data while the producer warp never
  // idled). setmaxnreg moves the producers' registers to the consumer, which holds Q as wgmma A
  // fragments (head_dim / 4 registers) besides S, O and P. Each CTA owns one query block of one head, whose work list
  // is its own: two consumer warpgroups in one CTA would need the same list. Two CTAs per SM
  // instead give the overlap FA3 gets from its two consumers (one CTA's softmax runs while the
  // other's MMAs do).
  static constexpr int kConsumerThreads = 128;
  static constexpr int kProducerThreads = 128;
  static constexpr int kThreads = kConsumerThreads + kProducerThreads;
  static constexpr int kCtasPerSm = 2;
  static constexpr int kConsumerWarps = kConsumerThreads / 32;
  static constexpr int kGatherWarps = 2;  // 32 rows of a gathered tile each
  // The last producer warp walks the work list (KeyTileCursor) into a ring of kWalkAhead tiles
  // that the publishing warp takes from: the walk's dependent reads and votes then overlap the
  // publishing (meta, TMA, barriers), which on short blocks and scattered diagonals was the
  // producer's whole time per tile while the consumer waited for K.
  static constexpr int kWalkerWarp = 3;
  static constexpr int kWalkAhead = 4;
  // 2 CTAs x 256 threads start at 128 registers; 2 x 128 x (72 + 184) = 65536 (the publishing
  // warp spills below 72; the consumer fits 184).
  static constexpr int kProducerRegisters = 72;
  static constexpr int kConsumerRegisters = 184;

  // --- Tiles. 64 query rows (a sparse query block), 64 keys per tile (a block-sparse key block,
  // and the unit a gathered chunk of vertical columns fills): S is m64n64 (32 fp32 registers).
  static constexpr int kBlockM = 64;
  static constexpr int kBlockN = 64;
  // Three stages each of K and V: the space of a Q tile goes to a third stage (Q lives in
  // registers), more time in flight for the gathered columns' latency.
  static constexpr int kStages = 3;

  // --- Shared memory, every swizzled block 1024-byte aligned (TMA box {64, 1, 64} with the
  // 128-byte swizzle; gathers write the same layout).
  static constexpr int kColumnBlocks = kHeadDim / 64;
  static constexpr int kKVBlockBytes = kBlockN * 128;
  static constexpr int kKVTileBytes = kKVBlockBytes * kColumnBlocks;
  // Per stage: SparseTileMeta, then the gathered columns (int32), covered-row masks (uint64,
  // per column) and, from the gather warps, each query row's key mask (uint64, per row).
  static constexpr int kMetaCols = 64;
  static constexpr int kMetaCovered = kMetaCols + kBlockN * 4;
  static constexpr int kMetaRowKeys = kMetaCovered + kBlockN * 8;
  static constexpr int kMetaBytes = kMetaRowKeys + kBlockM * 8;
  // No Q tile: Q is read into registers from global memory, and the epilogue stages O in K
  // stage 0 (every stage is free by then).
  static constexpr int kSmemK = 0;
  static constexpr int kSmemV = kSmemK + kStages * kKVTileBytes;
  static constexpr int kSmemMeta = kSmemV + kStages * kKVTileBytes;
  static constexpr int kWalkedBytes = 64;  // one WalkedTile, 8-byte aligned
  static constexpr int kSmemWalk = kSmemMeta + kStages * kMetaBytes;
  static constexpr int kSmemBarriers = kSmemWalk + kWalkAhead * kWalkedBytes;
  // q_full, then per stage k_full, k_empty, v_full, v_empty; then per stage gather_ready (a
  // tile's meta is out: the gather warps read it); then per walk slot walk_full, walk_empty.
  static constexpr int kBarriers = 1 + 5 * kStages + 2 * kWalkAhead;
  static constexpr int kSmemBytes = kSmemBarriers + kBarriers * 8 + 1024;  // + alignment slack

  static_assert(kHeadDim == 64 || kHeadDim == 128, "the wgmma kernels cover head_dim 64 and 128");
  static_assert(sizeof(SparseTileMeta) <= kMetaCols, "the tile record fits before the columns");
  static_assert(kBlockN == 64, "S uses m64n64k16; covered-row masks are 64-bit");
  static_assert(kBlockM == 64, "one consumer warpgroup: 64 rows");
  static_assert(kGatherWarps * 32 == kBlockN, "each gather warp copies 32 rows (a lane's key each)");
  static_assert(1 + kGatherWarps <= kProducerThreads / 32, "the gather warps are producer warps");
  static_assert(kWalkerWarp == kGatherWarps + 1 && kWalkerWarp < kProducerThreads / 32,
                "the walker is the producer warp after the gather warps");
  static_assert(sizeof(WalkedTile) <= kWalkedBytes && kWalkedBytes % 8 == 0, "walk slot size");
  static_assert(kKVTileBytes == kBlockM * kHeadDim * 2, "K stage 0 holds the output tile");
  static_assert(kSmemMeta % 8 == 0 && kMetaBytes % 8 == 0, "uint64 masks stay aligned");
  static_assert(kSmemBytes * kCtasPerSm <= 227 * 1024, "two CTAs must fit one SM");
  static_assert(kCtasPerSm * 128 * (kProducerRegisters + kConsumerRegisters) <= 65536,
                "setmaxnreg would ask for more registers than the SM has");
};

}  // namespace sparsefill::kernels::cuda
