// Turns each layer's KV (worker::LayerKv, host memory) into KvChunk messages for the wire: the
// layer is split by token ranges so every payload stays within max_chunk_bytes (at least one
// token per chunk; the codec's worst-case size decides), each payload is encoded with the
// request's codec (kernels/kvcodec/kv_codec.h), and carries its CRC32C. Sequence numbers run over
// the whole request. For now every chunk covers all KV heads of the layer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/kvcodec/payload_layout.h"
#include "sparsefill/v1/prefill_service.pb.h"
#include "worker/kv_sink.h"

namespace sparsefill::server {

struct TokenRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool operator==(const TokenRange&) const = default;
};

// Token ranges tiling [0, tokens) in order, each holding as many tokens as fit in
// max_chunk_bytes at bytes_per_token (at least one), the last one possibly shorter.
std::vector<TokenRange> PlanChunkTokenRanges(int64_t tokens, int64_t bytes_per_token,
                                             int64_t max_chunk_bytes);

// Token ranges tiling [0, tokens) in order, `tokens_per_chunk` (>= 1) each, the last one possibly
// shorter.
std::vector<TokenRange> SplitTokenRanges(int64_t tokens, int64_t tokens_per_chunk);

class KvChunkSink : public worker::KvSink {
 public:
  struct Options {
    std::string request_id;
    v1::KvCodec codec = v1::KV_CODEC_RAW_BF16;  // any codec but UNSPECIFIED
    // The resolved bound (EffectiveMaxChunkBytes), not the request's raw field.
    int64_t max_chunk_bytes = int64_t{1} << 20;
    int int4_group_tokens = kernels::kDefaultInt4GroupTokens;  // KV_CODEC_INT4's G
  };
  // Takes each message in sending order. May block (the stream's backpressure); a non-OK status
  // (e.g. Cancelled: the client went away) stops the prefill at this layer.
  using Emit = std::function<absl::Status(std::unique_ptr<v1::PrefillResponse> message)>;

  KvChunkSink(Options options, Emit emit);

  // How many chunks each layer of `tokens` x `kv_heads` x `head_dim` becomes.
  static int64_t ChunksPerLayer(const Options& options, int64_t tokens, int kv_heads, int head_dim);

  absl::Status OnLayerKv(const worker::LayerKv& kv) override;

  uint64_t chunks_sent() const { return chunks_sent_; }
  // Sum of payload sizes handed to Emit, and the size of the same KV as the runtime held it.
  uint64_t payload_bytes_sent() const { return payload_bytes_sent_; }
  uint64_t source_bytes() const { return source_bytes_; }

 private:
  const Options options_;
  const Emit emit_;
  uint64_t next_sequence_ = 0;
  uint64_t chunks_sent_ = 0;
  uint64_t payload_bytes_sent_ = 0;
  uint64_t source_bytes_ = 0;
};

}  // namespace sparsefill::server
