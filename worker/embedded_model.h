// The built-in default model: a small Llama-3-shaped config with deterministic seeded random
// weights, so the runtime and the service work on a fresh machine with nothing downloaded.
// The weights are the same on every machine (own generator, no std:: distributions).
#pragma once

#include <cstdint>
#include <memory>

#include "worker/model_config.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {

inline constexpr char kEmbeddedModelName[] = "sparsefill-embedded-tiny";
inline constexpr uint64_t kEmbeddedModelSeed = 20261126;

// 4 layers, hidden 512, 8 query / 2 KV heads of 64, SwiGLU 1536, vocab 8192, llama3 RoPE.
ModelConfig EmbeddedModelConfig();

// bf16 weights for `config`, with the Hugging Face tensor names: projections ~ N(0, 0.06^2)
// (sharper attention than default init), norms ~ 1 + N(0, 0.05^2).
std::unique_ptr<InMemoryWeights> MakeSeededRandomWeights(const ModelConfig& config, uint64_t seed);

}  // namespace sparsefill::worker
