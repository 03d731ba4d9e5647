// KV_CODEC_FP8_E4M3 (see fp8_codec.h).
#include "kernels/kvcodec/fp8_codec.h"

#include <array>

#include "kernels/kvcodec/quant_math.h"
#include "kernels/kvcodec/scaled_byte_codec.h"

namespace sparsefill::kernels {
namespace {

struct Fp8Format {
  static constexpr KvCodecId kCodec = KvCodecId::kFp8E4m3;
  static constexpr float kCodeMax = kvq::kE4m3Max;
  static constexpr bool kHasInvalidCodes = true;
  static uint8_t Quantize(float x, float scale) { return kvq::QuantizeFp8(x, scale); }
  static bool IsInvalid(uint8_t code) { return (code & 0x7fu) == 0x7fu; }
  static const std::array<float, 256>& Table() {
    static const std::array<float, 256> table = [] {
      std::array<float, 256> t{};
      for (int c = 0; c < 256; ++c) t[c] = kvq::E4m3ToFloat(static_cast<uint8_t>(c));
      return t;
    }();
    return table;
  }
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
