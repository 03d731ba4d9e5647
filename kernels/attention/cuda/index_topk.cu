// Top-k selection launches (kernels in index_topk.cuh).
#include "kernels/attention/cuda/index_topk.cuh"

namespace sparsefill::kernels::cuda::index {

cudaError_t LaunchSelect(const SelectParams& params, int ctas_per_problem,
                         HeadDescriptor* descriptors, int32_t* verticals, DiagonalBand* bands,
                         cudaStream_t stream) {
  if (params.num_problems <= 0 || params.num_problems > 65535 || ctas_per_problem <= 0)
    return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(ctas_per_problem), static_cast<unsigned>(params.num_problems));
  // Passes after a problem settles exit at once; the count is fixed so nothing waits on the host.
  for (int pass = 0; pass < kSelectPasses; ++pass) {
    RadixSelectPassKernel<<<grid, kSelectThreads, 0, stream>>>(params, pass);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  SelectFinalizeKernel<<<static_cast<unsigned>(params.num_problems), kFinalizeThreads, 0, stream>>>(
      params, descriptors, verticals, bands);
  return cudaGetLastError();
}

}  // namespace sparsefill::kernels::cuda::index
