// KV_CODEC_LOSSLESS: the chunk's bfloat16 values (exactly those of KV_CODEC_RAW_BF16) split into
// byte planes and compressed with zstd. The high byte of a bf16 (sign and 7 exponent bits) is
// highly repetitive in KV, the low byte (last exponent bit and mantissa) nearly random; apart,
// zstd's entropy coder squeezes the first and stores the second almost raw.
// Byte layout (the proto specifies it): the 8-byte KV header (parameter 0), then one zstd frame
// (with its content size) of 4N bytes: K high bytes [N], K low bytes [N], V high bytes [N],
// V low bytes [N], each plane in [token][head][dim] order, N = tokens x heads x head_dim.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::kernels {

// An upper bound of the payload size (zstd's worst case for incompressible planes plus the
// header).
size_t LosslessMaxPayloadBytes(const KvChunkExtent& extent);

// The uncompressed planes of the chunk (4N bytes, layout above); float32 input is rounded to
// bf16 as RAW_BF16 does. The CUDA encoder produces the same planes on the GPU.
absl::Status SplitBf16Planes(const KvLayerView& layer, const KvChunkExtent& extent,
                             uint8_t* planes);

// Header + zstd frame of `planes` (4N bytes) at `level` into *payload.
absl::Status CompressBf16Planes(const uint8_t* planes, size_t size, int level,
                                std::string* payload);

absl::Status EncodeLosslessChunk(const KvLayerView& layer, const KvChunkExtent& extent, int level,
                                 std::string* payload);

absl::Status DecodeLosslessChunk(std::string_view payload, int kv_heads,
                                 const KvChunkExtent& extent, float* k, float* v);

}  // namespace sparsefill::kernels
