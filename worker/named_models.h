// Named model shapes for seeded random-weights models ("random:<name>" as a model path): real
// architectures at full size without a download, for benchmarks.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/model_config.h"

namespace sparsefill::worker {

inline constexpr char kRandomModelPrefix[] = "random:";

// The config of a named shape: "llama3-8b" (Llama-3-8B: 32 layers, hidden 4096, 32/8 heads of
// 128, SwiGLU 14336, vocab 128256, llama3 RoPE), "llama3-tiny" (the same family, 2 layers of
// hidden 256, for tests). NotFound lists the names.
absl::StatusOr<ModelConfig> NamedModelConfig(absl::string_view name);
std::vector<std::string> NamedModelNames();

// A Llama-3-family config of the given size: SwiGLU, RMSNorm eps 1e-5, llama3 RoPE (theta 5e5,
// factor 8, low 1, high 4, original 8192 positions), 131072 positions, untied embeddings,
// head_dim = hidden / heads.
ModelConfig Llama3FamilyConfig(int layers, int64_t hidden, int heads, int kv_heads,
                               int64_t intermediate, int64_t vocab);

}  // namespace sparsefill::worker
