// The sparse attention index every pattern compiles to, shared by the GPU index builders
// (cuda/index_builder.cuh), the sparse attention mainloop (cuda/attention_kernel.cuh) and the CPU
// conversion from HeadKeySet used in tests. Plain structs: no CUDA headers.
//
// Per query head, the index holds work the mainloop turns into 64-key tiles for each 64-row
// query block [r0, r0 + 64):
//   dense          keys [0, r0 + 64), causal
//   a_shape        sink keys [0, n_init) for rows with r - k >= n_local, plus the band of offsets
//                  r - k in [0, n_local - 1]
//   vertical_slash bands: runs of consecutive diagonal offsets r - k in [lo, hi] (sorted,
//                  disjoint, non-adjacent), each a contiguous key range per row block; plus
//                  vertical key columns (sorted), gathered 64 at a time, each masked for the rows
//                  where its offset already lies in a band (so no pair is counted twice)
//   block_sparse   for each query block, its key blocks (sorted ascending, padded with -1), each
//                  64 contiguous keys, causal inside the diagonal block
// The pairs computed equal HeadKeySet::Contains exactly (tests check this on the CPU with
// SparseIndexContains), and a Mistral-style sliding window further limits r - k.
#pragma once

#include <cstdint>
#include <vector>

namespace sparsefill::kernels {

inline constexpr int kSparseBlockSize = 64;  // query rows per block, and block-sparse key block

enum class HeadKind : int32_t { kDense = 0, kAShape = 1, kVerticalSlash = 2, kBlockSparse = 3 };

// A run of diagonal offsets r - k in [lo, hi], lo <= hi, lo >= 0.
struct DiagonalBand {
  int32_t lo = 0;
  int32_t hi = 0;
};

struct HeadDescriptor {
  HeadKind kind = HeadKind::kDense;
  int32_t n_init = 0;   // kAShape: sink keys
  int32_t n_local = 1;  // kAShape: local window (the query itself included)
  int32_t vertical_begin = 0, vertical_count = 0;  // kVerticalSlash: into verticals[]
  int32_t band_begin = 0, band_count = 0;          // kVerticalSlash: into bands[]
  int32_t block_begin = 0;     // kBlockSparse: into key_blocks[], a [query_blocks, blocks_per_row]
  int32_t blocks_per_row = 0;  //   table; -1 pads a row
};

// Device (or host) pointers to one layer's index; q_heads descriptors.
struct SparseIndexView {
  const HeadDescriptor* heads = nullptr;
  const int32_t* verticals = nullptr;
  const DiagonalBand* bands = nullptr;
  const int32_t* key_blocks = nullptr;
};

// The same index in host memory (tests, fixed-index benchmarks, uploads).
struct HostSparseIndex {
  std::vector<HeadDescriptor> heads;
  std::vector<int32_t> verticals;
  std::vector<DiagonalBand> bands;
  std::vector<int32_t> key_blocks;

  SparseIndexView view() const {
    return SparseIndexView{heads.data(), verticals.data(), bands.data(), key_blocks.data()};
  }
};

struct HeadKeySet;

// Compiles the CPU references' key sets (one per query head) into the index format.
HostSparseIndex BuildHostSparseIndex(const std::vector<HeadKeySet>& heads, int64_t tokens);

// Whether the index computes (query q, key k) for query head h: the kernel's masking rules
// written out on the CPU, so the format itself is tested without a GPU.
bool SparseIndexContains(const SparseIndexView& index, int head, int64_t tokens, int64_t q,
                         int64_t k);

}  // namespace sparsefill::kernels
