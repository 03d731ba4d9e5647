// The `sparsefill` subcommands. Each takes the arguments after its name and returns the process
// exit code (0 ok, 1 failure, 2 usage error).
#pragma once

#include <string>
#include <vector>

namespace sparsefill::cli {

int RunCommand(const std::vector<std::string>& args);      // in-process prefill
int PrefillCommand(const std::vector<std::string>& args);  // prefill through a server
int InfoCommand(const std::vector<std::string>& args);     // a server's model

}  // namespace sparsefill::cli
