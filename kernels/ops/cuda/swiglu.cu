// The SwiGLU gate of the Llama MLP, out = silu(gate) * up, from two arrays or from the output of
// one fused gate|up GEMM ([rows, 2 * inter]: gate columns, then up columns).
// silu(g) = g / (1 + expf(-g)) in float32 with IEEE division and the accurate expf, the formula of
// the reference; at ~30 instructions per element it stays under the memory time (about 55
// instructions per element are available at 3 TB/s on 132 SMs).
//
// Bytes at rows = 32768, inter = 4096 (bf16): read gate + up (2 x 256 MiB) + write out
// (256 MiB) = 805 MB: 268 us at 3.0 TB/s, 336 us at the 80% target (2.4 TB/s).
// (llama3-8b's inter = 14336: 2.82 GB, 940 us at 3.0 TB/s.)
// Measured on H100 (2026-11-26, copy 2.90 TB/s): 270 us, separate or fused (103% of copy).
#include <cstdint>

#include "kernels/ops/cuda/elementwise.cuh"
#include "kernels/ops/cuda/ops.h"
#include "kernels/ops/cuda/vec.cuh"

namespace sparsefill::kernels::cuda {
namespace {

using ops_detail::bf16;
using ops_detail::Vec;

// Over a [rows, cols] grid with row strides, so one op serves the flat (rows = 1) and the fused
// layouts.
template <int kW>
struct SwiGluOp {
  static constexpr int kWidth = kW;
  const bf16* gate;  // [rows, gate_stride], columns [0, cols) used
  const bf16* up;    // [rows, up_stride], columns [0, cols) used
  bf16* out;         // [rows, out_stride], columns [0, cols) written
  int64_t gate_stride, up_stride, out_stride;

  struct Loaded {
    Vec<bf16, kW> g, u;
  };
  __device__ Loaded Load(int64_t r, int64_t c) const {
    return {ops_detail::Load<kW>(gate + r * gate_stride + c),
            ops_detail::Load<kW>(up + r * up_stride + c)};
  }
  __device__ void Store(int64_t r, int64_t c, const Loaded& in) const {
    float g[kW], u[kW];
    ops_detail::ToF32(in.g, g);
    ops_detail::ToF32(in.u, u);
#pragma unroll
    for (int j = 0; j < kW; ++j) g[j] = (g[j] / (1.0f + expf(-g[j]))) * u[j];
    ops_detail::Store<kW>(out + r * out_stride + c, ops_detail::FromF32<bf16>(g));
  }
};

}  // namespace

cudaError_t SwiGlu(const bf16* gate, const bf16* up, int64_t n, bf16* out, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (gate == nullptr || up == nullptr || out == nullptr) return cudaErrorInvalidValue;
  const size_t bytes = static_cast<size_t>(n) * sizeof(bf16);
  // out may be exactly gate or up (each element is read before it is written, by one thread).
  if ((out != gate && ops_detail::Overlaps(out, bytes, gate, bytes)) ||
      (out != up && ops_detail::Overlaps(out, bytes, up, bytes))) {
    return cudaErrorInvalidValue;
  }
  const bool aligned = ops_detail::IsAligned(gate, ops_detail::kVectorBytes) &&
                       ops_detail::IsAligned(up, ops_detail::kVectorBytes) &&
                       ops_detail::IsAligned(out, ops_detail::kVectorBytes);
  return ops_detail::LaunchFlat(
      n, aligned,
      [&](auto width, int64_t offset) {
        return SwiGluOp<decltype(width)::value>{gate + offset, up + offset, out + offset, 0, 0, 0};
      },
      stream);
}

cudaError_t SwiGluFused(const bf16* gate_up, int64_t rows, int64_t inter, bf16* out,
                        cudaStream_t stream) {
  if (rows < 0 || inter < 1) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (gate_up == nullptr || out == nullptr) return cudaErrorInvalidValue;
  // Row r of out lies over row r / 2 of gate_up: in place would overwrite inputs that other
  // blocks have not read yet.
  if (ops_detail::Overlaps(out, static_cast<size_t>(rows * inter) * sizeof(bf16), gate_up,
                           static_cast<size_t>(rows * 2 * inter) * sizeof(bf16))) {
    return cudaErrorInvalidValue;
  }
  const bool vector = inter % ops_detail::kBf16PerVector == 0 &&
                      ops_detail::IsAligned(gate_up, ops_detail::kVectorBytes) &&
                      ops_detail::IsAligned(out, ops_detail::kVectorBytes);
  if (vector) {
    return ops_detail::LaunchElementwise(
        SwiGluOp<ops_detail::kBf16PerVector>{gate_up, gate_up + inter, out, 2 * inter, 2 * inter,
                                             inter},
        rows, inter, stream);
  }
  return ops_detail::LaunchElementwise(
      SwiGluOp<1>{gate_up, gate_up + inter, out, 2 * inter, 2 * inter, inter}, rows, inter, stream);
}

}  // namespace sparsefill::kernels::cuda
