// The one place where absl::Status (used everywhere inside the server and the worker) becomes
// grpc::Status (used only at the RPC boundary), and where worker failures are classified into the
// codes the wire contract promises (proto/sparsefill/v1/prefill_service.proto, "Errors").
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace sparsefill::server {

// Same code (absl and gRPC share the canonical code numbering) and message. Codes outside the
// canonical range become UNKNOWN rather than an out-of-range gRPC code.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The canonical name of a code ("OK", "INVALID_ARGUMENT", ...), as gRPC spells it. Used for
// metric labels and logs.
const char* GrpcCodeName(absl::StatusCode code);

// What a failed prefill tells the client. Cancellation and input errors keep their code; a
// request that cannot fit memory (OUT_OF_RANGE, or RESOURCE_EXHAUSTED from an allocator) becomes
// OUT_OF_RANGE, because RESOURCE_EXHAUSTED on the wire means "queue full, retry"; UNAVAILABLE
// (push mode: the decode node stayed unreachable) keeps its code; everything else is INTERNAL,
// with the worker's original code kept in the message for the operator.
absl::Status ClassifyWorkerError(const absl::Status& status);

}  // namespace sparsefill::server
