// Moves each layer's K and V off the GPU while the next layer computes, and hands them to the
// KvSink in layer order from a thread of its own.
//
//   compute stream:  ... layer l ... | event A_l | layer l+1 ...
//   copy stream:              wait A_l -> K, V to pinned slot -> event B_l
//   exporter thread:                         wait B_l -> sink.OnLayerKv(slot) -> slot free
//
// The host blocks only when every pinned slot is still with the sink (its backpressure). The
// compute stream waits (on the device) for B_{l-1} before layer l+1 overwrites the K/V buffers
// layer l-1 used (they alternate between two sets).
#pragma once

#include <cuda_runtime_api.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "worker/kv_sink.h"

namespace sparsefill::worker {

class KvExporter {
 public:
  KvExporter(int device, int slots);
  ~KvExporter();  // waits for outstanding exports
  KvExporter(const KvExporter&) = delete;
  KvExporter& operator=(const KvExporter&) = delete;

  // Prepares a prefill whose layers hold `bytes_per_tensor` bytes of K (and as many of V); grows
  // the pinned slots when needed.
  absl::Status Begin(int64_t bytes_per_tensor);

  // Queues the export of one layer: k and v are device pointers [tokens, kv_heads, head_dim]
  // bf16, final once the work queued so far on `compute` is done. Returns the error of an
  // earlier export, if any (the prefill should stop).
  absl::Status Export(int layer, const void* k, const void* v, int64_t tokens, int kv_heads,
                      int head_dim, KvSink& sink, cudaStream_t compute);

  // Waits until every queued export reached its sink; the first error, if any.
  absl::Status Finish();

  // Device time spent copying during the last prefill, in seconds (after Finish).
  double copy_seconds() const { return copy_seconds_; }

 private:
  struct Slot {
    void* k = nullptr;  // pinned host memory
    void* v = nullptr;
    int64_t capacity = 0;
    cudaEvent_t copy_start = nullptr, copy_done = nullptr;
  };
  struct Job {
    int slot;
    LayerKv kv;
    KvSink* sink;
  };

  // Queues the copies of one layer into slot `s` on the copy stream.
  absl::Status QueueCopy(Slot& s, const void* k, const void* v, int64_t bytes, cudaStream_t compute);
  void Run();  // the exporter thread

  const int device_;
  cudaStream_t copy_ = nullptr;
  std::vector<Slot> slots_;
  cudaEvent_t compute_ready_ = nullptr;
  int last_slot_ = -1;  // slot of the previous layer's copy
  double copy_seconds_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;         // guarded by mu_
  std::vector<int> free_slots_;  // guarded by mu_
  int in_flight_ = 0;            // guarded by mu_: jobs queued or with the sink
  absl::Status error_;           // guarded by mu_: the first export error
  bool stopping_ = false;        // guarded by mu_
  std::thread thread_;
};

}  // namespace sparsefill::worker
