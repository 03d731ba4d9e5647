// Checks a PrefillRequest against the wire contract and the served model before any work is
// queued, and resolves the contract's defaults. A pure function (no server state), so every rule
// is unit-tested directly. Every rejection is INVALID_ARGUMENT and its message starts with the
// offending field (and position, for token ids) and states the limit.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "kernels/kvcodec/payload_layout.h"
#include "sparsefill/v1/prefill_service.pb.h"
#include "worker/pattern_config.h"

namespace sparsefill::server {

// Limits from the wire contract (prefill_service.proto).
inline constexpr size_t kMaxRequestIdBytes = 128;
inline constexpr size_t kMaxInlinePatternConfigBytes = size_t{1} << 20;
inline constexpr uint32_t kDefaultMaxChunkBytes = uint32_t{1} << 20;
inline constexpr uint32_t kMinMaxChunkBytes = uint32_t{64} << 10;
inline constexpr uint32_t kMaxMaxChunkBytes = uint32_t{3} << 20;

// What a request is checked against: the served model and the server's limit.
struct RequestLimits {
  int64_t vocab_size = 0;
  int64_t max_prompt_tokens = 0;
  int num_layers = 0;  // to check an inline pattern config
  int num_heads = 0;   // query heads, likewise
  int head_dim = 0;    // to refuse KV_CODEC_INT4 for an odd head_dim (0: not checked)
};

// A request that passed validation, with the contract's defaults applied.
struct ValidatedRequest {
  v1::AttentionMode attention_mode = v1::ATTENTION_MODE_MODEL_SPARSE;  // never UNSPECIFIED
  v1::KvCodec kv_codec = v1::KV_CODEC_RAW_BF16;                        // never UNSPECIFIED
  uint32_t max_chunk_bytes = kDefaultMaxChunkBytes;                    // clamped
  int int4_group_tokens = kernels::kDefaultInt4GroupTokens;            // never 0
  // The parsed inline_pattern_config, with ATTENTION_MODE_INLINE only.
  std::optional<worker::PatternConfig> inline_patterns;
};

absl::StatusOr<ValidatedRequest> ValidatePrefillRequest(const v1::PrefillRequest& request,
                                                        const RequestLimits& limits);

// max_chunk_bytes as the contract resolves it: 0 -> 1 MiB, else clamped to [64 KiB, 3 MiB].
uint32_t EffectiveMaxChunkBytes(uint32_t requested);

}  // namespace sparsefill::server
