// KV_CODEC_INT4 (see int4_codec.h).
#include "kernels/kvcodec/int4_codec.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/kvcodec/codec_util.h"
#include "kernels/kvcodec/quant_math.h"

namespace sparsefill::kernels {
namespace {

using kvcodec_internal::DimsOf;
using kvcodec_internal::LoadLe;
using kvcodec_internal::LoadRow;
using kvcodec_internal::RowOffset;
using kvcodec_internal::StoreLe;

absl::Status CheckEvenHeadDim(const KvChunkExtent& e) {
  if (e.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("INT4 packs two codes a byte and needs an even head_dim, got ", e.head_dim));
  }
  return absl::OkStatus();
}

// Stores code `q` of flat element `i` (low nibble for even i, high for odd).
inline void PutNibble(uint8_t* codes, int64_t i, uint8_t q) {
  uint8_t& b = codes[i >> 1];
  b = (i & 1) == 0 ? static_cast<uint8_t>((b & 0xf0u) | q)
                   : static_cast<uint8_t>((b & 0x0fu) | q << 4);
}

void StoreParams(uint8_t* mins, uint8_t* scales, int64_t index, kvq::Int4Params p) {
  StoreLe<uint16_t>(mins + 2 * index, p.min_bf16);
  StoreLe<uint16_t>(scales + 2 * index, p.scale_bf16);
}

}  // namespace

size_t Int4PayloadBytes(const KvChunkExtent& extent, int group_tokens) {
  return static_cast<size_t>(Int4Layout::For(DimsOf(extent), std::max(1, group_tokens)).total);
}

absl::Status EncodeInt4Chunk(const KvLayerView& layer, const KvChunkExtent& e, int group_tokens,
                             uint8_t* payload) {
  if (absl::Status s = kvcodec_internal::CheckView(layer, e); !s.ok()) return s;
  if (absl::Status s = CheckEvenHeadDim(e); !s.ok()) return s;
  if (group_tokens < 1 || group_tokens > kMaxInt4GroupTokens) {
    return absl::InvalidArgumentError(absl::StrCat("INT4 group size must be in [1, ",
                                                   kMaxInt4GroupTokens, "], got ", group_tokens));
  }
  if (absl::Status s = kvcodec_internal::CheckFinite(layer, e, "INT4"); !s.ok()) return s;
  const ChunkDims dims = DimsOf(e);
  const Int4Layout l = Int4Layout::For(dims, group_tokens);
  const int D = e.head_dim;
  const int64_t H = dims.heads;
  WriteKvHeader(payload, KvCodecId::kInt4, static_cast<uint16_t>(group_tokens));
  std::fill(payload + l.k_codes, payload + l.total, uint8_t{0});

  // K: per channel over each group of tokens.
  std::vector<float> lo(D), hi(D), row(D);
  std::vector<kvq::Int4Params> params(D);
  for (int64_t g = 0; g < l.groups; ++g) {
    const int64_t t0 = e.token_begin + g * group_tokens;
    const int64_t t1 = std::min<int64_t>(e.token_end, t0 + group_tokens);
    for (int h = e.head_begin; h < e.head_end; ++h) {
      std::fill(lo.begin(), lo.end(), FLT_MAX);
      std::fill(hi.begin(), hi.end(), -FLT_MAX);
      for (int64_t t = t0; t < t1; ++t) {
        LoadRow(layer.k, layer.dtype, RowOffset(layer.kv_heads, t, h, D), D, row.data());
        for (int d = 0; d < D; ++d) {
          lo[d] = std::fmin(lo[d], row[d]);
          hi[d] = std::fmax(hi[d], row[d]);
        }
      }
      for (int d = 0; d < D; ++d) {
        params[d] = kvq::MakeInt4Params(lo[d], hi[d]);
        StoreParams(payload + l.k_mins, payload + l.k_scales, (g * H + (h - e.head_begin)) * D + d,
                    params[d]);
      }
      for (int64_t t = t0; t < t1; ++t) {
        LoadRow(layer.k, layer.dtype, RowOffset(layer.kv_heads, t, h, D), D, row.data());
        const int64_t base = ((t - e.token_begin) * H + (h - e.head_begin)) * D;
        for (int d = 0; d < D; ++d) {
          PutNibble(payload + l.k_codes, base + d, kvq::QuantizeInt4(row[d], params[d]));
        }
      }
    }
  }
  // V: per (token, head) row.
  for (int64_t t = e.token_begin; t < e.token_end; ++t) {
    for (int h = e.head_begin; h < e.head_end; ++h) {
      LoadRow(layer.v, layer.dtype, RowOffset(layer.kv_heads, t, h, D), D, row.data());
      float rlo = FLT_MAX, rhi = -FLT_MAX;
      for (float x : row) {
        rlo = std::fmin(rlo, x);
        rhi = std::fmax(rhi, x);
      }
      const kvq::Int4Params p = kvq::MakeInt4Params(rlo, rhi);
      const int64_t r = (t - e.token_begin) * H + (h - e.head_begin);
      StoreParams(payload + l.v_mins, payload + l.v_scales, r, p);
      for (int d = 0; d < D; ++d) {
        PutNibble(payload + l.v_codes, r * D + d, kvq::QuantizeInt4(row[d], p));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeInt4Chunk(std::string_view payload, int kv_heads, const KvChunkExtent& e,
                             float* k, float* v) {
  if (absl::Status s = kvcodec_internal::CheckExtent(e, kv_heads); !s.ok()) return s;
  if (absl::Status s = CheckEvenHeadDim(e); !s.ok()) return s;
  uint16_t group_tokens = 0;
  if (absl::Status s = kvcodec_internal::CheckHeader(payload, KvCodecId::kInt4, &group_tokens);
      !s.ok()) {
    return s;
  }
  if (group_tokens == 0) return absl::DataLossError("INT4 payload header has group size 0");
  const ChunkDims dims = DimsOf(e);
  const Int4Layout l = Int4Layout::For(dims, group_tokens);
  if (absl::Status s = kvcodec_internal::CheckSize(payload, l.total, KvCodecId::kInt4, dims);
      !s.ok()) {
    return s;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());

  // Check every (min, scale) pair before writing: finite, scale >= 0, and |min| + 15 scale finite
  // (so every code decodes to a finite value).
  auto check_params = [&](int64_t mins, int64_t scales, int64_t count,
                          const char* what) -> absl::Status {
    for (int64_t i = 0; i < count; ++i) {
      const float mn = kvq::Bf16BitsToFloat(LoadLe<uint16_t>(p + mins + 2 * i));
      const float sc = kvq::Bf16BitsToFloat(LoadLe<uint16_t>(p + scales + 2 * i));
      if (!std::isfinite(mn) || !(sc >= 0.0f) ||
          !(std::fabs(static_cast<double>(mn)) + 15.0 * static_cast<double>(sc) <= FLT_MAX)) {
        return absl::DataLossError(absl::StrCat("INT4 ", what, " parameters ", i, " (min ", mn,
                                                ", scale ", sc, ") are invalid: corrupt payload"));
      }
    }
    return absl::OkStatus();
  };
  const int64_t H = dims.heads;
  const int D = e.head_dim;
  if (absl::Status s = check_params(l.k_mins, l.k_scales, l.groups * H * D, "K group"); !s.ok()) {
    return s;
  }
  if (absl::Status s = check_params(l.v_mins, l.v_scales, dims.rows(), "V row"); !s.ok()) return s;

  // K: convert one group's parameters to float once, then decode its tokens.
  std::vector<float> mins(H * D), scales(H * D);
  for (int64_t g = 0; g < l.groups; ++g) {
    for (int64_t i = 0; i < H * D; ++i) {
      mins[i] = kvq::Bf16BitsToFloat(LoadLe<uint16_t>(p + l.k_mins + 2 * (g * H * D + i)));
      scales[i] = kvq::Bf16BitsToFloat(LoadLe<uint16_t>(p + l.k_scales + 2 * (g * H * D + i)));
    }
    const int64_t t0 = e.token_begin + g * group_tokens;
    const int64_t t1 = std::min<int64_t>(e.token_end, t0 + group_tokens);
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t hh = 0; hh < H; ++hh) {
        const uint8_t* codes = p + l.k_codes + ((t - e.token_begin) * H + hh) * D / 2;
        const float* mn = mins.data() + hh * D;
        const float* sc = scales.data() + hh * D;
        float* dst = k + RowOffset(kv_heads, t, static_cast<int>(e.head_begin + hh), D);
        for (int j = 0; j < D / 2; ++j) {
          const uint8_t b = codes[j];
          dst[2 * j] = static_cast<float>(b & 0x0fu) * sc[2 * j] + mn[2 * j];
          dst[2 * j + 1] = static_cast<float>(b >> 4) * sc[2 * j + 1] + mn[2 * j + 1];
        }
      }
    }
  }
  // V: one (min, scale) per row.
  for (int64_t t = e.token_begin; t < e.token_end; ++t) {
    for (int64_t hh = 0; hh < H; ++hh) {
      const int64_t r = (t - e.token_begin) * H + hh;
      const float mn = kvq::Bf16BitsToFloat(LoadLe<uint16_t>(p + l.v_mins + 2 * r));
      const float sc = kvq::Bf16BitsToFloat(LoadLe<uint16_t>(p + l.v_scales + 2 * r));
      const uint8_t* codes = p + l.v_codes + r * D / 2;
      float* dst = v + RowOffset(kv_heads, t, static_cast<int>(e.head_begin + hh), D);
      for (int j = 0; j < D / 2; ++j) {
        const uint8_t b = codes[j];
        dst[2 * j] = static_cast<float>(b & 0x0fu) * sc + mn;
        dst[2 * j + 1] = static_cast<float>(b >> 4) * sc + mn;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sparsefill::kernels
