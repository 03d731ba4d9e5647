#include "worker/checkpoint.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "worker/json.h"
#include "worker/model_config.h"

namespace sparsefill::worker {

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  namespace fs = std::filesystem;
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;
  const fs::path root(dir);
  const fs::path single = root / "model.safetensors";
  const fs::path index_path = root / "model.safetensors.index.json";

  if (fs::exists(index_path)) {
    absl::StatusOr<std::string> text = ReadTextFile(index_path.string());
    if (!text.ok()) return text.status();
    absl::StatusOr<JsonValue> index = ParseJson(*text);
    if (!index.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path.string(), ": ", index.status().message()));
    }
    const JsonValue* weight_map = index->Find("weight_map");
    if (weight_map == nullptr || !weight_map->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path.string(), ": no 'weight_map' object"));
    }
    std::map<std::string, size_t> shard_ids;
    for (const auto& [name, file] : weight_map->as_object()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index_path.string(), ": weight_map['", name, "'] is not a file name"));
      }
      if (!shard_ids.contains(file.as_string())) {
        const std::string shard_path = (root / file.as_string()).string();
        absl::StatusOr<std::unique_ptr<SafetensorsFile>> shard = SafetensorsFile::Open(shard_path);
        if (!shard.ok()) {
          return absl::Status(shard.status().code(),
                              absl::StrCat("shard listed in ", index_path.string(), ": ",
                                           shard.status().message()));
        }
        shard_ids[file.as_string()] = ckpt->shards_.size();
        ckpt->shards_.push_back(*std::move(shard));
      }
      const SafetensorsFile& shard = *ckpt->shards_[shard_ids[file.as_string()]];
      const TensorView* t = shard.Find(name);
      if (t == nullptr) {
        return absl::DataLossError(absl::StrCat(index_path.string(), " places tensor '", name,
                                                "' in ", shard.path(),
                                                ", which does not contain it"));
      }
      ckpt->index_[name] = t;
    }
  } else if (fs::exists(single)) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(single.string());
    if (!file.ok()) return file.status();
    ckpt->shards_.push_back(*std::move(file));
    for (const TensorView& t : ckpt->shards_.back()->tensors()) ckpt->index_[t.name] = &t;
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no model.safetensors or model.safetensors.index.json"));
  }
  return ckpt;
}

absl::StatusOr<TensorView> Checkpoint::Get(absl::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": checkpoint has no tensor '", name, "'"));
  }
  return *it->second;
}

bool Checkpoint::Has(absl::string_view name) const { return index_.contains(name); }

}  // namespace sparsefill::worker
