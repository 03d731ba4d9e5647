// Host side of the dense wgmma kernel: TMA descriptors, launch configuration, and the runtime
// head_dim -> instantiation switch.
#include "kernels/attention/cuda/dense_sm90.h"

#include <cuda.h>
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include <climits>
#include <cmath>
#include <cstdint>

#include "kernels/attention/cuda/dense_sm90_kernel.cuh"

namespace sparsefill::kernels::cuda {
namespace {

// cuTensorMapEncodeTiled from the driver the runtime loaded (no link against libcuda); null if
// the driver lacks it. Looked up once.
PFN_cuTensorMapEncodeTiled_v12000 TensorMapEncoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();  // do not leave the lookup's error for the next launch check
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encode;
}

// A 3-D map over [tokens][heads][head_dim] bf16 (dimensions innermost first), box
// {64 columns, 1 head, box_rows rows}, 128-byte swizzle (the box row is exactly 128 bytes), zero
// fill past the last token.
bool EncodeHeadsMap(CUtensorMap* map, const __nv_bfloat16* base, int64_t tokens, int heads,
                    int head_dim, int box_rows) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = TensorMapEncoder();
  if (encode == nullptr) return false;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(heads),
                              static_cast<cuuint64_t>(tokens)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(head_dim) * 2,  // bytes per head
                                 static_cast<cuuint64_t>(heads) * head_dim * 2};  // per token
  const cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3,
                const_cast<void*>(static_cast<const void*>(base)), dims, strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int kHeadDim>
cudaError_t Launch(const DenseSm90Params& params, cudaStream_t stream) {
  using Cfg = DenseSm90Config<kHeadDim>;
  using Scheduler = DenseTileScheduler<Cfg::kBlockM, Cfg::kBlockN>;
  const cudaError_t configured = cudaFuncSetAttribute(
      DenseSm90Kernel<kHeadDim>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes);
  if (configured != cudaSuccess) return configured;
  const int64_t grid = Scheduler::GridSize(params);
  if (grid > INT32_MAX) return cudaErrorInvalidConfiguration;
  DenseSm90Kernel<kHeadDim>
      <<<static_cast<unsigned>(grid), Cfg::kThreads, Cfg::kSmemBytes, stream>>>(params);
  return cudaGetLastError();
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool DenseSm90Covers(const AttentionDims& dims, const __nv_bfloat16* q, const __nv_bfloat16* k,
                     const __nv_bfloat16* v, const __nv_bfloat16* out) {
  // The tokens bound keeps row_begin + 128 and the like inside int32 (more than any real prompt).
  return (dims.head_dim == 64 || dims.head_dim == 128) && dims.tokens <= INT32_MAX - 256 &&
         Aligned16(q) && Aligned16(k) && Aligned16(v) && Aligned16(out);
}

cudaError_t DenseAttentionSm90(const AttentionDims& dims, const __nv_bfloat16* q,
                               const __nv_bfloat16* k, const __nv_bfloat16* v,
                               __nv_bfloat16* out, cudaStream_t stream,
                               const HeadDescriptor* only_dense_heads,
                               unsigned long long* computed_pairs) {
  if (!DenseSm90Covers(dims, q, k, v, out)) return cudaErrorNotSupported;
  constexpr int kBlockM = DenseSm90Config<128>::kBlockM;
  static_assert(DenseSm90Config<64>::kBlockM == kBlockM && DenseSm90Config<64>::kBlockN == 128 &&
                    DenseSm90Config<128>::kBlockN == 128,
                "the TMA boxes below are 128 rows for Q, K and V at every head_dim");
  DenseSm90Params p{};
  if (!EncodeHeadsMap(&p.tma_q, q, dims.tokens, dims.q_heads, dims.head_dim, kBlockM) ||
      !EncodeHeadsMap(&p.tma_k, k, dims.tokens, dims.kv_heads, dims.head_dim, 128) ||
      !EncodeHeadsMap(&p.tma_v, v, dims.tokens, dims.kv_heads, dims.head_dim, 128)) {
    return cudaErrorNotSupported;
  }
  p.out = out;
  p.out_row_stride = static_cast<int64_t>(dims.q_heads) * dims.head_dim;
  p.tokens = static_cast<int32_t>(dims.tokens);
  p.q_heads = dims.q_heads;
  p.group_size = dims.q_heads / dims.kv_heads;
  p.max_offset = dims.sliding_window > 0 && dims.sliding_window <= INT32_MAX
                     ? static_cast<int32_t>(dims.sliding_window - 1)
                     : INT32_MAX;
  p.scale_log2 =
      static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(dims.head_dim)));
  p.query_blocks = static_cast<int32_t>((dims.tokens + kBlockM - 1) / kBlockM);
  p.heads = only_dense_heads;
  p.computed_pairs = computed_pairs;
  switch (dims.head_dim) {
    case 64:
      return Launch<64>(p, stream);
    case 128:
      return Launch<128>(p, stream);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace sparsefill::kernels::cuda
