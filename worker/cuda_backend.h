// The CUDA backend: bf16 activations and weights on one GPU, cuBLAS GEMMs with fp32
// accumulation, the kernels of kernels/ops/cuda and kernels/attention/cuda, and KV export that
// overlaps the next layer (copy stream, events, a pinned host ring, an exporter thread).
//
// Streams: every op is queued on the backend's compute stream and returns at once; the host
// waits only in CopyToHost (the logits), when the KV export ring is full (the sink's
// backpressure), and in FinishPrefill. One prefill runs at a time (concurrent_prefills false).
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "worker/backend.h"

namespace sparsefill::worker {

struct CudaBackendOptions {
  int device = 0;
  // Upper bound on the token-chunked ops' rows; the memory planner may pick fewer.
  int64_t max_chunk_tokens = 16384;
  // Layers of K/V in flight between the device and the sink (pinned host buffers).
  int export_slots = 2;
};

// Whether a usable CUDA device is present, and how many (false / 0 in builds without CUDA).
bool CudaDeviceAvailable();
int CudaDeviceCount();

// Unavailable when the build has no CUDA or the device cannot be used.
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(const CudaBackendOptions& options = {});

}  // namespace sparsefill::worker
