// A small deterministic generator for seeded random weights: the same sequence on every machine
// (no std:: distributions, whose algorithms are implementation-defined).
#pragma once

#include <cmath>
#include <cstdint>

namespace sparsefill::worker {

// SplitMix64, with uniform and normal draws.
class SeededRandom {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1), 53 bits.
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  // Standard normal (Box-Muller). libm differences are far below the bf16 rounding the weights
  // are stored with.
  double Normal() {
    const double u1 = Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.141592653589793 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace sparsefill::worker
