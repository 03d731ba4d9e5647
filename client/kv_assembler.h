// Reassembles a Prefill stream's KvChunk messages into per-layer float32 K and V tensors, and
// checks everything the wire contract promises on the way: the request id, consecutive sequence
// numbers, layers in order, ranges inside the model's shape, chunks that tile each layer exactly
// (no overlap, full coverage by last_in_layer), the requested codec, the payload size and its
// CRC32C, and the codec's own payload checks (header, size, parameters). A violation is reported
// as absl::DataLossError naming the chunk, e.g.
//   chunk 7 (layer 2, tokens [512,768), kv heads [0,8)): CRC32C mismatch (...)
// and the assembler then refuses further input: a corrupt stream has no trustworthy suffix.
//
// It assembles into per-layer tensors [tokens, kv_heads, head_dim] (Create) or into paged blocks
// in the vLLM layout [num_blocks, block_size, kv_heads, head_dim] (CreatePaged, with a
// PagedKvLayout: block size and optional block table; client/paged_kv_layout.h); the checks are
// the same either way.
//
// It is transport-free (no gRPC), so decode nodes and tests can feed it from anywhere.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/paged_kv_layout.h"
#include "sparsefill/v1/prefill_service.pb.h"

namespace sparsefill::client {

// The shape of a request's KV cache: the model's layers and KV heads (from ModelInfo) and the
// prompt's length.
struct KvShape {
  int num_layers = 0;
  int64_t tokens = 0;
  int kv_heads = 0;
  int head_dim = 0;

  int64_t elements_per_tensor() const { return tokens * kv_heads * head_dim; }
};

// One layer's KV cache, decoded to float32 whatever the wire codec. K is after RoPE.
struct KvLayer {
  int layer = 0;
  int64_t tokens = 0;
  int kv_heads = 0;
  int head_dim = 0;
  std::vector<float> k;  // [tokens, kv_heads, head_dim], row-major
  std::vector<float> v;  // [tokens, kv_heads, head_dim], row-major
};

// The codecs this SDK decodes: all of them (RAW_BF16, RAW_FP32, LOSSLESS, FP8_E4M3, INT8, INT4;
// kernels/kvcodec/kv_codec.h). UNSPECIFIED is not one of them: a request must name what it
// expects, because the server resolves UNSPECIFIED by its own default.
bool IsDecodableCodec(v1::KvCodec codec);
inline constexpr char kDecodableCodecsText[] =
    "(KV_CODEC_RAW_BF16, KV_CODEC_RAW_FP32, KV_CODEC_LOSSLESS, KV_CODEC_FP8_E4M3, KV_CODEC_INT8, "
    "KV_CODEC_INT4)";

class KvAssembler {
 public:
  // Receives each completed layer (ownership passes to the callee), in order 0, 1, ...
  // A non-OK return stops the assembler and is returned from the AddChunk that completed the
  // layer.
  using LayerCallback = std::function<absl::Status(KvLayer layer)>;

  // `request_id` is what every chunk must carry (empty: not checked); `codec` what they must be
  // encoded with. InvalidArgument for a shape or codec this assembler cannot work with.
  static absl::StatusOr<KvAssembler> Create(const KvShape& shape, v1::KvCodec codec,
                                            std::string request_id, LayerCallback on_layer);

  // Paged assembly: each completed layer arrives as K and V caches in `layout` (whose tokens, kv
  // heads and head_dim must be the shape's: InvalidArgument otherwise).
  using PagedLayerCallback = std::function<absl::Status(PagedKvLayer layer)>;
  static absl::StatusOr<KvAssembler> CreatePaged(const KvShape& shape, v1::KvCodec codec,
                                                 std::string request_id, PagedKvLayout layout,
                                                 PagedLayerCallback on_layer);

  KvAssembler(KvAssembler&&) = default;
  KvAssembler& operator=(KvAssembler&&) = default;

  // Checks and decodes one chunk; when it is the last of its layer, hands the layer over.
  absl::Status AddChunk(const v1::KvChunk& chunk);

  // The stream has ended (the PrefillResult arrived, or the transport closed): OK only when all
  // layers are complete; otherwise DataLoss saying what is missing.
  absl::Status Finish() const;

  int layers_done() const { return layers_done_; }
  uint64_t chunks_received() const { return next_sequence_; }
  uint64_t payload_bytes_received() const { return payload_bytes_; }
  const KvShape& shape() const { return shape_; }

 private:
  KvAssembler() = default;

  // Checks the shape and codec; the caller sets the output mode and calls BeginLayer.
  static absl::StatusOr<KvAssembler> CreateUnstarted(const KvShape& shape, v1::KvCodec codec,
                                                     std::string request_id);

  absl::Status AddChunkImpl(const v1::KvChunk& chunk);
  // Starts the buffers and coverage map of layer `layers_done_`.
  void BeginLayer();
  // The first (token, kv head) cell of the current layer no chunk has covered, as text.
  std::string FirstUncoveredCell() const;

  KvShape shape_;
  v1::KvCodec codec_ = v1::KV_CODEC_UNSPECIFIED;
  std::string request_id_;
  LayerCallback on_layer_;
  // Paged mode when set: chunks decode through `scratch_` into `paged_current_`, and current_
  // holds no tensors.
  std::optional<PagedKvLayout> paged_;
  PagedLayerCallback on_paged_layer_;
  PagedKvLayer paged_current_;
  std::vector<float> scratch_;

  absl::Status error_;  // sticky: once a chunk is bad, the stream is
  int layers_done_ = 0;
  uint64_t next_sequence_ = 0;
  uint64_t payload_bytes_ = 0;

  // The layer being assembled: its decoded tensors and which (token, kv head) cells are filled
  // (one byte per cell: the overlap and coverage checks, independent of how the server splits).
  KvLayer current_;
  std::vector<uint8_t> covered_;
  int64_t cells_covered_ = 0;
};

}  // namespace sparsefill::client
