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
  auto r = SearchPatterns(candidates, recall, density, /*max_cost=*/0.4);
  ASSERT_TRUE(r.ok()) << r.status();
  // Layer 0: head 0 A-shape; head 1 vertical-slash (block-sparse is over budget); head 2 a tie at
  // 0.7 goes to the lighter vertical-slash. Layer 1: head 0 vertical-slash; head 1 a three-way
  // tie goes to the lightest (block-sparse); head 2 A-shape is over budget: vertical-slash.
  EXPECT_EQ(r->choice, (std::vector<std::vector<int>>{{0, 1, 1}, {1, 2, 1}}));
  EXPECT_EQ(r->config.layer(0)[1], HeadPattern::VerticalSlash(64, 448));
  EXPECT_EQ(r->config.layer(1)[1], HeadPattern::BlockSparse(8));
  EXPECT_NEAR(r->mean_recall, (0.9 + 0.8 + 0.7 + 0.95 + 0.6 + 0.5) / 6, 1e-12);

  // Nothing fits: the lightest candidate.
  auto tight = SearchPatterns(candidates, recall, density, /*max_cost=*/0.1);
  ASSERT_TRUE(tight.ok()) << tight.status();
  EXPECT_EQ(tight->choice[0][2], 1);
  EXPECT_EQ(tight->choice[1][1], 2);
}

TEST(PatternSearchTest, AtMeanCostTakesTheLargestBudgetThatFits) {
  const std::vector<HeadPattern> candidates = {HeadPattern::AShape(64, 448),
                                               HeadPattern::VerticalSlash(64, 448)};
  // One layer of four heads; the costlier candidate always has the higher recall.
  const HeadScores recall = {{{0.5, 0.5, 0.5, 0.5}}, {{0.9, 0.8, 0.7, 0.6}}};
  const HeadScores cost = {{{0.1, 0.1, 0.1, 0.1}}, {{0.2, 0.3, 0.4, 0.5}}};
  double budget = 0;
  // Mean cost 0.26: budget 0.4 puts heads 0-2 on the costlier candidate ((0.2 + 0.3 + 0.4 +
  // 0.1) / 4 = 0.25); budget 0.5 would give 0.35.
  auto r = SearchPatternsAtMeanCost(candidates, recall, cost, cost, 0.26, &budget);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_DOUBLE_EQ(budget, 0.4);
  EXPECT_EQ(r->choice, (std::vector<std::vector<int>>{{1, 1, 1, 0}}));
  EXPECT_NEAR(r->mean_cost, 0.25, 1e-12);
  EXPECT_NEAR(MeanOfChoice(recall, r->choice), (0.9 + 0.8 + 0.7 + 0.5) / 4, 1e-12);
  EXPECT_NEAR(MeanOfChoice(recall, r->choice), r->mean_recall, 1e-12);
  // Below every head's cheapest: the smallest budget; above all: every head its best.
  ASSERT_TRUE(SearchPatternsAtMeanCost(candidates, recall, cost, cost, 0.01, &budget).ok());
  EXPECT_DOUBLE_EQ(budget, 0.1);
  auto all = SearchPatternsAtMeanCost(candidates, recall, cost, cost, 1.0, &budget);
  ASSERT_TRUE(all.ok());
  EXPECT_DOUBLE_EQ(budget, 0.5);
  EXPECT_EQ(all->choice, (std::vector<std::vector<int>>{{1, 1, 1, 1}}));
  // Budget on one score, mean on another: a density-like score that ranks the heads the other
  // way round fits heads 3 and 2 on the costlier candidate first.
  const HeadScores density = {{{0.1, 0.1, 0.1, 0.1}}, {{0.5, 0.4, 0.3, 0.2}}};
  auto other = SearchPatternsAtMeanCost(candidates, recall, density, cost, 0.26, &budget);
  ASSERT_TRUE(other.ok());
  EXPECT_DOUBLE_EQ(budget, 0.2);  // at 0.3: (0.1 + 0.1 + 0.4 + 0.5) / 4 = 0.275 > 0.26
  EXPECT_EQ(other->choice, (std::vector<std::vector<int>>{{0, 0, 0, 1}}));
}

TEST(PatternSearchTest, MismatchedScoresAreErrors) {
  const std::vector<HeadPattern> one = {HeadPattern::AShape(1, 2)};
  EXPECT_FALSE(SearchPatterns(one, {}, {}, 1.0).ok());
  EXPECT_FALSE(SearchPatterns(one, {{{0.5, 0.5}}}, {{{0.5}}}, 1.0).ok());
}

}  // namespace
}  // namespace sparsefill::accuracy
