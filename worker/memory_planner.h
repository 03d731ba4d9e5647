// How a prefill fits in device memory: the whole-prompt activations it must hold, and how many
// tokens the token-chunked ops (projections, MLP) can process at once in what is left. Pure host
// arithmetic, unit-tested on the CPU; the CUDA backend feeds it cudaMemGetInfo's numbers.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "worker/model_config.h"

namespace sparsefill::worker {

struct PrefillMemoryInputs {
  int64_t free_bytes = 0;     // device memory free now (weights already loaded)
  int64_t reserve_bytes = int64_t{1} << 30;  // left for cuBLAS, the allocator, fragmentation
  int64_t element_bytes = 2;  // activation dtype size (bf16)
  bool double_buffered_kv = true;  // K/V of the previous layer still being exported
  int64_t attention_workspace_bytes = 0;  // the sparse index builder's workspace at this length
  int64_t max_chunk_tokens = 16384;  // larger chunks do not make the GEMMs faster
  int64_t chunk_multiple = 64;       // chunk sizes are multiples of this (GEMM tiles)
};

struct PrefillMemoryPlan {
  int64_t tokens = 0;
  int64_t chunk_tokens = 0;
  int64_t activation_bytes = 0;  // hidden state, Q (and the attention output in place), K, V
  int64_t chunk_bytes = 0;       // per-chunk scratch at chunk_tokens
  int64_t total_bytes = 0;       // activations + chunk scratch + attention workspace
};

// Bytes of the whole-prompt activations for `tokens`.
int64_t PrefillActivationBytes(const ModelConfig& config, int64_t tokens, const PrefillMemoryInputs& in);
// Bytes of the chunk scratch per token (normed input, projection output, MLP gate and up).
int64_t PrefillChunkBytesPerToken(const ModelConfig& config, const PrefillMemoryInputs& in);

// The plan, or OutOfRange naming the numbers when even the smallest chunk does not fit.
absl::StatusOr<PrefillMemoryPlan> PlanPrefillMemory(const ModelConfig& config, int64_t tokens,
                                                    const PrefillMemoryInputs& in);

// "12.0 GiB" style, for messages.
std::string FormatBytes(int64_t bytes);

}  // namespace sparsefill::worker
