// Rotary position embedding in place on bf16 [rows, heads, head_dim] views with a row stride
// (Q or K inside a fused QKV buffer), rotate_half convention: pairs (i, i + head_dim/2).
//
// A block takes a few rows (rows_per_block, chosen so that a block has about two items per
// thread). Phase 1 computes the (cos, sin) of every (row, pair) of them once into shared memory:
// angle = float(position) * inv_freq[i] exactly as the reference, then sincosf with its exact
// range reduction (the fast __sinf/__cosf lose all accuracy past a few thousand radians, and
// positions reach millions). Phase 2 rotates (row, head, chunk) items, a chunk being 8 pairs:
// two 16-byte loads (x[i..i+8), x[i+half..i+half+8)) and two stores, two items in flight per
// thread, the first one loaded before phase 1 so that its latency covers it. (Loading two before
// phase 1 made ptxas spill 4 bytes around sincosf's slow-path call.)
//
// sincosf's slow path (|angle| > ~1e5 rad: the low pairs i at positions past ~1e5) runs a
// Payne-Hanek reduction with a small local-memory table (the 32-byte stack frame in the ptxas
// report: not a spill) and costs a warp a few hundred instructions. Phase 1 walks pairs i-major so
// that those pairs share few warps, rather than touching every warp.
//
// Bytes at rows = 32768, heads 32 (Q) and 8 (K), head_dim 128 (bf16), read + write in place:
//   Q: 2 x 256 MiB = 537 MB: 179 us at 3.0 TB/s, 224 us at the 80% target (2.4 TB/s).
//   K: 2 x 64 MiB = 134 MB: 45 us at 3.0 TB/s, 56 us at 80%.
//   Q and K adjacent in a fused QKV buffer, one call with heads = 40: 671 MB, 224 us at 3.0 TB/s.
// The angles cost 64 sincosf per row, against 8192 bytes moved per row of Q.
// Measured on H100 (2026-11-26, copy 2.90 TB/s), at position 1e6: Q 202 us (92% of copy),
// K 61 us (77%: a 45-us kernel pays start-up and tail), Q+K in one call 245 us (95%).
// The first version (8 rows per block, no prefetch, lane-major angles) gave Q 85%, K 69%,
// Q+K 88%; at position 0 Q 92%: the slow path cost ~7%, the rest block start-up and tail.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "kernels/ops/cuda/ops.h"
#include "kernels/ops/cuda/vec.cuh"

namespace sparsefill::kernels::cuda {
namespace {

using ops_detail::bf16;
using ops_detail::kBf16PerVector;
using ops_detail::Vec;

constexpr int kRopeThreads = 256;
// Items per block aimed at: two per thread, the depth of the phase 2 pipeline; more rows per
// block mean longer blocks and a ragged last wave, fewer leave threads idle. Q at head_dim 128
// (256 items a row): 2 rows a block; K (64 items a row): 8 rows.
constexpr int kTargetItemsPerBlock = 2 * kRopeThreads;
// At most this many rows share one table of angles (K's 8 rows x 64 pairs = 512 sincosf, two
// per thread).
constexpr int kMaxRowsPerBlock = 8;
constexpr int kMaxHeadDim = 512;
// Shared memory of the largest table: 8 rows x 256 pairs x 8 B = 16 KiB (4 KiB at head_dim 128:
// eight blocks per SM take 32 KiB).
constexpr int kMaxTableBytes =
    kMaxRowsPerBlock * (kMaxHeadDim / 2) * static_cast<int>(sizeof(float2));
// Items per block must fit an int: rows_per_block x heads x head_dim / 2.
constexpr int kMaxHeads = 1 << 16;

static_assert(kRopeThreads % 32 == 0, "a block of whole warps");
static_assert(kMaxTableBytes <= 48 * 1024, "the table fits the default dynamic shared memory");
static_assert(static_cast<int64_t>(kMaxRowsPerBlock) * kMaxHeads * (kMaxHeadDim / 2) <= INT32_MAX,
              "item indices of a block fit int");

struct RopeParams {
  bf16* x;                // [rows, row_stride]; [heads, head_dim] at the start of each row
  const float* inv_freq;  // [head_dim / 2]
  int64_t rows;
  int64_t row_stride;      // elements
  int64_t first_position;  // position of row 0
  int heads;
  int head_dim;
  int rows_per_block;  // in [1, kMaxRowsPerBlock]
};

// One (row, head, chunk) item: the two halves it rotates, where they are, which angles they use.
template <int kW>
struct RopeItem {
  Vec<bf16, kW> lo, hi;  // x[i .. i + kW), x[i + half .. i + half + kW), i = chunk * kW
  bf16* ptr;             // &x[i]
  int row, chunk;        // row within the block, chunk within the head

  // Loads item `item` of the block (chunk fastest, so a warp covers whole heads).
  __device__ __forceinline__ void Load(const RopeParams& p, int64_t row0, int item,
                                       int items_per_row, int chunks) {
    row = item / items_per_row;
    const int rest = item - row * items_per_row;
    const int head = rest / chunks;
    chunk = rest - head * chunks;
    ptr = p.x + (row0 + row) * p.row_stride + head * p.head_dim + chunk * kW;
    lo = ops_detail::Load<kW>(ptr);
    hi = ops_detail::Load<kW>(ptr + p.head_dim / 2);
  }

  // (a, b) -> (a cos - b sin, b cos + a sin), pair by pair, and the stores.
  __device__ __forceinline__ void RotateAndStore(const float2* cos_sin, int half,
                                                 int chunks) const {
    float a[kW], b[kW];
    ops_detail::ToF32(lo, a);
    ops_detail::ToF32(hi, b);
    const float2* cs = cos_sin + row * kW * chunks + chunk;
#pragma unroll
    for (int j = 0; j < kW; ++j) {
      const float2 t = cs[j * chunks];
      const float ra = a[j] * t.x - b[j] * t.y;  // x_i cos - x_{i+half} sin
      const float rb = b[j] * t.x + a[j] * t.y;  // x_{i+half} cos + x_i sin
      a[j] = ra;
      b[j] = rb;
    }
    ops_detail::Store<kW>(ptr, ops_detail::FromF32<bf16>(a));
    ops_detail::Store<kW>(ptr + half, ops_detail::FromF32<bf16>(b));
  }
};

// kW pairs per item: 8 (16-byte accesses) or 1 (any alignment).
template <int kW>
__global__ void __launch_bounds__(kRopeThreads) RopeKernel(const RopeParams p) {
  // (cos, sin) of pair i = c * kW + j of block row r at [r][j][c]: the lanes of a warp read
  // consecutive chunks c, so consecutive float2s (no bank conflicts), or one address (broadcast)
  // across heads.
  extern __shared__ float2 cos_sin[];  // [rows_per_block][kW][chunks]
  const int half = p.head_dim / 2;
  const int chunks = half / kW;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * p.rows_per_block;
  const int rows_here =
      static_cast<int>(min(static_cast<int64_t>(p.rows_per_block), p.rows - row0));
  const int items_per_row = p.heads * chunks;
  const int items = rows_here * items_per_row;

  // 0. The first item's loads, before the angles they do not depend on.
  int item = threadIdx.x;
  RopeItem<kW> cur, next;
  if (item < items) cur.Load(p, row0, item, items_per_row, chunks);

  // 1. The angles of this block's rows, i-major (e = i * rows_here + r): the large angles of the
  //    low pairs, which take sincosf's slow path, fill a few warps instead of diverging in all.
  for (int e = threadIdx.x; e < rows_here * half; e += kRopeThreads) {
    const int i = e / rows_here;
    const int r = e - i * rows_here;
    const float position = static_cast<float>(p.first_position + row0 + r);
    const float angle = position * __ldg(p.inv_freq + i);
    float s, c;
    sincosf(angle, &s, &c);
    cos_sin[(r * kW + i % kW) * chunks + i / kW] = make_float2(c, s);
  }
  __syncthreads();

  // 2. Two items deep: rotate and store one while the next one's loads are in flight (items
  //    never share an address, so the order of their loads and stores is free).
  while (item < items) {
    if (item + kRopeThreads < items) {
      next.Load(p, row0, item + kRopeThreads, items_per_row, chunks);
    }
    cur.RotateAndStore(cos_sin, half, chunks);
    cur = next;
    item += kRopeThreads;
  }
}

template <int kW>
cudaError_t Launch(RopeParams p, cudaStream_t stream) {
  const int items_per_row = p.heads * (p.head_dim / 2 / kW);
  p.rows_per_block =
      std::clamp((kTargetItemsPerBlock + items_per_row - 1) / items_per_row, 1, kMaxRowsPerBlock);
  const int64_t blocks = (p.rows + p.rows_per_block - 1) / p.rows_per_block;
  if (blocks > INT32_MAX) return cudaErrorInvalidValue;
  const size_t smem = static_cast<size_t>(p.rows_per_block) * (p.head_dim / 2) * sizeof(float2);
  RopeKernel<kW><<<static_cast<unsigned>(blocks), kRopeThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t ApplyRope(bf16* x, int64_t rows, int heads, int head_dim, int64_t row_stride,
                      const float* inv_freq, int64_t first_position, cudaStream_t stream) {
  if (rows < 0 || heads < 1 || heads > kMaxHeads || head_dim < 2 || head_dim % 2 != 0 ||
      head_dim > kMaxHeadDim || row_stride < static_cast<int64_t>(heads) * head_dim ||
      first_position < 0 || first_position > INT64_MAX - rows) {
    return cudaErrorInvalidValue;
  }
  // Blocks within the grid limit (rows_per_block >= 1).
  if (rows > INT32_MAX) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (x == nullptr || inv_freq == nullptr) return cudaErrorInvalidValue;
  const RopeParams p{x, inv_freq, rows, row_stride, first_position, heads, head_dim, 1};
  // 16-byte accesses need every chunk start aligned: the base, the row stride, the head size
  // and the half offset all multiples of 8 elements.
  const bool vector = (head_dim / 2) % kBf16PerVector == 0 && row_stride % kBf16PerVector == 0 &&
                      ops_detail::IsAligned(x, ops_detail::kVectorBytes);
  return vector ? Launch<kBf16PerVector>(p, stream) : Launch<1>(p, stream);
}

}  // namespace sparsefill::kernels::cuda
