// Pattern configs: our format, MInference's, and errors that name layer, head and field.
#include "worker/pattern_config.h"

#include <gtest/gtest.h>

#include <string>

namespace sparsefill::worker {
namespace {

TEST(PatternConfig, OurFormatWithDefaultsLayersAndHeads) {
  auto c = PatternConfig::Parse(R"({
      "format": "sparsefill.patterns.v1", "min_sparse_tokens": 4096,
      "default": {"type": "vertical_slash", "vertical": 1000, "slash": 6096},
      "layers": [
        {"type": "dense"},
        [{"type": "a_shape", "n_init": 128, "n_local": 3968}, {"type": "block_sparse", "top_k": 100}]
      ]})",
                                2, 2);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->min_sparse_tokens(), 4096);
  EXPECT_EQ(c->layer(0)[1], HeadPattern::Dense());
  EXPECT_EQ(c->layer(1)[0], HeadPattern::AShape(128, 3968));
  EXPECT_EQ(c->layer(1)[1], HeadPattern::BlockSparse(100));
  EXPECT_FALSE(c->all_dense());

  auto only_default =
      PatternConfig::Parse(R"({"default": {"type": "block_sparse", "top_k": 8}})", 3, 4);
  ASSERT_TRUE(only_default.ok());
  EXPECT_EQ(only_default->layer(2)[3], HeadPattern::BlockSparse(8));

  // Serialisation parses back to the same config.
  auto again = PatternConfig::Parse(c->ToJson(), 2, 2);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), c->ToJson());
  EXPECT_EQ(again->layer(1)[0], c->layer(1)[0]);
}

TEST(PatternConfig, MInferenceFormat) {
  // Two layers of a 3-head model in MInference's best-pattern format; head 2 of layer 1 is
  // missing and gets MInference's default.
  auto c = PatternConfig::Parse(R"([
      {"0": ["vertical_and_slash", 1000, 6096, 336], "1": ["stream_llm", 100, 800, 1],
       "2": ["block_sparse", 8, 1, 0.5]},
      {"0": ["vertical_and_slash", 30, 800, 11048], "1": ["vertical_and_slash", 3500, 100, 4.7e6]}
    ])",
                                2, 3);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->layer(0)[0], HeadPattern::VerticalSlash(1000, 6096));
  EXPECT_EQ(c->layer(0)[1], HeadPattern::AShape(100, 800));
  EXPECT_EQ(c->layer(0)[2], HeadPattern::BlockSparse(100));
  EXPECT_EQ(c->layer(1)[1], HeadPattern::VerticalSlash(3500, 100));
  EXPECT_EQ(c->layer(1)[2], HeadPattern::VerticalSlash(1000, 6096));
}

TEST(PatternConfig, ErrorsNameWhere) {
  struct Case {
    std::string json, expect;
  };
  const Case cases[] = {
      {R"({"layers": [{"type": "dense"}]})", "has 1 entries, the model has 2 layers"},
      {R"({"layers": [{"type": "dense"}, [{"type": "dense"}]]})", "layer 1: lists 1 heads"},
      {R"({"layers": [{"type": "dense"}, {"type": "sparse"}]})", "layer 1: unknown type 'sparse'"},
      {R"({"layers": [{"type": "dense"}, [{"type": "dense"}, {"type": "a_shape", "n_init": 1}]]})",
       "layer 1 head 1: missing 'n_local'"},
      {R"({"default": {"type": "vertical_slash", "vertical": 0, "slash": 5}})",
       "'vertical' must be a positive"},
      {R"({"default": {"type": "block_sparse", "top_k": 4, "topk": 5}})", "unexpected key 'topk'"},
      {R"({"layerz": []})", "unexpected key 'layerz'"},
      {R"([{"0": ["vertical_and_slash", 1, 1, 0]}])", "MInference config: has 1 layers"},
      {R"([{"5": ["vertical_and_slash", 1, 1, 0]}, {}])", "layer 0 head '5'"},
      {R"([{"0": ["magic", 1, 1, 0]}, {}])", "unknown MInference pattern 'magic'"},
      {R"({"layers": )", "JSON syntax error"},
      {R"(42)", "expected an object"},
  };
  for (const Case& c : cases) {
    auto parsed = PatternConfig::Parse(c.json, 2, 2);
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(c.expect), absl::string_view::npos)
        << parsed.status() << "\nexpected to contain: " << c.expect;
  }
}

}  // namespace
}  // namespace sparsefill::worker
