#include "tests/bench/bench_workloads.h"

#include <algorithm>
#include <sstream>

namespace sparsefill::bench {

using kernels::DiagonalBand;
using kernels::HeadDescriptor;
using kernels::HeadKind;
using kernels::HostSparseIndex;
using kernels::kSparseBlockSize;
using kernels::SparseIndexView;

std::vector<int64_t> SampleDistinct(int64_t lo, int64_t hi, int64_t count, SplitMix64* rng) {
  std::vector<int64_t> out;
  const int64_t n = hi - lo;
  if (n <= 0 || count <= 0) return out;
  if (count >= n) {
    out.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = lo + i;
    return out;
  }
  // Floyd's algorithm: `count` draws, each a fresh value, O(count) with a reusable mark table.
  thread_local std::vector<uint8_t> marked;
  if (static_cast<int64_t>(marked.size()) < n) marked.resize(static_cast<size_t>(n), 0);
  out.reserve(static_cast<size_t>(count));
  for (int64_t j = n - count; j < n; ++j) {
    int64_t t = static_cast<int64_t>(rng->Below(static_cast<uint64_t>(j + 1)));
    if (marked[static_cast<size_t>(t)]) t = j;
    marked[static_cast<size_t>(t)] = 1;
    out.push_back(t);
  }
  for (int64_t t : out) marked[static_cast<size_t>(t)] = 0;
  std::sort(out.begin(), out.end());
  for (int64_t& t : out) t += lo;
  return out;
}

namespace {

uint64_t HeadSeed(uint64_t seed, int head) {
  SplitMix64 mix(seed ^ (0x51ed27u + static_cast<uint64_t>(head) * 0x2545f4914f6cdd1dull));
  return mix.Next();
}

// sinks first columns plus random others, `verticals` in all, sorted.
std::vector<int32_t> DrawVerticals(int64_t tokens, int64_t verticals, int64_t sinks,
                                   SplitMix64* rng) {
  const int64_t n_sinks = std::min({sinks, verticals, tokens});
  std::vector<int32_t> cols;
  cols.reserve(static_cast<size_t>(std::min(verticals, tokens)));
  for (int64_t c = 0; c < n_sinks; ++c) cols.push_back(static_cast<int32_t>(c));
  for (int64_t c : SampleDistinct(n_sinks, tokens, verticals - n_sinks, rng)) {
    cols.push_back(static_cast<int32_t>(c));
  }
  return cols;
}

HeadDescriptor VerticalSlashHead(HostSparseIndex* index, const std::vector<int32_t>& cols,
                                 const std::vector<DiagonalBand>& bands) {
  HeadDescriptor d;
  d.kind = HeadKind::kVerticalSlash;
  d.vertical_begin = static_cast<int32_t>(index->verticals.size());
  d.vertical_count = static_cast<int32_t>(cols.size());
  index->verticals.insert(index->verticals.end(), cols.begin(), cols.end());
  d.band_begin = static_cast<int32_t>(index->bands.size());
  d.band_count = static_cast<int32_t>(bands.size());
  index->bands.insert(index->bands.end(), bands.begin(), bands.end());
  return d;
}

}  // namespace

HostSparseIndex MakeBandIndex(int q_heads, int64_t tokens, int64_t verticals, int64_t slashes,
                              int64_t sinks, uint64_t seed) {
  HostSparseIndex index;
  const int64_t s = std::min(slashes, tokens);
  for (int h = 0; h < q_heads; ++h) {
    SplitMix64 rng(HeadSeed(seed, h));
    std::vector<DiagonalBand> bands;
    if (s > 0) bands.push_back({0, static_cast<int32_t>(s - 1)});
    index.heads.push_back(
        VerticalSlashHead(&index, DrawVerticals(tokens, verticals, sinks, &rng), bands));
  }
  return index;
}

HostSparseIndex MakeScatteredIndex(int q_heads, int64_t tokens, int64_t verticals, int64_t near,
                                   int64_t isolated, int64_t sinks, uint64_t seed) {
  HostSparseIndex index;
  const int64_t n_near = std::min(near, tokens);
  // Isolated offsets x_i from [near + 1, tokens) with x_{i+1} - x_i >= 2: draw m distinct y from
  // [0, n - m + 1) and set x_i = near + 1 + y_i + i.
  const int64_t n = std::max<int64_t>(0, tokens - (n_near + 1));
  const int64_t m = std::min(isolated, (n + 1) / 2);
  for (int h = 0; h < q_heads; ++h) {
    SplitMix64 rng(HeadSeed(seed, h));
    std::vector<int32_t> cols = DrawVerticals(tokens, verticals, sinks, &rng);
    std::vector<DiagonalBand> bands;
    if (n_near > 0) bands.push_back({0, static_cast<int32_t>(n_near - 1)});
    const std::vector<int64_t> y = SampleDistinct(0, n - m + 1, m, &rng);
    for (size_t i = 0; i < y.size(); ++i) {
      const auto x = static_cast<int32_t>(n_near + 1 + y[i] + static_cast<int64_t>(i));
      bands.push_back({x, x});
    }
    index.heads.push_back(VerticalSlashHead(&index, cols, bands));
  }
  return index;
}

HostSparseIndex MakeBlockSparseIndex(int q_heads, int64_t tokens, int64_t top_k, uint64_t seed) {
  HostSparseIndex index;
  const int64_t blocks = (tokens + kSparseBlockSize - 1) / kSparseBlockSize;
  const int64_t width = std::max<int64_t>(1, std::min(top_k, blocks));
  index.key_blocks.reserve(static_cast<size_t>(q_heads * blocks * width));
  for (int h = 0; h < q_heads; ++h) {
    SplitMix64 rng(HeadSeed(seed, h));
    HeadDescriptor d;
    d.kind = HeadKind::kBlockSparse;
    d.block_begin = static_cast<int32_t>(index.key_blocks.size());
    d.blocks_per_row = static_cast<int32_t>(width);
    for (int64_t b = 0; b < blocks; ++b) {
      const size_t row_start = index.key_blocks.size();
      if (b + 1 <= width) {
        for (int64_t kb = 0; kb <= b; ++kb) index.key_blocks.push_back(static_cast<int32_t>(kb));
      } else if (width == 1) {
        index.key_blocks.push_back(static_cast<int32_t>(b));  // the diagonal block alone
      } else {
        index.key_blocks.push_back(0);
        // The width - 2 others from [1, b) (b >= width here).
        for (int64_t kb : SampleDistinct(1, b, width - 2, &rng)) {
          index.key_blocks.push_back(static_cast<int32_t>(kb));
        }
        index.key_blocks.push_back(static_cast<int32_t>(b));
      }
      while (index.key_blocks.size() < row_start + static_cast<size_t>(width)) {
        index.key_blocks.push_back(-1);
      }
    }
    index.heads.push_back(d);
  }
  return index;
}

HostSparseIndex MakeAShapeIndex(int q_heads, int64_t n_init, int64_t n_local) {
  HostSparseIndex index;
  for (int h = 0; h < q_heads; ++h) {
    HeadDescriptor d;
    d.kind = HeadKind::kAShape;
    d.n_init = static_cast<int32_t>(n_init);
    d.n_local = static_cast<int32_t>(n_local);
    index.heads.push_back(d);
  }
  return index;
}

int64_t SelectedPairs(const SparseIndexView& index, int head, int64_t tokens) {
  const HeadDescriptor& d = index.heads[head];
  const int64_t T = tokens;
  switch (d.kind) {
    case HeadKind::kDense:
      return DenseCausalPairs(T);
    case HeadKind::kAShape: {
      int64_t pairs = 0;
      for (int64_t q = 0; q < T; ++q) {
        pairs += std::min<int64_t>(q + 1, d.n_local);
        if (q >= d.n_local) pairs += std::min<int64_t>(d.n_init, q - d.n_local + 1);
      }
      return pairs;
    }
    case HeadKind::kVerticalSlash: {
      // Bands, as sorted disjoint offset ranges clipped to [0, T - 1].
      std::vector<std::pair<int64_t, int64_t>> bands;
      for (int32_t i = 0; i < d.band_count; ++i) {
        const DiagonalBand& b = index.bands[d.band_begin + i];
        const int64_t lo = std::max<int64_t>(0, b.lo), hi = std::min<int64_t>(b.hi, T - 1);
        if (lo <= hi) bands.emplace_back(lo, hi);
      }
      std::sort(bands.begin(), bands.end());
      // Merge overlaps so no offset counts twice.
      std::vector<std::pair<int64_t, int64_t>> merged;
      for (const auto& b : bands) {
        if (!merged.empty() && b.first <= merged.back().second) {
          merged.back().second = std::max(merged.back().second, b.second);
        } else {
          merged.push_back(b);
        }
      }
      int64_t pairs = 0;
      for (const auto& [lo, hi] : merged) {
        // Offset o covers rows o..T-1: T - o pairs; sum over o in [lo, hi].
        pairs += (hi - lo + 1) * (2 * T - lo - hi) / 2;
      }
      // Band offsets up to `limit` (inclusive), for the vertical masking.
      auto offsets_upto = [&](int64_t limit) {
        int64_t n = 0;
        for (const auto& [lo, hi] : merged) {
          if (lo > limit) break;
          n += std::min(hi, limit) - lo + 1;
        }
        return n;
      };
      std::vector<int32_t> cols(index.verticals + d.vertical_begin,
                                index.verticals + d.vertical_begin + d.vertical_count);
      std::sort(cols.begin(), cols.end());
      cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
      for (int32_t c : cols) {
        if (c < 0 || c >= T) continue;
        // Rows q in [c, T): offsets 0..T-1-c, minus those already in a band.
        pairs += (T - c) - offsets_upto(T - 1 - c);
      }
      return pairs;
    }
    case HeadKind::kBlockSparse: {
      int64_t pairs = 0;
      const int64_t blocks = (T + kSparseBlockSize - 1) / kSparseBlockSize;
      std::vector<int32_t> row;
      for (int64_t b = 0; b < blocks; ++b) {
        const int32_t* first = index.key_blocks + d.block_begin + b * d.blocks_per_row;
        row.assign(first, first + d.blocks_per_row);
        std::sort(row.begin(), row.end());
        row.erase(std::unique(row.begin(), row.end()), row.end());
        const int64_t rows = std::min<int64_t>(kSparseBlockSize, T - b * kSparseBlockSize);
        for (int32_t kb : row) {
          if (kb < 0 || kb > b) continue;
          pairs += kb < b ? rows * kSparseBlockSize : rows * (rows + 1) / 2;
        }
      }
      return pairs;
    }
  }
  return 0;
}

int64_t SelectedPairsAllHeads(const SparseIndexView& index, int q_heads, int64_t tokens) {
  int64_t pairs = 0;
  for (int h = 0; h < q_heads; ++h) pairs += SelectedPairs(index, h, tokens);
  return pairs;
}

namespace {

// Empty if the index is well formed for `tokens`, else the first problem.
std::string CheckFormat(const HostSparseIndex& index, int64_t tokens) {
  const int64_t blocks = (tokens + kSparseBlockSize - 1) / kSparseBlockSize;
  std::ostringstream err;
  for (size_t h = 0; h < index.heads.size(); ++h) {
    const HeadDescriptor& d = index.heads[h];
    if (d.kind == HeadKind::kVerticalSlash) {
      for (int32_t i = 0; i < d.vertical_count; ++i) {
        const int32_t c = index.verticals[static_cast<size_t>(d.vertical_begin + i)];
        if (c < 0 || c >= tokens || (i > 0 && c <= index.verticals[d.vertical_begin + i - 1])) {
          err << "head " << h << ": vertical " << i << " = " << c << " unsorted or out of range";
          return err.str();
        }
      }
      for (int32_t i = 0; i < d.band_count; ++i) {
        const DiagonalBand& b = index.bands[static_cast<size_t>(d.band_begin + i)];
        if (b.lo < 0 || b.hi < b.lo || b.hi >= tokens ||
            (i > 0 && b.lo <= index.bands[d.band_begin + i - 1].hi + 1)) {
          err << "head " << h << ": band " << i << " [" << b.lo << ", " << b.hi
              << "] out of range, overlapping or adjacent";
          return err.str();
        }
      }
    } else if (d.kind == HeadKind::kBlockSparse) {
      for (int64_t b = 0; b < blocks; ++b) {
        const int32_t* row = index.key_blocks.data() + d.block_begin + b * d.blocks_per_row;
        bool padding = false;
        for (int32_t i = 0; i < d.blocks_per_row; ++i) {
          if (row[i] == -1) {
            padding = true;
            continue;
          }
          if (padding || row[i] < 0 || row[i] > b || (i > 0 && row[i] <= row[i - 1])) {
            err << "head " << h << ": row block " << b << " entry " << i << " = " << row[i]
                << " unsorted, out of range or after padding";
            return err.str();
          }
        }
        const bool has_first = row[0] == 0;
        const int32_t* last_it = row;
        for (int32_t i = 0; i < d.blocks_per_row; ++i) {
          if (row[i] != -1) last_it = row + i;
        }
        if ((d.blocks_per_row >= 2 && !has_first) || *last_it != b) {
          err << "head " << h << ": row block " << b << " lacks block 0 or its diagonal block";
          return err.str();
        }
      }
    }
  }
  return "";
}

std::string CheckOne(const std::string& name, const HostSparseIndex& index, int q_heads,
                     int64_t tokens) {
  if (static_cast<int>(index.heads.size()) != q_heads) return name + ": wrong head count";
  std::string format = CheckFormat(index, tokens);
  if (!format.empty()) return name + ": " + format;
  const SparseIndexView view = index.view();
  for (int h = 0; h < q_heads; ++h) {
    int64_t brute = 0;
    for (int64_t q = 0; q < tokens; ++q) {
      for (int64_t k = 0; k <= q; ++k) brute += kernels::SparseIndexContains(view, h, tokens, q, k);
    }
    const int64_t closed = SelectedPairs(view, h, tokens);
    if (brute != closed) {
      std::ostringstream err;
      err << name << " T=" << tokens << " head " << h << ": SelectedPairs " << closed
          << " != brute force " << brute;
      return err.str();
    }
  }
  return "";
}

}  // namespace

std::string CheckWorkloads() {
  const int heads = 3;
  for (int64_t T : {1, 2, 63, 64, 65, 130, 517, 1000}) {
    struct Case {
      std::string name;
      HostSparseIndex index;
    };
    const Case cases[] = {
        {"band(40,100)", MakeBandIndex(heads, T, 40, 100, 30, 1)},
        {"band(3500,100)", MakeBandIndex(heads, T, 3500, 100, 30, 2)},
        {"band(10,1)", MakeBandIndex(heads, T, 10, 1, 30, 3)},
        {"scatter(20,10+40)", MakeScatteredIndex(heads, T, 20, 10, 40, 30, 4)},
        {"scatter(5,1+400)", MakeScatteredIndex(heads, T, 5, 1, 400, 30, 5)},
        {"block(5)", MakeBlockSparseIndex(heads, T, 5, 6)},
        {"block(2)", MakeBlockSparseIndex(heads, T, 2, 7)},
        {"block(1)", MakeBlockSparseIndex(heads, T, 1, 8)},
        {"ashape(16,100)", MakeAShapeIndex(heads, 16, 100)},
        {"ashape(0,1)", MakeAShapeIndex(heads, 0, 1)},
    };
    for (const Case& c : cases) {
      std::string err = CheckOne(c.name, c.index, heads, T);
      if (!err.empty()) return err;
    }
  }
  // Sizes: the generators give what they promise where the sequence is long enough.
  const HostSparseIndex band = MakeBandIndex(2, 5000, 1000, 800, 30, 9);
  if (band.heads[1].vertical_count != 1000 || band.bands[1].hi != 799) return "band sizes";
  const HostSparseIndex sc = MakeScatteredIndex(2, 5000, 100, 100, 700, 30, 9);
  if (sc.heads[1].band_count != 701) return "scattered sizes";
  for (int32_t i = 0; i < 30; ++i) {
    if (sc.verticals[static_cast<size_t>(sc.heads[1].vertical_begin + i)] != i) {
      return "scattered: sinks missing";
    }
  }
  // Each head draws its own verticals.
  if (std::equal(band.verticals.begin(), band.verticals.begin() + 1000,
                 band.verticals.begin() + 1000)) {
    return "band: heads share one draw";
  }
  return "";
}

}  // namespace sparsefill::bench
