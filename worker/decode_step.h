// One decode step of a Llama-family model over a KV cache that came from elsewhere (a prefill
// server, through any KV codec): the token after the prompt runs through every layer, attending
// to the given past K and V plus its own, and gives the next token's logits. It is the proof
// that delivered KV is usable (sparsefill-decode-stub) and, step after step, a greedy decode loop
// (decode_loop.h): it also returns the token's own K and V, which the next step reads as past.
// Attention runs on the host in float32 (the projections and MLP run on the backend).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/backend.h"
#include "worker/llama_weights.h"
#include "worker/model_config.h"

namespace sparsefill::worker {

// One layer's past KV in host memory, float32 [past_tokens, kv_heads, head_dim] each; K after
// RoPE (as the prefill exports it and KvChunk carries it).
struct PastKvLayer {
  const float* k = nullptr;
  const float* v = nullptr;
};

struct DecodeStepOutput {
  std::vector<float> logits;  // [vocab] for the position after `token`
  int32_t next_token = 0;     // greedy: argmax, lowest id on ties
  float next_token_logit = 0;
  // Per layer, the stepped token's own K (after RoPE) and V, float32 [kv_heads, head_dim] each:
  // what a decode loop appends to the past KV.
  std::vector<std::vector<float>> k, v;
};

// `token` at position past_tokens (>= 1), over `past` (one entry per layer).
absl::StatusOr<DecodeStepOutput> RunLlamaDecodeStep(Backend& backend, const ModelConfig& config,
                                                    const LlamaWeights& weights,
                                                    std::span<const PastKvLayer> past,
                                                    int64_t past_tokens, int32_t token);

}  // namespace sparsefill::worker
