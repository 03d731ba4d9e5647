// Hopper warpgroup MMA (wgmma, sm_90a) for the index builders: shared-memory matrix descriptors
// for 128-byte-swizzled K-major tiles, the m64n64k16 bf16 MMA with A from registers, and the
// fences around it.
//
// Shared tiles read by wgmma are K-major with the 128-byte swizzle: a tile of R rows x 64 bf16
// (128 bytes per row) is stored row after row, the 16-byte chunk c of row r at chunk c ^ (r % 8);
// wider rows are split into such 64-column blocks stored one after the other. Every block must
// start at a 1024-byte boundary (the swizzle is a function of the address bits 4-9).
#pragma once

#include <cstdint>

#include "kernels/attention/cuda/index_ptx.cuh"

namespace sparsefill::kernels::cuda::index {

inline constexpr int kSw128RowBytes = 128;  // one swizzle row: 64 bf16
inline constexpr int kSw128AtomBytes = 1024;  // 8 rows: the swizzle pattern's period

// Byte offset of 16-byte chunk `chunk` (of head_dim / 8) of row `row` in a tile of `rows` rows.
__device__ __forceinline__ uint32_t Sw128Offset(int row, int chunk, int rows) {
  return static_cast<uint32_t>((chunk >> 3) * rows * kSw128RowBytes + row * kSw128RowBytes +
                               (((chunk & 7) ^ (row & 7)) << 4));
}

// Descriptor of a K-major, 128-byte-swizzled operand starting at `smem` (a block start, or a
// block start plus a k offset of 32, 64 or 96 bytes: the k16 slices of a 64-column block).
// Fields: start address >> 4 (bits 0-13), leading byte offset (unused for swizzled K-major: 1),
// stride byte offset = 1024 >> 4 between 8-row groups (bits 32-45), base offset 0 (the blocks
// are 1024-aligned and k offsets stay below 128 bytes), layout 1 = 128-byte swizzle (bits 62-63).
__device__ __forceinline__ uint64_t Sw128Descriptor(const void* smem) {
  const uint32_t addr = SharedAddress(smem);
  return static_cast<uint64_t>((addr & 0x3ffff) >> 4) | (uint64_t{1} << 16) |
         (static_cast<uint64_t>(kSw128AtomBytes >> 4) << 32) | (uint64_t{1} << 62);
}

// Orders this thread's register accesses before the warpgroup's next wgmma.
__device__ __forceinline__ void WgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void WgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void WgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// Makes shared memory written through the generic proxy (stores, cp.async) visible to wgmma.
__device__ __forceinline__ void FenceProxyAsyncShared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Keeps the compiler from moving accesses of accumulators [kBegin, kEnd) across wgmma issue/wait.
template <int kBegin, int kEnd, int kN>
__device__ __forceinline__ void FenceOperands(float (&d)[kN]) {
  static_assert(0 <= kBegin && kBegin <= kEnd && kEnd <= kN, "accumulator range");
#pragma unroll
  for (int i = kBegin; i < kEnd; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// d (+)= a * b^T for one warpgroup: a is 64 x 16 bf16 in registers (the mma.m16n8k16 A fragment
// of each warp's 16 rows), b is 64 (n) x 16 (k) bf16 K-major in shared memory (descriptor).
// d[4 j + e] holds row 16 warp + lane / 4 + 8 (e / 2), column 8 j + 2 (lane % 4) + e % 2.
// accumulate = 0 overwrites d.
__device__ __forceinline__ void WgmmaM64N64K16(float (&d)[32], const uint32_t (&a)[4], uint64_t b_desc,
                                               int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate));
}

// bar.sync on a named barrier for `kCount` threads (a warpgroup: 128).
template <int kCount>
__device__ __forceinline__ void NamedBarrier(int id) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "n"(kCount) : "memory");
}

}  // namespace sparsefill::kernels::cuda::index
