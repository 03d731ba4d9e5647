// One Prefill call: a grpc::ServerWriteReactor that validates and admits the request, runs the
// prefill as a WorkerPool job, and streams Progress, KvChunk and PrefillResult messages.
//
// Threads. Reactions (OnWriteDone, OnCancel, OnDone) run on gRPC's callback threads, possibly
// concurrently with each other and with the job on a worker thread; all shared state is under
// mu_.
//
// Streaming and backpressure. The worker hands each message to Send(), which appends it to an
// outbox; at most one write is in flight, and the next one starts from OnWriteDone. When the
// outbox plus the message being written exceed CallEnvironment::max_buffered_bytes_per_call,
// Send() blocks the worker (inside KvSink::OnLayerKv) until the client has read enough, so a slow
// client slows its own prefill and memory stays bounded. Cancellation wakes it with Cancelled.
//
// Cancellation and deadlines. gRPC reports both through OnCancel: a queued job is removed from
// the pool at once (freeing its place); a running one sees should_stop at the next layer
// boundary or wakes from Send() with Cancelled.
//
// Lifetime. Finish is called exactly once: after the job completed (or never ran because the
// request was rejected or cancelled while queued) and the outbox is written or dropped. The
// object is reference counted by gRPC (until OnDone) and by the job (until the job returns), so
// the worker may touch it right up to its last line even while OnDone runs; the last holder
// deletes it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/kv_pusher.h"
#include "server/logger.h"
#include "server/request_validation.h"
#include "server/server_metrics.h"
#include "server/worker_pool.h"
#include "sparsefill/v1/prefill_service.pb.h"
#include "worker/model.h"

namespace sparsefill::server {

// What every call shares; owned by the server and outliving every call.
struct CallEnvironment {
  std::shared_ptr<const worker::Model> model;  // limits and ModelInfo come from this one
  // What worker i prefills on: one model per GPU, or the same model for every CPU worker.
  std::vector<std::shared_ptr<const worker::Model>> worker_models;
  RequestLimits limits;
  int64_t max_buffered_bytes_per_call = int64_t{8} << 20;
  WorkerPool* pool = nullptr;
  ServerMetrics* metrics = nullptr;
  Logger log{"prefill"};
  // Set when shutdown begins: calls that still arrive get UNAVAILABLE.
  std::atomic<bool> shutting_down{false};
  // Numbers the server's own request ids ("srv-N") for calls without a usable client id.
  std::atomic<uint64_t> next_call_number{1};
  // Workers currently blocked on a slow client (also exported as a gauge).
  std::atomic<int> waiting_on_client{0};
};

class PrefillCall final : public grpc::ServerWriteReactor<v1::PrefillResponse> {
 public:
  // Creates the reactor for one call, validates and admits the request (or finishes the call at
  // once with the rejection). The returned reactor is owned by gRPC and the job.
  static PrefillCall* Start(CallEnvironment* env, grpc::CallbackServerContext* context,
                            const v1::PrefillRequest* request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  using Clock = std::chrono::steady_clock;

  // A message queued for the client.
  struct Outgoing {
    std::unique_ptr<v1::PrefillResponse> message;
    int64_t bytes = 0;             // serialized size: what the buffer bound counts
    int64_t kv_payload_bytes = 0;  // KvChunk payload, for the bytes-sent counter
  };
  enum class Phase { kNotAdmitted, kQueued, kRunning, kDone };

  PrefillCall(CallEnvironment* env, grpc::CallbackServerContext* context,
              const v1::PrefillRequest* request);
  ~PrefillCall() override = default;

  void Admit();

  // The job, on a worker thread.
  void RunOnWorker(int worker);
  absl::Status RunPrefill(const worker::Model& model, std::unique_ptr<v1::PrefillResponse>* result);
  std::unique_ptr<v1::PrefillResponse> MakeProgress(int layers_done) const;
  // Queues a message for the client, blocking while the call's buffer is over its bound; returns
  // Cancelled once the call is cancelled.
  absl::Status Send(std::unique_ptr<v1::PrefillResponse> message);
  // The job's last step: the result (when OK) and the final status.
  void CompleteFromWorker(const absl::Status& status, std::unique_ptr<v1::PrefillResponse> result);

  // Starts the next write, or finishes the call when everything that will be sent was sent.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkCancelledLocked(absl::StatusCode code) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CanBufferLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // DEADLINE_EXCEEDED when the call's deadline has (about) passed, else CANCELLED.
  absl::StatusCode CancellationCode() const;

  void Unref();

  CallEnvironment* const env_;
  grpc::CallbackServerContext* const context_;
  const v1::PrefillRequest* const request_;  // owned by gRPC, valid until OnDone
  const Clock::time_point received_;
  std::string log_id_;  // the client's request id, or the server's own

  // Written before the job is submitted, read-only afterwards.
  ValidatedRequest validated_;
  // Worker-thread only.
  std::optional<Clock::time_point> first_kv_time_;

  // Polled by the prefill before each layer (no lock on that path).
  std::atomic<bool> stop_{false};
  // gRPC's reference (dropped in OnDone) and the job's (dropped when the job is done with us).
  std::atomic<int> refs_{2};

  mutable absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kNotAdmitted;
  WorkerPool::JobId job_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Outgoing> outbox_ ABSL_GUARDED_BY(mu_);
  Outgoing in_flight_ ABSL_GUARDED_BY(mu_);          // message set while a write is in flight
  int64_t buffered_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // outbox + in flight
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::StatusCode cancel_code_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kCancelled;
  bool worker_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  // Push mode: the running push, so OnCancel can abort a push blocked on its receiver.
  KvPusher* pusher_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace sparsefill::server
