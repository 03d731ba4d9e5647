// PrefillClient and its PrefillStream reactor: the client side of PrefillService.
#include "client/prefill_client.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/grpc_status.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace sparsefill::client {
namespace {

// Receive limit for our channels. The protocol keeps every message under gRPC's 4 MiB default
// (chunks are clamped to 3 MiB), but PrefillResult.logits_last grows with the vocabulary
// (1 MiB at 256K); the margin costs nothing and spares a decode node an obscure failure.
constexpr int kMaxReceiveMessageBytes = 64 << 20;

std::string NewRequestId() {
  absl::BitGen gen;
  return absl::StrFormat("sfc-%016x", absl::Uniform<uint64_t>(gen));
}

// Adds what the bare gRPC message lacks: which call, and the timeout that ran out.
absl::Status AnnotateCallError(absl::Status status, absl::string_view rpc, absl::Duration timeout,
                               bool cancel_requested) {
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(absl::StrCat(rpc, " exceeded its deadline (timeout ",
                                                    absl::FormatDuration(timeout),
                                                    "): ", status.message()));
  }
  if (status.code() == absl::StatusCode::kCancelled && cancel_requested) {
    return absl::CancelledError(absl::StrCat(rpc, " cancelled by the client: ", status.message()));
  }
  return status;
}

absl::Time DeadlineAfter(absl::Time start, absl::Duration timeout) {
  return timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : start + timeout;
}

// Sets the call's deadline; a deadline already past fails here, deterministically: gRPC may
// still complete a fast local call whose deadline expired before it started.
absl::Status SetDeadline(grpc::ClientContext& context, absl::Time deadline, absl::string_view rpc,
                         absl::Duration timeout) {
  if (deadline == absl::InfiniteFuture()) return absl::OkStatus();
  if (absl::Now() >= deadline) {
    return absl::DeadlineExceededError(absl::StrCat(rpc, " exceeded its deadline (timeout ",
                                                    absl::FormatDuration(timeout),
                                                    ") before it started"));
  }
  context.set_deadline(absl::ToChronoTime(deadline));
  return absl::OkStatus();
}

}  // namespace

v1::PrefillRequest MakePrefillRequest(std::span<const int32_t> tokens, v1::KvCodec codec,
                                      v1::AttentionMode attention) {
  v1::PrefillRequest request;
  request.mutable_token_ids()->Add(tokens.begin(), tokens.end());
  request.set_kv_codec(codec);
  request.set_attention_mode(attention);
  return request;
}

v1::PrefillRequest MakeInlinePatternRequest(std::span<const int32_t> tokens,
                                            std::string pattern_config_json, v1::KvCodec codec) {
  v1::PrefillRequest request = MakePrefillRequest(tokens, codec, v1::ATTENTION_MODE_INLINE);
  request.set_inline_pattern_config(std::move(pattern_config_json));
  return request;
}

// --- PrefillStream ---------------------------------------------------------------------------

PrefillStream::PrefillStream(std::shared_ptr<v1::PrefillService::Stub> stub,
                             v1::PrefillRequest request, PrefillCallbacks callbacks,
                             absl::Duration timeout)
    : stub_(std::move(stub)),
      request_(std::move(request)),
      callbacks_(std::move(callbacks)),
      timeout_(timeout),
      start_time_(absl::Now()) {}

PrefillStream::~PrefillStream() {
  // gRPC still holds `this` until OnDone; leaving earlier would free a live reactor.
  Cancel();
  done_.WaitForNotification();
}

void PrefillStream::Start(const v1::ModelInfoResponse& model, absl::Time deadline) {
  model_ = model;
  // Push mode delivers the KV to a KvReceiver: this stream carries none, like skip_kv.
  if (!request_.skip_kv() && !request_.has_kv_push()) {
    const KvShape shape{static_cast<int>(model.num_layers()),
                        static_cast<int64_t>(request_.token_ids_size()),
                        static_cast<int>(model.num_kv_heads()), static_cast<int>(model.head_dim())};
    absl::StatusOr<KvAssembler> assembler = KvAssembler::Create(
        shape, request_.kv_codec(), request_.request_id(), [this](KvLayer layer) {
          return callbacks_.on_layer ? callbacks_.on_layer(std::move(layer)) : absl::OkStatus();
        });
    if (!assembler.ok()) {
      FailBeforeStart(assembler.status());
      return;
    }
    assembler_.emplace(*std::move(assembler));
  }
  if (absl::Status status = SetDeadline(context_, deadline, "Prefill", timeout_); !status.ok()) {
    FailBeforeStart(std::move(status));
    return;
  }
  stub_->async()->Prefill(&context_, &request_, this);
  StartRead(&response_);
  StartCall();
}

void PrefillStream::FailBeforeStart(absl::Status status) { Complete(std::move(status)); }

void PrefillStream::Cancel() {
  if (done_.HasBeenNotified()) return;
  cancel_requested_ = true;
  context_.TryCancel();
}

absl::Status PrefillStream::Await() {
  done_.WaitForNotification();
  return status_;
}

PrefillStats PrefillStream::stats() const { return stats_; }

void PrefillStream::OnReadDone(bool ok) {
  // !ok: the stream is over (finished, failed or cancelled); OnDone follows with the status.
  if (!ok) return;
  if (absl::Status status = HandleResponse(response_); !status.ok()) {
    // No more reads: the stream is no longer trustworthy (or the consumer gave up). Cancelling
    // also tells the server to stop computing at its next layer boundary.
    stream_error_ = std::move(status);
    context_.TryCancel();
    return;
  }
  StartRead(&response_);
}

absl::Status PrefillStream::HandleResponse(const v1::PrefillResponse& response) {
  if (have_result_) {
    return absl::DataLossError("a message arrived after the PrefillResult");
  }
  switch (response.event_case()) {
    case v1::PrefillResponse::kProgress:
      if (callbacks_.on_progress) callbacks_.on_progress(response.progress());
      return absl::OkStatus();
    case v1::PrefillResponse::kKvChunk: {
      if (!assembler_.has_value()) {
        return absl::DataLossError(absl::StrCat("chunk ", response.kv_chunk().sequence(),
                                                ": KV chunk in a skip_kv or kv_push stream"));
      }
      if (first_kv_time_ == absl::InfinitePast()) first_kv_time_ = absl::Now();
      return assembler_->AddChunk(response.kv_chunk());
    }
    case v1::PrefillResponse::kResult:
      if (absl::Status status = CheckResult(response.result()); !status.ok()) return status;
      result_ = response.result();
      have_result_ = true;
      return absl::OkStatus();
    case v1::PrefillResponse::EVENT_NOT_SET:
      // An event type newer than this client (it parses as an unknown field): skipping it keeps
      // old decode nodes working against newer servers.
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status PrefillStream::CheckResult(const v1::PrefillResult& result) const {
  auto fail = [](auto&&... parts) {
    return absl::DataLossError(absl::StrCat("PrefillResult: ", parts...));
  };
  if (result.request_id() != request_.request_id()) {
    return fail("request id '", result.request_id(), "', expected '", request_.request_id(), "'");
  }
  uint64_t chunks = 0, bytes = 0;
  if (assembler_.has_value()) {
    if (absl::Status status = assembler_->Finish(); !status.ok()) {
      return fail("arrived before the KV was complete: ", status.message());
    }
    chunks = assembler_->chunks_received();
    bytes = assembler_->payload_bytes_received();
  }
  // In push mode the counts are what the decode node's KvReceiver acknowledged, not this stream.
  if (!request_.has_kv_push() &&
      (result.kv_chunks_sent() != chunks || result.kv_bytes_sent() != bytes)) {
    return fail("the server sent ", result.kv_chunks_sent(), " chunks (", result.kv_bytes_sent(),
                " bytes) but ", chunks, " chunks (", bytes, " bytes) were received");
  }
  if (result.prompt_tokens() != static_cast<uint64_t>(request_.token_ids_size()) ||
      result.num_layers() != model_.num_layers()) {
    return fail(result.prompt_tokens(), " tokens and ", result.num_layers(), " layers, expected ",
                request_.token_ids_size(), " and ", model_.num_layers());
  }
  if (request_.return_logits() &&
      static_cast<uint64_t>(result.logits_last_size()) != model_.vocab_size()) {
    return fail("logits_last has ", result.logits_last_size(), " values, the vocabulary ",
                model_.vocab_size());
  }
  return absl::OkStatus();
}

void PrefillStream::OnDone(const grpc::Status& status) {
  absl::Status final_status;
  if (!stream_error_.ok()) {
    // Our own cancellation follows a local error: report the cause, not the CANCELLED.
    final_status = stream_error_;
  } else if (!status.ok()) {
    final_status =
        AnnotateCallError(FromGrpcStatus(status), "Prefill", timeout_, cancel_requested_);
  } else if (!have_result_) {
    final_status = absl::DataLossError(absl::StrCat(
        "the stream ended without a PrefillResult",
        assembler_.has_value() ? absl::StrCat(" (after ", assembler_->layers_done(), " of ",
                                              assembler_->shape().num_layers, " layers)")
                               : std::string()));
  }
  Complete(std::move(final_status));
}

void PrefillStream::Complete(absl::Status status) {
  const absl::Time now = absl::Now();
  stats_.wall_seconds = absl::ToDoubleSeconds(now - start_time_);
  if (first_kv_time_ != absl::InfinitePast()) {
    stats_.first_kv_seconds = absl::ToDoubleSeconds(first_kv_time_ - start_time_);
  }
  if (assembler_.has_value()) {
    stats_.kv_chunks = assembler_->chunks_received();
    stats_.kv_payload_bytes = assembler_->payload_bytes_received();
  }
  status_ = std::move(status);
  done_.Notify();  // last touch of `this` from this thread: the owner may delete it now
}

// --- PrefillClient ---------------------------------------------------------------------------

PrefillClient::PrefillClient(absl::string_view target) : target_(target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  channel_ = grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args);
  stub_ = v1::PrefillService::NewStub(channel_);
}

PrefillClient::PrefillClient(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)), stub_(v1::PrefillService::NewStub(channel_)) {}

absl::StatusOr<v1::ModelInfoResponse> PrefillClient::FetchModelInfo(absl::Time deadline,
                                                                    absl::Duration timeout) {
  grpc::ClientContext context;
  if (absl::Status status = SetDeadline(context, deadline, "ModelInfo", timeout); !status.ok()) {
    return status;
  }
  v1::ModelInfoRequest request;
  v1::ModelInfoResponse response;
  grpc::Status grpc_status;
  absl::Notification done;
  stub_->async()->ModelInfo(&context, &request, &response, [&](grpc::Status s) {
    grpc_status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (!grpc_status.ok()) {
    return AnnotateCallError(FromGrpcStatus(grpc_status), "ModelInfo", timeout, false);
  }
  {
    absl::MutexLock lock(&mu_);
    model_info_ = response;
  }
  return response;
}

absl::StatusOr<v1::ModelInfoResponse> PrefillClient::ModelInfo(absl::Duration timeout) {
  return FetchModelInfo(DeadlineAfter(absl::Now(), timeout), timeout);
}

absl::StatusOr<v1::ModelInfoResponse> PrefillClient::CachedModelInfo(absl::Time deadline,
                                                                     absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (model_info_.has_value()) return *model_info_;
  }
  return FetchModelInfo(deadline, timeout);
}

std::unique_ptr<PrefillStream> PrefillClient::StartPrefill(const PrefillCall& call,
                                                           PrefillCallbacks callbacks) {
  v1::PrefillRequest request = call.request;
  // Resolve what the server would default, so the stream can be checked against it exactly.
  if (request.kv_codec() == v1::KV_CODEC_UNSPECIFIED) request.set_kv_codec(v1::KV_CODEC_RAW_BF16);
  if (request.request_id().empty()) request.set_request_id(NewRequestId());

  std::unique_ptr<PrefillStream> stream(
      new PrefillStream(stub_, std::move(request), std::move(callbacks), call.timeout));
  const v1::PrefillRequest& sent = stream->request_;
  if (sent.token_ids_size() == 0) {
    stream->FailBeforeStart(absl::InvalidArgumentError("PrefillRequest.token_ids is empty"));
    return stream;
  }
  if (!sent.skip_kv() && !IsDecodableCodec(sent.kv_codec())) {
    stream->FailBeforeStart(absl::InvalidArgumentError(
        absl::StrCat("PrefillRequest.kv_codec ", v1::KvCodec_Name(sent.kv_codec()),
                     " is not one this client decodes ", kDecodableCodecsText)));
    return stream;
  }
  const absl::Time deadline = DeadlineAfter(stream->start_time_, call.timeout);
  absl::StatusOr<v1::ModelInfoResponse> model = CachedModelInfo(deadline, call.timeout);
  if (!model.ok()) {
    stream->FailBeforeStart(model.status());
    return stream;
  }
  stream->Start(*model, deadline);
  return stream;
}

absl::StatusOr<PrefillReply> PrefillClient::Prefill(const PrefillCall& call) {
  PrefillReply reply;
  PrefillCallbacks callbacks;
  // Called on a gRPC thread, one at a time; `reply` is read here only after Await().
  callbacks.on_layer = [&reply](KvLayer layer) {
    reply.layers.push_back(std::move(layer));
    return absl::OkStatus();
  };
  std::unique_ptr<PrefillStream> stream = StartPrefill(call, std::move(callbacks));
  if (absl::Status status = stream->Await(); !status.ok()) return status;
  reply.result = stream->result();
  reply.stats = stream->stats();
  return reply;
}

}  // namespace sparsefill::client
