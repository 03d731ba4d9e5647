// The sparse index format against the CPU references' key sets: converting HeadKeySets and
// reading the index back with the kernel's masking rules gives exactly the same pairs.
#include <vector>

#include <gtest/gtest.h>

#include "kernels/attention/block_sparse_ref.h"
#include "kernels/attention/head_key_set.h"
#include "kernels/attention/sparse_index.h"
#include "kernels/attention/vertical_slash_ref.h"
#include "tests/kernels/test_util.h"

namespace sparsefill::kernels {
namespace {

TEST(SparseIndex, EqualsHeadKeySetsForEveryPattern) {
  for (int64_t tokens : {1, 5, 64, 65, 200, 331}) {
    const AttentionShape shape{tokens, 6, 2, 16};
    const auto q = testing::RandomVector(tokens * 6 * 16, 1 + tokens, 2.0f);
    const auto k = testing::RandomVector(tokens * 2 * 16, 2 + tokens, 2.0f);
    std::vector<HeadKeySet> sets;
    sets.push_back(HeadKeySet::Dense());
    sets.push_back(HeadKeySet::AShape(3, 17));
    VerticalSlashParams vs;
    vs.vertical = 35;
    vs.slash = 60;
    vs.forced_slash = 10;  // leave room for scattered diagonals: several bands
    sets.push_back(EstimateVerticalSlashRef(q.data(), k.data(), shape, 2, vs));
    sets.push_back(EstimateVerticalSlashRef(q.data(), k.data(), shape, 3, vs));
    BlockSparseParams bs;
    bs.top_k = 3;
    sets.push_back(EstimateBlockSparseRef(q.data(), k.data(), shape, 4, bs));
    sets.push_back(HeadKeySet::AShape(0, 1));
    const HostSparseIndex index = BuildHostSparseIndex(sets, tokens);
    ASSERT_EQ(index.heads.size(), sets.size());
    for (int h = 0; h < static_cast<int>(sets.size()); ++h) {
      for (int64_t r = 0; r < tokens; ++r) {
        for (int64_t c = 0; c <= r + 1 && c < tokens; ++c) {
          ASSERT_EQ(SparseIndexContains(index.view(), h, tokens, r, c), sets[h].Contains(r, c))
              << "tokens " << tokens << " head " << h << " (" << r << ", " << c << ")";
        }
      }
    }
    // Bands are sorted, disjoint and not adjacent.
    for (const HeadDescriptor& d : index.heads) {
      for (int32_t i = 1; i < d.band_count; ++i) {
        EXPECT_GT(index.bands[d.band_begin + i].lo, index.bands[d.band_begin + i - 1].hi + 1);
      }
    }
  }
}

TEST(SparseIndex, ScatteredSlashesBecomeSeparateBands) {
  HeadKeySet set;
  set.kind = HeadKeySet::Kind::kVerticalSlash;
  set.verticals = {0, 7};
  set.slashes = {0, 1, 2, 9, 20, 21};
  const HostSparseIndex index = BuildHostSparseIndex({set}, 100);
  ASSERT_EQ(index.heads[0].band_count, 3);
  EXPECT_EQ(index.bands[0].lo, 0);
  EXPECT_EQ(index.bands[0].hi, 2);
  EXPECT_EQ(index.bands[1].lo, 9);
  EXPECT_EQ(index.bands[1].hi, 9);
  EXPECT_EQ(index.bands[2].lo, 20);
  EXPECT_EQ(index.bands[2].hi, 21);
  EXPECT_EQ(index.heads[0].vertical_count, 2);
}

}  // namespace
}  // namespace sparsefill::kernels
