// What one launch of the dense wgmma kernel needs, passed by value as a __grid_constant__
// parameter (the TMA descriptors must live in parameter, constant or global memory; the
// parameter space is the one FlashAttention-3 and CUTLASS use).
#pragma once

#include <cuda.h>  // CUtensorMap
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/sparse_index.h"

namespace sparsefill::kernels::cuda {

struct DenseSm90Params {
  // 3-D maps over [tokens][heads][head_dim] (innermost last here, first in the map), bf16,
  // boxes of {64 columns, 1 head, 128 rows}, 128-byte swizzle, zero fill past the last token.
  CUtensorMap tma_q;  // q [tokens, q_heads, head_dim]
  CUtensorMap tma_k;  // k [tokens, kv_heads, head_dim]
  CUtensorMap tma_v;  // v [tokens, kv_heads, head_dim]
  __nv_bfloat16* out;     // [tokens, q_heads, head_dim]
  int64_t out_row_stride;  // q_heads * head_dim elements
  int32_t tokens;
  int32_t q_heads;
  int32_t group_size;    // q_heads / kv_heads: query head h reads KV head h / group_size
  int32_t max_offset;    // largest r - k a query may see: sliding_window - 1, or INT32_MAX
  float scale_log2;      // softmax scale * log2(e): scores are exponentiated with exp2
  int32_t query_blocks;  // ceil(tokens / kBlockM)
  // Inside SparseAttention: the layer's [q_heads] head descriptors; CTAs of heads whose kind is
  // not kDense exit at once (the sparse kernel computes those). Null for DenseAttention.
  const HeadDescriptor* heads;
  unsigned long long* computed_pairs;  // [q_heads] counters to add the pairs computed to, or null
  unsigned long long* computed_tile_pairs;  // [q_heads]: pairs of the tiles computed, or null
};

}  // namespace sparsefill::kernels::cuda
