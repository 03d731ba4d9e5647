// The sparse attention kernel for Hopper (sm_90a): the work lists of the sparse index
// (key_tiles.cuh) on the wgmma/TMA pipeline of the dense kernel.
//
// CTA = one (query head, 64-row query block), 256 threads, two CTAs per SM:
//   warpgroup 0  consumer (setmaxnreg up): Q into registers, then wgmma S = Q K^T, mask, online
//                softmax, O += P V (sparse_sm90_mainloop.cuh SparseConsumer), then the epilogue
//   warp 4       producer (its warpgroup's setmaxnreg down): publishes each tile's meta, TMA
//                for key ranges (SparseProducer)
//   warps 5-6    for vertical-slash heads, the gather warps: cp.async copies of the vertical
//                columns' K and V rows, 32 rows each (SparseGatherer); otherwise they exit
//   warp 7       walks the block's key tiles ahead of warp 4 (SparseWalker)
#pragma once

#include <cstdint>

#include "kernels/attention/cuda/dense_sm90_epilogue.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"
#include "kernels/attention/cuda/sparse_sm90_config.cuh"
#include "kernels/attention/cuda/sparse_sm90_mainloop.cuh"
#include "kernels/attention/cuda/sparse_sm90_params.cuh"
#include "kernels/attention/cuda/wgmma_sm90.cuh"

namespace sparsefill::kernels::cuda {

template <int kHeadDim>
__global__ void __launch_bounds__(SparseSm90Config<kHeadDim>::kThreads,
                                  SparseSm90Config<kHeadDim>::kCtasPerSm)
    SparseSm90Kernel(const __grid_constant__ SparseSm90Params sp) {
  using Cfg = SparseSm90Config<kHeadDim>;
  const AttentionParams& p = sp.attn;

  extern __shared__ uint8_t smem_raw[];
  const uint32_t raw = SharedAddress(smem_raw);
  uint8_t* smem = smem_raw + (((raw + 1023u) & ~1023u) - raw);
  const SparseSm90Smem<Cfg> sm = SparseSm90Smem<Cfg>::At(SharedAddress(smem), smem);

  const SparseWorkTile w = GetSparseWorkTile(p, blockIdx.x);
  // Dense heads ran on the dense wgmma kernel (uniform over the CTA, before any barrier).
  if (p.skip_dense_heads && p.index.heads[w.head].kind == HeadKind::kDense) return;

  if (threadIdx.x == 0) sm.InitBarriers(HeadGathers(p, w.head));
  __syncthreads();  // the roles below never meet again at a CTA-wide barrier

  if (threadIdx.x >= Cfg::kConsumerThreads) {
    sm90::SetMaxRegistersDec<Cfg::kProducerRegisters>();
    // (Read again here rather than kept from above: a value live into the consumer's branch
    // costs it a register it does not have.)
    const bool gathers = HeadGathers(p, w.head);
    const int producer_warp = (threadIdx.x - Cfg::kConsumerThreads) / 32;
    if (producer_warp == 0) {
      SparseProducer<Cfg>(sp, sm, w, gathers);
    } else if (producer_warp == Cfg::kWalkerWarp) {
      SparseWalker<Cfg>(sp, sm, w);
    } else if (gathers && producer_warp <= Cfg::kGatherWarps) {
      SparseGatherer<Cfg>(sp, sm, w, producer_warp - 1);
    }
    return;
  }
  sm90::SetMaxRegistersInc<Cfg::kConsumerRegisters>();
  float o[kHeadDim / 2];
  float row_sum[2];
  unsigned long long pairs = 0;
  int tiles = 0;
  SparseConsumer<Cfg>(sp, sm, w, o, row_sum, pairs, tiles);
  // O is staged in K stage 0: every copy into it has landed and every read of it is done.
  StoreOutputTile<kHeadDim, Cfg::kBlockM>(smem + Cfg::kSmemK, p.out, p.q_row_stride, p.tokens,
                                          w.row_begin, w.head, 0, o, row_sum);
  if (p.computed_pairs != nullptr) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      pairs += __shfl_xor_sync(0xffffffffu, pairs, offset);
    }
    if (threadIdx.x % 32 == 0 && pairs != 0) atomicAdd(p.computed_pairs + w.head, pairs);
  }
  if (p.computed_tile_pairs != nullptr && threadIdx.x == 0) {
    atomicAdd(p.computed_tile_pairs + w.head,
              static_cast<unsigned long long>(tiles) * Cfg::kBlockM * Cfg::kBlockN);
  }
}

}  // namespace sparsefill::kernels::cuda
