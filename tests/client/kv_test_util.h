// Synthetic KV streams for the client tests: layer tensors with distinct values and their
// KvChunk encoding (kernels::EncodeKvChunk + Crc32c, the server's encoder), split over token
// and KV-head ranges the way a server may split them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "client/kv_assembler.h"
#include "kernels/kvcodec/crc32c.h"
#include "kernels/kvcodec/kv_codec.h"
#include "kernels/ops/numeric.h"
#include "sparsefill/v1/prefill_service.pb.h"

namespace sparsefill::testing {

struct SyntheticLayer {
  std::vector<float> k, v;  // [tokens, kv_heads, head_dim]
};

// Values that differ per layer, tensor and element, with a full float32 mantissa (so a bf16
// round trip visibly changes them and an fp32 one must not).
inline std::vector<SyntheticLayer> MakeSyntheticKv(const client::KvShape& shape) {
  std::vector<SyntheticLayer> layers(shape.num_layers);
  uint32_t state = 12345;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 8.0f;
  };
  for (auto& layer : layers) {
    layer.k.resize(shape.elements_per_tensor());
    layer.v.resize(shape.elements_per_tensor());
    for (float& x : layer.k) x = next();
    for (float& x : layer.v) x = next();
  }
  return layers;
}

inline float Bf16Round(float x) { return kernels::Bf16ToFloat(kernels::FloatToBf16(x)); }

// One chunk of `layer` covering `extent`, with its CRC.
inline v1::KvChunk MakeChunk(const SyntheticLayer& layer, int layer_index, int kv_heads,
                             const kernels::KvChunkExtent& extent, v1::KvCodec codec,
                             uint64_t sequence, const std::string& request_id, bool last) {
  // Any codec, through the registry the server uses (an unknown number leaves the payload empty).
  std::string payload;
  const int64_t tokens = static_cast<int64_t>(layer.k.size()) / (kv_heads * extent.head_dim);
  if (absl::StatusOr<kernels::KvCodecId> id = kernels::KvCodecFromNumber(codec); id.ok()) {
    const kernels::KvLayerView view{layer.k.data(), layer.v.data(), kernels::ScalarType::kFloat32,
                                    kv_heads, tokens};
    (void)kernels::EncodeKvChunk(*id, view, extent, {}, &payload);
  }
  v1::KvChunk chunk;
  chunk.set_request_id(request_id);
  chunk.set_sequence(sequence);
  chunk.set_layer(layer_index);
  chunk.set_token_begin(extent.token_begin);
  chunk.set_token_end(extent.token_end);
  chunk.set_kv_head_begin(extent.head_begin);
  chunk.set_kv_head_end(extent.head_end);
  chunk.set_head_dim(extent.head_dim);
  chunk.set_codec(codec);
  chunk.set_payload_crc32c(kernels::Crc32c(payload.data(), payload.size()));
  chunk.set_payload(std::move(payload));
  chunk.set_last_in_layer(last);
  return chunk;
}

// Recomputes a chunk's CRC after a test edited its payload (so the edit is caught by the check
// under test, not by the checksum).
inline void FixCrc(v1::KvChunk& chunk) {
  chunk.set_payload_crc32c(kernels::Crc32c(chunk.payload().data(), chunk.payload().size()));
}

// The whole stream's chunks: per layer, token blocks of `tokens_per_chunk`, each split into KV
// head blocks of `heads_per_chunk` (the last block of either may be shorter).
inline std::vector<v1::KvChunk> EncodeKvStream(const std::vector<SyntheticLayer>& layers,
                                               const client::KvShape& shape, v1::KvCodec codec,
                                               const std::string& request_id,
                                               int64_t tokens_per_chunk, int heads_per_chunk) {
  std::vector<v1::KvChunk> chunks;
  uint64_t sequence = 0;
  for (int l = 0; l < shape.num_layers; ++l) {
    for (int64_t t = 0; t < shape.tokens; t += tokens_per_chunk) {
      for (int h = 0; h < shape.kv_heads; h += heads_per_chunk) {
        kernels::KvChunkExtent e;
        e.token_begin = t;
        e.token_end = std::min(shape.tokens, t + tokens_per_chunk);
        e.head_begin = h;
        e.head_end = std::min(shape.kv_heads, h + heads_per_chunk);
        e.head_dim = shape.head_dim;
        const bool last = e.token_end == shape.tokens && e.head_end == shape.kv_heads;
        chunks.push_back(
            MakeChunk(layers[l], l, shape.kv_heads, e, codec, sequence++, request_id, last));
      }
    }
  }
  return chunks;
}

// Renumbers sequence from 0 (after a test removed or reordered chunks on purpose).
inline void Renumber(std::vector<v1::KvChunk>& chunks) {
  for (size_t i = 0; i < chunks.size(); ++i) chunks[i].set_sequence(i);
}

}  // namespace sparsefill::testing
