// UTF-8 decoding and encoding (the tokenizer, the JSON reader): text as a sequence of code points
// with their byte offsets. Invalid bytes decode as U+FFFD one byte at a time, so every input byte
// belongs to exactly one code point and no text is lost.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sparsefill::worker {

struct CodePoint {
  char32_t value;
  uint32_t offset;  // first byte in the text
  uint32_t length;  // bytes, 1-4
};

std::vector<CodePoint> DecodeUtf8(absl::string_view text);

// Appends the UTF-8 encoding of `c` to `out`.
void AppendUtf8(char32_t c, std::string* out);

}  // namespace sparsefill::worker
