// Host side of the sparse wgmma kernel: TMA descriptors, launch configuration, and the runtime
// head_dim -> instantiation switch.
#include "kernels/attention/cuda/sparse_sm90.h"

#include <climits>
#include <cstdint>

#include "kernels/attention/cuda/dense_sm90.h"
#include "kernels/attention/cuda/sparse_sm90_kernel.cuh"
#include "kernels/attention/cuda/tma_heads_map.h"

namespace sparsefill::kernels::cuda {
namespace {

template <int kHeadDim>
cudaError_t Launch(const SparseSm90Params& params, cudaStream_t stream) {
  using Cfg = SparseSm90Config<kHeadDim>;
  const cudaError_t configured = cudaFuncSetAttribute(
      SparseSm90Kernel<kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (configured != cudaSuccess) return configured;
  const int64_t grid = static_cast<int64_t>(params.attn.query_blocks) * params.attn.q_heads;
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  SparseSm90Kernel<kHeadDim>
      <<<static_cast<unsigned>(grid), Cfg::kThreads, Cfg::kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace

cudaError_t SparseAttentionSm90(const AttentionDims& dims, const AttentionParams& params,
                                cudaStream_t stream) {
  // The same coverage as the dense wgmma kernel (head_dim, alignment, length).
  if (!DenseSm90Covers(dims, params.q, params.k, params.v, params.out)) {
    return cudaErrorNotSupported;
  }
  SparseSm90Params sp{};
  sp.attn = params;
  constexpr int kRows = SparseSm90Config<128>::kBlockN;
  static_assert(SparseSm90Config<64>::kBlockN == kRows, "the TMA boxes are 64 rows of K and V");
  if (!EncodeHeadsMap(&sp.tma_k, params.k, dims.tokens, dims.kv_heads, dims.head_dim, kRows) ||
      !EncodeHeadsMap(&sp.tma_v, params.v, dims.tokens, dims.kv_heads, dims.head_dim, kRows)) {
    return cudaErrorNotSupported;
  }
  switch (dims.head_dim) {
    case 64:
      return Launch<64>(sp, stream);
    case 128:
      return Launch<128>(sp, stream);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace sparsefill::kernels::cuda
