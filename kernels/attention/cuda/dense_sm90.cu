// Host side of the dense wgmma kernel: TMA descriptors, launch configuration, and the runtime
// head_dim -> instantiation switch.
#include "kernels/attention/cuda/dense_sm90.h"

#include <climits>
#include <cmath>
#include <cstdint>

#include "kernels/attention/cuda/dense_sm90_kernel.cuh"
#include "kernels/attention/cuda/tma_heads_map.h"

namespace sparsefill::kernels::cuda {
namespace {

template <int kHeadDim>
cudaError_t Launch(const DenseSm90Params& params, cudaStream_t stream) {
  using Cfg = DenseSm90Config<kHeadDim>;
  using Scheduler = DenseTileScheduler<Cfg::kBlockM, Cfg::kBlockN>;
  const cudaError_t configured = cudaFuncSetAttribute(
      DenseSm90Kernel<kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (configured != cudaSuccess) return configured;
  const int64_t grid = Scheduler::GridSize(params);
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  DenseSm90Kernel<kHeadDim>
      <<<static_cast<unsigned>(grid), Cfg::kThreads, Cfg::kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool DenseSm90Covers(const AttentionDims& dims, const __nv_bfloat16* q, const __nv_bfloat16* k,
                     const __nv_bfloat16* v, const __nv_bfloat16* out) {
  // The tokens bound keeps row_begin + 128 and the like inside int32 (more than any real prompt).
  return (dims.head_dim == 64 || dims.head_dim == 128) && dims.tokens <= INT32_MAX - 256 &&
         Aligned16(q) && Aligned16(k) && Aligned16(v) && Aligned16(out);
}

cudaError_t DenseAttentionSm90(const AttentionDims& dims, const __nv_bfloat16* q,
                               const __nv_bfloat16* k, const __nv_bfloat16* v,
                               __nv_bfloat16* out, cudaStream_t stream,
                               const HeadDescriptor* only_dense_heads,
                               unsigned long long* computed_pairs,
                               unsigned long long* computed_tile_pairs) {
  if (!DenseSm90Covers(dims, q, k, v, out)) return cudaErrorNotSupported;
  constexpr int kBlockM = DenseSm90Config<128>::kBlockM;
  static_assert(DenseSm90Config<64>::kBlockM == kBlockM && DenseSm90Config<64>::kBlockN == 128 &&
                    DenseSm90Config<128>::kBlockN == 128,
                "the TMA boxes below are 128 rows for Q, K and V at every head_dim");
  DenseSm90Params p{};
  if (!EncodeHeadsMap(&p.tma_q, q, dims.tokens, dims.q_heads, dims.head_dim, kBlockM) ||
      !EncodeHeadsMap(&p.tma_k, k, dims.tokens, dims.kv_heads, dims.head_dim, 128) ||
      !EncodeHeadsMap(&p.tma_v, v, dims.tokens, dims.kv_heads, dims.head_dim, 128)) {
    return cudaErrorNotSupported;
  }
  p.out = out;
  p.out_row_stride = static_cast<int64_t>(dims.q_heads) * dims.head_dim;
  p.tokens = static_cast<int32_t>(dims.tokens);
  p.q_heads = dims.q_heads;
  p.group_size = dims.q_heads / dims.kv_heads;
  p.max_offset = dims.sliding_window > 0 && dims.sliding_window <= INT32_MAX
                     ? static_cast<int32_t>(dims.sliding_window - 1)
                     : INT32_MAX;
  p.scale_log2 =
      static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(dims.head_dim)));
  p.query_blocks = static_cast<int32_t>((dims.tokens + kBlockM - 1) / kBlockM);
  p.heads = only_dense_heads;
  p.computed_pairs = computed_pairs;
  p.computed_tile_pairs = computed_tile_pairs;
  switch (dims.head_dim) {
    case 64:
      return Launch<64>(p, stream);
    case 128:
      return Launch<128>(p, stream);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace sparsefill::kernels::cuda
