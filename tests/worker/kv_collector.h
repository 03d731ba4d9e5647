// A KvSink that keeps every layer's K and V as float32, for tests.
#pragma once

#include <vector>

#include "kernels/ops/numeric.h"
#include "worker/kv_sink.h"

namespace sparsefill::testing {

class KvCollector : public worker::KvSink {
 public:
  absl::Status OnLayerKv(const worker::LayerKv& kv) override {
    if (kv.layer != static_cast<int>(k.size())) return absl::InternalError("layers out of order");
    const size_t n = static_cast<size_t>(kv.tokens) * kv.kv_heads * kv.head_dim;
    k.push_back(ToFloat(kv.k, kv.dtype, n));
    v.push_back(ToFloat(kv.v, kv.dtype, n));
    return absl::OkStatus();
  }
  std::vector<std::vector<float>> k, v;

 private:
  static std::vector<float> ToFloat(const void* data, kernels::ScalarType dtype, size_t n) {
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) {
      out[i] = dtype == kernels::ScalarType::kFloat32
                   ? static_cast<const float*>(data)[i]
                   : kernels::Bf16ToFloat(static_cast<const uint16_t*>(data)[i]);
    }
    return out;
  }
};

}  // namespace sparsefill::testing
