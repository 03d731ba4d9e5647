// The `sparsefill prefill` and `sparsefill info` subcommands as a user runs them, against the
// in-process stand-in service serving the embedded model: `prefill --save-kv` writes the same
// bytes as `run --save-kv`, `info` shows the model, and failures give clear messages and the
// documented exit codes. (tests/client/client_integration_test.cc repeats the comparison
// against the real server.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/client/cli_runner.h"
#include "tests/client/fake_prefill_service.h"
#include "worker/backend_factory.h"
#include "worker/model.h"

namespace sparsefill::testing {
namespace {

using ::testing::HasSubstr;

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model =
        worker::Model::Load(worker::ModelLoadOptions{}, worker::MakeBackend("cpu").value());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::shared_ptr<const worker::Model>(*std::move(model));
  }
  static void TearDownTestSuite() { model_.reset(); }

  void SetUp() override {
    // Small chunks so each layer arrives in several pieces over token and head ranges.
    ServeModel(service_, model_, 16);
    server_ = std::make_unique<FakeServer>(&service_);
    tokens_file_ = dir_.File("tokens.txt");
    std::vector<int32_t> tokens;
    for (int i = 0; i < 53; ++i) tokens.push_back((i * 131 + 7) % 8192);
    WriteTokenFile(tokens_file_, tokens);
  }

  static std::shared_ptr<const worker::Model> model_;
  FakePrefillService service_;
  std::unique_ptr<FakeServer> server_;
  TempDir dir_;
  std::string tokens_file_;
};

std::shared_ptr<const worker::Model> CliTest::model_;

TEST_F(CliTest, PrefillWritesTheSameBytesAsRun) {
  const std::string remote = dir_.File("remote.safetensors");
  const std::string local = dir_.File("local.safetensors");
  const CliResult prefill = RunSparsefill(
      {"prefill", "--server", server_->target(), "--tokens", tokens_file_, "--save-kv", remote});
  ASSERT_EQ(prefill.exit_code, 0) << prefill.output;
  const CliResult run = RunSparsefill({"run", "--tokens", tokens_file_, "--save-kv", local});
  ASSERT_EQ(run.exit_code, 0) << run.output;

  const std::string a = ReadFileBytes(remote), b = ReadFileBytes(local);
  ASSERT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << "sizes " << a.size() << " and " << b.size();

  EXPECT_THAT(prefill.output, HasSubstr("53 tokens, 4 layers, attention dense"));
  EXPECT_THAT(prefill.output, HasSubstr("(raw_fp32)"));
  EXPECT_THAT(prefill.output, HasSubstr("first      token "));
  EXPECT_THAT(prefill.output, HasSubstr("saved      " + remote));
}

TEST_F(CliTest, PrefillWithBf16WritesRoundedKv) {
  const std::string out = dir_.File("bf16.safetensors");
  const CliResult prefill =
      RunSparsefill({"prefill", "--server", server_->target(), "--tokens", tokens_file_,
                     "--save-kv", out, "--codec", "raw_bf16", "--request-id", "cli-bf16"});
  ASSERT_EQ(prefill.exit_code, 0) << prefill.output;
  EXPECT_THAT(prefill.output, HasSubstr("(raw_bf16)"));
  // Every float32 K/V value in the file is a bf16 value: its low 16 bits are zero. (The logits
  // are float32 and follow the KV tensors; check only the first layer's K.)
  const std::string bytes = ReadFileBytes(out);
  uint64_t header = 0;
  for (int i = 0; i < 8; ++i) header |= uint64_t{static_cast<uint8_t>(bytes[i])} << (8 * i);
  const size_t data = 8 + header;
  const size_t layer0_k_bytes = 53 * 2 * 64 * 4;  // embedded model: 2 KV heads x 64
  ASSERT_GE(bytes.size(), data + layer0_k_bytes);
  for (size_t i = data; i < data + layer0_k_bytes; i += 4) {
    ASSERT_EQ(bytes[i], 0);
    ASSERT_EQ(bytes[i + 1], 0);
  }
}

TEST_F(CliTest, PrefillWithLosslessWritesTheSameFileAsRawBf16) {
  const std::string raw = dir_.File("raw-bf16.safetensors");
  const std::string lossless = dir_.File("lossless.safetensors");
  const CliResult a = RunSparsefill({"prefill", "--server", server_->target(), "--tokens",
                                     tokens_file_, "--save-kv", raw, "--codec", "raw_bf16"});
  ASSERT_EQ(a.exit_code, 0) << a.output;
  const CliResult b = RunSparsefill({"prefill", "--server", server_->target(), "--tokens",
                                     tokens_file_, "--save-kv", lossless, "--codec", "lossless"});
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_THAT(b.output, HasSubstr("(lossless)"));
  EXPECT_TRUE(ReadFileBytes(raw) == ReadFileBytes(lossless)) << "LOSSLESS is bit-exact with bf16";
}

TEST_F(CliTest, PrefillWithInt4AndAGroupSize) {
  const std::string out = dir_.File("int4.safetensors");
  const CliResult prefill =
      RunSparsefill({"prefill", "--server", server_->target(), "--tokens", tokens_file_,
                     "--save-kv", out, "--codec", "int4", "--int4-group", "16"});
  ASSERT_EQ(prefill.exit_code, 0) << prefill.output;
  EXPECT_THAT(prefill.output, HasSubstr("(int4)"));
  EXPECT_GT(ReadFileBytes(out).size(), 53u * 2 * 64 * 4);
}

TEST_F(CliTest, PrefillProgressLinesWhenNotATerminal) {
  const CliResult prefill = RunSparsefill(
      {"prefill", "--server", server_->target(), "--tokens", tokens_file_, "--progress"});
  ASSERT_EQ(prefill.exit_code, 0) << prefill.output;
  EXPECT_THAT(prefill.output, HasSubstr("prefill: layer 0/4 computed"));
  EXPECT_THAT(prefill.output, HasSubstr("prefill: layer 4/4 computed"));
}

TEST_F(CliTest, InfoPrintsTheModel) {
  const CliResult info = RunSparsefill({"info", "--server", server_->target()});
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_THAT(info.output, HasSubstr("model        " + model_->name()));
  EXPECT_THAT(info.output, HasSubstr("layers       4"));
  EXPECT_THAT(info.output,
              HasSubstr("KV codecs    raw_bf16, raw_fp32, lossless, fp8_e4m3, int8, int4"));
}

TEST_F(CliTest, UnreachableServerIsExitOneWithTheCode) {
  std::string target;
  {
    FakePrefillService idle;
    FakeServer closed(&idle);
    target = closed.target();
  }
  const CliResult prefill =
      RunSparsefill({"prefill", "--server", target, "--tokens", tokens_file_, "--timeout", "5"});
  EXPECT_EQ(prefill.exit_code, 1);
  EXPECT_THAT(prefill.output, HasSubstr("sparsefill prefill: server unavailable at " + target));
  EXPECT_THAT(prefill.output, HasSubstr("(UNAVAILABLE)"));
  const CliResult info = RunSparsefill({"info", "--server", target});
  EXPECT_EQ(info.exit_code, 1);
  EXPECT_THAT(info.output, HasSubstr("sparsefill info: server unavailable at " + target));
}

TEST_F(CliTest, ServerErrorsNameTheCode) {
  service_.script = [](const v1::PrefillRequest&) { return std::vector<v1::PrefillResponse>(); };
  service_.final_status =
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "token_ids[3] = 9000 >= vocab_size 8192");
  const CliResult prefill =
      RunSparsefill({"prefill", "--server", server_->target(), "--tokens", tokens_file_});
  EXPECT_EQ(prefill.exit_code, 1);
  EXPECT_THAT(prefill.output, HasSubstr("INVALID_ARGUMENT from " + server_->target() +
                                        ": token_ids[3] = 9000 >= vocab_size 8192"));
}

TEST_F(CliTest, TimeoutIsHonoured) {
  service_.delay_per_message = absl::Milliseconds(100);
  const CliResult prefill = RunSparsefill(
      {"prefill", "--server", server_->target(), "--tokens", tokens_file_, "--timeout", "0.3"});
  EXPECT_EQ(prefill.exit_code, 1);
  EXPECT_THAT(prefill.output, HasSubstr("DEADLINE_EXCEEDED"));
}

TEST_F(CliTest, UsageErrorsAreExitTwoAndHelpIsExitZero) {
  EXPECT_EQ(RunSparsefill({"prefill", "--tokens", tokens_file_}).exit_code, 2);  // no --server
  EXPECT_EQ(RunSparsefill({"prefill", "--server", server_->target()}).exit_code, 2);
  const CliResult codec = RunSparsefill(
      {"prefill", "--server", server_->target(), "--tokens", tokens_file_, "--codec", "int3"});
  EXPECT_EQ(codec.exit_code, 2);
  EXPECT_THAT(codec.output, HasSubstr("--codec must be raw_fp32, raw_bf16, lossless, fp8_e4m3, "
                                      "int8 or int4, got 'int3'"));
  EXPECT_EQ(RunSparsefill({"prefill", "--server", server_->target(), "--tokens", tokens_file_,
                           "--codec", "INT4"})
                .exit_code,
            2);
  const CliResult group = RunSparsefill(
      {"prefill", "--server", server_->target(), "--tokens", tokens_file_, "--int4-group", "32"});
  EXPECT_EQ(group.exit_code, 2);
  EXPECT_THAT(group.output, HasSubstr("--int4-group needs --codec int4"));
  EXPECT_EQ(RunSparsefill({"prefill", "--server", server_->target(), "--tokens", tokens_file_,
                           "--codec", "int4", "--int4-group", "0"})
                .exit_code,
            2);
  EXPECT_EQ(RunSparsefill({"prefill", "--server", server_->target(), "--tokens", tokens_file_,
                           "--timeout", "-1"})
                .exit_code,
            2);
  EXPECT_EQ(RunSparsefill({"info"}).exit_code, 2);

  const CliResult help = RunSparsefill({"prefill", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("usage: sparsefill prefill --server HOST:PORT"));
  EXPECT_THAT(help.output, HasSubstr("(default: raw_fp32)"));
  EXPECT_EQ(RunSparsefill({"info", "--help"}).exit_code, 0);
}

TEST_F(CliTest, MissingTokenFileIsExitOne) {
  const CliResult prefill =
      RunSparsefill({"prefill", "--server", server_->target(), "--tokens", dir_.File("nope.txt")});
  EXPECT_EQ(prefill.exit_code, 1);
  EXPECT_THAT(prefill.output, HasSubstr("nope.txt"));
}

}  // namespace
}  // namespace sparsefill::testing
