#include "worker/tokenizer/byte_level.h"

#include <array>

#include "worker/utf8.h"

namespace sparsefill::worker {
namespace {

constexpr bool MapsToItself(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

struct Tables {
  std::array<char32_t, 256> to_unicode{};
  std::array<int16_t, 512> to_byte{};  // every stand-in is below U+0200; -1 = none

  Tables() {
    to_byte.fill(-1);
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      to_unicode[b] = MapsToItself(b) ? static_cast<char32_t>(b) : 0x100 + shifted++;
      to_byte[to_unicode[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

char32_t ByteToUnicode(uint8_t byte) { return GetTables().to_unicode[byte]; }

std::optional<uint8_t> UnicodeToByte(char32_t c) {
  if (c >= 512 || GetTables().to_byte[c] < 0) return std::nullopt;
  return static_cast<uint8_t>(GetTables().to_byte[c]);
}

std::string BytesToByteLevel(absl::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(b)), &out);
  return out;
}

std::optional<std::string> ByteLevelToBytes(absl::string_view text) {
  std::string out;
  for (const CodePoint& cp : DecodeUtf8(text)) {
    const std::optional<uint8_t> b = UnicodeToByte(cp.value);
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
  }
  return out;
}

}  // namespace sparsefill::worker
