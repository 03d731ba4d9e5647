#include "kernels/kvcodec/raw_codec.h"

#include <cstring>

#include "kernels/ops/numeric.h"

namespace sparsefill::kernels {
namespace {

// Little-endian stores and loads (the wire format), independent of host byte order.
inline void Store16(uint8_t* p, uint16_t x) {
  p[0] = static_cast<uint8_t>(x);
  p[1] = static_cast<uint8_t>(x >> 8);
}
inline void Store32(uint8_t* p, uint32_t x) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(x >> (8 * i));
}
inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
inline uint32_t Load32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

inline float ReadSource(const void* base, ScalarType source, int64_t index) {
  if (source == ScalarType::kBFloat16)
    return Bf16ToFloat(static_cast<const uint16_t*>(base)[index]);
  return static_cast<const float*>(base)[index];
}

void EncodeTensor(const void* x, ScalarType source, int kv_heads, const KvChunkExtent& e,
                  ScalarType wire, uint8_t* out) {
  const size_t elem = ScalarSize(wire);
  for (int64_t t = e.token_begin; t < e.token_end; ++t) {
    for (int h = e.head_begin; h < e.head_end; ++h) {
      const int64_t base = (t * kv_heads + h) * e.head_dim;
      for (int d = 0; d < e.head_dim; ++d, out += elem) {
        if (wire == ScalarType::kBFloat16 && source == ScalarType::kBFloat16) {
          Store16(out, static_cast<const uint16_t*>(x)[base + d]);  // no round trip through float
        } else if (wire == ScalarType::kBFloat16) {
          Store16(out, FloatToBf16(ReadSource(x, source, base + d)));
        } else {
          Store32(out, FloatToBits(ReadSource(x, source, base + d)));
        }
      }
    }
  }
}

void DecodeTensor(const uint8_t* in, ScalarType wire, int kv_heads, const KvChunkExtent& e,
                  float* x) {
  const size_t elem = ScalarSize(wire);
  for (int64_t t = e.token_begin; t < e.token_end; ++t) {
    for (int h = e.head_begin; h < e.head_end; ++h) {
      float* dst = x + (t * kv_heads + h) * e.head_dim;
      for (int d = 0; d < e.head_dim; ++d, in += elem) {
        dst[d] = wire == ScalarType::kBFloat16 ? Bf16ToFloat(Load16(in)) : BitsToFloat(Load32(in));
      }
    }
  }
}

}  // namespace

size_t RawPayloadBytes(const KvChunkExtent& extent, ScalarType wire) {
  return 2 * static_cast<size_t>(extent.elements_per_tensor()) * ScalarSize(wire);
}

void EncodeRawChunk(const void* k, const void* v, ScalarType source, int kv_heads,
                    const KvChunkExtent& extent, ScalarType wire, uint8_t* payload) {
  const size_t half = RawPayloadBytes(extent, wire) / 2;
  EncodeTensor(k, source, kv_heads, extent, wire, payload);
  EncodeTensor(v, source, kv_heads, extent, wire, payload + half);
}

bool DecodeRawChunk(const uint8_t* payload, size_t payload_bytes, ScalarType wire, int kv_heads,
                    const KvChunkExtent& extent, float* k, float* v) {
  if (payload_bytes != RawPayloadBytes(extent, wire)) return false;
  const size_t half = payload_bytes / 2;
  DecodeTensor(payload, wire, kv_heads, extent, k);
  DecodeTensor(payload + half, wire, kv_heads, extent, v);
  return true;
}

}  // namespace sparsefill::kernels
