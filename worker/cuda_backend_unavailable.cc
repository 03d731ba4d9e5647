// The CUDA backend's entry points in a build without CUDA (SPARSEFILL_BUILD_CUDA off).
#include "worker/cuda_backend.h"

namespace sparsefill::worker {

bool CudaDeviceAvailable() { return false; }
int CudaDeviceCount() { return 0; }

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(const CudaBackendOptions&) {
  return absl::UnavailableError(
      "this build has no CUDA backend (configured with -DSPARSEFILL_BUILD_CUDA=OFF or without nvcc)");
}

}  // namespace sparsefill::worker
