#include "worker/named_models.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sparsefill::worker {
ModelConfig Llama3FamilyConfig(int layers, int64_t hidden, int heads, int kv_heads,
                               int64_t intermediate, int64_t vocab) {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = static_cast<int>(hidden / heads);
  c.rms_norm_eps = 1e-5f;
  c.max_position_embeddings = 131072;
  c.rope.type = kernels::RopeSpec::Type::kLlama3;
  c.rope.theta = 500000.0f;
  c.rope.factor = 8.0f;
  c.rope.low_freq_factor = 1.0f;
  c.rope.high_freq_factor = 4.0f;
  c.rope.original_max_position_embeddings = 8192;
  return c;
}

absl::StatusOr<ModelConfig> NamedModelConfig(absl::string_view name) {
  if (name == "llama3-8b") return Llama3FamilyConfig(32, 4096, 32, 8, 14336, 128256);
  if (name == "llama3-tiny") return Llama3FamilyConfig(2, 256, 4, 2, 512, 1024);
  return absl::NotFoundError(absl::StrCat("no named model shape '", name, "' (known: ",
                                          absl::StrJoin(NamedModelNames(), ", "), ")"));
}

std::vector<std::string> NamedModelNames() { return {"llama3-8b", "llama3-tiny"}; }

}  // namespace sparsefill::worker
