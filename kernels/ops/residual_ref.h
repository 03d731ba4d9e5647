#pragma once

#include <cstdint>

namespace sparsefill::kernels {

// acc[i] += x[i] for i in [0, n): the residual connections of a transformer block.
void AddInPlaceRef(float* acc, const float* x, int64_t n);

}  // namespace sparsefill::kernels
