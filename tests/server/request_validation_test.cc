// ValidatePrefillRequest: every rule of the wire contract, each bad input -> INVALID_ARGUMENT with
// a message naming the field (and position) and the limit; defaults and clamping resolved.
#include "server/request_validation.h"

#include <gtest/gtest.h>

#include <string>

namespace sparsefill::server {
namespace {

const RequestLimits kLimits{/*vocab_size=*/8192, /*max_prompt_tokens=*/100, /*num_layers=*/4,
                            /*num_heads=*/8};

v1::PrefillRequest ValidRequest() {
  v1::PrefillRequest r;
  r.set_request_id("req-1");
  for (int i = 0; i < 10; ++i) r.add_token_ids(i * 7);
  return r;
}

// The sparsefill-format config of 4 layers, every head the same pattern.
std::string InlineConfig(int layers = 4) {
  std::string s = R"({"format": "sparsefill.patterns.v1", "layers": [)";
  for (int l = 0; l < layers; ++l) {
    if (l > 0) s += ", ";
    s += R"({"type": "a_shape", "n_init": 4, "n_local": 64})";
  }
  return s + "]}";
}

void ExpectInvalid(const v1::PrefillRequest& request, const std::string& field_prefix,
                   const std::string& also) {
  const absl::StatusOr<ValidatedRequest> v = ValidatePrefillRequest(request, kLimits);
  ASSERT_FALSE(v.ok()) << "accepted a request that should fail on " << field_prefix;
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument) << v.status();
  const std::string message(v.status().message());
  EXPECT_EQ(message.rfind(field_prefix, 0), 0u)
      << "message does not start with the field: " << message;
  EXPECT_NE(message.find(also), std::string::npos) << "'" << also << "' missing from: " << message;
}

TEST(RequestValidationTest, ValidRequestGetsTheContractDefaults) {
  const absl::StatusOr<ValidatedRequest> v = ValidatePrefillRequest(ValidRequest(), kLimits);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->attention_mode, v1::ATTENTION_MODE_MODEL_SPARSE);
  EXPECT_EQ(v->kv_codec, v1::KV_CODEC_RAW_BF16);
  EXPECT_EQ(v->max_chunk_bytes, 1u << 20);
  EXPECT_FALSE(v->inline_patterns.has_value());
}

TEST(RequestValidationTest, ExplicitModesAndCodecsAreKept) {
  v1::PrefillRequest r = ValidRequest();
  r.set_attention_mode(v1::ATTENTION_MODE_DENSE);
  r.set_kv_codec(v1::KV_CODEC_RAW_FP32);
  const absl::StatusOr<ValidatedRequest> v = ValidatePrefillRequest(r, kLimits);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->attention_mode, v1::ATTENTION_MODE_DENSE);
  EXPECT_EQ(v->kv_codec, v1::KV_CODEC_RAW_FP32);
}

TEST(RequestValidationTest, CompressedCodecsAndTheInt4GroupSize) {
  v1::PrefillRequest r = ValidRequest();
  for (v1::KvCodec codec :
       {v1::KV_CODEC_LOSSLESS, v1::KV_CODEC_FP8_E4M3, v1::KV_CODEC_INT8, v1::KV_CODEC_INT4}) {
    r.set_kv_codec(codec);
    const absl::StatusOr<ValidatedRequest> v = ValidatePrefillRequest(r, kLimits);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->kv_codec, codec);
    EXPECT_EQ(v->int4_group_tokens, 64) << "the default G";
  }
  r.set_kv_int4_group_tokens(65535);
  EXPECT_EQ(ValidatePrefillRequest(r, kLimits)->int4_group_tokens, 65535);
  r.set_kv_int4_group_tokens(65536);
  const absl::StatusOr<ValidatedRequest> v = ValidatePrefillRequest(r, kLimits);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message(), "kv_int4_group_tokens: 65536 is larger than the limit of 65535");
  r.set_kv_int4_group_tokens(0);
  RequestLimits odd = kLimits;
  odd.head_dim = 33;
  const absl::StatusOr<ValidatedRequest> odd_int4 = ValidatePrefillRequest(r, odd);
  EXPECT_EQ(odd_int4.status().message(),
            "kv_codec: KV_CODEC_INT4 packs channel pairs and needs an even head_dim; this "
            "model's is 33");
  r.set_kv_codec(v1::KV_CODEC_INT8);
  EXPECT_TRUE(ValidatePrefillRequest(r, odd).ok());
  r.set_kv_codec(static_cast<v1::KvCodec>(7));
  EXPECT_EQ(ValidatePrefillRequest(r, kLimits).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RequestValidationTest, KvPushTarget) {
  v1::PrefillRequest r = ValidRequest();
  r.mutable_kv_push()->set_endpoint("decode-0:50052");
  r.mutable_kv_push()->set_session_id("s-1");
  EXPECT_TRUE(ValidatePrefillRequest(r, kLimits).ok());
  auto message = [&](v1::PrefillRequest q) {
    return std::string(ValidatePrefillRequest(q, kLimits).status().message());
  };
  v1::PrefillRequest q = r;
  q.set_skip_kv(true);
  EXPECT_EQ(message(q), "kv_push: cannot be combined with skip_kv");
  q = r;
  q.mutable_kv_push()->clear_endpoint();
  EXPECT_EQ(message(q), "kv_push.endpoint: is empty");
  q = r;
  q.mutable_kv_push()->clear_session_id();
  EXPECT_EQ(message(q), "kv_push.session_id: is empty");
  q = r;
  q.mutable_kv_push()->set_session_id(std::string(129, 's'));
  EXPECT_EQ(message(q), "kv_push.session_id: 129 bytes is longer than the limit of 128");
  q = r;
  q.mutable_kv_push()->set_session_id("a\nb");
  EXPECT_EQ(message(q), "kv_push.session_id: is not printable ASCII");
}

TEST(RequestValidationTest, MaxChunkBytesIsClamped) {
  EXPECT_EQ(EffectiveMaxChunkBytes(0), 1u << 20);
  EXPECT_EQ(EffectiveMaxChunkBytes(1), 64u << 10);
  EXPECT_EQ(EffectiveMaxChunkBytes((64u << 10) - 1), 64u << 10);
  EXPECT_EQ(EffectiveMaxChunkBytes(100000), 100000u);
  EXPECT_EQ(EffectiveMaxChunkBytes(3u << 20), 3u << 20);
  EXPECT_EQ(EffectiveMaxChunkBytes((3u << 20) + 1), 3u << 20);
  EXPECT_EQ(EffectiveMaxChunkBytes(UINT32_MAX), 3u << 20);
  v1::PrefillRequest r = ValidRequest();
  r.set_max_chunk_bytes(5);
  EXPECT_EQ(ValidatePrefillRequest(r, kLimits)->max_chunk_bytes, 64u << 10);
}

TEST(RequestValidationTest, RequestIdLimits) {
  v1::PrefillRequest r = ValidRequest();
  r.set_request_id("");
  EXPECT_TRUE(ValidatePrefillRequest(r, kLimits).ok()) << "an empty id is allowed";
  r.set_request_id(std::string(128, 'a'));
  EXPECT_TRUE(ValidatePrefillRequest(r, kLimits).ok()) << "128 bytes is the limit, inclusive";
  r.set_request_id(std::string(129, 'a'));
  ExpectInvalid(r, "request_id", "128");
  r.set_request_id("line\nbreak");
  ExpectInvalid(r, "request_id", "printable");
  r.set_request_id(std::string("caf\xc3\xa9"));
  ExpectInvalid(r, "request_id", "printable");
}

TEST(RequestValidationTest, EmptyPrompt) {
  v1::PrefillRequest r = ValidRequest();
  r.clear_token_ids();
  ExpectInvalid(r, "token_ids", "empty");
}

TEST(RequestValidationTest, PromptLongerThanTheLimit) {
  v1::PrefillRequest r = ValidRequest();
  r.clear_token_ids();
  for (int i = 0; i < 100; ++i) r.add_token_ids(1);
  EXPECT_TRUE(ValidatePrefillRequest(r, kLimits).ok()) << "exactly max_prompt_tokens is allowed";
  r.add_token_ids(1);
  ExpectInvalid(r, "token_ids", "max_prompt_tokens (100)");
}

TEST(RequestValidationTest, TokenIdsOutsideTheVocabularyNameTheirPosition) {
  v1::PrefillRequest r = ValidRequest();
  r.set_token_ids(3, 8192);
  ExpectInvalid(r, "token_ids[3]", "8192 is outside the vocabulary [0, 8192)");
  r = ValidRequest();
  r.set_token_ids(0, -1);
  ExpectInvalid(r, "token_ids[0]", "-1");
  r = ValidRequest();
  r.set_token_ids(9, 8191);
  EXPECT_TRUE(ValidatePrefillRequest(r, kLimits).ok()) << "vocab_size - 1 is a valid id";
}

TEST(RequestValidationTest, UnknownEnumValues) {
  v1::PrefillRequest r = ValidRequest();
  r.set_attention_mode(static_cast<v1::AttentionMode>(99));
  ExpectInvalid(r, "attention_mode", "99");
  r = ValidRequest();
  r.set_kv_codec(static_cast<v1::KvCodec>(42));
  ExpectInvalid(r, "kv_codec", "42");
}

TEST(RequestValidationTest, InlineConfigOnlyWithInlineMode) {
  for (const v1::AttentionMode mode : {v1::ATTENTION_MODE_UNSPECIFIED, v1::ATTENTION_MODE_DENSE,
                                       v1::ATTENTION_MODE_MODEL_SPARSE}) {
    v1::PrefillRequest r = ValidRequest();
    r.set_attention_mode(mode);
    r.set_inline_pattern_config(InlineConfig());
    ExpectInvalid(r, "inline_pattern_config", "must be empty");
  }
  v1::PrefillRequest r = ValidRequest();
  r.set_attention_mode(v1::ATTENTION_MODE_INLINE);
  ExpectInvalid(r, "inline_pattern_config", "required");
}

TEST(RequestValidationTest, InlineConfigIsParsedAgainstTheModel) {
  v1::PrefillRequest r = ValidRequest();
  r.set_attention_mode(v1::ATTENTION_MODE_INLINE);
  r.set_inline_pattern_config(InlineConfig());
  const absl::StatusOr<ValidatedRequest> v = ValidatePrefillRequest(r, kLimits);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->inline_patterns.has_value());
  EXPECT_EQ(v->inline_patterns->num_layers(), 4);
  EXPECT_EQ(v->inline_patterns->num_heads(), 8);
  EXPECT_EQ(v->inline_patterns->layer(2)[5], worker::HeadPattern::AShape(4, 64));
}

TEST(RequestValidationTest, MalformedInlineConfigs) {
  v1::PrefillRequest r = ValidRequest();
  r.set_attention_mode(v1::ATTENTION_MODE_INLINE);
  r.set_inline_pattern_config("{not json");
  ExpectInvalid(r, "inline_pattern_config", "JSON");
  r.set_inline_pattern_config(InlineConfig(/*layers=*/3));  // the model has 4
  ExpectInvalid(r, "inline_pattern_config", "layers");
  r.set_inline_pattern_config(R"({"layers": [{"type": "teleport"}, {}, {}, {}]})");
  ExpectInvalid(r, "inline_pattern_config", "teleport");
  r.set_inline_pattern_config("42");
  ExpectInvalid(r, "inline_pattern_config", "");
  // Hostile nesting is an error, not a stack overflow.
  r.set_inline_pattern_config(std::string(100000, '[') + std::string(100000, ']'));
  ExpectInvalid(r, "inline_pattern_config", "");
}

TEST(RequestValidationTest, InlineConfigSizeLimit) {
  v1::PrefillRequest r = ValidRequest();
  r.set_attention_mode(v1::ATTENTION_MODE_INLINE);
  std::string config = InlineConfig();
  config.append((1u << 20) - config.size(), ' ');  // exactly 1 MiB: JSON allows trailing spaces
  r.set_inline_pattern_config(config);
  EXPECT_TRUE(ValidatePrefillRequest(r, kLimits).ok()) << "1 MiB is the limit, inclusive";
  config.push_back(' ');
  r.set_inline_pattern_config(config);
  ExpectInvalid(r, "inline_pattern_config", "1048576");
}

}  // namespace
}  // namespace sparsefill::server
