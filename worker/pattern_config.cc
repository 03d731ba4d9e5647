#include "worker/pattern_config.h"

#include <algorithm>
#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/model_config.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

absl::Status ConfigError(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("pattern config: ", where, ": ", what));
}

absl::StatusOr<int64_t> PositiveInt(const JsonValue& obj, absl::string_view key,
                                    absl::string_view where) {
  const JsonValue* v = obj.Find(key);
  if (v == nullptr) return ConfigError(where, absl::StrCat("missing '", key, "'"));
  if (!v->is_integer() || v->as_int() <= 0) {
    return ConfigError(where, absl::StrCat("'", key, "' must be a positive integer"));
  }
  return v->as_int();
}

absl::StatusOr<HeadPattern> ParseHead(const JsonValue& obj, absl::string_view where) {
  if (!obj.is_object())
    return ConfigError(where, absl::StrCat("expected an object, got ", obj.TypeName()));
  const JsonValue* type = obj.Find("type");
  if (type == nullptr || !type->is_string()) return ConfigError(where, "missing string 'type'");
  const std::string& t = type->as_string();
  std::vector<absl::string_view> allowed = {"type"};
  HeadPattern p;
  if (t == "dense") {
    p = HeadPattern::Dense();
  } else if (t == "a_shape") {
    SF_ASSIGN_OR_RETURN(const int64_t n_init, PositiveInt(obj, "n_init", where));
    SF_ASSIGN_OR_RETURN(const int64_t n_local, PositiveInt(obj, "n_local", where));
    p = HeadPattern::AShape(n_init, n_local);
    allowed = {"type", "n_init", "n_local"};
  } else if (t == "vertical_slash") {
    SF_ASSIGN_OR_RETURN(const int64_t vertical, PositiveInt(obj, "vertical", where));
    SF_ASSIGN_OR_RETURN(const int64_t slash, PositiveInt(obj, "slash", where));
    p = HeadPattern::VerticalSlash(vertical, slash);
    allowed = {"type", "vertical", "slash"};
  } else if (t == "block_sparse") {
    SF_ASSIGN_OR_RETURN(const int64_t top_k, PositiveInt(obj, "top_k", where));
    p = HeadPattern::BlockSparse(top_k);
    allowed = {"type", "top_k"};
  } else {
    return ConfigError(where,
                       absl::StrCat("unknown type '", t,
                                    "' (expected dense, a_shape, vertical_slash or block_sparse)"));
  }
  for (const auto& [key, value] : obj.as_object()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return ConfigError(where, absl::StrCat("unexpected key '", key, "' for type '", t, "'"));
    }
  }
  return p;
}

absl::StatusOr<std::vector<std::vector<HeadPattern>>> ParseOurs(const JsonValue& root,
                                                                int num_layers, int num_heads,
                                                                int64_t* min_sparse) {
  for (const auto& [key, value] : root.as_object()) {
    if (key != "format" && key != "min_sparse_tokens" && key != "default" && key != "layers") {
      return ConfigError("top level", absl::StrCat("unexpected key '", key, "'"));
    }
  }
  if (const JsonValue* f = root.Find("format"); f != nullptr) {
    if (!f->is_string() || f->as_string() != "sparsefill.patterns.v1") {
      return ConfigError("format", "must be \"sparsefill.patterns.v1\"");
    }
  }
  *min_sparse = 0;
  if (const JsonValue* m = root.Find("min_sparse_tokens"); m != nullptr) {
    if (!m->is_integer() || m->as_int() < 0)
      return ConfigError("min_sparse_tokens", "must be an integer >= 0");
    *min_sparse = m->as_int();
  }
  HeadPattern fallback = HeadPattern::Dense();
  if (const JsonValue* d = root.Find("default"); d != nullptr) {
    SF_ASSIGN_OR_RETURN(fallback, ParseHead(*d, "default"));
  }
  std::vector<std::vector<HeadPattern>> layers(num_layers,
                                               std::vector<HeadPattern>(num_heads, fallback));
  const JsonValue* list = root.Find("layers");
  if (list == nullptr) return layers;
  if (!list->is_array()) return ConfigError("layers", "must be a list");
  if (static_cast<int>(list->as_array().size()) != num_layers) {
    return ConfigError("layers", absl::StrCat("has ", list->as_array().size(),
                                              " entries, the model has ", num_layers, " layers"));
  }
  for (int l = 0; l < num_layers; ++l) {
    const JsonValue& entry = list->as_array()[l];
    const std::string where = absl::StrCat("layer ", l);
    if (entry.is_object()) {
      SF_ASSIGN_OR_RETURN(const HeadPattern p, ParseHead(entry, where));
      layers[l].assign(num_heads, p);
      continue;
    }
    if (!entry.is_array()) return ConfigError(where, "must be a head object or a list of them");
    if (static_cast<int>(entry.as_array().size()) != num_heads) {
      return ConfigError(where, absl::StrCat("lists ", entry.as_array().size(),
                                             " heads, the model has ", num_heads, " query heads"));
    }
    for (int h = 0; h < num_heads; ++h) {
      SF_ASSIGN_OR_RETURN(layers[l][h],
                          ParseHead(entry.as_array()[h], absl::StrCat(where, " head ", h)));
    }
  }
  return layers;
}

absl::StatusOr<std::vector<std::vector<HeadPattern>>> ParseMInference(const JsonValue& root,
                                                                      int num_layers,
                                                                      int num_heads) {
  const auto& list = root.as_array();
  if (static_cast<int>(list.size()) != num_layers) {
    return ConfigError("MInference config",
                       absl::StrCat("has ", list.size(), " layers, the model has ", num_layers));
  }
  std::vector<std::vector<HeadPattern>> layers(
      num_layers, std::vector<HeadPattern>(num_heads, HeadPattern::VerticalSlash(1000, 6096)));
  for (int l = 0; l < num_layers; ++l) {
    if (!list[l].is_object())
      return ConfigError(absl::StrCat("layer ", l), "must be an object of heads");
    for (const auto& [key, value] : list[l].as_object()) {
      const std::string where = absl::StrCat("layer ", l, " head '", key, "'");
      int head = -1;
      auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), head);
      if (ec != std::errc() || ptr != key.data() + key.size() || head < 0 || head >= num_heads) {
        return ConfigError(where, absl::StrCat("head index must be 0..", num_heads - 1));
      }
      if (!value.is_array() || value.as_array().size() < 3 || !value.as_array()[0].is_string() ||
          !value.as_array()[1].is_number() || !value.as_array()[2].is_number()) {
        return ConfigError(where, "expected [type, vertical_or_init, slash_or_local, score]");
      }
      const std::string& type = value.as_array()[0].as_string();
      const int64_t a = static_cast<int64_t>(value.as_array()[1].as_double());
      const int64_t b = static_cast<int64_t>(value.as_array()[2].as_double());
      if (type == "vertical_and_slash") {
        if (a <= 0 || b <= 0) return ConfigError(where, "budgets must be positive");
        layers[l][head] = HeadPattern::VerticalSlash(a, b);
      } else if (type == "stream_llm") {
        if (a < 0 || b <= 0) return ConfigError(where, "n_init must be >= 0 and n_local > 0");
        layers[l][head] = HeadPattern::AShape(a, b);
      } else if (type == "block_sparse") {
        layers[l][head] = HeadPattern::BlockSparse(100);
      } else {
        return ConfigError(
            where, absl::StrCat("unknown MInference pattern '", type,
                                "' (expected vertical_and_slash, stream_llm or block_sparse)"));
      }
    }
  }
  return layers;
}

}  // namespace

HeadPattern HeadPattern::AShape(int64_t n_init, int64_t n_local) {
  HeadPattern p;
  p.type = Type::kAShape;
  p.n_init = n_init;
  p.n_local = n_local;
  return p;
}
HeadPattern HeadPattern::VerticalSlash(int64_t vertical, int64_t slash) {
  HeadPattern p;
  p.type = Type::kVerticalSlash;
  p.vertical = vertical;
  p.slash = slash;
  return p;
}
HeadPattern HeadPattern::BlockSparse(int64_t top_k) {
  HeadPattern p;
  p.type = Type::kBlockSparse;
  p.top_k = top_k;
  return p;
}

const char* HeadPatternTypeName(HeadPattern::Type type) {
  switch (type) {
    case HeadPattern::Type::kDense:
      return "dense";
    case HeadPattern::Type::kAShape:
      return "a_shape";
    case HeadPattern::Type::kVerticalSlash:
      return "vertical_slash";
    case HeadPattern::Type::kBlockSparse:
      return "block_sparse";
  }
  return "?";
}

JsonValue HeadPattern::ToJson() const {
  JsonValue::Object o;
  o["type"] = JsonValue::String(std::string(HeadPatternTypeName(type)));
  switch (type) {
    case Type::kDense:
      break;
    case Type::kAShape:
      o["n_init"] = JsonValue::Integer(n_init);
      o["n_local"] = JsonValue::Integer(n_local);
      break;
    case Type::kVerticalSlash:
      o["vertical"] = JsonValue::Integer(vertical);
      o["slash"] = JsonValue::Integer(slash);
      break;
    case Type::kBlockSparse:
      o["top_k"] = JsonValue::Integer(top_k);
      break;
  }
  return JsonValue::MakeObject(std::move(o));
}

PatternConfig PatternConfig::Dense(int num_layers, int num_heads) {
  return Uniform(num_layers, num_heads, HeadPattern::Dense());
}

PatternConfig PatternConfig::Uniform(int num_layers, int num_heads, const HeadPattern& pattern) {
  PatternConfig c;
  c.layers_.assign(num_layers, std::vector<HeadPattern>(num_heads, pattern));
  return c;
}

absl::StatusOr<PatternConfig> PatternConfig::Parse(absl::string_view json_text, int num_layers,
                                                   int num_heads) {
  absl::StatusOr<JsonValue> root = ParseJson(json_text);
  if (!root.ok()) return ConfigError("JSON", root.status().message());
  PatternConfig c;
  if (root->is_object()) {
    SF_ASSIGN_OR_RETURN(c.layers_, ParseOurs(*root, num_layers, num_heads, &c.min_sparse_tokens_));
  } else if (root->is_array()) {
    SF_ASSIGN_OR_RETURN(c.layers_, ParseMInference(*root, num_layers, num_heads));
  } else {
    return ConfigError("top level",
                       "expected an object (sparsefill format) or a list (MInference format)");
  }
  return c;
}

absl::StatusOr<PatternConfig> PatternConfig::FromFile(const std::string& path, int num_layers,
                                                      int num_heads) {
  SF_ASSIGN_OR_RETURN(const std::string text, ReadTextFile(path));
  absl::StatusOr<PatternConfig> c = Parse(text, num_layers, num_heads);
  if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", c.status().message()));
  return c;
}

bool PatternConfig::all_dense() const {
  for (const auto& layer : layers_) {
    for (const HeadPattern& h : layer) {
      if (h.type != HeadPattern::Type::kDense) return false;
    }
  }
  return true;
}

std::string PatternConfig::ToJson() const {
  JsonValue::Array layers;
  for (const auto& layer : layers_) {
    JsonValue::Array heads;
    for (const HeadPattern& h : layer) heads.push_back(h.ToJson());
    layers.push_back(JsonValue::MakeArray(std::move(heads)));
  }
  JsonValue::Object root;
  root["format"] = JsonValue::String("sparsefill.patterns.v1");
  root["min_sparse_tokens"] = JsonValue::Integer(min_sparse_tokens_);
  root["layers"] = JsonValue::MakeArray(std::move(layers));
  return JsonValue::MakeObject(std::move(root)).Serialize();
}

}  // namespace sparsefill::worker
