// sparsefill.v1.PrefillService on gRPC's callback API: Prefill hands each call to its own
// PrefillCall reactor; ModelInfo answers from a response built once at startup.
#pragma once

#include "grpcpp/grpcpp.h"
#include "server/prefill_call.h"
#include "sparsefill/v1/prefill_service.grpc.pb.h"
#include "worker/model.h"

namespace sparsefill::server {

// Everything ModelInfo reports about `model` on this server.
v1::ModelInfoResponse MakeModelInfo(const worker::Model& model, int64_t max_prompt_tokens);

class PrefillServiceImpl final : public v1::PrefillService::CallbackService {
 public:
  // `env` must outlive the service and every call.
  explicit PrefillServiceImpl(CallEnvironment* env);

  grpc::ServerWriteReactor<v1::PrefillResponse>* Prefill(
      grpc::CallbackServerContext* context, const v1::PrefillRequest* request) override;
  grpc::ServerUnaryReactor* ModelInfo(grpc::CallbackServerContext* context,
                                      const v1::ModelInfoRequest* request,
                                      v1::ModelInfoResponse* response) override;

 private:
  CallEnvironment* const env_;
  const v1::ModelInfoResponse model_info_;
};

}  // namespace sparsefill::server
