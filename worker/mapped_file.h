// A read-only memory mapping of a whole file (model weights: safetensors shards, GGUF files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace sparsefill::worker {

class MappedFile {
 public:
  // NotFound when the file cannot be opened; an empty file maps to size() == 0, data() null.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return static_cast<const uint8_t*>(mapping_); }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  void* mapping_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sparsefill::worker
