#include "client/grpc_status.h"

#include <string>

namespace sparsefill::client {

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int code = static_cast<int>(status.error_code());
  // Codes outside google.rpc.Code's range (0..16) cannot come from a conforming peer; keep them
  // visible instead of mapping them onto something plausible.
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnknownError(std::string("gRPC status code ") + std::to_string(code) + ": " +
                              status.error_message());
  }
  return absl::Status(static_cast<absl::StatusCode>(code), status.error_message());
}

}  // namespace sparsefill::client
