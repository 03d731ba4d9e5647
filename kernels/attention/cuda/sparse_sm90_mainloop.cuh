// Mainloop of the sparse wgmma kernel (sm_90a): the dense wgmma kernel's pipeline
// (dense_sm90_mainloop.cuh: producer, K/V rings, S_i overlapping O += P_{i-1} V_{i-1}) driven by
// a query block's work list instead of a dense key range.
//
// The walking warp walks KeyTileCursor (key_tiles.cuh, the one place that knows what each
// pattern computes) a few tiles ahead; the publishing warp, per tile, publishes a SparseTileMeta
// with the K tile. Key ranges load with TMA from any start key (zero fill outside the prompt);
// the rows of a gathered tile (vertical columns) are copied by the gather warps with cp.async
// into the same swizzled layout; a gather warp fences its landed copies (generic -> async
// proxy) before it arrives on the same mbarriers, a tile behind its copies, so wgmma may read
// them unfenced. The publishing warp marks the tiles every row of the block computes whole
// (SparseTileMeta::full); for the others the consumer masks S with one 64-bit key mask per row
// (RowKeyMask; for a gathered tile the gather warps build them, GatherColumnRows transposed).
//
// Barriers (tile i uses stage i % kStages, phase (i / kStages) & 1); G = kGatherWarps for a
// vertical-slash head, else 0:
//   q_full           unused (Q goes to registers from global memory)
//   k_full[s]        K tile and its meta in stage s   (1 + G arrivals [+ bytes]; a TMA tile's
//                    single arrival counts for all)
//   k_empty[s]       every consumer warp is done with S and the meta, every gather warp with
//                    the meta                         (kConsumerWarps + G arrivals)
//   v_full[s]        V tile in stage s                (max(G, 1) arrivals, likewise)
//   v_empty[s]       O += P V for stage s done        (1 arrival)
//   gather_ready[s]  the meta of stage s is out       (1 arrival; the gather warps wait on it)
//   walk_full[q], walk_empty[q]  slot q of the walker's ring (Cfg::kWalkAhead tiles) written /
//                    read by the publishing warp      (1 arrival each)
#pragma once

#include <cuda_bf16.h>

#include <climits>
#include <cstdint>

#include "kernels/attention/cuda/index_ptx.cuh"
#include "kernels/attention/cuda/index_wgmma.cuh"
#include "kernels/attention/cuda/key_tiles.cuh"
#include "kernels/attention/cuda/kv_ring_barriers.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"
#include "kernels/attention/cuda/sparse_sm90_config.cuh"
#include "kernels/attention/cuda/sparse_sm90_params.cuh"
#include "kernels/attention/cuda/wgmma_attention_math.cuh"
#include "kernels/attention/cuda/wgmma_sm90.cuh"

namespace sparsefill::kernels::cuda {

// The query block a CTA computes. KV-head major: the CTAs in flight at a time (two per SM)
// all read one KV head, whose K and V (64 MiB at 128K tokens) then mostly stay in L2 while the
// key blocks and vertical columns its query heads pick are read again and again (the heads of
// a block-major order would need all KV heads at once: 8x the working set, mostly from HBM).
// Inside a KV head: longest causal rows first, the heads of its GQA group adjacent.
struct SparseWorkTile {
  int32_t head;
  int32_t kv_head;
  int32_t row_begin;
  int32_t row_end;  // min(row_begin + 64, tokens)
};

__device__ inline SparseWorkTile GetSparseWorkTile(const AttentionParams& p, uint32_t cta) {
  SparseWorkTile w;
  const uint32_t per_kv_head =
      static_cast<uint32_t>(p.query_blocks) * static_cast<uint32_t>(p.group_size);
  w.kv_head = static_cast<int32_t>(cta / per_kv_head);
  const uint32_t rest = cta % per_kv_head;
  w.head = w.kv_head * p.group_size + static_cast<int32_t>(rest % p.group_size);
  const int32_t block = p.query_blocks - 1 - static_cast<int32_t>(rest / p.group_size);
  w.row_begin = block * kSparseBlockSize;
  w.row_end = min(w.row_begin + kSparseBlockSize, p.tokens);
  return w;
}

// Shared-memory addresses (shared window, 1024-aligned base) of the tiles and the meta (also as
// a generic pointer); the barriers follow them (kv_ring_barriers.cuh).
template <class Cfg>
struct SparseSm90Smem : KvRingBarriers<Cfg::kStages> {
  using Ring = KvRingBarriers<Cfg::kStages>;
  static_assert(Ring::kCount + Cfg::kStages + 2 * Cfg::kWalkAhead == Cfg::kBarriers,
                "the ring's barriers, then gather_ready per stage, then the walk ring's");
  uint32_t base;
  uint8_t* generic;  // the same window as a generic pointer (meta reads and writes)
  __device__ uint32_t k(int s) const { return base + Cfg::kSmemK + s * Cfg::kKVTileBytes; }
  __device__ uint32_t v(int s) const { return base + Cfg::kSmemV + s * Cfg::kKVTileBytes; }
  __device__ SparseTileMeta* meta(int s) const {
    return reinterpret_cast<SparseTileMeta*>(generic + Cfg::kSmemMeta + s * Cfg::kMetaBytes);
  }
  __device__ int32_t* cols(int s) const {
    return reinterpret_cast<int32_t*>(generic + Cfg::kSmemMeta + s * Cfg::kMetaBytes +
                                      Cfg::kMetaCols);
  }
  __device__ uint64_t* covered(int s) const {
    return reinterpret_cast<uint64_t*>(generic + Cfg::kSmemMeta + s * Cfg::kMetaBytes +
                                       Cfg::kMetaCovered);
  }
  // A partial gathered tile's key mask per query row (bit c: slot c), as two 32-bit halves
  // (gather warp g writes half g of each row).
  __device__ uint32_t* row_keys(int s) const {
    return reinterpret_cast<uint32_t*>(generic + Cfg::kSmemMeta + s * Cfg::kMetaBytes +
                                       Cfg::kMetaRowKeys);
  }
  __device__ static SparseSm90Smem At(uint32_t base, uint8_t* generic) {
    return SparseSm90Smem{{base + Cfg::kSmemBarriers}, base, generic};
  }
  __device__ uint32_t gather_ready(int s) const {
    return this->bar(Ring::kCount + s);
  }
  __device__ WalkedTile* walked(int q) const {
    return reinterpret_cast<WalkedTile*>(generic + Cfg::kSmemWalk + q * Cfg::kWalkedBytes);
  }
  // walk_full[q]: the walker wrote slot q; walk_empty[q]: the publisher read it (1 arrival each).
  __device__ uint32_t walk_full(int q) const {
    return this->bar(Ring::kCount + Cfg::kStages + q);
  }
  __device__ uint32_t walk_empty(int q) const {
    return this->bar(Ring::kCount + Cfg::kStages + Cfg::kWalkAhead + q);
  }
  // Each consumer warp releases a K stage (it read the stage's meta), one thread a V stage.
  // With gather warps (`gathers`: a vertical-slash head), each of them also releases the K stage
  // (it read the meta too), and the full barriers count their arrivals: K takes the publishing
  // warp's and theirs, V theirs (a TMA tile's loader arrives for all of them).
  __device__ void InitBarriers(bool gathers) const {
    const uint32_t g = gathers ? Cfg::kGatherWarps : 0;
    Ring::InitBarriers(Cfg::kConsumerWarps + g, 1, 1 + g, g > 0 ? g : 1);
    for (int s = 0; s < Cfg::kStages; ++s) sm90::MbarInit(gather_ready(s), 1);
    for (int q = 0; q < Cfg::kWalkAhead; ++q) {
      sm90::MbarInit(walk_full(q), 1);
      sm90::MbarInit(walk_empty(q), 1);
    }
  }
};

// Whether a head's tiles include gathered ones (vertical columns): only then do gather warps run.
__device__ inline bool HeadGathers(const AttentionParams& p, int head) {
  return p.sparse && p.index.heads[head].kind == HeadKind::kVerticalSlash;
}

// Copies 32 rows [row0, row0 + 32) of a gathered K or V tile into stage `dst` (shared address):
// lane l holds the key of row row0 + l. Eight lanes copy one 128-byte line of a row (lane l:
// 16-byte chunk l % 8 of each line), four rows a copy instruction, so lane l copies rows
// l / 8 + 4 k (k < 8), each line of them. Its rows' keys come by shuffle once, before the
// copies; a row's line in the 128-byte swizzle depends only on k % 2 (row0 is a multiple of
// 8), so the copies are two shared and eight global base addresses plus immediates: a copy is
// the cp.async alone. (With a row's key shuffled and its address formed before each copy, 16
// lanes to a row, a gathered tile's K or V cost a gather warp ~80 instructions, issued in
// dependent groups of three; this form cut the warp's instructions per tile from 256 to 201
// and made the gather-heavy (3500, 100) row 1.06-1.09x faster; ncu and A/Bs, H100.)
template <class Cfg>
__device__ __forceinline__ void GatherRows(uint32_t dst, const __nv_bfloat16* base, int kv_head,
                                           int64_t kv_row_stride, uint32_t key_of_lane, int row0) {
  constexpr int kLanesPerLine = 8;                     // 8 x 16 bytes: a 128-byte line
  constexpr int kRowsPerCopy = 32 / kLanesPerLine;     // rows one copy instruction covers
  constexpr int kPasses = 32 / kRowsPerCopy;           // this lane's rows
  constexpr int kLineStride = kRowsPerCopy * 2 * 128;  // rows k and k + 2: 8 rows apart
  const int lane = threadIdx.x % 32;
  const int chunk = lane % kLanesPerLine;
  const int lane_row = lane / kLanesPerLine;
  const char* lane_src = reinterpret_cast<const char*>(
                             base + static_cast<int64_t>(kv_head) * Cfg::kHeadDim) +
                         chunk * 16;
  const uint32_t row_bytes = static_cast<uint32_t>(kv_row_stride) * 2;
  uint32_t lane_dst[2];  // rows lane_row and lane_row + 4 of each 8 (their swizzle differs)
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int row = row0 + lane_row + kRowsPerCopy * e;
    lane_dst[e] = dst + index::SwizzledOffset(row, chunk, 128);
  }
  const char* src[kPasses];
#pragma unroll
  for (int k = 0; k < kPasses; ++k) {
    const uint32_t key = __shfl_sync(0xffffffffu, key_of_lane, kRowsPerCopy * k + lane_row);
    src[k] = lane_src + static_cast<uint64_t>(key) * row_bytes;
  }
#pragma unroll
  for (int k = 0; k < kPasses; ++k) {
#pragma unroll
    for (int b = 0; b < Cfg::kColumnBlocks; ++b) {
      CpAsync16(lane_dst[k % 2] + (k / 2) * kLineStride + b * Cfg::kKVBlockBytes, src[k] + b * 128,
                true);
    }
  }
}

// The transpose of the warp's 32 x 32 bit matrix (lane l holds row l, bit j its column j): lane
// j gets column j (bit l: row l's bit j). Five steps of a shuffle and a swap of half-blocks.
__device__ __forceinline__ uint32_t WarpTransposeBits(uint32_t x) {
  const int lane = threadIdx.x % 32;
  constexpr uint32_t kKeep[5] = {0x0000ffffu, 0x00ff00ffu, 0x0f0f0f0fu, 0x33333333u, 0x55555555u};
#pragma unroll
  for (int step = 0; step < 5; ++step) {
    const int width = 16 >> step;
    const uint32_t keep = kKeep[step];
    const uint32_t other = __shfl_xor_sync(0xffffffffu, x, width);
    // The lower lane of a pair keeps its low half-blocks and takes the partner's low ones as
    // its high; the upper lane keeps its high half-blocks and takes the partner's high as low.
    x = (lane & width) ? (x & ~keep) | ((other >> width) & keep)
                       : (x & keep) | ((other & keep) << width);
  }
  return x;
}

// The walking producer warp: all 32 lanes walk the block's tile sequence (KeyTileCursor, the
// diagonal walk is warp-cooperative) and hand each tile, with whether it is the last, to the
// publishing warp through a ring of Cfg::kWalkAhead slots.
template <class Cfg>
__device__ void SparseWalker(const SparseSm90Params& sp, const SparseSm90Smem<Cfg>& sm,
                             const SparseWorkTile& w) {
  const int lane = threadIdx.x % 32;
  KeyTileCursor cursor(sp.attn, w.head, w.row_begin, w.row_end);
  KeyTile cur;
  if (!cursor.Next(&cur)) {
    // Nothing to compute (no pattern leaves a row without its own key, but the index format
    // allows it): one all-masked tile of real keys, so V * 0 stays finite.
    cur = KeyTile{};
    cur.hi = -1;
  }
  for (int i = 0;; ++i) {
    KeyTile next;
    const bool have_next = cursor.Next(&next);
    const int q = i % Cfg::kWalkAhead;
    const int use = i / Cfg::kWalkAhead;
    if (use > 0) sm90::MbarWait(sm.walk_empty(q), (use - 1) & 1);
    if (lane == 0) {
      sm.walked(q)->tile = cur;
      sm.walked(q)->last = have_next ? 0 : 1;
      sm90::MbarArrive(sm.walk_full(q));  // releases the slot's writes
    }
    if (!have_next) break;
    cur = next;
  }
}

// The publishing producer warp: takes the walked tiles in order. Per tile it writes the meta (for
// a gathered tile also its columns and covered-row masks) and, for key ranges, lane 0 loads K and
// V by TMA; a gathered tile's rows are the gather warps' (SparseGatherer).
template <class Cfg>
__device__ void SparseProducer(const SparseSm90Params& sp, const SparseSm90Smem<Cfg>& sm,
                               const SparseWorkTile& w, bool gathers) {
  constexpr int kStages = Cfg::kStages;
  const AttentionParams& p = sp.attn;
  const int lane = threadIdx.x % 32;

  HeadDescriptor desc{};  // a gathered tile's columns and bands
  if (p.sparse) desc = p.index.heads[w.head];
  // The next walked tile (all lanes read the slot, then lane 0 frees it).
  auto take = [&](int i, KeyTile* tile) {
    const int q = i % Cfg::kWalkAhead;
    sm90::MbarWait(sm.walk_full(q), (i / Cfg::kWalkAhead) & 1);
    *tile = sm.walked(q)->tile;
    const bool last = sm.walked(q)->last != 0;
    __syncwarp();
    if (lane == 0) sm90::MbarArrive(sm.walk_empty(q));
    return !last;
  };

  // A key range's K or V into stage `dst` by TMA, completing on `full` (lane 0); with gather
  // warps it arrives for them too (`gather_arrivals`: their count on this barrier).
  auto load_range = [&](const CUtensorMap* map, uint32_t dst, uint32_t full, int32_t begin,
                        uint32_t gather_arrivals) {
    if (lane != 0) return;
    sm90::MbarArriveExpectTx(full, Cfg::kKVTileBytes, gathers ? gather_arrivals : 1u);
#pragma unroll
    for (int b = 0; b < Cfg::kColumnBlocks; ++b) {
      sm90::TmaLoad3d(dst + b * Cfg::kKVBlockBytes, map, full, b * 64, w.kv_head, begin);
    }
  };
  KeyTile cur;
  bool have_next = take(0, &cur);
  // The previous tile's V (loaded after this tile's K) when it is a key range.
  bool prev_range = false;
  int32_t prev_begin = 0;
  int i = 0;
  for (;;) {
    // A gathered tile's columns: lane l reads those of rows l and l + 32 (-1 past the tile).
    int32_t cols[2] = {-1, -1};
    if (cur.gather) {
      const int32_t* list = p.index.verticals + desc.vertical_begin + cur.begin;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (lane + 32 * h < cur.count) cols[h] = list[lane + 32 * h];
      }
    }
    // Decided before the wait for a free stage, so that it does not delay the loads after it.
    const int32_t full_range = !cur.gather && TileIsFull(cur, w.row_begin, w.row_end) ? 1 : 0;
    const int s = i % kStages;
    const int use = i / kStages;
    if (use > 0) sm90::MbarWait(sm.k_empty(s), (use - 1) & 1);
    if (lane == 0) {
      sm.meta(s)->tile = cur;
      sm.meta(s)->last = have_next ? 0 : 1;
      sm.meta(s)->full = full_range;  // a gathered tile's is set below
    }
    if (cur.gather) {
      // Whether every (row, column) pair of the tile is computed: 64 columns, each at or before
      // the block's first row, inside the window for its last row, covered by no band.
      bool all_in = cur.count == 64 && w.row_end - w.row_begin == 64;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int slot = lane + 32 * h;
        const uint64_t covered = cols[h] >= 0 && desc.band_count > 0
                                     ? RowsCoveredByBands(p, desc, w.row_begin, cols[h])
                                     : 0ull;
        sm.cols(s)[slot] = cols[h] >= 0 ? cols[h] : INT32_MAX;
        sm.covered(s)[slot] = covered;
        all_in = all_in && cols[h] >= 0 && cols[h] <= w.row_begin && covered == 0 &&
                 w.row_end - 1 - cols[h] <= cur.hi;
      }
      all_in = __all_sync(0xffffffffu, all_in);
      if (lane == 0) sm.meta(s)->full = all_in ? 1 : 0;
    }
    __syncwarp();  // the meta the lanes wrote is ordered before lane 0's arrivals
    if (gathers && lane == 0) sm90::MbarArrive(sm.gather_ready(s));
    if (cur.gather) {
      if (lane == 0) sm90::MbarArrive(sm.k_full(s));  // the meta; the gather warps add the rows
    } else {
      load_range(&sp.tma_k, sm.k(s), sm.k_full(s), cur.begin, 1 + Cfg::kGatherWarps);
    }
    if (i > 0 && prev_range) {
      const int ps = (i - 1) % kStages;
      const int puse = (i - 1) / kStages;
      if (puse > 0) sm90::MbarWait(sm.v_empty(ps), (puse - 1) & 1);
      load_range(&sp.tma_v, sm.v(ps), sm.v_full(ps), prev_begin, Cfg::kGatherWarps);
    }
    if (!have_next) break;
    prev_range = !cur.gather;
    prev_begin = cur.begin;
    ++i;
    have_next = take(i, &cur);
  }
  if (!cur.gather) {
    const int s = i % kStages;
    const int use = i / kStages;
    if (use > 0) sm90::MbarWait(sm.v_empty(s), (use - 1) & 1);
    load_range(&sp.tma_v, sm.v(s), sm.v_full(s), cur.begin, Cfg::kGatherWarps);
  }
}

// A gather warp of a vertical-slash head: follows the published tiles and, for each gathered
// one, copies its 32 rows of K (then, once the stage's V is free, of V); it also releases each
// K stage's meta. Rows past the tile copy the tile's first column (the consumer masks them;
// real data keeps P V finite). The copies are published a tile late: the warp waits for a
// tile's copies only once the next tile's K copies are in flight (or when it would otherwise
// wait for the next tile, or has none), fences them for the async proxy and arrives on the full
// barriers, so the consumer's wgmmas read them unfenced (its two fences per gathered tile were
// ~4% of its samples on gather-heavy lists) and the warp still keeps ahead of it.
template <class Cfg>
__device__ void SparseGatherer(const SparseSm90Params& sp, const SparseSm90Smem<Cfg>& sm,
                               const SparseWorkTile& w, int gatherer) {
  constexpr int kStages = Cfg::kStages;
  const AttentionParams& p = sp.attn;
  const int lane = threadIdx.x % 32;
  const int row0 = 32 * gatherer;
  int pending = -1;  // the stage of a gathered tile whose copies this warp has not published
  // The pending tile's copies landed (the caller waited): fence them, then its K and V are out.
  auto publish = [&] {
    index::FenceProxyAsyncShared();
    __syncwarp();
    if (lane == 0) {
      sm90::MbarArrive(sm.k_full(pending));
      sm90::MbarArrive(sm.v_full(pending));
    }
    pending = -1;
  };
  for (int i = 0;; ++i) {
    const int s = i % kStages;
    const int use = i / kStages;
    if (pending >= 0 &&
        !__shfl_sync(0xffffffffu, sm90::MbarTest(sm.gather_ready(s), use & 1), 0)) {
      CpAsyncWait<0>();  // the next tile is not out yet: do not hold this one meanwhile
      publish();
    }
    sm90::MbarWait(sm.gather_ready(s), use & 1);
    const bool gather = sm.meta(s)->tile.gather;
    const bool last = sm.meta(s)->last != 0;
    int32_t mine = INT32_MAX;  // this lane's column (slot row0 + lane)
    uint32_t key = 0;
    if (gather) {
      mine = sm.cols(s)[row0 + lane];
      key = static_cast<uint32_t>(mine != INT32_MAX ? mine : sm.cols(s)[0]);
      GatherRows<Cfg>(sm.k(s), p.k, w.kv_head, p.kv_row_stride, key, row0);
      CpAsyncCommit();
      // While the copies fly: a partial tile's key mask per query row, for the consumer's
      // constant-bit tests (a per-element test of columns and covered rows cost it more than
      // the tile's softmax). Lane l has column slot row0 + l and the rows that compute it; the
      // bit-matrix transpose gives lane l this warp's 32 slots of rows l and l + 32.
      if (!sm.meta(s)->full) {
        const uint64_t rows = GatherColumnRows(mine, sm.meta(s)->tile.hi,
                                               sm.covered(s)[row0 + lane], w.row_begin, w.row_end);
        sm.row_keys(s)[2 * lane + gatherer] = WarpTransposeBits(static_cast<uint32_t>(rows));
        sm.row_keys(s)[2 * (lane + 32) + gatherer] =
            WarpTransposeBits(static_cast<uint32_t>(rows >> 32));
      }
    }
    __syncwarp();
    if (lane == 0) sm90::MbarArrive(sm.k_empty(s));  // done with the stage's meta
    if (pending >= 0) {
      // The previous gathered tile: all but this tile's K group (if any) landed.
      if (gather) {
        CpAsyncWait<1>();
      } else {
        CpAsyncWait<0>();
      }
      publish();
    }
    if (gather) {
      if (use > 0) sm90::MbarWait(sm.v_empty(s), (use - 1) & 1);
      GatherRows<Cfg>(sm.v(s), p.v, w.kv_head, p.kv_row_stride, key, row0);
      CpAsyncCommit();
      pending = s;
    }
    if (last) {
      if (pending >= 0) {
        CpAsyncWait<0>();
        publish();
      }
      break;
    }
  }
}

// The consumer warpgroup: 64 query rows over the published tiles. Leaves the unnormalised O,
// this thread's part of the row sums (rows 16 warp + lane / 4 + 8 h), its count of pairs and
// the block's count of tiles.
template <class Cfg>
__device__ void SparseConsumer(const SparseSm90Params& sp, const SparseSm90Smem<Cfg>& sm,
                               const SparseWorkTile& w, float (&o)[Cfg::kHeadDim / 2],
                               float (&row_sum)[2], unsigned long long& pairs, int& tiles) {
  constexpr int kHeadDim = Cfg::kHeadDim;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kStages = Cfg::kStages;
  constexpr int kPVSteps = kBlockN / 16;
  const float kNegInf = __int_as_float(0xff800000);
  const AttentionParams& p = sp.attn;

  const int tid = threadIdx.x % 128;
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int32_t rows[2] = {w.row_begin + 16 * warp + lane / 4, w.row_begin + 16 * warp + lane / 4 + 8};
  const bool full_block = w.row_end - w.row_begin == Cfg::kBlockM;
  const float scale_log2 = p.scale_log2;
  // Pairs this thread computed (32 per full tile: fits 32 bits for any block's tile count).
  uint32_t pairs32 = 0;

  float row_max[2];
  float s[32];  // S tile (64 rows x 64 keys over the warpgroup), then P in fp32
  uint32_t pf[kPVSteps][4];
  ZeroConsumerState<kHeadDim, kBlockN, kPVSteps>(o, s, pf, row_max, row_sum);

  auto issue_pv = [&](int vs) { IssuePV<kHeadDim, kPVSteps, Cfg::kKVBlockBytes>(o, pf, sm.v(vs)); };

  uint32_t qa[kHeadDim / 16][4];  // Q as A fragments, loaded once Q has landed
  auto issue_s = [&](int ks) {
    IssueQKQInRegisters<kHeadDim, kPVSteps, Cfg::kKVBlockBytes>(s, o, pf, qa, sm.k(ks));
  };

  // Masks the pairs stage ks's tile does not compute and counts those it does. A partial tile's
  // fields are read from the stage's meta in shared memory here, not held in registers across
  // the mainloop (the consumer has none to spare).
  auto mask = [&](int ks, bool full) {
    if (full) {
      pairs32 += 2 * kBlockN / 4;  // this thread's 2 rows x 16 keys
      return;
    }
    // One key mask per row (a gathered tile's from the gather warps); this thread's keys are
    // 8 j + 2 (lane % 4) + {0, 1}, so after a shift by 2 (lane % 4) each element tests a
    // constant bit.
    const KeyTile& t = sm.meta(ks)->tile;
    const uint64_t* gathered = reinterpret_cast<const uint64_t*>(sm.row_keys(ks));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint64_t row_keys = t.gather ? gathered[rows[h] - w.row_begin]
                                         : RowKeyMask(t, rows[h], w.row_begin, w.row_end);
      const uint64_t keys = row_keys >> (2 * (lane % 4));
      pairs32 += __popcll(keys & 0x0303030303030303ull);
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (!((keys >> (8 * j + e)) & 1ull)) s[4 * j + 2 * h + e] = kNegInf;
        }
      }
    }
  };

  auto softmax = [&](float (&rescale)[2]) {
    OnlineSoftmax<kBlockN>(s, row_max, row_sum, scale_log2, rescale);
  };
  auto pack_p = [&] { PackP<kPVSteps>(s, pf); };

  // This warp is done with stage ks's K and meta.
  auto release_k = [&](int ks) {
    __syncwarp();
    if (lane == 0) sm90::MbarArrive(sm.k_empty(ks));
  };

  LoadQFragments<kHeadDim>(p.q + static_cast<int64_t>(w.head) * kHeadDim, p.q_row_stride,
                           w.row_begin, p.tokens, qa);

  // 1. Tile 0.
  bool last;
  {
    float rescale[2];
    sm90::MbarWait(sm.k_full(0), 0);
    last = sm.meta(0)->last != 0;
    const bool full = sm.meta(0)->full != 0;
    issue_s(0);
    index::WgmmaWait<0>();
    index::FenceOperands<0, 32>(s);
    mask(0, full);
    release_k(0);
    softmax(rescale);
    pack_p();
  }
  int i = 0;
  // Stage and phase of tile i, stepped rather than divided by kStages in the loop: the
  // division's integer ops sat between the S and P V wgmmas.
  int ks = 0, vs = 0;
  uint32_t k_phase = 0, v_phase = 0;

  // 2. Tiles 1.. : S_i, then O += P_{i-1} V_{i-1}; the softmax of S_i while P V runs.
  while (!last) {
    ++i;
    vs = ks;
    v_phase = k_phase;
    if (++ks == kStages) {
      ks = 0;
      k_phase ^= 1;
    }
    sm90::MbarWait(sm.k_full(ks), k_phase);
    const bool is_last = sm.meta(ks)->last != 0;
    const bool full = sm.meta(ks)->full != 0;
    issue_s(ks);
    sm90::MbarWait(sm.v_full(vs), v_phase);
    issue_pv(vs);
    index::WgmmaCommit();
    index::WgmmaWait<1>();
    index::FenceOperands<0, 32>(s);
    mask(ks, full);
    release_k(ks);

    float rescale[2];
    softmax(rescale);

    index::WgmmaWait<0>();
    index::FenceOperands<0, kHeadDim / 2>(o);
    sm90::FenceRegisters(pf);
    if (tid == 0) sm90::MbarArrive(sm.v_empty(vs));
    RescaleO<kHeadDim>(o, rescale);
    pack_p();
    last = is_last;
  }

  // 3. The last tile's O += P V.
  vs = ks;
  sm90::MbarWait(sm.v_full(vs), k_phase);
  LastPV<kHeadDim, kPVSteps, Cfg::kKVBlockBytes>(o, pf, sm.v(vs));
  if (tid == 0) sm90::MbarArrive(sm.v_empty(vs));
  pairs = pairs32;
  tiles = i + 1;
}

}  // namespace sparsefill::kernels::cuda
