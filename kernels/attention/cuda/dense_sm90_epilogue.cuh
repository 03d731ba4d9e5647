// Epilogue of the wgmma attention kernels (dense and sparse): normalise O by the row sums, stage
// it as bf16 in the warpgroup's own rows of the Q tile (free once its last S = Q K^T completed),
// and store whole 16-byte chunks of each output row, coalesced; rows past the prompt are not
// written.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/cuda/index_wgmma.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"

namespace sparsefill::kernels::cuda {

// Byte offset of 16-byte chunk `chunk` of row `row` in a [kColumnBlocks][kRows][128 B] tile
// with the 128-byte swizzle (the layout TMA wrote Q in).
template <int kRows>
__device__ __forceinline__ uint32_t SwizzledChunk(int row, int chunk) {
  return static_cast<uint32_t>((chunk / 8) * kRows * 128 + row * 128 +
                               (((chunk % 8) ^ (row % 8)) << 4));
}

// `smem_q` is the generic pointer to the Q tile [kHeadDim / 64][kTileRows][64] bf16 whose rows
// 64 wg ..+ 63 this warpgroup owns; `row_begin` is the prompt row of the tile's first row. Used by
// the dense and the sparse wgmma kernels.
template <int kHeadDim, int kTileRows>
__device__ void StoreOutputTile(uint8_t* smem_q, __nv_bfloat16* out, int64_t out_row_stride,
                                int32_t tokens, int32_t row_begin, int32_t head, int wg,
                                const float (&o)[kHeadDim / 2], const float (&row_sum)[2]) {
  constexpr int kChunks = kHeadDim / 8;  // 16-byte chunks per output row
  const int tid = threadIdx.x % 128;
  const int warp = tid / 32;
  const int lane = tid % 32;

  // 1. Full row sums (the 4 threads of a row hold parts), their inverses.
  float inv[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float sum = row_sum[h];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    inv[h] = sum > 0.0f ? 1.0f / sum : 0.0f;
  }

  // 2. bf16 pairs into shared memory. Chunk j of the 8 rows a warp writes at once lands in 8
  //    different 16-byte bank groups (the swizzle), 4 threads filling each: no bank conflict.
  //    The tile was last read by wgmma (async proxy); order that before these generic stores.
  index::FenceProxyAsyncShared();
#pragma unroll
  for (int j = 0; j < kChunks; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = 64 * wg + 16 * warp + lane / 4 + 8 * h;  // row of the CTA's Q tile
      *reinterpret_cast<uint32_t*>(smem_q + SwizzledChunk<kTileRows>(row, j) + 4 * (lane % 4)) =
          PackBf16x2(o[4 * j + 2 * h] * inv[h], o[4 * j + 2 * h + 1] * inv[h]);
    }
  }
  index::NamedBarrier<128>(1 + wg);  // this warpgroup's 128 threads only (id 0 is __syncthreads)

  // 3. Whole 16-byte chunks to global memory: consecutive threads take consecutive chunks of a
  //    row (head_dim * 2 contiguous bytes per row and head).
  for (int i = tid; i < 64 * kChunks; i += 128) {
    const int row = i / kChunks;
    const int chunk = i % kChunks;
    const int32_t r = row_begin + 64 * wg + row;
    if (r >= tokens) continue;
    const uint4 value =
        *reinterpret_cast<const uint4*>(smem_q + SwizzledChunk<kTileRows>(64 * wg + row, chunk));
    *reinterpret_cast<uint4*>(out + static_cast<int64_t>(r) * out_row_stride +
                              static_cast<int64_t>(head) * kHeadDim + chunk * 8) = value;
  }
}

}  // namespace sparsefill::kernels::cuda
