// Host API of the CUDA attention kernels (sm_90a). Layouts as in ../attention_shape.h:
// q, out [tokens, q_heads, head_dim]; k, v [tokens, kv_heads, head_dim]; bf16; causal; query head
// h reads KV head h / (q_heads / kv_heads) (GQA by indexing, K/V never copied).
// Every function only launches on `stream` and returns the launch's error; none synchronises.
// No gRPC/Abseil here: this header is included from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/attention/sparse_index.h"

namespace sparsefill::kernels::cuda {

struct AttentionDims {
  int64_t tokens = 0;
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int64_t sliding_window = 0;  // 0 = none; else query t sees keys > t - sliding_window
};

// cudaErrorInvalidValue unless: tokens in [1, 2^31 - 64], head_dim 32, 64 or 128, kv_heads divides
// q_heads, sliding_window >= 0. Host-only, no device work.
cudaError_t CheckAttentionDims(const AttentionDims& dims);

// Dense causal flash attention.
cudaError_t DenseAttention(const AttentionDims& dims, const __nv_bfloat16* q,
                           const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out,
                           cudaStream_t stream);

// Attention over a sparse index (device pointers; see sparse_index.h for what each head
// computes). computed_pairs, if not null, is a device array of q_heads int64 counters to which
// the kernel adds the (query, key) pairs it computed per head (zero it first);
// computed_tile_pairs likewise receives the pairs of the tiles it computed, masked pairs
// included (the kernel's work, where computed_pairs counts the pattern's).
cudaError_t SparseAttention(const AttentionDims& dims, const SparseIndexView& index,
                            const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, __nv_bfloat16* out,
                            unsigned long long* computed_pairs, cudaStream_t stream,
                            unsigned long long* computed_tile_pairs = nullptr);

}  // namespace sparsefill::kernels::cuda
