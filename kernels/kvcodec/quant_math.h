// The scalar arithmetic of the quantizing KV codecs (FP8_E4M3, INT8, INT4), written once for the
// CPU encoder and the CUDA encoder (__host__ __device__): both produce identical bytes because they
// run these same IEEE float32 steps, in the same order, with no fused multiply-add (every step
// below is a single rounding: a division, a subtraction or a comparison). No CUDA, Abseil or
// standard-library headers beyond <cstdint>/<cmath>, so nvcc and the client SDK both take it.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SF_KVCODEC_HD __host__ __device__ __forceinline__
#else
#define SF_KVCODEC_HD inline
#endif

namespace sparsefill::kernels::kvq {

SF_KVCODEC_HD uint32_t Bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

SF_KVCODEC_HD float FromBits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Round to nearest integer, ties to even, for |y| < 2^22 (all the codecs need: their quotients
// are bounded by the code range). Adding 1.5 * 2^23 moves y where the float32 spacing is 1, so the
// IEEE addition itself rounds (to nearest even: the default mode, which nothing here changes);
// subtracting it back is exact. Two plain additions: no libm call, vectorizable, and the same on
// the GPU (add.rn). Compilers keep (y + c) - c as written: folding it is value-changing, allowed
// only under fast-math, which no sparsefill target uses (a unit test checks the ties).
SF_KVCODEC_HD float RoundHalfEven(float y) {
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23
  return (y + kShift) - kShift;
}

// float32 -> bfloat16 bits, round to nearest even (NaN stays NaN): the RAW_BF16 rounding.
SF_KVCODEC_HD uint16_t FloatToBf16Rne(float f) {
  const uint32_t bits = Bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

SF_KVCODEC_HD float Bf16BitsToFloat(uint16_t h) { return FromBits(static_cast<uint32_t>(h) << 16); }

// float32 (finite) -> bfloat16 bits rounded toward -infinity: the result is <= f.
SF_KVCODEC_HD uint16_t FloatToBf16Down(float f) {
  const uint32_t bits = Bits(f);
  const uint16_t truncated = static_cast<uint16_t>(bits >> 16);  // rounds toward zero
  const bool inexact = (bits & 0xffffu) != 0;
  const bool negative = (bits >> 31) != 0;
  // Toward zero is toward -inf for positives; a negative inexact value needs one more ulp of
  // magnitude.
  return (negative && inexact) ? static_cast<uint16_t>(truncated + 1) : truncated;
}

// float32 (finite, >= 0) -> bfloat16 bits rounded toward +infinity: the result is >= f.
SF_KVCODEC_HD uint16_t FloatToBf16Up(float f) {
  const uint32_t bits = Bits(f);
  const uint16_t truncated = static_cast<uint16_t>(bits >> 16);
  return (bits & 0xffffu) != 0 ? static_cast<uint16_t>(truncated + 1) : truncated;
}

// ---- FP8 E4M3 (OCP "E4M3FN": bias 7, no infinities, S.1111.111 is NaN, largest finite 448) ----

constexpr float kE4m3Max = 448.0f;
constexpr uint8_t kE4m3MaxCode = 0x7e;  // +448

// float32 (finite) -> E4M3 code, round to nearest even, saturating at +-448.
SF_KVCODEC_HD uint8_t FloatToE4m3(float x) {
  const uint32_t bits = Bits(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const float a = FromBits(bits & 0x7fffffffu);
  if (a >= kE4m3Max) return static_cast<uint8_t>(sign | kE4m3MaxCode);
  if (a < 0.015625f) {
    // Zero and subnormals (below 2^-6): multiples of 2^-9; a * 512 is exact. A result of 8 is
    // 2^-6, whose code (exponent 1, mantissa 0) is also 8.
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(RoundHalfEven(a * 512.0f)));
  }
  int exponent = static_cast<int>((Bits(a) >> 23) & 0xffu) - 127;  // -6 ... 8
  const uint32_t mantissa = Bits(a) & 0x7fffffu;
  uint32_t keep = mantissa >> 20;  // the top 3 mantissa bits
  const uint32_t rest = mantissa & 0xfffffu;
  if (rest > 0x80000u || (rest == 0x80000u && (keep & 1u) != 0)) ++keep;
  if (keep == 8) {
    keep = 0;
    ++exponent;
  }
  if (exponent > 8 || (exponent == 8 && keep == 7))
    return static_cast<uint8_t>(sign | kE4m3MaxCode);
  return static_cast<uint8_t>(sign | static_cast<uint8_t>((exponent + 7) << 3) | keep);
}

// E4M3 code -> float32 (exact). NaN codes (0x7f, 0xff) give NaN.
SF_KVCODEC_HD float E4m3ToFloat(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t exponent = (code >> 3) & 0xfu;
  const uint32_t mantissa = code & 0x7u;
  if ((code & 0x7fu) == 0x7fu) return FromBits(0x7fc00000u | sign);
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 0.001953125f;  // m * 2^-9, exact
    return sign != 0 ? -magnitude : magnitude;
  }
  return FromBits(sign | ((exponent - 7 + 127) << 23) | (mantissa << 20));
}

// ---- Per-row symmetric scales (FP8_E4M3 and INT8) ----

// The scale of a row whose largest magnitude is `amax`: amax / code_max (one IEEE division).
SF_KVCODEC_HD float SymmetricScale(float amax, float code_max) { return amax / code_max; }

SF_KVCODEC_HD uint8_t QuantizeFp8(float x, float scale) {
  if (scale == 0.0f) return 0;  // an all-zero row (or one too small for a normal scale)
  return FloatToE4m3(x / scale);
}

SF_KVCODEC_HD int8_t QuantizeInt8(float x, float scale) {
  if (scale == 0.0f) return 0;
  float q = RoundHalfEven(x / scale);
  q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
  return static_cast<int8_t>(q);
}

// ---- INT4 asymmetric groups (min and scale as bfloat16) ----

struct Int4Params {
  uint16_t min_bf16;    // rounded toward -inf from the group's minimum
  uint16_t scale_bf16;  // rounded toward +inf from (max - min) / 15
};

SF_KVCODEC_HD Int4Params MakeInt4Params(float lo, float hi) {
  Int4Params p;
  p.min_bf16 = FloatToBf16Down(lo);
  const float range = hi - Bf16BitsToFloat(p.min_bf16);
  p.scale_bf16 = FloatToBf16Up(range / 15.0f);
  return p;
}

SF_KVCODEC_HD uint8_t QuantizeInt4(float x, Int4Params p) {
  const float scale = Bf16BitsToFloat(p.scale_bf16);
  if (scale == 0.0f) return 0;
  float q = RoundHalfEven((x - Bf16BitsToFloat(p.min_bf16)) / scale);
  q = q > 15.0f ? 15.0f : (q < 0.0f ? 0.0f : q);
  return static_cast<uint8_t>(q);
}

}  // namespace sparsefill::kernels::kvq
