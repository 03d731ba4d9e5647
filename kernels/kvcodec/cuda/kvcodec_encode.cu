// CUDA encoders of the KV codecs (see kvcodec_cuda.h). One launch encodes every chunk of a token
// range: chunk c holds tokens [c * tpc, (c + 1) * tpc) of the range (the last one shorter) and its
// payload starts at out + c * stride, so a GPU worker can encode a whole layer at once; the
// per-chunk entry point is the one-chunk case.
//
// Work split (one element = one of K or V at (token, head, channel); D % 4 == 0):
//   RAW_BF16, LOSSLESS  one thread per 4 consecutive elements (8-byte / 4-byte stores)
//   FP8_E4M3, INT8      one warp per (token, head) row of K or of V: max|x| by shuffles, then
//                       each lane quantizes 4 consecutive channels (one 4-byte store)
//   INT4 K              one thread per (key group, head, channel pair): min/max over the group's
//                       tokens, then one byte (two codes) per token, coalesced across the pairs
//   INT4 V              one warp per (token, head) row, like FP8/INT8, 2 bytes per lane step
// Bytes moved for bf16 input: 2 read + 1 (FP8/INT8) or ~0.55 (INT4) written per element.
#include <cstdint>

#include "kernels/kvcodec/cuda/kvcodec_cuda.h"
#include "kernels/kvcodec/quant_math.h"

namespace sparsefill::kernels::cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / kWarp;

// The token range being encoded and how it is cut into chunks.
struct Geometry {
  int64_t t_begin = 0;  // first token of the range (absolute, in the layer)
  int64_t tokens = 0;   // tokens in the range
  int64_t tpc = 0;      // tokens per chunk (>= 1)
  int64_t stride = 0;   // bytes between consecutive chunks' payloads
  int h0 = 0, H = 0;    // heads [h0, h0 + H) of the layer's kv_heads
  int D = 0, kv_heads = 0;
  int G = 0;                              // INT4 key group size
  uint32_t header_lo = 0, header_hi = 0;  // the 8 header bytes, little-endian

  __device__ int64_t ChunkTokens(int64_t c) const {
    const int64_t left = tokens - c * tpc;
    return left < tpc ? left : tpc;
  }
  // Element offset of (token offset in range, head in range, channel) in the layer tensor.
  __device__ int64_t Src(int64_t t_off, int hh, int d) const {
    return ((t_begin + t_off) * kv_heads + h0 + hh) * D + d;
  }
  __device__ void WriteHeader(uint8_t* payload, int lane) const {
    if (lane < 8) {
      const uint32_t word = lane < 4 ? header_lo : header_hi;
      payload[lane] = static_cast<uint8_t>(word >> (8 * (lane & 3)));
    }
  }
};

// ---- loads: 4 (or 2) consecutive elements as float, or as bf16 bits ----

__device__ __forceinline__ void Load4(const float* p, float x[4]) {
  const float4 v = *reinterpret_cast<const float4*>(p);
  x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
}
__device__ __forceinline__ void Load4(const uint16_t* p, float x[4]) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  x[0] = kvq::FromBits(v.x << 16), x[1] = kvq::FromBits(v.x & 0xffff0000u);
  x[2] = kvq::FromBits(v.y << 16), x[3] = kvq::FromBits(v.y & 0xffff0000u);
}
__device__ __forceinline__ void Load2(const float* p, float x[2]) {
  const float2 v = *reinterpret_cast<const float2*>(p);
  x[0] = v.x, x[1] = v.y;
}
__device__ __forceinline__ void Load2(const uint16_t* p, float x[2]) {
  const uint32_t v = *reinterpret_cast<const uint32_t*>(p);
  x[0] = kvq::FromBits(v << 16), x[1] = kvq::FromBits(v & 0xffff0000u);
}
// bf16 bits of 4 elements: as stored (bf16 input) or rounded to nearest even (float32 input), as
// RAW_BF16 defines them.
__device__ __forceinline__ void LoadBf16x4(const uint16_t* p, uint16_t b[4]) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  b[0] = static_cast<uint16_t>(v.x), b[1] = static_cast<uint16_t>(v.x >> 16);
  b[2] = static_cast<uint16_t>(v.y), b[3] = static_cast<uint16_t>(v.y >> 16);
}
__device__ __forceinline__ void LoadBf16x4(const float* p, uint16_t b[4]) {
  float x[4];
  Load4(p, x);
  for (int i = 0; i < 4; ++i) b[i] = kvq::FloatToBf16Rne(x[i]);
}

__device__ __forceinline__ float WarpMax(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float WarpMin(float x) {
  for (int o = kWarp / 2; o > 0; o /= 2) x = fminf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// ---- RAW_BF16 and LOSSLESS planes: thread per 4 elements ----

template <typename Src, bool kPlanes>
__global__ void Bf16Kernel(const Src* __restrict__ k,  // [tokens, kv_heads, D]
                           const Src* __restrict__ v,  // [tokens, kv_heads, D]
                           Geometry g, uint8_t* __restrict__ out) {
  const int64_t quads = g.tokens * g.H * (g.D / 4);
  for (int64_t q = blockIdx.x * int64_t{kBlock} + threadIdx.x; q < 2 * quads;
       q += int64_t{gridDim.x} * kBlock) {
    const bool is_v = q >= quads;
    const int64_t e = (is_v ? q - quads : q) * 4;  // element offset in the range, [t][h][d]
    const int d = static_cast<int>(e % g.D);
    const int64_t row = e / g.D;
    const int hh = static_cast<int>(row % g.H);
    const int64_t t_off = row / g.H;
    const int64_t c = t_off / g.tpc;
    const int64_t n = g.ChunkTokens(c) * g.H * g.D;                // elements in the chunk
    const int64_t i = ((t_off - c * g.tpc) * g.H + hh) * g.D + d;  // index in the chunk
    uint16_t b[4];
    LoadBf16x4((is_v ? v : k) + g.Src(t_off, hh, d), b);
    uint8_t* base = out + c * g.stride;
    if constexpr (kPlanes) {
      // [K hi][K lo][V hi][V lo], n bytes each.
      uint8_t* hi = base + (is_v ? 2 * n : 0) + i;
      uint8_t* lo = hi + n;
      uint32_t h = 0, l = 0;
      for (int j = 0; j < 4; ++j) {
        h |= static_cast<uint32_t>(b[j] >> 8) << (8 * j);
        l |= static_cast<uint32_t>(b[j] & 0xffu) << (8 * j);
      }
      *reinterpret_cast<uint32_t*>(hi) = h;
      *reinterpret_cast<uint32_t*>(lo) = l;
    } else {
      // K block then V block, 2 bytes an element.
      uint2 w;
      w.x = b[0] | static_cast<uint32_t>(b[1]) << 16;
      w.y = b[2] | static_cast<uint32_t>(b[3]) << 16;
      *reinterpret_cast<uint2*>(base + 2 * ((is_v ? n : 0) + i)) = w;
    }
  }
}

// ---- FP8_E4M3 and INT8: warp per row ----

template <typename Src, bool kFp8>
__global__ void ScaledByteKernel(const Src* __restrict__ k, const Src* __restrict__ v, Geometry g,
                                 uint8_t* __restrict__ out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t rows = g.tokens * g.H;
  const int64_t w = blockIdx.x * int64_t{kWarpsPerBlock} + threadIdx.x / kWarp;
  if (w >= 2 * rows) return;
  const bool is_v = w >= rows;
  const int64_t row = is_v ? w - rows : w;
  const int hh = static_cast<int>(row % g.H);
  const int64_t t_off = row / g.H;
  const int64_t c = t_off / g.tpc;
  const int64_t r = (t_off - c * g.tpc) * g.H + hh;  // row in the chunk
  const ScaledByteLayout l = ScaledByteLayout::For({g.ChunkTokens(c), g.H, g.D});
  uint8_t* base = out + c * g.stride;
  if (!is_v && r == 0) g.WriteHeader(base, lane);

  const Src* src = (is_v ? v : k) + g.Src(t_off, hh, 0);
  float amax = 0.0f;
  for (int d = 4 * lane; d < g.D; d += 4 * kWarp) {
    float x[4];
    Load4(src + d, x);
    for (int j = 0; j < 4; ++j) amax = fmaxf(amax, fabsf(x[j]));
  }
  amax = WarpMax(amax);
  const float scale = kvq::SymmetricScale(amax, kFp8 ? kvq::kE4m3Max : 127.0f);
  if (lane == 0) {
    *reinterpret_cast<float*>(base + (is_v ? l.v_scales : l.k_scales) + 4 * r) = scale;
  }
  uint8_t* codes = base + (is_v ? l.v_codes : l.k_codes) + r * g.D;
  for (int d = 4 * lane; d < g.D; d += 4 * kWarp) {
    float x[4];
    Load4(src + d, x);
    uint32_t word = 0;
    for (int j = 0; j < 4; ++j) {
      const uint8_t q = kFp8 ? kvq::QuantizeFp8(x[j], scale)
                             : static_cast<uint8_t>(kvq::QuantizeInt8(x[j], scale));
      word |= static_cast<uint32_t>(q) << (8 * j);
    }
    *reinterpret_cast<uint32_t*>(codes + d) = word;
  }
}

// ---- INT4 keys: thread per (key group, head, channel pair) ----

template <typename Src>
__global__ void Int4KeyKernel(const Src* __restrict__ k, Geometry g, uint8_t* __restrict__ out) {
  const int pairs = g.D / 2;
  const int64_t groups_per_chunk = (g.tpc + g.G - 1) / g.G;
  const int64_t chunks = (g.tokens + g.tpc - 1) / g.tpc;
  const int64_t total = chunks * groups_per_chunk * g.H * pairs;
  const int64_t id = blockIdx.x * int64_t{kBlock} + threadIdx.x;
  if (id >= total) return;
  const int p = static_cast<int>(id % pairs);
  const int hh = static_cast<int>((id / pairs) % g.H);
  const int64_t gi = id / (int64_t{pairs} * g.H);
  const int64_t c = gi / groups_per_chunk;
  const int64_t grp = gi % groups_per_chunk;
  const int64_t T = g.ChunkTokens(c);
  const int64_t t0 = grp * g.G;  // in the chunk
  if (t0 >= T) return;           // the last chunk has fewer groups
  const int64_t t1 = t0 + g.G < T ? t0 + g.G : T;
  const Int4Layout l = Int4Layout::For({T, g.H, g.D}, g.G);
  const int64_t chunk_t = c * g.tpc;  // the chunk's first token, in the range

  float lo[2] = {3.402823466e38f, 3.402823466e38f}, hi[2] = {-3.402823466e38f, -3.402823466e38f};
  for (int64_t t = t0; t < t1; ++t) {
    float x[2];
    Load2(k + g.Src(chunk_t + t, hh, 2 * p), x);
    for (int j = 0; j < 2; ++j) lo[j] = fminf(lo[j], x[j]), hi[j] = fmaxf(hi[j], x[j]);
  }
  const kvq::Int4Params p0 = kvq::MakeInt4Params(lo[0], hi[0]);
  const kvq::Int4Params p1 = kvq::MakeInt4Params(lo[1], hi[1]);
  uint8_t* base = out + c * g.stride;
  const int64_t param = (grp * g.H + hh) * g.D + 2 * p;  // parameter index of channel 2p
  *reinterpret_cast<uint32_t*>(base + l.k_mins + 2 * param) =
      p0.min_bf16 | static_cast<uint32_t>(p1.min_bf16) << 16;
  *reinterpret_cast<uint32_t*>(base + l.k_scales + 2 * param) =
      p0.scale_bf16 | static_cast<uint32_t>(p1.scale_bf16) << 16;
  for (int64_t t = t0; t < t1; ++t) {
    float x[2];
    Load2(k + g.Src(chunk_t + t, hh, 2 * p), x);
    base[l.k_codes + (t * g.H + hh) * pairs + p] =
        static_cast<uint8_t>(kvq::QuantizeInt4(x[0], p0) | kvq::QuantizeInt4(x[1], p1) << 4);
  }
}

// ---- INT4 values: warp per (token, head) row ----

template <typename Src>
__global__ void Int4ValueKernel(const Src* __restrict__ v, Geometry g, uint8_t* __restrict__ out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t rows = g.tokens * g.H;
  const int64_t row = blockIdx.x * int64_t{kWarpsPerBlock} + threadIdx.x / kWarp;
  if (row >= rows) return;
  const int hh = static_cast<int>(row % g.H);
  const int64_t t_off = row / g.H;
  const int64_t c = t_off / g.tpc;
  const int64_t r = (t_off - c * g.tpc) * g.H + hh;
  const Int4Layout l = Int4Layout::For({g.ChunkTokens(c), g.H, g.D}, g.G);
  uint8_t* base = out + c * g.stride;
  if (r == 0) g.WriteHeader(base, lane);

  const Src* src = v + g.Src(t_off, hh, 0);
  float lo = 3.402823466e38f, hi = -3.402823466e38f;
  for (int d = 4 * lane; d < g.D; d += 4 * kWarp) {
    float x[4];
    Load4(src + d, x);
    for (int j = 0; j < 4; ++j) lo = fminf(lo, x[j]), hi = fmaxf(hi, x[j]);
  }
  const kvq::Int4Params p = kvq::MakeInt4Params(WarpMin(lo), WarpMax(hi));
  if (lane == 0) {
    *reinterpret_cast<uint16_t*>(base + l.v_mins + 2 * r) = p.min_bf16;
    *reinterpret_cast<uint16_t*>(base + l.v_scales + 2 * r) = p.scale_bf16;
  }
  uint8_t* codes = base + l.v_codes + r * (g.D / 2);
  for (int d = 4 * lane; d < g.D; d += 4 * kWarp) {
    float x[4];
    Load4(src + d, x);
    const uint32_t b0 = kvq::QuantizeInt4(x[0], p) | kvq::QuantizeInt4(x[1], p) << 4;
    const uint32_t b1 = kvq::QuantizeInt4(x[2], p) | kvq::QuantizeInt4(x[3], p) << 4;
    *reinterpret_cast<uint16_t*>(codes + d / 2) = static_cast<uint16_t>(b0 | b1 << 8);
  }
}

// One thread per work item (the grid's x dimension takes up to 2^31 - 1 blocks).
unsigned Blocks(int64_t threads) { return static_cast<unsigned>((threads + kBlock - 1) / kBlock); }

template <typename Src>
cudaError_t Launch(KvCodecId codec, const Src* k, const Src* v, const Geometry& g, uint8_t* out,
                   cudaStream_t stream) {
  const int64_t rows = g.tokens * g.H;
  switch (codec) {
    case KvCodecId::kRawBf16:
      Bf16Kernel<Src, false><<<Blocks(2 * rows * (g.D / 4)), kBlock, 0, stream>>>(k, v, g, out);
      break;
    case KvCodecId::kLossless:
      Bf16Kernel<Src, true><<<Blocks(2 * rows * (g.D / 4)), kBlock, 0, stream>>>(k, v, g, out);
      break;
    case KvCodecId::kFp8E4m3:
      ScaledByteKernel<Src, true><<<Blocks(2 * rows * kWarp), kBlock, 0, stream>>>(k, v, g, out);
      break;
    case KvCodecId::kInt8:
      ScaledByteKernel<Src, false><<<Blocks(2 * rows * kWarp), kBlock, 0, stream>>>(k, v, g, out);
      break;
    case KvCodecId::kInt4: {
      const int64_t chunks = (g.tokens + g.tpc - 1) / g.tpc;
      const int64_t key_threads =
          chunks * ((g.tpc + g.G - 1) / g.G) * g.H * static_cast<int64_t>(g.D / 2);
      Int4KeyKernel<Src><<<Blocks(key_threads), kBlock, 0, stream>>>(k, g, out);
      Int4ValueKernel<Src><<<Blocks(rows * kWarp), kBlock, 0, stream>>>(v, g, out);
      break;
    }
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

size_t KvEncodedBytesCuda(KvCodecId codec, const KvChunkExtent& e, int int4_group_tokens) {
  const ChunkDims dims{e.token_end - e.token_begin, e.head_end - e.head_begin, e.head_dim};
  switch (codec) {
    case KvCodecId::kRawBf16:
      return static_cast<size_t>(4 * dims.elements());
    case KvCodecId::kLossless:
      return static_cast<size_t>(4 * dims.elements());
    case KvCodecId::kFp8E4m3:
    case KvCodecId::kInt8:
      return static_cast<size_t>(ScaledByteLayout::For(dims).total);
    case KvCodecId::kInt4:
      return int4_group_tokens < 1
                 ? 0
                 : static_cast<size_t>(Int4Layout::For(dims, int4_group_tokens).total);
    default:
      return 0;
  }
}

cudaError_t EncodeKvLayerCuda(KvCodecId codec, const KvDeviceLayer& layer, int64_t token_begin,
                              int64_t token_end, int64_t tokens_per_chunk, int head_begin,
                              int head_end, int head_dim, int int4_group_tokens, uint8_t* out,
                              cudaStream_t stream) {
  if (layer.k == nullptr || layer.v == nullptr || out == nullptr || head_dim < 4 ||
      head_dim % 4 != 0 || token_begin < 0 || token_end <= token_begin ||
      token_end > layer.tokens || head_begin < 0 || head_end <= head_begin ||
      head_end > layer.kv_heads || tokens_per_chunk < 1 ||
      (codec == KvCodecId::kInt4 && (int4_group_tokens < 1 || int4_group_tokens > 65535))) {
    return cudaErrorInvalidValue;
  }
  Geometry g;
  g.t_begin = token_begin;
  g.tokens = token_end - token_begin;
  g.tpc = tokens_per_chunk < g.tokens ? tokens_per_chunk : g.tokens;
  g.h0 = head_begin;
  g.H = head_end - head_begin;
  g.D = head_dim;
  g.kv_heads = layer.kv_heads;
  g.G = codec == KvCodecId::kInt4 ? int4_group_tokens : 1;
  g.stride = static_cast<int64_t>(
      KvEncodedBytesCuda(codec, {0, g.tpc, 0, g.H, head_dim}, int4_group_tokens));
  if (g.stride == 0) return cudaErrorInvalidValue;
  uint8_t header[kKvHeaderBytes];
  WriteKvHeader(header, codec, codec == KvCodecId::kInt4 ? static_cast<uint16_t>(g.G) : 0);
  for (int i = 0; i < 4; ++i) {
    g.header_lo |= static_cast<uint32_t>(header[i]) << (8 * i);
    g.header_hi |= static_cast<uint32_t>(header[4 + i]) << (8 * i);
  }
  if (layer.bf16) {
    return Launch(codec, static_cast<const uint16_t*>(layer.k),
                  static_cast<const uint16_t*>(layer.v), g, out, stream);
  }
  return Launch(codec, static_cast<const float*>(layer.k), static_cast<const float*>(layer.v), g,
                out, stream);
}

cudaError_t EncodeKvChunkCuda(KvCodecId codec, const KvDeviceLayer& layer,
                              const KvChunkExtent& extent, int int4_group_tokens, uint8_t* out,
                              cudaStream_t stream) {
  return EncodeKvLayerCuda(codec, layer, extent.token_begin, extent.token_end,
                           extent.token_end - extent.token_begin, extent.head_begin,
                           extent.head_end, extent.head_dim, int4_group_tokens, out, stream);
}

}  // namespace sparsefill::kernels::cuda
