// Runs the project's command-line binaries (the `sparsefill` CLI, the decode stub) as
// subprocesses for the tests, and compares output files.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sparsefill::testing {

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `SPARSEFILL_BIN_DIR/binary args...` (arguments are single-quoted for the shell).
inline CliResult RunBinary(const std::string& binary, const std::vector<std::string>& args) {
  std::string command = std::string("'") + SPARSEFILL_BIN_DIR + "/" + binary + "'";
  for (const std::string& a : args) command += " '" + a + "'";
  command += " 2>&1";
  CliResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Runs `SPARSEFILL_BIN_DIR/sparsefill args...`.
inline CliResult RunSparsefill(const std::vector<std::string>& args) {
  return RunBinary("sparsefill", args);
}

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory for one test's files, removed afterwards.
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/sparsefill_client_test_XXXXXX";
    path_ = ::mkdtemp(templ) != nullptr ? templ : "/tmp";
  }
  ~TempDir() {
    if (path_ != "/tmp") std::system(("rm -rf '" + path_ + "'").c_str());
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes token ids as the CLI's whitespace-separated text format.
inline void WriteTokenFile(const std::string& path, const std::vector<int32_t>& tokens) {
  std::ofstream out(path);
  for (int32_t t : tokens) out << t << ' ';
}

}  // namespace sparsefill::testing
