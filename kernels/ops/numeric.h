// Scalar conversions between the storage dtypes of checkpoints and KV payloads and float32.
// Bit-exact definitions, shared by the CPU references, the loaders and the KV codecs.
#pragma once

#include <cstdint>
#include <cstring>

namespace sparsefill::kernels {

inline float BitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint32_t FloatToBits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// bfloat16 is the upper half of an IEEE float32.
inline float Bf16ToFloat(uint16_t h) { return BitsToFloat(static_cast<uint32_t>(h) << 16); }

// Round to nearest, ties to even (what PyTorch and the CUDA intrinsics do); NaN stays NaN.
inline uint16_t FloatToBf16(float f) {
  const uint32_t bits = FloatToBits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// IEEE binary16 to float32, exact for every input (subnormals, infinities, NaN).
inline float Fp16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return BitsToFloat(sign);
    // Subnormal: normalise the mantissa.
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3ffu;
    return BitsToFloat(sign | static_cast<uint32_t>(127 - 15 - shift + 1) << 23 | (mantissa << 13));
  }
  return BitsToFloat(sign | (exponent + (127 - 15)) << 23 | (mantissa << 13));
}

}  // namespace sparsefill::kernels
