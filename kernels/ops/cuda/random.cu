// Seeded normal random numbers generated on the device, for random-weight models of any size
// (llama3-8b's 8.0 G parameters in milliseconds, no download) that are the same on every run.
// out[i] depends on (seed, i) only: Philox4x32-10 block q = i / 4 gives four 32-bit words,
// Box-Muller turns words (0, 1) into z for i = 4q, 4q + 1 and words (2, 3) into 4q + 2, 4q + 3.
// No state, no dependence on the grid, the stream or the length of the fill.
//
// Cost per element: ~20 integer instructions of Philox and ~50 for logf, sqrtf, sincospif and the
// rest (accurate functions: the same bits on any GPU that runs this binary), so compute-bound.
// Measured on H100 (2026-11-26): 134 M elements in 326 us, 0.41 G elements/ms (the 268 MB
// written would take 93 us at copy bandwidth); llama3-8b's 8.0 G parameters in ~20 ms.
#include <cmath>
#include <cstdint>

#include "kernels/ops/cuda/elementwise.cuh"
#include "kernels/ops/cuda/ops.h"
#include "kernels/ops/cuda/philox.cuh"
#include "kernels/ops/cuda/vec.cuh"

namespace sparsefill::kernels::cuda {
namespace {

using ops_detail::bf16;
using ops_detail::Vec;

// Normals per Philox block: four 32-bit words, two Box-Muller pairs.
constexpr int kNormalsPerBlock = 4;
static_assert(ops_detail::kBf16PerVector % kNormalsPerBlock == 0,
              "a vector covers whole Philox blocks");

// 24-bit uniform in (0, 1]: exact in float32, never 0, so logf is finite.
__device__ __forceinline__ float UniformOpenClosed(uint32_t bits) {
  return static_cast<float>((bits >> 8) + 1u) * 0x1p-24f;
}
// 24-bit uniform in [0, 1).
__device__ __forceinline__ float UniformClosedOpen(uint32_t bits) {
  return static_cast<float>(bits >> 8) * 0x1p-24f;
}

// Box-Muller: two independent standard normals from two uniforms.
// sincospif(2u) is sin/cos(2 pi u) with the range reduction done exactly.
__device__ __forceinline__ void BoxMuller(uint32_t a, uint32_t b, float& z0, float& z1) {
  const float radius = sqrtf(-2.0f * logf(UniformOpenClosed(a)));
  float s, c;
  sincospif(2.0f * UniformClosedOpen(b), &s, &c);
  z0 = radius * c;
  z1 = radius * s;
}

// The standard normals of Philox block q.
__device__ __forceinline__ void NormalBlock(uint64_t seed, uint64_t q,
                                            float (&z)[kNormalsPerBlock]) {
  const ops_detail::Philox4x32 bits = ops_detail::PhiloxBlock(seed, q);
  BoxMuller(bits.v[0], bits.v[1], z[0], z[1]);
  BoxMuller(bits.v[2], bits.v[3], z[2], z[3]);
}

template <int kW>
struct FillNormalOp {
  static constexpr int kWidth = kW;
  bf16* out;            // [n - first_index] elements, out[0] is element first_index
  int64_t first_index;  // absolute index of out[0] (a multiple of 4 when kW > 1)
  uint64_t seed;
  float mean, stddev;

  struct Loaded {};  // nothing to read
  __device__ Loaded Load(int64_t, int64_t) const { return {}; }
  __device__ void Store(int64_t, int64_t col, const Loaded&) const {
    const uint64_t index = static_cast<uint64_t>(first_index + col);
    float value[kW];
    if constexpr (kW % kNormalsPerBlock == 0) {
      // Whole blocks: every word used.
#pragma unroll
      for (int b = 0; b < kW / kNormalsPerBlock; ++b) {
        float z[kNormalsPerBlock];
        NormalBlock(seed, index / kNormalsPerBlock + b, z);
#pragma unroll
        for (int j = 0; j < kNormalsPerBlock; ++j) value[b * kNormalsPerBlock + j] = z[j];
      }
    } else {
      static_assert(kW == 1, "scalar path or whole blocks");
      float z[kNormalsPerBlock];
      NormalBlock(seed, index / kNormalsPerBlock, z);
      // Runtime index into z would put it in local memory; select instead.
      const int lane = static_cast<int>(index % kNormalsPerBlock);
      value[0] = lane == 0 ? z[0] : lane == 1 ? z[1] : lane == 2 ? z[2] : z[3];
    }
#pragma unroll
    for (int j = 0; j < kW; ++j) value[j] = mean + stddev * value[j];
    ops_detail::Store<kW>(out + col, ops_detail::FromF32<bf16>(value));
  }
};

}  // namespace

cudaError_t FillRandomNormalBf16(bf16* out, int64_t n, uint64_t seed, float mean, float stddev,
                                 cudaStream_t stream) {
  if (n < 0 || !std::isfinite(mean) || !std::isfinite(stddev) || !(stddev >= 0.0f)) {
    return cudaErrorInvalidValue;
  }
  if (n == 0) return cudaSuccess;
  if (out == nullptr) return cudaErrorInvalidValue;
  // The vector body starts at index 0 and the scalar rest at a multiple of 8: both at a block
  // boundary where it matters, and each element's value is its own index's either way.
  return ops_detail::LaunchFlat(
      n, ops_detail::IsAligned(out, ops_detail::kVectorBytes),
      [&](auto width, int64_t offset) {
        return FillNormalOp<decltype(width)::value>{out + offset, offset, seed, mean, stddev};
      },
      stream);
}

}  // namespace sparsefill::kernels::cuda
