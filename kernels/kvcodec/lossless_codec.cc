// KV_CODEC_LOSSLESS (see lossless_codec.h).
#include "kernels/kvcodec/lossless_codec.h"

#include <zstd.h>

#include <bit>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/kvcodec/codec_util.h"
#include "kernels/kvcodec/quant_math.h"

namespace sparsefill::kernels {
namespace {

using kvcodec_internal::DimsOf;
using kvcodec_internal::RowOffset;

// One compression and one decompression context per thread, reused across chunks (creating them
// costs more than compressing a small chunk).
struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DctxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

ZSTD_CCtx* ThreadCctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CctxDeleter> cctx(ZSTD_createCCtx());
  return cctx.get();
}

ZSTD_DCtx* ThreadDctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx(ZSTD_createDCtx());
  return dctx.get();
}

std::vector<uint8_t>& ThreadScratch() {
  thread_local std::vector<uint8_t> scratch;
  return scratch;
}

}  // namespace

size_t LosslessMaxPayloadBytes(const KvChunkExtent& extent) {
  return kKvHeaderBytes + ZSTD_compressBound(4 * static_cast<size_t>(DimsOf(extent).elements()));
}

absl::Status SplitBf16Planes(const KvLayerView& layer, const KvChunkExtent& e, uint8_t* planes) {
  if (absl::Status s = kvcodec_internal::CheckView(layer, e); !s.ok()) return s;
  const int64_t n = DimsOf(e).elements();
  const int D = e.head_dim;
  for (int which = 0; which < 2; ++which) {
    const void* tensor = which == 0 ? layer.k : layer.v;
    uint8_t* hi = planes + (which == 0 ? 0 : 2 * n);
    uint8_t* lo = hi + n;
    for (int64_t t = e.token_begin; t < e.token_end; ++t) {
      for (int h = e.head_begin; h < e.head_end; ++h) {
        const int64_t offset = RowOffset(layer.kv_heads, t, h, D);
        if (layer.dtype == ScalarType::kBFloat16) {
          const uint16_t* src = static_cast<const uint16_t*>(tensor) + offset;
          for (int d = 0; d < D; ++d) {
            hi[d] = static_cast<uint8_t>(src[d] >> 8);
            lo[d] = static_cast<uint8_t>(src[d]);
          }
        } else {
          const float* src = static_cast<const float*>(tensor) + offset;
          for (int d = 0; d < D; ++d) {
            const uint16_t b = kvq::FloatToBf16Rne(src[d]);
            hi[d] = static_cast<uint8_t>(b >> 8);
            lo[d] = static_cast<uint8_t>(b);
          }
        }
        hi += D;
        lo += D;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CompressBf16Planes(const uint8_t* planes, size_t size, int level,
                                std::string* payload) {
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
    return absl::InvalidArgumentError(absl::StrCat("zstd level ", level, " is outside [",
                                                   ZSTD_minCLevel(), ", ", ZSTD_maxCLevel(), "]"));
  }
  ZSTD_CCtx* cctx = ThreadCctx();
  if (cctx == nullptr) return absl::ResourceExhaustedError("cannot create a zstd context");
  payload->resize(kKvHeaderBytes + ZSTD_compressBound(size));
  auto* out = reinterpret_cast<uint8_t*>(payload->data());
  WriteKvHeader(out, KvCodecId::kLossless, 0);
  const size_t written = ZSTD_compressCCtx(cctx, out + kKvHeaderBytes,
                                           payload->size() - kKvHeaderBytes, planes, size, level);
  if (ZSTD_isError(written)) {
    return absl::InternalError(
        absl::StrCat("zstd compression failed: ", ZSTD_getErrorName(written)));
  }
  payload->resize(kKvHeaderBytes + written);
  return absl::OkStatus();
}

absl::Status EncodeLosslessChunk(const KvLayerView& layer, const KvChunkExtent& extent, int level,
                                 std::string* payload) {
  if (absl::Status s = kvcodec_internal::CheckView(layer, extent); !s.ok()) return s;
  std::vector<uint8_t>& planes = ThreadScratch();
  planes.resize(4 * static_cast<size_t>(DimsOf(extent).elements()));
  if (absl::Status s = SplitBf16Planes(layer, extent, planes.data()); !s.ok()) return s;
  return CompressBf16Planes(planes.data(), planes.size(), level, payload);
}

absl::Status DecodeLosslessChunk(std::string_view payload, int kv_heads, const KvChunkExtent& e,
                                 float* k, float* v) {
  if (absl::Status s = kvcodec_internal::CheckExtent(e, kv_heads); !s.ok()) return s;
  uint16_t param = 0;
  if (absl::Status s = kvcodec_internal::CheckHeader(payload, KvCodecId::kLossless, &param);
      !s.ok()) {
    return s;
  }
  if (param != 0) {
    return absl::DataLossError(
        absl::StrCat("LOSSLESS payload header parameter is ", param, ", must be 0"));
  }
  const int64_t n = DimsOf(e).elements();
  const size_t expected = 4 * static_cast<size_t>(n);
  const std::string_view frame = payload.substr(kKvHeaderBytes);
  // The frame must announce exactly the chunk's size (no decompression bomb), and end exactly
  // where the payload does.
  const unsigned long long content = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (content == ZSTD_CONTENTSIZE_ERROR) {
    return absl::DataLossError("LOSSLESS payload: not a zstd frame (corrupt or truncated)");
  }
  if (content == ZSTD_CONTENTSIZE_UNKNOWN || content != expected) {
    return absl::DataLossError(
        absl::StrCat("LOSSLESS payload: zstd frame holds ",
                     content == ZSTD_CONTENTSIZE_UNKNOWN ? std::string("an unknown number of")
                                                         : absl::StrCat(content),
                     " bytes, expected ", expected, " (4 planes of ", n, " elements)"));
  }
  const size_t frame_size = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_size)) {
    return absl::DataLossError(
        absl::StrCat("LOSSLESS payload: zstd frame is truncated or corrupt (",
                     ZSTD_getErrorName(frame_size), ")"));
  }
  if (frame_size != frame.size()) {
    return absl::DataLossError(absl::StrCat("LOSSLESS payload: ", frame.size() - frame_size,
                                            " trailing bytes after the zstd frame"));
  }
  ZSTD_DCtx* dctx = ThreadDctx();
  if (dctx == nullptr) return absl::ResourceExhaustedError("cannot create a zstd context");
  std::vector<uint8_t>& planes = ThreadScratch();
  planes.resize(expected);
  const size_t got =
      ZSTD_decompressDCtx(dctx, planes.data(), planes.size(), frame.data(), frame.size());
  if (ZSTD_isError(got)) {
    return absl::DataLossError(absl::StrCat("LOSSLESS payload: zstd decompression failed (",
                                            ZSTD_getErrorName(got), "): corrupt payload"));
  }
  if (got != expected) {
    return absl::DataLossError(
        absl::StrCat("LOSSLESS payload: decompressed to ", got, " bytes, expected ", expected));
  }
  const int D = e.head_dim;
  for (int which = 0; which < 2; ++which) {
    float* out = which == 0 ? k : v;
    const uint8_t* hi = planes.data() + (which == 0 ? 0 : 2 * n);
    const uint8_t* lo = hi + n;
    for (int64_t t = e.token_begin; t < e.token_end; ++t) {
      for (int h = e.head_begin; h < e.head_end; ++h) {
        float* dst = out + RowOffset(kv_heads, t, h, D);
        for (int d = 0; d < D; ++d) {
          dst[d] = std::bit_cast<float>(static_cast<uint32_t>(hi[d]) << 24 |
                                        static_cast<uint32_t>(lo[d]) << 16);
        }
        hi += D;
        lo += D;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sparsefill::kernels
