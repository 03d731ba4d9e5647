#include "worker/model_config.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: field '", field, "' ", what));
}

absl::StatusOr<int64_t> RequireInt(const JsonValue& json, absl::string_view field) {
  const JsonValue* v = json.Find(field);
  if (v == nullptr || v->is_null()) return FieldError(field, "is missing");
  if (!v->is_integer())
    return FieldError(field, absl::StrCat("must be an integer, got ", v->TypeName()));
  return v->as_int();
}

// Missing or null gives the default.
absl::StatusOr<int64_t> OptionalInt(const JsonValue& json, absl::string_view field,
                                    int64_t fallback) {
  const JsonValue* v = json.Find(field);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_integer())
    return FieldError(field, absl::StrCat("must be an integer, got ", v->TypeName()));
  return v->as_int();
}

absl::StatusOr<double> OptionalNumber(const JsonValue& json, absl::string_view field,
                                      double fallback, absl::string_view display) {
  const JsonValue* v = json.Find(field);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_number())
    return FieldError(display, absl::StrCat("must be a number, got ", v->TypeName()));
  return v->as_double();
}

absl::StatusOr<bool> OptionalBool(const JsonValue& json, absl::string_view field, bool fallback) {
  const JsonValue* v = json.Find(field);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_bool())
    return FieldError(field, absl::StrCat("must be true or false, got ", v->TypeName()));
  return v->as_bool();
}

// Reads the RoPE settings. `params` is the rope_parameters object (transformers 5) or the
// top-level config (older form, where scaling lives in `rope_scaling`).
absl::Status ReadRope(const JsonValue& json, int64_t max_positions, kernels::RopeSpec* rope) {
  const JsonValue* parameters = json.Find("rope_parameters");
  const JsonValue* scaling = nullptr;
  std::string prefix;
  double theta = 10000.0;
  if (parameters != nullptr && !parameters->is_null()) {
    if (!parameters->is_object()) return FieldError("rope_parameters", "must be an object");
    if (parameters->Find("rope_type") == nullptr && parameters->Find("rope_theta") == nullptr) {
      // transformers 5 nests per-attention-type parameters for hybrid models.
      return FieldError("rope_parameters",
                        "has no rope_type/rope_theta (per-layer-type RoPE is not supported)");
    }
    scaling = parameters;
    prefix = "rope_parameters.";
    // A top-level rope_theta may accompany it; rope_parameters wins.
    SF_ASSIGN_OR_RETURN(theta, OptionalNumber(json, "rope_theta", 10000.0, "rope_theta"));
    SF_ASSIGN_OR_RETURN(
        theta, OptionalNumber(*parameters, "rope_theta", theta, "rope_parameters.rope_theta"));
  } else {
    SF_ASSIGN_OR_RETURN(theta, OptionalNumber(json, "rope_theta", 10000.0, "rope_theta"));
    const JsonValue* s = json.Find("rope_scaling");
    if (s != nullptr && !s->is_null()) {
      if (!s->is_object()) return FieldError("rope_scaling", "must be an object or null");
      scaling = s;
      prefix = "rope_scaling.";
    }
  }
  if (!(theta > 0)) return FieldError(prefix + "rope_theta", "must be > 0");
  rope->theta = static_cast<float>(theta);
  rope->type = kernels::RopeSpec::Type::kDefault;
  if (scaling == nullptr) return absl::OkStatus();

  // Older checkpoints call it `type`; transformers accepts both.
  const JsonValue* type = scaling->Find("rope_type");
  std::string type_field = prefix + "rope_type";
  if (type == nullptr || type->is_null()) {
    type = scaling->Find("type");
    type_field = prefix + "type";
  }
  std::string type_name = "default";
  if (type != nullptr && !type->is_null()) {
    if (!type->is_string()) return FieldError(type_field, "must be a string");
    type_name = type->as_string();
  }
  if (type_name == "default") return absl::OkStatus();
  if (type_name != "llama3") {
    return FieldError(
        type_field,
        absl::StrCat("is '", type_name, "': supported rope types are 'default' and 'llama3'"));
  }
  rope->type = kernels::RopeSpec::Type::kLlama3;
  double factor, low, high;
  SF_ASSIGN_OR_RETURN(factor, OptionalNumber(*scaling, "factor", -1, prefix + "factor"));
  SF_ASSIGN_OR_RETURN(low,
                      OptionalNumber(*scaling, "low_freq_factor", -1, prefix + "low_freq_factor"));
  SF_ASSIGN_OR_RETURN(
      high, OptionalNumber(*scaling, "high_freq_factor", -1, prefix + "high_freq_factor"));
  int64_t original;
  SF_ASSIGN_OR_RETURN(original, OptionalInt(*scaling, "original_max_position_embeddings", -1));
  if (factor <= 0)
    return FieldError(prefix + "factor", "is required for llama3 RoPE and must be > 0");
  if (low <= 0)
    return FieldError(prefix + "low_freq_factor", "is required for llama3 RoPE and must be > 0");
  if (high <= low) {
    return FieldError(prefix + "high_freq_factor",
                      "is required for llama3 RoPE and must exceed low_freq_factor");
  }
  if (original <= 0) {
    // transformers falls back to max_position_embeddings for this one.
    original = max_positions;
    if (original <= 0) {
      return FieldError(prefix + "original_max_position_embeddings", "is required for llama3 RoPE");
    }
  }
  rope->factor = static_cast<float>(factor);
  rope->low_freq_factor = static_cast<float>(low);
  rope->high_freq_factor = static_cast<float>(high);
  rope->original_max_position_embeddings = original;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const JsonValue& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");
  ModelConfig c;
  const JsonValue* type = json.Find("model_type");
  if (type != nullptr && type->is_string()) c.model_type = type->as_string();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2") {
    return FieldError(
        "model_type",
        absl::StrCat("is '", c.model_type, "': supported are 'llama', 'mistral' and 'qwen2'"));
  }
  c.qkv_bias = c.model_type == "qwen2";
  const JsonValue* act = json.Find("hidden_act");
  if (act != nullptr && act->is_string() && act->as_string() != "silu") {
    return FieldError("hidden_act",
                      absl::StrCat("is '", act->as_string(), "': only 'silu' is supported"));
  }
  for (absl::string_view bias : {"attention_bias", "mlp_bias"}) {
    bool has_bias = false;
    SF_ASSIGN_OR_RETURN(has_bias, OptionalBool(json, bias, false));
    if (has_bias) return FieldError(bias, "is true: biased projections are not supported");
  }
  int64_t v;
  SF_ASSIGN_OR_RETURN(c.vocab_size, RequireInt(json, "vocab_size"));
  SF_ASSIGN_OR_RETURN(c.hidden_size, RequireInt(json, "hidden_size"));
  SF_ASSIGN_OR_RETURN(c.intermediate_size, RequireInt(json, "intermediate_size"));
  SF_ASSIGN_OR_RETURN(v, RequireInt(json, "num_hidden_layers"));
  c.num_layers = static_cast<int>(v);
  SF_ASSIGN_OR_RETURN(v, RequireInt(json, "num_attention_heads"));
  c.num_heads = static_cast<int>(v);
  // Llama 1 configs omit num_key_value_heads: MHA.
  SF_ASSIGN_OR_RETURN(v, OptionalInt(json, "num_key_value_heads", c.num_heads));
  c.num_kv_heads = static_cast<int>(v);
  if (c.num_heads <= 0) return FieldError("num_attention_heads", "must be > 0");
  SF_ASSIGN_OR_RETURN(v, OptionalInt(json, "head_dim", c.hidden_size / c.num_heads));
  c.head_dim = static_cast<int>(v);
  double eps;
  SF_ASSIGN_OR_RETURN(eps, OptionalNumber(json, "rms_norm_eps", 1e-6, "rms_norm_eps"));
  c.rms_norm_eps = static_cast<float>(eps);
  SF_ASSIGN_OR_RETURN(c.tie_word_embeddings, OptionalBool(json, "tie_word_embeddings", false));
  SF_ASSIGN_OR_RETURN(c.max_position_embeddings, OptionalInt(json, "max_position_embeddings", 0));
  SF_ASSIGN_OR_RETURN(c.sliding_window, OptionalInt(json, "sliding_window", 0));
  if (c.model_type == "qwen2") {
    // Qwen2 configs name a window that transformers applies only with use_sliding_window (and
    // then only above max_window_layers).
    bool use_window = false;
    SF_ASSIGN_OR_RETURN(use_window, OptionalBool(json, "use_sliding_window", false));
    if (use_window) {
      return FieldError("use_sliding_window", "is true: Qwen2's per-layer window is not supported");
    }
    c.sliding_window = 0;
  }
  if (absl::Status s = ReadRope(json, c.max_position_embeddings, &c.rope); !s.ok()) return s;
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  return c;
}

absl::Status ModelConfig::Validate() const {
  auto positive = [](absl::string_view field, int64_t x) -> absl::Status {
    if (x <= 0) return FieldError(field, absl::StrCat("must be > 0, got ", x));
    return absl::OkStatus();
  };
  for (auto [field, x] : {std::pair<absl::string_view, int64_t>{"vocab_size", vocab_size},
                          {"hidden_size", hidden_size},
                          {"intermediate_size", intermediate_size},
                          {"num_hidden_layers", num_layers},
                          {"num_attention_heads", num_heads},
                          {"num_key_value_heads", num_kv_heads},
                          {"head_dim", head_dim}}) {
    if (absl::Status s = positive(field, x); !s.ok()) return s;
  }
  if (num_heads % num_kv_heads != 0) {
    return FieldError(
        "num_key_value_heads",
        absl::StrCat("(", num_kv_heads, ") must divide num_attention_heads (", num_heads, ")"));
  }
  if (head_dim % 2 != 0)
    return FieldError("head_dim", absl::StrCat("must be even for RoPE, got ", head_dim));
  if (vocab_size > INT32_MAX) return FieldError("vocab_size", "exceeds the int32 token id range");
  if (sliding_window < 0) return FieldError("sliding_window", "must be >= 0 or null");
  if (!(rms_norm_eps > 0)) return FieldError("rms_norm_eps", "must be > 0");
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ModelConfig::FromFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<JsonValue> json = ParseJson(*text);
  if (!json.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", json.status().message()));
  absl::StatusOr<ModelConfig> config = FromJson(*json);
  if (!config.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  return config;
}

std::string ModelConfig::Summary() const {
  return absl::StrCat(
      model_type, ": ", num_layers, " layers, hidden ", hidden_size, ", ", num_heads, " query / ",
      num_kv_heads, " KV heads x ", head_dim, ", MLP ", intermediate_size, ", vocab ", vocab_size,
      ", RoPE ", rope.type == kernels::RopeSpec::Type::kLlama3 ? "llama3" : "default", " theta ",
      rope.theta, tie_word_embeddings ? ", tied embeddings" : "", qkv_bias ? ", q/k/v bias" : "");
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return ss.str();
}

}  // namespace sparsefill::worker
