// KV_CODEC_INT4, KIVI-style asymmetric 4-bit quantization (Liu et al., "KIVI", 2024): keys per
// channel over groups of G consecutive tokens of the chunk (outlier channels get their own range),
// values per (token, KV head) row. Each group or row stores min and scale as bfloat16 (min rounded
// toward -inf, scale = (max - min) / 15 rounded toward +inf), codes q = round-half-even((x - min) /
// scale) in [0, 15], two per byte. Decoded x' = q * scale + min. Error: |x' - x| <= scale / 2 (plus
// float32 rounding), scale <= (1 + 2^-7) (max - min + 2^-7 |min|) / 15. Needs an even head_dim.
// Byte layout: Int4Layout (payload_layout.h; the proto specifies it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::kernels {

size_t Int4PayloadBytes(const KvChunkExtent& extent, int group_tokens);

// Writes Int4PayloadBytes(extent, group_tokens) bytes to `payload`.
absl::Status EncodeInt4Chunk(const KvLayerView& layer, const KvChunkExtent& extent,
                             int group_tokens, uint8_t* payload);

// The group size comes from the payload header.
absl::Status DecodeInt4Chunk(std::string_view payload, int kv_heads, const KvChunkExtent& extent,
                             float* k, float* v);

}  // namespace sparsefill::kernels
