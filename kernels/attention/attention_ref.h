// CPU reference attention: float32 throughout, exact softmax (no online rescaling), GQA by
// indexing, never by copying K/V. The oracle for the CUDA kernels and the CPU backend's attention.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "kernels/attention/attention_shape.h"
#include "kernels/attention/head_key_set.h"

namespace sparsefill::kernels {

// Causal attention where query head h computes only the keys head_sets[h] selects (see
// attention_shape.h for layouts). head_sets is empty (all heads dense) or has q_heads entries.
// computed_pairs, if not null, receives q_heads counts of (query, key) pairs computed per head.
void AttentionRef(const float* q, const float* k, const float* v, const AttentionShape& shape,
                  std::span<const HeadKeySet> head_sets, float* out,
                  int64_t* computed_pairs = nullptr);

// Dense attention under an arbitrary mask: all causal scores are computed, those with
// allowed(q_head, query, key) false are set to -inf before the softmax. Slow and independent of
// HeadKeySet's range logic, which is the point: tests compare AttentionRef against it.
// A query with no allowed key gets a zero output row.
void MaskedAttentionRef(const float* q, const float* k, const float* v, const AttentionShape& shape,
                        const std::function<bool(int, int64_t, int64_t)>& allowed, float* out);

}  // namespace sparsefill::kernels
