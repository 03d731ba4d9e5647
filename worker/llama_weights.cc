#include "worker/llama_weights.h"

#include "absl/strings/str_cat.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

absl::StatusOr<std::unique_ptr<BackendBuffer>> Load(const WeightSource& source, Backend& backend,
                                                    const std::string& name,
                                                    const std::vector<int64_t>& shape) {
  SF_ASSIGN_OR_RETURN(const TensorView tensor, GetChecked(source, name, shape));
  absl::StatusOr<std::unique_ptr<BackendBuffer>> buffer = backend.UploadWeight(tensor);
  if (!buffer.ok()) {
    return absl::Status(buffer.status().code(),
                        absl::StrCat(source.Describe(), ": ", buffer.status().message()));
  }
  return buffer;
}

// Whether `backend` runs every op the config needs, before anything is uploaded.
absl::Status CheckBackendSupports(const ModelConfig& c, Backend& backend) {
  if (c.qkv_bias) return backend.AddBias(Tensor2D{}, Tensor2D{});
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaWeights> LoadLlamaWeights(const ModelConfig& c, const WeightSource& source,
                                              Backend& backend) {
  SF_RETURN_IF_ERROR(CheckBackendSupports(c, backend));
  LlamaWeights w;
  const int64_t H = c.hidden_size;
  SF_ASSIGN_OR_RETURN(w.embed_tokens,
                      Load(source, backend, "model.embed_tokens.weight", {c.vocab_size, H}));
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LlamaLayerWeights& lw = w.layers.emplace_back();
    SF_ASSIGN_OR_RETURN(lw.input_norm, Load(source, backend, p + "input_layernorm.weight", {H}));
    SF_ASSIGN_OR_RETURN(lw.wq,
                        Load(source, backend, p + "self_attn.q_proj.weight", {c.q_dim(), H}));
    SF_ASSIGN_OR_RETURN(lw.wk,
                        Load(source, backend, p + "self_attn.k_proj.weight", {c.kv_dim(), H}));
    SF_ASSIGN_OR_RETURN(lw.wv,
                        Load(source, backend, p + "self_attn.v_proj.weight", {c.kv_dim(), H}));
    if (c.qkv_bias) {
      SF_ASSIGN_OR_RETURN(lw.bq, Load(source, backend, p + "self_attn.q_proj.bias", {c.q_dim()}));
      SF_ASSIGN_OR_RETURN(lw.bk, Load(source, backend, p + "self_attn.k_proj.bias", {c.kv_dim()}));
      SF_ASSIGN_OR_RETURN(lw.bv, Load(source, backend, p + "self_attn.v_proj.bias", {c.kv_dim()}));
    }
    SF_ASSIGN_OR_RETURN(lw.wo,
                        Load(source, backend, p + "self_attn.o_proj.weight", {H, c.q_dim()}));
    SF_ASSIGN_OR_RETURN(lw.post_attention_norm,
                        Load(source, backend, p + "post_attention_layernorm.weight", {H}));
    SF_ASSIGN_OR_RETURN(
        lw.w_gate, Load(source, backend, p + "mlp.gate_proj.weight", {c.intermediate_size, H}));
    SF_ASSIGN_OR_RETURN(lw.w_up,
                        Load(source, backend, p + "mlp.up_proj.weight", {c.intermediate_size, H}));
    SF_ASSIGN_OR_RETURN(
        lw.w_down, Load(source, backend, p + "mlp.down_proj.weight", {H, c.intermediate_size}));
  }
  SF_ASSIGN_OR_RETURN(w.final_norm, Load(source, backend, "model.norm.weight", {H}));
  if (!c.tie_word_embeddings) {
    if (!source.Has("lm_head.weight")) {
      return absl::NotFoundError(absl::StrCat(source.Describe(),
                                              ": checkpoint has no tensor 'lm_head.weight' and the "
                                              "config does not tie word embeddings"));
    }
    SF_ASSIGN_OR_RETURN(w.lm_head, Load(source, backend, "lm_head.weight", {c.vocab_size, H}));
  }
  return w;
}

absl::StatusOr<LlamaWeights> MakeRandomLlamaWeights(const ModelConfig& c, uint64_t seed,
                                                    Backend& backend) {
  SF_RETURN_IF_ERROR(CheckBackendSupports(c, backend));
  LlamaWeights w;
  uint64_t tensor = 0;  // each tensor draws from its own stream of the seed
  auto make = [&](int64_t rows, int64_t cols, float mean, float stddev) {
    return backend.CreateRandomWeight(rows, cols, mean, stddev, seed * 1000003 + ++tensor);
  };
  constexpr float kStd = 0.02f, kNormStd = 0.05f;
  const int64_t H = c.hidden_size;
  SF_ASSIGN_OR_RETURN(w.embed_tokens, make(c.vocab_size, H, 0.0f, kStd));
  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayerWeights& lw = w.layers.emplace_back();
    SF_ASSIGN_OR_RETURN(lw.input_norm, make(1, H, 1.0f, kNormStd));
    SF_ASSIGN_OR_RETURN(lw.wq, make(c.q_dim(), H, 0.0f, kStd));
    SF_ASSIGN_OR_RETURN(lw.wk, make(c.kv_dim(), H, 0.0f, kStd));
    SF_ASSIGN_OR_RETURN(lw.wv, make(c.kv_dim(), H, 0.0f, kStd));
    if (c.qkv_bias) {
      SF_ASSIGN_OR_RETURN(lw.bq, make(1, c.q_dim(), 0.0f, kStd));
      SF_ASSIGN_OR_RETURN(lw.bk, make(1, c.kv_dim(), 0.0f, kStd));
      SF_ASSIGN_OR_RETURN(lw.bv, make(1, c.kv_dim(), 0.0f, kStd));
    }
    SF_ASSIGN_OR_RETURN(lw.wo, make(H, c.q_dim(), 0.0f, kStd));
    SF_ASSIGN_OR_RETURN(lw.post_attention_norm, make(1, H, 1.0f, kNormStd));
    SF_ASSIGN_OR_RETURN(lw.w_gate, make(c.intermediate_size, H, 0.0f, kStd));
    SF_ASSIGN_OR_RETURN(lw.w_up, make(c.intermediate_size, H, 0.0f, kStd));
    SF_ASSIGN_OR_RETURN(lw.w_down, make(H, c.intermediate_size, 0.0f, kStd));
  }
  SF_ASSIGN_OR_RETURN(w.final_norm, make(1, H, 1.0f, kNormStd));
  if (!c.tie_word_embeddings) {
    SF_ASSIGN_OR_RETURN(w.lm_head, make(c.vocab_size, H, 0.0f, kStd));
  }
  return w;
}

}  // namespace sparsefill::worker
