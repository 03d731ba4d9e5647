// The character classes the byte-level BPE pre-tokenizers split on: \p{L}, \p{N} and \s as
// Oniguruma (the regex engine of Hugging Face tokenizers) defines them.
#pragma once

namespace sparsefill::worker {

// General category L (Lu, Ll, Lt, Lm, Lo).
bool IsUnicodeLetter(char32_t c);
// General category N (Nd, Nl, No).
bool IsUnicodeNumber(char32_t c);
// The White_Space property: \t \n \v \f \r, space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
// U+2029, U+202F, U+205F, U+3000.
constexpr bool IsUnicodeWhitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace sparsefill::worker
