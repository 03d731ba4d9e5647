// Turns one query head's work for one 64-row query block into a sequence of 64-key tiles: the
// only place that knows what each pattern computes (see ../sparse_index.h). The mainloop asks
// for tiles one at a time; every thread of the CTA walks the same sequence.
#pragma once

#include <climits>
#include <cstdint>

#include "kernels/attention/cuda/attention_params.cuh"

namespace sparsefill::kernels::cuda {

// A tile of up to 64 keys.
struct KeyTile {
  bool gather;    // true: vertical columns at list positions [begin, begin + count)
  int32_t begin;  // range: first key; gather: first position in the head's vertical list
  int32_t count;  // keys in the tile, 1..64
  int32_t lo;     // range: the pairs computed have lo <= r - k <= hi (hi may be INT32_MAX)
  int32_t hi;
};

class KeyTileCursor {
 public:
  static constexpr int kTileKeys = 64;

  __device__ KeyTileCursor(const AttentionParams& p, int head, int32_t row_begin, int32_t row_end)
      : p_(p), row_begin_(row_begin), row_last_(row_end - 1) {
    if (p.sparse) desc_ = p.index.heads[head];
    LoadItem();
  }

  // The next tile, or false when the block's work is done.
  __device__ bool Next(KeyTile* tile) {
    while (pos_ >= end_) {
      ++item_;
      if (!LoadItem()) return false;
    }
    tile->gather = gather_;
    tile->begin = pos_;
    tile->count = min(kTileKeys, end_ - pos_);
    tile->lo = lo_;
    tile->hi = hi_;
    pos_ += kTileKeys;
    return true;
  }

  __device__ const HeadDescriptor& descriptor() const { return desc_; }

 private:
  // A contiguous key range [begin, end) whose pairs satisfy lo <= r - k <= hi, clipped to the
  // keys the block's rows can see (causality and the sliding window).
  __device__ void SetRange(int32_t begin, int32_t end, int32_t lo, int32_t hi) {
    hi = min(hi, p_.max_offset);
    begin = max(begin, max(0, row_begin_ - hi));
    end = min(end, row_last_ - lo + 1);
    gather_ = false;
    pos_ = begin;
    end_ = lo <= hi ? end : begin;
    lo_ = lo;
    hi_ = hi;
  }

  // Sets up item_ of this head's work; false when there is none left.
  __device__ bool LoadItem() {
    const int32_t row_end = row_last_ + 1;
    switch (p_.sparse ? desc_.kind : HeadKind::kDense) {
      case HeadKind::kDense:
        if (item_ > 0) return false;
        SetRange(0, row_end, 0, INT32_MAX);
        return true;
      case HeadKind::kAShape:
        if (item_ == 0) {  // attention sinks, for rows past their local window
          SetRange(0, desc_.n_init, desc_.n_local, INT32_MAX);
          return true;
        }
        if (item_ == 1) {  // the local window: offsets 0 .. n_local - 1
          SetRange(0, row_end, 0, desc_.n_local - 1);
          return true;
        }
        return false;
      case HeadKind::kVerticalSlash: {
        if (item_ < desc_.band_count) {
          const DiagonalBand band = p_.index.bands[desc_.band_begin + item_];
          SetRange(0, row_end, band.lo, band.hi);
          return true;
        }
        if (item_ > desc_.band_count) return false;
        // The vertical columns this block can see: those in [row_begin - max_offset, row_last].
        const int32_t* cols = p_.index.verticals + desc_.vertical_begin;
        const int32_t lowest = p_.max_offset == INT32_MAX ? 0 : row_begin_ - p_.max_offset;
        gather_ = true;
        pos_ = LowerBound(cols, desc_.vertical_count, lowest);
        end_ = LowerBound(cols, desc_.vertical_count, row_last_ + 1);
        lo_ = 0;
        hi_ = p_.max_offset;
        return true;
      }
      case HeadKind::kBlockSparse: {
        if (item_ >= desc_.blocks_per_row) return false;
        const int32_t block =
            p_.index.key_blocks[desc_.block_begin +
                                static_cast<int64_t>(row_begin_ / kTileKeys) * desc_.blocks_per_row +
                                item_];
        if (block < 0) return false;  // padding: the row's list is over
        SetRange(block * kTileKeys, block * kTileKeys + kTileKeys, 0, INT32_MAX);
        return true;
      }
    }
    return false;
  }

  // First position in the sorted list whose value is >= x.
  __device__ static int32_t LowerBound(const int32_t* list, int32_t n, int32_t x) {
    int32_t lo = 0, hi = n;
    while (lo < hi) {
      const int32_t mid = (lo + hi) >> 1;
      if (list[mid] < x) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  const AttentionParams& p_;
  const int32_t row_begin_, row_last_;
  HeadDescriptor desc_{};
  int32_t item_ = 0;
  bool gather_ = false;
  int32_t pos_ = 0, end_ = 0, lo_ = 0, hi_ = INT32_MAX;
};

// For a gathered vertical column `key`, the rows of the block [row_begin, row_begin + 64) whose
// offset r - key lies in one of the head's bands: those pairs belong to a band tile already.
__device__ inline uint64_t RowsCoveredByBands(const AttentionParams& p, const HeadDescriptor& d,
                                              int32_t row_begin, int32_t key) {
  const DiagonalBand* bands = p.index.bands + d.band_begin;
  const int32_t first_offset = row_begin - key;  // offset of the block's first row (may be < 0)
  const int32_t last_offset = first_offset + 63;
  // First band with hi >= first_offset.
  int32_t lo = 0, hi = d.band_count;
  while (lo < hi) {
    const int32_t mid = (lo + hi) >> 1;
    if (bands[mid].hi < first_offset) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  uint64_t covered = 0;
  for (int32_t b = lo; b < d.band_count && bands[b].lo <= last_offset; ++b) {
    const int32_t from = max(bands[b].lo, first_offset) - first_offset;  // row positions
    const int32_t to = min(bands[b].hi, last_offset) - first_offset;
    const int width = to - from + 1;
    covered |= (width >= 64 ? ~0ull : ((1ull << width) - 1)) << from;
  }
  return covered;
}

}  // namespace sparsefill::kernels::cuda
