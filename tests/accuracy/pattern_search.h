// The per-head pattern search of the method, on measured scores: given each candidate pattern's
// attention recall and cost per layer and head (averaged over calibration prompts), pick for
// every head the candidate that keeps the most attention mass within a budget. The cost is the
// GPU kernel's modeled time (kernel_cost_model.h: MInference's kernel-aware search) or the
// density (share of the causal pairs computed), as the caller scores it.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/pattern_config.h"

namespace sparsefill::accuracy {

// [candidate][layer][head]
using HeadScores = std::vector<std::vector<std::vector<double>>>;

struct SearchResult {
  worker::PatternConfig config;
  std::vector<std::vector<int>> choice;  // [layer][head] -> candidate index
  double mean_recall = 0;                // of the chosen candidates, over heads
  double mean_cost = 0;
};

// Picks per head the highest-recall candidate whose cost is at most `max_cost` (ties: the
// lower cost, then the earlier candidate); a head where none fits takes the cheapest candidate.
// Errors when the score shapes disagree with each other or with the candidates.
absl::StatusOr<SearchResult> SearchPatterns(const std::vector<worker::HeadPattern>& candidates,
                                            const HeadScores& recall, const HeadScores& cost,
                                            double max_cost);

// The search on `budget_scores` at the largest per-head budget whose result's mean of `cost`
// (over the heads' chosen candidates) is at most `mean_cost`: two searches compared at equal
// cost. The budget used goes to *budget. With no such budget, the search at the smallest one.
absl::StatusOr<SearchResult> SearchPatternsAtMeanCost(
    const std::vector<worker::HeadPattern>& candidates, const HeadScores& recall,
    const HeadScores& budget_scores, const HeadScores& cost, double mean_cost, double* budget);

// The mean over heads of `scores` for the candidate each head chose.
double MeanOfChoice(const HeadScores& scores, const std::vector<std::vector<int>>& choice);

}  // namespace sparsefill::accuracy
