// A small GGUF (version 3) writer for tests: typed metadata and raw tensor bytes, laid out as
// llama.cpp writes them (header, tensor infos, data aligned to 32 bytes).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace sparsefill::testing {

class GgufWriter {
 public:
  void AddString(const std::string& key, const std::string& value) {
    Key(key, 8);
    String(kv_, value);
  }
  void AddUint32(const std::string& key, uint32_t value) {
    Key(key, 4);
    Pod(kv_, value);
  }
  void AddFloat32(const std::string& key, float value) {
    Key(key, 6);
    Pod(kv_, value);
  }
  void AddBool(const std::string& key, bool value) {
    Key(key, 7);
    Pod(kv_, static_cast<uint8_t>(value));
  }
  void AddStringArray(const std::string& key, const std::vector<std::string>& values) {
    Key(key, 9);
    Pod(kv_, uint32_t{8});
    Pod(kv_, static_cast<uint64_t>(values.size()));
    for (const std::string& v : values) String(kv_, v);
  }
  void AddInt32Array(const std::string& key, const std::vector<int32_t>& values) {
    Key(key, 9);
    Pod(kv_, uint32_t{5});
    Pod(kv_, static_cast<uint64_t>(values.size()));
    for (int32_t v : values) Pod(kv_, v);
  }
  // Any key with raw value bytes (for malformed-file tests).
  void AddRaw(const std::string& key, uint32_t type, const std::vector<uint8_t>& value) {
    Key(key, type);
    kv_.insert(kv_.end(), value.begin(), value.end());
  }

  // `dims` in GGUF order: dims[0] is the contiguous dimension.
  void AddTensor(const std::string& name, uint32_t ggml_type, const std::vector<uint64_t>& dims,
                 const std::vector<uint8_t>& bytes) {
    while (data_.size() % kAlign != 0) data_.push_back(0);
    String(infos_, name);
    Pod(infos_, static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) Pod(infos_, d);
    Pod(infos_, ggml_type);
    Pod(infos_, static_cast<uint64_t>(data_.size()));
    data_.insert(data_.end(), bytes.begin(), bytes.end());
    ++tensors_;
  }
  void AddF32Tensor(const std::string& name, const std::vector<uint64_t>& dims,
                    const std::vector<float>& values) {
    std::vector<uint8_t> bytes(values.size() * 4);
    std::memcpy(bytes.data(), values.data(), bytes.size());
    AddTensor(name, 0, dims, bytes);
  }

  std::vector<uint8_t> Bytes() const {
    std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
    Pod(out, uint32_t{3});
    Pod(out, tensors_);
    Pod(out, keys_);
    out.insert(out.end(), kv_.begin(), kv_.end());
    out.insert(out.end(), infos_.begin(), infos_.end());
    while (out.size() % kAlign != 0) out.push_back(0);
    out.insert(out.end(), data_.begin(), data_.end());
    return out;
  }

  bool Write(const std::string& path) const {
    const std::vector<uint8_t> bytes = Bytes();
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    return static_cast<bool>(f);
  }

 private:
  static constexpr size_t kAlign = 32;

  template <typename T>
  static void Pod(std::vector<uint8_t>& out, T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  static void String(std::vector<uint8_t>& out, const std::string& s) {
    Pod(out, static_cast<uint64_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  void Key(const std::string& key, uint32_t type) {
    String(kv_, key);
    Pod(kv_, type);
    ++keys_;
  }

  std::vector<uint8_t> kv_, infos_, data_;
  uint64_t keys_ = 0, tensors_ = 0;
};

}  // namespace sparsefill::testing
