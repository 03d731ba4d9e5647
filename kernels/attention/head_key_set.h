// Which (query, key) pairs one query head computes: dense causal, or one of the three sparse
// patterns of the MInference method. This is the CPU-side index every pattern builds; the
// sparse attention reference consumes it, and tests densify it into a mask.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace sparsefill::kernels {

// A half-open key range [first, second).
using KeyRange = std::pair<int64_t, int64_t>;

struct HeadKeySet {
  enum class Kind { kDense, kAShape, kVerticalSlash, kBlockSparse };

  Kind kind = Kind::kDense;

  // kAShape: the first n_init keys (attention sinks) plus the n_local most recent keys (the
  // query itself included).
  int64_t n_init = 0;
  int64_t n_local = 0;

  // kVerticalSlash: key columns seen by every later query, and diagonals as offsets
  // query - key >= 0 (0 is the query itself). Both sorted ascending, unique.
  std::vector<int64_t> verticals;
  std::vector<int64_t> slashes;

  // kBlockSparse: for each query block (block_size tokens), the key blocks it computes,
  // sorted ascending, each <= the query block.
  int block_size = 64;
  std::vector<std::vector<int64_t>> key_blocks;

  static HeadKeySet Dense() { return HeadKeySet{}; }
  static HeadKeySet AShape(int64_t n_init, int64_t n_local);

  // The keys query q computes, as sorted, disjoint, non-adjacent ranges, all within [0, q].
  // Never empty for the patterns built here: every one keeps the query's own key.
  void KeyRangesForQuery(int64_t q, std::vector<KeyRange>* ranges) const;

  // Whether the pair (q, k) is computed. False for k > q (causal).
  bool Contains(int64_t q, int64_t k) const;

  // Number of (query, key) pairs computed over a prompt of `tokens`; dense gives
  // tokens * (tokens + 1) / 2.
  int64_t CountPairs(int64_t tokens) const;
};

}  // namespace sparsefill::kernels
