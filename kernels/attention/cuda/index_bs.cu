// Block-sparse estimation launches: head_dim and the row-tile variant pick an instantiation
// (kernels in index_bs.cuh).
#include "kernels/attention/cuda/index_bs.cuh"

namespace sparsefill::kernels::cuda::index {
namespace {

template <int kHeadDim, int kRows, int kCap>
cudaError_t LaunchFor(const BsParams& p, cudaStream_t stream) {
  using Cfg = BsSelectConfig<kHeadDim, kRows, kCap>;
  constexpr int kSegments = kHeadDim / 8;
  const int64_t segments = static_cast<int64_t>(p.pool_entries) * kSegments;
  const dim3 pool_grid(static_cast<unsigned>(p.query_blocks),
                       static_cast<unsigned>((segments + kPoolThreads - 1) / kPoolThreads));
  BlockPoolKernel<kHeadDim><<<pool_grid, kPoolThreads, 0, stream>>>(p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  err = cudaFuncSetAttribute(BlockSelectKernel<kHeadDim, kRows, kCap>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>((p.query_blocks + kRows - 1) / kRows),
                  static_cast<unsigned>(p.bs_heads));
  BlockSelectKernel<kHeadDim, kRows, kCap><<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

// Row-tile variants: (rows per CTA, candidate keys per row).
template <int kHeadDim>
cudaError_t DispatchRows(const BsParams& p, int rows_per_cta, cudaStream_t stream) {
  switch (rows_per_cta) {
    case kBsWideRows:
      return LaunchFor<kHeadDim, kBsWideRows, kBsWideCap>(p, stream);
    case kBsNarrowRows:
      return LaunchFor<kHeadDim, kBsNarrowRows, kBsNarrowCap>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t LaunchBlockSparse(const BsParams& params, int head_dim, int rows_per_cta,
                              cudaStream_t stream) {
  if (params.bs_heads <= 0 || params.bs_heads > 65535 || params.pool_entries <= 0 ||
      params.query_blocks <= 0)
    return cudaErrorInvalidValue;
  switch (head_dim) {
    case 64:
      return DispatchRows<64>(params, rows_per_cta, stream);
    case 128:
      return DispatchRows<128>(params, rows_per_cta, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace sparsefill::kernels::cuda::index
