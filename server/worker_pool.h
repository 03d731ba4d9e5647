// The worker pool behind the admission queue. Jobs (one per admitted Prefill call) wait in a
// bounded FIFO queue and run on num_workers x max_concurrent_per_worker threads; thread i serves
// worker i / max_concurrent_per_worker (one worker per GPU; one for the CPU backend).
//
// Admission is decided at once: Submit never blocks. A job is admitted while
//   queued + running < slots + max_queued
// so a request that finds a free slot never counts against the queue limit, and one more than
// max_queued waiting requests gets RESOURCE_EXHAUSTED immediately. A queued job can be removed
// (its call was cancelled or its deadline passed) and then frees its place for the next request.
#pragma once

#include <cstdint>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace sparsefill::server {

class WorkerPool {
 public:
  struct Options {
    int num_workers = 1;
    int max_concurrent_per_worker = 1;
    int max_queued = 16;
  };
  using JobId = uint64_t;
  // Runs on a pool thread with the index of the worker it runs on.
  using Job = absl::AnyInvocable<void(int worker)>;

  // Starts the threads. Options must be positive (max_queued may be 0); the server checks them.
  explicit WorkerPool(const Options& options);
  // Shuts down (see Shutdown).
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Admits `job` or fails at once: RESOURCE_EXHAUSTED when the queue is full, UNAVAILABLE after
  // Shutdown began.
  absl::StatusOr<JobId> Submit(Job job);

  // Removes a job that has not started; returns false when it already started (or finished, or
  // never existed). A removed job is destroyed without running.
  bool CancelQueued(JobId id);

  // Stops admitting, lets the threads run every job already queued, and joins them. Idempotent.
  void Shutdown();

  int queued() const;
  int running() const;
  int slots() const { return static_cast<int>(threads_.size()); }

 private:
  void ThreadMain(int worker);

  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<std::pair<JobId, Job>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  JobId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::thread> threads_;  // written only by the constructor and Shutdown
  absl::Mutex join_mu_;               // serialises Shutdown callers
};

}  // namespace sparsefill::server
