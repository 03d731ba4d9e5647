#include "worker/memory_planner.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace sparsefill::worker {

int64_t PrefillActivationBytes(const ModelConfig& c, int64_t tokens, const PrefillMemoryInputs& in) {
  const int64_t kv_sets = in.double_buffered_kv ? 2 : 1;
  // hidden [T, H]; Q [T, q_dim] (the attention output overwrites it); K and V [T, kv_dim] each.
  const int64_t per_token = c.hidden_size + c.q_dim() + 2 * kv_sets * c.kv_dim();
  return tokens * per_token * in.element_bytes + tokens * static_cast<int64_t>(sizeof(int32_t)) +
         c.vocab_size * static_cast<int64_t>(sizeof(float));
}

int64_t PrefillChunkBytesPerToken(const ModelConfig& c, const PrefillMemoryInputs& in) {
  // normed [C, H], projected [C, H], gate [C, I], up [C, I].
  return (2 * c.hidden_size + 2 * c.intermediate_size) * in.element_bytes;
}

absl::StatusOr<PrefillMemoryPlan> PlanPrefillMemory(const ModelConfig& c, int64_t tokens,
                                                    const PrefillMemoryInputs& in) {
  PrefillMemoryPlan plan;
  plan.tokens = tokens;
  plan.activation_bytes = PrefillActivationBytes(c, tokens, in);
  const int64_t per_token = PrefillChunkBytesPerToken(c, in);
  const int64_t available =
      in.free_bytes - in.reserve_bytes - plan.activation_bytes - in.attention_workspace_bytes;
  const int64_t smallest = std::min(tokens, in.chunk_multiple);
  if (available < smallest * per_token) {
    return absl::OutOfRangeError(absl::StrFormat(
        "a %d-token prompt does not fit: it needs %s of activations, %s of attention workspace "
        "and at least %s for a %d-token chunk, plus %s reserved, but %s of device memory is free "
        "after the weights",
        tokens, FormatBytes(plan.activation_bytes), FormatBytes(in.attention_workspace_bytes),
        FormatBytes(smallest * per_token), smallest, FormatBytes(in.reserve_bytes),
        FormatBytes(in.free_bytes)));
  }
  int64_t chunk = std::min({tokens, in.max_chunk_tokens, available / per_token});
  if (chunk < tokens) chunk = std::max(smallest, chunk / in.chunk_multiple * in.chunk_multiple);
  plan.chunk_tokens = chunk;
  plan.chunk_bytes = chunk * per_token;
  plan.total_bytes = plan.activation_bytes + plan.chunk_bytes + in.attention_workspace_bytes;
  return plan;
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return absl::StrFormat("%.1f MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return absl::StrFormat("%.1f KiB", b / 1024.0);
  return absl::StrFormat("%d B", bytes);
}

}  // namespace sparsefill::worker
