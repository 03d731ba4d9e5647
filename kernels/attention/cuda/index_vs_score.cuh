// Vertical-slash scoring: the last L (<= 64) queries of every vertical-slash head against all
// keys, causal softmax per query row, then per key the column sum and per diagonal offset
// s = query - key the diagonal sum of the probabilities (MInference's estimation; CPU reference
// ScoreVerticalSlashRef).
//
// One CTA = one unit (up to kSlots query heads of one KV group) x one chunk of consecutive 64-key
// tiles; one warpgroup per head. K tiles stream through a cp.async ring in shared memory (128-byte
// swizzled, K-major) and feed every head of the unit (the GQA reuse) as the B operand of
// wgmma.m64n64k16; the head's 64 query rows are the A operand, loaded into registers once per CTA.
// S = Q K^T lands in registers: warp w of the warpgroup holds rows 16w + lane/4 (+8), and for
// each row 16 of the tile's 64 keys (8j + 2(lane%4) + {0,1}).
//
// The softmax needs each row's max and sum over all keys before any probability is final, so the
// product is computed twice (both passes stream K once: its bytes bound them):
//   pass 1  VsRowStatsKernel: per thread, running (max, sum) of its 2 rows over its keys, the sum
//           rescaled only when the max grows; merged over the quad at the chunk's end
//           -> row_partials
//           VsRowNormKernel:  merge the chunks -> lambda = max + log2(sum) per row
//   pass 2  VsScoresKernel:   p = 2^(s * scale_log2 - lambda), then column and diagonal sums
//           (below).
//
// Column and diagonal sums (pass 2). A thread holds 2 rows x 16 keys of the head's 64 x 64 tile.
// It first sums in registers what shares a column (its 2 rows: 16 partials) and what shares a
// diagonal (row - key = base + 8 (a - j): 18 partials of 32 values), and writes the partials to
// two shared tables, [key][contributor] and [diagonal][contributor] (contributor = the thread's
// warp and lane / 4: 32 per column or diagonal, conflict-free with 36-float rows). Then one
// thread per column and one per diagonal adds its 32 partials (8 x 16-byte reads).
// Within a tile (keys j0..j0+63, rows i = 0..63, query t_i = T - L + i) the offset is
// s = t_i - (j0 + jj) = (i - jj) + (T - L - j0): the tile holds the 127 relative diagonals
// dd = i - jj in [-63, 63]. Diagonal o >= 0 of tile j0 (part A) and diagonal o - 64 of tile
// j0 - 64 (part B) are the same offset o + T - L - j0: every offset is the sum of exactly two
// parts. Part B travels to the next tile through a small shared array (by tile parity); inside a
// chunk the sum is stored once, at chunk edges both parts are added with atomicAdd onto entries
// pass 1 zeroed (0 + a + b: the order of two additions onto zero does not change the float
// result, so the sums stay deterministic).
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "kernels/attention/cuda/index_launch.cuh"
#include "kernels/attention/cuda/index_ptx.cuh"
#include "kernels/attention/cuda/index_tables.cuh"
#include "kernels/attention/cuda/index_wgmma.cuh"

namespace sparsefill::kernels::cuda::index {

template <int kHeadDimT, int kSlotsT>
struct VsScoreConfig {
  static constexpr int kHeadDim = kHeadDimT;
  static constexpr int kSlots = kSlotsT;
  // One warpgroup per head: wgmma's M = 64 is the head's 64 query rows.
  static constexpr int kThreads = kSlots * 128;
  static constexpr int kKSteps = kHeadDim / 16;       // k16 steps over head_dim
  static constexpr int kAccum = kVsTileKeys / 2;      // fp32 accumulators per thread (m64n64)
  // K ring: 3 stages keep two tiles in flight while one is multiplied.
  static constexpr int kStages = 3;
  static constexpr int kChunksPerRow = kHeadDim / 8;  // 16-byte chunks per K row
  static constexpr int kTileBytes = kVsTileKeys * kHeadDim * 2;
  // Partial-sum tables of one head (pass 2): 32 contributors per column / diagonal, rows of 36
  // floats. 36 = 4 (mod 32): the writes of a warp (contributor lane/4, column 2(lane%4) or
  // diagonal lane/4 - 2(lane%4)) hit 32 distinct banks, and 16-byte reads of consecutive rows hit
  // distinct bank quads.
  static constexpr int kContributors = 32;
  static constexpr int kPartStride = 36;
  static constexpr int kDiagonals = 2 * kVsRows - 1;  // 127 relative diagonals
  static constexpr int kColTableFloats = kVsTileKeys * kPartStride;
  static constexpr int kDiagTableFloats = (kDiagonals + 1) * kPartStride;
  static constexpr int kCarryFloats = 2 * kVsRows;  // part B of the last tile, by tile parity
  static constexpr int kSlotFloats = kColTableFloats + kDiagTableFloats + kCarryFloats;
  // Dynamic shared memory is aligned up to the swizzle period by hand.
  static constexpr int kSmemPass1 = kStages * kTileBytes + kSw128AtomBytes;
  static constexpr int kSmemPass2 = kStages * kTileBytes + kSlots * kSlotFloats * 4 + kSw128AtomBytes;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(kSlots == 1 || kSlots == 2 || kSlots == 4, "1, 2 or 4 heads per unit");
  static_assert(kSlots <= kVsMaxSlots, "VsUnit holds kVsMaxSlots heads");
  static_assert(kVsRows == 64 && kVsTileKeys == 64, "wgmma m64n64: 64 rows x 64 keys per head");
  static_assert(kTileBytes % kSw128AtomBytes == 0, "ring stages stay 1024-byte aligned");
  static_assert(kPartStride >= kContributors && kPartStride % 32 == 4 && kPartStride % 4 == 0,
                "see kPartStride");
  static_assert(kContributors == 4 * 8, "4 warps x 8 lane quads write each partial table row");
  static_assert(kSmemPass2 <= 227 * 1024, "shared memory per CTA on sm_90");
};

__device__ __forceinline__ uint8_t* AlignSmem(uint8_t* p) {
  const uint32_t a = SharedAddress(p);
  return p + ((kSw128AtomBytes - (a & (kSw128AtomBytes - 1))) & (kSw128AtomBytes - 1));
}

// The head's queries as the wgmma A operand, for warp `wq` of the warpgroup: qa[ks] = {a0..a3}
// for rows 16 wq + lane/4 (+8), head_dim 16 ks + 2(lane%4) (+8). Rows beyond L are zero (their
// scores are masked later).
template <class Cfg>
__device__ __forceinline__ void LoadQueryA(const VsScoreParams& p, int head, int wq, int lane,
                                           uint32_t (&qa)[Cfg::kKSteps][4]) {
  const int g = lane >> 2, c = lane & 3;
  const uint32_t* src[2];
  bool valid[2];
#pragma unroll
  for (int a = 0; a < 2; ++a) {
    const int row = 16 * wq + g + 8 * a;
    valid[a] = row < p.last_queries;
    const int64_t token = static_cast<int64_t>(p.tokens) - p.last_queries + (valid[a] ? row : 0);
    // Two consecutive bf16 per register: the row's head_dim elements as 32-bit words.
    src[a] = reinterpret_cast<const uint32_t*>(p.q + (token * p.q_heads + head) * Cfg::kHeadDim);
  }
#pragma unroll
  for (int ks = 0; ks < Cfg::kKSteps; ++ks) {
    qa[ks][0] = valid[0] ? __ldg(src[0] + 8 * ks + c) : 0u;
    qa[ks][1] = valid[1] ? __ldg(src[1] + 8 * ks + c) : 0u;
    qa[ks][2] = valid[0] ? __ldg(src[0] + 8 * ks + 4 + c) : 0u;
    qa[ks][3] = valid[1] ? __ldg(src[1] + 8 * ks + 4 + c) : 0u;
  }
}

// Issues the cp.async copies of key tile `tile` (keys 64 tile .. +63 of one KV head) into a ring
// stage in the swizzled K-major layout; keys beyond the prompt are zero-filled.
template <class Cfg>
__device__ __forceinline__ void LoadKeyTile(const VsScoreParams& p, int kv_head, int tile,
                                            uint8_t* stage) {
  for (int i = threadIdx.x; i < kVsTileKeys * Cfg::kChunksPerRow; i += Cfg::kThreads) {
    const int row = i / Cfg::kChunksPerRow, chunk = i % Cfg::kChunksPerRow;
    const int64_t key = static_cast<int64_t>(tile) * kVsTileKeys + row;
    const bool valid = key < p.tokens;
    const __nv_bfloat16* src =
        p.k + ((valid ? key : 0) * p.kv_heads + kv_head) * Cfg::kHeadDim + chunk * 8;
    CpAsync16(stage + Sw128Offset(row, chunk, kVsTileKeys), src, valid);
  }
}

// acc[4 j + e] = raw score (q . k, no scale) of query row 16 wq + lane/4 + 8 (e / 2) and key
// 8 j + 2 (lane % 4) + e % 2 of the tile in `stage`.
template <class Cfg>
__device__ __forceinline__ void WarpgroupScoreTile(const uint8_t* stage,
                                                   const uint32_t (&qa)[Cfg::kKSteps][4],
                                                   float (&acc)[Cfg::kAccum]) {
  FenceOperands<0, Cfg::kAccum>(acc);
  WgmmaFence();
#pragma unroll
  for (int ks = 0; ks < Cfg::kKSteps; ++ks) {
    // k16 slice ks: 64-column block ks / 4, byte offset 32 (ks % 4) inside its rows.
    const uint8_t* b = stage + (ks >> 2) * (kVsTileKeys * kSw128RowBytes) + (ks & 3) * 32;
    WgmmaM64N64K16(acc, qa[ks], Sw128Descriptor(b), ks > 0);
  }
  WgmmaCommit();
  WgmmaWait<0>();
  FenceOperands<0, Cfg::kAccum>(acc);
}

// Merges softmax statistics (max m, sum l of 2^(x - m)); an empty side has m = -inf, l = 0.
__device__ __forceinline__ void MergeRowStats(float& m, float& l, float m2, float l2) {
  const float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;
  l = l * Ex2(m - mn) + l2 * Ex2(m2 - mn);
  m = mn;
}

// One tile into this thread's running softmax statistics of rows 16 wq + g + 8a: key
// 8j + 2c + b is visible to row a iff it is <= limit0 + 8a (kMasked: the tile reaches past T - L).
template <bool kMasked, int kAccum>
__device__ __forceinline__ void AccumulateRowStats(float (&acc)[kAccum], float scale_log2, int limit0,
                                                   int c, float (&m_run)[2], float (&l_run)[2]) {
#pragma unroll
  for (int a = 0; a < 2; ++a) {
    // Tile max of the row over this thread's 16 keys (raw scores; scale_log2 > 0).
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        float& s = acc[4 * j + 2 * a + b];
        if (kMasked && 8 * j + 2 * c + b > limit0 + 8 * a) s = -INFINITY;
        mx = fmaxf(mx, s);
      }
    // Online softmax, rescaling the sum only when the max grows (rare after the first tiles).
    const float mk = mx * scale_log2;
    if (mk > m_run[a]) {
      l_run[a] *= Ex2(m_run[a] - mk);
      m_run[a] = mk;
    }
    if (kMasked && m_run[a] == -INFINITY) continue;
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int b = 0; b < 2; ++b) sum += Ex2(fmaf(acc[4 * j + 2 * a + b], scale_log2, -m_run[a]));
    l_run[a] += sum;
  }
}

// Pass 2 epilogue of one tile: probabilities, then their column partials (sum of the thread's 2
// rows) and diagonal partials (sum of its values on one diagonal) into the head's tables.
// col_table row = key, diag_table row = relative diagonal + 63; column = contributor.
template <bool kMasked, int kAccum>
__device__ __forceinline__ void WriteTilePartials(const float (&acc)[kAccum], float scale_log2,
                                                  const float (&lambda)[2], int limit0, int wq, int g,
                                                  int c, float* col_table, float* diag_table,
                                                  int part_stride) {
  float pr[2][8][2];  // [row a][key group j][key b]
#pragma unroll
  for (int a = 0; a < 2; ++a)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int b = 0; b < 2; ++b) {
        const float x = Ex2(fmaf(acc[4 * j + 2 * a + b], scale_log2, -lambda[a]));
        pr[a][j][b] = (kMasked && 8 * j + 2 * c + b > limit0 + 8 * a) ? 0.f : x;
      }
  const int contributor = 8 * wq + g;
  // Columns: key 8j + 2c + b.
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int b = 0; b < 2; ++b)
      col_table[(8 * j + 2 * c + b) * part_stride + contributor] = pr[0][j][b] + pr[1][j][b];
  // Diagonals: row - key = (16 wq + g - 2c - b) + 8 (a - j); delta = a - j in [-7, 1].
#pragma unroll
  for (int b = 0; b < 2; ++b) {
    float* d = diag_table + (16 * wq + g - 2 * c - b + kVsRows - 1) * part_stride + contributor;
    d[8 * part_stride] = pr[1][0][b];        // delta = 1
    d[-56 * part_stride] = pr[0][7][b];      // delta = -7
#pragma unroll
    for (int delta = -6; delta <= 0; ++delta) d[8 * delta * part_stride] = pr[0][-delta][b] + pr[1][1 - delta][b];
  }
}

// Sum of one 32-float partial row (16-byte aligned).
__device__ __forceinline__ float SumPartials(const float* row) {
  const float4* r4 = reinterpret_cast<const float4*>(row);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float4 v = r4[i];
    s += (v.x + v.y) + (v.z + v.w);
  }
  return s;
}

// Pass 1: per row of the unit, the softmax max and sum over the chunk's keys. Also zeroes the
// diagonal entries that pass 2 accumulates with atomics (the offsets at this chunk's first tile
// and, for the last chunk, past its end).
template <int kHeadDim, int kSlots>
__global__ void __launch_bounds__(VsScoreConfig<kHeadDim, kSlots>::kThreads, 1)
    VsRowStatsKernel(const VsScoreParams p) {
  using Cfg = VsScoreConfig<kHeadDim, kSlots>;
  extern __shared__ uint8_t smem_raw[];
  uint8_t* ring = AlignSmem(smem_raw);  // [kStages][64 keys x head_dim] bf16, swizzled
  // The unit's fields are read where needed: a local copy indexed by slot would live in local memory.
  const VsUnit& unit = p.units[blockIdx.y];
  const int kv_head = unit.kv_head;
  const int tid = threadIdx.x, slot = tid >> 7, wt = tid & 127;
  const int wq = wt >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int head = unit.q_head[slot];
  const int tile_begin = blockIdx.x * p.tiles_per_chunk;
  const int tile_end = min(tile_begin + p.tiles_per_chunk, p.key_tiles);
  const int64_t first_query = static_cast<int64_t>(p.tokens) - p.last_queries;  // t_0 = T - L

  // Zero the two chunk-edge diagonal groups: offsets o + (T - L) - 64 tile_begin (and the end).
  const int v = unit.vs_index[slot];
  if (v >= 0 && wt < kVsRows) {
    float* diag = p.scores + (2 * static_cast<int64_t>(v) + 1) * p.score_stride;
    const int64_t s0 = wt + first_query - static_cast<int64_t>(tile_begin) * kVsTileKeys;
    if (s0 >= 0 && s0 < p.tokens) diag[s0] = 0.f;
    if (tile_end == p.key_tiles) {
      const int64_t s1 = wt + first_query - static_cast<int64_t>(tile_end) * kVsTileKeys;
      if (s1 >= 0 && s1 < p.tokens) diag[s1] = 0.f;
    }
  }

  uint32_t qa[Cfg::kKSteps][4];
  if (head >= 0) LoadQueryA<Cfg>(p, head, wq, lane, qa);
  // Running (max, sum) of this thread's rows 16 wq + g (+8) over its keys, in log2 units.
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};

  // Prologue: kStages - 1 tiles in flight (one commit group each, empty groups included).
#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (tile_begin + s < tile_end) LoadKeyTile<Cfg>(p, kv_head, tile_begin + s, ring + s * Cfg::kTileBytes);
    CpAsyncCommit();
  }
  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int it = tile - tile_begin;
    CpAsyncWait<Cfg::kStages - 2>();
    FenceProxyAsyncShared();  // this thread's cp.async data -> visible to wgmma
    __syncthreads();          // tile landed for everyone; the stage refilled next is free
    if (tile + Cfg::kStages - 1 < tile_end) {
      LoadKeyTile<Cfg>(p, kv_head, tile + Cfg::kStages - 1,
                       ring + ((it + Cfg::kStages - 1) % Cfg::kStages) * Cfg::kTileBytes);
    }
    CpAsyncCommit();
    if (head < 0) continue;
    float acc[Cfg::kAccum];
    WarpgroupScoreTile<Cfg>(ring + (it % Cfg::kStages) * Cfg::kTileBytes, qa, acc);
    // Causal mask: key j0 + jj is visible to row i iff jj <= (T - L + i) - j0. Only the tiles
    // reaching past t_0 = T - L need it (keys beyond the prompt are past every row's limit).
    const int64_t j0 = static_cast<int64_t>(tile) * kVsTileKeys;
    const int limit0 = static_cast<int>(first_query - j0) + 16 * wq + g;
    if (j0 + kVsTileKeys - 1 > first_query) {
      AccumulateRowStats<true>(acc, p.scale_log2, limit0, c, m_run, l_run);
    } else {
      AccumulateRowStats<false>(acc, p.scale_log2, limit0, c, m_run, l_run);
    }
  }
  CpAsyncWait<0>();
  if (head < 0) return;
  // The quad's 4 lanes hold the same rows (different keys): merge over lane bits 0..1.
#pragma unroll
  for (int a = 0; a < 2; ++a) {
#pragma unroll
    for (int off = 1; off < 4; off <<= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m_run[a], off);
      const float l2 = __shfl_xor_sync(0xffffffffu, l_run[a], off);
      MergeRowStats(m_run[a], l_run[a], m2, l2);
    }
  }
  if (c == 0) {
    float2* out = p.row_partials +
                  ((static_cast<int64_t>(blockIdx.y) * p.chunks + blockIdx.x) * kSlots + slot) * kVsRows;
#pragma unroll
    for (int a = 0; a < 2; ++a) out[16 * wq + g + 8 * a] = make_float2(m_run[a], l_run[a]);
  }
}

// Merges the chunks' partial statistics of every row: lambda = max + log2(sum), so that
// p = 2^(x - lambda). One thread per (unit, slot, row).
template <int kSlots>
__global__ void __launch_bounds__(kSlots * kVsRows) VsRowNormKernel(const VsScoreParams p) {
  const int tid = threadIdx.x, slot = tid / kVsRows, row = tid % kVsRows;
  const VsUnit& unit = p.units[blockIdx.x];
  float lambda = INFINITY;  // p = 2^(x - inf) = 0: rows that are not scored contribute nothing
  if (unit.q_head[slot] >= 0 && row < p.last_queries) {
    float m = -INFINITY, l = 0.f;
    const float2* part = p.row_partials + static_cast<int64_t>(blockIdx.x) * p.chunks * kSlots * kVsRows +
                         slot * kVsRows + row;
    for (int chunk = 0; chunk < p.chunks; ++chunk) {
      const float2 ml = part[static_cast<int64_t>(chunk) * kSlots * kVsRows];
      MergeRowStats(m, l, ml.x, ml.y);
    }
    if (l > 0.f) lambda = m + log2f(l);
  }
  p.row_norm[static_cast<int64_t>(blockIdx.x) * kSlots * kVsRows + tid] = lambda;
}

// Pass 2: probabilities, column sums and diagonal sums (see the file comment).
template <int kHeadDim, int kSlots>
__global__ void __launch_bounds__(VsScoreConfig<kHeadDim, kSlots>::kThreads, 1)
    VsScoresKernel(const VsScoreParams p) {
  using Cfg = VsScoreConfig<kHeadDim, kSlots>;
  extern __shared__ uint8_t smem_raw[];
  // K ring [kStages][64 keys x head_dim] bf16 | per head: column table [64][36], diagonal table
  // [128][36], carry [2][64] (floats)
  uint8_t* ring = AlignSmem(smem_raw);
  const VsUnit& unit = p.units[blockIdx.y];
  const int kv_head = unit.kv_head;
  const int tid = threadIdx.x, slot = tid >> 7, wt = tid & 127;
  const int wq = wt >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int head = unit.q_head[slot];
  const int tile_begin = blockIdx.x * p.tiles_per_chunk;
  const int tile_end = min(tile_begin + p.tiles_per_chunk, p.key_tiles);
  const int64_t first_query = static_cast<int64_t>(p.tokens) - p.last_queries;
  float* col_table = reinterpret_cast<float*>(ring + Cfg::kStages * Cfg::kTileBytes) + slot * Cfg::kSlotFloats;
  float* diag_table = col_table + Cfg::kColTableFloats;
  float* carry_table = diag_table + Cfg::kDiagTableFloats;
  const int v = unit.vs_index[slot];
  float* col_out = v >= 0 ? p.scores + 2 * static_cast<int64_t>(v) * p.score_stride : nullptr;
  float* diag_out = v >= 0 ? col_out + p.score_stride : nullptr;
  // Reduction roles: threads 0..63 column wt and diagonal wt (part A of o = wt); threads 64..126
  // diagonal wt - 127 (part B of o = wt - 63); thread 127 none.
  const int diagonal = wt < kVsRows ? wt : wt - 127;
  const int o = diagonal >= 0 ? diagonal : diagonal + kVsRows;
  float carry = 0.f;  // part-B threads: the last tile's part B

  // Partial tables start at zero: the entries no thread writes (diagonals a contributor does not
  // touch) are read as zeros by every tile.
  for (int i = wt; i < Cfg::kSlotFloats; i += 128) col_table[i] = 0.f;

  uint32_t qa[Cfg::kKSteps][4];
  float lambda[2] = {0.f, 0.f};
  if (head >= 0) {
    LoadQueryA<Cfg>(p, head, wq, lane, qa);
    const float* norm = p.row_norm + (static_cast<int64_t>(blockIdx.y) * kSlots + slot) * kVsRows;
    lambda[0] = norm[16 * wq + g];
    lambda[1] = norm[16 * wq + g + 8];
  }

#pragma unroll
  for (int s = 0; s < Cfg::kStages - 1; ++s) {
    if (tile_begin + s < tile_end) LoadKeyTile<Cfg>(p, kv_head, tile_begin + s, ring + s * Cfg::kTileBytes);
    CpAsyncCommit();
  }
  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int it = tile - tile_begin;
    CpAsyncWait<Cfg::kStages - 2>();
    FenceProxyAsyncShared();
    // Tile landed; also orders the previous tile's reads of the tables before the writes below.
    __syncthreads();
    if (tile + Cfg::kStages - 1 < tile_end) {
      LoadKeyTile<Cfg>(p, kv_head, tile + Cfg::kStages - 1,
                       ring + ((it + Cfg::kStages - 1) % Cfg::kStages) * Cfg::kTileBytes);
    }
    CpAsyncCommit();
    if (head < 0) continue;  // the whole warpgroup: no named barrier is left waiting
    const int64_t j0 = static_cast<int64_t>(tile) * kVsTileKeys;
    float acc[Cfg::kAccum];
    WarpgroupScoreTile<Cfg>(ring + (it % Cfg::kStages) * Cfg::kTileBytes, qa, acc);
    const int limit0 = static_cast<int>(first_query - j0) + 16 * wq + g;
    if (j0 + kVsTileKeys - 1 > first_query) {  // the tile reaches past t_0: causal mask
      WriteTilePartials<true>(acc, p.scale_log2, lambda, limit0, wq, g, c, col_table, diag_table,
                                   Cfg::kPartStride);
    } else {
      WriteTilePartials<false>(acc, p.scale_log2, lambda, limit0, wq, g, c, col_table, diag_table,
                                    Cfg::kPartStride);
    }
    NamedBarrier<128>(1 + slot);  // the head's partial tables are complete
    if (wt < kVsRows && j0 + wt < p.tokens) {
      col_out[j0 + wt] = SumPartials(col_table + wt * Cfg::kPartStride);
    }
    if (wt < Cfg::kDiagonals) {
      const float sum = SumPartials(diag_table + (diagonal + kVsRows - 1) * Cfg::kPartStride);
      if (diagonal >= 0) {
        // Part A of offset o + T - L - j0; its part B is the previous tile's (carry table).
        const int64_t s_a = o + first_query - j0;
        if (s_a >= 0 && s_a < p.tokens) {
          if (tile == tile_begin) {
            atomicAdd(diag_out + s_a, sum);  // other part: the previous chunk's last tile
          } else {
            diag_out[s_a] = sum + carry_table[((it - 1) & 1) * kVsRows + o];
          }
        }
      } else {
        carry_table[(it & 1) * kVsRows + o] = sum;
        carry = sum;
      }
    }
  }
  CpAsyncWait<0>();
  // Part B of the last tile: offset o + T - L - 64 tile_end, shared with the next chunk.
  if (head >= 0 && wt < Cfg::kDiagonals && diagonal < 0) {
    const int64_t s_b = o + first_query - static_cast<int64_t>(tile_end) * kVsTileKeys;
    if (s_b >= 0 && s_b < p.tokens) atomicAdd(diag_out + s_b, carry);
  }
}

}  // namespace sparsefill::kernels::cuda::index
