// The GGUF file format (llama.cpp's single-file models, versions 2 and 3): a header of typed
// key/value metadata (architecture, shapes, RoPE, tokenizer) followed by tensor infos and the
// aligned tensor data. Files are memory-mapped; every tensor's extent is checked against the
// file before use. This file only parses; gguf_quant.h dequantizes and gguf_model.h maps the
// tensors onto the runtime's weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/gguf_quant.h"
#include "worker/mapped_file.h"

namespace sparsefill::worker {

// The metadata value types, numbered as in the file.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

const char* GgufValueTypeName(GgufValueType t);

// One metadata value. Integers of every width are held as int64 (uint64 values above INT64_MAX
// are rejected at parse time), floats as double; arrays hold their element type.
struct GgufValue {
  struct Array {
    GgufValueType element_type = GgufValueType::kUint8;
    std::vector<GgufValue> items;
  };
  GgufValueType type = GgufValueType::kUint8;
  std::variant<int64_t, double, bool, std::string, Array> value;

  bool is_integer() const;
  bool is_float() const {
    return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64;
  }
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> dims;      // ne[0] first: dims[0] is the contiguous (innermost) dimension
  const uint8_t* data = nullptr;  // into the mapping
  size_t nbytes = 0;

  int64_t numel() const;
  // The row-major shape, outermost first (dims reversed): what safetensors would call it.
  std::vector<int64_t> RowMajorShape() const;
};

class GgufFile {
 public:
  // Maps `path` and parses the header. Errors (DataLoss for malformed files, naming the file and
  // the key or tensor): bad magic, unsupported version, truncated header, unknown value or
  // tensor type, duplicate key or tensor, tensor data outside the file or misaligned.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }

  const GgufValue* Find(absl::string_view key) const;
  const GgufTensorInfo* FindTensor(absl::string_view name) const;

  // Typed getters; errors name the file and the key (missing, or of another type).
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;
  absl::StatusOr<double> GetFloat(absl::string_view key) const;  // float or integer values
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  // An array whose elements have type `element` (any integer type for kInt64).
  absl::StatusOr<const GgufValue::Array*> GetArray(absl::string_view key,
                                                   GgufValueType element) const;

 private:
  GgufFile() = default;
  absl::Status Error(absl::string_view key, absl::string_view what) const;

  std::string path_;
  std::unique_ptr<MappedFile> mapping_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace sparsefill::worker
