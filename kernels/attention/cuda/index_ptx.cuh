// Warp-level PTX the index builders are made of: cp.async into shared memory, ldmatrix, the bf16
// m16n8k16 tensor-core MMA with fp32 accumulation, ex2, and the XOR swizzle of shared tiles.
// (Same instructions as mma_sm80.cuh of the attention mainloop; kept in the index namespace so the
// two families can evolve separately. Candidates to merge once both settle.)
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * g + c):
//   A 16x16 row-major: a0 (row g, k 2c..2c+1), a1 (row g+8), a2 (row g, k 8+2c..), a3 (row g+8, k 8+2c..)
//   B 16x8 (k x n):    b0 (k 2c..2c+1, n g), b1 (k 8+2c.., n g)
//   C 16x8 fp32:       c0,c1 (row g, cols 2c, 2c+1), c2,c3 (row g+8, same cols)
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace sparsefill::kernels::cuda::index {

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global->shared copy; when !valid the destination is zero-filled and nothing is read.
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(smem)), "l"(gmem),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SmemAddr(smem_row))
               : "memory");
}

// c += a * b, bf16 operands, fp32 accumulators.
__device__ __forceinline__ void MmaBf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

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
