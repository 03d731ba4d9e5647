// `sparsefill`: the command-line tool. Subcommands: run (in-process prefill), prefill and info
// (through a sparsefill server).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/cli/commands.h"

namespace {

constexpr char kHelp[] =
    "usage: sparsefill <command> [flags]\n"
    "\n"
    "commands:\n"
    "  run       prefill a prompt in this process (CPU backend; no server needed)\n"
    "  prefill   prefill a prompt through a sparsefill server and receive its KV cache\n"
    "  info      show the model a sparsefill server serves\n"
    "\n"
    "`sparsefill <command> --help` describes a command's flags.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::fputs(kHelp, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "run") return sparsefill::cli::RunCommand(args);
  if (command == "prefill") return sparsefill::cli::PrefillCommand(args);
  if (command == "info") return sparsefill::cli::InfoCommand(args);
  std::fprintf(stderr, "sparsefill: unknown command '%s'\n\n%s", command.c_str(), kHelp);
  return 2;
}
