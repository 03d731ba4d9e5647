// Host side of the attention kernels: argument checks, launch configuration, and the one place
// where the runtime head_dim picks a kernel instantiation.
#include "kernels/attention/cuda/attention.h"

#include <climits>
#include <cmath>

#include "kernels/attention/cuda/attention_kernel.cuh"
#include "kernels/attention/cuda/dense_sm90.h"
#include "kernels/attention/cuda/sparse_sm90.h"

namespace sparsefill::kernels::cuda {
namespace {

template <int kHeadDim>
cudaError_t Launch(const AttentionParams& params, cudaStream_t stream) {
  using Cfg = AttentionTileConfig<kHeadDim>;
  // More than 48 KiB of dynamic shared memory must be allowed per kernel (and per device: set
  // it on every launch, it costs microseconds).
  const cudaError_t configured = cudaFuncSetAttribute(
      AttentionKernel<kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (configured != cudaSuccess) return configured;
  const int64_t grid = static_cast<int64_t>(params.query_blocks) * params.q_heads;
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  AttentionKernel<kHeadDim>
      <<<static_cast<unsigned>(grid), Cfg::kThreads, Cfg::kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

cudaError_t Dispatch(const AttentionDims& dims, const AttentionParams& params, cudaStream_t stream) {
  switch (dims.head_dim) {
    case 32:
      return Launch<32>(params, stream);
    case 64:
      return Launch<64>(params, stream);
    case 128:
      return Launch<128>(params, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

AttentionParams MakeParams(const AttentionDims& dims, const __nv_bfloat16* q,
                           const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out) {
  AttentionParams p{};
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.tokens = static_cast<int32_t>(dims.tokens);
  p.q_heads = dims.q_heads;
  p.group_size = dims.q_heads / dims.kv_heads;
  p.q_row_stride = static_cast<int64_t>(dims.q_heads) * dims.head_dim;
  p.kv_row_stride = static_cast<int64_t>(dims.kv_heads) * dims.head_dim;
  p.max_offset = dims.sliding_window > 0 && dims.sliding_window <= INT32_MAX
                     ? static_cast<int32_t>(dims.sliding_window - 1)
                     : INT32_MAX;
  p.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(dims.head_dim)));
  p.query_blocks = static_cast<int32_t>((dims.tokens + kSparseBlockSize - 1) / kSparseBlockSize);
  return p;
}

}  // namespace

cudaError_t CheckAttentionDims(const AttentionDims& dims) {
  if (dims.tokens < 1 || dims.tokens > INT32_MAX - 64) return cudaErrorInvalidValue;
  if (dims.head_dim != 32 && dims.head_dim != 64 && dims.head_dim != 128) {
    return cudaErrorInvalidValue;
  }
  if (dims.q_heads < 1 || dims.kv_heads < 1 || dims.q_heads % dims.kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  if (dims.sliding_window < 0) return cudaErrorInvalidValue;
  return cudaSuccess;
}

// head_dim 64 and 128 run on the wgmma kernel (dense_sm90.h); head_dim 32, and any call it
// does not cover (unaligned pointers, a driver without TMA descriptors), on the mma.sync kernel.
cudaError_t DenseAttention(const AttentionDims& dims, const __nv_bfloat16* q,
                           const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out,
                           cudaStream_t stream) {
  if (const cudaError_t err = CheckAttentionDims(dims); err != cudaSuccess) return err;
  if (DenseSm90Covers(dims, q, k, v, out)) {
    const cudaError_t err = DenseAttentionSm90(dims, q, k, v, out, stream);
    if (err != cudaErrorNotSupported) return err;
  }
  return Dispatch(dims, MakeParams(dims, q, k, v, out), stream);
}

cudaError_t DenseAttentionSm80(const AttentionDims& dims, const __nv_bfloat16* q,
                               const __nv_bfloat16* k, const __nv_bfloat16* v,
                               __nv_bfloat16* out, cudaStream_t stream) {
  if (const cudaError_t err = CheckAttentionDims(dims); err != cudaSuccess) return err;
  return Dispatch(dims, MakeParams(dims, q, k, v, out), stream);
}

// The sparse mainloop's parameters, after checking the arguments.
static cudaError_t MakeSparseParams(const AttentionDims& dims, const SparseIndexView& index,
                                    const __nv_bfloat16* q, const __nv_bfloat16* k,
                                    const __nv_bfloat16* v, __nv_bfloat16* out,
                                    unsigned long long* computed_pairs,
                                    unsigned long long* computed_tile_pairs,
                                    AttentionParams* params) {
  if (const cudaError_t err = CheckAttentionDims(dims); err != cudaSuccess) return err;
  if (index.heads == nullptr) return cudaErrorInvalidValue;
  *params = MakeParams(dims, q, k, v, out);
  params->sparse = true;
  params->index = index;
  params->computed_pairs = computed_pairs;
  params->computed_tile_pairs = computed_tile_pairs;
  return cudaSuccess;
}

cudaError_t SparseAttention(const AttentionDims& dims, const SparseIndexView& index,
                            const __nv_bfloat16* q, const __nv_bfloat16* k,
                            const __nv_bfloat16* v, __nv_bfloat16* out,
                            unsigned long long* computed_pairs, cudaStream_t stream,
                            unsigned long long* computed_tile_pairs) {
  AttentionParams params;
  if (const cudaError_t err = MakeSparseParams(dims, index, q, k, v, out, computed_pairs,
                                               computed_tile_pairs, &params);
      err != cudaSuccess) {
    return err;
  }
  // Heads of kind kDense run on the dense wgmma kernel (its CTAs of other heads exit at once),
  // the rest on the sparse wgmma kernel (whose CTAs of dense heads then exit at once). Which
  // heads are dense is known on the device only (the index may come from the GPU index builder).
  // Where the wgmma kernels do not cover the call, every head runs on the mma.sync mainloop.
  if (DenseSm90Covers(dims, q, k, v, out)) {
    const cudaError_t err =
        DenseAttentionSm90(dims, q, k, v, out, stream, index.heads, computed_pairs,
                           computed_tile_pairs);
    if (err == cudaSuccess) {
      params.skip_dense_heads = true;
      const cudaError_t sparse_err = SparseAttentionSm90(dims, params, stream);
      if (sparse_err != cudaErrorNotSupported) return sparse_err;
    } else if (err != cudaErrorNotSupported) {
      return err;
    }
  }
  return Dispatch(dims, params, stream);
}

cudaError_t SparseAttentionSm80(const AttentionDims& dims, const SparseIndexView& index,
                                const __nv_bfloat16* q, const __nv_bfloat16* k,
                                const __nv_bfloat16* v, __nv_bfloat16* out,
                                unsigned long long* computed_pairs, cudaStream_t stream,
                                unsigned long long* computed_tile_pairs) {
  AttentionParams params;
  if (const cudaError_t err = MakeSparseParams(dims, index, q, k, v, out, computed_pairs,
                                               computed_tile_pairs, &params);
      err != cudaSuccess) {
    return err;
  }
  return Dispatch(dims, params, stream);
}

}  // namespace sparsefill::kernels::cuda
