// Pieces shared by the `sparsefill` subcommands that talk to a server (prefill, info): flag
// values, enum names for people, and error messages that say what failed and with which code.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "sparsefill/v1/prefill_service.pb.h"

namespace sparsefill::cli {

// --timeout SECONDS: a positive number; empty or "none" means no deadline (InfiniteDuration).
absl::StatusOr<absl::Duration> ParseTimeoutFlag(const std::string& value);

// "raw_bf16", "model_sparse", ...: the enum name without its prefix, lower case.
std::string CodecName(v1::KvCodec codec);
std::string AttentionName(v1::AttentionMode mode);

// One line for stderr, e.g.
//   server unavailable at localhost:50051: failed to connect to all addresses (UNAVAILABLE)
//   INVALID_ARGUMENT from localhost:50051: token_ids[2] = 9000 >= vocab_size 8192
std::string DescribeRpcError(const absl::Status& status, absl::string_view server);

}  // namespace sparsefill::cli
