// Thin wrappers over the warp-level PTX the attention mainloop and the index builders are built
// from: cp.async copies into shared memory, ldmatrix fragment loads, and the bf16 m16n8k16
// tensor-core MMA with fp32 accumulation (sm_80 instructions, available on sm_90a). The
// "memory" clobbers keep the compiler from moving shared-memory accesses across them.
//
// Fragment layouts of mma.m16n8k16 (lane = 4 * group + t):
//   A 16x16 (row-major): a0 (row group, cols 2t..2t+1), a1 (row group+8, same cols),
//                        a2 (row group, cols 8+2t..), a3 (row group+8, cols 8+2t..)
//   B 16x8 (k x n):      b0 (k 2t..2t+1, n group), b1 (k 8+2t.., n group)
//   C 16x8 (fp32):       c0,c1 (row group, cols 2t, 2t+1), c2,c3 (row group+8, same cols)
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace sparsefill::kernels::cuda {

__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte asynchronous global->shared copy; with `valid` false the destination is zero-filled
// and nothing is read (the source pointer must still be a valid address expression). The
// destination is a shared-window address, or a generic pointer into shared memory.
__device__ __forceinline__ void CpAsync16(uint32_t smem, const void* gmem, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
  CpAsync16(SharedAddress(smem), gmem, valid);
}

__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most `kPending` committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void LdMatrixX4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                           const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(SharedAddress(smem_row))
               : "memory");
}
__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], const void* smem_row) {
  LdMatrixX4(r[0], r[1], r[2], r[3], smem_row);
}

// The same, each matrix transposed (rows of the stored matrix become columns of the fragment).
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                                uint32_t& r3, const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(SharedAddress(smem_row))
               : "memory");
}

// c += a * b for one m16n8k16 tile, bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void MmaBf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> one register of two bf16 (low half = first), round to nearest even.
__device__ __forceinline__ uint32_t PackBf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

}  // namespace sparsefill::kernels::cuda
