// The uncompressed KV codecs: RAW_FP32 and RAW_BF16. A chunk covers a token range and a KV-head
// range of one layer; its payload is the K block followed by the V block, each
// [tokens in range, heads in range, head_dim] row-major, little-endian elements.
// The decoder has no CUDA dependency, so the client SDK links it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/scalar_type.h"

namespace sparsefill::kernels {

// Which part of a layer's KV a chunk holds.
struct KvChunkExtent {
  int64_t token_begin = 0, token_end = 0;  // [begin, end) over the prompt
  int head_begin = 0, head_end = 0;        // [begin, end) over the layer's KV heads
  int head_dim = 0;

  int64_t elements_per_tensor() const {
    return (token_end - token_begin) * (head_end - head_begin) * head_dim;
  }
};

// Payload size of a chunk whose elements are `wire` (kFloat32 or kBFloat16).
size_t RawPayloadBytes(const KvChunkExtent& extent, ScalarType wire);

// Encodes the chunk `extent` of a layer whose full K and V are [tokens, kv_heads, head_dim] of
// type `source` (kFloat32 or kBFloat16) into `payload` (RawPayloadBytes long), converting to
// `wire` (float32 -> bf16 rounds to nearest even).
void EncodeRawChunk(const void* k, const void* v, ScalarType source, int kv_heads,
                    const KvChunkExtent& extent, ScalarType wire, uint8_t* payload);

// Decodes a payload into full-layer float32 K and V arrays [tokens, kv_heads, head_dim], writing
// only the chunk's region. Returns false when the payload size does not match the extent.
bool DecodeRawChunk(const uint8_t* payload, size_t payload_bytes, ScalarType wire, int kv_heads,
                    const KvChunkExtent& extent, float* k, float* v);

}  // namespace sparsefill::kernels
