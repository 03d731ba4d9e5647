#include "worker/safetensors.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "worker/json.h"
#include "worker/mapped_file.h"

namespace sparsefill::worker {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<ScalarType> ParseSafetensorsDtype(absl::string_view name) {
  for (ScalarType t :
       {ScalarType::kFloat32, ScalarType::kFloat16, ScalarType::kBFloat16, ScalarType::kFloat64,
        ScalarType::kInt8, ScalarType::kUInt8, ScalarType::kInt16, ScalarType::kInt32,
        ScalarType::kInt64, ScalarType::kBool}) {
    if (kernels::ScalarName(t) == name) return t;
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported safetensors dtype '", name, "'"));
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<MappedFile>> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  const size_t size = (*mapped)->size();
  if (size < 8) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated (", size, " bytes, no safetensors header)"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->mapping_ = *std::move(mapped);

  const uint8_t* bytes = file->mapping_->data();
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i) header_size |= uint64_t{bytes[i]} << (8 * i);
  if (header_size > size - 8) {
    return absl::DataLossError(absl::StrCat(path,
                                            ": truncated or not a safetensors file (header of ",
                                            header_size, " bytes, file of ", size, " bytes)"));
  }
  absl::StatusOr<JsonValue> header =
      ParseJson(absl::string_view(reinterpret_cast<const char*>(bytes + 8), header_size));
  if (!header.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, ": bad safetensors header: ", header.status().message()));
  }
  if (!header->is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": safetensors header is not a JSON object"));
  }
  const uint8_t* data = bytes + 8 + header_size;
  const size_t data_size = size - 8 - header_size;
  for (const auto& [name, entry] : header->as_object()) {
    if (name == "__metadata__") continue;
    auto bad = [&](absl::string_view what) {
      return absl::DataLossError(absl::StrCat(path, ": tensor '", name, "': ", what));
    };
    const JsonValue* dtype = entry.Find("dtype");
    const JsonValue* shape = entry.Find("shape");
    const JsonValue* offsets = entry.Find("data_offsets");
    if (dtype == nullptr || !dtype->is_string()) return bad("missing dtype");
    if (shape == nullptr || !shape->is_array()) return bad("missing shape");
    if (offsets == nullptr || !offsets->is_array() || offsets->as_array().size() != 2) {
      return bad("missing data_offsets");
    }
    TensorView view;
    view.name = name;
    absl::StatusOr<ScalarType> t = ParseSafetensorsDtype(dtype->as_string());
    if (!t.ok()) return bad(t.status().message());
    view.dtype = *t;
    for (const JsonValue& d : shape->as_array()) {
      if (!d.is_integer() || d.as_int() < 0) return bad("shape entries must be integers >= 0");
      view.shape.push_back(d.as_int());
    }
    const JsonValue& b = offsets->as_array()[0];
    const JsonValue& e = offsets->as_array()[1];
    if (!b.is_integer() || !e.is_integer() || b.as_int() < 0 || e.as_int() < b.as_int()) {
      return bad("data_offsets must be integers with 0 <= begin <= end");
    }
    const uint64_t begin = static_cast<uint64_t>(b.as_int());
    const uint64_t end = static_cast<uint64_t>(e.as_int());
    if (end > data_size) {
      return bad(absl::StrCat("data ends at byte ", end, " but the file's data section has only ",
                              data_size, " bytes (truncated file?)"));
    }
    const uint64_t expected = static_cast<uint64_t>(view.numel()) * kernels::ScalarSize(view.dtype);
    if (end - begin != expected) {
      return bad(absl::StrCat("holds ", end - begin, " bytes but dtype ", dtype->as_string(),
                              " and shape ", ShapeString(view.shape), " need ", expected));
    }
    view.data = data + begin;
    view.nbytes = static_cast<size_t>(expected);
    file->tensors_.push_back(std::move(view));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

const TensorView* SafetensorsFile::Find(absl::string_view name) const {
  for (const TensorView& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

void SafetensorsWriter::Add(std::string name, ScalarType dtype, std::vector<int64_t> shape,
                            const void* data) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  const size_t nbytes = static_cast<size_t>(numel) * kernels::ScalarSize(dtype);
  const auto* p = static_cast<const uint8_t*>(data);
  entries_.push_back(
      Entry{std::move(name), dtype, std::move(shape), std::vector<uint8_t>(p, p + nbytes)});
}

absl::Status SafetensorsWriter::Write(const std::string& path) const {
  JsonValue::Object header;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    JsonValue::Array shape;
    for (int64_t d : e.shape) shape.push_back(JsonValue::Integer(d));
    JsonValue::Object entry;
    entry["dtype"] = JsonValue::String(std::string(kernels::ScalarName(e.dtype)));
    entry["shape"] = JsonValue::MakeArray(std::move(shape));
    entry["data_offsets"] =
        JsonValue::MakeArray({JsonValue::Integer(static_cast<int64_t>(offset)),
                              JsonValue::Integer(static_cast<int64_t>(offset + e.bytes.size()))});
    header[e.name] = JsonValue::MakeObject(std::move(entry));
    offset += e.bytes.size();
  }
  std::string text = JsonValue::MakeObject(std::move(header)).Serialize();
  // Pad the header with spaces so the data section starts 8-byte aligned, as HF's writer does.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');

  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  uint8_t len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  bool ok =
      std::fwrite(len, 1, 8, f) == 8 && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const Entry& e : entries_) {
    ok = ok && std::fwrite(e.bytes.data(), 1, e.bytes.size(), f) == e.bytes.size();
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return absl::DataLossError(absl::StrCat("failed writing ", path, " (disk full?)"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::PermissionDeniedError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace sparsefill::worker
