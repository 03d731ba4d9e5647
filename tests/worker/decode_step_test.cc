// Model::DecodeStep (worker/decode_step.h) on the embedded model (CPU backend): a prompt's
// prefilled KV plus one decode step of its first token gives the same next token, and logits
// within float32 noise, as prefilling prompt + first token; with the KV rounded to bf16 (what
// RAW_BF16 and LOSSLESS deliver) the next token is still the same.
#include "worker/decode_step.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ops/numeric.h"
#include "tests/kernels/test_util.h"
#include "tests/worker/embedded_model_test_base.h"
#include "tests/worker/kv_collector.h"
#include "worker/model.h"

namespace sparsefill::worker {
namespace {

class DecodeStepTest : public EmbeddedModelTestBase {};

TEST_F(DecodeStepTest, EqualsPrefillingOneMoreToken) {
  for (int n : {1, 37, 200}) {
    SCOPED_TRACE(n);
    const std::vector<int32_t> prompt = Tokens(n, 100 + n);
    sparsefill::testing::KvCollector kv;
    PrefillOptions options;
    options.kv_sink = &kv;
    auto first = model_->Prefill(prompt, options);
    ASSERT_TRUE(first.ok()) << first.status();

    std::vector<PastKvLayer> past;
    for (int l = 0; l < model_->config().num_layers; ++l)
      past.push_back({kv.k[l].data(), kv.v[l].data()});
    auto step = model_->DecodeStep(past, n, first->first_token);
    ASSERT_TRUE(step.ok()) << step.status();

    std::vector<int32_t> longer = prompt;
    longer.push_back(first->first_token);
    auto reference = model_->Prefill(longer, PrefillOptions{});
    ASSERT_TRUE(reference.ok()) << reference.status();
    EXPECT_EQ(step->next_token, reference->first_token);
    EXPECT_LT(sparsefill::testing::RelativeError(step->logits, reference->logits_last), 1e-4);

    // KV as RAW_BF16 / LOSSLESS deliver it.
    for (auto* layers : {&kv.k, &kv.v}) {
      for (auto& layer : *layers) {
        for (float& x : layer) x = kernels::Bf16ToFloat(kernels::FloatToBf16(x));
      }
    }
    auto bf16_step = model_->DecodeStep(past, n, first->first_token);
    ASSERT_TRUE(bf16_step.ok());
    EXPECT_EQ(bf16_step->next_token, reference->first_token);
  }
}

TEST_F(DecodeStepTest, RejectsAMismatchedCache) {
  std::vector<float> k(8), v(8);
  std::vector<PastKvLayer> past(1, {k.data(), v.data()});
  EXPECT_EQ(model_->DecodeStep(past, 1, 0).status().code(), absl::StatusCode::kInvalidArgument);
  past.assign(model_->config().num_layers, {k.data(), v.data()});
  EXPECT_EQ(model_->DecodeStep(past, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(model_->DecodeStep(past, 1, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sparsefill::worker
