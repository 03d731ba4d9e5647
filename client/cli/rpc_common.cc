#include "client/cli/rpc_common.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace sparsefill::cli {

absl::StatusOr<absl::Duration> ParseTimeoutFlag(const std::string& value) {
  if (value.empty() || value == "none") return absl::InfiniteDuration();
  double seconds = 0;
  if (!absl::SimpleAtod(value, &seconds) || !std::isfinite(seconds) || seconds <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--timeout must be a positive number of seconds, got '", value, "'"));
  }
  return absl::Seconds(seconds);
}

std::string CodecName(v1::KvCodec codec) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::KvCodec_Name(codec), "KV_CODEC_"));
}

std::string AttentionName(v1::AttentionMode mode) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::AttentionMode_Name(mode), "ATTENTION_MODE_"));
}

std::string DescribeRpcError(const absl::Status& status, absl::string_view server) {
  const std::string code = absl::StatusCodeToString(status.code());
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      return absl::StrCat("server unavailable at ", server, ": ", status.message(), " (", code,
                          ")");
    case absl::StatusCode::kDataLoss:
      // Raised here, by the stream checks, not by the server.
      return absl::StrCat("corrupt response from ", server, ": ", status.message(), " (", code,
                          ")");
    default:
      return absl::StrCat(code, " from ", server, ": ", status.message());
  }
}

}  // namespace sparsefill::cli
