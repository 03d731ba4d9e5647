// Where each layer's KV cache goes once the layer is computed: the service's chunk encoder, the
// CLI's file writer, a test's collector.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/scalar_type.h"

namespace sparsefill::worker {

// One layer's KV cache in host memory, valid only during OnLayerKv.
struct LayerKv {
  int layer = 0;
  int64_t tokens = 0;
  int kv_heads = 0;
  int head_dim = 0;
  kernels::ScalarType dtype = kernels::ScalarType::kFloat32;  // the backend's activation type
  const void* k = nullptr;  // [tokens, kv_heads, head_dim], K after RoPE
  const void* v = nullptr;  // [tokens, kv_heads, head_dim]
};

class KvSink {
 public:
  virtual ~KvSink() = default;
  // Called once per layer, in layer order, from one thread at a time: the prefill's thread (CPU
  // backend) or the backend's export thread (CUDA backend, while the next layer computes). May
  // block (that is the backpressure of a slow consumer). A non-OK status stops the prefill at a
  // layer boundary and becomes the prefill's result (e.g. Cancelled when the client went away).
  virtual absl::Status OnLayerKv(const LayerKv& kv) = 0;
};

}  // namespace sparsefill::worker
