#include "kernels/attention/sparse_index.h"

#include <algorithm>

#include "kernels/attention/head_key_set.h"

namespace sparsefill::kernels {

HostSparseIndex BuildHostSparseIndex(const std::vector<HeadKeySet>& heads, int64_t tokens) {
  HostSparseIndex index;
  const int64_t blocks = (tokens + kSparseBlockSize - 1) / kSparseBlockSize;
  for (const HeadKeySet& set : heads) {
    HeadDescriptor d;
    switch (set.kind) {
      case HeadKeySet::Kind::kDense:
        d.kind = HeadKind::kDense;
        break;
      case HeadKeySet::Kind::kAShape:
        d.kind = HeadKind::kAShape;
        d.n_init = static_cast<int32_t>(set.n_init);
        d.n_local = static_cast<int32_t>(set.n_local);
        break;
      case HeadKeySet::Kind::kVerticalSlash: {
        d.kind = HeadKind::kVerticalSlash;
        d.vertical_begin = static_cast<int32_t>(index.verticals.size());
        for (int64_t c : set.verticals) index.verticals.push_back(static_cast<int32_t>(c));
        d.vertical_count = static_cast<int32_t>(set.verticals.size());
        d.band_begin = static_cast<int32_t>(index.bands.size());
        // Run-length encode the sorted slash offsets into bands.
        for (int64_t s : set.slashes) {
          if (!index.bands.empty() && static_cast<int32_t>(index.bands.size()) > d.band_begin &&
              index.bands.back().hi + 1 == s) {
            index.bands.back().hi = static_cast<int32_t>(s);
          } else {
            index.bands.push_back({static_cast<int32_t>(s), static_cast<int32_t>(s)});
          }
        }
        d.band_count = static_cast<int32_t>(index.bands.size()) - d.band_begin;
        break;
      }
      case HeadKeySet::Kind::kBlockSparse: {
        d.kind = HeadKind::kBlockSparse;
        size_t width = 0;
        for (const auto& row : set.key_blocks) width = std::max(width, row.size());
        d.block_begin = static_cast<int32_t>(index.key_blocks.size());
        d.blocks_per_row = static_cast<int32_t>(width);
        for (int64_t b = 0; b < blocks; ++b) {
          const auto* row = b < static_cast<int64_t>(set.key_blocks.size()) ? &set.key_blocks[b] : nullptr;
          for (size_t i = 0; i < width; ++i) {
            index.key_blocks.push_back(row != nullptr && i < row->size() ? static_cast<int32_t>((*row)[i])
                                                                         : -1);
          }
        }
        break;
      }
    }
    index.heads.push_back(d);
  }
  return index;
}

namespace {

// Whether offset r - k lies in one of the head's bands.
bool InBands(const SparseIndexView& index, const HeadDescriptor& d, int64_t offset) {
  for (int32_t i = 0; i < d.band_count; ++i) {
    const DiagonalBand& b = index.bands[d.band_begin + i];
    if (offset >= b.lo && offset <= b.hi) return true;
  }
  return false;
}

}  // namespace

bool SparseIndexContains(const SparseIndexView& index, int head, int64_t tokens, int64_t q,
                         int64_t k) {
  if (k < 0 || k > q || q >= tokens) return false;
  const HeadDescriptor& d = index.heads[head];
  switch (d.kind) {
    case HeadKind::kDense:
      return true;
    case HeadKind::kAShape:
      return q - k < d.n_local || (k < d.n_init && q - k >= d.n_local);
    case HeadKind::kVerticalSlash: {
      if (InBands(index, d, q - k)) return true;  // a band tile
      // A vertical tile: the column is listed and its offset for this row is in no band.
      const int32_t* first = index.verticals + d.vertical_begin;
      return std::binary_search(first, first + d.vertical_count, static_cast<int32_t>(k));
    }
    case HeadKind::kBlockSparse: {
      const int32_t* row = index.key_blocks + d.block_begin + (q / kSparseBlockSize) * d.blocks_per_row;
      for (int32_t i = 0; i < d.blocks_per_row; ++i) {
        if (row[i] == k / kSparseBlockSize) return true;
      }
      return false;
    }
  }
  return false;
}

}  // namespace sparsefill::kernels
