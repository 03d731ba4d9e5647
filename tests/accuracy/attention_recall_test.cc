// Attention recall on hand-built Q and K whose softmax is known.
#include "tests/accuracy/attention_recall.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace sparsefill::accuracy {
namespace {

// One head of dimension 1: q_t = 1, k_j = log(w_j) * sqrt(1) so query t's weights are
// w_0..w_t / sum.
struct OneHead {
  explicit OneHead(const std::vector<double>& weights)
      : q(weights.size(), 1.0f), k(weights.size()) {
    for (size_t j = 0; j < weights.size(); ++j) k[j] = static_cast<float>(std::log(weights[j]));
    shape.tokens = static_cast<int64_t>(weights.size());
    shape.q_heads = shape.kv_heads = 1;
    shape.head_dim = 1;
  }
  std::vector<float> q, k;
  kernels::AttentionShape shape;
};

TEST(AttentionRecallTest, DenseKeepsEverything) {
  OneHead h({1, 2, 3, 4, 5});
  EXPECT_NEAR(AttentionRecall(h.q.data(), h.k.data(), h.shape, 0, kernels::HeadKeySet::Dense(), 5),
              1.0, 1e-12);
}

TEST(AttentionRecallTest, AShapeKeepsSinkAndLocalMass) {
  // Weights 8, 1, 1, 1, 2, 4: the last query (t = 5) keeps key 0 (sink) and keys 4-5 (local 2):
  // (8 + 2 + 4) / 17. The one before (t = 4) keeps 0 and 3-4: (8 + 1 + 2) / 13.
  OneHead h({8, 1, 1, 1, 2, 4});
  const auto set = kernels::HeadKeySet::AShape(1, 2);
  EXPECT_NEAR(AttentionRecall(h.q.data(), h.k.data(), h.shape, 0, set, 1), 14.0 / 17.0, 1e-9);
  EXPECT_NEAR(AttentionRecall(h.q.data(), h.k.data(), h.shape, 0, set, 2),
              (14.0 / 17.0 + 11.0 / 13.0) / 2, 1e-9);
}

TEST(AttentionRecallTest, VerticalSlashAndGqaHeads) {
  // Two query heads sharing one KV head (GQA), head_dim 2: head 0 sees k . (1, 0), head 1
  // k . (0, 1); a vertical at key 1 and the diagonal keep different mass for each.
  kernels::AttentionShape shape;
  shape.tokens = 4;
  shape.q_heads = 2;
  shape.kv_heads = 1;
  shape.head_dim = 2;
  const double s = std::sqrt(2.0);  // undo the 1/sqrt(head_dim) scale
  std::vector<float> q(4 * 2 * 2, 0.0f), k(4 * 2);
  for (int t = 0; t < 4; ++t) {
    q[(t * 2 + 0) * 2 + 0] = 1.0f;
    q[(t * 2 + 1) * 2 + 1] = 1.0f;
  }
  const double w0[] = {1, 5, 1, 1}, w1[] = {2, 1, 1, 4};
  for (int j = 0; j < 4; ++j) {
    k[j * 2 + 0] = static_cast<float>(std::log(w0[j]) * s);
    k[j * 2 + 1] = static_cast<float>(std::log(w1[j]) * s);
  }
  kernels::HeadKeySet set;
  set.kind = kernels::HeadKeySet::Kind::kVerticalSlash;
  set.verticals = {1};
  set.slashes = {0};
  // Last query keeps keys 1 and 3.
  EXPECT_NEAR(AttentionRecall(q.data(), k.data(), shape, 0, set, 1), 6.0 / 8.0, 1e-6);
  EXPECT_NEAR(AttentionRecall(q.data(), k.data(), shape, 1, set, 1), 5.0 / 8.0, 1e-6);
}

}  // namespace
}  // namespace sparsefill::accuracy
