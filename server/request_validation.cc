// Request validation rules (see request_validation.h and prefill_service.proto).
#include "server/request_validation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sparsefill::server {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

absl::Status CheckRequestId(const std::string& id) {
  if (id.size() > kMaxRequestIdBytes) {
    return FieldError("request_id", absl::StrCat(id.size(), " bytes is longer than the limit of ",
                                                 kMaxRequestIdBytes));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c > 0x7e) {
      return FieldError("request_id",
                        absl::StrFormat("byte %d (0x%02x) is not printable ASCII", i, c));
    }
  }
  return absl::OkStatus();
}

}  // namespace

uint32_t EffectiveMaxChunkBytes(uint32_t requested) {
  if (requested == 0) return kDefaultMaxChunkBytes;
  return std::clamp(requested, kMinMaxChunkBytes, kMaxMaxChunkBytes);
}

absl::StatusOr<ValidatedRequest> ValidatePrefillRequest(const v1::PrefillRequest& request,
                                                        const RequestLimits& limits) {
  if (absl::Status s = CheckRequestId(request.request_id()); !s.ok()) return s;

  ValidatedRequest out;
  // proto3 enums are open: an unknown number arrives intact, so check it explicitly.
  const int mode = static_cast<int>(request.attention_mode());
  if (!v1::AttentionMode_IsValid(mode)) {
    return FieldError(
        "attention_mode",
        absl::StrCat("unknown value ", mode,
                     " (expected ATTENTION_MODE_DENSE, ATTENTION_MODE_MODEL_SPARSE or "
                     "ATTENTION_MODE_INLINE)"));
  }
  out.attention_mode = request.attention_mode() == v1::ATTENTION_MODE_UNSPECIFIED
                           ? v1::ATTENTION_MODE_MODEL_SPARSE
                           : request.attention_mode();
  const int codec = static_cast<int>(request.kv_codec());
  if (!v1::KvCodec_IsValid(codec)) {
    return FieldError("kv_codec",
                      absl::StrCat("unknown value ", codec,
                                   " (expected KV_CODEC_RAW_BF16, KV_CODEC_RAW_FP32, "
                                   "KV_CODEC_LOSSLESS, KV_CODEC_FP8_E4M3, KV_CODEC_INT8 or "
                                   "KV_CODEC_INT4)"));
  }
  out.kv_codec =
      request.kv_codec() == v1::KV_CODEC_UNSPECIFIED ? v1::KV_CODEC_RAW_BF16 : request.kv_codec();
  if (out.kv_codec == v1::KV_CODEC_INT4 && limits.head_dim % 2 != 0) {
    return FieldError("kv_codec",
                      absl::StrCat("KV_CODEC_INT4 packs channel pairs and needs an even "
                                   "head_dim; this model's is ",
                                   limits.head_dim));
  }
  if (request.kv_int4_group_tokens() > static_cast<uint32_t>(kernels::kMaxInt4GroupTokens)) {
    return FieldError("kv_int4_group_tokens",
                      absl::StrCat(request.kv_int4_group_tokens(), " is larger than the limit of ",
                                   kernels::kMaxInt4GroupTokens));
  }
  out.int4_group_tokens = request.kv_int4_group_tokens() == 0
                              ? kernels::kDefaultInt4GroupTokens
                              : static_cast<int>(request.kv_int4_group_tokens());

  const std::string& config = request.inline_pattern_config();
  if (out.attention_mode == v1::ATTENTION_MODE_INLINE) {
    if (config.empty()) {
      return FieldError("inline_pattern_config", "is required with ATTENTION_MODE_INLINE");
    }
    if (config.size() > kMaxInlinePatternConfigBytes) {
      return FieldError("inline_pattern_config",
                        absl::StrCat(config.size(), " bytes is larger than the limit of ",
                                     kMaxInlinePatternConfigBytes));
    }
  } else if (!config.empty()) {
    return FieldError(
        "inline_pattern_config",
        absl::StrCat("must be empty unless attention_mode is ATTENTION_MODE_INLINE (it is ",
                     v1::AttentionMode_Name(out.attention_mode), ")"));
  }

  const int64_t num_tokens = request.token_ids_size();
  if (num_tokens == 0)
    return FieldError("token_ids", "the prompt is empty (at least 1 token is required)");
  if (num_tokens > limits.max_prompt_tokens) {
    return FieldError("token_ids", absl::StrCat(num_tokens, " tokens exceed max_prompt_tokens (",
                                                limits.max_prompt_tokens, ")"));
  }
  for (int64_t i = 0; i < num_tokens; ++i) {
    const int32_t id = request.token_ids(static_cast<int>(i));
    if (id < 0 || id >= limits.vocab_size) {
      return FieldError(
          absl::StrCat("token_ids[", i, "]"),
          absl::StrCat("token id ", id, " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }

  out.max_chunk_bytes = EffectiveMaxChunkBytes(request.max_chunk_bytes());

  if (request.has_kv_push()) {
    const v1::KvPushTarget& push = request.kv_push();
    if (request.skip_kv()) return FieldError("kv_push", "cannot be combined with skip_kv");
    if (push.endpoint().empty()) return FieldError("kv_push.endpoint", "is empty");
    if (push.endpoint().size() > 256) {
      return FieldError("kv_push.endpoint",
                        absl::StrCat(push.endpoint().size(), " bytes is longer than 256"));
    }
    if (push.session_id().empty()) return FieldError("kv_push.session_id", "is empty");
    if (push.session_id().size() > kMaxRequestIdBytes) {
      return FieldError("kv_push.session_id",
                        absl::StrCat(push.session_id().size(),
                                     " bytes is longer than the limit of ", kMaxRequestIdBytes));
    }
    for (const char c : push.session_id()) {
      if (c < 0x20 || c > 0x7e) return FieldError("kv_push.session_id", "is not printable ASCII");
    }
  }

  // Parsed last: it is the most expensive check and the JSON parser bounds nesting depth, so a
  // hostile document costs at most a parse of 1 MiB.
  if (out.attention_mode == v1::ATTENTION_MODE_INLINE) {
    absl::StatusOr<worker::PatternConfig> patterns =
        worker::PatternConfig::Parse(config, limits.num_layers, limits.num_heads);
    if (!patterns.ok()) return FieldError("inline_pattern_config", patterns.status().message());
    out.inline_patterns = *std::move(patterns);
  }
  return out;
}

}  // namespace sparsefill::server
