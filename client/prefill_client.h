// The sparsefill C++ SDK: what a decode node links to get a prompt's KV cache from a sparsefill
// server.
//
//   sparsefill::client::PrefillClient client("prefill.svc:50051");
//   sparsefill::client::PrefillCall call;
//   call.request = sparsefill::client::MakePrefillRequest(tokens, v1::KV_CODEC_RAW_BF16);
//   call.timeout = absl::Seconds(30);
//   absl::StatusOr<PrefillReply> reply = client.Prefill(call);   // all layers, then the result
//
// or, to consume each layer as it arrives (the KV of a long prompt need not sit in memory):
//
//   std::unique_ptr<PrefillStream> stream = client.StartPrefill(call, {
//       .on_layer = [&](KvLayer layer) { return cache.Store(std::move(layer)); }});
//   absl::Status status = stream->Await();   // stream->Cancel() from any thread stops it
//
// Every KvChunk goes through a KvAssembler (checksums, order, completeness; see
// kv_assembler.h), so a layer handed over is exactly what the server computed, decoded to float32.
// The layout of K and V comes from the server's ModelInfo, fetched on the first call and cached.
//
// Structure after gRPC's route_guide callback client: a class that owns the channel and stub,
// Make* helpers for messages, and one reactor class per streaming call with Await().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/kv_assembler.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"
#include "sparsefill/v1/prefill_service.grpc.pb.h"

namespace sparsefill::client {

// A prefill request for `tokens`. The SDK's defaults are the server's: bf16 KV and the model's
// sparse attention. An empty request_id is replaced by a random one when the call starts.
v1::PrefillRequest MakePrefillRequest(
    std::span<const int32_t> tokens, v1::KvCodec codec = v1::KV_CODEC_RAW_BF16,
    v1::AttentionMode attention = v1::ATTENTION_MODE_MODEL_SPARSE);

// A prefill with an inline per-head pattern config (the JSON formats in the .proto).
v1::PrefillRequest MakeInlinePatternRequest(std::span<const int32_t> tokens,
                                            std::string pattern_config_json,
                                            v1::KvCodec codec = v1::KV_CODEC_RAW_BF16);

// One Prefill call.
struct PrefillCall {
  v1::PrefillRequest request;
  // Deadline for the whole call, counted from its start (including the first ModelInfo lookup);
  // InfiniteDuration means none. Past it the call ends with DEADLINE_EXCEEDED and the server
  // stops the prefill at its next layer boundary.
  absl::Duration timeout = absl::InfiniteDuration();
};

// What a streaming consumer is told. Both run on a gRPC callback thread, one at a time, in
// stream order; the next message is not read until they return, so a slow consumer slows the
// server down (the stream's backpressure) rather than buffering without bound. Keep them short
// of long blocking waits (they hold a gRPC thread). They may call the stream's Cancel(), but
// must not Await() it or destroy it (both wait for the very reaction they are running in).
struct PrefillCallbacks {
  // Each layer once complete and verified, layers 0..N-1 in order, all before the result.
  // A non-OK return cancels the call and becomes Await()'s status.
  std::function<absl::Status(KvLayer layer)> on_layer;
  // Progress events (only when request.progress is set).
  std::function<void(const v1::Progress& progress)> on_progress;
};

// Transfer counters of one call, as seen by the client.
struct PrefillStats {
  uint64_t kv_chunks = 0;
  uint64_t kv_payload_bytes = 0;
  double wall_seconds = 0;      // from the call's start to the end of the stream
  double first_kv_seconds = 0;  // from the call's start to the first KvChunk; 0 if none
};

// The blocking call's answer: every layer's KV and the server's result.
struct PrefillReply {
  std::vector<KvLayer> layers;  // [num_layers]; empty with skip_kv
  v1::PrefillResult result;
  PrefillStats stats;
};

// One Prefill call in flight: a gRPC read reactor that verifies and reassembles the stream as
// it is read. Made by PrefillClient::StartPrefill.
class PrefillStream : public grpc::ClientReadReactor<v1::PrefillResponse> {
 public:
  // Cancels the call if it is still running and waits for it to end.
  ~PrefillStream() override;

  PrefillStream(const PrefillStream&) = delete;
  PrefillStream& operator=(const PrefillStream&) = delete;

  // Waits for the call to end. OK only when the stream held every layer (unless skip_kv), each
  // verified, and exactly one PrefillResult consistent with them. Otherwise: the server's gRPC
  // code (UNAVAILABLE, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...), DEADLINE_EXCEEDED, CANCELLED
  // after Cancel(), DATA_LOSS for a stream that breaks the contract, or on_layer's error.
  absl::Status Await();

  // Asks the call to stop (any thread, any time; a no-op once it has ended). Await() then
  // returns CANCELLED unless the call had already finished.
  void Cancel();

  // After Await() returned OK.
  const v1::PrefillResult& result() const { return result_; }
  // After Await() returned (any status).
  PrefillStats stats() const;

 private:
  friend class PrefillClient;

  PrefillStream(std::shared_ptr<v1::PrefillService::Stub> stub, v1::PrefillRequest request,
                PrefillCallbacks callbacks, absl::Duration timeout);
  // Makes the assembler (when KV is streamed), sets the deadline and starts the call.
  void Start(const v1::ModelInfoResponse& model, absl::Time deadline);
  // Ends a call that never reached the wire (e.g. ModelInfo failed).
  void FailBeforeStart(absl::Status status);

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  // One message of the stream; a non-OK status ends the call with it.
  absl::Status HandleResponse(const v1::PrefillResponse& response);
  absl::Status CheckResult(const v1::PrefillResult& result) const;
  void Complete(absl::Status status);

  // Held so the stub and its channel outlive the call even if the PrefillClient goes first.
  std::shared_ptr<v1::PrefillService::Stub> stub_;
  grpc::ClientContext context_;
  v1::PrefillRequest request_;
  v1::PrefillResponse response_;  // the read buffer
  PrefillCallbacks callbacks_;
  absl::Duration timeout_;

  // Touched only by the reactions (serialised by gRPC), read by the owner after Await().
  std::optional<KvAssembler> assembler_;
  v1::ModelInfoResponse model_;
  v1::PrefillResult result_;
  bool have_result_ = false;
  absl::Status stream_error_;  // the first contract violation or callback failure
  absl::Time start_time_;
  absl::Time first_kv_time_ = absl::InfinitePast();
  PrefillStats stats_;

  std::atomic<bool> cancel_requested_{false};
  // The end of the call: status_ is written once, before done_ is notified. A Notification (not
  // a Mutex) because the owner may destroy this object as soon as Await() returns, while the
  // gRPC thread that notified is still unwinding; Notification allows exactly that.
  absl::Status status_;
  absl::Notification done_;
};

class PrefillClient {
 public:
  // A client for `target` ("host:port", or any gRPC target URI) over an insecure channel.
  explicit PrefillClient(absl::string_view target);
  // A client over a channel made by the caller (credentials, interceptors, load balancing).
  explicit PrefillClient(std::shared_ptr<grpc::Channel> channel);

  // Asks the server which model it serves (and refreshes the cache Prefill uses).
  absl::StatusOr<v1::ModelInfoResponse> ModelInfo(absl::Duration timeout = absl::Seconds(10));

  // Runs a prefill and returns once the whole stream is received and verified. Memory: the
  // whole KV cache as float32 (use StartPrefill to consume it layer by layer instead).
  absl::StatusOr<PrefillReply> Prefill(const PrefillCall& call);

  // Starts a prefill whose layers go to `callbacks` as they arrive. Never null; errors
  // (including a failed first ModelInfo lookup) come out of Await(). The first call on a client
  // blocks for that lookup. The returned stream may outlive the client.
  std::unique_ptr<PrefillStream> StartPrefill(const PrefillCall& call, PrefillCallbacks callbacks);

  const std::string& target() const { return target_; }

 private:
  // The cached ModelInfo, fetched (within `deadline`, which is `timeout` after the call's start;
  // the timeout is for error messages) when there is none yet.
  absl::StatusOr<v1::ModelInfoResponse> CachedModelInfo(absl::Time deadline,
                                                        absl::Duration timeout);
  absl::StatusOr<v1::ModelInfoResponse> FetchModelInfo(absl::Time deadline, absl::Duration timeout);

  std::string target_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<v1::PrefillService::Stub> stub_;

  absl::Mutex mu_;
  std::optional<v1::ModelInfoResponse> model_info_ ABSL_GUARDED_BY(mu_);
};

}  // namespace sparsefill::client
