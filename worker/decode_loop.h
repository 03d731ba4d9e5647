// A greedy decode loop over a host KV cache: the prompt's KV comes from one prefill (dense or
// sparse, or through a KV codec), then each step runs the token before it through
// Model::DecodeStep and appends that token's own K and V to the cache, as a decode node does.
// For the accuracy harness (passkey retrieval) and tests; attention runs on the host in float32.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/decode_step.h"

namespace sparsefill::worker {

class Model;

// Every layer's K (after RoPE) and V, float32 [tokens, kv_heads, head_dim] each, growing by one
// token per Append.
class HostKvCache {
 public:
  // `k` and `v` hold one entry per layer of tokens x kv_dim floats each (InvalidArgument if not).
  static absl::StatusOr<HostKvCache> Create(std::vector<std::vector<float>> k,
                                            std::vector<std::vector<float>> v, int64_t tokens,
                                            int64_t kv_dim);

  int64_t tokens() const { return tokens_; }
  const std::vector<std::vector<float>>& k() const { return k_; }
  const std::vector<std::vector<float>>& v() const { return v_; }
  // Views for DecodeStep; valid until the next Append.
  std::vector<PastKvLayer> past() const;
  // Appends the stepped token's K and V (DecodeStepOutput::k/v, one kv_dim row per layer).
  absl::Status Append(const std::vector<std::vector<float>>& k,
                      const std::vector<std::vector<float>>& v);

 private:
  HostKvCache() = default;
  std::vector<std::vector<float>> k_, v_;
  int64_t tokens_ = 0;
  int64_t kv_dim_ = 0;
};

// Greedy decoding of `count` tokens (count >= 1): the first is `first_token` (a prefill's
// first_token), each further one the argmax of a decode step of the token before it over
// `cache`, which then holds the KV of every token but the last one returned.
absl::StatusOr<std::vector<int32_t>> GreedyDecode(const Model& model, HostKvCache& cache,
                                                  int32_t first_token, int count);

}  // namespace sparsefill::worker
