// RMSNorm, plain and fused with the residual add before it (AddRmsNorm).
//
// Register path (hidden a multiple of 8, up to 16384, 16-byte-aligned pointers): each row is
// spread over threads_per_row threads holding its values in registers as 16-byte vectors, so x
// (or residual and x) is read from memory once: loads -> sum of squares -> warp butterfly ->
// (across warps: shared memory, one barrier) -> weight * x * inv_rms -> 16-byte stores.
// Narrow rows (64..2048) pack several rows per block so that blocks keep 256 threads.
// Every thread of a row adds the per-warp partials in the same order, so all get the same
// inv_rms bits, and a row's result does not depend on what other rows the launch holds.
// Other shapes take a two-pass loop kernel (one block per row, x read twice).
//
// Bytes at rows = 32768, hidden = 4096 (bf16):
//   RmsNorm:    read x + write out = 2 x 256 MiB = 537 MB: 179 us at 3.0 TB/s, 224 us at the 80%
//               target (2.4 TB/s). The weight (8 KiB) stays in L1/L2.
//   AddRmsNorm: read residual, x + write residual, out = 4 x 256 MiB = 1074 MB: 358 us at
//               3.0 TB/s, 447 us at 80%; against 1342 MB (447 us at 3.0 TB/s) for AddInPlace
//               followed by RmsNorm.
// Measured on H100 (2026-11-26, copy 2.90 TB/s): RmsNorm 186 us (99% of copy), AddRmsNorm
// 365 us (102%).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <utility>

#include "kernels/ops/cuda/ops.h"
#include "kernels/ops/cuda/vec.cuh"

namespace sparsefill::kernels::cuda {
namespace {

using ops_detail::bf16;
using ops_detail::kBf16PerVector;
using ops_detail::Vec;

// Vectors (8 bf16) each thread holds, the compile-time choices: an unrolled loop over a register
// array needs its length at compile time (a runtime bound would move the array to local memory).
using VecsPerThreadChoices = std::integer_sequence<int, 1, 2, 4, 8>;
constexpr int kMaxVecsPerThread = 8;
// Threads per row: the fewest vectors per thread that keep a row within 256 threads (4096: 2
// vectors x 256 threads; 5120: 4 x 160; 16384: 8 x 256). The cap bounds the registers: with
// 256-thread blocks a thread may use up to 255, and AddRmsNorm's 8 vectors of x and 8 of the
// residual take 110 registers (at a 512-thread cap of 128 registers ptxas spilled).
constexpr int kMaxThreadsPerRow = 256;
constexpr int kMaxRegisterHidden = kMaxVecsPerThread * kBf16PerVector * kMaxThreadsPerRow;
// Rows narrower than this many threads share a block (blockDim.y rows).
constexpr int kMinBlockThreads = 256;
constexpr int kMaxBlockThreads = std::max(kMinBlockThreads, kMaxThreadsPerRow);
constexpr int kLoopThreads = 256;

static_assert(kMaxRegisterHidden >= 16384, "llama-family widths (up to 16384) stay in registers");
static_assert(kMaxBlockThreads % 32 == 0 && kMaxBlockThreads <= 1024, "a block of whole warps");
static_assert(kLoopThreads % 32 == 0, "a block of whole warps");

struct RmsNormParams {
  const bf16* x;       // [rows, hidden]
  bf16* residual;      // [rows, hidden], read and written; AddRmsNorm only, else null
  const bf16* weight;  // [hidden]
  bf16* out;           // [rows, hidden]; may be x
  int64_t rows;
  int hidden;
  float eps;
};

__device__ __forceinline__ float InverseRms(float sum_sq, int hidden, float eps) {
  // 1 / sqrtf (both IEEE-rounded without fast-math), as the reference: not rsqrtf (2 ulp).
  return 1.0f / sqrtf(sum_sq / static_cast<float>(hidden) + eps);
}

// blockDim = (threads_per_row, rows_per_block); thread x of row y holds the vectors
// x + k * threads_per_row, k < kVecs.
template <int kVecs, bool kAdd>
__global__ void __launch_bounds__(kMaxBlockThreads) RmsNormRegisterKernel(const RmsNormParams p) {
  constexpr int kW = kBf16PerVector;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  const bool active = row < p.rows;
  const int vecs = p.hidden / kW;
  const int64_t base = row * p.hidden;

  // 1. Every load of the row issued before the first use: kVecs (AddRmsNorm: 2 kVecs) 16-byte
  //    requests in flight per thread.
  Vec<bf16, kW> h[kVecs];  // the values normalised: x, or the residual (updated below)
  Vec<bf16, kW> a[kVecs];  // AddRmsNorm: x
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (active && c < vecs) {
      if constexpr (kAdd) {
        h[k] = ops_detail::Load<kW>(p.residual + base + c * kW);
        a[k] = ops_detail::Load<kW>(p.x + base + c * kW);
      } else {
        h[k] = ops_detail::Load<kW>(p.x + base + c * kW);
      }
    }
  }

  // 2. (AddRmsNorm) residual = bf16(residual + x), stored; then this thread's sum of squares of
  //    the bf16 values, exactly what RmsNorm would read back after a separate AddInPlace.
  float sum_sq = 0.0f;
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (active && c < vecs) {
      float f[kW];
      ops_detail::ToF32(h[k], f);
      if constexpr (kAdd) {
        float g[kW];
        ops_detail::ToF32(a[k], g);
#pragma unroll
        for (int j = 0; j < kW; ++j) f[j] += g[j];
        h[k] = ops_detail::FromF32<bf16>(f);
        ops_detail::Store<kW>(p.residual + base + c * kW, h[k]);
        ops_detail::ToF32(h[k], f);
      }
#pragma unroll
      for (int j = 0; j < kW; ++j) sum_sq += f[j] * f[j];
    }
  }

  // 3. The row's sum: butterfly within the warp, then (rows wider than a warp) the per-warp
  //    partials through shared memory, added in warp order by every thread.
  sum_sq = ops_detail::WarpSum(sum_sq);
  const int warps_per_row = blockDim.x / 32;
  if (warps_per_row > 1) {  // uniform across the block: a legal place for a barrier
    __shared__ float partial[kMaxBlockThreads / 32];  // [rows_per_block][warps_per_row]
    if (threadIdx.x % 32 == 0) partial[threadIdx.y * warps_per_row + threadIdx.x / 32] = sum_sq;
    __syncthreads();
    sum_sq = 0.0f;
    for (int w = 0; w < warps_per_row; ++w) sum_sq += partial[threadIdx.y * warps_per_row + w];
  }
  // Inactive threads (past the last row) return only now: they took part in the barrier.
  if (!active) return;
  const float inv_rms = InverseRms(sum_sq, p.hidden, p.eps);

  // 4. out = weight * (h * inv_rms), in the reference's order of multiplications.
  //    (When out is x, every read of x in the row happened before the barrier or, for one-warp
  //    rows, before the shuffles that every lane's store depends on.)
#pragma unroll
  for (int k = 0; k < kVecs; ++k) {
    const int c = threadIdx.x + k * blockDim.x;
    if (c < vecs) {
      float f[kW], w[kW];
      ops_detail::ToF32(h[k], f);
      ops_detail::ToF32(ops_detail::LoadReadOnly<kW>(p.weight + c * kW), w);
#pragma unroll
      for (int j = 0; j < kW; ++j) f[j] = w[j] * (f[j] * inv_rms);
      ops_detail::Store<kW>(p.out + base + c * kW, ops_detail::FromF32<bf16>(f));
    }
  }
}

// Any width and alignment: one block per row, scalar accesses, two passes over the row (the
// second mostly from L2). The AddRmsNorm residual is written in pass 1 and read back in pass 2
// by the same thread.
template <bool kAdd>
__global__ void __launch_bounds__(kLoopThreads) RmsNormLoopKernel(const RmsNormParams p) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * p.hidden;
  float sum_sq = 0.0f;
  for (int i = threadIdx.x; i < p.hidden; i += kLoopThreads) {
    float v = ops_detail::ToF32(p.x[base + i]);
    if constexpr (kAdd) {
      const bf16 r = __float2bfloat16_rn(ops_detail::ToF32(p.residual[base + i]) + v);
      p.residual[base + i] = r;
      v = ops_detail::ToF32(r);
    }
    sum_sq += v * v;
  }
  sum_sq = ops_detail::WarpSum(sum_sq);
  __shared__ float partial[kLoopThreads / 32];
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum_sq;
  __syncthreads();
  sum_sq = 0.0f;
  for (int w = 0; w < kLoopThreads / 32; ++w) sum_sq += partial[w];
  const float inv_rms = InverseRms(sum_sq, p.hidden, p.eps);
  const bf16* h = kAdd ? p.residual : p.x;
  for (int i = threadIdx.x; i < p.hidden; i += kLoopThreads) {
    const float v = ops_detail::ToF32(h[base + i]);
    p.out[base + i] = __float2bfloat16_rn(ops_detail::ToF32(__ldg(p.weight + i)) * (v * inv_rms));
  }
}

template <bool kAdd, int kVecs>
cudaError_t LaunchRegister(const RmsNormParams& p, cudaStream_t stream) {
  const int vecs = p.hidden / kBf16PerVector;
  const int threads_per_row = ((vecs + kVecs - 1) / kVecs + 31) / 32 * 32;
  const int rows_per_block = std::max(1, kMinBlockThreads / threads_per_row);
  const int64_t blocks = (p.rows + rows_per_block - 1) / rows_per_block;
  RmsNormRegisterKernel<kVecs, kAdd>
      <<<static_cast<unsigned>(blocks), dim3(threads_per_row, rows_per_block), 0, stream>>>(p);
  return cudaGetLastError();
}

// The one runtime -> template dispatch: the first choice whose row fits kMaxThreadsPerRow
// threads (the largest always does, as hidden <= kMaxRegisterHidden).
template <bool kAdd, int... kVecs>
cudaError_t DispatchRegister(const RmsNormParams& p, cudaStream_t stream,
                             std::integer_sequence<int, kVecs...>) {
  static_assert(std::max({kVecs...}) == kMaxVecsPerThread, "the cap matches the largest choice");
  const int vecs = p.hidden / kBf16PerVector;
  cudaError_t err = cudaErrorInvalidValue;
  (((vecs + kVecs - 1) / kVecs <= kMaxThreadsPerRow &&
    (err = LaunchRegister<kAdd, kVecs>(p, stream), true)) ||
   ...);
  return err;
}

template <bool kAdd>
cudaError_t Launch(const RmsNormParams& p, cudaStream_t stream) {
  const bool aligned = ops_detail::IsAligned(p.x, ops_detail::kVectorBytes) &&
                       ops_detail::IsAligned(p.weight, ops_detail::kVectorBytes) &&
                       ops_detail::IsAligned(p.out, ops_detail::kVectorBytes) &&
                       (!kAdd || ops_detail::IsAligned(p.residual, ops_detail::kVectorBytes));
  if (aligned && p.hidden % kBf16PerVector == 0 && p.hidden <= kMaxRegisterHidden) {
    return DispatchRegister<kAdd>(p, stream, VecsPerThreadChoices{});
  }
  RmsNormLoopKernel<kAdd><<<static_cast<unsigned>(p.rows), kLoopThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// Shared checks; rows <= INT32_MAX keeps every grid within its limit.
bool ValidShape(int64_t rows, int64_t hidden, float eps) {
  return rows >= 0 && rows <= INT32_MAX && hidden >= 1 && hidden <= INT32_MAX && eps >= 0.0f &&
         std::isfinite(eps);
}

}  // namespace

cudaError_t RmsNorm(const bf16* x, const bf16* weight, int64_t rows, int64_t hidden, float eps,
                    bf16* out, cudaStream_t stream) {
  if (!ValidShape(rows, hidden, eps)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (x == nullptr || weight == nullptr || out == nullptr) return cudaErrorInvalidValue;
  const size_t bytes = static_cast<size_t>(rows * hidden) * sizeof(bf16);
  if (out != x && ops_detail::Overlaps(out, bytes, x, bytes)) return cudaErrorInvalidValue;
  return Launch<false>(RmsNormParams{x, nullptr, weight, out, rows, static_cast<int>(hidden), eps},
                       stream);
}

cudaError_t AddRmsNorm(bf16* residual, const bf16* x, const bf16* weight, int64_t rows,
                       int64_t hidden, float eps, bf16* out, cudaStream_t stream) {
  if (!ValidShape(rows, hidden, eps)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (residual == nullptr || x == nullptr || weight == nullptr || out == nullptr) {
    return cudaErrorInvalidValue;
  }
  const size_t bytes = static_cast<size_t>(rows * hidden) * sizeof(bf16);
  if (ops_detail::Overlaps(out, bytes, residual, bytes) ||
      (out != x && ops_detail::Overlaps(out, bytes, x, bytes)) ||
      ops_detail::Overlaps(residual, bytes, x, bytes)) {
    return cudaErrorInvalidValue;
  }
  return Launch<true>(RmsNormParams{x, residual, weight, out, rows, static_cast<int>(hidden), eps},
                      stream);
}

}  // namespace sparsefill::kernels::cuda
