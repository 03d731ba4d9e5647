// A byte-level BPE tokenizer (GPT-2 family: SmolLM2, Qwen2, Llama 3) from a vocabulary, its
// ranked merges and its special tokens, as GGUF files carry them:
//   1. special tokens (control and user-defined) are cut out of the text first, longest match
//      first, and map straight to their ids;
//   2. the rest is pre-tokenized (pretokenizer.h) and each piece's bytes are written in the
//      byte-level alphabet (byte_level.h);
//   3. within a piece (bytes the vocabulary lacks dropped, as Hugging Face does), the adjacent
//      pair with the lowest merge rank is merged, everywhere in the piece from left to right,
//      until no pair has a rank; the symbols are then looked up.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/tokenizer/pretokenizer.h"

namespace sparsefill::worker {

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct BpeTokenizerSpec {
  std::vector<std::string> tokens;  // id -> token, in the byte-level alphabet
  std::vector<TokenType> types;     // id -> type; empty = all normal
  std::vector<std::string> merges;  // "left right", rank = index
  PreTokenizer pre_tokenizer = PreTokenizer::kGpt2;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  bool add_bos = false;  // Encode(..., add_special=true) starts with bos_id
};

class BpeTokenizer {
 public:
  // Errors: duplicate tokens, a merge that is not two space-separated parts, a special id out of
  // range.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(BpeTokenizerSpec spec);

  // Token ids of `text` (UTF-8; invalid bytes are encoded as their bytes, those the vocabulary
  // lacks dropped). With add_special, BOS first when the model adds one. Error only when a merge
  // makes a symbol the vocabulary lacks (a malformed vocabulary).
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              bool add_special = true) const;
  // The bytes of `ids` (special tokens as their text; invalid ids as ""). Not always UTF-8: a
  // token may end inside a character (Hugging Face substitutes U+FFFD there).
  std::string Decode(std::span<const int32_t> ids) const;

  int32_t vocab_size() const { return static_cast<int32_t>(spec_.tokens.size()); }
  int32_t bos_id() const { return spec_.bos_id; }
  int32_t eos_id() const { return spec_.eos_id; }
  const std::string& token(int32_t id) const { return spec_.tokens[id]; }

 private:
  explicit BpeTokenizer(BpeTokenizerSpec spec) : spec_(std::move(spec)) {}
  absl::Status EncodePiece(absl::string_view piece, std::vector<int32_t>* out) const;
  // The special token starting at `text[pos]`, longest first: its id and length, or -1.
  int32_t MatchSpecial(absl::string_view text, size_t pos, size_t* length) const;

  BpeTokenizerSpec spec_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::string, int32_t> merge_ranks_;  // "left right" -> rank
  std::vector<int32_t> specials_;                         // ids, longest text first
};

}  // namespace sparsefill::worker
