#include "client/cli/progress_line.h"

#include <unistd.h>

#include <cstdio>

namespace sparsefill::cli {

ProgressLine::ProgressLine() : enabled_(::isatty(STDERR_FILENO) == 1) {}

ProgressLine::~ProgressLine() { Clear(); }

void ProgressLine::Update(const std::string& text) {
  if (!enabled_) return;
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
  showing_ = true;
}

void ProgressLine::Clear() {
  if (!showing_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  showing_ = false;
}

}  // namespace sparsefill::cli
