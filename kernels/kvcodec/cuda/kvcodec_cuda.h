// CUDA encoders of the KV codecs: the same bytes as the CPU encoders (kernels/kvcodec/kv_codec.h)
// from K and V in device memory, so a GPU worker can compress each layer before it leaves the
// GPU. The payload layouts are those of payload_layout.h (specified in the proto); the scalar
// math is kvcodec/quant_math.h, shared with the CPU encoder (these sources compile with
// --fmad=false, so no contraction changes a rounding).
//
//   RAW_BF16, FP8_E4M3, INT8, INT4  the complete payload on the device
//   LOSSLESS                        the bf16 byte planes on the device (4N bytes); zstd runs on
//                                   the host: kernels::CompressBf16Planes(planes, 4N, level, &p)
//                                   gives the CPU encoder's payload byte for byte
// RAW_FP32 has no kernel (it is the fp32 tensor itself).
//
// Host-callable, no Abseil or gRPC headers; errors are cudaError_t (cudaErrorInvalidValue for a
// codec/extent this encoder does not take: non-finite input is not detected on the GPU and gives
// unspecified codes, where the CPU encoder refuses it).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kvcodec/payload_layout.h"
#include "kernels/kvcodec/raw_codec.h"

namespace sparsefill::kernels::cuda {

// One layer's K and V on the device, [tokens, kv_heads, head_dim] each, row-major.
struct KvDeviceLayer {
  const void* k = nullptr;
  const void* v = nullptr;
  bool bf16 = true;  // bfloat16 elements (the CUDA backend's); false: float32
  int kv_heads = 0;
  int64_t tokens = 0;
};

// Payload bytes of `extent` for RAW_BF16, FP8_E4M3, INT8 or INT4 (0 for other codecs); the
// byte-plane size (4N) for LOSSLESS.
size_t KvEncodedBytesCuda(KvCodecId codec, const KvChunkExtent& extent, int int4_group_tokens);

// Encodes every chunk of tokens [token_begin, token_end) x heads [head_begin, head_end) in one
// launch: chunk c covers tokens [token_begin + c * tokens_per_chunk, ...) (the last one shorter)
// and its payload starts at out + c * KvEncodedBytesCuda(codec, <a full chunk>, G): what the
// server's chunking of a layer produces, chunk for chunk. head_dim must be a multiple of 4.
cudaError_t EncodeKvLayerCuda(KvCodecId codec, const KvDeviceLayer& layer, int64_t token_begin,
                              int64_t token_end, int64_t tokens_per_chunk, int head_begin,
                              int head_end, int head_dim, int int4_group_tokens, uint8_t* out,
                              cudaStream_t stream);

// Encodes one chunk (EncodeKvLayerCuda with a single chunk) into `out` (device memory,
// KvEncodedBytesCuda bytes, 4-byte aligned) on `stream`. `int4_group_tokens` is used by INT4 only
// (1 to 65535).
cudaError_t EncodeKvChunkCuda(KvCodecId codec, const KvDeviceLayer& layer,
                              const KvChunkExtent& extent, int int4_group_tokens, uint8_t* out,
                              cudaStream_t stream);

}  // namespace sparsefill::kernels::cuda
