// Helpers for the server's integration tests: a shared embedded model, servers on 127.0.0.1
// port 0, a blocking Prefill client that keeps every message, a client that does not read (to
// hold a worker on backpressure), KV reassembly, a tiny HTTP GET for /metrics, and condition
// polling with a timeout (waiting for a state, never sleeping for a guessed time).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/prefill_server.h"
#include "sparsefill/v1/prefill_service.grpc.pb.h"
#include "worker/model.h"

namespace sparsefill::server::testing {

// The embedded model on the CPU backend, loaded once per process.
std::shared_ptr<const worker::Model> EmbeddedModel();

// Options for an in-process test server: loopback, port 0 for gRPC, and metrics (port 0) only
// when the test scrapes them.
ServerOptions TestServerOptions(bool metrics = false);

// Seeded random token ids in [0, vocab).
std::vector<int32_t> RandomTokens(size_t n, int64_t vocab, uint32_t seed);

std::unique_ptr<v1::PrefillService::Stub> MakeStub(int port);
// A channel whose client-side HTTP/2 windows stay small (64 KiB, no BDP growth), so a call that
// is not read fills them quickly and the server feels backpressure with little KV.
std::shared_ptr<grpc::Channel> SmallWindowChannel(int port);

struct PrefillStream {
  grpc::Status status;
  std::vector<v1::PrefillResponse> messages;

  const v1::PrefillResult* result() const;
  std::vector<const v1::KvChunk*> chunks() const;
};

// Runs one Prefill to the end, reading every message.
PrefillStream RunPrefill(v1::PrefillService::Stub& stub, const v1::PrefillRequest& request,
                         std::optional<absl::Duration> timeout = std::nullopt);

// A Prefill call whose client does not read until told to: with a SmallWindowChannel it holds
// its worker on backpressure.
class UnreadCall {
 public:
  UnreadCall(std::shared_ptr<grpc::Channel> channel, const v1::PrefillRequest& request,
             std::optional<absl::Duration> timeout = std::nullopt);
  ~UnreadCall();
  void Cancel() { context_.TryCancel(); }
  // Reads one message; false when the stream ended.
  bool ReadOne(v1::PrefillResponse* message) { return reader_->Read(message); }
  // Reads everything that arrives, then the status.
  PrefillStream ReadAll();
  // The status without reading (the call must end on its own: cancelled or expired).
  grpc::Status Finish();

 private:
  grpc::ClientContext context_;
  std::unique_ptr<v1::PrefillService::Stub> stub_;
  std::unique_ptr<grpc::ClientReader<v1::PrefillResponse>> reader_;
  bool finished_ = false;
};

// Per-layer float32 K and V [tokens, kv_heads, head_dim], from a stream's chunks.
struct AssembledKv {
  std::vector<std::vector<float>> k, v;
};
// Decodes every chunk (RAW_BF16 or RAW_FP32) after checking its CRC; fails the test on gaps,
// overlaps or bad checksums.
AssembledKv AssembleKv(const PrefillStream& stream, int num_layers, int64_t tokens, int kv_heads,
                       int head_dim);

// Waits until `condition` holds, polling every few milliseconds; false on timeout.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(20));

// GET http://127.0.0.1:port/path; the body, or empty on failure.
std::string HttpGet(int port, const std::string& path);
// The value of the sample `series` (e.g. `sparsefill_requests_total{code="OK"}`) in a Prometheus
// text exposition, or -1 when absent.
double MetricValue(const std::string& exposition, const std::string& series);

// grpc.health.v1.Health/Check for `service` through a generic stub: 1 SERVING, 2 NOT_SERVING,
// 0 UNKNOWN, -1 when the call itself failed.
int HealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service);

}  // namespace sparsefill::server::testing
