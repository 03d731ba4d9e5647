// The forward pass: chunking invariance, sparse modes, cancellation, sink errors, bad tokens.
#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "tests/kernels/test_util.h"
#include "tests/worker/kv_collector.h"
#include "worker/cpu_backend.h"
#include "worker/embedded_model.h"
#include "worker/model.h"

namespace sparsefill::worker {
namespace {

const std::string kGolden = std::string(SPARSEFILL_TEST_DATA_DIR) + "/tiny-llama3";

std::vector<int32_t> Tokens(int n, int vocab, int seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = (i * 7919 + seed * 104729) % vocab;
  return t;
}

std::unique_ptr<Model> LoadGolden(int64_t chunk_tokens = 1024) {
  return Model::Load(ModelLoadOptions{kGolden, ""}, MakeCpuBackend(CpuBackendOptions{chunk_tokens}))
      .value();
}

TEST(LlamaForward, TokenChunkingIsBitIdentical) {
  const auto tokens = Tokens(301, 512, 1);
  testing::KvCollector whole_kv, chunked_kv;
  PrefillOptions a, b;
  a.kv_sink = &whole_kv;
  b.kv_sink = &chunked_kv;
  auto whole = LoadGolden(1024)->Prefill(tokens, a);
  auto chunked = LoadGolden(7)->Prefill(tokens, b);
  ASSERT_TRUE(whole.ok() && chunked.ok());
  EXPECT_EQ(whole->logits_last, chunked->logits_last);
  EXPECT_EQ(whole_kv.k, chunked_kv.k);
  EXPECT_EQ(whole_kv.v, chunked_kv.v);
}

TEST(LlamaForward, SparsePatternsReduceDensityAndStayClose) {
  auto model = LoadGolden();
  const auto tokens = Tokens(700, 512, 2);
  auto dense = model->Prefill(tokens, PrefillOptions{});
  ASSERT_TRUE(dense.ok());
  for (const HeadPattern& p : {HeadPattern::AShape(64, 256), HeadPattern::VerticalSlash(100, 200),
                               HeadPattern::BlockSparse(4)}) {
    const PatternConfig config = PatternConfig::Uniform(3, 8, p);
    PrefillOptions options;
    options.patterns = &config;
    auto sparse = model->Prefill(tokens, options);
    ASSERT_TRUE(sparse.ok()) << sparse.status();
    ASSERT_EQ(sparse->attention_density.size(), 3u);
    for (double d : sparse->attention_density) {
      EXPECT_GT(d, 0.0);
      EXPECT_LT(d, 0.8) << HeadPatternTypeName(p.type);
    }
    EXPECT_TRUE(testing::AllFinite(sparse->logits_last));
    EXPECT_NE(sparse->logits_last, dense->logits_last);  // it really ran sparse
  }
  for (double d : dense->attention_density) EXPECT_EQ(d, 1.0);
}

TEST(LlamaForward, MinSparseTokensRunsShortPromptsDense) {
  auto model = LoadGolden();
  const auto tokens = Tokens(300, 512, 3);
  auto config = PatternConfig::Parse(
      R"({"min_sparse_tokens": 1000, "default": {"type": "a_shape", "n_init": 4, "n_local": 16}})",
      3, 8);
  ASSERT_TRUE(config.ok());
  PrefillOptions options;
  options.patterns = &*config;
  auto out = model->Prefill(tokens, options);
  auto dense = model->Prefill(tokens, PrefillOptions{});
  ASSERT_TRUE(out.ok() && dense.ok());
  EXPECT_EQ(out->logits_last, dense->logits_last);
}

TEST(LlamaForward, StopsAtLayerBoundaryWhenAsked) {
  auto model = LoadGolden();
  testing::KvCollector kv;
  std::atomic<int> layers_done{0};
  PrefillOptions options;
  options.kv_sink = &kv;
  options.on_layer_done = [&](int done, int total) {
    EXPECT_EQ(total, 3);
    layers_done = done;
  };
  options.should_stop = [&] { return layers_done.load() >= 2; };
  auto out = model->Prefill(Tokens(50, 512, 4), options);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(kv.k.size(), 2u);
}

class FailingSink : public KvSink {
 public:
  absl::Status OnLayerKv(const LayerKv& kv) override {
    return kv.layer == 1 ? absl::UnavailableError("consumer went away") : absl::OkStatus();
  }
};

TEST(LlamaForward, SinkErrorStopsThePrefill) {
  FailingSink sink;
  PrefillOptions options;
  options.kv_sink = &sink;
  auto out = LoadGolden()->Prefill(Tokens(20, 512, 5), options);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
}

TEST(LlamaForward, RejectsBadPrompts) {
  auto model = LoadGolden();
  auto empty = model->Prefill({}, PrefillOptions{});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> bad = {1, 2, 512};
  auto out_of_vocab = model->Prefill(bad, PrefillOptions{});
  ASSERT_EQ(out_of_vocab.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out_of_vocab.status().message().find("position 2"), absl::string_view::npos);
}

TEST(EmbeddedModel, LoadsDeterministicallyAndRuns) {
  auto a = Model::Load(ModelLoadOptions{}, MakeCpuBackend());
  auto b = Model::Load(ModelLoadOptions{}, MakeCpuBackend());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->name(), kEmbeddedModelName);
  const auto tokens = Tokens(33, 8192, 6);
  auto x = (*a)->Prefill(tokens, PrefillOptions{});
  auto y = (*b)->Prefill(tokens, PrefillOptions{});
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(x->logits_last, y->logits_last);
  // Random weights with a sharp init: logits are not flat.
  const auto [lo, hi] = std::minmax_element(x->logits_last.begin(), x->logits_last.end());
  EXPECT_GT(*hi - *lo, 1.0f);
  // Its default sparse config is MInference's default for every head.
  EXPECT_EQ((*a)->sparse_patterns().layer(3)[7], HeadPattern::VerticalSlash(1000, 6096));
}

}  // namespace
}  // namespace sparsefill::worker
