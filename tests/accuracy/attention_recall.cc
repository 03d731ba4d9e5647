#include "tests/accuracy/attention_recall.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace sparsefill::accuracy {

double AttentionRecall(const float* q, const float* k, const kernels::AttentionShape& shape,
                       int q_head, const kernels::HeadKeySet& set, int64_t last_queries) {
  const int64_t T = shape.tokens;
  const int d = shape.head_dim;
  const int kv_head = shape.kv_head_of(q_head);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const int64_t first = std::max<int64_t>(0, T - last_queries);
  std::vector<double> scores;
  std::vector<kernels::KeyRange> ranges;
  double total = 0;
  for (int64_t t = first; t < T; ++t) {
    const float* qt = q + (t * shape.q_heads + q_head) * d;
    const int64_t k0 =
        shape.sliding_window > 0 ? std::max<int64_t>(0, t + 1 - shape.sliding_window) : 0;
    // Softmax over the keys the query may see, in double.
    scores.assign(static_cast<size_t>(t + 1 - k0), 0.0);
    double max_score = -INFINITY;
    for (int64_t j = k0; j <= t; ++j) {
      const float* kj = k + (j * shape.kv_heads + kv_head) * d;
      double dot = 0;
      for (int i = 0; i < d; ++i) dot += static_cast<double>(qt[i]) * kj[i];
      scores[j - k0] = dot * scale;
      max_score = std::max(max_score, scores[j - k0]);
    }
    double sum = 0;
    for (double& s : scores) {
      s = std::exp(s - max_score);
      sum += s;
    }
    // Mass on the kept keys.
    set.KeyRangesForQuery(t, &ranges);
    double kept = 0;
    for (const auto& [b, e] : ranges) {
      for (int64_t j = std::max(b, k0); j < e; ++j) kept += scores[j - k0];
    }
    total += kept / sum;
  }
  return T > first ? total / static_cast<double>(T - first) : 1.0;
}

}  // namespace sparsefill::accuracy
