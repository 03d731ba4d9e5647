#include "worker/cuda/kv_exporter.h"

#include "worker/cuda/cuda_status.h"
#include "worker/status_macros.h"

namespace sparsefill::worker {

KvExporter::KvExporter(int device, int slots) : device_(device), slots_(std::max(1, slots)) {
  cudaSetDevice(device_);
  cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking);
  cudaEventCreateWithFlags(&compute_ready_, cudaEventDisableTiming);
  for (int i = 0; i < static_cast<int>(slots_.size()); ++i) {
    cudaEventCreate(&slots_[i].copy_start);
    cudaEventCreate(&slots_[i].copy_done);
    free_slots_.push_back(i);
  }
  thread_ = std::thread([this] { Run(); });
}

KvExporter::~KvExporter() {
  (void)Finish();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  cudaSetDevice(device_);
  for (Slot& s : slots_) {
    cudaFreeHost(s.k);
    cudaFreeHost(s.v);
    cudaEventDestroy(s.copy_start);
    cudaEventDestroy(s.copy_done);
  }
  cudaEventDestroy(compute_ready_);
  cudaStreamDestroy(copy_);
}

absl::Status KvExporter::Begin(int64_t bytes_per_tensor) {
  {
    // Nothing of an earlier prefill may linger; its error was reported by its own Finish.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
    error_ = absl::OkStatus();
  }
  last_slot_ = -1;
  copy_seconds_ = 0;
  for (Slot& s : slots_) {
    if (s.capacity >= bytes_per_tensor) continue;
    // Pinning is slow (page locking): slots only grow, and are kept for later prefills.
    cudaFreeHost(s.k);
    cudaFreeHost(s.v);
    s.k = s.v = nullptr;
    s.capacity = 0;
    SF_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&s.k, bytes_per_tensor, cudaHostAllocDefault),
                            "pinned KV export buffer");
    SF_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&s.v, bytes_per_tensor, cudaHostAllocDefault),
                            "pinned KV export buffer");
    s.capacity = bytes_per_tensor;
  }
  return absl::OkStatus();
}

absl::Status KvExporter::Export(int layer, const void* k, const void* v, int64_t tokens,
                                int kv_heads, int head_dim, KvSink& sink, cudaStream_t compute) {
  const int64_t bytes = tokens * kv_heads * head_dim * 2;
  int slot;
  {
    // Backpressure: wait for a slot the sink has let go of.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_slots_.empty() || !error_.ok(); });
    if (!error_.ok()) return error_;
    slot = free_slots_.back();
    free_slots_.pop_back();
    ++in_flight_;
  }
  Slot& s = slots_[slot];
  if (absl::Status queued = QueueCopy(s, k, v, bytes, compute); !queued.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    free_slots_.push_back(slot);
    --in_flight_;
    if (error_.ok()) error_ = queued;
    return queued;
  }
  last_slot_ = slot;

  Job job;
  job.slot = slot;
  job.sink = &sink;
  job.kv.layer = layer;
  job.kv.tokens = tokens;
  job.kv.kv_heads = kv_heads;
  job.kv.head_dim = head_dim;
  job.kv.dtype = kernels::ScalarType::kBFloat16;
  job.kv.k = s.k;
  job.kv.v = s.v;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(job);
  }
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status KvExporter::QueueCopy(Slot& s, const void* k, const void* v, int64_t bytes,
                                   cudaStream_t compute) {
  if (s.capacity < bytes) return absl::InternalError("KV export slot smaller than the layer");
  // Layer l+1's K/V writes reuse layer l-1's buffers: order them after that copy (on the device).
  if (last_slot_ >= 0) {
    SF_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(compute, slots_[last_slot_].copy_done, 0),
                            "ordering the next layer after the KV copy");
  }
  SF_CUDA_RETURN_IF_ERROR(cudaEventRecord(compute_ready_, compute), "KV export event");
  SF_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy_, compute_ready_, 0), "KV export wait");
  SF_CUDA_RETURN_IF_ERROR(cudaEventRecord(s.copy_start, copy_), "KV export event");
  SF_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.k, k, bytes, cudaMemcpyDeviceToHost, copy_), "K export");
  SF_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(s.v, v, bytes, cudaMemcpyDeviceToHost, copy_), "V export");
  SF_CUDA_RETURN_IF_ERROR(cudaEventRecord(s.copy_done, copy_), "KV export event");
  return absl::OkStatus();
}

void KvExporter::Run() {
  cudaSetDevice(device_);
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, nothing left
      job = jobs_.front();
      jobs_.pop_front();
    }
    Slot& s = slots_[job.slot];
    absl::Status status = CudaStatus(cudaEventSynchronize(s.copy_done), "KV copy");
    float ms = 0;
    if (status.ok() && cudaEventElapsedTime(&ms, s.copy_start, s.copy_done) == cudaSuccess) {
      copy_seconds_ += ms * 1e-3;
    }
    bool skip;
    {
      std::lock_guard<std::mutex> lock(mu_);
      skip = !error_.ok();  // after an error no further layer reaches the sink
    }
    if (status.ok() && !skip) status = job.sink->OnLayerKv(job.kv);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!status.ok() && error_.ok()) error_ = status;
      free_slots_.push_back(job.slot);
      --in_flight_;
    }
    cv_.notify_all();
  }
}

absl::Status KvExporter::Finish() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
  return error_;
}

}  // namespace sparsefill::worker
