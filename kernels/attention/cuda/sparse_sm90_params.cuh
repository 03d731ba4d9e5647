// What one launch of the sparse wgmma kernel needs, passed by value as a __grid_constant__
// parameter (the TMA descriptors must live in parameter, constant or global memory).
#pragma once

#include <cuda.h>  // CUtensorMap

#include "kernels/attention/cuda/attention_params.cuh"

namespace sparsefill::kernels::cuda {

struct SparseSm90Params {
  // The sparse launch as the mma.sync kernel takes it (pointers, strides, index, counters): the
  // key-tile cursor reads it, the gathers use its K/V pointers.
  AttentionParams attn;
  // 3-D maps over [tokens][heads][head_dim], boxes {64 columns, 1 head, 64 rows}, 128-byte
  // swizzle, zero fill outside the tensor.
  CUtensorMap tma_k;
  CUtensorMap tma_v;
};

}  // namespace sparsefill::kernels::cuda
