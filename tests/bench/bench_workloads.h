// Fixed sparse-index workloads for the attention benchmark (plain C++, no CUDA): seeded random
// indices in the format of kernels/attention/sparse_index.h, and the exact number of (query, key)
// pairs an index selects, so the benchmark can compare a kernel's own pair counter with what it
// was asked to compute.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/attention/sparse_index.h"

namespace sparsefill::bench {

// Deterministic 64-bit generator (splitmix64): the same seed gives the same workload on every
// machine and standard library.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n >= 1 (modulo bias below 2^-32 for the n used here, n < 2^32).
  uint64_t Below(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// `count` distinct values from [lo, hi), sorted ascending (all of them if count >= hi - lo).
std::vector<int64_t> SampleDistinct(int64_t lo, int64_t hi, int64_t count, SplitMix64* rng);

// Vertical-slash "band" workload, per query head (each head its own random draw):
//   verticals: the `sinks` first key columns plus random other columns, `verticals` in all
//              (capped at tokens);
//   slashes:   the `slashes` nearest diagonals as one band [0, slashes - 1] (capped at tokens).
kernels::HostSparseIndex MakeBandIndex(int q_heads, int64_t tokens, int64_t verticals,
                                       int64_t slashes, int64_t sinks, uint64_t seed);

// Vertical-slash "scattered diagonals" workload: the same verticals as MakeBandIndex, and
// `near` nearest diagonals [0, near - 1] plus `isolated` random diagonal offsets from
// [near + 1, tokens), no two adjacent (each its own band of width 1). Fewer isolated offsets
// are drawn when the sequence is too short to hold them.
kernels::HostSparseIndex MakeScatteredIndex(int q_heads, int64_t tokens, int64_t verticals,
                                            int64_t near, int64_t isolated, int64_t sinks,
                                            uint64_t seed);

// Block-sparse top-k: for each 64-row query block b, key blocks {0, b} plus k - 2 random others
// from [1, b) (all of 0..b when b < k), sorted, each head its own draw; rows padded with -1.
kernels::HostSparseIndex MakeBlockSparseIndex(int q_heads, int64_t tokens, int64_t top_k,
                                              uint64_t seed);

// A-shape: n_init sink keys plus the n_local nearest keys (the query included), every head.
kernels::HostSparseIndex MakeAShapeIndex(int q_heads, int64_t n_init, int64_t n_local);

// The number of causal (query, key) pairs head `head` of `index` selects over `tokens` tokens
// (no sliding window): what kernels::SparseIndexContains counts, in closed form per row block.
int64_t SelectedPairs(const kernels::SparseIndexView& index, int head, int64_t tokens);

// Sum of SelectedPairs over heads [0, q_heads).
int64_t SelectedPairsAllHeads(const kernels::SparseIndexView& index, int q_heads, int64_t tokens);

// Dense causal pairs of one head: tokens * (tokens + 1) / 2.
inline int64_t DenseCausalPairs(int64_t tokens) { return tokens * (tokens + 1) / 2; }

// Checks the generators and SelectedPairs against kernels::SparseIndexContains by brute force
// on small sizes, and that every index is well formed (sorted, disjoint, in range). Returns an
// empty string on success, else what failed. CPU only; takes well under a second.
std::string CheckWorkloads();

}  // namespace sparsefill::bench
