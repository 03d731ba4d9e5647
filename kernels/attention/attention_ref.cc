#include "kernels/attention/attention_ref.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel_for.h"

namespace sparsefill::kernels {
namespace {

float DotF(const float* a, const float* b, int n) {
  // Four interleaved partial sums: vectorisable without -ffast-math, and a fixed order.
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

// softmax(scores) @ V for one query row, given the key indices behind each score.
// scores is overwritten with the probabilities.
void SoftmaxTimesV(std::vector<float>& scores, const std::vector<int64_t>& keys, const float* v,
                   int64_t v_stride, int head_dim, float* out_row) {
  std::fill(out_row, out_row + head_dim, 0.0f);
  if (keys.empty()) return;
  float max_score = -std::numeric_limits<float>::infinity();
  for (float s : scores) max_score = std::max(max_score, s);
  if (max_score == -std::numeric_limits<float>::infinity()) return;  // everything masked
  double sum = 0.0;
  for (float& s : scores) {
    s = std::exp(s - max_score);
    sum += s;
  }
  const float inv_sum = static_cast<float>(1.0 / sum);
  for (size_t j = 0; j < keys.size(); ++j) {
    const float p = scores[j] * inv_sum;
    if (p == 0.0f) continue;
    const float* vr = v + keys[j] * v_stride;
    for (int d = 0; d < head_dim; ++d) out_row[d] += p * vr[d];
  }
}

}  // namespace

void AttentionRef(const float* q, const float* k, const float* v, const AttentionShape& shape,
                  std::span<const HeadKeySet> head_sets, float* out, int64_t* computed_pairs) {
  const int64_t T = shape.tokens;
  const int D = shape.head_dim;
  const int64_t q_stride = static_cast<int64_t>(shape.q_heads) * D;
  const int64_t kv_stride = static_cast<int64_t>(shape.kv_heads) * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const HeadKeySet dense = HeadKeySet::Dense();
  std::vector<std::atomic<int64_t>> pairs(shape.q_heads);

  // Work items are (head, block of 16 queries). Causal rows grow with the query index, so the
  // items are dealt round-robin to the threads rather than in contiguous runs.
  constexpr int64_t kRowsPerItem = 16;
  const int64_t blocks_per_head = (T + kRowsPerItem - 1) / kRowsPerItem;
  const int64_t items = blocks_per_head * shape.q_heads;
  const int64_t workers = std::min<int64_t>(CpuThreadCount(), std::max<int64_t>(1, items));
  ParallelFor(0, workers, 1, [&](int64_t w0, int64_t w1) {
    std::vector<KeyRange> ranges;
    std::vector<int64_t> keys;
    std::vector<float> scores;
    for (int64_t w = w0; w < w1; ++w) {
      for (int64_t item = w; item < items; item += workers) {
        const int h = static_cast<int>(item / blocks_per_head);
        const int64_t t_begin = (item % blocks_per_head) * kRowsPerItem;
        const int64_t t_end = std::min(T, t_begin + kRowsPerItem);
        const HeadKeySet& set = head_sets.empty() ? dense : head_sets[h];
        const int g = shape.kv_head_of(h);
        const float* kh = k + g * D;
        const float* vh = v + g * D;
        int64_t local_pairs = 0;
        for (int64_t t = t_begin; t < t_end; ++t) {
          set.KeyRangesForQuery(t, &ranges);
          const int64_t window_begin =
              shape.sliding_window > 0 ? std::max<int64_t>(0, t + 1 - shape.sliding_window) : 0;
          keys.clear();
          for (const auto& [b, e] : ranges) {
            for (int64_t j = std::max(b, window_begin); j < e; ++j) keys.push_back(j);
          }
          const float* qr = q + t * q_stride + h * D;
          scores.resize(keys.size());
          for (size_t j = 0; j < keys.size(); ++j) {
            scores[j] = DotF(qr, kh + keys[j] * kv_stride, D) * scale;
          }
          SoftmaxTimesV(scores, keys, vh, kv_stride, D, out + t * q_stride + h * D);
          local_pairs += static_cast<int64_t>(keys.size());
        }
        pairs[h] += local_pairs;
      }
    }
  });
  if (computed_pairs != nullptr) {
    for (int h = 0; h < shape.q_heads; ++h) computed_pairs[h] = pairs[h].load();
  }
}

void MaskedAttentionRef(const float* q, const float* k, const float* v, const AttentionShape& shape,
                        const std::function<bool(int, int64_t, int64_t)>& allowed, float* out) {
  const int64_t T = shape.tokens;
  const int D = shape.head_dim;
  const int64_t q_stride = static_cast<int64_t>(shape.q_heads) * D;
  const int64_t kv_stride = static_cast<int64_t>(shape.kv_heads) * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float neg_inf = -std::numeric_limits<float>::infinity();
  for (int h = 0; h < shape.q_heads; ++h) {
    const int g = shape.kv_head_of(h);
    ParallelFor(0, T, 16, [&](int64_t t0, int64_t t1) {
      std::vector<int64_t> keys;
      std::vector<float> scores;
      for (int64_t t = t0; t < t1; ++t) {
        keys.resize(t + 1);
        scores.resize(t + 1);
        const float* qr = q + t * q_stride + h * D;
        for (int64_t j = 0; j <= t; ++j) {
          keys[j] = j;
          scores[j] = allowed(h, t, j) ? DotF(qr, k + j * kv_stride + g * D, D) * scale : neg_inf;
        }
        SoftmaxTimesV(scores, keys, v + g * D, kv_stride, D, out + t * q_stride + h * D);
      }
    });
  }
}

}  // namespace sparsefill::kernels
