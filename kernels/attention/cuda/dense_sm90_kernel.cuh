// The dense causal attention kernel for Hopper (sm_90a): warp-specialised, TMA + wgmma,
// FlashAttention-3's decomposition (kernel / mainloop / epilogue / tile scheduler).
//
// CTA = one (query head, 128-row query block), 384 threads:
//   warpgroup 0      producer: setmaxnreg down to 24; thread 0 issues every TMA copy
//                    (dense_sm90_mainloop.cuh DenseProducer)
//   warpgroups 1, 2  consumers: setmaxnreg up to 240; 64 query rows each, wgmma + softmax
//                    (DenseConsumer), then the epilogue (dense_sm90_epilogue.cuh)
// Shared memory (dense_sm90_config.cuh): Q, two stages of K and of V, the mbarriers.
#pragma once

#include <cstdint>

#include "kernels/attention/cuda/dense_sm90_config.cuh"
#include "kernels/attention/cuda/dense_sm90_epilogue.cuh"
#include "kernels/attention/cuda/dense_sm90_mainloop.cuh"
#include "kernels/attention/cuda/dense_sm90_params.cuh"
#include "kernels/attention/cuda/dense_sm90_scheduler.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"
#include "kernels/attention/cuda/wgmma_sm90.cuh"

namespace sparsefill::kernels::cuda {

template <int kHeadDim>
__global__ void __launch_bounds__(DenseSm90Config<kHeadDim>::kThreads, 1)
    DenseSm90Kernel(const __grid_constant__ DenseSm90Params p) {
  using Cfg = DenseSm90Config<kHeadDim>;
  using Scheduler = DenseTileScheduler<Cfg::kBlockM, Cfg::kBlockN>;

  // The swizzled tiles need 1024-byte alignment (the swizzle is a function of address bits
  // 4-9); the launch reserves 1024 spare bytes for rounding the window's start up.
  extern __shared__ uint8_t smem_raw[];
  const uint32_t raw = SharedAddress(smem_raw);
  uint8_t* smem = smem_raw + (((raw + 1023u) & ~1023u) - raw);
  const DenseSm90Smem<Cfg> sm = DenseSm90Smem<Cfg>::At(SharedAddress(smem));

  const DenseWorkTile w = Scheduler::Get(p, blockIdx.x);
  const int warpgroup = threadIdx.x / 128;
  // Inside a sparse launch, only the dense heads are ours (uniform over the CTA, before any
  // barrier).
  if (p.heads != nullptr && p.heads[w.head].kind != HeadKind::kDense) return;

  if (threadIdx.x == 0) sm.InitBarriers();
  __syncthreads();  // the last CTA-wide barrier: the roles below never meet again

  if (warpgroup == 0) {
    sm90::SetMaxRegistersDec<Cfg::kProducerRegisters>();
    if (threadIdx.x == 0) {
      DenseProducer<Cfg>(p, sm, w);
      // Off the critical path (every copy is issued): the pairs this block computed, each row
      // r seeing keys r - min(r, max_offset) .. r.
      if (p.computed_pairs != nullptr) {
        const int32_t row_end = min(w.row_begin + Cfg::kBlockM, p.tokens);
        unsigned long long pairs = 0;
        for (int32_t r = w.row_begin; r < row_end; ++r) pairs += min(r, p.max_offset) + 1ull;
        atomicAdd(p.computed_pairs + w.head, pairs);
      }
      if (p.computed_tile_pairs != nullptr) {
        atomicAdd(p.computed_tile_pairs + w.head, static_cast<unsigned long long>(w.tiles) *
                                                      Cfg::kBlockM * Cfg::kBlockN);
      }
    }
  } else {
    sm90::SetMaxRegistersInc<Cfg::kConsumerRegisters>();
    float o[kHeadDim / 2];  // O accumulators (wgmma layout), unnormalised
    float row_sum[2];
    DenseConsumer<Cfg>(p, sm, w, warpgroup - 1, o, row_sum);
    StoreOutputTile<kHeadDim, Cfg::kBlockM>(smem + Cfg::kSmemQ, p.out, p.out_row_stride, p.tokens,
                                            w.row_begin, w.head, warpgroup - 1, o, row_sum);
  }
}

}  // namespace sparsefill::kernels::cuda
