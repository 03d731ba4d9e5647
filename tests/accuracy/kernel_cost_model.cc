#include "tests/accuracy/kernel_cost_model.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace sparsefill::accuracy {
namespace {

constexpr int64_t kTile = 64;

int64_t Tiles(int64_t keys) { return keys <= 0 ? 0 : (keys + kTile - 1) / kTile; }

// A vertical-slash head's slashes as bands (runs of consecutive offsets, ascending), with the
// count of offsets in any range.
class Bands {
 public:
  explicit Bands(const std::vector<int64_t>& slashes) {
    for (int64_t s : slashes) {
      if (!bands_.empty() && bands_.back().second + 1 == s) {
        bands_.back().second = s;
      } else {
        bands_.emplace_back(s, s);
      }
    }
    cum_.push_back(0);
    for (const auto& [lo, hi] : bands_) cum_.push_back(cum_.back() + hi - lo + 1);
  }
  const std::vector<std::pair<int64_t, int64_t>>& bands() const { return bands_; }
  // Band offsets in [a, b].
  int64_t Count(int64_t a, int64_t b) const { return a > b ? 0 : UpTo(b) - UpTo(a - 1); }

 private:
  int64_t UpTo(int64_t x) const {  // band offsets <= x
    const size_t n =
        static_cast<size_t>(std::upper_bound(bands_.begin(), bands_.end(), x,
                                             [](int64_t v, const std::pair<int64_t, int64_t>& b) {
                                               return v < b.first;
                                             }) -
                            bands_.begin());
    if (n == 0) return 0;
    return cum_[n - 1] + std::min(bands_[n - 1].second, x) - bands_[n - 1].first + 1;
  }
  std::vector<std::pair<int64_t, int64_t>> bands_;  // [lo, hi]
  std::vector<int64_t> cum_;                        // offsets in bands_[0, i)
};

// Diagonal windows of one row block [r0, r_last] of a vertical-slash head: the greedy cover of
// the union of the bands' key ranges by 64-key windows, as KeyTileCursor::NextDiagonalWindow
// walks it (each window starts at the first key of the union not yet covered).
void CountDiagonalWindows(const Bands& bands, int64_t r0, int64_t r_last,
                          const KernelCostModel& model, TileCounts* out) {
  std::vector<std::pair<int64_t, int64_t>> spans;  // key ranges [begin, end)
  for (const auto& [lo, hi] : bands.bands()) {
    const int64_t begin = std::max<int64_t>(0, r0 - hi), end = r_last - lo + 1;
    if (end > begin) spans.emplace_back(begin, end);
  }
  std::sort(spans.begin(), spans.end());
  int64_t from = 0;
  for (const auto& [begin, end] : spans) {
    for (int64_t pos = std::max(from, begin); pos < end; pos += kTile) {
      // The window [pos, pos + 64) spans offsets [r0 - pos - 63, r_last - pos].
      const int64_t offsets = bands.Count(r0 - (pos + kTile - 1), r_last - pos);
      ++(offsets < model.isolated_below ? out->isolated_diagonal : out->diagonal);
      from = pos + kTile;
    }
  }
}

}  // namespace

TileCounts CountKernelTiles(const kernels::HeadKeySet& set, int64_t tokens,
                            const KernelCostModel& model) {
  TileCounts out;
  const Bands bands(set.slashes);  // empty unless vertical-slash
  for (int64_t r0 = 0; r0 < tokens; r0 += kTile) {
    const int64_t r_last = std::min(r0 + kTile, tokens) - 1;
    switch (set.kind) {
      case kernels::HeadKeySet::Kind::kDense:
        out.dense += Tiles(r_last + 1);
        break;
      case kernels::HeadKeySet::Kind::kAShape:
        out.range += Tiles(std::min(set.n_init, r_last - set.n_local + 1));
        out.range += Tiles(r_last + 1 - std::max<int64_t>(0, r0 - set.n_local + 1));
        break;
      case kernels::HeadKeySet::Kind::kVerticalSlash: {
        CountDiagonalWindows(bands, r0, r_last, model, &out);
        const auto visible =
            std::lower_bound(set.verticals.begin(), set.verticals.end(), r_last + 1) -
            set.verticals.begin();
        out.gather += Tiles(visible);
        break;
      }
      case kernels::HeadKeySet::Kind::kBlockSparse: {
        const size_t b = static_cast<size_t>(r0 / kTile);
        if (b < set.key_blocks.size()) out.block += static_cast<int64_t>(set.key_blocks[b].size());
        break;
      }
    }
  }
  return out;
}

double ModeledTileCost(const TileCounts& t, const KernelCostModel& m) {
  return m.dense * static_cast<double>(t.dense) + m.range * static_cast<double>(t.range) +
         m.diagonal * static_cast<double>(t.diagonal) +
         m.isolated_diagonal * static_cast<double>(t.isolated_diagonal) +
         m.gather * static_cast<double>(t.gather) + m.block * static_cast<double>(t.block);
}

double RelativeKernelCost(const kernels::HeadKeySet& set, int64_t tokens,
                          const KernelCostModel& model) {
  const double blocks = static_cast<double>(Tiles(tokens));
  if (blocks == 0) return 0.0;
  return ModeledTileCost(CountKernelTiles(set, tokens, model), model) / (blocks * (blocks + 1) / 2);
}

}  // namespace sparsefill::accuracy
