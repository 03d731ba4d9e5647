// The shape of a Llama-family model, read from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/ops/rope_ref.h"
#include "worker/json.h"

namespace sparsefill::worker {

struct ModelConfig {
  std::string model_type = "llama";  // "llama", "mistral" or "qwen2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;     // query heads
  int num_kv_heads = 0;  // == num_heads for MHA, fewer for GQA
  int head_dim = 0;      // explicit `head_dim`, else hidden_size / num_heads
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  int64_t max_position_embeddings = 0;
  int64_t sliding_window = 0;  // 0 = none (Mistral-style window otherwise)
  bool qkv_bias = false;       // the q/k/v projections add a bias (Qwen2)
  kernels::RopeSpec rope;

  // Reads the fields above; both RoPE forms are accepted: top-level `rope_theta` +
  // `rope_scaling` (real checkpoints) and `rope_parameters` (transformers 5). Errors name the
  // field. Qwen2 (model_type "qwen2") has q/k/v biases; its sliding window applies only with
  // use_sliding_window, which is not supported. Unsupported features (other biases, other
  // activations, other rope types) are errors, never silently ignored.
  static absl::StatusOr<ModelConfig> FromJson(const JsonValue& json);
  static absl::StatusOr<ModelConfig> FromFile(const std::string& path);

  // Consistency of the numbers (positive sizes, heads divide evenly, even head_dim, ...).
  absl::Status Validate() const;

  int64_t q_dim() const { return static_cast<int64_t>(num_heads) * head_dim; }
  int64_t kv_dim() const { return static_cast<int64_t>(num_kv_heads) * head_dim; }
  // One line for logs and --help output: "3 layers, hidden 256, 8/2 heads x 32, ...".
  std::string Summary() const;
};

// Reads a whole file into a string (config files, pattern configs, token lists).
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace sparsefill::worker
