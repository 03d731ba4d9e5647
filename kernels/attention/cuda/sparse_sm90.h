// Internal host API of the sparse wgmma kernel (sm_90a), used by SparseAttention (attention.cu)
// and by the GPU tests that pin a path. Layouts and semantics as in attention.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "kernels/attention/cuda/attention.h"
#include "kernels/attention/cuda/attention_params.cuh"

namespace sparsefill::kernels::cuda {

// Runs `params` (a checked sparse launch, as the mma.sync kernel takes it) on the wgmma kernel.
// cudaErrorNotSupported (nothing launched) when it does not cover the call: head_dim other than
// 64/128, pointers not 16-byte aligned, or a driver without TMA descriptors.
cudaError_t SparseAttentionSm90(const AttentionDims& dims, const AttentionParams& params,
                                cudaStream_t stream);

}  // namespace sparsefill::kernels::cuda
