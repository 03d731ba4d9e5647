#include "kernels/attention/head_key_set.h"

#include <algorithm>

namespace sparsefill::kernels {
namespace {

// Appends [b, e) to sorted ranges, merging with the last one when they touch or overlap.
// Callers append in ascending order of b.
void AppendRange(std::vector<KeyRange>* ranges, int64_t b, int64_t e) {
  if (b >= e) return;
  if (!ranges->empty() && b <= ranges->back().second) {
    ranges->back().second = std::max(ranges->back().second, e);
    return;
  }
  ranges->emplace_back(b, e);
}

}  // namespace

HeadKeySet HeadKeySet::AShape(int64_t n_init, int64_t n_local) {
  HeadKeySet set;
  set.kind = Kind::kAShape;
  set.n_init = std::max<int64_t>(0, n_init);
  set.n_local = std::max<int64_t>(1, n_local);  // a query always sees itself
  return set;
}

void HeadKeySet::KeyRangesForQuery(int64_t q, std::vector<KeyRange>* ranges) const {
  ranges->clear();
  switch (kind) {
    case Kind::kDense:
      ranges->emplace_back(0, q + 1);
      return;
    case Kind::kAShape: {
      const int64_t local_begin = std::max<int64_t>(0, q + 1 - n_local);
      AppendRange(ranges, 0, std::min(n_init, local_begin));
      AppendRange(ranges, local_begin, q + 1);
      return;
    }
    case Kind::kVerticalSlash: {
      // Slash offsets s give keys q - s: walk them from the largest offset (smallest key) down,
      // merged with the ascending verticals.
      auto v = verticals.begin();
      auto s = std::upper_bound(slashes.begin(), slashes.end(), q);  // offsets <= q only
      while (true) {
        const bool have_v = v != verticals.end() && *v <= q;
        const bool have_s = s != slashes.begin();
        if (!have_v && !have_s) break;
        const int64_t key_s = have_s ? q - *(s - 1) : INT64_MAX;
        const int64_t key_v = have_v ? *v : INT64_MAX;
        const int64_t key = std::min(key_s, key_v);
        if (key == key_v) ++v;
        if (key == key_s) --s;
        AppendRange(ranges, key, key + 1);
      }
      return;
    }
    case Kind::kBlockSparse: {
      const int64_t qb = q / block_size;
      if (qb >= static_cast<int64_t>(key_blocks.size())) return;
      for (int64_t kb : key_blocks[qb]) {
        AppendRange(ranges, kb * block_size, std::min((kb + 1) * block_size, q + 1));
      }
      return;
    }
  }
}

bool HeadKeySet::Contains(int64_t q, int64_t k) const {
  if (k < 0 || k > q) return false;
  switch (kind) {
    case Kind::kDense:
      return true;
    case Kind::kAShape:
      return k < n_init || q - k < n_local;
    case Kind::kVerticalSlash:
      return std::binary_search(verticals.begin(), verticals.end(), k) ||
             std::binary_search(slashes.begin(), slashes.end(), q - k);
    case Kind::kBlockSparse: {
      const int64_t qb = q / block_size;
      if (qb >= static_cast<int64_t>(key_blocks.size())) return false;
      return std::binary_search(key_blocks[qb].begin(), key_blocks[qb].end(), k / block_size);
    }
  }
  return false;
}

int64_t HeadKeySet::CountPairs(int64_t tokens) const {
  if (kind == Kind::kDense) return tokens * (tokens + 1) / 2;
  int64_t pairs = 0;
  std::vector<KeyRange> ranges;
  for (int64_t q = 0; q < tokens; ++q) {
    KeyRangesForQuery(q, &ranges);
    for (const auto& [b, e] : ranges) pairs += e - b;
  }
  return pairs;
}

}  // namespace sparsefill::kernels
