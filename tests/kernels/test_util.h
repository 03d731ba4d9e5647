// Helpers shared by the kernel tests: seeded random inputs (never zeros) and error norms.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace sparsefill::testing {

inline std::vector<float> RandomVector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// ||a - b|| / ||b|| in double.
inline double RelativeError(const float* a, const float* b, size_t n) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    ref += static_cast<double>(b[i]) * b[i];
  }
  return ref == 0 ? std::sqrt(diff) : std::sqrt(diff / ref);
}

inline double RelativeError(const std::vector<float>& a, const std::vector<float>& b) {
  return RelativeError(a.data(), b.data(), std::min(a.size(), b.size()));
}

inline bool AllFinite(const std::vector<float>& v) {
  for (float x : v) {
    if (!std::isfinite(x)) return false;
  }
  return true;
}

}  // namespace sparsefill::testing
