// Formats and writes log lines (see logger.h).
#include "server/logger.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace sparsefill::server {

LogSink& LogSink::Get() {
  static LogSink* sink = new LogSink();  // never destroyed: loggers may run during exit
  return *sink;
}

void LogSink::Write(LogLevel level, absl::string_view line) {
  absl::MutexLock lock(&mu_);
  if (level < min_level_) return;
  std::FILE* out = out_ != nullptr ? out_ : stderr;
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

void LogSink::SetMinLevel(LogLevel level) {
  absl::MutexLock lock(&mu_);
  min_level_ = level;
}

void LogSink::SetOutput(std::FILE* out) {
  absl::MutexLock lock(&mu_);
  out_ = out;
}

void Logger::Log(LogLevel level, absl::string_view request_id, absl::string_view message) const {
  static constexpr char kLevelLetter[] = {'I', 'W', 'E'};
  const std::string time =
      absl::FormatTime("%Y-%m-%d %H:%M:%E6S", absl::Now(), absl::LocalTimeZone());
  std::string line =
      absl::StrCat(time, " ", absl::string_view(&kLevelLetter[static_cast<int>(level)], 1), " [",
                   component_, "]");
  if (!request_id.empty()) absl::StrAppend(&line, " [req=", request_id, "]");
  absl::StrAppend(&line, " ", message, "\n");
  LogSink::Get().Write(level, line);
}

}  // namespace sparsefill::server
