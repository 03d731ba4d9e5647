// Turns one query head's work for one 64-row query block into a sequence of 64-key tiles: the
// only place that knows what each pattern computes (see ../sparse_index.h). The mainloop asks
// for tiles one at a time; every thread of the CTA walks the same sequence, all 32 lanes of a
// warp together (the diagonal walk is warp-cooperative).
#pragma once

#include <climits>
#include <cstdint>

#include "kernels/attention/cuda/attention_params.cuh"

namespace sparsefill::kernels::cuda {

// A tile of up to 64 keys, of one of three kinds:
//   range    keys [begin, begin + count); the pairs computed have lo <= r - k <= hi
//   gather   the head's vertical columns at list positions [begin, begin + count)
//   offsets  keys [begin, begin + 64) of a vertical-slash head's diagonals: the pair (r, k) is
//            computed when bit r - k - offset_min of offset_bits is set. A 64 x 64 tile spans 127
//            offsets, so every diagonal crossing it fits the mask, and one tile serves all of them.
struct KeyTile {
  bool gather;
  int32_t begin;
  int32_t count;  // keys in the tile, 0..64
  int32_t lo;     // range: the pairs computed have lo <= r - k <= hi (hi may be INT32_MAX)
  int32_t hi;
  bool offsets;
  int32_t offset_min;          // offsets: r - k of the tile's first row and last key
  uint64_t offset_bits[2];     // offsets: bit i (of 128) set = offset offset_min + i computed
};

// Bits first..last of a 64-bit word (0 <= first <= last <= 63).
__device__ __forceinline__ uint64_t BitRange64(int first, int last) {
  return (~0ull >> (63 - last)) & (~0ull << first);
}

// Whether tile `t` computes (row r, key k); for range and offsets tiles (gather tiles need the
// column list and the rows covered by bands: GatherColumnRows, or the mma.sync kernel's own
// test).
__device__ __forceinline__ bool TilePairIn(const KeyTile& t, int32_t r, int32_t k) {
  if (t.offsets) {
    const int32_t i = r - k - t.offset_min;  // 0..126 for rows and keys of the tile
    const uint64_t word = i < 64 ? t.offset_bits[0] : t.offset_bits[1];
    return (word >> (i & 63)) & 1ull;
  }
  const int32_t offset = r - k;
  return offset >= t.lo && offset <= t.hi;
}

// The keys of range or offsets tile `t` that row r computes, as a mask in key order: bit kk set
// when (r, t.begin + kk) is computed. Zero for rows at or past row_end (the partial last block).
// The wgmma consumer builds one mask per row and tests constant bits of it, instead of
// evaluating TilePairIn per element: an offsets tile's per-element test was ~70% of its
// instructions on scattered diagonals (ncu, H100). TilePairIn stays the mma.sync kernel's test.
__device__ __forceinline__ uint64_t RowKeyMask(const KeyTile& t, int32_t r, int32_t row_begin,
                                               int32_t row_end) {
  if (r >= row_end) return 0;
  if (t.offsets) {
    // Key kk of row rr = r - row_begin has offset bit rr + 63 - kk: take the 64 bits from rr up
    // (bit x is key 63 - x), then reverse them into key order.
    const int rr = r - row_begin;  // 0..63
    const uint64_t window =
        rr == 0 ? t.offset_bits[0] : (t.offset_bits[0] >> rr) | (t.offset_bits[1] << (64 - rr));
    return __brevll(window);
  }
  // Range: lo <= r - (begin + kk) <= hi, so kk in [d - hi, d - lo] with d = r - begin, and
  // kk < count (64-bit: hi may be INT32_MAX).
  const int64_t d = static_cast<int64_t>(r) - t.begin;
  const int64_t first = d - t.hi > 0 ? d - t.hi : 0;
  const int64_t last = d - t.lo < t.count - 1 ? d - t.lo : t.count - 1;
  if (first > last) return 0;
  return BitRange64(static_cast<int>(first), static_cast<int>(last));
}

// The rows of the block [row_begin, row_end) that compute gathered column `key` (bit rr: row
// row_begin + rr): at or after the key (causal), within `hi` of it (the window), and not in
// `covered` (RowsCoveredByBands: a band tile computes those pairs). INT32_MAX (a slot past the
// tile's columns) gives no row.
__device__ __forceinline__ uint64_t GatherColumnRows(int32_t key, int32_t hi, uint64_t covered,
                                                     int32_t row_begin, int32_t row_end) {
  const int64_t first = max(static_cast<int64_t>(key) - row_begin, int64_t{0});
  const int64_t last = min(static_cast<int64_t>(key) + hi - row_begin,
                           static_cast<int64_t>(row_end - 1 - row_begin));
  if (first > last) return 0;
  return BitRange64(static_cast<int>(first), static_cast<int>(last)) & ~covered;
}

// Whether every pair of tile `t` x the block's rows [row_begin, row_end) is computed, so the
// kernels can skip the per-element mask.
__device__ __forceinline__ bool TileIsFull(const KeyTile& t, int32_t row_begin, int32_t row_end) {
  if (t.gather || t.count != 64 || row_end - row_begin != 64) return false;
  if (t.offsets) return t.offset_bits[0] == ~0ull && (t.offset_bits[1] | (1ull << 63)) == ~0ull;
  return row_begin - (t.begin + 63) >= t.lo &&
         static_cast<int64_t>(row_end - 1) - t.begin <= static_cast<int64_t>(t.hi);
}

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
    tile->offsets = false;
    if (diagonals_) {
      // The diagonal walk: one tile per 64-key window over the union of the bands' key
      // ranges, covering every band crossing it (see NextDiagonalWindow).
      tile->count = kTileKeys;
      tile->offsets = true;
      SetOffsetBits(tile);
      NextDiagonalWindow(pos_ + kTileKeys);
      return true;
    }
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
        if (item_ == 0) {  // the diagonals, highest offset (lowest keys) first
          diagonals_ = true;
          band_ = desc_.band_count - 1;
          NextDiagonalWindow(0);
          return true;
        }
        diagonals_ = false;
        if (item_ > 1) return false;
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

  // Band b of this head with hi clipped to the window, and its key range [key_begin, key_end)
  // for the block's rows (empty: key_begin >= key_end).
  struct BandSpan {
    int32_t lo, hi, key_begin, key_end;
  };
  __device__ BandSpan LoadBand(int32_t b) const {
    const DiagonalBand band = p_.index.bands[desc_.band_begin + b];
    BandSpan span;
    span.lo = band.lo;
    span.hi = min(band.hi, p_.max_offset);
    span.key_begin = max(0, row_begin_ - span.hi);
    span.key_end = span.lo <= span.hi ? row_last_ - span.lo + 1 : span.key_begin;
    return span;
  }

  // Starts the next diagonal tile at the first key >= `from` inside some band's key range (the
  // greedy cover: no key of the union is skipped, no two tiles overlap, so a block never costs
  // more tiles than dense); pos_ >= end_ when no band is left. Warp-cooperative (every lane of
  // the warp walks the cursor): the lanes test 32 bands at once, one coalesced read, instead
  // of one dependent read per band.
  __device__ void NextDiagonalWindow(int32_t from) {
    // The current band still has keys at or after `from` (its key range for the block ends at
    // row_last - lo; the common case inside a wide band): it is the one the scan below would find
    // first, so no band need be read.
    if (band_ >= 0 && band_lo_ <= band_hi_ && from <= row_last_ - band_lo_) {
      pos_ = from;  // >= the band's key_begin: `from` is past the previous window in this band
      end_ = pos_ + 1;
      return;
    }
    const int lane = threadIdx.x % 32;
    for (; band_ >= 0; band_ -= 32) {
      const int32_t b = band_ - lane;
      BandSpan span{0, -1, 0, 0};
      if (b >= 0) span = LoadBand(b);
      const bool left = b >= 0 && span.key_end > max(span.key_begin, from);
      const unsigned found = __ballot_sync(0xffffffffu, left);
      if (found != 0) {
        const int l = __ffs(found) - 1;  // the highest band with keys left
        band_ -= l;
        band_lo_ = __shfl_sync(0xffffffffu, span.lo, l);
        band_hi_ = __shfl_sync(0xffffffffu, span.hi, l);
        pos_ = max(__shfl_sync(0xffffffffu, span.key_begin, l), from);
        end_ = pos_ + 1;  // a tile is pending; Next() moves on through NextDiagonalWindow
        return;
      }
    }
    pos_ = end_ = 0;
  }

  // The offsets mask of the diagonal tile at pos_: every band offset in the 127 the tile spans.
  __device__ void SetOffsetBits(KeyTile* tile) const {
    const int32_t offset_min = row_begin_ - (pos_ + kTileKeys - 1);
    const int32_t offset_max = min(offset_min + 2 * kTileKeys - 2, p_.max_offset);
    tile->offset_min = offset_min;
    tile->offset_bits[0] = tile->offset_bits[1] = 0;
    if (band_lo_ <= offset_min && band_hi_ >= offset_max) {
      // Inside one band (the common case of wide bands): every offset the tile spans.
      const int32_t bits = offset_max - offset_min + 1;  // 1..127
      tile->offset_bits[0] = bits >= 64 ? ~0ull : (1ull << bits) - 1;
      tile->offset_bits[1] = bits <= 64 ? 0ull : (1ull << (bits - 64)) - 1;
      return;
    }
    // The bands crossing the window are the current one and those below it (lower offsets):
    // a band above it had no key left at or after pos_, so none of its offsets is in the
    // window (every offset of the window is r - k for some row of the block and key of the
    // tile). Lane l takes band band_ - l - 32 i; the lanes' bits are OR-reduced.
    const int lane = threadIdx.x % 32;
    const DiagonalBand* bands = p_.index.bands + desc_.band_begin;
    for (int32_t top = band_; top >= 0; top -= 32) {
      const int32_t b = top - lane;
      DiagonalBand band{1, 0};  // empty
      if (b >= 0) band = b == band_ ? DiagonalBand{band_lo_, band_hi_} : bands[b];
      // Bits [from, to] of the 128 (0 <= from <= to <= 126) as two 64-bit halves, with a few
      // 64-bit shifts: half the instructions of four 32-bit words for the publishing warp.
      uint64_t low = 0, high = 0;
      if (band.lo <= band.hi && band.hi >= offset_min && band.lo <= offset_max) {
        const int32_t from = max(band.lo, offset_min) - offset_min;  // bit positions
        const int32_t to = min(band.hi, offset_max) - offset_min;
        if (from <= 63) low = BitRange64(from, min(to, 63));
        if (to >= 64) high = BitRange64(max(from - 64, 0), to - 64);
      }
      const uint32_t w0 = __reduce_or_sync(0xffffffffu, static_cast<uint32_t>(low));
      const uint32_t w1 = __reduce_or_sync(0xffffffffu, static_cast<uint32_t>(low >> 32));
      const uint32_t w2 = __reduce_or_sync(0xffffffffu, static_cast<uint32_t>(high));
      const uint32_t w3 = __reduce_or_sync(0xffffffffu, static_cast<uint32_t>(high >> 32));
      tile->offset_bits[0] |= (static_cast<uint64_t>(w1) << 32) | w0;
      tile->offset_bits[1] |= (static_cast<uint64_t>(w3) << 32) | w2;
      // Done once the lowest band of this batch lies below the window (or the list ended).
      const int32_t lowest_hi = __shfl_sync(0xffffffffu, b >= 0 ? band.hi : INT32_MIN, 31);
      if (lowest_hi < offset_min) break;
    }
  }

  // First position in the sorted list whose value is >= x. Warp-cooperative: each round the 32
  // lanes probe 32 evenly spaced positions at once and keep the 1/32 of the range the answer is
  // in, so a list of n entries costs log32(n) dependent reads (3 for 3500 verticals) instead of
  // log2(n) (12): the binary search was the longest wait of a vertical-slash CTA's start.
  __device__ static int32_t LowerBound(const int32_t* list, int32_t n, int32_t x) {
    const int lane = threadIdx.x % 32;
    int32_t lo = 0, hi = n;  // the answer is in [lo, hi]
    while (lo < hi) {
      const int32_t step = (hi - lo + 31) / 32;
      const int32_t probe = lo + lane * step;
      const bool below = probe < hi && list[probe] < x;  // true on a prefix of the lanes
      const int k = __popc(__ballot_sync(0xffffffffu, below));
      if (k == 0) break;  // list[lo] >= x
      hi = min(hi, lo + k * step);
      lo += (k - 1) * step + 1;
    }
    return lo;
  }

  const AttentionParams& p_;
  const int32_t row_begin_, row_last_;
  HeadDescriptor desc_{};
  int32_t item_ = 0;
  bool gather_ = false;
  bool diagonals_ = false;  // walking a vertical-slash head's diagonals
  int32_t band_ = 0;        // the diagonal walk's current band (descending)
  int32_t band_lo_ = 0, band_hi_ = -1;  // its offsets, hi clipped to the window
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
    covered |= BitRange64(from, to);  // from <= to: band b has hi >= first_offset, lo <= last
  }
  return covered;
}

}  // namespace sparsefill::kernels::cuda
