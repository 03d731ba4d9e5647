// What one attention launch needs, passed by value to the kernel.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/sparse_index.h"

namespace sparsefill::kernels::cuda {

struct AttentionParams {
  const __nv_bfloat16* q;  // [tokens, q_heads, head_dim]
  const __nv_bfloat16* k;  // [tokens, kv_heads, head_dim]
  const __nv_bfloat16* v;  // [tokens, kv_heads, head_dim]
  __nv_bfloat16* out;      // [tokens, q_heads, head_dim]
  int32_t tokens;
  int32_t q_heads;
  int32_t group_size;       // q_heads / kv_heads
  int64_t q_row_stride;     // q_heads * head_dim elements
  int64_t kv_row_stride;    // kv_heads * head_dim elements
  int32_t max_offset;       // largest r - k a query may see: sliding_window - 1, or INT32_MAX
  float scale_log2;         // softmax scale * log2(e): scores are exponentiated with exp2
  int32_t query_blocks;     // ceil(tokens / 64)
  bool sparse;              // false: every head dense (index unused)
  bool skip_dense_heads;    // sparse: heads of kind kDense run on the wgmma kernel; CTAs exit
  SparseIndexView index;    // device pointers, when sparse
  unsigned long long* computed_pairs;  // [q_heads] counters, or null
  // [q_heads] counters of the pairs in the tiles computed, masked pairs included (the work the
  // kernel did, where computed_pairs is the work the pattern asked for), or null.
  unsigned long long* computed_tile_pairs;
};

}  // namespace sparsefill::kernels::cuda
