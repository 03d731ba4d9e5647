// Vertical-slash scoring launches: the one place where head_dim and the heads per unit pick an
// instantiation (see index_vs_score.cuh for the kernels).
#include "kernels/attention/cuda/index_vs_score.cuh"

namespace sparsefill::kernels::cuda::index {
namespace {

template <int kHeadDim, int kSlots>
cudaError_t LaunchVsScoringFor(const VsScoreParams& p, int units, cudaStream_t stream) {
  using Cfg = VsScoreConfig<kHeadDim, kSlots>;
  // Over 48 KiB of dynamic shared memory must be allowed per kernel (set on every call: the
  // attribute is per device, and the call is cheap and legal during graph capture).
  cudaError_t err = cudaFuncSetAttribute(VsRowStatsKernel<kHeadDim, kSlots>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemPass1);
  if (err != cudaSuccess) return err;
  err = cudaFuncSetAttribute(VsScoresKernel<kHeadDim, kSlots>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemPass2);
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(p.chunks), static_cast<unsigned>(units));
  VsRowStatsKernel<kHeadDim, kSlots><<<grid, Cfg::kThreads, Cfg::kSmemPass1, stream>>>(p);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  VsRowNormKernel<kSlots><<<static_cast<unsigned>(units), kSlots * kVsRows, 0, stream>>>(p);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  VsScoresKernel<kHeadDim, kSlots><<<grid, Cfg::kThreads, Cfg::kSmemPass2, stream>>>(p);
  return cudaGetLastError();
}

template <int kHeadDim>
cudaError_t DispatchSlots(const VsScoreParams& p, int slots, int units, cudaStream_t stream) {
  switch (slots) {
    case 1:
      return LaunchVsScoringFor<kHeadDim, 1>(p, units, stream);
    case 2:
      return LaunchVsScoringFor<kHeadDim, 2>(p, units, stream);
    case 4:
      return LaunchVsScoringFor<kHeadDim, 4>(p, units, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t LaunchVsScoring(const VsScoreParams& params, int head_dim, int slots, int units,
                            cudaStream_t stream) {
  if (units <= 0 || params.chunks <= 0 || units > 65535) return cudaErrorInvalidValue;
  switch (head_dim) {
    case 64:
      return DispatchSlots<64>(params, slots, units, stream);
    case 128:
      return DispatchSlots<128>(params, slots, units, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace sparsefill::kernels::cuda::index
