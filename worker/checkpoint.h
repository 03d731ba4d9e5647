// A Hugging Face checkpoint folder: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Shards are memory-mapped; nothing is copied until a backend
// uploads a tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/safetensors.h"
#include "worker/weight_source.h"

namespace sparsefill::worker {

class Checkpoint : public WeightSource {
 public:
  // Opens `dir`. Errors: no weights file, an index naming a missing shard, a tensor the index
  // places in a shard that lacks it, a malformed or truncated file (named).
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  absl::StatusOr<TensorView> Get(absl::string_view name) const override;
  bool Has(absl::string_view name) const override;
  std::string Describe() const override { return dir_; }

  const std::string& dir() const { return dir_; }
  size_t shard_count() const { return shards_.size(); }

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const TensorView*, std::less<>> index_;
};

}  // namespace sparsefill::worker
