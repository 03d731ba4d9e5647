// ModelConfig from config.json: both RoPE forms, derived fields, and errors that name the field.
#include "worker/model_config.h"

#include <gtest/gtest.h>

#include <string>

#include "worker/json.h"

namespace sparsefill::worker {
namespace {

absl::StatusOr<ModelConfig> Parse(const std::string& text) {
  auto json = ParseJson(text);
  if (!json.ok()) return json.status();
  return ModelConfig::FromJson(*json);
}

std::string Base(const std::string& extra) {
  return R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "rms_norm_eps": 1e-5)" +
         extra + "}";
}

TEST(ModelConfig, ReadsGoldenConfigWithRopeParametersForm) {
  auto c =
      ModelConfig::FromFile(std::string(SPARSEFILL_TEST_DATA_DIR) + "/tiny-llama3/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_layers, 3);
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->num_heads, 8);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->intermediate_size, 640);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->rope.type, kernels::RopeSpec::Type::kLlama3);
  EXPECT_FLOAT_EQ(c->rope.theta, 500000.0f);
  EXPECT_FLOAT_EQ(c->rope.factor, 8.0f);
  EXPECT_FLOAT_EQ(c->rope.low_freq_factor, 1.0f);
  EXPECT_FLOAT_EQ(c->rope.high_freq_factor, 4.0f);
  EXPECT_EQ(c->rope.original_max_position_embeddings, 512);
}

TEST(ModelConfig, TopLevelRopeFormEqualsRopeParametersForm) {
  auto top = Parse(Base(R"(, "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3",
      "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192})"));
  auto nested = Parse(Base(R"(, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0,
      "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192})"));
  // Older checkpoints spell the key `type`.
  auto legacy = Parse(Base(R"(, "rope_theta": 500000.0, "rope_scaling": {"type": "llama3",
      "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192})"));
  for (const auto* c : {&top, &nested, &legacy}) {
    ASSERT_TRUE(c->ok()) << c->status();
    EXPECT_EQ((*c)->rope.type, kernels::RopeSpec::Type::kLlama3);
    EXPECT_FLOAT_EQ((*c)->rope.theta, 500000.0f);
    EXPECT_EQ((*c)->rope.original_max_position_embeddings, 8192);
  }
}

TEST(ModelConfig, DefaultsAndDerivedFields) {
  auto c = Parse(R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 8,
                     "num_hidden_layers": 1, "num_attention_heads": 4, "rope_scaling": null,
                     "tie_word_embeddings": true})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_kv_heads, 4);  // MHA when num_key_value_heads is absent
  EXPECT_EQ(c->head_dim, 16);     // hidden / heads
  EXPECT_EQ(c->rope.type, kernels::RopeSpec::Type::kDefault);
  EXPECT_FLOAT_EQ(c->rope.theta, 10000.0f);
  EXPECT_TRUE(c->tie_word_embeddings);
}

TEST(ModelConfig, Qwen2HasQkvBiasAndNoWindowUnlessUsed) {
  const std::string qwen2 =
      R"({"model_type": "qwen2", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
          "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "sliding_window": 4096)";
  auto c = Parse(qwen2 + R"(, "use_sliding_window": false})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_EQ(c->sliding_window, 0);  // named, but unused without use_sliding_window
  EXPECT_NE(c->Summary().find("q/k/v bias"), std::string::npos);
  auto windowed = Parse(qwen2 + R"(, "use_sliding_window": true})");
  ASSERT_FALSE(windowed.ok());
  EXPECT_NE(windowed.status().message().find("'use_sliding_window'"), std::string::npos);
  EXPECT_FALSE(Parse(Base("")).value().qkv_bias);
}

TEST(ModelConfig, ErrorsNameTheField) {
  struct Case {
    std::string json, field;
  };
  const Case cases[] = {
      {R"({"hidden_size": 64})", "vocab_size"},
      {Base(R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4.0})"), "rope_scaling.rope_type"},
      {Base(R"(, "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4})"),
       "rope_parameters.rope_type"},
      {Base(
           R"(, "rope_scaling": {"rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0})"),
       "rope_scaling.factor"},
      {Base(R"(, "attention_bias": true)"), "attention_bias"},
      {Base(R"(, "hidden_act": "gelu")"), "hidden_act"},
      {Base(R"(, "head_dim": 7)"), "head_dim"},
      {R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 8, "num_hidden_layers": 1,
           "num_attention_heads": 4, "num_key_value_heads": 3})",
       "num_key_value_heads"},
      {Base(R"(, "num_hidden_layers": "two")"), "num_hidden_layers"},
      {R"({"model_type": "gpt2"})", "model_type"},
  };
  for (const Case& c : cases) {
    auto parsed = Parse(c.json);
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("'" + c.field + "'"), absl::string_view::npos)
        << parsed.status() << " should name " << c.field;
  }
}

TEST(Json, ParsesAndReportsPosition) {
  auto v =
      ParseJson(R"({"a": [1, -2.5e3, true, null, "x\u00e9\n"], "b": {"c": 9007199254740993}})");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->Find("a")->as_array()[0].as_int(), 1);
  EXPECT_DOUBLE_EQ(v->Find("a")->as_array()[1].as_double(), -2500.0);
  EXPECT_FALSE(v->Find("a")->as_array()[1].is_integer());
  EXPECT_EQ(v->Find("a")->as_array()[4].as_string(), "x\xc3\xa9\n");
  EXPECT_EQ(v->Find("b")->Find("c")->as_int(), 9007199254740993);  // exact beyond 2^53
  auto reparsed = ParseJson(v->Serialize());
  ASSERT_TRUE(reparsed.ok());
  EXPECT_EQ(reparsed->Serialize(), v->Serialize());

  auto bad = ParseJson("{\n  \"a\": [1, 2,,]\n}");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), absl::string_view::npos) << bad.status();
  EXPECT_FALSE(ParseJson("[1] 2").ok());
  EXPECT_FALSE(ParseJson("\"unterminated").ok());
  EXPECT_FALSE(ParseJson(std::string(1000, '[')).ok());  // depth limit, no stack overflow
}

}  // namespace
}  // namespace sparsefill::worker
