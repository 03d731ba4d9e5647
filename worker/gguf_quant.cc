#include "worker/gguf_quant.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/ops/numeric.h"

namespace sparsefill::worker {
namespace {

float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return kernels::Fp16ToFloat(h);
}

// Weights 0-15 of a 32-weight block sit in the low nibbles of qs[0..15], 16-31 in the high ones.
void DequantizeQ4_0(const uint8_t* block, float* y) {
  const float d = Half(block);
  const uint8_t* qs = block + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

void DequantizeQ4_1(const uint8_t* block, float* y) {
  const float d = Half(block);
  const float m = Half(block + 2);
  const uint8_t* qs = block + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
    y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

void DequantizeQ8_0(const uint8_t* block, float* y) {
  const float d = Half(block);
  for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(block[2 + j]));
}

// The j-th (scale, min) pair of a K-quant super-block: eight 6-bit pairs packed in 12 bytes.
// Pairs 0-3: low 6 bits of bytes j (scale) and j + 4 (min). Pairs 4-7: the low nibble (scale) and
// high nibble (min) of byte j + 4, with their top two bits in the spare top bits of bytes j - 4
// (scale) and j (min).
void ScaleMinK4(int j, const uint8_t* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// 256 weights: four groups of 64, each 32 bytes of nibbles (low nibbles = the first 32 weights
// of the group with pair 2g, high nibbles = the next 32 with pair 2g + 1).
void DequantizeQ4_K(const uint8_t* block, float* y) {
  const float d = Half(block);
  const float dmin = Half(block + 2);
  const uint8_t* scales = block + 4;
  const uint8_t* q = block + 16;
  for (int g = 0; g < 4; ++g) {
    int sc0, m0, sc1, m1;
    ScaleMinK4(2 * g, scales, &sc0, &m0);
    ScaleMinK4(2 * g + 1, scales, &sc1, &m1);
    const float d0 = d * static_cast<float>(sc0), min0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), min1 = dmin * static_cast<float>(m1);
    for (int l = 0; l < 32; ++l) {
      y[64 * g + l] = d0 * static_cast<float>(q[l] & 0x0F) - min0;
      y[64 * g + 32 + l] = d1 * static_cast<float>(q[l] >> 4) - min1;
    }
    q += 32;
  }
}

// 256 weights in two halves of 128. In a half, weight 32 * k + l (k = 0..3, l = 0..31) takes its
// low 4 bits from ql[l + 32 * (k & 1)] (low nibble for k < 2, high nibble otherwise), its top 2
// bits from bits 2k..2k+1 of qh[l], and the scale sc[8 * half + 2 * k + l / 16].
void DequantizeQ6_K(const uint8_t* block, float* y) {
  const uint8_t* ql = block;
  const uint8_t* qh = block + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
  const float d = Half(block + 208);
  for (int half = 0; half < 2; ++half) {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo_byte = ql[l + 32 * (k & 1)];
        const int lo = k < 2 ? (lo_byte & 0x0F) : (lo_byte >> 4);
        const int hi = (qh[l] >> (2 * k)) & 3;
        const int q = (lo | (hi << 4)) - 32;
        y[32 * k + l] = d * static_cast<float>(sc[2 * k + l / 16]) * static_cast<float>(q);
      }
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

template <void (*kBlock)(const uint8_t*, float*)>
void DequantizeBlocks(const uint8_t* src, int64_t count, int64_t block_size, size_t block_bytes,
                      float* dst) {
  for (int64_t b = 0; b < count / block_size; ++b) {
    kBlock(src + b * block_bytes, dst + b * block_size);
  }
}

}  // namespace

// Weights per block and bytes per block of every type ggml defines (ggml-common.h's block
// structs), and whether DequantizeGgml reads it.
constexpr std::pair<GgmlType, GgmlTypeTraits> kTraits[] = {
    {GgmlType::kF32, {"F32", 1, 4, true}},        {GgmlType::kF16, {"F16", 1, 2, true}},
    {GgmlType::kBF16, {"BF16", 1, 2, true}},      {GgmlType::kQ4_0, {"Q4_0", 32, 18, true}},
    {GgmlType::kQ4_1, {"Q4_1", 32, 20, true}},    {GgmlType::kQ5_0, {"Q5_0", 32, 22, false}},
    {GgmlType::kQ5_1, {"Q5_1", 32, 24, false}},   {GgmlType::kQ8_0, {"Q8_0", 32, 34, true}},
    {GgmlType::kQ8_1, {"Q8_1", 32, 36, false}},   {GgmlType::kQ2_K, {"Q2_K", 256, 84, false}},
    {GgmlType::kQ3_K, {"Q3_K", 256, 110, false}}, {GgmlType::kQ4_K, {"Q4_K", 256, 144, true}},
    {GgmlType::kQ5_K, {"Q5_K", 256, 176, false}}, {GgmlType::kQ6_K, {"Q6_K", 256, 210, true}},
    {GgmlType::kQ8_K, {"Q8_K", 256, 292, false}},
};

std::optional<GgmlTypeTraits> GgmlTraits(uint32_t type) {
  for (const auto& [t, traits] : kTraits) {
    if (static_cast<uint32_t>(t) == type) return traits;
  }
  return std::nullopt;
}

const char* GgmlTypeName(GgmlType type) {
  const std::optional<GgmlTypeTraits> t = GgmlTraits(static_cast<uint32_t>(type));
  return t ? t->name : "unknown";
}

absl::Status DequantizeGgml(GgmlType type, const uint8_t* src, int64_t count, float* dst) {
  const std::optional<GgmlTypeTraits> traits = GgmlTraits(static_cast<uint32_t>(type));
  if (!traits || !traits->supported) {
    return absl::UnimplementedError(absl::StrCat(
        "ggml type ", GgmlTypeName(type),
        " cannot be dequantized (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K)"));
  }
  if (count % traits->block_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(count, " weights are not a whole number of ",
                                                   traits->name, " blocks of ",
                                                   traits->block_size));
  }
  const int64_t bs = traits->block_size;
  const size_t bb = traits->bytes_per_block;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(count) * 4);
      break;
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = type == GgmlType::kF16 ? kernels::Fp16ToFloat(h) : kernels::Bf16ToFloat(h);
      }
      break;
    case GgmlType::kQ4_0:
      DequantizeBlocks<DequantizeQ4_0>(src, count, bs, bb, dst);
      break;
    case GgmlType::kQ4_1:
      DequantizeBlocks<DequantizeQ4_1>(src, count, bs, bb, dst);
      break;
    case GgmlType::kQ8_0:
      DequantizeBlocks<DequantizeQ8_0>(src, count, bs, bb, dst);
      break;
    case GgmlType::kQ4_K:
      DequantizeBlocks<DequantizeQ4_K>(src, count, bs, bb, dst);
      break;
    case GgmlType::kQ6_K:
      DequantizeBlocks<DequantizeQ6_K>(src, count, bs, bb, dst);
      break;
    default:
      break;  // excluded by `supported` above
  }
  return absl::OkStatus();
}

}  // namespace sparsefill::worker
