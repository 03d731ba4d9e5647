#include "tests/accuracy/pattern_search.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace sparsefill::accuracy {

absl::StatusOr<SearchResult> SearchPatterns(const std::vector<worker::HeadPattern>& candidates,
                                            const HeadScores& recall, const HeadScores& cost,
                                            double max_cost) {
  if (candidates.empty() || recall.size() != candidates.size() ||
      cost.size() != candidates.size()) {
    return absl::InvalidArgumentError(absl::StrCat("pattern search: ", candidates.size(),
                                                   " candidates, scores for ", recall.size(),
                                                   " and ", cost.size()));
  }
  const size_t layers = recall[0].size();
  const size_t heads = layers == 0 ? 0 : recall[0][0].size();
  for (size_t c = 0; c < candidates.size(); ++c) {
    for (const HeadScores* s : {&recall, &cost}) {
      if ((*s)[c].size() != layers) {
        return absl::InvalidArgumentError(absl::StrCat("pattern search: candidate ", c,
                                                       " has scores for ", (*s)[c].size(),
                                                       " layers, not ", layers));
      }
      for (const auto& l : (*s)[c]) {
        if (l.size() != heads) {
          return absl::InvalidArgumentError(absl::StrCat("pattern search: candidate ", c,
                                                         " has a layer of ", l.size(),
                                                         " heads, not ", heads));
        }
      }
    }
  }
  SearchResult result;
  result.choice.assign(layers, std::vector<int>(heads, 0));
  std::string json = R"({"format": "sparsefill.patterns.v1", "layers": [)";
  for (size_t l = 0; l < layers; ++l) {
    json += l == 0 ? "[" : ", [";
    for (size_t h = 0; h < heads; ++h) {
      int best = -1, lightest = 0;
      for (size_t c = 0; c < candidates.size(); ++c) {
        const double d = cost[c][l][h], r = recall[c][l][h];
        if (d < cost[lightest][l][h]) lightest = static_cast<int>(c);
        if (d > max_cost) continue;
        if (best < 0 || r > recall[best][l][h] ||
            (r == recall[best][l][h] && d < cost[best][l][h])) {
          best = static_cast<int>(c);
        }
      }
      if (best < 0) best = lightest;
      result.choice[l][h] = best;
      result.mean_recall += recall[best][l][h];
      result.mean_cost += cost[best][l][h];
      if (h > 0) json += ", ";
      json += candidates[best].ToJson().Serialize();
    }
    json += "]";
  }
  json += "]}";
  const double n = static_cast<double>(layers * heads);
  if (n > 0) {
    result.mean_recall /= n;
    result.mean_cost /= n;
  }
  absl::StatusOr<worker::PatternConfig> config =
      worker::PatternConfig::Parse(json, static_cast<int>(layers), static_cast<int>(heads));
  if (!config.ok()) return config.status();
  result.config = *std::move(config);
  return result;
}

absl::StatusOr<SearchResult> SearchPatternsAtMeanCost(
    const std::vector<worker::HeadPattern>& candidates, const HeadScores& recall,
    const HeadScores& budget_scores, const HeadScores& cost, double mean_cost, double* budget) {
  std::vector<double> budgets;  // the distinct budgets that change some head's choice
  for (const auto& layers : budget_scores) {
    for (const auto& heads : layers) budgets.insert(budgets.end(), heads.begin(), heads.end());
  }
  std::sort(budgets.begin(), budgets.end());
  budgets.erase(std::unique(budgets.begin(), budgets.end()), budgets.end());
  // From the largest down: the mean need not shrink with the budget when the two scores differ.
  for (auto it = budgets.rbegin(); it != budgets.rend(); ++it) {
    absl::StatusOr<SearchResult> r = SearchPatterns(candidates, recall, budget_scores, *it);
    if (!r.ok()) return r.status();
    if (r->choice.empty() || MeanOfChoice(cost, r->choice) <= mean_cost) {
      *budget = *it;
      return r;
    }
  }
  *budget = budgets.empty() ? 0.0 : budgets.front();
  return SearchPatterns(candidates, recall, budget_scores, *budget);
}

double MeanOfChoice(const HeadScores& scores, const std::vector<std::vector<int>>& choice) {
  double sum = 0;
  size_t n = 0;
  for (size_t l = 0; l < choice.size(); ++l) {
    for (size_t h = 0; h < choice[l].size(); ++h) {
      sum += scores[choice[l][h]][l][h];
      ++n;
    }
  }
  return n == 0 ? 0.0 : sum / static_cast<double>(n);
}

}  // namespace sparsefill::accuracy
