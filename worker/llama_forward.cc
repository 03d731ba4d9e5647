#include "worker/llama_forward.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::Status ValidatePrompt(const ModelConfig& c, std::span<const int32_t> tokens,
                            const PrefillOptions& options) {
  if (tokens.empty()) return absl::InvalidArgumentError("prompt is empty");
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", tokens[t], " at position ", t,
                                                     " is outside the vocabulary [0, ",
                                                     c.vocab_size, ")"));
    }
  }
  if (options.patterns != nullptr && (options.patterns->num_layers() != c.num_layers ||
                                      options.patterns->num_heads() != c.num_heads)) {
    return absl::InvalidArgumentError("pattern config does not match the model's layers and heads");
  }
  return absl::OkStatus();
}

// A prefill's device buffers. They outlive FinishPrefill: an asynchronous export may still be
// reading K and V when the last layer returns.
struct Activations {
  std::unique_ptr<BackendBuffer> hidden, q, k[2], v[2], normed, projected, gate, up, logits;
};

// The layers and the logits, once BeginPrefill has said how many tokens a chunk holds.
absl::Status RunLayers(Backend& be, const ModelConfig& c, const LlamaWeights& w,
                       std::span<const int32_t> tokens, const PrefillOptions& options,
                       int64_t chunk, Activations& a, std::vector<AttentionStats>* stats,
                       PrefillOutput* out) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t H = c.hidden_size;
  PrefillStageSeconds& times = out->stages;
  const bool sparse = options.patterns != nullptr && T >= options.patterns->min_sparse_tokens();
  const std::vector<HeadPattern> all_dense(c.num_heads, HeadPattern::Dense());

  // Whole-prompt activations. The attention output overwrites Q; K and V alternate between two
  // buffers when the backend exports them asynchronously.
  SF_ASSIGN_OR_RETURN(a.hidden, be.Allocate(T, H));
  SF_ASSIGN_OR_RETURN(a.q, be.Allocate(T, c.q_dim()));
  const int kv_sets = be.double_buffer_kv() ? 2 : 1;
  for (int i = 0; i < kv_sets; ++i) {
    SF_ASSIGN_OR_RETURN(a.k[i], be.Allocate(T, c.kv_dim()));
    SF_ASSIGN_OR_RETURN(a.v[i], be.Allocate(T, c.kv_dim()));
  }
  // Per-chunk scratch for the token-chunked ops.
  SF_ASSIGN_OR_RETURN(a.normed, be.Allocate(chunk, H));
  SF_ASSIGN_OR_RETURN(a.projected, be.Allocate(chunk, H));
  SF_ASSIGN_OR_RETURN(a.gate, be.Allocate(chunk, c.intermediate_size));
  SF_ASSIGN_OR_RETURN(a.up, be.Allocate(chunk, c.intermediate_size));
  SF_ASSIGN_OR_RETURN(a.logits, be.Allocate(1, c.vocab_size));
  BackendBuffer *hidden = a.hidden.get(), *q = a.q.get(), *normed = a.normed.get(),
                *projected = a.projected.get(), *gate = a.gate.get(), *up = a.up.get();

  auto t0 = Clock::now();
  SF_RETURN_IF_ERROR(be.Embed(tokens, w.embed_tokens->view(), hidden->view()));
  times.embed = SecondsSince(t0);

  kernels::AttentionShape shape;
  shape.tokens = T;
  shape.q_heads = c.num_heads;
  shape.kv_heads = c.num_kv_heads;
  shape.head_dim = c.head_dim;
  shape.sliding_window = c.sliding_window;

  for (int l = 0; l < c.num_layers; ++l) {
    if (options.should_stop && options.should_stop()) {
      return absl::CancelledError(absl::StrCat("prefill stopped before layer ", l));
    }
    const LlamaLayerWeights& lw = w.layers[l];
    const Tensor2D k = a.k[l % kv_sets]->view();
    const Tensor2D v = a.v[l % kv_sets]->view();

    // Attention inputs, chunk by chunk: x = RMSNorm(h); q, k, v = x Wq (+ bq), x Wk (+ bk),
    // x Wv (+ bv); RoPE(q, k).
    t0 = Clock::now();
    for (int64_t b = 0; b < T; b += chunk) {
      const int64_t e = std::min(T, b + chunk);
      const Tensor2D x = normed->view().Rows(0, e - b);
      SF_RETURN_IF_ERROR(be.RmsNorm(hidden->view().Rows(b, e), lw.input_norm->view(), c.rms_norm_eps, x));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.wq->view(), q->view().Rows(b, e)));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.wk->view(), k.Rows(b, e)));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.wv->view(), v.Rows(b, e)));
      if (lw.bq != nullptr) {
        SF_RETURN_IF_ERROR(be.AddBias(q->view().Rows(b, e), lw.bq->view()));
        SF_RETURN_IF_ERROR(be.AddBias(k.Rows(b, e), lw.bk->view()));
        SF_RETURN_IF_ERROR(be.AddBias(v.Rows(b, e), lw.bv->view()));
      }
      SF_RETURN_IF_ERROR(be.ApplyRope(q->view().Rows(b, e), c.num_heads, c.head_dim, c.rope, b));
      SF_RETURN_IF_ERROR(be.ApplyRope(k.Rows(b, e), c.num_kv_heads, c.head_dim, c.rope, b));
    }
    times.linear += SecondsSince(t0);

    // Attention over the whole prompt, each head with its pattern, written over Q.
    t0 = Clock::now();
    const std::vector<HeadPattern>& patterns = sparse ? options.patterns->layer(l) : all_dense;
    AttentionStats& layer_stats = (*stats)[l];
    SF_RETURN_IF_ERROR(be.Attention(q->view(), k, v, shape, patterns, q->view(), &layer_stats));
    const double attention_seconds = SecondsSince(t0);
    times.estimation += layer_stats.estimation_seconds;
    times.attention += attention_seconds - layer_stats.estimation_seconds;
    const Tensor2D attn = q->view();

    // Output projection and MLP, chunk by chunk:
    //   h += attn Wo;  h += Wdown(silu(RMSNorm(h) Wgate) * (RMSNorm(h) Wup)).
    t0 = Clock::now();
    for (int64_t b = 0; b < T; b += chunk) {
      const int64_t e = std::min(T, b + chunk);
      const Tensor2D h = hidden->view().Rows(b, e);
      const Tensor2D proj = projected->view().Rows(0, e - b);
      const Tensor2D x = normed->view().Rows(0, e - b);
      const Tensor2D g = gate->view().Rows(0, e - b);
      const Tensor2D u = up->view().Rows(0, e - b);
      SF_RETURN_IF_ERROR(be.Linear(attn.Rows(b, e), lw.wo->view(), proj));
      SF_RETURN_IF_ERROR(be.AddInPlace(h, proj));
      SF_RETURN_IF_ERROR(be.RmsNorm(h, lw.post_attention_norm->view(), c.rms_norm_eps, x));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.w_gate->view(), g));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.w_up->view(), u));
      SF_RETURN_IF_ERROR(be.SwiGlu(g, u, g));
      SF_RETURN_IF_ERROR(be.Linear(g, lw.w_down->view(), proj));
      SF_RETURN_IF_ERROR(be.AddInPlace(h, proj));
    }
    times.linear += SecondsSince(t0);

    if (options.kv_sink != nullptr) {
      t0 = Clock::now();
      SF_RETURN_IF_ERROR(be.ExportKv(l, k, v, c.num_kv_heads, c.head_dim, *options.kv_sink));
      times.kv_export += SecondsSince(t0);
    }
    if (options.on_layer_done) options.on_layer_done(l + 1, c.num_layers);
  }

  // Logits of the last position only: that is all a prefill needs for the first token.
  t0 = Clock::now();
  const Tensor2D last = hidden->view().Rows(T - 1, T);
  const Tensor2D x = normed->view().Rows(0, 1);
  SF_RETURN_IF_ERROR(be.RmsNorm(last, w.final_norm->view(), c.rms_norm_eps, x));
  SF_RETURN_IF_ERROR(be.Linear(x, w.output_projection().view(), a.logits->view()));
  out->logits_last.resize(c.vocab_size);
  SF_RETURN_IF_ERROR(be.CopyToHost(a.logits->view(), out->logits_last.data()));
  times.lm_head = SecondsSince(t0);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PrefillOutput> RunLlamaPrefill(Backend& be, const ModelConfig& c, const LlamaWeights& w,
                                              std::span<const int32_t> tokens,
                                              const PrefillOptions& options) {
  SF_RETURN_IF_ERROR(ValidatePrompt(c, tokens, options));
  const auto start = Clock::now();
  const int64_t T = static_cast<int64_t>(tokens.size());
  const PatternConfig* patterns =
      options.patterns != nullptr && T >= options.patterns->min_sparse_tokens() ? options.patterns : nullptr;
  SF_ASSIGN_OR_RETURN(const int64_t chunk, be.BeginPrefill(c, T, patterns));
  PrefillOutput out;
  std::vector<AttentionStats> stats(c.num_layers);
  Activations activations;
  const absl::Status run =
      RunLayers(be, c, w, tokens, options, std::max<int64_t>(1, chunk), activations, &stats, &out);
  // Always finish: an asynchronous backend drains its exports and queues here.
  const absl::Status finish = be.FinishPrefill(&out);
  SF_RETURN_IF_ERROR(run);
  SF_RETURN_IF_ERROR(finish);

  for (const AttentionStats& s : stats) {
    out.attention_density.push_back(
        s.dense_pairs > 0 ? static_cast<double>(s.computed_pairs) / static_cast<double>(s.dense_pairs) : 1.0);
  }
  const auto best = std::max_element(out.logits_last.begin(), out.logits_last.end());
  out.first_token = static_cast<int32_t>(best - out.logits_last.begin());
  out.first_token_logit = *best;
  out.compute_seconds = SecondsSince(start);
  return out;
}

}  // namespace sparsefill::worker
