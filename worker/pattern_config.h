// Per-layer, per-query-head attention patterns: dense or one of the sparse patterns with its
// budget. Read from our JSON format or from MInference's best-pattern files.
//
// Our format (every key optional except inside head objects):
//   {
//     "format": "sparsefill.patterns.v1",
//     "min_sparse_tokens": 4096,          // shorter prompts run dense (default 0: never)
//     "default": HEAD,                    // heads not given in "layers" (default dense)
//     "layers": [ HEAD | [HEAD, ...], ...] // exactly num_layers entries; an object applies to
//                                         // every head of the layer, a list gives one per head
//   }
//   HEAD = {"type": "dense"}
//        | {"type": "a_shape", "n_init": 128, "n_local": 3968}
//        | {"type": "vertical_slash", "vertical": 1000, "slash": 6096}
//        | {"type": "block_sparse", "top_k": 100}
//
// MInference's format: a list over layers of {"<head>": [type, v, s, score]} with type
// "vertical_and_slash" (v verticals, s slashes), "stream_llm" (A-shape, n_init v, n_local s) or
// "block_sparse" (top-k 100 key blocks, as MInference runs it; v and s unused). Heads it omits
// get MInference's default, vertical_and_slash (1000, 6096).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/json.h"

namespace sparsefill::worker {

struct HeadPattern {
  enum class Type { kDense, kAShape, kVerticalSlash, kBlockSparse };
  Type type = Type::kDense;
  int64_t n_init = 0, n_local = 0;  // kAShape
  int64_t vertical = 0, slash = 0;  // kVerticalSlash
  int64_t top_k = 0;                // kBlockSparse, in 64-token key blocks

  static HeadPattern Dense() { return {}; }
  static HeadPattern AShape(int64_t n_init, int64_t n_local);
  static HeadPattern VerticalSlash(int64_t vertical, int64_t slash);
  static HeadPattern BlockSparse(int64_t top_k);

  JsonValue ToJson() const;
  bool operator==(const HeadPattern&) const = default;
};

const char* HeadPatternTypeName(HeadPattern::Type type);

class PatternConfig {
 public:
  // All heads dense.
  static PatternConfig Dense(int num_layers, int num_heads);
  // Every head the same.
  static PatternConfig Uniform(int num_layers, int num_heads, const HeadPattern& pattern);
  // Parses either format (a JSON object is ours, a JSON array MInference's) and checks it
  // against the model's layer and head counts. Errors name the layer, head and field.
  static absl::StatusOr<PatternConfig> Parse(absl::string_view json_text, int num_layers,
                                             int num_heads);
  static absl::StatusOr<PatternConfig> FromFile(const std::string& path, int num_layers,
                                                int num_heads);

  int num_layers() const { return static_cast<int>(layers_.size()); }
  int num_heads() const { return layers_.empty() ? 0 : static_cast<int>(layers_[0].size()); }
  const std::vector<HeadPattern>& layer(int i) const { return layers_[i]; }
  int64_t min_sparse_tokens() const { return min_sparse_tokens_; }
  bool all_dense() const;

  // Our format, one list per layer (parses back to an equal config).
  std::string ToJson() const;

 private:
  std::vector<std::vector<HeadPattern>> layers_;
  int64_t min_sparse_tokens_ = 0;
};

}  // namespace sparsefill::worker
