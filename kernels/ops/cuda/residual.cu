// The residual add of a transformer block, acc += x, in bf16 storage with one float32 add and one
// rounding per element (what PyTorch's bf16 `h = h + x` does).
//
// Bytes at rows = 32768, hidden = 4096 (bf16): read acc + x (2 x 256 MiB) + write acc (256 MiB)
// = 805 MB: 268 us at 3.0 TB/s, 336 us at the 80% target (2.4 TB/s). Where a norm follows the
// add, AddRmsNorm (rmsnorm.cu) saves a further 268 MB.
// Measured on H100 (2026-11-26, copy 2.90 TB/s): 270 us (103% of copy).
#include <cstdint>

#include "kernels/ops/cuda/elementwise.cuh"
#include "kernels/ops/cuda/ops.h"
#include "kernels/ops/cuda/vec.cuh"

namespace sparsefill::kernels::cuda {
namespace {

using ops_detail::bf16;
using ops_detail::Vec;

template <int kW>
struct AddOp {
  static constexpr int kWidth = kW;
  bf16* acc;      // [n], read and written
  const bf16* x;  // [n]

  struct Loaded {
    Vec<bf16, kW> a, x;
  };
  __device__ Loaded Load(int64_t, int64_t i) const {
    return {ops_detail::Load<kW>(acc + i), ops_detail::Load<kW>(x + i)};
  }
  __device__ void Store(int64_t, int64_t i, const Loaded& in) const {
    float a[kW], b[kW];
    ops_detail::ToF32(in.a, a);
    ops_detail::ToF32(in.x, b);
#pragma unroll
    for (int j = 0; j < kW; ++j) a[j] += b[j];
    ops_detail::Store<kW>(acc + i, ops_detail::FromF32<bf16>(a));
  }
};

// x[r, c] += bias[c]: Qwen2's q/k/v projection biases.
template <int kW>
struct AddRowBiasOp {
  static constexpr int kWidth = kW;
  bf16* x;           // [rows, cols], read and written
  const bf16* bias;  // [cols]
  int64_t cols;

  struct Loaded {
    Vec<bf16, kW> x, b;
  };
  __device__ Loaded Load(int64_t row, int64_t col) const {
    return {ops_detail::Load<kW>(x + row * cols + col), ops_detail::Load<kW>(bias + col)};
  }
  __device__ void Store(int64_t row, int64_t col, const Loaded& in) const {
    float a[kW], b[kW];
    ops_detail::ToF32(in.x, a);
    ops_detail::ToF32(in.b, b);
#pragma unroll
    for (int j = 0; j < kW; ++j) a[j] += b[j];
    ops_detail::Store<kW>(x + row * cols + col, ops_detail::FromF32<bf16>(a));
  }
};

}  // namespace

cudaError_t AddRowBias(bf16* x, const bf16* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return cudaErrorInvalidValue;
  if (rows == 0 || cols == 0) return cudaSuccess;
  if (x == nullptr || bias == nullptr) return cudaErrorInvalidValue;
  const size_t x_bytes = static_cast<size_t>(rows * cols) * sizeof(bf16);
  if (ops_detail::Overlaps(x, x_bytes, bias, static_cast<size_t>(cols) * sizeof(bf16))) {
    return cudaErrorInvalidValue;
  }
  const bool vectors = cols % ops_detail::kBf16PerVector == 0 &&
                       ops_detail::IsAligned(x, ops_detail::kVectorBytes) &&
                       ops_detail::IsAligned(bias, ops_detail::kVectorBytes);
  if (vectors) {
    return ops_detail::LaunchElementwise(
        AddRowBiasOp<ops_detail::kBf16PerVector>{x, bias, cols}, rows, cols, stream);
  }
  return ops_detail::LaunchElementwise(AddRowBiasOp<1>{x, bias, cols}, rows, cols, stream);
}

cudaError_t AddInPlace(bf16* acc, const bf16* x, int64_t n, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (acc == nullptr || x == nullptr) return cudaErrorInvalidValue;
  const size_t bytes = static_cast<size_t>(n) * sizeof(bf16);
  // x == acc is elementwise (acc = 2 acc); a shifted overlap would read values other threads
  // already wrote.
  if (x != acc && ops_detail::Overlaps(acc, bytes, x, bytes)) return cudaErrorInvalidValue;
  const bool aligned = ops_detail::IsAligned(acc, ops_detail::kVectorBytes) &&
                       ops_detail::IsAligned(x, ops_detail::kVectorBytes);
  return ops_detail::LaunchFlat(
      n, aligned,
      [&](auto width, int64_t offset) {
        return AddOp<decltype(width)::value>{acc + offset, x + offset};
      },
      stream);
}

}  // namespace sparsefill::kernels::cuda
