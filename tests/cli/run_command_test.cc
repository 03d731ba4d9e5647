// `sparsefill run` as a user runs it: a subprocess, its exit code, its output and its files.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/kernels/test_util.h"
#include "tests/worker/gguf_golden.h"
#include "tests/worker/gguf_writer.h"
#include "worker/gguf_file.h"
#include "worker/safetensors.h"
#include "worker/tokenizer/byte_level.h"
#include "worker/tokenizer/gguf_tokenizer.h"
#include "worker/weight_source.h"

namespace sparsefill {
namespace {

namespace fs = std::filesystem;

const std::string kBin = std::string(SPARSEFILL_BIN_DIR) + "/sparsefill";
const std::string kGolden = std::string(SPARSEFILL_TEST_DATA_DIR) + "/tiny-llama3";

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

ProcessResult RunCli(const std::string& args) {
  ProcessResult r;
  FILE* p = ::popen((kBin + " " + args + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class RunCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sparsefill-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::vector<float> Tensor(const worker::SafetensorsFile& f, const std::string& name) {
  const worker::TensorView* t = f.Find(name);
  EXPECT_NE(t, nullptr) << name;
  return t == nullptr ? std::vector<float>{} : worker::ToFloat32(*t).value();
}

TEST_F(RunCommandTest, GoldenModelSavesKvMatchingTransformers) {
  const auto r = RunCli("run --model " + kGolden + " --tokens " + kGolden +
                        "/golden.safetensors --save-kv " + Path("kv.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1000 tokens, 3 layers"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tokens/s"), std::string::npos) << r.output;
  auto out = worker::SafetensorsFile::Open(Path("kv.safetensors"));
  ASSERT_TRUE(out.ok()) << out.status();
  auto golden = worker::SafetensorsFile::Open(kGolden + "/golden.safetensors").value();
  for (const std::string name :
       {"layer.0.k", "layer.0.v", "layer.2.k", "layer.2.v", "logits_last"}) {
    const auto got = Tensor(**out, name), want = Tensor(*golden, name);
    EXPECT_EQ((*out)->Find(name)->shape, golden->Find(name)->shape) << name;
    EXPECT_LT(testing::RelativeError(got, want), 1e-4) << name;
  }
  const auto logits = Tensor(*golden, "logits_last");
  int32_t first;
  std::memcpy(&first, (*out)->Find("first_token")->data, 4);
  EXPECT_EQ(first, std::max_element(logits.begin(), logits.end()) - logits.begin());
  EXPECT_FALSE(fs::exists(Path("kv.safetensors.partial")));
}

TEST_F(RunCommandTest, TextTokenFileEqualsSafetensorsTokens) {
  std::ofstream(Path("ids.txt")) << "5 17 3\n200 511\t0\n";
  const std::vector<int32_t> ids = {5, 17, 3, 200, 511, 0};
  worker::SafetensorsWriter w;
  w.AddInt32("input_ids", {6}, ids.data());
  ASSERT_TRUE(w.Write(Path("ids.safetensors")).ok());
  ASSERT_EQ(
      RunCli("run --model " + kGolden + " --tokens " + Path("ids.txt") + " --save-kv " + Path("a"))
          .exit_code,
      0);
  ASSERT_EQ(RunCli("run --model " + kGolden + " --tokens " + Path("ids.safetensors") +
                   " --save-kv " + Path("b"))
                .exit_code,
            0);
  std::ifstream a(Path("a"), std::ios::binary), b(Path("b"), std::ios::binary);
  const std::string bytes_a((std::istreambuf_iterator<char>(a)), {}),
      bytes_b((std::istreambuf_iterator<char>(b)), {});
  EXPECT_FALSE(bytes_a.empty());
  EXPECT_EQ(bytes_a, bytes_b);
}

TEST_F(RunCommandTest, EmbeddedModelAndSparseModes) {
  std::string ids;
  for (int i = 0; i < 300; ++i) ids += std::to_string((i * 37) % 8192) + " ";
  std::ofstream(Path("ids.txt")) << ids;
  const auto dense = RunCli("run --tokens " + Path("ids.txt"));
  ASSERT_EQ(dense.exit_code, 0) << dense.output;
  EXPECT_NE(dense.output.find("sparsefill-embedded-tiny"), std::string::npos) << dense.output;
  EXPECT_NE(dense.output.find("mean density 1.0000"), std::string::npos) << dense.output;

  std::ofstream(Path("patterns.json"))
      << R"({"default": {"type": "a_shape", "n_init": 4, "n_local": 32}})";
  const auto sparse =
      RunCli("run --tokens " + Path("ids.txt") + " --attention " + Path("patterns.json"));
  ASSERT_EQ(sparse.exit_code, 0) << sparse.output;
  EXPECT_EQ(sparse.output.find("mean density 1.0000"), std::string::npos) << sparse.output;
  EXPECT_EQ(RunCli("run --tokens " + Path("ids.txt") + " --attention sparse").exit_code, 0);
}

TEST_F(RunCommandTest, ErrorsAreClearAndLeaveNoFile) {
  std::ofstream(Path("ids.txt")) << "1 2 99999\n";
  auto r = RunCli("run --model " + kGolden + " --tokens " + Path("ids.txt") + " --save-kv " +
                  Path("kv"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("token id 99999 at position 2"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(Path("kv")));
  EXPECT_FALSE(fs::exists(Path("kv.partial")));

  r = RunCli("run --model " + kGolden);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("exactly one of --tokens, --text, --text-file"), std::string::npos)
      << r.output;
  r = RunCli("run --text hi --tokens " + Path("ids.txt"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("exactly one of"), std::string::npos) << r.output;

  r = RunCli("run --text hi");  // the embedded model has no tokenizer
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("has no tokenizer: give the prompt as token ids with --tokens"),
            std::string::npos)
      << r.output;

  r = RunCli("run --tokens " + Path("ids.txt") + " --frobnicate 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown flag --frobnicate"), std::string::npos) << r.output;

  r = RunCli("run --model " + Path("no-such-model") + " --tokens " + Path("ids.txt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no-such-model"), std::string::npos) << r.output;

  std::ofstream(Path("bad.json")) << R"({"default": {"type": "vertical_slash"}})";
  std::ofstream(Path("ok.txt")) << "1 2 3";
  r = RunCli("run --tokens " + Path("ok.txt") + " --attention " + Path("bad.json"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("missing 'vertical'"), std::string::npos) << r.output;

  std::ofstream(Path("words.txt")) << "1 two 3";
  r = RunCli("run --tokens " + Path("words.txt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("'two' is not a token id"), std::string::npos) << r.output;
}

// A byte-level BPE tokenizer of `vocab` tokens for the golden model: the 256 bytes, then "Ġ"
// + each letter and letter pairs as merges, the last token a control token.
void AddSyntheticTokenizer(testing::GgufWriter& w, int vocab) {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b)
    tokens.push_back(worker::BytesToByteLevel(std::string(1, static_cast<char>(b))));
  std::vector<std::string> merges;
  const std::string space = worker::BytesToByteLevel(" ");
  for (char a = 'a'; a <= 'z' && static_cast<int>(tokens.size()) < vocab - 1; ++a) {
    merges.push_back(space + " " + std::string(1, a));
    tokens.push_back(space + a);
  }
  for (char a = 'a'; a <= 'z'; ++a) {
    for (char b = 'a'; b <= 'z' && static_cast<int>(tokens.size()) < vocab - 1; ++b) {
      merges.push_back(std::string(1, a) + " " + b);
      tokens.push_back(std::string(1, a) + b);
    }
  }
  tokens.push_back("<|end|>");
  std::vector<int32_t> types(tokens.size(), 1);
  types.back() = 3;
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", "gpt2");
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddInt32Array("tokenizer.ggml.token_type", types);
  w.AddStringArray("tokenizer.ggml.merges", merges);
  w.AddUint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(tokens.size() - 1));
}

std::string FirstTokenLine(const std::string& output) {
  const size_t at = output.find("first ");
  return at == std::string::npos ? "" : output.substr(at, output.find('\n', at) - at);
}

TEST_F(RunCommandTest, GgufModelTakesTextThroughItsTokenizer) {
  const std::string model = Path("golden.gguf");
  testing::WriteGoldenAsGguf(model, /*q8=*/false,
                             [](testing::GgufWriter& w) { AddSyntheticTokenizer(w, 384); });
  const std::string text = "the quick brown fox<|end|> jumps over 12 lazy dogs";
  std::ofstream(Path("prompt.txt")) << text;

  // The same ids through --tokens: the tokenizer as the worker loads it.
  auto file = worker::GgufFile::Open(model);
  ASSERT_TRUE(file.ok()) << file.status();
  auto tokenizer = worker::TokenizerFromGguf(**file);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<int32_t> ids = (*tokenizer)->Encode(text).value();
  EXPECT_NE(std::find(ids.begin(), ids.end(), 383), ids.end()) << "the control token";
  std::ofstream ids_file(Path("ids.txt"));
  for (int32_t id : ids) ids_file << id << " ";
  ids_file.close();

  const auto by_text = RunCli("run --model gguf:" + model + " --text-file " + Path("prompt.txt"));
  ASSERT_EQ(by_text.exit_code, 0) << by_text.output;
  EXPECT_NE(by_text.output.find("prefill    " + std::to_string(ids.size()) + " tokens"),
            std::string::npos)
      << by_text.output;
  const auto by_ids = RunCli("run --model " + model + " --tokens " + Path("ids.txt"));
  ASSERT_EQ(by_ids.exit_code, 0) << by_ids.output;
  EXPECT_EQ(FirstTokenLine(by_text.output), FirstTokenLine(by_ids.output));
  // With a tokenizer the first token is printed as text too: "first      token N (logit x) "..."".
  EXPECT_NE(FirstTokenLine(by_text.output).find(" \""), std::string::npos) << by_text.output;
  const auto inline_text = RunCli("run --model gguf:" + model + " --text '" + text + "'");
  EXPECT_EQ(FirstTokenLine(inline_text.output), FirstTokenLine(by_text.output));
}

TEST_F(RunCommandTest, HelpDescribesEveryFlag) {
  const auto r = RunCli("run --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--model", "--tokens", "--text", "--text-file", "--save-kv", "--backend",
                           "--attention", "--pattern-config"}) {
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
  }
  const auto top = RunCli("--help");
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.output.find("prefill"), std::string::npos);
}

}  // namespace
}  // namespace sparsefill
