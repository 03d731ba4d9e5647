// The recall probe on the golden tiny model: transparent to the prefill, dense scores 1, a
// sparse pattern less, one score per layer and head.
#include "tests/accuracy/recall_probe_backend.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/accuracy/kernel_cost_model.h"
#include "worker/cpu_backend.h"
#include "worker/model.h"

namespace sparsefill::accuracy {
namespace {

TEST(RecallProbeBackendTest, ScoresConfigsWithoutChangingThePrefill) {
  const std::string dir = std::string(SPARSEFILL_TEST_DATA_DIR) + "/tiny-llama3";
  auto owner = std::make_unique<RecallProbeBackend>(worker::MakeCpuBackend());
  RecallProbeBackend* probe = owner.get();
  auto model = worker::Model::Load(worker::ModelLoadOptions{dir, ""}, std::move(owner));
  ASSERT_TRUE(model.ok()) << model.status();
  auto plain = worker::Model::Load(worker::ModelLoadOptions{dir, ""}, worker::MakeCpuBackend());
  ASSERT_TRUE(plain.ok()) << plain.status();
  const worker::ModelConfig& c = (*model)->config();

  const worker::PatternConfig dense = worker::PatternConfig::Dense(c.num_layers, c.num_heads);
  const worker::PatternConfig a_shape =
      worker::PatternConfig::Uniform(c.num_layers, c.num_heads, worker::HeadPattern::AShape(4, 16));
  std::vector<int32_t> ids(200);
  for (size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<int32_t>((i * 37 + 11) % c.vocab_size);

  probe->SetProbes({&dense, &a_shape}, 32);
  auto out = (*model)->Prefill(ids, worker::PrefillOptions{});
  ASSERT_TRUE(out.ok()) << out.status();
  auto want = (*plain)->Prefill(ids, worker::PrefillOptions{});
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(out->logits_last, want->logits_last);

  ASSERT_EQ(probe->recall().size(), 2u);
  ASSERT_EQ(static_cast<int>(probe->recall()[1].size()), c.num_layers);
  double sparse_sum = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    ASSERT_EQ(static_cast<int>(probe->recall()[1][l].size()), c.num_heads);
    for (int h = 0; h < c.num_heads; ++h) {
      EXPECT_NEAR(probe->recall()[0][l][h], 1.0, 1e-9);
      EXPECT_DOUBLE_EQ(probe->density()[0][l][h], 1.0);
      EXPECT_DOUBLE_EQ(probe->kernel_cost()[0][l][h], KernelCostModel{}.dense);
      EXPECT_GT(probe->recall()[1][l][h], 0.0);
      EXPECT_LE(probe->recall()[1][l][h], 1.0 + 1e-9);
      EXPECT_LT(probe->density()[1][l][h], 0.25);
      // At 200 tokens A-shape (4, 16) still walks about every causal tile.
      EXPECT_DOUBLE_EQ(probe->kernel_cost()[1][l][h],
                       RelativeKernelCost(kernels::HeadKeySet::AShape(4, 16), 200));
      sparse_sum += probe->recall()[1][l][h];
    }
  }
  EXPECT_LT(sparse_sum, c.num_layers * c.num_heads * 0.999) << "A-shape(4, 16) keeps everything?";
}

}  // namespace
}  // namespace sparsefill::accuracy
