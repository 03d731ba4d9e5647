// The client's one crossing from grpc::Status to absl::Status (everything above the reactor
// speaks absl::Status). The two code enums share their numbering (both follow
// google.rpc.Code), so the code carries over unchanged.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace sparsefill::client {

absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace sparsefill::client
