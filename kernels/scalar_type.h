// Element types of the buffers kernels read and write (and of the tensors in checkpoints).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparsefill::kernels {

enum class ScalarType : uint8_t {
  kFloat32,
  kFloat16,
  kBFloat16,
  kFloat64,
  kInt8,
  kUInt8,
  kInt16,
  kInt32,
  kInt64,
  kBool
};

constexpr size_t ScalarSize(ScalarType t) {
  switch (t) {
    case ScalarType::kFloat64:
    case ScalarType::kInt64:
      return 8;
    case ScalarType::kFloat32:
    case ScalarType::kInt32:
      return 4;
    case ScalarType::kFloat16:
    case ScalarType::kBFloat16:
    case ScalarType::kInt16:
      return 2;
    case ScalarType::kInt8:
    case ScalarType::kUInt8:
    case ScalarType::kBool:
      return 1;
  }
  return 0;
}

// The dtype names of the safetensors format.
constexpr const char* ScalarName(ScalarType t) {
  switch (t) {
    case ScalarType::kFloat32:
      return "F32";
    case ScalarType::kFloat16:
      return "F16";
    case ScalarType::kBFloat16:
      return "BF16";
    case ScalarType::kFloat64:
      return "F64";
    case ScalarType::kInt8:
      return "I8";
    case ScalarType::kUInt8:
      return "U8";
    case ScalarType::kInt16:
      return "I16";
    case ScalarType::kInt32:
      return "I32";
    case ScalarType::kInt64:
      return "I64";
    case ScalarType::kBool:
      return "BOOL";
  }
  return "?";
}

}  // namespace sparsefill::kernels
