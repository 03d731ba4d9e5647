// LayerKv -> KvChunk messages (see kv_chunk_sink.h).
#include "server/kv_chunk_sink.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/kvcodec/crc32c.h"
#include "kernels/kvcodec/kv_codec.h"

namespace sparsefill::server {
namespace {

using kernels::ScalarType;

}  // namespace

std::vector<TokenRange> PlanChunkTokenRanges(int64_t tokens, int64_t bytes_per_token,
                                             int64_t max_chunk_bytes) {
  return SplitTokenRanges(
      tokens, std::max<int64_t>(1, max_chunk_bytes / std::max<int64_t>(1, bytes_per_token)));
}

std::vector<TokenRange> SplitTokenRanges(int64_t tokens, int64_t tokens_per_chunk) {
  std::vector<TokenRange> ranges;
  if (tokens <= 0) return ranges;
  const int64_t per_chunk = std::max<int64_t>(1, tokens_per_chunk);
  ranges.reserve(static_cast<size_t>((tokens + per_chunk - 1) / per_chunk));
  for (int64_t begin = 0; begin < tokens; begin += per_chunk) {
    ranges.push_back({begin, std::min(tokens, begin + per_chunk)});
  }
  return ranges;
}

KvChunkSink::KvChunkSink(Options options, Emit emit)
    : options_(std::move(options)), emit_(std::move(emit)) {}

int64_t KvChunkSink::ChunksPerLayer(const Options& options, int64_t tokens, int kv_heads,
                                    int head_dim) {
  absl::StatusOr<kernels::KvCodecId> codec = kernels::KvCodecFromNumber(options.codec);
  if (!codec.ok() || tokens <= 0) return 0;
  kernels::KvEncodeOptions encode_options;
  encode_options.int4_group_tokens = options.int4_group_tokens;
  const int64_t per_chunk = kernels::MaxTokensPerChunk(*codec, tokens, kv_heads, head_dim,
                                                       options.max_chunk_bytes, encode_options);
  return (tokens + per_chunk - 1) / per_chunk;
}

absl::Status KvChunkSink::OnLayerKv(const worker::LayerKv& kv) {
  if (kv.dtype != ScalarType::kFloat32 && kv.dtype != ScalarType::kBFloat16) {
    return absl::InternalError(absl::StrCat("layer ", kv.layer, ": the backend exported KV as ",
                                            kernels::ScalarName(kv.dtype),
                                            "; the codecs take F32 or BF16"));
  }
  if (kv.tokens <= 0 || kv.kv_heads <= 0 || kv.head_dim <= 0 || kv.k == nullptr ||
      kv.v == nullptr) {
    return absl::InternalError(absl::StrCat("layer ", kv.layer, ": empty or malformed KV export"));
  }
  absl::StatusOr<kernels::KvCodecId> codec = kernels::KvCodecFromNumber(options_.codec);
  if (!codec.ok()) {
    return absl::InternalError(absl::StrCat("KV chunk sink: ", codec.status().message()));
  }
  kernels::KvEncodeOptions encode_options;
  encode_options.int4_group_tokens = options_.int4_group_tokens;
  const kernels::KvLayerView view{kv.k, kv.v, kv.dtype, kv.kv_heads, kv.tokens};
  source_bytes_ += 2 * static_cast<uint64_t>(kv.tokens) * kv.kv_heads * kv.head_dim *
                   kernels::ScalarSize(kv.dtype);

  // As many tokens per chunk as the codec's worst-case payload size allows.
  const std::vector<TokenRange> ranges = SplitTokenRanges(
      kv.tokens, kernels::MaxTokensPerChunk(*codec, kv.tokens, kv.kv_heads, kv.head_dim,
                                            options_.max_chunk_bytes, encode_options));
  for (size_t i = 0; i < ranges.size(); ++i) {
    kernels::KvChunkExtent extent;
    extent.token_begin = ranges[i].begin;
    extent.token_end = ranges[i].end;
    extent.head_begin = 0;
    extent.head_end = kv.kv_heads;
    extent.head_dim = kv.head_dim;

    auto message = std::make_unique<v1::PrefillResponse>();
    v1::KvChunk* chunk = message->mutable_kv_chunk();
    chunk->set_request_id(options_.request_id);
    chunk->set_sequence(next_sequence_);
    chunk->set_layer(static_cast<uint32_t>(kv.layer));
    chunk->set_token_begin(static_cast<uint64_t>(extent.token_begin));
    chunk->set_token_end(static_cast<uint64_t>(extent.token_end));
    chunk->set_kv_head_begin(0);
    chunk->set_kv_head_end(static_cast<uint32_t>(kv.kv_heads));
    chunk->set_head_dim(static_cast<uint32_t>(kv.head_dim));
    chunk->set_codec(options_.codec);
    chunk->set_last_in_layer(i + 1 == ranges.size());
    // Encode straight into the message's payload: no intermediate copy.
    std::string* payload = chunk->mutable_payload();
    if (absl::Status s = kernels::EncodeKvChunk(*codec, view, extent, encode_options, payload);
        !s.ok()) {
      // The request was valid; KV the codec cannot take (e.g. non-finite values for a quantizing
      // codec) is this request's worker failure.
      return absl::InternalError(absl::StrCat("encoding KV of layer ", kv.layer, ", tokens [",
                                              extent.token_begin, ",", extent.token_end,
                                              "): ", s.message()));
    }
    const size_t payload_bytes = payload->size();
    chunk->set_payload_crc32c(kernels::Crc32c(payload->data(), payload->size()));

    if (absl::Status s = emit_(std::move(message)); !s.ok()) return s;
    ++next_sequence_;
    ++chunks_sent_;
    payload_bytes_sent_ += payload_bytes;
  }
  return absl::OkStatus();
}

}  // namespace sparsefill::server
