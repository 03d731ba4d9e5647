// Attention recall: the fraction of a query's dense attention mass (softmax over every key it may
// see) that a sparse pattern's key set keeps. 1 for dense; the method's quality measure.
#pragma once

#include <cstdint>

#include "kernels/attention/attention_shape.h"
#include "kernels/attention/head_key_set.h"

namespace sparsefill::accuracy {

// Mean recall of `set` over the last `last_queries` queries (all when fewer) of query head
// `q_head`. q: [tokens, q_heads, head_dim], k: [tokens, kv_heads, head_dim], float32 after RoPE;
// scores q.k / sqrt(head_dim), causal, within shape.sliding_window when set.
double AttentionRecall(const float* q, const float* k, const kernels::AttentionShape& shape,
                       int q_head, const kernels::HeadKeySet& set, int64_t last_queries);

}  // namespace sparsefill::accuracy
