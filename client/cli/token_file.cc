#include "client/cli/token_file.h"

#include <charconv>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/model_config.h"
#include "worker/safetensors.h"

namespace sparsefill::cli {
namespace {

bool LooksLikeSafetensors(const std::string& bytes) {
  if (bytes.size() < 9) return false;
  uint64_t header = 0;
  for (int i = 0; i < 8; ++i) header |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
  return header + 8 <= bytes.size() && bytes[8] == '{';
}

absl::StatusOr<std::vector<int32_t>> FromSafetensors(const std::string& path) {
  absl::StatusOr<std::unique_ptr<worker::SafetensorsFile>> file =
      worker::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const worker::TensorView* ids = (*file)->Find("input_ids");
  if (ids == nullptr)
    return absl::InvalidArgumentError(absl::StrCat(path, ": no 'input_ids' tensor"));
  const bool flat = ids->shape.size() == 1 || (ids->shape.size() == 2 && ids->shape[0] == 1);
  if (!flat) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids has shape ",
                                                   worker::ShapeString(ids->shape),
                                                   "; expected [tokens] or [1, tokens]"));
  }
  std::vector<int32_t> tokens(ids->numel());
  for (int64_t i = 0; i < ids->numel(); ++i) {
    if (ids->dtype == kernels::ScalarType::kInt32) {
      std::memcpy(&tokens[i], ids->data + 4 * i, 4);
    } else if (ids->dtype == kernels::ScalarType::kInt64) {
      int64_t v;
      std::memcpy(&v, ids->data + 8 * i, 8);
      if (v < INT32_MIN || v > INT32_MAX) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": input_ids[", i, "] = ", v, " is out of range"));
      }
      tokens[i] = static_cast<int32_t>(v);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids must be I32 or I64, not ",
                                                     kernels::ScalarName(ids->dtype)));
    }
  }
  return tokens;
}

absl::StatusOr<std::vector<int32_t>> FromText(const std::string& path, const std::string& text) {
  std::vector<int32_t> tokens;
  size_t pos = 0;
  int line = 1;
  while (pos < text.size()) {
    const char c = text[pos];
    if (c == '\n') ++line;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
      ++pos;
      continue;
    }
    size_t end = pos;
    while (end < text.size() && !std::strchr(" \t\r\n,", text[end])) ++end;
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data() + pos, text.data() + end, value);
    if (ec != std::errc() || ptr != text.data() + end || value < INT32_MIN || value > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line, ": '", text.substr(pos, end - pos), "' is not a token id"));
    }
    tokens.push_back(static_cast<int32_t>(value));
    pos = end;
  }
  return tokens;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = worker::ReadTextFile(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::vector<int32_t>> tokens =
      LooksLikeSafetensors(*bytes) ? FromSafetensors(path) : FromText(path, *bytes);
  if (tokens.ok() && tokens->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no token ids in the file"));
  }
  return tokens;
}

}  // namespace sparsefill::cli
