// A prefill's KV through a codec and back (see kv_codec_roundtrip.h).
#include "tests/accuracy/kv_codec_roundtrip.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/kvcodec/payload_layout.h"

namespace sparsefill::accuracy {

absl::StatusOr<std::vector<CodecChoice>> ParseCodecList(std::string_view list) {
  std::vector<CodecChoice> out;
  const std::string text(list);
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    const std::string spec = absl::AsciiStrToLower(absl::StripAsciiWhitespace(item));
    const std::vector<std::string> parts = absl::StrSplit(spec, ':');
    CodecChoice choice;
    choice.name = spec;
    bool found = false;
    for (int n = static_cast<int>(kernels::KvCodecId::kRawBf16);
         n <= static_cast<int>(kernels::KvCodecId::kInt4); ++n) {
      const auto id = static_cast<kernels::KvCodecId>(n);
      if (parts[0] == absl::AsciiStrToLower(kernels::KvCodecName(id))) {
        choice.codec = id;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown KV codec '", parts[0],
                       "' (raw_bf16, raw_fp32, lossless, fp8_e4m3, int8, int4[:G])"));
    }
    if (parts.size() > 1) {
      int group = 0;
      if (choice.codec != kernels::KvCodecId::kInt4 || parts.size() != 2 ||
          !absl::SimpleAtoi(parts[1], &group) || group < 1 ||
          group > kernels::kMaxInt4GroupTokens) {
        return absl::InvalidArgumentError(absl::StrCat(
            "KV codec '", spec, "': only int4 takes a parameter, its group size G in [1, ",
            kernels::kMaxInt4GroupTokens, "] tokens"));
      }
      choice.options.int4_group_tokens = group;
    }
    out.push_back(std::move(choice));
  }
  return out;
}

absl::StatusOr<RoundTripStats> RoundTripKv(const CodecChoice& codec, const LayerKvSet& exact,
                                           int kv_heads, int head_dim, int64_t max_chunk_bytes,
                                           LayerKvSet* decoded) {
  if (kv_heads <= 0 || head_dim <= 0 || exact.k.size() != exact.v.size()) {
    return absl::InvalidArgumentError("KV round trip: bad shape or K and V layer counts differ");
  }
  const size_t row = static_cast<size_t>(kv_heads) * head_dim;
  RoundTripStats stats;
  double k_err = 0, k_norm = 0, v_err = 0, v_norm = 0;
  decoded->k.resize(exact.k.size());
  decoded->v.resize(exact.v.size());
  for (size_t l = 0; l < exact.k.size(); ++l) {
    const std::vector<float>& k = exact.k[l];
    const std::vector<float>& v = exact.v[l];
    if (k.size() != v.size() || k.empty() || k.size() % row != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "KV round trip: layer ", l, " does not hold whole tokens of ", kv_heads, "x", head_dim));
    }
    const int64_t tokens = static_cast<int64_t>(k.size() / row);
    const kernels::KvLayerView view{k.data(), v.data(), kernels::ScalarType::kFloat32, kv_heads,
                                    tokens};
    // As the server's KvChunkSink: as many tokens a chunk as the worst-case payload allows.
    const int64_t per_chunk = kernels::MaxTokensPerChunk(codec.codec, tokens, kv_heads, head_dim,
                                                         max_chunk_bytes, codec.options);
    // NaN-filled, so a token range no chunk wrote shows up as a non-finite error.
    decoded->k[l].assign(k.size(), std::nanf(""));
    decoded->v[l].assign(v.size(), std::nanf(""));
    std::string payload;
    for (int64_t begin = 0; begin < tokens; begin += per_chunk) {
      kernels::KvChunkExtent extent;
      extent.token_begin = begin;
      extent.token_end = std::min(tokens, begin + per_chunk);
      extent.head_begin = 0;
      extent.head_end = kv_heads;
      extent.head_dim = head_dim;
      if (absl::Status s =
              kernels::EncodeKvChunk(codec.codec, view, extent, codec.options, &payload);
          !s.ok()) {
        return s;
      }
      if (absl::Status s = kernels::DecodeKvChunk(codec.codec, payload, kv_heads, extent,
                                                  decoded->k[l].data(), decoded->v[l].data());
          !s.ok()) {
        return s;
      }
      ++stats.chunks;
      stats.payload_bytes += payload.size();
    }
    stats.bf16_bytes += 2 * 2 * static_cast<uint64_t>(k.size());
    for (size_t i = 0; i < k.size(); ++i) {
      const double dk = static_cast<double>(decoded->k[l][i]) - k[i];
      const double dv = static_cast<double>(decoded->v[l][i]) - v[i];
      k_err += dk * dk;
      v_err += dv * dv;
      k_norm += static_cast<double>(k[i]) * k[i];
      v_norm += static_cast<double>(v[i]) * v[i];
    }
  }
  stats.k_rel_err = std::sqrt(k_err / std::max(k_norm, 1e-30));
  stats.v_rel_err = std::sqrt(v_err / std::max(v_norm, 1e-30));
  return stats;
}

}  // namespace sparsefill::accuracy
