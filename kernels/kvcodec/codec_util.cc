// Checks shared by the CPU KV codecs (see codec_util.h).
#include "kernels/kvcodec/codec_util.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sparsefill::kernels::kvcodec_internal {

const char* CodecLabel(KvCodecId codec) { return KvCodecName(codec); }

absl::Status CheckExtent(const KvChunkExtent& e, int kv_heads) {
  if (e.token_begin < 0 || e.token_end <= e.token_begin || e.head_begin < 0 ||
      e.head_end <= e.head_begin || e.head_end > kv_heads || e.head_dim < 1) {
    return absl::InvalidArgumentError(absl::StrCat("KV chunk extent tokens [", e.token_begin, ",",
                                                   e.token_end, "), heads [", e.head_begin, ",",
                                                   e.head_end, ") of ", kv_heads, ", head_dim ",
                                                   e.head_dim, " is empty or outside the layer"));
  }
  return absl::OkStatus();
}

absl::Status CheckView(const KvLayerView& view, const KvChunkExtent& extent) {
  if (view.dtype != ScalarType::kFloat32 && view.dtype != ScalarType::kBFloat16) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV codecs take F32 or BF16 tensors, got ", ScalarName(view.dtype)));
  }
  if (view.k == nullptr || view.v == nullptr || view.kv_heads < 1 || view.tokens < 1) {
    return absl::InvalidArgumentError("KV layer view without tensors, tokens or heads");
  }
  if (absl::Status s = CheckExtent(extent, view.kv_heads); !s.ok()) return s;
  if (extent.token_end > view.tokens) {
    return absl::InvalidArgumentError(absl::StrCat("KV chunk tokens [", extent.token_begin, ",",
                                                   extent.token_end, ") outside the layer's ",
                                                   view.tokens));
  }
  return absl::OkStatus();
}

absl::Status CheckFinite(const KvLayerView& view, const KvChunkExtent& e, const char* codec) {
  std::vector<float> row(e.head_dim);
  for (int which = 0; which < 2; ++which) {
    const void* tensor = which == 0 ? view.k : view.v;
    for (int64_t t = e.token_begin; t < e.token_end; ++t) {
      for (int h = e.head_begin; h < e.head_end; ++h) {
        LoadRow(tensor, view.dtype, RowOffset(view.kv_heads, t, h, e.head_dim), e.head_dim,
                row.data());
        for (int d = 0; d < e.head_dim; ++d) {
          if (!std::isfinite(row[d])) {
            return absl::InvalidArgumentError(
                absl::StrCat(codec, " needs finite KV: ", which == 0 ? "K" : "V", "[token ", t,
                             ", head ", h, ", dim ", d, "] is ", row[d]));
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHeader(std::string_view payload, KvCodecId codec, uint16_t* param) {
  const char* name = CodecLabel(codec);
  if (payload.size() < kKvHeaderBytes) {
    return absl::DataLossError(absl::StrCat(name, " payload is ", payload.size(),
                                            " bytes, shorter than its ", kKvHeaderBytes,
                                            "-byte header (truncated)"));
  }
  const auto* p = reinterpret_cast<const uint8_t*>(payload.data());
  if (p[0] != kKvMagic0 || p[1] != kKvMagic1) {
    return absl::DataLossError(absl::StrFormat(
        "%s payload does not start with the KV header magic 'KV' (got 0x%02x 0x%02x): not a "
        "compressed KV payload (a raw one?) or corrupt",
        name, p[0], p[1]));
  }
  if (p[2] != static_cast<uint8_t>(codec)) {
    absl::StatusOr<KvCodecId> actual = KvCodecFromNumber(p[2]);
    return absl::DataLossError(absl::StrCat(
        "payload header says codec ",
        actual.ok() ? KvCodecName(*actual) : absl::StrCat("number ", p[2], " (unknown)"),
        ", expected ", name, " (wrong codec)"));
  }
  if (p[3] != kKvLayoutVersion) {
    return absl::DataLossError(absl::StrCat(name, " payload layout version ", p[3],
                                            ", this decoder reads version ", kKvLayoutVersion));
  }
  if (p[6] != 0 || p[7] != 0) {
    return absl::DataLossError(absl::StrCat(name, " payload header bytes 6-7 are not zero"));
  }
  *param = static_cast<uint16_t>(p[4] | p[5] << 8);
  return absl::OkStatus();
}

absl::Status CheckSize(std::string_view payload, int64_t expected, KvCodecId codec,
                       const ChunkDims& dims) {
  if (static_cast<int64_t>(payload.size()) == expected) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      CodecLabel(codec), " payload is ", payload.size(), " bytes, expected ", expected, " for ",
      dims.tokens, " tokens x ", dims.heads, " heads x ", dims.head_dim, " dims",
      static_cast<int64_t>(payload.size()) < expected ? " (truncated)" : " (trailing bytes)"));
}

}  // namespace sparsefill::kernels::kvcodec_internal
