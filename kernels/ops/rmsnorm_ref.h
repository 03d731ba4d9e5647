#pragma once

#include <cstdint>

namespace sparsefill::kernels {

// Llama RMSNorm, in the order transformers computes it in float32:
//   out[r, :] = weight * (x[r, :] * rsqrt(mean(x[r, :]^2) + eps)).
//   x, out: [rows, hidden] float32 (may alias), weight: [hidden].
void RmsNormRef(const float* x, const float* weight, int64_t rows, int64_t hidden, float eps,
                float* out);

}  // namespace sparsefill::kernels
