#include "kernels/attention/vertical_slash_ref.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sparsefill::kernels {

VerticalSlashScores ScoreVerticalSlashRef(const float* q, const float* k,
                                          const AttentionShape& shape, int q_head,
                                          int64_t last_queries) {
  const int64_t T = shape.tokens;
  const int D = shape.head_dim;
  const int64_t q_stride = static_cast<int64_t>(shape.q_heads) * D;
  const int64_t kv_stride = static_cast<int64_t>(shape.kv_heads) * D;
  const int g = shape.kv_head_of(q_head);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  VerticalSlashScores scores;
  scores.column.assign(T, 0.0);
  scores.diagonal.assign(T, 0.0);
  std::vector<double> p;
  for (int64_t t = std::max<int64_t>(0, T - last_queries); t < T; ++t) {
    // Causal softmax row of query t, in double: the ranking, not the speed, matters here.
    const float* qr = q + t * q_stride + q_head * D;
    p.assign(t + 1, 0.0);
    double max_s = -INFINITY;
    for (int64_t j = 0; j <= t; ++j) {
      const float* kr = k + j * kv_stride + g * D;
      double s = 0.0;
      for (int d = 0; d < D; ++d) s += static_cast<double>(qr[d]) * kr[d];
      p[j] = s * scale;
      max_s = std::max(max_s, p[j]);
    }
    double sum = 0.0;
    for (double& x : p) {
      x = std::exp(x - max_s);
      sum += x;
    }
    for (int64_t j = 0; j <= t; ++j) {
      const double prob = p[j] / sum;
      scores.column[j] += prob;
      scores.diagonal[t - j] += prob;
    }
  }
  return scores;
}

std::vector<int64_t> TopIndicesWithForcedPrefix(const std::vector<double>& scores, int64_t count,
                                                int64_t forced) {
  const int64_t n = static_cast<int64_t>(scores.size());
  count = std::clamp<int64_t>(count, 0, n);
  forced = std::clamp<int64_t>(forced, 0, count);
  std::vector<int64_t> order(n - forced);
  std::iota(order.begin(), order.end(), forced);
  const int64_t rest = count - forced;
  std::partial_sort(order.begin(), order.begin() + rest, order.end(), [&](int64_t a, int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::vector<int64_t> picked(count);
  std::iota(picked.begin(), picked.begin() + forced, 0);
  std::copy(order.begin(), order.begin() + rest, picked.begin() + forced);
  std::sort(picked.begin(), picked.end());
  return picked;
}

HeadKeySet EstimateVerticalSlashRef(const float* q, const float* k, const AttentionShape& shape,
                                    int q_head, const VerticalSlashParams& params) {
  const int64_t T = shape.tokens;
  const VerticalSlashScores scores =
      ScoreVerticalSlashRef(q, k, shape, q_head, params.last_queries);
  const int64_t vertical = std::min(T, std::max(params.vertical, params.min_vertical));
  const int64_t slash = std::min(T, std::max(params.slash, params.min_slash));
  HeadKeySet set;
  set.kind = HeadKeySet::Kind::kVerticalSlash;
  set.verticals = TopIndicesWithForcedPrefix(scores.column, vertical, params.forced_vertical);
  set.slashes = TopIndicesWithForcedPrefix(scores.diagonal, slash, params.forced_slash);
  return set;
}

}  // namespace sparsefill::kernels
