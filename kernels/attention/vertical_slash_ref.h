// Vertical-slash pattern estimation (MInference): score the last queries against all keys, rank
// key columns (verticals) and diagonals (slashes) by the attention mass they receive, and keep the
// top ones. The result is a HeadKeySet the sparse attention computes exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/attention/attention_shape.h"
#include "kernels/attention/head_key_set.h"

namespace sparsefill::kernels {

struct VerticalSlashParams {
  int64_t vertical = 1000;  // budget of key columns
  int64_t slash = 6096;     // budget of diagonals
  // Defaults as in MInference: budgets are raised to at least min_* (and cut to the prompt
  // length); the first forced_vertical columns (attention sinks) and the forced_slash nearest
  // diagonals (the local window) are always kept, within the budget.
  int64_t min_vertical = 30;
  int64_t min_slash = 50;
  int64_t forced_vertical = 30;
  int64_t forced_slash = 100;
  int64_t last_queries = 64;  // how many of the last queries estimate the pattern
};

// Attention mass of the last queries, as the selection ranks it.
struct VerticalSlashScores {
  std::vector<double> column;    // [tokens]: sum over the last queries of P(query, key)
  std::vector<double> diagonal;  // [tokens]: index s sums P(query, query - s)
};

// Scores for query head q_head (layouts in attention_shape.h).
VerticalSlashScores ScoreVerticalSlashRef(const float* q, const float* k,
                                          const AttentionShape& shape, int q_head,
                                          int64_t last_queries);

// Selects the key set of query head q_head: top columns and top diagonals by score, forced ones
// first, ties broken towards the lower index (so selection is deterministic).
HeadKeySet EstimateVerticalSlashRef(const float* q, const float* k, const AttentionShape& shape,
                                    int q_head, const VerticalSlashParams& params);

// The top-`count` indices of `scores` with the first `forced` indices always included, returned
// sorted ascending. Ties go to the lower index. Exposed for the GPU selection tests.
std::vector<int64_t> TopIndicesWithForcedPrefix(const std::vector<double>& scores, int64_t count,
                                                int64_t forced);

}  // namespace sparsefill::kernels
