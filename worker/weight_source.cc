#include "worker/weight_source.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/ops/numeric.h"

namespace sparsefill::worker {

absl::StatusOr<TensorView> GetChecked(const WeightSource& source, absl::string_view name,
                                      const std::vector<int64_t>& expected_shape) {
  absl::StatusOr<TensorView> t = source.Get(name);
  if (!t.ok()) return t.status();
  if (t->shape != expected_shape) {
    return absl::InvalidArgumentError(
        absl::StrCat(source.Describe(), ": tensor '", name, "' has shape ", ShapeString(t->shape),
                     ", the config implies ", ShapeString(expected_shape)));
  }
  return t;
}

absl::StatusOr<std::vector<float>> ToFloat32(const TensorView& tensor) {
  const int64_t n = tensor.numel();
  std::vector<float> out(n);
  switch (tensor.dtype) {
    case ScalarType::kFloat32:
      std::memcpy(out.data(), tensor.data, n * sizeof(float));  // data may be unaligned
      break;
    case ScalarType::kBFloat16:
    case ScalarType::kFloat16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, tensor.data + 2 * i, 2);
        out[i] = tensor.dtype == ScalarType::kBFloat16 ? kernels::Bf16ToFloat(h)
                                                       : kernels::Fp16ToFloat(h);
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("tensor '", tensor.name, "' has dtype ",
                                                     kernels::ScalarName(tensor.dtype),
                                                     "; weights must be F32, F16 or BF16"));
  }
  return out;
}

void InMemoryWeights::Add(std::string name, ScalarType dtype, std::vector<int64_t> shape,
                          std::vector<uint8_t> bytes) {
  tensors_.insert_or_assign(std::move(name), Stored{dtype, std::move(shape), std::move(bytes)});
}

absl::StatusOr<TensorView> InMemoryWeights::Get(absl::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(description_, ": no tensor named '", name, "'"));
  }
  TensorView v;
  v.name = it->first;
  v.dtype = it->second.dtype;
  v.shape = it->second.shape;
  v.data = it->second.bytes.data();
  v.nbytes = it->second.bytes.size();
  return v;
}

bool InMemoryWeights::Has(absl::string_view name) const { return tensors_.contains(name); }

}  // namespace sparsefill::worker
