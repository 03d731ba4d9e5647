// Reads a prompt's token ids for the CLI: a safetensors file with an integer `input_ids` tensor
// ([tokens] or [1, tokens], I32 or I64; the golden files work as they are), or a text file of
// whitespace-separated ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sparsefill::cli {

absl::StatusOr<std::vector<int32_t>> ReadTokenFile(const std::string& path);

}  // namespace sparsefill::cli
