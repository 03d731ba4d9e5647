#include "kernels/ops/rmsnorm_ref.h"

#include <cmath>

#include "kernels/cpu/parallel_for.h"

namespace sparsefill::kernels {

void RmsNormRef(const float* x, const float* weight, int64_t rows, int64_t hidden, float eps,
                float* out) {
  ParallelFor(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * hidden;
      float* outr = out + r * hidden;
      // Sum of squares in double: the mean is then exact to float precision for any width.
      double sum_sq = 0.0;
      for (int64_t i = 0; i < hidden; ++i) sum_sq += static_cast<double>(xr[i]) * xr[i];
      const float mean_sq = static_cast<float>(sum_sq / static_cast<double>(hidden));
      const float inv_rms = 1.0f / std::sqrt(mean_sq + eps);
      for (int64_t i = 0; i < hidden; ++i) outr[i] = weight[i] * (xr[i] * inv_rms);
    }
  });
}

}  // namespace sparsefill::kernels
