// Warp-level PTX the index builders add to mma_sm80.cuh (cp.async, ldmatrix and the bf16 MMA,
// shared with the attention mainloop): ex2, and the XOR swizzle of their shared tiles.
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * g + c):
//   A 16x16 row-major: a0 (row g, k 2c..2c+1), a1 (row g+8), a2 (row g, k 8+2c..), a3 (row g+8, k 8+2c..)
//   B 16x8 (k x n):    b0 (k 2c..2c+1, n g), b1 (k 8+2c.., n g)
//   C 16x8 fp32:       c0,c1 (row g, cols 2c, 2c+1), c2,c3 (row g+8, same cols)
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/cuda/mma_sm80.cuh"

namespace sparsefill::kernels::cuda::index {

// 2^x on the SFU (relative error ~2^-22; ex2(-inf) = +0, subnormal results flush to 0).
__device__ __forceinline__ float Ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Byte offset of 16-byte chunk `chunk` of row `row` in a shared tile whose rows are
// `row_bytes` long: chunks are XOR-swizzled with row % 8, so the 8 row addresses of one ldmatrix
// (same chunk, 8 consecutive rows) fall into 8 different bank groups. Needs >= 8 chunks per row.
__device__ __forceinline__ uint32_t SwizzledOffset(int row, int chunk, int row_bytes) {
  return static_cast<uint32_t>(row * row_bytes + ((chunk ^ (row & 7)) << 4));
}

}  // namespace sparsefill::kernels::cuda::index
