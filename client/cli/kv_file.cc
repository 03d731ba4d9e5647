#include "client/cli/kv_file.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/ops/numeric.h"
#include "worker/json.h"

namespace sparsefill::cli {
namespace {

using worker::JsonValue;

JsonValue Entry(absl::string_view dtype, std::vector<int64_t> shape, uint64_t begin, uint64_t end) {
  JsonValue::Array dims;
  for (int64_t d : shape) dims.push_back(JsonValue::Integer(d));
  JsonValue::Object o;
  o["dtype"] = JsonValue::String(std::string(dtype));
  o["shape"] = JsonValue::MakeArray(std::move(dims));
  o["data_offsets"] = JsonValue::MakeArray({JsonValue::Integer(static_cast<int64_t>(begin)),
                                            JsonValue::Integer(static_cast<int64_t>(end))});
  return JsonValue::MakeObject(std::move(o));
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvFileWriter>> KvFileWriter::Create(const std::string& path,
                                                                   const KvFileLayout& layout) {
  std::unique_ptr<KvFileWriter> w(new KvFileWriter());
  w->path_ = path;
  w->tmp_path_ = path + ".partial";
  w->layout_ = layout;

  // Data section order: layer.0.k, layer.0.v, layer.1.k, ..., logits_last, first_token.
  const uint64_t tensor_bytes =
      static_cast<uint64_t>(layout.tokens) * layout.kv_heads * layout.head_dim * 4;
  JsonValue::Object header;
  uint64_t offset = 0;
  for (int l = 0; l < layout.num_layers; ++l) {
    for (const char* kind : {"k", "v"}) {
      header[absl::StrCat("layer.", l, ".", kind)] = Entry(
          "F32", {layout.tokens, layout.kv_heads, layout.head_dim}, offset, offset + tensor_bytes);
      offset += tensor_bytes;
    }
  }
  header["logits_last"] = Entry("F32", {layout.vocab}, offset, offset + 4 * layout.vocab);
  offset += 4 * layout.vocab;
  header["first_token"] = Entry("I32", {1}, offset, offset + 4);
  std::string text = JsonValue::MakeObject(std::move(header)).Serialize();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');

  w->file_ = std::fopen(w->tmp_path_.c_str(), "wb");
  if (w->file_ == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", w->tmp_path_, ": ", std::strerror(errno)));
  }
  uint8_t len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  if (absl::Status s = w->WriteBytes(len, 8); !s.ok()) return s;
  if (absl::Status s = w->WriteBytes(text.data(), text.size()); !s.ok()) return s;
  return w;
}

KvFileWriter::~KvFileWriter() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(tmp_path_.c_str());
  }
}

absl::Status KvFileWriter::WriteBytes(const void* data, size_t size) {
  if (std::fwrite(data, 1, size, file_) != size) {
    return absl::DataLossError(
        absl::StrCat("write to ", tmp_path_, " failed: ", std::strerror(errno)));
  }
  bytes_written_ += size;
  return absl::OkStatus();
}

absl::Status KvFileWriter::OnLayerKv(const worker::LayerKv& kv) {
  if (kv.layer != next_layer_ || kv.tokens != layout_.tokens || kv.kv_heads != layout_.kv_heads ||
      kv.head_dim != layout_.head_dim) {
    return absl::InternalError(absl::StrCat("KV file: unexpected layer ", kv.layer, " (expected ",
                                            next_layer_, ") or shape"));
  }
  const int64_t n = kv.tokens * kv.kv_heads * kv.head_dim;
  for (const void* src : {kv.k, kv.v}) {
    if (kv.dtype == kernels::ScalarType::kFloat32) {
      if (absl::Status s = WriteBytes(src, n * sizeof(float)); !s.ok()) return s;
      continue;
    }
    std::vector<float> converted(n);
    const auto* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) converted[i] = kernels::Bf16ToFloat(h[i]);
    if (absl::Status s = WriteBytes(converted.data(), n * sizeof(float)); !s.ok()) return s;
  }
  ++next_layer_;
  return absl::OkStatus();
}

absl::Status KvFileWriter::Finish(std::span<const float> logits_last, int32_t first_token) {
  if (next_layer_ != layout_.num_layers) {
    return absl::InternalError(
        absl::StrCat("KV file: ", next_layer_, " of ", layout_.num_layers, " layers written"));
  }
  if (static_cast<int64_t>(logits_last.size()) != layout_.vocab) {
    return absl::InternalError("KV file: logits size does not match the vocabulary");
  }
  if (absl::Status s = WriteBytes(logits_last.data(), logits_last.size_bytes()); !s.ok()) return s;
  if (absl::Status s = WriteBytes(&first_token, 4); !s.ok()) return s;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!closed || std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    std::remove(tmp_path_.c_str());
    return absl::DataLossError(absl::StrCat("cannot finish ", path_, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace sparsefill::cli
