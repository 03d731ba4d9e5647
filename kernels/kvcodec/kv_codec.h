// The KV codec registry: one entry point to encode and decode a chunk of a layer's KV cache with
// any codec of the wire contract (proto/sparsefill/v1/prefill_service.proto, enum KvCodec, which
// specifies every byte). Each codec lives in its own file:
//   RAW_BF16, RAW_FP32  raw_codec.h      uncompressed
//   LOSSLESS            lossless_codec.h bf16 byte planes + zstd, bit-exact with RAW_BF16
//   FP8_E4M3            fp8_codec.h      per (token, head) float32 scale, E4M3 codes
//   INT8                int8_codec.h     per (token, head) float32 scale, int8 codes
//   INT4                int4_codec.h     KIVI-style: K per channel over G tokens, V per token
// Decoders have no CUDA dependency (the client SDK links them), check the payload completely
// before writing anything (on error the output is untouched), and never read or write outside
// the payload and the chunk's region. Encoders of the quantizing codecs have CUDA twins in
// cuda/kvcodec_cuda.h that produce the same bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/kvcodec/payload_layout.h"
#include "kernels/kvcodec/raw_codec.h"
#include "kernels/scalar_type.h"

namespace sparsefill::kernels {

// One layer's K and V in host memory, [tokens, kv_heads, head_dim] each, float32 or bfloat16.
struct KvLayerView {
  const void* k = nullptr;
  const void* v = nullptr;
  ScalarType dtype = ScalarType::kFloat32;
  int kv_heads = 0;
  int64_t tokens = 0;
};

struct KvEncodeOptions {
  // INT4: tokens per key group, in [1, 65535]; written into the payload header.
  int int4_group_tokens = kDefaultInt4GroupTokens;
  // LOSSLESS: the zstd compression level (1 is fast and within a few percent of level 19 on KV).
  int zstd_level = 1;
};

// The codec with proto number `number`, or InvalidArgument (UNSPECIFIED, 0, is not a codec).
absl::StatusOr<KvCodecId> KvCodecFromNumber(int number);

// "RAW_BF16", "RAW_FP32", "LOSSLESS", "FP8_E4M3", "INT8", "INT4".
const char* KvCodecName(KvCodecId codec);

// An upper bound of the payload size of `extent` (exact for every codec but LOSSLESS).
size_t MaxKvPayloadBytes(KvCodecId codec, const KvChunkExtent& extent,
                         const KvEncodeOptions& options = {});

// The most tokens a chunk of `heads` x `head_dim` may hold so that MaxKvPayloadBytes stays within
// `max_payload_bytes`; at least 1, at most `tokens`. For INT4 a multiple of the group size when
// that fits, so no key group is split between chunks.
int64_t MaxTokensPerChunk(KvCodecId codec, int64_t tokens, int heads, int head_dim,
                          int64_t max_payload_bytes, const KvEncodeOptions& options = {});

// Encodes the chunk `extent` of `layer` into *payload (replacing its contents).
// InvalidArgument for a malformed extent or options, or (quantizing codecs) non-finite input.
absl::Status EncodeKvChunk(KvCodecId codec, const KvLayerView& layer, const KvChunkExtent& extent,
                           const KvEncodeOptions& options, std::string* payload);

// Decodes `payload` into full-layer float32 K and V arrays [tokens, kv_heads, head_dim], writing
// only the chunk's region. DataLoss naming the problem for a truncated, corrupt or other-codec
// payload; InvalidArgument for a malformed extent.
absl::Status DecodeKvChunk(KvCodecId codec, std::string_view payload, int kv_heads,
                           const KvChunkExtent& extent, float* k, float* v);

}  // namespace sparsefill::kernels
