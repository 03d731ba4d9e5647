// Device time per prefill stage on one stream: an event is recorded whenever the work queued
// switches to another stage, and the elapsed times between them are summed by stage at the end.
// Costs one event record per stage switch, never a host wait before Collect.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <vector>

#include "absl/status/status.h"

namespace sparsefill::worker {

enum class Stage { kEmbed, kLinear, kEstimation, kAttention, kLmHead, kCount };

class StageTimer {
 public:
  StageTimer() = default;
  ~StageTimer();
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

  // Forgets the previous prefill's marks.
  void Reset();
  // Work queued on `stream` from now on belongs to `stage`.
  absl::Status Mark(Stage stage, cudaStream_t stream);
  // Closes the last stage and sums the seconds per stage (waits for the stream's work).
  absl::Status Collect(cudaStream_t stream, std::array<double, static_cast<int>(Stage::kCount)>* seconds);

 private:
  cudaEvent_t EventAt(size_t i);

  std::vector<cudaEvent_t> events_;   // reused across prefills
  std::vector<Stage> stage_of_mark_;  // the stage that starts at each recorded event
  Stage current_ = Stage::kCount;
};

}  // namespace sparsefill::worker
