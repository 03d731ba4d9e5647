// HostKvCache and GreedyDecode (see decode_loop.h).
#include "worker/decode_loop.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/model.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {

absl::StatusOr<HostKvCache> HostKvCache::Create(std::vector<std::vector<float>> k,
                                                std::vector<std::vector<float>> v, int64_t tokens,
                                                int64_t kv_dim) {
  if (k.size() != v.size() || tokens < 0 || kv_dim <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache: ", k.size(), " K layers, ", v.size(),
                                                   " V layers, ", tokens, " tokens of ", kv_dim));
  }
  const size_t want = static_cast<size_t>(tokens * kv_dim);
  for (size_t l = 0; l < k.size(); ++l) {
    if (k[l].size() != want || v[l].size() != want) {
      return absl::InvalidArgumentError(absl::StrCat("KV cache: layer ", l, " holds ", k[l].size(),
                                                     " K and ", v[l].size(), " V floats, not ",
                                                     want, " (", tokens, " tokens)"));
    }
  }
  HostKvCache cache;
  cache.k_ = std::move(k);
  cache.v_ = std::move(v);
  cache.tokens_ = tokens;
  cache.kv_dim_ = kv_dim;
  return cache;
}

std::vector<PastKvLayer> HostKvCache::past() const {
  std::vector<PastKvLayer> layers;
  layers.reserve(k_.size());
  for (size_t l = 0; l < k_.size(); ++l) layers.push_back({k_[l].data(), v_[l].data()});
  return layers;
}

absl::Status HostKvCache::Append(const std::vector<std::vector<float>>& k,
                                 const std::vector<std::vector<float>>& v) {
  if (k.size() != k_.size() || v.size() != v_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV cache of ", k_.size(), " layers: appending ", k.size(), " layers"));
  }
  for (size_t l = 0; l < k.size(); ++l) {
    if (static_cast<int64_t>(k[l].size()) != kv_dim_ ||
        static_cast<int64_t>(v[l].size()) != kv_dim_) {
      return absl::InvalidArgumentError(absl::StrCat("KV cache: appending layer ", l, " of ",
                                                     k[l].size(), " floats, not ", kv_dim_));
    }
  }
  for (size_t l = 0; l < k.size(); ++l) {
    k_[l].insert(k_[l].end(), k[l].begin(), k[l].end());
    v_[l].insert(v_[l].end(), v[l].begin(), v[l].end());
  }
  ++tokens_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> GreedyDecode(const Model& model, HostKvCache& cache,
                                                  int32_t first_token, int count) {
  if (count < 1) return absl::InvalidArgumentError(absl::StrCat("decode ", count, " tokens"));
  std::vector<int32_t> tokens = {first_token};
  while (static_cast<int>(tokens.size()) < count) {
    SF_ASSIGN_OR_RETURN(DecodeStepOutput step,
                        model.DecodeStep(cache.past(), cache.tokens(), tokens.back()));
    SF_RETURN_IF_ERROR(cache.Append(step.k, step.v));
    tokens.push_back(step.next_token);
  }
  return tokens;
}

}  // namespace sparsefill::worker
