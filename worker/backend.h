// The compute backend the Llama forward pass is written against (llama_forward.h). A backend
// owns its memory and runs the ops of one transformer layer; CPU now, CUDA with the same
// interface later. All ops take row-major 2D views; a [tokens, heads, head_dim] tensor is the
// view [tokens, heads * head_dim].
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/attention/attention_shape.h"
#include "kernels/ops/rope_ref.h"
#include "kernels/scalar_type.h"
#include "worker/kv_sink.h"
#include "worker/model_config.h"
#include "worker/pattern_config.h"
#include "worker/prefill.h"
#include "worker/safetensors.h"

namespace sparsefill::worker {

// A row-major [rows, cols] view into backend memory.
struct Tensor2D {
  void* data = nullptr;
  kernels::ScalarType dtype = kernels::ScalarType::kFloat32;
  int64_t rows = 0;
  int64_t cols = 0;

  // Rows [begin, end) of this view.
  Tensor2D Rows(int64_t begin, int64_t end) const {
    Tensor2D t = *this;
    t.data =
        static_cast<char*>(data) + begin * cols * static_cast<int64_t>(kernels::ScalarSize(dtype));
    t.rows = end - begin;
    return t;
  }
};

// Memory owned by a backend; freed when destroyed.
class BackendBuffer {
 public:
  virtual ~BackendBuffer() = default;
  const Tensor2D& view() const { return view_; }

 protected:
  Tensor2D view_;
};

// What the attention op did, for metrics and the result message. An asynchronous backend fills
// it by the time FinishPrefill returns.
struct AttentionStats {
  int64_t computed_pairs = 0;     // (query head, query, key) triples computed
  int64_t dense_pairs = 0;        // the same for dense causal attention
  double estimation_seconds = 0;  // pattern estimation and index building
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual absl::string_view name() const = 0;
  // The dtype of activations, KV and the buffers Allocate returns.
  virtual kernels::ScalarType activation_dtype() const = 0;
  // Whether several prefills may run on this backend at once (else Model serialises them).
  virtual bool concurrent_prefills() const { return true; }
  // Whether the K and V of consecutive layers need separate buffers: an asynchronous export still
  // reads layer l's while layer l + 1 is computed.
  virtual bool double_buffer_kv() const { return false; }

  // Starts a prefill of `tokens` (with `patterns`, null for dense) and returns the rows per call
  // of the token-chunked ops (linear layers, MLP): OutOfRange, with the numbers, when the prompt
  // cannot fit, before any work.
  virtual absl::StatusOr<int64_t> BeginPrefill(const ModelConfig& config, int64_t tokens,
                                               const PatternConfig* patterns) = 0;
  // Ends the prefill begun last, also after an error: waits for outstanding device work and KV
  // exports, completes the AttentionStats given to Attention, and for an asynchronous backend
  // replaces the host-measured stage times in out->stages with device-measured ones and sets
  // out->peak_device_bytes. Returns the first error an asynchronous KV export hit (e.g. the
  // sink's Cancelled).
  virtual absl::Status FinishPrefill(PrefillOutput* out) = 0;

  virtual absl::StatusOr<std::unique_ptr<BackendBuffer>> Allocate(int64_t rows, int64_t cols) = 0;
  // Copies a checkpoint tensor into backend memory as a [rows, cols] matrix (1-D tensors are one
  // row), converted to the backend's weight format.
  virtual absl::StatusOr<std::unique_ptr<BackendBuffer>> UploadWeight(const TensorView& tensor) = 0;
  // A [rows, cols] weight of deterministic pseudo-random normal values (mean, stddev) from `seed`
  // (random-weights models for benchmarks; values differ between backends).
  virtual absl::StatusOr<std::unique_ptr<BackendBuffer>> CreateRandomWeight(int64_t rows,
                                                                           int64_t cols,
                                                                           float mean,
                                                                           float stddev,
                                                                           uint64_t seed) = 0;

  // out[t] = table[ids[t]]; ids are already validated against the vocabulary.
  virtual absl::Status Embed(std::span<const int32_t> ids, const Tensor2D& table, Tensor2D out) = 0;
  virtual absl::Status RmsNorm(const Tensor2D& x, const Tensor2D& weight, float eps,
                               Tensor2D out) = 0;
  // y = x @ weight^T, weight [out_features, in_features].
  virtual absl::Status Linear(const Tensor2D& x, const Tensor2D& weight, Tensor2D y) = 0;
  // Rotates x, [rows, heads * head_dim], whose row r is at position first_position + r.
  virtual absl::Status ApplyRope(Tensor2D x, int heads, int head_dim, const kernels::RopeSpec& rope,
                                 int64_t first_position) = 0;
  // out = silu(gate) * up; out may alias gate.
  virtual absl::Status SwiGlu(const Tensor2D& gate, const Tensor2D& up, Tensor2D out) = 0;
  virtual absl::Status AddInPlace(Tensor2D acc, const Tensor2D& x) = 0;
  // x[r, :] += bias[0, :] for every row (Qwen2's q/k/v biases). With 0 rows it only answers
  // whether the backend has the op: Unimplemented (this default) when it does not.
  virtual absl::Status AddBias(Tensor2D x, const Tensor2D& bias) {
    (void)x;
    (void)bias;
    return absl::UnimplementedError(
        absl::StrCat("the ", name(), " backend has no bias add (q/k/v biases, Qwen2)"));
  }
  // Causal attention of all prompt tokens, each query head with its pattern (patterns.size() ==
  // q_heads); the backend estimates sparse patterns and builds their indices itself. `out` may be
  // `q` itself (each query row is read before its output row is written).
  virtual absl::Status Attention(const Tensor2D& q, const Tensor2D& k, const Tensor2D& v,
                                 const kernels::AttentionShape& shape,
                                 std::span<const HeadPattern> patterns, Tensor2D out,
                                 AttentionStats* stats) = 0;
  // Hands this layer's K and V ([tokens, kv_heads * head_dim]) to the sink, in host memory, in
  // layer order. An asynchronous backend copies them off the device while the next layer
  // computes; the buffers must then stay untouched until the next-but-one layer.
  virtual absl::Status ExportKv(int layer, const Tensor2D& k, const Tensor2D& v, int kv_heads,
                                int head_dim, KvSink& sink) = 0;
  // Copies a view to host float32.
  virtual absl::Status CopyToHost(const Tensor2D& x, float* dst) = 0;
};

}  // namespace sparsefill::worker
