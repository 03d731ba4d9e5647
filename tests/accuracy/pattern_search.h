// The per-head pattern search of the method, on measured scores: given each candidate pattern's
// attention recall and density per layer and head (averaged over calibration prompts), pick for
// every head the candidate that keeps the most attention mass within a density budget. Candidates
// of about equal compute make it MInference's kernel-aware search at that budget.
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
  double mean_density = 0;
};

// Picks per head the highest-recall candidate whose density is at most `max_density` (ties: the
// lower density, then the earlier candidate); a head where none fits takes the lowest-density
// candidate. Errors when the score shapes disagree with each other or with the candidates.
absl::StatusOr<SearchResult> SearchPatterns(const std::vector<worker::HeadPattern>& candidates,
                                            const HeadScores& recall, const HeadScores& density,
                                            double max_density);

}  // namespace sparsefill::accuracy
