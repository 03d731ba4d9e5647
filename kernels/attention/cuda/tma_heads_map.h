// TMA descriptors over the attention layouts [tokens][heads][head_dim] (host side), shared by
// the dense and the sparse wgmma kernels.
#pragma once

#include <cuda.h>  // CUtensorMap
#include <cuda_bf16.h>

#include <cstdint>

namespace sparsefill::kernels::cuda {

// A 3-D map over [tokens][heads][head_dim] bf16 (dimensions innermost first), box
// {64 columns, 1 head, box_rows rows}, 128-byte swizzle (the box row is exactly 128 bytes), zero
// fill past the last token (and before the first: coordinates may be negative). False when the
// driver has no cuTensorMapEncodeTiled or rejects the map.
bool EncodeHeadsMap(CUtensorMap* map, const __nv_bfloat16* base, int64_t tokens, int heads,
                    int head_dim, int box_rows);

}  // namespace sparsefill::kernels::cuda
