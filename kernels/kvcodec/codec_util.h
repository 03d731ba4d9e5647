// Helpers shared by the CPU KV codecs (not part of their interface): row access in either
// source dtype, the header check, and little-endian scalar access.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/kvcodec/kv_codec.h"
#include "kernels/kvcodec/payload_layout.h"
#include "kernels/kvcodec/raw_codec.h"
#include "kernels/scalar_type.h"

namespace sparsefill::kernels {

// The wire format is little-endian; the codecs copy scalars with memcpy, which is only correct on
// a little-endian host (every platform we build for).
static_assert(std::endian::native == std::endian::little, "KV codecs assume a little-endian host");

namespace kvcodec_internal {

inline ChunkDims DimsOf(const KvChunkExtent& e) {
  return {e.token_end - e.token_begin, e.head_end - e.head_begin, e.head_dim};
}

// Offset (in elements) of row (t, h) of the full layer.
inline int64_t RowOffset(int kv_heads, int64_t t, int h, int head_dim) {
  return (t * kv_heads + h) * head_dim;
}

// Copies `n` elements of `tensor` (float32 or bf16) from element `offset` into `out` as float.
inline void LoadRow(const void* tensor, ScalarType dtype, int64_t offset, int n, float* out) {
  if (dtype == ScalarType::kBFloat16) {
    const uint16_t* src = static_cast<const uint16_t*>(tensor) + offset;
    for (int i = 0; i < n; ++i) out[i] = std::bit_cast<float>(static_cast<uint32_t>(src[i]) << 16);
  } else {
    std::memcpy(out, static_cast<const float*>(tensor) + offset, sizeof(float) * n);
  }
}

template <typename T>
inline T LoadLe(const uint8_t* p) {
  T x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

template <typename T>
inline void StoreLe(uint8_t* p, T x) {
  std::memcpy(p, &x, sizeof x);
}

// InvalidArgument unless the extent is non-empty and inside a layer of `kv_heads` heads.
absl::Status CheckExtent(const KvChunkExtent& extent, int kv_heads);

// InvalidArgument unless the view's dtype is float32 or bf16, its pointers are set, and the
// extent is inside it.
absl::Status CheckView(const KvLayerView& view, const KvChunkExtent& extent);

// InvalidArgument when any element of the chunk is NaN or infinite (the quantizing codecs need
// finite input).
absl::Status CheckFinite(const KvLayerView& view, const KvChunkExtent& extent, const char* codec);

// DataLoss unless `payload` starts with a well-formed header of `codec`; sets *param.
absl::Status CheckHeader(std::string_view payload, KvCodecId codec, uint16_t* param);

// DataLoss "<codec> payload is N bytes, expected M (...)" when the sizes differ.
absl::Status CheckSize(std::string_view payload, int64_t expected, KvCodecId codec,
                       const ChunkDims& dims);

const char* CodecLabel(KvCodecId codec);

}  // namespace kvcodec_internal
}  // namespace sparsefill::kernels
