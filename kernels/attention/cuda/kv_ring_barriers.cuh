// The mbarriers of a Q tile plus a K/V ring of kStages stages, shared by the dense and the
// sparse wgmma kernels (tile i uses stage i % kStages, phase (i / kStages) & 1):
//   q_full      Q landed
//   k_full[s]   the K tile in stage s landed (and, in the sparse kernel, its meta)
//   k_empty[s]  the consumers are done with stage s's K
//   v_full[s], v_empty[s]: the same for V
#pragma once

#include <cstdint>

#include "kernels/attention/cuda/wgmma_sm90.cuh"

namespace sparsefill::kernels::cuda {

template <int kStages>
struct KvRingBarriers {
  static constexpr int kCount = 1 + 4 * kStages;  // uint64 mbarriers from bar_base

  uint32_t bar_base;  // shared-window address, 8-byte aligned
  __device__ uint32_t bar(int i) const { return bar_base + 8 * i; }
  __device__ uint32_t q_full() const { return bar(0); }
  __device__ uint32_t k_full(int s) const { return bar(1 + s); }
  __device__ uint32_t k_empty(int s) const { return bar(1 + kStages + s); }
  __device__ uint32_t v_full(int s) const { return bar(1 + 2 * kStages + s); }
  __device__ uint32_t v_empty(int s) const { return bar(1 + 3 * kStages + s); }

  // One thread, before the CTA barrier that publishes them. The full barriers take the given
  // arrivals (one with the copies' bytes, unless more threads copy); the empty ones the given
  // counts.
  __device__ void InitBarriers(uint32_t k_empty_arrivals, uint32_t v_empty_arrivals,
                               uint32_t k_full_arrivals = 1, uint32_t v_full_arrivals = 1) const {
    sm90::MbarInit(q_full(), 1);
    for (int s = 0; s < kStages; ++s) {
      sm90::MbarInit(k_full(s), k_full_arrivals);
      sm90::MbarInit(k_empty(s), k_empty_arrivals);
      sm90::MbarInit(v_full(s), v_full_arrivals);
      sm90::MbarInit(v_empty(s), v_empty_arrivals);
    }
    sm90::FenceBarrierInit();
  }
};

}  // namespace sparsefill::kernels::cuda
