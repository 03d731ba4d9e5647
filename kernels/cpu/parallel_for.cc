#include "kernels/cpu/parallel_for.h"

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

namespace sparsefill::kernels {

int CpuThreadCount() {
  static const int count = [] {
    if (const char* env = std::getenv("SPARSEFILL_CPU_THREADS")) {
      const int n = std::atoi(env);
      if (n >= 1) return n;
    }
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return count;
}

void ParallelFor(int64_t begin, int64_t end, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_parts = (n + grain - 1) / grain;
  const int64_t parts = std::min<int64_t>(CpuThreadCount(), max_parts);
  if (parts <= 1) {
    fn(begin, end);
    return;
  }
  // Threads are spawned per call: a call covers milliseconds of work, so the ~20 us start cost
  // is noise, and there is no shared pool for concurrent prefills to contend on.
  std::vector<std::thread> threads;
  threads.reserve(parts - 1);
  const int64_t step = (n + parts - 1) / parts;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t b = begin + p * step;
    const int64_t e = std::min(end, b + step);
    if (b >= e) break;
    threads.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(begin, std::min(end, begin + step));
  for (auto& t : threads) t.join();
}

}  // namespace sparsefill::kernels
