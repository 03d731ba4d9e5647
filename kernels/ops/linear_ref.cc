#include "kernels/ops/linear_ref.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/parallel_for.h"

namespace sparsefill::kernels {
namespace {

// Four float lanes; GCC and Clang lower this to SSE on any x86-64.
typedef float Lanes __attribute__((vector_size(16)));

inline Lanes Load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Lanes -> scalar, then the tail. Every dot product in this file ends through here, which is
// what makes the tiled and the single-element paths agree bit for bit.
inline float Finish(Lanes acc, const float* a, const float* b, int64_t vec_end, int64_t n) {
  float s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  for (int64_t i = vec_end; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline float Dot(const float* a, const float* b, int64_t n) {
  const int64_t vec_end = n & ~int64_t{3};
  Lanes acc = {0, 0, 0, 0};
  for (int64_t i = 0; i < vec_end; i += 4) acc += Load(a + i) * Load(b + i);
  return Finish(acc, a, b, vec_end, n);
}

// 4 rows x 2 outputs: 8 accumulators, 6 loads per 8 lane-multiplies.
inline void Dot4x2(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t n,
                   float* y, int64_t y_stride) {
  const int64_t vec_end = n & ~int64_t{3};
  const float* x0 = x;
  const float* x1 = x + x_stride;
  const float* x2 = x + 2 * x_stride;
  const float* x3 = x + 3 * x_stride;
  const float* w0 = w;
  const float* w1 = w + w_stride;
  Lanes a00 = {0, 0, 0, 0}, a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00,
        a31 = a00;
  for (int64_t i = 0; i < vec_end; i += 4) {
    const Lanes vw0 = Load(w0 + i), vw1 = Load(w1 + i);
    const Lanes vx0 = Load(x0 + i), vx1 = Load(x1 + i), vx2 = Load(x2 + i), vx3 = Load(x3 + i);
    a00 += vx0 * vw0;
    a01 += vx0 * vw1;
    a10 += vx1 * vw0;
    a11 += vx1 * vw1;
    a20 += vx2 * vw0;
    a21 += vx2 * vw1;
    a30 += vx3 * vw0;
    a31 += vx3 * vw1;
  }
  y[0] = Finish(a00, x0, w0, vec_end, n);
  y[1] = Finish(a01, x0, w1, vec_end, n);
  y[y_stride + 0] = Finish(a10, x1, w0, vec_end, n);
  y[y_stride + 1] = Finish(a11, x1, w1, vec_end, n);
  y[2 * y_stride + 0] = Finish(a20, x2, w0, vec_end, n);
  y[2 * y_stride + 1] = Finish(a21, x2, w1, vec_end, n);
  y[3 * y_stride + 0] = Finish(a30, x3, w0, vec_end, n);
  y[3 * y_stride + 1] = Finish(a31, x3, w1, vec_end, n);
}

}  // namespace

void LinearRef(const float* x, const float* w, int64_t rows, int64_t in, int64_t out, float* y) {
  // Work items are blocks of output features, so a block of weights stays in cache while every
  // row streams past it; with few rows (the last-position logits) this still spreads the work.
  constexpr int64_t kOutBlock = 32;
  constexpr int64_t kRowBlock = 256;
  const int64_t out_blocks = (out + kOutBlock - 1) / kOutBlock;
  const int64_t row_blocks = (rows + kRowBlock - 1) / kRowBlock;
  ParallelFor(0, out_blocks * row_blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t o_begin = (b % out_blocks) * kOutBlock;
      const int64_t o_end = std::min(out, o_begin + kOutBlock);
      const int64_t r_begin = (b / out_blocks) * kRowBlock;
      const int64_t r_end = std::min(rows, r_begin + kRowBlock);
      int64_t r = r_begin;
      for (; r + 4 <= r_end; r += 4) {
        int64_t o = o_begin;
        for (; o + 2 <= o_end; o += 2) {
          Dot4x2(x + r * in, in, w + o * in, in, in, y + r * out + o, out);
        }
        for (; o < o_end; ++o) {
          for (int64_t k = 0; k < 4; ++k)
            y[(r + k) * out + o] = Dot(x + (r + k) * in, w + o * in, in);
        }
      }
      for (; r < r_end; ++r) {
        for (int64_t o = o_begin; o < o_end; ++o) y[r * out + o] = Dot(x + r * in, w + o * in, in);
      }
    }
  });
}

}  // namespace sparsefill::kernels
