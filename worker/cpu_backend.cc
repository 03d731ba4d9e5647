#include "worker/cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/attention/attention_ref.h"
#include "kernels/cpu/parallel_for.h"
#include "kernels/ops/embedding_ref.h"
#include "kernels/ops/linear_ref.h"
#include "kernels/ops/residual_ref.h"
#include "kernels/ops/rmsnorm_ref.h"
#include "kernels/ops/swiglu_ref.h"
#include "kernels/ops/numeric.h"
#include "worker/head_key_sets.h"
#include "worker/seeded_random.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {
namespace {

using kernels::ScalarType;

class CpuBuffer : public BackendBuffer {
 public:
  CpuBuffer(int64_t rows, int64_t cols) : storage_(static_cast<size_t>(rows * cols)) {
    view_ = Tensor2D{storage_.data(), ScalarType::kFloat32, rows, cols};
  }
  explicit CpuBuffer(std::vector<float> data, int64_t rows, int64_t cols)
      : storage_(std::move(data)) {
    view_ = Tensor2D{storage_.data(), ScalarType::kFloat32, rows, cols};
  }

 private:
  std::vector<float> storage_;
};

float* F32(const Tensor2D& t) { return static_cast<float*>(t.data); }

absl::Status ShapeMismatch(absl::string_view op, const Tensor2D& a, const Tensor2D& b) {
  return absl::InternalError(absl::StrCat(op, ": shape mismatch [", a.rows, ", ", a.cols, "] vs [",
                                          b.rows, ", ", b.cols, "]"));
}

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options) : options_(options) {}

  absl::string_view name() const override { return "cpu"; }
  ScalarType activation_dtype() const override { return ScalarType::kFloat32; }

  absl::StatusOr<int64_t> BeginPrefill(const ModelConfig&, int64_t tokens,
                                       const PatternConfig*) override {
    return std::max<int64_t>(1, std::min(tokens, options_.chunk_tokens));
  }
  // Synchronous: everything is done when each op returns, and the host timings are the truth.
  absl::Status FinishPrefill(PrefillOutput*) override { return absl::OkStatus(); }

  absl::StatusOr<std::unique_ptr<BackendBuffer>> Allocate(int64_t rows, int64_t cols) override {
    return std::make_unique<CpuBuffer>(rows, cols);
  }

  absl::StatusOr<std::unique_ptr<BackendBuffer>> UploadWeight(const TensorView& tensor) override {
    absl::StatusOr<std::vector<float>> data = ToFloat32(tensor);
    if (!data.ok()) return data.status();
    const int64_t rows = tensor.shape.size() == 2 ? tensor.shape[0] : 1;
    const int64_t cols = tensor.shape.empty() ? 1 : tensor.shape.back();
    return std::make_unique<CpuBuffer>(*std::move(data), rows, cols);
  }

  absl::StatusOr<std::unique_ptr<BackendBuffer>> CreateRandomWeight(int64_t rows, int64_t cols,
                                                                   float mean, float stddev,
                                                                   uint64_t seed) override {
    std::vector<float> data(static_cast<size_t>(rows * cols));
    SeededRandom rng(seed);
    // Rounded through bf16 like a checkpoint's weights, so the CPU model matches bf16 storage.
    for (float& x : data) {
      x = kernels::Bf16ToFloat(kernels::FloatToBf16(static_cast<float>(mean + stddev * rng.Normal())));
    }
    return std::make_unique<CpuBuffer>(std::move(data), rows, cols);
  }

  absl::Status Embed(std::span<const int32_t> ids, const Tensor2D& table, Tensor2D out) override {
    if (out.rows != static_cast<int64_t>(ids.size()) || out.cols != table.cols) {
      return ShapeMismatch("Embed", table, out);
    }
    kernels::EmbeddingRef(F32(table), ids.data(), out.rows, out.cols, F32(out));
    return absl::OkStatus();
  }

  absl::Status RmsNorm(const Tensor2D& x, const Tensor2D& weight, float eps,
                       Tensor2D out) override {
    if (x.rows != out.rows || x.cols != out.cols || weight.cols != x.cols) {
      return ShapeMismatch("RmsNorm", x, out);
    }
    kernels::RmsNormRef(F32(x), F32(weight), x.rows, x.cols, eps, F32(out));
    return absl::OkStatus();
  }

  absl::Status Linear(const Tensor2D& x, const Tensor2D& weight, Tensor2D y) override {
    if (x.cols != weight.cols || y.rows != x.rows || y.cols != weight.rows) {
      return ShapeMismatch("Linear", x, weight);
    }
    kernels::LinearRef(F32(x), F32(weight), x.rows, x.cols, weight.rows, F32(y));
    return absl::OkStatus();
  }

  absl::Status ApplyRope(Tensor2D x, int heads, int head_dim, const kernels::RopeSpec& rope,
                         int64_t first_position) override {
    if (x.cols != static_cast<int64_t>(heads) * head_dim) return ShapeMismatch("ApplyRope", x, x);
    const std::vector<float> inv_freq = kernels::RopeInverseFrequencies(rope, head_dim);
    kernels::ApplyRopeRef(F32(x), x.rows, heads, head_dim, inv_freq.data(), first_position);
    return absl::OkStatus();
  }

  absl::Status SwiGlu(const Tensor2D& gate, const Tensor2D& up, Tensor2D out) override {
    if (gate.rows != up.rows || gate.cols != up.cols || out.rows != gate.rows ||
        out.cols != gate.cols) {
      return ShapeMismatch("SwiGlu", gate, up);
    }
    kernels::SwiGluRef(F32(gate), F32(up), gate.rows * gate.cols, F32(out));
    return absl::OkStatus();
  }

  absl::Status AddInPlace(Tensor2D acc, const Tensor2D& x) override {
    if (acc.rows != x.rows || acc.cols != x.cols) return ShapeMismatch("AddInPlace", acc, x);
    kernels::AddInPlaceRef(F32(acc), F32(x), acc.rows * acc.cols);
    return absl::OkStatus();
  }

  absl::Status AddBias(Tensor2D x, const Tensor2D& bias) override {
    if (x.rows == 0) return absl::OkStatus();
    if (bias.rows != 1 || bias.cols != x.cols) return ShapeMismatch("AddBias", x, bias);
    for (int64_t r = 0; r < x.rows; ++r) {
      kernels::AddInPlaceRef(F32(x) + r * x.cols, F32(bias), x.cols);
    }
    return absl::OkStatus();
  }

  absl::Status Attention(const Tensor2D& q, const Tensor2D& k, const Tensor2D& v,
                         const kernels::AttentionShape& shape,
                         std::span<const HeadPattern> patterns, Tensor2D out,
                         AttentionStats* stats) override {
    if (static_cast<int>(patterns.size()) != shape.q_heads) {
      return absl::InternalError("Attention: one pattern per query head expected");
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<kernels::HeadKeySet> sets(shape.q_heads);
    // Heads estimate independently; each estimation is single-threaded, so spread the heads.
    kernels::ParallelFor(0, shape.q_heads, 1, [&](int64_t h0, int64_t h1) {
      for (int h = static_cast<int>(h0); h < h1; ++h) {
        sets[h] = EstimateHeadKeySet(patterns[h], F32(q), F32(k), shape, h);
      }
    });
    const auto estimated = std::chrono::steady_clock::now();
    std::vector<int64_t> pairs(shape.q_heads);
    kernels::AttentionRef(F32(q), F32(k), F32(v), shape, sets, F32(out), pairs.data());
    if (stats != nullptr) {
      stats->computed_pairs = 0;
      for (int64_t p : pairs) stats->computed_pairs += p;
      stats->dense_pairs = shape.q_heads * (shape.tokens * (shape.tokens + 1) / 2);
      stats->estimation_seconds = std::chrono::duration<double>(estimated - start).count();
    }
    return absl::OkStatus();
  }

  absl::Status ExportKv(int layer, const Tensor2D& k, const Tensor2D& v, int kv_heads, int head_dim,
                        KvSink& sink) override {
    LayerKv kv;
    kv.layer = layer;
    kv.tokens = k.rows;
    kv.kv_heads = kv_heads;
    kv.head_dim = head_dim;
    kv.dtype = ScalarType::kFloat32;
    kv.k = k.data;  // already host memory: no copy
    kv.v = v.data;
    return sink.OnLayerKv(kv);
  }

  absl::Status CopyToHost(const Tensor2D& x, float* dst) override {
    std::memcpy(dst, x.data, sizeof(float) * x.rows * x.cols);
    return absl::OkStatus();
  }

 private:
  CpuBackendOptions options_;
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace sparsefill::worker
