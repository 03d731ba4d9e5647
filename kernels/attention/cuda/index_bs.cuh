// Block-sparse estimation (MInference; CPU reference EstimateBlockSparseRef): mean-pool q and k
// over 64-token blocks, score every query block against the causal key blocks with the pooled
// vectors, keep per query block the first block, the diagonal block and the top (budget - 2)
// others by score, ties to the lower block.
//
// BlockPoolKernel: one CTA per 64-token block x 128 segments of 8 channels; each thread sums its
// segment over the block's tokens (16-byte loads, 8 in flight) and writes the mean as bf16 hi/lo.
// This kernel reads all of q for the block-sparse heads once: at 128K tokens and 32 heads of 128
// channels that is 1 GiB, the floor of block-sparse estimation unless the pooling is fused into
// the producer of q (RoPE).
//
// BlockSelectKernel: one CTA per (head, 64 or 16 query blocks). Pooled scores come from
// mma.m16n8k16 on the hi/lo split: hi_q.hi_k + hi_q.lo_k + lo_q.hi_k (the dropped lo.lo term is
// ~2^-16 relative; fp32 accumulation). Key tiles of 64 blocks are walked from the diagonal down
// to block 0 (recent blocks usually score highest, which raises the thresholds early). Each row
// keeps a candidate buffer of (ordered score << 32 | ~block) keys in shared memory; a key enters
// only if it reaches the row's threshold: first a lower bound of the row's k-th best score from a
// pre-pass over per-group maxima, later the k-th best key so far. When a row's buffer could
// overflow with the next tile, its warp keeps the top k (radix select in registers, WarpKeepTop).
// At the end each row's winners are sorted by block in registers (WarpSortAscending) and written
// between block 0 and the diagonal block.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/cuda/index_launch.cuh"
#include "kernels/attention/cuda/index_ptx.cuh"
#include "kernels/attention/cuda/index_tables.cuh"
#include "kernels/attention/cuda/index_warp_select.cuh"

namespace sparsefill::kernels::cuda::index {

inline constexpr int kPoolThreads = 128;
inline constexpr int kPoolInFlight = 8;  // 16-byte loads per thread before the first use

template <int kHeadDimT, int kRowsT, int kCapT>
struct BsSelectConfig {
  static constexpr int kHeadDim = kHeadDimT;
  // Query blocks per CTA: 64 shares every pooled-k tile among 64 rows; 16 (one m16 tile) leaves
  // room for 1024-key buffers when top_k is large.
  static constexpr int kRows = kRowsT;
  // Candidate keys per row; a row is compacted to its top k when the next tile might overflow it,
  // so k <= kCap - kTileKeys.
  static constexpr int kCap = kCapT;
  static constexpr int kTileKeys = kBsTileKeys;  // key blocks per tile
  static constexpr int kMaxRest = kCap - kTileKeys;
  static constexpr int kWarps = 8;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kWarpsM = kRows / 16;
  static constexpr int kWarpsN = kWarps / kWarpsM;
  static constexpr int kWarpKeys = kTileKeys / kWarpsN;
  static constexpr int kNTiles = kWarpKeys / 8;
  static constexpr int kKSteps = kHeadDim / 16;
  // A pooled row is hi (head_dim bf16) then lo (head_dim bf16).
  static constexpr int kRowBytes = 2 * kHeadDim * 2;
  static constexpr int kChunksPerRow = kRowBytes / 16;
  static constexpr int kLoChunk = kHeadDim / 8;  // first 16-byte chunk of the lo half
  static constexpr int kSmemKeys = kRows * kCap * 8;
  static constexpr int kSmemA = kRows * kRowBytes;
  static constexpr int kSmemB = kTileKeys * kRowBytes;  // one stage; two stages
  static constexpr int kSmemBytes = kSmemKeys + kSmemA + 2 * kSmemB + kRows * (8 + 4 + 4);
  static constexpr int kPerLane = kCap / 32;  // keys per lane when a warp selects in registers
  // Group maxima per row for the threshold pre-pass (the lower bound needs rest <= kGroups).
  static constexpr int kGroups = 256;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(kRows % 16 == 0 && kWarps % kWarpsM == 0, "whole m16 tiles per warp row");
  static_assert(kWarpKeys % 8 == 0 && kNTiles >= 1, "whole n8 tiles per warp");
  static_assert((kCap & (kCap - 1)) == 0 && kCap >= 2 * kTileKeys, "a power of two: the register sort");
  static_assert(kChunksPerRow >= 8, "the swizzle XORs with row % 8");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per CTA on sm_90");
  static_assert(kWarps * 256 * 4 <= kSmemB, "a consumed B stage holds the warps' histograms");
  static_assert(kWarps * kGroups * 8 <= kSmemB, "a B stage holds the warps' group-maximum lists");
  static_assert(kRows * kGroups * 4 <= kSmemKeys, "the group maxima fit the key buffers");
  static_assert(kGroups % 32 == 0, "whole lanes per group list");
};

// ---- pooling ----------------------------------------------------------------------------------

template <int kHeadDim>
__global__ void __launch_bounds__(kPoolThreads) BlockPoolKernel(const BsParams p) {
  constexpr int kSegments = kHeadDim / 8;  // 8-channel segments per head
  const int seg = blockIdx.y * kPoolThreads + threadIdx.x;
  if (seg >= p.pool_entries * kSegments) return;
  const PoolEntry e = p.pool[seg / kSegments];
  const int d0 = (seg % kSegments) * 8;
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kSparseBlockSize;
  const int n = p.tokens - t0 < kSparseBlockSize ? static_cast<int>(p.tokens - t0) : kSparseBlockSize;
  const int heads = e.from_k ? p.kv_heads : p.q_heads;
  const uint4* src = reinterpret_cast<const uint4*>((e.from_k ? p.k : p.q) +
                                                     (t0 * heads + e.head) * kHeadDim + d0);
  const int64_t step = static_cast<int64_t>(heads) * kHeadDim / 8;  // uint4 per token row
  // Sum of the block's tokens, 8 channels, fp32.
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int t = 0; t < n; t += kPoolInFlight) {
    uint4 v[kPoolInFlight];
#pragma unroll
    for (int u = 0; u < kPoolInFlight; ++u) {
      v[u] = t + u < n ? __ldg(src + (t + u) * step) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kPoolInFlight; ++u) {
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v[u]);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 f = __bfloat1622float2(h[j]);
        acc[2 * j] += f.x;
        acc[2 * j + 1] += f.y;
      }
    }
  }
  // Mean, then hi = bf16(mean) and lo = bf16(mean - hi).
  const float inv = 1.f / static_cast<float>(n);
  uint4 hi, lo;
  __nv_bfloat162* hi2 = reinterpret_cast<__nv_bfloat162*>(&hi);
  __nv_bfloat162* lo2 = reinterpret_cast<__nv_bfloat162*>(&lo);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float m0 = acc[2 * j] * inv, m1 = acc[2 * j + 1] * inv;
    hi2[j] = __floats2bfloat162_rn(m0, m1);
    const float2 h = __bfloat1622float2(hi2[j]);
    lo2[j] = __floats2bfloat162_rn(m0 - h.x, m1 - h.y);
  }
  __nv_bfloat16* dst = (e.from_k ? p.pooled_k : p.pooled_q) +
                       (static_cast<int64_t>(e.slot) * p.query_blocks + blockIdx.x) * (2 * kHeadDim) + d0;
  *reinterpret_cast<uint4*>(dst) = hi;
  *reinterpret_cast<uint4*>(dst + kHeadDim) = lo;
}

// ---- per-row selection ------------------------------------------------------------------------

// Blocks kept besides the forced ones for query block bq: budget - forced, budget =
// clamp(top_k, min(2, bq + 1), bq + 1), forced = block 0 and (bq > 0) the diagonal block.
__device__ __forceinline__ int BlockRowRest(int top_k, int bq) {
  const int budget = min(max(top_k, min(2, bq + 1)), bq + 1);
  return budget - (bq == 0 ? 1 : 2);
}

// Total order of floats as unsigned integers (larger float -> larger integer); -0 == +0.
__device__ __forceinline__ uint32_t OrderedFloat(float x) {
  const uint32_t b = __float_as_uint(x + 0.f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

template <class Cfg>
__device__ __forceinline__ void LoadPooledRows(const __nv_bfloat16* pooled, int first, int rows,
                                               int limit, uint8_t* dst) {
  for (int i = threadIdx.x; i < rows * Cfg::kChunksPerRow; i += Cfg::kThreads) {
    const int r = i / Cfg::kChunksPerRow, chunk = i % Cfg::kChunksPerRow;
    const int64_t block = static_cast<int64_t>(first) + r;
    const bool valid = block < limit;
    CpAsync16(dst + SwizzledOffset(r, chunk, Cfg::kRowBytes),
              pooled + (valid ? block : 0) * (2 * Cfg::kHeadDim) + chunk * 8, valid);
  }
}

// Pooled scores of one key tile: rows 16 wm + g (+8) x keys wn * kWarpKeys + 8 nt + 2c (+1),
// acc[nt][e] with e = 2 (row +8) + (key +1). hi_q.hi_k + hi_q.lo_k + lo_q.hi_k, fp32.
template <class Cfg>
__device__ __forceinline__ void PooledScoreTile(const uint8_t* tile_a, const uint8_t* b_stage,
                                                int wm, int wn, int lane,
                                                float (&acc)[Cfg::kNTiles][4]) {
  const int mat = lane >> 3;
#pragma unroll
  for (int nt = 0; nt < Cfg::kNTiles; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[nt][e] = 0.f;
#pragma unroll
  for (int ks = 0; ks < Cfg::kKSteps; ++ks) {
    uint32_t a_hi[4], a_lo[4];
    const int a_row = 16 * wm + (lane & 7) + ((mat & 1) << 3);
    LdMatrixX4(a_hi, tile_a + SwizzledOffset(a_row, 2 * ks + (mat >> 1), Cfg::kRowBytes));
    LdMatrixX4(a_lo, tile_a + SwizzledOffset(a_row, Cfg::kLoChunk + 2 * ks + (mat >> 1), Cfg::kRowBytes));
#pragma unroll
    for (int nt = 0; nt < Cfg::kNTiles; ++nt) {
      // Matrices: hi k0-7, hi k8-15, lo k0-7, lo k8-15 of 8 key rows.
      uint32_t b[4];
      const int b_row = wn * Cfg::kWarpKeys + 8 * nt + (lane & 7);
      const int b_chunk = 2 * ks + (mat & 1) + (mat >> 1) * Cfg::kLoChunk;
      LdMatrixX4(b, b_stage + SwizzledOffset(b_row, b_chunk, Cfg::kRowBytes));
      MmaBf16(acc[nt], a_hi, b[0], b[1]);
      MmaBf16(acc[nt], a_hi, b[2], b[3]);
      MmaBf16(acc[nt], a_lo, b[0], b[1]);
    }
  }
}

// One CTA per SM (its shared memory says so); telling ptxas lets it keep the loop state in
// registers instead of spilling it to reach a higher occupancy.
//
// Two passes over the row tile's key tiles (the pooled scores are recomputed: cheap next to the
// selection they save):
//   1. group maxima: for every row, the largest score of each group of `group` consecutive
//      candidate blocks (at most kGroups groups). The rest-th largest group maximum is a lower
//      bound of the row's rest-th largest score (rest groups, hence rest blocks, reach it).
//   2. streaming top-k from that bound: keys at or above the row's threshold enter its buffer
//      (usually little more than `rest` of them); a full buffer keeps its top `rest` and the
//      threshold rises to the rest-th key.
template <int kHeadDim, int kRows, int kCap>
__global__ void __launch_bounds__(BsSelectConfig<kHeadDim, kRows, kCap>::kThreads, 1)
    BlockSelectKernel(const BsParams p) {
  using Cfg = BsSelectConfig<kHeadDim, kRows, kCap>;
  extern __shared__ __align__(128) uint8_t smem[];
  // keys [kRows][kCap] u64 (pass 1: group maxima [kRows][kGroups] u32) | A [kRows][2 head_dim]
  // bf16 | B [2][64][2 head_dim] bf16 | threshold [kRows] u64 | count [kRows] | rest [kRows]
  uint64_t* keys = reinterpret_cast<uint64_t*>(smem);
  uint32_t* group_max = reinterpret_cast<uint32_t*>(smem);
  uint8_t* tile_a = smem + Cfg::kSmemKeys;
  uint8_t* tile_b = tile_a + Cfg::kSmemA;
  uint64_t* threshold = reinterpret_cast<uint64_t*>(tile_b + 2 * Cfg::kSmemB);
  int* count = reinterpret_cast<int*>(threshold + kRows);
  int* rest = count + kRows;

  const BsHead head = p.heads[blockIdx.y];
  const int nb = p.query_blocks;
  const int row_tiles = (nb + kRows - 1) / kRows;
  const int bq0 = (row_tiles - 1 - static_cast<int>(blockIdx.x)) * kRows;  // heavy rows first
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, c = lane & 3;
  const int wm = warp / Cfg::kWarpsN, wn = warp % Cfg::kWarpsN;
  // Candidate blocks per group: a multiple of 8 (one n8 tile), at most kGroups groups per row.
  const int group = 8 * ((nb + 8 * Cfg::kGroups - 1) / (8 * Cfg::kGroups));

  // Rows that need a selection: more candidates (blocks 1..bq-1) than places (rest > 0).
  bool needs = false;
  if (tid < kRows) {
    const int bq = bq0 + tid;
    const int r = bq < nb ? BlockRowRest(head.top_k, bq) : 0;
    rest[tid] = r;
    count[tid] = 0;
    threshold[tid] = 0;  // below every real key
    needs = bq < nb && r > 0 && r < bq - 1;
  }
  if (__syncthreads_or(needs)) {
    const __nv_bfloat16* pq = p.pooled_q + static_cast<int64_t>(head.q_slot) * nb * (2 * kHeadDim);
    const __nv_bfloat16* pk = p.pooled_k + static_cast<int64_t>(head.kv_slot) * nb * (2 * kHeadDim);
    const int last_tile = (min(bq0 + kRows, nb) - 1) / Cfg::kTileKeys;
    LoadPooledRows<Cfg>(pq, bq0, kRows, nb, tile_a);
    // Walks the key tiles from the diagonal down (2-stage cp.async ring); body(kt, acc) sees
    // every tile's scores. Ends with all threads past their last use of the ring.
    auto for_each_tile = [&](auto&& body) {
      LoadPooledRows<Cfg>(pk, last_tile * Cfg::kTileKeys, Cfg::kTileKeys, nb, tile_b);
      CpAsyncCommit();
      for (int kt = last_tile, it = 0; kt >= 0; --kt, ++it) {
        if (kt > 0) {
          LoadPooledRows<Cfg>(pk, (kt - 1) * Cfg::kTileKeys, Cfg::kTileKeys, nb,
                              tile_b + ((it + 1) & 1) * Cfg::kSmemB);
        }
        CpAsyncCommit();
        CpAsyncWait<1>();
        __syncthreads();  // tile kt (and A) landed
        uint8_t* b_stage = tile_b + (it & 1) * Cfg::kSmemB;
        float acc[Cfg::kNTiles][4];
        PooledScoreTile<Cfg>(tile_a, b_stage, wm, wn, lane, acc);
        body(kt, b_stage, acc);
        __syncthreads();  // the stage is refilled by the next iteration's prefetch
      }
      CpAsyncWait<0>();
    };
    // This thread's two rows (16 wm + g + 8 half): candidates are blocks 1 .. limit[half] - 1,
    // none (limit 1) when the row needs no selection.
    int limit[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = 16 * wm + g + 8 * half, rr = rest[r], bq = bq0 + r;
      limit[half] = rr > 0 && rr < bq - 1 ? bq : 1;
    }

    // Pass 1: group maxima (ordered floats; 0 = no candidate).
    for (int i = tid; i < kRows * Cfg::kGroups; i += Cfg::kThreads) group_max[i] = 0;
    __syncthreads();
    for_each_tile([&](int kt, uint8_t*, float (&acc)[Cfg::kNTiles][4]) {
#pragma unroll
      for (int nt = 0; nt < Cfg::kNTiles; ++nt) {
        const int bk0 = kt * Cfg::kTileKeys + wn * Cfg::kWarpKeys + 8 * nt;  // the n8 tile's first block
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int r = 16 * wm + g + 8 * half;
          uint32_t m = 0;
#pragma unroll
          for (int b = 0; b < 2; ++b) {
            const int bk = bk0 + 2 * c + b;
            if (bk >= 1 && bk < limit[half]) m = max(m, OrderedFloat(acc[nt][2 * half + b]));
          }
          // The 4 lanes of the quad cover the n8 tile.
          m = max(m, __shfl_xor_sync(0xffffffffu, m, 1));
          m = max(m, __shfl_xor_sync(0xffffffffu, m, 2));
          if (c == 0 && m != 0) atomicMax(group_max + r * Cfg::kGroups + bk0 / group, m);
        }
      }
    });
    // Per row: the rest-th largest group maximum (keys ordered max << 32 | group are distinct);
    // the consumed B stages hold the warps' key lists and histograms.
    {
      uint64_t* list = reinterpret_cast<uint64_t*>(tile_b) + warp * Cfg::kGroups;
      uint32_t* hist = reinterpret_cast<uint32_t*>(tile_b + Cfg::kSmemB) + warp * 256;
      for (int r = warp; r < kRows; r += Cfg::kWarps) {
        const int rr = rest[r], bq = bq0 + r;
        if (!(rr > 0 && rr < bq - 1)) continue;
        int n = 0;
        for (int i0 = 0; i0 < Cfg::kGroups; i0 += 32) {
          const uint32_t m = group_max[r * Cfg::kGroups + i0 + lane];
          const uint32_t ballot = __ballot_sync(0xffffffffu, m != 0);
          if (m != 0) list[n + __popc(ballot & ((1u << lane) - 1u))] = (static_cast<uint64_t>(m) << 32) | (i0 + lane);
          n += __popc(ballot);
        }
        __syncwarp();
        if (n >= rr) {
          const uint64_t kth = WarpKeepTop<Cfg::kGroups / 32>(list, n, rr, hist, lane);
          if (lane == 0) threshold[r] = kth & 0xffffffff00000000ull;  // score part: ties enter too
        }
        __syncwarp();
      }
    }
    __syncthreads();  // thresholds set; the group maxima are dead (the key buffers reuse them)

    // Pass 2: streaming top-k from the thresholds.
    for_each_tile([&](int kt, uint8_t* b_stage, float (&acc)[Cfg::kNTiles][4]) {
      // Append the keys at or above their row's threshold (causal, forced blocks excluded). The
      // 1/sqrt(head_dim) scale is left out: it does not change any ranking. Scores are compared
      // on their 32 ordered bits first; the 64-bit key only decides ties with the threshold.
      uint32_t thr_hi[2], thr_lo[2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const uint64_t t = threshold[16 * wm + g + 8 * half];
        thr_hi[half] = static_cast<uint32_t>(t >> 32);
        thr_lo[half] = static_cast<uint32_t>(t);
      }
#pragma unroll
      for (int nt = 0; nt < Cfg::kNTiles; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int half = e >> 1, r = 16 * wm + g + 8 * half;
          const int bk = kt * Cfg::kTileKeys + wn * Cfg::kWarpKeys + 8 * nt + 2 * c + (e & 1);
          const uint32_t score = OrderedFloat(acc[nt][e]), low = 0xffffffffu - static_cast<uint32_t>(bk);
          const bool above = score > thr_hi[half] || (score == thr_hi[half] && low >= thr_lo[half]);
          if (bk >= 1 && bk < limit[half] && above) {
            keys[r * kCap + atomicAdd(count + r, 1)] = (static_cast<uint64_t>(score) << 32) | low;
          }
        }
      __syncthreads();
      // Rows that could overflow with the next tile keep only their top `rest`; the B stage just
      // consumed holds the warps' histograms (the next prefetch into it follows the barrier).
      uint32_t* hist = reinterpret_cast<uint32_t*>(b_stage) + warp * 256;
      for (int r = warp; r < kRows; r += Cfg::kWarps) {
        const int n = count[r];
        if (n <= Cfg::kMaxRest) continue;
        const uint64_t kth = WarpKeepTop<Cfg::kPerLane>(keys + r * kCap, n, rest[r], hist, lane);
        if (lane == 0) {
          threshold[r] = kth + 1;  // strictly above the rest-th key from now on
          count[r] = rest[r];
        }
        __syncwarp();
      }
    });
  }

  // Output rows: 0, the selected blocks ascending, bq; -1 pads the row to blocks_per_row.
  for (int r = warp; r < kRows; r += Cfg::kWarps) {
    const int bq = bq0 + r;
    if (bq >= nb) break;
    int32_t* out = p.key_blocks + head.block_begin + static_cast<int64_t>(bq) * head.blocks_per_row;
    const int rr = rest[r];
    int written;
    if (rr >= bq - 1) {
      // Every causal block (bq + 1 of them).
      for (int i = lane; i <= bq; i += 32) out[i] = i;
      written = bq + 1;
    } else if (rr <= 0) {
      if (lane == 0) {
        out[0] = 0;
        out[1] = bq;
      }
      written = 2;
    } else {
      // The row's top `rr` keys (all of them when the threshold already cut the rest)...
      uint64_t* row = keys + r * kCap;
      const int n = count[r];
      if (n > rr) {
        WarpKeepTop<Cfg::kPerLane>(row, n, rr, reinterpret_cast<uint32_t*>(tile_b) + warp * 256, lane);
      }
      const int sel = min(n, rr);
      // ... as block numbers (low key bits = ~block), padded with the largest value, ascending.
      uint32_t blocks[Cfg::kPerLane];
#pragma unroll
      for (int i = 0; i < Cfg::kPerLane; ++i) {
        const int e = lane * Cfg::kPerLane + i;
        blocks[i] = e < sel ? 0xffffffffu - static_cast<uint32_t>(row[e]) : 0xffffffffu;
      }
      WarpSortAscending<Cfg::kPerLane>(blocks, lane);
#pragma unroll
      for (int i = 0; i < Cfg::kPerLane; ++i) {
        const int e = lane * Cfg::kPerLane + i;
        if (e < sel) out[1 + e] = static_cast<int32_t>(blocks[i]);
      }
      if (lane == 0) {
        out[0] = 0;
        out[1 + sel] = bq;
      }
      written = sel + 2;
    }
    for (int i = written + lane; i < head.blocks_per_row; i += 32) out[i] = -1;
  }
}

}  // namespace sparsefill::kernels::cuda::index
