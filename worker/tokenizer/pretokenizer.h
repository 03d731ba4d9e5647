// Pre-tokenization of byte-level BPE models: the text is cut into pieces (words with their
// leading space, number runs, punctuation runs, whitespace) before BPE merges within each piece.
// The splitting regexes of GPT-2 and Qwen2 are implemented by hand over code points:
//   gpt2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//          \s*[\r\n]+|\s+(?!\S)|\s+
// SmolLM's tokenizer isolates every number character first (HF's Digits(individual_digits))
// and runs the gpt2 regex on the rest.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sparsefill::worker {

enum class PreTokenizer { kGpt2, kSmolLM, kQwen2 };

// The pre-tokenizer of a GGUF `tokenizer.ggml.pre` name ("gpt2", "smollm", "qwen2",
// "deepseek-r1-qwen"); Unimplemented names the others.
absl::StatusOr<PreTokenizer> PreTokenizerFromName(absl::string_view name);

// The pieces of `text`, in order; they concatenate to `text`.
std::vector<absl::string_view> PreTokenize(PreTokenizer kind, absl::string_view text);

}  // namespace sparsefill::worker
