// A stand-in PrefillService for the SDK tests, on 127.0.0.1 port 0: it plays a stream the test
// scripts (including streams a real server would never send: corrupt chunks, missing results,
// slow layers), or serves a real in-process model so the CLI can be compared with `sparsefill
// run`. Independent of server/, so the client is tested on its own.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "sparsefill/v1/prefill_service.grpc.pb.h"
#include "worker/model.h"

namespace sparsefill::testing {

class FakePrefillService final : public v1::PrefillService::Service {
 public:
  // Builds the response stream of one request; the default handler plays `MakeScript`.
  using Script = std::function<std::vector<v1::PrefillResponse>(const v1::PrefillRequest&)>;

  v1::ModelInfoResponse model_info;
  Script script;
  // Sent after the script, instead of OK.
  grpc::Status final_status = grpc::Status::OK;
  // Pause before each message (to test deadlines and cancellation).
  absl::Duration delay_per_message = absl::ZeroDuration();

  std::atomic<int> model_info_calls{0};
  std::atomic<int> prefill_calls{0};
  std::atomic<int> messages_sent{0};
  // Set when a Prefill handler saw its call cancelled (by the client, or its deadline).
  absl::Notification saw_cancel;

  grpc::Status ModelInfo(grpc::ServerContext* context, const v1::ModelInfoRequest* request,
                         v1::ModelInfoResponse* response) override;
  grpc::Status Prefill(grpc::ServerContext* context, const v1::PrefillRequest* request,
                       grpc::ServerWriter<v1::PrefillResponse>* writer) override;
};

// A synthetic model shape for scripted streams, and the stream a correct server sends for it:
// KV from MakeSyntheticKv split into chunks of `tokens_per_chunk` x `heads_per_chunk`, progress
// events when requested, then a consistent PrefillResult.
v1::ModelInfoResponse SyntheticModelInfo(int num_layers, int kv_heads, int head_dim, int vocab);
std::vector<v1::PrefillResponse> MakeScript(const v1::ModelInfoResponse& info,
                                            const v1::PrefillRequest& request,
                                            int64_t tokens_per_chunk, int heads_per_chunk);

// A service whose script runs `model` in process (dense or its sparse patterns), as a server
// would, with chunks of at most `tokens_per_chunk` tokens split in two KV-head halves.
void ServeModel(FakePrefillService& service, std::shared_ptr<const worker::Model> model,
                int64_t tokens_per_chunk);

// A running gRPC server around a service.
class FakeServer {
 public:
  explicit FakeServer(FakePrefillService* service);
  ~FakeServer();
  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace sparsefill::testing
