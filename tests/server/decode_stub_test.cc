// sparsefill-decode-stub against an in-process server (embedded model): the KV arrives pulled or
// pushed (with connection drops injected), decoded from RAW_BF16 or LOSSLESS, and one decode step
// over it gives the same next token as a local float32 prefill of prompt + first token (--check,
// exit 3 on a mismatch).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/prefill_server.h"
#include "tests/client/cli_runner.h"
#include "tests/server/test_util.h"

namespace sparsefill::server {
namespace {

using ::testing::HasSubstr;

sparsefill::testing::CliResult RunStub(const std::vector<std::string>& args) {
  return sparsefill::testing::RunBinary("sparsefill-decode-stub", args);
}

class DecodeStubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = PrefillServer::Start(testing::EmbeddedModel(), testing::TestServerOptions());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    tokens_ = dir_.File("tokens.txt");
    sparsefill::testing::WriteTokenFile(tokens_, testing::RandomTokens(300, 8192, 17));
  }
  std::string Target() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  std::unique_ptr<PrefillServer> server_;
  sparsefill::testing::TempDir dir_;
  std::string tokens_;
};

TEST_F(DecodeStubTest, PulledLosslessKvGivesTheExactNextToken) {
  const auto r = RunStub({"--server", Target(), "--tokens", tokens_, "--codec", "lossless",
                          "--check", "--timeout", "60"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("pulled, lossless"));
  EXPECT_THAT(r.output, HasSubstr(": match"));
}

TEST_F(DecodeStubTest, PushedBf16KvWithDroppedConnectionsGivesTheExactNextToken) {
  const auto r = RunStub({"--server", Target(), "--tokens", tokens_, "--codec", "raw_bf16",
                          "--push", "--inject-drops", "2", "--check", "--timeout", "60"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("dropping the connection before chunk 1"));
  EXPECT_THAT(r.output, HasSubstr("dropping the connection before chunk 3"));
  EXPECT_THAT(r.output, HasSubstr("pushed, raw_bf16"));
  EXPECT_THAT(r.output, HasSubstr(": match"));
}

TEST_F(DecodeStubTest, UsageErrors) {
  EXPECT_EQ(RunStub({"--tokens", tokens_}).exit_code, 2);
  EXPECT_EQ(RunStub({"--server", Target(), "--tokens", tokens_, "--codec", "int3"}).exit_code, 2);
  const auto help = RunStub({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.output, HasSubstr("usage: sparsefill-decode-stub --server HOST:PORT"));
}

}  // namespace
}  // namespace sparsefill::server
