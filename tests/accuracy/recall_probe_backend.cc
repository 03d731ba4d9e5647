#include "tests/accuracy/recall_probe_backend.h"

#include "absl/strings/str_cat.h"
#include "kernels/cpu/parallel_for.h"
#include "tests/accuracy/attention_recall.h"
#include "tests/accuracy/kernel_cost_model.h"
#include "worker/head_key_sets.h"

namespace sparsefill::accuracy {

absl::StatusOr<int64_t> RecallProbeBackend::BeginPrefill(const worker::ModelConfig& config,
                                                         int64_t tokens,
                                                         const worker::PatternConfig* patterns) {
  if (inner_->activation_dtype() != kernels::ScalarType::kFloat32) {
    return absl::FailedPreconditionError(
        absl::StrCat("the recall probe reads Q and K on the host in float32; the ", inner_->name(),
                     " backend keeps them otherwise"));
  }
  layer_ = 0;
  recall_.assign(probes_.size(), {});
  density_.assign(probes_.size(), {});
  cost_.assign(probes_.size(), {});
  return inner_->BeginPrefill(config, tokens, patterns);
}

absl::Status RecallProbeBackend::Attention(const worker::Tensor2D& q, const worker::Tensor2D& k,
                                           const worker::Tensor2D& v,
                                           const kernels::AttentionShape& shape,
                                           std::span<const worker::HeadPattern> patterns,
                                           worker::Tensor2D out, worker::AttentionStats* stats) {
  const auto* qf = static_cast<const float*>(q.data);
  const auto* kf = static_cast<const float*>(k.data);
  const double dense_pairs = static_cast<double>(shape.tokens) * (shape.tokens + 1) / 2;
  for (size_t p = 0; p < probes_.size(); ++p) {
    const std::vector<worker::HeadPattern>& heads = probes_[p]->layer(layer_);
    std::vector<double>& recall = recall_[p].emplace_back(shape.q_heads);
    std::vector<double>& density = density_[p].emplace_back(shape.q_heads);
    std::vector<double>& cost = cost_[p].emplace_back(shape.q_heads);
    kernels::ParallelFor(0, shape.q_heads, 1, [&](int64_t h0, int64_t h1) {
      for (int h = static_cast<int>(h0); h < h1; ++h) {
        const kernels::HeadKeySet set = worker::EstimateHeadKeySet(heads[h], qf, kf, shape, h);
        recall[h] = AttentionRecall(qf, kf, shape, h, set, last_queries_);
        density[h] = static_cast<double>(set.CountPairs(shape.tokens)) / dense_pairs;
        cost[h] = RelativeKernelCost(set, shape.tokens);
      }
    });
  }
  ++layer_;
  return inner_->Attention(q, k, v, shape, patterns, out, stats);
}

}  // namespace sparsefill::accuracy
