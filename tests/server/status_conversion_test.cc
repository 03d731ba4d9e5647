// absl::Status -> grpc::Status (every canonical code, message kept) and the classification of
// worker errors into the codes the wire contract promises.
#include "server/status_conversion.h"

#include <gtest/gtest.h>

#include <string>

namespace sparsefill::server {
namespace {

TEST(StatusConversionTest, OkIsOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::OkStatus()).error_message(), "");
}

TEST(StatusConversionTest, EveryCanonicalCodeKeepsItsNumberNameAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status s(static_cast<absl::StatusCode>(code), "token_ids[3]: bad");
    const grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(g.error_message(), "token_ids[3]: bad");
    if (code != 2) {  // 2 is UNKNOWN itself
      EXPECT_STRNE(GrpcCodeName(s.code()), "UNKNOWN") << code;
    }
  }
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_STREQ(GrpcCodeName(absl::StatusCode::kDeadlineExceeded), "DEADLINE_EXCEEDED");
  EXPECT_STREQ(GrpcCodeName(absl::StatusCode::kOk), "OK");
}

TEST(StatusConversionTest, NonCanonicalCodeBecomesUnknown) {
  const grpc::Status g = ToGrpcStatus(absl::Status(static_cast<absl::StatusCode>(77), "odd"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(g.error_message(), "odd");
}

TEST(StatusConversionTest, WorkerErrorsAreClassified) {
  EXPECT_TRUE(ClassifyWorkerError(absl::OkStatus()).ok());
  EXPECT_EQ(ClassifyWorkerError(absl::CancelledError("stop")).code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ClassifyWorkerError(absl::OutOfRangeError("big")).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ClassifyWorkerError(absl::InvalidArgumentError("x")).code(),
            absl::StatusCode::kInvalidArgument);
  // RESOURCE_EXHAUSTED on the wire means "queue full, retry": an allocation failure is "cannot
  // fit".
  EXPECT_EQ(ClassifyWorkerError(absl::ResourceExhaustedError("oom")).code(),
            absl::StatusCode::kOutOfRange);
  const absl::Status internal =
      ClassifyWorkerError(absl::FailedPreconditionError("cuda error 700"));
  EXPECT_EQ(internal.code(), absl::StatusCode::kInternal);
  EXPECT_NE(std::string(internal.message()).find("FAILED_PRECONDITION"), std::string::npos);
  EXPECT_NE(std::string(internal.message()).find("cuda error 700"), std::string::npos);
  EXPECT_EQ(ClassifyWorkerError(absl::UnknownError("?")).code(), absl::StatusCode::kInternal);
  // Push mode's retry budget spent: the caller is told UNAVAILABLE with the progress.
  EXPECT_EQ(ClassifyWorkerError(absl::UnavailableError("KV push")).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sparsefill::server
