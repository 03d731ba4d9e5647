// The sparsefill gRPC server as a library: what sparsefill-server's main() runs, and what
// integration tests start in-process on 127.0.0.1 port 0.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "worker/model.h"

namespace sparsefill::server {

struct ServerOptions {
  // gRPC listen address; port 0 picks a free port (see PrefillServer::port()).
  std::string listen_address = "0.0.0.0:50051";
  // Prometheus /metrics address; empty disables the exporter; port 0 picks a free port.
  std::string metrics_address = "0.0.0.0:9400";
  // Longest prompt accepted, in tokens.
  int64_t max_prompt_tokens = 32768;
  // Admitted requests waiting for a worker; one more gets RESOURCE_EXHAUSTED at once.
  int max_queued_requests = 16;
  // Workers (one per GPU; one for the CPU backend) and prefills each runs at a time.
  int num_workers = 1;
  int max_concurrent_per_worker = 1;
  // Bytes of messages a call may have waiting for its client (the one being written included)
  // before its worker pauses until the client reads: the stream's backpressure. A message is
  // accepted while the call's buffer is at or under this bound, so memory per call stays below
  // the bound plus one chunk.
  int64_t max_buffered_bytes_per_call = int64_t{8} << 20;
};

// A snapshot of the admission state (tests and logs; the same numbers are metrics).
struct ServerStats {
  int queued = 0;             // admitted, waiting for a worker
  int running = 0;            // on a worker
  int waiting_on_client = 0;  // running, paused by backpressure
};

class PrefillServer {
 public:
  // Builds and starts the server around a loaded model (shared with the workers).
  static absl::StatusOr<std::unique_ptr<PrefillServer>> Start(
      std::shared_ptr<const worker::Model> model, const ServerOptions& options);
  // One model per GPU: worker i prefills on models[i] (options.num_workers is models.size()).
  // All must be the same model (same config and patterns), each on its own device.
  static absl::StatusOr<std::unique_ptr<PrefillServer>> Start(
      std::vector<std::shared_ptr<const worker::Model>> models, ServerOptions options);
  virtual ~PrefillServer() = default;

  // The bound gRPC port, and the metrics port (0 when disabled).
  virtual int port() const = 0;
  virtual int metrics_port() const = 0;

  virtual ServerStats stats() const = 0;

  // Stops accepting new calls (health turns NOT_SERVING, new Prefill calls get UNAVAILABLE), lets
  // calls in flight and queued finish for up to `grace`, then cancels what remains and returns.
  virtual void Shutdown(absl::Duration grace) = 0;
};

}  // namespace sparsefill::server
