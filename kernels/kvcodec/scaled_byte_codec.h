// The shared body of FP8_E4M3 and INT8: one float32 scale per (token, head) row of K and of V
// (largest magnitude / largest code), one byte per element. `Format` supplies the codec id, the
// largest code magnitude, the quantizer (kvq::QuantizeFp8 / QuantizeInt8), the value of each
// code and which codes it leaves undefined. Internal to fp8_codec.cc and int8_codec.cc.
#pragma once

#include <array>
#include <cfloat>
#include <cmath>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/kvcodec/codec_util.h"
#include "kernels/kvcodec/payload_layout.h"
#include "kernels/kvcodec/quant_math.h"

namespace sparsefill::kernels::kvcodec_internal {

// Format::Value of every byte, computed once.
template <typename Format>
const std::array<float, 256>& CodeTable() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = Format::Value(static_cast<uint8_t>(c));
    return t;
  }();
  return table;
}

template <typename Format>
absl::Status EncodeScaledByteChunk(const KvLayerView& layer, const KvChunkExtent& e,
                                   uint8_t* payload) {
  if (absl::Status s = CheckView(layer, e); !s.ok()) return s;
  if (absl::Status s = CheckFinite(layer, e, KvCodecName(Format::kCodec)); !s.ok()) return s;
  const ChunkDims dims = DimsOf(e);
  const ScaledByteLayout l = ScaledByteLayout::For(dims);
  WriteKvHeader(payload, Format::kCodec, 0);
  std::vector<float> row(e.head_dim);
  for (int which = 0; which < 2; ++which) {
    const void* tensor = which == 0 ? layer.k : layer.v;
    uint8_t* scales = payload + (which == 0 ? l.k_scales : l.v_scales);
    uint8_t* codes = payload + (which == 0 ? l.k_codes : l.v_codes);
    for (int64_t t = e.token_begin; t < e.token_end; ++t) {
      for (int h = e.head_begin; h < e.head_end; ++h) {
        LoadRow(tensor, layer.dtype, RowOffset(layer.kv_heads, t, h, e.head_dim), e.head_dim,
                row.data());
        float amax = 0.0f;
        for (float x : row) amax = std::fmax(amax, std::fabs(x));
        const float scale = kvq::SymmetricScale(amax, Format::kCodeMax);
        StoreLe(scales, scale);
        scales += 4;
        for (float x : row) *codes++ = Format::Quantize(x, scale);
      }
    }
  }
  return absl::OkStatus();
}

template <typename Format>
absl::Status DecodeScaledByteChunk(std::string_view payload, int kv_heads, const KvChunkExtent& e,
                                   float* k, float* v) {
  if (absl::Status s = CheckExtent(e, kv_heads); !s.ok()) return s;
  const char* name = KvCodecName(Format::kCodec);
  uint16_t param = 0;
  if (absl::Status s = CheckHeader(payload, Format::kCodec, &param); !s.ok()) return s;
  if (param != 0) {
    return absl::DataLossError(
        absl::StrCat(name, " payload header parameter is ", param, ", must be 0"));
  }
  const ChunkDims dims = DimsOf(e);
  const ScaledByteLayout l = ScaledByteLayout::For(dims);
  if (absl::Status s = CheckSize(payload, l.total, Format::kCodec, dims); !s.ok()) return s;
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  const std::array<float, 256>& table = CodeTable<Format>();

  // Everything is checked before anything is written: finite, non-negative scales small enough
  // that no code overflows, and only defined codes.
  const int64_t rows = dims.rows();
  for (int64_t i = 0; i < 2 * rows; ++i) {
    const float scale = LoadLe<float>(p + l.k_scales + 4 * i);
    if (!(scale >= 0.0f && scale <= FLT_MAX / Format::kCodeMax)) {
      return absl::DataLossError(absl::StrCat(name, " ", i < rows ? "K" : "V", " scale of row ",
                                              i % rows, " is ", scale,
                                              " (must be finite and >= 0): corrupt payload"));
    }
  }
  // Codes the format leaves undefined (FP8's NaNs 0x7f and 0xff) are never written. A plain
  // predicate rather than a table lookup: the scan vectorizes (and vanishes for INT8).
  uint8_t bad = 0;
  const int64_t n = 2 * dims.elements();
  for (int64_t i = 0; i < n; ++i) bad |= Format::IsUndefined(p[l.k_codes + i]) ? 1 : 0;
  if (bad != 0) {
    for (int64_t i = 0; i < n; ++i) {
      if (Format::IsUndefined(p[l.k_codes + i])) {
        return absl::DataLossError(absl::StrCat(name, " code at byte ", l.k_codes + i,
                                                " is undefined (NaN): corrupt payload"));
      }
    }
  }

  for (int which = 0; which < 2; ++which) {
    float* out = which == 0 ? k : v;
    const uint8_t* scales = p + (which == 0 ? l.k_scales : l.v_scales);
    const uint8_t* codes = p + (which == 0 ? l.k_codes : l.v_codes);
    for (int64_t t = e.token_begin; t < e.token_end; ++t) {
      for (int h = e.head_begin; h < e.head_end; ++h) {
        const float scale = LoadLe<float>(scales);
        scales += 4;
        float* dst = out + RowOffset(kv_heads, t, h, e.head_dim);
        for (int d = 0; d < e.head_dim; ++d) dst[d] = table[codes[d]] * scale;
        codes += e.head_dim;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sparsefill::kernels::kvcodec_internal
