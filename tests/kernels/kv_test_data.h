// KV-shaped test data for the codec tests, fuzz and benchmark: random K with outlier channels
// (a few channels of every head carry 10-20x the magnitude and an offset, as real keys do after
// RoPE; KIVI's motivation for per-channel key quantization) and random V.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace sparsefill::testing {

struct RandomKv {
  int64_t tokens = 0;
  int kv_heads = 0;
  int head_dim = 0;
  std::vector<float> k;  // [tokens, kv_heads, head_dim]
  std::vector<float> v;  // [tokens, kv_heads, head_dim]
};

inline RandomKv MakeOutlierKv(int64_t tokens, int kv_heads, int head_dim, uint32_t seed) {
  RandomKv kv{tokens, kv_heads, head_dim, {}, {}};
  const size_t n = static_cast<size_t>(tokens) * kv_heads * head_dim;
  kv.k.resize(n);
  kv.v.resize(n);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  // Per (head, channel) magnitude and offset: about 1 channel in 16 is an outlier.
  std::vector<float> gain(static_cast<size_t>(kv_heads) * head_dim),
      offset(static_cast<size_t>(kv_heads) * head_dim);
  for (size_t c = 0; c < gain.size(); ++c) {
    const bool outlier = rng() % 16 == 0;
    gain[c] =
        outlier ? 10.0f + 10.0f * (uniform(rng) + 1.0f) / 2.0f : 0.5f + std::abs(uniform(rng));
    offset[c] = outlier ? 5.0f * uniform(rng) : 0.2f * uniform(rng);
  }
  for (size_t i = 0; i < n; ++i) {
    const size_t c = i % gain.size();
    kv.k[i] = normal(rng) * gain[c] + offset[c];
    kv.v[i] = normal(rng) * 0.7f;
  }
  return kv;
}

}  // namespace sparsefill::testing
