// The Llama-family prefill, written once against the Backend interface.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "worker/backend.h"
#include "worker/llama_weights.h"
#include "worker/model_config.h"
#include "worker/prefill.h"

namespace sparsefill::worker {

// Runs the prompt through every layer (pre-norm attention and SwiGLU MLP blocks), emitting each
// layer's K (after RoPE) and V to options.kv_sink, then the last position's logits. Token ids must
// be in [0, vocab) and the prompt non-empty (callers validate; violations give InvalidArgument).
absl::StatusOr<PrefillOutput> RunLlamaPrefill(Backend& backend, const ModelConfig& config,
                                              const LlamaWeights& weights,
                                              std::span<const int32_t> tokens,
                                              const PrefillOptions& options);

}  // namespace sparsefill::worker
