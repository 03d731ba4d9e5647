// A Backend decorator for the accuracy harness: forwards every op to the CPU backend it wraps
// and, in each layer's attention, scores candidate pattern configs on that layer's real Q and K
// (attention recall per layer and head, and each head's density), whatever patterns the prefill
// itself runs with. A dense prefill through it measures the recall of the dense model's
// attention, as MInference's search does.
#pragma once

#include <memory>
#include <vector>

#include "worker/backend.h"
#include "worker/pattern_config.h"

namespace sparsefill::accuracy {

class RecallProbeBackend : public worker::Backend {
 public:
  // `inner` must keep activations in host float32 (the CPU backend).
  explicit RecallProbeBackend(std::unique_ptr<worker::Backend> inner) : inner_(std::move(inner)) {}

  // The configs the next prefills score (not owned; empty scores none), and how many of the last
  // queries each recall averages over.
  void SetProbes(std::vector<const worker::PatternConfig*> probes, int64_t last_queries) {
    probes_ = std::move(probes);
    last_queries_ = last_queries;
  }
  // [probe][layer][head] of the last prefill.
  const std::vector<std::vector<std::vector<double>>>& recall() const { return recall_; }
  const std::vector<std::vector<std::vector<double>>>& density() const { return density_; }
  // The GPU kernel's modeled cost of each head's key set (kernel_cost_model.h:
  // RelativeKernelCost, 1.0 = the causal tiles as range tiles).
  const std::vector<std::vector<std::vector<double>>>& kernel_cost() const { return cost_; }

  absl::string_view name() const override { return inner_->name(); }
  kernels::ScalarType activation_dtype() const override { return inner_->activation_dtype(); }
  bool concurrent_prefills() const override { return false; }  // per-prefill state here
  bool double_buffer_kv() const override { return inner_->double_buffer_kv(); }
  absl::StatusOr<int64_t> BeginPrefill(const worker::ModelConfig& config, int64_t tokens,
                                       const worker::PatternConfig* patterns) override;
  absl::Status FinishPrefill(worker::PrefillOutput* out) override {
    return inner_->FinishPrefill(out);
  }
  absl::StatusOr<std::unique_ptr<worker::BackendBuffer>> Allocate(int64_t rows,
                                                                  int64_t cols) override {
    return inner_->Allocate(rows, cols);
  }
  absl::StatusOr<std::unique_ptr<worker::BackendBuffer>> UploadWeight(
      const worker::TensorView& tensor) override {
    return inner_->UploadWeight(tensor);
  }
  absl::StatusOr<std::unique_ptr<worker::BackendBuffer>> CreateRandomWeight(
      int64_t rows, int64_t cols, float mean, float stddev, uint64_t seed) override {
    return inner_->CreateRandomWeight(rows, cols, mean, stddev, seed);
  }
  absl::Status Embed(std::span<const int32_t> ids, const worker::Tensor2D& table,
                     worker::Tensor2D out) override {
    return inner_->Embed(ids, table, out);
  }
  absl::Status RmsNorm(const worker::Tensor2D& x, const worker::Tensor2D& weight, float eps,
                       worker::Tensor2D out) override {
    return inner_->RmsNorm(x, weight, eps, out);
  }
  absl::Status Linear(const worker::Tensor2D& x, const worker::Tensor2D& weight,
                      worker::Tensor2D y) override {
    return inner_->Linear(x, weight, y);
  }
  absl::Status ApplyRope(worker::Tensor2D x, int heads, int head_dim, const kernels::RopeSpec& rope,
                         int64_t first_position) override {
    return inner_->ApplyRope(x, heads, head_dim, rope, first_position);
  }
  absl::Status SwiGlu(const worker::Tensor2D& gate, const worker::Tensor2D& up,
                      worker::Tensor2D out) override {
    return inner_->SwiGlu(gate, up, out);
  }
  absl::Status AddInPlace(worker::Tensor2D acc, const worker::Tensor2D& x) override {
    return inner_->AddInPlace(acc, x);
  }
  absl::Status AddBias(worker::Tensor2D x, const worker::Tensor2D& bias) override {
    return inner_->AddBias(x, bias);
  }
  absl::Status Attention(const worker::Tensor2D& q, const worker::Tensor2D& k,
                         const worker::Tensor2D& v, const kernels::AttentionShape& shape,
                         std::span<const worker::HeadPattern> patterns, worker::Tensor2D out,
                         worker::AttentionStats* stats) override;
  absl::Status ExportKv(int layer, const worker::Tensor2D& k, const worker::Tensor2D& v,
                        int kv_heads, int head_dim, worker::KvSink& sink) override {
    return inner_->ExportKv(layer, k, v, kv_heads, head_dim, sink);
  }
  absl::Status CopyToHost(const worker::Tensor2D& x, float* dst) override {
    return inner_->CopyToHost(x, dst);
  }

 private:
  std::unique_ptr<worker::Backend> inner_;
  std::vector<const worker::PatternConfig*> probes_;
  int64_t last_queries_ = 64;
  int layer_ = 0;
  std::vector<std::vector<std::vector<double>>> recall_, density_, cost_;
};

}  // namespace sparsefill::accuracy
