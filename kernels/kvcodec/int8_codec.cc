// KV_CODEC_INT8 (see int8_codec.h).
#include "kernels/kvcodec/int8_codec.h"

#include "kernels/kvcodec/quant_math.h"
#include "kernels/kvcodec/scaled_byte_codec.h"

namespace sparsefill::kernels {
namespace {

struct Int8Format {
  static constexpr KvCodecId kCodec = KvCodecId::kInt8;
  static constexpr float kCodeMax = 127.0f;
  static uint8_t Quantize(float x, float scale) {
    return static_cast<uint8_t>(kvq::QuantizeInt8(x, scale));
  }
  // -128 is never written, but it decodes to a finite value: no byte is invalid.
  static float Value(uint8_t code) { return static_cast<float>(static_cast<int8_t>(code)); }
  static bool IsUndefined(uint8_t) { return false; }
};

}  // namespace

size_t Int8PayloadBytes(const KvChunkExtent& extent) {
  return static_cast<size_t>(ScaledByteLayout::For(kvcodec_internal::DimsOf(extent)).total);
}

absl::Status EncodeInt8Chunk(const KvLayerView& layer, const KvChunkExtent& extent,
                             uint8_t* payload) {
  return kvcodec_internal::EncodeScaledByteChunk<Int8Format>(layer, extent, payload);
}

absl::Status DecodeInt8Chunk(std::string_view payload, int kv_heads, const KvChunkExtent& extent,
                             float* k, float* v) {
  return kvcodec_internal::DecodeScaledByteChunk<Int8Format>(payload, kv_heads, extent, k, v);
}

}  // namespace sparsefill::kernels
