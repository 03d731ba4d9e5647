#pragma once

#include <cstdint>

namespace sparsefill::kernels {

// A bias-free linear layer in the PyTorch weight layout:
//   y[r, o] = sum_i x[r, i] * w[o, i]
//   x: [rows, in] float32, w: [out, in] float32, y: [rows, out] float32 (must not alias x).
// Each y element is one dot product with a fixed summation order (4 interleaved partial sums,
// combined pairwise, then the tail), whatever the rows or threads: chunking the rows of a prompt
// gives bit-identical results.
void LinearRef(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* y);

}  // namespace sparsefill::kernels
