// The CPU backend against Hugging Face transformers' float32 output
// (tests/data/*/golden.safetensors): every layer's K (after RoPE) and V and the last logits within
// 1e-4 relative error, same first token. tiny-llama3 came from the GPU box
// (shared/tools/gen_golden.py); the others from tests/data/gen_golden_variants.py (MHA + head_dim
// 64 + tied embeddings + top-level RoPE form; sharded llama3-RoPE; Mistral with a sliding window;
// Qwen2 with q/k/v biases).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "tests/kernels/test_util.h"
#include "tests/worker/kv_collector.h"
#include "worker/cpu_backend.h"
#include "worker/model.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {
namespace {

constexpr double kTolerance = 1e-4;

class GoldenTest : public ::testing::TestWithParam<std::string> {};

std::vector<float> GoldenTensor(const SafetensorsFile& file, const std::string& name) {
  const TensorView* t = file.Find(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  return ToFloat32(*t).value();
}

TEST_P(GoldenTest, MatchesTransformersFloat32) {
  const std::string dir = std::string(SPARSEFILL_TEST_DATA_DIR) + "/" + GetParam();
  auto model = Model::Load(ModelLoadOptions{dir, ""}, MakeCpuBackend());
  ASSERT_TRUE(model.ok()) << model.status();
  auto golden = SafetensorsFile::Open(dir + "/golden.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status();
  const TensorView* ids_view = (*golden)->Find("input_ids");
  ASSERT_NE(ids_view, nullptr);
  std::vector<int32_t> ids(ids_view->numel());
  std::memcpy(ids.data(), ids_view->data, ids.size() * 4);

  testing::KvCollector kv;
  PrefillOptions options;
  options.kv_sink = &kv;
  auto out = (*model)->Prefill(ids, options);
  ASSERT_TRUE(out.ok()) << out.status();
  const ModelConfig& c = (*model)->config();
  ASSERT_EQ(static_cast<int>(kv.k.size()), c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    for (const char* which : {"k", "v"}) {
      const auto want = GoldenTensor(**golden, "layer." + std::to_string(l) + "." + which);
      const auto& got = which[0] == 'k' ? kv.k[l] : kv.v[l];
      ASSERT_LE(want.size(), got.size());
      // A sliding-window cache in transformers holds only the last window - 1 tokens: compare
      // the tail we sent against it.
      const size_t offset = got.size() - want.size();
      if (offset != 0) {
        EXPECT_GT(c.sliding_window, 0) << "golden KV shorter than the prompt";
      }
      const double err = testing::RelativeError(got.data() + offset, want.data(), want.size());
      EXPECT_LT(err, kTolerance) << GetParam() << " layer " << l << " " << which;
    }
  }
  const auto logits = GoldenTensor(**golden, "logits_last");
  EXPECT_LT(testing::RelativeError(out->logits_last, logits), kTolerance) << GetParam();
  const int32_t argmax =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_EQ(out->first_token, argmax);
  EXPECT_EQ(out->first_token_logit, out->logits_last[out->first_token]);
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, GoldenTest,
                         ::testing::Values("tiny-llama3", "tiny-llama2-mha", "tiny-llama31-sharded",
                                           "tiny-mistral-window", "tiny-qwen2"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace sparsefill::worker
