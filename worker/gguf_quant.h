// ggml's tensor element types as GGUF files store them, and their dequantization to float32.
// Block formats (little-endian, one block after another along the contiguous dimension):
//   Q4_0: 32 weights in 18 bytes: fp16 scale d, 16 bytes of 4-bit q (low nibbles = weights 0-15,
//         high nibbles = 16-31); w = d * (q - 8).
//   Q4_1: 32 weights in 20 bytes: fp16 d, fp16 min m, 16 bytes of nibbles as Q4_0; w = d * q + m.
//   Q8_0: 32 weights in 34 bytes: fp16 d, 32 int8 q; w = d * q.
//   Q4_K: 256 weights in 144 bytes: fp16 d, fp16 dmin, 12 bytes of eight 6-bit (scale, min)
//         pairs, 128 bytes of nibbles; sub-block j of 32: w = d * sc_j * q - dmin * m_j.
//   Q6_K: 256 weights in 210 bytes: 128 bytes low nibbles, 64 bytes of 2-bit highs, 16 int8
//         scales, fp16 d; w = d * scale_(i/16) * (q - 32) with q 6 bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace sparsefill::worker {

// Numbered as in ggml.h (the values in a GGUF tensor info).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeTraits {
  const char* name;    // "Q4_1"
  int64_t block_size;  // weights per block (1 for plain floats)
  size_t bytes_per_block;
  bool supported;  // DequantizeGgml handles it
};

// The traits of a type id read from a file, or nullopt for an id ggml does not define.
std::optional<GgmlTypeTraits> GgmlTraits(uint32_t type);
const char* GgmlTypeName(GgmlType type);

// Dequantizes `count` weights (a multiple of the block size) from `src` into `dst`. Unsupported
// types give Unimplemented naming the type.
absl::Status DequantizeGgml(GgmlType type, const uint8_t* src, int64_t count, float* dst);

}  // namespace sparsefill::worker
