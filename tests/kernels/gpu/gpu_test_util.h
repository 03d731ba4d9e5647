// Helpers for tests that run CUDA kernels: skip with a message when no GPU is present, RAII
// device buffers, bf16 conversions, error checks that fail the test with the CUDA error text.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops/numeric.h"

namespace sparsefill::testing {

// Empty when a GPU is usable, else why not.
inline std::string NoGpuReason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(err);
  if (count == 0) return "no CUDA device present";
  return "";
}

#define SF_SKIP_WITHOUT_GPU()                                    \
  do {                                                           \
    const std::string _sf_reason = ::sparsefill::testing::NoGpuReason(); \
    if (!_sf_reason.empty()) GTEST_SKIP() << "GPU test skipped: " << _sf_reason; \
  } while (0)

#define SF_CUDA_ASSERT(expr)                                                         \
  do {                                                                               \
    const cudaError_t _sf_err = (expr);                                              \
    ASSERT_EQ(_sf_err, cudaSuccess) << #expr << ": " << cudaGetErrorString(_sf_err); \
  } while (0)

// A device allocation freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (cudaMalloc(&ptr_, std::max<size_t>(1, count) * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return static_cast<T*>(ptr_); }
  size_t count() const { return count_; }
  cudaError_t Upload(const std::vector<T>& host) {
    return cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> Download() const {
    std::vector<T> host(count_);
    cudaMemcpy(host.data(), ptr_, count_ * sizeof(T), cudaMemcpyDeviceToHost);
    return host;
  }
  // Fills every byte with `byte` (poisoning outputs before a kernel writes them).
  cudaError_t Fill(uint8_t byte) { return cudaMemset(ptr_, byte, count_ * sizeof(T)); }

 private:
  void* ptr_ = nullptr;
  size_t count_;
};

inline std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& x) {
  std::vector<__nv_bfloat16> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    __nv_bfloat16_raw raw;
    raw.x = kernels::FloatToBf16(x[i]);
    out[i] = raw;
  }
  return out;
}

inline std::vector<float> ToFloat(const std::vector<__nv_bfloat16>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const __nv_bfloat16_raw raw = x[i];
    out[i] = kernels::Bf16ToFloat(raw.x);
  }
  return out;
}

// The values a bf16 tensor holds, as float (what the GPU actually computes with).
inline std::vector<float> RoundToBf16(const std::vector<float>& x) { return ToFloat(ToBf16(x)); }

}  // namespace sparsefill::testing
