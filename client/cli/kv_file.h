// Writes a prefill's KV cache and logits as one safetensors file, streaming layer by layer so
// the whole KV never has to sit in memory:
//   layer.{i}.k, layer.{i}.v  float32 [tokens, kv_heads, head_dim]  (K after RoPE)
//   logits_last               float32 [vocab]
//   first_token               int32   [1]
// The header is written first (all shapes are known up front); the file appears under its final
// name only once Finish succeeds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "worker/kv_sink.h"

namespace sparsefill::cli {

struct KvFileLayout {
  int num_layers = 0;
  int64_t tokens = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int64_t vocab = 0;
};

class KvFileWriter : public worker::KvSink {
 public:
  static absl::StatusOr<std::unique_ptr<KvFileWriter>> Create(const std::string& path,
                                                              const KvFileLayout& layout);
  ~KvFileWriter() override;  // removes the temporary file if Finish was not reached

  // Layers must arrive in order 0, 1, ...; K and V as float32 or bf16.
  absl::Status OnLayerKv(const worker::LayerKv& kv) override;
  absl::Status Finish(std::span<const float> logits_last, int32_t first_token);

  uint64_t bytes_written() const { return bytes_written_; }

 private:
  KvFileWriter() = default;
  absl::Status WriteBytes(const void* data, size_t size);

  std::string path_, tmp_path_;
  KvFileLayout layout_;
  std::FILE* file_ = nullptr;
  int next_layer_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace sparsefill::cli
