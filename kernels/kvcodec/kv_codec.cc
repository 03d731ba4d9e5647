// The KV codec registry (see kv_codec.h): runtime codec -> the codec's own functions, in one
// place.
#include "kernels/kvcodec/kv_codec.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/kvcodec/codec_util.h"
#include "kernels/kvcodec/fp8_codec.h"
#include "kernels/kvcodec/int4_codec.h"
#include "kernels/kvcodec/int8_codec.h"
#include "kernels/kvcodec/lossless_codec.h"

namespace sparsefill::kernels {
namespace {

ScalarType RawWire(KvCodecId codec) {
  return codec == KvCodecId::kRawFp32 ? ScalarType::kFloat32 : ScalarType::kBFloat16;
}

absl::Status CheckOptions(KvCodecId codec, const KvEncodeOptions& options) {
  if (codec == KvCodecId::kInt4 &&
      (options.int4_group_tokens < 1 || options.int4_group_tokens > kMaxInt4GroupTokens)) {
    return absl::InvalidArgumentError(absl::StrCat("INT4 group size must be in [1, ",
                                                   kMaxInt4GroupTokens, "], got ",
                                                   options.int4_group_tokens));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<KvCodecId> KvCodecFromNumber(int number) {
  if (number >= static_cast<int>(KvCodecId::kRawBf16) &&
      number <= static_cast<int>(KvCodecId::kInt4)) {
    return static_cast<KvCodecId>(number);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown KV codec number ", number));
}

const char* KvCodecName(KvCodecId codec) {
  switch (codec) {
    case KvCodecId::kRawBf16:
      return "RAW_BF16";
    case KvCodecId::kRawFp32:
      return "RAW_FP32";
    case KvCodecId::kLossless:
      return "LOSSLESS";
    case KvCodecId::kFp8E4m3:
      return "FP8_E4M3";
    case KvCodecId::kInt8:
      return "INT8";
    case KvCodecId::kInt4:
      return "INT4";
  }
  return "?";
}

size_t MaxKvPayloadBytes(KvCodecId codec, const KvChunkExtent& extent,
                         const KvEncodeOptions& options) {
  switch (codec) {
    case KvCodecId::kRawBf16:
    case KvCodecId::kRawFp32:
      return RawPayloadBytes(extent, RawWire(codec));
    case KvCodecId::kLossless:
      return LosslessMaxPayloadBytes(extent);
    case KvCodecId::kFp8E4m3:
      return Fp8PayloadBytes(extent);
    case KvCodecId::kInt8:
      return Int8PayloadBytes(extent);
    case KvCodecId::kInt4:
      return Int4PayloadBytes(extent, options.int4_group_tokens);
  }
  return 0;
}

int64_t MaxTokensPerChunk(KvCodecId codec, int64_t tokens, int heads, int head_dim,
                          int64_t max_payload_bytes, const KvEncodeOptions& options) {
  if (tokens <= 1) return 1;
  auto fits = [&](int64_t n) {
    const KvChunkExtent e{0, n, 0, heads, head_dim};
    return static_cast<int64_t>(MaxKvPayloadBytes(codec, e, options)) <= max_payload_bytes;
  };
  // Payload sizes grow with the token count: binary search the largest count that fits.
  int64_t lo = 1, hi = tokens;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  if (codec == KvCodecId::kInt4 && lo >= options.int4_group_tokens) {
    lo -= lo % options.int4_group_tokens;
  }
  return lo;
}

absl::Status EncodeKvChunk(KvCodecId codec, const KvLayerView& layer, const KvChunkExtent& extent,
                           const KvEncodeOptions& options, std::string* payload) {
  if (absl::Status s = kvcodec_internal::CheckView(layer, extent); !s.ok()) return s;
  if (absl::Status s = CheckOptions(codec, options); !s.ok()) return s;
  auto out = [&] {
    payload->resize(codec == KvCodecId::kLossless ? 0 : MaxKvPayloadBytes(codec, extent, options));
    return reinterpret_cast<uint8_t*>(payload->data());
  };
  switch (codec) {
    case KvCodecId::kRawBf16:
    case KvCodecId::kRawFp32:
      EncodeRawChunk(layer.k, layer.v, layer.dtype, layer.kv_heads, extent, RawWire(codec), out());
      return absl::OkStatus();
    case KvCodecId::kLossless:
      return EncodeLosslessChunk(layer, extent, options.zstd_level, payload);
    case KvCodecId::kFp8E4m3:
      return EncodeFp8Chunk(layer, extent, out());
    case KvCodecId::kInt8:
      return EncodeInt8Chunk(layer, extent, out());
    case KvCodecId::kInt4:
      return EncodeInt4Chunk(layer, extent, options.int4_group_tokens, out());
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown KV codec ", static_cast<int>(codec)));
}

absl::Status DecodeKvChunk(KvCodecId codec, std::string_view payload, int kv_heads,
                           const KvChunkExtent& extent, float* k, float* v) {
  switch (codec) {
    case KvCodecId::kRawBf16:
    case KvCodecId::kRawFp32: {
      if (absl::Status s = kvcodec_internal::CheckExtent(extent, kv_heads); !s.ok()) return s;
      const size_t expected = RawPayloadBytes(extent, RawWire(codec));
      if (absl::Status s = kvcodec_internal::CheckSize(payload, static_cast<int64_t>(expected),
                                                       codec, kvcodec_internal::DimsOf(extent));
          !s.ok()) {
        return s;
      }
      DecodeRawChunk(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                     RawWire(codec), kv_heads, extent, k, v);
      return absl::OkStatus();
    }
    case KvCodecId::kLossless:
      return DecodeLosslessChunk(payload, kv_heads, extent, k, v);
    case KvCodecId::kFp8E4m3:
      return DecodeFp8Chunk(payload, kv_heads, extent, k, v);
    case KvCodecId::kInt8:
      return DecodeInt8Chunk(payload, kv_heads, extent, k, v);
    case KvCodecId::kInt4:
      return DecodeInt4Chunk(payload, kv_heads, extent, k, v);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown KV codec ", static_cast<int>(codec)));
}

}  // namespace sparsefill::kernels
