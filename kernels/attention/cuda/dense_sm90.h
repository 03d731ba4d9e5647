// Internal host API of the dense wgmma kernel (sm_90a), used by DenseAttention (attention.cu)
// and by the GPU tests that pin a path. Layouts and semantics as in attention.h.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "kernels/attention/cuda/attention.h"

namespace sparsefill::kernels::cuda {

// True when the wgmma kernel covers these dims and pointers: head_dim 64 or 128 (32 stays on the
// mma.sync kernel), every pointer 16-byte aligned (TMA and the 16-byte output stores). Any GQA
// ratio, length (up to 2^31 - 256) and sliding window. Host-only, no device work.
bool DenseSm90Covers(const AttentionDims& dims, const __nv_bfloat16* q, const __nv_bfloat16* k,
                     const __nv_bfloat16* v, const __nv_bfloat16* out);

// Dense causal attention with the wgmma kernel. cudaErrorNotSupported (nothing launched) when
// DenseSm90Covers is false or the driver cannot encode the TMA descriptors; else the launch's
// error. The caller checks the dims (CheckAttentionDims).
// Inside SparseAttention: `only_dense_heads` (device, [q_heads]) restricts the launch to the
// heads whose kind is kDense, and `computed_pairs` (device, [q_heads], or null) receives the
// pairs each computed, `computed_tile_pairs` the pairs of the tiles it computed.
cudaError_t DenseAttentionSm90(const AttentionDims& dims, const __nv_bfloat16* q,
                               const __nv_bfloat16* k, const __nv_bfloat16* v,
                               __nv_bfloat16* out, cudaStream_t stream,
                               const HeadDescriptor* only_dense_heads = nullptr,
                               unsigned long long* computed_pairs = nullptr,
                               unsigned long long* computed_tile_pairs = nullptr);

// The mma.sync (FlashAttention-2 style) kernel, for every head_dim: what DenseAttention runs when
// the wgmma kernel does not cover the call. Exposed so tests can compare the two.
cudaError_t DenseAttentionSm80(const AttentionDims& dims, const __nv_bfloat16* q,
                               const __nv_bfloat16* k, const __nv_bfloat16* v,
                               __nv_bfloat16* out, cudaStream_t stream);

// SparseAttention with every head, dense ones included, on the mma.sync mainloop (what it did
// before its dense heads moved to the wgmma kernel). For tests and timings only.
cudaError_t SparseAttentionSm80(const AttentionDims& dims, const SparseIndexView& index,
                                const __nv_bfloat16* q, const __nv_bfloat16* k,
                                const __nv_bfloat16* v, __nv_bfloat16* out,
                                unsigned long long* computed_pairs, cudaStream_t stream,
                                unsigned long long* computed_tile_pairs = nullptr);

}  // namespace sparsefill::kernels::cuda
