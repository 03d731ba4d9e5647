// GreedyDecode and HostKvCache (worker/decode_loop.h) on the embedded model (CPU backend): one
// prefill, then decode steps that append each token's K and V, give the same tokens as
// re-prefilling the prompt plus the tokens decoded so far for every next token, and the cache
// ends up holding the KV such a prefill exports.
#include "worker/decode_loop.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/kernels/test_util.h"
#include "tests/worker/embedded_model_test_base.h"
#include "tests/worker/kv_collector.h"
#include "worker/model.h"

namespace sparsefill::worker {
namespace {

class DecodeLoopTest : public EmbeddedModelTestBase {};

TEST_F(DecodeLoopTest, EqualsRePrefillingEveryToken) {
  const int64_t kv_dim = model_->config().kv_dim();
  for (int n : {3, 90}) {
    SCOPED_TRACE(n);
    const std::vector<int32_t> prompt = Tokens(n, 7 + n);
    sparsefill::testing::KvCollector kv;
    PrefillOptions options;
    options.kv_sink = &kv;
    auto first = model_->Prefill(prompt, options);
    ASSERT_TRUE(first.ok()) << first.status();
    auto cache = HostKvCache::Create(kv.k, kv.v, n, kv_dim);
    ASSERT_TRUE(cache.ok()) << cache.status();

    constexpr int kCount = 6;
    auto decoded = GreedyDecode(*model_, *cache, first->first_token, kCount);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(decoded->size(), kCount);
    EXPECT_EQ(cache->tokens(), n + kCount - 1);

    // Each next token as a prefill of everything before it gives it.
    std::vector<int32_t> longer = prompt;
    for (int i = 0; i + 1 < kCount; ++i) {
      longer.push_back((*decoded)[i]);
      sparsefill::testing::KvCollector reference_kv;
      PrefillOptions reference_options;
      reference_options.kv_sink = &reference_kv;
      auto reference = model_->Prefill(longer, reference_options);
      ASSERT_TRUE(reference.ok()) << reference.status();
      EXPECT_EQ((*decoded)[i + 1], reference->first_token) << "step " << i;
      if (i + 2 == kCount) {  // the cache holds the KV of exactly these tokens
        for (int l = 0; l < model_->config().num_layers; ++l) {
          ASSERT_EQ(cache->k()[l].size(), reference_kv.k[l].size());
          EXPECT_LT(sparsefill::testing::RelativeError(cache->k()[l], reference_kv.k[l]), 1e-5);
          EXPECT_LT(sparsefill::testing::RelativeError(cache->v()[l], reference_kv.v[l]), 1e-5);
        }
      }
    }
  }
}

TEST_F(DecodeLoopTest, RejectsMismatchedShapes) {
  const int64_t kv_dim = model_->config().kv_dim();
  const int layers = model_->config().num_layers;
  std::vector<std::vector<float>> k(layers, std::vector<float>(2 * kv_dim));
  EXPECT_EQ(HostKvCache::Create(k, k, 3, kv_dim).status().code(),
            absl::StatusCode::kInvalidArgument);  // 2 tokens held, 3 claimed
  EXPECT_EQ(HostKvCache::Create(k, {}, 2, kv_dim).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto cache = HostKvCache::Create(k, k, 2, kv_dim);
  ASSERT_TRUE(cache.ok());
  std::vector<std::vector<float>> row(layers, std::vector<float>(kv_dim - 1));
  EXPECT_EQ(cache->Append(row, row).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->tokens(), 2);
  EXPECT_EQ(GreedyDecode(*model_, *cache, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sparsefill::worker
