// A loaded model ready to prefill: config, weights on a backend, and its sparse pattern config.
// Prefill is safe to call from several threads at once (each call has its own activations).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/backend.h"
#include "worker/decode_step.h"
#include "worker/llama_weights.h"
#include "worker/model_config.h"
#include "worker/pattern_config.h"
#include "worker/prefill.h"
#include "worker/tokenizer/bpe_tokenizer.h"

namespace sparsefill::worker {

// "gguf:<path>" names a GGUF model file (a path ending in ".gguf" works without the prefix).
inline constexpr char kGgufModelPrefix[] = "gguf:";

struct ModelLoadOptions {
  // A Hugging Face checkpoint folder; empty loads the embedded model; "random:<shape>" (e.g.
  // "random:llama3-8b", see named_models.h) a seeded random-weights model of that shape;
  // "gguf:<file>" a GGUF file, dequantized to float32 at load.
  std::string model_dir;
  // The model's sparse pattern config; empty uses <model_dir>/sparsefill_patterns.json (for
  // gguf:<dir>/<name>.gguf, <dir>/<name>.sparsefill_patterns.json) when it
  // exists, else every head vertical_slash (1000, 6096), MInference's default.
  std::string pattern_config_path;
  uint64_t random_seed = 1;  // for "random:<shape>"
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Load(const ModelLoadOptions& options,
                                                     std::unique_ptr<Backend> backend);

  const std::string& name() const { return name_; }
  const ModelConfig& config() const { return config_; }
  const PatternConfig& sparse_patterns() const { return sparse_patterns_; }
  absl::string_view backend_name() const { return backend_->name(); }
  // The model's tokenizer (GGUF models that carry one), else null: such models take token ids.
  const BpeTokenizer* tokenizer() const { return tokenizer_.get(); }

  absl::StatusOr<PrefillOutput> Prefill(std::span<const int32_t> tokens,
                                        const PrefillOptions& options) const;

  // One decode step of `token` at position past_tokens over a KV cache from elsewhere (see
  // decode_step.h): the next token after it.
  absl::StatusOr<DecodeStepOutput> DecodeStep(std::span<const PastKvLayer> past,
                                              int64_t past_tokens, int32_t token) const;

 private:
  Model() = default;

  std::string name_;
  ModelConfig config_;
  std::unique_ptr<Backend> backend_;
  // Held during a prefill when the backend runs one at a time (backend_->concurrent_prefills()).
  mutable std::mutex exclusive_;
  LlamaWeights weights_;
  PatternConfig sparse_patterns_;
  std::unique_ptr<BpeTokenizer> tokenizer_;
};

}  // namespace sparsefill::worker
