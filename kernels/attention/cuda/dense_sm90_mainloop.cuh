// Mainloop of the dense wgmma kernel (sm_90a), FlashAttention-3 style: a producer thread streams
// Q once and K/V tiles through a two-stage ring with TMA; each consumer warpgroup computes
// S = Q K^T (wgmma, A and B from shared memory), the online softmax in registers, and
// O += P V (wgmma, P from registers, V read MN-major from the same tile TMA wrote).
//
// The consumer loop is skewed by one tile (FA3's intra-warpgroup overlap): iteration i issues
// S_i = Q K_i^T and then O += P_{i-1} V_{i-1}, waits for S_i only, and runs the softmax of S_i
// while the tensor cores still work on P_{i-1} V_{i-1}; then it waits for that, rescales O and
// turns S_i into P_i. Registers per consumer thread: S 64 fp32, O head_dim / 2 fp32, P 32 bf16x2.
//
// Barriers (mbarriers in shared memory; tile i uses stage i % kStages, phase (i / kStages) & 1):
//   q_full      the producer's TMA of Q landed                  (1 arrival + bytes)
//   k_full[s]   K tile landed in stage s                        (1 arrival + bytes)
//   k_empty[s]  every consumer warpgroup's S using stage s done (kConsumers arrivals)
//   v_full[s], v_empty[s]: the same for V and O += P V.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/cuda/dense_sm90_config.cuh"
#include "kernels/attention/cuda/dense_sm90_params.cuh"
#include "kernels/attention/cuda/dense_sm90_scheduler.cuh"
#include "kernels/attention/cuda/index_ptx.cuh"
#include "kernels/attention/cuda/index_wgmma.cuh"
#include "kernels/attention/cuda/kv_ring_barriers.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"
#include "kernels/attention/cuda/wgmma_attention_math.cuh"
#include "kernels/attention/cuda/wgmma_sm90.cuh"

namespace sparsefill::kernels::cuda {

// Shared-memory addresses (shared window, 1024-aligned base) of the tiles; the barriers follow
// them (kv_ring_barriers.cuh).
template <class Cfg>
struct DenseSm90Smem : KvRingBarriers<Cfg::kStages> {
  static_assert(KvRingBarriers<Cfg::kStages>::kCount == Cfg::kBarriers, "the planned barriers");
  uint32_t base;
  __device__ uint32_t q() const { return base + Cfg::kSmemQ; }  // [kColumnBlocks][kBlockM][64]
  __device__ uint32_t k(int s) const {                           // [kColumnBlocks][kBlockN][64]
    return base + Cfg::kSmemK + s * Cfg::kKVTileBytes;
  }
  __device__ uint32_t v(int s) const {  // [kColumnBlocks][kBlockN][64]
    return base + Cfg::kSmemV + s * Cfg::kKVTileBytes;
  }
  __device__ static DenseSm90Smem At(uint32_t base) {
    return DenseSm90Smem{{base + Cfg::kSmemBarriers}, base};
  }
  // Each consumer warpgroup releases a stage once.
  __device__ void InitBarriers() const {
    KvRingBarriers<Cfg::kStages>::InitBarriers(Cfg::kConsumers, Cfg::kConsumers);
  }
};

// The producer: one thread. Order K_0, then (K_i, V_{i-1}) for i >= 1, then the last V, so
// that K of the next tile is never queued behind V of the current one (S_i needs K_i first).
template <class Cfg>
__device__ void DenseProducer(const DenseSm90Params& p, const DenseSm90Smem<Cfg>& sm,
                              const DenseWorkTile& w) {
  sm90::MbarArriveExpectTx(sm.q_full(), Cfg::kQBytes);
#pragma unroll
  for (int b = 0; b < Cfg::kColumnBlocks; ++b) {
    sm90::TmaLoad3d(sm.q() + b * Cfg::kQBlockBytes, &p.tma_q, sm.q_full(), b * 64, w.head,
                    w.row_begin);
  }
  // Tile i of `map` into its stage, once the consumers released that stage's previous use.
  auto load = [&](const CUtensorMap* map, uint32_t dst_stage0, uint32_t full0, uint32_t empty0,
                  int i) {
    const int s = i % Cfg::kStages;
    const int use = i / Cfg::kStages;
    if (use > 0) sm90::MbarWait(empty0 + 8 * s, (use - 1) & 1);
    const uint32_t full = full0 + 8 * s;
    sm90::MbarArriveExpectTx(full, Cfg::kKVTileBytes);
    const int32_t key0 = (w.first_tile + i) * Cfg::kBlockN;
#pragma unroll
    for (int b = 0; b < Cfg::kColumnBlocks; ++b) {
      sm90::TmaLoad3d(dst_stage0 + s * Cfg::kKVTileBytes + b * Cfg::kKVBlockBytes, map, full,
                      b * 64, w.kv_head, key0);
    }
  };
  for (int i = 0; i < w.tiles; ++i) {
    load(&p.tma_k, sm.k(0), sm.k_full(0), sm.k_empty(0), i);
    if (i > 0) load(&p.tma_v, sm.v(0), sm.v_full(0), sm.v_empty(0), i - 1);
  }
  load(&p.tma_v, sm.v(0), sm.v_full(0), sm.v_empty(0), w.tiles - 1);
}

// One consumer warpgroup (`wg` = 0 or 1: rows row_begin + 64 wg ..+ 63). Leaves the
// unnormalised O and this thread's part of the row sums (rows 16 warp + lane / 4 + 8 h).
template <class Cfg>
__device__ void DenseConsumer(const DenseSm90Params& p, const DenseSm90Smem<Cfg>& sm,
                              const DenseWorkTile& w, int wg, float (&o)[Cfg::kHeadDim / 2],
                              float (&row_sum)[2]) {
  constexpr int kHeadDim = Cfg::kHeadDim;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kStages = Cfg::kStages;
  constexpr int kPVSteps = kBlockN / 16;   // k16 steps of O += P V
  const float kNegInf = __int_as_float(0xff800000);

  const int tid = threadIdx.x % 128;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const bool signals = tid == 0;  // the thread that releases stages for its warpgroup
  const int32_t wg_row0 = w.row_begin + 64 * wg;
  const int32_t rows[2] = {wg_row0 + 16 * warp + lane / 4, wg_row0 + 16 * warp + lane / 4 + 8};
  const float scale_log2 = p.scale_log2;

  // A = this warpgroup's 64 rows of Q (K-major); k16 slice kk lies in column block kk / 4, at
  // byte 32 (kk % 4) of each 128-byte row.
  const uint64_t q_desc = sm90::KMajorDesc(sm.q() + wg * 64 * 128);

  float row_max[2];
  float s[64];  // S tile (64 rows x 128 keys over the warpgroup), then P in fp32
  uint32_t pf[kPVSteps][4];
  ZeroConsumerState<kHeadDim, kBlockN, kPVSteps>(o, s, pf, row_max, row_sum);

  auto issue_pv = [&](int vs) { IssuePV<kHeadDim, kPVSteps, Cfg::kKVBlockBytes>(o, pf, sm.v(vs)); };

  // S_i = Q K_i^T for the tile in K stage `ks`.
  auto issue_s = [&](int ks) {
    IssueQK<kHeadDim, kPVSteps, Cfg::kQBlockBytes, Cfg::kKVBlockBytes>(s, o, pf, q_desc,
                                                                              sm.k(ks));
  };

  // Mask and online softmax of S_i (keys key0 ..+ 127): on return s holds P_i in fp32 and
  // rescale[h] the factor for what row h accumulated before.
  auto softmax = [&](int32_t key0, float (&rescale)[2]) {
    // Mask the pairs outside causality and the window, only on tiles that have some: the
    // diagonal tile(s) and, with a sliding window, the oldest ones. Keys past the prompt
    // (zero-filled by TMA) are beyond every real row, so causality masks them too.
    const bool causal_edge = key0 + kBlockN - 1 > wg_row0;
    const bool window_edge = wg_row0 + 63 - key0 > p.max_offset;
    if (causal_edge || window_edge) {
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int32_t r = rows[e >> 1];
          const int32_t key = key0 + 8 * j + 2 * (lane % 4) + (e & 1);
          if (key > r || r - key > p.max_offset) s[4 * j + e] = kNegInf;
        }
      }
    }
    OnlineSoftmax<kBlockN, false>(s, row_max, row_sum, scale_log2, rescale);
  };

  auto pack_p = [&] { PackP<kPVSteps>(s, pf); };

  // Every wait below is unconditional inside its loop body: ptxas proves the wgmma pipeline
  // safe per path, and a wait it cannot pair with its issue (say, one under `if (i > 0)` in a
  // loop that also issues under `if (i > 0)`) makes it serialise every wgmma (C7513).
  sm90::MbarWait(sm.q_full(), 0);

  // 1. Tile 0: S_0, softmax, P_0 (O is still zero: nothing to rescale).
  {
    float rescale[2];
    sm90::MbarWait(sm.k_full(0), 0);
    issue_s(0);
    index::WgmmaWait<0>();
    index::FenceOperands<0, 64>(s);
    if (signals) sm90::MbarArrive(sm.k_empty(0));
    softmax(w.first_tile * kBlockN, rescale);
    pack_p();
  }

  // 2. Tiles 1.. : issue S_i, then O += P_{i-1} V_{i-1}; softmax of S_i while P V runs.
  for (int i = 1; i < w.tiles; ++i) {
    const int ks = i % kStages;
    const int vs = (i - 1) % kStages;
    sm90::MbarWait(sm.k_full(ks), (i / kStages) & 1);
    issue_s(ks);
    sm90::MbarWait(sm.v_full(vs), ((i - 1) / kStages) & 1);
    issue_pv(vs);
    index::WgmmaCommit();
    index::WgmmaWait<1>();  // S_i done (groups complete in order); P V still running
    index::FenceOperands<0, 64>(s);
    if (signals) sm90::MbarArrive(sm.k_empty(ks));

    float rescale[2];
    softmax((w.first_tile + i) * kBlockN, rescale);

    // Wait for O += P_{i-1} V_{i-1}, release its V stage, then rescale O and write P_i.
    index::WgmmaWait<0>();
    index::FenceOperands<0, kHeadDim / 2>(o);
    sm90::FenceRegisters(pf);
    if (signals) sm90::MbarArrive(sm.v_empty(vs));
    RescaleO<kHeadDim, false>(o, rescale);
    pack_p();
  }

  // 3. The last tile's O += P V.
  const int last = w.tiles - 1;
  const int vs = last % kStages;
  sm90::MbarWait(sm.v_full(vs), (last / kStages) & 1);
  LastPV<kHeadDim, kPVSteps, Cfg::kKVBlockBytes>(o, pf, sm.v(vs));
  if (signals) sm90::MbarArrive(sm.v_empty(vs));
}

}  // namespace sparsefill::kernels::cuda
