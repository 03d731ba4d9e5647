// Tile shapes, warp roles and the shared-memory plan of the dense wgmma kernel (sm_90a), in one
// place with the reasons. FlashAttention-3's forward kernel for head_dim 64/128 is the model:
// one producer warpgroup issuing TMA, two consumer warpgroups issuing wgmma, a K/V ring in
// shared memory.
#pragma once

#include <cstdint>

namespace sparsefill::kernels::cuda {

template <int kHeadDimT>
struct DenseSm90Config {
  static constexpr int kHeadDim = kHeadDimT;

  // --- Warp roles.
  // Warpgroup 0 produces (one thread issues every TMA copy), warpgroups 1..kConsumers consume:
  // each owns 64 query rows (the wgmma M) and runs the whole softmax for them.
  static constexpr int kConsumers = 2;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  // setmaxnreg: the producer needs a handful of registers, the consumers hold S (64 fp32), O
  // (head_dim / 2 fp32), P (32 bf16x2) and the softmax state. 384 threads start at 168 each
  // (__launch_bounds__(384, 1): 65536 / 384 rounded down to 8); moving 144 from each producer
  // thread gives each consumer thread 72 more: 24 * 128 + 240 * 256 = 64512 <= 65536.
  static constexpr int kProducerRegisters = 24;
  static constexpr int kConsumerRegisters = 240;

  // --- Tiles.
  // 128 query rows per CTA: 64 per consumer warpgroup (wgmma M is 64).
  static constexpr int kBlockM = 64 * kConsumers;
  // 128 keys per tile: N = 128 for S = Q K^T (m64n128k16: twice the work per instruction of
  // n64, fewer barrier round trips per flop), and 8 k16 steps for O += P V. S costs 64 fp32
  // registers per thread.
  static constexpr int kBlockN = 128;
  // Two stages each of K and V, with separate barriers: K of tile j + 2 may load as soon as
  // S_j is done, V of tile j + 2 once O += P_j V_j is; with the consumer loop's one-tile skew
  // (S_j overlaps P_{j-1} V_{j-1}) that keeps two tiles of each in flight.
  static constexpr int kStages = 2;

  // --- Shared memory. Every tile is stored in 64-column blocks of [rows][128 B] with the
  // 128-byte swizzle (what a TMA box {64, 1, rows} writes), each block 1024-byte aligned.
  static constexpr int kColumnBlocks = kHeadDim / 64;              // 64-column blocks per row
  static constexpr int kQBlockBytes = kBlockM * 128;               // one column block of Q
  static constexpr int kKVBlockBytes = kBlockN * 128;              // one column block of K or V
  static constexpr int kQBytes = kQBlockBytes * kColumnBlocks;     // [kColumnBlocks][128][64]
  static constexpr int kKVTileBytes = kKVBlockBytes * kColumnBlocks;
  static constexpr int kSmemQ = 0;
  static constexpr int kSmemK = kSmemQ + kQBytes;                       // [kStages] tiles
  static constexpr int kSmemV = kSmemK + kStages * kKVTileBytes;        // [kStages] tiles
  static constexpr int kSmemBarriers = kSmemV + kStages * kKVTileBytes;  // uint64 mbarriers
  // q_full, then per stage k_full, k_empty, v_full, v_empty.
  static constexpr int kBarriers = 1 + 4 * kStages;
  // + 1024: the dynamic window is aligned up to 1024 bytes in the kernel.
  static constexpr int kSmemBytes = kSmemBarriers + kBarriers * 8 + 1024;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "the wgmma kernel covers head_dim 64 and 128");
  static_assert(kBlockN == 128, "S uses m64n128k16 (WgmmaSsM64N128K16)");
  static_assert(kBlockN % 16 == 0, "O += P V steps over the keys 16 at a time");
  static_assert(kBlockM == 128 && kConsumers == 2,
                "the empty barriers count kConsumers arrivals; 2 x 64 rows per CTA");
  static_assert(kKVBlockBytes % 1024 == 0 && kQBlockBytes % 1024 == 0,
                "every swizzled block starts at a 1024-byte boundary");
  static_assert((kKVBlockBytes >> 4) < (1 << 14), "the MN-major LBO (V) must fit 14 bits");
  static_assert(kSmemBytes <= 227 * 1024, "more shared memory than a Hopper CTA may have");
  static_assert(kProducerRegisters * 128 + kConsumerRegisters * 128 * kConsumers <= 65536,
                "setmaxnreg would ask for more registers than the SM has");
  static_assert(kProducerRegisters % 8 == 0 && kConsumerRegisters % 8 == 0 &&
                    kProducerRegisters >= 24 && kConsumerRegisters <= 256,
                "setmaxnreg takes multiples of 8 in [24, 256]");
};

}  // namespace sparsefill::kernels::cuda
