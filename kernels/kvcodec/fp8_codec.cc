// KV_CODEC_FP8_E4M3 (see fp8_codec.h).
#include "kernels/kvcodec/fp8_codec.h"

#include "kernels/kvcodec/quant_math.h"
#include "kernels/kvcodec/scaled_byte_codec.h"

namespace sparsefill::kernels {
namespace {

struct Fp8Format {
  static constexpr KvCodecId kCodec = KvCodecId::kFp8E4m3;
  static constexpr float kCodeMax = kvq::kE4m3Max;
  static uint8_t Quantize(float x, float scale) { return kvq::QuantizeFp8(x, scale); }
  static float Value(uint8_t code) { return kvq::E4m3ToFloat(code); }
  static bool IsUndefined(uint8_t code) { return (code & 0x7fu) == 0x7fu; }  // the NaNs
};

}  // namespace

size_t Fp8PayloadBytes(const KvChunkExtent& extent) {
  return static_cast<size_t>(ScaledByteLayout::For(kvcodec_internal::DimsOf(extent)).total);
}

absl::Status EncodeFp8Chunk(const KvLayerView& layer, const KvChunkExtent& extent,
                            uint8_t* payload) {
  return kvcodec_internal::EncodeScaledByteChunk<Fp8Format>(layer, extent, payload);
}

absl::Status DecodeFp8Chunk(std::string_view payload, int kv_heads, const KvChunkExtent& extent,
                            float* k, float* v) {
  return kvcodec_internal::DecodeScaledByteChunk<Fp8Format>(payload, kv_heads, extent, k, v);
}

}  // namespace sparsefill::kernels
