// A minimal HTTP/1.1 endpoint that serves GET /metrics in the Prometheus text format from a
// prometheus-cpp registry.
//
// Why not prometheus-cpp's Exposer: its civetweb threads get a fixed 100 KiB stack, and glibc
// takes every loaded library's static TLS out of each thread's stack; CUDA 13's cuBLASLt (94 KiB),
// cuBLAS and cudart bring ~110 KiB, so in a process that links the CUDA backend civetweb cannot
// start a thread at all ("null context when constructing CivetServer"), whatever the default
// thread stack is set to. Scrapes are rare and small: one thread, one connection at a time.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace sparsefill::server {

class MetricsHttpServer {
 public:
  // Listens on "host:port" (IPv4 "a.b.c.d", "0.0.0.0", "localhost", or "[::]"/"[::1]"; port 0
  // picks a free one) and serves the registry until destroyed.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsHttpServer(int fd, int port, std::shared_ptr<prometheus::Registry> registry);
  void Serve();
  void Respond(int client);

  const int listen_fd_;
  const int port_;
  const std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace sparsefill::server
