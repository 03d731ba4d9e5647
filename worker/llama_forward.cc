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

absl::StatusOr<std::unique_ptr<BackendBuffer>> Alloc(Backend& backend, int64_t rows, int64_t cols) {
  return backend.Allocate(rows, cols);
}

}  // namespace

absl::StatusOr<PrefillOutput> RunLlamaPrefill(Backend& be, const ModelConfig& c,
                                              const LlamaWeights& w,
                                              std::span<const int32_t> tokens,
                                              const PrefillOptions& options) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T == 0) return absl::InvalidArgumentError("prompt is empty");
  for (int64_t t = 0; t < T; ++t) {
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
  const auto start = Clock::now();
  PrefillOutput out;
  PrefillStageSeconds& times = out.stages;
  const int64_t H = c.hidden_size;
  const int64_t chunk = std::max<int64_t>(1, std::min(T, be.chunk_tokens()));
  const bool sparse = options.patterns != nullptr && T >= options.patterns->min_sparse_tokens();
  const std::vector<HeadPattern> all_dense(c.num_heads, HeadPattern::Dense());

  // Whole-prompt activations; per-chunk scratch for the token-chunked ops.
  SF_ASSIGN_OR_RETURN(auto hidden, Alloc(be, T, H));
  SF_ASSIGN_OR_RETURN(auto q, Alloc(be, T, c.q_dim()));
  SF_ASSIGN_OR_RETURN(auto k, Alloc(be, T, c.kv_dim()));
  SF_ASSIGN_OR_RETURN(auto v, Alloc(be, T, c.kv_dim()));
  SF_ASSIGN_OR_RETURN(auto attn, Alloc(be, T, c.q_dim()));
  SF_ASSIGN_OR_RETURN(auto normed, Alloc(be, chunk, H));
  SF_ASSIGN_OR_RETURN(auto projected, Alloc(be, chunk, H));
  SF_ASSIGN_OR_RETURN(auto gate, Alloc(be, chunk, c.intermediate_size));
  SF_ASSIGN_OR_RETURN(auto up, Alloc(be, chunk, c.intermediate_size));

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

    // Attention inputs, chunk by chunk: x = RMSNorm(h); q, k, v = x Wq, x Wk, x Wv; RoPE(q, k).
    t0 = Clock::now();
    for (int64_t b = 0; b < T; b += chunk) {
      const int64_t e = std::min(T, b + chunk);
      const Tensor2D x = normed->view().Rows(0, e - b);
      SF_RETURN_IF_ERROR(
          be.RmsNorm(hidden->view().Rows(b, e), lw.input_norm->view(), c.rms_norm_eps, x));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.wq->view(), q->view().Rows(b, e)));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.wk->view(), k->view().Rows(b, e)));
      SF_RETURN_IF_ERROR(be.Linear(x, lw.wv->view(), v->view().Rows(b, e)));
      SF_RETURN_IF_ERROR(be.ApplyRope(q->view().Rows(b, e), c.num_heads, c.head_dim, c.rope, b));
      SF_RETURN_IF_ERROR(be.ApplyRope(k->view().Rows(b, e), c.num_kv_heads, c.head_dim, c.rope, b));
    }
    times.linear += SecondsSince(t0);

    // Attention over the whole prompt, each head with its pattern.
    t0 = Clock::now();
    AttentionStats stats;
    const std::vector<HeadPattern>& patterns = sparse ? options.patterns->layer(l) : all_dense;
    SF_RETURN_IF_ERROR(
        be.Attention(q->view(), k->view(), v->view(), shape, patterns, attn->view(), &stats));
    const double attention_seconds = SecondsSince(t0);
    times.estimation += stats.estimation_seconds;
    times.attention += attention_seconds - stats.estimation_seconds;
    out.attention_density.push_back(
        stats.dense_pairs > 0 ? static_cast<double>(stats.computed_pairs) / stats.dense_pairs
                              : 1.0);

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
      SF_RETURN_IF_ERROR(be.Linear(attn->view().Rows(b, e), lw.wo->view(), proj));
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
      SF_RETURN_IF_ERROR(
          be.ExportKv(l, k->view(), v->view(), c.num_kv_heads, c.head_dim, *options.kv_sink));
      times.kv_export += SecondsSince(t0);
    }
    if (options.on_layer_done) options.on_layer_done(l + 1, c.num_layers);
  }

  // Logits of the last position only: that is all a prefill needs for the first token.
  t0 = Clock::now();
  const Tensor2D last = hidden->view().Rows(T - 1, T);
  const Tensor2D x = normed->view().Rows(0, 1);
  SF_RETURN_IF_ERROR(be.RmsNorm(last, w.final_norm->view(), c.rms_norm_eps, x));
  SF_ASSIGN_OR_RETURN(auto logits, Alloc(be, 1, c.vocab_size));
  SF_RETURN_IF_ERROR(be.Linear(x, w.output_projection().view(), logits->view()));
  out.logits_last.resize(c.vocab_size);
  SF_RETURN_IF_ERROR(be.CopyToHost(logits->view(), out.logits_last.data()));
  const auto best = std::max_element(out.logits_last.begin(), out.logits_last.end());
  out.first_token = static_cast<int32_t>(best - out.logits_last.begin());
  out.first_token_logit = *best;
  times.lm_head = SecondsSince(t0);
  out.compute_seconds = SecondsSince(start);
  return out;
}

}  // namespace sparsefill::worker
