// sparsefill-server as a process: port file, health check, SIGTERM with a request in flight (it
// completes, the process exits 0), idle SIGTERM/SIGINT, and a clear exit 1 when the model cannot
// be loaded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/server/test_util.h"

extern char** environ;

namespace sparsefill::server {
namespace {

namespace fs = std::filesystem;

const std::string kServerBin = std::string(SPARSEFILL_BIN_DIR) + "/sparsefill-server";

class ServerProcess {
 public:
  explicit ServerProcess(const fs::path& dir) : dir_(dir) {}
  ~ServerProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Starts the server with `args`; stdout and stderr go to a log file.
  bool Spawn(const std::vector<std::string>& args) {
    std::vector<std::string> argv_strings = {kServerBin};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = LogPath();
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    const int rc = posix_spawn(&pid_, kServerBin.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    return rc == 0;
  }

  std::vector<std::string> DefaultArgs() const {
    return {"--listen",    "127.0.0.1:0", "--metrics_listen",
            "127.0.0.1:0", "--port_file", PortFile()};
  }

  // The gRPC port from --port_file, once the server listens; 0 when it exits or times out.
  int WaitForPort() {
    int port = 0;
    testing::WaitFor(
        [&] {
          if (Exited()) return true;
          std::ifstream in(PortFile());
          return static_cast<bool>(in >> port);
        },
        absl::Seconds(60));
    return exited_ ? 0 : port;
  }

  // The exit code, or -1 when the process did not exit normally within the timeout.
  int WaitForExit(absl::Duration timeout = absl::Seconds(60)) {
    testing::WaitFor([&] { return Exited(); }, timeout);
    if (!exited_) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }

  void Signal(int signal) { ::kill(pid_, signal); }

  std::string Log() const {
    std::ifstream in(LogPath());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  bool Exited() {
    if (!exited_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    return exited_;
  }
  std::string PortFile() const { return (dir_ / "port").string(); }
  std::string LogPath() const { return (dir_ / "server.log").string(); }

  fs::path dir_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

class ServerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sparsefill-server-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ServerProcessTest, SigtermLetsTheRequestInFlightCompleteThenExitsZero) {
  ServerProcess server(dir_);
  ASSERT_TRUE(server.Spawn(server.DefaultArgs()));
  const int port = server.WaitForPort();
  ASSERT_GT(port, 0) << server.Log();
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  EXPECT_EQ(testing::HealthCheck(channel, ""), 1) << "SERVING";
  EXPECT_EQ(testing::HealthCheck(channel, "sparsefill.v1.PrefillService"), 1);

  // A request whose client reads only its first message: the stream (4 MiB of float32 KV behind
  // a 64 KiB window) cannot finish before the client reads on.
  v1::PrefillRequest request;
  request.set_request_id("in-flight");
  for (int32_t id : testing::RandomTokens(1000, 8192, 7)) request.add_token_ids(id);
  request.set_kv_codec(v1::KV_CODEC_RAW_FP32);
  request.set_progress(true);
  testing::UnreadCall call(testing::SmallWindowChannel(port), request);
  v1::PrefillResponse first;
  ASSERT_TRUE(call.ReadOne(&first));
  ASSERT_TRUE(first.has_progress()) << "the prefill started";

  server.Signal(SIGTERM);
  // The server is draining: its listener closes, so a fresh connection's health check fails.
  EXPECT_TRUE(testing::WaitFor([&] {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto fresh = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                           grpc::InsecureChannelCredentials(), args);
    return testing::HealthCheck(fresh, "") != 1;
  })) << server.Log();

  // The request in flight still completes.
  const testing::PrefillStream rest = call.ReadAll();
  EXPECT_TRUE(rest.status.ok()) << rest.status.error_message();
  ASSERT_NE(rest.result(), nullptr);
  EXPECT_EQ(rest.result()->kv_chunks_sent(), rest.chunks().size());
  EXPECT_EQ(rest.result()->prompt_tokens(), 1000u);
  EXPECT_EQ(server.WaitForExit(), 0) << server.Log();
  const std::string log = server.Log();
  EXPECT_NE(log.find("SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("[req=in-flight] finished OK"), std::string::npos) << log;
}

TEST_F(ServerProcessTest, IdleServerExitsZeroOnSigint) {
  ServerProcess server(dir_);
  std::vector<std::string> args = server.DefaultArgs();
  args[3] = "";  // --metrics_listen "": no exporter
  ASSERT_TRUE(server.Spawn(args));
  ASSERT_GT(server.WaitForPort(), 0) << server.Log();
  server.Signal(SIGINT);
  EXPECT_EQ(server.WaitForExit(), 0) << server.Log();
}

TEST_F(ServerProcessTest, UnloadableModelExitsOneWithAClearMessage) {
  ServerProcess server(dir_);
  std::vector<std::string> args = server.DefaultArgs();
  args.push_back("--model");
  args.push_back((dir_ / "no-such-model").string());
  ASSERT_TRUE(server.Spawn(args));
  EXPECT_EQ(server.WaitForExit(), 1);
  const std::string log = server.Log();
  EXPECT_NE(log.find("cannot load the model"), std::string::npos) << log;
  EXPECT_NE(log.find("no-such-model"), std::string::npos) << log;
}

// A GGUF model that was never fetched: the message names the file and how to fetch it.
TEST_F(ServerProcessTest, MissingGgufModelTellsHowToFetchIt) {
  ServerProcess server(dir_);
  std::vector<std::string> args = server.DefaultArgs();
  args.push_back("--model");
  args.push_back("gguf:" + (dir_ / "not-fetched.gguf").string());
  ASSERT_TRUE(server.Spawn(args));
  EXPECT_EQ(server.WaitForExit(), 1);
  const std::string log = server.Log();
  EXPECT_NE(log.find("not-fetched.gguf"), std::string::npos) << log;
  EXPECT_NE(log.find("deploy/fetch_models.sh"), std::string::npos) << log;
}

TEST_F(ServerProcessTest, HelpListsTheFlags) {
  ServerProcess server(dir_);
  ASSERT_TRUE(server.Spawn({"--help"}));
  server.WaitForExit();
  const std::string log = server.Log();
  for (const char* flag :
       {"--model", "--pattern_config", "--listen", "--metrics_listen", "--backend",
        "--max_prompt_tokens", "--max_queued_requests", "--max_concurrent_per_worker",
        "--shutdown_grace_seconds", "--port_file"}) {
    EXPECT_NE(log.find(flag), std::string::npos) << flag << " missing from --help:\n" << log;
  }
}

}  // namespace
}  // namespace sparsefill::server
