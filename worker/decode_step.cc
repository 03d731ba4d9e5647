// RunLlamaDecodeStep (see decode_step.h).
#include "worker/decode_step.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "worker/safetensors.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

// Attention of one token's query heads ([heads, head_dim]) over the past keys and values
// ([past, kv_heads, head_dim]) plus its own (new_k, new_v: [kv_heads, head_dim]); grouped-query
// heads share their KV head; a sliding window keeps the last `window` positions (0: all).
void AttendOneToken(const ModelConfig& c, const float* q, const PastKvLayer& past,
                    int64_t past_tokens, const float* new_k, const float* new_v, float* out) {
  const int D = c.head_dim, KV = c.num_kv_heads;
  const int group = c.num_heads / KV;
  const int64_t first =
      c.sliding_window > 0 ? std::max<int64_t>(0, past_tokens + 1 - c.sliding_window) : 0;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> scores(static_cast<size_t>(past_tokens + 1 - first));
  for (int h = 0; h < c.num_heads; ++h) {
    const int g = h / group;
    const float* qh = q + static_cast<int64_t>(h) * D;
    auto key = [&](int64_t t) {
      return t < past_tokens ? past.k + (t * KV + g) * D : new_k + static_cast<int64_t>(g) * D;
    };
    auto value = [&](int64_t t) {
      return t < past_tokens ? past.v + (t * KV + g) * D : new_v + static_cast<int64_t>(g) * D;
    };
    double best = -INFINITY;
    for (int64_t t = first; t <= past_tokens; ++t) {
      const float* kt = key(t);
      double s = 0;
      for (int d = 0; d < D; ++d) s += static_cast<double>(qh[d]) * kt[d];
      scores[t - first] = s * scale;
      best = std::max(best, scores[t - first]);
    }
    double sum = 0;
    for (double& s : scores) sum += (s = std::exp(s - best));
    std::vector<double> acc(D, 0.0);
    for (int64_t t = first; t <= past_tokens; ++t) {
      const float* vt = value(t);
      const double p = scores[t - first] / sum;
      for (int d = 0; d < D; ++d) acc[d] += p * vt[d];
    }
    for (int d = 0; d < D; ++d) out[static_cast<int64_t>(h) * D + d] = static_cast<float>(acc[d]);
  }
}

}  // namespace

absl::StatusOr<DecodeStepOutput> RunLlamaDecodeStep(Backend& be, const ModelConfig& c,
                                                    const LlamaWeights& w,
                                                    std::span<const PastKvLayer> past,
                                                    int64_t past_tokens, int32_t token) {
  if (static_cast<int>(past.size()) != c.num_layers || past_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "decode step: past KV of ", past.size(), " layers and ", past_tokens,
        " tokens; the model has ", c.num_layers, " layers and needs at least 1 token"));
  }
  if (token < 0 || token >= c.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode step: token ", token, " outside [0, ", c.vocab_size, ")"));
  }
  SF_RETURN_IF_ERROR(be.BeginPrefill(c, 1, nullptr).status());
  const int64_t H = c.hidden_size;
  SF_ASSIGN_OR_RETURN(auto hidden, be.Allocate(1, H));
  SF_ASSIGN_OR_RETURN(auto x, be.Allocate(1, H));
  SF_ASSIGN_OR_RETURN(auto q, be.Allocate(1, c.q_dim()));
  SF_ASSIGN_OR_RETURN(auto k, be.Allocate(1, c.kv_dim()));
  SF_ASSIGN_OR_RETURN(auto v, be.Allocate(1, c.kv_dim()));
  SF_ASSIGN_OR_RETURN(auto proj, be.Allocate(1, H));
  SF_ASSIGN_OR_RETURN(auto gate, be.Allocate(1, c.intermediate_size));
  SF_ASSIGN_OR_RETURN(auto up, be.Allocate(1, c.intermediate_size));
  SF_ASSIGN_OR_RETURN(auto logits, be.Allocate(1, c.vocab_size));

  const int32_t ids[1] = {token};
  SF_RETURN_IF_ERROR(be.Embed(ids, w.embed_tokens->view(), hidden->view()));
  DecodeStepOutput out;
  out.k.resize(c.num_layers);
  out.v.resize(c.num_layers);
  std::vector<float> hq(c.q_dim()), attn(c.q_dim());
  for (int l = 0; l < c.num_layers; ++l) {
    std::vector<float>& hk = out.k[l];
    std::vector<float>& hv = out.v[l];
    hk.resize(c.kv_dim());
    hv.resize(c.kv_dim());
    const LlamaLayerWeights& lw = w.layers[l];
    // Norm, projections, RoPE at position past_tokens: as the prefill does for one row.
    SF_RETURN_IF_ERROR(
        be.RmsNorm(hidden->view(), lw.input_norm->view(), c.rms_norm_eps, x->view()));
    SF_RETURN_IF_ERROR(be.Linear(x->view(), lw.wq->view(), q->view()));
    SF_RETURN_IF_ERROR(be.Linear(x->view(), lw.wk->view(), k->view()));
    SF_RETURN_IF_ERROR(be.Linear(x->view(), lw.wv->view(), v->view()));
    if (c.qkv_bias) {
      SF_RETURN_IF_ERROR(be.AddBias(q->view(), lw.bq->view()));
      SF_RETURN_IF_ERROR(be.AddBias(k->view(), lw.bk->view()));
      SF_RETURN_IF_ERROR(be.AddBias(v->view(), lw.bv->view()));
    }
    SF_RETURN_IF_ERROR(be.ApplyRope(q->view(), c.num_heads, c.head_dim, c.rope, past_tokens));
    SF_RETURN_IF_ERROR(be.ApplyRope(k->view(), c.num_kv_heads, c.head_dim, c.rope, past_tokens));
    // Attention on the host over the given past and this token's own K and V.
    SF_RETURN_IF_ERROR(be.CopyToHost(q->view(), hq.data()));
    SF_RETURN_IF_ERROR(be.CopyToHost(k->view(), hk.data()));
    SF_RETURN_IF_ERROR(be.CopyToHost(v->view(), hv.data()));
    AttendOneToken(c, hq.data(), past[l], past_tokens, hk.data(), hv.data(), attn.data());
    TensorView attn_view;
    attn_view.name = "decode_step.attention";
    attn_view.dtype = kernels::ScalarType::kFloat32;
    attn_view.shape = {1, c.q_dim()};
    attn_view.data = reinterpret_cast<const uint8_t*>(attn.data());
    attn_view.nbytes = attn.size() * sizeof(float);
    SF_ASSIGN_OR_RETURN(auto attn_buffer, be.UploadWeight(attn_view));
    // Output projection, residual, MLP, residual.
    SF_RETURN_IF_ERROR(be.Linear(attn_buffer->view(), lw.wo->view(), proj->view()));
    SF_RETURN_IF_ERROR(be.AddInPlace(hidden->view(), proj->view()));
    SF_RETURN_IF_ERROR(
        be.RmsNorm(hidden->view(), lw.post_attention_norm->view(), c.rms_norm_eps, x->view()));
    SF_RETURN_IF_ERROR(be.Linear(x->view(), lw.w_gate->view(), gate->view()));
    SF_RETURN_IF_ERROR(be.Linear(x->view(), lw.w_up->view(), up->view()));
    SF_RETURN_IF_ERROR(be.SwiGlu(gate->view(), up->view(), gate->view()));
    SF_RETURN_IF_ERROR(be.Linear(gate->view(), lw.w_down->view(), proj->view()));
    SF_RETURN_IF_ERROR(be.AddInPlace(hidden->view(), proj->view()));
  }
  SF_RETURN_IF_ERROR(be.RmsNorm(hidden->view(), w.final_norm->view(), c.rms_norm_eps, x->view()));
  SF_RETURN_IF_ERROR(be.Linear(x->view(), w.output_projection().view(), logits->view()));
  out.logits.resize(c.vocab_size);
  SF_RETURN_IF_ERROR(be.CopyToHost(logits->view(), out.logits.data()));
  PrefillOutput unused;
  SF_RETURN_IF_ERROR(be.FinishPrefill(&unused));
  const auto best = std::max_element(out.logits.begin(), out.logits.end());
  out.next_token = static_cast<int32_t>(best - out.logits.begin());
  out.next_token_logit = *best;
  return out;
}

}  // namespace sparsefill::worker
