#include "worker/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "worker/cpu_backend.h"

namespace sparsefill::worker {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(absl::string_view name) {
  if (name == "cpu" || name == "auto") return MakeCpuBackend();
  if (name == "cuda") {
    return absl::UnimplementedError(
        "backend 'cuda' is not available in this build yet (use cpu or auto)");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", name, "' (expected auto, cpu or cuda)"));
}

}  // namespace sparsefill::worker
