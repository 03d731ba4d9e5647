// A one-line progress display on stderr, redrawn in place, only when stderr is a terminal (logs
// and pipes stay clean).
#pragma once

#include <string>

namespace sparsefill::cli {

class ProgressLine {
 public:
  ProgressLine();
  ~ProgressLine();  // ends the line if one is showing
  void Update(const std::string& text);
  void Clear();

 private:
  bool enabled_;
  bool showing_ = false;
};

}  // namespace sparsefill::cli
