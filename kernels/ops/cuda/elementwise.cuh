// One streaming kernel for every op whose output element depends only on input elements at the
// same (row, column): residual add, SwiGLU, conversions, the embedding gather, the random fill.
// An op is a small struct; the kernel walks a [rows, cols] grid of it in vectors of Op::kWidth
// columns, issuing the loads of kUnroll vectors before the first store.
//
// An Op provides
//   static constexpr int kWidth;                       // columns per access (8 or 1)
//   struct Loaded;                                     // the registers of one vector's inputs
//   __device__ Loaded Load(int64_t row, int64_t col) const;
//   __device__ void Store(int64_t row, int64_t col, const Loaded& in) const;
// with col a multiple of kWidth. Load must only read and Store only write the element range
// [col, col + kWidth) of its row, so that in-place ops are safe without barriers.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kernels/ops/cuda/vec.cuh"

namespace sparsefill::kernels::cuda::ops_detail {

// 256 threads: 8 blocks (2048 threads) fit one SM with room for the register use of any op here.
constexpr int kElementwiseThreads = 256;
// Vectors per thread per step, loads issued together: 2 x 16 B per input stream per thread, so
// 64 KiB per input stream in flight per full SM, well past what HBM3 needs
// (~3 TB/s x ~0.7 us latency / 132 SMs ~ 16 KiB per SM).
constexpr int kElementwiseUnroll = 2;
// Hardware limits of a launch grid.
constexpr int64_t kMaxGridX = INT32_MAX;
constexpr int64_t kMaxGridY = 65535;
static_assert(kElementwiseThreads % 32 == 0, "whole warps");

template <class Op>
__global__ void __launch_bounds__(kElementwiseThreads)
    ElementwiseKernel(const Op op, int64_t rows, int64_t vecs_per_row) {
  constexpr int64_t kStep = int64_t{kElementwiseThreads} * kElementwiseUnroll;
  // Rows by grid-stride in y (more than 65535 rows), vectors by grid-stride in x.
  for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
    for (int64_t v0 = blockIdx.x * kStep + threadIdx.x; v0 < vecs_per_row;
         v0 += static_cast<int64_t>(gridDim.x) * kStep) {
      typename Op::Loaded in[kElementwiseUnroll];
      // Loads first: kUnroll independent requests per stream in flight before any use.
#pragma unroll
      for (int u = 0; u < kElementwiseUnroll; ++u) {
        const int64_t v = v0 + u * kElementwiseThreads;
        if (v < vecs_per_row) in[u] = op.Load(row, v * Op::kWidth);
      }
#pragma unroll
      for (int u = 0; u < kElementwiseUnroll; ++u) {
        const int64_t v = v0 + u * kElementwiseThreads;
        if (v < vecs_per_row) op.Store(row, v * Op::kWidth, in[u]);
      }
    }
  }
}

// Launches `op` over [rows, cols]; cols must be a multiple of Op::kWidth.
template <class Op>
cudaError_t LaunchElementwise(const Op& op, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  constexpr int64_t kStep = int64_t{kElementwiseThreads} * kElementwiseUnroll;
  const int64_t vecs_per_row = cols / Op::kWidth;
  const int64_t grid_x = std::min((vecs_per_row + kStep - 1) / kStep, kMaxGridX);
  const int64_t grid_y = std::min(rows, kMaxGridY);
  ElementwiseKernel<Op><<<dim3(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y)),
                          kElementwiseThreads, 0, stream>>>(op, rows, vecs_per_row);
  return cudaGetLastError();
}

// A flat op over n elements: the 16-byte-vector body [0, n - n % 8) when `aligned` (every
// pointer 16-byte aligned), then the rest with scalar accesses. make_op(width, offset) returns
// the op of that width for the elements from `offset` on (pointers advanced by offset);
// width is std::integral_constant<int, 8 or 1>.
template <class MakeOp>
cudaError_t LaunchFlat(int64_t n, bool aligned, MakeOp&& make_op, cudaStream_t stream) {
  const int64_t body = aligned ? n / kBf16PerVector * kBf16PerVector : 0;
  if (body > 0) {
    const cudaError_t err = LaunchElementwise(
        make_op(std::integral_constant<int, kBf16PerVector>{}, int64_t{0}), 1, body, stream);
    if (err != cudaSuccess) return err;
  }
  if (body < n) {
    return LaunchElementwise(make_op(std::integral_constant<int, 1>{}, body), 1, n - body, stream);
  }
  return cudaSuccess;
}

}  // namespace sparsefill::kernels::cuda::ops_detail
