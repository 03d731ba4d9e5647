// Where model weights come from: a checkpoint on disk or tensors generated in memory. Backends
// read tensors by their Hugging Face names and upload them in their own format.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/safetensors.h"

namespace sparsefill::worker {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The tensor `name`, or NotFound naming it and where it was looked for.
  virtual absl::StatusOr<TensorView> Get(absl::string_view name) const = 0;
  virtual bool Has(absl::string_view name) const = 0;
  // For messages: the checkpoint path, or "embedded model".
  virtual std::string Describe() const = 0;
};

// Gets `name` and checks its shape; the error names the tensor, both shapes and the source.
absl::StatusOr<TensorView> GetChecked(const WeightSource& source, absl::string_view name,
                                      const std::vector<int64_t>& expected_shape);

// Converts a floating-point tensor (F32, F16 or BF16) to float32; other dtypes are an error
// naming the tensor.
absl::StatusOr<std::vector<float>> ToFloat32(const TensorView& tensor);

// Tensors held in memory (the embedded model, tests).
class InMemoryWeights : public WeightSource {
 public:
  explicit InMemoryWeights(std::string description) : description_(std::move(description)) {}
  void Add(std::string name, ScalarType dtype, std::vector<int64_t> shape,
           std::vector<uint8_t> bytes);

  absl::StatusOr<TensorView> Get(absl::string_view name) const override;
  bool Has(absl::string_view name) const override;
  std::string Describe() const override { return description_; }

 private:
  struct Stored {
    ScalarType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::string description_;
  std::map<std::string, Stored, std::less<>> tensors_;
};

}  // namespace sparsefill::worker
