// KV_CODEC_INT8: per (token, KV head) float32 scale = max|x| / 127, each element stored as the
// int8 round-half-even(x / scale), clamped to [-127, 127]. Byte layout: ScaledByteLayout
// (payload_layout.h; the proto specifies it). Error: |x' - x| <= scale / 2.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::kernels {

size_t Int8PayloadBytes(const KvChunkExtent& extent);

// Writes Int8PayloadBytes(extent) bytes to `payload`.
absl::Status EncodeInt8Chunk(const KvLayerView& layer, const KvChunkExtent& extent,
                             uint8_t* payload);

absl::Status DecodeInt8Chunk(std::string_view payload, int kv_heads, const KvChunkExtent& extent,
                             float* k, float* v);

}  // namespace sparsefill::kernels
