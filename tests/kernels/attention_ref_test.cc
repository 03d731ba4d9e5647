// Dense and sparse reference attention: against a double-precision dense oracle, against dense
// attention under each pattern's own mask, budgets that cover everything, planted patterns.
#include "kernels/attention/attention_ref.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/attention/block_sparse_ref.h"
#include "kernels/attention/head_key_set.h"
#include "kernels/attention/vertical_slash_ref.h"
#include "tests/kernels/test_util.h"

namespace sparsefill::kernels {
namespace {

using testing::AllFinite;
using testing::RandomVector;
using testing::RelativeError;

struct Inputs {
  AttentionShape shape;
  std::vector<float> q, k, v;
};

Inputs MakeInputs(int64_t tokens, int q_heads, int kv_heads, int head_dim, uint32_t seed) {
  Inputs in;
  in.shape = AttentionShape{tokens, q_heads, kv_heads, head_dim};
  in.q = RandomVector(tokens * q_heads * head_dim, seed, 1.5f);
  in.k = RandomVector(tokens * kv_heads * head_dim, seed + 1, 1.5f);
  in.v = RandomVector(tokens * kv_heads * head_dim, seed + 2);
  return in;
}

// Causal softmax attention in double precision, written from the definition.
std::vector<float> NaiveDenseAttention(const Inputs& in) {
  const auto& s = in.shape;
  std::vector<float> out(s.tokens * s.q_heads * s.head_dim);
  for (int h = 0; h < s.q_heads; ++h) {
    const int g = h / (s.q_heads / s.kv_heads);
    for (int64_t t = 0; t < s.tokens; ++t) {
      std::vector<double> p(t + 1);
      double mx = -1e300;
      for (int64_t j = 0; j <= t; ++j) {
        double dot = 0;
        for (int d = 0; d < s.head_dim; ++d) {
          dot += static_cast<double>(in.q[(t * s.q_heads + h) * s.head_dim + d]) *
                 in.k[(j * s.kv_heads + g) * s.head_dim + d];
        }
        p[j] = dot / std::sqrt(static_cast<double>(s.head_dim));
        mx = std::max(mx, p[j]);
      }
      double sum = 0;
      for (double& x : p) sum += (x = std::exp(x - mx));
      for (int d = 0; d < s.head_dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j <= t; ++j)
          acc += p[j] / sum * in.v[(j * s.kv_heads + g) * s.head_dim + d];
        out[(t * s.q_heads + h) * s.head_dim + d] = static_cast<float>(acc);
      }
    }
  }
  return out;
}

std::vector<float> RunSets(const Inputs& in, const std::vector<HeadKeySet>& sets) {
  std::vector<float> out(in.q.size());
  AttentionRef(in.q.data(), in.k.data(), in.v.data(), in.shape, sets, out.data());
  return out;
}

std::vector<float> RunMasked(const Inputs& in, const std::vector<HeadKeySet>& sets) {
  std::vector<float> out(in.q.size());
  MaskedAttentionRef(
      in.q.data(), in.k.data(), in.v.data(), in.shape,
      [&](int h, int64_t q, int64_t k) { return sets[h].Contains(q, k); }, out.data());
  return out;
}

std::vector<HeadKeySet> EstimateAll(const Inputs& in, HeadKeySet::Kind kind, int64_t a, int64_t b) {
  std::vector<HeadKeySet> sets;
  for (int h = 0; h < in.shape.q_heads; ++h) {
    switch (kind) {
      case HeadKeySet::Kind::kDense:
        sets.push_back(HeadKeySet::Dense());
        break;
      case HeadKeySet::Kind::kAShape:
        sets.push_back(HeadKeySet::AShape(a, b));
        break;
      case HeadKeySet::Kind::kVerticalSlash: {
        VerticalSlashParams p;
        p.vertical = a;
        p.slash = b;
        sets.push_back(EstimateVerticalSlashRef(in.q.data(), in.k.data(), in.shape, h, p));
        break;
      }
      case HeadKeySet::Kind::kBlockSparse: {
        BlockSparseParams p;
        p.top_k = a;
        sets.push_back(EstimateBlockSparseRef(in.q.data(), in.k.data(), in.shape, h, p));
        break;
      }
    }
  }
  return sets;
}

struct Case {
  int64_t tokens;
  int q_heads, kv_heads, head_dim;
};

// Odd, prime, tiny and shorter-than-a-block lengths; GQA ratios 1, 2, 4.
const Case kCases[] = {{1, 2, 2, 8},   {2, 4, 1, 16},   {17, 4, 4, 16}, {63, 4, 2, 32},
                       {65, 2, 1, 32}, {131, 8, 2, 16}, {257, 4, 1, 64}};

TEST(AttentionRef, DenseMatchesDoubleOracle) {
  for (const Case& c : kCases) {
    const Inputs in = MakeInputs(c.tokens, c.q_heads, c.kv_heads, c.head_dim, 100 + c.tokens);
    const auto out = RunSets(in, {});
    EXPECT_TRUE(AllFinite(out));
    EXPECT_LT(RelativeError(out, NaiveDenseAttention(in)), 2e-6) << "tokens " << c.tokens;
  }
}

TEST(AttentionRef, SparsePatternsEqualDenseUnderTheirOwnMask) {
  for (const Case& c : kCases) {
    const Inputs in = MakeInputs(c.tokens, c.q_heads, c.kv_heads, c.head_dim, 200 + c.tokens);
    struct Pattern {
      HeadKeySet::Kind kind;
      int64_t a, b;
    };
    // Budgets small enough to drop keys at these lengths.
    for (const Pattern& p : {Pattern{HeadKeySet::Kind::kAShape, 3, 9},
                             Pattern{HeadKeySet::Kind::kVerticalSlash, 31, 51},
                             Pattern{HeadKeySet::Kind::kBlockSparse, 2, 0}}) {
      const auto sets = EstimateAll(in, p.kind, p.a, p.b);
      const auto sparse = RunSets(in, sets);
      EXPECT_TRUE(AllFinite(sparse));
      EXPECT_LT(RelativeError(sparse, RunMasked(in, sets)), 1e-6)
          << "tokens " << c.tokens << " kind " << static_cast<int>(p.kind);
    }
  }
}

TEST(AttentionRef, CoveringBudgetsEqualDense) {
  const Inputs in = MakeInputs(203, 4, 2, 16, 7);
  const auto dense = RunSets(in, {});
  const int64_t T = in.shape.tokens;
  for (auto [kind, a, b] : {std::tuple{HeadKeySet::Kind::kAShape, T, T},
                            {HeadKeySet::Kind::kVerticalSlash, T, T},
                            {HeadKeySet::Kind::kBlockSparse, (T + 63) / 64, 0}}) {
    const auto sets = EstimateAll(in, kind, a, b);
    for (const auto& s : sets) EXPECT_EQ(s.CountPairs(T), T * (T + 1) / 2);
    // Same keys in the same order as dense: bit-identical.
    const auto out = RunSets(in, sets);
    EXPECT_EQ(0, std::memcmp(out.data(), dense.data(), out.size() * sizeof(float)))
        << "kind " << static_cast<int>(kind);
  }
}

TEST(HeadKeySet, RangesAreSortedDisjointAndEqualContains) {
  const Inputs in = MakeInputs(150, 2, 1, 16, 9);
  auto sets = EstimateAll(in, HeadKeySet::Kind::kVerticalSlash, 35, 55);
  auto bs = EstimateAll(in, HeadKeySet::Kind::kBlockSparse, 2, 0);
  sets.insert(sets.end(), bs.begin(), bs.end());
  sets.push_back(HeadKeySet::AShape(4, 20));
  sets.push_back(HeadKeySet::Dense());
  std::vector<KeyRange> ranges;
  for (const HeadKeySet& s : sets) {
    int64_t pairs = 0;
    for (int64_t q = 0; q < 150; ++q) {
      s.KeyRangesForQuery(q, &ranges);
      ASSERT_FALSE(ranges.empty());
      std::vector<bool> in_ranges(q + 1, false);
      int64_t prev_end = -1;
      for (const auto& [b, e] : ranges) {
        ASSERT_LT(prev_end, b) << "ranges overlap or touch";
        ASSERT_LT(b, e);
        ASSERT_LE(e, q + 1);
        for (int64_t k = b; k < e; ++k) in_ranges[k] = true;
        prev_end = e;
        pairs += e - b;
      }
      for (int64_t k = 0; k <= q; ++k) ASSERT_EQ(in_ranges[k], s.Contains(q, k)) << q << "," << k;
      EXPECT_FALSE(s.Contains(q, q + 1));
      EXPECT_TRUE(s.Contains(q, q));  // every pattern keeps the query's own key
    }
    EXPECT_EQ(pairs, s.CountPairs(150));
  }
}

TEST(VerticalSlash, PicksPlantedColumnsAndDiagonal) {
  // Every query carries a shared direction e0; planted key columns carry it strongly, so all
  // queries attend to them (verticals). Position codes u_p make query i match key i - 150 (a
  // slash at offset 150).
  const int64_t T = 501;
  const int D = 64;
  Inputs in;
  in.shape = AttentionShape{T, 1, 1, D};
  const auto codes = RandomVector((T + 200) * D, 11, 1.0f / std::sqrt(static_cast<float>(D)));
  in.q.assign(T * D, 0.0f);
  in.k.assign(T * D, 0.0f);
  in.v = RandomVector(T * D, 12);
  const std::vector<int64_t> planted_columns = {100, 257, 333};
  constexpr int64_t kPlantedOffset = 150;
  for (int64_t i = 0; i < T; ++i) {
    in.q[i * D + 0] = 3.0f;
    for (int d = 1; d < D; ++d) in.q[i * D + d] = 4.0f * codes[i * D + d];
  }
  for (int64_t j = 0; j < T; ++j) {
    for (int d = 1; d < D; ++d) in.k[j * D + d] = 4.0f * codes[(j + kPlantedOffset) * D + d];
  }
  for (int64_t c : planted_columns) in.k[c * D + 0] = 6.0f;

  VerticalSlashParams p;
  p.vertical = 33;  // 30 forced sink columns + the 3 planted ones
  p.slash = 101;    // 100 forced nearest diagonals + the planted one
  const HeadKeySet set = EstimateVerticalSlashRef(in.q.data(), in.k.data(), in.shape, 0, p);
  ASSERT_EQ(set.verticals.size(), 33u);
  for (int64_t c = 0; c < 30; ++c) EXPECT_EQ(set.verticals[c], c);
  EXPECT_EQ(std::vector<int64_t>(set.verticals.begin() + 30, set.verticals.end()), planted_columns);
  ASSERT_EQ(set.slashes.size(), 101u);
  for (int64_t s = 0; s < 100; ++s) EXPECT_EQ(set.slashes[s], s);
  EXPECT_EQ(set.slashes[100], kPlantedOffset);
}

TEST(VerticalSlash, BudgetsAreClampedToPromptLength) {
  const Inputs in = MakeInputs(20, 1, 1, 8, 13);
  VerticalSlashParams p;  // defaults 1000 / 6096 > 20 tokens
  const HeadKeySet set = EstimateVerticalSlashRef(in.q.data(), in.k.data(), in.shape, 0, p);
  EXPECT_EQ(set.verticals.size(), 20u);
  EXPECT_EQ(set.slashes.size(), 20u);
  EXPECT_EQ(set.CountPairs(20), 20 * 21 / 2);
}

TEST(BlockSparse, PicksPlantedBlocksAndAlwaysFirstAndDiagonal) {
  const int64_t T = 7 * 64 + 13;  // the last block is partial
  const int D = 32;
  Inputs in = MakeInputs(T, 1, 1, D, 14);
  for (int64_t i = 0; i < T; ++i) in.q[i * D] = 4.0f;  // pooled queries share e0
  for (int64_t j = 3 * 64; j < 4 * 64; ++j) in.k[j * D] = 5.0f;
  for (int64_t j = 5 * 64; j < 6 * 64; ++j) in.k[j * D] = 4.0f;
  BlockSparseParams p;
  p.top_k = 4;
  const HeadKeySet set = EstimateBlockSparseRef(in.q.data(), in.k.data(), in.shape, 0, p);
  ASSERT_EQ(set.key_blocks.size(), 8u);
  EXPECT_EQ(set.key_blocks[0], (std::vector<int64_t>{0}));
  EXPECT_EQ(set.key_blocks[1], (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(set.key_blocks[6], (std::vector<int64_t>{0, 3, 5, 6}));
  EXPECT_EQ(set.key_blocks[7], (std::vector<int64_t>{0, 3, 5, 7}));
  // top_k = 1 still keeps the two forced blocks.
  p.top_k = 1;
  const HeadKeySet minimal = EstimateBlockSparseRef(in.q.data(), in.k.data(), in.shape, 0, p);
  EXPECT_EQ(minimal.key_blocks[7], (std::vector<int64_t>{0, 7}));
}

TEST(AShape, SinksPlusLocalWindow) {
  const HeadKeySet s = HeadKeySet::AShape(2, 3);
  std::vector<KeyRange> r;
  s.KeyRangesForQuery(10, &r);
  EXPECT_EQ(r, (std::vector<KeyRange>{{0, 2}, {8, 11}}));
  s.KeyRangesForQuery(3, &r);
  EXPECT_EQ(r, (std::vector<KeyRange>{{0, 4}}));  // sinks and window touch: merged
}

TEST(TopIndices, ForcedPrefixThenScoresWithLowIndexTies) {
  const std::vector<double> scores = {0.0, 0.0, 5.0, 1.0, 5.0, 2.0};
  EXPECT_EQ(TopIndicesWithForcedPrefix(scores, 4, 1), (std::vector<int64_t>{0, 2, 4, 5}));
  EXPECT_EQ(TopIndicesWithForcedPrefix(scores, 2, 0), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(TopIndicesWithForcedPrefix(scores, 10, 3), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
}

TEST(AttentionRef, SlidingWindowMatchesMaskedReference) {
  Inputs in = MakeInputs(90, 2, 1, 16, 15);
  in.shape.sliding_window = 10;
  const auto out = RunSets(in, {});
  std::vector<float> ref(in.q.size());
  MaskedAttentionRef(
      in.q.data(), in.k.data(), in.v.data(), in.shape,
      [](int, int64_t q, int64_t k) { return q - k < 10; }, ref.data());
  EXPECT_LT(RelativeError(out, ref), 1e-6);
}

TEST(AttentionRef, CountsComputedPairs) {
  const Inputs in = MakeInputs(100, 2, 1, 8, 16);
  std::vector<HeadKeySet> sets = {HeadKeySet::Dense(), HeadKeySet::AShape(1, 5)};
  std::vector<float> out(in.q.size());
  int64_t pairs[2];
  AttentionRef(in.q.data(), in.k.data(), in.v.data(), in.shape, sets, out.data(), pairs);
  EXPECT_EQ(pairs[0], 100 * 101 / 2);
  EXPECT_EQ(pairs[1], sets[1].CountPairs(100));
  EXPECT_LT(pairs[1], pairs[0] / 5);
}

}  // namespace
}  // namespace sparsefill::kernels
