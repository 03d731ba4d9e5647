// The tokenizer a GGUF file describes (tokenizer.ggml.*), when it is a byte-level BPE one.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "worker/gguf_file.h"
#include "worker/tokenizer/bpe_tokenizer.h"

namespace sparsefill::worker {

// Reads tokenizer.ggml.model (must be "gpt2": byte-level BPE), .pre, .tokens, .token_type,
// .merges, .bos_token_id, .eos_token_id and .add_bos_token. NotFound when the file has no
// tokenizer; other errors name the key.
absl::StatusOr<std::unique_ptr<BpeTokenizer>> TokenizerFromGguf(const GgufFile& file);

}  // namespace sparsefill::worker
