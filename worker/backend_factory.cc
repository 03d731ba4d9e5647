#include "worker/backend_factory.h"

#include "absl/strings/str_cat.h"
#include "worker/cpu_backend.h"
#include "worker/cuda_backend.h"

namespace sparsefill::worker {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(absl::string_view name) {
  if (name == "cpu") return MakeCpuBackend();
  if (name == "cuda") return MakeCudaBackend();
  if (name == "auto") {
    if (CudaDeviceAvailable()) return MakeCudaBackend();
    return MakeCpuBackend();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", name, "' (expected auto, cpu or cuda)"));
}

}  // namespace sparsefill::worker
