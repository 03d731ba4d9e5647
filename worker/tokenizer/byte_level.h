// GPT-2's byte-level alphabet: every byte maps to one printable code point, so BPE vocabularies
// are strings of visible characters. Bytes 33-126, 161-172 and 174-255 map to themselves; the
// other 68 (controls, space, 127-160, 173) map to U+0100 + k in byte order ("Ġ" is the space).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace sparsefill::worker {

// The code point standing for `byte`.
char32_t ByteToUnicode(uint8_t byte);
// The byte a code point stands for, or nullopt when it is not in the alphabet.
std::optional<uint8_t> UnicodeToByte(char32_t c);

// Raw bytes -> the UTF-8 string of their stand-in code points.
std::string BytesToByteLevel(absl::string_view bytes);
// The inverse; nullopt when `text` has a code point outside the alphabet.
std::optional<std::string> ByteLevelToBytes(absl::string_view text);

}  // namespace sparsefill::worker
