// The per-head search on made-up scores: best recall within the budget, per head.
#include "tests/accuracy/pattern_search.h"

#include <gtest/gtest.h>

namespace sparsefill::accuracy {
namespace {

using worker::HeadPattern;

TEST(PatternSearchTest, PicksTheBestRecallWithinTheBudgetPerHead) {
  const std::vector<HeadPattern> candidates = {HeadPattern::AShape(64, 448),
                                               HeadPattern::VerticalSlash(64, 448),
                                               HeadPattern::BlockSparse(8)};
  // One layer of three heads, then a second layer of three.
  const HeadScores recall = {{{0.9, 0.5, 0.7}, {0.8, 0.6, 0.99}},
                             {{0.7, 0.8, 0.7}, {0.95, 0.6, 0.5}},
                             {{0.6, 0.9, 0.7}, {0.1, 0.6, 0.2}}};
  const HeadScores density = {{{0.3, 0.3, 0.3}, {0.3, 0.3, 0.9}},
                              {{0.3, 0.3, 0.2}, {0.3, 0.3, 0.3}},
                              {{0.3, 0.5, 0.4}, {0.3, 0.2, 0.3}}};
  auto r = SearchPatterns(candidates, recall, density, /*max_density=*/0.4);
  ASSERT_TRUE(r.ok()) << r.status();
  // Layer 0: head 0 A-shape; head 1 vertical-slash (block-sparse is over budget); head 2 a tie at
  // 0.7 goes to the lighter vertical-slash. Layer 1: head 0 vertical-slash; head 1 a three-way
  // tie goes to the lightest (block-sparse); head 2 A-shape is over budget: vertical-slash.
  EXPECT_EQ(r->choice, (std::vector<std::vector<int>>{{0, 1, 1}, {1, 2, 1}}));
  EXPECT_EQ(r->config.layer(0)[1], HeadPattern::VerticalSlash(64, 448));
  EXPECT_EQ(r->config.layer(1)[1], HeadPattern::BlockSparse(8));
  EXPECT_NEAR(r->mean_recall, (0.9 + 0.8 + 0.7 + 0.95 + 0.6 + 0.5) / 6, 1e-12);

  // Nothing fits: the lightest candidate.
  auto tight = SearchPatterns(candidates, recall, density, /*max_density=*/0.1);
  ASSERT_TRUE(tight.ok()) << tight.status();
  EXPECT_EQ(tight->choice[0][2], 1);
  EXPECT_EQ(tight->choice[1][1], 2);
}

TEST(PatternSearchTest, MismatchedScoresAreErrors) {
  const std::vector<HeadPattern> one = {HeadPattern::AShape(1, 2)};
  EXPECT_FALSE(SearchPatterns(one, {}, {}, 1.0).ok());
  EXPECT_FALSE(SearchPatterns(one, {{{0.5, 0.5}}}, {{{0.5}}}, 1.0).ok());
}

}  // namespace
}  // namespace sparsefill::accuracy
