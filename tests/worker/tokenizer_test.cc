// The byte-level BPE tokenizer: its pieces (UTF-8, the byte alphabet, merges) on small inputs,
// and SmolLM2's tokenizer against Hugging Face `tokenizers` on a varied text sample
// (tests/data/smollm2-tokenizer, made by tests/data/gen_tokenizer_golden.py): the same ids for
// every text, and the same pieces from the gpt2 and qwen2 splitting regexes.
#include <gtest/gtest.h>

#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "tests/worker/gguf_writer.h"
#include "worker/gguf_file.h"
#include "worker/json.h"
#include "worker/model_config.h"
#include "worker/tokenizer/bpe_tokenizer.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/gguf_tokenizer.h"
#include "worker/tokenizer/pretokenizer.h"
#include "worker/tokenizer/unicode_classes.h"
#include "worker/utf8.h"

namespace sparsefill::worker {
namespace {

const std::string kData = std::string(SPARSEFILL_TEST_DATA_DIR) + "/smollm2-tokenizer";

TEST(Utf8Test, DecodesAndReplacesInvalidBytesOneByOne) {
  const std::vector<CodePoint> cps = DecodeUtf8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x89\xff\xc3");
  ASSERT_EQ(cps.size(), 6u);
  EXPECT_EQ(cps[0].value, U'a');
  EXPECT_EQ(cps[1].value, U'\u00e9');
  EXPECT_EQ(cps[2].value, U'\u20ac');
  EXPECT_EQ(cps[3].value, U'\U0001F389');
  EXPECT_EQ(cps[3].offset, 6u);
  EXPECT_EQ(cps[4].value, U'\uFFFD');  // 0xff
  EXPECT_EQ(cps[5].value, U'\uFFFD');  // truncated sequence
  EXPECT_EQ(cps[5].length, 1u);
  // Overlong "/" and a surrogate are invalid.
  EXPECT_EQ(DecodeUtf8("\xc0\xaf").size(), 2u);
  EXPECT_EQ(DecodeUtf8("\xed\xa0\x80").size(), 3u);
  std::string out;
  for (const CodePoint& cp : DecodeUtf8("x\xc3\xa9\xf0\x9f\x8e\x89")) AppendUtf8(cp.value, &out);
  EXPECT_EQ(out, "x\xc3\xa9\xf0\x9f\x8e\x89");
}

TEST(ByteLevelTest, Gpt2Alphabet) {
  EXPECT_EQ(ByteToUnicode(' '), U'\u0120');   // "Ġ"
  EXPECT_EQ(ByteToUnicode('\n'), U'\u010A');  // "Ċ"
  EXPECT_EQ(ByteToUnicode('A'), U'A');
  EXPECT_EQ(ByteToUnicode(0xAD), U'\u0143');  // the last of the shifted bytes
  EXPECT_EQ(ByteToUnicode(0xFF), U'\u00FF');
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(ByteLevelToBytes(BytesToByteLevel(all)), all);
  EXPECT_EQ(ByteLevelToBytes("\xe2\x82\xac"), std::nullopt);  // U+20AC is not in the alphabet
}

TEST(UnicodeClassesTest, LettersNumbersSpaces) {
  for (char32_t c : {U'a', U'Z', U'\u00e9', U'\u0416', U'\u65e5', U'\uD55C', U'\u05D0'}) {
    EXPECT_TRUE(IsUnicodeLetter(c)) << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U'0', U'9', U'\u00BD', U'\u0663', U'\u2167', U'\u4E00'}) {
    // U+4E00 (一) is a letter (Lo), not a number.
    EXPECT_EQ(IsUnicodeNumber(c), c != U'\u4E00') << static_cast<uint32_t>(c);
  }
  for (char32_t c : {U' ', U'-', U'\U0001F389', U'\u00A0'}) {
    EXPECT_FALSE(IsUnicodeLetter(c)) << static_cast<uint32_t>(c);
  }
  EXPECT_TRUE(IsUnicodeWhitespace(U'\u3000'));
  EXPECT_FALSE(IsUnicodeWhitespace(U'\u200B'));  // zero-width space is not White_Space
}

TEST(PreTokenizerTest, Gpt2Rules) {
  using V = std::vector<absl::string_view>;
  EXPECT_EQ(PreTokenize(PreTokenizer::kGpt2, "Hello  world's 42!!"),
            (V{"Hello", " ", " world", "'s", " 42", "!!"}));
  EXPECT_EQ(PreTokenize(PreTokenizer::kGpt2, "a \n b   "), (V{"a", " \n", " b", "   "}));
  EXPECT_EQ(PreTokenize(PreTokenizer::kSmolLM, "x 123"), (V{"x", " ", "1", "2", "3"}));
  EXPECT_EQ(PreTokenize(PreTokenizer::kQwen2, "IT'S 123\n\n x"),
            (V{"IT", "'S", " ", "1", "2", "3", "\n\n", " x"}));
  EXPECT_TRUE(PreTokenize(PreTokenizer::kGpt2, "").empty());
  EXPECT_FALSE(PreTokenizerFromName("llama-bpe").ok());
}

// A vocabulary where merge order matters: "a b" (rank 0) before "b c" (rank 1) turns "abc" into
// "ab" "c", not "a" "bc".
absl::StatusOr<std::unique_ptr<BpeTokenizer>> TinyTokenizer() {
  BpeTokenizerSpec spec;
  spec.tokens = {"<s>",
                 "a",
                 "b",
                 "c",
                 "ab",
                 "bc",
                 "\xc4\xa0",
                 "\xc4\xa0"
                 "a",
                 "abc"};
  spec.types = {TokenType::kControl, TokenType::kNormal, TokenType::kNormal,
                TokenType::kNormal,  TokenType::kNormal, TokenType::kNormal,
                TokenType::kNormal,  TokenType::kNormal, TokenType::kNormal};
  spec.merges = {"a b", "b c", "\xc4\xa0 a"};
  spec.bos_id = 0;
  spec.add_bos = true;
  return BpeTokenizer::Create(std::move(spec));
}

TEST(BpeTokenizerTest, MergesByRankAndHandlesSpecialTokens) {
  auto t = TinyTokenizer();
  ASSERT_TRUE(t.ok()) << t.status();
  // "abc" is in the vocabulary but no merge makes it: BPE gives "ab" "c".
  EXPECT_EQ((*t)->Encode("abc").value(), (std::vector<int32_t>{0, 4, 3}));
  EXPECT_EQ((*t)->Encode("bc a", false).value(), (std::vector<int32_t>{5, 7}));
  EXPECT_EQ((*t)->Encode("a<s>b", false).value(), (std::vector<int32_t>{1, 0, 2}));
  EXPECT_EQ((*t)->Decode(std::vector<int32_t>{0, 4, 3, 7}), "<s>abc a");
  // A byte the vocabulary lacks is dropped before merging, as Hugging Face's BPE does: "axb"
  // merges to "ab".
  EXPECT_TRUE((*t)->Encode("x", false).value().empty());
  EXPECT_EQ((*t)->Encode("axb", false).value(), (std::vector<int32_t>{4}));

  BpeTokenizerSpec bad;
  bad.tokens = {"a", "b"};
  bad.merges = {"ab"};
  EXPECT_FALSE(BpeTokenizer::Create(bad).ok());
  bad.merges = {};
  bad.tokens = {"a", "a"};
  EXPECT_FALSE(BpeTokenizer::Create(bad).ok());
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
  std::string decoded;
  std::vector<std::string> gpt2_pieces, qwen2_pieces;
};

std::vector<Case> ReferenceCases() {
  auto text = ReadTextFile(kData + "/expected.json");
  EXPECT_TRUE(text.ok()) << text.status();
  auto json = ParseJson(*text);
  EXPECT_TRUE(json.ok()) << json.status();
  std::vector<Case> cases;
  for (const JsonValue& c : json->Find("cases")->as_array()) {
    Case k;
    k.text = c.Find("text")->as_string();
    k.decoded = c.Find("decoded")->as_string();
    for (const JsonValue& id : c.Find("ids")->as_array())
      k.ids.push_back(static_cast<int32_t>(id.as_int()));
    for (const JsonValue& p : c.Find("gpt2_pieces")->as_array())
      k.gpt2_pieces.push_back(p.as_string());
    for (const JsonValue& p : c.Find("qwen2_pieces")->as_array())
      k.qwen2_pieces.push_back(p.as_string());
    cases.push_back(std::move(k));
  }
  return cases;
}

std::vector<std::string> Pieces(PreTokenizer kind, const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view p : PreTokenize(kind, text)) out.emplace_back(p);
  return out;
}

TEST(SmolLM2TokenizerTest, SplittingRegexesMatchTokenizers) {
  const std::vector<Case> cases = ReferenceCases();
  ASSERT_GE(cases.size(), 20u);
  for (const Case& c : cases) {
    EXPECT_EQ(Pieces(PreTokenizer::kGpt2, c.text), c.gpt2_pieces) << c.text;
    EXPECT_EQ(Pieces(PreTokenizer::kQwen2, c.text), c.qwen2_pieces) << c.text;
  }
}

TEST(SmolLM2TokenizerTest, MatchesTokenizersOnTheSample) {
  auto file = GgufFile::Open(kData + "/tokenizer.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto tokenizer = TokenizerFromGguf(**file);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 49152);
  EXPECT_EQ((*tokenizer)->bos_id(), 1);
  EXPECT_EQ((*tokenizer)->eos_id(), 2);
  size_t total = 0;
  for (const Case& c : ReferenceCases()) {
    auto ids = (*tokenizer)->Encode(c.text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c.ids) << c.text;
    // tokenizers decodes bytes that are not UTF-8 (here: left by a dropped lead byte) as U+FFFD;
    // ours returns the bytes themselves.
    const bool lossy = c.decoded.find("\xEF\xBF\xBD") != std::string::npos &&
                       c.text.find("\xEF\xBF\xBD") == std::string::npos;
    if (!lossy) {
      EXPECT_EQ((*tokenizer)->Decode(*ids), c.decoded);
    }
    total += c.ids.size();
  }
  EXPECT_GT(total, 400u);
}

TEST(SmolLM2TokenizerTest, AnyBytesRoundTrip) {
  // Byte-level BPE loses nothing: random bytes (invalid UTF-8 included), special-token text and
  // long runs decode back to the same bytes.
  auto file = GgufFile::Open(kData + "/tokenizer.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  auto tokenizer = TokenizerFromGguf(**file);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  // Bytes the vocabulary has (a few controls and non-UTF-8 bytes it lacks are dropped).
  std::vector<char> bytes;
  for (int b = 0; b < 256; ++b) {
    if (!(*tokenizer)->Encode(std::string(1, static_cast<char>(b)), false).value().empty()) {
      bytes.push_back(static_cast<char>(b));
    }
  }
  EXPECT_GE(bytes.size(), 230u);
  std::mt19937 rng(3);
  const std::string pieces[] = {"<|im_start|>", " ", "\n", "a", "\xc3\xa9",
                                "\xc3",         "7", "'s", "\t"};
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    const int n = static_cast<int>(rng() % 64);
    for (int i = 0; i < n; ++i) {
      if (rng() % 2 == 0) {
        text += bytes[rng() % bytes.size()];
      } else {
        text += pieces[rng() % std::size(pieces)];
      }
    }
    auto ids = (*tokenizer)->Encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ((*tokenizer)->Decode(*ids), text) << "trial " << trial;
  }
  const std::string spaces(5000, ' ');
  EXPECT_EQ((*tokenizer)->Decode((*tokenizer)->Encode(spaces).value()), spaces);
}

TEST(GgufTokenizerTest, MissingOrUnsupportedTokenizers) {
  const std::string path = ::testing::TempDir() + "/sparsefill-no-tokenizer.gguf";
  testing::GgufWriter none;
  none.AddString("general.architecture", "llama");
  ASSERT_TRUE(none.Write(path));
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(absl::IsNotFound(TokenizerFromGguf(**file).status()));

  testing::GgufWriter spm;
  spm.AddString("tokenizer.ggml.model", "llama");
  ASSERT_TRUE(spm.Write(path));
  file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const absl::Status s = TokenizerFromGguf(**file).status();
  EXPECT_NE(s.message().find("'tokenizer.ggml.model' is 'llama'"), std::string::npos) << s;
}

}  // namespace
}  // namespace sparsefill::worker
