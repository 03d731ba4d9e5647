#include "kernels/ops/residual_ref.h"

namespace sparsefill::kernels {

void AddInPlaceRef(float* acc, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
}

}  // namespace sparsefill::kernels
