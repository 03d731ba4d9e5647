// The CUDA backend (see worker/cuda_backend.h).
#include "worker/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/attention/cuda/attention.h"
#include "kernels/attention/cuda/index_builder.h"
#include "kernels/ops/cuda/ops.h"
#include "kernels/ops/numeric.h"
#include "kernels/ops/rope_ref.h"
#include "worker/cuda/cuda_status.h"
#include "worker/cuda/kv_exporter.h"
#include "worker/cuda/stage_timer.h"
#include "worker/memory_planner.h"
#include "worker/status_macros.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {
namespace {

using kernels::ScalarType;
namespace kc = kernels::cuda;

__nv_bfloat16* Bf16(const Tensor2D& t) { return static_cast<__nv_bfloat16*>(t.data); }

// Device memory from the stream-ordered pool: allocation and release queue on the compute stream,
// so freeing a prefill's activations never waits for the device.
class CudaBuffer : public BackendBuffer {
 public:
  CudaBuffer(void* data, int64_t rows, int64_t cols, cudaStream_t stream) : stream_(stream) {
    view_ = Tensor2D{data, ScalarType::kBFloat16, rows, cols};
  }
  ~CudaBuffer() override { cudaFreeAsync(view_.data, stream_); }

 private:
  cudaStream_t stream_;
};

absl::Status ShapeMismatch(absl::string_view op, const Tensor2D& a, const Tensor2D& b) {
  return absl::InternalError(absl::StrCat(op, ": shape mismatch [", a.rows, ", ", a.cols, "] vs [",
                                          b.rows, ", ", b.cols, "]"));
}

kc::HeadPatternSpec ToSpec(const HeadPattern& p) {
  switch (p.type) {
    case HeadPattern::Type::kDense:
      return {kernels::HeadKind::kDense, 0, 0};
    case HeadPattern::Type::kAShape:
      return {kernels::HeadKind::kAShape, p.n_init, p.n_local};
    case HeadPattern::Type::kVerticalSlash:
      return {kernels::HeadKind::kVerticalSlash, p.vertical, p.slash};
    case HeadPattern::Type::kBlockSparse:
      return {kernels::HeadKind::kBlockSparse, p.top_k, 0};
  }
  return {};
}

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options)
      : options_(options), exporter_(options.device, options.export_slots) {}

  absl::Status Init() {
    SF_CUDA_RETURN_IF_ERROR(cudaSetDevice(options_.device), "selecting the GPU");
    SF_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                            "creating the compute stream");
    // Keep freed activations in the pool between prefills instead of returning them to the driver.
    cudaMemPool_t pool;
    SF_CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, options_.device), "memory pool");
    uint64_t threshold = UINT64_MAX;
    SF_CUDA_RETURN_IF_ERROR(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
                            "memory pool");
    pool_ = pool;
    SF_RETURN_IF_ERROR(CublasStatus(cublasCreate(&cublas_), "cublasCreate"));
    SF_RETURN_IF_ERROR(CublasStatus(cublasSetStream(cublas_, stream_), "cublasSetStream"));
    SF_CUDA_RETURN_IF_ERROR(cudaMallocAsync(reinterpret_cast<void**>(&ids_), 4, stream_), "ids");
    return absl::OkStatus();
  }

  ~CudaBackend() override {
    cudaSetDevice(options_.device);
    cudaStreamSynchronize(stream_);
    for (auto& [key, ptr] : rope_tables_) cudaFree(ptr);
    cudaFreeAsync(ids_, stream_);
    cudaFreeAsync(workspace_, stream_);
    cudaFreeAsync(pair_counters_, stream_);
    cudaStreamSynchronize(stream_);
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  absl::string_view name() const override { return "cuda"; }
  ScalarType activation_dtype() const override { return ScalarType::kBFloat16; }
  bool concurrent_prefills() const override { return false; }
  bool double_buffer_kv() const override { return true; }

  absl::StatusOr<int64_t> BeginPrefill(const ModelConfig& config, int64_t tokens,
                                       const PatternConfig* patterns) override {
    SF_CUDA_RETURN_IF_ERROR(cudaSetDevice(options_.device), "selecting the GPU");
    timer_.Reset();
    pending_stats_.clear();
    tokens_ = tokens;
    num_heads_ = config.num_heads;

    // The largest index workspace any layer needs at this length.
    int64_t workspace = 0;
    if (patterns != nullptr) {
      const kc::AttentionDims dims{tokens, config.num_heads, config.num_kv_heads, config.head_dim,
                                   config.sliding_window};
      for (int l = 0; l < patterns->num_layers(); ++l) {
        std::vector<kc::HeadPatternSpec> specs;
        for (const HeadPattern& p : patterns->layer(l)) specs.push_back(ToSpec(p));
        kc::SparseIndexPlan plan;
        if (kc::PlanSparseIndex(dims, specs, kc::VerticalSlashOptions{}, &plan) != cudaSuccess) {
          return absl::InvalidArgumentError(absl::StrCat(
              "layer ", l, ": the sparse patterns cannot be planned for this model's attention"));
        }
        workspace = std::max<int64_t>(workspace, plan.workspace_bytes);
      }
    }
    PrefillMemoryInputs in;
    SF_ASSIGN_OR_RETURN(in.free_bytes, FreeDeviceBytes());
    in.free_bytes += workspace_bytes_;  // the current workspace is reused or replaced
    in.attention_workspace_bytes = workspace;
    in.max_chunk_tokens = options_.max_chunk_tokens;
    SF_ASSIGN_OR_RETURN(const PrefillMemoryPlan plan, PlanPrefillMemory(config, tokens, in));

    if (workspace > workspace_bytes_) {
      cudaFreeAsync(workspace_, stream_);
      workspace_ = nullptr;
      workspace_bytes_ = 0;
      SF_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&workspace_, workspace, stream_), "index workspace");
      workspace_bytes_ = workspace;
    }
    // Per-layer, per-head computed-pair counters, read once at the end.
    const int64_t counters = static_cast<int64_t>(config.num_layers) * config.num_heads;
    if (counters > counter_capacity_) {
      cudaFreeAsync(pair_counters_, stream_);
      pair_counters_ = nullptr;
      counter_capacity_ = 0;
      SF_CUDA_RETURN_IF_ERROR(
          cudaMallocAsync(reinterpret_cast<void**>(&pair_counters_), counters * 8, stream_), "counters");
      counter_capacity_ = counters;
    }
    SF_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(pair_counters_, 0, counters * 8, stream_), "counters");
    next_counter_layer_ = 0;
    SF_RETURN_IF_ERROR(exporter_.Begin(tokens * config.kv_dim() * 2));
    // Peak memory is measured per prefill: restart the pool's high-water mark (weights included).
    uint64_t zero = 0;
    SF_CUDA_RETURN_IF_ERROR(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &zero),
                            "memory pool");
    return plan.chunk_tokens;
  }

  absl::Status FinishPrefill(PrefillOutput* out) override {
    SF_CUDA_RETURN_IF_ERROR(cudaSetDevice(options_.device), "selecting the GPU");
    absl::Status status = exporter_.Finish();
    std::array<double, static_cast<int>(Stage::kCount)> seconds{};
    absl::Status timed = timer_.Collect(stream_, &seconds);
    if (status.ok()) status = timed;
    absl::Status synced = CudaStatus(cudaStreamSynchronize(stream_), "prefill");
    if (status.ok()) status = synced;
    if (!status.ok()) return status;
    // Counters -> the AttentionStats the forward pass holds.
    if (!pending_stats_.empty()) {
      std::vector<unsigned long long> pairs(static_cast<size_t>(next_counter_layer_) * num_heads_);
      SF_CUDA_RETURN_IF_ERROR(cudaMemcpy(pairs.data(), pair_counters_, pairs.size() * 8,
                                         cudaMemcpyDeviceToHost),
                              "reading attention counters");
      for (const auto& [stats, layer] : pending_stats_) {
        stats->computed_pairs = 0;
        for (int h = 0; h < num_heads_; ++h) {
          stats->computed_pairs += static_cast<int64_t>(pairs[static_cast<size_t>(layer) * num_heads_ + h]);
        }
      }
    }
    PrefillStageSeconds& st = out->stages;
    st.embed = seconds[static_cast<int>(Stage::kEmbed)];
    st.linear = seconds[static_cast<int>(Stage::kLinear)];
    st.estimation = seconds[static_cast<int>(Stage::kEstimation)];
    st.attention = seconds[static_cast<int>(Stage::kAttention)];
    st.lm_head = seconds[static_cast<int>(Stage::kLmHead)];
    st.kv_export = exporter_.copy_seconds();
    uint64_t high = 0;
    if (cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemHigh, &high) == cudaSuccess) {
      out->peak_device_bytes = static_cast<int64_t>(high);  // weights are in the pool too
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<BackendBuffer>> Allocate(int64_t rows, int64_t cols) override {
    void* data = nullptr;
    SF_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&data, std::max<int64_t>(1, rows * cols) * 2, stream_),
                            absl::StrCat("allocating [", rows, ", ", cols, "] bf16"));
    return std::make_unique<CudaBuffer>(data, rows, cols, stream_);
  }

  absl::StatusOr<std::unique_ptr<BackendBuffer>> UploadWeight(const TensorView& tensor) override {
    const int64_t rows = tensor.shape.size() == 2 ? tensor.shape[0] : 1;
    const int64_t cols = tensor.shape.empty() ? 1 : tensor.shape.back();
    std::vector<uint16_t> converted;
    const void* src = tensor.data;
    if (tensor.dtype != ScalarType::kBFloat16) {
      SF_ASSIGN_OR_RETURN(const std::vector<float> f, ToFloat32(tensor));
      converted.resize(f.size());
      for (size_t i = 0; i < f.size(); ++i) converted[i] = kernels::FloatToBf16(f[i]);
      src = converted.data();
    }
    SF_ASSIGN_OR_RETURN(auto buffer, Allocate(rows, cols));
    SF_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(buffer->view().data, src, rows * cols * 2,
                                            cudaMemcpyHostToDevice, stream_),
                            absl::StrCat("uploading ", tensor.name));
    // The source may be a temporary or a mapping that goes away: finish the copy now.
    SF_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "uploading weights");
    weight_bytes_ += rows * cols * 2;
    return buffer;
  }

  absl::StatusOr<std::unique_ptr<BackendBuffer>> CreateRandomWeight(int64_t rows, int64_t cols,
                                                                   float mean, float stddev,
                                                                   uint64_t seed) override {
    SF_ASSIGN_OR_RETURN(auto buffer, Allocate(rows, cols));
    SF_CUDA_RETURN_IF_ERROR(kc::FillRandomNormalBf16(Bf16(buffer->view()), rows * cols, seed, mean,
                                                     stddev, stream_),
                            "generating random weights");
    weight_bytes_ += rows * cols * 2;
    return buffer;
  }

  absl::Status Embed(std::span<const int32_t> ids, const Tensor2D& table, Tensor2D out) override {
    if (out.rows != static_cast<int64_t>(ids.size()) || out.cols != table.cols) {
      return ShapeMismatch("Embed", table, out);
    }
    SF_RETURN_IF_ERROR(timer_.Mark(Stage::kEmbed, stream_));
    const int64_t bytes = static_cast<int64_t>(ids.size()) * 4;
    if (bytes > ids_capacity_) {
      cudaFreeAsync(ids_, stream_);
      ids_ = nullptr;
      ids_capacity_ = 0;
      SF_CUDA_RETURN_IF_ERROR(cudaMallocAsync(reinterpret_cast<void**>(&ids_), bytes, stream_), "ids");
      ids_capacity_ = bytes;
    }
    SF_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(ids_, ids.data(), bytes, cudaMemcpyHostToDevice, stream_),
                            "uploading token ids");
    SF_CUDA_RETURN_IF_ERROR(kc::EmbeddingLookup(Bf16(table), out.cols, ids_, out.rows, Bf16(out), stream_),
                            "embedding");
    // The host span may be freed once this returns.
    SF_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "uploading token ids");
    return absl::OkStatus();
  }

  absl::Status RmsNorm(const Tensor2D& x, const Tensor2D& weight, float eps, Tensor2D out) override {
    if (x.rows != out.rows || x.cols != out.cols || weight.cols != x.cols) {
      return ShapeMismatch("RmsNorm", x, out);
    }
    SF_RETURN_IF_ERROR(MarkLinearOrHead(x.rows));
    SF_CUDA_RETURN_IF_ERROR(kc::RmsNorm(Bf16(x), Bf16(weight), x.rows, x.cols, eps, Bf16(out), stream_),
                            "RMSNorm");
    return absl::OkStatus();
  }

  absl::Status Linear(const Tensor2D& x, const Tensor2D& weight, Tensor2D y) override {
    if (x.cols != weight.cols || y.rows != x.rows || y.cols != weight.rows) {
      return ShapeMismatch("Linear", x, weight);
    }
    SF_RETURN_IF_ERROR(MarkLinearOrHead(x.rows));
    // Row-major y[T, out] = x[T, in] W[out, in]^T is column-major y^T = W^T' x^T: W (column-major
    // [in, out]) transposed times x (column-major [in, T]).
    const float alpha = 1.0f, beta = 0.0f;
    return CublasStatus(
        cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(weight.rows),
                     static_cast<int>(x.rows), static_cast<int>(x.cols), &alpha, weight.data,
                     CUDA_R_16BF, static_cast<int>(weight.cols), x.data, CUDA_R_16BF,
                     static_cast<int>(x.cols), &beta, y.data, CUDA_R_16BF, static_cast<int>(y.cols),
                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "bf16 GEMM");
  }

  absl::Status ApplyRope(Tensor2D x, int heads, int head_dim, const kernels::RopeSpec& rope,
                         int64_t first_position) override {
    if (x.cols != static_cast<int64_t>(heads) * head_dim) return ShapeMismatch("ApplyRope", x, x);
    SF_RETURN_IF_ERROR(timer_.Mark(Stage::kLinear, stream_));
    SF_ASSIGN_OR_RETURN(const float* inv_freq, RopeTable(rope, head_dim));
    SF_CUDA_RETURN_IF_ERROR(kc::ApplyRope(Bf16(x), x.rows, heads, head_dim, x.cols, inv_freq,
                                          first_position, stream_),
                            "RoPE");
    return absl::OkStatus();
  }

  absl::Status SwiGlu(const Tensor2D& gate, const Tensor2D& up, Tensor2D out) override {
    if (gate.rows != up.rows || gate.cols != up.cols || out.rows != gate.rows || out.cols != gate.cols) {
      return ShapeMismatch("SwiGlu", gate, up);
    }
    SF_RETURN_IF_ERROR(timer_.Mark(Stage::kLinear, stream_));
    SF_CUDA_RETURN_IF_ERROR(kc::SwiGlu(Bf16(gate), Bf16(up), gate.rows * gate.cols, Bf16(out), stream_),
                            "SwiGLU");
    return absl::OkStatus();
  }

  absl::Status AddInPlace(Tensor2D acc, const Tensor2D& x) override {
    if (acc.rows != x.rows || acc.cols != x.cols) return ShapeMismatch("AddInPlace", acc, x);
    SF_RETURN_IF_ERROR(timer_.Mark(Stage::kLinear, stream_));
    SF_CUDA_RETURN_IF_ERROR(kc::AddInPlace(Bf16(acc), Bf16(x), acc.rows * acc.cols, stream_), "residual");
    return absl::OkStatus();
  }

  absl::Status AddBias(Tensor2D x, const Tensor2D& bias) override {
    if (x.rows == 0) return absl::OkStatus();  // the "has the op" probe
    if (bias.rows != 1 || bias.cols != x.cols) return ShapeMismatch("AddBias", x, bias);
    SF_RETURN_IF_ERROR(timer_.Mark(Stage::kLinear, stream_));
    SF_CUDA_RETURN_IF_ERROR(kc::AddRowBias(Bf16(x), Bf16(bias), x.rows, x.cols, stream_),
                            "q/k/v bias");
    return absl::OkStatus();
  }

  absl::Status Attention(const Tensor2D& q, const Tensor2D& k, const Tensor2D& v,
                         const kernels::AttentionShape& shape, std::span<const HeadPattern> patterns,
                         Tensor2D out, AttentionStats* stats) override {
    if (static_cast<int>(patterns.size()) != shape.q_heads) {
      return absl::InternalError("Attention: one pattern per query head expected");
    }
    const kc::AttentionDims dims{shape.tokens, shape.q_heads, shape.kv_heads, shape.head_dim,
                                 shape.sliding_window};
    stats->dense_pairs = shape.q_heads * (shape.tokens * (shape.tokens + 1) / 2);
    const bool all_dense = std::all_of(patterns.begin(), patterns.end(), [](const HeadPattern& p) {
      return p.type == HeadPattern::Type::kDense;
    });
    if (all_dense) {
      SF_RETURN_IF_ERROR(timer_.Mark(Stage::kAttention, stream_));
      SF_CUDA_RETURN_IF_ERROR(kc::DenseAttention(dims, Bf16(q), Bf16(k), Bf16(v), Bf16(out), stream_),
                              "dense attention");
      // Without a sliding window dense computes every causal pair; with one, the kernel would
      // need counters: use the sparse path's counters only when they exist.
      stats->computed_pairs = stats->dense_pairs;
      if (shape.sliding_window > 0 && shape.sliding_window < shape.tokens) {
        const int64_t w = shape.sliding_window, t = shape.tokens;
        stats->computed_pairs = shape.q_heads * (w * (w + 1) / 2 + (t - w) * w);
      }
      return absl::OkStatus();
    }
    std::vector<kc::HeadPatternSpec> specs;
    for (const HeadPattern& p : patterns) specs.push_back(ToSpec(p));
    kc::SparseIndexPlan plan;
    SF_CUDA_RETURN_IF_ERROR(kc::PlanSparseIndex(dims, specs, kc::VerticalSlashOptions{}, &plan),
                            "planning the sparse index");
    if (static_cast<int64_t>(plan.workspace_bytes) > workspace_bytes_) {
      return absl::InternalError("sparse index workspace larger than planned at BeginPrefill");
    }
    SF_RETURN_IF_ERROR(timer_.Mark(Stage::kEstimation, stream_));
    kernels::SparseIndexView index;
    SF_CUDA_RETURN_IF_ERROR(kc::BuildSparseIndex(plan, Bf16(q), Bf16(k), workspace_, stream_, &index),
                            "building the sparse index");
    SF_RETURN_IF_ERROR(timer_.Mark(Stage::kAttention, stream_));
    const int layer = next_counter_layer_++;
    unsigned long long* counters = pair_counters_ + static_cast<int64_t>(layer) * shape.q_heads;
    SF_CUDA_RETURN_IF_ERROR(kc::SparseAttention(dims, index, Bf16(q), Bf16(k), Bf16(v), Bf16(out),
                                                counters, stream_),
                            "sparse attention");
    pending_stats_.emplace_back(stats, layer);
    return absl::OkStatus();
  }

  absl::Status ExportKv(int layer, const Tensor2D& k, const Tensor2D& v, int kv_heads, int head_dim,
                        KvSink& sink) override {
    return exporter_.Export(layer, k.data, v.data, k.rows, kv_heads, head_dim, sink, stream_);
  }

  absl::Status CopyToHost(const Tensor2D& x, float* dst) override {
    std::vector<uint16_t> bits(static_cast<size_t>(x.rows * x.cols));
    SF_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(bits.data(), x.data, bits.size() * 2,
                                            cudaMemcpyDeviceToHost, stream_),
                            "copying to the host");
    SF_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "copying to the host");
    for (size_t i = 0; i < bits.size(); ++i) dst[i] = kernels::Bf16ToFloat(bits[i]);
    return absl::OkStatus();
  }

 private:
  // The last row's norm and logits are the "lm head" stage; everything else token-chunked is
  // "linear".
  absl::Status MarkLinearOrHead(int64_t rows) {
    return timer_.Mark(rows == 1 && tokens_ > 1 ? Stage::kLmHead : Stage::kLinear, stream_);
  }

  absl::StatusOr<int64_t> FreeDeviceBytes() {
    size_t free = 0, total = 0;
    SF_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free, &total), "reading free device memory");
    // Memory the pool holds but does not use is free for this prefill too.
    uint64_t reserved = 0, used = 0;
    cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &reserved);
    cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrUsedMemCurrent, &used);
    return static_cast<int64_t>(free) + static_cast<int64_t>(reserved - std::min(reserved, used));
  }

  // inv_freq on the device for a RoPE spec and head_dim, made once.
  absl::StatusOr<const float*> RopeTable(const kernels::RopeSpec& rope, int head_dim) {
    const auto key = std::make_tuple(static_cast<int>(rope.type), rope.theta, rope.factor,
                                     rope.low_freq_factor, rope.high_freq_factor,
                                     rope.original_max_position_embeddings, head_dim);
    if (auto it = rope_tables_.find(key); it != rope_tables_.end()) return it->second;
    const std::vector<float> inv_freq = kernels::RopeInverseFrequencies(rope, head_dim);
    float* device = nullptr;
    SF_CUDA_RETURN_IF_ERROR(cudaMalloc(reinterpret_cast<void**>(&device), inv_freq.size() * sizeof(float)), "RoPE table");
    SF_CUDA_RETURN_IF_ERROR(cudaMemcpy(device, inv_freq.data(), inv_freq.size() * sizeof(float),
                                       cudaMemcpyHostToDevice),
                            "RoPE table");
    rope_tables_[key] = device;
    return device;
  }

  CudaBackendOptions options_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  KvExporter exporter_;
  StageTimer timer_;

  int64_t tokens_ = 0;
  int num_heads_ = 0;
  int64_t weight_bytes_ = 0;
  int32_t* ids_ = nullptr;
  int64_t ids_capacity_ = 4;
  void* workspace_ = nullptr;
  int64_t workspace_bytes_ = 0;
  unsigned long long* pair_counters_ = nullptr;
  int64_t counter_capacity_ = 0;
  int next_counter_layer_ = 0;
  std::vector<std::pair<AttentionStats*, int>> pending_stats_;
  std::map<std::tuple<int, float, float, float, float, int64_t, int>, float*> rope_tables_;
};

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

bool CudaDeviceAvailable() { return CudaDeviceCount() > 0; }

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(const CudaBackendOptions& options) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    return absl::UnavailableError(absl::StrCat("no usable CUDA device: ",
                                               err != cudaSuccess ? cudaGetErrorString(err)
                                                                  : "none present"));
  }
  if (options.device < 0 || options.device >= count) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA device ", options.device, " does not exist (",
                                                   count, " present)"));
  }
  auto backend = std::make_unique<CudaBackend>(options);
  SF_RETURN_IF_ERROR(backend->Init());
  return backend;
}

}  // namespace sparsefill::worker
