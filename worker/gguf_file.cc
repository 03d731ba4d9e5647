#include "worker/gguf_file.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {
namespace {

constexpr uint32_t kDefaultAlignment = 32;  // when general.alignment is absent
constexpr int kMaxDims = 4;                 // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 4;           // nested arrays deeper than this are rejected

// Bounds-checked little-endian reads over the header bytes.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return size_ - offset_; }
  bool ok() const { return ok_; }

  template <typename T>
  T Read() {
    T v{};
    if (size_ - offset_ < sizeof(T)) {
      ok_ = false;
      offset_ = size_;
      return v;
    }
    std::memcpy(&v, data_ + offset_, sizeof(T));
    offset_ += sizeof(T);
    return v;
  }

  std::string ReadString() {
    const uint64_t n = Read<uint64_t>();
    if (!ok_ || n > size_ - offset_) {
      ok_ = false;
      offset_ = size_;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(data_ + offset_), n);
    offset_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  bool ok_ = true;
};

// Reads a value of type `type`; `why` gets the reason on failure.
bool ReadValue(Reader& r, GgufValueType type, int depth, GgufValue* out, std::string* why) {
  out->type = type;
  switch (type) {
    case GgufValueType::kUint8:
      out->value = int64_t{r.Read<uint8_t>()};
      break;
    case GgufValueType::kInt8:
      out->value = int64_t{r.Read<int8_t>()};
      break;
    case GgufValueType::kUint16:
      out->value = int64_t{r.Read<uint16_t>()};
      break;
    case GgufValueType::kInt16:
      out->value = int64_t{r.Read<int16_t>()};
      break;
    case GgufValueType::kUint32:
      out->value = int64_t{r.Read<uint32_t>()};
      break;
    case GgufValueType::kInt32:
      out->value = int64_t{r.Read<int32_t>()};
      break;
    case GgufValueType::kInt64:
      out->value = r.Read<int64_t>();
      break;
    case GgufValueType::kUint64: {
      const uint64_t v = r.Read<uint64_t>();
      if (v > static_cast<uint64_t>(INT64_MAX)) {
        *why = absl::StrCat("uint64 value ", v, " exceeds the int64 range");
        return false;
      }
      out->value = static_cast<int64_t>(v);
      break;
    }
    case GgufValueType::kFloat32:
      out->value = double{r.Read<float>()};
      break;
    case GgufValueType::kFloat64:
      out->value = r.Read<double>();
      break;
    case GgufValueType::kBool: {
      const uint8_t b = r.Read<uint8_t>();
      if (b > 1) {
        *why = absl::StrCat("bool value is ", b, ", not 0 or 1");
        return false;
      }
      out->value = b == 1;
      break;
    }
    case GgufValueType::kString:
      out->value = r.ReadString();
      break;
    case GgufValueType::kArray: {
      if (depth >= kMaxArrayDepth) {
        *why = "arrays nested too deeply";
        return false;
      }
      GgufValue::Array array;
      const uint32_t element = r.Read<uint32_t>();
      const uint64_t n = r.Read<uint64_t>();
      if (!r.ok()) break;
      if (element > static_cast<uint32_t>(GgufValueType::kFloat64)) {
        *why = absl::StrCat("array of unknown value type ", element);
        return false;
      }
      array.element_type = static_cast<GgufValueType>(element);
      // Each element takes at least one byte: a count beyond the file is a corrupt header, not a
      // reason to allocate.
      if (n > r.remaining()) {
        *why = absl::StrCat("array of ", n, " elements");
        return false;
      }
      array.items.reserve(n);
      for (uint64_t i = 0; i < n && r.ok(); ++i) {
        if (!ReadValue(r, array.element_type, depth + 1, &array.items.emplace_back(), why)) {
          *why = absl::StrCat("element ", i, ": ", *why);
          return false;
        }
      }
      out->value = std::move(array);
      break;
    }
    default:
      *why = absl::StrCat("unknown value type ", static_cast<uint32_t>(type));
      return false;
  }
  if (!r.ok()) {
    *why = "the header ends inside it (truncated file?)";
    return false;
  }
  return true;
}

}  // namespace

const char* GgufValueTypeName(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
      return "uint8";
    case GgufValueType::kInt8:
      return "int8";
    case GgufValueType::kUint16:
      return "uint16";
    case GgufValueType::kInt16:
      return "int16";
    case GgufValueType::kUint32:
      return "uint32";
    case GgufValueType::kInt32:
      return "int32";
    case GgufValueType::kFloat32:
      return "float32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "uint64";
    case GgufValueType::kInt64:
      return "int64";
    case GgufValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return true;
    default:
      return false;
  }
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::vector<int64_t> GgufTensorInfo::RowMajorShape() const {
  return std::vector<int64_t>(dims.rbegin(), dims.rend());
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  const size_t size = (*mapped)->size();
  if (size < 24) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated (", size, " bytes, shorter than a GGUF header)"));
  }
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = path;
  file->mapping_ = *std::move(mapped);
  const uint8_t* bytes = file->mapping_->data();
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(path, ": ", what));
  };

  if (std::memcmp(bytes, "GGUF", 4) != 0) return bad("not a GGUF file (no 'GGUF' magic)");
  Reader r(bytes, size);
  r.Read<uint32_t>();
  file->version_ = r.Read<uint32_t>();
  if (file->version_ != 2 && file->version_ != 3) {
    return bad(absl::StrCat("GGUF version ", file->version_, " is not supported (2 and 3 are)"));
  }
  const uint64_t tensor_count = r.Read<uint64_t>();
  const uint64_t kv_count = r.Read<uint64_t>();
  if (tensor_count > size || kv_count > size) {
    return bad(absl::StrCat("header claims ", tensor_count, " tensors and ", kv_count,
                            " metadata keys in a file of ", size, " bytes"));
  }

  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key = r.ReadString();
    if (!r.ok()) return bad(absl::StrCat("truncated header in metadata key ", i));
    const uint32_t type = r.Read<uint32_t>();
    GgufValue value;
    std::string why;
    if (!ReadValue(r, static_cast<GgufValueType>(type), 0, &value, &why)) {
      return bad(absl::StrCat("metadata '", key, "': ", why));
    }
    if (file->metadata_.contains(key))
      return bad(absl::StrCat("duplicate metadata key '", key, "'"));
    file->metadata_.emplace(std::move(key), std::move(value));
  }

  uint32_t alignment = kDefaultAlignment;
  if (const GgufValue* a = file->Find("general.alignment"); a != nullptr) {
    const int64_t* v = std::get_if<int64_t>(&a->value);
    if (v == nullptr || *v <= 0 || (*v & (*v - 1)) != 0 || *v > 1 << 20) {
      return bad("metadata 'general.alignment' must be a power of two");
    }
    alignment = static_cast<uint32_t>(*v);
  }

  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo info;
    info.name = r.ReadString();
    const uint32_t n_dims = r.Read<uint32_t>();
    if (!r.ok()) return bad(absl::StrCat("truncated header in tensor info ", i));
    auto tensor_bad = [&](absl::string_view what) {
      return bad(absl::StrCat("tensor '", info.name, "': ", what));
    };
    if (n_dims == 0 || n_dims > kMaxDims) {
      return tensor_bad(absl::StrCat("has ", n_dims, " dimensions (1 to ", kMaxDims, " allowed)"));
    }
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = r.Read<uint64_t>();
      if (dim > (1ull << 40)) return tensor_bad(absl::StrCat("dimension ", d, " is ", dim));
      info.dims.push_back(static_cast<int64_t>(dim));
    }
    const uint32_t type = r.Read<uint32_t>();
    const uint64_t offset = r.Read<uint64_t>();
    if (!r.ok()) return tensor_bad("truncated header in its tensor info");
    const std::optional<GgmlTypeTraits> traits = GgmlTraits(type);
    if (!traits) return tensor_bad(absl::StrCat("unknown ggml type ", type));
    info.type = static_cast<GgmlType>(type);
    if (info.dims[0] % traits->block_size != 0) {
      return tensor_bad(absl::StrCat("row of ", info.dims[0], " weights is not a whole number of ",
                                     traits->name, " blocks of ", traits->block_size));
    }
    if (offset % alignment != 0) {
      return tensor_bad(absl::StrCat("data offset ", offset, " is not aligned to ", alignment));
    }
    info.nbytes = static_cast<size_t>(info.numel() / traits->block_size) * traits->bytes_per_block;
    if (file->tensor_index_.contains(info.name)) {
      return bad(absl::StrCat("duplicate tensor '", info.name, "'"));
    }
    file->tensor_index_[info.name] = file->tensors_.size();
    file->tensors_.push_back(std::move(info));
    offsets.push_back(offset);
  }
  const uint64_t data_start = (r.offset() + alignment - 1) / alignment * alignment;
  for (size_t i = 0; i < file->tensors_.size(); ++i) {
    GgufTensorInfo& info = file->tensors_[i];
    const uint64_t begin = data_start + offsets[i];
    if (begin > size || info.nbytes > size - begin) {
      return bad(absl::StrCat("tensor '", info.name, "': data [", begin, ", ", begin + info.nbytes,
                              ") of type ", GgmlTypeName(info.type), " lies beyond the end of the ",
                              size, "-byte file (truncated?)"));
    }
    info.data = bytes + begin;
  }
  return file;
}

GgufFile::~GgufFile() = default;

const GgufValue* GgufFile::Find(absl::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

absl::Status GgufFile::Error(absl::string_view key, absl::string_view what) const {
  return absl::InvalidArgumentError(absl::StrCat(path_, ": metadata '", key, "' ", what));
}

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (!v->is_integer()) {
    return Error(key, absl::StrCat("must be an integer, got ", GgufValueTypeName(v->type)));
  }
  return std::get<int64_t>(v->value);
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (v->is_integer()) return static_cast<double>(std::get<int64_t>(v->value));
  if (!v->is_float()) {
    return Error(key, absl::StrCat("must be a number, got ", GgufValueTypeName(v->type)));
  }
  return std::get<double>(v->value);
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (v->type != GgufValueType::kBool) {
    return Error(key, absl::StrCat("must be a bool, got ", GgufValueTypeName(v->type)));
  }
  return std::get<bool>(v->value);
}

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (v->type != GgufValueType::kString) {
    return Error(key, absl::StrCat("must be a string, got ", GgufValueTypeName(v->type)));
  }
  return std::get<std::string>(v->value);
}

absl::StatusOr<const GgufValue::Array*> GgufFile::GetArray(absl::string_view key,
                                                           GgufValueType element) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Error(key, "is missing");
  if (v->type != GgufValueType::kArray) {
    return Error(key, absl::StrCat("must be an array, got ", GgufValueTypeName(v->type)));
  }
  const auto& array = std::get<GgufValue::Array>(v->value);
  GgufValue probe;
  probe.type = array.element_type;
  const bool matches =
      element == GgufValueType::kInt64 ? probe.is_integer() : array.element_type == element;
  if (!matches) {
    return Error(key, absl::StrCat("must be an array of ", GgufValueTypeName(element), ", got ",
                                   GgufValueTypeName(array.element_type), " elements"));
  }
  return &array;
}

}  // namespace sparsefill::worker
