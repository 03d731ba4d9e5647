#include "worker/tokenizer/pretokenizer.h"

#include "absl/strings/str_cat.h"
#include "worker/tokenizer/unicode_classes.h"
#include "worker/utf8.h"

namespace sparsefill::worker {
namespace {

bool IsLetter(char32_t c) { return IsUnicodeLetter(c); }
bool IsNumber(char32_t c) { return IsUnicodeNumber(c); }
bool IsSpace(char32_t c) { return IsUnicodeWhitespace(c); }
bool IsOther(char32_t c) { return !IsSpace(c) && !IsLetter(c) && !IsNumber(c); }
bool IsNewline(char32_t c) { return c == '\r' || c == '\n'; }
char32_t Lower(char32_t c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

// Splits code points [begin, end) of `cps` into the pieces of one regex; each piece is a
// [first, last) range of code point indices.
class Splitter {
 public:
  Splitter(const std::vector<CodePoint>& cps, size_t begin, size_t end)
      : cps_(cps), begin_(begin), end_(end) {}

  // Emits the regex's matches one after another (the gpt2 regex, or qwen2's with `qwen`).
  template <typename Emit>
  void Split(bool qwen, Emit emit) const {
    for (size_t i = begin_; i < end_;) {
      const size_t n = Match(i, qwen);
      emit(i, i + n);
      i += n;
    }
  }

 private:
  char32_t At(size_t i) const { return i < end_ ? cps_[i].value : 0; }
  bool Has(size_t i) const { return i < end_; }
  // Length of the run of `pred` characters starting at i.
  template <typename Pred>
  size_t Run(size_t i, Pred pred) const {
    size_t j = i;
    while (j < end_ && pred(cps_[j].value)) ++j;
    return j - i;
  }

  // 's 't 're 've 'm 'll 'd (case-insensitive for qwen2): the length, or 0.
  size_t Contraction(size_t i, bool fold) const {
    if (At(i) != '\'' || !Has(i + 1)) return 0;
    auto ch = [&](size_t k) { return fold ? Lower(At(k)) : At(k); };
    const char32_t a = ch(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (!Has(i + 2)) return 0;
    const char32_t b = ch(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  // \s+(?!\S) then \s+ : a whitespace run keeps its last character for the next piece when a
  // non-space follows it (unless it is only one character long).
  size_t Whitespace(size_t i) const {
    const size_t run = Run(i, IsSpace);
    if (i + run == end_ || run == 1) return run;
    return run - 1;
  }

  // The length of the regex's match at i (always >= 1: every character matches something).
  size_t Match(size_t i, bool qwen) const {
    if (size_t n = Contraction(i, qwen); n > 0) return n;
    const char32_t c = At(i);
    if (!qwen) {
      //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
      for (bool (*cls)(char32_t) : {IsLetter, IsNumber, IsOther}) {
        if (c == ' ' && Has(i + 1) && cls(At(i + 1))) return 1 + Run(i + 1, cls);
        if (cls(c)) return Run(i, cls);
      }
      return Whitespace(i);
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!IsNewline(c) && !IsLetter(c) && !IsNumber(c) && Has(i + 1) && IsLetter(At(i + 1))) {
      return 1 + Run(i + 1, IsLetter);
    }
    if (IsLetter(c)) return Run(i, IsLetter);
    // \p{N}
    if (IsNumber(c)) return 1;
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    size_t start = i;
    if (c == ' ' && Has(i + 1) && IsOther(At(i + 1))) start = i + 1;
    if (Has(start) && IsOther(At(start))) {
      const size_t j = start + Run(start, IsOther);
      return j + Run(j, IsNewline) - i;
    }
    // \s*[\r\n]+ : the whitespace run up to and including its last newline.
    const size_t run = Run(i, IsSpace);
    for (size_t k = i + run; k > i; --k) {
      if (IsNewline(At(k - 1))) return k - i;
    }
    return Whitespace(i);
  }

  const std::vector<CodePoint>& cps_;
  size_t begin_, end_;
};

}  // namespace

absl::StatusOr<PreTokenizer> PreTokenizerFromName(absl::string_view name) {
  if (name == "gpt2" || name == "default") return PreTokenizer::kGpt2;
  if (name == "smollm") return PreTokenizer::kSmolLM;
  if (name == "qwen2" || name == "deepseek-r1-qwen") return PreTokenizer::kQwen2;
  return absl::UnimplementedError(
      absl::StrCat("pre-tokenizer '", name,
                   "' is not supported (supported: gpt2, smollm, qwen2, "
                   "deepseek-r1-qwen)"));
}

std::vector<absl::string_view> PreTokenize(PreTokenizer kind, absl::string_view text) {
  const std::vector<CodePoint> cps = DecodeUtf8(text);
  std::vector<absl::string_view> pieces;
  auto emit = [&](size_t first, size_t last) {
    const size_t begin = cps[first].offset;
    const size_t end = cps[last - 1].offset + cps[last - 1].length;
    pieces.push_back(text.substr(begin, end - begin));
  };
  switch (kind) {
    case PreTokenizer::kGpt2:
      Splitter(cps, 0, cps.size()).Split(/*qwen=*/false, emit);
      break;
    case PreTokenizer::kQwen2:
      Splitter(cps, 0, cps.size()).Split(/*qwen=*/true, emit);
      break;
    case PreTokenizer::kSmolLM: {
      // Every number character is a piece of its own; the gpt2 regex splits the runs between.
      size_t i = 0;
      while (i < cps.size()) {
        if (IsNumber(cps[i].value)) {
          emit(i, i + 1);
          ++i;
          continue;
        }
        size_t j = i;
        while (j < cps.size() && !IsNumber(cps[j].value)) ++j;
        Splitter(cps, i, j).Split(/*qwen=*/false, emit);
        i = j;
      }
      break;
    }
  }
  return pieces;
}

}  // namespace sparsefill::worker
