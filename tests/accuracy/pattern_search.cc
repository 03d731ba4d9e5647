#include "tests/accuracy/pattern_search.h"

#include "absl/strings/str_cat.h"

namespace sparsefill::accuracy {

absl::StatusOr<SearchResult> SearchPatterns(const std::vector<worker::HeadPattern>& candidates,
                                            const HeadScores& recall, const HeadScores& density,
                                            double max_density) {
  if (candidates.empty() || recall.size() != candidates.size() ||
      density.size() != candidates.size()) {
    return absl::InvalidArgumentError(absl::StrCat("pattern search: ", candidates.size(),
                                                   " candidates, scores for ", recall.size(),
                                                   " and ", density.size()));
  }
  const size_t layers = recall[0].size();
  const size_t heads = layers == 0 ? 0 : recall[0][0].size();
  for (size_t c = 0; c < candidates.size(); ++c) {
    for (const HeadScores* s : {&recall, &density}) {
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
        const double d = density[c][l][h], r = recall[c][l][h];
        if (d < density[lightest][l][h]) lightest = static_cast<int>(c);
        if (d > max_density) continue;
        if (best < 0 || r > recall[best][l][h] ||
            (r == recall[best][l][h] && d < density[best][l][h])) {
          best = static_cast<int>(c);
        }
      }
      if (best < 0) best = lightest;
      result.choice[l][h] = best;
      result.mean_recall += recall[best][l][h];
      result.mean_density += density[best][l][h];
      if (h > 0) json += ", ";
      json += candidates[best].ToJson().Serialize();
    }
    json += "]";
  }
  json += "]}";
  const double n = static_cast<double>(layers * heads);
  if (n > 0) {
    result.mean_recall /= n;
    result.mean_density /= n;
  }
  absl::StatusOr<worker::PatternConfig> config =
      worker::PatternConfig::Parse(json, static_cast<int>(layers), static_cast<int>(heads));
  if (!config.ok()) return config.status();
  result.config = *std::move(config);
  return result;
}

}  // namespace sparsefill::accuracy
