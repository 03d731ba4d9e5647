// The Prefill reactor (see prefill_call.h for threads, backpressure and lifetime).
#include "server/prefill_call.h"

#include <exception>
#include <new>
#include <span>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/kv_chunk_sink.h"
#include "server/kv_pusher.h"
#include "server/status_conversion.h"

namespace sparsefill::server {
namespace {

double SecondsBetween(std::chrono::steady_clock::time_point a,
                      std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A client id is usable in logs when it passes validation's rules; otherwise the server's own.
bool UsableRequestId(const std::string& id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (const char c : id) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// The KV sink of one call: a Progress event (when requested) before each layer's chunks.
class CallKvSink : public worker::KvSink {
 public:
  CallKvSink(bool progress, std::function<absl::Status(int)> send_progress, KvChunkSink* chunks)
      : progress_(progress), send_progress_(std::move(send_progress)), chunks_(chunks) {}

  absl::Status OnLayerKv(const worker::LayerKv& kv) override {
    if (progress_) {
      if (absl::Status s = send_progress_(kv.layer + 1); !s.ok()) return s;
    }
    return chunks_->OnLayerKv(kv);
  }

 private:
  const bool progress_;
  const std::function<absl::Status(int)> send_progress_;
  KvChunkSink* const chunks_;
};

}  // namespace

PrefillCall* PrefillCall::Start(CallEnvironment* env, grpc::CallbackServerContext* context,
                                const v1::PrefillRequest* request) {
  auto* call = new PrefillCall(env, context, request);
  call->Admit();
  return call;
}

PrefillCall::PrefillCall(CallEnvironment* env, grpc::CallbackServerContext* context,
                         const v1::PrefillRequest* request)
    : env_(env), context_(context), request_(request), received_(Clock::now()) {
  log_id_ =
      UsableRequestId(request->request_id())
          ? request->request_id()
          : absl::StrCat("srv-", env->next_call_number.fetch_add(1, std::memory_order_relaxed));
}

void PrefillCall::Admit() {
  absl::Status rejection;
  if (env_->shutting_down.load()) {
    rejection = absl::UnavailableError("the server is shutting down and takes no new requests");
  } else if (absl::StatusOr<ValidatedRequest> v = ValidatePrefillRequest(*request_, env_->limits);
             !v.ok()) {
    rejection = v.status();
  } else {
    validated_ = *std::move(v);
    // Counted before Submit: the job may start (and decrement) before Submit returns.
    env_->metrics->queue_depth().Increment();
    env_->metrics->requests_in_flight().Increment();
    absl::MutexLock lock(&mu_);
    phase_ = Phase::kQueued;
    // Submit under mu_: a job that starts at once waits for job_id_ to be recorded before it
    // sets its phase, so OnCancel never sees a stale id. The job itself never takes the pool's
    // lock while holding mu_, so the order mu_ -> pool is the only one.
    absl::StatusOr<WorkerPool::JobId> id =
        env_->pool->Submit([this](int worker) { RunOnWorker(worker); });
    if (id.ok()) {
      job_id_ = *id;
      env_->log.Info(
          log_id_,
          absl::StrFormat(
              "admitted: %d tokens, %s, %s, max_chunk_bytes %d%s%s%s", request_->token_ids_size(),
              v1::AttentionMode_Name(validated_.attention_mode),
              v1::KvCodec_Name(validated_.kv_codec), validated_.max_chunk_bytes,
              request_->skip_kv() ? ", skip_kv" : "", request_->progress() ? ", progress" : "",
              request_->return_logits() ? ", return_logits" : ""));
      return;
    }
    phase_ = Phase::kNotAdmitted;
    env_->metrics->queue_depth().Decrement();
    env_->metrics->requests_in_flight().Decrement();
    rejection = id.status();
  }

  // Rejected: no job will ever hold a reference, and the call finishes now.
  env_->log.Log(
      rejection.code() == absl::StatusCode::kInvalidArgument ? LogLevel::kInfo : LogLevel::kWarning,
      log_id_,
      absl::StrCat("rejected: ", GrpcCodeName(rejection.code()), ": ", rejection.message()));
  refs_.fetch_sub(1, std::memory_order_acq_rel);  // gRPC's reference remains: no delete here
  absl::MutexLock lock(&mu_);
  worker_done_ = true;
  final_status_ = rejection;
  PumpLocked();
}

void PrefillCall::RunOnWorker(int worker) {
  const Clock::time_point start = Clock::now();
  {
    absl::MutexLock lock(&mu_);
    phase_ = Phase::kRunning;
  }
  ServerMetrics& metrics = *env_->metrics;
  metrics.queue_depth().Decrement();
  metrics.queue_seconds().Observe(SecondsBetween(received_, start));
  metrics.worker_busy(worker).Increment();

  std::unique_ptr<v1::PrefillResponse> result;
  const auto& models = env_->worker_models;
  const absl::Status status = RunPrefill(*models[static_cast<size_t>(worker) % models.size()], &result);

  metrics.worker_busy(worker).Decrement();
  CompleteFromWorker(status, std::move(result));
  Unref();  // the job's reference; nothing below may touch this object
}

absl::Status PrefillCall::RunPrefill(const worker::Model& model,
                                     std::unique_ptr<v1::PrefillResponse>* result) {
  const v1::PrefillRequest& request = *request_;
  const Clock::time_point start = Clock::now();

  // Start event. A failed send means the call is cancelled; should_stop then stops the prefill
  // before its first layer, which reports it.
  if (request.progress()) (void)Send(MakeProgress(0));

  const KvChunkSink::Options chunk_options{request.request_id(), validated_.kv_codec,
                                           validated_.max_chunk_bytes,
                                           validated_.int4_group_tokens};
  // Push mode: the chunks go to the decode node's KvReceiver instead of this stream.
  std::unique_ptr<KvPusher> pusher;
  if (request.has_kv_push() && !request.skip_kv()) {
    const worker::ModelConfig& c = model.config();
    KvPusher::Options push;
    push.endpoint = request.kv_push().endpoint();
    v1::KvPushHeader& h = push.header;
    h.set_session_id(request.kv_push().session_id());
    h.set_request_id(request.request_id());
    h.set_num_layers(static_cast<uint32_t>(c.num_layers));
    h.set_tokens(static_cast<uint64_t>(request.token_ids_size()));
    h.set_kv_heads(static_cast<uint32_t>(c.num_kv_heads));
    h.set_head_dim(static_cast<uint32_t>(c.head_dim));
    h.set_codec(validated_.kv_codec);
    h.set_total_chunks(static_cast<uint64_t>(
        c.num_layers * KvChunkSink::ChunksPerLayer(chunk_options, request.token_ids_size(),
                                                   c.num_kv_heads, c.head_dim)));
    push.should_stop = [this] { return stop_.load(std::memory_order_relaxed); };
    pusher = std::make_unique<KvPusher>(std::move(push));
    absl::MutexLock lock(&mu_);
    pusher_ = pusher.get();
    if (cancelled_) pusher_->Cancel();
  }
  // Unpublished before the pusher is destroyed, whichever way this function returns.
  struct Unpublish {
    PrefillCall* call;
    ~Unpublish() {
      absl::MutexLock lock(&call->mu_);
      call->pusher_ = nullptr;
    }
  } unpublish{this};
  KvChunkSink chunks(chunk_options, [this, &pusher](std::unique_ptr<v1::PrefillResponse> m) {
    if (pusher != nullptr) {
      const v1::KvChunk& chunk = m->kv_chunk();
      if (absl::Status s = pusher->Push(chunk); !s.ok()) {
        if (!absl::IsCancelled(s)) env_->metrics->kv_push_failures().Increment();
        return s;
      }
      if (!first_kv_time_) {  // worker thread only, as in Send()
        first_kv_time_ = Clock::now();
        env_->metrics->time_to_first_kv_seconds().Observe(
            SecondsBetween(received_, *first_kv_time_));
      }
      env_->metrics->kv_bytes_sent().Increment(static_cast<double>(chunk.payload().size()));
      return absl::OkStatus();
    }
    return Send(std::move(m));
  });
  CallKvSink sink(
      request.progress(), [this](int layers_done) { return Send(MakeProgress(layers_done)); },
      &chunks);

  worker::PrefillOptions options;
  switch (validated_.attention_mode) {
    case v1::ATTENTION_MODE_DENSE:
      options.patterns = nullptr;
      break;
    case v1::ATTENTION_MODE_INLINE:
      options.patterns = &*validated_.inline_patterns;
      break;
    default:
      options.patterns = &model.sparse_patterns();
      break;
  }
  if (request.skip_kv()) {
    // No export at all (on a GPU it would cost a device-to-host copy per layer); progress then
    // comes from the layer callback.
    if (request.progress()) {
      options.on_layer_done = [this](int done, int) { (void)Send(MakeProgress(done)); };
    }
  } else {
    options.kv_sink = &sink;
  }
  options.should_stop = [this] { return stop_.load(std::memory_order_relaxed); };

  const std::span<const int32_t> tokens(request.token_ids().data(),
                                        static_cast<size_t>(request.token_ids_size()));
  absl::StatusOr<worker::PrefillOutput> out;
  // The runtime reports errors as Status; an allocation failure inside the standard library
  // still throws. Catching it here keeps one oversized request from taking the server down.
  try {
    out = model.Prefill(tokens, options);
  } catch (const std::bad_alloc&) {
    out = absl::ResourceExhaustedError("host memory allocation failed");
  } catch (const std::exception& e) {
    out = absl::InternalError(absl::StrCat("exception in the prefill: ", e.what()));
  }
  if (!out.ok()) return out.status();

  const Clock::time_point end = Clock::now();
  ServerMetrics& metrics = *env_->metrics;
  metrics.prompt_tokens().Increment(static_cast<double>(tokens.size()));
  metrics.prefill_seconds().Observe(out->compute_seconds);
  metrics.kv_bytes_raw().Increment(static_cast<double>(chunks.source_bytes()));
  for (const double d : out->attention_density) metrics.attention_density().Observe(d);

  auto response = std::make_unique<v1::PrefillResponse>();
  v1::PrefillResult* r = response->mutable_result();
  r->set_request_id(request.request_id());
  r->set_first_token(out->first_token);
  r->set_first_token_logit(out->first_token_logit);
  r->set_prompt_tokens(tokens.size());
  r->set_num_layers(static_cast<uint32_t>(model.config().num_layers));
  v1::Timings* t = r->mutable_timings();
  t->set_queue_seconds(SecondsBetween(received_, start));
  t->set_compute_seconds(out->compute_seconds);
  t->set_total_seconds(SecondsBetween(received_, end));
  t->set_time_to_first_kv_seconds(first_kv_time_ ? SecondsBetween(received_, *first_kv_time_)
                                                 : 0.0);
  t->set_linear_seconds(out->stages.linear);
  t->set_attention_seconds(out->stages.attention);
  t->set_estimation_seconds(out->stages.estimation);
  t->set_kv_export_seconds(out->stages.kv_export);
  r->set_kv_bytes_sent(chunks.payload_bytes_sent());
  r->set_kv_chunks_sent(chunks.chunks_sent());
  for (const double d : out->attention_density) r->add_attention_density(d);
  r->set_attention_mode(validated_.attention_mode);
  r->set_kv_codec(validated_.kv_codec);
  if (request.return_logits()) {
    r->mutable_logits_last()->Assign(out->logits_last.begin(), out->logits_last.end());
  }
  if (pusher != nullptr) {
    // The decode node gets the result too (it completes its session); the caller gets it only
    // after the receiver acknowledged everything.
    if (absl::Status s = pusher->Finish(*r); !s.ok()) {
      if (!absl::IsCancelled(s)) env_->metrics->kv_push_failures().Increment();
      return s;
    }
  }
  *result = std::move(response);
  return absl::OkStatus();
}

std::unique_ptr<v1::PrefillResponse> PrefillCall::MakeProgress(int layers_done) const {
  auto message = std::make_unique<v1::PrefillResponse>();
  v1::Progress* p = message->mutable_progress();
  p->set_request_id(request_->request_id());
  p->set_layers_done(static_cast<uint32_t>(layers_done));
  p->set_num_layers(static_cast<uint32_t>(env_->model->config().num_layers));
  p->set_elapsed_seconds(SecondsBetween(received_, Clock::now()));
  return message;
}

bool PrefillCall::CanBufferLocked() const {
  return cancelled_ || buffered_bytes_ <= env_->max_buffered_bytes_per_call;
}

absl::Status PrefillCall::Send(std::unique_ptr<v1::PrefillResponse> message) {
  Outgoing out;
  out.bytes = static_cast<int64_t>(message->ByteSizeLong());
  if (message->has_kv_chunk()) {
    out.kv_payload_bytes = static_cast<int64_t>(message->kv_chunk().payload().size());
    if (!first_kv_time_) {
      first_kv_time_ = Clock::now();
      env_->metrics->time_to_first_kv_seconds().Observe(SecondsBetween(received_, *first_kv_time_));
    }
  }
  out.message = std::move(message);

  absl::MutexLock lock(&mu_);
  if (!CanBufferLocked()) {
    // Backpressure: the client has not read what is already queued. Wait for OnWriteDone (or
    // cancellation) with the lock released.
    env_->waiting_on_client.fetch_add(1);
    env_->metrics->requests_waiting_on_client().Increment();
    mu_.Await(absl::Condition(this, &PrefillCall::CanBufferLocked));
    env_->metrics->requests_waiting_on_client().Decrement();
    env_->waiting_on_client.fetch_sub(1);
  }
  if (cancelled_) {
    return absl::CancelledError("the call was cancelled (by the client or its deadline)");
  }
  buffered_bytes_ += out.bytes;
  outbox_.push_back(std::move(out));
  PumpLocked();
  return absl::OkStatus();
}

void PrefillCall::CompleteFromWorker(const absl::Status& status,
                                     std::unique_ptr<v1::PrefillResponse> result) {
  const absl::Status final_status = ClassifyWorkerError(status);
  if (final_status.code() == absl::StatusCode::kInternal) {
    env_->log.Error(log_id_, absl::StrCat("worker failure: ", final_status.message()));
  }
  absl::MutexLock lock(&mu_);
  phase_ = Phase::kDone;
  worker_done_ = true;
  final_status_ = final_status;
  if (final_status.ok() && result != nullptr) {
    Outgoing out;
    out.bytes = static_cast<int64_t>(result->ByteSizeLong());
    out.message = std::move(result);
    buffered_bytes_ += out.bytes;
    outbox_.push_back(std::move(out));
  }
  PumpLocked();
}

void PrefillCall::PumpLocked() {
  if (finish_started_ || in_flight_.message != nullptr) return;  // OnWriteDone pumps again
  if (cancelled_) {
    // Nothing more is written; finish once the worker has let go.
    if (worker_done_) FinishLocked(absl::Status(cancel_code_, "the call was cancelled"));
    return;
  }
  if (worker_done_ && !final_status_.ok()) {
    // A failed prefill aborts the stream: what is still queued would only delay the status.
    outbox_.clear();
    buffered_bytes_ = 0;
    FinishLocked(final_status_);
    return;
  }
  if (outbox_.empty()) {
    if (worker_done_) FinishLocked(final_status_);
    return;
  }
  in_flight_ = std::move(outbox_.front());
  outbox_.pop_front();
  // OnWriteDone never runs inline on this thread (gRPC dispatches write reactions to its
  // executor), so starting the write under mu_ cannot deadlock.
  StartWrite(in_flight_.message.get());
}

void PrefillCall::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  buffered_bytes_ -= in_flight_.bytes;
  if (ok) {
    env_->metrics->kv_bytes_sent().Increment(static_cast<double>(in_flight_.kv_payload_bytes));
  } else {
    // The stream broke (the client went away or its deadline passed): nothing else can be
    // delivered. OnCancel usually follows.
    MarkCancelledLocked(CancellationCode());
  }
  in_flight_ = Outgoing();
  PumpLocked();
}

void PrefillCall::MarkCancelledLocked(absl::StatusCode code) {
  if (cancelled_) return;
  cancelled_ = true;
  cancel_code_ = code;
  stop_.store(true, std::memory_order_relaxed);
  // Queued messages will never be written; a worker blocked in Send wakes (CanBufferLocked).
  outbox_.clear();
  buffered_bytes_ = in_flight_.bytes;
}

absl::StatusCode PrefillCall::CancellationCode() const {
  // gRPC reports an expired deadline as a cancellation; tell them apart for metrics and logs.
  // The client's deadline fires a transport latency before ours (ours was computed from the
  // timeout it sent), so its RST_STREAM can arrive just before our deadline: allow for that.
  constexpr auto kDeadlineSlack = std::chrono::milliseconds(100);
  return context_->deadline() <= std::chrono::system_clock::now() + kDeadlineSlack
             ? absl::StatusCode::kDeadlineExceeded
             : absl::StatusCode::kCancelled;
}

void PrefillCall::OnCancel() {
  WorkerPool::JobId queued_job = 0;
  {
    absl::MutexLock lock(&mu_);
    MarkCancelledLocked(CancellationCode());
    if (phase_ == Phase::kQueued) queued_job = job_id_;
    if (pusher_ != nullptr) pusher_->Cancel();
  }
  if (queued_job != 0 && env_->pool->CancelQueued(queued_job)) {
    // The job will never run: its place in the queue is free now, and its reference is ours.
    env_->metrics->queue_depth().Decrement();
    {
      absl::MutexLock lock(&mu_);
      phase_ = Phase::kDone;
      worker_done_ = true;
      final_status_ = absl::CancelledError("cancelled while queued");
      PumpLocked();
    }
    Unref();  // gRPC still holds its reference until OnDone: never the last one here
  }
}

void PrefillCall::FinishLocked(const absl::Status& status) {
  finish_started_ = true;
  const absl::StatusCode recorded = cancelled_ ? cancel_code_ : status.code();
  const double duration = SecondsBetween(received_, Clock::now());
  env_->metrics->requests(recorded).Increment();
  env_->metrics->request_duration_seconds().Observe(duration);
  if (phase_ != Phase::kNotAdmitted) {
    env_->metrics->requests_in_flight().Decrement();
    env_->log.Info(log_id_, absl::StrFormat("finished %s in %.3f s%s%s", GrpcCodeName(recorded),
                                            duration, status.ok() ? "" : ": ", status.message()));
  }
  Finish(ToGrpcStatus(status));
}

void PrefillCall::OnDone() { Unref(); }

void PrefillCall::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

}  // namespace sparsefill::server
