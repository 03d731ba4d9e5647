// A tiny per-component logger for the server. Every line carries the time, the level, the
// component and the request id, so one request can be followed through the log with grep:
//   2026-11-26 14:03:07.123456 I [prefill] [req=abc-1] admitted: 1000 tokens, ...
// Lines go to stderr (the container log). Deliberately small: absl/log is not in this Abseil.
#pragma once

#include <cstdio>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace sparsefill::server {

enum class LogLevel { kInfo = 0, kWarning = 1, kError = 2 };

// Where all loggers write. One process-wide sink so lines from different threads never interleave.
class LogSink {
 public:
  static LogSink& Get();

  void Write(LogLevel level, absl::string_view line);
  void SetMinLevel(LogLevel level);
  // Redirects output (tests); nullptr restores stderr. The caller keeps `out` open.
  void SetOutput(std::FILE* out);

 private:
  LogSink() = default;

  absl::Mutex mu_;
  std::FILE* out_ ABSL_GUARDED_BY(mu_) = nullptr;  // nullptr: stderr
  LogLevel min_level_ ABSL_GUARDED_BY(mu_) = LogLevel::kInfo;
};

class Logger {
 public:
  explicit Logger(std::string component) : component_(std::move(component)) {}

  // `request_id` may be empty for lines about the server itself.
  void Info(absl::string_view request_id, absl::string_view message) const {
    Log(LogLevel::kInfo, request_id, message);
  }
  void Warning(absl::string_view request_id, absl::string_view message) const {
    Log(LogLevel::kWarning, request_id, message);
  }
  void Error(absl::string_view request_id, absl::string_view message) const {
    Log(LogLevel::kError, request_id, message);
  }
  void Log(LogLevel level, absl::string_view request_id, absl::string_view message) const;

 private:
  const std::string component_;
};

}  // namespace sparsefill::server
