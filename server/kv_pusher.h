// Push mode (PrefillRequest.kv_push): delivers one request's KvChunk messages and its
// PrefillResult to a decode node's KvReceiver (prefill_service.proto), resumably.
//
// Protocol, per connection attempt: open PushKv, send the KvPushHeader, read the receiver's ack
// (its next expected sequence), then send each unacknowledged chunk and read its ack, in lockstep
// (one chunk in flight: the receiver's pace is the prefill's backpressure, as a slow pulling
// client's is). When a write or read fails, the stream's status decides: DATA_LOSS,
// INVALID_ARGUMENT, FAILED_PRECONDITION or UNAUTHENTICATED/PERMISSION_DENIED from the receiver
// are final; anything else (the connection dropped, the receiver restarted, UNAVAILABLE) is
// retried after a backoff (50 ms doubling to at most 1 s) on a new stream, which resumes where the
// receiver's ack says. `max_attempts` failures in a row end the push with UNAVAILABLE naming the
// endpoint and how far it got: "acknowledged N of M chunks".
//
// Synchronous (gRPC's blocking client API): it runs on the worker thread inside KvSink calls,
// like the pull path's Send(). One per request; only Cancel() may be called from another thread.
// A receiver that stops answering without closing the connection blocks the push until the
// caller cancels (or its deadline passes): there is no separate acknowledgement timeout yet.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "sparsefill/v1/prefill_service.grpc.pb.h"

namespace sparsefill::server {

class KvPusher {
 public:
  struct Options {
    std::string endpoint;     // host:port of the KvReceiver
    v1::KvPushHeader header;  // session, request, shape, codec, total chunks
    int max_attempts = 8;     // failed attempts in a row before UNAVAILABLE
    absl::Duration first_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(1);
    // Polled between attempts: true stops the push with Cancelled (the caller went away).
    std::function<bool()> should_stop;
  };

  explicit KvPusher(Options options);
  ~KvPusher();

  // Delivers one chunk (sequence numbers consecutive from 0); returns once the receiver has
  // acknowledged it.
  absl::Status Push(const v1::KvChunk& chunk);
  // Delivers the result after the last chunk; returns once the receiver reports the session
  // complete.
  absl::Status Finish(const v1::PrefillResult& result);

  // Thread-safe: aborts the stream in flight (a receiver that stopped answering cannot hold the
  // worker) and makes the push end with Cancelled. For the call's OnCancel.
  void Cancel();

  uint64_t acknowledged() const { return next_sequence_; }  // chunks the receiver has applied
  int reconnects() const { return reconnects_; }

 private:
  // Sends `item` (a chunk or the result) on a live stream, connecting or reconnecting as needed,
  // until the receiver acknowledges it (or it was already acknowledged).
  absl::Status Deliver(const v1::KvPushRequest& item, uint64_t sequence, bool is_result);
  // Opens a stream and exchanges header and ack; false when that failed (the stream is reset).
  bool Connect();
  // Ends the current stream and returns its status.
  grpc::Status Drop();
  std::string ProgressText() const;

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KvReceiver::Stub> stub_;
  absl::Mutex cancel_mu_;  // guards the context pointer against Cancel() from another thread
  bool cancelled_ ABSL_GUARDED_BY(cancel_mu_) = false;
  std::unique_ptr<grpc::ClientContext> context_ ABSL_GUARDED_BY(cancel_mu_);
  std::unique_ptr<grpc::ClientReaderWriter<v1::KvPushRequest, v1::KvPushAck>> stream_;
  uint64_t next_sequence_ = 0;  // the receiver's last reported next_sequence
  bool complete_ = false;
  int reconnects_ = 0;
  int connections_ = 0;
};

}  // namespace sparsefill::server
