// KvPusher (see kv_pusher.h).
#include "server/kv_pusher.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace sparsefill::server {
namespace {

// Receiver answers that retrying cannot change.
bool IsFinal(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

}  // namespace

KvPusher::KvPusher(Options options) : options_(std::move(options)) {
  channel_ = grpc::CreateChannel(options_.endpoint, grpc::InsecureChannelCredentials());
  stub_ = v1::KvReceiver::NewStub(channel_);
}

KvPusher::~KvPusher() {
  if (stream_ != nullptr) {
    {
      absl::MutexLock lock(&cancel_mu_);
      context_->TryCancel();
    }
    (void)stream_->Finish();
  }
}

void KvPusher::Cancel() {
  absl::MutexLock lock(&cancel_mu_);
  cancelled_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

std::string KvPusher::ProgressText() const {
  return absl::StrCat("acknowledged ", next_sequence_, " of ", options_.header.total_chunks(),
                      " chunks", complete_ ? ", complete" : "");
}

bool KvPusher::Connect() {
  ++connections_;
  {
    absl::MutexLock lock(&cancel_mu_);
    if (cancelled_) return false;
    context_ = std::make_unique<grpc::ClientContext>();
    stream_ = stub_->PushKv(context_.get());
  }
  v1::KvPushRequest hello;
  *hello.mutable_header() = options_.header;
  v1::KvPushAck ack;
  if (!stream_->Write(hello) || !stream_->Read(&ack)) return false;
  next_sequence_ = ack.next_sequence();
  complete_ = ack.complete();
  return true;
}

grpc::Status KvPusher::Drop() {
  if (stream_ == nullptr) return grpc::Status::OK;
  (void)stream_->WritesDone();
  grpc::Status status = stream_->Finish();
  absl::MutexLock lock(&cancel_mu_);
  stream_.reset();
  context_.reset();
  return status;
}

absl::Status KvPusher::Deliver(const v1::KvPushRequest& item, uint64_t sequence, bool is_result) {
  auto delivered = [&] { return is_result ? complete_ : next_sequence_ > sequence; };
  int failures = 0;
  absl::Duration backoff = options_.first_backoff;
  std::string what_failed;
  for (;;) {
    bool ok = stream_ != nullptr;
    if (!ok) {
      ok = Connect();
      what_failed = "connecting";
    }
    if (ok && delivered()) return absl::OkStatus();  // a reconnect's ack can cover it
    if (ok && next_sequence_ < (is_result ? options_.header.total_chunks() : sequence)) {
      // The receiver lost chunks it had acknowledged (restarted without its session state); the
      // pusher keeps only the chunk in flight, so it cannot resend them.
      const std::string progress = ProgressText();
      (void)Drop();
      return absl::DataLossError(absl::StrCat("KV push to ", options_.endpoint,
                                              ": the receiver expects chunk ", next_sequence_,
                                              " but had acknowledged more (", progress, ")"));
    }
    if (ok) {
      v1::KvPushAck ack;
      ok = stream_->Write(item) && stream_->Read(&ack);
      what_failed = is_result ? "sending the result" : absl::StrCat("sending chunk ", sequence);
      if (ok) {
        next_sequence_ = std::max(next_sequence_, ack.next_sequence());
        complete_ = ack.complete();
        if (delivered()) return absl::OkStatus();
        (void)Drop();
        return absl::DataLossError(absl::StrCat("KV push to ", options_.endpoint,
                                                ": the receiver did not apply ", what_failed, " (",
                                                ProgressText(), ")"));
      }
    }
    const grpc::Status status = Drop();
    const bool cancelled = [&] {
      absl::MutexLock lock(&cancel_mu_);
      return cancelled_;
    }();
    if (cancelled || (options_.should_stop && options_.should_stop())) {
      return absl::CancelledError(
          absl::StrCat("KV push stopped: the call was cancelled (", ProgressText(), ")"));
    }
    if (IsFinal(status.error_code())) {
      return absl::Status(
          static_cast<absl::StatusCode>(status.error_code()),
          absl::StrCat("KV push to ", options_.endpoint, ": the receiver refused ", what_failed,
                       ": ", status.error_message(), " (", ProgressText(), ")"));
    }
    if (++failures >= options_.max_attempts) {
      return absl::UnavailableError(
          absl::StrCat("KV push to ", options_.endpoint, " failed ", failures,
                       " times in a row (last: ", what_failed, ": ",
                       status.error_message().empty() ? "stream ended" : status.error_message(),
                       "); ", ProgressText()));
    }
    absl::SleepFor(backoff);
    backoff = std::min(2 * backoff, options_.max_backoff);
    ++reconnects_;
  }
}

absl::Status KvPusher::Push(const v1::KvChunk& chunk) {
  v1::KvPushRequest item;
  *item.mutable_chunk() = chunk;
  return Deliver(item, chunk.sequence(), /*is_result=*/false);
}

absl::Status KvPusher::Finish(const v1::PrefillResult& result) {
  v1::KvPushRequest item;
  *item.mutable_result() = result;
  absl::Status status = Deliver(item, 0, /*is_result=*/true);
  if (status.ok()) (void)Drop();
  return status;
}

}  // namespace sparsefill::server
