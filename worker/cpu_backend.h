// The CPU backend: float32 everywhere, ops from the kernels/ CPU references. Runs the service
// on machines without a GPU and is the oracle the CUDA backend is tested against.
#pragma once

#include <memory>

#include "worker/backend.h"

namespace sparsefill::worker {

struct CpuBackendOptions {
  // Rows per chunk of the linear layers; bounds the MLP's scratch memory. Results do not depend
  // on it (every output element is one fixed-order dot product).
  int64_t chunk_tokens = 1024;
};

std::unique_ptr<Backend> MakeCpuBackend(const CpuBackendOptions& options = {});

}  // namespace sparsefill::worker
