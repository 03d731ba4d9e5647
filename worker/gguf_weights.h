// A GGUF model as the runtime sees it: the ModelConfig read from the GGUF metadata, and the
// weights dequantized to float32 at load under their Hugging Face names, so LoadLlamaWeights and
// every backend take them like a safetensors checkpoint.
//
// llama.cpp's converter stores a Llama model's q_proj and k_proj rows permuted: within each head,
// HF row i * head_dim/2 + j (the "rotate_half" halves) becomes row 2 * j + i (adjacent pairs, the
// layout of ggml's rope). The loader undoes it, so RoPE here sees the HF layout. (The converter
// leaves Qwen2 weights unpermuted.)
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/gguf_file.h"
#include "worker/model_config.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {

// The config from `{arch}.*` metadata: block_count, embedding_length, feed_forward_length,
// attention.head_count(_kv), attention.key_length (else hidden / heads),
// attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count (must be head_dim),
// context_length, vocab_size (else the token table's rows); tied embeddings when there is no
// output.weight. Architectures "llama" and "qwen2" (q/k/v biases); others and RoPE scalings
// are errors naming the key.
absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file);

// Rows [heads * head_dim, cols] of a Q or K projection from llama.cpp's interleaved-pair layout
// back to Hugging Face's half-split layout (the inverse of the converter's permutation).
void UnpermuteLlamaQK(int heads, int head_dim, int64_t cols, float* rows);

class GgufWeights : public WeightSource {
 public:
  // Dequantizes every tensor of `file` and names it as transformers does (token_embd ->
  // model.embed_tokens, blk.N.attn_q -> model.layers.N.self_attn.q_proj, ...). A tensor the
  // runtime would not use, an unsupported type or a shape `config` does not imply is an error
  // naming the tensor.
  static absl::StatusOr<std::unique_ptr<GgufWeights>> Load(const GgufFile& file,
                                                           const ModelConfig& config);

  absl::StatusOr<TensorView> Get(absl::string_view name) const override;
  bool Has(absl::string_view name) const override { return tensors_.contains(name); }
  std::string Describe() const override { return path_; }

 private:
  struct Stored {
    std::string gguf_name;
    std::vector<int64_t> shape;
    std::vector<float> data;
  };
  std::string path_;
  std::map<std::string, Stored, std::less<>> tensors_;
};

// The Hugging Face name of a GGUF tensor name, or "" when it has none.
std::string HuggingFaceTensorName(absl::string_view gguf_name);

}  // namespace sparsefill::worker
