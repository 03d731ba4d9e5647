// Hopper (sm_90a) PTX the dense wgmma attention kernel adds to index_wgmma.cuh (the 128-byte
// swizzle, its K-major descriptor, the wgmma fences and the m64n64k16 A-from-registers MMA, which
// the index builders use): the MN-major descriptor, the m64n128k16 MMA with A from shared memory, the
// m64n128k16 / m64n64k16 MMAs with A from registers and B transposed, mbarriers,
// the bulk tensor copy (TMA) and setmaxnreg.
//
// Shared tiles are stored as index_wgmma.cuh describes: rows of 64 bf16 (128 bytes), chunk c of
// row r at c ^ (r % 8), a wider row split into 64-column blocks stored one after the other, every
// block 1024-byte aligned. That is exactly what a TMA box of {64 columns, R rows} with
// CU_TENSOR_MAP_SWIZZLE_128B writes, so TMA fills the tiles wgmma reads, with no generic-proxy
// store in between (no fence.proxy.async on the hot path).
//
// The same tile is read two ways:
//   K-major (Q and K in S = Q K^T; k = head_dim is the contiguous axis): index::Sw128Descriptor,
//     start = block + 32 * (k16 slice % 4) bytes, SBO = 1024 (8-row groups), LBO unused.
//   MN-major (V in O = P V; n = head_dim is contiguous, k = keys runs over rows): canonical
//     layout ((8 chunks, n blocks), (8 rows, 2 row groups)) : ((16 B, LBO), (128 B, SBO)) as
//     CUTLASS's make_gmma_desc<Major::MN> spells it for SW128 (ThunderKittens' transposed
//     descriptor has the same numbers): LBO = bytes between 64-column blocks (rows * 128),
//     SBO = 1024 between 8-row groups; one k16 slice is 16 rows = 2048 bytes further.
#pragma once

#include <cuda.h>  // CUtensorMap (a type only: no driver call from device code)

#include <cstdint>

#include "kernels/attention/cuda/index_wgmma.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"

namespace sparsefill::kernels::cuda::sm90 {

// ---- Shared-memory matrix descriptors ------------------------------------------------------

// K-major, 128-byte swizzle, for the tile (or k-slice) at shared address `addr`.
__device__ __forceinline__ uint64_t KMajorDesc(uint32_t addr) {
  return static_cast<uint64_t>((addr & 0x3ffff) >> 4) | (uint64_t{1} << 16) |
         (static_cast<uint64_t>(index::kSw128AtomBytes >> 4) << 32) | (uint64_t{1} << 62);
}

// MN-major, 128-byte swizzle: kBlockBytes between the 64-column blocks of the n axis (LBO).
template <uint32_t kBlockBytes>
__device__ __forceinline__ uint64_t MnMajorDesc(uint32_t addr) {
  static_assert(kBlockBytes % 16 == 0 && (kBlockBytes >> 4) < (1u << 14),
                "LBO is a 14-bit count of 16-byte units");
  return static_cast<uint64_t>((addr & 0x3ffff) >> 4) |
         (static_cast<uint64_t>(kBlockBytes >> 4) << 16) |
         (static_cast<uint64_t>(index::kSw128AtomBytes >> 4) << 32) | (uint64_t{1} << 62);
}

// ---- wgmma ---------------------------------------------------------------------------------
// Accumulator layout (m64nN, fp32), as for index::WgmmaM64N64K16: d[4 j + e] holds row
// 16 warp + lane / 4 + 8 (e / 2), column 8 j + 2 (lane % 4) + e % 2 of the warpgroup's 64 rows.

// d (+)= a * b^T, m64n128k16: a 64 x 16 (K-major descriptor), b 128 (n) x 16 (k) K-major
// (descriptor). accumulate = 0 overwrites d.
__device__ __forceinline__ void WgmmaSsM64N128K16(float (&d)[64], uint64_t a_desc, uint64_t b_desc,
                                                 int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "%64, %65, p, 1, 1, 0, 0;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a_desc), "l"(b_desc), "r"(accumulate));
}

// d (+)= a * b, m64n128k16: a 64 x 16 in registers (the mma.m16n8k16 A fragment of each
// warp's 16 rows), b 16 (k) x 128 (n) MN-major in shared memory (descriptor; imm-trans-b = 1).
__device__ __forceinline__ void WgmmaRsM64N128K16TransB(float (&d)[64], const uint32_t (&a)[4],
                                                       uint64_t b_desc, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate));
}

// d (+)= a * b, m64n64k16: a 64 x 16 in registers (the mma.m16n8k16 A fragment of each
// warp's 16 rows), b 16 (k) x 64 (n) MN-major in shared memory (descriptor; imm-trans-b = 1).
__device__ __forceinline__ void WgmmaRsM64N64K16TransB(float (&d)[32], const uint32_t (&a)[4],
                                                       uint64_t b_desc, int accumulate) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n"
      "}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate));
}


// Keeps the compiler from moving accesses of these registers across wgmma issue / wait (the
// register form of index::FenceOperands, for bf16 pairs).
template <int kRows, int kCols>
__device__ __forceinline__ void FenceRegisters(uint32_t (&r)[kRows][kCols]) {
#pragma unroll
  for (int i = 0; i < kRows; ++i) {
#pragma unroll
    for (int j = 0; j < kCols; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
  }
}

// ---- mbarrier ------------------------------------------------------------------------------

__device__ __forceinline__ void MbarInit(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the async proxy (TMA) and to the other threads
// (after the CTA barrier that follows).
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// One arrival that also announces `bytes` of TMA transactions for the current phase.
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void MbarArrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// `count` arrivals at once that also announce `bytes` of TMA transactions (a barrier that other
// threads arrive on for other tiles).
__device__ __forceinline__ void MbarArriveExpectTx(uint32_t bar, uint32_t bytes, uint32_t count) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(count)
               : "memory");
}
// Waits until the phase of parity `parity` has completed.
__device__ __forceinline__ void MbarWait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (done == 0);
}

// Whether the phase of parity `parity` has completed, without waiting.
__device__ __forceinline__ bool MbarTest(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

// ---- TMA -----------------------------------------------------------------------------------

// Copies the box at coordinates (c0, c1, c2) (innermost first) of the tensor `map` describes
// into shared memory at `dst`; completion adds the box's bytes to `bar`'s transaction count.
// Boxes reaching past the tensor are zero-filled (and still count in full).
__device__ __forceinline__ void TmaLoad3d(uint32_t dst, const CUtensorMap* map, uint32_t bar,
                                          int32_t c0, int32_t c1, int32_t c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes "
      "[%0], [%1, {%3, %4, %5}], [%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// ---- Register reallocation between warpgroups ----------------------------------------------

template <int kRegs>
__device__ __forceinline__ void SetMaxRegistersInc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void SetMaxRegistersDec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

}  // namespace sparsefill::kernels::cuda::sm90
