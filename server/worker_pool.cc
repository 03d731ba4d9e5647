// Bounded admission queue and worker threads (see worker_pool.h).
#include "server/worker_pool.h"

#include "absl/strings/str_cat.h"

namespace sparsefill::server {

WorkerPool::WorkerPool(const Options& options) : options_(options) {
  const int slots = options.num_workers * options.max_concurrent_per_worker;
  threads_.reserve(static_cast<size_t>(slots));
  for (int i = 0; i < slots; ++i) {
    threads_.emplace_back(
        [this, worker = i / options.max_concurrent_per_worker] { ThreadMain(worker); });
  }
}

WorkerPool::~WorkerPool() { Shutdown(); }

absl::StatusOr<WorkerPool::JobId> WorkerPool::Submit(Job job) {
  absl::MutexLock lock(&mu_);
  if (stopping_)
    return absl::UnavailableError("the server is shutting down and takes no new requests");
  const size_t capacity = threads_.size() + static_cast<size_t>(options_.max_queued);
  if (queue_.size() + static_cast<size_t>(running_) >= capacity) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server's queue is full (", queue_.size(), " requests waiting, max_queued_requests ",
        options_.max_queued, "); retry later or on another server"));
  }
  const JobId id = next_id_++;
  queue_.emplace_back(id, std::move(job));
  return id;
}

bool WorkerPool::CancelQueued(JobId id) {
  Job removed;  // destroyed after the lock is released: a job's destructor may take other locks
  {
    absl::MutexLock lock(&mu_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->first == id) {
        removed = std::move(it->second);
        queue_.erase(it);
        return true;
      }
    }
  }
  return false;
}

void WorkerPool::Shutdown() {
  absl::MutexLock join_lock(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

int WorkerPool::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int WorkerPool::running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void WorkerPool::ThreadMain(int worker) {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WorkerPool* pool)
               ABSL_NO_THREAD_SAFETY_ANALYSIS { return pool->stopping_ || !pool->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = std::move(queue_.front().second);
      queue_.pop_front();
      ++running_;
    }
    job(worker);
    job = nullptr;  // release what the job holds before it counts as finished
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

}  // namespace sparsefill::server
