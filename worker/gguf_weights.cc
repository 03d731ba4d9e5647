#include "worker/gguf_weights.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

// GGUF per-block tensor suffix -> Hugging Face per-layer suffix.
constexpr std::pair<absl::string_view, absl::string_view> kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

absl::Status KeyError(const GgufFile& file, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": metadata '", key, "' ", what));
}

// An optional integer key: the value, or `fallback` when absent.
absl::StatusOr<int64_t> IntOr(const GgufFile& file, const std::string& key, int64_t fallback) {
  if (file.Find(key) == nullptr) return fallback;
  return file.GetInt(key);
}

}  // namespace

std::string HuggingFaceTensorName(absl::string_view name) {
  if (name == "token_embd.weight") return "model.embed_tokens.weight";
  if (name == "output_norm.weight") return "model.norm.weight";
  if (name == "output.weight") return "lm_head.weight";
  if (!absl::ConsumePrefix(&name, "blk.")) return "";
  const size_t dot = name.find('.');
  int layer = 0;
  if (dot == absl::string_view::npos || !absl::SimpleAtoi(name.substr(0, dot), &layer) ||
      layer < 0) {
    return "";
  }
  const absl::string_view suffix = name.substr(dot + 1);
  for (const auto& [gguf, hf] : kLayerNames) {
    if (suffix == gguf) return absl::StrCat("model.layers.", layer, ".", hf);
  }
  return "";
}

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file) {
  SF_ASSIGN_OR_RETURN(const std::string arch, file.GetString("general.architecture"));
  if (arch != "llama" && arch != "qwen2") {
    return absl::UnimplementedError(absl::StrCat(file.path(),
                                                 ": metadata 'general.architecture' is '", arch,
                                                 "': supported are 'llama' and 'qwen2'"));
  }
  const std::string p = arch + ".";
  ModelConfig c;
  c.model_type = arch;
  c.qkv_bias = arch == "qwen2";
  int64_t v;
  SF_ASSIGN_OR_RETURN(v, file.GetInt(p + "block_count"));
  c.num_layers = static_cast<int>(v);
  SF_ASSIGN_OR_RETURN(c.hidden_size, file.GetInt(p + "embedding_length"));
  SF_ASSIGN_OR_RETURN(c.intermediate_size, file.GetInt(p + "feed_forward_length"));
  SF_ASSIGN_OR_RETURN(v, file.GetInt(p + "attention.head_count"));
  c.num_heads = static_cast<int>(v);
  SF_ASSIGN_OR_RETURN(v, IntOr(file, p + "attention.head_count_kv", c.num_heads));
  c.num_kv_heads = static_cast<int>(v);
  if (c.num_heads <= 0) return KeyError(file, p + "attention.head_count", "must be > 0");
  SF_ASSIGN_OR_RETURN(v, IntOr(file, p + "attention.key_length", c.hidden_size / c.num_heads));
  c.head_dim = static_cast<int>(v);
  SF_ASSIGN_OR_RETURN(v, IntOr(file, p + "attention.value_length", c.head_dim));
  if (v != c.head_dim) {
    return KeyError(file, p + "attention.value_length",
                    absl::StrCat("is ", v, ", differs from the key length ", c.head_dim));
  }
  SF_ASSIGN_OR_RETURN(v, IntOr(file, p + "rope.dimension_count", c.head_dim));
  if (v != c.head_dim) {
    return KeyError(file, p + "rope.dimension_count",
                    absl::StrCat("is ", v, ": partial rotary embeddings (head_dim ", c.head_dim,
                                 ") are not supported"));
  }
  const std::string eps_key = p + "attention.layer_norm_rms_epsilon";
  SF_ASSIGN_OR_RETURN(const double eps, file.GetFloat(eps_key));
  c.rms_norm_eps = static_cast<float>(eps);
  c.rope.type = kernels::RopeSpec::Type::kDefault;
  if (file.Find(p + "rope.freq_base") != nullptr) {
    SF_ASSIGN_OR_RETURN(const double theta, file.GetFloat(p + "rope.freq_base"));
    if (!(theta > 0)) return KeyError(file, p + "rope.freq_base", "must be > 0");
    c.rope.theta = static_cast<float>(theta);
  }
  if (file.Find(p + "rope.scaling.type") != nullptr) {
    SF_ASSIGN_OR_RETURN(const std::string scaling, file.GetString(p + "rope.scaling.type"));
    if (scaling != "none") {
      return KeyError(file, p + "rope.scaling.type",
                      absl::StrCat("is '", scaling, "': RoPE scaling from GGUF is not supported"));
    }
  }
  if (file.FindTensor("rope_freqs.weight") != nullptr) {
    return absl::UnimplementedError(absl::StrCat(
        file.path(), ": tensor 'rope_freqs.weight' (llama3 RoPE scaling) is not supported"));
  }
  SF_ASSIGN_OR_RETURN(c.max_position_embeddings, IntOr(file, p + "context_length", 0));
  const GgufTensorInfo* embed = file.FindTensor("token_embd.weight");
  if (embed == nullptr) {
    return absl::NotFoundError(absl::StrCat(file.path(), ": no tensor 'token_embd.weight'"));
  }
  if (embed->dims.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": tensor 'token_embd.weight' is not 2-dimensional"));
  }
  SF_ASSIGN_OR_RETURN(c.vocab_size, IntOr(file, p + "vocab_size", embed->dims[1]));
  c.tie_word_embeddings = file.FindTensor("output.weight") == nullptr;
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(), ": GGUF metadata (as config.json names): ", s.message()));
  }
  return c;
}

void UnpermuteLlamaQK(int heads, int head_dim, int64_t cols, float* rows) {
  const int half = head_dim / 2;
  std::vector<float> head(static_cast<size_t>(head_dim) * cols);
  for (int h = 0; h < heads; ++h) {
    float* base = rows + static_cast<int64_t>(h) * head_dim * cols;
    std::memcpy(head.data(), base, head.size() * sizeof(float));
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < half; ++j) {
        // HF row i * half + j was stored as row 2 * j + i.
        std::memcpy(base + static_cast<int64_t>(i * half + j) * cols,
                    head.data() + static_cast<int64_t>(2 * j + i) * cols, cols * sizeof(float));
      }
    }
  }
}

absl::StatusOr<std::unique_ptr<GgufWeights>> GgufWeights::Load(const GgufFile& file,
                                                               const ModelConfig& config) {
  auto weights = std::unique_ptr<GgufWeights>(new GgufWeights());
  weights->path_ = file.path();
  const bool permuted = config.model_type == "llama";
  for (const GgufTensorInfo& t : file.tensors()) {
    auto bad = [&](absl::StatusCode code, absl::string_view what) {
      return absl::Status(code, absl::StrCat(file.path(), ": tensor '", t.name, "': ", what));
    };
    std::string hf = HuggingFaceTensorName(t.name);
    if (hf.empty() || (!config.qkv_bias && absl::EndsWith(hf, ".bias"))) {
      return bad(absl::StatusCode::kUnimplemented, "has no counterpart in the runtime's weights");
    }
    Stored stored;
    stored.gguf_name = t.name;
    stored.shape = t.RowMajorShape();
    stored.data.resize(static_cast<size_t>(t.numel()));
    if (absl::Status s = DequantizeGgml(t.type, t.data, t.numel(), stored.data.data()); !s.ok()) {
      return bad(s.code(), s.message());
    }
    const bool is_q = absl::EndsWith(hf, "q_proj.weight");
    const bool is_k = absl::EndsWith(hf, "k_proj.weight");
    if (permuted && (is_q || is_k)) {
      const int heads = is_q ? config.num_heads : config.num_kv_heads;
      if (stored.shape.size() != 2 ||
          stored.shape[0] != static_cast<int64_t>(heads) * config.head_dim) {
        return bad(absl::StatusCode::kInvalidArgument,
                   absl::StrCat("has shape ", ShapeString(stored.shape), ", expected ",
                                heads * config.head_dim, " rows (", heads, " heads of ",
                                config.head_dim, ")"));
      }
      UnpermuteLlamaQK(heads, config.head_dim, stored.shape[1], stored.data.data());
    }
    weights->tensors_.emplace(std::move(hf), std::move(stored));
  }
  return weights;
}

absl::StatusOr<TensorView> GgufWeights::Get(absl::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor for '", name, "'"));
  }
  TensorView v;
  v.name = absl::StrCat(it->first, " (GGUF '", it->second.gguf_name, "')");
  v.dtype = ScalarType::kFloat32;
  v.shape = it->second.shape;
  v.data = reinterpret_cast<const uint8_t*>(it->second.data.data());
  v.nbytes = it->second.data.size() * sizeof(float);
  return v;
}

}  // namespace sparsefill::worker
