// Compressed KV on the decode side, for the accuracy harness: a prefill's KV (float32, as the CPU
// backend exports it) goes through a codec's CPU encoder and decoder, chunked by token ranges as
// the server's KvChunkSink chunks it (kernels::MaxTokensPerChunk under a payload bound), so that
// decode steps can run on what a decode node would hold.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::accuracy {

struct CodecChoice {
  std::string name;  // as given: "int8", "int4:32"
  kernels::KvCodecId codec = kernels::KvCodecId::kRawBf16;
  kernels::KvEncodeOptions options;
};

// "raw_bf16,raw_fp32,lossless,fp8_e4m3,int8,int4[:G]" (any subset, any order; case-insensitive;
// G is INT4's key group in tokens, default kDefaultInt4GroupTokens). InvalidArgument naming an
// unknown codec or a bad G.
absl::StatusOr<std::vector<CodecChoice>> ParseCodecList(std::string_view list);

// Every layer's K and V, float32 [tokens, kv_heads, head_dim] each (KV after RoPE).
struct LayerKvSet {
  std::vector<std::vector<float>> k, v;
};

struct RoundTripStats {
  int64_t chunks = 0;          // over all layers
  uint64_t payload_bytes = 0;  // sum of the encoded payloads
  uint64_t bf16_bytes = 0;     // the same KV as RAW_BF16 would carry it, without headers
  double k_rel_err = 0;        // relative L2 error of the decoded K, all layers together
  double v_rel_err = 0;
};

// Encodes every layer of `exact` with `codec` into chunks of at most `max_chunk_bytes` payload
// (at least one token each) and decodes them back into *decoded (resized as needed). Every layer
// must hold a whole number of tokens of kv_heads x head_dim. Errors of the codec pass through.
absl::StatusOr<RoundTripStats> RoundTripKv(const CodecChoice& codec, const LayerKvSet& exact,
                                           int kv_heads, int head_dim, int64_t max_chunk_bytes,
                                           LayerKvSet* decoded);

}  // namespace sparsefill::accuracy
