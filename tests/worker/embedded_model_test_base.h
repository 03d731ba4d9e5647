// A gtest fixture base for tests that run the embedded model on the CPU backend: the model is
// loaded once per test suite, and Tokens() draws random prompt ids from its vocabulary.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "worker/backend_factory.h"
#include "worker/model.h"

namespace sparsefill::worker {

class EmbeddedModelTestBase : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = Model::Load(ModelLoadOptions{}, MakeBackend("cpu").value());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  // `n` token ids, uniform over the vocabulary, from `seed`.
  static std::vector<int32_t> Tokens(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (int32_t& x : t) x = static_cast<int32_t>(rng() % model_->config().vocab_size);
    return t;
  }
  static inline Model* model_ = nullptr;
};

}  // namespace sparsefill::worker
