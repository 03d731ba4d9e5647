// The shape and memory layout every attention function in kernels/attention shares.
#pragma once

#include <cstdint>

namespace sparsefill::kernels {

// Layouts (row-major, contiguous):
//   q, out: [tokens, q_heads, head_dim]
//   k, v:   [tokens, kv_heads, head_dim]
// Query head h reads KV head h / (q_heads / kv_heads) (GQA; MHA when the counts are equal).
// Attention is causal: query t sees keys 0..t; softmax scale 1/sqrt(head_dim).
struct AttentionShape {
  int64_t tokens = 0;
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  // Mistral-style sliding window: query t sees only keys > t - sliding_window. 0 = unlimited.
  int64_t sliding_window = 0;

  int group_size() const { return q_heads / kv_heads; }
  int kv_head_of(int q_head) const { return q_head / group_size(); }
};

}  // namespace sparsefill::kernels
