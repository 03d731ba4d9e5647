// The real SmolLM2-135M-Instruct (Q4_1 GGUF) on the CPU backend. Needs the model file
// (deploy/fetch_models.sh; $SPARSEFILL_MODEL_CACHE or ~/.cache/sparsefill/models): skipped with
// a message when it is absent, as in CI.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "worker/cpu_backend.h"
#include "worker/model.h"

namespace sparsefill::worker {
namespace {

std::string ModelPath() {
  const char* cache = std::getenv("SPARSEFILL_MODEL_CACHE");
  const char* home = std::getenv("HOME");
  const std::string dir = cache != nullptr  ? cache
                          : home != nullptr ? std::string(home) + "/.cache/sparsefill/models"
                                            : "";
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

class SmolLM2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(ModelPath())) return;
    auto loaded = Model::Load(ModelLoadOptions{"gguf:" + ModelPath(), ""}, MakeCpuBackend());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    model_ = loaded->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) {
      GTEST_SKIP() << ModelPath() << " is absent: run deploy/fetch_models.sh to fetch it";
    }
  }

  // The greedy next token after `prompt`, as text.
  static std::string NextToken(const std::string& prompt) {
    const std::vector<int32_t> ids = model_->tokenizer()->Encode(prompt).value();
    auto out = model_->Prefill(ids, PrefillOptions{});
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return "";
    return model_->tokenizer()->Decode(std::vector<int32_t>{out->first_token});
  }

  static inline Model* model_ = nullptr;
};

TEST_F(SmolLM2Test, ConfigAndTokenizerFromTheFile) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_EQ(c.rope.theta, 100000.0f);
  EXPECT_TRUE(c.tie_word_embeddings);
  ASSERT_NE(model_->tokenizer(), nullptr);
  EXPECT_EQ(model_->tokenizer()->Encode("The capital of France is").value(),
            (std::vector<int32_t>{504, 3575, 282, 4649, 314}));
}

TEST_F(SmolLM2Test, CompletesFactualPrompts) {
  // Wrong Q/K layouts, RoPE or dequantization turn these into noise.
  // The expected tokens are transformers' greedy choices on the same GGUF file
  // (tests/accuracy/compare_transformers.py).
  EXPECT_EQ(NextToken("The capital of France is"), " Paris");
  EXPECT_EQ(NextToken("Monday, Tuesday, Wednesday, Thursday,"), " Friday");
  EXPECT_EQ(NextToken("1, 2, 3, 4, "), "5");
  EXPECT_EQ(NextToken("The largest planet in the solar system is"), " Jupiter");
}

}  // namespace
}  // namespace sparsefill::worker
