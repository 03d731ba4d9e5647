// Rotary position embedding (RoPE) as Llama-family models use it, with the frequency schedules
// of transformers' `default` and `llama3` rope types.
#pragma once

#include <cstdint>
#include <vector>

namespace sparsefill::kernels {

struct RopeSpec {
  enum class Type { kDefault, kLlama3 };
  Type type = Type::kDefault;
  float theta = 10000.0f;  // rope_theta: the base of the frequency schedule
  // llama3 only: frequencies with wavelengths longer than original_max_position_embeddings /
  // low_freq_factor are divided by `factor`; shorter than .../high_freq_factor are kept; the band
  // between is interpolated.
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position_embeddings = 8192;
};

// The head_dim / 2 inverse frequencies, computed in float32 in the same order of operations as
// transformers, so positions in the hundreds of thousands give the same angles.
std::vector<float> RopeInverseFrequencies(const RopeSpec& spec, int head_dim);

// Rotates x in place: x is [tokens, heads, head_dim] float32 for the tokens at positions
// first_position + t. Pairs (i, i + head_dim/2) rotate by angle = position * inv_freq[i]
// (the "rotate_half" convention of HF checkpoints).
void ApplyRopeRef(float* x, int64_t tokens, int heads, int head_dim, const float* inv_freq,
                  int64_t first_position);

}  // namespace sparsefill::kernels
