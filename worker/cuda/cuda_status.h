// cudaError_t / cublasStatus_t -> absl::Status, for the CUDA backend (worker side; kernels/
// returns plain cudaError_t).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sparsefill::worker {

inline absl::Status CudaStatus(cudaError_t err, absl::string_view what) {
  if (err == cudaSuccess) return absl::OkStatus();
  if (err == cudaErrorMemoryAllocation) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of device memory"));
  }
  return absl::InternalError(absl::StrCat(what, ": CUDA error ", cudaGetErrorName(err), " (",
                                          cudaGetErrorString(err), ")"));
}

inline absl::Status CublasStatus(cublasStatus_t st, absl::string_view what) {
  if (st == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLAS error ", cublasGetStatusName(st)));
}

}  // namespace sparsefill::worker

#define SF_CUDA_RETURN_IF_ERROR(expr, what)                                           \
  do {                                                                                \
    if (::absl::Status _sf_cuda = ::sparsefill::worker::CudaStatus((expr), (what));   \
        !_sf_cuda.ok()) {                                                             \
      return _sf_cuda;                                                                \
    }                                                                                 \
  } while (0)
