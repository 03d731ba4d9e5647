#include "worker/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/utf8.h"

namespace sparsefill::worker {

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(BpeTokenizerSpec spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer: empty vocabulary");
  if (!spec.types.empty() && spec.types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: ", spec.types.size(), " token types for ", n, " tokens"));
  }
  for (int32_t id : {spec.bos_id, spec.eos_id}) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: special token id ", id, " outside the vocabulary of ", n));
    }
  }
  if (spec.add_bos && spec.bos_id < 0) {
    return absl::InvalidArgumentError("tokenizer: adds a BOS token but has no BOS id");
  }
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer(std::move(spec)));
  const BpeTokenizerSpec& s = t->spec_;
  t->ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!t->ids_.emplace(s.tokens[i], static_cast<int32_t>(i)).second) {
      // Vocabularies padded with placeholders may repeat an unused token: keep the first id.
      if (!s.types.empty() && s.types[i] == TokenType::kUnused) continue;
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: token ", i, " ('", s.tokens[i], "') is a duplicate"));
    }
    const TokenType type = s.types.empty() ? TokenType::kNormal : s.types[i];
    if ((type == TokenType::kControl || type == TokenType::kUserDefined) && !s.tokens[i].empty()) {
      t->specials_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(t->specials_.begin(), t->specials_.end(),
                   [&](int32_t a, int32_t b) { return s.tokens[a].size() > s.tokens[b].size(); });
  t->merge_ranks_.reserve(s.merges.size());
  for (size_t r = 0; r < s.merges.size(); ++r) {
    const std::string& m = s.merges[r];
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
        m.find(' ', space + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: merge ", r, " ('", m, "') is not two space-separated parts"));
    }
    t->merge_ranks_.emplace(m, static_cast<int32_t>(r));  // an earlier duplicate keeps its rank
  }
  return t;
}

int32_t BpeTokenizer::MatchSpecial(absl::string_view text, size_t pos, size_t* length) const {
  const absl::string_view rest = text.substr(pos);
  for (int32_t id : specials_) {
    const std::string& tok = spec_.tokens[id];
    if (rest.size() >= tok.size() && rest.compare(0, tok.size(), tok) == 0) {
      *length = tok.size();
      return id;
    }
  }
  return -1;
}

absl::Status BpeTokenizer::EncodePiece(absl::string_view piece, std::vector<int32_t>* out) const {
  const std::string mapped = BytesToByteLevel(piece);
  // One symbol per code point of the byte-level string, in a linked list; bytes the vocabulary
  // lacks are dropped before merging, as Hugging Face's BPE does without an unknown token
  // (SmolLM2 lacks a few control bytes and bytes that never occur in UTF-8).
  struct Symbol {
    std::string text;
    int prev, next;    // neighbours in the list, -1 at the ends
    uint32_t version;  // bumped when the symbol changes or dies: older candidates are stale
  };
  std::vector<Symbol> symbols;
  for (const CodePoint& cp : DecodeUtf8(mapped)) {
    std::string text = mapped.substr(cp.offset, cp.length);
    if (!ids_.contains(text)) continue;
    const int i = static_cast<int>(symbols.size());
    symbols.push_back(Symbol{std::move(text), i - 1, -1, 0});
    if (i > 0) symbols[i - 1].next = i;
  }
  // Candidate merges of adjacent pairs, lowest rank first, then leftmost: the order of the
  // reference implementation, in O(n log n) for long pieces.
  struct Candidate {
    int32_t rank;
    int left, right;
    uint32_t left_version, right_version;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  std::string key;
  auto consider = [&](int left) {
    const int right = left < 0 ? -1 : symbols[left].next;
    if (right < 0) return;
    key.assign(symbols[left].text).append(" ").append(symbols[right].text);
    auto it = merge_ranks_.find(key);
    if (it == merge_ranks_.end()) return;
    queue.push(Candidate{it->second, left, right, symbols[left].version, symbols[right].version});
  };
  for (int i = 0; i < static_cast<int>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    Symbol& right = symbols[c.right];
    if (left.version != c.left_version || right.version != c.right_version) continue;
    left.text += right.text;  // the right symbol joins the left one and leaves the list
    ++left.version;
    ++right.version;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    consider(left.prev);
    consider(c.left);
  }
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    auto it = ids_.find(symbols[i].text);
    if (it == ids_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer: the vocabulary has no token for '",
                                                     symbols[i].text, "' (in the text '", piece,
                                                     "')"));
    }
    out->push_back(it->second);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::Encode(absl::string_view text,
                                                          bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special && spec_.add_bos) ids.push_back(spec_.bos_id);
  size_t start = 0;  // of the text not yet encoded
  auto flush = [&](size_t end) -> absl::Status {
    for (absl::string_view piece :
         PreTokenize(spec_.pre_tokenizer, text.substr(start, end - start))) {
      if (absl::Status s = EncodePiece(piece, &ids); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    const int32_t special = specials_.empty() ? -1 : MatchSpecial(text, pos, &length);
    if (special < 0) {
      ++pos;
      continue;
    }
    if (absl::Status s = flush(pos); !s.ok()) return s;
    ids.push_back(special);
    pos += length;
    start = pos;
  }
  if (absl::Status s = flush(text.size()); !s.ok()) return s;
  return ids;
}

std::string BpeTokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const std::string& tok = spec_.tokens[id];
    const TokenType type = spec_.types.empty() ? TokenType::kNormal : spec_.types[id];
    if (type == TokenType::kControl || type == TokenType::kUserDefined) {
      out += tok;
      continue;
    }
    const std::optional<std::string> bytes = ByteLevelToBytes(tok);
    out += bytes ? *bytes : tok;
  }
  return out;
}

}  // namespace sparsefill::worker
