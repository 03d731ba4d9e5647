// A Llama-family model's weights, uploaded to a backend, by the Hugging Face tensor names.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend.h"
#include "worker/model_config.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {

struct LlamaLayerWeights {
  std::unique_ptr<BackendBuffer> input_norm;           // [1, hidden]
  std::unique_ptr<BackendBuffer> wq;                   // [heads * head_dim, hidden]
  std::unique_ptr<BackendBuffer> wk;                   // [kv_heads * head_dim, hidden]
  std::unique_ptr<BackendBuffer> wv;                   // [kv_heads * head_dim, hidden]
  std::unique_ptr<BackendBuffer> wo;                   // [hidden, heads * head_dim]
  std::unique_ptr<BackendBuffer> post_attention_norm;  // [1, hidden]
  std::unique_ptr<BackendBuffer> w_gate;               // [intermediate, hidden]
  std::unique_ptr<BackendBuffer> w_up;                 // [intermediate, hidden]
  std::unique_ptr<BackendBuffer> w_down;               // [hidden, intermediate]
};

struct LlamaWeights {
  std::unique_ptr<BackendBuffer> embed_tokens;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  std::unique_ptr<BackendBuffer> final_norm;  // [1, hidden]
  std::unique_ptr<BackendBuffer> lm_head;     // [vocab, hidden]; null when tied to embed_tokens

  const BackendBuffer& output_projection() const { return lm_head ? *lm_head : *embed_tokens; }
};

// Checks every tensor's presence and shape against the config, then uploads it. With
// tie_word_embeddings the output projection is the embedding table; without it a missing
// lm_head.weight is an error.
absl::StatusOr<LlamaWeights> LoadLlamaWeights(const ModelConfig& config, const WeightSource& source,
                                              Backend& backend);

}  // namespace sparsefill::worker
