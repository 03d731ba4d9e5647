// KvAssembler: the checks of the KvChunk contract (prefill_service.proto) and the raw decoders.
#include "client/kv_assembler.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/kvcodec/crc32c.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::client {
namespace {

// "chunk 7 (layer 2, tokens [512,768), kv heads [0,8))": the prefix of every chunk error, so a
// message alone locates the bad chunk in a captured stream.
std::string ChunkLabel(const v1::KvChunk& chunk) {
  return absl::StrCat("chunk ", chunk.sequence(), " (layer ", chunk.layer(), ", tokens [",
                      chunk.token_begin(), ",", chunk.token_end(), "), kv heads [",
                      chunk.kv_head_begin(), ",", chunk.kv_head_end(), "))");
}

}  // namespace

bool IsDecodableCodec(v1::KvCodec codec) {
  return kernels::KvCodecFromNumber(static_cast<int>(codec)).ok();
}

absl::StatusOr<KvAssembler> KvAssembler::Create(const KvShape& shape, v1::KvCodec codec,
                                                std::string request_id, LayerCallback on_layer) {
  absl::StatusOr<KvAssembler> a = CreateUnstarted(shape, codec, std::move(request_id));
  if (!a.ok()) return a.status();
  a->on_layer_ = std::move(on_layer);
  a->BeginLayer();
  return a;
}

absl::StatusOr<KvAssembler> KvAssembler::CreateUnstarted(const KvShape& shape, v1::KvCodec codec,
                                                         std::string request_id) {
  if (shape.num_layers < 1 || shape.tokens < 1 || shape.kv_heads < 1 || shape.head_dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV shape must be positive: layers ", shape.num_layers, ", tokens ",
                     shape.tokens, ", kv heads ", shape.kv_heads, ", head_dim ", shape.head_dim));
  }
  if (!IsDecodableCodec(codec)) {
    return absl::InvalidArgumentError(absl::StrCat("KV codec ", v1::KvCodec_Name(codec),
                                                   " is not one this client decodes ",
                                                   kDecodableCodecsText));
  }
  KvAssembler a;
  a.shape_ = shape;
  a.codec_ = codec;
  a.request_id_ = std::move(request_id);
  return a;
}

absl::StatusOr<KvAssembler> KvAssembler::CreatePaged(const KvShape& shape, v1::KvCodec codec,
                                                     std::string request_id, PagedKvLayout layout,
                                                     PagedLayerCallback on_layer) {
  if (layout.tokens() != shape.tokens || layout.kv_heads() != shape.kv_heads ||
      layout.head_dim() != shape.head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("paged layout is for ", layout.tokens(), " tokens, ", layout.kv_heads(),
                     " kv heads, head_dim ", layout.head_dim(), "; the KV shape has ", shape.tokens,
                     ", ", shape.kv_heads, ", ", shape.head_dim));
  }
  absl::StatusOr<KvAssembler> a = CreateUnstarted(shape, codec, std::move(request_id));
  if (!a.ok()) return a.status();
  a->paged_ = std::move(layout);
  a->on_paged_layer_ = std::move(on_layer);
  a->BeginLayer();
  return a;
}

void KvAssembler::BeginLayer() {
  current_ = KvLayer{};
  current_.layer = layers_done_;
  current_.tokens = shape_.tokens;
  current_.kv_heads = shape_.kv_heads;
  current_.head_dim = shape_.head_dim;
  if (paged_.has_value()) {
    paged_current_ = PagedKvLayer{};
    paged_current_.layer = layers_done_;
    paged_current_.k.assign(paged_->cache_elements(), 0.0f);
    paged_current_.v.assign(paged_->cache_elements(), 0.0f);
  } else {
    current_.k.assign(shape_.elements_per_tensor(), 0.0f);
    current_.v.assign(shape_.elements_per_tensor(), 0.0f);
  }
  covered_.assign(shape_.tokens * shape_.kv_heads, 0);
  cells_covered_ = 0;
}

std::string KvAssembler::FirstUncoveredCell() const {
  for (size_t i = 0; i < covered_.size(); ++i) {
    if (covered_[i] == 0) {
      return absl::StrCat("token ", i / shape_.kv_heads, ", kv head ", i % shape_.kv_heads,
                          " not covered");
    }
  }
  return "all cells covered";
}

absl::Status KvAssembler::AddChunk(const v1::KvChunk& chunk) {
  if (!error_.ok()) return error_;
  absl::Status status = AddChunkImpl(chunk);
  if (!status.ok()) error_ = status;
  return status;
}

absl::Status KvAssembler::AddChunkImpl(const v1::KvChunk& chunk) {
  auto fail = [&chunk](auto&&... parts) {
    return absl::DataLossError(absl::StrCat(ChunkLabel(chunk), ": ", parts...));
  };

  if (layers_done_ == shape_.num_layers) {
    return fail("arrived after all ", shape_.num_layers, " layers were complete");
  }
  if (!request_id_.empty() && chunk.request_id() != request_id_) {
    return fail("request id '", absl::CHexEscape(chunk.request_id()), "', expected '",
                absl::CHexEscape(request_id_), "'");
  }
  if (chunk.sequence() != next_sequence_) {
    return fail("sequence out of order: expected ", next_sequence_,
                chunk.sequence() > next_sequence_ ? " (a chunk is missing or reordered)"
                                                  : " (a duplicate or reordered chunk)");
  }
  if (chunk.layer() != static_cast<uint32_t>(layers_done_)) {
    if (chunk.layer() < static_cast<uint32_t>(layers_done_)) {
      return fail("layer out of order: layer ", chunk.layer(), " is already complete (expected ",
                  "layer ", layers_done_, ")");
    }
    return fail("layer out of order: layer ", layers_done_, " is not complete (",
                FirstUncoveredCell(), ")");
  }
  if (chunk.head_dim() != static_cast<uint32_t>(shape_.head_dim)) {
    return fail("head_dim ", chunk.head_dim(), ", the model's is ", shape_.head_dim);
  }
  if (chunk.token_begin() >= chunk.token_end() ||
      chunk.token_end() > static_cast<uint64_t>(shape_.tokens)) {
    return fail("token range is empty or outside the prompt [0,", shape_.tokens, ")");
  }
  if (chunk.kv_head_begin() >= chunk.kv_head_end() ||
      chunk.kv_head_end() > static_cast<uint32_t>(shape_.kv_heads)) {
    return fail("kv head range is empty or outside the model's [0,", shape_.kv_heads, ")");
  }
  if (chunk.codec() != codec_) {
    return fail("codec ", v1::KvCodec_Name(chunk.codec()), ", requested ",
                v1::KvCodec_Name(codec_));
  }

  kernels::KvChunkExtent extent;
  extent.token_begin = static_cast<int64_t>(chunk.token_begin());
  extent.token_end = static_cast<int64_t>(chunk.token_end());
  extent.head_begin = static_cast<int>(chunk.kv_head_begin());
  extent.head_end = static_cast<int>(chunk.kv_head_end());
  extent.head_dim = shape_.head_dim;
  const kernels::KvCodecId codec = *kernels::KvCodecFromNumber(codec_);  // checked by Create
  const std::string& payload = chunk.payload();
  // Codecs whose size follows from the extent alone: a wrong size is reported before the
  // checksum, with the expected size. (LOSSLESS and INT4 sizes depend on the payload's own
  // header; their decoders check them.)
  if (codec != kernels::KvCodecId::kLossless && codec != kernels::KvCodecId::kInt4) {
    const size_t expected_bytes = kernels::MaxKvPayloadBytes(codec, extent);
    if (payload.size() != expected_bytes) {
      return fail("payload is ", payload.size(), " bytes, expected ", expected_bytes, " (",
                  v1::KvCodec_Name(codec_), ")");
    }
  }
  // The checksum is verified before anything is decoded or marked: a corrupt payload must not
  // leave half-written state behind (the error is sticky anyway, but the buffers stay clean).
  const uint32_t crc = kernels::Crc32c(payload.data(), payload.size());
  if (crc != chunk.payload_crc32c()) {
    return fail(absl::StrFormat("CRC32C mismatch (payload 0x%08x, header 0x%08x)", crc,
                                chunk.payload_crc32c()));
  }

  // Overlap: check every cell before marking any, so the message names the first collision.
  const int64_t kv_heads = shape_.kv_heads;
  for (int64_t t = extent.token_begin; t < extent.token_end; ++t) {
    for (int h = extent.head_begin; h < extent.head_end; ++h) {
      if (covered_[t * kv_heads + h] != 0) {
        return fail("overlaps an earlier chunk at token ", t, ", kv head ", h);
      }
    }
  }
  // The decoders check the whole payload before writing: on error the buffers stay clean.
  const absl::Status decoded =
      paged_.has_value() ? DecodeKvChunkToPages(codec, payload, extent, *paged_, &scratch_,
                                                paged_current_.k.data(), paged_current_.v.data())
                         : kernels::DecodeKvChunk(codec, payload, shape_.kv_heads, extent,
                                                  current_.k.data(), current_.v.data());
  if (!decoded.ok()) return fail(decoded.message());
  for (int64_t t = extent.token_begin; t < extent.token_end; ++t) {
    for (int h = extent.head_begin; h < extent.head_end; ++h) covered_[t * kv_heads + h] = 1;
  }
  cells_covered_ += (extent.token_end - extent.token_begin) * (extent.head_end - extent.head_begin);
  ++next_sequence_;
  payload_bytes_ += payload.size();

  const int64_t layer_cells = shape_.tokens * kv_heads;
  if (!chunk.last_in_layer()) {
    if (cells_covered_ == layer_cells) {
      return fail("completes the layer but last_in_layer is not set");
    }
    return absl::OkStatus();
  }
  if (cells_covered_ != layer_cells) {
    return fail("last_in_layer is set but ", layer_cells - cells_covered_, " of ", layer_cells,
                " (token, kv head) cells are missing (", FirstUncoveredCell(), ")");
  }
  KvLayer done = std::move(current_);
  PagedKvLayer paged_done = std::move(paged_current_);
  ++layers_done_;
  if (layers_done_ < shape_.num_layers) {
    BeginLayer();
  } else {
    current_ = KvLayer{};
    paged_current_ = PagedKvLayer{};
    covered_ = {};
    scratch_ = {};
  }
  if (paged_.has_value()) {
    return on_paged_layer_ ? on_paged_layer_(std::move(paged_done)) : absl::OkStatus();
  }
  return on_layer_ ? on_layer_(std::move(done)) : absl::OkStatus();
}

absl::Status KvAssembler::Finish() const {
  if (!error_.ok()) return error_;
  if (layers_done_ == shape_.num_layers) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "KV stream ended after ", layers_done_, " of ", shape_.num_layers, " layers (layer ",
      layers_done_, ": ",
      cells_covered_ == 0 ? std::string("no chunks received") : FirstUncoveredCell(), ")"));
}

}  // namespace sparsefill::client
