// Built instead of the gRPC subcommands when SPARSEFILL_BUILD_RPC is off (e.g. on a GPU box
// without gRPC): they explain instead of silently missing.
#include <cstdio>

#include "client/cli/commands.h"

namespace sparsefill::cli {
namespace {

int Unavailable(const char* name) {
  std::fprintf(stderr,
               "sparsefill %s: this build has no gRPC client (configured with "
               "-DSPARSEFILL_BUILD_RPC=OFF); use `sparsefill run` or rebuild with RPC on\n",
               name);
  return 2;
}

}  // namespace

int PrefillCommand(const std::vector<std::string>&) { return Unavailable("prefill"); }
int InfoCommand(const std::vector<std::string>&) { return Unavailable("info"); }

}  // namespace sparsefill::cli
