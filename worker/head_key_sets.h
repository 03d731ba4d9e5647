// The keys each query head computes under its pattern, estimated on the CPU from the layer's
// Q and K: what the CPU backend's attention uses, and what the accuracy harness scores.
#pragma once

#include "kernels/attention/attention_shape.h"
#include "kernels/attention/head_key_set.h"
#include "worker/pattern_config.h"

namespace sparsefill::worker {

// q: [tokens, q_heads, head_dim], k: [tokens, kv_heads, head_dim], float32 (after RoPE).
// Dense and A-shape need no estimation; vertical-slash and block-sparse estimate from q and k
// as MInference does (kernels/attention/*_ref.h).
kernels::HeadKeySet EstimateHeadKeySet(const HeadPattern& pattern, const float* q, const float* k,
                                       const kernels::AttentionShape& shape, int q_head);

}  // namespace sparsefill::worker
