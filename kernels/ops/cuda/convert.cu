// Element type conversions of device arrays: checkpoint weights stored as float32 or float16
// are uploaded as they are and converted to the bf16 the kernels read, on the device; bf16
// activations go back to float32 for the host.
//
// Bytes per element: float32 -> bf16 6, float16 -> bf16 4, bf16 -> float32 6. For the
// 16 GB of a llama3-8b checkpoint in float32 (4.0 G elements): 24 GB, 8 ms at 3.0 TB/s.
// (At rows = 32768, hidden = 4096: float32 -> bf16 805 MB, 268 us at 3.0 TB/s; measured on H100
// 2026-11-26: 272 us, 102% of copy.)
#include <cstdint>

#include "kernels/ops/cuda/elementwise.cuh"
#include "kernels/ops/cuda/ops.h"
#include "kernels/ops/cuda/vec.cuh"

namespace sparsefill::kernels::cuda {
namespace {

using ops_detail::bf16;
using ops_detail::Vec;

template <typename In, typename Out, int kW>
struct ConvertOp {
  static constexpr int kWidth = kW;
  const In* in;  // [n]
  Out* out;      // [n]

  struct Loaded {
    Vec<In, kW> x;  // 8 floats are two 16-byte loads; 8 bf16 or halves one
  };
  __device__ Loaded Load(int64_t, int64_t i) const { return {ops_detail::Load<kW>(in + i)}; }
  __device__ void Store(int64_t, int64_t i, const Loaded& v) const {
    // In -> float32 is exact for all three input types; the one rounding is float32 -> Out.
    float f[kW];
    ops_detail::ToF32(v.x, f);
    ops_detail::Store<kW>(out + i, ops_detail::FromF32<Out>(f));
  }
};

template <typename In, typename Out>
cudaError_t Convert(const In* in, int64_t n, Out* out, cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (in == nullptr || out == nullptr) return cudaErrorInvalidValue;
  // The element sizes differ, so any overlap (in place included) races between threads.
  if (ops_detail::Overlaps(in, static_cast<size_t>(n) * sizeof(In), out,
                           static_cast<size_t>(n) * sizeof(Out))) {
    return cudaErrorInvalidValue;
  }
  const bool aligned = ops_detail::IsAligned(in, ops_detail::kVectorBytes) &&
                       ops_detail::IsAligned(out, ops_detail::kVectorBytes);
  return ops_detail::LaunchFlat(
      n, aligned,
      [&](auto width, int64_t offset) {
        return ConvertOp<In, Out, decltype(width)::value>{in + offset, out + offset};
      },
      stream);
}

}  // namespace

cudaError_t ConvertFloatToBf16(const float* in, int64_t n, bf16* out, cudaStream_t stream) {
  return Convert(in, n, out, stream);
}

cudaError_t ConvertHalfToBf16(const __half* in, int64_t n, bf16* out, cudaStream_t stream) {
  return Convert(in, n, out, stream);
}

cudaError_t ConvertBf16ToFloat(const bf16* in, int64_t n, float* out, cudaStream_t stream) {
  return Convert(in, n, out, stream);
}

}  // namespace sparsefill::kernels::cuda
