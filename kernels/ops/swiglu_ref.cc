#include "kernels/ops/swiglu_ref.h"

#include <cmath>

#include "kernels/cpu/parallel_for.h"

namespace sparsefill::kernels {

void SwiGluRef(const float* gate, const float* up, int64_t n, float* out) {
  ParallelFor(0, n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float g = gate[i];
      out[i] = (g / (1.0f + std::exp(-g))) * up[i];
    }
  });
}

}  // namespace sparsefill::kernels
