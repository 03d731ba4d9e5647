#include "kernels/attention/block_sparse_ref.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace sparsefill::kernels {
namespace {

// Mean over the rows of one block of head `head` in a [tokens, heads, head_dim] tensor.
std::vector<double> PoolBlocks(const float* x, int64_t tokens, int heads, int head, int head_dim,
                               int block_size) {
  const int64_t blocks = (tokens + block_size - 1) / block_size;
  std::vector<double> pooled(blocks * head_dim, 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = x + (t * heads + head) * head_dim;
    double* dst = pooled.data() + (t / block_size) * head_dim;
    for (int d = 0; d < head_dim; ++d) dst[d] += row[d];
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t count = std::min<int64_t>(block_size, tokens - b * block_size);
    for (int d = 0; d < head_dim; ++d) pooled[b * head_dim + d] /= static_cast<double>(count);
  }
  return pooled;
}

}  // namespace

std::vector<double> PooledBlockScoresRef(const float* q, const float* k,
                                         const AttentionShape& shape, int q_head, int block_size) {
  const int D = shape.head_dim;
  const int64_t blocks = (shape.tokens + block_size - 1) / block_size;
  const std::vector<double> pq = PoolBlocks(q, shape.tokens, shape.q_heads, q_head, D, block_size);
  const std::vector<double> pk =
      PoolBlocks(k, shape.tokens, shape.kv_heads, shape.kv_head_of(q_head), D, block_size);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> scores(blocks * blocks, -std::numeric_limits<double>::infinity());
  for (int64_t bq = 0; bq < blocks; ++bq) {
    for (int64_t bk = 0; bk <= bq; ++bk) {
      double s = 0.0;
      for (int d = 0; d < D; ++d) s += pq[bq * D + d] * pk[bk * D + d];
      scores[bq * blocks + bk] = s * scale;
    }
  }
  return scores;
}

HeadKeySet EstimateBlockSparseRef(const float* q, const float* k, const AttentionShape& shape,
                                  int q_head, const BlockSparseParams& params) {
  const int64_t blocks = (shape.tokens + params.block_size - 1) / params.block_size;
  const std::vector<double> scores = PooledBlockScoresRef(q, k, shape, q_head, params.block_size);
  HeadKeySet set;
  set.kind = HeadKeySet::Kind::kBlockSparse;
  set.block_size = params.block_size;
  set.key_blocks.resize(blocks);
  std::vector<int64_t> candidates;
  for (int64_t bq = 0; bq < blocks; ++bq) {
    std::vector<int64_t>& picked = set.key_blocks[bq];
    const int64_t budget = std::clamp<int64_t>(params.top_k, std::min<int64_t>(2, bq + 1), bq + 1);
    picked.push_back(0);
    if (bq > 0) picked.push_back(bq);
    candidates.resize(std::max<int64_t>(0, bq - 1));
    std::iota(candidates.begin(), candidates.end(), 1);  // blocks 1 .. bq-1
    const int64_t rest = std::min<int64_t>(budget - static_cast<int64_t>(picked.size()),
                                           static_cast<int64_t>(candidates.size()));
    const double* row = scores.data() + bq * blocks;
    std::partial_sort(
        candidates.begin(), candidates.begin() + rest, candidates.end(),
        [&](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    picked.insert(picked.end(), candidates.begin(), candidates.begin() + rest);
    std::sort(picked.begin(), picked.end());
  }
  return set;
}

}  // namespace sparsefill::kernels
