// WorkerPool: bounded admission (RESOURCE_EXHAUSTED at once when full), FIFO order, removal of a
// queued job (its place frees up, it never runs), concurrency = workers x per-worker slots with
// the right worker indices, and shutdown (queued jobs run, then UNAVAILABLE). Synchronised with
// notifications, never with sleeps.
#include "server/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace sparsefill::server {
namespace {

// A job that reports when it starts and then waits to be released.
struct BlockingJob {
  absl::Notification started;
  absl::Notification release;
  std::atomic<int> worker{-1};

  WorkerPool::Job Make() {
    return [this](int w) {
      worker = w;
      started.Notify();
      release.WaitForNotification();
    };
  }
};

TEST(WorkerPoolTest, RunsJobsWithTheirWorkerIndex) {
  WorkerPool pool({/*num_workers=*/1, /*max_concurrent_per_worker=*/1, /*max_queued=*/4});
  EXPECT_EQ(pool.slots(), 1);
  absl::Notification done;
  int seen = -1;
  ASSERT_TRUE(pool.Submit([&](int w) {
                    seen = w;
                    done.Notify();
                  })
                  .ok());
  done.WaitForNotification();
  EXPECT_EQ(seen, 0);
}

TEST(WorkerPoolTest, FullQueueIsRejectedAtOnce) {
  WorkerPool pool({1, 1, /*max_queued=*/1});
  BlockingJob a;
  ASSERT_TRUE(pool.Submit(a.Make()).ok());
  a.started.WaitForNotification();  // a occupies the only slot
  EXPECT_EQ(pool.running(), 1);

  std::atomic<bool> b_ran{false};
  ASSERT_TRUE(pool.Submit([&](int) { b_ran = true; }).ok()) << "one request may wait";
  EXPECT_EQ(pool.queued(), 1);

  const absl::StatusOr<WorkerPool::JobId> c =
      pool.Submit([](int) { ADD_FAILURE() << "c must not run"; });
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(c.status().message()).find("max_queued_requests 1"), std::string::npos)
      << c.status();

  a.release.Notify();
  pool.Shutdown();  // runs b, then joins
  EXPECT_TRUE(b_ran);
}

TEST(WorkerPoolTest, FreeSlotDoesNotCountAgainstTheQueue) {
  WorkerPool pool({1, 1, /*max_queued=*/0});
  BlockingJob a;
  ASSERT_TRUE(pool.Submit(a.Make()).ok()) << "a free slot admits even with max_queued 0";
  a.started.WaitForNotification();
  EXPECT_EQ(pool.Submit([](int) {}).status().code(), absl::StatusCode::kResourceExhausted);
  a.release.Notify();
}

TEST(WorkerPoolTest, CancelledQueuedJobFreesItsPlaceAndNeverRuns) {
  WorkerPool pool({1, 1, /*max_queued=*/1});
  BlockingJob a;
  const auto a_id = pool.Submit(a.Make());
  ASSERT_TRUE(a_id.ok());
  a.started.WaitForNotification();

  auto b_state = std::make_shared<int>(0);  // observes the job's destruction
  std::weak_ptr<int> b_alive = b_state;
  const auto b_id = pool.Submit([b_state](int) { ADD_FAILURE() << "a cancelled job ran"; });
  b_state.reset();
  ASSERT_TRUE(b_id.ok());
  EXPECT_EQ(pool.Submit([](int) {}).status().code(), absl::StatusCode::kResourceExhausted);

  EXPECT_TRUE(pool.CancelQueued(*b_id));
  EXPECT_TRUE(b_alive.expired()) << "the removed job is destroyed at once";
  EXPECT_EQ(pool.queued(), 0);
  EXPECT_FALSE(pool.CancelQueued(*b_id)) << "only once";
  EXPECT_FALSE(pool.CancelQueued(*a_id)) << "a running job cannot be removed";
  EXPECT_FALSE(pool.CancelQueued(12345));

  absl::Notification c_ran;
  ASSERT_TRUE(pool.Submit([&](int) { c_ran.Notify(); }).ok()) << "the freed place admits the next";
  a.release.Notify();
  c_ran.WaitForNotification();
}

TEST(WorkerPoolTest, RunsInFifoOrder) {
  WorkerPool pool({1, 1, /*max_queued=*/8});
  BlockingJob gate;
  ASSERT_TRUE(pool.Submit(gate.Make()).ok());
  gate.started.WaitForNotification();
  absl::Mutex mu;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.Submit([&, i](int) {
                      absl::MutexLock lock(&mu);
                      order.push_back(i);
                    })
                    .ok());
  }
  gate.release.Notify();
  pool.Shutdown();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(WorkerPoolTest, RunsWorkersTimesPerWorkerConcurrently) {
  WorkerPool pool({/*num_workers=*/2, /*max_concurrent_per_worker=*/2, /*max_queued=*/0});
  ASSERT_EQ(pool.slots(), 4);
  // Each job waits until all four run at once: this only completes with four concurrent slots.
  absl::BlockingCounter all_running(4);
  absl::Notification release;
  absl::Mutex mu;
  std::vector<int> workers;
  absl::BlockingCounter finished(4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(pool.Submit([&](int w) {
                      {
                        absl::MutexLock lock(&mu);
                        workers.push_back(w);
                      }
                      all_running.DecrementCount();
                      release.WaitForNotification();
                      finished.DecrementCount();
                    })
                    .ok());
  }
  all_running.Wait();
  EXPECT_EQ(pool.running(), 4);
  EXPECT_EQ(pool.Submit([](int) {}).status().code(), absl::StatusCode::kResourceExhausted);
  release.Notify();
  finished.Wait();
  std::sort(workers.begin(), workers.end());
  EXPECT_EQ(workers, (std::vector<int>{0, 0, 1, 1})) << "two slots per worker";
}

TEST(WorkerPoolTest, ShutdownRunsWhatIsQueuedThenRejects) {
  WorkerPool pool({1, 1, /*max_queued=*/4});
  BlockingJob gate;
  ASSERT_TRUE(pool.Submit(gate.Make()).ok());
  gate.started.WaitForNotification();
  std::atomic<int> ran{0};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool.Submit([&](int) { ++ran; }).ok());
  gate.release.Notify();
  pool.Shutdown();
  EXPECT_EQ(ran, 3);
  EXPECT_EQ(pool.Submit([](int) {}).status().code(), absl::StatusCode::kUnavailable);
  pool.Shutdown();  // idempotent
}

}  // namespace
}  // namespace sparsefill::server
