// KV_CODEC_FP8_E4M3: per (token, KV head) float32 scale = max|x| / 448, each element stored as the
// FP8 E4M3 code of x / scale (round to nearest even, saturating). Byte layout: ScaledByteLayout
// (payload_layout.h; the proto specifies it). Error: |x' - x| <= 2^-4 |x| + 2^-10 scale.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::kernels {

size_t Fp8PayloadBytes(const KvChunkExtent& extent);

// Writes Fp8PayloadBytes(extent) bytes to `payload`.
absl::Status EncodeFp8Chunk(const KvLayerView& layer, const KvChunkExtent& extent,
                            uint8_t* payload);

absl::Status DecodeFp8Chunk(std::string_view payload, int kv_heads, const KvChunkExtent& extent,
                            float* k, float* v);

}  // namespace sparsefill::kernels
