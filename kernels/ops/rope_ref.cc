#include "kernels/ops/rope_ref.h"

#include <cmath>
#include <numbers>

#include "kernels/cpu/parallel_for.h"

namespace sparsefill::kernels {

std::vector<float> RopeInverseFrequencies(const RopeSpec& spec, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    // 1 / theta^(2i / d), every step in float32 as torch does it.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / std::pow(spec.theta, exponent);
  }
  if (spec.type == RopeSpec::Type::kDefault) return inv_freq;

  const float old_context = static_cast<float>(spec.original_max_position_embeddings);
  const float low_freq_wavelen = old_context / spec.low_freq_factor;
  const float high_freq_wavelen = old_context / spec.high_freq_factor;
  for (float& f : inv_freq) {
    const float wavelen = static_cast<float>(2.0 * std::numbers::pi) / f;
    // Low frequencies (long wavelengths) are slowed down by `factor`; high ones are kept.
    const float scaled = wavelen > low_freq_wavelen ? f / spec.factor : f;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    if (medium) {
      const float smooth = (old_context / wavelen - spec.low_freq_factor) /
                           (spec.high_freq_factor - spec.low_freq_factor);
      f = (1.0f - smooth) * scaled / spec.factor + smooth * scaled;
    } else {
      f = scaled;
    }
  }
  return inv_freq;
}

void ApplyRopeRef(float* x, int64_t tokens, int heads, int head_dim, const float* inv_freq,
                  int64_t first_position) {
  const int half = head_dim / 2;
  ParallelFor(0, tokens, 16, [&](int64_t t0, int64_t t1) {
    std::vector<float> cos_t(half), sin_t(half);
    for (int64_t t = t0; t < t1; ++t) {
      const float position = static_cast<float>(first_position + t);
      for (int i = 0; i < half; ++i) {
        const float angle = position * inv_freq[i];
        cos_t[i] = std::cos(angle);
        sin_t[i] = std::sin(angle);
      }
      for (int h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * head_dim;
        for (int i = 0; i < half; ++i) {
          const float a = v[i];
          const float b = v[i + half];
          v[i] = a * cos_t[i] - b * sin_t[i];
          v[i + half] = b * cos_t[i] + a * sin_t[i];
        }
      }
    }
  });
}

}  // namespace sparsefill::kernels
