// The attention mainloop: one CTA computes 64 query rows of one query head over the key tiles
// KeyTileCursor yields (dense causal, or a sparse pattern's work), FlashAttention-2 style.
// At head_dim 64/128 dense and sparse attention run on the wgmma kernels instead
// (dense_sm90_kernel.cuh, sparse_sm90_kernel.cuh); this one keeps head_dim 32 and every call the
// wgmma kernels do not cover (unaligned pointers, no TMA descriptors):
// Q stays in registers, K/V tiles stream through two shared-memory stages with cp.async, scores
// and the output accumulate in fp32 on bf16 tensor-core MMAs, the softmax is online.
//
// Warps: 4, each owns 16 query rows and all 64 keys of a tile. Per thread: the two rows
// `group` and `group + 8` of its warp's 16 (lane = 4 * group + t).
#pragma once

#include <cuda_bf16.h>

#include <climits>
#include <cstdint>

#include "kernels/attention/cuda/attention_params.cuh"
#include "kernels/attention/cuda/key_tiles.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"
#include "kernels/attention/cuda/tile_config.cuh"

namespace sparsefill::kernels::cuda {

// Element offset of 16-byte chunk `chunk` of row `row` in a swizzled [rows, kHeadDim] tile.
template <int kHeadDim>
__device__ __forceinline__ int Swizzle(int row, int chunk) {
  return row * kHeadDim + ((chunk ^ (row & AttentionTileConfig<kHeadDim>::kSwizzleMask)) << 3);
}

template <int kHeadDim>
__global__ void __launch_bounds__(AttentionTileConfig<kHeadDim>::kThreads)
    AttentionKernel(const AttentionParams p) {
  using Cfg = AttentionTileConfig<kHeadDim>;
  constexpr int kBlockN = Cfg::kBlockN;
  constexpr int kChunks = Cfg::kChunksPerRow;
  constexpr int kNTiles = kBlockN / 8;   // score fragments per row pair
  constexpr int kDTiles = kHeadDim / 8;  // output fragments per row pair
  const float kNegInf = __int_as_float(0xff800000);  // -infinity

  extern __shared__ __align__(128) uint8_t smem[];
  __nv_bfloat16* s_q = reinterpret_cast<__nv_bfloat16*>(smem);                // [64, D]
  __nv_bfloat16* s_k = s_q + Cfg::kBlockM * kHeadDim;                          // [2][64, D]
  __nv_bfloat16* s_v = s_k + 2 * Cfg::kTileElements;                           // [2][64, D]
  int32_t* s_cols = reinterpret_cast<int32_t*>(s_v + 2 * Cfg::kTileElements);  // [2][64]
  uint64_t* s_covered = reinterpret_cast<uint64_t*>(s_cols + 2 * kBlockN);     // [2][64]

  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int lane = tid & 31;
  // Heads of one query block run side by side (their K/V share L2); the longest causal rows go
  // first so the tail of the grid is short work.
  const int head = blockIdx.x % p.q_heads;
  const int32_t block = p.query_blocks - 1 - static_cast<int32_t>(blockIdx.x / p.q_heads);
  const int32_t row_begin = block * Cfg::kBlockM;
  const int32_t row_end = min(row_begin + Cfg::kBlockM, p.tokens);
  const int kv_head = head / p.group_size;
  // The dense heads of a sparse launch ran on the wgmma kernel (SparseAttention): nothing to do
  // (uniform over the CTA, before any barrier).
  if (p.skip_dense_heads && p.index.heads[head].kind == HeadKind::kDense) return;

  const __nv_bfloat16* q_rows = p.q + static_cast<int64_t>(row_begin) * p.q_row_stride +
                                static_cast<int64_t>(head) * kHeadDim;
  const __nv_bfloat16* k_head = p.k + static_cast<int64_t>(kv_head) * kHeadDim;  // + key * stride
  const __nv_bfloat16* v_head = p.v + static_cast<int64_t>(kv_head) * kHeadDim;

  // 1. Q tile -> shared memory (rows past the prompt are zeros).
  for (int i = tid; i < Cfg::kBlockM * kChunks; i += Cfg::kThreads) {
    const int row = i / kChunks, chunk = i % kChunks;
    const bool valid = row_begin + row < p.tokens;
    CpAsync16(s_q + Swizzle<kHeadDim>(row, chunk),
              q_rows + (valid ? static_cast<int64_t>(row) * p.q_row_stride + chunk * 8 : 0), valid);
  }
  CpAsyncCommit();

  KeyTileCursor cursor(p, head, row_begin, row_end);
  const HeadDescriptor& desc = cursor.descriptor();

  // Issues the copies of a tile's K and V rows into `stage`; rows past the tile are zeros (so
  // V * P stays finite). For gathered tiles also records each column and the rows it must skip.
  auto load_tile = [&](int stage, const KeyTile& t) {
    __nv_bfloat16* k_dst = s_k + stage * Cfg::kTileElements;
    __nv_bfloat16* v_dst = s_v + stage * Cfg::kTileElements;
    const int32_t* cols = t.gather ? p.index.verticals + desc.vertical_begin + t.begin : nullptr;
    for (int i = tid; i < kBlockN * kChunks; i += Cfg::kThreads) {
      const int row = i / kChunks, chunk = i % kChunks;
      // A diagonal tile's window may reach past the prompt (those keys are masked anyway).
      const bool valid = row < t.count && (t.gather || t.begin + row < p.tokens);
      const int32_t key = !valid ? 0 : (t.gather ? cols[row] : t.begin + row);
      const int64_t offset = static_cast<int64_t>(key) * p.kv_row_stride + chunk * 8;
      CpAsync16(k_dst + Swizzle<kHeadDim>(row, chunk), k_head + offset, valid);
      CpAsync16(v_dst + Swizzle<kHeadDim>(row, chunk), v_head + offset, valid);
    }
    if (t.gather && tid < kBlockN) {
      const bool valid = tid < t.count;
      const int32_t key = valid ? cols[tid] : INT32_MAX;
      s_cols[stage * kBlockN + tid] = key;
      s_covered[stage * kBlockN + tid] =
          valid && desc.band_count > 0 ? RowsCoveredByBands(p, desc, row_begin, key) : 0;
    }
  };

  KeyTile tile;
  bool have_tile = cursor.Next(&tile);
  if (have_tile) load_tile(0, tile);
  CpAsyncCommit();

  // 2. Q fragments -> registers, once.
  CpAsyncWait<1>();
  __syncthreads();
  uint32_t q_frag[kHeadDim / 16][4];
#pragma unroll
  for (int kk = 0; kk < kHeadDim / 16; ++kk) {
    LdMatrixX4(q_frag[kk][0], q_frag[kk][1], q_frag[kk][2], q_frag[kk][3],
               s_q + Swizzle<kHeadDim>(warp * 16 + (lane & 15), kk * 2 + (lane >> 4)));
  }

  float acc[kDTiles][4];
#pragma unroll
  for (int i = 0; i < kDTiles; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  float row_max[2] = {kNegInf, kNegInf};  // running max of the raw scores
  float row_sum[2] = {0.0f, 0.0f};        // this thread's part of the running sum
  unsigned long long pairs = 0;
  unsigned long long tiles = 0;  // thread 0's count

  const int32_t row_a = row_begin + warp * 16 + (lane >> 2);  // the thread's two rows
  const int32_t rows[2] = {row_a, row_a + 8};

  int stage = 0;
  while (have_tile) {
    // 3. Prefetch the next tile into the other stage while this one is computed.
    KeyTile next;
    const bool have_next = cursor.Next(&next);
    if (have_next) load_tile(stage ^ 1, next);
    ++tiles;
    CpAsyncCommit();
    CpAsyncWait<1>();
    __syncthreads();

    const __nv_bfloat16* k_tile = s_k + stage * Cfg::kTileElements;
    const __nv_bfloat16* v_tile = s_v + stage * Cfg::kTileElements;

    // 4. S = Q K^T for the warp's 16 rows x 64 keys.
    float s[kNTiles][4];
#pragma unroll
    for (int i = 0; i < kNTiles; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < kNTiles / 2; ++np) {
        uint32_t b0, b1, b2, b3;
        LdMatrixX4(b0, b1, b2, b3,
                   k_tile + Swizzle<kHeadDim>(np * 16 + (lane & 7) + ((lane >> 4) << 3),
                                              kk * 2 + ((lane >> 3) & 1)));
        MmaBf16(s[2 * np], q_frag[kk], b0, b1);
        MmaBf16(s[2 * np + 1], q_frag[kk], b2, b3);
      }
    }

    // 5. Mask the pairs this head does not compute. A tile whose every pair is in skips the
    //    per-element test.
    if (TileIsFull(tile, row_begin, row_end)) {
      if (tid == 0) pairs += static_cast<unsigned long long>(Cfg::kBlockM) * kBlockN;
    } else {
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int32_t r = rows[e >> 1];
          const int j = nt * 8 + (lane & 3) * 2 + (e & 1);
          bool valid = r < row_end && j < tile.count;
          if (tile.gather) {
            const int32_t key = s_cols[stage * kBlockN + j];
            valid = valid && key <= r && r - key <= tile.hi &&
                    !((s_covered[stage * kBlockN + j] >> (r - row_begin)) & 1ull);
          } else {
            valid = valid && TilePairIn(tile, r, tile.begin + j);
          }
          pairs += valid;
          if (!valid) s[nt][e] = kNegInf;
        }
      }
    }

    // 6. Online softmax: new row max, rescale what was accumulated, exponentiate (base 2).
    float scale_old[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float m = row_max[h];
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) m = fmaxf(m, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));  // the 4 threads of a row
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      // A row with nothing computed yet keeps max -inf: use 0 as the exponent base then.
      const float base = m == kNegInf ? 0.0f : m * p.scale_log2;
      scale_old[h] = row_max[h] == kNegInf ? 0.0f : exp2f(row_max[h] * p.scale_log2 - base);
      row_max[h] = m;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float x = s[nt][2 * h + e];
          const float prob = x == kNegInf ? 0.0f : exp2f(x * p.scale_log2 - base);
          s[nt][2 * h + e] = prob;
          sum += prob;
        }
      }
      row_sum[h] = row_sum[h] * scale_old[h] + sum;
    }
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      acc[dt][0] *= scale_old[0];
      acc[dt][1] *= scale_old[0];
      acc[dt][2] *= scale_old[1];
      acc[dt][3] *= scale_old[1];
    }

    // 7. O += P V: the score fragments of two adjacent 8-key tiles are exactly an A fragment.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      const uint32_t a[4] = {PackBf16x2(s[2 * kk][0], s[2 * kk][1]),
                             PackBf16x2(s[2 * kk][2], s[2 * kk][3]),
                             PackBf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             PackBf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < kDTiles / 2; ++dp) {
        uint32_t b0, b1, b2, b3;
        LdMatrixX4Trans(b0, b1, b2, b3,
                        v_tile + Swizzle<kHeadDim>(kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                                   dp * 2 + (lane >> 4)));
        MmaBf16(acc[2 * dp], a, b0, b1);
        MmaBf16(acc[2 * dp + 1], a, b2, b3);
      }
    }

    __syncthreads();  // this stage is free for the prefetch two tiles ahead
    tile = next;
    have_tile = have_next;
    stage ^= 1;
  }

  // 8. Normalise and store; a row that computed nothing (none here: every pattern keeps the
  //    query's own key) would get zeros.
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = row_sum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int32_t r = rows[h];
    if (r >= row_end) continue;
    __nv_bfloat16* out_row = p.out + static_cast<int64_t>(r) * p.q_row_stride +
                             static_cast<int64_t>(head) * kHeadDim + (lane & 3) * 2;
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      *reinterpret_cast<uint32_t*>(out_row + dt * 8) =
          PackBf16x2(acc[dt][2 * h] * inv, acc[dt][2 * h + 1] * inv);
    }
  }

  if (p.computed_pairs != nullptr) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) pairs += __shfl_xor_sync(0xffffffffu, pairs, offset);
    if (lane == 0 && pairs != 0) atomicAdd(p.computed_pairs + head, pairs);
  }
  if (p.computed_tile_pairs != nullptr && threadIdx.x == 0 && tiles != 0) {
    atomicAdd(p.computed_tile_pairs + head, tiles * Cfg::kBlockM * kBlockN);
  }
}

}  // namespace sparsefill::kernels::cuda
