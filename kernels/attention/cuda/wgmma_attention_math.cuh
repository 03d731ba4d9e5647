// The per-tile math both wgmma attention mainloops share (dense_sm90_mainloop.cuh and
// sparse_sm90_mainloop.cuh): S = Q K^T, O += P V, the online softmax of a score tile, P packed
// as bf16 A fragments, O rescaled, and the state they start from. Written for one consumer warpgroup and a tile of kBlockN keys in
// the wgmma accumulator layout: s[4 j + e] is row 16 warp + lane / 4 + 8 (e / 2), key
// 8 j + 2 (lane % 4) + e % 2 (index_wgmma.cuh).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/cuda/index_ptx.cuh"
#include "kernels/attention/cuda/index_wgmma.cuh"
#include "kernels/attention/cuda/mma_sm80.cuh"
#include "kernels/attention/cuda/wgmma_sm90.cuh"

namespace sparsefill::kernels::cuda {

// The consumer's state before the first tile: O, the row statistics, and S and P zeroed too so
// that the first register fences read defined values.
template <int kHeadDim, int kBlockN, int kPVSteps>
__device__ __forceinline__ void ZeroConsumerState(float (&o)[kHeadDim / 2], float (&s)[kBlockN / 2],
                                                  uint32_t (&pf)[kPVSteps][4], float (&row_max)[2],
                                                  float (&row_sum)[2]) {
#pragma unroll
  for (int i = 0; i < kHeadDim / 2; ++i) o[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < kBlockN / 2; ++i) s[i] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < kPVSteps; ++kk) pf[kk][0] = pf[kk][1] = pf[kk][2] = pf[kk][3] = 0u;
  row_max[0] = row_max[1] = __int_as_float(0xff800000);  // running max of the raw scores: -inf
  row_sum[0] = row_sum[1] = 0.0f;                          // this thread's part of the sums
}

// Orders the register writes before an S = Q K^T (S read into P, O rescaled) ahead of its
// wgmma.fence and wgmmas.
template <int kHeadDim, int kSRegisters, int kPVSteps>
__device__ __forceinline__ void FenceBeforeQK(float (&s)[kSRegisters], float (&o)[kHeadDim / 2],
                                              uint32_t (&pf)[kPVSteps][4]) {
  index::FenceOperands<0, kSRegisters>(s);
  index::FenceOperands<0, kHeadDim / 2>(o);
  sm90::FenceRegisters(pf);
  index::WgmmaFence();
}

// S = Q K^T for the 128-key K tile at shared address `k_tile` and the warpgroup's Q (descriptor
// `q_desc`), both K-major in 64-column blocks (the dense kernel); commits.
template <int kHeadDim, int kPVSteps, uint32_t kQBlockBytes, uint32_t kKBlockBytes>
__device__ __forceinline__ void IssueQK(float (&s)[64], float (&o)[kHeadDim / 2],
                                        uint32_t (&pf)[kPVSteps][4], uint64_t q_desc,
                                        uint32_t k_tile) {
  FenceBeforeQK<kHeadDim>(s, o, pf);
  const uint64_t k_desc = sm90::KMajorDesc(k_tile);
#pragma unroll
  for (int kk = 0; kk < kHeadDim / 16; ++kk) {
    const uint32_t q_off = (kk / 4) * kQBlockBytes + (kk % 4) * 32;
    const uint32_t k_off = (kk / 4) * kKBlockBytes + (kk % 4) * 32;
    sm90::WgmmaSsM64N128K16(s, q_desc + (q_off >> 4), k_desc + (k_off >> 4), kk > 0 ? 1 : 0);
  }
  index::WgmmaCommit();
}

// The warpgroup's 64 rows of Q (prompt rows row0 ..+ 63 of one head; rows at or past `tokens`
// read as zeros) as wgmma A fragments in registers: qa[kk] is k16 slice kk, the mma.m16n8k16
// A fragment of the warp's 16 rows, read once from global memory (no shared-memory tile: it
// would cost the space of a K/V stage). `q_head` points at row 0's head_dim values, rows
// `row_stride` elements apart.
template <int kHeadDim>
__device__ __forceinline__ void LoadQFragments(const __nv_bfloat16* q_head, int64_t row_stride,
                                               int32_t row0, int32_t tokens,
                                               uint32_t (&qa)[kHeadDim / 16][4]) {
  const int lane = threadIdx.x % 32;
  const int32_t row_a = row0 + 16 * ((threadIdx.x % 128) / 32) + lane / 4;
  const uint32_t* src[2];
  bool valid[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {  // rows lane / 4 and lane / 4 + 8 of the warp's 16
    const int32_t row = row_a + 8 * h;
    valid[h] = row < tokens;
    src[h] = reinterpret_cast<const uint32_t*>(q_head + (valid[h] ? row : 0) * row_stride);
  }
  const int c = lane % 4;  // bf16 pairs 2c, 2c + 1 of each 8-column half of a k16 slice
#pragma unroll
  for (int kk = 0; kk < kHeadDim / 16; ++kk) {
    qa[kk][0] = valid[0] ? __ldg(src[0] + 8 * kk + c) : 0u;
    qa[kk][1] = valid[1] ? __ldg(src[1] + 8 * kk + c) : 0u;
    qa[kk][2] = valid[0] ? __ldg(src[0] + 8 * kk + 4 + c) : 0u;
    qa[kk][3] = valid[1] ? __ldg(src[1] + 8 * kk + 4 + c) : 0u;
  }
}

// S = Q K^T for 64 keys with Q in registers (LoadQFragments): only K is read from shared
// memory, half the operand bytes of the shared-memory form, whose m64n64 shape needs the whole
// shared-memory bandwidth at full tensor rate (the sparse kernel); commits.
template <int kHeadDim, int kPVSteps, uint32_t kKBlockBytes>
__device__ __forceinline__ void IssueQKQInRegisters(float (&s)[32], float (&o)[kHeadDim / 2],
                                                    uint32_t (&pf)[kPVSteps][4],
                                                    const uint32_t (&qa)[kHeadDim / 16][4],
                                                    uint32_t k_tile) {
  FenceBeforeQK<kHeadDim>(s, o, pf);
  const uint64_t k_desc = sm90::KMajorDesc(k_tile);
#pragma unroll
  for (int kk = 0; kk < kHeadDim / 16; ++kk) {
    const uint32_t k_off = (kk / 4) * kKBlockBytes + (kk % 4) * 32;
    index::WgmmaM64N64K16(s, qa[kk], k_desc + (k_off >> 4), kk > 0 ? 1 : 0);
  }
  index::WgmmaCommit();
}

// O += P V for the V tile at shared address `v_tile` (64-column blocks kVBlockBytes apart, 16
// keys per k16 step, 2048 bytes apart). Its own wgmma.fence (one per GEMM, as FA3 issues them);
// the caller commits.
template <int kHeadDim, int kPVSteps, uint32_t kVBlockBytes>
__device__ __forceinline__ void IssuePV(float (&o)[kHeadDim / 2], const uint32_t (&pf)[kPVSteps][4],
                                        uint32_t v_tile) {
  const uint64_t v_desc = sm90::MnMajorDesc<kVBlockBytes>(v_tile);
  index::WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < kPVSteps; ++kk) {
    const uint64_t desc = v_desc + ((kk * 16 * 128) >> 4);
    if constexpr (kHeadDim == 128) {
      sm90::WgmmaRsM64N128K16TransB(o, pf[kk], desc, 1);
    } else {
      sm90::WgmmaRsM64N64K16TransB(o, pf[kk], desc, 1);
    }
  }
}

// The last tile's O += P V, which nothing overlaps: issued, committed and complete on return,
// with O and P fenced on both sides.
template <int kHeadDim, int kPVSteps, uint32_t kVBlockBytes>
__device__ __forceinline__ void LastPV(float (&o)[kHeadDim / 2], uint32_t (&pf)[kPVSteps][4],
                                       uint32_t v_tile) {
  index::FenceOperands<0, kHeadDim / 2>(o);
  sm90::FenceRegisters(pf);
  IssuePV<kHeadDim, kPVSteps, kVBlockBytes>(o, pf, v_tile);
  index::WgmmaCommit();
  index::WgmmaWait<0>();
  index::FenceOperands<0, kHeadDim / 2>(o);
  sm90::FenceRegisters(pf);
}

// How far (log2 units) a tile's row max may rise above the running max before the running max
// moves: until then the exponent base stays, P is at most 2^8 (exact in bf16's range, the fp32
// sums and O lose nothing) and O needs no rescaling. Once a row's max has settled, which it does
// within a few tiles, most tiles rescale nothing: RescaleO's multiplies (head_dim / 2 a thread
// per tile) are skipped for a warp whose rows all kept their max.
inline constexpr float kSoftmaxMaxSlackLog2 = 8.0f;

// Online softmax of a masked score tile (kBlockN keys; masked scores are -inf): on return s
// holds P in fp32, rescale[h] the factor for what row h accumulated before (1 where the running
// max did not move), and row_max / row_sum (this thread's part) are updated. A row with nothing
// visible yet keeps max -inf: 0 is the exponent base then, so every term is exp2(-inf) = 0 and
// no NaN appears.
// kLazyMax false: the running max follows every rise (no slack) and every row gets its
// factor: the dense kernel, whose A/B showed no gain from the slack (H100 and H200, 128K).
template <int kBlockN, bool kLazyMax = true>
__device__ __forceinline__ void OnlineSoftmax(float (&s)[kBlockN / 2], float (&row_max)[2],
                                              float (&row_sum)[2], float scale_log2,
                                              float (&rescale)[2]) {
  const float kNegInf = __int_as_float(0xff800000);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float mx = kLazyMax ? kNegInf : row_max[h];
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
      mx = fmaxf(mx, fmaxf(s[4 * j + 2 * h], s[4 * j + 2 * h + 1]));
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the 4 threads of a row
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    float base;  // the exponent base: the running max, scaled (0 while it is -inf)
    if constexpr (kLazyMax) {
      // The running max moves only past the slack (from -inf: at the first visible score).
      // scale_log2 > 0, so the test may compare scaled values; -inf - slack stays -inf.
      const float old_scaled = row_max[h] * scale_log2;
      if (mx * scale_log2 - kSoftmaxMaxSlackLog2 > old_scaled) {
        rescale[h] = index::Ex2(old_scaled - mx * scale_log2);  // 0 from -inf
        row_max[h] = mx;
      } else {
        rescale[h] = 1.0f;
      }
      base = row_max[h] == kNegInf ? 0.0f : row_max[h] * scale_log2;
    } else {
      base = mx == kNegInf ? 0.0f : mx * scale_log2;
      rescale[h] = index::Ex2(row_max[h] * scale_log2 - base);
      row_max[h] = mx;
    }
    float sum0 = 0.0f, sum1 = 0.0f;  // two chains: half the add latency
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
      const float p0 = index::Ex2(fmaf(s[4 * j + 2 * h], scale_log2, -base));
      const float p1 = index::Ex2(fmaf(s[4 * j + 2 * h + 1], scale_log2, -base));
      s[4 * j + 2 * h] = p0;
      s[4 * j + 2 * h + 1] = p1;
      sum0 += p0;
      sum1 += p1;
    }
    row_sum[h] = row_sum[h] * rescale[h] + (sum0 + sum1);
  }
}

// P as bf16: the score fragments of two adjacent 8-key groups are exactly a k16 A fragment.
template <int kPVSteps>
__device__ __forceinline__ void PackP(const float (&s)[kPVSteps * 8], uint32_t (&pf)[kPVSteps][4]) {
#pragma unroll
  for (int kk = 0; kk < kPVSteps; ++kk) {
    pf[kk][0] = PackBf16x2(s[8 * kk + 0], s[8 * kk + 1]);
    pf[kk][1] = PackBf16x2(s[8 * kk + 2], s[8 * kk + 3]);
    pf[kk][2] = PackBf16x2(s[8 * kk + 4], s[8 * kk + 5]);
    pf[kk][3] = PackBf16x2(s[8 * kk + 6], s[8 * kk + 7]);
  }
}

// O *= rescale, per row; nothing when no row of the warp moved its max (OnlineSoftmax's slack),
// a warp-uniform branch.
template <int kHeadDim, bool kSkipUnmoved = true>
__device__ __forceinline__ void RescaleO(float (&o)[kHeadDim / 2], const float (&rescale)[2]) {
  if (kSkipUnmoved && !__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f)) return;
#pragma unroll
  for (int j = 0; j < kHeadDim / 8; ++j) {
    o[4 * j + 0] *= rescale[0];
    o[4 * j + 1] *= rescale[0];
    o[4 * j + 2] *= rescale[1];
    o[4 * j + 3] *= rescale[1];
  }
}

}  // namespace sparsefill::kernels::cuda
