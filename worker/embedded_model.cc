#include "worker/embedded_model.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/ops/numeric.h"
#include "worker/named_models.h"
#include "worker/seeded_random.h"

namespace sparsefill::worker {
namespace {

void AddTensor(InMemoryWeights& w, SeededRandom& rng, const std::string& name,
               std::vector<int64_t> shape, double mean, double stddev) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<uint8_t> bytes(2 * n);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = kernels::FloatToBf16(static_cast<float>(mean + stddev * rng.Normal()));
    bytes[2 * i] = static_cast<uint8_t>(h);
    bytes[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
  w.Add(name, kernels::ScalarType::kBFloat16, std::move(shape), std::move(bytes));
}

}  // namespace

ModelConfig EmbeddedModelConfig() {
  return Llama3FamilyConfig(/*layers=*/4, /*hidden=*/512, /*heads=*/8, /*kv_heads=*/2,
                            /*intermediate=*/1536, /*vocab=*/8192);
}

std::unique_ptr<InMemoryWeights> MakeSeededRandomWeights(const ModelConfig& c, uint64_t seed) {
  auto w =
      std::make_unique<InMemoryWeights>(absl::StrCat("seeded random weights (seed ", seed, ")"));
  SeededRandom rng(seed);
  const int64_t H = c.hidden_size;
  constexpr double kStd = 0.06, kNormStd = 0.05;
  AddTensor(*w, rng, "model.embed_tokens.weight", {c.vocab_size, H}, 0.0, kStd);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    AddTensor(*w, rng, p + "input_layernorm.weight", {H}, 1.0, kNormStd);
    AddTensor(*w, rng, p + "self_attn.q_proj.weight", {c.q_dim(), H}, 0.0, kStd);
    AddTensor(*w, rng, p + "self_attn.k_proj.weight", {c.kv_dim(), H}, 0.0, kStd);
    AddTensor(*w, rng, p + "self_attn.v_proj.weight", {c.kv_dim(), H}, 0.0, kStd);
    AddTensor(*w, rng, p + "self_attn.o_proj.weight", {H, c.q_dim()}, 0.0, kStd);
    AddTensor(*w, rng, p + "post_attention_layernorm.weight", {H}, 1.0, kNormStd);
    AddTensor(*w, rng, p + "mlp.gate_proj.weight", {c.intermediate_size, H}, 0.0, kStd);
    AddTensor(*w, rng, p + "mlp.up_proj.weight", {c.intermediate_size, H}, 0.0, kStd);
    AddTensor(*w, rng, p + "mlp.down_proj.weight", {H, c.intermediate_size}, 0.0, kStd);
  }
  AddTensor(*w, rng, "model.norm.weight", {H}, 1.0, kNormStd);
  if (!c.tie_word_embeddings) AddTensor(*w, rng, "lm_head.weight", {c.vocab_size, H}, 0.0, kStd);
  return w;
}

}  // namespace sparsefill::worker
