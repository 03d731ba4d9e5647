#include "worker/cuda/stage_timer.h"

#include "worker/cuda/cuda_status.h"

namespace sparsefill::worker {

StageTimer::~StageTimer() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

void StageTimer::Reset() {
  stage_of_mark_.clear();
  current_ = Stage::kCount;
}

cudaEvent_t StageTimer::EventAt(size_t i) {
  while (events_.size() <= i) {
    cudaEvent_t e = nullptr;
    if (cudaEventCreate(&e) != cudaSuccess) return nullptr;
    events_.push_back(e);
  }
  return events_[i];
}

absl::Status StageTimer::Mark(Stage stage, cudaStream_t stream) {
  if (stage == current_) return absl::OkStatus();
  cudaEvent_t e = EventAt(stage_of_mark_.size());
  if (e == nullptr) return absl::InternalError("cannot create a CUDA event");
  SF_CUDA_RETURN_IF_ERROR(cudaEventRecord(e, stream), "stage timer");
  stage_of_mark_.push_back(stage);
  current_ = stage;
  return absl::OkStatus();
}

absl::Status StageTimer::Collect(cudaStream_t stream,
                                 std::array<double, static_cast<int>(Stage::kCount)>* seconds) {
  seconds->fill(0.0);
  if (stage_of_mark_.empty()) return absl::OkStatus();
  // A closing mark: the end of the last stage.
  cudaEvent_t end = EventAt(stage_of_mark_.size());
  if (end == nullptr) return absl::InternalError("cannot create a CUDA event");
  SF_CUDA_RETURN_IF_ERROR(cudaEventRecord(end, stream), "stage timer");
  SF_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(end), "stage timer");
  for (size_t i = 0; i < stage_of_mark_.size(); ++i) {
    float ms = 0;
    SF_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]), "stage timer");
    (*seconds)[static_cast<int>(stage_of_mark_[i])] += ms * 1e-3;
  }
  Reset();
  return absl::OkStatus();
}

}  // namespace sparsefill::worker
