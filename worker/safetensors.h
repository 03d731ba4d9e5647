// The safetensors file format: an 8-byte little-endian header length, a JSON header mapping
// tensor names to {dtype, shape, data_offsets}, then the raw little-endian data. Files are
// memory-mapped and every header entry is checked against the file before any tensor is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/scalar_type.h"
#include "worker/mapped_file.h"

namespace sparsefill::worker {

using kernels::ScalarType;

struct TensorView {
  std::string name;
  ScalarType dtype = ScalarType::kFloat32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping; valid while the file object lives
  size_t nbytes = 0;

  int64_t numel() const;
};

// "[a, b, c]" for error messages.
std::string ShapeString(const std::vector<int64_t>& shape);

class SafetensorsFile {
 public:
  // Maps `path` and validates the header: known dtypes, non-negative shapes, offsets inside the
  // data section and consistent with dtype x shape. Errors name the file and the tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(absl::string_view name) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  std::unique_ptr<MappedFile> mapping_;
  std::vector<TensorView> tensors_;
};

// Collects tensors and writes one safetensors file (used for --save-kv and by tests).
class SafetensorsWriter {
 public:
  void Add(std::string name, ScalarType dtype, std::vector<int64_t> shape, const void* data);
  void AddFloat32(std::string name, std::vector<int64_t> shape, const float* data) {
    Add(std::move(name), ScalarType::kFloat32, std::move(shape), data);
  }
  void AddInt32(std::string name, std::vector<int64_t> shape, const int32_t* data) {
    Add(std::move(name), ScalarType::kInt32, std::move(shape), data);
  }
  // Writes to a temporary file next to `path` and renames it: a failed write leaves no
  // half-written file behind.
  absl::Status Write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    ScalarType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Entry> entries_;
};

// Parses a safetensors dtype name ("F32", "BF16", ...).
absl::StatusOr<ScalarType> ParseSafetensorsDtype(absl::string_view name);

}  // namespace sparsefill::worker
