// The KvReceiver service a decode node embeds for push mode (prefill_service.proto): a prefill
// server pushes a request's KV to it, chunk by chunk, and reconnects after a dropped connection;
// this service keeps one KvAssembler per session, so every chunk is verified (CRC32C, order,
// shape, codec) and decoded exactly once: a chunk below the session's next sequence (resent after
// a reconnect) is acknowledged and ignored. A chunk that fails verification ends the stream with
// DATA_LOSS, which the server does not retry.
//
//   KvReceiverService receiver({.on_complete = [](KvReceiverService::Session s) { ... }});
//   grpc::ServerBuilder builder;
//   builder.AddListeningPort("0.0.0.0:50052", grpc::InsecureServerCredentials());
//   builder.RegisterService(&receiver);
//
// A completed session's KV is handed to on_complete; the session itself stays as a small record
// (so a late reconnection of its pusher is told "complete"), an incomplete one until its pusher
// resumes it. With Options::paged_layout set, a session's KV is assembled into paged blocks in
// the vLLM layout instead ([num_blocks, block_size, kv_heads, head_dim] per layer, with the block
// size and block table the decode node chooses for that session; client/paged_kv_layout.h) and
// handed over in Session::paged_layers. Not yet: expiry of sessions whose pusher gave up.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/kv_assembler.h"
#include "client/paged_kv_layout.h"
#include "grpcpp/grpcpp.h"
#include "sparsefill/v1/prefill_service.grpc.pb.h"

namespace sparsefill::client {

class KvReceiverService final : public v1::KvReceiver::Service {
 public:
  // One pushed request's KV, complete.
  struct Session {
    std::string session_id;
    std::string request_id;
    KvShape shape;
    v1::KvCodec codec = v1::KV_CODEC_UNSPECIFIED;
    std::vector<KvLayer> layers;  // decoded to float32, layer order (empty when paged)
    // With Options::paged_layout: each layer's K and V caches in `paged_layout` (else empty).
    std::vector<PagedKvLayer> paged_layers;
    std::optional<PagedKvLayout> paged_layout;
    v1::PrefillResult result;
  };

  struct Options {
    std::function<void(Session)> on_complete;
    // Paged assembly: called once per session, when its first stream arrives, with the pushed
    // header (shape, request id); returns the layout (block size, block table) to assemble that
    // session into. An error status ends the stream with it (InvalidArgument for a bad block size
    // or a too-small table). Unset: per-layer tensors. Called under the receiver's lock: keep it
    // quick.
    std::function<absl::StatusOr<PagedKvLayout>(const v1::KvPushHeader& header)> paged_layout;
    // Fault injection for tests: called before a chunk is applied; returning true ends the
    // stream with UNAVAILABLE instead (as if the connection dropped).
    std::function<bool(const std::string& session_id, uint64_t sequence)> drop_before_chunk;
  };

  explicit KvReceiverService(Options options);

  grpc::Status PushKv(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<v1::KvPushAck, v1::KvPushRequest>* stream) override;

  // Streams opened (every connection attempt) and chunks applied, over all sessions.
  int64_t streams_opened() const;
  int64_t chunks_applied() const;

 private:
  struct SessionState {
    absl::Mutex mu;  // one stream at a time applies this session's chunks
    v1::KvPushHeader header;
    std::unique_ptr<KvAssembler> assembler;
    Session done;  // layers collected so far
    bool complete = false;
  };

  // The session named by `header`, created on first sight; InvalidArgument when a known session
  // arrives with a different shape or codec.
  absl::StatusOr<std::shared_ptr<SessionState>> GetSession(const v1::KvPushHeader& header);

  const Options options_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<SessionState>> sessions_ ABSL_GUARDED_BY(mu_);
  int64_t streams_opened_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t chunks_applied_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace sparsefill::client
